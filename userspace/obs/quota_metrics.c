/* SPDX-License-Identifier: Apache-2.0 */
#include "obs/quota_metrics.h"

#include "quota/quota.h"

static uint64_t load(const __u64 *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* A window's counter, or 0 once that window is over (nobody rolled it yet). */
static uint64_t in_window(const __u64 *window, uint64_t now_window, const __u64 *count)
{
	return load(window) == now_window ? load(count) : 0;
}

static int render_tenant(struct buf *out, const char *t, const struct sluice_tenant_state *st,
			 uint64_t now_ms)
{
	const struct sluice_usage *u = &st->usage;
	int64_t inflight = __atomic_load_n(&u->concurrent, __ATOMIC_RELAXED);
	return buf_printf(out,
		"sluice_tenant_requests_in_flight{tenant=\"%s\"} %lld\n"
		"sluice_tenant_quota_denied_total{tenant=\"%s\"} %llu\n"
		"sluice_tenant_quota_tokens{tenant=\"%s\",window=\"minute\"} %llu\n"
		"sluice_tenant_quota_tokens{tenant=\"%s\",window=\"day\"} %llu\n"
		"sluice_tenant_quota_tokens{tenant=\"%s\",window=\"month\"} %llu\n",
		t, (long long)(inflight < 0 ? 0 : inflight),
		t, (unsigned long long)load(&u->denied),
		t, (unsigned long long)in_window(&u->minute, quota_minute(now_ms), &u->tokens_minute),
		t, (unsigned long long)in_window(&u->day, quota_day(now_ms), &u->tokens_day),
		t, (unsigned long long)in_window(&u->month, quota_month(now_ms), &u->tokens_month));
}

static int render_redis(struct buf *out, const struct quota_metrics_input *in)
{
	return buf_printf(out,
		"# HELP sluice_quota_redis_up 1 when the last call to the global quota Redis worked.\n"
		"# TYPE sluice_quota_redis_up gauge\n"
		"sluice_quota_redis_up %d\n"
		"# HELP sluice_quota_redis_calls_total Round trips to the global quota Redis.\n"
		"# TYPE sluice_quota_redis_calls_total counter\n"
		"sluice_quota_redis_calls_total %llu\n"
		"# HELP sluice_quota_redis_errors_total Failed connects, calls and error replies.\n"
		"# TYPE sluice_quota_redis_errors_total counter\n"
		"sluice_quota_redis_errors_total %llu\n"
		"# HELP sluice_quota_redis_policy_total Requests decided by on_error while Redis was down.\n"
		"# TYPE sluice_quota_redis_policy_total counter\n"
		"sluice_quota_redis_policy_total{action=\"fail_open\"} %llu\n"
		"sluice_quota_redis_policy_total{action=\"fail_closed\"} %llu\n",
		in->redis_up ? 1 : 0, (unsigned long long)in->redis_calls,
		(unsigned long long)in->redis_errors, (unsigned long long)in->fail_open,
		(unsigned long long)in->fail_closed);
}

static int render_auth(struct buf *out, const struct quota_metrics_input *in)
{
	return buf_printf(out,
		"# HELP sluice_auth_key_reloads_total API key table rebuilds after a keys file changed.\n"
		"# TYPE sluice_auth_key_reloads_total counter\n"
		"sluice_auth_key_reloads_total{result=\"ok\"} %llu\n"
		"sluice_auth_key_reloads_total{result=\"error\"} %llu\n"
		"# HELP sluice_auth_jwks_refreshes_total JWKS loads and fetches after start-up.\n"
		"# TYPE sluice_auth_jwks_refreshes_total counter\n"
		"sluice_auth_jwks_refreshes_total{result=\"ok\"} %llu\n"
		"sluice_auth_jwks_refreshes_total{result=\"error\"} %llu\n"
		"# HELP sluice_auth_jwt_cache_total JWTs found in a worker's cache, or verified.\n"
		"# TYPE sluice_auth_jwt_cache_total counter\n"
		"sluice_auth_jwt_cache_total{result=\"hit\"} %llu\n"
		"sluice_auth_jwt_cache_total{result=\"miss\"} %llu\n",
		(unsigned long long)in->key_reloads, (unsigned long long)in->key_reload_errors,
		(unsigned long long)in->jwks_refreshes, (unsigned long long)in->jwks_refresh_errors,
		(unsigned long long)in->jwt_cache_hits, (unsigned long long)in->jwt_cache_misses);
}

int quota_metrics_render(struct buf *out, const struct quota_metrics_input *in)
{
	int err = buf_append_cstr(out,
		"# HELP sluice_tenant_requests_in_flight Requests admitted and not yet finished.\n"
		"# TYPE sluice_tenant_requests_in_flight gauge\n"
		"# HELP sluice_tenant_quota_denied_total Requests refused by a tenant limit (429).\n"
		"# TYPE sluice_tenant_quota_denied_total counter\n"
		"# HELP sluice_tenant_quota_tokens Tokens used and reserved in the current window.\n"
		"# TYPE sluice_tenant_quota_tokens gauge\n");
	for (unsigned id = 0; !err && id < SLUICE_MAX_TENANTS; id++)
		if (in->names[id])
			err = render_tenant(out, in->names[id], &in->tenants[id], in->now_ms);
	if (!err && in->global)
		err = render_redis(out, in);
	return err ? err : render_auth(out, in);
}
