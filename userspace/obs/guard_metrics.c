/* SPDX-License-Identifier: Apache-2.0 */
#include "obs/guard_metrics.h"

#include <errno.h>

static void bump(uint64_t *c)
{
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
}

static int policy_index(const struct sluice_config *cfg, const struct guard_policy *p)
{
	for (size_t i = 0; i < cfg->guardrails.npolicies && i < GUARD_METRICS_POLICIES; i++)
		if (cfg->guardrails.policies[i] == p)
			return (int)i;
	return -1;
}

static void count_mask(struct guard_metrics *m, int pi, uint64_t mask, enum guard_action a,
		       enum guard_direction dir)
{
	for (unsigned e = 0; mask && e < GUARD_ENTITY_MAX; e++)
		if (mask & (1ull << e))
			bump(&m->hits[pi][e][a][dir]);
}

void guard_metrics_count(struct guard_metrics *m, const struct sluice_config *cfg,
			 const struct guard_policy *p, const struct guard_result *res,
			 enum guard_direction dir)
{
	int pi = m && p ? policy_index(cfg, p) : -1;

	if (pi < 0)
		return;
	count_mask(m, pi, res->masked, GUARD_MASK, dir);
	count_mask(m, pi, res->blocked, GUARD_BLOCK, dir);
	count_mask(m, pi, res->flagged, GUARD_FLAG, dir);
}

int guard_metrics_render(struct buf *out, struct guard_metrics *const *workers, size_t n,
			 const struct sluice_config *cfg)
{
	static const char *const dirs[] = { "request", "response" };
	int err = buf_append_cstr(out, "# HELP sluice_guardrail_hits_total Requests and streams "
				  "in which a guardrail entity was found.\n"
				  "# TYPE sluice_guardrail_hits_total counter\n");

	for (size_t pi = 0; !err && pi < cfg->guardrails.npolicies && pi < GUARD_METRICS_POLICIES;
	     pi++) {
		const struct guard_policy *p = cfg->guardrails.policies[pi];
		for (unsigned e = 0; !err && e < GUARD_ENTITY_MAX; e++) {
			for (unsigned a = GUARD_FLAG; !err && a <= GUARD_BLOCK; a++) {
				for (unsigned d = 0; !err && d < GUARD_DIRS; d++) {
					uint64_t sum = 0;
					for (size_t w = 0; w < n; w++)
						sum += __atomic_load_n(&workers[w]->hits[pi][e][a][d],
								       __ATOMIC_RELAXED);
					if (!sum)
						continue;
					err = buf_printf(out, "sluice_guardrail_hits_total{policy=\"%s\","
							 "entity=\"%s\",action=\"%s\",direction=\"%s\"} "
							 "%llu\n", guard_policy_name(p),
							 guard_entity_name(p, e),
							 guard_action_name((enum guard_action)a), dirs[d],
							 (unsigned long long)sum);
				}
			}
		}
	}
	return err ? -ENOMEM : 0;
}
