/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The XDP admission program, run in the kernel with BPF_PROG_TEST_RUN on
 * crafted packets (never attached to an interface).  Needs root.
 *
 * Maps are pinned under a pin root of this process's own
 * (/sys/fs/bpf/sluice-test-PID), removed by the group teardown and, should
 * the run end any other way through exit(), by an atexit handler.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/magic.h>
#include <linux/tcp.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#define SLUICE_COUNTER_NAMES
#include "sluice_maps.h"
#include "xdp_guard.skel.h"
#include "bpf_fixture.h"

/* A sanitizer report ends the process without running atexit handlers;
 * the death callback covers ASan (and UBSan where it shares the ASan
 * runtime, as with clang). */
#if defined(__SANITIZE_ADDRESS__)
#define HAVE_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_SANITIZER 1
#endif
#endif
#ifdef HAVE_SANITIZER
#include <sanitizer/common_interface_defs.h>
#define on_sanitizer_death(fn) __sanitizer_set_death_callback(fn)
#else
#define on_sanitizer_death(fn) ((void)(fn))
#endif

#define PORT		8080
#define OTHER_PORT	9999

#define F_FIN	0x01
#define F_SYN	0x02
#define F_RST	0x04
#define F_ACK	0x10

static struct xdp_guard_bpf *skel;
static char pin_root[64];
static int ncpus;

/* ---- set-up: a private pin root, removed however we exit ---- */

static void cleanup(void)
{
	xdp_guard_bpf__destroy(skel);	/* NULL-safe */
	skel = NULL;
	fx_pin_root_remove(pin_root);
}

static int group_setup(void **state)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts);

	(void)state;
	if (fx_require_root("test_xdp") != 0 || fx_bpffs() != 0)
		return -1;
	ncpus = libbpf_num_possible_cpus();
	if (ncpus <= 0)
		return -1;
	if (fx_pin_root_make(pin_root, sizeof(pin_root), "xdp") != 0)
		return -1;
	atexit(cleanup);
	on_sanitizer_death(cleanup);

	opts.pin_root_path = pin_root;
	skel = xdp_guard_bpf__open_opts(&opts);
	if (!skel || xdp_guard_bpf__load(skel) != 0) {
		fprintf(stderr, "test_xdp: loading xdp_guard failed: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	cleanup();
	return 0;
}

/* ---- map helpers ---- */

static int fd_of(const struct bpf_map *map)
{
	return bpf_map__fd(map);
}

/* "10.0.0.1" or "2001:db8::1" as the 16-byte map address. */
static struct sluice_addr addr_of(const char *ip)
{
	struct sluice_addr a = { 0 };

	if (strchr(ip, ':')) {
		assert_int_equal(inet_pton(AF_INET6, ip, a.bytes), 1);
	} else {
		a.bytes[10] = 0xff;
		a.bytes[11] = 0xff;
		assert_int_equal(inet_pton(AF_INET, ip, a.bytes + 12), 1);
	}
	return a;
}

/* "10.1.0.0/16" or "2001:db8::/32" as an LPM key (IPv4 is mapped: +96). */
static struct sluice_lpm_key lpm_of(const char *cidr)
{
	struct sluice_lpm_key k = { 0 };
	char ip[INET6_ADDRSTRLEN];
	const char *slash = strchr(cidr, '/');
	struct sluice_addr a;
	unsigned len;

	assert_non_null(slash);
	assert_true((size_t)(slash - cidr) < sizeof(ip));
	memcpy(ip, cidr, slash - cidr);
	ip[slash - cidr] = '\0';
	len = (unsigned)atoi(slash + 1);
	a = addr_of(ip);
	memcpy(k.bytes, a.bytes, 16);
	k.prefixlen = strchr(ip, ':') ? len : 96 + len;
	return k;
}

static void deny(const char *cidr)
{
	struct sluice_lpm_key k = lpm_of(cidr);
	struct sluice_deny_entry e = { .reason = SLUICE_DENY_CLI };

	assert_int_equal(bpf_map_update_elem(fd_of(skel->maps.sluice_deny), &k, &e, BPF_ANY), 0);
}

static void tenant_net(const char *cidr, __u32 tenant)
{
	struct sluice_lpm_key k = lpm_of(cidr);
	struct sluice_tenant_ref r = { .tenant = tenant };

	assert_int_equal(bpf_map_update_elem(fd_of(skel->maps.sluice_tnets), &k, &r, BPF_ANY), 0);
}

static __u64 mono_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (__u64)t.tv_sec * 1000000000 + (__u64)t.tv_nsec;
}

enum learned_kind { EXCLUSIVE, SHARED, EXPIRED };

/* A learned source as the daemon writes it (userspace/kern/learned.c). */
static void learned_as(const char *ip, __u32 tenant, enum learned_kind kind)
{
	struct sluice_addr a = addr_of(ip);
	__u64 now = mono_now(), hour = 3600ull * 1000000000;
	struct sluice_learned l = {
		.tenant = tenant,
		.expires_ns = kind == EXPIRED ? now - 1 : now + hour,
		.shared_until_ns = kind == SHARED ? now + hour : 0,
	};

	assert_int_equal(bpf_map_update_elem(fd_of(skel->maps.sluice_learned), &a, &l, BPF_ANY), 0);
}

static void learned(const char *ip, __u32 tenant)
{
	learned_as(ip, tenant, EXCLUSIVE);
}

static struct sluice_tenant_state tenant_get(__u32 id)
{
	struct sluice_tenant_state st;

	assert_int_equal(bpf_map_lookup_elem(fd_of(skel->maps.sluice_tenants), &id, &st), 0);
	return st;
}

static void tenant_set(__u32 id, const struct sluice_tenant_state *st)
{
	assert_int_equal(bpf_map_update_elem(fd_of(skel->maps.sluice_tenants), &id, st, BPF_ANY), 0);
}

static struct sluice_kconfig config_get(void)
{
	struct sluice_kconfig c;
	__u32 zero = 0;

	assert_int_equal(bpf_map_lookup_elem(fd_of(skel->maps.sluice_config), &zero, &c), 0);
	return c;
}

static void config_set(const struct sluice_kconfig *c)
{
	__u32 zero = 0;

	assert_int_equal(bpf_map_update_elem(fd_of(skel->maps.sluice_config), &zero, c, BPF_ANY), 0);
}

static void source_limit(__u64 interval_ns, __u64 burst)
{
	struct sluice_kconfig c = config_get();

	c.src_interval_ns = interval_ns;
	c.src_burst = burst;
	config_set(&c);
}

/* The source's bucket; returns 0 when there is none. */
static int source_bucket(const char *ip, struct sluice_bucket *b)
{
	struct sluice_addr a = addr_of(ip);

	return bpf_map_lookup_elem(fd_of(skel->maps.sluice_srcbkt), &a, b) == 0;
}

/* Delete every key of a hash or trie. */
static void clear_map(const struct bpf_map *map)
{
	unsigned char key[64];
	int fd = fd_of(map);

	assert_true(bpf_map__key_size(map) <= sizeof(key));
	while (bpf_map_get_next_key(fd, NULL, key) == 0)
		assert_int_equal(bpf_map_delete_elem(fd, key), 0);
}

/* Per-CPU counters summed over every possible CPU. */
static void counters(__u64 out[SLUICE_C_MAX])
{
	__u64 *percpu = calloc((size_t)ncpus, sizeof(*percpu));

	assert_non_null(percpu);
	for (__u32 i = 0; i < SLUICE_C_MAX; i++) {
		assert_int_equal(bpf_map_lookup_elem(fd_of(skel->maps.sluice_counters), &i, percpu), 0);
		out[i] = 0;
		for (int c = 0; c < ncpus; c++)
			out[i] += percpu[c];
	}
	free(percpu);
}

/* Every counter equals want[] (unnamed ones 0), with the first mismatch named. */
static void assert_counters(const __u64 want[SLUICE_C_MAX])
{
	__u64 got[SLUICE_C_MAX];

	counters(got);
	for (int i = 0; i < SLUICE_C_MAX; i++) {
		if (got[i] != want[i])
			fail_msg("counter %s: got %llu, want %llu", sluice_counter_names[i],
				 (unsigned long long)got[i], (unsigned long long)want[i]);
	}
}

#define COUNTERS(...) ((const __u64[SLUICE_C_MAX]){ __VA_ARGS__ })

/* A clean slate before every test: our port only, no limits, empty maps. */
static int reset(void **state)
{
	struct sluice_kconfig cfg = { .ports = { PORT } };
	struct sluice_tenant_state zero_st = { 0 };
	__u64 *zeros = calloc((size_t)ncpus, sizeof(*zeros));

	(void)state;
	assert_non_null(zeros);
	config_set(&cfg);
	clear_map(skel->maps.sluice_deny);
	clear_map(skel->maps.sluice_tnets);
	clear_map(skel->maps.sluice_learned);
	clear_map(skel->maps.sluice_srcbkt);
	for (__u32 id = 0; id < SLUICE_MAX_TENANTS; id++)
		tenant_set(id, &zero_st);
	for (__u32 i = 0; i < SLUICE_C_MAX; i++)
		assert_int_equal(bpf_map_update_elem(fd_of(skel->maps.sluice_counters),
						     &i, zeros, BPF_ANY), 0);
	free(zeros);
	return 0;
}

/* ---- packets ---- */

/* bytes sits 2 bytes into a 4-aligned struct, as a NIC places a frame
 * (NET_IP_ALIGN): the IP and TCP headers behind it are then aligned. */
struct packet {
	__u16 ip_align;
	unsigned char bytes[256];
	__u32 len;
};

struct pkt_spec {
	const char *src;	/* IPv4 or IPv6, which picks the family */
	__u16 dport;
	__u8 flags;		/* TCP flags */
	__u8 proto;		/* 0: TCP */
	int vlans;		/* 802.1Q/802.1ad tags before the IP header */
	int ip_options;		/* bytes of IPv4 options, a multiple of 4 */
};

static struct packet build(const struct pkt_spec *s)
{
	struct packet p = { 0 };
	unsigned char *at = p.bytes;
	struct ethhdr *eth = (struct ethhdr *)at;
	struct tcphdr *tcp;
	bool v6 = strchr(s->src, ':') != NULL;
	__u8 proto = s->proto ? s->proto : IPPROTO_TCP;

	memcpy(eth->h_dest, "\x02\x00\x00\x00\x00\x01", ETH_ALEN);
	memcpy(eth->h_source, "\x02\x00\x00\x00\x00\x02", ETH_ALEN);
	at += sizeof(*eth);
	/* The outer tag is 802.1ad (QinQ), inner ones 802.1Q. */
	eth->h_proto = htons(s->vlans ? ETH_P_8021AD : v6 ? ETH_P_IPV6 : ETH_P_IP);
	for (int i = 0; i < s->vlans; i++) {
		__be16 *vlan = (__be16 *)at;	/* TCI, encapsulated proto */

		vlan[0] = htons((__u16)(100 + i));
		vlan[1] = htons(i + 1 < s->vlans ? ETH_P_8021Q : v6 ? ETH_P_IPV6 : ETH_P_IP);
		at += 4;
	}

	if (v6) {
		struct ipv6hdr *ip6 = (struct ipv6hdr *)at;

		ip6->version = 6;
		ip6->payload_len = htons(sizeof(*tcp));
		ip6->nexthdr = proto;
		ip6->hop_limit = 64;
		assert_int_equal(inet_pton(AF_INET6, s->src, &ip6->saddr), 1);
		assert_int_equal(inet_pton(AF_INET6, "2001:db8::80", &ip6->daddr), 1);
		at += sizeof(*ip6);
	} else {
		struct iphdr *ip = (struct iphdr *)at;

		assert_int_equal(s->ip_options % 4, 0);
		ip->version = 4;
		ip->ihl = (__u8)((sizeof(*ip) + (size_t)s->ip_options) / 4);
		ip->tot_len = htons((__u16)(ip->ihl * 4 + sizeof(*tcp)));
		ip->ttl = 64;
		ip->protocol = proto;
		assert_int_equal(inet_pton(AF_INET, s->src, &ip->saddr), 1);
		assert_int_equal(inet_pton(AF_INET, "192.0.2.80", &ip->daddr), 1);
		at += sizeof(*ip);
		/* NOP options: what a parser that ignored ihl would take for
		 * the TCP header (ports 0x0101), so it must use ihl. */
		memset(at, 1, (size_t)s->ip_options);
		at += s->ip_options;
	}

	tcp = (struct tcphdr *)at;
	tcp->source = htons(40000);
	tcp->dest = htons(s->dport);
	tcp->doff = sizeof(*tcp) / 4;
	((__u8 *)tcp)[13] = s->flags;
	tcp->window = htons(65535);
	at += sizeof(*tcp);
	p.len = (__u32)(at - p.bytes);
	return p;
}

#define PKT(...) build(&(const struct pkt_spec){ __VA_ARGS__ })

/* Runs the program once on the packet; returns the XDP action. */
static int run_n(const struct packet *p, int repeat)
{
	LIBBPF_OPTS(bpf_test_run_opts, opts,
		.data_in = p->bytes,
		.data_size_in = p->len,
		.repeat = repeat,
	);
	int err = bpf_prog_test_run_opts(bpf_program__fd(skel->progs.sluice_xdp), &opts);

	assert_int_equal(err, 0);
	return (int)opts.retval;
}

static int run(const struct packet *p)
{
	return run_n(p, 1);
}

static int syn(const char *src)
{
	struct packet p = PKT(.src = src, .dport = PORT, .flags = F_SYN);

	return run(&p);
}

/* ---- tests ---- */

static void test_other_port_untouched(void **state)
{
	struct packet v4 = PKT(.src = "10.0.0.1", .dport = OTHER_PORT, .flags = F_SYN);
	struct packet v6 = PKT(.src = "2001:db8::1", .dport = OTHER_PORT, .flags = F_SYN);
	struct packet port0 = PKT(.src = "10.0.0.1", .dport = 0, .flags = F_SYN);

	(void)state;
	/* Even a denied source: the other ports are none of our business. */
	deny("10.0.0.0/8");
	deny("2001:db8::/32");
	assert_int_equal(run(&v4), XDP_PASS);
	assert_int_equal(run(&v6), XDP_PASS);
	/* Port 0 marks an unused slot; it is never a gateway port. */
	assert_int_equal(run(&port0), XDP_PASS);
	assert_counters(COUNTERS([SLUICE_C_XDP_NOT_OURS] = 3));
	assert_false(source_bucket("10.0.0.1", &(struct sluice_bucket){ 0 }));
}

static void test_not_tcp(void **state)
{
	struct packet udp4 = PKT(.src = "10.0.0.1", .dport = PORT, .proto = IPPROTO_UDP);
	struct packet udp6 = PKT(.src = "2001:db8::1", .dport = PORT, .proto = IPPROTO_UDP);
	/* A TCP segment behind an IPv6 extension header is not looked into. */
	struct packet frag6 = PKT(.src = "2001:db8::1", .dport = PORT, .flags = F_SYN,
				  .proto = IPPROTO_FRAGMENT);
	struct packet arp = PKT(.src = "10.0.0.1", .dport = PORT, .flags = F_SYN);
	struct packet frag4 = PKT(.src = "10.0.0.1", .dport = PORT, .flags = F_SYN);
	struct packet three_tags = PKT(.src = "10.0.0.1", .dport = PORT, .flags = F_SYN,
				       .vlans = 3);

	(void)state;
	deny("0.0.0.0/0");
	deny("::/0");
	((struct ethhdr *)arp.bytes)->h_proto = htons(ETH_P_ARP);
	/* A non-first IPv4 fragment has no TCP header. */
	((struct iphdr *)(frag4.bytes + ETH_HLEN))->frag_off = htons(185);

	assert_int_equal(run(&udp4), XDP_PASS);
	assert_int_equal(run(&udp6), XDP_PASS);
	assert_int_equal(run(&frag6), XDP_PASS);
	assert_int_equal(run(&arp), XDP_PASS);
	assert_int_equal(run(&frag4), XDP_PASS);
	/* Only two VLAN tags are parsed: the third is an unknown ethertype. */
	assert_int_equal(run(&three_tags), XDP_PASS);
	assert_counters(COUNTERS([SLUICE_C_XDP_NOT_OURS] = 6));
}

static void test_truncated(void **state)
{
	struct packet v4 = PKT(.src = "10.0.0.1", .dport = PORT, .flags = F_SYN);
	struct packet v6 = PKT(.src = "2001:db8::1", .dport = PORT, .flags = F_SYN);
	struct packet tagged = PKT(.src = "10.0.0.1", .dport = PORT, .flags = F_SYN, .vlans = 2);
	struct packet opts = PKT(.src = "10.0.0.1", .dport = PORT, .flags = F_SYN,
				 .ip_options = 40);
	struct packet cut, bad_ihl = v4;
	const __u32 l3 = ETH_HLEN;
	/* (packet, length) pairs: every header cut one byte short. */
	const struct {
		const struct packet *p;
		__u32 len;
	} cuts[] = {
		{ &v4, l3 + 2 },				/* IPv4 header */
		{ &v4, l3 + 20 + 19 },				/* TCP header */
		{ &v6, l3 + 39 },				/* IPv6 header */
		{ &v6, l3 + 40 + 19 },				/* TCP header */
		{ &tagged, l3 + 3 },				/* first tag */
		{ &tagged, l3 + 4 + 3 },			/* second tag */
		{ &tagged, l3 + 8 + 19 },			/* IPv4 header */
		{ &opts, l3 + 60 + 19 },			/* TCP after options */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		cut = *cuts[i].p;
		cut.len = cuts[i].len;
		assert_int_equal(run(&cut), XDP_PASS);
	}
	/* An IHL below 5 cannot be a valid header. */
	((struct iphdr *)(bad_ihl.bytes + ETH_HLEN))->ihl = 4;
	assert_int_equal(run(&bad_ihl), XDP_PASS);
	assert_counters(COUNTERS([SLUICE_C_XDP_MALFORMED] = 9));

	/* Uncut, the same packets are whole SYNs to our port. */
	assert_int_equal(run(&v4), XDP_PASS);
	assert_int_equal(run(&v6), XDP_PASS);
	assert_int_equal(run(&tagged), XDP_PASS);
	assert_int_equal(run(&opts), XDP_PASS);
	assert_counters(COUNTERS([SLUICE_C_XDP_MALFORMED] = 9, [SLUICE_C_XDP_SYN_PASS] = 4,
				 [SLUICE_C_TENANT_ANON] = 4));
}

static void test_ip_options_and_vlans_parsed(void **state)
{
	struct packet opts = PKT(.src = "10.9.9.9", .dport = PORT, .flags = F_SYN,
				 .ip_options = 12);
	struct packet tagged = PKT(.src = "10.9.9.9", .dport = PORT, .flags = F_SYN, .vlans = 2);
	struct packet tagged6 = PKT(.src = "2001:db8::9", .dport = PORT, .flags = F_SYN,
				    .vlans = 1);
	struct packet other = PKT(.src = "10.9.9.9", .dport = OTHER_PORT, .flags = F_SYN,
				  .ip_options = 12);

	(void)state;
	deny("10.9.9.9/32");
	deny("2001:db8::9/128");
	assert_int_equal(run(&opts), XDP_DROP);
	assert_int_equal(run(&tagged), XDP_DROP);
	assert_int_equal(run(&tagged6), XDP_DROP);
	assert_int_equal(run(&other), XDP_PASS);
	assert_counters(COUNTERS([SLUICE_C_XDP_DROP_DENY] = 3, [SLUICE_C_XDP_NOT_OURS] = 1));
}

static void test_deny_v4(void **state)
{
	struct packet ack = PKT(.src = "10.1.2.3", .dport = PORT, .flags = F_ACK);
	struct packet fin = PKT(.src = "10.1.200.1", .dport = PORT, .flags = F_FIN | F_ACK);
	struct packet last_slot = PKT(.src = "10.1.0.9", .dport = 8443, .flags = F_SYN);
	struct sluice_kconfig c = config_get();

	(void)state;
	deny("10.1.0.0/16");
	/* A second port, in the last slot, is ours too. */
	c.ports[SLUICE_MAX_PORTS - 1] = 8443;
	config_set(&c);

	assert_int_equal(syn("10.1.2.3"), XDP_DROP);
	/* Every segment of a denied source is dropped, not only SYNs. */
	assert_int_equal(run(&ack), XDP_DROP);
	assert_int_equal(run(&fin), XDP_DROP);
	assert_int_equal(run(&last_slot), XDP_DROP);
	assert_int_equal(syn("10.2.0.1"), XDP_PASS);
	/* The IPv4 network does not cover the IPv6 space. */
	assert_int_equal(syn("2001:db8::10:102:3"), XDP_PASS);
	assert_counters(COUNTERS([SLUICE_C_XDP_DROP_DENY] = 4, [SLUICE_C_XDP_SYN_PASS] = 2,
				 [SLUICE_C_TENANT_ANON] = 2));
}

static void test_deny_v6(void **state)
{
	struct packet ack = PKT(.src = "2001:db8:bad:1::2", .dport = PORT, .flags = F_ACK);

	(void)state;
	deny("2001:db8:bad::/48");
	deny("2001:db8:cafe::1/128");
	assert_int_equal(syn("2001:db8:bad:1::2"), XDP_DROP);
	assert_int_equal(run(&ack), XDP_DROP);
	assert_int_equal(syn("2001:db8:cafe::1"), XDP_DROP);
	assert_int_equal(syn("2001:db8:cafe::2"), XDP_PASS);
	assert_int_equal(syn("2001:db8:bae::1"), XDP_PASS);
	assert_counters(COUNTERS([SLUICE_C_XDP_DROP_DENY] = 3, [SLUICE_C_XDP_SYN_PASS] = 2,
				 [SLUICE_C_TENANT_ANON] = 2));
}

static void test_non_syn_passes_over_limits(void **state)
{
	const __u8 flags[] = { F_ACK, F_SYN | F_ACK, F_RST, F_FIN | F_ACK, 0 };
	struct sluice_tenant_state blocked = { .blocked = 1 };
	struct sluice_bucket b;

	(void)state;
	tenant_net("10.3.0.0/16", 3);
	/* One SYN per source per hour: the second is over the rate ... */
	source_limit(3600ull * 1000000000, 0);
	assert_int_equal(syn("10.3.0.1"), XDP_PASS);
	assert_int_equal(syn("10.3.0.1"), XDP_DROP);
	/* ... and with every tenant blocked on top of it ... */
	tenant_set(3, &blocked);
	tenant_set(SLUICE_TENANT_ANON, &blocked);

	/* ... the rest of the traffic to our port still flows. */
	for (size_t i = 0; i < sizeof(flags); i++) {
		struct packet v4 = PKT(.src = "10.3.0.1", .dport = PORT, .flags = flags[i]);
		struct packet v6 = PKT(.src = "2001:db8::3", .dport = PORT, .flags = flags[i]);

		assert_int_equal(run(&v4), XDP_PASS);
		assert_int_equal(run(&v6), XDP_PASS);
	}
	assert_counters(COUNTERS([SLUICE_C_XDP_PASS] = 10, [SLUICE_C_XDP_SYN_PASS] = 1,
				 [SLUICE_C_XDP_DROP_SRC_RATE] = 1, [SLUICE_C_TENANT_NET] = 2));
	/* Non-SYN segments neither create nor touch a bucket. */
	assert_true(source_bucket("10.3.0.1", &b));
	assert_int_equal(b.passed, 1);
	assert_int_equal(b.dropped, 1);
	assert_false(source_bucket("2001:db8::3", &b));
}

/* Only a configured network names a connection's tenant at XDP; an
 * exclusive learned source is counted as such, and charges nothing. */
static void test_tenant_attribution(void **state)
{
	const __u32 net4 = 5, net6 = 6, learn = 7, both = 8;

	(void)state;
	tenant_net("192.0.2.0/24", net4);
	tenant_net("2001:db8:5::/48", net6);
	learned("198.51.100.7", learn);
	learned("2001:db8:7::7", learn);
	/* The configured network wins over what was learned. */
	tenant_net("203.0.113.0/24", both);
	learned("203.0.113.8", learn);
	learned_as("198.51.100.9", learn, SHARED);
	learned_as("198.51.100.10", learn, EXPIRED);
	for (__u32 id = 0; id <= both; id++) {
		struct sluice_tenant_state st = { .conn_interval_ns = 1000, .conn_burst = 1000000 };

		tenant_set(id, &st);
	}

	assert_int_equal(syn("192.0.2.1"), XDP_PASS);
	assert_int_equal(syn("192.0.2.254"), XDP_PASS);
	assert_int_equal(syn("2001:db8:5:1::1"), XDP_PASS);
	assert_int_equal(syn("198.51.100.7"), XDP_PASS);
	assert_int_equal(syn("2001:db8:7::7"), XDP_PASS);
	assert_int_equal(syn("203.0.113.8"), XDP_PASS);
	assert_int_equal(syn("198.51.100.8"), XDP_PASS);	/* not learned */
	assert_int_equal(syn("2001:db8:7::8"), XDP_PASS);
	assert_int_equal(syn("198.51.100.9"), XDP_PASS);	/* shared */
	assert_int_equal(syn("198.51.100.10"), XDP_PASS);	/* expired */

	assert_counters(COUNTERS([SLUICE_C_XDP_SYN_PASS] = 10, [SLUICE_C_TENANT_NET] = 4,
				 [SLUICE_C_TENANT_LEARNED] = 2, [SLUICE_C_TENANT_ANON] = 4));
	/* Tenant buckets are sockops' (completed handshakes), not XDP's. */
	for (__u32 id = 0; id <= both; id++)
		assert_int_equal(tenant_get(id).conn_bucket.passed, 0);
}

static void test_unknown_tenant_id_unlimited(void **state)
{
	(void)state;
	/* An id beyond the tenant array has no state: no limits apply. */
	tenant_net("192.0.2.0/24", SLUICE_MAX_TENANTS + 7);
	for (int i = 0; i < 5; i++)
		assert_int_equal(syn("192.0.2.1"), XDP_PASS);
	assert_counters(COUNTERS([SLUICE_C_XDP_SYN_PASS] = 5, [SLUICE_C_TENANT_NET] = 5));
}

static void test_source_bucket(void **state)
{
	const __u64 interval = 20 * 1000000ull;	/* 50 connections/s */
	struct sluice_bucket b;
	struct timespec t0;
	__u64 now;

	(void)state;
	source_limit(interval, 2);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	now = (__u64)t0.tv_sec * 1000000000 + (__u64)t0.tv_nsec;

	/* GCRA: burst 2 lets 1 + 2 connections through at once. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(syn("10.4.0.1"), XDP_PASS);
	assert_int_equal(syn("10.4.0.1"), XDP_DROP);
	assert_int_equal(syn("10.4.0.1"), XDP_DROP);
	/* Each source has its own bucket. */
	assert_int_equal(syn("10.4.0.2"), XDP_PASS);
	assert_int_equal(syn("2001:db8::4"), XDP_PASS);

	assert_true(source_bucket("10.4.0.1", &b));
	assert_int_equal(b.passed, 3);
	assert_int_equal(b.dropped, 2);
	assert_true(b.last_ns >= now);
	/* tat is one interval ahead per connection past the burst. */
	assert_true(b.tat_ns >= now + 3 * interval);
	assert_true(b.tat_ns <= b.last_ns + 3 * interval);

	/* One interval later there is room for one more. */
	usleep((useconds_t)(interval / 1000 + 2000));
	assert_int_equal(syn("10.4.0.1"), XDP_PASS);
	assert_int_equal(syn("10.4.0.1"), XDP_DROP);
	assert_true(source_bucket("10.4.0.1", &b));
	assert_int_equal(b.passed, 4);
	assert_int_equal(b.dropped, 3);

	assert_counters(COUNTERS([SLUICE_C_XDP_SYN_PASS] = 6, [SLUICE_C_XDP_DROP_SRC_RATE] = 3,
				 [SLUICE_C_TENANT_ANON] = 9));

	/* Interval 0: no limit, and no buckets kept. */
	source_limit(0, 0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(syn("10.4.0.9"), XDP_PASS);
	assert_false(source_bucket("10.4.0.9", &b));
}

/*
 * Issue 9 case 5: SYNs with spoofed sources inside a tenant's network
 * prove nothing and spend nothing of the tenant's conn_rate: only the
 * per-source buckets (the flood limit) apply at XDP.
 */
static void test_spoofed_syns_spare_tenant_rate(void **state)
{
	struct sluice_tenant_state st = { .conn_interval_ns = 3600ull * 1000000000, .conn_burst = 2 };
	struct sluice_bucket b;

	(void)state;
	tenant_net("10.231.0.64/26", 5);
	tenant_set(5, &st);
	for (int i = 0; i < 20; i++)
		assert_int_equal(syn("10.231.0.99"), XDP_PASS);
	assert_int_equal(syn("10.231.0.70"), XDP_PASS);
	st = tenant_get(5);
	assert_int_equal(st.conn_bucket.passed, 0);
	assert_int_equal(st.conn_bucket.dropped, 0);
	assert_int_equal(st.conn_bucket.tat_ns, 0);

	/* The flood is the per-source bucket's. */
	source_limit(3600ull * 1000000000, 2);
	for (int i = 0; i < 3; i++)
		assert_int_equal(syn("10.231.0.98"), XDP_PASS);
	assert_int_equal(syn("10.231.0.98"), XDP_DROP);
	assert_int_equal(syn("10.231.0.70"), XDP_PASS);
	assert_true(source_bucket("10.231.0.98", &b));
	assert_int_equal(b.dropped, 1);
	assert_counters(COUNTERS([SLUICE_C_XDP_SYN_PASS] = 25, [SLUICE_C_XDP_DROP_SRC_RATE] = 1,
				 [SLUICE_C_TENANT_NET] = 26));
}

/*
 * Issue 9 case 2: a blocked tenant loses its configured networks and the
 * sources it used alone lately; never an address it shares, one whose
 * window ended, or anything of the tenant keyless requests count as.
 */
static void test_blocked_tenant(void **state)
{
	struct sluice_tenant_state st = { .blocked = 1, .conn_interval_ns = 1000000, .conn_burst = 10 };
	struct sluice_kconfig c;
	struct sluice_bucket b;

	(void)state;
	learned("2001:db8:66::1", 9);
	learned_as("2001:db8:66::3", 9, SHARED);
	learned_as("2001:db8:66::4", 9, EXPIRED);
	tenant_net("192.0.2.0/24", 9);
	tenant_set(9, &st);
	source_limit(1000000, 10);
	assert_int_equal(syn("2001:db8:66::1"), XDP_DROP);
	assert_int_equal(syn("2001:db8:66::1"), XDP_DROP);
	assert_int_equal(syn("192.0.2.7"), XDP_DROP);
	assert_int_equal(syn("2001:db8:66::2"), XDP_PASS);	/* anonymous */
	assert_int_equal(syn("2001:db8:66::3"), XDP_PASS);	/* shared */
	assert_int_equal(syn("2001:db8:66::4"), XDP_PASS);	/* expired */

	/* Refused before any bucket: nothing spent, nothing created. */
	assert_int_equal(tenant_get(9).conn_bucket.passed, 0);
	assert_int_equal(tenant_get(9).conn_bucket.tat_ns, 0);
	assert_false(source_bucket("2001:db8:66::1", &b));
	assert_counters(COUNTERS([SLUICE_C_XDP_DROP_BLOCKED_LEARNED] = 2,
				 [SLUICE_C_XDP_DROP_BLOCKED] = 1, [SLUICE_C_XDP_SYN_PASS] = 3,
				 [SLUICE_C_TENANT_LEARNED] = 2, [SLUICE_C_TENANT_NET] = 1,
				 [SLUICE_C_TENANT_ANON] = 3));

	/* The tenant keyless requests count as: outsiders spend its budget,
	 * so its own network and sources are never refused for it. */
	c = config_get();
	c.anon_tenant = 9;
	config_set(&c);
	assert_int_equal(syn("2001:db8:66::1"), XDP_PASS);
	assert_int_equal(syn("192.0.2.7"), XDP_PASS);
	c.anon_tenant = 0;
	config_set(&c);

	/* Unblocked, it gets in. */
	st.blocked = 0;
	tenant_set(9, &st);
	assert_int_equal(syn("2001:db8:66::1"), XDP_PASS);
}

static void test_tenant_cap(void **state)
{
	struct sluice_tenant_state st = { .max_connections = 2, .active_connections = 2 };

	(void)state;
	tenant_net("192.0.2.0/24", 5);
	tenant_set(5, &st);
	assert_int_equal(syn("192.0.2.1"), XDP_DROP);
	st.active_connections = 5;	/* above it: the cap was lowered */
	tenant_set(5, &st);
	assert_int_equal(syn("192.0.2.1"), XDP_DROP);
	st.active_connections = 1;
	tenant_set(5, &st);
	assert_int_equal(syn("192.0.2.1"), XDP_PASS);
	/* max_connections 0: no cap. */
	st.max_connections = 0;
	st.active_connections = 100000;
	tenant_set(5, &st);
	assert_int_equal(syn("192.0.2.1"), XDP_PASS);
	assert_counters(COUNTERS([SLUICE_C_XDP_DROP_TENANT_CAP] = 2, [SLUICE_C_XDP_SYN_PASS] = 2,
				 [SLUICE_C_TENANT_NET] = 4));
}

static void test_no_ports_configured(void **state)
{
	struct sluice_kconfig none = { 0 };

	(void)state;
	deny("0.0.0.0/0");
	config_set(&none);
	assert_int_equal(syn("10.0.0.1"), XDP_PASS);
	assert_int_equal(syn("2001:db8::1"), XDP_PASS);
	assert_counters(COUNTERS([SLUICE_C_XDP_NOT_OURS] = 2));
}

static void test_counters_exact(void **state)
{
	struct packet s = PKT(.src = "10.6.0.1", .dport = PORT, .flags = F_SYN);
	struct packet a = PKT(.src = "10.6.0.1", .dport = PORT, .flags = F_ACK);
	struct packet d = PKT(.src = "10.66.0.1", .dport = PORT, .flags = F_ACK);
	struct packet o = PKT(.src = "10.6.0.1", .dport = OTHER_PORT, .flags = F_ACK);
	struct packet m = s;

	(void)state;
	m.len = ETH_HLEN + 10;
	deny("10.66.0.0/16");
	tenant_net("10.6.0.0/16", 2);
	source_limit(3600ull * 1000000000, 99);

	/* Repeated runs count once per run. */
	assert_int_equal(run_n(&s, 250), XDP_DROP);	/* the last of them */
	assert_int_equal(run_n(&a, 1000), XDP_PASS);
	assert_int_equal(run_n(&d, 300), XDP_DROP);
	assert_int_equal(run_n(&o, 70), XDP_PASS);
	assert_int_equal(run_n(&m, 7), XDP_PASS);
	assert_counters(COUNTERS([SLUICE_C_XDP_SYN_PASS] = 100, [SLUICE_C_XDP_DROP_SRC_RATE] = 150,
				 [SLUICE_C_TENANT_NET] = 250, [SLUICE_C_XDP_PASS] = 1000,
				 [SLUICE_C_XDP_DROP_DENY] = 300, [SLUICE_C_XDP_NOT_OURS] = 70,
				 [SLUICE_C_XDP_MALFORMED] = 7));
}

/* A source bucket as XDP would have left it. */
static void source_bucket_set(const char *ip, const struct sluice_bucket *b)
{
	struct sluice_addr a = addr_of(ip);

	assert_int_equal(bpf_map_update_elem(fd_of(skel->maps.sluice_srcbkt), &a, b, BPF_ANY), 0);
}

/*
 * The verdict cache: a source whose bucket says "dropping until T" (T =
 * tat - burst * interval, later than now) is dropped on that one lookup,
 * before the tries.  The tenant trie is empty here, so the attribution
 * counted can only be the one the bucket kept from the last admitted SYN;
 * the deny entry added after the flood began does not change the reason.
 */
static void test_verdict_cache_hit(void **state)
{
	const __u64 interval = 1000000000ull;	/* 1 connection/s, burst 2 */
	struct sluice_bucket b = {
		.tat_ns = mono_now() + 3600ull * 1000000000,
		.passed = 7,
		.attribution = SLUICE_C_TENANT_NET,
	};

	(void)state;
	source_limit(interval, 2);
	source_bucket_set("192.0.2.9", &b);
	deny("192.0.2.0/24");
	for (int i = 0; i < 5; i++)
		assert_int_equal(syn("192.0.2.9"), XDP_DROP);
	assert_counters(COUNTERS([SLUICE_C_XDP_DROP_SRC_RATE] = 5, [SLUICE_C_TENANT_NET] = 5));
	assert_true(source_bucket("192.0.2.9", &b));
	assert_int_equal(b.dropped, 5);
	assert_int_equal(b.passed, 7);
	assert_int_equal(b.attribution, SLUICE_C_TENANT_NET);
	/* Its other segments are still subject to the deny trie only. */
	struct packet ack = PKT(.src = "192.0.2.9", .dport = PORT, .flags = F_ACK);
	assert_int_equal(run(&ack), XDP_DROP);
}

/* The bucket records the attribution of each admitted SYN, so a
 * network moved to another tenant shows on the next admitted SYN. */
static void test_verdict_attribution_follows_admitted(void **state)
{
	struct sluice_bucket b;

	(void)state;
	source_limit(3600ull * 1000000000, 0);	/* one SYN an hour */
	learned("198.51.100.4", 4);
	assert_int_equal(syn("198.51.100.4"), XDP_PASS);
	assert_true(source_bucket("198.51.100.4", &b));
	assert_int_equal(b.attribution, SLUICE_C_TENANT_LEARNED);
	assert_int_equal(syn("198.51.100.4"), XDP_DROP);
	assert_int_equal(syn("198.51.100.5"), XDP_PASS);
	assert_true(source_bucket("198.51.100.5", &b));
	assert_int_equal(b.attribution, SLUICE_C_TENANT_ANON);
	assert_counters(COUNTERS([SLUICE_C_XDP_SYN_PASS] = 2, [SLUICE_C_XDP_DROP_SRC_RATE] = 1,
				 [SLUICE_C_TENANT_LEARNED] = 2, [SLUICE_C_TENANT_ANON] = 1));
}

/*
 * A verdict expires on time: a source that floods, then stops, is
 * admitted again once one refill interval has passed since its last
 * admitted SYN (GCRA: T = tat - burst * interval = t_pass + interval with
 * burst 0).  Sleeping at least the interval makes this exact, not timed.
 */
static void test_verdict_expires(void **state)
{
	const __u64 interval = 20 * 1000000ull;	/* 50 connections/s */
	struct timespec wait = { 0, (long)interval };
	struct sluice_bucket b;
	int dropped = 0;

	(void)state;
	source_limit(interval, 0);
	assert_int_equal(syn("203.0.113.50"), XDP_PASS);
	for (int i = 0; i < 200; i++)
		dropped += syn("203.0.113.50") == XDP_DROP;
	/* 200 SYNs take far less than 20 ms; a slow CI may let one through. */
	assert_true(dropped >= 199);
	nanosleep(&wait, NULL);
	assert_int_equal(syn("203.0.113.50"), XDP_PASS);
	assert_true(source_bucket("203.0.113.50", &b));
	assert_int_equal(b.passed, 2 + (200 - (__u64)dropped));
	assert_int_equal(b.dropped, (__u64)dropped);
	/* Stale entries of another rate: the bucket is read with the rate of
	 * the live config, so a raised rate applies to the next SYN. */
	source_limit(1000, 1000000);	/* 1 s of burst */
	assert_int_equal(syn("203.0.113.50"), XDP_PASS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_other_port_untouched, reset),
		cmocka_unit_test_setup(test_not_tcp, reset),
		cmocka_unit_test_setup(test_truncated, reset),
		cmocka_unit_test_setup(test_ip_options_and_vlans_parsed, reset),
		cmocka_unit_test_setup(test_deny_v4, reset),
		cmocka_unit_test_setup(test_deny_v6, reset),
		cmocka_unit_test_setup(test_non_syn_passes_over_limits, reset),
		cmocka_unit_test_setup(test_tenant_attribution, reset),
		cmocka_unit_test_setup(test_unknown_tenant_id_unlimited, reset),
		cmocka_unit_test_setup(test_source_bucket, reset),
		cmocka_unit_test_setup(test_spoofed_syns_spare_tenant_rate, reset),
		cmocka_unit_test_setup(test_blocked_tenant, reset),
		cmocka_unit_test_setup(test_tenant_cap, reset),
		cmocka_unit_test_setup(test_no_ports_configured, reset),
		cmocka_unit_test_setup(test_counters_exact, reset),
		cmocka_unit_test_setup(test_verdict_cache_hit, reset),
		cmocka_unit_test_setup(test_verdict_attribution_follows_admitted, reset),
		cmocka_unit_test_setup(test_verdict_expires, reset),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
