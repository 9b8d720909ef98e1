// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * The floor of the XDP benchmark: what any stateful per-source limiter
 * pays at least.  It reads the IPv4 source of an untagged frame, does one
 * LRU hash lookup keyed by it (as a mapped 16-byte address, like
 * sluice_srcbkt), reads the clock once and drops.  The clock is compared
 * with the value so the compiler keeps both the lookup and the read.
 * Its own map, never pinned: it shares nothing with the gateway.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct floor_key {
	__u8 bytes[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct floor_key);
	__type(value, __u64);
} floor_src SEC(".maps");

SEC("xdp")
int sluice_bench_floor(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct floor_key key;
	__u64 *until, now;

	if ((void *)(ip + 1) > data_end)
		return XDP_PASS;
	__builtin_memset(key.bytes, 0, 10);
	key.bytes[10] = 0xff;
	key.bytes[11] = 0xff;
	__builtin_memcpy(key.bytes + 12, &ip->saddr, 4);
	until = bpf_map_lookup_elem(&floor_src, &key);
	now = bpf_ktime_get_ns();
	if (until && now < *until)
		return XDP_DROP;
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
