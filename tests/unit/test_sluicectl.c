/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sluicectl against maps this test creates and pins itself, under a pin
 * root of its own (/sys/fs/bpf/sluice-test-<pid>-ctl): never the real one.
 * Needs root (BPF maps, bpffs).  The binary is $SLUICECTL, else the
 * sluicectl next to this test's build directory, else ./build/sluicectl.
 */
#include <errno.h>
#include <limits.h>
#include <linux/magic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "api/json.h"
#define SLUICE_COUNTER_NAMES
#include "sluice_maps.h"

#define BPFFS "/sys/fs/bpf"
#define OUT_CAP (256 * 1024)

/* One map the test creates: the types, sizes and flags of bpf/sluice.bpf.h. */
struct test_map {
	const char *name;
	enum bpf_map_type type;
	__u32 key_size, value_size, max_entries, flags;
	int fd;
};

static struct test_map maps[] = {
	{ SLUICE_MAP_META, BPF_MAP_TYPE_ARRAY, 4, sizeof(struct sluice_meta), 1, 0, -1 },
	{ SLUICE_MAP_CONFIG, BPF_MAP_TYPE_ARRAY, 4, sizeof(struct sluice_kconfig), 1, 0, -1 },
	{ SLUICE_MAP_TENANT_NETS, BPF_MAP_TYPE_LPM_TRIE, sizeof(struct sluice_lpm_key),
	  sizeof(struct sluice_tenant_ref), SLUICE_MAX_NETS, BPF_F_NO_PREALLOC, -1 },
	{ SLUICE_MAP_LEARNED, BPF_MAP_TYPE_LRU_HASH, sizeof(struct sluice_addr),
	  sizeof(struct sluice_tenant_ref), SLUICE_MAX_LEARNED, 0, -1 },
	{ SLUICE_MAP_DENY, BPF_MAP_TYPE_LPM_TRIE, sizeof(struct sluice_lpm_key),
	  sizeof(struct sluice_deny_entry), SLUICE_MAX_NETS, BPF_F_NO_PREALLOC, -1 },
	{ SLUICE_MAP_SRC_BUCKETS, BPF_MAP_TYPE_LRU_HASH, sizeof(struct sluice_addr),
	  sizeof(struct sluice_bucket), SLUICE_MAX_SOURCES, 0, -1 },
	{ SLUICE_MAP_TENANTS, BPF_MAP_TYPE_ARRAY, 4, sizeof(struct sluice_tenant_state),
	  SLUICE_MAX_TENANTS, BPF_F_MMAPABLE, -1 },
	{ SLUICE_MAP_COUNTERS, BPF_MAP_TYPE_PERCPU_ARRAY, 4, sizeof(__u64), SLUICE_C_MAX, 0, -1 },
	{ SLUICE_MAP_DAEMON, BPF_MAP_TYPE_ARRAY, 4, sizeof(struct sluice_daemon_stats), 1,
	  BPF_F_MMAPABLE, -1 },
	/* sluice_sktags (sk storage) needs BTF to create: status shows it missing. */
};
#define NMAPS (sizeof(maps) / sizeof(maps[0]))
enum { M_META, M_CONFIG, M_TNETS, M_LEARNED, M_DENY, M_SRC, M_TENANTS, M_COUNTERS, M_DAEMON };

static char pin_root[64];
static char config_path[128];
static char sluicectl[1024];
static char out[OUT_CAP];

/* ---- fixture ---- */

static void cleanup(void)
{
	char path[PATH_MAX];

	for (size_t i = 0; i < NMAPS; i++) {
		if (maps[i].fd >= 0)
			close(maps[i].fd);
		maps[i].fd = -1;
		if (pin_root[0]) {
			snprintf(path, sizeof(path), "%s/%s", pin_root, maps[i].name);
			unlink(path);
		}
	}
	if (pin_root[0])
		rmdir(pin_root);
	if (config_path[0])
		unlink(config_path);
	pin_root[0] = config_path[0] = '\0';
}

static int ensure_bpffs(void)
{
	struct statfs st;

	if (statfs(BPFFS, &st) == 0 && st.f_type == BPF_FS_MAGIC)
		return 0;
	/* Left mounted afterwards: other users may pin there meanwhile. */
	if (mount("bpf", BPFFS, "bpf", 0, NULL)) {
		fprintf(stderr, "test_sluicectl: mount bpffs at %s: %s\n", BPFFS, strerror(errno));
		return -1;
	}
	return 0;
}

static int create_and_pin(struct test_map *m)
{
	LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = m->flags);
	char path[PATH_MAX];

	m->fd = bpf_map_create(m->type, m->name, m->key_size, m->value_size,
			       m->max_entries, &opts);
	if (m->fd < 0) {
		fprintf(stderr, "test_sluicectl: create %s: %s\n", m->name, strerror(errno));
		return -1;
	}
	snprintf(path, sizeof(path), "%s/%s", pin_root, m->name);
	if (bpf_obj_pin(m->fd, path)) {
		fprintf(stderr, "test_sluicectl: pin %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

static struct sluice_meta test_meta(void)
{
	struct sluice_meta m = {
		.layout_version = SLUICE_LAYOUT_VERSION,
		.daemon_pid = (__u32)getpid(),
		.started_ns = 1,
		.sockops_attached = 1,
		.steer_attached = 1,
		.nworkers = 4,
	};

	m.xdp_ifindex[0] = 1;		/* lo: no XDP program on it */
	m.xdp_mode[0] = SLUICE_XDP_GENERIC;
	strcpy(m.xdp_ifname[0], "lo");
	strcpy(m.cgroup, "/sys/fs/cgroup/sluice-test");
	return m;
}

static int write_meta(struct sluice_meta m)
{
	__u32 key = 0;

	return bpf_map_update_elem(maps[M_META].fd, &key, &m, BPF_ANY);
}

static int write_config(void)
{
	FILE *f;

	snprintf(config_path, sizeof(config_path), "/tmp/sluice-test-%d-ctl.yaml", (int)getpid());
	f = fopen(config_path, "w");
	if (!f)
		return -1;
	fprintf(f, "listen: \"127.0.0.1:18080\"\n"
		   "backends:\n"
		   "  - name: local\n"
		   "    url: \"http://127.0.0.1:9000/v1\"\n"
		   "    models: [\"*\"]\n"
		   "kernel:\n"
		   "  pin_root: %s\n"
		   "tenants:\n"
		   "  - name: acme\n"
		   "    id: 5\n", pin_root);
	return fclose(f);
}

/* Next to this test's build directory, as make lays it out: BUILD/tests/x -> BUILD/sluicectl. */
static void find_sluicectl(const char *argv0)
{
	const char *env = getenv("SLUICECTL");
	const char *slash = strrchr(argv0, '/');

	if (env && env[0]) {
		snprintf(sluicectl, sizeof(sluicectl), "%s", env);
		return;
	}
	snprintf(sluicectl, sizeof(sluicectl), "%.*s/../sluicectl",
		 slash ? (int)(slash - argv0) : 1, slash ? argv0 : ".");
	if (access(sluicectl, X_OK) != 0)
		snprintf(sluicectl, sizeof(sluicectl), "./build/sluicectl");
}

static int group_setup(void **state)
{
	(void)state;
	if (geteuid() != 0) {
		fprintf(stderr, "test_sluicectl: needs root (creates and pins BPF maps)\n");
		return -1;
	}
	if (access(sluicectl, X_OK) != 0) {
		fprintf(stderr, "test_sluicectl: no sluicectl at %s (make it, or set SLUICECTL)\n",
			sluicectl);
		return -1;
	}
	if (ensure_bpffs())
		return -1;
	snprintf(pin_root, sizeof(pin_root), BPFFS "/sluice-test-%d-ctl", (int)getpid());
	if (mkdir(pin_root, 0700) && errno != EEXIST) {
		fprintf(stderr, "test_sluicectl: mkdir %s: %s\n", pin_root, strerror(errno));
		pin_root[0] = '\0';
		return -1;
	}
	for (size_t i = 0; i < NMAPS; i++)
		if (create_and_pin(&maps[i]))
			return -1;
	return write_meta(test_meta()) || write_config() ? -1 : 0;
}

static int group_teardown(void **state)
{
	(void)state;
	cleanup();
	return 0;
}

/* ---- running sluicectl ---- */

/* Run a shell command line; its output in out.  Returns the exit code. */
static int run_line(const char *line)
{
	size_t n = 0, got;
	FILE *p = popen(line, "r");
	int status;

	assert_non_null(p);
	while ((got = fread(out + n, 1, sizeof(out) - 1 - n, p)) > 0)
		n += got;
	out[n] = '\0';
	status = pclose(p);
	assert_true(WIFEXITED(status));
	/* Under SAN=1 a leak also exits 1: the report is the tell. */
	if (strstr(out, "Sanitizer") || strstr(out, "runtime error:"))
		fail_msg("sanitizer report from %s:\n%s", line, out);
	return WEXITSTATUS(status);
}

/* Run sluicectl with the test's pin root and these arguments; its stdout
 * (and stderr when with_stderr) in out.  Returns the exit code. */
static int run(bool with_stderr, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int run(bool with_stderr, const char *fmt, ...)
{
	char args[1024], line[4096];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < sizeof(args));
	n = snprintf(line, sizeof(line), "%s --pin-root %s %s %s", sluicectl, pin_root, args,
		     with_stderr ? "2>&1" : "2>/dev/null");
	assert_true(n >= 0 && (size_t)n < sizeof(line));
	return run_line(line);
}

/* Run sluicectl with exactly these arguments (no --pin-root), stderr included. */
static int run_bare(const char *args)
{
	char line[4096];
	int n = snprintf(line, sizeof(line), "%s %s 2>&1", sluicectl, args);

	assert_true(n >= 0 && (size_t)n < sizeof(line));
	return run_line(line);
}

static struct json_val parse_out(void)
{
	struct json_val root;
	size_t off = 0;
	const char *why = NULL;

	if (json_parse(out, strlen(out), &root, &off, &why))
		fail_msg("invalid JSON at %zu (%s): %s", off, why, out);
	return root;
}

static int64_t json_path_int(const struct json_val *root, const char *path)
{
	struct json_val v;
	int64_t n = -1;

	if (json_get_path(root, path, &v) || json_int64(&v, &n))
		fail_msg("no integer %s in %s", path, out);
	return n;
}

static bool json_path_bool(const struct json_val *root, const char *path)
{
	struct json_val v;
	bool b = false;

	if (json_get_path(root, path, &v) || json_bool(&v, &b))
		fail_msg("no boolean %s in %s", path, out);
	return b;
}

static bool json_path_str_eq(const struct json_val *root, const char *path, const char *s)
{
	struct json_val v;

	return json_get_path(root, path, &v) == 0 && json_string_eq(&v, s);
}

/* Element i of the array at path. */
static struct json_val json_elem(const struct json_val *root, const char *path, size_t i)
{
	struct json_val arr, v = { 0 };
	struct json_iter it;
	struct str key;

	if (json_get_path(root, path, &arr) || arr.type != JSON_ARRAY)
		fail_msg("no array %s in %s", path, out);
	json_iter_init(&it, &arr);
	for (size_t k = 0; k <= i; k++)
		if (!json_iter_next(&it, &key, &v))
			fail_msg("%s has no element %zu: %s", path, i, out);
	return v;
}

static size_t json_len(const struct json_val *root, const char *path)
{
	struct json_val arr;

	if (json_get_path(root, path, &arr) || arr.type != JSON_ARRAY)
		fail_msg("no array %s in %s", path, out);
	return json_array_len(&arr);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static struct sluice_lpm_key v4_key(uint8_t a, uint8_t b, uint8_t c, uint8_t d, unsigned len)
{
	struct sluice_lpm_key k = { .prefixlen = 96 + len };

	k.bytes[10] = k.bytes[11] = 0xff;
	k.bytes[12] = a;
	k.bytes[13] = b;
	k.bytes[14] = c;
	k.bytes[15] = d;
	return k;
}

/* ---- status ---- */

static void test_status_json(void **state)
{
	struct json_val root, x;

	(void)state;
	assert_int_equal(run(true, "status --json"), 0);
	root = parse_out();
	assert_int_equal(json_path_int(&root, "layout_version"), SLUICE_LAYOUT_VERSION);
	assert_true(json_path_str_eq(&root, "pin_root", pin_root));
	assert_int_equal(json_path_int(&root, "daemon.pid"), getpid());
	assert_true(json_path_bool(&root, "daemon.alive"));
	assert_true(json_path_str_eq(&root, "sockops.cgroup", "/sys/fs/cgroup/sluice-test"));
	assert_true(json_path_bool(&root, "sockops.attached"));
	assert_true(json_path_bool(&root, "steering.attached"));
	assert_int_equal(json_path_int(&root, "steering.workers"), 4);
	assert_int_equal(json_len(&root, "xdp"), 1);
	x = json_elem(&root, "xdp", 0);
	assert_true(json_path_str_eq(&x, "ifname", "lo"));
	assert_int_equal(json_path_int(&x, "ifindex"), 1);
	assert_true(json_path_str_eq(&x, "mode", "generic"));
	assert_false(json_path_bool(&x, "attached"));
	x = json_elem(&root, "maps", M_DENY);
	assert_true(json_path_str_eq(&x, "name", SLUICE_MAP_DENY));
	assert_true(json_path_bool(&x, "present"));
	assert_true(json_path_bool(&x, "layout_ok"));
	x = json_elem(&root, "maps", NMAPS);	/* sk storage, not created */
	assert_true(json_path_str_eq(&x, "name", SLUICE_MAP_SOCK_TAGS));
	assert_false(json_path_bool(&x, "present"));
}

static void test_status_table(void **state)
{
	(void)state;
	struct sluice_daemon_stats d = { .tls_enabled = 1, .ktls_available = 1 };
	__u32 key = 0;
	char want[64];

	d.tls_conns[SLUICE_TLS_KTLS] = 7;
	d.tls_conns[SLUICE_TLS_USERSPACE] = 3;
	assert_int_equal(bpf_map_update_elem(maps[M_DAEMON].fd, &key, &d, BPF_ANY), 0);
	assert_int_equal(run(true, "status"), 0);
	snprintf(want, sizeof(want), "layout version:  %d\n", SLUICE_LAYOUT_VERSION);
	assert_non_null(strstr(out, want));
	assert_non_null(strstr(out, "tls:             on, kernel TLS available; connections: "
				    "ktls 7 ktls_tx 0 userspace 3 failed 0 plain_http 0"));
	assert_non_null(strstr(out, "lo (ifindex 1) generic"));
	assert_non_null(strstr(out, "sluice_sktags"));
	assert_non_null(strstr(out, "missing"));
}

/* ---- counters ---- */

static void test_counters(void **state)
{
	int ncpus = libbpf_num_possible_cpus();
	uint64_t *v = calloc((size_t)ncpus, sizeof(*v));
	struct json_val root;
	char path[64];

	(void)state;
	assert_true(ncpus > 0);
	assert_non_null(v);
	/* Counter c holds (c + 1) * (cpu + 1) on each CPU. */
	for (__u32 c = 0; c < SLUICE_C_MAX; c++) {
		for (int cpu = 0; cpu < ncpus; cpu++)
			v[cpu] = (uint64_t)(c + 1) * (uint64_t)(cpu + 1);
		assert_int_equal(bpf_map_update_elem(maps[M_COUNTERS].fd, &c, v, BPF_ANY), 0);
	}
	free(v);
	assert_int_equal(run(true, "counters --json"), 0);
	root = parse_out();
	/* Sum over CPUs of (c + 1) * (cpu + 1) = (c + 1) * n (n + 1) / 2. */
	for (int c = 0; c < SLUICE_C_MAX; c++) {
		snprintf(path, sizeof(path), "counters.%s", sluice_counter_names[c]);
		assert_int_equal(json_path_int(&root, path), (c + 1) * ncpus * (ncpus + 1) / 2);
	}
	assert_int_equal(json_path_int(&root, "counters.steer_fallback"),
			 SLUICE_C_MAX * ncpus * (ncpus + 1) / 2);
	assert_int_equal(run(true, "counters"), 0);
	assert_non_null(strstr(out, "xdp_drop_deny"));
}

/* ---- tenants ---- */

static void put_tenant(__u32 id, const struct sluice_tenant_state *s)
{
	assert_int_equal(bpf_map_update_elem(maps[M_TENANTS].fd, &id, s, BPF_ANY), 0);
}

static void test_tenants(void **state)
{
	struct sluice_tenant_state acme = {
		.conn_interval_ns = 10000000, .conn_burst = 20, .max_connections = 50,
		.worker_group = 2, .configured = 1,
		.conn_bucket = { .passed = 7, .dropped = 3 },
		.active_connections = 4, .connections_total = 11,
		.requests = 9, .tokens_in = 100, .tokens_out = 200,
	};
	struct sluice_tenant_state anon = { .connections_total = 1 };
	struct json_val root, t;

	(void)state;
	put_tenant(5, &acme);
	put_tenant(0, &anon);
	assert_int_equal(run(true, "tenants --json"), 0);
	root = parse_out();
	assert_int_equal(json_len(&root, "tenants"), 2);
	t = json_elem(&root, "tenants", 0);
	assert_true(json_path_str_eq(&t, "name", "anonymous"));
	t = json_elem(&root, "tenants", 1);
	assert_int_equal(json_path_int(&t, "id"), 5);
	assert_true(json_path_str_eq(&t, "name", "#5"));
	assert_int_equal(json_path_int(&t, "conn_rate"), 100);
	assert_int_equal(json_path_int(&t, "max_connections"), 50);
	assert_int_equal(json_path_int(&t, "conn_dropped"), 3);
	assert_int_equal(json_path_int(&t, "tokens_out"), 200);
	assert_int_equal(json_path_int(&t, "worker_group"), 2);

	assert_int_equal(run(true, "tenants"), 0);
	assert_non_null(strstr(out, "100/s"));
	assert_non_null(strstr(out, "anonymous"));
	assert_non_null(strstr(out, "unlimited"));	/* the anonymous tenant's limits */
}

/* -c gives names; --pin-root comes from the config's kernel.pin_root. */
static void test_tenants_config_names(void **state)
{
	char args[512];

	(void)state;
	snprintf(args, sizeof(args), "tenants -c %s", config_path);
	assert_int_equal(run_bare(args), 0);
	assert_non_null(strstr(out, "acme"));
}

/* ---- deny ---- */

static void check_deny_entry(const struct sluice_lpm_key *key, __u32 reason)
{
	struct sluice_deny_entry e;

	assert_int_equal(bpf_map_lookup_elem(maps[M_DENY].fd, key, &e), 0);
	assert_int_equal(e.reason, reason);
	assert_true(e.added_ns > 0 && e.added_ns <= now_ns());
}

static void test_deny_v4(void **state)
{
	struct sluice_lpm_key key = v4_key(10, 20, 0, 0, 16);
	struct sluice_deny_entry e;
	struct json_val root, d;

	(void)state;
	assert_int_equal(run(true, "deny add 10.20.0.0/16"), 0);
	check_deny_entry(&key, SLUICE_DENY_CLI);
	assert_int_equal(run(true, "deny add 10.20.0.0/16"), 1);
	assert_non_null(strstr(out, "already"));
	assert_int_equal(run(true, "deny list --json"), 0);
	root = parse_out();
	assert_int_equal(json_len(&root, "deny"), 1);
	d = json_elem(&root, "deny", 0);
	assert_true(json_path_str_eq(&d, "cidr", "10.20.0.0/16"));
	assert_true(json_path_str_eq(&d, "reason", "cli"));
	assert_int_equal(run(true, "deny del 10.20.0.0/16"), 0);
	assert_int_not_equal(bpf_map_lookup_elem(maps[M_DENY].fd, &key, &e), 0);
	assert_int_equal(run(true, "deny del 10.20.0.0/16"), 1);
	assert_non_null(strstr(out, "not in the deny list"));
}

static void test_deny_v6(void **state)
{
	struct sluice_lpm_key key = { .prefixlen = 32, .bytes = { 0x20, 0x01, 0x0d, 0xb8 } };
	struct sluice_lpm_key cfg = v4_key(192, 0, 2, 7, 32);
	struct sluice_deny_entry from_config = { .reason = SLUICE_DENY_CONFIG, .added_ns = 1 };

	(void)state;
	assert_int_equal(bpf_map_update_elem(maps[M_DENY].fd, &cfg, &from_config, BPF_ANY), 0);
	assert_int_equal(run(true, "--json deny add 2001:db8::/32"), 0);
	check_deny_entry(&key, SLUICE_DENY_CLI);
	assert_int_equal(run(true, "deny list"), 0);
	assert_non_null(strstr(out, "2001:db8::/32"));
	assert_non_null(strstr(out, "192.0.2.7/32"));
	assert_non_null(strstr(out, "config"));
	assert_int_equal(run(true, "deny del 2001:db8::/32"), 0);
	assert_int_equal(run(true, "deny del 192.0.2.7"), 0);	/* a bare address is a /32 */
	assert_int_equal(run(true, "deny list --json"), 0);
	assert_non_null(strstr(out, "{\"deny\":[]}"));
}

static void test_deny_bad_cidr(void **state)
{
	static const char *const bad[] = { "10.0.0.1/8", "nonsense", "10.0.0.0/33",
					   "2001:db8::1/32", "::/129" };

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (run(true, "deny add '%s'", bad[i]) != 1)
			fail_msg("deny add %s: want exit 1: %s", bad[i], out);
		assert_non_null(strstr(out, "not a network"));
	}
}

/* ---- sources ---- */

static void test_sources(void **state)
{
	uint64_t now = now_ns();
	struct json_val root, s;

	(void)state;
	for (uint8_t i = 1; i <= 3; i++) {
		struct sluice_lpm_key k = v4_key(198, 51, 100, i, 32);
		struct sluice_addr a;
		struct sluice_bucket b = { .passed = i * 10u, .dropped = i, .last_ns = now - i * 1000000000ull };

		memcpy(a.bytes, k.bytes, sizeof(a.bytes));
		assert_int_equal(bpf_map_update_elem(maps[M_SRC].fd, &a, &b, BPF_ANY), 0);
	}
	assert_int_equal(run(true, "sources --top 2 --json"), 0);
	root = parse_out();
	assert_int_equal(json_path_int(&root, "total"), 3);
	assert_int_equal(json_len(&root, "sources"), 2);
	s = json_elem(&root, "sources", 0);
	assert_true(json_path_str_eq(&s, "source", "198.51.100.1"));	/* the newest */
	assert_int_equal(json_path_int(&s, "passed"), 10);
	assert_true(json_path_int(&s, "last_seen_ago_ms") >= 1000);
	s = json_elem(&root, "sources", 1);
	assert_true(json_path_str_eq(&s, "source", "198.51.100.2"));
	assert_int_equal(run(true, "sources"), 0);
	assert_non_null(strstr(out, "198.51.100.3"));
}

/* ---- errors ---- */

static void test_exit_codes(void **state)
{
	(void)state;
	assert_int_equal(run_bare("--pin-root /nonexistent/sluice status"), 3);
	assert_int_equal(run(true, "bogus"), 2);
	assert_non_null(strstr(out, "usage:"));
	assert_int_equal(run(true, "%s", ""), 2);	/* no command */
	assert_int_equal(run(true, "deny"), 2);
	assert_int_equal(run(true, "deny add"), 2);
	assert_int_equal(run(true, "status extra"), 2);
	assert_int_equal(run(true, "sources --top 0"), 2);
	assert_int_equal(run(true, "--no-such-option status"), 2);
	assert_int_equal(run(false, "help"), 0);
	assert_non_null(strstr(out, "deny add CIDR"));
	assert_int_equal(run(false, "help sources"), 0);
	assert_int_equal(run(false, "--help"), 0);
}

static void test_missing_pin_root_message(void **state)
{
	(void)state;
	assert_int_equal(run_bare("counters --pin-root /nonexistent/sluice"), 3);
	assert_non_null(strstr(out, "no sluice maps under /nonexistent/sluice"));
}

/* As nobody, the 0700 pin root cannot even be looked at. */
static void test_permission_denied(void **state)
{
	char line[2048];

	(void)state;
	if (access("/usr/bin/setpriv", X_OK) != 0)
		skip();
	snprintf(line, sizeof(line), "/usr/bin/setpriv --reuid=65534 --regid=65534 "
		 "--clear-groups %s --pin-root %s status 2>&1", sluicectl, pin_root);
	assert_int_equal(run_line(line), 4);
	assert_non_null(strstr(out, "needs root or CAP_BPF"));
}

static void test_layout_mismatch(void **state)
{
	struct sluice_meta m = test_meta();

	(void)state;
	m.layout_version = SLUICE_LAYOUT_VERSION + 98;
	assert_int_equal(write_meta(m), 0);
	assert_int_equal(run(true, "status"), 3);
	assert_non_null(strstr(out, "layout version"));
	assert_int_equal(run(true, "deny list"), 3);
}

static int restore_meta(void **state)
{
	(void)state;
	return write_meta(test_meta());
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_status_json),
		cmocka_unit_test(test_status_table),
		cmocka_unit_test(test_counters),
		cmocka_unit_test(test_tenants),
		cmocka_unit_test(test_tenants_config_names),
		cmocka_unit_test(test_deny_v4),
		cmocka_unit_test(test_deny_v6),
		cmocka_unit_test(test_deny_bad_cidr),
		cmocka_unit_test(test_sources),
		cmocka_unit_test(test_exit_codes),
		cmocka_unit_test(test_missing_pin_root_message),
		cmocka_unit_test(test_permission_denied),
		cmocka_unit_test_teardown(test_layout_mismatch, restore_meta),
	};

	(void)argc;
	find_sluicectl(argv[0]);
	atexit(cleanup);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
