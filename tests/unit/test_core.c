/* SPDX-License-Identifier: Apache-2.0 */
/* Buffers, the buffer pool, output chains, timer lists and saturating arithmetic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/buf.h"
#include "core/chain.h"
#include "core/sat.h"
#include "loop/timer.h"

static void buf_append_consume_compact(void **state)
{
	(void)state;
	struct buf b = { 0 };
	assert_int_equal(buf_append(&b, "hello world", 11), 0);
	buf_consume(&b, 6);
	assert_int_equal(buf_used(&b), 5);
	assert_memory_equal(buf_head(&b), "world", 5);
	buf_compact(&b);
	assert_int_equal(b.off, 0);
	assert_memory_equal(b.data, "world", 5);
	buf_consume(&b, 5);
	assert_int_equal(b.off, 0);
	assert_int_equal(b.len, 0);
	buf_free(&b);
}

static void buf_numbers(void **state)
{
	(void)state;
	struct buf b = { 0 };
	assert_int_equal(buf_append_u64(&b, 0), 0);
	assert_int_equal(buf_append(&b, " ", 1), 0);
	assert_int_equal(buf_append_u64(&b, 18446744073709551615ull), 0);
	assert_int_equal(buf_append(&b, " ", 1), 0);
	assert_int_equal(buf_append_hex(&b, 0x1f40), 0);
	assert_int_equal(buf_append(&b, " ", 1), 0);
	assert_int_equal(buf_append_hex(&b, 0), 0);
	const char want[] = "0 18446744073709551615 1f40 0";
	assert_int_equal(buf_used(&b), sizeof(want) - 1);
	assert_memory_equal(buf_head(&b), want, sizeof(want) - 1);
	buf_free(&b);
}

static void buf_grows_and_keeps_bytes(void **state)
{
	(void)state;
	struct buf b = { 0 };
	char chunk[1000];
	for (size_t i = 0; i < sizeof(chunk); i++)
		chunk[i] = (char)i;
	for (int i = 0; i < 100; i++)
		assert_int_equal(buf_append(&b, chunk, sizeof(chunk)), 0);
	assert_int_equal(buf_used(&b), 100000);
	for (int i = 0; i < 100; i++)
		assert_memory_equal(buf_head(&b) + i * 1000, chunk, 1000);
	/* Reserving after consuming slides instead of growing when it fits. */
	size_t cap = b.cap;
	buf_consume(&b, 99000);
	assert_int_equal(buf_reserve(&b, cap - 2000), 0);
	assert_int_equal(b.cap, cap);
	assert_memory_equal(buf_head(&b), chunk, 1000);
	buf_free(&b);
}

static void pool_reuses_standard_buffers(void **state)
{
	(void)state;
	struct buf_pool pool;
	assert_int_equal(buf_pool_init(&pool, 4096, 2), 0);
	struct buf a = { 0 }, b = { 0 }, c = { 0 };
	assert_int_equal(buf_pool_get(&pool, &a), 0);
	char *first = a.data;
	assert_int_equal(a.cap, 4096);
	buf_pool_put(&pool, &a);
	assert_null(a.data);
	assert_int_equal(pool.nfree, 1);
	assert_int_equal(buf_pool_get(&pool, &b), 0);
	assert_ptr_equal(b.data, first);
	/* A buffer that grew is freed on return, not pooled. */
	assert_int_equal(buf_reserve(&b, 10000), 0);
	buf_pool_put(&pool, &b);
	assert_int_equal(pool.nfree, 0);
	/* At most max_free are kept. */
	struct buf d = { 0 };
	assert_int_equal(buf_pool_get(&pool, &a), 0);
	assert_int_equal(buf_pool_get(&pool, &c), 0);
	assert_int_equal(buf_pool_get(&pool, &d), 0);
	buf_pool_put(&pool, &a);
	buf_pool_put(&pool, &c);
	buf_pool_put(&pool, &d);
	assert_int_equal(pool.nfree, 2);
	buf_pool_destroy(&pool);
}

static int fired[8];
static int nfired;

static void record_fire(struct timer *t)
{
	fired[nfired++] = (int)(t->deadline / 1000);
}

static void timers_fire_in_deadline_order(void **state)
{
	(void)state;
	struct timer_list tl;
	struct timer t[3];
	timer_list_init(&tl, 1000);
	nfired = 0;
	for (int i = 0; i < 3; i++)
		timer_init(&t[i], record_fire);
	timer_arm(&tl, &t[0], 0);
	timer_arm(&tl, &t[1], 1000);
	timer_arm(&tl, &t[2], 2000);
	/* Re-arming moves a timer to the back with a later deadline. */
	timer_arm(&tl, &t[0], 3000);
	timer_list_expire(&tl, 2500);
	assert_int_equal(nfired, 1);
	assert_int_equal(fired[0], 2);
	assert_false(timer_armed(&t[1]));
	assert_true(timer_armed(&t[2]));
	timer_disarm(&t[2]);
	timer_list_expire(&tl, 100000);
	assert_int_equal(nfired, 2);
	assert_int_equal(fired[1], 4);
	assert_false(timer_armed(&t[0]));
}

/* The bytes of the whole chain, gathered through its iovecs. */
static size_t chain_gather(const struct chain *ch, char *dst, size_t cap)
{
	struct iovec iov[64];
	size_t len, n = 0;
	unsigned k = chain_iov(ch, iov, 64, &len);
	for (unsigned i = 0; i < k; i++) {
		assert_true(n + iov[i].iov_len <= cap);
		memcpy(dst + n, iov[i].iov_base, iov[i].iov_len);
		n += iov[i].iov_len;
	}
	assert_int_equal(n, len);
	return n;
}

/*
 * The ownership rule: bytes handed to an operation (what chain_iov or
 * chain_first gave out) stay at the same address with the same contents
 * however much is appended behind them, until chain_consume.
 */
static void chain_never_moves_queued_bytes(void **state)
{
	(void)state;
	struct buf_pool pool;
	assert_int_equal(buf_pool_init(&pool, 256, 4), 0);
	struct chain ch = { 0 };
	char pattern[5000];
	for (size_t i = 0; i < sizeof(pattern); i++)
		pattern[i] = (char)('a' + i % 23);
	assert_int_equal(chain_append(&ch, &pool, pattern, 100), 0);
	struct iovec iov[8];
	size_t len;
	assert_int_equal(chain_iov(&ch, iov, 8, &len), 1);
	assert_int_equal(len, 100);
	const char *sent = iov[0].iov_base;
	ch.held = len;
	/* A slow send: thousands of bytes arrive meanwhile. */
	for (size_t off = 100; off < sizeof(pattern); off += 37) {
		size_t n = sizeof(pattern) - off < 37 ? sizeof(pattern) - off : 37;
		assert_int_equal(chain_append(&ch, &pool, pattern + off, n), 0);
	}
	assert_ptr_equal(chain_first(&ch).p, sent);
	assert_memory_equal(sent, pattern, 100);
	/* A partial completion, then the rest in pieces. */
	chain_consume(&ch, &pool, 60);
	assert_int_equal(ch.held, 0);
	assert_ptr_equal(chain_first(&ch).p, sent + 60);
	char got[6000];
	assert_int_equal(chain_gather(&ch, got, sizeof(got)), sizeof(pattern) - 60);
	assert_memory_equal(got, pattern + 60, sizeof(pattern) - 60);
	size_t left = chain_bytes(&ch);
	while (left) {
		struct str s = chain_first(&ch);
		chain_consume(&ch, &pool, s.len);
		left -= s.len;
	}
	assert_int_equal(chain_bytes(&ch), 0);
	assert_true(chain_first(&ch).len == 0);
	chain_release(&ch, &pool);
	buf_pool_destroy(&pool);
}

static void chain_rollback_spares_held_bytes(void **state)
{
	(void)state;
	struct buf_pool pool;
	assert_int_equal(buf_pool_init(&pool, 128, 8), 0);
	struct chain ch = { 0 };
	assert_int_equal(chain_append(&ch, &pool, "HTTP/1.1 100 Continue\r\n\r\n", 25), 0);
	ch.held = 25;
	uint64_t mark = chain_mark(&ch);
	char big[1000];
	memset(big, 'x', sizeof(big));
	assert_int_equal(chain_append(&ch, &pool, big, sizeof(big)), 0);
	chain_rollback(&ch, &pool, mark);
	assert_int_equal(chain_bytes(&ch), 25);
	char got[64];
	assert_int_equal(chain_gather(&ch, got, sizeof(got)), 25);
	assert_memory_equal(got, "HTTP/1.1 100 Continue\r\n\r\n", 25);
	/* Rolling back past held bytes keeps them. */
	chain_rollback(&ch, &pool, 0);
	assert_int_equal(chain_bytes(&ch), 25);
	/* Appends after a rollback continue where the kept bytes end. */
	assert_int_equal(chain_append(&ch, &pool, "next", 4), 0);
	assert_int_equal(chain_gather(&ch, got, sizeof(got)), 29);
	assert_memory_equal(got + 25, "next", 4);
	chain_consume(&ch, &pool, 29);
	chain_release(&ch, &pool);
	buf_pool_destroy(&pool);
}

/* Sums and products stick at the bounds; signed ones symmetrically, so
 * the negation of any result is defined. */
static void saturating_arithmetic(void **state)
{
	(void)state;
	assert_int_equal(sat_add_u64(2, 3), 5);
	assert_int_equal(sat_add_u64(UINT64_MAX - 1, 1), UINT64_MAX);
	assert_int_equal(sat_add_u64(UINT64_MAX, UINT64_MAX), UINT64_MAX);
	assert_int_equal(sat_mul_u64(1ull << 62, 3), 3ull << 62);
	assert_int_equal(sat_mul_u64(1ull << 62, 4), UINT64_MAX);	/* not 0 */
	assert_int_equal(sat_mul_u64(1ull << 31, 1ull << 32), 1ull << 63);
	assert_int_equal(sat_mul_u64(0, UINT64_MAX), 0);
	assert_int_equal(sat_sub_u64(3, 5), 0);
	assert_int_equal(sat_sub_u64(5, 3), 2);
	assert_int_equal(min_u64(7, 3), 3);

	assert_int_equal(sat_add_i64(INT64_MAX, 60), INT64_MAX);
	assert_int_equal(sat_add_i64(INT64_MAX - 60, 60), INT64_MAX);
	assert_int_equal(sat_add_i64(INT64_MIN, -1), -INT64_MAX);
	assert_int_equal(sat_add_i64(INT64_MIN, 0), -INT64_MAX);
	assert_int_equal(sat_add_i64(INT64_MIN, 10), INT64_MIN + 10);
	assert_int_equal(sat_add_i64(-5, 3), -2);
	assert_int_equal(sat_sub_i64(-INT64_MAX, 1), -INT64_MAX);
	assert_int_equal(sat_sub_i64(0, INT64_MIN), INT64_MAX);
	assert_int_equal(sat_sub_i64(INT64_MAX, -1), INT64_MAX);
	assert_int_equal(sat_sub_i64(5, 7), -2);
	assert_int_equal(sat_i64_from_u64(UINT64_MAX), INT64_MAX);
	assert_int_equal(sat_i64_from_u64(12), 12);

	uint64_t c = UINT64_MAX - 10;
	SAT_ATOMIC_ADD_U64(&c, 5);
	assert_int_equal(c, UINT64_MAX - 5);
	SAT_ATOMIC_ADD_U64(&c, 100);
	assert_int_equal(c, UINT64_MAX);
	unsigned long long u = 1;
	SAT_ATOMIC_ADD_U64(&u, 2);
	assert_int_equal(u, 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(buf_append_consume_compact),
		cmocka_unit_test(buf_numbers),
		cmocka_unit_test(buf_grows_and_keeps_bytes),
		cmocka_unit_test(pool_reuses_standard_buffers),
		cmocka_unit_test(chain_never_moves_queued_bytes),
		cmocka_unit_test(chain_rollback_spares_held_bytes),
		cmocka_unit_test(timers_fire_in_deadline_order),
		cmocka_unit_test(saturating_arithmetic),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
