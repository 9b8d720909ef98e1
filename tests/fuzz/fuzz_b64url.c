/* SPDX-License-Identifier: Apache-2.0 */
/*
 * base64url (auth/b64url.h), both ways.
 *
 * Properties:
 * - the input read as text: what decodes (with and without padding
 *   allowed) encodes back to the same text (minus its padding), so every
 *   byte string has one accepted encoding; what is refused is outside the
 *   alphabet, of a length no encoder writes, or has unused bits set;
 *   a buffer one byte short gives -ENOSPC and a prefix of the bytes;
 * - the input read as bytes: it encodes to B64URL_ENCODED_LEN characters
 *   of the alphabet, NUL-terminated, that decode back to the same bytes;
 *   a buffer without room for the NUL gives -ENOSPC.
 */
#include <errno.h>

#include "auth/b64url.h"
#include "fuzz.h"

static int sextet(unsigned char c)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	const char *p = c ? memchr(alphabet, c, 64) : NULL;
	return p ? (int)(p - alphabet) : -1;
}

/* Why a decoder must refuse text[0..len) (no padding): a reference
 * written apart from the decoder. */
static bool must_refuse(const char *text, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (sextet((unsigned char)text[i]) < 0)
			return true;
	if (len % 4 == 1)
		return true;
	if (len % 4 == 2)
		return (sextet((unsigned char)text[len - 1]) & 0x0f) != 0;
	if (len % 4 == 3)
		return (sextet((unsigned char)text[len - 1]) & 0x03) != 0;
	return false;
}

/* Padding an encoder writes: one or two '=' that complete a group of 4. */
static size_t valid_padding(const char *text, size_t len)
{
	size_t pad = 0;

	while (pad < len && pad < 3 && text[len - 1 - pad] == '=')
		pad++;
	if (pad == 0 || pad > 2 || len % 4 != 0 || (len - pad) % 4 != 4 - pad)
		return 0;
	return pad;
}

static void check_decode(const char *text, size_t len, unsigned flags)
{
	size_t cap = B64URL_DECODED_MAX(len), n = SIZE_MAX;
	unsigned char *out = malloc(cap ? cap : 1);
	int rc = b64url_decode(text, len, out, cap, &n, flags);
	size_t pad = (flags & B64URL_ALLOW_PAD) ? valid_padding(text, len) : 0;
	size_t body = len - pad;

	FUZZ_CHECK(rc == 0 || rc == -EINVAL, "decode into a buffer of the maximum size: %d", rc);
	FUZZ_CHECK((rc == 0) == !must_refuse(text, body), "decode said %d for %.*s (flags %u)",
		   rc, (int)len, text, flags);
	if (rc) {
		free(out);
		return;
	}
	FUZZ_CHECK(n <= cap && n == body / 4 * 3 + (body % 4 ? body % 4 - 1 : 0), "length %zu", n);

	/* One accepted encoding: the bytes encode back to the same text. */
	char *again = malloc(B64URL_ENCODED_LEN(n) + 1);
	FUZZ_CHECK(b64url_encode(out, n, again, B64URL_ENCODED_LEN(n) + 1) == (int)body &&
		   memcmp(again, text, body) == 0, "%.*s decodes and encodes as %s",
		   (int)len, text, again);
	free(again);

	/* One byte short: -ENOSPC and a prefix. */
	if (n > 0) {
		unsigned char *small = malloc(n - 1 ? n - 1 : 1);
		size_t m = SIZE_MAX;
		FUZZ_CHECK(b64url_decode(text, len, small, n - 1, &m, flags) == -ENOSPC &&
			   m == n - 1 && memcmp(small, out, m) == 0, "short buffer");
		free(small);
	}
	free(out);
}

static void check_encode(const uint8_t *data, size_t size)
{
	size_t need = B64URL_ENCODED_LEN(size);
	char *text = malloc(need + 1);
	int n = b64url_encode(data, size, text, need + 1);

	FUZZ_CHECK(n >= 0 && (size_t)n == need && text[n] == '\0', "encode: %d for %zu", n, size);
	for (int i = 0; i < n; i++)
		FUZZ_CHECK(sextet((unsigned char)text[i]) >= 0, "%c is not base64url", text[i]);
	FUZZ_CHECK(b64url_encode(data, size, text, need) == -ENOSPC, "no room for the NUL");

	unsigned char *back = malloc(size ? size : 1);
	size_t m = SIZE_MAX;
	FUZZ_CHECK(b64url_decode(text, need, back, size, &m, 0) == 0 && m == size &&
		   memcmp(back, data, size) == 0, "round trip of %zu bytes", size);
	free(back);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_dup(data, size);

	check_decode(text, size, 0);
	check_decode(text, size, B64URL_ALLOW_PAD);
	check_encode(data, size);
	free(text);
	return 0;
}
