/* SPDX-License-Identifier: Apache-2.0 */
#include "http/forwarded.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>

static bool case_prefix(struct str s, const char *prefix, size_t n)
{
	return s.len >= n && strncasecmp(s.p, prefix, n) == 0;
}

/* Called for every header of every request: one look at the first byte
 * settles most names. */
enum fwd_kind fwd_classify(struct str name)
{
	if (name.len < 8)
		return FWD_OTHER;
	switch (name.p[0] | 0x20) {
	case 'f':
		return str_case_eq_cstr(name, "forwarded") ? FWD_FORWARDED : FWD_OTHER;
	case 't':
		return str_case_eq_cstr(name, "true-client-ip") ? FWD_IDENTITY : FWD_OTHER;
	case 'x':
		break;
	default:
		return FWD_OTHER;
	}
	if (case_prefix(name, "x-sluice", 8) && (name.len == 8 || name.p[8] == '-'))
		return FWD_GATEWAY;
	if (case_prefix(name, "x-forwarded-", 12)) {
		if (str_case_eq_cstr(name, "x-forwarded-for"))
			return FWD_XFF;
		if (str_case_eq_cstr(name, "x-forwarded-proto"))
			return FWD_XFP;
		return FWD_IDENTITY;
	}
	if (str_case_eq_cstr(name, "x-real-ip") || str_case_eq_cstr(name, "x-client-ip"))
		return FWD_IDENTITY;
	return FWD_OTHER;
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

/* "Name: " then, from a trusted proxy, the values of every header of
 * `kind` (a list split over several lines is one list, RFC 9110 5.3),
 * then ours. */
static int append_list(struct buf *b, struct str name, const struct http_header *h, size_t n,
		       bool take_theirs, enum fwd_kind kind, struct str ours1, struct str ours2)
{
	int err = buf_append_str(b, name);
	if (!err)
		err = buf_append_str(b, STR_LIT(": "));
	for (size_t i = 0; !err && take_theirs && i < n; i++) {
		if (!h[i].value.len || fwd_classify(h[i].name) != kind)
			continue;
		if (!(err = buf_append_str(b, h[i].value)))
			err = buf_append_str(b, STR_LIT(", "));
	}
	if (!err && !(err = buf_append_str(b, ours1)) && !(err = buf_append_str(b, ours2)))
		err = buf_append_str(b, STR_LIT("\r\n"));
	return err;
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
		if (!err && !(p->trusted && has_kind(headers, n, FWD_XFP)) &&
		    !(err = buf_append_str(b, STR_LIT("X-Forwarded-Proto: "))) &&
		    !(err = buf_append_str(b, proto)))
			err = buf_append_str(b, STR_LIT("\r\n"));
	}
	if (!err && p->forwarded) {
		/* for= and proto= of this hop, after a trusted proxy's hops. */
		char elem[sizeof(p->peer->node) + 16];
		size_t len = 0;
		memcpy(elem, "for=", 4);
		len += 4;
		memcpy(elem + len, p->peer->node, p->peer->node_len);
		len += p->peer->node_len;
		memcpy(elem + len, ";proto=", 7);
		len += 7;
		err = append_list(b, STR_LIT("Forwarded"), headers, n, p->trusted, FWD_FORWARDED,
				  (struct str){ elem, len }, proto);
	}
	if (!err && p->tenant.len && !(err = buf_append_str(b, STR_LIT("x-sluice-tenant: "))) &&
	    !(err = buf_append_str(b, p->tenant)))
		err = buf_append_str(b, STR_LIT("\r\n"));
	return err;
}
