/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bpf/steer.bpf.c in the running kernel (needs root).  Four SO_REUSEPORT
 * listeners on one loopback port stand in for four workers: the shared
 * group 0 is workers 0..2 and tenant 9 (127.0.0.9) has worker 3 to itself.
 * Every connection is accepted on whichever listener the program chose.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

#include <cmocka.h>

#include "bpf_fixture.h"
#include "steer.skel.h"

#define NWORKERS	4
#define SHARED		3	/* group 0: workers [0, 3) */
#define DEDICATED	3	/* group 1: worker 3 */
#define TENANT_DEDICATED 9	/* 127.0.0.9, worker group 1 */
#define TENANT_EMPTY	10	/* 127.0.0.10, worker group 2 (no workers) */
#define NCONN		40
#define WAIT_MS		2000

static struct {
	struct steer_bpf *skel;
	char pin_root[PATH_MAX];
	int listeners[NWORKERS];
	uint16_t port;
} fx;

static int workers_fd(void) { return bpf_map__fd(fx.skel->maps.sluice_workers); }
static int counters_fd(void) { return bpf_map__fd(fx.skel->maps.sluice_counters); }

/* ---- setup and teardown ---- */

/* Closing the listeners also frees the reuseport group and its program. */
static void cleanup(void)
{
	fx_close_all();
	steer_bpf__destroy(fx.skel);
	fx.skel = NULL;
	fx_pin_root_remove(fx.pin_root);
}

/* Worker i's listener goes in slot i of the socket array. */
static int put_worker(uint32_t i)
{
	uint64_t fd = (uint64_t)fx.listeners[i];

	return bpf_map_update_elem(workers_fd(), &i, &fd, BPF_ANY);
}

/* Four listeners on one port, in the array, the first carrying the program. */
static int open_workers(void)
{
	int prog_fd = bpf_program__fd(fx.skel->progs.sluice_steer);

	for (uint32_t i = 0; i < NWORKERS; i++) {
		fx.listeners[i] = fx_listen("127.0.0.1", fx.port, true);
		if (fx.listeners[i] < 0 || put_worker(i) != 0) {
			fprintf(stderr, "steer: worker %u: %s\n", i, strerror(errno));
			return -1;
		}
		fx.port = fx_local_port(fx.listeners[i]);
	}
	/* One attach serves the whole reuseport group. */
	if (setsockopt(fx.listeners[0], SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &prog_fd,
		       sizeof(prog_fd)) != 0) {
		fprintf(stderr, "steer: SO_ATTACH_REUSEPORT_EBPF: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

static int set_group(uint32_t tenant, uint32_t group)
{
	struct sluice_tenant_state st = { .worker_group = group, .configured = 1 };

	return bpf_map_update_elem(bpf_map__fd(fx.skel->maps.sluice_tenants), &tenant, &st,
				   BPF_ANY);
}

static int configure(void)
{
	struct sluice_kconfig cfg = {
		.ports = { fx.port },
		.group_first = { 0, DEDICATED },
		.group_count = { SHARED, NWORKERS - DEDICATED },
		.nworkers = NWORKERS,
	};
	int tnets_fd = bpf_map__fd(fx.skel->maps.sluice_tnets);
	uint32_t key = 0;

	if (bpf_map_update_elem(bpf_map__fd(fx.skel->maps.sluice_config), &key, &cfg, BPF_ANY) != 0 ||
	    set_group(TENANT_DEDICATED, 1) != 0 || set_group(TENANT_EMPTY, 2) != 0 ||
	    fx_tenant_net(tnets_fd, "127.0.0.9", TENANT_DEDICATED) != 0)
		return -1;
	return fx_tenant_net(tnets_fd, "127.0.0.10", TENANT_EMPTY);
}

static int group_setup(void **state)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = fx.pin_root);

	(void)state;
	if (fx_require_root("test_steer") != 0)
		return -1;
	atexit(cleanup);
	if (fx_bpffs() != 0 || fx_pin_root_make(fx.pin_root, sizeof(fx.pin_root), "steer") != 0)
		goto fail;
	fx.skel = steer_bpf__open_opts(&opts);
	if (!fx.skel || steer_bpf__load(fx.skel) != 0) {
		fprintf(stderr, "steer: open/load failed: %s\n", strerror(errno));
		goto fail;
	}
	if (open_workers() != 0 || configure() != 0)
		goto fail;
	return 0;
fail:
	cleanup();
	return -1;
}

static int group_teardown(void **state)
{
	(void)state;
	cleanup();
	return 0;
}

/* ---- helpers ---- */

/* One connection from src; returns the worker that accepted it. */
static int steer_one(const char *src)
{
	int client = fx_connect(src, "127.0.0.1", fx.port);
	int server, which = -1;

	assert_true(client >= 0);
	server = fx_accept_any(fx.listeners, NWORKERS, WAIT_MS, &which);
	assert_true(server >= 0);
	fx_close_rst(client);
	fx_close(server);
	return which;
}

/* NCONN connections from src, counted per worker. */
static void steer_many(const char *src, int per_worker[NWORKERS])
{
	memset(per_worker, 0, NWORKERS * sizeof(per_worker[0]));
	for (int i = 0; i < NCONN; i++)
		per_worker[steer_one(src)]++;
}

/* ---- tests ---- */

static void test_dedicated_group(void **state)
{
	uint64_t group = fx_counter(counters_fd(), SLUICE_C_STEER_GROUP);
	uint64_t shared = fx_counter(counters_fd(), SLUICE_C_STEER_SHARED);
	int per_worker[NWORKERS];

	(void)state;
	steer_many("127.0.0.9", per_worker);
	assert_int_equal(per_worker[DEDICATED], NCONN);
	assert_int_equal(fx_counter(counters_fd(), SLUICE_C_STEER_GROUP), group + NCONN);
	assert_int_equal(fx_counter(counters_fd(), SLUICE_C_STEER_SHARED), shared);
}

static void test_shared_group_spreads(void **state)
{
	uint64_t group = fx_counter(counters_fd(), SLUICE_C_STEER_GROUP);
	uint64_t shared = fx_counter(counters_fd(), SLUICE_C_STEER_SHARED);
	int per_worker[NWORKERS];

	(void)state;
	/* Each connection has its own source port, so its own flow hash; with
	 * 40 of them an empty worker has odds of about 3 * (2/3)^40 < 1e-6. */
	steer_many("127.0.0.1", per_worker);
	assert_int_equal(per_worker[DEDICATED], 0);
	for (int w = 0; w < SHARED; w++)
		assert_true(per_worker[w] > 0);
	assert_int_equal(fx_counter(counters_fd(), SLUICE_C_STEER_SHARED), shared + NCONN);
	assert_int_equal(fx_counter(counters_fd(), SLUICE_C_STEER_GROUP), group);
}

static void test_group_without_workers_uses_shared(void **state)
{
	uint64_t shared = fx_counter(counters_fd(), SLUICE_C_STEER_SHARED);

	(void)state;
	assert_int_not_equal(steer_one("127.0.0.10"), DEDICATED);
	assert_int_equal(fx_counter(counters_fd(), SLUICE_C_STEER_SHARED), shared + 1);
}

static void test_empty_slot_falls_back(void **state)
{
	uint64_t fallback = fx_counter(counters_fd(), SLUICE_C_STEER_FALLBACK);
	uint32_t slot = DEDICATED;
	int which;

	(void)state;
	/* Without a socket in its slot the selection fails; the kernel then
	 * picks by hash among the group, and the connection still lands. */
	assert_int_equal(bpf_map_delete_elem(workers_fd(), &slot), 0);
	which = steer_one("127.0.0.9");
	assert_int_equal(put_worker(slot), 0);
	assert_in_range(which, 0, NWORKERS - 1);
	assert_int_equal(fx_counter(counters_fd(), SLUICE_C_STEER_FALLBACK), fallback + 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dedicated_group),
		cmocka_unit_test(test_shared_group_spreads),
		cmocka_unit_test(test_group_without_workers_uses_shared),
		cmocka_unit_test(test_empty_slot_falls_back),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
