// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * Worker steering, attached to the reuseport group of the daemon's
 * listening sockets.  Every worker owns one listener; the daemon puts them
 * in sluice_workers in worker order and describes worker groups in
 * sluice_config: group g is workers [group_first[g], group_first[g] +
 * group_count[g]).  A new connection goes to its tenant's dedicated group
 * when it has one, else to the shared group 0, spread by the flow hash.
 */
#include "sluice.bpf.h"

#define ETH_P_IP	0x0800
#define ETH_P_IPV6	0x86DD

/*
 * The listening sockets, indexed by worker.  Not pinned: the sockets belong
 * to one daemon process and die with it, so the map does too.
 */
struct {
	__uint(type, BPF_MAP_TYPE_REUSEPORT_SOCKARRAY);
	__uint(max_entries, SLUICE_MAX_WORKERS);
	__type(key, __u32);
	__type(value, __u64);
} sluice_workers SEC(".maps");

/* The source address of the SYN, as 16 bytes (IPv4 mapped). */
static __always_inline int syn_source(struct sk_reuseport_md *ctx, struct sluice_addr *src)
{
	if (ctx->eth_protocol == bpf_htons(ETH_P_IP)) {
		__be32 v4;

		if (bpf_skb_load_bytes_relative(ctx, offsetof(struct iphdr, saddr), &v4,
						sizeof(v4), BPF_HDR_START_NET))
			return -1;
		sluice_addr_from_v4(src->bytes, v4);
		return 0;
	}
	if (ctx->eth_protocol == bpf_htons(ETH_P_IPV6))
		return bpf_skb_load_bytes_relative(ctx, offsetof(struct ipv6hdr, saddr), src->bytes,
						   sizeof(src->bytes), BPF_HDR_START_NET) ? -1 : 0;
	return -1;
}

/* The worker group of the connection's tenant; 0 (shared) when it has none.
 * Only a configured network steers: a learned address is shared by anyone
 * behind it, and would let them crowd a dedicated worker. */
static __always_inline __u32 tenant_group(struct sk_reuseport_md *ctx)
{
	struct sluice_tenant_state *st;
	struct sluice_addr src;
	__u32 counter, tenant;

	if (syn_source(ctx, &src))
		return 0;
	tenant = sluice_tenant_of(&src, &counter);
	st = bpf_map_lookup_elem(&sluice_tenants, &tenant);
	return st ? st->worker_group : 0;
}

SEC("sk_reuseport")
int sluice_steer(struct sk_reuseport_md *ctx)
{
	__u32 key = 0, count, index, counter;
	struct sluice_kconfig *cfg;
	__u64 group;

	cfg = bpf_map_lookup_elem(&sluice_config, &key);
	if (!cfg)
		goto fallback;

	/*
	 * A dedicated group without workers falls back to the shared one.
	 * group is 64-bit on purpose: as a __u32, clang zero-extends a copy for
	 * the bounds check and another for the index, and the verifier sees an
	 * unbounded index into the config.
	 */
	group = tenant_group(ctx);
	if (group >= SLUICE_MAX_GROUPS || cfg->group_count[group] == 0)
		group = 0;
	count = cfg->group_count[group];
	if (count == 0)
		goto fallback;	/* no groups configured yet */

	index = cfg->group_first[group] + ctx->hash % count;
	if (bpf_sk_select_reuseport(ctx, &sluice_workers, &index, 0))
		goto fallback;	/* empty slot or a socket of another group */

	counter = group ? SLUICE_C_STEER_GROUP : SLUICE_C_STEER_SHARED;
	sluice_count(counter);
	return SK_PASS;

fallback:
	/* SK_PASS without a selected socket: the kernel picks by hash. */
	sluice_count(SLUICE_C_STEER_FALLBACK);
	return SK_PASS;
}
