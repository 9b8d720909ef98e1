/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Learned sources: which tenant's credentials were seen from an address,
 * and whether any other (or no credential at all) was seen there too.
 *
 * An address is never a credential: nothing is admitted, steered or capped
 * because of a learned entry.  Its one use is to let XDP refuse the new
 * connections of a blocked tenant from an address that tenant used alone
 * within kernel.learned_ttl (the rule is in docs/ARCHITECTURE.md).
 */
#ifndef SLUICE_KERN_LEARNED_H
#define SLUICE_KERN_LEARNED_H

#include <stdbool.h>
#include <stdint.h>

#include "sluice_maps.h"

/* What a request from the address showed: a tenant's key or JWT, or
 * nothing (a keyless request, whatever tenant it was counted as). */
#define LEARNED_NO_CREDENTIAL	UINT32_MAX

/*
 * The entry after a sighting at now (CLOCK_MONOTONIC ns).  old may be
 * NULL (no entry).  A sighting of another tenant, or without credential,
 * within the window makes the address shared for a whole window.
 */
struct sluice_learned learned_next(const struct sluice_learned *old, uint32_t tenant,
				   uint64_t now_ns, uint64_t ttl_ns);

/* The rule XDP applies, for tests and sluicectl. */
static inline bool learned_exclusive(const struct sluice_learned *l, uint64_t now_ns)
{
	return now_ns < l->expires_ns && now_ns >= l->shared_until_ns;
}

/* Record a sighting in the pinned map (fd): 0 or -errno. */
int learned_note(int fd, const struct sluice_addr *addr, uint32_t tenant, uint64_t ttl_ns);

/* Drop the entries of tenant (or of every tenant for UINT32_MAX). */
int learned_forget(int fd, uint32_t tenant);

#endif
