/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * The one definition of every map the kernel programs and the daemon share:
 * key and value layouts, counter and reason enums, map names, pin paths and
 * the layout version.  Included by bpf/ (after vmlinux.h) and by userspace/
 * and tools/ (after <linux/types.h>); nothing else defines a shared struct.
 *
 * Change any struct, enum or size here and SLUICE_LAYOUT_VERSION must go up:
 * libbpf reuses a pinned map whose key and value sizes match even when
 * their meaning changed, so the version in the meta map is what makes a
 * daemon refuse maps of another layout.
 */
#ifndef SLUICE_MAPS_H
#define SLUICE_MAPS_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define SLUICE_LAYOUT_VERSION	5

#define SLUICE_PIN_ROOT		"/sys/fs/bpf/sluice"

/* Map names: also the pin file names under the pin root (at most 15 chars). */
#define SLUICE_MAP_META		"sluice_meta"
#define SLUICE_MAP_CONFIG	"sluice_config"
#define SLUICE_MAP_TENANT_NETS	"sluice_tnets"
#define SLUICE_MAP_LEARNED	"sluice_learned"
#define SLUICE_MAP_DENY		"sluice_deny"
#define SLUICE_MAP_SRC_BUCKETS	"sluice_srcbkt"
#define SLUICE_MAP_TENANTS	"sluice_tenants"
#define SLUICE_MAP_COUNTERS	"sluice_counters"
#define SLUICE_MAP_SOCK_TAGS	"sluice_sktags"
#define SLUICE_MAP_DAEMON	"sluice_daemon"
#define SLUICE_MAP_QUOTA	"sluice_quota"
/* The reuseport socket array holds this daemon's listening sockets; it is
 * never pinned, since the sockets die with the process. */
#define SLUICE_MAP_WORKERS	"sluice_workers"
/*
 * With kernel.pin_links the attachments are BPF links pinned next to the
 * maps, so they outlive the daemon and the next one takes them over with
 * bpf_link_update (no detach window): link_sockops, link_xdp_<ifname>.
 * `sluicectl detach` removes every pin starting with the prefix.
 */
#define SLUICE_LINK_PREFIX	"link_"
#define SLUICE_LINK_SOCKOPS	"link_sockops"
#define SLUICE_LINK_XDP		"link_xdp_"

#define SLUICE_MAX_TENANTS	1024	/* tenant ids 0 .. SLUICE_MAX_TENANTS-1 */
#define SLUICE_TENANT_ANON	0	/* id of the anonymous tenant */
#define SLUICE_MAX_NETS		16384	/* tenant-network and deny LPM entries */
#define SLUICE_MAX_LEARNED	65536	/* learned source -> tenant entries */
#define SLUICE_MAX_SOURCES	65536	/* per-source buckets (LRU) */
#define SLUICE_MAX_WORKERS	256
#define SLUICE_MAX_PORTS	8
#define SLUICE_MAX_GROUPS	16	/* worker groups: 0 shared, 1.. dedicated */
#define SLUICE_MAX_XDP_IFACES	8
#define SLUICE_MAX_QUOTA_SLOTS	8192	/* per-key and per-tenant-model usage */
#define SLUICE_QUOTA_NAME_LEN	48	/* key id or model name, NUL included */
#define SLUICE_TENANT_NAME_PREFIX 48	/* stored prefix of a tenant's name */

/*
 * Addresses are stored as 16 bytes: IPv6 as is, IPv4 as an IPv4-mapped
 * IPv6 address (::ffff:a.b.c.d), so one trie and one hash serve both
 * families.  An IPv4 /24 is prefixlen 96 + 24.
 */
struct sluice_addr {
	__u8 bytes[16];
};

struct sluice_lpm_key {
	__u32 prefixlen;
	__u8 bytes[16];
};

/* Value of the tenant-network trie. */
struct sluice_tenant_ref {
	__u32 tenant;
};

/*
 * Value of the learned-source hash: the tenant whose credentials were last
 * seen from this address.  A source address is never a credential, so
 * this is no identity: nothing is admitted, steered or capped by it.  It
 * only lets XDP refuse new connections of a blocked tenant from an address
 * that tenant uses alone:
 *
 *   exclusive  <=>  now < expires_ns  &&  now >= shared_until_ns
 *
 * Every sighting pushes expires_ns to now + kernel.learned_ttl; a sighting
 * of another tenant's credentials or of a keyless request pushes
 * shared_until_ns there too.  Times are CLOCK_MONOTONIC (bpf_ktime_get_ns).
 */
struct sluice_learned {
	__u32 tenant;
	__u32 pad;
	__u64 expires_ns;
	__u64 shared_until_ns;
};

enum sluice_deny_reason {
	SLUICE_DENY_CONFIG = 1,		/* kernel.deny in the config */
	SLUICE_DENY_CLI = 2,		/* sluicectl deny add */
};

struct sluice_deny_entry {
	__u32 reason;			/* enum sluice_deny_reason */
	__u32 pad;
	__u64 added_ns;			/* CLOCK_MONOTONIC (bpf_ktime_get_ns) */
};

/*
 * A new-connection rate limit as GCRA: one "theoretical arrival time".
 * A connection at time t passes when t >= tat - burst * interval, and then
 * tat = max(tat, t) + interval.  One u64 of state, no division on the
 * packet path.
 */
struct sluice_bucket {
	__u64 tat_ns;
	__u64 passed;			/* connections let through */
	__u64 dropped;			/* connections refused by this bucket */
	__u64 last_ns;			/* last SYN seen */
	/* Source buckets only (layout 5): the tenant attribution counter
	 * (SLUICE_C_TENANT_*) of the source's last admitted SYN.  XDP drops a
	 * source over its rate before any trie lookup and counts this
	 * attribution for it, so tenant_from_* still add up to every SYN;
	 * it is as stale as the last admitted SYN (a reload that moves the
	 * network shows on the source's next admitted SYN). */
	__u32 attribution;
	__u32 pad;
};

/*
 * Request and token limits of one scope (a tenant, one API key, or a
 * tenant and model); 0 means unlimited.  Written by the daemon from the
 * config or by `sluicectl quota set`.
 */
struct sluice_limits {
	__u64 requests_per_minute;
	__u64 tokens_per_minute;	/* input + output */
	__u64 input_tokens_per_minute;
	__u64 output_tokens_per_minute;
	__u64 tokens_per_day;		/* hard budget: spent -> blocked */
	__u64 tokens_per_month;		/* hard budget: spent -> blocked */
	__u32 concurrent;		/* requests in flight */
	__u32 pad;
};

/*
 * What one scope has used, in fixed UTC windows (minute, day, month).
 * Token counts include reservations of requests still in flight, so
 * concurrent requests cannot overspend; a reservation is reconciled with
 * the reported usage when the response ends.  Only the daemon and
 * sluicectl write it, under `lock` (a spin lock taken with atomics for a
 * few dozen instructions); the kernel reads none of it.
 */
struct sluice_usage {
	__u32 lock;			/* 0 free, 1 held */
	__u32 pad;
	__u64 minute;			/* unix time / 60 of the minute counters */
	__u64 requests_minute;
	__u64 tokens_minute;
	__u64 input_tokens_minute;
	__u64 output_tokens_minute;
	__u64 day;			/* unix time / 86400 of tokens_day */
	__u64 tokens_day;
	__u64 month;			/* UTC year * 12 + month - 1 of tokens_month */
	__u64 tokens_month;
	__s64 concurrent;		/* requests in flight */
	__s64 reserved_tokens;		/* reservations not yet reconciled */
	__u64 denied;			/* requests refused by a limit (429) */
};

/*
 * One tenant, indexed by tenant id in an mmapable array, so the daemon's
 * workers, the kernel, sluicectl and bpftool all read the same numbers.
 * Fields written from several CPUs are updated with atomic adds.
 */
struct sluice_tenant_state {
	/* limits, written by the daemon from the config */
	__u64 conn_interval_ns;		/* 1e9 / conn_rate; 0 = no rate limit */
	__u64 conn_burst;		/* connections allowed at once above the rate */
	__u32 max_connections;		/* 0 = no cap */
	__u32 worker_group;		/* 0 = shared workers, else a dedicated group */
	__u32 blocked;			/* 1: refuse new connections (budget spent) */
	__u32 configured;		/* 1: a configured tenant (0: unused id) */
	/* kernel state */
	struct sluice_bucket conn_bucket;
	__s64 active_connections;	/* sockops: +1 established, -1 closed */
	__u64 connections_total;	/* sockops: passively established */
	__u64 over_cap;			/* connections above max_connections */
	/* daemon counters, totals since the maps were created */
	__u64 requests;
	__u64 tokens_in;
	__u64 tokens_out;
	/* quotas: `blocked` above is set when a request is refused because a
	 * hard budget (tokens per day or month) is spent, and cleared when
	 * that budget's window resets or by `sluicectl quota reset` */
	struct sluice_limits limits;
	struct sluice_usage usage;
	__u32 blocked_by;		/* enum sluice_block_reason */
	__u32 pad2;
	__u64 blocked_window;		/* the day or month index it was spent in */
	/* registry (userspace/quota/tenants.c): the slot belongs to the tenant
	 * of this name, so a reload that reorders or removes tenants shifts
	 * no state; name_hash 0 = free slot */
	__u64 name_hash;		/* FNV-1a 64 of the whole name, never 0 */
	__u32 name_len;
	__u32 quota_scopes;		/* quota slots (keys, models) it holds */
	char name[SLUICE_TENANT_NAME_PREFIX];	/* prefix of the name, NUL padded */
};

enum sluice_block_reason {
	SLUICE_BLOCK_NONE = 0,
	SLUICE_BLOCK_DAY,		/* tokens_per_day spent */
	SLUICE_BLOCK_MONTH,		/* tokens_per_month spent */
};

enum sluice_quota_kind {
	SLUICE_QUOTA_FREE = 0,		/* unused slot */
	SLUICE_QUOTA_KEY,		/* one API key: name is its key id */
	SLUICE_QUOTA_MODEL,		/* one tenant and model: name is the model */
};

/*
 * Usage of the scopes below a tenant, in an mmapable array: slot
 * = hash(kind, tenant, name) with linear probing, so a restarted daemon
 * finds the same slot again.  A free slot is claimed by a compare-and-swap
 * of `kind`, so workers never need a lock to find or create a scope.
 */
struct sluice_quota_slot {
	__u32 kind;			/* enum sluice_quota_kind */
	__u32 tenant;
	char name[SLUICE_QUOTA_NAME_LEN];
	struct sluice_limits limits;
	struct sluice_usage usage;
};

/* The gateway's ports and per-source limits, one entry (key 0).  Named
 * kconfig so it never clashes with the daemon's YAML snapshot, struct
 * sluice_config in userspace/config/config.h. */
struct sluice_kconfig {
	__u16 ports[SLUICE_MAX_PORTS];	/* host byte order; 0 = unused */
	__u64 src_interval_ns;		/* 1e9 / source_conn_rate; 0 = none */
	__u64 src_burst;
	/* steering: group g is workers [group_first[g], group_first[g] + group_count[g]) */
	__u32 group_first[SLUICE_MAX_GROUPS];
	__u32 group_count[SLUICE_MAX_GROUPS];
	__u32 nworkers;
	/* The tenant keyless requests count as (auth.anonymous: NAME), else
	 * 0: anyone can spend its budget, so XDP never blocks it. */
	__u32 anon_tenant;
};

enum sluice_xdp_mode {
	SLUICE_XDP_OFF = 0,
	SLUICE_XDP_NATIVE = 1,
	SLUICE_XDP_GENERIC = 2,
};

/* What the daemon attached, for sluicectl status (key 0). */
struct sluice_meta {
	__u32 layout_version;		/* SLUICE_LAYOUT_VERSION of whoever created the maps */
	__u32 daemon_pid;		/* 0 when no daemon has the programs attached */
	__u64 started_ns;		/* CLOCK_MONOTONIC of the attach */
	__u32 xdp_ifindex[SLUICE_MAX_XDP_IFACES];
	__u32 xdp_mode[SLUICE_MAX_XDP_IFACES];	/* enum sluice_xdp_mode */
	char xdp_ifname[SLUICE_MAX_XDP_IFACES][16];
	char cgroup[128];		/* sockops attach point, "" when none */
	__u32 sockops_attached;
	__u32 steer_attached;
	__u32 nworkers;
	__u32 pad;
};

/* How a TLS client connection came out of its handshake. */
enum sluice_tls_mode {
	SLUICE_TLS_KTLS = 0,		/* the kernel does record crypto both ways */
	SLUICE_TLS_KTLS_TX,		/* kernel sends, OpenSSL receives */
	SLUICE_TLS_USERSPACE,		/* OpenSSL both ways */
	SLUICE_TLS_FAILED,		/* handshake refused or broken */
	SLUICE_TLS_PLAIN_HTTP,		/* plain HTTP sent to the TLS port */
	SLUICE_TLS_MODES,
};

/*
 * What the daemon counts for sluicectl (one entry, mmapable): the workers
 * add with atomics through the mapping.  Without the kernel half the same
 * struct lives in the daemon's memory, and /metrics reads it either way.
 */
struct sluice_daemon_stats {
	__u64 tls_conns[SLUICE_TLS_MODES];
	__u64 upstream_tls_conns[SLUICE_TLS_MODES];	/* connections to https backends */
	__u32 tls_enabled;		/* the listener speaks TLS */
	__u32 ktls_available;		/* the kernel has the tls module */
};

/* Per-socket tag, written by sockops into socket-local storage. */
struct sluice_sock_tag {
	__u32 tenant;
	__u32 flags;			/* SLUICE_TAG_* */
	__u64 accept_ns;		/* bpf_ktime_get_ns at passive establish */
};

#define SLUICE_TAG_OVER_CAP	(1u << 0)	/* tenant was at max_connections */
#define SLUICE_TAG_COUNTED	(1u << 1)	/* counted in active_connections */
#define SLUICE_TAG_NETWORK	(1u << 2)	/* tenant from a configured network */
#define SLUICE_TAG_OVER_RATE	(1u << 3)	/* tenant was over its conn_rate */

/* Every decision the kernel programs take, one per-CPU counter each. */
enum sluice_counter {
	SLUICE_C_XDP_NOT_OURS = 0,	/* not TCP to a gateway port: passed */
	SLUICE_C_XDP_PASS,		/* non-SYN segment of a gateway port: passed */
	SLUICE_C_XDP_SYN_PASS,		/* new connection admitted */
	SLUICE_C_XDP_DROP_DENY,		/* source in a deny network */
	SLUICE_C_XDP_DROP_SRC_RATE,	/* source over its connection rate */
	SLUICE_C_XDP_DROP_BLOCKED,	/* network's tenant blocked (budget spent) */
	SLUICE_C_XDP_DROP_BLOCKED_LEARNED, /* exclusive learned source's tenant blocked */
	SLUICE_C_XDP_DROP_TENANT_CAP,	/* tenant at max_connections */
	SLUICE_C_XDP_MALFORMED,		/* truncated headers: passed to the stack */
	SLUICE_C_TENANT_NET,		/* SYN tenant from the tenant-network trie */
	SLUICE_C_TENANT_LEARNED,	/* SYN from an exclusive learned source */
	SLUICE_C_TENANT_ANON,		/* SYN tenant: anonymous */
	SLUICE_C_SOCK_ESTABLISHED,	/* sockops: passive establish */
	SLUICE_C_SOCK_OVER_CAP,		/* sockops: tenant above max_connections */
	SLUICE_C_SOCK_CLOSED,		/* sockops: counted socket closed */
	SLUICE_C_SOCK_NO_STORAGE,	/* sockops: socket storage unavailable */
	SLUICE_C_SOCK_OVER_RATE,	/* sockops: tenant over its conn_rate */
	SLUICE_C_STEER_GROUP,		/* reuseport: sent to a dedicated group */
	SLUICE_C_STEER_SHARED,		/* reuseport: sent to the shared group */
	SLUICE_C_STEER_FALLBACK,	/* reuseport: no socket selected, kernel default */
	SLUICE_C_MAX,
};

#ifdef SLUICE_COUNTER_NAMES
/* Names for tables, JSON and Prometheus labels; indexed by enum sluice_counter. */
static const char *const sluice_counter_names[SLUICE_C_MAX] = {
	[SLUICE_C_XDP_NOT_OURS] = "xdp_not_ours",
	[SLUICE_C_XDP_PASS] = "xdp_pass",
	[SLUICE_C_XDP_SYN_PASS] = "xdp_syn_pass",
	[SLUICE_C_XDP_DROP_DENY] = "xdp_drop_deny",
	[SLUICE_C_XDP_DROP_SRC_RATE] = "xdp_drop_source_rate",
	[SLUICE_C_XDP_DROP_BLOCKED] = "xdp_drop_blocked",
	[SLUICE_C_XDP_DROP_BLOCKED_LEARNED] = "xdp_drop_blocked_learned",
	[SLUICE_C_XDP_DROP_TENANT_CAP] = "xdp_drop_tenant_cap",
	[SLUICE_C_XDP_MALFORMED] = "xdp_malformed",
	[SLUICE_C_TENANT_NET] = "tenant_from_network",
	[SLUICE_C_TENANT_LEARNED] = "tenant_from_learned",
	[SLUICE_C_TENANT_ANON] = "tenant_anonymous",
	[SLUICE_C_SOCK_ESTABLISHED] = "sock_established",
	[SLUICE_C_SOCK_OVER_CAP] = "sock_over_cap",
	[SLUICE_C_SOCK_CLOSED] = "sock_closed",
	[SLUICE_C_SOCK_NO_STORAGE] = "sock_no_storage",
	[SLUICE_C_SOCK_OVER_RATE] = "sock_over_rate",
	[SLUICE_C_STEER_GROUP] = "steer_dedicated",
	[SLUICE_C_STEER_SHARED] = "steer_shared",
	[SLUICE_C_STEER_FALLBACK] = "steer_fallback",
};
#endif

#ifdef SLUICE_TLS_MODE_NAMES
static const char *const sluice_tls_mode_names[SLUICE_TLS_MODES] = {
	[SLUICE_TLS_KTLS] = "ktls",
	[SLUICE_TLS_KTLS_TX] = "ktls_tx",
	[SLUICE_TLS_USERSPACE] = "userspace",
	[SLUICE_TLS_FAILED] = "failed",
	[SLUICE_TLS_PLAIN_HTTP] = "plain_http",
};
#endif

#endif
