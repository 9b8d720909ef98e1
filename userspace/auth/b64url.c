/* SPDX-License-Identifier: Apache-2.0 */
#include "auth/b64url.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>

static const char alphabet[64] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Value of one base64url character, or -1. */
static int sextet(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/* Strip padding when allowed: only whole-group padding of one or two '='
 * that leaves a length of 2 or 3 in the last group is what an encoder
 * writes. */
static int strip_padding(const char *src, size_t *len, unsigned flags)
{
	size_t n = *len, pad = 0;

	while (pad < n && src[n - 1 - pad] == '=')
		pad++;
	if (pad == 0)
		return 0;
	if (!(flags & B64URL_ALLOW_PAD) || pad > 2 || n % 4 != 0 ||
	    (n - pad) % 4 != 4 - pad)
		return -EINVAL;
	*len = n - pad;
	return 0;
}

int b64url_decode(const char *src, size_t len, void *dst, size_t cap,
		  size_t *outlen, unsigned flags)
{
	unsigned char *out = dst;
	uint32_t acc = 0;
	size_t o = 0;
	int bits = 0;

	*outlen = 0;
	if (strip_padding(src, &len, flags))
		return -EINVAL;
	if (len % 4 == 1)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		int v = sextet((unsigned char)src[i]);

		if (v < 0)
			return -EINVAL;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o == cap) {
				*outlen = o;
				return -ENOSPC;
			}
			out[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/* The 2 or 4 bits left over must be zero: otherwise two encodings
	 * would decode to the same bytes. */
	if (acc != 0)
		return -EINVAL;
	*outlen = o;
	return 0;
}

int b64url_encode(const void *src, size_t len, char *dst, size_t cap)
{
	const unsigned char *in = src;
	size_t need, o = 0, i = 0;

	if (len > (size_t)INT_MAX / 4 * 3)
		return -ENOSPC;
	need = B64URL_ENCODED_LEN(len);
	if (cap < need + 1)
		return -ENOSPC;
	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

		dst[o++] = alphabet[v >> 18];
		dst[o++] = alphabet[(v >> 12) & 63];
		dst[o++] = alphabet[(v >> 6) & 63];
		dst[o++] = alphabet[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;

		dst[o++] = alphabet[v >> 18];
		dst[o++] = alphabet[(v >> 12) & 63];
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;

		dst[o++] = alphabet[v >> 18];
		dst[o++] = alphabet[(v >> 12) & 63];
		dst[o++] = alphabet[(v >> 6) & 63];
	}
	dst[o] = '\0';
	return (int)o;
}
