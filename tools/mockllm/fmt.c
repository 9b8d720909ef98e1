/* SPDX-License-Identifier: Apache-2.0 */
#include "fmt.h"

static const char hex_digits[] = "0123456789abcdef";

int fmt_hex16(struct buf *b, uint64_t v)
{
	char tmp[16];

	for (int i = 15; i >= 0; i--, v >>= 4)
		tmp[i] = hex_digits[v & 15];
	return buf_append(b, tmp, sizeof(tmp));
}
