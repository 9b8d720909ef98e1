/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The built-in detectors: Hyperscan patterns that find candidates cheaply,
 * and validators that decide on each candidate with what a pattern cannot
 * say (checksums, number ranges, what stands next to it).  Patterns are
 * deliberately loose where a validator follows and tight where none does.
 */
#include "guard/guard_int.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include <hs/hs.h>

/* ---- helpers ------------------------------------------------------------ */

static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_alnum(char c) { return isalnum((unsigned char)c) != 0; }

/* The candidate's digits, separators dropped, into d (cap bytes). */
static size_t digits_of(const char *s, size_t len, char *d, size_t cap)
{
	size_t n = 0;

	for (size_t i = 0; i < len && n < cap; i++)
		if (is_digit(s[i]))
			d[n++] = s[i];
	return n;
}

/* A digit group continues right after the candidate ("-6789-0") or right
 * before it ("1-"): the candidate is part of a longer number. */
static bool number_continues(const char *text, size_t len, size_t from, size_t to)
{
	if (to + 1 < len && (text[to] == '-' || text[to] == '.') && is_digit(text[to + 1]))
		return true;
	return from >= 2 && (text[from - 1] == '-' || text[from - 1] == '.') &&
	       is_digit(text[from - 2]);
}

/* ---- credit cards: scheme, length, one separator style, Luhn ---------- */

bool guard_luhn_ok(const char *s, size_t len)
{
	unsigned sum = 0, n = 0;

	for (size_t i = len; i-- > 0;) {
		if (!is_digit(s[i]))
			continue;
		unsigned d = (unsigned)(s[i] - '0');
		if (n++ & 1) {
			d *= 2;
			if (d > 9)
				d -= 9;
		}
		sum += d;
	}
	return n > 0 && sum % 10 == 0;
}

static unsigned prefix_num(const char *d, unsigned n)
{
	unsigned v = 0;

	for (unsigned i = 0; i < n; i++)
		v = v * 10 + (unsigned)(d[i] - '0');
	return v;
}

/* The major schemes' IIN ranges and lengths (ISO/IEC 7812 as published
 * by the schemes); a Luhn-valid number outside them is not a card. */
static bool card_scheme_ok(const char *d, size_t n)
{
	unsigned p1 = prefix_num(d, 1), p2 = prefix_num(d, 2), p3 = prefix_num(d, 3);
	unsigned p4 = prefix_num(d, 4), p6 = prefix_num(d, 6);

	if (p1 == 4)					/* Visa */
		return n == 13 || n == 16 || n == 19;
	if ((p2 >= 51 && p2 <= 55) || (p4 >= 2221 && p4 <= 2720))	/* Mastercard */
		return n == 16;
	if (p2 == 34 || p2 == 37)			/* American Express */
		return n == 15;
	if (p4 == 6011 || (p3 >= 644 && p3 <= 649) || p2 == 65 ||
	    (p6 >= 622126 && p6 <= 622925))		/* Discover */
		return n >= 16 && n <= 19;
	if (p4 >= 3528 && p4 <= 3589)			/* JCB */
		return n >= 16 && n <= 19;
	if ((p3 >= 300 && p3 <= 305) || p2 == 36 || p2 == 38 || p2 == 39)	/* Diners */
		return n >= 14 && n <= 19;
	if (p2 == 62)					/* UnionPay */
		return n >= 16 && n <= 19;
	if (p2 == 50 || (p2 >= 56 && p2 <= 69))		/* Maestro */
		return n >= 12 && n <= 19;
	return false;
}

static bool validate_card(const char *text, size_t len, size_t from, size_t to)
{
	char d[24];
	char sep = 0;

	/* One separator style throughout: "4111 1111-1111 1111" is a list. */
	for (size_t i = from; i < to; i++) {
		if (is_digit(text[i]))
			continue;
		if (sep && text[i] != sep)
			return false;
		sep = text[i];
	}
	size_t n = digits_of(text + from, to - from, d, sizeof(d));
	if (number_continues(text, len, from, to))
		return false;
	return n >= 12 && n <= 19 && card_scheme_ok(d, n) && guard_luhn_ok(d, n);
}

/* ---- IBAN: the country's length, then ISO 7064 mod 97-10 ------------- */

static const struct { char cc[3]; uint8_t len; } iban_lengths[] = {
	{"AD", 24}, {"AE", 23}, {"AL", 28}, {"AT", 20}, {"AZ", 28}, {"BA", 20}, {"BE", 16},
	{"BG", 22}, {"BH", 22}, {"BR", 29}, {"BY", 28}, {"CH", 21}, {"CR", 22}, {"CY", 28},
	{"CZ", 24}, {"DE", 22}, {"DK", 18}, {"DO", 28}, {"EE", 20}, {"EG", 29}, {"ES", 24},
	{"FI", 18}, {"FO", 18}, {"FR", 27}, {"GB", 22}, {"GE", 22}, {"GI", 23}, {"GL", 18},
	{"GR", 27}, {"GT", 28}, {"HR", 21}, {"HU", 28}, {"IE", 22}, {"IL", 23}, {"IQ", 23},
	{"IS", 26}, {"IT", 27}, {"JO", 30}, {"KW", 30}, {"KZ", 20}, {"LB", 28}, {"LC", 32},
	{"LI", 21}, {"LT", 20}, {"LU", 20}, {"LV", 21}, {"MC", 27}, {"MD", 24}, {"ME", 22},
	{"MK", 19}, {"MR", 27}, {"MT", 31}, {"MU", 30}, {"NL", 18}, {"NO", 15}, {"PK", 24},
	{"PL", 28}, {"PS", 29}, {"PT", 25}, {"QA", 29}, {"RO", 24}, {"RS", 22}, {"SA", 24},
	{"SC", 31}, {"SE", 24}, {"SI", 19}, {"SK", 24}, {"SM", 27}, {"ST", 25}, {"SV", 28},
	{"TL", 23}, {"TN", 24}, {"TR", 26}, {"UA", 29}, {"VA", 22}, {"VG", 24}, {"XK", 20},
};

bool guard_iban_ok(const char *s, size_t len)
{
	char c[40];
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		if (s[i] == ' ')
			continue;
		if (n == sizeof(c) || !is_alnum(s[i]))
			return false;
		c[n++] = (char)toupper((unsigned char)s[i]);
	}
	if (n < 15)
		return false;
	size_t want = 0;
	for (size_t i = 0; i < sizeof(iban_lengths) / sizeof(iban_lengths[0]); i++)
		if (memcmp(iban_lengths[i].cc, c, 2) == 0)
			want = iban_lengths[i].len;
	if (want != n)
		return false;
	/* The first four characters move to the end; letters count A=10..Z=35. */
	unsigned rem = 0;
	for (size_t k = 0; k < n; k++) {
		char ch = c[(k + 4) % n];
		if (is_digit(ch))
			rem = (rem * 10 + (unsigned)(ch - '0')) % 97;
		else
			rem = (rem * 100 + (unsigned)(ch - 'A' + 10)) % 97;
	}
	return rem == 1;
}

static bool validate_iban(const char *text, size_t len, size_t from, size_t to)
{
	(void)len;
	return guard_iban_ok(text + from, to - from);
}

/* ---- US SSN: the SSA's never-issued areas, groups and serials --------- */

bool guard_ssn_ok(const char *s, size_t len)
{
	char d[10];

	if (digits_of(s, len, d, sizeof(d)) != 9)
		return false;
	unsigned area = prefix_num(d, 3), group = prefix_num(d + 3, 2);
	unsigned serial = prefix_num(d + 5, 4);
	if (area == 0 || area == 666 || area >= 900 || group == 0 || serial == 0)
		return false;
	/* The Woolworth wallet card and the SSA's advertising number. */
	return memcmp(d, "078051120", 9) != 0 && memcmp(d, "219099999", 9) != 0;
}

static bool validate_ssn(const char *text, size_t len, size_t from, size_t to)
{
	return !number_continues(text, len, from, to) && guard_ssn_ok(text + from, to - from);
}

/* ---- phone numbers ------------------------------------------------------ */

/* International (+CC ...): E.164 allows 8..15 digits; the '+' must not
 * follow a digit or letter ("1+2345678"), and separators never double. */
static bool validate_phone_intl(const char *text, size_t len, size_t from, size_t to)
{
	char d[20];
	size_t n = digits_of(text + from, to - from, d, sizeof(d));

	if (n < 8 || n > 15 || number_continues(text, len, from, to))
		return false;
	if (from > 0 && is_alnum(text[from - 1]))
		return false;
	for (size_t i = from + 1; i + 1 < to; i++) {
		char a = text[i], b = text[i + 1];
		if (!is_digit(a) && !is_digit(b) && !(a == ')' && b == ' ') && !(a == ' ' && b == '('))
			return false;
	}
	return true;
}

/* National formats: the pattern fixed the shape; what is left is that the
 * number is not a piece of a longer one (dates, versions, ids). */
static bool validate_phone_national(const char *text, size_t len, size_t from, size_t to)
{
	if (number_continues(text, len, from, to))
		return false;
	return !(from > 0 && (is_alnum(text[from - 1]) || text[from - 1] == '+'));
}

/* ---- e-mail ------------------------------------------------------------- */

/* Top-level domains that are really file extensions: "icon@2x.png". */
static bool is_file_extension(const char *s, size_t n)
{
	static const char *const ext[] = { "png", "jpg", "jpeg", "gif", "svg", "webp", "pdf",
					   "js", "ts", "css", "html", "txt", "json", "yaml", "ico" };

	for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++)
		if (strlen(ext[i]) == n && strncasecmp(ext[i], s, n) == 0)
			return true;
	return false;
}

static bool validate_email(const char *text, size_t len, size_t from, size_t to)
{
	const char *at = memchr(text + from, '@', to - from);
	size_t tld = to;

	(void)len;
	while (tld > from && text[tld - 1] != '.')
		tld--;
	if (!at || at == text + from || text[from] == '.' || at[-1] == '.')
		return false;
	return !is_file_extension(text + tld, to - tld);
}

static bool is_local_char(char c)
{
	return is_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
}

/* The address ending at `to` starts where the run of local-part
 * characters before its '@' (the last one: a domain holds none) starts,
 * which is the pattern's leftmost start. */
static size_t email_start(const char *text, size_t to)
{
	size_t at = to;

	while (at > 0 && text[at - 1] != '@')
		at--;
	if (at == 0)
		return to;
	at--;
	while (at > 0 && is_local_char(text[at - 1]))
		at--;
	return at;
}

/* ---- IP addresses ------------------------------------------------------- */

/* A "v", "version" or "build" right before: a version string, not a host. */
static bool after_version_word(const char *text, size_t from)
{
	static const char *const words[] = { "version ", "ver ", "build ", "release ", "v" };

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		size_t n = strlen(words[i]);
		if (from >= n && strncasecmp(text + from - n, words[i], n) == 0 &&
		    (from == n || !is_alnum(text[from - n - 1])))	/* not "server " */
			return true;
	}
	return false;
}

static bool validate_ipv4(const char *text, size_t len, size_t from, size_t to)
{
	unsigned octet = 0, digits = 0;

	if (number_continues(text, len, from, to) || after_version_word(text, from))
		return false;
	for (size_t i = from; i <= to; i++) {
		if (i == to || text[i] == '.') {
			if (digits == 0 || octet > 255)
				return false;
			octet = digits = 0;
			continue;
		}
		/* A leading zero ("01.02.2024") is a date or an id, not an octet. */
		if (digits == 1 && octet == 0)
			return false;
		octet = octet * 10 + (unsigned)(text[i] - '0');
		digits++;
	}
	return true;
}

static bool validate_ipv6(const char *text, size_t len, size_t from, size_t to)
{
	char a[48];
	struct in6_addr in6;

	if (to - from >= sizeof(a) || to - from < 3)
		return false;
	/* Part of a longer token: "std::cbegin", "a1:b2:c3:..." continued. */
	if (from > 0 && (is_alnum(text[from - 1]) || text[from - 1] == ':'))
		return false;
	if (to < len && (is_alnum(text[to]) || text[to] == ':'))
		return false;
	memcpy(a, text + from, to - from);
	a[to - from] = '\0';
	return inet_pton(AF_INET6, a, &in6) == 1;
}

/* ---- secrets ------------------------------------------------------------ */

/* Key-shaped tokens end where the token ends: "AKIA...X" followed by more
 * key characters is something longer, not an AWS key id. */
static bool validate_token_end(const char *text, size_t len, size_t from, size_t to)
{
	(void)from;
	return !(to < len && (is_alnum(text[to]) || text[to] == '_' || text[to] == '-'));
}

/* ---- the table ---------------------------------------------------------- */

#define CI HS_FLAG_CASELESS

const struct guard_builtin_pattern guard_builtin_patterns[] = {
	{ GUARD_EMAIL, "[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\\.[A-Za-z0-9-]+)*\\.[A-Za-z]{2,24}\\b",
	  0, validate_email, email_start },

	{ GUARD_PHONE, "\\+[1-9][0-9 ().-]{6,20}[0-9]\\b", 0, validate_phone_intl, NULL },
	{ GUARD_PHONE, "\\b00[1-9][0-9 .-]{6,18}[0-9]\\b", 0, validate_phone_intl, NULL },
	/* North America: (415) 555-2671, 415-555-2671, 1 415 555 2671 */
	{ GUARD_PHONE, "(?:\\b1[ .-]?)?(?:\\([2-9][0-9]{2}\\) ?|\\b[2-9][0-9]{2}[ .-])"
		       "[2-9][0-9]{2}[ .-][0-9]{4}\\b", 0, validate_phone_national, NULL },
	/* United Kingdom: 020 7946 0958, 07700 900123 */
	{ GUARD_PHONE, "\\b0[1-37-9][0-9]{1,3} [0-9]{3,4} ?[0-9]{3,4}\\b", 0,
	  validate_phone_national, NULL },
	/* France: 06 12 34 56 78, 01.23.45.67.89 */
	{ GUARD_PHONE, "\\b0[1-9](?:[ .][0-9]{2}){4}\\b", 0, validate_phone_national, NULL },

	{ GUARD_CREDIT_CARD, "\\b(?:[0-9][ -]?){11,18}[0-9]\\b", 0, validate_card, NULL },

	{ GUARD_IBAN, "\\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\\b", 0,
	  validate_iban, NULL },

	{ GUARD_US_SSN, "\\b[0-9]{3}-[0-9]{2}-[0-9]{4}\\b", 0, validate_ssn, NULL },
	{ GUARD_US_SSN, "\\b[0-9]{3} [0-9]{2} [0-9]{4}\\b", 0, validate_ssn, NULL },

	{ GUARD_IP_ADDRESS, "\\b(?:[0-9]{1,3}\\.){3}[0-9]{1,3}\\b", 0, validate_ipv4, NULL },
	{ GUARD_IP_ADDRESS, "(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{1,4}\\b", 0, validate_ipv6, NULL },

	/* AWS access key ids, GCP API keys and OAuth tokens, GitHub, Slack,
	 * OpenAI/Anthropic-style sk- keys, Stripe, JWTs, PEM private keys. */
	{ GUARD_SECRETS, "\\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}", 0,
	  validate_token_end, NULL },
	{ GUARD_SECRETS, "\\bAIza[0-9A-Za-z_-]{35}", 0, validate_token_end, NULL },
	{ GUARD_SECRETS, "\\bya29\\.[0-9A-Za-z_-]{20,}", 0, validate_token_end, NULL },
	{ GUARD_SECRETS, "\\bgh[pousr]_[A-Za-z0-9]{36,}", 0, validate_token_end, NULL },
	{ GUARD_SECRETS, "\\bgithub_pat_[A-Za-z0-9_]{22,}", 0, validate_token_end, NULL },
	{ GUARD_SECRETS, "\\bxox[abposr]-[0-9A-Za-z-]{10,}", 0, validate_token_end, NULL },
	{ GUARD_SECRETS, "https://hooks\\.slack\\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]+",
	  0, validate_token_end, NULL },
	{ GUARD_SECRETS, "\\bsk-[A-Za-z0-9_-]{32,}", 0, validate_token_end, NULL },
	{ GUARD_SECRETS, "\\b[rs]k_live_[0-9A-Za-z]{24,}", 0, validate_token_end, NULL },
	{ GUARD_SECRETS, "\\beyJ[A-Za-z0-9_-]{8,}\\.eyJ[A-Za-z0-9_-]{8,}\\.[A-Za-z0-9_-]{16,}", 0,
	  validate_token_end, NULL },
	{ GUARD_SECRETS, "-----BEGIN (?:[A-Z0-9]+ ){0,2}PRIVATE KEY-----", 0, NULL, NULL },

	/* Prompt injection: the phrases of the known attack families, in
	 * English and the three other languages most seen in the wild. */
	{ GUARD_PROMPT_INJECTION, "\\b(?:ignore|disregard|forget|skip)\\s+(?:all\\s+|any\\s+|the\\s+"
				  "|your\\s+|of\\s+)*(?:previous|prior|above|earlier|preceding|"
				  "former|original)\\s+(?:instructions|prompts?|directions|rules|"
				  "messages|guidelines|context)", CI, NULL, NULL },
	{ GUARD_PROMPT_INJECTION, "\\bforget\\s+(?:everything|all)\\s+(?:you\\s+(?:were|have\\s+been)"
				  "\\s+told|above)", CI, NULL, NULL },
	{ GUARD_PROMPT_INJECTION, "\\byou\\s+are\\s+now\\s+(?:DAN|in\\s+developer\\s+mode|jailbroken|"
				  "unrestricted|unfiltered)", CI, NULL, NULL },
	{ GUARD_PROMPT_INJECTION, "\\b(?:reveal|print|show|repeat|output|leak)\\s+(?:me\\s+)?(?:your|"
				  "the)\\s+(?:system\\s+prompt|hidden\\s+(?:instructions|prompt)|"
				  "initial\\s+(?:instructions|prompt))", CI, NULL, NULL },
	{ GUARD_PROMPT_INJECTION, "\\bdo\\s+anything\\s+now\\b", CI, NULL, NULL },
	{ GUARD_PROMPT_INJECTION, "\\bdeveloper\\s+mode\\s+(?:enabled|activated|on)\\b", CI, NULL, NULL },
	{ GUARD_PROMPT_INJECTION, "\\bpretend\\s+(?:that\\s+)?you\\s+(?:have\\s+no|are\\s+not\\s+bound"
				  "\\s+by(?:\\s+any)?)\\s+(?:restrictions|rules|guidelines|filters)",
	  CI, NULL, NULL },
	{ GUARD_PROMPT_INJECTION, "\\bact\\s+as\\s+(?:an?\\s+)?(?:unfiltered|uncensored|unrestricted)",
	  CI, NULL, NULL },
	{ GUARD_PROMPT_INJECTION, "\\b(?:override|bypass)\\s+(?:your|all|the|any)\\s+(?:safety|"
				  "content)\\s+(?:rules|filters|policies|guidelines)", CI, NULL, NULL },
	{ GUARD_PROMPT_INJECTION, "\\bignora\\s+(?:todas\\s+)?las\\s+instrucciones\\s+anteriores",
	  CI, NULL, NULL },
	{ GUARD_PROMPT_INJECTION, "\\bignoriere\\s+(?:alle\\s+)?(?:vorherigen|bisherigen)\\s+"
				  "anweisungen", CI, NULL, NULL },
	{ GUARD_PROMPT_INJECTION, "\\bignore[rz]?\\s+(?:toutes\\s+)?les\\s+instructions\\s+"
				  "pr(?:e|\\xc3\\xa9)c(?:e|\\xc3\\xa9)dentes", CI, NULL, NULL },
};

const size_t guard_builtin_npatterns =
	sizeof(guard_builtin_patterns) / sizeof(guard_builtin_patterns[0]);
