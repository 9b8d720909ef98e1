/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sluicectl against maps this test creates and pins itself, under a pin
 * root of its own (/sys/fs/bpf/sluice-test-<pid>-ctl): never the real one.
 * Needs root (BPF maps, bpffs).  The binary is $SLUICECTL, else the
 * sluicectl next to this test's build directory, else ./build/sluicectl.
 */
#include <dirent.h>
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
#include "auth/apikey.h"
#define SLUICE_COUNTER_NAMES
#include "sluice_maps.h"
#include "quota/tenants.h"
#include "quota/quota.h"	/* after the names: it includes sluice_maps.h too */

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
	  sizeof(struct sluice_learned), SLUICE_MAX_LEARNED, 0, -1 },
	{ SLUICE_MAP_DENY, BPF_MAP_TYPE_LPM_TRIE, sizeof(struct sluice_lpm_key),
	  sizeof(struct sluice_deny_entry), SLUICE_MAX_NETS, BPF_F_NO_PREALLOC, -1 },
	{ SLUICE_MAP_SRC_BUCKETS, BPF_MAP_TYPE_LRU_HASH, sizeof(struct sluice_addr),
	  sizeof(struct sluice_bucket), SLUICE_MAX_SOURCES, 0, -1 },
	{ SLUICE_MAP_TENANTS, BPF_MAP_TYPE_ARRAY, 4, sizeof(struct sluice_tenant_state),
	  SLUICE_MAX_TENANTS, BPF_F_MMAPABLE, -1 },
	{ SLUICE_MAP_COUNTERS, BPF_MAP_TYPE_PERCPU_ARRAY, 4, sizeof(__u64), SLUICE_C_MAX, 0, -1 },
	{ SLUICE_MAP_DAEMON, BPF_MAP_TYPE_ARRAY, 4, sizeof(struct sluice_daemon_stats), 1,
	  BPF_F_MMAPABLE, -1 },
	{ SLUICE_MAP_QUOTA, BPF_MAP_TYPE_ARRAY, 4, sizeof(struct sluice_quota_slot),
	  SLUICE_MAX_QUOTA_SLOTS, BPF_F_MMAPABLE, -1 },
	/* sluice_sktags (sk storage) needs BTF to create: status shows it missing. */
};
#define NMAPS (sizeof(maps) / sizeof(maps[0]))
enum { M_META, M_CONFIG, M_TNETS, M_LEARNED, M_DENY, M_SRC, M_TENANTS, M_COUNTERS, M_DAEMON,
       M_QUOTA };

static char pin_root[64];
static char config_path[128];
static char keys_dir[128];	/* keys files of the key tests */
static char acme_keys[192];	/* acme's keys_file in the config */
static char sluicectl[1024];
static char out[OUT_CAP];

/* ---- fixture ---- */

/* The keys files the tests made (and any temporary file left beside them). */
static void remove_keys_dir(void)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d = opendir(keys_dir);

	while (d && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", keys_dir, de->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
	rmdir(keys_dir);
}

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
	if (keys_dir[0])
		remove_keys_dir();
	pin_root[0] = config_path[0] = keys_dir[0] = '\0';
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
	snprintf(keys_dir, sizeof(keys_dir), "/tmp/sluice-test-%d-ctl-keys", (int)getpid());
	snprintf(acme_keys, sizeof(acme_keys), "%s/acme.keys", keys_dir);
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
		   "    keys_file: %s\n"
		   "  - name: globex\n", pin_root, acme_keys);
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

/* Slots 5 and 6 belong to acme and globex, by name as the daemon's
 * registry writes them (quota/tenants.c); sluicectl finds them so. */
static void put_tenant(__u32 id, const struct sluice_tenant_state *s)
{
	struct sluice_tenant_state st = *s;
	const char *name = id == 5 ? "acme" : id == 6 ? "globex" : NULL;

	if (name && !st.name_hash) {
		st.name_len = (__u32)strlen(name);
		memcpy(st.name, name, st.name_len);
		st.name_hash = tenants_name_hash(name, st.name_len);
	}
	assert_int_equal(bpf_map_update_elem(maps[M_TENANTS].fd, &id, &st, BPF_ANY), 0);
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

/* ---- quota ---- */

static struct sluice_tenant_state get_tenant(__u32 id)
{
	struct sluice_tenant_state s;

	assert_int_equal(bpf_map_lookup_elem(maps[M_TENANTS].fd, &id, &s), 0);
	return s;
}

static uint64_t unix_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A tenant's limits and usage out of `tenants --json`, by id. */
static struct json_val tenant_json(__u32 id)
{
	struct json_val root = parse_out(), t;
	size_t n = json_len(&root, "tenants");

	for (size_t i = 0; i < n; i++) {
		t = json_elem(&root, "tenants", i);
		if (json_path_int(&t, "id") == (int64_t)id)
			return t;
	}
	fail_msg("no tenant %u in %s", id, out);
	return t;
}

static bool json_path_null(const struct json_val *root, const char *path)
{
	struct json_val v;

	return json_get_path(root, path, &v) == 0 && v.type == JSON_NULL;
}

static void test_quota_set(void **state)
{
	struct sluice_tenant_state s = { .configured = 1, .requests = 42 };
	struct json_val t;
	char args[512];

	(void)state;
	put_tenant(5, &s);
	assert_int_equal(run(true, "quota set 5 --requests-per-minute 600 --tokens-per-minute "
				   "100000 --concurrent 8 --tokens-per-day 1000000"), 0);
	s = get_tenant(5);
	assert_int_equal(s.limits.requests_per_minute, 600);
	assert_int_equal(s.limits.tokens_per_minute, 100000);
	assert_int_equal(s.limits.concurrent, 8);
	assert_int_equal(s.limits.tokens_per_day, 1000000);
	assert_int_equal(s.requests, 42);	/* nothing else written */
	assert_int_equal(s.blocked, 0);

	/* Only the options given change; by name through the config. */
	snprintf(args, sizeof(args), "-c %s quota set acme --tokens-per-month 5000000 "
		 "--input-tokens-per-minute 70000 --output-tokens-per-minute unlimited", config_path);
	assert_int_equal(run_bare(args), 0);
	assert_non_null(strstr(out, "acme"));
	assert_int_equal(run(true, "tenants --json"), 0);
	t = tenant_json(5);
	assert_int_equal(json_path_int(&t, "limits.requests_per_minute"), 600);
	assert_int_equal(json_path_int(&t, "limits.tokens_per_minute"), 100000);
	assert_int_equal(json_path_int(&t, "limits.input_tokens_per_minute"), 70000);
	assert_true(json_path_null(&t, "limits.output_tokens_per_minute"));
	assert_int_equal(json_path_int(&t, "limits.concurrent"), 8);
	assert_int_equal(json_path_int(&t, "limits.tokens_per_day"), 1000000);
	assert_int_equal(json_path_int(&t, "limits.tokens_per_month"), 5000000);
	assert_int_equal(json_path_int(&t, "usage.requests_minute"), 0);
	assert_int_equal(run(true, "tenants"), 0);
	assert_non_null(strstr(out, "0/600"));
	assert_non_null(strstr(out, "0/1000000"));

	/* Back to unlimited; --json answers with the limits. */
	assert_int_equal(run(true, "--json quota set 5 --requests-per-minute 0"), 0);
	t = parse_out();
	assert_true(json_path_null(&t, "limits.requests_per_minute"));
	assert_int_equal(json_path_int(&t, "limits.concurrent"), 8);
	assert_int_equal(get_tenant(5).limits.requests_per_minute, 0);
}

/* Raising a spent budget unblocks at once; lowering it below what was
 * used blocks. */
static void test_quota_set_follows_budget(void **state)
{
	uint64_t now = unix_ms();
	struct sluice_tenant_state s = { .configured = 1, .blocked = 1 };

	(void)state;
	s.limits.tokens_per_day = 100;
	s.usage.day = quota_day(now);
	s.usage.tokens_day = 150;
	put_tenant(8, &s);
	assert_int_equal(run(true, "quota set 8 --tokens-per-day 1000"), 0);
	assert_int_equal(get_tenant(8).blocked, 0);
	assert_int_equal(run(true, "quota set 8 --tokens-per-day 120"), 0);
	assert_int_equal(get_tenant(8).blocked, 1);
	assert_non_null(strstr(out, "blocked"));
	memset(&s, 0, sizeof(s));
	put_tenant(8, &s);
}

static void put_slot(__u32 index, uint32_t kind, uint32_t tenant, const char *name,
		     const struct sluice_usage *u)
{
	struct sluice_quota_slot slot = { .kind = kind, .tenant = tenant, .usage = *u };

	snprintf(slot.name, sizeof(slot.name), "%s", name);
	slot.limits.tokens_per_day = 777;
	assert_int_equal(bpf_map_update_elem(maps[M_QUOTA].fd, &index, &slot, BPF_ANY), 0);
}

static struct sluice_quota_slot get_slot(__u32 index)
{
	struct sluice_quota_slot slot;

	assert_int_equal(bpf_map_lookup_elem(maps[M_QUOTA].fd, &index, &slot), 0);
	return slot;
}

static void test_quota_reset(void **state)
{
	uint64_t now = unix_ms();
	struct sluice_usage used = {
		.minute = quota_minute(now), .requests_minute = 7, .tokens_minute = 100,
		.input_tokens_minute = 60, .output_tokens_minute = 40,
		.day = quota_day(now), .tokens_day = 500,
		.month = quota_month(now), .tokens_month = 900,
		.concurrent = 2, .reserved_tokens = 30, .denied = 4,
	};
	struct sluice_tenant_state s = { .configured = 1, .blocked = 1, .usage = used };
	struct json_val root, t;

	(void)state;
	s.limits.requests_per_minute = 10;
	put_tenant(5, &s);
	put_slot(3, SLUICE_QUOTA_KEY, 5, "0123456789ab", &used);
	put_slot(4, SLUICE_QUOTA_MODEL, 5, "gpt-4o", &used);
	put_slot(5, SLUICE_QUOTA_KEY, 6, "ba9876543210", &used);	/* another tenant's */

	assert_int_equal(run(true, "tenants --json"), 0);
	t = tenant_json(5);
	assert_true(json_path_bool(&t, "blocked"));
	assert_int_equal(json_path_int(&t, "usage.requests_minute"), 7);
	assert_int_equal(json_path_int(&t, "usage.tokens_minute"), 100);
	assert_int_equal(json_path_int(&t, "usage.tokens_day"), 500);
	assert_int_equal(json_path_int(&t, "usage.tokens_month"), 900);
	assert_int_equal(json_path_int(&t, "usage.concurrent"), 2);
	assert_int_equal(json_path_int(&t, "usage.denied"), 4);
	assert_int_equal(run(true, "tenants"), 0);
	assert_non_null(strstr(out, "7/10"));

	assert_int_equal(run(true, "quota show 5 --json"), 0);
	root = parse_out();
	assert_int_equal(json_len(&root, "keys"), 1);
	assert_int_equal(json_len(&root, "models"), 1);
	t = json_elem(&root, "keys", 0);
	assert_true(json_path_str_eq(&t, "id", "0123456789ab"));
	assert_int_equal(json_path_int(&t, "usage.tokens_day"), 500);
	assert_int_equal(json_path_int(&t, "limits.tokens_per_day"), 777);
	t = json_elem(&root, "models", 0);
	assert_true(json_path_str_eq(&t, "model", "gpt-4o"));
	assert_int_equal(json_path_int(&root, "usage.input_tokens_minute"), 60);
	assert_int_equal(run(true, "quota show 5"), 0);
	assert_non_null(strstr(out, "gpt-4o"));
	assert_non_null(strstr(out, "BLOCKED"));

	assert_int_equal(run(true, "quota reset 5"), 0);
	assert_non_null(strstr(out, "1 API key"));
	s = get_tenant(5);
	assert_int_equal(s.blocked, 0);
	assert_int_equal(s.usage.requests_minute, 0);
	assert_int_equal(s.usage.tokens_minute, 0);
	assert_int_equal(s.usage.tokens_day, 0);
	assert_int_equal(s.usage.tokens_month, 0);
	assert_int_equal(s.usage.concurrent, 2);	/* in flight: released later */
	assert_int_equal(s.usage.lock, 0);
	assert_int_equal(s.limits.requests_per_minute, 10);
	assert_int_equal(get_slot(3).usage.tokens_day, 0);
	assert_int_equal(get_slot(3).usage.requests_minute, 0);
	assert_int_equal(get_slot(4).usage.tokens_month, 0);
	assert_int_equal(get_slot(5).usage.tokens_day, 500);	/* untouched */
	assert_int_equal(run(true, "tenants --json"), 0);
	t = tenant_json(5);
	assert_false(json_path_bool(&t, "blocked"));
	assert_int_equal(json_path_int(&t, "usage.tokens_day"), 0);

	memset(&used, 0, sizeof(used));
	put_slot(3, SLUICE_QUOTA_FREE, 0, "", &used);
	put_slot(4, SLUICE_QUOTA_FREE, 0, "", &used);
	put_slot(5, SLUICE_QUOTA_FREE, 0, "", &used);
}

/* Counters of a window that has ended read as 0. */
static void test_quota_old_windows(void **state)
{
	uint64_t now = unix_ms();
	struct sluice_tenant_state s = { .configured = 1 };
	struct json_val t;

	(void)state;
	s.usage.minute = quota_minute(now) - 2;
	s.usage.requests_minute = 9;
	s.usage.day = quota_day(now) - 1;
	s.usage.tokens_day = 99;
	s.usage.month = quota_month(now);
	s.usage.tokens_month = 1234;
	put_tenant(5, &s);
	assert_int_equal(run(true, "tenants --json"), 0);
	t = tenant_json(5);
	assert_int_equal(json_path_int(&t, "usage.requests_minute"), 0);
	assert_int_equal(json_path_int(&t, "usage.tokens_day"), 0);
	assert_int_equal(json_path_int(&t, "usage.tokens_month"), 1234);
}

static void test_quota_errors(void **state)
{
	char args[512];

	(void)state;
	assert_int_equal(run(true, "quota"), 2);
	assert_int_equal(run(true, "quota set 5"), 2);	/* no limit given */
	assert_non_null(strstr(out, "at least one limit"));
	assert_int_equal(run(true, "quota show 5 --concurrent 3"), 2);
	assert_int_equal(run(true, "quota reset"), 2);
	assert_int_equal(run(true, "quota frob 5"), 2);
	assert_int_equal(run(true, "quota set 5 --concurrent -1"), 2);
	assert_int_equal(run(true, "quota set 5 --concurrent 4294967296"), 2);
	assert_int_equal(run(true, "quota set 5 --tokens-per-day lots"), 2);
	assert_int_equal(run(true, "quota set nosuch --concurrent 1"), 1);
	assert_non_null(strstr(out, "no config"));
	assert_int_equal(run(true, "quota reset 1024"), 1);
	snprintf(args, sizeof(args), "-c %s --pin-root %s quota reset nosuch", config_path,
		 pin_root);
	assert_int_equal(run_bare(args), 1);
	assert_non_null(strstr(out, "no tenant 'nosuch'"));
	assert_int_equal(run_bare("--pin-root /nonexistent/sluice quota show 5"), 3);
}

/* ---- keys ---- */

/* The key printed on stdout: one line of APIKEY_LEN characters. */
static void take_key(char key[APIKEY_LEN + 1])
{
	if (strlen(out) != APIKEY_LEN + 1 || out[APIKEY_LEN] != '\n')
		fail_msg("want one key line on stdout, got: %s", out);
	memcpy(key, out, APIKEY_LEN);
	key[APIKEY_LEN] = '\0';
}

/* The key verifies against what the file now holds. */
static void assert_key_valid(const char *path, const char *key, bool valid)
{
	struct apikey_source src = { .tenant = 5, .path = path };
	struct apikeys *k = NULL;
	char err[256] = "", id[APIKEY_ID_LEN + 1];
	uint32_t tenant = 0;

	if (apikeys_load(&src, 1, &k, err, sizeof(err)))
		fail_msg("load %s: %s", path, err);
	assert_int_equal(apikeys_verify(k, key, strlen(key), &tenant, id), valid ? 0 : -ENOENT);
	apikeys_free(k);
}

static void test_key_with_keys_file(void **state)
{
	char path[256], key[APIKEY_LEN + 1], id[APIKEY_ID_LEN + 1], want[64];
	struct json_val root, k;
	struct stat st;

	(void)state;
	snprintf(path, sizeof(path), "%s/by-flag.keys", keys_dir);
	assert_int_equal(run(false, "key create acme --keys-file %s --label 'ci job'", path), 0);
	take_key(key);
	memcpy(id, key + 10, APIKEY_ID_LEN);
	id[APIKEY_ID_LEN] = '\0';
	assert_key_valid(path, key, true);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	assert_int_equal(run(true, "key list acme --keys-file %s --json", path), 0);
	root = parse_out();
	assert_int_equal(json_len(&root, "keys"), 1);
	k = json_elem(&root, "keys", 0);
	assert_true(json_path_str_eq(&k, "id", id));
	assert_true(json_path_str_eq(&k, "label", "ci job"));
	assert_null(strstr(out, key + 23));	/* never the secret, never a hash */
	assert_int_equal(run(true, "key list acme --keys-file %s", path), 0);
	assert_non_null(strstr(out, "ci job"));

	assert_int_equal(run(true, "key revoke acme %s --keys-file %s", id, path), 0);
	snprintf(want, sizeof(want), "revoked %s", id);
	assert_non_null(strstr(out, want));
	assert_key_valid(path, key, false);
	assert_int_equal(run(true, "key revoke acme %s --keys-file %s", id, path), 1);
	assert_non_null(strstr(out, "no key"));
	assert_int_equal(run(true, "key revoke acme sk-sluice-nonsense --keys-file %s", path), 1);
	assert_null(strstr(out, "nonsense"));	/* a would-be key is not echoed */
	assert_int_equal(run(true, "key list acme --keys-file %s --json", path), 0);
	root = parse_out();
	assert_int_equal(json_len(&root, "keys"), 0);
}

static void test_key_with_config(void **state)
{
	char args[512], key[2][APIKEY_LEN + 1], line[2048];
	struct json_val root, k;

	(void)state;
	assert_int_equal(run(false, "-c %s key create acme", config_path), 0);
	take_key(key[0]);
	assert_key_valid(acme_keys, key[0], true);

	/* $SLUICE_CONFIG stands for -c; --json carries the key and its id. */
	snprintf(line, sizeof(line), "SLUICE_CONFIG=%s %s --json key create acme --label two 2>&1",
		 config_path, sluicectl);
	assert_int_equal(run_line(line), 0);
	root = parse_out();
	assert_true(json_path_str_eq(&root, "keys_file", acme_keys));
	assert_true(json_path_str_eq(&root, "label", "two"));
	{
		struct json_val v;

		assert_int_equal(json_get_path(&root, "key", &v), 0);
		assert_int_equal(json_string(&v, key[1], sizeof(key[1])), APIKEY_LEN);
	}
	assert_key_valid(acme_keys, key[1], true);

	snprintf(args, sizeof(args), "-c %s key list 5 --json", config_path);	/* by id */
	assert_int_equal(run_bare(args), 0);
	root = parse_out();
	assert_int_equal(json_len(&root, "keys"), 2);
	k = json_elem(&root, "keys", 1);
	assert_true(json_path_str_eq(&k, "label", "two"));

	/* Revoke by the whole key, and a second argument that fails. */
	snprintf(args, sizeof(args), "-c %s key revoke acme %s ffffffffffff", config_path, key[0]);
	assert_int_equal(run_bare(args), 1);
	assert_non_null(strstr(out, "revoked"));
	assert_non_null(strstr(out, "no key ffffffffffff"));
	assert_key_valid(acme_keys, key[0], false);
	assert_key_valid(acme_keys, key[1], true);

	snprintf(args, sizeof(args), "-c %s key create globex", config_path);
	assert_int_equal(run_bare(args), 1);
	assert_non_null(strstr(out, "no keys_file"));
	snprintf(args, sizeof(args), "-c %s key list nosuch", config_path);
	assert_int_equal(run_bare(args), 1);
	assert_non_null(strstr(out, "no tenant 'nosuch'"));
}

static void test_key_errors(void **state)
{
	char path[256];

	(void)state;
	snprintf(path, sizeof(path), "%s/errors.keys", keys_dir);
	assert_int_equal(run(true, "key"), 2);
	assert_int_equal(run(true, "key create"), 2);
	assert_int_equal(run(true, "key revoke acme --keys-file %s", path), 2);
	assert_int_equal(run(true, "key list acme --label x --keys-file %s", path), 2);
	assert_int_equal(run(true, "key create acme --concurrent 3 --keys-file %s", path), 2);
	assert_int_equal(run(true, "key create acme --label 'a\tb' --keys-file %s", path), 2);
	assert_int_equal(run(true, "key drop acme --keys-file %s", path), 2);
	/* Neither a config nor --keys-file (the default config does not exist here). */
	if (access("/etc/sluice/sluice.yaml", F_OK) != 0) {
		assert_int_equal(run(true, "key create acme"), 2);
		assert_non_null(strstr(out, "--keys-file"));
	}
	assert_int_equal(access(path, F_OK), -1);	/* nothing was created */
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
		cmocka_unit_test(test_quota_set),
		cmocka_unit_test(test_quota_set_follows_budget),
		cmocka_unit_test(test_quota_reset),
		cmocka_unit_test(test_quota_old_windows),
		cmocka_unit_test(test_quota_errors),
		cmocka_unit_test(test_key_with_keys_file),
		cmocka_unit_test(test_key_with_config),
		cmocka_unit_test(test_key_errors),
		cmocka_unit_test(test_exit_codes),
		cmocka_unit_test(test_missing_pin_root_message),
		cmocka_unit_test(test_permission_denied),
		cmocka_unit_test_teardown(test_layout_mismatch, restore_meta),
	};

	(void)argc;
	unsetenv("SLUICE_CONFIG");	/* the key tests choose their config themselves */
	find_sluicectl(argv[0]);
	atexit(cleanup);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
