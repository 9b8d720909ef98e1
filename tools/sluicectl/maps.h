/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Opening and reading the pinned maps.  A map is used only after its type,
 * key size, value size and size match what maps/sluice_maps.h says, and the
 * meta map's layout version equals SLUICE_LAYOUT_VERSION, so a lookup can
 * never copy more bytes than the struct it lands in.
 */
#ifndef SLUICECTL_MAPS_H
#define SLUICECTL_MAPS_H

#include <linux/types.h>
#include <stdint.h>

#include "sluice_maps.h"
#include "ctl.h"

/* One pinned map as sluice_maps.h and bpf/sluice.bpf.h define it. */
struct map_spec {
	const char *name;
	__u32 type;		/* enum bpf_map_type */
	__u32 key_size;
	__u32 value_size;
	__u32 max_entries;
};

#define CTL_NMAPS 11	/* every pinned map of sluice_maps.h */
extern const struct map_spec ctl_map_specs[CTL_NMAPS];

/* The pinned meta map: checks that the pin root holds sluice maps of this
 * layout and copies the meta record.  Returns an exit code and prints why
 * on failure (no maps: 3, other layout: 3, no permission: 4). */
int maps_read_meta(const struct ctl *ctl, struct sluice_meta *meta);

/* Open the pinned map `name` (one of ctl_map_specs) and check it against
 * its spec.  Returns an exit code; *fd is the map on CTL_OK. */
int maps_open(const struct ctl *ctl, const char *name, int *fd);

/* The meta check followed by maps_open: what every command starts with. */
int maps_open_checked(const struct ctl *ctl, const char *name, int *fd);

/* What status shows of one map; found quietly, no message printed. */
struct map_probe {
	bool present;		/* pinned under the pin root */
	bool layout_ok;		/* type and sizes as the spec says */
	long entries;		/* -1: not counted (sk storage, errors) */
	__u32 max_entries;
};

void maps_probe(const struct ctl *ctl, const struct map_spec *spec, struct map_probe *out);

/* How many entries a hash or trie holds (by walking its keys, bounded by
 * max_entries); -1 when the map cannot be walked. */
long maps_count_entries(int fd, __u32 key_size, __u32 max_entries);

/* Every counter summed over the possible CPUs.  0 or a negative errno. */
int maps_read_counters(int fd, uint64_t sums[SLUICE_C_MAX]);

/* The tenant array: mmapped when possible, else copied with lookups. */
struct tenant_table {
	const struct sluice_tenant_state *state;	/* SLUICE_MAX_TENANTS entries */
	void *mapped;		/* the mmap, or NULL */
	size_t mapped_len;
	struct sluice_tenant_state *copy;	/* the fallback copy, or NULL */
};

/* 0 or a negative errno. */
int maps_read_tenants(int fd, struct tenant_table *t);
void maps_release_tenants(struct tenant_table *t);

/*
 * The tenant array mapped writable, for quota set and reset.  Only through
 * the mapping: an element update would write back the whole record and
 * lose the counts the daemon and the kernel add meanwhile.  Returns an
 * exit code and says why on failure.
 */
int maps_map_tenants_rw(const struct ctl *ctl, int fd, struct sluice_tenant_state **state,
			size_t *len);

/* The quota slot array (SLUICE_MAX_QUOTA_SLOTS entries) mapped read-only
 * or writable.  Returns an exit code and says why on failure. */
int maps_map_quota(const struct ctl *ctl, int fd, bool writable,
		   struct sluice_quota_slot **slots, size_t *len);

/* CLOCK_MONOTONIC in ns: the clock of bpf_ktime_get_ns. */
uint64_t ctl_now_ns(void);

/* addr.c: "10.1.2.3" for IPv4-mapped addresses, else IPv6 notation. */
#define CTL_ADDR_LEN 48		/* INET6_ADDRSTRLEN and room for "/128" */
void addr_format(const __u8 bytes[16], char out[CTL_ADDR_LEN]);
/* "10.0.0.0/8" or "2001:db8::/32": a prefix in its family's notation. */
void cidr_format(const struct sluice_lpm_key *key, char out[CTL_ADDR_LEN]);

#endif
