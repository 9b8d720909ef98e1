// SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
/*
 * Per-connection accounting, attached to the daemon's cgroup as a sockops
 * program.  When a connection to a gateway port is accepted (passive
 * establish), the socket is tagged in socket-local storage with its tenant
 * (a configured network's, else anonymous: an address is never learned
 * into an identity), charged to that tenant's conn_rate bucket and
 * counted in its active_connections; when the socket reaches TCP_CLOSE it
 * is counted out again.
 *
 * Connection caps: XDP refuses SYNs once a tenant is at max_connections,
 * but SYNs in flight together can all pass that check.  The few that race
 * past are flagged SLUICE_TAG_OVER_CAP here and the daemon answers them
 * with a 503 and closes them, which keeps the cap exact without a lock.
 */
#include "sluice.bpf.h"

/* Address families (from <sys/socket.h>, which vmlinux.h does not carry). */
#define AF_INET		2
#define AF_INET6	10

/* Is port (host byte order) one of the gateway's listening ports? */
static __always_inline bool is_gateway_port(__u32 port)
{
	__u32 key = 0;
	struct sluice_kconfig *cfg = bpf_map_lookup_elem(&sluice_config, &key);

	if (!cfg || port == 0)
		return false;
	for (int i = 0; i < SLUICE_MAX_PORTS; i++) {
		if (cfg->ports[i] == port)
			return true;
	}
	return false;
}

/*
 * The peer address in the one 16-byte form the maps use.  An IPv4 peer of
 * a dual-stack IPv6 socket already is ::ffff:a.b.c.d in remote_ip6 (the
 * kernel stores v4 peers of v6 sockets mapped), which is the same form
 * sluice_addr_from_v4() builds for AF_INET sockets.
 */
static __always_inline int peer_addr(const struct bpf_sock_ops *skops, struct sluice_addr *addr)
{
	if (skops->family == AF_INET) {
		__u32 ip4 = skops->remote_ip4;

		/* Keeps clang from sinking this load and the IPv6 ones into one
		 * load at a computed context offset, which the verifier refuses. */
		asm volatile("" ::: "memory");
		sluice_addr_from_v4(addr->bytes, ip4);
		return 0;
	}
	if (skops->family == AF_INET6) {
		/* The context only allows 4-byte loads of remote_ip6[]. */
		__u32 *w = (__u32 *)addr->bytes;

		w[0] = skops->remote_ip6[0];
		w[1] = skops->remote_ip6[1];
		w[2] = skops->remote_ip6[2];
		w[3] = skops->remote_ip6[3];
		return 0;
	}
	return -1;
}

/*
 * A configured network's tenant pays for a connection in its conn_rate
 * bucket only here, once the handshake completed: a spoofed SYN never
 * gets this far.  An over-rate socket is tagged and the daemon answers
 * it 429 connection_rate_exceeded.
 */
static __always_inline __u32 charge_rate(struct sluice_tenant_state *st)
{
	__u64 interval = st->conn_interval_ns, now;

	if (!interval)
		return 0;
	now = bpf_ktime_get_ns();
	if (!gcra_conforms(&st->conn_bucket, now, interval, st->conn_burst)) {
		__sync_fetch_and_add(&st->conn_bucket.dropped, 1);
		sluice_count(SLUICE_C_SOCK_OVER_RATE);
		return SLUICE_TAG_OVER_RATE;
	}
	gcra_consume(&st->conn_bucket, now, interval);
	return 0;
}

/* Count a new connection in its tenant; returns SLUICE_TAG_* flags to add.
 * Caps and rates are a configured network's: everything else is counted
 * under the anonymous tenant, which has neither. */
static __always_inline __u32 account_open(__u32 tenant, __u32 how)
{
	struct sluice_tenant_state *st = bpf_map_lookup_elem(&sluice_tenants, &tenant);
	__u32 flags = 0;
	__s64 active;

	if (!st)
		return 0;
	if (how == SLUICE_C_TENANT_NET) {
		flags = SLUICE_TAG_NETWORK | charge_rate(st);
		if (flags & SLUICE_TAG_OVER_RATE)
			return flags;	/* refused: never counted in */
	}
	/* fetch-and-add returns the old value: this connection's position is
	 * exact even when several CPUs establish connections of one tenant. */
	active = __sync_fetch_and_add(&st->active_connections, 1) + 1;
	__sync_fetch_and_add(&st->connections_total, 1);
	if (st->max_connections > 0 && active > (__s64)st->max_connections) {
		__sync_fetch_and_add(&st->over_cap, 1);
		sluice_count(SLUICE_C_SOCK_OVER_CAP);
		return flags | SLUICE_TAG_COUNTED | SLUICE_TAG_OVER_CAP;
	}
	return flags | SLUICE_TAG_COUNTED;
}

static __always_inline void on_passive_established(struct bpf_sock_ops *skops)
{
	struct sluice_sock_tag *tag;
	struct sluice_addr addr;
	struct bpf_sock *sk;
	__u32 counter, tenant;

	if (!is_gateway_port(skops->local_port))
		return;
	if (peer_addr(skops, &addr))
		return;
	tenant = sluice_tenant_of(&addr, &counter);

	sk = skops->sk;
	if (!sk) {
		sluice_count(SLUICE_C_SOCK_NO_STORAGE);
		return;
	}
	tag = bpf_sk_storage_get(&sluice_sktags, sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
	if (!tag) {
		sluice_count(SLUICE_C_SOCK_NO_STORAGE);
		return;
	}
	tag->tenant = tenant;
	tag->accept_ns = bpf_ktime_get_ns();
	tag->flags = account_open(tenant, counter);

	/* Ask for BPF_SOCK_OPS_STATE_CB on this socket to see its close. */
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
	sluice_count(SLUICE_C_SOCK_ESTABLISHED);
}

/*
 * Only sockets tagged COUNTED are counted out, whatever their port is now:
 * a port removed from the config while connections are open must not
 * leave them in active_connections forever.
 */
static __always_inline void on_close(struct bpf_sock_ops *skops)
{
	struct sluice_tenant_state *st;
	struct sluice_sock_tag *tag;
	struct bpf_sock *sk = skops->sk;
	__u32 tenant;

	if (!sk)
		return;
	tag = bpf_sk_storage_get(&sluice_sktags, sk, NULL, 0);
	if (!tag || !(tag->flags & SLUICE_TAG_COUNTED))
		return;
	/* A socket reaches TCP_CLOSE once, and this callback runs with the
	 * socket locked, so clearing the flag cannot race a second close. */
	tag->flags &= ~SLUICE_TAG_COUNTED;
	tenant = tag->tenant;
	st = bpf_map_lookup_elem(&sluice_tenants, &tenant);
	if (st)
		__sync_fetch_and_add(&st->active_connections, -1);
	sluice_count(SLUICE_C_SOCK_CLOSED);
}

SEC("sockops")
int sluice_sockops(struct bpf_sock_ops *skops)
{
	switch (skops->op) {
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		on_passive_established(skops);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		/* args[0] is the old state, args[1] the new one. */
		if (skops->args[1] == BPF_TCP_CLOSE)
			on_close(skops);
		break;
	default:
		break;
	}
	/* The return value only matters to ops that want a reply. */
	return 1;
}
