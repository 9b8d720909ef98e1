/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Appending text and numbers to a struct buf without printf: responses are
 * built on every request, and format-string parsing was a visible part of
 * the cost of one.
 */
#ifndef MOCKLLM_FMT_H
#define MOCKLLM_FMT_H

#include <stdint.h>
#include <string.h>

#include "core/buf.h"

/* A string literal, its length known at compile time. */
#define fmt_lit(b, s) buf_append((b), "" s, sizeof(s) - 1)

int fmt_hex16(struct buf *b, uint64_t v);	/* exactly 16 lowercase digits */

#endif
