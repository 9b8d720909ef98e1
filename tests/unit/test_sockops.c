/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bpf/sockops.bpf.c in the running kernel (needs root).  The program is
 * attached to a cgroup made for this run, and the test process moves
 * itself into it, so only the loopback sockets of this test are seen.
 * Everything (pins, cgroup, attachment, sockets) is undone by the group
 * teardown, or at exit when a test aborts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

#include "bpf_fixture.h"
#include "sockops.skel.h"

#define CGROUP_MOUNT	"/sys/fs/cgroup/unified"
#define TENANT_ANON	0
#define TENANT_CAPPED	5	/* 127.0.0.2, max_connections 2 */
#define TENANT_V6	7	/* ::1 */
#define TENANT_LEARNED	9	/* 127.0.0.3, only learned, max_connections 1 */
#define TENANT_RATED	11	/* 127.0.0.4, conn_rate: 1 per hour, burst 1 */
#define CAP		2
#define WAIT_MS		2000

static struct {
	struct sockops_bpf *skel;
	struct bpf_link *link;
	char pin_root[PATH_MAX];
	char cgroup[PATH_MAX];		/* our cgroup, "" until made */
	char home[PATH_MAX];		/* the cgroup we came from */
	bool moved;
	int cgroup_fd;
} fx = { .cgroup_fd = -1 };

static int sktags_fd(void) { return bpf_map__fd(fx.skel->maps.sluice_sktags); }
static int tenants_fd(void) { return bpf_map__fd(fx.skel->maps.sluice_tenants); }
static int counters_fd(void) { return bpf_map__fd(fx.skel->maps.sluice_counters); }

/* ---- cgroup ---- */

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n = -1;

	if (fd >= 0) {
		n = write(fd, text, strlen(text));
		close(fd);
	}
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* Our cgroup v2 directory, from the "0::/path" line of /proc/self/cgroup. */
static int home_cgroup(char *dir, size_t len)
{
	char line[PATH_MAX];
	FILE *f = fopen("/proc/self/cgroup", "re");
	int rc = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "0::", 3) != 0)
			continue;
		line[strcspn(line, "\n")] = '\0';
		rc = snprintf(dir, len, CGROUP_MOUNT "%s", line + 3) < (int)len ? 0 : -1;
		break;
	}
	fclose(f);
	return rc;
}

/* Make our own cgroup and move this process into it. */
static int enter_cgroup(void)
{
	char procs[PATH_MAX + 16];

	if (home_cgroup(fx.home, sizeof(fx.home)) != 0)
		return -1;
	snprintf(fx.cgroup, sizeof(fx.cgroup), CGROUP_MOUNT "/sluice-test-%d", (int)getpid());
	if (mkdir(fx.cgroup, 0755) != 0) {
		fprintf(stderr, "mkdir %s: %s\n", fx.cgroup, strerror(errno));
		fx.cgroup[0] = '\0';
		return -1;
	}
	fx.cgroup_fd = open(fx.cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fx.cgroup_fd < 0)
		return -1;
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", fx.cgroup);
	if (write_file(procs, "0") != 0)
		return -1;
	fx.moved = true;
	return 0;
}

static void leave_cgroup(void)
{
	char procs[PATH_MAX + 16];

	if (fx.moved) {
		snprintf(procs, sizeof(procs), "%s/cgroup.procs", fx.home);
		if (write_file(procs, "0") != 0)
			fprintf(stderr, "could not move back to %s\n", fx.home);
		fx.moved = false;
	}
	if (fx.cgroup_fd >= 0)
		close(fx.cgroup_fd);
	fx.cgroup_fd = -1;
	if (fx.cgroup[0] != '\0' && rmdir(fx.cgroup) != 0)
		fprintf(stderr, "rmdir %s: %s\n", fx.cgroup, strerror(errno));
	fx.cgroup[0] = '\0';
}

/* ---- setup and teardown ---- */

/* Undo everything setup did, in reverse; safe to call twice. */
static void cleanup(void)
{
	fx_close_all();
	bpf_link__destroy(fx.link);
	fx.link = NULL;
	leave_cgroup();
	sockops_bpf__destroy(fx.skel);
	fx.skel = NULL;
	fx_pin_root_remove(fx.pin_root);
}

static int configure_tenants(void)
{
	struct sluice_tenant_state capped = { .max_connections = CAP, .configured = 1 };
	struct sluice_tenant_state v6 = { .configured = 1 };
	uint32_t id;

	id = TENANT_CAPPED;
	if (bpf_map_update_elem(tenants_fd(), &id, &capped, BPF_ANY) != 0)
		return -1;
	id = TENANT_V6;
	if (bpf_map_update_elem(tenants_fd(), &id, &v6, BPF_ANY) != 0)
		return -1;
	struct sluice_tenant_state learned = { .max_connections = 1, .configured = 1 };
	id = TENANT_LEARNED;
	if (bpf_map_update_elem(tenants_fd(), &id, &learned, BPF_ANY) != 0)
		return -1;
	struct sluice_tenant_state rated = { .conn_interval_ns = 3600ull * 1000000000,
					     .conn_burst = 1, .configured = 1 };
	id = TENANT_RATED;
	if (bpf_map_update_elem(tenants_fd(), &id, &rated, BPF_ANY) != 0)
		return -1;
	/* Learned exclusively for a whole hour: still no identity. */
	struct sluice_addr a = { .bytes = { [10] = 0xff, [11] = 0xff, 127, 0, 0, 3 } };
	struct sluice_learned l = { .tenant = TENANT_LEARNED,
				    .expires_ns = fx_now_ns() + 3600ull * 1000000000 };
	if (bpf_map_update_elem(bpf_map__fd(fx.skel->maps.sluice_learned), &a, &l, BPF_ANY) != 0)
		return -1;
	if (fx_tenant_net(bpf_map__fd(fx.skel->maps.sluice_tnets), "127.0.0.4", TENANT_RATED) != 0)
		return -1;
	if (fx_tenant_net(bpf_map__fd(fx.skel->maps.sluice_tnets), "127.0.0.2", TENANT_CAPPED) != 0)
		return -1;
	return fx_tenant_net(bpf_map__fd(fx.skel->maps.sluice_tnets), "::1", TENANT_V6);
}

static int load_and_attach(void)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = fx.pin_root);

	fx.skel = sockops_bpf__open_opts(&opts);
	if (!fx.skel || sockops_bpf__load(fx.skel) != 0) {
		fprintf(stderr, "sockops: open/load failed: %s\n", strerror(errno));
		return -1;
	}
	if (enter_cgroup() != 0)
		return -1;
	fx.link = bpf_program__attach_cgroup(fx.skel->progs.sluice_sockops, fx.cgroup_fd);
	if (!fx.link) {
		fprintf(stderr, "sockops: attach to %s: %s\n", fx.cgroup, strerror(errno));
		return -1;
	}
	return configure_tenants();
}

static int group_setup(void **state)
{
	(void)state;
	if (fx_require_root("test_sockops") != 0)
		return -1;
	atexit(cleanup);
	if (fx_bpffs() != 0 || fx_pin_root_make(fx.pin_root, sizeof(fx.pin_root), "sockops") != 0 ||
	    load_and_attach() != 0) {
		cleanup();
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	cleanup();
	return 0;
}

/* ---- helpers ---- */

/* The gateway ports the program treats as ours. */
static void set_ports(uint16_t a, uint16_t b)
{
	struct sluice_kconfig cfg = { .ports = { a, b } };
	uint32_t key = 0;

	assert_int_equal(bpf_map_update_elem(bpf_map__fd(fx.skel->maps.sluice_config), &key, &cfg,
					     BPF_ANY), 0);
}

static struct sluice_tenant_state tenant(uint32_t id)
{
	struct sluice_tenant_state st;

	assert_int_equal(bpf_map_lookup_elem(tenants_fd(), &id, &st), 0);
	return st;
}

/* Poll until the tenant's active_connections is want (the close callback
 * runs when the socket reaches TCP_CLOSE, a moment after close()). */
static bool active_becomes(uint32_t id, int64_t want, int64_t *got)
{
	struct sluice_tenant_state st;

	for (int waited = 0; waited <= WAIT_MS; waited += 10) {
		if (bpf_map_lookup_elem(tenants_fd(), &id, &st) != 0)
			return false;
		*got = st.active_connections;
		if (*got == want)
			return true;
		fx_sleep_ms(10);
	}
	return false;
}

static void wait_active(uint32_t id, int64_t want)
{
	int64_t got = 0;

	if (!active_becomes(id, want, &got))
		fail_msg("tenant %u: active_connections %lld, want %lld", id, (long long)got,
			 (long long)want);
}

/* Tag of an accepted socket; the lookup key is the socket's fd. */
static int tag_of(int fd, struct sluice_sock_tag *tag)
{
	return bpf_map_lookup_elem(sktags_fd(), &fd, tag) == 0 ? 0 : -errno;
}

struct conn {
	int client;
	int server;
};

static struct conn open_conn(int lfd, const char *src, const char *dst)
{
	struct conn c;

	c.client = fx_connect(src, dst, fx_local_port(lfd));
	assert_true(c.client >= 0);
	c.server = fx_accept(lfd, WAIT_MS);
	assert_true(c.server >= 0);
	return c;
}

/* Client first, then server: the server socket passes through CLOSE_WAIT
 * and LAST_ACK and reaches TCP_CLOSE on the client's final ACK. */
static void close_conn(struct conn *c)
{
	fx_close(c->client);
	fx_close(c->server);
	c->client = c->server = -1;
}

/* Each test closes its sockets; this closes the ones a failure left and
 * waits for them to be counted out, so the next test starts from zero. */
static int test_teardown(void **state)
{
	static const uint32_t tenants[] = { TENANT_ANON, TENANT_CAPPED, TENANT_V6, TENANT_RATED };
	int64_t got;

	(void)state;
	fx_close_all();
	for (size_t i = 0; i < sizeof(tenants) / sizeof(tenants[0]); i++) {
		if (!active_becomes(tenants[i], 0, &got))
			return -1;
	}
	return 0;
}

/* ---- tests ---- */

static void test_tags_tenant_and_time(void **state)
{
	struct sluice_sock_tag tag;
	uint64_t est = fx_counter(counters_fd(), SLUICE_C_SOCK_ESTABLISHED);
	int lfd = fx_listen("127.0.0.1", 0, false);
	uint64_t before, after;
	struct conn tn, anon;

	(void)state;
	assert_true(lfd >= 0);
	set_ports(fx_local_port(lfd), 0);

	before = fx_now_ns();
	tn = open_conn(lfd, "127.0.0.2", "127.0.0.1");
	anon = open_conn(lfd, "127.0.0.1", "127.0.0.1");
	after = fx_now_ns();

	assert_int_equal(tag_of(tn.server, &tag), 0);
	assert_int_equal(tag.tenant, TENANT_CAPPED);
	assert_int_equal(tag.flags, SLUICE_TAG_COUNTED | SLUICE_TAG_NETWORK);
	assert_in_range(tag.accept_ns, before, after);

	assert_int_equal(tag_of(anon.server, &tag), 0);
	assert_int_equal(tag.tenant, TENANT_ANON);
	assert_int_equal(tag.flags, SLUICE_TAG_COUNTED);
	assert_in_range(tag.accept_ns, before, after);

	/* Client sockets (active opens) are never tagged. */
	assert_int_equal(tag_of(tn.client, &tag), -ENOENT);
	assert_int_equal(fx_counter(counters_fd(), SLUICE_C_SOCK_ESTABLISHED), est + 2);

	close_conn(&tn);
	close_conn(&anon);
	wait_active(TENANT_CAPPED, 0);
	wait_active(TENANT_ANON, 0);
	fx_close(lfd);
}

static void test_cap_flags_and_close_counts_out(void **state)
{
	struct sluice_tenant_state st0 = tenant(TENANT_CAPPED);
	uint64_t over = fx_counter(counters_fd(), SLUICE_C_SOCK_OVER_CAP);
	uint64_t closed = fx_counter(counters_fd(), SLUICE_C_SOCK_CLOSED);
	int lfd = fx_listen("127.0.0.1", 0, false);
	struct sluice_sock_tag tag;
	struct conn c[CAP + 1];

	(void)state;
	assert_true(lfd >= 0);
	set_ports(fx_local_port(lfd), 0);
	assert_int_equal(st0.active_connections, 0);	/* test_teardown drained it */

	for (int i = 0; i < CAP + 1; i++) {
		c[i] = open_conn(lfd, "127.0.0.2", "127.0.0.1");
		assert_int_equal(tenant(TENANT_CAPPED).active_connections, i + 1);
		assert_int_equal(tag_of(c[i].server, &tag), 0);
		/* Only the connection above max_connections is flagged. */
		assert_int_equal(tag.flags, i < CAP ? SLUICE_TAG_COUNTED | SLUICE_TAG_NETWORK
						    : SLUICE_TAG_COUNTED | SLUICE_TAG_NETWORK |
						      SLUICE_TAG_OVER_CAP);
	}
	assert_int_equal(tenant(TENANT_CAPPED).over_cap, st0.over_cap + 1);
	assert_int_equal(tenant(TENANT_CAPPED).connections_total, st0.connections_total + CAP + 1);
	assert_int_equal(fx_counter(counters_fd(), SLUICE_C_SOCK_OVER_CAP), over + 1);

	/* A half-closed connection (server in CLOSE_WAIT) is still open. */
	fx_close(c[0].client);
	c[0].client = -1;
	fx_sleep_ms(50);
	assert_int_equal(tenant(TENANT_CAPPED).active_connections, CAP + 1);

	for (int i = 0; i < CAP + 1; i++) {
		close_conn(&c[i]);
		wait_active(TENANT_CAPPED, CAP - i);
	}
	assert_int_equal(fx_counter(counters_fd(), SLUICE_C_SOCK_CLOSED), closed + CAP + 1);
	fx_close(lfd);
}

static void test_server_closes_first(void **state)
{
	int lfd = fx_listen("127.0.0.1", 0, false);
	struct conn c;

	(void)state;
	assert_true(lfd >= 0);
	set_ports(fx_local_port(lfd), 0);
	c = open_conn(lfd, "127.0.0.2", "127.0.0.1");
	wait_active(TENANT_CAPPED, 1);

	/* The server's orphaned socket goes FIN_WAIT → timewait, and the full
	 * socket reaches TCP_CLOSE when a timewait socket takes its place. */
	fx_close(c.server);
	fx_sleep_ms(50);
	fx_close(c.client);
	wait_active(TENANT_CAPPED, 0);
	fx_close(lfd);
}

static void test_other_port_untagged(void **state)
{
	uint64_t est = fx_counter(counters_fd(), SLUICE_C_SOCK_ESTABLISHED);
	int ours = fx_listen("127.0.0.1", 0, false);
	int other = fx_listen("127.0.0.1", 0, false);
	struct sluice_sock_tag tag;
	struct conn c;

	(void)state;
	assert_true(ours >= 0 && other >= 0);
	set_ports(fx_local_port(ours), 0);

	c = open_conn(other, "127.0.0.2", "127.0.0.1");
	assert_int_equal(tag_of(c.server, &tag), -ENOENT);
	assert_int_equal(tenant(TENANT_CAPPED).active_connections, 0);
	assert_int_equal(fx_counter(counters_fd(), SLUICE_C_SOCK_ESTABLISHED), est);

	close_conn(&c);
	fx_close(ours);
	fx_close(other);
}

static void test_dual_stack_listener(void **state)
{
	int lfd = fx_listen("::", 0, false);
	struct sluice_sock_tag tag;
	struct conn v4, v6;

	(void)state;
	assert_true(lfd >= 0);
	set_ports(0, fx_local_port(lfd));	/* any slot of ports[] counts */

	/* An IPv4 peer of an IPv6 socket: tenant by ::ffff:127.0.0.2. */
	v4 = open_conn(lfd, "127.0.0.2", "127.0.0.1");
	assert_int_equal(tag_of(v4.server, &tag), 0);
	assert_int_equal(tag.tenant, TENANT_CAPPED);

	v6 = open_conn(lfd, "::1", "::1");
	assert_int_equal(tag_of(v6.server, &tag), 0);
	assert_int_equal(tag.tenant, TENANT_V6);
	assert_int_equal(tenant(TENANT_V6).active_connections, 1);

	close_conn(&v4);
	close_conn(&v6);
	wait_active(TENANT_CAPPED, 0);
	wait_active(TENANT_V6, 0);
	fx_close(lfd);
}

/* Issue 9 cases 1 and 6: an address learned for a tenant, even used by
 * it alone, gives its connections no tenant, no cap and no steering. */
static void test_learned_source_is_no_identity(void **state)
{
	int lfd = fx_listen("127.0.0.1", 0, false);
	struct sluice_sock_tag tag;
	struct conn c[2];

	(void)state;
	assert_true(lfd >= 0);
	set_ports(fx_local_port(lfd), 0);
	for (int i = 0; i < 2; i++) {
		c[i] = open_conn(lfd, "127.0.0.3", "127.0.0.1");
		assert_int_equal(tag_of(c[i].server, &tag), 0);
		assert_int_equal(tag.tenant, TENANT_ANON);
		assert_int_equal(tag.flags, SLUICE_TAG_COUNTED);
	}
	assert_int_equal(tenant(TENANT_LEARNED).active_connections, 0);
	assert_int_equal(tenant(TENANT_LEARNED).over_cap, 0);
	close_conn(&c[0]);
	close_conn(&c[1]);
	wait_active(TENANT_ANON, 0);
	fx_close(lfd);
}

/* Issue 9 case 5: a tenant's conn_rate is charged by completed handshakes;
 * the one over it is tagged for the daemon's 429 and not counted in. */
static void test_rate_charged_on_established(void **state)
{
	uint64_t over = fx_counter(counters_fd(), SLUICE_C_SOCK_OVER_RATE);
	int lfd = fx_listen("127.0.0.1", 0, false);
	struct sluice_tenant_state st0 = tenant(TENANT_RATED);
	struct sluice_sock_tag tag;
	struct conn c[3];

	(void)state;
	assert_true(lfd >= 0);
	set_ports(fx_local_port(lfd), 0);
	for (int i = 0; i < 3; i++) {
		c[i] = open_conn(lfd, "127.0.0.4", "127.0.0.1");
		assert_int_equal(tag_of(c[i].server, &tag), 0);
		assert_int_equal(tag.tenant, TENANT_RATED);
		/* GCRA: burst 1 lets 1 + 1 through at once. */
		assert_int_equal(tag.flags, i < 2 ? SLUICE_TAG_COUNTED | SLUICE_TAG_NETWORK
						  : SLUICE_TAG_NETWORK | SLUICE_TAG_OVER_RATE);
	}
	assert_int_equal(tenant(TENANT_RATED).conn_bucket.passed, st0.conn_bucket.passed + 2);
	assert_int_equal(tenant(TENANT_RATED).conn_bucket.dropped, st0.conn_bucket.dropped + 1);
	assert_int_equal(tenant(TENANT_RATED).active_connections, 2);
	assert_int_equal(fx_counter(counters_fd(), SLUICE_C_SOCK_OVER_RATE), over + 1);
	for (int i = 0; i < 3; i++)
		close_conn(&c[i]);
	wait_active(TENANT_RATED, 0);
	fx_close(lfd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_tags_tenant_and_time, test_teardown),
		cmocka_unit_test_teardown(test_cap_flags_and_close_counts_out, test_teardown),
		cmocka_unit_test_teardown(test_server_closes_first, test_teardown),
		cmocka_unit_test_teardown(test_other_port_untagged, test_teardown),
		cmocka_unit_test_teardown(test_dual_stack_listener, test_teardown),
		cmocka_unit_test_teardown(test_learned_source_is_no_identity, test_teardown),
		cmocka_unit_test_teardown(test_rate_charged_on_established, test_teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
