/* SPDX-License-Identifier: Apache-2.0 */
#include "kern/kern.h"
#include "kern/learned.h"

#include <errno.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "core/log.h"
#include "sockops.skel.h"
#include "steer.skel.h"
#include "xdp_guard.skel.h"

#ifndef BPF_FS_MAGIC
#define BPF_FS_MAGIC 0xcafe4a11
#endif

struct kern {
	const struct sluice_config *cfg;
	struct xdp_guard_bpf *xdp;
	struct sockops_bpf *sockops;
	struct steer_bpf *steer;
	int meta_fd, config_fd, tnets_fd, deny_fd, tenants_fd, counters_fd, sktags_fd;
	struct sluice_tenant_state *tenants;	/* mmap of the tenant array */
	size_t tenants_len;
	struct sluice_daemon_stats *daemon;	/* mmap of the daemon's counters */
	size_t daemon_len;
	struct sluice_quota_slot *quota;	/* mmap of the per-key/model slots */
	size_t quota_len;
	int ncpus;
	int sockops_fd;			/* the sockops link, -1 when off */
	int xdp_links[SLUICE_MAX_XDP_IFACES];
	unsigned nxdp;
	bool steer_attached;
	uint64_t learned_ttl_ns;		/* kernel.learned_ttl of the live config */
};

static const char *const pinned_maps[] = {
	SLUICE_MAP_META, SLUICE_MAP_CONFIG, SLUICE_MAP_TENANT_NETS, SLUICE_MAP_LEARNED,
	SLUICE_MAP_DENY, SLUICE_MAP_SRC_BUCKETS, SLUICE_MAP_TENANTS, SLUICE_MAP_COUNTERS,
	SLUICE_MAP_SOCK_TAGS, SLUICE_MAP_DAEMON, SLUICE_MAP_QUOTA,
};

static void say(struct kern_why *why, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void say(struct kern_why *why, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why->text, sizeof(why->text), fmt, ap);
	va_end(ap);
}

/* libbpf's own messages go to the debug log: failures reach the user as
 * one sentence in kern_why instead. */
__attribute__((format(printf, 2, 0)))
static int libbpf_log(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG || !log_enabled(LOG_DEBUG))
		return 0;
	char text[4096];
	vsnprintf(text, sizeof(text), fmt, ap);
	/* Verifier logs arrive as one message of many lines. */
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
		log_debug("libbpf: %s", line);
	return 0;
}

static const char *errno_hint(int err)
{
	switch (-err) {
	case EPERM:
	case EACCES:
		return "not permitted (needs root, or CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN)";
	case ENOSYS:
	case EOPNOTSUPP:
	case EINVAL:
		return "not supported by this kernel";
	default:
		return strerror(-err);
	}
}

/* ---- pin root ---- */

static int ensure_bpffs(const char *pin_root, struct kern_why *why)
{
	struct statfs st;
	if (strncmp(pin_root, "/sys/fs/bpf", 11) != 0)
		return 0;
	if (statfs("/sys/fs/bpf", &st) == 0 && st.f_type == BPF_FS_MAGIC)
		return 0;
	/* Like every BPF daemon, mount the BPF filesystem where it belongs. */
	if (mount("bpf", "/sys/fs/bpf", "bpf", 0, NULL)) {
		int err = -errno;
		say(why, "cannot mount the BPF filesystem at /sys/fs/bpf: %s", errno_hint(err));
		return err;
	}
	return 0;
}

static int mkdir_p(const char *path)
{
	char tmp[256];
	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0700) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0700) && errno != EEXIST)
		return -errno;
	return 0;
}

static void pin_path(char *out, size_t len, const char *root, const char *name)
{
	snprintf(out, len, "%s/%s", root, name);
}

static void unpin_all(const char *root)
{
	char path[512];
	for (size_t i = 0; i < sizeof(pinned_maps) / sizeof(*pinned_maps); i++) {
		pin_path(path, sizeof(path), root, pinned_maps[i]);
		unlink(path);
	}
}

/*
 * libbpf reuses a pinned map whose sizes match, whatever its fields mean,
 * so the layout version in the meta map decides: another version is a
 * refusal, unless the operator asked for the maps to be reset.
 */
static int check_layout(const char *root, bool reset, struct kern_why *why)
{
	char path[512];
	pin_path(path, sizeof(path), root, SLUICE_MAP_META);
	int fd = bpf_obj_get(path);
	if (fd < 0)
		return 0;	/* no maps yet */
	__u32 key = 0;
	struct sluice_meta meta = { 0 };
	int err = bpf_map_lookup_elem(fd, &key, &meta);
	close(fd);
	/* Version 0: maps a daemon created but never finished setting up. */
	if (!err && (meta.layout_version == SLUICE_LAYOUT_VERSION || meta.layout_version == 0))
		return 0;
	if (reset) {
		log_warn("removing pinned maps under %s (layout %u, this sluiced uses %u)",
			 root, meta.layout_version, SLUICE_LAYOUT_VERSION);
		unpin_all(root);
		return 0;
	}
	say(why, "the maps pinned under %s have layout version %u but this sluiced uses %u; "
	    "start it with --reset-maps to remove them (their counters and quotas are lost)",
	    root, meta.layout_version, SLUICE_LAYOUT_VERSION);
	return -ESTALE;
}

/* ---- loading ---- */

static int load_failed(struct kern_why *why, const char *what, int err)
{
	say(why, "cannot load the %s program: %s", what, errno_hint(err));
	return err;
}

static int load_objects(struct kern *k, const char *root, struct kern_why *why)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = root);
	int err;
	k->xdp = xdp_guard_bpf__open_opts(&opts);
	err = k->xdp ? xdp_guard_bpf__load(k->xdp) : -errno;
	if (err)
		return load_failed(why, "XDP", err);
	k->sockops = sockops_bpf__open_opts(&opts);
	err = k->sockops ? sockops_bpf__load(k->sockops) : -errno;
	if (err)
		return load_failed(why, "sockops", err);
	k->steer = steer_bpf__open_opts(&opts);
	err = k->steer ? steer_bpf__load(k->steer) : -errno;
	if (err)
		return load_failed(why, "steering", err);
	k->meta_fd = bpf_map__fd(k->xdp->maps.sluice_meta);
	k->config_fd = bpf_map__fd(k->xdp->maps.sluice_config);
	k->tnets_fd = bpf_map__fd(k->xdp->maps.sluice_tnets);
	k->deny_fd = bpf_map__fd(k->xdp->maps.sluice_deny);
	k->tenants_fd = bpf_map__fd(k->xdp->maps.sluice_tenants);
	k->counters_fd = bpf_map__fd(k->xdp->maps.sluice_counters);
	k->sktags_fd = bpf_map__fd(k->xdp->maps.sluice_sktags);
	return 0;
}

/* An mmapable array map in this process's memory, page-rounded. */
static void *map_shared(int fd, size_t bytes, size_t *len, const char *what,
			struct kern_why *why)
{
	long page = sysconf(_SC_PAGESIZE);
	*len = (bytes + (size_t)page - 1) / (size_t)page * (size_t)page;
	void *p = mmap(NULL, *len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		say(why, "cannot map the %s: %s", what, strerror(errno));
		return NULL;
	}
	return p;
}

static int map_arrays(struct kern *k, struct kern_why *why)
{
	k->tenants = map_shared(k->tenants_fd, SLUICE_MAX_TENANTS * sizeof(*k->tenants),
				&k->tenants_len, "tenant state", why);
	if (!k->tenants)
		return -ENOMEM;
	k->daemon = map_shared(bpf_map__fd(k->xdp->maps.sluice_daemon), sizeof(*k->daemon),
			       &k->daemon_len, "daemon counters", why);
	if (!k->daemon)
		return -ENOMEM;
	k->quota = map_shared(bpf_map__fd(k->xdp->maps.sluice_quota),
			      SLUICE_MAX_QUOTA_SLOTS * sizeof(*k->quota), &k->quota_len,
			      "quota slots", why);
	return k->quota ? 0 : -ENOMEM;
}

static int meta_read(const struct kern *k, struct sluice_meta *meta)
{
	__u32 key = 0;
	return bpf_map_lookup_elem(k->meta_fd, &key, meta) ? -errno : 0;
}

static int meta_write(const struct kern *k, const struct sluice_meta *meta)
{
	__u32 key = 0;
	return bpf_map_update_elem(k->meta_fd, &key, meta, BPF_ANY) ? -errno : 0;
}

static struct kern *kern_alloc(const struct sluice_config *cfg)
{
	struct kern *k = calloc(1, sizeof(*k));
	if (!k)
		return NULL;
	k->cfg = cfg;
	k->meta_fd = k->config_fd = k->tnets_fd = k->deny_fd = -1;
	k->tenants_fd = k->counters_fd = k->sktags_fd = -1;
	k->sockops_fd = -1;
	for (unsigned i = 0; i < SLUICE_MAX_XDP_IFACES; i++)
		k->xdp_links[i] = -1;
	return k;
}

/*
 * kernel.pin_links is for rolling restarts, where the old daemon closes its
 * listeners while the new one listens beside it: with tcp_migrate_req the
 * kernel moves the connections still queued on the closing listeners to
 * the group's others instead of resetting them (Linux 5.14+, per network
 * namespace).  Failing to set it costs the hand-over only those resets.
 */
static void enable_migrate_req(void)
{
	int fd = open("/proc/sys/net/ipv4/tcp_migrate_req", O_RDWR | O_CLOEXEC);
	char now = '0';
	if (fd >= 0 && pread(fd, &now, 1, 0) == 1 && now == '1') {
		close(fd);
		return;
	}
	if (fd < 0 || pwrite(fd, "1", 1, 0) != 1)
		log_warn("kernel.pin_links: cannot set net.ipv4.tcp_migrate_req=1 (%s): connections "
			 "queued on a draining sluiced's listeners may be reset during a restart",
			 strerror(errno));
	else
		log_info("kernel.pin_links: set net.ipv4.tcp_migrate_req=1 for restarts "
			 "without resets");
	if (fd >= 0)
		close(fd);
}

int kern_open(const struct sluice_config *cfg, bool reset_maps, struct kern **out,
	      struct kern_why *why)
{
	const char *root = cfg->kernel.pin_root;
	libbpf_set_print(libbpf_log);
	int err = ensure_bpffs(root, why);
	if (err)
		return err;
	if ((err = mkdir_p(root))) {
		say(why, "cannot create the pin root %s: %s", root, errno_hint(err));
		return err;
	}
	struct statfs st;
	if (statfs(root, &st) || st.f_type != BPF_FS_MAGIC) {
		say(why, "the pin root %s is not on a BPF filesystem (mount one there, "
		    "or use a path under /sys/fs/bpf)", root);
		return -ENOTSUP;
	}
	if ((err = check_layout(root, reset_maps, why)))
		return err;
	struct kern *k = kern_alloc(cfg);
	if (!k)
		return -ENOMEM;
	k->ncpus = libbpf_num_possible_cpus();
	if (k->ncpus <= 0)
		k->ncpus = 1;
	err = load_objects(k, root, why);
	if (!err)
		err = map_arrays(k, why);
	struct sluice_meta meta = { 0 };
	if (!err && !(err = meta_read(k, &meta))) {
		/* Fresh maps carry version 0: they are ours now. */
		memset(&meta, 0, sizeof(meta));
		meta.layout_version = SLUICE_LAYOUT_VERSION;
		meta.daemon_pid = (__u32)getpid();
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		meta.started_ns = (__u64)ts.tv_sec * 1000000000u + (__u64)ts.tv_nsec;
		err = meta_write(k, &meta);
	}
	if (err) {
		if (!why->text[0])
			say(why, "cannot set up the BPF maps: %s", errno_hint(err));
		kern_close(k);
		return err;
	}
	if (cfg->kernel.pin_links)
		enable_migrate_req();
	*out = k;
	return 0;
}

/* ---- config -> maps ---- */

static __u64 interval_ns(unsigned rate)
{
	return rate ? 1000000000ull / rate : 0;
}

static unsigned count_dedicated(const struct sluice_config *cfg)
{
	unsigned n = 0;
	for (size_t i = 0; i < cfg->ntenants; i++)
		n += cfg->tenants[i].workers == TENANT_WORKERS_DEDICATED;
	return n;
}

/* Dedicated tenants take the last workers, one each; the rest are shared.
 * With too few workers running for them (a reload asked for more), every
 * tenant shares. */
static int write_config_map(struct kern *k, const struct sluice_config *cfg, uint16_t port,
			    unsigned nworkers)
{
	struct sluice_kconfig c = { 0 };
	__u32 key = 0;
	c.ports[0] = port;
	c.src_interval_ns = interval_ns(cfg->kernel.source_conn_rate);
	c.src_burst = cfg->kernel.source_conn_burst ? cfg->kernel.source_conn_burst
						    : cfg->kernel.source_conn_rate;
	c.nworkers = nworkers;
	c.anon_tenant = cfg->auth.anonymous == ANON_TENANT ? cfg->auth.anonymous_tenant
							  : SLUICE_TENANT_ANON;
	unsigned dedicated = count_dedicated(cfg);
	if (dedicated + 1 > nworkers)
		dedicated = 0;
	c.group_first[0] = 0;
	c.group_count[0] = nworkers - dedicated;
	unsigned g = 1;
	for (size_t i = 0; dedicated && i < cfg->ntenants && g < SLUICE_MAX_GROUPS; i++) {
		if (cfg->tenants[i].workers != TENANT_WORKERS_DEDICATED)
			continue;
		c.group_first[g] = nworkers - dedicated + g - 1;
		c.group_count[g] = 1;
		g++;
	}
	return bpf_map_update_elem(k->config_fd, &key, &c, BPF_ANY) ? -errno : 0;
}

/* The worker group a tenant's connections are steered to (0 = shared). */
static unsigned tenant_group(const struct sluice_config *cfg, size_t idx)
{
	unsigned g = 0;
	for (size_t i = 0; i <= idx; i++)
		g += cfg->tenants[i].workers == TENANT_WORKERS_DEDICATED;
	return cfg->tenants[idx].workers == TENANT_WORKERS_DEDICATED ? g : 0;
}

/* Limits are rewritten in place; the kernel's live state (buckets,
 * active connections) and the daemon's counters are left as they are. */
static void write_tenant_limits(struct sluice_tenant_state *st, unsigned rate, unsigned burst,
				unsigned max_conns, unsigned group, bool configured)
{
	__atomic_store_n(&st->conn_interval_ns, interval_ns(rate), __ATOMIC_RELAXED);
	__atomic_store_n(&st->conn_burst, (__u64)(burst ? burst : rate), __ATOMIC_RELAXED);
	__atomic_store_n(&st->max_connections, max_conns, __ATOMIC_RELAXED);
	__atomic_store_n(&st->worker_group, group, __ATOMIC_RELAXED);
	__atomic_store_n(&st->configured, configured ? 1u : 0u, __ATOMIC_RELAXED);
}

static void write_tenants(struct kern *k, const struct sluice_config *cfg)
{
	bool seen[SLUICE_MAX_TENANTS] = { false };
	seen[SLUICE_TENANT_ANON] = true;
	write_tenant_limits(&k->tenants[SLUICE_TENANT_ANON], 0, 0, 0, 0, true);
	for (size_t i = 0; i < cfg->ntenants; i++) {
		const struct tenant_cfg *t = &cfg->tenants[i];
		if (t->id >= SLUICE_MAX_TENANTS)
			continue;
		seen[t->id] = true;
		write_tenant_limits(&k->tenants[t->id], t->conn_rate, t->conn_burst,
				    t->max_connections, tenant_group(cfg, i), true);
	}
	for (unsigned id = 0; id < SLUICE_MAX_TENANTS; id++)
		if (!seen[id] && k->tenants[id].configured)
			write_tenant_limits(&k->tenants[id], 0, 0, 0, 0, false);
}

static struct sluice_lpm_key lpm_key(const struct cidr_cfg *c)
{
	struct sluice_lpm_key key = { .prefixlen = c->prefixlen };
	memcpy(key.bytes, c->bytes, sizeof(key.bytes));
	return key;
}

static bool key_in(const struct sluice_lpm_key *key, const struct cidr_cfg *list, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct sluice_lpm_key k = lpm_key(&list[i]);
		if (memcmp(&k, key, sizeof(k)) == 0)
			return true;
	}
	return false;
}

static bool tenant_net_configured(const struct sluice_config *cfg, const struct sluice_lpm_key *key)
{
	for (size_t i = 0; i < cfg->ntenants; i++)
		if (key_in(key, cfg->tenants[i].networks, cfg->tenants[i].nnetworks))
			return true;
	return false;
}

/* New entries first, stale ones after: a lookup never finds a hole. */
static int write_tenant_nets(struct kern *k, const struct sluice_config *cfg)
{
	for (size_t i = 0; i < cfg->ntenants; i++) {
		const struct tenant_cfg *t = &cfg->tenants[i];
		struct sluice_tenant_ref ref = { .tenant = t->id };
		for (size_t j = 0; j < t->nnetworks; j++) {
			struct sluice_lpm_key key = lpm_key(&t->networks[j]);
			if (bpf_map_update_elem(k->tnets_fd, &key, &ref, BPF_ANY))
				return -errno;
		}
	}
	struct sluice_lpm_key key, next;
	bool first = true;
	while (bpf_map_get_next_key(k->tnets_fd, first ? NULL : &key, &next) == 0) {
		first = false;
		key = next;
		if (!tenant_net_configured(cfg, &key)) {
			bpf_map_delete_elem(k->tnets_fd, &key);
			first = true;	/* the iteration restarts after a delete */
		}
	}
	return 0;
}

static int write_deny(struct kern *k, const struct sluice_config *cfg)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	for (size_t i = 0; i < cfg->kernel.ndeny; i++) {
		struct sluice_lpm_key key = lpm_key(&cfg->kernel.deny[i]);
		struct sluice_deny_entry e = {
			.reason = SLUICE_DENY_CONFIG,
			.added_ns = (__u64)ts.tv_sec * 1000000000u + (__u64)ts.tv_nsec,
		};
		/* An operator's own entry for the same network stays theirs. */
		if (bpf_map_update_elem(k->deny_fd, &key, &e, BPF_NOEXIST) && errno != EEXIST)
			return -errno;
	}
	struct sluice_lpm_key key, next;
	bool first = true;
	while (bpf_map_get_next_key(k->deny_fd, first ? NULL : &key, &next) == 0) {
		first = false;
		key = next;
		struct sluice_deny_entry e;
		if (bpf_map_lookup_elem(k->deny_fd, &key, &e) == 0 && e.reason == SLUICE_DENY_CONFIG &&
		    !key_in(&key, cfg->kernel.deny, cfg->kernel.ndeny)) {
			bpf_map_delete_elem(k->deny_fd, &key);
			first = true;
		}
	}
	return 0;
}

int kern_apply_config(struct kern *k, const struct sluice_config *cfg, uint16_t port,
		      unsigned nworkers)
{
	if (count_dedicated(cfg) + 1 > nworkers)
		log_warn("%u dedicated tenants need %u workers, %u run: every tenant shares them",
			 count_dedicated(cfg), count_dedicated(cfg) + 1, nworkers);
	int err = write_config_map(k, cfg, port, nworkers);
	if (err)
		return err;
	write_tenants(k, cfg);
	if ((err = write_tenant_nets(k, cfg)))
		return err;
	/* What was learned under the old config (keys since revoked, tenants
	 * removed or renamed) is forgotten: sources are learned again from
	 * the credentials of the new one. */
	learned_forget(bpf_map__fd(k->xdp->maps.sluice_learned), UINT32_MAX);
	k->learned_ttl_ns = (uint64_t)cfg->kernel.learned_ttl_ms * 1000000u;
	return write_deny(k, cfg);
}

/* ---- attaching ---- */

/*
 * kernel.pin_links: a link pinned at path by a predecessor is taken over by
 * swapping its program for ours in place (bpf_link_update), so the hook is
 * never empty.  Returns the link's fd, -ENOENT when nothing is pinned there
 * (or the pin is stale and was removed: the caller attaches afresh).
 */
static int link_take_over(const char *path, int prog_fd, const char *what)
{
	int fd = bpf_obj_get(path);
	if (fd < 0)
		return -ENOENT;
	if (bpf_link_update(fd, prog_fd, NULL) == 0) {
		log_info("%s: took over the pinned link %s (no detach window)", what, path);
		return fd;
	}
	/* A link whose interface or cgroup is gone (ENOLINK), or of another
	 * kind: forget it and attach anew. */
	log_warn("%s: cannot take over %s (%s): attaching afresh", what, path, strerror(errno));
	bpf_link_detach(fd);
	close(fd);
	unlink(path);
	return -ENOENT;
}

/* Pin a fresh link so that it outlives this process; failing to pin only
 * loses the hand-over, never the attachment. */
static void link_pin(int fd, const char *path, const char *what)
{
	unlink(path);
	if (bpf_obj_pin(fd, path))
		log_warn("%s: cannot pin the link at %s: %s (the next sluiced will not "
			 "take it over)", what, path, strerror(errno));
}

static int join_cgroup(const char *path)
{
	char procs[512];
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", path);
	int fd = open(procs, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, "0", 1);
	int err = n == 1 ? 0 : -errno;
	close(fd);
	return err;
}

/* Into the cgroup: by taking over a pinned link, else a new one. */
static int attach_sockops_link(struct kern *k, int cgfd)
{
	int prog_fd = bpf_program__fd(k->sockops->progs.sluice_sockops);
	char path[512];
	pin_path(path, sizeof(path), k->cfg->kernel.pin_root, SLUICE_LINK_SOCKOPS);
	if (k->cfg->kernel.pin_links) {
		int fd = link_take_over(path, prog_fd, "sockops");
		if (fd >= 0) {
			k->sockops_fd = fd;
			return 0;
		}
	}
	int fd = bpf_link_create(prog_fd, cgfd, BPF_CGROUP_SOCK_OPS, NULL);
	if (fd < 0)
		return fd;
	k->sockops_fd = fd;
	if (k->cfg->kernel.pin_links)
		link_pin(fd, path, "sockops");
	return 0;
}

int kern_attach_sockops(struct kern *k, struct kern_why *why)
{
	const char *path = k->cfg->kernel.cgroup;
	if (!path || !path[0])
		return 0;
	int err = mkdir_p(path);
	if (!err)
		err = join_cgroup(path);
	if (err) {
		say(why, "sockops: cannot use cgroup %s: %s", path, errno_hint(err));
		return err;
	}
	int cgfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cgfd < 0) {
		err = -errno;
		say(why, "sockops: cannot open cgroup %s: %s", path, strerror(-err));
		return err;
	}
	err = attach_sockops_link(k, cgfd);
	close(cgfd);
	if (err) {
		say(why, "sockops: cannot attach to %s: %s", path, errno_hint(err));
		return err;
	}
	struct sluice_meta meta;
	if (meta_read(k, &meta) == 0) {
		snprintf(meta.cgroup, sizeof(meta.cgroup), "%s", path);
		meta.sockops_attached = 1;
		meta_write(k, &meta);
	}
	return 0;
}

int kern_attach_steer(struct kern *k, const int *listen_fds, unsigned n, struct kern_why *why)
{
	int map_fd = bpf_map__fd(k->steer->maps.sluice_workers);
	int prog_fd = bpf_program__fd(k->steer->progs.sluice_steer);
	for (__u32 i = 0; i < n && i < SLUICE_MAX_WORKERS; i++) {
		__u64 fd = (__u64)listen_fds[i];
		if (bpf_map_update_elem(map_fd, &i, &fd, BPF_ANY)) {
			int err = -errno;
			say(why, "steering: cannot add worker %u's socket: %s", i, errno_hint(err));
			return err;
		}
	}
	/* Attached to one socket, the program serves the whole reuseport group. */
	if (setsockopt(listen_fds[0], SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &prog_fd,
		       sizeof(prog_fd))) {
		int err = -errno;
		say(why, "steering: cannot attach: %s", errno_hint(err));
		return err;
	}
	k->steer_attached = true;
	struct sluice_meta meta;
	if (meta_read(k, &meta) == 0) {
		meta.steer_attached = 1;
		meta.nworkers = n;
		meta_write(k, &meta);
	}
	return 0;
}

static __u32 xdp_flags(enum xdp_mode_cfg mode)
{
	switch (mode) {
	case XDP_MODE_NATIVE:
		return XDP_FLAGS_DRV_MODE;
	case XDP_MODE_GENERIC:
		return XDP_FLAGS_SKB_MODE;
	default:
		return 0;	/* the kernel takes native when the driver has it */
	}
}

/* The interface's XDP link: a predecessor's pinned one taken over, else
 * a new one (pinned with kernel.pin_links). */
static int xdp_link(struct kern *k, const char *ifname, unsigned ifindex)
{
	int prog_fd = bpf_program__fd(k->xdp->progs.sluice_xdp);
	char name[64], path[512], what[48];
	snprintf(name, sizeof(name), SLUICE_LINK_XDP "%s", ifname);
	pin_path(path, sizeof(path), k->cfg->kernel.pin_root, name);
	snprintf(what, sizeof(what), "xdp on %s", ifname);
	if (k->cfg->kernel.pin_links) {
		int fd = link_take_over(path, prog_fd, what);
		if (fd >= 0)
			return fd;
	}
	LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = xdp_flags(k->cfg->kernel.xdp_mode));
	int fd = bpf_link_create(prog_fd, (int)ifindex, BPF_XDP, &opts);
	if (fd < 0)
		return fd;
	if (k->cfg->kernel.pin_links)
		link_pin(fd, path, what);
	return fd;
}

static int attach_xdp_one(struct kern *k, const char *ifname, struct sluice_meta *meta,
			  struct kern_why *why)
{
	unsigned ifindex = if_nametoindex(ifname);
	if (!ifindex) {
		say(why, "xdp: no interface %s", ifname);
		return -ENODEV;
	}
	int fd = xdp_link(k, ifname, ifindex);
	if (fd < 0) {
		say(why, "xdp on %s: %s", ifname,
		    fd == -EBUSY ? "another XDP program is attached there (an older sluiced "
				   "without kernel.pin_links?)" : errno_hint(fd));
		return fd;
	}
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	unsigned mode = SLUICE_XDP_NATIVE;
	if (bpf_xdp_query((int)ifindex, 0, &q) == 0 && q.attach_mode == XDP_ATTACHED_SKB)
		mode = SLUICE_XDP_GENERIC;
	unsigned slot = k->nxdp++;
	k->xdp_links[slot] = fd;
	meta->xdp_ifindex[slot] = ifindex;
	meta->xdp_mode[slot] = mode;
	snprintf(meta->xdp_ifname[slot], sizeof(meta->xdp_ifname[slot]), "%s", ifname);
	log_info("xdp attached to %s (%s)", ifname, mode == SLUICE_XDP_NATIVE ? "native" : "generic");
	return 0;
}

int kern_attach_xdp(struct kern *k, struct kern_why *why)
{
	struct sluice_meta meta;
	int err = meta_read(k, &meta), first_err = 0;
	if (err)
		return err;
	for (size_t i = 0; i < k->cfg->kernel.n_xdp_interfaces && k->nxdp < SLUICE_MAX_XDP_IFACES; i++) {
		struct kern_why one = { { 0 } };
		err = attach_xdp_one(k, k->cfg->kernel.xdp_interfaces[i], &meta, &one);
		if (err && !first_err) {
			first_err = err;
			*why = one;
		}
	}
	meta_write(k, &meta);
	return first_err;
}

/* ---- reading ---- */

int kern_sock_tag(const struct kern *k, int fd, struct sluice_sock_tag *tag)
{
	return bpf_map_lookup_elem(k->sktags_fd, &fd, tag) ? -errno : 0;
}

int kern_counters(const struct kern *k, uint64_t out[SLUICE_C_MAX])
{
	uint64_t *vals = calloc((size_t)k->ncpus, sizeof(*vals));
	if (!vals)
		return -ENOMEM;
	for (__u32 c = 0; c < SLUICE_C_MAX; c++) {
		out[c] = 0;
		if (bpf_map_lookup_elem(k->counters_fd, &c, vals))
			continue;
		for (int cpu = 0; cpu < k->ncpus; cpu++)
			out[c] += vals[cpu];
	}
	free(vals);
	return 0;
}

int kern_learn_source(struct kern *k, const struct sockaddr_storage *peer, uint32_t tenant)
{
	struct sluice_addr addr = { { 0 } };
	if (peer->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)peer;
		addr.bytes[10] = addr.bytes[11] = 0xff;
		memcpy(&addr.bytes[12], &in->sin_addr, 4);
	} else if (peer->ss_family == AF_INET6) {
		memcpy(addr.bytes, &((const struct sockaddr_in6 *)peer)->sin6_addr, 16);
	} else {
		return -EAFNOSUPPORT;
	}
	return learned_note(bpf_map__fd(k->xdp->maps.sluice_learned), &addr, tenant,
			    k->learned_ttl_ns);
}

int kern_forget_tenant(struct kern *k, uint32_t tenant)
{
	return learned_forget(bpf_map__fd(k->xdp->maps.sluice_learned), tenant);
}

struct sluice_tenant_state *kern_tenants(const struct kern *k)
{
	return k->tenants;
}

struct sluice_daemon_stats *kern_daemon_stats(const struct kern *k)
{
	return k->daemon;
}

struct sluice_quota_slot *kern_quota_slots(const struct kern *k)
{
	return k->quota;
}

void kern_describe(const struct kern *k, char *out, size_t len)
{
	char xdp[160] = "";
	size_t used = 0;
	struct sluice_meta meta;
	if (meta_read(k, &meta))
		memset(&meta, 0, sizeof(meta));
	for (unsigned i = 0; i < k->nxdp && used < sizeof(xdp); i++)
		used += (size_t)snprintf(xdp + used, sizeof(xdp) - used, "%s%s (%s)", i ? ", " : "",
					 meta.xdp_ifname[i],
					 meta.xdp_mode[i] == SLUICE_XDP_GENERIC ? "generic" : "native");
	snprintf(out, len, "kernel: maps under %s; xdp %s; sockops %s%s; steering %s",
		 k->cfg->kernel.pin_root, k->nxdp ? xdp : "off (no interfaces)",
		 k->sockops_fd >= 0 ? "on " : "off", k->sockops_fd >= 0 ? k->cfg->kernel.cgroup : "",
		 k->steer_attached ? "on" : "off");
}

void kern_close(struct kern *k)
{
	if (!k)
		return;
	struct sluice_meta meta;
	if (k->meta_fd >= 0 && meta_read(k, &meta) == 0 && meta.daemon_pid == (__u32)getpid()) {
		/* Pinned links stay attached after this process: status keeps
		 * saying where; only the daemon and its sockets are gone. */
		if (k->cfg->kernel.pin_links) {
			meta.daemon_pid = 0;
			meta.steer_attached = 0;
			meta.nworkers = 0;
		} else {
			__u32 version = meta.layout_version;
			memset(&meta, 0, sizeof(meta));
			meta.layout_version = version;
		}
		meta_write(k, &meta);
	}
	for (unsigned i = 0; i < k->nxdp; i++)
		close(k->xdp_links[i]);
	if (k->sockops_fd >= 0)
		close(k->sockops_fd);
	if (k->tenants)
		munmap(k->tenants, k->tenants_len);
	if (k->daemon)
		munmap(k->daemon, k->daemon_len);
	if (k->quota)
		munmap(k->quota, k->quota_len);
	steer_bpf__destroy(k->steer);
	sockops_bpf__destroy(k->sockops);
	xdp_guard_bpf__destroy(k->xdp);
	free(k);
}
