/* SPDX-License-Identifier: Apache-2.0 */
/* Kernel counters and tenant state rendered as Prometheus series. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "obs/tenant_metrics.h"

static struct sluice_tenant_state tenants[SLUICE_MAX_TENANTS];
static const char *names[SLUICE_MAX_TENANTS];
static struct sluice_daemon_stats stats;

static char *render(const uint64_t *counters)
{
	struct buf out = { 0 };
	assert_int_equal(tenant_metrics_render(&out, counters, tenants, names, &stats), 0);
	assert_int_equal(buf_append(&out, "", 1), 0);
	return out.data;
}

static void has_line(const char *text, const char *line)
{
	char want[256];
	snprintf(want, sizeof(want), "\n%s\n", line);
	if (!strstr(text, want))
		fail_msg("missing line: %s\n--- in ---\n%s", line, text);
}

static void renders_named_tenants_only(void **state)
{
	(void)state;
	memset(tenants, 0, sizeof(tenants));
	memset(names, 0, sizeof(names));
	names[0] = "anonymous";
	names[7] = "acme";
	tenants[7].active_connections = 3;
	tenants[7].connections_total = 10;
	tenants[7].requests = 42;
	tenants[7].tokens_in = 1000;
	tenants[7].tokens_out = 250;
	tenants[7].blocked = 1;
	tenants[9].requests = 5;	/* no name: not rendered */
	tenants[0].active_connections = -1;	/* a close counted before its open */
	char *text = render(NULL);
	has_line(text, "sluice_tenant_active_connections{tenant=\"acme\"} 3");
	has_line(text, "sluice_tenant_active_connections{tenant=\"anonymous\"} 0");
	has_line(text, "sluice_tenant_connections_total{tenant=\"acme\"} 10");
	has_line(text, "sluice_tenant_requests_total{tenant=\"acme\"} 42");
	has_line(text, "sluice_tenant_tokens_total{tenant=\"acme\",direction=\"input\"} 1000");
	has_line(text, "sluice_tenant_tokens_total{tenant=\"acme\",direction=\"output\"} 250");
	has_line(text, "sluice_tenant_blocked{tenant=\"acme\"} 1");
	has_line(text, "# TYPE sluice_tenant_requests_total counter");
	assert_null(strstr(text, "sluice_kernel_decisions_total"));
	assert_null(strstr(text, "} 5\n"));
	free(text);
}

static void renders_every_kernel_counter(void **state)
{
	(void)state;
	uint64_t counters[SLUICE_C_MAX];
	for (unsigned i = 0; i < SLUICE_C_MAX; i++)
		counters[i] = 100 + i;
	char *text = render(counters);
	has_line(text, "# TYPE sluice_kernel_decisions_total counter");
	char line[128];
	snprintf(line, sizeof(line), "sluice_kernel_decisions_total{reason=\"xdp_drop_deny\"} %u",
		 100 + SLUICE_C_XDP_DROP_DENY);
	has_line(text, line);
	snprintf(line, sizeof(line), "sluice_kernel_decisions_total{reason=\"steer_fallback\"} %u",
		 100 + SLUICE_C_STEER_FALLBACK);
	has_line(text, line);
	size_t n = 0;
	for (const char *p = text; (p = strstr(p, "sluice_kernel_decisions_total{")); p++)
		n++;
	assert_int_equal(n, SLUICE_C_MAX);
	free(text);
}

static void renders_tls_modes_only_with_tls_on(void **state)
{
	(void)state;
	memset(&stats, 0, sizeof(stats));
	stats.tls_conns[SLUICE_TLS_KTLS] = 5;
	char *text = render(NULL);
	assert_null(strstr(text, "sluice_tls_connections_total"));
	free(text);
	stats.tls_enabled = 1;
	text = render(NULL);
	has_line(text, "sluice_tls_connections_total{mode=\"ktls\"} 5");
	has_line(text, "sluice_tls_connections_total{mode=\"plain_http\"} 0");
	free(text);
}

/* Connections to https backends are rendered whether or not the listener
 * speaks TLS, each mode from its own counter, and never as plain_http. */
static void renders_upstream_tls_modes(void **state)
{
	(void)state;
	memset(&stats, 0, sizeof(stats));
	stats.tls_conns[SLUICE_TLS_KTLS] = 9;
	stats.upstream_tls_conns[SLUICE_TLS_KTLS] = 3;
	stats.upstream_tls_conns[SLUICE_TLS_KTLS_TX] = 4;
	stats.upstream_tls_conns[SLUICE_TLS_USERSPACE] = 5;
	stats.upstream_tls_conns[SLUICE_TLS_FAILED] = 6;
	stats.upstream_tls_conns[SLUICE_TLS_PLAIN_HTTP] = 7;
	char *text = render(NULL);
	has_line(text, "# TYPE sluice_upstream_tls_connections_total counter");
	has_line(text, "sluice_upstream_tls_connections_total{mode=\"ktls\"} 3");
	has_line(text, "sluice_upstream_tls_connections_total{mode=\"ktls_tx\"} 4");
	has_line(text, "sluice_upstream_tls_connections_total{mode=\"userspace\"} 5");
	has_line(text, "sluice_upstream_tls_connections_total{mode=\"failed\"} 6");
	assert_null(strstr(text, "sluice_upstream_tls_connections_total{mode=\"plain_http\"}"));
	assert_null(strstr(text, "sluice_tls_connections_total"));
	free(text);
	stats.tls_enabled = 1;
	text = render(NULL);
	has_line(text, "sluice_tls_connections_total{mode=\"ktls\"} 9");
	has_line(text, "sluice_upstream_tls_connections_total{mode=\"ktls\"} 3");
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(renders_named_tenants_only),
		cmocka_unit_test(renders_every_kernel_counter),
		cmocka_unit_test(renders_tls_modes_only_with_tls_on),
		cmocka_unit_test(renders_upstream_tls_modes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
