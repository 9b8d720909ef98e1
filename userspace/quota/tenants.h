/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The tenant registry: which slot of the shared tenant state (pinned map
 * or the daemon's own array) belongs to which tenant.  A slot belongs to a
 * name, recorded in the slot itself (FNV-1a hash of the whole name, its
 * length and a prefix), so a reload that reorders, adds or removes
 * tenants, or a restart, never hands one tenant's usage, blocked flag or
 * counters to another.  Slot 0 is the anonymous tenant's.
 */
#ifndef SLUICE_QUOTA_TENANTS_H
#define SLUICE_QUOTA_TENANTS_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "sluice_maps.h"

/* FNV-1a 64 of the name, never 0 (0 marks a free slot). */
uint64_t tenants_name_hash(const char *name, size_t len);

/* Does slot st belong to this name? */
bool tenants_slot_is(const struct sluice_tenant_state *st, const char *name);

/* The slot of name, or 0 when it has none.  O(SLUICE_MAX_TENANTS). */
uint32_t tenants_find(const struct sluice_tenant_state *arr, const char *name);

/*
 * Give every tenant of cfg its slot (t->id, cfg->tenant_by_id and the
 * anonymous tenant's id follow): the one already named after it, else a
 * free one, cleared.  Slots of names cfg no longer has are cleared and
 * freed first; their ids go to freed[] (*nfreed of them, at most
 * SLUICE_MAX_TENANTS) so the caller can drop what else hangs on them.
 * Only live connection counts (active_connections) survive a clear: the
 * sockets still open decrement them when they close.
 */
int tenants_assign(struct sluice_tenant_state *arr, struct sluice_config *cfg,
		   uint32_t *freed, size_t *nfreed);

#endif
