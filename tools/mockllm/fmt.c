/* SPDX-License-Identifier: Apache-2.0 */
#include "fmt.h"

static const char hex_digits[] = "0123456789abcdef";

int fmt_u64(struct buf *b, uint64_t v)
{
	char tmp[20];
	size_t i = sizeof(tmp);

	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	return buf_append(b, tmp + i, sizeof(tmp) - i);
}

int fmt_hex16(struct buf *b, uint64_t v)
{
	char tmp[16];

	for (int i = 15; i >= 0; i--, v >>= 4)
		tmp[i] = hex_digits[v & 15];
	return buf_append(b, tmp, sizeof(tmp));
}

int fmt_hex(struct buf *b, uint64_t v)
{
	char tmp[16];
	size_t i = sizeof(tmp);

	do {
		tmp[--i] = hex_digits[v & 15];
		v >>= 4;
	} while (v);
	return buf_append(b, tmp + i, sizeof(tmp) - i);
}
