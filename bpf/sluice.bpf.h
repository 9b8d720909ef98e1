/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * Map definitions and small helpers shared by the BPF programs.  Layouts
 * come from maps/sluice_maps.h; this file only declares the maps, each
 * pinned by name so that every program object (and the daemon, sluicectl
 * and bpftool) opens the same map under the pin root.
 */
#ifndef SLUICE_BPF_H
#define SLUICE_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "sluice_maps.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sluice_meta);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_meta SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sluice_kconfig);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SLUICE_MAX_NETS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sluice_lpm_key);
	__type(value, struct sluice_tenant_ref);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_tnets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SLUICE_MAX_LEARNED);
	__type(key, struct sluice_addr);
	__type(value, struct sluice_learned);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_learned SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SLUICE_MAX_NETS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sluice_lpm_key);
	__type(value, struct sluice_deny_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_deny SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SLUICE_MAX_SOURCES);
	__type(key, struct sluice_addr);
	__type(value, struct sluice_bucket);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_srcbkt SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLUICE_MAX_TENANTS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct sluice_tenant_state);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_tenants SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SLUICE_C_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sluice_sock_tag);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_sktags SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct sluice_daemon_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_daemon SEC(".maps");

/* Per-key and per-tenant-model quota usage: the daemon's alone, declared
 * here so the skeleton creates and pins it with the others. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLUICE_MAX_QUOTA_SLOTS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct sluice_quota_slot);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_quota SEC(".maps");

static __always_inline void sluice_count(__u32 counter)
{
	__u64 *v = bpf_map_lookup_elem(&sluice_counters, &counter);
	if (v)
		*v += 1;	/* per-CPU: no atomic needed */
}

/* IPv4 a.b.c.d as the mapped IPv6 address ::ffff:a.b.c.d. */
static __always_inline void sluice_addr_from_v4(__u8 *bytes, __be32 v4)
{
	__builtin_memset(bytes, 0, 10);
	bytes[10] = 0xff;
	bytes[11] = 0xff;
	__builtin_memcpy(bytes + 12, &v4, 4);
}

/* The tenant of a source: the one whose configured network holds it, else
 * anonymous.  This is the only identity the kernel gives a connection; a
 * learned address is never one (see sluice_learned_exclusive).  *counter
 * says which. */
static __always_inline __u32 sluice_tenant_of(const struct sluice_addr *src, __u32 *counter)
{
	struct sluice_lpm_key key = { .prefixlen = 128 };
	__builtin_memcpy(key.bytes, src->bytes, 16);
	struct sluice_tenant_ref *ref = bpf_map_lookup_elem(&sluice_tnets, &key);
	if (ref) {
		*counter = SLUICE_C_TENANT_NET;
		return ref->tenant;
	}
	*counter = SLUICE_C_TENANT_ANON;
	return SLUICE_TENANT_ANON;
}

/* The tenant that alone used this source within kernel.learned_ttl, or
 * SLUICE_TENANT_ANON when the address is unknown, expired or shared.
 * *now is the packet's one clock read: 0 until someone needed it, then
 * read here and kept for the caller. */
static __always_inline __u32 sluice_learned_exclusive(const struct sluice_addr *src, __u64 *now)
{
	struct sluice_learned *l = bpf_map_lookup_elem(&sluice_learned, src);

	if (!l)
		return SLUICE_TENANT_ANON;
	if (!*now)
		*now = bpf_ktime_get_ns();
	if (*now >= l->expires_ns || *now < l->shared_until_ns)
		return SLUICE_TENANT_ANON;
	return l->tenant;
}

/*
 * GCRA, in two steps (check, then consume) so that a connection refused
 * does not spend the budget.  XDP charges per-source buckets on SYNs;
 * sockops charges tenant buckets on completed handshakes.
 *
 * A connection at now conforms when now >= tat - burst * interval, written
 * as tat - now <= burst * interval so that nothing overflows for an old
 * tat (including the 0 of a fresh bucket, which always conforms).  The
 * daemon keeps burst * interval far below 2^64.
 *
 * Buckets are shared by all CPUs and updated without a lock: two CPUs
 * admitting a connection of the same source or tenant in the same instant may
 * both read the old tat and both pass, so a limit can be exceeded by the
 * number of CPUs racing on it.  That is the accepted approximation; the
 * passed/dropped statistics themselves are exact (atomic adds).
 */
static __always_inline bool gcra_conforms(const struct sluice_bucket *b, __u64 now,
					  __u64 interval, __u64 burst)
{
	__u64 tat = b->tat_ns;

	return tat <= now || tat - now <= burst * interval;
}

static __always_inline void gcra_consume(struct sluice_bucket *b, __u64 now, __u64 interval)
{
	__u64 tat = b->tat_ns;

	b->tat_ns = (tat > now ? tat : now) + interval;
	b->last_ns = now;
	__sync_fetch_and_add(&b->passed, 1);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#endif
