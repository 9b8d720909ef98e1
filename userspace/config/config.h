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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

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
	unsigned index;		/* position in config.backends */
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
	unsigned max_connections;	/* whole daemon, default 10000 */

	/* timeouts, milliseconds: */
	unsigned client_header_ms;	/* whole head must arrive within, default 10000 */
	unsigned client_body_ms;	/* whole body must arrive within, default 30000 */
	unsigned keepalive_ms;		/* idle keep-alive connection, default 60000 */
	unsigned upstream_connect_ms;	/* default 5000 */
	unsigned upstream_first_byte_ms;	/* request sent -> first response byte, default 60000 */
	unsigned upstream_idle_ms;	/* between two reads of a response, default 30000 */
	unsigned drain_ms;		/* SIGTERM grace for in-flight requests, default 10000 */

	struct backend_cfg *backends;
	size_t nbackends;
};

struct config_error {
	char text[512];		/* "file:line: key: what is wrong" */
};

/* Load and validate.  0 and *out, or a negative errno with err->text set. */
int config_load(const char *path, struct sluice_config **out, struct config_error *err);
void config_free(struct sluice_config *cfg);

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
