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

/* A tenant name from the config, by id. */
struct ctl_tenant_name {
	unsigned id;
	char *name;
};

/* What the command line and the optional config file say. */
struct ctl {
	const char *pin_root;		/* resolved: --pin-root, config, default */
	bool json;
	unsigned top;			/* sources --top N */
	char *cfg_pin_root;		/* owned copy of kernel.pin_root from -c */
	struct ctl_tenant_name *names;	/* owned, from -c */
	size_t nnames;
};

/* cfgfile.c: load `path` and keep its pin root and tenant names in ctl.
 * Returns an exit code; prints the config error on failure. */
int ctl_config_read(struct ctl *ctl, const char *path);
void ctl_config_free(struct ctl *ctl);
/* The configured name of a tenant id, or NULL. */
const char *ctl_tenant_name(const struct ctl *ctl, unsigned id);
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

#endif
