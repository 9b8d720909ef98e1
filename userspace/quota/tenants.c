/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <string.h>

#include "core/log.h"
#include "quota/tenants.h"

uint64_t tenants_name_hash(const char *name, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)name[i];
		h *= 0x100000001b3ull;
	}
	return h ? h : 1;
}

/* Names longer than the prefix are told apart by length and hash: two
 * names alike in all three are taken to be one. */
bool tenants_slot_is(const struct sluice_tenant_state *st, const char *name)
{
	size_t len = strlen(name);
	uint64_t h = __atomic_load_n(&st->name_hash, __ATOMIC_ACQUIRE);
	return h && h == tenants_name_hash(name, len) && st->name_len == len &&
	       strncmp(st->name, name, sizeof(st->name)) == 0;
}

uint32_t tenants_find(const struct sluice_tenant_state *arr, const char *name)
{
	for (uint32_t id = 1; id < SLUICE_MAX_TENANTS; id++)
		if (tenants_slot_is(&arr[id], name))
			return id;
	return 0;
}

/* Everything but the live connection count; the name goes first (its
 * hash to 0), so nobody matches a half-cleared slot. */
static void slot_clear(struct sluice_tenant_state *st)
{
	__atomic_store_n(&st->name_hash, 0, __ATOMIC_RELEASE);
	__s64 active = __atomic_load_n(&st->active_connections, __ATOMIC_RELAXED);
	memset(st, 0, sizeof(*st));
	__atomic_store_n(&st->active_connections, active, __ATOMIC_RELAXED);
}

static void slot_claim(struct sluice_tenant_state *st, const char *name)
{
	size_t len = strlen(name);
	slot_clear(st);
	/* A prefix, NUL padded, not necessarily NUL terminated. */
	memcpy(st->name, name, len < sizeof(st->name) ? len : sizeof(st->name));
	st->name_len = (__u32)len;
	__atomic_store_n(&st->name_hash, tenants_name_hash(name, len), __ATOMIC_RELEASE);
}

static const struct tenant_cfg *cfg_tenant_of(const struct sluice_config *cfg,
					      const struct sluice_tenant_state *st)
{
	for (size_t i = 0; i < cfg->ntenants; i++)
		if (tenants_slot_is(st, cfg->tenants[i].name))
			return &cfg->tenants[i];
	return NULL;
}

int tenants_assign(struct sluice_tenant_state *arr, struct sluice_config *cfg,
		   uint32_t *freed, size_t *nfreed)
{
	unsigned ids[SLUICE_MAX_TENANTS] = { 0 };
	*nfreed = 0;
	/* Free what belongs to no configured name; note what does. */
	for (uint32_t id = 1; id < SLUICE_MAX_TENANTS; id++) {
		if (!__atomic_load_n(&arr[id].name_hash, __ATOMIC_ACQUIRE))
			continue;
		const struct tenant_cfg *t = cfg_tenant_of(cfg, &arr[id]);
		if (t && !ids[t - cfg->tenants]) {
			ids[t - cfg->tenants] = id;
			continue;
		}
		slot_clear(&arr[id]);
		freed[(*nfreed)++] = id;
	}
	/* New names take the lowest free slots. */
	uint32_t next = 1;
	for (size_t i = 0; i < cfg->ntenants; i++) {
		if (ids[i])
			continue;
		while (next < SLUICE_MAX_TENANTS && arr[next].name_hash)
			next++;
		if (next == SLUICE_MAX_TENANTS)
			return -ENOSPC;	/* cannot happen: the config allows fewer */
		slot_claim(&arr[next], cfg->tenants[i].name);
		ids[i] = next;
	}
	config_set_tenant_ids(cfg, ids);
	return 0;
}
