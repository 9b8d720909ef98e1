/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared pieces of the tests that load BPF programs into the running
 * kernel (test_sockops, test_steer): the root check, a private pin root on
 * bpffs, map helpers, and loopback sockets that are tracked so a failed
 * assertion never leaks one.  Header-only (static inline) because each
 * unit test links from a single object.
 */
#ifndef SLUICE_TEST_BPF_FIXTURE_H
#define SLUICE_TEST_BPF_FIXTURE_H

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "sluice_maps.h"

#define FX_BPFFS	"/sys/fs/bpf"
#define FX_BPFFS_MAGIC	0xcafe4a11	/* BPF_FS_MAGIC of <linux/magic.h> */
#define FX_MAX_SOCKS	256

/* ---- privileges and the pin root ---- */

/* Loading programs and attaching them needs root; say so plainly. */
static inline int fx_require_root(const char *test)
{
	if (geteuid() == 0)
		return 0;
	fprintf(stderr, "%s: needs root (loads BPF programs into the kernel); run it with sudo\n",
		test);
	return -1;
}

/* Make sure /sys/fs/bpf is a bpffs mount, mounting one if it is not. */
static inline int fx_bpffs(void)
{
	struct statfs st;

	if (statfs(FX_BPFFS, &st) == 0 && st.f_type == FX_BPFFS_MAGIC)
		return 0;
	if (mount("bpf", FX_BPFFS, "bpf", 0, "mode=0700") != 0) {
		fprintf(stderr, "mount bpffs on %s: %s\n", FX_BPFFS, strerror(errno));
		return -1;
	}
	return 0;
}

/* Create /sys/fs/bpf/sluice-test-<pid>-<name>, this run's private pin root. */
static inline int fx_pin_root_make(char *dir, size_t len, const char *name)
{
	int n = snprintf(dir, len, FX_BPFFS "/sluice-test-%d-%s", (int)getpid(), name);

	if (n < 0 || (size_t)n >= len)
		return -1;
	if (mkdir(dir, 0700) != 0) {
		fprintf(stderr, "mkdir %s: %s\n", dir, strerror(errno));
		dir[0] = '\0';
		return -1;
	}
	return 0;
}

/* Unpin everything under the pin root, then remove it.  Idempotent. */
static inline void fx_pin_root_remove(char *dir)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d;

	if (dir[0] == '\0')
		return;
	d = opendir(dir);
	if (d) {
		while ((de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) < (int)sizeof(path))
				unlink(path);
		}
		closedir(d);
	}
	if (rmdir(dir) != 0 && errno != ENOENT)
		fprintf(stderr, "rmdir %s: %s\n", dir, strerror(errno));
	dir[0] = '\0';
}

/* ---- maps ---- */

/* Sum of a per-CPU counter over every possible CPU; UINT64_MAX on error. */
static inline uint64_t fx_counter(int counters_fd, uint32_t which)
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t *vals, sum = 0;

	if (ncpu <= 0 || (vals = calloc((size_t)ncpu, sizeof(*vals))) == NULL)
		return UINT64_MAX;
	if (bpf_map_lookup_elem(counters_fd, &which, vals) != 0)
		sum = UINT64_MAX;
	for (int i = 0; i < ncpu && sum != UINT64_MAX; i++)
		sum += vals[i];
	free(vals);
	return sum;
}

/* The LPM key of one host, prefixlen 128: IPv4 as ::ffff:a.b.c.d. */
static inline struct sluice_lpm_key fx_host_key(const char *ip)
{
	struct sluice_lpm_key key = { .prefixlen = 128 };
	struct in_addr a4;

	if (inet_pton(AF_INET, ip, &a4) == 1) {
		key.bytes[10] = 0xff;
		key.bytes[11] = 0xff;
		memcpy(key.bytes + 12, &a4, sizeof(a4));
	} else if (inet_pton(AF_INET6, ip, key.bytes) != 1) {
		key.prefixlen = 0;	/* a bad test address matches nothing */
	}
	return key;
}

/* Map the host ip to tenant in the tenant-network trie. */
static inline int fx_tenant_net(int tnets_fd, const char *ip, uint32_t tenant)
{
	struct sluice_lpm_key key = fx_host_key(ip);
	struct sluice_tenant_ref ref = { .tenant = tenant };

	if (key.prefixlen == 0)
		return -EINVAL;
	return bpf_map_update_elem(tnets_fd, &key, &ref, BPF_ANY);
}

static inline uint64_t fx_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);	/* bpf_ktime_get_ns's clock */
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void fx_sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* ---- loopback sockets ---- */

/* Every socket a test opens, so teardown closes what a failed test left.
 * Behind an accessor so a test that opens no socket includes no unused
 * static data. */
struct fx_sockset {
	int fds[FX_MAX_SOCKS];
	int n;
};

static inline struct fx_sockset *fx_sockset(void)
{
	static struct fx_sockset set;

	return &set;
}

static inline int fx_track(int fd)
{
	if (fd < 0)
		return -1;
	struct fx_sockset *set = fx_sockset();

	if (set->n == FX_MAX_SOCKS) {
		close(fd);
		return -1;
	}
	set->fds[set->n++] = fd;
	return fd;
}

static inline void fx_close(int fd)
{
	struct fx_sockset *set = fx_sockset();

	for (int i = 0; i < set->n; i++) {
		if (set->fds[i] == fd) {
			set->fds[i] = set->fds[--set->n];
			break;
		}
	}
	if (fd >= 0)
		close(fd);
}

/* Close with an RST: no TIME_WAIT left behind by many short connections. */
static inline void fx_close_rst(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	fx_close(fd);
}

static inline void fx_close_all(void)
{
	struct fx_sockset *set = fx_sockset();

	while (set->n > 0)
		fx_close(set->fds[set->n - 1]);
}

/* ip:port as a socket address; returns the family, or -1. */
static inline int fx_sockaddr(const char *ip, uint16_t port, struct sockaddr_storage *ss,
			      socklen_t *len)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, ip, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons(port);
		*len = sizeof(*in4);
		return AF_INET;
	}
	if (inet_pton(AF_INET6, ip, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		*len = sizeof(*in6);
		return AF_INET6;
	}
	return -1;
}

static inline uint16_t fx_local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* A non-blocking listener on ip:port (port 0: any); "::" is dual-stack. */
static inline int fx_listen(const char *ip, uint16_t port, bool reuseport)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1, zero = 0;
	int family = fx_sockaddr(ip, port, &ss, &len);
	int fd = family < 0 ? -1 : fx_track(socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));

	if (fd < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) ||
	    (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) != 0) ||
	    bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 128) != 0) {
		fx_close(fd);
		return -1;
	}
	return fd;
}

/* A blocking connection from src (any port) to dst:port, bounded to 2 s. */
static inline int fx_connect(const char *src, const char *dst, uint16_t port)
{
	struct timeval tv = { .tv_sec = 2 };
	struct sockaddr_storage from, to;
	socklen_t from_len, to_len;
	int family = fx_sockaddr(dst, port, &to, &to_len);
	int fd;

	if (family < 0 || fx_sockaddr(src, 0, &from, &from_len) != family)
		return -1;
	fd = fx_track(socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
	if (fd < 0)
		return -1;
	/* SO_SNDTIMEO also bounds a blocking connect(). */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 ||
	    bind(fd, (struct sockaddr *)&from, from_len) != 0 ||
	    connect(fd, (struct sockaddr *)&to, to_len) != 0) {
		fx_close(fd);
		return -1;
	}
	return fd;
}

/* Accept the next connection on any of n listeners within ms; *which is
 * the index of the listener that had it. */
static inline int fx_accept_any(const int *lfds, int n, int ms, int *which)
{
	struct pollfd pfd[8];

	if (n <= 0 || n > 8)
		return -1;
	for (int i = 0; i < n; i++)
		pfd[i] = (struct pollfd){ .fd = lfds[i], .events = POLLIN };
	if (poll(pfd, (nfds_t)n, ms) <= 0)
		return -1;
	for (int i = 0; i < n; i++) {
		if (pfd[i].revents & POLLIN) {
			*which = i;
			return fx_track(accept4(lfds[i], NULL, NULL, SOCK_CLOEXEC));
		}
	}
	return -1;
}

static inline int fx_accept(int lfd, int ms)
{
	int which;

	return fx_accept_any(&lfd, 1, ms, &which);
}

#endif
