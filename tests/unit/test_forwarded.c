/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/forwarded.h"

static const uint8_t v4_peer[16] = { [10] = 0xff, [11] = 0xff, 192, 0, 2, 7 };
static const uint8_t v6_peer[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 0x01 };

static enum fwd_kind kind(const char *name)
{
	return fwd_classify(str_from(name));
}

static void test_classify(void **state)
{
	(void)state;
	assert_int_equal(kind("X-Forwarded-For"), FWD_XFF);
	assert_int_equal(kind("x-forwarded-for"), FWD_XFF);
	assert_int_equal(kind("X-FORWARDED-PROTO"), FWD_XFP);
	assert_int_equal(kind("x-forwarded-host"), FWD_IDENTITY);
	assert_int_equal(kind("X-Forwarded-Port"), FWD_IDENTITY);
	assert_int_equal(kind("Forwarded"), FWD_FORWARDED);
	assert_int_equal(kind("x-real-ip"), FWD_IDENTITY);
	assert_int_equal(kind("X-Client-IP"), FWD_IDENTITY);
	assert_int_equal(kind("True-Client-IP"), FWD_IDENTITY);
	assert_int_equal(kind("x-sluice-tenant"), FWD_GATEWAY);
	assert_int_equal(kind("X-Sluice-Anything"), FWD_GATEWAY);
	assert_int_equal(kind("x-sluice"), FWD_GATEWAY);
	assert_int_equal(kind("X-REAL-IP"), FWD_IDENTITY);
	assert_int_equal(kind("x-Forwarded-FOR"), FWD_XFF);
	assert_int_equal(kind("x-forwarded-fort"), FWD_IDENTITY);
	assert_int_equal(kind("X-SLUICE-TENANT"), FWD_GATEWAY);
	assert_int_equal(kind("FORWARDED"), FWD_FORWARDED);
	assert_int_equal(kind("TRUE-CLIENT-IP"), FWD_IDENTITY);
	/* Lookalikes are ordinary headers. */
	assert_int_equal(kind("xsluice-tenant"), FWD_OTHER);
	assert_int_equal(kind("x-sluicer"), FWD_OTHER);
	assert_int_equal(kind("x-client-ips"), FWD_OTHER);
	assert_int_equal(kind("X-Stainless-Lang"), FWD_OTHER);
	assert_int_equal(kind("x-forwardedfor"), FWD_OTHER);
	assert_int_equal(kind("x-sluicex"), FWD_OTHER);
	assert_int_equal(kind("forwarded-by"), FWD_OTHER);
	assert_int_equal(kind("x-forwarded"), FWD_OTHER);
	assert_int_equal(kind("x-real-ipv6"), FWD_OTHER);
	assert_int_equal(kind("Content-Type"), FWD_OTHER);
	assert_int_equal(kind("x-mock-tokens"), FWD_OTHER);
	assert_int_equal(kind("te"), FWD_OTHER);
	assert_int_equal(kind(""), FWD_OTHER);
}

static void test_peer_text(void **state)
{
	struct fwd_peer p;

	(void)state;
	fwd_peer_set(&p, v4_peer);
	assert_string_equal(p.text, "192.0.2.7");
	assert_int_equal(p.text_len, 9);
	assert_string_equal(p.node, "192.0.2.7");
	assert_int_equal(p.node_len, 9);
	assert_memory_equal(p.addr, v4_peer, 16);

	fwd_peer_set(&p, v6_peer);
	assert_string_equal(p.text, "2001:db8::1");
	/* RFC 7239 section 6: bracketed and quoted. */
	assert_string_equal(p.node, "\"[2001:db8::1]\"");
	assert_int_equal(p.node_len, strlen("\"[2001:db8::1]\""));

	/* The longest IPv6 text fits. */
	uint8_t full[16];
	memset(full, 0xab, sizeof(full));
	fwd_peer_set(&p, full);
	assert_string_equal(p.text, "abab:abab:abab:abab:abab:abab:abab:abab");
	assert_string_equal(p.node, "\"[abab:abab:abab:abab:abab:abab:abab:abab]\"");
}

static void test_keep_header(void **state)
{
	struct fwd_params untrusted = { .x_forwarded = true, .forwarded = true };
	struct fwd_params trusted = { .trusted = true, .x_forwarded = true };
	struct fwd_params trusted_none = { .trusted = true };

	(void)state;
	assert_true(fwd_keep_header(FWD_OTHER, &untrusted));
	for (enum fwd_kind k = FWD_XFF; k <= FWD_GATEWAY; k++)
		assert_false(fwd_keep_header(k, &untrusted));
	/* A trusted proxy's XFF comes back inside ours; its Forwarded stays
	 * as it is when we write none; x-sluice-* never passes. */
	assert_false(fwd_keep_header(FWD_XFF, &trusted));
	assert_true(fwd_keep_header(FWD_XFP, &trusted));
	assert_true(fwd_keep_header(FWD_FORWARDED, &trusted));
	assert_true(fwd_keep_header(FWD_IDENTITY, &trusted));
	assert_false(fwd_keep_header(FWD_GATEWAY, &trusted));
	assert_true(fwd_keep_header(FWD_XFF, &trusted_none));
	assert_false(fwd_keep_header(FWD_GATEWAY, &trusted_none));
}

#define H(n, v) { STR_LIT(n), STR_LIT(v) }

static const struct http_header client_headers[] = {
	H("Content-Type", "application/json"),
	H("X-Forwarded-For", "203.0.113.9, 10.1.1.1"),
	H("x-forwarded-proto", "https"),
	H("Forwarded", "for=203.0.113.9;proto=https"),
	H("x-sluice-tenant", "admin"),
	H("X-Forwarded-For", "10.2.2.2"),
	H("x-forwarded-for", ""),
};
#define NCLIENT (sizeof(client_headers) / sizeof(client_headers[0]))

static void append_and_check(const struct fwd_params *p, const struct http_header *h, size_t n,
			     const char *want)
{
	struct buf b = { 0 };

	assert_int_equal(fwd_append(&b, h, n, p), 0);
	assert_int_equal(buf_used(&b), strlen(want));
	assert_memory_equal(buf_head(&b), want, strlen(want));
	buf_free(&b);
}

static void test_append_untrusted(void **state)
{
	struct fwd_peer peer;
	fwd_peer_set(&peer, v4_peer);
	struct fwd_params p = { .peer = &peer, .x_forwarded = true };

	(void)state;
	/* Whatever the client wrote, only the peer. */
	append_and_check(&p, client_headers, NCLIENT,
			 "X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\n");
	p.https = true;
	p.forwarded = true;
	p.tenant = STR_LIT("acme");
	append_and_check(&p, client_headers, NCLIENT,
			 "X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: https\r\n"
			 "Forwarded: for=192.0.2.7;proto=https\r\nx-sluice-tenant: acme\r\n");
	p.x_forwarded = p.forwarded = false;
	append_and_check(&p, client_headers, NCLIENT, "x-sluice-tenant: acme\r\n");
	p.tenant = STR_NULL;
	append_and_check(&p, client_headers, NCLIENT, "");
}

static void test_append_trusted(void **state)
{
	struct fwd_peer peer;
	fwd_peer_set(&peer, v6_peer);
	struct fwd_params p = { .peer = &peer, .trusted = true, .x_forwarded = true,
				.forwarded = true };

	(void)state;
	/* The proxy's list (over two lines, an empty one skipped), then the
	 * peer; its scheme kept; its Forwarded hops, then ours. */
	append_and_check(&p, client_headers, NCLIENT,
			 "X-Forwarded-For: 203.0.113.9, 10.1.1.1, 10.2.2.2, 2001:db8::1\r\n"
			 "Forwarded: for=203.0.113.9;proto=https, "
			 "for=\"[2001:db8::1]\";proto=http\r\n");
	/* A proxy that sent none of them. */
	append_and_check(&p, client_headers, 1,
			 "X-Forwarded-For: 2001:db8::1\r\nX-Forwarded-Proto: http\r\n"
			 "Forwarded: for=\"[2001:db8::1]\";proto=http\r\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_peer_text),
		cmocka_unit_test(test_keep_header),
		cmocka_unit_test(test_append_untrusted),
		cmocka_unit_test(test_append_trusted),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
