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
	__type(value, struct sluice_tenant_ref);
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

/* The tenant of a source: configured networks first, then what the daemon
 * learned after authenticating it, else anonymous.  *counter says which. */
static __always_inline __u32 sluice_tenant_of(const struct sluice_addr *src, __u32 *counter)
{
	struct sluice_lpm_key key = { .prefixlen = 128 };
	__builtin_memcpy(key.bytes, src->bytes, 16);
	struct sluice_tenant_ref *ref = bpf_map_lookup_elem(&sluice_tnets, &key);
	if (ref) {
		*counter = SLUICE_C_TENANT_NET;
		return ref->tenant;
	}
	ref = bpf_map_lookup_elem(&sluice_learned, src);
	if (ref) {
		*counter = SLUICE_C_TENANT_LEARNED;
		return ref->tenant;
	}
	*counter = SLUICE_C_TENANT_ANON;
	return SLUICE_TENANT_ANON;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#endif
