/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sluicectl: reads (and, for the deny list, writes) the maps sluiced pins
 * under its pin root, with no daemon in the loop.  Every layout comes from
 * maps/sluice_maps.h; see maps.h for the map access half.
 *
 * This header stays free of sluice_maps.h: the YAML half (cfgfile.c) and
 * the map half (maps.h) meet only through plain C types here.
 */
#ifndef SLUICECTL_CTL_H
#define SLUICECTL_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Exit codes, part of the command-line contract. */
enum ctl_exit {
	CTL_OK = 0,
	CTL_FAILED = 1,		/* the operation failed: bad CIDR, not found... */
	CTL_USAGE = 2,
	CTL_NO_MAPS = 3,	/* pin root or meta map missing, layout mismatch */
	CTL_NO_PERM = 4,	/* EPERM/EACCES on the pin root or a map */
};

/* A tenant of the config: its id, name and keys file. */
struct ctl_tenant_name {
	unsigned id;
	char *name;
	char *keys_file;	/* NULL when the tenant has none */
};

/* The limits `quota set` can write, one option each. */
enum ctl_limit {
	CTL_LIM_REQUESTS_PER_MINUTE,
	CTL_LIM_TOKENS_PER_MINUTE,
	CTL_LIM_INPUT_TOKENS_PER_MINUTE,
	CTL_LIM_OUTPUT_TOKENS_PER_MINUTE,
	CTL_LIM_CONCURRENT,
	CTL_LIM_TOKENS_PER_DAY,
	CTL_LIM_TOKENS_PER_MONTH,
	CTL_NLIMITS,
};

/* What the command line and the optional config file say. */
struct ctl {
	const char *pin_root;		/* resolved: --pin-root, config, default */
	bool json;
	unsigned top;			/* sources --top N */
	char *cfg_pin_root;		/* owned copy of kernel.pin_root from -c */
	struct ctl_tenant_name *names;	/* owned, from -c */
	size_t nnames;
	const char *config_path;	/* the config that was read, or NULL */
	const char *keys_file;		/* key: --keys-file */
	const char *label;		/* key create: --label */
	const char *admin;		/* routes: --admin HOST:PORT */
	char *cfg_admin_listen;		/* owned copy of admin.listen from -c */
	char *cfg_admin_token;		/* owned copy of admin.token from -c */
	uint64_t limits[CTL_NLIMITS];	/* quota set: the values given */
	uint32_t limits_set;		/* quota set: bit (1 << enum ctl_limit) per option */
};

/* cfgfile.c: load `path` and keep its pin root and tenant names in ctl.
 * Returns an exit code; prints the config error on failure. */
int ctl_config_read(struct ctl *ctl, const char *path);
void ctl_config_free(struct ctl *ctl);
/* The names' slots in the pinned tenant array at ctl->pin_root. */
void ctl_resolve_tenant_ids(struct ctl *ctl);
/* The configured name of a tenant id, or NULL. */
const char *ctl_tenant_name(const struct ctl *ctl, unsigned id);
/* The configured name, "anonymous" for tenant 0, else "#<id>" in tmp. */
const char *ctl_tenant_label(const struct ctl *ctl, unsigned id, char *tmp, size_t cap);
/* The config's tenant of that name, or NULL. */
const struct ctl_tenant_name *ctl_tenant_by_name(const struct ctl *ctl, const char *name);
/* TENANT on the command line: a name from the config, else a tenant id
 * 0..SLUICE_MAX_TENANTS-1.  Returns an exit code; says why on failure. */
int ctl_tenant_arg(const struct ctl *ctl, const char *arg, unsigned *id);
/* A CIDR or bare address as 16 bytes (IPv4 mapped) and a prefix length
 * 0..128.  0, -EINVAL (also for host bits set) or -ENOMEM. */
int ctl_parse_cidr(const char *text, uint8_t bytes[16], uint32_t *prefixlen);

/* main.c */
void ctl_usage(const char *cmd, bool to_stderr);

/* The commands: each takes its positional arguments after the command
 * name and returns an exit code. */
int cmd_status(const struct ctl *ctl, int argc, char **argv);
int cmd_counters(const struct ctl *ctl, int argc, char **argv);
int cmd_tenants(const struct ctl *ctl, int argc, char **argv);
int cmd_deny(const struct ctl *ctl, int argc, char **argv);
int cmd_sources(const struct ctl *ctl, int argc, char **argv);
int cmd_key(const struct ctl *ctl, int argc, char **argv);
int cmd_quota(const struct ctl *ctl, int argc, char **argv);
int cmd_detach(const struct ctl *ctl, int argc, char **argv);
int cmd_diff(const struct ctl *ctl, int argc, char **argv);
/* cmd_routes.c: the running daemon's routes, over its admin listener. */
int cmd_routes(const struct ctl *ctl, int argc, char **argv);
int cmd_route(const struct ctl *ctl, int argc, char **argv);
int cmd_reload(const struct ctl *ctl, int argc, char **argv);

#endif
