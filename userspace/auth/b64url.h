/* SPDX-License-Identifier: Apache-2.0 */
/*
 * base64url (RFC 4648 section 5), as JOSE uses it: the URL-safe alphabet
 * without padding.  Both directions write into the caller's buffer and never
 * allocate, so a token can be decoded on the request path into stack memory.
 */
#ifndef SLUICE_AUTH_B64URL_H
#define SLUICE_AUTH_B64URL_H

#include <stddef.h>

/* Bytes that decoding n characters can produce at most. */
#define B64URL_DECODED_MAX(n) (((n) / 4) * 3 + 2)
/* Characters (no padding, no NUL) that encoding n bytes produces. */
#define B64URL_ENCODED_LEN(n) (((n) / 3) * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))

/* Accept trailing '=' padding (JWKS documents sometimes carry it). */
#define B64URL_ALLOW_PAD 1u

/*
 * Decode src[0..len) into dst[0..cap), setting *outlen.  Refuses (-EINVAL)
 * any character outside A-Z a-z 0-9 '-' '_', a length no encoding produces
 * (4k + 1), and unused low bits that are not zero, so every byte string has
 * exactly one accepted encoding.  With B64URL_ALLOW_PAD, '=' padding is
 * accepted at the end when it is exactly what the data needs.  -ENOSPC when
 * dst is too small (dst then holds a prefix).
 */
int b64url_decode(const char *src, size_t len, void *dst, size_t cap,
		  size_t *outlen, unsigned flags);

/*
 * Encode src[0..len) into dst without padding and NUL-terminate it.
 * Returns the number of characters written (without the NUL), or -ENOSPC
 * when cap < B64URL_ENCODED_LEN(len) + 1 (dst untouched).
 */
int b64url_encode(const void *src, size_t len, char *dst, size_t cap);

#endif
