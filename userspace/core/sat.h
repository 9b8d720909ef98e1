/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Saturating arithmetic for numbers a client or a backend controls: token
 * counts, lengths, times, usage fields, Redis replies.  A sum or product
 * that does not fit sticks at the type's bound instead of wrapping (unsigned)
 * or being undefined (signed), so a hostile `max_tokens` cannot wrap a
 * reservation to zero and a hostile `exp` cannot crash the daemon.
 *   uint64_t ask = sat_mul_u64(max_tokens, n);
 *   if (now >= sat_add_i64(exp, leeway)) ...expired...
 * Signed results saturate symmetrically at +-INT64_MAX, so negating one is
 * always defined.
 */
#ifndef SLUICE_CORE_SAT_H
#define SLUICE_CORE_SAT_H

#include <stdint.h>

static inline uint64_t sat_add_u64(uint64_t a, uint64_t b)
{
	uint64_t r;
	return __builtin_add_overflow(a, b, &r) ? UINT64_MAX : r;
}

static inline uint64_t sat_mul_u64(uint64_t a, uint64_t b)
{
	uint64_t r;
	return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

/* a - b, or 0 when b > a. */
static inline uint64_t sat_sub_u64(uint64_t a, uint64_t b)
{
	return a > b ? a - b : 0;
}

static inline uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static inline int64_t sat_clamp_i64(int64_t v)
{
	return v < -INT64_MAX ? -INT64_MAX : v;
}

static inline int64_t sat_add_i64(int64_t a, int64_t b)
{
	int64_t r;
	if (__builtin_add_overflow(a, b, &r))
		return b > 0 ? INT64_MAX : -INT64_MAX;
	return sat_clamp_i64(r);
}

static inline int64_t sat_sub_i64(int64_t a, int64_t b)
{
	int64_t r;
	if (__builtin_sub_overflow(a, b, &r))
		return b < 0 ? INT64_MAX : -INT64_MAX;
	return sat_clamp_i64(r);
}

/* An unsigned amount as a signed one: INT64_MAX when it is larger. */
static inline int64_t sat_i64_from_u64(uint64_t v)
{
	return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
}

/*
 * Add n to a 64-bit unsigned counter that several threads add to (relaxed
 * atomics): it stops at the maximum instead of wrapping back to small
 * numbers.  A macro so it takes uint64_t and the maps' __u64 alike.
 */
#define SAT_ATOMIC_ADD_U64(p, n)							\
	do {										\
		__typeof__(*(p)) old_ = __atomic_load_n((p), __ATOMIC_RELAXED);		\
		_Static_assert(sizeof(old_) == sizeof(uint64_t), "a 64-bit counter");	\
		while (!__atomic_compare_exchange_n((p), &old_, sat_add_u64(old_, (n)),	\
						    true, __ATOMIC_RELAXED,		\
						    __ATOMIC_RELAXED))			\
			;								\
	} while (0)

#endif
