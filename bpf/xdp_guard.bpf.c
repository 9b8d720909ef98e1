// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * XDP admission: the first word on every packet sent to the gateway.
 *
 * Only TCP segments to one of the gateway's ports (the sluice_config map)
 * are looked at; everything else is passed untouched.  For ours:
 *
 *   1. anything but a pure SYN is passed (established connections are never
 *      limited here: the limits are on new connections), unless its source
 *      is in the deny trie;
 *   2. a pure SYN from a source over its connection rate is dropped: the
 *      flood case, first and shortest (one LRU lookup, one clock read; see
 *      over_source_rate), counted with the attribution its bucket keeps;
 *   3. a pure SYN from a source in the deny trie is dropped;
 *   4. a pure SYN from a tenant's configured network is dropped when the
 *      tenant is blocked or at its connection cap; one from a source a
 *      blocked tenant used alone lately (sluice_learned) is dropped too;
 *      otherwise it is passed and charged to its source bucket.
 *
 * Since a source is only over its rate after SYNs of it were admitted, 2
 * before 3 and 4 changes a reason only when the deny entry or the block
 * came after those SYNs: the SYN is dropped either way, counted as
 * xdp_drop_source_rate until the source is under its rate again.
 *
 * Every decision bumps one per-CPU counter.  Truncated headers are passed
 * to the stack, which knows how to reject them, and counted as malformed.
 */
#include "sluice.bpf.h"

/* Not in vmlinux.h: these are #defines in the uapi headers. */
#define ETH_P_IP	0x0800
#define ETH_P_IPV6	0x86DD
#define ETH_P_8021Q	0x8100
#define ETH_P_8021AD	0x88A8

#define IP_OFFSET	0x1FFF		/* fragment offset, in 8-byte units */

/* Byte 13 of the TCP header; read directly rather than through the
 * bitfields of struct tcphdr, whose layout is endian dependent. */
#define TCP_FLAGS_OFF	13
#define TCP_FLAG_SYN	0x02
#define TCP_FLAG_ACK	0x10

#define MAX_VLAN_TAGS	2

enum parse_result {
	PARSE_TCP,		/* a whole TCP header: seg is filled in */
	PARSE_NOT_OURS,
	PARSE_MALFORMED,
};

/* The fields of a TCP segment the admission decision needs. */
struct segment {
	struct sluice_addr src;
	__u16 dport;		/* host order */
	__u8 flags;
};

/*
 * Ethernet (with up to two 802.1Q/802.1ad tags), IPv4 or IPv6, TCP.
 * Every header is bounds-checked against data_end before it is read.
 */
static __always_inline enum parse_result parse(struct xdp_md *ctx, struct segment *seg)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct tcphdr *tcp;
	void *l3;
	__u16 proto;

	if ((void *)(eth + 1) > data_end)
		return PARSE_MALFORMED;
	proto = eth->h_proto;
	l3 = eth + 1;

#pragma unroll
	for (int i = 0; i < MAX_VLAN_TAGS; i++) {
		struct vlan_hdr *vlan = l3;

		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		if ((void *)(vlan + 1) > data_end)
			return PARSE_MALFORMED;
		proto = vlan->h_vlan_encapsulated_proto;
		l3 = vlan + 1;
	}

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;
		__u32 ihl;

		if ((void *)(ip + 1) > data_end)
			return PARSE_MALFORMED;
		if (ip->protocol != IPPROTO_TCP)
			return PARSE_NOT_OURS;
		/* A non-first fragment carries no TCP header: leave it to the
		 * stack, which reassembles before TCP sees anything. */
		if (ip->frag_off & bpf_htons(IP_OFFSET))
			return PARSE_NOT_OURS;
		ihl = ip->ihl * 4;
		if (ihl < sizeof(*ip))
			return PARSE_MALFORMED;
		/* ihl is at most 60: the verifier tracks l3 + ihl as a
		 * bounded offset, checked against data_end below. */
		tcp = l3 + ihl;
		sluice_addr_from_v4(seg->src.bytes, ip->saddr);
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;

		if ((void *)(ip6 + 1) > data_end)
			return PARSE_MALFORMED;
		/* Extension headers are not walked: a SYN with one is not
		 * ours, which only means it escapes the limits here. */
		if (ip6->nexthdr != IPPROTO_TCP)
			return PARSE_NOT_OURS;
		tcp = (void *)(ip6 + 1);
		__builtin_memcpy(seg->src.bytes, &ip6->saddr, sizeof(seg->src.bytes));
	} else {
		return PARSE_NOT_OURS;
	}

	if ((void *)(tcp + 1) > data_end)
		return PARSE_MALFORMED;
	seg->dport = bpf_ntohs(tcp->dest);
	seg->flags = ((__u8 *)tcp)[TCP_FLAGS_OFF];
	return PARSE_TCP;
}

static __always_inline bool is_gateway_port(const struct sluice_kconfig *cfg, __u16 port)
{
	if (port == 0)		/* 0 marks an unused slot */
		return false;
#pragma unroll
	for (int i = 0; i < SLUICE_MAX_PORTS; i++) {
		if (cfg->ports[i] == port)
			return true;
	}
	return false;
}

/* The source's bucket, created (empty, so conforming) on its first SYN.
 * NULL only if the LRU could not give us an entry: no source limit then. */
static __always_inline struct sluice_bucket *source_bucket(const struct sluice_addr *src)
{
	struct sluice_bucket fresh = {};
	struct sluice_bucket *b;

	b = bpf_map_lookup_elem(&sluice_srcbkt, src);
	if (b)
		return b;
	/* BPF_NOEXIST: if another CPU created it meanwhile, use theirs. */
	bpf_map_update_elem(&sluice_srcbkt, src, &fresh, BPF_NOEXIST);
	return bpf_map_lookup_elem(&sluice_srcbkt, src);
}

/*
 * A blocked tenant loses new connections only where the address is its
 * own: a network configured for it, or a learned source it used alone
 * within the window.  The tenant keyless requests count as is never
 * blocked here (outsiders can spend its budget), nor anonymous.
 */
static __always_inline bool blocked_here(const struct sluice_kconfig *cfg, __u32 tenant,
					 const struct sluice_tenant_state *st)
{
	return st->blocked && tenant != SLUICE_TENANT_ANON && tenant != cfg->anon_tenant;
}

/*
 * The flood check, first for every SYN when a source limit is configured:
 * one LRU lookup and the packet's one clock read.  The source bucket is
 * the verdict cache: while a source is over its rate its tat does not
 * move (a refused SYN spends nothing), so "dropping until
 * tat - burst * interval" is exactly what the bucket already holds, in
 * the bucket's own clock.  A second map of verdicts would add a lookup to
 * every passed SYN and go stale when the rate is reloaded; this cannot.
 * Returns true when the SYN is to be dropped; *sb is the bucket (NULL for
 * a source never seen) for admit_syn to charge.
 */
static __always_inline bool over_source_rate(const struct sluice_kconfig *cfg,
					     const struct sluice_addr *src, __u64 now,
					     struct sluice_bucket **sb)
{
	*sb = bpf_map_lookup_elem(&sluice_srcbkt, src);
	if (!*sb || gcra_conforms(*sb, now, cfg->src_interval_ns, cfg->src_burst))
		return false;
	__sync_fetch_and_add(&(*sb)->dropped, 1);
	/* 0 (a bucket no SYN was admitted into) is no attribution */
	if ((*sb)->attribution)
		sluice_count((*sb)->attribution);
	return true;
}

/* Admission of a pure SYN that is under its source rate and not denied:
 * returns the counter of the decision, which is SLUICE_C_XDP_SYN_PASS or
 * one of the SLUICE_C_XDP_DROP_* reasons.  The LPM and tenant lookups are
 * only here, off the flood path.  Tenant connection rates are not charged
 * here: a SYN proves nothing about its source, so spoofed SYNs would
 * drain a tenant's bucket.  sockops charges them once the handshake
 * completes.  now is 0 when no source limit needed the clock. */
static __always_inline __u32 admit_syn(const struct sluice_kconfig *cfg,
				       const struct sluice_addr *src,
				       struct sluice_bucket *sb, __u64 now)
{
	struct sluice_tenant_state *st;
	__u32 tenant, how;

	tenant = sluice_tenant_of(src, &how);
	if (tenant == SLUICE_TENANT_ANON) {
		/* Not a configured network: only an exclusive learned source
		 * of a blocked tenant is refused. */
		__u32 learned = sluice_learned_exclusive(src, &now);

		if (learned != SLUICE_TENANT_ANON) {
			how = SLUICE_C_TENANT_LEARNED;
			st = bpf_map_lookup_elem(&sluice_tenants, &learned);
			if (st && blocked_here(cfg, learned, st)) {
				sluice_count(how);
				return SLUICE_C_XDP_DROP_BLOCKED_LEARNED;
			}
		}
	} else {
		/* Unknown ids (beyond the array) have no limits. */
		st = bpf_map_lookup_elem(&sluice_tenants, &tenant);
		if (st) {
			if (blocked_here(cfg, tenant, st)) {
				sluice_count(how);
				return SLUICE_C_XDP_DROP_BLOCKED;
			}
			/* sockops moves active_connections on other CPUs: a
			 * read racing with it may let a SYN or two past the
			 * cap, which sockops then tags SLUICE_TAG_OVER_CAP. */
			if (st->max_connections &&
			    st->active_connections >= (__s64)st->max_connections) {
				sluice_count(how);
				return SLUICE_C_XDP_DROP_TENANT_CAP;
			}
		}
	}
	sluice_count(how);

	if (!cfg->src_interval_ns)
		return SLUICE_C_XDP_SYN_PASS;
	if (!sb)
		sb = source_bucket(src);
	if (sb) {
		gcra_consume(sb, now, cfg->src_interval_ns);
		sb->attribution = how;
	}
	return SLUICE_C_XDP_SYN_PASS;
}

/* Deny trie: the longest configured prefix holding the source. */
static __always_inline bool denied(const struct sluice_addr *src)
{
	struct sluice_lpm_key key;

	/* Every field is written: no padding, no zeroing needed. */
	key.prefixlen = 128;
	__builtin_memcpy(key.bytes, src->bytes, sizeof(key.bytes));
	return bpf_map_lookup_elem(&sluice_deny, &key) != NULL;
}

/* Count a decision, return its verdict. */
static __always_inline int decide(__u32 counter, int action)
{
	sluice_count(counter);
	return action;
}

SEC("xdp")
int sluice_xdp(struct xdp_md *ctx)
{
	const struct sluice_kconfig *cfg;
	struct sluice_bucket *sb = NULL;
	struct segment seg;
	__u32 zero = 0, counter;
	__u64 now = 0;

	switch (parse(ctx, &seg)) {
	case PARSE_TCP:
		break;
	case PARSE_MALFORMED:
		return decide(SLUICE_C_XDP_MALFORMED, XDP_PASS);
	default:
		return decide(SLUICE_C_XDP_NOT_OURS, XDP_PASS);
	}

	/* No configuration (cannot happen with an array, but the verifier
	 * wants the check): we know no port of ours, so nothing is ours. */
	cfg = bpf_map_lookup_elem(&sluice_config, &zero);
	if (!cfg || !is_gateway_port(cfg, seg.dport))
		return decide(SLUICE_C_XDP_NOT_OURS, XDP_PASS);

	if ((seg.flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) != TCP_FLAG_SYN) {
		if (denied(&seg.src))
			return decide(SLUICE_C_XDP_DROP_DENY, XDP_DROP);
		return decide(SLUICE_C_XDP_PASS, XDP_PASS);
	}

	/* A pure SYN: the flood case goes first and shortest.  The clock is
	 * read once here (bench: as dear as a hash lookup), and only when a
	 * source limit needs it; admit_syn reuses it. */
	if (cfg->src_interval_ns) {
		now = bpf_ktime_get_ns();
		if (over_source_rate(cfg, &seg.src, now, &sb))
			return decide(SLUICE_C_XDP_DROP_SRC_RATE, XDP_DROP);
	}
	if (denied(&seg.src))
		return decide(SLUICE_C_XDP_DROP_DENY, XDP_DROP);
	counter = admit_syn(cfg, &seg.src, sb, now);
	return decide(counter, counter == SLUICE_C_XDP_SYN_PASS ? XDP_PASS : XDP_DROP);
}
