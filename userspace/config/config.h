/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The configuration: a YAML file loaded into one immutable snapshot.
 *
 * A snapshot is never modified after config_load() returns it; a reload
 * builds a new one and swaps the pointer, so readers need no lock.
 * Every error names the file, the line and the key:
 *   sluice.yaml:12: backends[0].url: scheme must be http or https
 */
#ifndef SLUICE_CONFIG_CONFIG_H
#define SLUICE_CONFIG_CONFIG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <linux/types.h>

#include "config/config_guard.h"
#include "sluice_maps.h"

struct backend_cfg {
	char *name;
	char *url;		/* as configured, after ${VAR} expansion */
	bool tls;		/* https */
	char *host;		/* for Host: and SNI, without brackets */
	uint16_t port;		/* default 80 / 443 */
	char *base_path;	/* "/v1" from "http://h:p/v1", no trailing '/';
				 * "" when the URL has no path */
	struct sockaddr_storage addr;	/* resolved at load time */
	socklen_t addrlen;
	char *api_key;		/* NULL or "" for none; sent as Bearer */
	char **models;		/* exact names; "*" means any model */
	size_t nmodels;
	bool any_model;		/* one of models is "*" */
	char *ca_file;		/* NULL: the system store */
	bool tls_verify;	/* default true */
	unsigned max_idle;	/* idle keep-alive connections kept per worker, default 64 */
	unsigned idle_timeout_ms;	/* how long one is kept, default 4s: below
					 * the backend's own keep-alive timeout
					 * (5s in uvicorn/vLLM and Node), so the
					 * gateway, not the backend, closes it */
	unsigned index;		/* position in config.backends */
	/* health_check: an active GET of path every interval, off the
	 * workers; absent: off (the backend counts as up). */
	bool hc_enabled;
	char *hc_path;			/* default "/health" (vLLM, TGI) */
	unsigned hc_interval_ms;	/* default 10s */
	unsigned hc_timeout_ms;		/* default 2s */
	unsigned hc_unhealthy_after;	/* failed checks in a row, default 3 */
	unsigned hc_healthy_after;	/* passed checks in a row, default 2 */
	/* breaker: passive outlier detection of the backend, per worker, for
	 * every route that uses it (implicit ones too). */
	unsigned br_failures;		/* failures in a row, default 5; 0: off */
	unsigned br_error_percent;	/* error rate over the window, default 0: off */
	unsigned br_min_requests;	/* before the rate counts, default 20 */
	unsigned br_window_ms;		/* default 10s */
	unsigned br_open_ms;		/* open before a half-open probe, default 10s */
};

/* The kernel half (kernel: in the YAML).  Absent section: enabled with
 * defaults where the machine allows it; `enabled: false` turns it off. */
enum xdp_mode_cfg { XDP_MODE_AUTO = 0, XDP_MODE_NATIVE, XDP_MODE_GENERIC };

struct cidr_cfg {
	uint8_t bytes[16];	/* IPv4 as ::ffff:a.b.c.d */
	uint32_t prefixlen;	/* 0..128 (IPv4 /n is 96 + n) */
	char *text;		/* as configured, e.g. "10.20.0.0/16" */
};

struct kernel_cfg {
	bool enabled;		/* default true */
	bool pin_links;		/* default false: XDP and sockops links pinned under
				 * pin_root, kept across restarts and taken over
				 * (bpf_link_update) by the next sluiced */
	char *pin_root;		/* default "/sys/fs/bpf/sluice" */
	char *cgroup;		/* default "/sys/fs/cgroup/unified/sluice"; "" = no sockops */
	char **xdp_interfaces;	/* default none */
	size_t n_xdp_interfaces;
	enum xdp_mode_cfg xdp_mode;	/* default auto */
	unsigned source_conn_rate;	/* new connections/s per source; 0 = unlimited (default) */
	unsigned source_conn_burst;	/* default = rate */
	struct cidr_cfg *deny;
	size_t ndeny;
	unsigned learned_ttl_ms;	/* default 10m: how long a learned source counts */
};

enum tenant_workers { TENANT_WORKERS_SHARED = 0, TENANT_WORKERS_DEDICATED };

/* Limits of one model (glob) of a tenant: model_limits[] in the YAML. */
struct model_limits_cfg {
	char *model;			/* glob: "gpt-4o*", "mock-?", exact names */
	struct sluice_limits limits;
};

struct tenant_cfg {
	char *name;			/* unique, [A-Za-z0-9_.-]+ */
	unsigned id;			/* slot in the tenant state: given by the registry
					 * (quota/tenants.c) from the name; position + 1
					 * until then */
	struct cidr_cfg *networks;
	size_t nnetworks;
	unsigned conn_rate;		/* limits.conn_rate: new connections/s, 0 = unlimited */
	unsigned conn_burst;		/* limits.conn_burst, default = conn_rate */
	unsigned max_connections;	/* limits.max_connections, 0 = unlimited */
	enum tenant_workers workers;	/* default shared */
	char *keys_file;		/* salted API key hashes; NULL: no keys */
	char **models;			/* allowed model globs; none = every model */
	size_t nmodels;
	char **client_subjects;		/* mutual TLS certificate subjects that
					 * mean this tenant, as logged in client_cert */
	size_t nclient_subjects;
	struct sluice_limits limits;	/* limits.requests_per_minute ...; 0 = none */
	struct sluice_limits key_limits;	/* each API key of the tenant */
	bool has_key_limits;
	struct model_limits_cfg *model_limits;
	size_t nmodel_limits;
	char *guardrails;		/* policy name; NULL: guardrails.default */
	const struct guard_policy *guard;	/* resolved at load; NULL: none */
};

/* Who a request is when it carries no credential (auth.anonymous). */
enum anonymous_policy {
	ANON_ALLOW = 0,		/* the socket's tenant tag, else tenant 0 (no auth: section) */
	ANON_DENY,		/* 401 unless the kernel tagged a tenant network */
	ANON_TENANT,		/* counted as auth.anonymous (a tenant name) */
};

struct jwt_cfg {
	bool enabled;			/* auth.jwt present */
	char *jwks_file;		/* one of jwks_file, jwks_url at least */
	char *jwks_url;
	unsigned refresh_ms;		/* jwks_url refresh, default 5m */
	char *ca_file;			/* for an https jwks_url; NULL: system store */
	char *issuer;			/* NULL: not checked */
	char *audience;			/* NULL: not checked */
	char *tenant_claim;		/* default "tenant" */
	char *models_claim;		/* NULL: none */
	unsigned leeway_s;		/* exp/nbf slack, default 60 */
};

struct auth_cfg {
	bool present;			/* the auth: section is there */
	bool on;			/* present, or a tenant has a keys_file:
					 * requests are authenticated */
	enum anonymous_policy anonymous;	/* default allow without auth:, deny with it */
	unsigned anonymous_tenant;	/* ANON_TENANT: its id */
	char *anonymous_name;
	struct jwt_cfg jwt;
};

struct quota_cfg {
	bool redis;			/* quota.redis present: global mode */
	char *redis_url;
	bool fail_open;			/* on_error: open (default) or closed */
	unsigned redis_timeout_ms;	/* default 50 */
	unsigned lease_percent;		/* lease size, % of a limit, default 1 */
	unsigned default_max_tokens;	/* output reservation without max_tokens, default 4096 */
	unsigned bytes_per_token;	/* prompt estimate: body bytes / this, default 4 */
	unsigned max_scopes_per_tenant;	/* key and model quota slots a tenant may hold,
					 * default 512 */
};

/* The client-facing TLS listener (tls: in the YAML).  Absent section:
 * plain HTTP.  Only paths and syntax are checked at load time; the PEM
 * contents are read when the server context is built (tls/tls_server.h). */
enum tls_version_cfg { TLS_VERSION_1_2 = 0, TLS_VERSION_1_3 };

struct tls_sni_cfg {
	char **names;		/* "api.example.com" or "*.corp.example" */
	size_t nnames;
	char *cert;		/* PEM chain, leaf first */
	char *key;
};

struct tls_listen_cfg {
	bool enabled;			/* the section is present */
	char *cert;			/* PEM chain, leaf first */
	char *key;
	enum tls_version_cfg min_version;	/* default 1.2 */
	char *ciphers;			/* TLS 1.2 cipher list; NULL = OpenSSL's */
	char *ciphersuites;		/* TLS 1.3 suites; NULL = OpenSSL's */
	char *groups;			/* key exchange groups; NULL = OpenSSL's */
	char *client_ca;		/* mutual TLS trust store; NULL = no client certs */
	struct tls_sni_cfg *sni;
	size_t nsni;
	bool ktls;			/* default true */
};

/* The admin listener (admin: in the YAML): /metrics and the admin
 * endpoints, apart from the API.  Absent section: no admin listener. */
struct admin_cfg {
	bool enabled;			/* the section is present */
	char *listen;			/* "127.0.0.1:9090" as configured */
	struct sockaddr_storage listen_addr;
	socklen_t listen_addrlen;
	char *token;			/* NULL: none; else requests need
					 * "Authorization: Bearer <token>" */
};

/* What the backend learns about the client (forwarding: in the YAML). */
enum forward_headers_cfg {
	FWD_HEADERS_X_FORWARDED = 0,	/* X-Forwarded-For and X-Forwarded-Proto (default) */
	FWD_HEADERS_FORWARDED,		/* RFC 7239 Forwarded: for=...;proto=... */
	FWD_HEADERS_BOTH,
	FWD_HEADERS_NONE,		/* the gateway adds none */
};

struct forwarding_cfg {
	struct cidr_cfg *trusted_proxies;	/* peers whose identity headers are kept */
	size_t ntrusted_proxies;
	enum forward_headers_cfg headers;
	bool tenant_header;		/* send x-sluice-tenant: <name> (default false) */
};

/* routes: in the YAML (route/route.h builds the table from them). */
enum route_balance_cfg {
	ROUTE_BALANCE_WEIGHTED = 0,	/* smooth weighted round robin (default) */
	ROUTE_BALANCE_LEAST_INFLIGHT,	/* fewest requests in flight per weight */
	ROUTE_BALANCE_PEAK_EWMA,	/* lowest latency EWMA x (in flight + 1) per weight */
};

enum route_sticky_cfg {
	ROUTE_STICKY_NONE = 0,
	ROUTE_STICKY_HEADER,		/* sticky.header: a request header's value */
	ROUTE_STICKY_API_KEY,		/* sticky.api_key: true */
	ROUTE_STICKY_TENANT,		/* sticky.tenant: true */
};

/* One target of a route: an arm (targets[]) or a link of the fallback chain. */
struct route_target_cfg {
	char *backend_name;		/* as written; resolved into backend */
	unsigned backend;		/* index in config.backends */
	char *model;			/* the model the backend is asked for;
					 * NULL: the one the client sent */
	unsigned weight;		/* arms: default 1; 0 = drained */
	bool context_fallback;		/* fallback: also takes a request the
					 * previous target refused with a 400
					 * context_length_exceeded */
	unsigned line;			/* for errors found after loading */
};

struct route_cfg {
	char *model;			/* what clients send (an alias) */
	struct route_target_cfg *targets;
	size_t ntargets;
	struct route_target_cfg *fallback;
	size_t nfallback;
	enum route_balance_cfg balance;
	enum route_sticky_cfg sticky;
	char *sticky_header;		/* ROUTE_STICKY_HEADER */
	char *match_header;		/* match.header: {NAME: VALUE}; NULL: any */
	char *match_value;
	char *match_tenant;		/* match.tenant; NULL: any */
	unsigned retry_percent;		/* retry_budget.percent, default 20 */
	unsigned retry_min;		/* retry_budget.min_retries per second, default 3 */
	unsigned breaker_failures;	/* breaker.failures in a row, default 5; 0 = off */
	unsigned breaker_open_ms;	/* breaker.open, default 10s */
	unsigned backoff_base_ms;	/* retry.backoff_base, default 25ms */
	unsigned backoff_max_ms;	/* retry.backoff_max, default 1s */
	unsigned line;
};

struct sluice_config {
	char *path;			/* the file it came from */
	char *listen;			/* "127.0.0.1:8080" as configured */
	struct sockaddr_storage listen_addr;
	socklen_t listen_addrlen;
	unsigned workers;		/* default: online CPUs */
	char *log_level;		/* "info" */
	char *access_log;		/* "-" stdout (default), "off", or a file path */

	/* limits: */
	size_t max_body_bytes;		/* default 8 MiB */
	size_t max_header_bytes;	/* default 16 KiB */
	/* Streamed (SSE) responses are relayed event by event, so they are
	 * bounded per line and per event, not over their lifetime: */
	size_t max_sse_line_bytes;	/* default 8 MiB */
	size_t max_sse_event_bytes;	/* default 16 MiB */
	size_t max_stream_bytes;	/* a whole stream; default 0: no limit */
	unsigned max_connections;	/* whole daemon, default 10000 */

	/* timeouts, milliseconds: */
	unsigned client_header_ms;	/* whole head must arrive within, default 10000 */
	unsigned client_body_ms;	/* whole body must arrive within, default 30000 */
	unsigned keepalive_ms;		/* idle keep-alive connection, default 60000 */
	unsigned upstream_connect_ms;	/* default 5000 */
	unsigned upstream_first_byte_ms;	/* request sent -> first response byte, default 60000 */
	unsigned upstream_idle_ms;	/* between two reads of a response, default 30000 */
	unsigned drain_ms;		/* SIGTERM grace for in-flight requests, default 10000 */
	unsigned stage_ms;		/* a stage's wait (AGAIN) before 504 stage_timeout,
					 * default 5000 */

	/* debug: */
	bool debug_test_stage;		/* compile-time present, off unless set: the
					 * x-sluice-test-stage header drives a stage
					 * that waits, drops, replaces, holds events */

	struct backend_cfg *backends;
	size_t nbackends;
	struct route_cfg *routes;	/* in file order: the first match wins */
	size_t nroutes;

	struct kernel_cfg kernel;
	struct tenant_cfg *tenants;
	size_t ntenants;

	struct tls_listen_cfg tls;
	struct auth_cfg auth;
	struct quota_cfg quota;
	struct admin_cfg admin;
	struct forwarding_cfg forwarding;
	struct guardrails_cfg guardrails;

	/* tenants by id, for the request path (NULL: no such tenant) */
	const struct tenant_cfg *tenant_by_id[SLUICE_MAX_TENANTS];
};

/* The tenant with this id, or NULL (O(1)). */
static inline const struct tenant_cfg *config_tenant_by_id(const struct sluice_config *cfg,
							   uint32_t id)
{
	return id < SLUICE_MAX_TENANTS ? cfg->tenant_by_id[id] : NULL;
}

/* The guardrails policy of a request of tenant id (its own, else
 * guardrails.default), or NULL for none. */
static inline const struct guard_policy *config_guard_policy(const struct sluice_config *cfg,
							     uint32_t id)
{
	const struct tenant_cfg *t = config_tenant_by_id(cfg, id);

	return t && t->guard ? t->guard : cfg->guardrails.default_policy;
}

/* The tenant named `name`, or NULL. */
const struct tenant_cfg *config_tenant_by_name(const struct sluice_config *cfg, const char *name);
/* True when the tenant may use `model` (its models globs, or all). */
bool config_tenant_allows_model(const struct tenant_cfg *t, const char *model, size_t len);
/* The first model_limits entry whose glob matches, or NULL. */
const struct model_limits_cfg *config_model_limits(const struct tenant_cfg *t, const char *model,
						   size_t len);

/* Parse "10.0.0.0/8", "2001:db8::/32" or a bare address (a /32 or /128).
 * Host bits set below the prefix are an error.  0 or -EINVAL. */
int config_parse_cidr(const char *s, struct cidr_cfg *out);
/* True when addr (16 bytes, IPv4 as ::ffff:a.b.c.d) is inside one of list. */
bool config_cidr_contains(const struct cidr_cfg *list, size_t n, const uint8_t addr[16]);

struct config_error {
	char text[512];		/* "file:line: key: what is wrong" */
};

/* err->text = "file:line: key: " and the reason; returns -EINVAL.  The one
 * error format of every config section (config.c, config_guard.c). */
int config_errorf(struct config_error *err, const char *file, unsigned line, const char *key,
		  const char *fmt, ...) __attribute__((format(printf, 5, 6)));
int config_verrorf(struct config_error *err, const char *file, unsigned line, const char *key,
		   const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

/* Load and validate.  0 and *out, or a negative errno with err->text set. */
int config_load(const char *path, struct sluice_config **out, struct config_error *err);
void config_free(struct sluice_config *cfg);

/* The tenant registry's slots (quota/tenants.c): tenants[i].id = ids[i],
 * and tenant_by_id and auth.anonymous_tenant follow.  Only on a config
 * not yet published to the workers. */
void config_set_tenant_ids(struct sluice_config *cfg, const unsigned *ids);

/* Parse "8MiB", "512KiB", "1024", "10MB" (decimal) into bytes; "10s", "250ms",
 * "2m", "1h" or a bare number of milliseconds.  0 or -EINVAL.  Exposed for
 * tests and for other modules' config sections. */
int config_parse_size(const char *s, size_t *out);
int config_parse_duration_ms(const char *s, unsigned *out);

/* Expand ${VAR} and ${VAR:-default} from the environment; an unset VAR
 * without a default expands to "".  Returns a malloc'd string or NULL with
 * errno = EINVAL for an unterminated "${". */
char *config_expand_env(const char *s);

#endif
