/* SPDX-License-Identifier: Apache-2.0 */
#include "http/forwarded.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

static inline char lower_ascii(char c)
{
	return (unsigned char)(c - 'A') < 26 ? (char)(c | 0x20) : c;
}

/* p[0..n) equals `lower` (lower case) ignoring ASCII case.  Inline, not
 * strncasecmp: this runs for every header of every request. */
static inline bool lower_eq(const char *p, const char *lower, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (lower_ascii(p[i]) != lower[i])
			return false;
	return true;
}

/* "x-forwarded-" is known; what follows it. */
static enum fwd_kind classify_x_forwarded(const char *p, size_t n)
{
	if (n == 15 && lower_eq(p + 12, "for", 3))
		return FWD_XFF;
	if (n == 17 && lower_eq(p + 12, "proto", 5))
		return FWD_XFP;
	return FWD_IDENTITY;
}

/* Called for every header of every request: the first three bytes and
 * the length settle most names without a full compare. */
enum fwd_kind fwd_classify(struct str name)
{
	const char *p = name.p;
	size_t n = name.len;

	if (n < 8)
		return FWD_OTHER;
	switch (lower_ascii(p[0])) {
	case 'f':
		return n == 9 && lower_eq(p, "forwarded", 9) ? FWD_FORWARDED : FWD_OTHER;
	case 't':
		return n == 14 && lower_eq(p, "true-client-ip", 14) ? FWD_IDENTITY : FWD_OTHER;
	case 'x':
		break;
	default:
		return FWD_OTHER;
	}
	if (p[1] != '-')
		return FWD_OTHER;
	switch (lower_ascii(p[2])) {
	case 's':	/* x-sluice, x-sluice-* */
		return lower_eq(p + 3, "luice", 5) && (n == 8 || p[8] == '-') ? FWD_GATEWAY
									 : FWD_OTHER;
	case 'f':
		return n >= 12 && lower_eq(p + 3, "orwarded-", 9) ? classify_x_forwarded(p, n)
								   : FWD_OTHER;
	case 'r':
		return n == 9 && lower_eq(p + 3, "eal-ip", 6) ? FWD_IDENTITY : FWD_OTHER;
	case 'c':
		return n == 11 && lower_eq(p + 3, "lient-ip", 8) ? FWD_IDENTITY : FWD_OTHER;
	default:
		return FWD_OTHER;
	}
}

void fwd_peer_set(struct fwd_peer *p, const uint8_t addr[16])
{
	static const uint8_t v4_mapped[12] = { [10] = 0xff, [11] = 0xff };
	bool v4 = memcmp(addr, v4_mapped, sizeof(v4_mapped)) == 0;

	memcpy(p->addr, addr, sizeof(p->addr));
	if (!inet_ntop(v4 ? AF_INET : AF_INET6, v4 ? addr + 12 : addr, p->text, sizeof(p->text)))
		strcpy(p->text, "unknown");
	p->text_len = (uint8_t)strlen(p->text);
	/* RFC 7239 section 6: an IPv6 node is bracketed, and then quoted,
	 * since ':' and '[' are not token characters. */
	if (v4)
		memcpy(p->node, p->text, (size_t)p->text_len + 1);
	else
		strcat(strcat(strcpy(p->node, "\"["), p->text), "]\"");
	p->node_len = (uint8_t)strlen(p->node);
}

bool fwd_keep_header(enum fwd_kind kind, const struct fwd_params *p)
{
	switch (kind) {
	case FWD_OTHER:
		return true;
	case FWD_GATEWAY:
		return false;
	case FWD_XFF:
		return p->trusted && !p->x_forwarded;
	case FWD_FORWARDED:
		return p->trusted && !p->forwarded;
	case FWD_XFP:
	case FWD_IDENTITY:
		return p->trusted;
	}
	return false;
}

static bool has_kind(const struct http_header *h, size_t n, enum fwd_kind kind)
{
	for (size_t i = 0; i < n; i++)
		if (fwd_classify(h[i].name) == kind)
			return true;
	return false;
}

/* The pieces one after the other, with one reservation. */
static int append_parts(struct buf *b, const struct str *parts, size_t n)
{
	size_t len = 0;
	for (size_t i = 0; i < n; i++)
		len += parts[i].len;
	int err = buf_reserve(b, len);
	if (err)
		return err;
	for (size_t i = 0; i < n; i++) {
		if (!parts[i].len)
			continue;	/* STR_NULL: memcpy wants a pointer even for 0 bytes */
		memcpy(b->data + b->len, parts[i].p, parts[i].len);
		b->len += parts[i].len;
	}
	return 0;
}

/* "Name: " then, from a trusted proxy, the values of every header of
 * `kind` (a list split over several lines is one list, RFC 9110 5.3),
 * then ours. */
static int append_list(struct buf *b, struct str name, const struct http_header *h, size_t n,
		       bool take_theirs, enum fwd_kind kind, struct str ours1, struct str ours2)
{
	const struct str head[] = { name, STR_LIT(": ") };
	const struct str tail[] = { ours1, ours2, STR_LIT("\r\n") };
	int err = append_parts(b, head, 2);
	for (size_t i = 0; !err && take_theirs && i < n; i++) {
		if (!h[i].value.len || fwd_classify(h[i].name) != kind)
			continue;
		const struct str theirs[] = { h[i].value, STR_LIT(", ") };
		err = append_parts(b, theirs, 2);
	}
	return err ? err : append_parts(b, tail, 3);
}

int fwd_append(struct buf *b, const struct http_header *headers, size_t n,
	       const struct fwd_params *p)
{
	struct str proto = p->https ? STR_LIT("https") : STR_LIT("http");
	struct str text = { p->peer->text, p->peer->text_len };
	int err = 0;

	if (p->x_forwarded) {
		err = append_list(b, STR_LIT("X-Forwarded-For"), headers, n, p->trusted, FWD_XFF,
				  text, STR_NULL);
		/* A trusted proxy knows the scheme the client used; we only
		 * know the one between it and us. */
		const struct str xfp[] = { STR_LIT("X-Forwarded-Proto: "), proto, STR_LIT("\r\n") };
		if (!err && !(p->trusted && has_kind(headers, n, FWD_XFP)))
			err = append_parts(b, xfp, 3);
	}
	if (!err && p->forwarded) {
		/* for= and proto= of this hop, after a trusted proxy's hops. */
		char elem[4 + sizeof(p->peer->node) + 7];
		memcpy(elem, "for=", 4);
		memcpy(elem + 4, p->peer->node, p->peer->node_len);
		memcpy(elem + 4 + p->peer->node_len, ";proto=", 7);
		struct str e = { elem, 4 + (size_t)p->peer->node_len + 7 };
		err = append_list(b, STR_LIT("Forwarded"), headers, n, p->trusted, FWD_FORWARDED,
				  e, proto);
	}
	if (!err && p->tenant.len) {
		const struct str tenant[] = { STR_LIT("x-sluice-tenant: "), p->tenant,
					      STR_LIT("\r\n") };
		err = append_parts(b, tenant, 3);
	}
	return err;
}
