/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "maps.h"

/* Must agree with bpf/sluice.bpf.h (sk storage has no max_entries). */
const struct map_spec ctl_map_specs[CTL_NMAPS] = {
	{ SLUICE_MAP_META, BPF_MAP_TYPE_ARRAY, sizeof(__u32),
	  sizeof(struct sluice_meta), 1 },
	{ SLUICE_MAP_CONFIG, BPF_MAP_TYPE_ARRAY, sizeof(__u32),
	  sizeof(struct sluice_kconfig), 1 },
	{ SLUICE_MAP_TENANT_NETS, BPF_MAP_TYPE_LPM_TRIE, sizeof(struct sluice_lpm_key),
	  sizeof(struct sluice_tenant_ref), SLUICE_MAX_NETS },
	{ SLUICE_MAP_LEARNED, BPF_MAP_TYPE_LRU_HASH, sizeof(struct sluice_addr),
	  sizeof(struct sluice_learned), SLUICE_MAX_LEARNED },
	{ SLUICE_MAP_DENY, BPF_MAP_TYPE_LPM_TRIE, sizeof(struct sluice_lpm_key),
	  sizeof(struct sluice_deny_entry), SLUICE_MAX_NETS },
	{ SLUICE_MAP_SRC_BUCKETS, BPF_MAP_TYPE_LRU_HASH, sizeof(struct sluice_addr),
	  sizeof(struct sluice_bucket), SLUICE_MAX_SOURCES },
	{ SLUICE_MAP_TENANTS, BPF_MAP_TYPE_ARRAY, sizeof(__u32),
	  sizeof(struct sluice_tenant_state), SLUICE_MAX_TENANTS },
	{ SLUICE_MAP_COUNTERS, BPF_MAP_TYPE_PERCPU_ARRAY, sizeof(__u32),
	  sizeof(__u64), SLUICE_C_MAX },
	{ SLUICE_MAP_DAEMON, BPF_MAP_TYPE_ARRAY, sizeof(__u32),
	  sizeof(struct sluice_daemon_stats), 1 },
	{ SLUICE_MAP_QUOTA, BPF_MAP_TYPE_ARRAY, sizeof(__u32),
	  sizeof(struct sluice_quota_slot), SLUICE_MAX_QUOTA_SLOTS },
	{ SLUICE_MAP_SOCK_TAGS, BPF_MAP_TYPE_SK_STORAGE, sizeof(int),
	  sizeof(struct sluice_sock_tag), 0 },
};

static const struct map_spec *spec_of(const char *name)
{
	for (size_t i = 0; i < CTL_NMAPS; i++)
		if (strcmp(ctl_map_specs[i].name, name) == 0)
			return &ctl_map_specs[i];
	return NULL;
}

static int no_maps(const struct ctl *ctl)
{
	fprintf(stderr, "sluicectl: no sluice maps under %s "
		"(is sluiced running with kernel features on?)\n", ctl->pin_root);
	return CTL_NO_MAPS;
}

static int no_perm(const char *path)
{
	fprintf(stderr, "sluicectl: %s: permission denied (needs root or CAP_BPF)\n", path);
	return CTL_NO_PERM;
}

/* An errno from stat() or bpf_obj_get() as an exit code, with its message. */
static int open_error(const struct ctl *ctl, const char *path, int err, bool is_meta)
{
	if (err == EPERM || err == EACCES)
		return no_perm(path);
	if ((err == ENOENT || err == ENOTDIR) && is_meta)
		return no_maps(ctl);
	if (err == ENOENT || err == ENOTDIR) {
		fprintf(stderr, "sluicectl: %s: missing (sluiced did not create it)\n", path);
		return CTL_NO_MAPS;
	}
	fprintf(stderr, "sluicectl: %s: %s\n", path, strerror(err));
	return err == EINVAL ? CTL_NO_MAPS : CTL_FAILED;	/* EINVAL: not a BPF object */
}

/* bpf_obj_get of pin_root/name: an exit code, *fd on CTL_OK. */
static int obj_get(const struct ctl *ctl, const char *name, int *fd)
{
	char path[PATH_MAX];
	bool is_meta = strcmp(name, SLUICE_MAP_META) == 0;

	if (snprintf(path, sizeof(path), "%s/%s", ctl->pin_root, name) >= (int)sizeof(path)) {
		fprintf(stderr, "sluicectl: pin root too long: %s\n", ctl->pin_root);
		return CTL_USAGE;
	}
	*fd = bpf_obj_get(path);
	if (*fd >= 0)
		return CTL_OK;
	return open_error(ctl, path, errno, is_meta);	/* libbpf sets errno */
}

static int map_info(int fd, struct bpf_map_info *info)
{
	__u32 len = sizeof(*info);

	memset(info, 0, sizeof(*info));
	return bpf_obj_get_info_by_fd(fd, info, &len) ? -errno : 0;
}

static bool matches(const struct bpf_map_info *info, const struct map_spec *spec)
{
	return info->type == spec->type && info->key_size == spec->key_size &&
	       info->value_size == spec->value_size &&
	       (spec->max_entries == 0 || info->max_entries == spec->max_entries);
}

int maps_open(const struct ctl *ctl, const char *name, int *fd)
{
	const struct map_spec *spec = spec_of(name);
	struct bpf_map_info info;
	int rc;

	if (!spec)
		return CTL_FAILED;
	rc = obj_get(ctl, name, fd);
	if (rc != CTL_OK)
		return rc;
	if (map_info(*fd, &info) == 0 && matches(&info, spec))
		return CTL_OK;
	fprintf(stderr, "sluicectl: %s/%s: type %u, key %u, value %u bytes, %u entries "
		"is not the layout this sluicectl reads (layout version %d)\n",
		ctl->pin_root, name, info.type, info.key_size, info.value_size,
		info.max_entries, SLUICE_LAYOUT_VERSION);
	close(*fd);
	*fd = -1;
	return CTL_NO_MAPS;
}

static int layout_mismatch(const struct ctl *ctl, __u32 version)
{
	fprintf(stderr, "sluicectl: maps under %s have layout version %u, this sluicectl "
		"reads version %d: use the sluicectl built with the running sluiced\n",
		ctl->pin_root, version, SLUICE_LAYOUT_VERSION);
	return CTL_NO_MAPS;
}

/* The layout version is the meta record's first field in every layout, so
 * it is read into a buffer of the map's own value size before anything
 * else is trusted. */
static int read_version(const struct ctl *ctl, int fd, __u32 *version)
{
	struct bpf_map_info info;
	__u32 key = 0;
	void *val;
	int err;

	if (map_info(fd, &info) || info.type != BPF_MAP_TYPE_ARRAY ||
	    info.key_size != sizeof(key) || info.value_size < sizeof(*version))
		return layout_mismatch(ctl, 0);
	val = calloc(1, info.value_size);
	if (!val)
		return CTL_FAILED;
	err = bpf_map_lookup_elem(fd, &key, val);
	if (!err)
		memcpy(version, val, sizeof(*version));
	free(val);
	if (err) {
		fprintf(stderr, "sluicectl: reading %s: %s\n", SLUICE_MAP_META, strerror(errno));
		return CTL_FAILED;
	}
	return CTL_OK;
}

static int check_pin_root(const struct ctl *ctl)
{
	struct stat st;

	if (stat(ctl->pin_root, &st) == 0)
		return S_ISDIR(st.st_mode) ? CTL_OK : no_maps(ctl);
	return open_error(ctl, ctl->pin_root, errno, true);
}

int maps_read_meta(const struct ctl *ctl, struct sluice_meta *meta)
{
	__u32 version = 0, key = 0;
	int fd, rc;

	rc = check_pin_root(ctl);
	if (rc == CTL_OK)
		rc = obj_get(ctl, SLUICE_MAP_META, &fd);
	if (rc != CTL_OK)
		return rc;
	rc = read_version(ctl, fd, &version);
	if (rc == CTL_OK && version != SLUICE_LAYOUT_VERSION)
		rc = layout_mismatch(ctl, version);
	close(fd);
	if (rc == CTL_OK)
		rc = maps_open(ctl, SLUICE_MAP_META, &fd);	/* now the full check */
	if (rc != CTL_OK)
		return rc;
	if (bpf_map_lookup_elem(fd, &key, meta)) {
		fprintf(stderr, "sluicectl: reading %s: %s\n", SLUICE_MAP_META, strerror(errno));
		rc = CTL_FAILED;
	}
	close(fd);
	return rc;
}

int maps_open_checked(const struct ctl *ctl, const char *name, int *fd)
{
	struct sluice_meta meta;
	int rc = maps_read_meta(ctl, &meta);

	return rc == CTL_OK ? maps_open(ctl, name, fd) : rc;
}

long maps_count_entries(int fd, __u32 key_size, __u32 max_entries)
{
	unsigned char a[64], b[64];
	void *prev = NULL, *next = a;
	long n = 0;

	if (key_size > sizeof(a))
		return -1;
	/* LRU eviction may restart the walk; the bound keeps it finite. */
	while (n <= (long)max_entries && bpf_map_get_next_key(fd, prev, next) == 0) {
		n++;
		prev = next;
		next = next == a ? b : a;
	}
	if (n == 0 && errno != ENOENT)
		return -1;
	return n > (long)max_entries ? (long)max_entries : n;
}

/* Arrays always hold max_entries; hashes and tries are walked. */
static long probe_entries(int fd, const struct bpf_map_info *info)
{
	switch (info->type) {
	case BPF_MAP_TYPE_ARRAY:
	case BPF_MAP_TYPE_PERCPU_ARRAY:
		return info->max_entries;
	case BPF_MAP_TYPE_HASH:
	case BPF_MAP_TYPE_LRU_HASH:
	case BPF_MAP_TYPE_LPM_TRIE:
		return maps_count_entries(fd, info->key_size, info->max_entries);
	default:
		return -1;
	}
}

void maps_probe(const struct ctl *ctl, const struct map_spec *spec, struct map_probe *out)
{
	char path[PATH_MAX];
	struct bpf_map_info info;
	int fd;

	memset(out, 0, sizeof(*out));
	out->entries = -1;
	snprintf(path, sizeof(path), "%s/%s", ctl->pin_root, spec->name);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return;
	out->present = true;
	if (map_info(fd, &info) == 0) {
		out->layout_ok = matches(&info, spec);
		out->max_entries = info.max_entries;
		if (out->layout_ok)
			out->entries = probe_entries(fd, &info);
	}
	close(fd);
}

int maps_read_counters(int fd, uint64_t sums[SLUICE_C_MAX])
{
	int ncpus = libbpf_num_possible_cpus();
	uint64_t *percpu;
	int err = 0;

	if (ncpus <= 0)
		return ncpus < 0 ? ncpus : -EINVAL;
	/* Per-CPU values are copied at 8-byte strides: one __u64 per CPU. */
	percpu = calloc((size_t)ncpus, sizeof(*percpu));
	if (!percpu)
		return -ENOMEM;
	for (__u32 c = 0; c < SLUICE_C_MAX && !err; c++) {
		sums[c] = 0;
		if (bpf_map_lookup_elem(fd, &c, percpu)) {
			err = -errno;
			break;
		}
		for (int cpu = 0; cpu < ncpus; cpu++)
			sums[c] += percpu[cpu];
	}
	free(percpu);
	return err;
}

/* An mmapable array's mapping: its values, rounded up to whole pages. */
static size_t array_map_len(size_t value_size, size_t entries)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t len = value_size * entries;

	return (len + page - 1) / page * page;
}

static size_t tenants_map_len(void)
{
	return array_map_len(sizeof(struct sluice_tenant_state), SLUICE_MAX_TENANTS);
}

static int copy_tenants(int fd, struct tenant_table *t)
{
	t->copy = calloc(SLUICE_MAX_TENANTS, sizeof(*t->copy));
	if (!t->copy)
		return -ENOMEM;
	for (__u32 id = 0; id < SLUICE_MAX_TENANTS; id++)
		if (bpf_map_lookup_elem(fd, &id, &t->copy[id]))
			return -errno;
	t->state = t->copy;
	return 0;
}

int maps_read_tenants(int fd, struct tenant_table *t)
{
	/* An mmapable array lays values out at round_up(value_size, 8): the
	 * struct's size is a multiple of 8, so the mapping is a plain array. */
	_Static_assert(sizeof(struct sluice_tenant_state) % 8 == 0, "tenant stride");
	size_t len = tenants_map_len();
	void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);

	memset(t, 0, sizeof(*t));
	if (p == MAP_FAILED)
		return copy_tenants(fd, t);
	t->mapped = p;
	t->mapped_len = len;
	t->state = p;
	return 0;
}

void maps_release_tenants(struct tenant_table *t)
{
	if (t->mapped)
		munmap(t->mapped, t->mapped_len);
	free(t->copy);
	memset(t, 0, sizeof(*t));
}

static int map_failed(const struct ctl *ctl, const char *name, int err)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", ctl->pin_root, name);
	if (err == EPERM || err == EACCES)
		return no_perm(path);
	fprintf(stderr, "sluicectl: %s: cannot map it (%s): sluiced creates it mmapable\n",
		path, strerror(err));
	return CTL_FAILED;
}

int maps_map_tenants_rw(const struct ctl *ctl, int fd, struct sluice_tenant_state **state,
			size_t *len)
{
	size_t n = tenants_map_len();
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED)
		return map_failed(ctl, SLUICE_MAP_TENANTS, errno);
	*state = p;
	*len = n;
	return CTL_OK;
}

int maps_map_quota(const struct ctl *ctl, int fd, bool writable,
		   struct sluice_quota_slot **slots, size_t *len)
{
	/* Values of an mmapable array sit at round_up(value_size, 8). */
	_Static_assert(sizeof(struct sluice_quota_slot) % 8 == 0, "quota slot stride");
	size_t n = array_map_len(sizeof(struct sluice_quota_slot), SLUICE_MAX_QUOTA_SLOTS);
	int prot = PROT_READ | (writable ? PROT_WRITE : 0);
	void *p = mmap(NULL, n, prot, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED)
		return map_failed(ctl, SLUICE_MAP_QUOTA, errno);
	*slots = p;
	*len = n;
	return CTL_OK;
}

uint64_t ctl_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
