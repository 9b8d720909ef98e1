/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the libFuzzer targets of tests/fuzz/ share: the prototypes of their
 * entry points, property checks that name the broken property and abort
 * (libFuzzer then keeps the input as a crash artifact), and span checks
 * done on addresses as integers, so a span that escaped its buffer is
 * reported rather than compared with undefined pointer arithmetic.
 */
#ifndef SLUICE_TESTS_FUZZ_H
#define SLUICE_TESTS_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* libFuzzer's entry points.  The Makefile force-includes this header into
 * every target, so a target needs no prototypes of its own. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(cond, ...)								\
	do {										\
		if (!(cond)) {								\
			fprintf(stderr, "%s:%d: property failed: %s: ", __FILE__,	\
				__LINE__, #cond);					\
			fprintf(stderr, __VA_ARGS__);					\
			fputc('\n', stderr);						\
			abort();							\
		}									\
	} while (0)

/* [p, p + n) lies within [base, base + len). */
static inline bool fuzz_inside(const void *p, size_t n, const void *base, size_t len)
{
	uintptr_t a = (uintptr_t)p, b = (uintptr_t)base;
	return a >= b && a - b <= len && n <= len - (a - b);
}

/* A NUL-terminated heap copy of the input (the caller frees it). */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/* An exactly sized heap copy of bytes, so ASan sees any read past them. */
static inline char *fuzz_dup(const void *p, size_t n)
{
	char *s = malloc(n ? n : 1);
	if (!s)
		abort();
	memcpy(s, p, n);
	return s;
}

#endif
