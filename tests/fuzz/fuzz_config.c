/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The config loader (config/config.h): YAML text in, an immutable snapshot
 * or a `file:line: key: reason` error out.
 *
 * The loader reads a path, so each input is written to one memfd and
 * loaded through /proc/self/fd/N: no file is created.  Its side effects are
 * fenced in: the environment is emptied at start-up except for two
 * variables the seeds use (so ${VAR} expands the same on every machine and
 * never to a real secret), and getaddrinfo() is wrapped to resolve only
 * numeric hosts, so a backend named in an input never becomes a DNS query.
 * glob() matches nothing, so an `include:` glob never reads the machine's
 * files (a named include still opens one path: regular files only).
 *
 * Properties, besides no crash, leak or undefined behaviour:
 * - a refused file gets one error that starts with the file's name;
 * - loading the same text twice gives the same result (and error);
 * - an accepted config keeps its promises: at least one backend, each with
 *   a name, host and a base path without a trailing '/'; workers >= 1;
 *   tenants found by id and by name;
 * - the number parsers: a size or duration read back from its decimal
 *   value is that value.
 */
#include <dlfcn.h>
#include <errno.h>
#include <glob.h>
#include <stdbool.h>
#include <string.h>
#include <netdb.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config/config.h"
#include "core/log.h"
#include "fuzz.h"

/* include: globs match nothing here (see above). */
int glob(const char *pattern, int flags, int (*errfunc)(const char *, int), glob_t *pglob)
{
	(void)pattern, (void)flags, (void)errfunc;
	memset(pglob, 0, sizeof(*pglob));
	return GLOB_NOMATCH;
}

static int memfd = -1;
static char path[64];

/* Names only as numbers: AI_NUMERICHOST on every lookup the loader makes. */
int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
		struct addrinfo **res)
{
	static int (*real)(const char *, const char *, const struct addrinfo *,
			   struct addrinfo **);
	struct addrinfo h = hints ? *hints : (struct addrinfo){ 0 };

	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "getaddrinfo");
	if (!real)
		abort();
	h.ai_flags |= AI_NUMERICHOST;
	return real(node, service, &h, res);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (clearenv() || setenv("OPENAI_API_KEY", "sk-fuzz", 1) ||
	    setenv("SLUICE_FUZZ", "8MiB", 1))
		abort();
	log_init("fuzz_config", LOG_ERROR);
	memfd = memfd_create("sluice-fuzz.yaml", MFD_CLOEXEC);
	if (memfd < 0)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
	return 0;
}

static void write_input(const uint8_t *data, size_t size)
{
	if (ftruncate(memfd, 0) || pwrite(memfd, data, size, 0) != (ssize_t)size)
		abort();
}

static void check_config(const struct sluice_config *cfg)
{
	FUZZ_CHECK(cfg->nbackends >= 1 && cfg->workers >= 1, "%zu backends, %u workers",
		   cfg->nbackends, cfg->workers);
	for (size_t i = 0; i < cfg->nbackends; i++) {
		const struct backend_cfg *b = &cfg->backends[i];
		size_t n = b->base_path ? strlen(b->base_path) : 0;
		FUZZ_CHECK(b->name && b->host && b->base_path && b->index == i, "backend %zu", i);
		FUZZ_CHECK(n == 0 || (b->base_path[0] == '/' && b->base_path[n - 1] != '/'),
			   "backend %zu base path \"%s\"", i, b->base_path);
	}
	for (size_t i = 0; i < cfg->ntenants; i++) {
		const struct tenant_cfg *t = &cfg->tenants[i];
		FUZZ_CHECK(t->id > 0 && t->id < SLUICE_MAX_TENANTS &&
			   config_tenant_by_id(cfg, t->id) == t &&
			   config_tenant_by_name(cfg, t->name) == t, "tenant %s", t->name);
	}
}

/* The first line of the input through the number parsers. */
static void check_numbers(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	char *line = fuzz_cstr(data, nl ? (size_t)(nl - data) : size);
	char text[32];
	size_t bytes, again_bytes;
	unsigned ms, again_ms;

	if (config_parse_size(line, &bytes) == 0) {
		snprintf(text, sizeof(text), "%zu", bytes);
		FUZZ_CHECK(config_parse_size(text, &again_bytes) == 0 && again_bytes == bytes,
			   "size %s", line);
	}
	if (config_parse_duration_ms(line, &ms) == 0) {
		snprintf(text, sizeof(text), "%u", ms);
		FUZZ_CHECK(config_parse_duration_ms(text, &again_ms) == 0 && again_ms == ms,
			   "duration %s", line);
	}
	struct cidr_cfg cidr;
	if (config_parse_cidr(line, &cidr) == 0) {
		FUZZ_CHECK(cidr.prefixlen <= 128 && strcmp(cidr.text, line) == 0, "prefix /%u",
			   cidr.prefixlen);
		free(cidr.text);
	}
	char *expanded = config_expand_env(line);
	FUZZ_CHECK(expanded || errno == EINVAL, "config_expand_env");
	free(expanded);
	free(line);
}

/* An error inside a file the input includes starts with that file's
 * name, which the input spells out (globs match nothing here). */
static bool names_an_included_file(const char *text, const uint8_t *data, size_t size)
{
	const char *colon = strchr(text, ':');
	return colon && colon > text &&
	       memmem(data, size, text, (size_t)(colon - text)) != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sluice_config *cfg = NULL, *again = NULL;
	struct config_error err, err2;

	write_input(data, size);
	int rc = config_load(path, &cfg, &err);
	int rc2 = config_load(path, &again, &err2);

	FUZZ_CHECK(rc == rc2 && (rc == 0 || strcmp(err.text, err2.text) == 0),
		   "two loads differ: %s / %s", err.text, err2.text);
	if (rc) {
		size_t n = strlen(path);
		FUZZ_CHECK(!cfg, "a config and an error");
		FUZZ_CHECK(memchr(err.text, '\0', sizeof(err.text)) &&
			   ((strncmp(err.text, path, n) == 0 && err.text[n] == ':') ||
			    names_an_included_file(err.text, data, size)),
			   "error without the file name: %s", err.text);
	} else {
		FUZZ_CHECK(cfg && again, "no config");
		check_config(cfg);
	}
	config_free(cfg);
	config_free(again);
	check_numbers(data, size);
	return 0;
}
