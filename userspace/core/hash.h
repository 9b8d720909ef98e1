/* SPDX-License-Identifier: Apache-2.0 */
/* FNV-1a, 64-bit: small, no tables, good enough for names in open-addressed
 * tables.  Chain it over several fields by passing the last result back. */
#ifndef SLUICE_CORE_HASH_H
#define SLUICE_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>

#define FNV1A64_INIT UINT64_C(14695981039346656037)

static inline uint64_t fnv1a64(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * UINT64_C(1099511628211);
	return h;
}

#endif
