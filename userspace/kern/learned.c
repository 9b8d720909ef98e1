/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include <bpf/bpf.h>

#include "kern/learned.h"

struct sluice_learned learned_next(const struct sluice_learned *old, uint32_t tenant,
				   uint64_t now_ns, uint64_t ttl_ns)
{
	struct sluice_learned l = { 0 };
	uint64_t until = now_ns + ttl_ns;	/* ttl is at most 24 h: no overflow */
	bool live = old && now_ns < old->expires_ns;

	/* An expired entry is forgotten: the window starts again. */
	if (live) {
		l = *old;
		if (tenant == LEARNED_NO_CREDENTIAL || tenant != old->tenant)
			l.shared_until_ns = until;
	} else if (tenant == LEARNED_NO_CREDENTIAL) {
		l.shared_until_ns = until;
	}
	if (tenant != LEARNED_NO_CREDENTIAL)
		l.tenant = tenant;
	else if (!live)
		l.tenant = SLUICE_TENANT_ANON;
	l.expires_ns = until;
	return l;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Lookup and update are two syscalls: two workers noting one address at
 * once may lose one sighting.  The loser's own next connection notes it
 * again, and a lost "shared" can only be lost to a write that made the
 * address shared or re-learned it for the same tenant. */
int learned_note(int fd, const struct sluice_addr *addr, uint32_t tenant, uint64_t ttl_ns)
{
	struct sluice_learned old, next;
	bool have = bpf_map_lookup_elem(fd, addr, &old) == 0;

	next = learned_next(have ? &old : NULL, tenant, mono_ns(), ttl_ns);
	return bpf_map_update_elem(fd, addr, &next, BPF_ANY) ? -errno : 0;
}

/* Keys first, deletes after: deleting while walking a hash restarts the
 * walk, which would make this quadratic in a full map. */
int learned_forget(int fd, uint32_t tenant)
{
	struct sluice_addr *keys = calloc(SLUICE_MAX_LEARNED, sizeof(*keys));
	struct sluice_addr key, next;
	struct sluice_learned v;
	size_t n = 0;

	if (!keys)
		return -ENOMEM;
	for (const struct sluice_addr *prev = NULL;
	     n < SLUICE_MAX_LEARNED && bpf_map_get_next_key(fd, prev, &next) == 0; prev = &key) {
		key = next;
		if (tenant == UINT32_MAX ||
		    (bpf_map_lookup_elem(fd, &key, &v) == 0 && v.tenant == tenant))
			keys[n++] = key;
	}
	for (size_t i = 0; i < n; i++)
		bpf_map_delete_elem(fd, &keys[i]);
	free(keys);
	return 0;
}
