/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Compiling a policy: every pattern the policy uses (built-in detectors
 * that are not off, custom regexes, word lists, topic keywords) goes into
 * one Hyperscan block-mode database that reports match ends, and each
 * pattern also into a database of its own with leftmost start-of-match,
 * run only around those ends (build_som).  A Hyperscan refusal names
 * the pattern, which maps back to the config line of its rule.
 */
#include "guard/guard_int.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hs/hs.h>

static const char *const builtin_names[GUARD_BUILTIN_N + 1] = {
	"email", "phone", "credit_card", "iban", "us_ssn", "ip_address", "secrets",
	"prompt_injection", "topic",
};

static const char *const builtin_placeholders[GUARD_BUILTIN_N + 1] = {
	"[EMAIL]", "[PHONE]", "[CREDIT_CARD]", "[IBAN]", "[US_SSN]", "[IP_ADDRESS]",
	"[SECRET]", "[PROMPT_INJECTION]", "[TOPIC]",
};

static const char *const action_names[] = { "off", "flag", "mask", "block" };

const char *guard_action_name(enum guard_action a)
{
	return (unsigned)a < 4 ? action_names[a] : "?";
}

int guard_action_parse(const char *s, enum guard_action *out)
{
	for (unsigned i = 0; i < 4; i++) {
		if (strcmp(s, action_names[i]) == 0) {
			*out = (enum guard_action)i;
			return 0;
		}
	}
	return -EINVAL;
}

int guard_builtin_parse(const char *s)
{
	for (int i = 0; i < GUARD_BUILTIN_N; i++)
		if (strcmp(s, builtin_names[i]) == 0)
			return i;
	return -1;
}

void guard_spec_example(struct guard_policy_spec *spec)
{
	*spec = (struct guard_policy_spec){ .name = "default", .response = true, .hold_back = 64,
					    .topics_action = GUARD_BLOCK };
	spec->detect[GUARD_EMAIL] = GUARD_MASK;
	spec->detect[GUARD_PHONE] = GUARD_MASK;
	spec->detect[GUARD_CREDIT_CARD] = GUARD_BLOCK;
	spec->detect[GUARD_IBAN] = GUARD_MASK;
	spec->detect[GUARD_US_SSN] = GUARD_MASK;
	spec->detect[GUARD_IP_ADDRESS] = GUARD_FLAG;
	spec->detect[GUARD_SECRETS] = GUARD_BLOCK;
	spec->detect[GUARD_PROMPT_INJECTION] = GUARD_FLAG;
}

const char *guard_policy_name(const struct guard_policy *p) { return p->name; }
bool guard_policy_response(const struct guard_policy *p) { return p->response; }
unsigned guard_policy_hold_back(const struct guard_policy *p) { return p->hold_back; }

const char *guard_entity_name(const struct guard_policy *p, unsigned entity)
{
	if (entity <= GUARD_TOPIC)
		return builtin_names[entity];
	return entity < GUARD_ENTITY_MAX && p->names[entity] ? p->names[entity] : "?";
}

enum guard_action guard_entity_action(const struct guard_policy *p, unsigned entity)
{
	return entity < GUARD_ENTITY_MAX ? p->action[entity] : GUARD_OFF;
}

size_t guard_entity_list(const struct guard_policy *p, uint64_t mask, char *dst, size_t cap)
{
	size_t n = 0;

	if (!cap)
		return 0;
	dst[0] = '\0';
	for (unsigned e = 0; e < GUARD_ENTITY_MAX; e++) {
		if (!(mask & (1ull << e)))
			continue;
		int w = snprintf(dst + n, cap - n, "%s%s", n ? "," : "", guard_entity_name(p, e));
		if (w < 0 || (size_t)w >= cap - n) {
			dst[n] = '\0';
			break;
		}
		n += (size_t)w;
	}
	return n;
}

/* ---- the expression list ------------------------------------------------ */

struct exprs {
	char **re;
	unsigned *flags, *ids;
	unsigned *line;		/* config line of each, 0 for built-ins */
	size_t n, cap;
};

static int exprs_add(struct exprs *x, char *re, unsigned flags, unsigned line)
{
	if (!re)
		return -ENOMEM;
	if (x->n == x->cap) {
		size_t cap = x->cap ? 2 * x->cap : 64;
		char **r = realloc(x->re, cap * sizeof(*r));
		if (r)
			x->re = r;
		unsigned *f = realloc(x->flags, cap * sizeof(*f));
		if (f)
			x->flags = f;
		unsigned *i = realloc(x->ids, cap * sizeof(*i));
		if (i)
			x->ids = i;
		unsigned *l = realloc(x->line, cap * sizeof(*l));
		if (l)
			x->line = l;
		if (!r || !f || !i || !l) {
			free(re);
			return -ENOMEM;
		}
		x->cap = cap;
	}
	x->re[x->n] = re;
	x->flags[x->n] = flags;
	x->ids[x->n] = (unsigned)x->n;
	x->line[x->n] = line;
	x->n++;
	return 0;
}

static void exprs_free(struct exprs *x)
{
	for (size_t i = 0; i < x->n; i++)
		free(x->re[i]);
	free(x->re);
	free(x->flags);
	free(x->ids);
	free(x->line);
}

static bool is_word(unsigned char c)
{
	return isalnum(c) || c == '_';
}

/* A literal word or phrase as a pattern: bytes other than letters and
 * digits escaped as \xHH, runs of spaces as \s+, and \b where the phrase
 * starts or ends with a word character, so "ion" does not hit "lion". */
static char *literal_regex(const char *w)
{
	size_t n = strlen(w);
	char *re = malloc(4 * n + 8), *o = re;

	if (!re)
		return NULL;
	if (is_word((unsigned char)w[0]))
		o += sprintf(o, "\\b");
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)w[i];
		if (c == ' ') {
			while (w[i + 1] == ' ')
				i++;
			o += sprintf(o, "\\s+");
		} else if (isalnum(c)) {
			*o++ = (char)c;
		} else {
			o += sprintf(o, "\\x%02x", c);
		}
	}
	if (n && is_word((unsigned char)w[n - 1]))
		o += sprintf(o, "\\b");
	*o = '\0';
	return re;
}

static int pats_add(struct guard_policy *p, size_t *cap, struct guard_pat pat)
{
	if (p->npats == *cap) {
		size_t c = *cap ? 2 * *cap : 64;
		struct guard_pat *np = realloc(p->pats, c * sizeof(*np));
		if (!np)
			return -ENOMEM;
		p->pats = np;
		*cap = c;
	}
	p->pats[p->npats++] = pat;
	return 0;
}

/* One word list (custom words or topic keywords) as one pattern each. */
static int add_words(struct guard_policy *p, struct exprs *x, size_t *cap, char **words,
		     size_t n, struct guard_pat pat, unsigned line)
{
	for (size_t i = 0; i < n; i++) {
		if (!words[i][0])
			continue;
		int err = exprs_add(x, literal_regex(words[i]), HS_FLAG_CASELESS, line);
		if (!err)
			err = pats_add(p, cap, pat);
		if (err)
			return err;
	}
	return 0;
}

static int add_builtins(struct guard_policy *p, const struct guard_policy_spec *spec,
			struct exprs *x, size_t *cap)
{
	for (size_t i = 0; i < guard_builtin_npatterns; i++) {
		const struct guard_builtin_pattern *b = &guard_builtin_patterns[i];
		enum guard_action a = spec->detect[b->entity];
		if (a == GUARD_OFF)
			continue;
		int err = exprs_add(x, strdup(b->regex), b->flags, 0);
		if (!err)
			err = pats_add(p, cap, (struct guard_pat){ .entity = b->entity,
				.action = (uint8_t)a, .validate = b->validate, .start = b->start });
		if (err)
			return err;
	}
	return 0;
}

/* "[PROJECT_CODENAME]" for custom rule project_codename. */
static char *placeholder_of(const char *name)
{
	size_t n = strlen(name);
	char *s = malloc(n + 3);

	if (!s)
		return NULL;
	s[0] = '[';
	for (size_t i = 0; i < n; i++)
		s[i + 1] = (char)toupper((unsigned char)name[i]);
	s[n + 1] = ']';
	s[n + 2] = '\0';
	return s;
}

static int add_customs(struct guard_policy *p, const struct guard_policy_spec *spec,
		       struct exprs *x, size_t *cap)
{
	for (size_t i = 0; i < spec->ncustom; i++) {
		const struct guard_custom_spec *c = &spec->custom[i];
		unsigned e = GUARD_CUSTOM0 + (unsigned)i;
		struct guard_pat pat = { .entity = (uint16_t)e, .action = (uint8_t)c->action };
		int err = 0;

		p->action[e] = c->action;
		if (!(p->names[e] = strdup(c->name)) || !(p->placeholder[e] = placeholder_of(c->name)))
			return -ENOMEM;
		p->placeholder_len[e] = strlen(p->placeholder[e]);
		if (c->regex) {
			err = exprs_add(x, strdup(c->regex), 0, c->line);
			if (!err)
				err = pats_add(p, cap, pat);
		}
		if (!err)
			err = add_words(p, x, cap, c->words, c->nwords, pat, c->line);
		if (err)
			return err;
	}
	return 0;
}

/* How far back a match of an unbounded pattern is looked for: the
 * longest e-mail address, a generous secret, a long injection phrase. */
static uint32_t span_default(unsigned entity)
{
	switch (entity) {
	case GUARD_EMAIL: return 320;
	case GUARD_SECRETS: return 1024;
	case GUARD_PROMPT_INJECTION: return 256;
	default: return 1024;
	}
}

/*
 * The scan runs the all-patterns database without start-of-match, which
 * Hyperscan runs several times faster; only where it reported an end is
 * the one pattern run again with leftmost start, over the few hundred
 * bytes before that end (its longest match, from Hyperscan's own width
 * analysis, or span_default for an unbounded one).
 */
static int build_som(struct guard_policy *p, const struct exprs *x, char *why, size_t whylen,
		     unsigned *bad_line)
{
	for (size_t i = 0; i < x->n; i++) {
		hs_database_t *db = NULL;
		hs_compile_error_t *ce = NULL;
		hs_expr_info_t *info = NULL;
		struct guard_pat *pat = &p->pats[i];

		if (pat->start)
			continue;
		if (hs_compile(x->re[i], x->flags[i] | HS_FLAG_SOM_LEFTMOST, HS_MODE_BLOCK, NULL,
			       &db, &ce) != HS_SUCCESS) {
			*bad_line = x->line[i];
			snprintf(why, whylen, "Hyperscan refused /%s/ with start of match: %s",
				 x->re[i], ce ? ce->message : "compile failed");
			hs_free_compile_error(ce);
			return -EINVAL;
		}
		pat->som_db = db;
		pat->span = span_default(pat->entity);
		if (hs_expression_info(x->re[i], x->flags[i], &info, &ce) == HS_SUCCESS) {
			if (info->max_width != UINT_MAX && info->max_width < pat->span)
				pat->span = info->max_width;
			free(info);
		} else {
			hs_free_compile_error(ce);
		}
	}
	return 0;
}

/*
 * Which database a pattern goes into.  Hyperscan scans a database of
 * literal-led patterns (e-mail's '@', key prefixes) at tens of GB/s, and
 * one of digit-led patterns at a few, but a database mixing digit-led
 * patterns with letter- or hex-led ones (IBAN, IPv6) drops below
 * 0.5 GB/s on prose: it can no longer skip the bytes no pattern can
 * start on (measured with tools/guardbench).  So the patterns go into a
 * few databases of one kind each, a pass per database.
 */
static unsigned group_of(const struct guard_pat *pat, const char *re)
{
	switch (pat->entity) {
	case GUARD_EMAIL:
	case GUARD_SECRETS:
		return GUARD_GROUP_LITERAL;
	case GUARD_PHONE:
	case GUARD_CREDIT_CARD:
	case GUARD_US_SSN:
		return GUARD_GROUP_DIGITS;
	case GUARD_IP_ADDRESS:
		return strstr(re, "A-Fa-f") ? GUARD_GROUP_HEX : GUARD_GROUP_DIGITS;
	case GUARD_IBAN:
		return GUARD_GROUP_IBAN;
	case GUARD_PROMPT_INJECTION:
		return GUARD_GROUP_PHRASES;
	default:
		return GUARD_GROUP_WORDS;
	}
}

/* Compile group g's patterns (ids are their global index) into p->dbs[g]. */
static int build_group(struct guard_policy *p, const struct exprs *x, unsigned g, char *why,
		       size_t whylen, unsigned *bad_line)
{
	const char **re = calloc(x->n, sizeof(*re));
	unsigned *flags = calloc(x->n, sizeof(*flags)), *ids = calloc(x->n, sizeof(*ids));
	unsigned n = 0;
	int err = 0;

	if (!re || !flags || !ids) {
		err = -ENOMEM;
		snprintf(why, whylen, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < x->n; i++) {
		if (group_of(&p->pats[i], x->re[i]) != g)
			continue;
		re[n] = x->re[i];
		flags[n] = x->flags[i];
		ids[n++] = (unsigned)i;
	}
	hs_database_t *db = NULL;
	hs_compile_error_t *ce = NULL;
	if (n && hs_compile_multi(re, flags, ids, n, HS_MODE_BLOCK, NULL, &db, &ce) != HS_SUCCESS) {
		if (ce && ce->expression >= 0 && (unsigned)ce->expression < n) {
			*bad_line = x->line[ids[ce->expression]];
			snprintf(why, whylen, "Hyperscan refused /%s/: %s", re[ce->expression],
				 ce->message);
		} else {
			snprintf(why, whylen, "Hyperscan: %s", ce ? ce->message : "compile failed");
		}
		hs_free_compile_error(ce);
		err = -EINVAL;
	}
	p->dbs[g] = db;
	if (db && !p->db)
		p->db = db;
out:
	free(re);
	free(flags);
	free(ids);
	return err;
}

static int build(struct guard_policy *p, const struct guard_policy_spec *spec,
		 struct exprs *x, char *why, size_t whylen, unsigned *bad_line)
{
	size_t cap = 0;
	int err;

	if (spec->ncustom > GUARD_CUSTOM_MAX) {
		snprintf(why, whylen, "at most %d custom rules", GUARD_CUSTOM_MAX);
		return -EINVAL;
	}
	for (unsigned e = 0; e < GUARD_BUILTIN_N; e++)
		p->action[e] = spec->detect[e];
	p->action[GUARD_TOPIC] = spec->topics_action;
	for (unsigned e = 0; e <= GUARD_TOPIC; e++) {
		p->placeholder[e] = strdup(builtin_placeholders[e]);
		if (!p->placeholder[e])
			return -ENOMEM;
		p->placeholder_len[e] = strlen(builtin_placeholders[e]);
	}
	err = add_builtins(p, spec, x, &cap);
	if (!err)
		err = add_customs(p, spec, x, &cap);
	if (!err && spec->topics_action != GUARD_OFF)
		err = add_words(p, x, &cap, spec->topics_deny, spec->ntopics_deny,
				(struct guard_pat){ .entity = GUARD_TOPIC,
				.action = (uint8_t)spec->topics_action }, 0);
	if (!err && spec->topics_action != GUARD_OFF)
		err = add_words(p, x, &cap, spec->topics_allow, spec->ntopics_allow,
				(struct guard_pat){ .entity = GUARD_TOPIC, .allow = true }, 0);
	p->has_allow = spec->ntopics_allow > 0 && spec->topics_action != GUARD_OFF;
	if (err) {
		snprintf(why, whylen, "out of memory");
		return err;
	}
	if (x->n == 0)
		return 0;

	for (unsigned g = 0; g < GUARD_GROUPS; g++) {
		int e = build_group(p, x, g, why, whylen, bad_line);
		if (e)
			return e;
	}
	return build_som(p, x, why, whylen, bad_line);
}

int guard_policy_compile(const struct guard_policy_spec *spec, struct guard_policy **out,
			 char *why, size_t whylen, unsigned *bad_line)
{
	struct guard_policy *p = calloc(1, sizeof(*p));
	struct exprs x = { 0 };
	int err;

	*out = NULL;
	*bad_line = 0;
	if (!p || !(p->name = strdup(spec->name ? spec->name : "default"))) {
		free(p);
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	p->response = spec->response;
	p->hold_back = spec->hold_back;
	err = build(p, spec, &x, why, whylen, bad_line);
	exprs_free(&x);
	if (err) {
		guard_policy_free(p);
		return err;
	}
	*out = p;
	return 0;
}

void guard_policy_free(struct guard_policy *p)
{
	if (!p)
		return;
	for (unsigned g = 0; g < GUARD_GROUPS; g++)
		hs_free_database(p->dbs[g]);
	for (size_t i = 0; i < p->npats; i++)
		hs_free_database(p->pats[i].som_db);
	for (unsigned e = 0; e < GUARD_ENTITY_MAX; e++) {
		free(p->names[e]);
		free(p->placeholder[e]);
	}
	free(p->pats);
	free(p->name);
	free(p);
}

static void strings_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void guard_policy_spec_free(struct guard_policy_spec *spec)
{
	for (size_t i = 0; i < spec->ncustom; i++) {
		free(spec->custom[i].name);
		free(spec->custom[i].regex);
		strings_free(spec->custom[i].words, spec->custom[i].nwords);
	}
	free(spec->custom);
	strings_free(spec->topics_deny, spec->ntopics_deny);
	strings_free(spec->topics_allow, spec->ntopics_allow);
	free(spec->name);
	memset(spec, 0, sizeof(*spec));
}
