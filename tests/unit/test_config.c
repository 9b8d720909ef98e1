/* SPDX-License-Identifier: Apache-2.0 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"
#include "config_fixture.h"

#define EXAMPLE "config/sluice.example.yaml"

/* expected is the error text after "PATH:". */
static void assert_load_error(const char *yaml, const char *expected)
{
	struct sluice_config *cfg = (struct sluice_config *)1;
	struct config_error err;
	char path[64], want[600];
	int rc = load_text(yaml, path, sizeof(path), &cfg, &err);

	snprintf(want, sizeof(want), "%s:%s", path, expected);
	assert_int_equal(rc, -EINVAL);
	assert_null(cfg);
	assert_string_equal(err.text, want);
}

static uint16_t sa_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

static const char *sa_host(const struct sockaddr_storage *ss, char *buf, size_t size)
{
	const void *a = ss->ss_family == AF_INET6 ?
		(const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr :
		(const void *)&((const struct sockaddr_in *)ss)->sin_addr;
	return inet_ntop(ss->ss_family, a, buf, (socklen_t)size);
}

/* ------------------------------------------------------------------ */

static void test_example_config_loads(void **state)
{
	struct sluice_config *cfg = NULL;
	struct config_error err;
	char host[64];

	(void)state;
	setenv("OPENAI_API_KEY", "sk-example", 1);
	int rc = config_load(EXAMPLE, &cfg, &err);
	unsetenv("OPENAI_API_KEY");
	if (rc)
		print_error("%s\n", err.text);
	assert_int_equal(rc, 0);
	assert_string_equal(cfg->path, EXAMPLE);
	assert_string_equal(cfg->listen, "127.0.0.1:8080");
	assert_int_equal(cfg->listen_addr.ss_family, AF_INET);
	assert_string_equal(sa_host(&cfg->listen_addr, host, sizeof(host)), "127.0.0.1");
	assert_int_equal(sa_port(&cfg->listen_addr), 8080);
	assert_int_equal(cfg->listen_addrlen, sizeof(struct sockaddr_in));
	assert_int_equal(cfg->workers, 2);
	assert_string_equal(cfg->log_level, "info");
	assert_string_equal(cfg->access_log, "-");
	assert_int_equal(cfg->max_body_bytes, 8 << 20);
	assert_int_equal(cfg->max_header_bytes, 16 << 10);
	assert_int_equal(cfg->drain_ms, 10000);
	assert_int_equal(cfg->nbackends, 1);

	const struct backend_cfg *b = &cfg->backends[0];
	assert_string_equal(b->name, "local");
	assert_string_equal(b->url, "http://127.0.0.1:9000/v1");
	assert_false(b->tls);
	assert_string_equal(b->host, "127.0.0.1");
	assert_int_equal(b->port, 9000);
	assert_string_equal(b->base_path, "/v1");
	assert_int_equal(sa_port(&b->addr), 9000);
	assert_string_equal(b->api_key, "sk-example");
	assert_int_equal(b->nmodels, 3);
	assert_string_equal(b->models[0], "mock-small");
	assert_string_equal(b->models[1], "mock-large");
	assert_string_equal(b->models[2], "mock-embed");
	assert_false(b->any_model);
	assert_null(b->ca_file);
	assert_true(b->tls_verify);
	assert_int_equal(b->max_idle, 64);
	/* make run serves /metrics on a loopback admin listener. */
	assert_true(cfg->admin.enabled);
	assert_string_equal(sa_host(&cfg->admin.listen_addr, host, sizeof(host)), "127.0.0.1");
	assert_int_equal(sa_port(&cfg->admin.listen_addr), 9090);
	assert_null(cfg->admin.token);
	assert_int_equal(cfg->forwarding.headers, FWD_HEADERS_X_FORWARDED);
	config_free(cfg);
}

static void test_defaults(void **state)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	char host[64];

	(void)state;
	struct sluice_config *cfg = load_ok(BACKEND);
	assert_string_equal(cfg->listen, "127.0.0.1:8080");
	assert_string_equal(sa_host(&cfg->listen_addr, host, sizeof(host)), "127.0.0.1");
	assert_int_equal(sa_port(&cfg->listen_addr), 8080);
	assert_int_equal(cfg->workers, cpus > 256 ? 256 : cpus);
	assert_string_equal(cfg->log_level, "info");
	assert_string_equal(cfg->access_log, "-");
	assert_int_equal(cfg->max_body_bytes, 8 * 1024 * 1024);
	assert_int_equal(cfg->max_header_bytes, 16 * 1024);
	assert_int_equal(cfg->max_sse_line_bytes, 8 << 20);
	assert_int_equal(cfg->max_sse_event_bytes, 16 << 20);
	assert_int_equal(cfg->max_stream_bytes, 0);
	assert_int_equal(cfg->max_connections, 10000);
	assert_int_equal(cfg->client_header_ms, 10000);
	assert_int_equal(cfg->client_body_ms, 30000);
	assert_int_equal(cfg->keepalive_ms, 60000);
	assert_int_equal(cfg->upstream_connect_ms, 5000);
	assert_int_equal(cfg->upstream_first_byte_ms, 60000);
	assert_int_equal(cfg->upstream_idle_ms, 30000);
	assert_int_equal(cfg->drain_ms, 10000);
	assert_int_equal(cfg->stage_ms, 5000);
	assert_false(cfg->debug_test_stage);

	const struct backend_cfg *b = &cfg->backends[0];
	assert_int_equal(b->index, 0);
	assert_false(b->tls);
	assert_int_equal(b->port, 9000);
	assert_string_equal(b->base_path, "");
	assert_null(b->api_key);
	assert_null(b->ca_file);
	assert_true(b->tls_verify);
	assert_int_equal(b->max_idle, 64);
	assert_int_equal(b->idle_timeout_ms, 4000);
	config_free(cfg);
}

static void test_missing_file(void **state)
{
	struct sluice_config *cfg = (struct sluice_config *)1;
	struct config_error err;

	(void)state;
	assert_int_equal(config_load("/nonexistent/sluice.yaml", &cfg, &err), -ENOENT);
	assert_null(cfg);
	assert_string_equal(err.text,
			    "/nonexistent/sluice.yaml: cannot open: No such file or directory");
}

static void test_directory(void **state)
{
	struct sluice_config *cfg = (struct sluice_config *)1;
	struct config_error err;

	(void)state;
	assert_int_equal(config_load("/tmp", &cfg, &err), -EISDIR);
	assert_null(cfg);
	assert_string_equal(err.text, "/tmp: cannot open: Is a directory");
}

/* include: a glob of team files; tenants join across files, a scalar set
 * twice is refused naming both places, errors name the included file. */
static void write_at(const char *dir, const char *name, const char *text)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_include(void **state)
{
	(void)state;
	char dir[] = "/tmp/sluice-include-XXXXXX", sub[300], main_path[300], want[700];
	assert_non_null(mkdtemp(dir));
	snprintf(sub, sizeof(sub), "%s/conf.d", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	write_at(dir, "main.yaml", "include: conf.d/*.yaml\ntenants: [{name: zero}]\n" BACKEND);
	write_at(sub, "a.yaml", "tenants:\n  - name: acme\n");
	write_at(sub, "b.yaml", "\ntenants:\n  - name: beta\n");
	snprintf(main_path, sizeof(main_path), "%s/main.yaml", dir);

	struct sluice_config *cfg = NULL;
	struct config_error err;
	assert_int_equal(config_load(main_path, &cfg, &err), 0);
	assert_int_equal(cfg->ntenants, 3);
	assert_string_equal(cfg->tenants[1].name, "acme");
	assert_string_equal(cfg->tenants[2].name, "beta");
	config_free(cfg);

	/* The second file's line 3, not the main file's. */
	write_at(sub, "b.yaml", "\ntenants:\n  - nam: beta\n");
	assert_int_equal(config_load(main_path, &cfg, &err), -EINVAL);
	snprintf(want, sizeof(want), "%s/conf.d/b.yaml:3: tenants[2].nam: unknown key", dir);
	assert_memory_equal(err.text, want, strlen(want));

	write_at(sub, "b.yaml", "workers: 2\n");
	write_at(dir, "main.yaml", "include: conf.d/*.yaml\nworkers: 1\n" BACKEND);
	assert_int_equal(config_load(main_path, &cfg, &err), -EINVAL);
	snprintf(want, sizeof(want), "%s/conf.d/b.yaml:1: workers: already set in %s/main.yaml:2",
		 dir, dir);
	assert_memory_equal(err.text, want, strlen(want));

	char rm[400];
	snprintf(rm, sizeof(rm), "rm -rf '%s'", dir);
	assert_int_equal(system(rm), 0);
}

static void test_empty_file(void **state)
{
	(void)state;
	assert_load_error("", " file is empty");
	assert_load_error("# only a comment\n\n", " file is empty");
	assert_load_error("---\n", " file is empty");
}

static void test_yaml_syntax_error(void **state)
{
	(void)state;
	assert_load_error("workers: 2\nlisten: [\n",
			  "3: yaml: did not find expected node content");
	assert_load_error("a: b\n c: d\n",
			  "2: yaml: mapping values are not allowed in this context");
}

static void test_yaml_alias_and_documents(void **state)
{
	(void)state;
	assert_load_error("workers: &n 2\nlog_level: *n\n",
			  "2: yaml: aliases are not supported");
	assert_load_error(BACKEND "---\n" BACKEND, "5: yaml: only one document is allowed");
}

static void test_top_level_not_mapping(void **state)
{
	(void)state;
	assert_load_error("- listen\n- workers\n", "1: top level: must be a mapping");
	assert_load_error("just a string\n", "1: top level: must be a mapping");
}

static void test_unknown_key_suggests(void **state)
{
	(void)state;
	assert_load_error("backends:\n"
			  "  - name: a\n"
			  "    url: http://127.0.0.1:9000\n"
			  "    modles: [m]\n",
			  "4: backends[0].modles: unknown key (did you mean models?)");
	assert_load_error("workers: 2\nlisten_addr: \":80\"\n" BACKEND,
			  "2: listen_addr: unknown key");
	assert_load_error("timeouts:\n  upstream_conect: 1s\n" BACKEND,
			  "2: timeouts.upstream_conect: unknown key "
			  "(did you mean upstream_connect?)");
}

static void test_duplicate_key(void **state)
{
	(void)state;
	assert_load_error("workers: 2\nworkers: 3\n" BACKEND, "2: workers: duplicate key");
	assert_load_error("limits:\n  max_connections: 5\n  max_connections: 6\n" BACKEND,
			  "3: limits.max_connections: duplicate key");
}

static void test_duplicate_backend_name(void **state)
{
	(void)state;
	assert_load_error(BACKEND
			  "  - name: b\n"
			  "    url: http://127.0.0.1:9001\n"
			  "    models: [m]\n"
			  "  - name: a\n"
			  "    url: http://127.0.0.1:9002\n"
			  "    models: [n]\n",
			  "8: backends[2].name: duplicate backend name a (also backends[0])");
}

static void test_missing_required(void **state)
{
	(void)state;
	assert_load_error("workers: 2\nlog_level: warn\n", "1: backends: required key is missing");
	assert_load_error("workers: 2\n"
			  "backends:\n"
			  "  - name: a\n"
			  "    models: [m]\n",
			  "3: backends[0].url: required key is missing");
	assert_load_error("backends:\n"
			  "  - url: http://127.0.0.1:1\n"
			  "    models: [m]\n",
			  "2: backends[0].name: required key is missing");
	assert_load_error("backends:\n"
			  "  - name: a\n"
			  "    url: http://127.0.0.1:1\n",
			  "2: backends[0].models: required key is missing");
}

static void test_wrong_types(void **state)
{
	(void)state;
	assert_load_error("listen: [a, b]\n" BACKEND, "1: listen: must be a string");
	assert_load_error("backends:\n"
			  "  - name:\n"
			  "    url: http://127.0.0.1:9000\n"
			  "    models: [m]\n",
			  "2: backends[0].name: must be a string");
	assert_load_error("backends:\n"
			  "  - name: a\n"
			  "    url: http://127.0.0.1:9000\n"
			  "    models: m\n",
			  "4: backends[0].models: must be a list of strings");
	assert_load_error("backends:\n"
			  "  - name: a\n"
			  "    url: http://127.0.0.1:9000\n"
			  "    models:\n"
			  "      - m\n"
			  "      - {x: 1}\n",
			  "6: backends[0].models[1]: must be a string");
	assert_load_error("workers: many\n" BACKEND, "1: workers: must be a positive integer");
	assert_load_error("workers: -1\n" BACKEND, "1: workers: must be a positive integer");
	assert_load_error("limits: 5\n" BACKEND, "1: limits: must be a mapping");
	assert_load_error("backends: {name: a}\n", "1: backends: must be a list of backends");
	assert_load_error("backends:\n  - local\n", "2: backends[0]: must be a mapping");
	assert_load_error("{[1]: 2}\n", "1: top level: keys must be strings");
}

static void test_workers_range(void **state)
{
	(void)state;
	assert_load_error("workers: 0\n" BACKEND, "1: workers: must be between 1 and 256");
	assert_load_error("workers: 257\n" BACKEND, "1: workers: must be between 1 and 256");
	struct sluice_config *cfg = load_ok("workers: 256\n" BACKEND);
	assert_int_equal(cfg->workers, 256);
	config_free(cfg);
}

static void test_log_level_and_access_log(void **state)
{
	(void)state;
	assert_load_error("log_level: verbose\n" BACKEND,
			  "1: log_level: must be one of error, warn, info, debug");
	assert_load_error("access_log: \"\"\n" BACKEND, "1: access_log: must not be empty");
	struct sluice_config *cfg = load_ok("log_level: debug\naccess_log: off\n" BACKEND);
	assert_string_equal(cfg->log_level, "debug");
	assert_string_equal(cfg->access_log, "off");
	config_free(cfg);
}

static void test_parse_size_valid(void **state)
{
	static const struct {
		const char *in;
		size_t want;
	} cases[] = {
		{ "0", 0 }, { "1024", 1024 }, { "5B", 5 }, { "10KB", 10000 },
		{ "10MB", 10000000 }, { "2GB", 2000000000ull }, { "512KiB", 512 * 1024 },
		{ "8MiB", 8 << 20 }, { "1GiB", 1ull << 30 }, { "1 KiB", 1024 },
		{ "3mib", 3 << 20 },
	};
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		n = 12345;
		assert_int_equal(config_parse_size(cases[i].in, &n), 0);
		assert_int_equal(n, cases[i].want);
	}
}

static void test_parse_size_invalid(void **state)
{
	static const char *const bad[] = {
		"", "MiB", "-1", "+5", "1.5MiB", "8XB", "8 M iB", "8MiBs", " 8",
		"99999999999999999999999", "18446744073709551615GiB", "0x10",
	};
	size_t n = 7;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(config_parse_size(bad[i], &n), -EINVAL);
	assert_int_equal(n, 7);
}

static void test_parse_duration_valid(void **state)
{
	static const struct {
		const char *in;
		unsigned want;
	} cases[] = {
		{ "250ms", 250 }, { "10s", 10000 }, { "2m", 120000 }, { "1h", 3600000 },
		{ "1500", 1500 }, { "0", 0 }, { "24h", 86400000 }, { "4294967295", 4294967295u },
	};
	unsigned n;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		n = 12345;
		assert_int_equal(config_parse_duration_ms(cases[i].in, &n), 0);
		assert_int_equal(n, cases[i].want);
	}
}

static void test_parse_duration_invalid(void **state)
{
	static const char *const bad[] = {
		"", "s", "10x", "-5", "1.5s", "10sec", "2d", "5000000h", "4294967296",
	};
	unsigned n = 7;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(config_parse_duration_ms(bad[i], &n), -EINVAL);
	assert_int_equal(n, 7);
}

static void test_limits_and_timeouts_loaded(void **state)
{
	(void)state;
	struct sluice_config *cfg = load_ok("limits:\n"
					    "  max_body_bytes: 1MB\n"
					    "  max_header_bytes: 32768\n"
					    "  max_connections: 5\n"
					    "  max_sse_line_bytes: 1MiB\n"
					    "  max_sse_event_bytes: 2MiB\n"
					    "  max_stream_bytes: 100GiB\n"
					    "timeouts:\n"
					    "  client_header: 250ms\n"
					    "  keepalive: 1500\n"
					    "  drain: 2m\n"
					    "  upstream_first_byte: 1h\n"
					    BACKEND);
	assert_int_equal(cfg->max_body_bytes, 1000000);
	assert_int_equal(cfg->max_header_bytes, 32768);
	assert_int_equal(cfg->max_connections, 5);
	assert_int_equal(cfg->max_sse_line_bytes, 1 << 20);
	assert_int_equal(cfg->max_sse_event_bytes, 2 << 20);
	assert_true(cfg->max_stream_bytes == 100ull << 30);
	assert_int_equal(cfg->client_header_ms, 250);
	assert_int_equal(cfg->keepalive_ms, 1500);
	assert_int_equal(cfg->drain_ms, 120000);
	assert_int_equal(cfg->upstream_first_byte_ms, 3600000);
	assert_int_equal(cfg->client_body_ms, 30000);
	config_free(cfg);
}

static void test_limits_invalid(void **state)
{
	(void)state;
	assert_load_error("limits:\n  max_header_bytes: 512\n" BACKEND,
			  "2: limits.max_header_bytes: must be between 1KiB and 1MiB");
	assert_load_error("limits:\n  max_header_bytes: 2MiB\n" BACKEND,
			  "2: limits.max_header_bytes: must be between 1KiB and 1MiB");
	assert_load_error("limits:\n  max_body_bytes: 2GiB\n" BACKEND,
			  "2: limits.max_body_bytes: must be between 1KiB and 1GiB");
	assert_load_error("limits:\n  max_body_bytes: lots\n" BACKEND,
			  "2: limits.max_body_bytes: must be a size such as 8MiB or 16384");
	assert_load_error("limits:\n  max_connections: 0\n" BACKEND,
			  "2: limits.max_connections: must be between 1 and 1000000");
	assert_load_error("limits:\n  max_sse_line_bytes: 10\n" BACKEND,
			  "2: limits.max_sse_line_bytes: must be between 1KiB and 1GiB");
	assert_load_error("limits:\n  max_sse_event_bytes: 2GiB\n" BACKEND,
			  "2: limits.max_sse_event_bytes: must be between 1KiB and 1GiB");
	assert_load_error("limits:\n  max_stream_bytes: -1\n" BACKEND,
			  "2: limits.max_stream_bytes: must be a size such as 8MiB or 16384");
}

static void test_stage_keys(void **state)
{
	(void)state;
	struct sluice_config *cfg = load_ok("timeouts:\n  stage: 250ms\n"
					    "debug:\n  test_stage: true\n" BACKEND);
	assert_int_equal(cfg->stage_ms, 250);
	assert_true(cfg->debug_test_stage);
	config_free(cfg);
}

static void test_timeouts_invalid(void **state)
{
	(void)state;
	assert_load_error("timeouts:\n  upstream_connect: 0\n" BACKEND,
			  "2: timeouts.upstream_connect: must be between 1ms and 24h");
	assert_load_error("timeouts:\n  drain: 25h\n" BACKEND,
			  "2: timeouts.drain: must be between 1ms and 24h");
	assert_load_error("timeouts:\n  stage: 0\n" BACKEND,
			  "2: timeouts.stage: must be between 1ms and 24h");
	assert_load_error("debug:\n  test_stage: maybe\n" BACKEND,
			  "2: debug.test_stage: must be true or false");
	assert_load_error("\ntimeouts:\n  keepalive: soon\n" BACKEND,
			  "3: timeouts.keepalive: must be a duration such as 250ms, 10s, 2m, "
			  "1h or milliseconds");
}

static void test_expand_env(void **state)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{ "plain", "plain" },
		{ "", "" },
		{ "${SLUICE_T_SET}", "value" },
		{ "a${SLUICE_T_SET}b${SLUICE_T_SET}c", "avaluebvaluec" },
		{ "x${SLUICE_T_UNSET}y", "xy" },
		{ "${SLUICE_T_UNSET:-fallback}", "fallback" },
		{ "${SLUICE_T_UNSET:-}", "" },
		{ "${SLUICE_T_SET:-fallback}", "value" },
		{ "${SLUICE_T_EMPTY:-fallback}", "fallback" },
		{ "[${SLUICE_T_EMPTY}]", "[]" },
		{ "$${SLUICE_T_SET}", "${SLUICE_T_SET}" },
		{ "cost: 5$$", "cost: 5$" },
		{ "lone $ sign$", "lone $ sign$" },
		{ "${SLUICE_T_UNSET:-a:-b}", "a:-b" },
	};

	(void)state;
	setenv("SLUICE_T_SET", "value", 1);
	setenv("SLUICE_T_EMPTY", "", 1);
	unsetenv("SLUICE_T_UNSET");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *out = config_expand_env(cases[i].in);

		assert_non_null(out);
		assert_string_equal(out, cases[i].want);
		free(out);
	}
	unsetenv("SLUICE_T_SET");
	unsetenv("SLUICE_T_EMPTY");
}

static void test_expand_env_unterminated(void **state)
{
	(void)state;
	errno = 0;
	assert_null(config_expand_env("${HOME"));
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_null(config_expand_env("ok ${A} then ${B:-x"));
	assert_int_equal(errno, EINVAL);
}

static void test_env_in_config(void **state)
{
	(void)state;
	setenv("SLUICE_T_KEY", "sk-123", 1);
	unsetenv("SLUICE_T_WORKERS");
	struct sluice_config *cfg = load_ok("workers: ${SLUICE_T_WORKERS:-3}\n"
					    "timeouts:\n"
					    "  drain: \"${SLUICE_T_DRAIN:-5s}\"\n"
					    "backends:\n"
					    "  - name: a\n"
					    "    url: http://127.0.0.1:9000\n"
					    "    api_key: \"${SLUICE_T_KEY}\"\n"
					    "    models: [\"${SLUICE_T_MODEL:-gpt}\", \"$$x\"]\n");
	assert_int_equal(cfg->workers, 3);
	assert_int_equal(cfg->drain_ms, 5000);
	assert_string_equal(cfg->backends[0].api_key, "sk-123");
	assert_string_equal(cfg->backends[0].models[0], "gpt");
	assert_string_equal(cfg->backends[0].models[1], "$x");
	config_free(cfg);
	unsetenv("SLUICE_T_KEY");

	/* Keys are not expanded: "${X}" stays an unknown key. */
	assert_load_error(BACKEND "${X}: 1\n", "5: ${X}: unknown key");
	assert_load_error("workers: 2\n"
			  "backends:\n"
			  "  - name: a\n"
			  "    url: http://127.0.0.1:9000\n"
			  "    api_key: ${OPENAI_API_KEY\n"
			  "    models: [m]\n",
			  "5: backends[0].api_key: unterminated ${ in value");
}

static void test_listen_ipv6(void **state)
{
	char host[64];

	(void)state;
	struct sluice_config *cfg = load_ok("listen: \"[::1]:8443\"\n" BACKEND);
	assert_string_equal(cfg->listen, "[::1]:8443");
	assert_int_equal(cfg->listen_addr.ss_family, AF_INET6);
	assert_int_equal(cfg->listen_addrlen, sizeof(struct sockaddr_in6));
	assert_string_equal(sa_host(&cfg->listen_addr, host, sizeof(host)), "::1");
	assert_int_equal(sa_port(&cfg->listen_addr), 8443);
	config_free(cfg);
}

static void test_listen_wildcard_and_hostname(void **state)
{
	char host[64];

	(void)state;
	struct sluice_config *cfg = load_ok("listen: \":9090\"\n" BACKEND);
	assert_int_equal(cfg->listen_addr.ss_family, AF_INET);
	assert_string_equal(sa_host(&cfg->listen_addr, host, sizeof(host)), "0.0.0.0");
	assert_int_equal(sa_port(&cfg->listen_addr), 9090);
	config_free(cfg);

	cfg = load_ok("listen: localhost:8081\n" BACKEND);
	assert_int_equal(sa_port(&cfg->listen_addr), 8081);
	config_free(cfg);
}

static void test_listen_invalid(void **state)
{
	(void)state;
	assert_load_error("listen: \"::1:80\"\n" BACKEND,
			  "1: listen: IPv6 addresses must be in brackets, as [::1]:8080");
	assert_load_error("listen: 127.0.0.1\n" BACKEND,
			  "1: listen: must be host:port, [address]:port or :port");
	assert_load_error("listen: \"127.0.0.1:0\"\n" BACKEND,
			  "1: listen: port must be between 1 and 65535");
	assert_load_error("listen: \"127.0.0.1:65536\"\n" BACKEND,
			  "1: listen: port must be between 1 and 65535");
	assert_load_error("listen: \"[::1]8080\"\n" BACKEND,
			  "1: listen: must be [address]:port");
	assert_load_error("listen: \"[localhost]:8080\"\n" BACKEND,
			  "1: listen: cannot resolve localhost: Name or service not known");
}

static void test_https_backend(void **state)
{
	(void)state;
	struct sluice_config *cfg = load_ok("backends:\n"
					    "  - name: secure\n"
					    "    url: https://127.0.0.1/openai/v1\n"
					    "    tls_verify: false\n"
					    "    models: [\"*\"]\n");
	const struct backend_cfg *b = &cfg->backends[0];
	assert_true(b->tls);
	assert_int_equal(b->port, 443);
	assert_int_equal(sa_port(&b->addr), 443);
	assert_string_equal(b->host, "127.0.0.1");
	assert_string_equal(b->base_path, "/openai/v1");
	assert_false(b->tls_verify);
	assert_true(b->any_model);
	config_free(cfg);
}

static void test_base_path(void **state)
{
	static const struct {
		const char *url, *host, *path;
		uint16_t port;
	} cases[] = {
		{ "http://127.0.0.1:1/v1/", "127.0.0.1", "/v1", 1 },
		{ "http://127.0.0.1:1", "127.0.0.1", "", 1 },
		{ "http://127.0.0.1:1/", "127.0.0.1", "", 1 },
		{ "http://localhost/a/b//", "localhost", "/a/b", 80 },
		{ "HTTP://[::1]:9000/v1", "::1", "/v1", 9000 },
	};
	char yaml[256];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(yaml, sizeof(yaml),
			 "backends:\n  - name: a\n    url: \"%s\"\n    models: [m]\n",
			 cases[i].url);
		struct sluice_config *cfg = load_ok(yaml);
		const struct backend_cfg *b = &cfg->backends[0];

		assert_string_equal(b->url, cases[i].url);
		assert_string_equal(b->host, cases[i].host);
		assert_string_equal(b->base_path, cases[i].path);
		assert_int_equal(b->port, cases[i].port);
		assert_false(b->tls);
		config_free(cfg);
	}
}

static void test_backend_ipv6(void **state)
{
	char host[64];

	(void)state;
	struct sluice_config *cfg = load_ok("backends:\n"
					    "  - name: v6\n"
					    "    url: \"http://[::1]:9000/v1\"\n"
					    "    models: [m]\n");
	const struct backend_cfg *b = &cfg->backends[0];
	assert_string_equal(b->host, "::1");
	assert_int_equal(b->addr.ss_family, AF_INET6);
	assert_int_equal(b->addrlen, sizeof(struct sockaddr_in6));
	assert_string_equal(sa_host(&b->addr, host, sizeof(host)), "::1");
	config_free(cfg);
}

static void assert_url_error(const char *url, const char *message)
{
	char yaml[256], want[256];

	snprintf(yaml, sizeof(yaml),
		 "backends:\n  - name: a\n    url: \"%s\"\n    models: [m]\n", url);
	snprintf(want, sizeof(want), "3: backends[0].url: %s", message);
	assert_load_error(yaml, want);
}

static void test_backend_url_invalid(void **state)
{
	(void)state;
	assert_url_error("ftp://127.0.0.1/", "scheme must be http or https");
	assert_url_error("127.0.0.1:9000", "scheme must be http or https");
	assert_url_error("http://user:pw@127.0.0.1/", "user info is not allowed");
	assert_url_error("http://127.0.0.1/v1?x=1", "query and fragment are not allowed");
	assert_url_error("http://127.0.0.1/v1#top", "query and fragment are not allowed");
	assert_url_error("http://127.0.0.1:0/", "port must be between 1 and 65535");
	assert_url_error("http://127.0.0.1:80x/", "port must be between 1 and 65535");
	assert_url_error("http://127.0.0.1:/", "port must be between 1 and 65535");
	assert_url_error("http:///v1", "missing host");
	assert_url_error("http://[::1/v1", "unterminated [ in host");
	assert_url_error("http://[::1]x/v1", "expected :port after the host");
	assert_url_error("http://127.0.0.1/a b", "must not contain spaces or control characters");
	assert_url_error("", "must not be empty");
}

static void test_backend_unresolvable(void **state)
{
	struct sluice_config *cfg = (struct sluice_config *)1;
	struct config_error err;
	char path[64], want[128];

	(void)state;
	int rc = load_text("backends:\n"
			   "  - name: a\n"
			   "    url: http://no-such-host.invalid:9000/v1\n"
			   "    models: [m]\n",
			   path, sizeof(path), &cfg, &err);
	assert_int_equal(rc, -EINVAL);
	assert_null(cfg);
	snprintf(want, sizeof(want), "%s:3: backends[0].url: cannot resolve no-such-host.invalid: ",
		 path);
	assert_memory_equal(err.text, want, strlen(want));
}

static void test_backend_name_invalid(void **state)
{
	(void)state;
	assert_load_error("backends:\n"
			  "  - name: \"bad name!\"\n"
			  "    url: http://127.0.0.1:9000\n"
			  "    models: [m]\n",
			  "2: backends[0].name: must match [A-Za-z0-9_.-]+");
	assert_load_error("backends:\n"
			  "  - name: \"\"\n"
			  "    url: http://127.0.0.1:9000\n"
			  "    models: [m]\n",
			  "2: backends[0].name: must match [A-Za-z0-9_.-]+");
}

static void test_backends_and_models_empty(void **state)
{
	(void)state;
	assert_load_error("workers: 1\nbackends: []\n", "2: backends: must not be empty");
	assert_load_error("backends:\n"
			  "  - name: a\n"
			  "    url: http://127.0.0.1:9000\n"
			  "    models: []\n",
			  "4: backends[0].models: must not be empty");
	assert_load_error("backends:\n"
			  "  - name: a\n"
			  "    url: http://127.0.0.1:9000\n"
			  "    models: [m, \"\"]\n",
			  "4: backends[0].models[1]: must not be empty");
}

static void test_backend_ca_file(void **state)
{
	(void)state;
	assert_load_error("backends:\n"
			  "  - name: a\n"
			  "    url: https://127.0.0.1:9000\n"
			  "    ca_file: /nonexistent/ca.pem\n"
			  "    models: [m]\n",
			  "4: backends[0].ca_file: cannot read /nonexistent/ca.pem: "
			  "No such file or directory");
	struct sluice_config *cfg = load_ok("backends:\n"
					    "  - name: a\n"
					    "    url: https://127.0.0.1:9000\n"
					    "    ca_file: " EXAMPLE "\n"
					    "    models: [m]\n");
	assert_string_equal(cfg->backends[0].ca_file, EXAMPLE);
	config_free(cfg);
}

static void test_backend_options_invalid(void **state)
{
	(void)state;
	assert_load_error("backends:\n"
			  "  - name: a\n"
			  "    url: http://127.0.0.1:9000\n"
			  "    models: [m]\n"
			  "    tls_verify: maybe\n",
			  "5: backends[0].tls_verify: must be true or false");
	assert_load_error("backends:\n"
			  "  - name: a\n"
			  "    url: http://127.0.0.1:9000\n"
			  "    models: [m]\n"
			  "    max_idle_connections: 5000\n",
			  "5: backends[0].max_idle_connections: must be between 0 and 4096");
	assert_load_error("backends:\n"
			  "  - name: a\n"
			  "    url: http://127.0.0.1:9000\n"
			  "    models: [m]\n"
			  "    max_idle_connections: -3\n",
			  "5: backends[0].max_idle_connections: must be a non-negative integer");
	assert_load_error("backends:\n"
			  "  - name: a\n"
			  "    url: http://127.0.0.1:9000\n"
			  "    models: [m]\n"
			  "    idle_timeout: 2h\n",
			  "5: backends[0].idle_timeout: must be between 1ms and 1h");
}

static void test_multiple_backends(void **state)
{
	(void)state;
	struct sluice_config *cfg = load_ok(BACKEND
					    "  - name: b.2\n"
					    "    url: http://localhost:9001/api\n"
					    "    max_idle_connections: 0\n"
					    "    idle_timeout: 1500ms\n"
					    "    tls_verify: yes\n"
					    "    models:\n"
					    "      - x\n"
					    "      - \"*\"\n");
	assert_int_equal(cfg->nbackends, 2);
	assert_string_equal(cfg->backends[0].name, "a");
	assert_int_equal(cfg->backends[0].index, 0);
	assert_false(cfg->backends[0].any_model);
	const struct backend_cfg *b = &cfg->backends[1];
	assert_string_equal(b->name, "b.2");
	assert_int_equal(b->index, 1);
	assert_int_equal(b->max_idle, 0);
	assert_int_equal(b->idle_timeout_ms, 1500);
	assert_int_equal(cfg->backends[0].idle_timeout_ms, 4000);
	assert_true(b->tls_verify);
	assert_int_equal(b->nmodels, 2);
	assert_true(b->any_model);
	assert_string_equal(b->base_path, "/api");
	config_free(cfg);
}

static void test_error_after_partial_load_does_not_leak(void **state)
{
	(void)state;
	/* Strings, models and a first backend are allocated before the
	 * error; ASan's leak check fails the run if any is lost. */
	assert_load_error("listen: \"127.0.0.1:8080\"\n"
			  "log_level: debug\n"
			  "access_log: /tmp/x.log\n"
			  BACKEND
			  "  - name: b\n"
			  "    api_key: k\n"
			  "    models: [x, y]\n"
			  "    url: http://127.0.0.1:9000\n"
			  "    bogus: 1\n",
			  "12: backends[1].bogus: unknown key");
}

/* ------------------------------------------------------------------ */
/* Networks                                                            */

/* s parses to the 16 bytes of the address want (IPv4 as mapped) / plen. */
static void assert_cidr(const char *s, const char *want, unsigned plen)
{
	struct cidr_cfg c = { 0 };
	uint8_t bytes[16];

	assert_int_equal(inet_pton(AF_INET6, want, bytes), 1);
	assert_int_equal(config_parse_cidr(s, &c), 0);
	assert_memory_equal(c.bytes, bytes, 16);
	assert_int_equal(c.prefixlen, plen);
	assert_string_equal(c.text, s);
	free(c.text);
}

static void assert_cidr_invalid(const char *s)
{
	struct cidr_cfg c = { .text = NULL };

	assert_int_equal(config_parse_cidr(s, &c), -EINVAL);
	assert_null(c.text);
}

static void test_parse_cidr_ipv4(void **state)
{
	(void)state;
	assert_cidr("10.20.0.0/16", "::ffff:10.20.0.0", 112);
	assert_cidr("192.0.2.0/24", "::ffff:192.0.2.0", 120);
	assert_cidr("0.0.0.0/0", "::ffff:0.0.0.0", 96);
	assert_cidr("203.0.113.7/32", "::ffff:203.0.113.7", 128);
	assert_cidr("10.0.0.0/08", "::ffff:10.0.0.0", 104);
	assert_cidr("203.0.113.7", "::ffff:203.0.113.7", 128);
}

static void test_parse_cidr_ipv6(void **state)
{
	(void)state;
	assert_cidr("2001:db8::/32", "2001:db8::", 32);
	assert_cidr("::/0", "::", 0);
	assert_cidr("2001:db8::1/128", "2001:db8::1", 128);
	assert_cidr("2001:db8::1", "2001:db8::1", 128);
	assert_cidr("fe80::/10", "fe80::", 10);
	assert_cidr("::ffff:10.0.0.0/104", "::ffff:10.0.0.0", 104);
}

static void test_parse_cidr_invalid(void **state)
{
	(void)state;
	assert_cidr_invalid("10.20.1.0/16");	/* host bits */
	assert_cidr_invalid("2001:db8::1/32");
	assert_cidr_invalid("10.0.0.1/0");
	assert_cidr_invalid("10.0.0.0/33");	/* prefix */
	assert_cidr_invalid("2001:db8::/129");
	assert_cidr_invalid("10.0.0.0/");
	assert_cidr_invalid("10.0.0.0/-1");
	assert_cidr_invalid("10.0.0.0/8x");
	assert_cidr_invalid("10.0.0.0/8/8");
	assert_cidr_invalid("10.0.0.0/99999999999999999999999");
	assert_cidr_invalid("");		/* garbage */
	assert_cidr_invalid("/8");
	assert_cidr_invalid("10.0.0");
	assert_cidr_invalid("10.0.0.256/32");
	assert_cidr_invalid("example.com/24");
	assert_cidr_invalid(" 10.0.0.0/8");
	assert_cidr_invalid("fe80::1%eth0");
	assert_cidr_invalid("2001:db8::1:2:3:4:5:6:7:8:9/64");
}

static void test_cidr_errors_in_config(void **state)
{
	(void)state;
	assert_load_error("kernel:\n  deny: [\"10.20.1.0/16\"]\n" BACKEND,
			  "2: kernel.deny[0]: host bits set below /16 "
			  "(did you mean 10.20.0.0/16?)");
	assert_load_error("kernel:\n  deny:\n    - 2001:db8::/32\n    - \"2001:db8:1::1/48\"\n"
			  BACKEND,
			  "4: kernel.deny[1]: host bits set below /48 "
			  "(did you mean 2001:db8:1::/48?)");
	assert_load_error("kernel:\n  deny: [10.0.0.0/33]\n" BACKEND,
			  "2: kernel.deny[0]: prefix length must be between 0 and 32");
	assert_load_error("kernel:\n  deny: [\"::/129\"]\n" BACKEND,
			  "2: kernel.deny[0]: prefix length must be between 0 and 128");
	assert_load_error("kernel:\n  deny: [localhost]\n" BACKEND,
			  "2: kernel.deny[0]: must be an address or a network "
			  "such as 10.0.0.0/8");
	assert_load_error("kernel:\n  deny: [[10.0.0.0/8]]\n" BACKEND,
			  "2: kernel.deny[0]: must be a network such as 10.0.0.0/8");
	assert_load_error("kernel:\n  deny: 10.0.0.0/8\n" BACKEND,
			  "2: kernel.deny: must be a list of networks");
}

/* ------------------------------------------------------------------ */
/* Kernel                                                              */

static void test_kernel_defaults_when_absent(void **state)
{
	(void)state;
	struct sluice_config *cfg = load_ok(BACKEND);
	const struct kernel_cfg *k = &cfg->kernel;

	assert_true(k->enabled);
	assert_string_equal(k->pin_root, "/sys/fs/bpf/sluice");
	assert_string_equal(k->cgroup, "/sys/fs/cgroup/unified/sluice");
	assert_null(k->xdp_interfaces);
	assert_int_equal(k->n_xdp_interfaces, 0);
	assert_int_equal(k->xdp_mode, XDP_MODE_AUTO);
	assert_int_equal(k->source_conn_rate, 0);
	assert_int_equal(k->source_conn_burst, 0);
	assert_null(k->deny);
	assert_int_equal(k->ndeny, 0);
	assert_null(cfg->tenants);
	assert_int_equal(cfg->ntenants, 0);
	config_free(cfg);
}

static void test_kernel_all_keys(void **state)
{
	(void)state;
	struct sluice_config *cfg = load_ok("kernel:\n"
					    "  enabled: false\n"
					    "  pin_root: /sys/fs/bpf/other\n"
					    "  cgroup: \"\"\n"
					    "  xdp:\n"
					    "    interfaces: [eth0, \"enp1s0f1.100\"]\n"
					    "    mode: native\n"
					    "  limits:\n"
					    "    source_conn_rate: 200\n"
					    "    source_conn_burst: 400\n"
					    "  deny: [\"192.0.2.0/24\", \"2001:db8::/32\",\n"
					    "         198.51.100.9]\n"
					    BACKEND);
	const struct kernel_cfg *k = &cfg->kernel;

	assert_false(k->enabled);
	assert_string_equal(k->pin_root, "/sys/fs/bpf/other");
	assert_string_equal(k->cgroup, "");
	assert_int_equal(k->n_xdp_interfaces, 2);
	assert_string_equal(k->xdp_interfaces[0], "eth0");
	assert_string_equal(k->xdp_interfaces[1], "enp1s0f1.100");
	assert_int_equal(k->xdp_mode, XDP_MODE_NATIVE);
	assert_int_equal(k->source_conn_rate, 200);
	assert_int_equal(k->source_conn_burst, 400);
	assert_int_equal(k->ndeny, 3);
	assert_string_equal(k->deny[0].text, "192.0.2.0/24");
	assert_int_equal(k->deny[0].prefixlen, 120);
	assert_string_equal(k->deny[1].text, "2001:db8::/32");
	assert_int_equal(k->deny[1].prefixlen, 32);
	assert_int_equal(k->deny[2].prefixlen, 128);
	config_free(cfg);
}

static void test_kernel_partial_section_keeps_defaults(void **state)
{
	(void)state;
	struct sluice_config *cfg = load_ok("kernel:\n"
					    "  limits: {source_conn_rate: 50}\n"
					    "  xdp: {interfaces: []}\n"
					    "  deny: []\n"
					    BACKEND);
	const struct kernel_cfg *k = &cfg->kernel;

	assert_true(k->enabled);
	assert_string_equal(k->pin_root, "/sys/fs/bpf/sluice");
	assert_string_equal(k->cgroup, "/sys/fs/cgroup/unified/sluice");
	assert_int_equal(k->n_xdp_interfaces, 0);
	assert_int_equal(k->source_conn_rate, 50);
	assert_int_equal(k->source_conn_burst, 50);	/* = rate */
	assert_int_equal(k->ndeny, 0);
	config_free(cfg);
}

static void test_kernel_xdp_modes(void **state)
{
	static const struct { const char *word; enum xdp_mode_cfg mode; } modes[] = {
		{ "auto", XDP_MODE_AUTO }, { "native", XDP_MODE_NATIVE },
		{ "generic", XDP_MODE_GENERIC },
	};
	char yaml[256];

	(void)state;
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		snprintf(yaml, sizeof(yaml), "kernel:\n  xdp:\n    mode: %s\n" BACKEND,
			 modes[i].word);
		struct sluice_config *cfg = load_ok(yaml);
		assert_int_equal(cfg->kernel.xdp_mode, modes[i].mode);
		config_free(cfg);
	}
	assert_load_error("kernel:\n  xdp:\n    mode: skb\n" BACKEND,
			  "3: kernel.xdp.mode: must be one of auto, native, generic");
	assert_load_error("kernel:\n  xdp:\n    mode: Native\n" BACKEND,
			  "3: kernel.xdp.mode: must be one of auto, native, generic");
	assert_load_error("kernel:\n  xdp:\n    mode:\n" BACKEND,
			  "3: kernel.xdp.mode: must be one of auto, native, generic");
}

static void test_kernel_xdp_interfaces_invalid(void **state)
{
	(void)state;
	assert_load_error("kernel:\n  xdp:\n    interfaces: eth0\n" BACKEND,
			  "3: kernel.xdp.interfaces: must be a list of interface names");
	assert_load_error("kernel:\n  xdp:\n    interfaces: [\"\"]\n" BACKEND,
			  "3: kernel.xdp.interfaces[0]: must be 1 to 15 characters");
	assert_load_error("kernel:\n  xdp:\n    interfaces: [abcdefghijklmnop]\n" BACKEND,
			  "3: kernel.xdp.interfaces[0]: must be 1 to 15 characters");
	assert_load_error("kernel:\n  xdp:\n    interfaces: [eth0, \"a/b\"]\n" BACKEND,
			  "3: kernel.xdp.interfaces[1]: must not contain '/', ':' or spaces");
	assert_load_error("kernel:\n  xdp:\n    interfaces: [\"eth0:1\"]\n" BACKEND,
			  "3: kernel.xdp.interfaces[0]: must not contain '/', ':' or spaces");
	assert_load_error("kernel:\n  xdp:\n    interfaces: [\"..\"]\n" BACKEND,
			  "3: kernel.xdp.interfaces[0]: must not be . or ..");
	assert_load_error("kernel:\n  xdp:\n    interfaces:\n      - eth0\n      - eth1\n"
			  "      - eth0\n" BACKEND,
			  "6: kernel.xdp.interfaces[2]: duplicate interface eth0 "
			  "(also kernel.xdp.interfaces[0])");
	assert_load_error("kernel:\n  xdp:\n    interfaces: [a, b, c, d, e, f, g, h, i]\n"
			  BACKEND,
			  "3: kernel.xdp.interfaces: at most 8 interfaces");
	/* 15 characters is the longest name the kernel takes. */
	struct sluice_config *cfg =
		load_ok("kernel:\n  xdp:\n    interfaces: [abcdefghijklmno]\n" BACKEND);
	assert_string_equal(cfg->kernel.xdp_interfaces[0], "abcdefghijklmno");
	config_free(cfg);
}

static void test_kernel_paths_invalid(void **state)
{
	(void)state;
	assert_load_error("kernel:\n  pin_root: sys/fs/bpf\n" BACKEND,
			  "2: kernel.pin_root: must be an absolute path");
	assert_load_error("kernel:\n  pin_root: \"\"\n" BACKEND,
			  "2: kernel.pin_root: must be an absolute path");
	assert_load_error("kernel:\n  cgroup: sluice\n" BACKEND,
			  "2: kernel.cgroup: must be an absolute path, or \"\" for none");
	assert_load_error("kernel:\n  cgroup:\n" BACKEND, "2: kernel.cgroup: must be a string");
	assert_load_error("kernel:\n  enabled: maybe\n" BACKEND,
			  "2: kernel.enabled: must be true or false");
	assert_load_error("kernel: true\n" BACKEND, "1: kernel: must be a mapping");
	assert_load_error("kernel:\n  xdp: [eth0]\n" BACKEND, "2: kernel.xdp: must be a mapping");
}

static void test_kernel_limits(void **state)
{
	(void)state;
	struct sluice_config *cfg = load_ok("kernel:\n  limits:\n    source_conn_burst: 5\n"
					    BACKEND);
	assert_int_equal(cfg->kernel.source_conn_rate, 0);
	assert_int_equal(cfg->kernel.source_conn_burst, 5);
	config_free(cfg);
	assert_load_error("kernel:\n  limits:\n    source_conn_rate: 10\n"
			  "    source_conn_burst: 0\n" BACKEND,
			  "4: kernel.limits.source_conn_burst: must be at least 1 "
			  "when source_conn_rate is above 0");
	assert_load_error("kernel:\n  limits:\n    source_conn_rate: 1000001\n" BACKEND,
			  "3: kernel.limits.source_conn_rate: must be between 0 and 1000000");
	assert_load_error("kernel:\n  limits:\n    source_conn_rate: -1\n" BACKEND,
			  "3: kernel.limits.source_conn_rate: must be a non-negative integer");
}

static void test_kernel_unknown_and_duplicate_keys(void **state)
{
	(void)state;
	assert_load_error("kernel:\n  enabled: true\n  pinroot: /x\n" BACKEND,
			  "3: kernel.pinroot: unknown key (did you mean pin_root?)");
	assert_load_error("kernel:\n  xdp:\n    interface: [eth0]\n" BACKEND,
			  "3: kernel.xdp.interface: unknown key (did you mean interfaces?)");
	assert_load_error("kernel:\n  limits:\n    source_rate: 1\n" BACKEND,
			  "3: kernel.limits.source_rate: unknown key");
	assert_load_error("kernel:\n  denny: []\n" BACKEND,
			  "2: kernel.denny: unknown key (did you mean deny?)");
	assert_load_error("kernal:\n  enabled: false\n" BACKEND,
			  "1: kernal: unknown key (did you mean kernel?)");
	assert_load_error("kernel:\n  deny: []\n  deny: []\n" BACKEND,
			  "3: kernel.deny: duplicate key");
	assert_load_error("kernel:\n  deny: [192.0.2.0/24, 10.0.0.0/8, \"192.0.2.0/24\"]\n"
			  BACKEND,
			  "2: kernel.deny[2]: duplicate network 192.0.2.0/24 "
			  "(also kernel.deny[0])");
}

/* ------------------------------------------------------------------ */
/* Tenants                                                             */

static void test_tenants_all_keys(void **state)
{
	(void)state;
	struct sluice_config *cfg =
		load_ok("workers: 4\n"
			"tenants:\n"
			"  - name: acme\n"
			"    networks: [\"10.20.0.0/16\", \"2001:db8:20::/48\"]\n"
			"    limits: {conn_rate: 1000, conn_burst: 2000, max_connections: 5000}\n"
			"    workers: dedicated\n"
			"  - name: beta.team_2-x\n"
			"    workers: shared\n"
			BACKEND);
	assert_int_equal(cfg->ntenants, 2);

	const struct tenant_cfg *t = &cfg->tenants[0];
	assert_string_equal(t->name, "acme");
	assert_int_equal(t->id, 1);
	assert_int_equal(t->nnetworks, 2);
	assert_string_equal(t->networks[0].text, "10.20.0.0/16");
	assert_int_equal(t->networks[0].prefixlen, 112);
	assert_int_equal(t->networks[1].prefixlen, 48);
	assert_int_equal(t->conn_rate, 1000);
	assert_int_equal(t->conn_burst, 2000);
	assert_int_equal(t->max_connections, 5000);
	assert_int_equal(t->workers, TENANT_WORKERS_DEDICATED);

	t = &cfg->tenants[1];
	assert_string_equal(t->name, "beta.team_2-x");
	assert_int_equal(t->id, 2);
	assert_null(t->networks);
	assert_int_equal(t->nnetworks, 0);
	assert_int_equal(t->conn_rate, 0);
	assert_int_equal(t->conn_burst, 0);
	assert_int_equal(t->max_connections, 0);
	assert_int_equal(t->workers, TENANT_WORKERS_SHARED);
	config_free(cfg);
}

static void test_tenant_defaults(void **state)
{
	(void)state;
	struct sluice_config *cfg = load_ok("tenants:\n"
					    "  - name: a\n"
					    "  - name: b\n"
					    "    limits: {conn_rate: 30}\n"
					    "  - {name: c}\n"
					    BACKEND);
	assert_int_equal(cfg->ntenants, 3);
	assert_int_equal(cfg->tenants[0].id, 1);
	assert_int_equal(cfg->tenants[1].id, 2);
	assert_int_equal(cfg->tenants[1].conn_rate, 30);
	assert_int_equal(cfg->tenants[1].conn_burst, 30);	/* = rate */
	assert_int_equal(cfg->tenants[2].id, 3);
	config_free(cfg);

	cfg = load_ok("tenants: []\n" BACKEND);
	assert_int_equal(cfg->ntenants, 0);
	assert_null(cfg->tenants);
	config_free(cfg);
}

static void test_tenant_name_invalid(void **state)
{
	(void)state;
	assert_load_error("tenants:\n  - networks: []\n" BACKEND,
			  "2: tenants[0].name: required key is missing");
	assert_load_error("tenants:\n  - name: \"a b\"\n" BACKEND,
			  "2: tenants[0].name: must match [A-Za-z0-9_.-]+");
	assert_load_error("tenants:\n  - name: \"\"\n" BACKEND,
			  "2: tenants[0].name: must match [A-Za-z0-9_.-]+");
	assert_load_error("tenants:\n  - name: anonymous\n" BACKEND,
			  "2: tenants[0].name: anonymous is reserved for clients of no tenant");
	assert_load_error("tenants:\n"
			  "  - name: abcdefghijabcdefghijabcdefghijabcdefghijabcdefghij"
			  "abcdefghijabcd\n" BACKEND,
			  "2: tenants[0].name: must be at most 63 characters");
	struct sluice_config *cfg =
		load_ok("tenants:\n"
			"  - name: abcdefghijabcdefghijabcdefghij"
			"abcdefghijabcdefghijabcdefghijabc\n"
			BACKEND);
	assert_int_equal(strlen(cfg->tenants[0].name), 63);
	config_free(cfg);
}

static void test_tenant_types_invalid(void **state)
{
	(void)state;
	assert_load_error("tenants: {name: a}\n" BACKEND, "1: tenants: must be a list of tenants");
	assert_load_error("tenants:\n" BACKEND, "1: tenants: must be a list of tenants");
	assert_load_error("tenants:\n  - acme\n" BACKEND, "2: tenants[0]: must be a mapping");
	assert_load_error("tenants:\n  - name: a\n    networks: 10.0.0.0/8\n" BACKEND,
			  "3: tenants[0].networks: must be a list of networks");
	assert_load_error("tenants:\n  - name: a\n    limits: 5\n" BACKEND,
			  "3: tenants[0].limits: must be a mapping");
	assert_load_error("tenants:\n  - name: a\n    workers: own\n" BACKEND,
			  "3: tenants[0].workers: must be shared or dedicated");
	assert_load_error("tenants:\n  - name: a\n    networks: [\"10.20.1.0/16\"]\n" BACKEND,
			  "3: tenants[0].networks[0]: host bits set below /16 "
			  "(did you mean 10.20.0.0/16?)");
}

static void test_tenant_id_removed(void **state)
{
	(void)state;
	/* Identity is the name: an id would let a reload hand one tenant's
	 * state to another (issue 9 case 3). */
	assert_load_error("tenants:\n  - name: a\n    id: 7\n" BACKEND,
			  "3: tenants[0].id: no longer supported: a tenant's state follows its "
			  "name; remove the key");
}

static void test_tenant_limits(void **state)
{
	(void)state;
	assert_load_error("tenants:\n  - name: a\n    limits:\n      conn_rate: 5\n"
			  "      conn_burst: 0\n" BACKEND,
			  "5: tenants[0].limits.conn_burst: must be at least 1 "
			  "when conn_rate is above 0");
	assert_load_error("tenants:\n  - name: a\n    limits: {max_connections: 2000000}\n"
			  BACKEND,
			  "3: tenants[0].limits.max_connections: must be between 0 and 1000000");
	assert_load_error("tenants:\n  - name: a\n    limits: {conn_rte: 1}\n" BACKEND,
			  "3: tenants[0].limits.conn_rte: unknown key (did you mean conn_rate?)");
}

static void test_tenant_unknown_and_duplicate_keys(void **state)
{
	(void)state;
	assert_load_error("tenants:\n  - name: a\n    network: [10.0.0.0/8]\n" BACKEND,
			  "3: tenants[0].network: unknown key (did you mean networks?)");
	assert_load_error("tenants:\n  - name: a\n  - name: b\n    colour: red\n" BACKEND,
			  "4: tenants[1].colour: unknown key");
	assert_load_error("tenants:\n  - name: a\n    name: b\n" BACKEND,
			  "3: tenants[0].name: duplicate key");
	assert_load_error("tenant:\n  - name: a\n" BACKEND,
			  "1: tenant: unknown key (did you mean tenants?)");
}

static void test_tenant_duplicate_names(void **state)
{
	(void)state;
	assert_load_error("tenants:\n"
			  "  - name: acme\n"
			  "  - name: beta\n"
			  "  - name: acme\n"
			  BACKEND,
			  "4: tenants[2].name: duplicate tenant name acme (also tenants[0])");
}

static void test_tenant_duplicate_networks(void **state)
{
	(void)state;
	assert_load_error("tenants:\n"
			  "  - name: acme\n"
			  "    networks: [\"10.20.0.0/16\", \"10.30.0.0/16\"]\n"
			  "  - name: beta\n"
			  "    networks:\n"
			  "      - 192.0.2.0/24\n"
			  "      - 10.30.0.0/16\n"
			  BACKEND,
			  "7: tenants[1].networks[1]: duplicate network 10.30.0.0/16 "
			  "(also tenants[0].networks[1], acme)");
	assert_load_error("tenants:\n"
			  "  - name: acme\n"
			  "    networks: [\"2001:db8::/32\", \"2001:0db8::/32\"]\n"
			  BACKEND,
			  "3: tenants[0].networks[1]: duplicate network 2001:0db8::/32 "
			  "(also tenants[0].networks[0])");
	/* Nested networks are fine: the longest prefix wins. */
	struct sluice_config *cfg = load_ok("tenants:\n"
					    "  - {name: a, networks: [10.0.0.0/8]}\n"
					    "  - {name: b, networks: [10.20.0.0/16]}\n"
					    BACKEND);
	assert_int_equal(cfg->ntenants, 2);
	config_free(cfg);
}

static void test_dedicated_workers_rule(void **state)
{
	(void)state;
	assert_load_error("workers: 2\n"
			  "tenants:\n"
			  "  - {name: a, workers: dedicated}\n"
			  "  - {name: b, workers: dedicated}\n"
			  BACKEND,
			  "2: tenants: 2 dedicated tenants need at least 3 workers (workers: 2)");
	/* workers: may come after tenants:; the rule sees its final value. */
	assert_load_error("tenants:\n"
			  "  - {name: a, workers: dedicated}\n"
			  BACKEND
			  "workers: 1\n",
			  "1: tenants: 1 dedicated tenant needs at least 2 workers (workers: 1)");
	struct sluice_config *cfg = load_ok("tenants:\n"
					    "  - {name: a, workers: dedicated}\n"
					    "  - {name: b, workers: dedicated}\n"
					    "  - {name: c}\n"
					    "workers: 3\n"
					    BACKEND);
	assert_int_equal(cfg->workers, 3);
	config_free(cfg);
}

static void test_dedicated_group_limit(void **state)
{
	char yaml[2048];
	int n = snprintf(yaml, sizeof(yaml), "workers: 64\ntenants:\n");

	(void)state;
	for (int i = 0; i < 16; i++)
		n += snprintf(yaml + n, sizeof(yaml) - (size_t)n,
			      "  - {name: t%d, workers: dedicated}\n", i);
	snprintf(yaml + n, sizeof(yaml) - (size_t)n, "%s", BACKEND);
	assert_load_error(yaml, "2: tenants: at most 15 tenants can be dedicated");
}

static void test_tenant_count_limit(void **state)
{
	size_t size = 16 + 1024 * 16 + sizeof(BACKEND);
	char *yaml = malloc(size);
	int n = snprintf(yaml, size, "tenants:\n");

	(void)state;
	assert_non_null(yaml);
	for (int i = 0; i < 1024; i++)
		n += snprintf(yaml + n, size - (size_t)n, "  - name: t%d\n", i);
	snprintf(yaml + n, size - (size_t)n, "%s", BACKEND);
	assert_load_error(yaml, "2: tenants: at most 1023 tenants");
	free(yaml);
}

static void test_kernel_tenants_error_does_not_leak(void **state)
{
	(void)state;
	/* Interfaces, deny networks, names and tenant networks are all
	 * allocated before the error; ASan's leak check catches any lost. */
	assert_load_error("kernel:\n"
			  "  pin_root: /sys/fs/bpf/x\n"
			  "  cgroup: /sys/fs/cgroup/x\n"
			  "  xdp: {interfaces: [eth0, eth1]}\n"
			  "  deny: [192.0.2.0/24, \"2001:db8::/32\"]\n"
			  "tenants:\n"
			  "  - {name: a, networks: [10.0.0.0/8]}\n"
			  "  - {name: b, networks: [10.1.0.0/16, 10.2.0.0/16]}\n"
			  "  - {name: c, networks: [10.3.0.0/16], bogus: 1}\n"
			  BACKEND,
			  "9: tenants[2].bogus: unknown key");
}

/* ------------------------------------------------------------------ */
/* tls:                                                                */

/* Two readable files for the certificate paths (their content is only
 * read by tls_server_ctx_new). */
struct pem_files {
	char cert[64], key[64];
};

static void pem_files_make(struct pem_files *p)
{
	char *paths[] = { p->cert, p->key };

	for (size_t i = 0; i < 2; i++) {
		strcpy(paths[i], "/tmp/sluice-pem-XXXXXX");
		int fd = mkstemp(paths[i]);
		assert_true(fd >= 0);
		close(fd);
	}
}

static void pem_files_remove(struct pem_files *p)
{
	unlink(p->cert);
	unlink(p->key);
}

/* "tls:\n  cert: C\n  key: K\n" followed by extra, then BACKEND. */
static void tls_yaml(char *out, size_t size, const struct pem_files *p, const char *extra)
{
	snprintf(out, size, "tls:\n  cert: %s\n  key: %s\n%s" BACKEND, p->cert, p->key, extra);
}

static void test_tls_absent(void **state)
{
	struct sluice_config *cfg = load_ok(BACKEND);

	(void)state;
	assert_false(cfg->tls.enabled);
	assert_null(cfg->tls.cert);
	assert_int_equal(cfg->tls.nsni, 0);
	config_free(cfg);
}

static void test_tls_defaults(void **state)
{
	struct pem_files p;
	char yaml[1024];

	(void)state;
	pem_files_make(&p);
	tls_yaml(yaml, sizeof(yaml), &p, "");
	struct sluice_config *cfg = load_ok(yaml);
	const struct tls_listen_cfg *t = &cfg->tls;
	assert_true(t->enabled);
	assert_string_equal(t->cert, p.cert);
	assert_string_equal(t->key, p.key);
	assert_int_equal(t->min_version, TLS_VERSION_1_2);
	assert_null(t->ciphers);
	assert_null(t->ciphersuites);
	assert_null(t->groups);
	assert_null(t->client_ca);
	assert_null(t->sni);
	assert_true(t->ktls);
	config_free(cfg);
	pem_files_remove(&p);
}

static void test_tls_all_keys(void **state)
{
	struct pem_files p;
	char yaml[2048], extra[1024];

	(void)state;
	pem_files_make(&p);
	snprintf(extra, sizeof(extra),
		 "  min_version: 1.3\n"
		 "  ciphers: \"ECDHE+AESGCM:ECDHE+CHACHA20\"\n"
		 "  ciphersuites: TLS_AES_128_GCM_SHA256\n"
		 "  groups: \"X25519:P-256\"\n"
		 "  client_ca: %s\n"
		 "  sni:\n"
		 "    - names: [\"api.example.com\", \"*.corp.example\"]\n"
		 "      cert: %s\n"
		 "      key: %s\n"
		 "    - names: [Other-1.example]\n"
		 "      cert: %s\n"
		 "      key: %s\n"
		 "  ktls: false\n", p.cert, p.cert, p.key, p.cert, p.key);
	tls_yaml(yaml, sizeof(yaml), &p, extra);
	struct sluice_config *cfg = load_ok(yaml);
	const struct tls_listen_cfg *t = &cfg->tls;
	assert_int_equal(t->min_version, TLS_VERSION_1_3);
	assert_string_equal(t->ciphers, "ECDHE+AESGCM:ECDHE+CHACHA20");
	assert_string_equal(t->ciphersuites, "TLS_AES_128_GCM_SHA256");
	assert_string_equal(t->groups, "X25519:P-256");
	assert_string_equal(t->client_ca, p.cert);
	assert_false(t->ktls);
	assert_int_equal(t->nsni, 2);
	assert_int_equal(t->sni[0].nnames, 2);
	assert_string_equal(t->sni[0].names[0], "api.example.com");
	assert_string_equal(t->sni[0].names[1], "*.corp.example");
	assert_string_equal(t->sni[0].cert, p.cert);
	assert_string_equal(t->sni[0].key, p.key);
	assert_int_equal(t->sni[1].nnames, 1);
	assert_string_equal(t->sni[1].names[0], "Other-1.example");
	config_free(cfg);
	pem_files_remove(&p);
}

static void test_tls_required_and_files(void **state)
{
	struct pem_files p;
	char yaml[1024];

	(void)state;
	pem_files_make(&p);
	snprintf(yaml, sizeof(yaml), "tls:\n  key: %s\n" BACKEND, p.key);
	assert_load_error(yaml, "2: tls.cert: required key is missing");
	snprintf(yaml, sizeof(yaml), "tls:\n  cert: %s\n" BACKEND, p.cert);
	assert_load_error(yaml, "2: tls.key: required key is missing");
	assert_load_error("tls:\n" BACKEND, "1: tls: must be a mapping");
	snprintf(yaml, sizeof(yaml), "tls:\n  cert: /nonexistent/server.pem\n  key: %s\n"
		 BACKEND, p.key);
	assert_load_error(yaml, "2: tls.cert: cannot read /nonexistent/server.pem: "
			  "No such file or directory");
	snprintf(yaml, sizeof(yaml), "tls:\n  cert: %s\n  key: \"\"\n" BACKEND, p.cert);
	assert_load_error(yaml, "3: tls.key: must not be empty");
	tls_yaml(yaml, sizeof(yaml), &p, "  client_ca: /nonexistent/ca.pem\n");
	assert_load_error(yaml, "4: tls.client_ca: cannot read /nonexistent/ca.pem: "
			  "No such file or directory");
	snprintf(yaml, sizeof(yaml), "tls:\n  cert: /tmp\n  key: %s\n" BACKEND, p.key);
	/* A directory passes access(); the context build refuses it. */
	struct sluice_config *cfg = load_ok(yaml);
	config_free(cfg);
	pem_files_remove(&p);
}

static void test_tls_values_invalid(void **state)
{
	struct pem_files p;
	char yaml[1024];

	(void)state;
	pem_files_make(&p);
	tls_yaml(yaml, sizeof(yaml), &p, "  min_version: \"1.1\"\n");
	assert_load_error(yaml, "4: tls.min_version: must be \"1.2\" or \"1.3\"");
	tls_yaml(yaml, sizeof(yaml), &p, "  min_version: TLSv1.3\n");
	assert_load_error(yaml, "4: tls.min_version: must be \"1.2\" or \"1.3\"");
	tls_yaml(yaml, sizeof(yaml), &p, "  ktls: maybe\n");
	assert_load_error(yaml, "4: tls.ktls: must be true or false");
	tls_yaml(yaml, sizeof(yaml), &p, "  ciphers: \"\"\n");
	assert_load_error(yaml, "4: tls.ciphers: must not be empty");
	tls_yaml(yaml, sizeof(yaml), &p, "  groups: [X25519]\n");
	assert_load_error(yaml, "4: tls.groups: must be a string");
	tls_yaml(yaml, sizeof(yaml), &p, "  cipher: ECDHE\n");
	assert_load_error(yaml, "4: tls.cipher: unknown key (did you mean ciphers?)");
	tls_yaml(yaml, sizeof(yaml), &p, "  key: again\n");
	assert_load_error(yaml, "4: tls.key: duplicate key");
	pem_files_remove(&p);
}

static void test_tls_sni_invalid(void **state)
{
	struct pem_files p;
	char yaml[2048], extra[1024];

	(void)state;
	pem_files_make(&p);
	tls_yaml(yaml, sizeof(yaml), &p, "  sni: api.example.com\n");
	assert_load_error(yaml, "4: tls.sni: must be a list of certificates");
	snprintf(extra, sizeof(extra), "  sni:\n    - cert: %s\n      key: %s\n", p.cert, p.key);
	tls_yaml(yaml, sizeof(yaml), &p, extra);
	assert_load_error(yaml, "5: tls.sni[0].names: required key is missing");
	snprintf(extra, sizeof(extra), "  sni:\n    - names: [a.example]\n      key: %s\n", p.key);
	tls_yaml(yaml, sizeof(yaml), &p, extra);
	assert_load_error(yaml, "5: tls.sni[0].cert: required key is missing");
	snprintf(extra, sizeof(extra), "  sni:\n    - names: []\n      cert: %s\n      key: %s\n",
		 p.cert, p.key);
	tls_yaml(yaml, sizeof(yaml), &p, extra);
	assert_load_error(yaml, "5: tls.sni[0].names: must not be empty");

	static const char *const bad[] = {
		"bad_name.example", "*.*.example", "a*.example", "*", "*.", "a..example",
		"a.example.", "-a.example", "a-.example", ".a.example", "",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(extra, sizeof(extra), "  sni:\n    - names: [ok.example, \"%s\"]\n"
			 "      cert: %s\n      key: %s\n", bad[i], p.cert, p.key);
		tls_yaml(yaml, sizeof(yaml), &p, extra);
		assert_load_error(yaml, "5: tls.sni[0].names[1]: must be a host name "
				  "such as api.example.com or *.corp.example");
	}
	snprintf(extra, sizeof(extra),
		 "  sni:\n"
		 "    - names: [a.example, \"*.b.example\"]\n      cert: %s\n      key: %s\n"
		 "    - names: [c.example, \"*.B.example\"]\n      cert: %s\n      key: %s\n",
		 p.cert, p.key, p.cert, p.key);
	tls_yaml(yaml, sizeof(yaml), &p, extra);
	assert_load_error(yaml, "8: tls.sni[1].names[1]: duplicate name *.B.example "
			  "(also tls.sni[0].names[1])");
	snprintf(extra, sizeof(extra),
		 "  sni:\n    - names: [a.example, A.example]\n      cert: %s\n      key: %s\n",
		 p.cert, p.key);
	tls_yaml(yaml, sizeof(yaml), &p, extra);
	assert_load_error(yaml, "5: tls.sni[0].names[1]: duplicate name A.example "
			  "(also tls.sni[0].names[0])");
	snprintf(extra, sizeof(extra),
		 "  sni:\n    - names: [a.example]\n      cert: %s\n      key: /nonexistent/k\n",
		 p.cert);
	tls_yaml(yaml, sizeof(yaml), &p, extra);
	assert_load_error(yaml, "7: tls.sni[0].key: cannot read /nonexistent/k: "
			  "No such file or directory");
	pem_files_remove(&p);
}

static void test_free_null(void **state)
{
	(void)state;
	config_free(NULL);
}


/* ------------------------------------------------------------------ */
/* Identity and quotas                                                 */

static void test_tenant_quota_keys(void **state)
{
	(void)state;
	struct sluice_config *cfg =
		load_ok("tenants:\n"
			"  - name: acme\n"
			"    keys_file: /etc/sluice/keys/acme\n"
			"    models: [\"gpt-4o-mini\", \"mock-*\"]\n"
			"    client_subjects: [\"CN=acme-client\"]\n"
			"    limits: {requests_per_minute: 600, tokens_per_minute: 100000,\n"
			"             input_tokens_per_minute: 70000, output_tokens_per_minute: 30000,\n"
			"             concurrent: 32, tokens_per_day: 5000000,\n"
			"             tokens_per_month: 90000000000, conn_rate: 5}\n"
			"    key_limits: {requests_per_minute: 60}\n"
			"    model_limits:\n"
			"      - {model: \"mock-*\", tokens_per_minute: 500}\n"
			"auth:\n"
			"  anonymous: acme\n"
			"quota:\n"
			"  redis: {url: \"redis://127.0.0.1:6379\", on_error: closed, timeout: 20ms,\n"
			"          lease_percent: 5}\n"
			"  default_max_tokens: 256\n"
			"  bytes_per_token: 3\n"
			BACKEND);
	const struct tenant_cfg *t = &cfg->tenants[0];
	assert_string_equal(t->keys_file, "/etc/sluice/keys/acme");
	assert_int_equal(t->nmodels, 2);
	assert_string_equal(t->models[1], "mock-*");
	assert_int_equal(t->nclient_subjects, 1);
	assert_int_equal(t->limits.requests_per_minute, 600);
	assert_int_equal(t->limits.tokens_per_minute, 100000);
	assert_int_equal(t->limits.input_tokens_per_minute, 70000);
	assert_int_equal(t->limits.output_tokens_per_minute, 30000);
	assert_int_equal(t->limits.concurrent, 32);
	assert_int_equal(t->limits.tokens_per_day, 5000000);
	assert_true(t->limits.tokens_per_month == 90000000000ull);
	assert_int_equal(t->conn_rate, 5);
	assert_true(t->has_key_limits);
	assert_int_equal(t->key_limits.requests_per_minute, 60);
	assert_int_equal(t->nmodel_limits, 1);
	assert_int_equal(t->model_limits[0].limits.tokens_per_minute, 500);
	assert_true(config_tenant_allows_model(t, "mock-a", 6));
	assert_false(config_tenant_allows_model(t, "gpt-4o", 6));
	assert_non_null(config_model_limits(t, "mock-b", 6));
	assert_null(config_model_limits(t, "gpt-4o-mini", 11));
	assert_true(config_tenant_by_name(cfg, "acme") == t);
	assert_null(config_tenant_by_name(cfg, "nope"));
	assert_true(cfg->auth.present);
	assert_true(cfg->auth.on);
	assert_true(config_tenant_by_id(cfg, 1) == t);
	assert_null(config_tenant_by_id(cfg, 2));
	assert_int_equal(cfg->auth.anonymous, ANON_TENANT);
	assert_int_equal(cfg->auth.anonymous_tenant, 1);
	assert_true(cfg->quota.redis);
	assert_string_equal(cfg->quota.redis_url, "redis://127.0.0.1:6379");
	assert_false(cfg->quota.fail_open);
	assert_int_equal(cfg->quota.redis_timeout_ms, 20);
	assert_int_equal(cfg->quota.lease_percent, 5);
	assert_int_equal(cfg->quota.default_max_tokens, 256);
	assert_int_equal(cfg->quota.bytes_per_token, 3);
	config_free(cfg);
}

static void test_auth_defaults(void **state)
{
	(void)state;
	struct sluice_config *cfg = load_ok(BACKEND);
	assert_false(cfg->auth.present);
	assert_false(cfg->auth.on);
	assert_int_equal(cfg->auth.anonymous, ANON_ALLOW);
	assert_false(cfg->quota.redis);
	assert_true(cfg->quota.fail_open);
	assert_int_equal(cfg->quota.default_max_tokens, 4096);
	assert_int_equal(cfg->quota.bytes_per_token, 4);
	config_free(cfg);

	/* A keys file alone turns authentication on; anonymous stays allowed. */
	cfg = load_ok("tenants:\n  - name: a\n    keys_file: /etc/sluice/keys/a\n" BACKEND);
	assert_false(cfg->auth.present);
	assert_true(cfg->auth.on);
	assert_int_equal(cfg->auth.anonymous, ANON_ALLOW);
	config_free(cfg);

	char jwks[] = "/tmp/sluice-jwks-XXXXXX";
	int fd = mkstemp(jwks);
	assert_true(fd >= 0);
	close(fd);
	char yaml[512];
	snprintf(yaml, sizeof(yaml), "auth:\n  jwt: {jwks_file: %s, audience: sluice}\n" BACKEND, jwks);
	cfg = load_ok(yaml);
	unlink(jwks);
	assert_int_equal(cfg->auth.anonymous, ANON_DENY);	/* auth: present */
	assert_true(cfg->auth.jwt.enabled);
	assert_string_equal(cfg->auth.jwt.tenant_claim, "tenant");
	assert_string_equal(cfg->auth.jwt.audience, "sluice");
	assert_int_equal(cfg->auth.jwt.leeway_s, 60);
	assert_int_equal(cfg->auth.jwt.refresh_ms, 300000);
	assert_null(cfg->auth.jwt.models_claim);
	config_free(cfg);
}

static void test_auth_quota_invalid(void **state)
{
	(void)state;
	assert_load_error("auth:\n  anonymous: ghost\n" BACKEND,
			  "2: auth.anonymous: must be deny, allow or the name of a tenant "
			  "(no tenant ghost)");
	assert_load_error("auth:\n  jwt: {issuer: x}\n" BACKEND,
			  "2: auth.jwt.jwks_file: jwks_file or jwks_url is required");
	assert_load_error("auth:\n  jwt: {jwks_url: \"ftp://x\"}\n" BACKEND,
			  "2: auth.jwt.jwks_url: must be an http:// or https:// URL");
	assert_load_error("auth:\n  jwt: {jwks_file: /nonexistent/jwks.json}\n" BACKEND,
			  "2: auth.jwt.jwks_file: cannot read /nonexistent/jwks.json: "
			  "No such file or directory");
	assert_load_error("quota:\n  redis: {url: \"http://x\"}\n" BACKEND,
			  "2: quota.redis.url: must be redis://[:password@]host:port[/db] "
			  "or unix:///path");
	assert_load_error("quota:\n  redis: {on_error: open}\n" BACKEND,
			  "2: quota.redis.url: required key is missing");
	assert_load_error("quota:\n  redis: {url: \"redis://h:1\", on_error: maybe}\n" BACKEND,
			  "2: quota.redis.on_error: must be open or closed");
	assert_load_error("tenants:\n  - name: a\n    limits: {requests_per_minute: -1}\n" BACKEND,
			  "3: tenants[0].limits.requests_per_minute: must be a non-negative integer");
	assert_load_error("tenants:\n  - name: a\n    keys_file: keys/a\n" BACKEND,
			  "3: tenants[0].keys_file: must be an absolute path");
	assert_load_error("tenants:\n  - name: a\n    model_limits: [{tokens_per_minute: 5}]\n"
			  BACKEND, "3: tenants[0].model_limits[0].model: required key is missing");
	assert_load_error("tenants:\n  - name: a\n    key_limits: {request_per_minute: 5}\n"
			  BACKEND, "3: tenants[0].key_limits.request_per_minute: unknown key "
			  "(did you mean requests_per_minute?)");
	assert_load_error("tenants:\n  - name: a\n    models: []\n" BACKEND,
			  "3: tenants[0].models: must not be empty");
}

/* ------------------------------------------------------------------ */
/* admin: and forwarding:                                              */

static void test_admin_absent_and_loaded(void **state)
{
	char host[64];

	(void)state;
	struct sluice_config *cfg = load_ok(BACKEND);
	assert_false(cfg->admin.enabled);
	assert_null(cfg->admin.token);
	config_free(cfg);

	setenv("SLUICE_TEST_ADMIN_TOKEN", "0123456789abcdef0123", 1);
	cfg = load_ok("admin:\n  listen: \"[::1]:9091\"\n"
		      "  token: \"${SLUICE_TEST_ADMIN_TOKEN}\"\n" BACKEND);
	unsetenv("SLUICE_TEST_ADMIN_TOKEN");
	assert_true(cfg->admin.enabled);
	assert_string_equal(cfg->admin.listen, "[::1]:9091");
	assert_int_equal(cfg->admin.listen_addr.ss_family, AF_INET6);
	assert_string_equal(sa_host(&cfg->admin.listen_addr, host, sizeof(host)), "::1");
	assert_int_equal(sa_port(&cfg->admin.listen_addr), 9091);
	assert_string_equal(cfg->admin.token, "0123456789abcdef0123");
	config_free(cfg);

	cfg = load_ok("admin: {listen: \"127.0.0.1:9090\"}\n" BACKEND);
	assert_true(cfg->admin.enabled);
	assert_null(cfg->admin.token);
	assert_int_equal(sa_port(&cfg->admin.listen_addr), 9090);
	config_free(cfg);
}

static void test_admin_invalid(void **state)
{
	(void)state;
	assert_load_error("admin:\n  listen: \"127.0.0.1\"\n" BACKEND,
			  "2: admin.listen: must be host:port, [address]:port or :port");
	assert_load_error("admin:\n  listen: \"127.0.0.1:99999\"\n" BACKEND,
			  "2: admin.listen: port must be between 1 and 65535");
	assert_load_error("admin:\n  token: \"0123456789abcdef\"\n" BACKEND,
			  "2: admin.listen: required key is missing");
	assert_load_error("admin:\n  listen: \":9090\"\n  tokne: x\n" BACKEND,
			  "3: admin.tokne: unknown key (did you mean token?)");
	unsetenv("SLUICE_TEST_UNSET");
	assert_load_error("admin:\n  listen: \":9090\"\n  token: \"${SLUICE_TEST_UNSET}\"\n" BACKEND,
			  "3: admin.token: is empty (an unset environment variable?); "
			  "leave token out for none");
	assert_load_error("admin:\n  listen: \":9090\"\n  token: short\n" BACKEND,
			  "3: admin.token: must be at least 16 characters");
	assert_load_error("admin:\n  listen: \":9090\"\n  token: \"0123456789 abcdef\"\n" BACKEND,
			  "3: admin.token: must be printable ASCII without spaces");
	/* The kernel knows the gateway by its port, whatever the address. */
	assert_load_error("listen: \"127.0.0.1:8080\"\nadmin:\n  listen: \"127.0.0.2:8080\"\n"
			  BACKEND, "3: admin.listen: must use another port than listen (8080)");
	assert_load_error("admin:\n  listen: \"127.0.0.1:8080\"\n" BACKEND,
			  "2: admin.listen: must use another port than listen (8080)");
}

static void test_forwarding_defaults_and_loaded(void **state)
{
	(void)state;
	struct sluice_config *cfg = load_ok(BACKEND);
	assert_int_equal(cfg->forwarding.ntrusted_proxies, 0);
	assert_int_equal(cfg->forwarding.headers, FWD_HEADERS_X_FORWARDED);
	assert_false(cfg->forwarding.tenant_header);
	config_free(cfg);

	cfg = load_ok("forwarding:\n  trusted_proxies: [\"10.0.0.0/8\", \"2001:db8::/32\", "
		      "\"192.0.2.7\"]\n  headers: both\n  tenant_header: true\n" BACKEND);
	assert_int_equal(cfg->forwarding.ntrusted_proxies, 3);
	assert_string_equal(cfg->forwarding.trusted_proxies[1].text, "2001:db8::/32");
	assert_int_equal(cfg->forwarding.headers, FWD_HEADERS_BOTH);
	assert_true(cfg->forwarding.tenant_header);

	const struct cidr_cfg *list = cfg->forwarding.trusted_proxies;
	size_t n = cfg->forwarding.ntrusted_proxies;
	uint8_t a[16] = { [10] = 0xff, [11] = 0xff, 10, 200, 3, 4 };
	assert_true(config_cidr_contains(list, n, a));
	a[12] = 11;
	assert_false(config_cidr_contains(list, n, a));
	uint8_t host[16] = { [10] = 0xff, [11] = 0xff, 192, 0, 2, 7 };
	assert_true(config_cidr_contains(list, n, host));
	host[15] = 8;
	assert_false(config_cidr_contains(list, n, host));
	uint8_t v6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0xff };
	assert_true(config_cidr_contains(list, n, v6));
	v6[3] = 0xb9;
	assert_false(config_cidr_contains(list, n, v6));
	assert_false(config_cidr_contains(NULL, 0, v6));
	config_free(cfg);

	cfg = load_ok("forwarding: {headers: none}\n" BACKEND);
	assert_int_equal(cfg->forwarding.headers, FWD_HEADERS_NONE);
	config_free(cfg);
	cfg = load_ok("forwarding: {headers: forwarded, trusted_proxies: [\"0.0.0.0/0\"]}\n" BACKEND);
	assert_int_equal(cfg->forwarding.headers, FWD_HEADERS_FORWARDED);
	uint8_t any[16] = { [10] = 0xff, [11] = 0xff, 203, 0, 113, 9 };
	assert_true(config_cidr_contains(cfg->forwarding.trusted_proxies, 1, any));
	config_free(cfg);
}

static void test_forwarding_invalid(void **state)
{
	(void)state;
	assert_load_error("forwarding:\n  trusted_proxies: [\"10.1.0.0/8\"]\n" BACKEND,
			  "2: forwarding.trusted_proxies[0]: host bits set below /8 "
			  "(did you mean 10.0.0.0/8?)");
	assert_load_error("forwarding:\n  trusted_proxies: \"10.0.0.0/8\"\n" BACKEND,
			  "2: forwarding.trusted_proxies: must be a list of networks");
	assert_load_error("forwarding:\n  headers: x-forwarded-for\n" BACKEND,
			  "2: forwarding.headers: must be x-forwarded, forwarded, both or none");
	assert_load_error("forwarding:\n  tenant_header: maybe\n" BACKEND,
			  "2: forwarding.tenant_header: must be true or false");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_example_config_loads),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_directory),
		cmocka_unit_test(test_include),
		cmocka_unit_test(test_empty_file),
		cmocka_unit_test(test_yaml_syntax_error),
		cmocka_unit_test(test_yaml_alias_and_documents),
		cmocka_unit_test(test_top_level_not_mapping),
		cmocka_unit_test(test_unknown_key_suggests),
		cmocka_unit_test(test_duplicate_key),
		cmocka_unit_test(test_duplicate_backend_name),
		cmocka_unit_test(test_missing_required),
		cmocka_unit_test(test_wrong_types),
		cmocka_unit_test(test_workers_range),
		cmocka_unit_test(test_log_level_and_access_log),
		cmocka_unit_test(test_parse_size_valid),
		cmocka_unit_test(test_parse_size_invalid),
		cmocka_unit_test(test_parse_duration_valid),
		cmocka_unit_test(test_parse_duration_invalid),
		cmocka_unit_test(test_limits_and_timeouts_loaded),
		cmocka_unit_test(test_limits_invalid),
		cmocka_unit_test(test_timeouts_invalid),
		cmocka_unit_test(test_stage_keys),
		cmocka_unit_test(test_expand_env),
		cmocka_unit_test(test_expand_env_unterminated),
		cmocka_unit_test(test_env_in_config),
		cmocka_unit_test(test_listen_ipv6),
		cmocka_unit_test(test_listen_wildcard_and_hostname),
		cmocka_unit_test(test_listen_invalid),
		cmocka_unit_test(test_https_backend),
		cmocka_unit_test(test_base_path),
		cmocka_unit_test(test_backend_ipv6),
		cmocka_unit_test(test_backend_url_invalid),
		cmocka_unit_test(test_backend_unresolvable),
		cmocka_unit_test(test_backend_name_invalid),
		cmocka_unit_test(test_backends_and_models_empty),
		cmocka_unit_test(test_backend_ca_file),
		cmocka_unit_test(test_backend_options_invalid),
		cmocka_unit_test(test_multiple_backends),
		cmocka_unit_test(test_error_after_partial_load_does_not_leak),
		cmocka_unit_test(test_parse_cidr_ipv4),
		cmocka_unit_test(test_parse_cidr_ipv6),
		cmocka_unit_test(test_parse_cidr_invalid),
		cmocka_unit_test(test_cidr_errors_in_config),
		cmocka_unit_test(test_kernel_defaults_when_absent),
		cmocka_unit_test(test_kernel_all_keys),
		cmocka_unit_test(test_kernel_partial_section_keeps_defaults),
		cmocka_unit_test(test_kernel_xdp_modes),
		cmocka_unit_test(test_kernel_xdp_interfaces_invalid),
		cmocka_unit_test(test_kernel_paths_invalid),
		cmocka_unit_test(test_kernel_limits),
		cmocka_unit_test(test_kernel_unknown_and_duplicate_keys),
		cmocka_unit_test(test_tenants_all_keys),
		cmocka_unit_test(test_tenant_defaults),
		cmocka_unit_test(test_tenant_name_invalid),
		cmocka_unit_test(test_tenant_types_invalid),
		cmocka_unit_test(test_tenant_id_removed),
		cmocka_unit_test(test_tenant_limits),
		cmocka_unit_test(test_tenant_unknown_and_duplicate_keys),
		cmocka_unit_test(test_tenant_duplicate_names),
		cmocka_unit_test(test_tenant_duplicate_networks),
		cmocka_unit_test(test_dedicated_workers_rule),
		cmocka_unit_test(test_dedicated_group_limit),
		cmocka_unit_test(test_tenant_count_limit),
		cmocka_unit_test(test_kernel_tenants_error_does_not_leak),
		cmocka_unit_test(test_tls_absent),
		cmocka_unit_test(test_tls_defaults),
		cmocka_unit_test(test_tls_all_keys),
		cmocka_unit_test(test_tls_required_and_files),
		cmocka_unit_test(test_tls_values_invalid),
		cmocka_unit_test(test_tls_sni_invalid),
		cmocka_unit_test(test_tenant_quota_keys),
		cmocka_unit_test(test_auth_defaults),
		cmocka_unit_test(test_auth_quota_invalid),
		cmocka_unit_test(test_free_null),
		cmocka_unit_test(test_admin_absent_and_loaded),
		cmocka_unit_test(test_admin_invalid),
		cmocka_unit_test(test_forwarding_defaults_and_loaded),
		cmocka_unit_test(test_forwarding_invalid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
