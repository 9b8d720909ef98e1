/* SPDX-License-Identifier: Apache-2.0 */
/*
 * xdpbench: what the XDP admission program costs per packet, next to the
 * cheapest XDP program there is (bpf/bench_drop.bpf.c).
 *
 *   xdpbench [-n REPEAT] [-r RUNS]        (root)
 *
 * Each case is BPF_PROG_TEST_RUN with REPEAT (default 1e6) iterations on
 * one packet; the kernel reports the average ns per iteration, and the
 * median of RUNS (default 5) runs is what is printed.  Nothing is attached
 * to any interface.  xdp_guard's maps are pinned under a temporary pin
 * root (/sys/fs/bpf/sluice-bench-PID), removed on exit.
 *
 * Cases, all IPv4 SYNs to the gateway port:
 *   bare_drop     bench_drop: returns XDP_DROP and nothing else
 *   floor         bench_floor: one LRU hash lookup keyed by the source
 *                 (an entry that exists), one bpf_ktime_get_ns, drop: the
 *                 least any stateful per-source limiter can cost
 *   syn_deny      xdp_guard drops it: source in the deny trie
 *   syn_src_rate  xdp_guard drops it: source bucket exhausted (after the
 *                 tenant lookup and tenant checks)
 *   syn_pass      xdp_guard passes it: tenant from the network trie,
 *                 source bucket consulted and updated (tenant buckets are
 *                 sockops', on completed handshakes)
 *   syn_learned_pass     not a tenant network: the learned source of a
 *                 tenant that is not blocked (lookup, clock), source bucket
 *   syn_blocked_learned  dropped: a blocked tenant's exclusive learned source
 * The tries hold a few dozen networks each, so lookups do not hit an
 * empty trie.  Prints a markdown table and the summary line
 *   xdp: drop_syn_ratio=X pass_syn_ratio=Y
 * where drop_syn_ratio is the worse of the two dropping cases, and
 *   xdp_floor: src_rate_floor_ratio=X pass_floor_ratio=Y deny_drop_ratio=Z
 * the issue 17 figures: absolute ns swing by 2x between runs on a shared
 * machine, ratios to programs measured in the same run do not.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/magic.h>
#include <linux/tcp.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "sluice_maps.h"
#include "bench_drop.skel.h"
#include "bench_floor.skel.h"
#include "xdp_guard.skel.h"

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

#define BPFFS		"/sys/fs/bpf"
#define PORT		443
#define NETS		48		/* networks in each trie besides ours */
#define MAX_RUNS	101

/* Targets, as ratios to the bare drop. */
#define TARGET_DROP	1.5
#define TARGET_PASS	2.5
/* Targets of issue 17, as ratios to the floor program. */
#define TARGET_FLOOR_DROP	1.2
#define TARGET_FLOOR_PASS	2.0

static struct bench_drop_bpf *drop_skel;
static struct bench_floor_bpf *floor_skel;
static struct xdp_guard_bpf *guard_skel;
static char pin_root[64];

/* ---- setup and teardown ---- */

static void cleanup(void)
{
	DIR *d;
	struct dirent *e;

	bench_drop_bpf__destroy(drop_skel);
	drop_skel = NULL;
	bench_floor_bpf__destroy(floor_skel);
	floor_skel = NULL;
	xdp_guard_bpf__destroy(guard_skel);
	guard_skel = NULL;
	if (!pin_root[0])
		return;
	d = opendir(pin_root);
	if (d) {
		while ((e = readdir(d)) != NULL) {
			if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
				unlinkat(dirfd(d), e->d_name, 0);
		}
		closedir(d);
	}
	if (rmdir(pin_root) != 0 && errno != ENOENT)
		fprintf(stderr, "xdpbench: rmdir %s: %s\n", pin_root, strerror(errno));
	pin_root[0] = '\0';
}

/* A signal only interrupts the running BPF_PROG_TEST_RUN (EINTR): the
 * main flow then exits through cleanup(). */
static void on_signal(int sig)
{
	(void)sig;
}

static int load(void)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts);
	struct statfs fs;

	if (statfs(BPFFS, &fs) != 0 || fs.f_type != BPF_FS_MAGIC) {
		if (mount("bpf", BPFFS, "bpf", 0, NULL) != 0) {
			fprintf(stderr, "xdpbench: mount bpffs on %s: %s\n", BPFFS, strerror(errno));
			return -1;
		}
	}
	snprintf(pin_root, sizeof(pin_root), BPFFS "/sluice-bench-%d", (int)getpid());
	if (mkdir(pin_root, 0700) != 0) {
		fprintf(stderr, "xdpbench: mkdir %s: %s\n", pin_root, strerror(errno));
		pin_root[0] = '\0';
		return -1;
	}

	drop_skel = bench_drop_bpf__open_and_load();
	if (!drop_skel) {
		fprintf(stderr, "xdpbench: loading bench_drop: %s\n", strerror(errno));
		return -1;
	}
	floor_skel = bench_floor_bpf__open_and_load();
	if (!floor_skel) {
		fprintf(stderr, "xdpbench: loading bench_floor: %s\n", strerror(errno));
		return -1;
	}
	opts.pin_root_path = pin_root;
	guard_skel = xdp_guard_bpf__open_opts(&opts);
	if (!guard_skel || xdp_guard_bpf__load(guard_skel) != 0) {
		fprintf(stderr, "xdpbench: loading xdp_guard: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- maps ---- */

static struct sluice_lpm_key v4_net(__u32 host_order_addr, __u32 len)
{
	struct sluice_lpm_key k = { .prefixlen = 96 + len };
	__be32 a = htonl(host_order_addr);

	k.bytes[10] = 0xff;
	k.bytes[11] = 0xff;
	memcpy(k.bytes + 12, &a, 4);
	return k;
}

static int update(const struct bpf_map *map, const void *key, const void *value)
{
	int err = bpf_map_update_elem(bpf_map__fd(map), key, value, BPF_ANY);

	if (err)
		fprintf(stderr, "xdpbench: update %s: %s\n", bpf_map__name(map), strerror(errno));
	return err;
}

static int set_source_limit(__u64 interval_ns, __u64 burst)
{
	struct sluice_kconfig cfg = {
		.ports = { 80, PORT },
		.src_interval_ns = interval_ns,
		.src_burst = burst,
	};
	__u32 zero = 0;

	return update(guard_skel->maps.sluice_config, &zero, &cfg);
}

/*
 * Deny 198.51.100.0/24, tenant 1 = 192.0.2.0/24 with a rate that never
 * refuses, plus NETS unrelated networks of assorted lengths in each trie.
 */
static int fill_maps(void)
{
	struct sluice_deny_entry deny = { .reason = SLUICE_DENY_CONFIG };
	struct sluice_tenant_ref ref = { .tenant = 1 };
	struct sluice_tenant_state st = {
		.conn_interval_ns = 1,
		.conn_burst = 1000000000,	/* 1 s of allowance: never over */
		.max_connections = 1000000,
		.configured = 1,
	};
	struct sluice_lpm_key k;
	__u32 id = 1;

	for (__u32 i = 0; i < NETS; i++) {
		/* 10.i.0.0/16 .. 10.i.x.0/24 and 172.16.i.i/32 */
		k = v4_net(0x0a000000 | i << 16 | (i % 4) << 8, 16 + 8 * (i % 2));
		if (update(guard_skel->maps.sluice_deny, &k, &deny))
			return -1;
		k = v4_net(0xac100000 | i << 8 | i, 32);
		ref.tenant = 2 + i % 8;
		if (update(guard_skel->maps.sluice_tnets, &k, &ref))
			return -1;
	}
	k = v4_net(0xc6336400, 24);			/* 198.51.100.0/24 */
	if (update(guard_skel->maps.sluice_deny, &k, &deny))
		return -1;
	k = v4_net(0xc0000200, 24);			/* 192.0.2.0/24 */
	ref.tenant = 1;
	if (update(guard_skel->maps.sluice_tnets, &k, &ref))
		return -1;
	if (update(guard_skel->maps.sluice_tenants, &id, &st))
		return -1;
	return set_source_limit(0, 0);
}

static __u64 counter(__u32 which)
{
	int ncpus = libbpf_num_possible_cpus();
	__u64 *percpu, sum = 0;

	if (ncpus <= 0)
		return 0;
	percpu = calloc((size_t)ncpus, sizeof(*percpu));
	if (percpu && bpf_map_lookup_elem(bpf_map__fd(guard_skel->maps.sluice_counters),
					  &which, percpu) == 0) {
		for (int c = 0; c < ncpus; c++)
			sum += percpu[c];
	}
	free(percpu);
	return sum;
}

/* ---- packets and runs ---- */

/* bytes sits 2 bytes into a 4-aligned struct, as a NIC places a frame
 * (NET_IP_ALIGN): the IP and TCP headers behind it are then aligned. */
struct packet {
	_Alignas(4) __u16 ip_align;
	unsigned char bytes[ETH_HLEN + sizeof(struct iphdr) + sizeof(struct tcphdr)];
};

/* An IPv4 SYN from src (host order) to the gateway port. */
static struct packet syn_from(__u32 src)
{
	struct packet p = { 0 };
	struct ethhdr *eth = (struct ethhdr *)p.bytes;
	struct iphdr *ip = (struct iphdr *)(eth + 1);
	struct tcphdr *tcp = (struct tcphdr *)(ip + 1);

	memcpy(eth->h_dest, "\x02\x00\x00\x00\x00\x01", ETH_ALEN);
	memcpy(eth->h_source, "\x02\x00\x00\x00\x00\x02", ETH_ALEN);
	eth->h_proto = htons(ETH_P_IP);
	ip->version = 4;
	ip->ihl = 5;
	ip->tot_len = htons(sizeof(*ip) + sizeof(*tcp));
	ip->ttl = 64;
	ip->protocol = IPPROTO_TCP;
	ip->saddr = htonl(src);
	ip->daddr = htonl(0xc0000250);
	tcp->source = htons(40000);
	tcp->dest = htons(PORT);
	tcp->doff = 5;
	tcp->syn = 1;
	tcp->window = htons(65535);
	return p;
}

enum { PROG_DROP, PROG_FLOOR, PROG_GUARD };

struct bench_case {
	const char *name;
	const char *what;
	int (*prepare)(void);		/* NULL: nothing to set up */
	int prog;			/* PROG_* */
	__u32 src;			/* SYN source, host order */
	int action;			/* expected verdict */
	int decision;			/* expected counter, -1: none */
	double target;			/* ratio to bare drop, 0: none */
	double floor_target;		/* ratio to the floor, 0: none */
	double ns;			/* result: median ns/packet */
};

static int one_run(const struct bench_case *bc, unsigned repeat, double *ns)
{
	struct packet p = syn_from(bc->src);
	LIBBPF_OPTS(bpf_test_run_opts, opts,
		.data_in = p.bytes,
		.data_size_in = sizeof(p.bytes),
		.repeat = repeat,
	);
	int fd = bc->prog == PROG_GUARD ? bpf_program__fd(guard_skel->progs.sluice_xdp)
		 : bc->prog == PROG_FLOOR ? bpf_program__fd(floor_skel->progs.sluice_bench_floor)
		 : bpf_program__fd(drop_skel->progs.sluice_bench_drop);
	__u64 before = bc->decision >= 0 ? counter((__u32)bc->decision) : 0;

	if (bpf_prog_test_run_opts(fd, &opts) != 0) {
		fprintf(stderr, "xdpbench: %s: test run: %s\n", bc->name, strerror(errno));
		return -1;
	}
	if ((int)opts.retval != bc->action) {
		fprintf(stderr, "xdpbench: %s: verdict %u, expected %d\n",
			bc->name, opts.retval, bc->action);
		return -1;
	}
	/* Every iteration must have taken the decision this case measures. */
	if (bc->decision >= 0 && counter((__u32)bc->decision) - before != repeat) {
		fprintf(stderr, "xdpbench: %s: not every run took the expected path\n", bc->name);
		return -1;
	}
	*ns = opts.duration;
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int measure(struct bench_case *bc, unsigned repeat, int runs)
{
	double ns[MAX_RUNS];

	if (bc->prepare && bc->prepare() != 0)
		return -1;
	for (int i = 0; i < runs; i++) {
		if (one_run(bc, repeat, &ns[i]) != 0)
			return -1;
	}
	qsort(ns, (size_t)runs, sizeof(ns[0]), cmp_double);
	bc->ns = ns[runs / 2];
	return 0;
}

/* One SYN an hour per source, spent by a first SYN: the rest are over. */
static int prepare_src_rate(void)
{
	struct packet p = syn_from(0xcb007109);		/* 203.0.113.9 */
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = p.bytes, .data_size_in = sizeof(p.bytes));

	if (set_source_limit(3600ull * 1000000000, 0) != 0)
		return -1;
	if (bpf_prog_test_run_opts(bpf_program__fd(guard_skel->progs.sluice_xdp), &opts) != 0 ||
	    opts.retval != XDP_PASS) {
		fprintf(stderr, "xdpbench: priming the source bucket failed\n");
		return -1;
	}
	return 0;
}

/* Both buckets in use, with rates too high to ever refuse. */
static int prepare_pass(void)
{
	return set_source_limit(1, 1000000000);
}

/* A learned source, exclusive for an hour, of tenant id (blocked or not). */
static int learn(__u32 src, __u32 id, bool blocked)
{
	struct sluice_tenant_state st = { .blocked = blocked, .configured = 1 };
	struct sluice_addr a = { .bytes = { [10] = 0xff, [11] = 0xff } };
	struct timespec now;
	__u32 be = htonl(src);

	clock_gettime(CLOCK_MONOTONIC, &now);
	memcpy(a.bytes + 12, &be, 4);
	struct sluice_learned l = {
		.tenant = id,
		.expires_ns = (__u64)now.tv_sec * 1000000000 + (__u64)now.tv_nsec +
			      3600ull * 1000000000,
	};
	if (update(guard_skel->maps.sluice_tenants, &id, &st))
		return -1;
	return update(guard_skel->maps.sluice_learned, &a, &l);
}

/* The new rule's dearest pass: not a tenant network, a learned source
 * (lookup and clock) of a tenant that is not blocked, source bucket. */
static int prepare_learned_pass(void)
{
	return learn(0xcb007114, 3, false) ? -1 : set_source_limit(1, 1000000000);
}

/* Its drop: a blocked tenant's exclusive learned source. */
static int prepare_learned_blocked(void)
{
	return learn(0xcb007115, 4, true);
}

/* The floor's source has an entry, so its lookup hits as a flooding
 * source's bucket does. */
static int prepare_floor(void)
{
	__u8 key[16] = { [10] = 0xff, [11] = 0xff, 0xcb, 0x00, 0x71, 0x09 };
	__u64 until = UINT64_MAX;

	return update(floor_skel->maps.floor_src, key, &until);
}

/* One table row: ratios to the bare drop and to the floor, each against
 * its target where the case has one. */
static void print_row(const struct bench_case *bc, double bare_ns, double floor_ns)
{
	double bare = bc->ns / bare_ns, flr = bc->ns / floor_ns;
	bool miss = (bc->target > 0 && bare > bc->target) ||
		    (bc->floor_target > 0 && flr > bc->floor_target);
	char t1[16] = "", t2[16] = "";

	if (bc->target > 0)
		snprintf(t1, sizeof(t1), "≤ %.1f", bc->target);
	if (bc->floor_target > 0)
		snprintf(t2, sizeof(t2), "≤ %.1f", bc->floor_target);
	printf("| %s | %.1f | %.2f | %s | %.2f | %s | %s |\n", bc->what, bc->ns, bare, t1, flr, t2,
	       bc->target > 0 || bc->floor_target > 0 ? (miss ? "MISS" : "PASS") : "");
}

static void usage(FILE *f)
{
	fprintf(f, "usage: xdpbench [-n REPEAT] [-r RUNS]\n"
		   "  -n REPEAT  iterations per BPF_PROG_TEST_RUN (default 1000000)\n"
		   "  -r RUNS    runs per case, the median is reported (default 5, odd)\n");
}

int main(int argc, char **argv)
{
	struct bench_case cases[] = {
		{ "bare_drop", "bare XDP_DROP (bench_drop)", NULL, PROG_DROP, 0xc0000201,
		  XDP_DROP, -1, 0, 0, 0 },
		{ "floor", "floor: LRU lookup by source + clock + drop (bench_floor)",
		  prepare_floor, PROG_FLOOR, 0xcb007109, XDP_DROP, -1, 0, 0, 0 },
		{ "syn_deny", "SYN dropped: deny trie", NULL, PROG_GUARD, 0xc6336401,
		  XDP_DROP, SLUICE_C_XDP_DROP_DENY, TARGET_DROP, 0, 0 },
		{ "syn_src_rate", "SYN dropped: source bucket", prepare_src_rate, PROG_GUARD, 0xcb007109,
		  XDP_DROP, SLUICE_C_XDP_DROP_SRC_RATE, TARGET_DROP, TARGET_FLOOR_DROP, 0 },
		{ "syn_pass", "SYN passed: tenant net + source bucket", prepare_pass, PROG_GUARD,
		  0xc0000201, XDP_PASS, SLUICE_C_XDP_SYN_PASS, TARGET_PASS, TARGET_FLOOR_PASS, 0 },
		{ "syn_learned_pass", "SYN passed: learned source + source bucket",
		  prepare_learned_pass, PROG_GUARD, 0xcb007114, XDP_PASS, SLUICE_C_XDP_SYN_PASS,
		  TARGET_PASS, TARGET_FLOOR_PASS, 0 },
		{ "syn_blocked_learned", "SYN dropped: blocked tenant's learned source",
		  prepare_learned_blocked, PROG_GUARD, 0xcb007115, XDP_DROP,
		  SLUICE_C_XDP_DROP_BLOCKED_LEARNED, TARGET_DROP, 0, 0 },
	};
	const size_t ncases = sizeof(cases) / sizeof(cases[0]);
	struct sigaction sa = { .sa_handler = on_signal };	/* no SA_RESTART */
	unsigned long repeat = 1000000;
	double drop_ratio, pass_ratio;
	int runs = 5, opt;
	char *end;

	while ((opt = getopt(argc, argv, "n:r:h")) != -1) {
		switch (opt) {
		case 'n':
			errno = 0;
			repeat = strtoul(optarg, &end, 10);
			if (errno || *end || repeat == 0 || repeat > UINT32_MAX) {
				usage(stderr);
				return 2;
			}
			break;
		case 'r':
			runs = atoi(optarg);
			if (runs < 1 || runs > MAX_RUNS) {
				usage(stderr);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (geteuid() != 0) {
		fprintf(stderr, "xdpbench: must run as root (loads BPF programs, pins maps)\n");
		return 1;
	}

	atexit(cleanup);
	on_sanitizer_death(cleanup);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (load() != 0 || fill_maps() != 0)
		return 1;
	for (size_t i = 0; i < ncases; i++) {
		if (measure(&cases[i], (unsigned)repeat, runs) != 0)
			return 1;
	}

	printf("## XDP\n\n");
	printf("`build/xdpbench`: BPF_PROG_TEST_RUN, %lu iterations per run, median of %d runs; "
	       "ns/packet as the kernel measures it (average per iteration).\n\n", repeat, runs);
	printf("| case | ns/packet | ratio to bare drop | target | ratio to floor | target | result |\n");
	printf("|---|---:|---:|---|---:|---|---|\n");
	for (size_t i = 0; i < ncases; i++)
		print_row(&cases[i], cases[0].ns, cases[1].ns);
	/* cases: 0 bare, 1 floor, 2 deny, 3 src_rate, 4 pass */
	drop_ratio = (cases[2].ns > cases[3].ns ? cases[2].ns : cases[3].ns) / cases[0].ns;
	pass_ratio = cases[4].ns / cases[0].ns;
	printf("\nxdp: drop_syn_ratio=%.2f pass_syn_ratio=%.2f\n", drop_ratio, pass_ratio);
	printf("xdp_floor: floor_ratio=%.2f src_rate_floor_ratio=%.2f pass_floor_ratio=%.2f "
	       "deny_drop_ratio=%.2f\n", cases[1].ns / cases[0].ns, cases[3].ns / cases[1].ns,
	       cases[4].ns / cases[1].ns, cases[2].ns / cases[0].ns);
	return 0;
}
