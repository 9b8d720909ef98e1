/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The config file half of sluicectl (-c): the pin root, tenant names and
 * keys files, and the CIDR parser shared with the config loader.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <limits.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "config/config.h"
#include "quota/tenants.h"
#include "ctl.h"

static int copy_names(struct ctl *ctl, const struct sluice_config *cfg)
{
	if (cfg->ntenants == 0)
		return 0;
	ctl->names = calloc(cfg->ntenants, sizeof(*ctl->names));
	if (!ctl->names)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->ntenants; i++) {
		ctl->names[i].id = cfg->tenants[i].id;
		ctl->nnames = i + 1;
		ctl->names[i].name = strdup(cfg->tenants[i].name ? cfg->tenants[i].name : "");
		if (!ctl->names[i].name)
			return -ENOMEM;
		if (cfg->tenants[i].keys_file &&
		    !(ctl->names[i].keys_file = strdup(cfg->tenants[i].keys_file)))
			return -ENOMEM;
	}
	return 0;
}

/* Where routes and route set reach the daemon: its admin listener. */
static int copy_admin(struct ctl *ctl, const struct sluice_config *cfg)
{
	if (!cfg->admin.enabled)
		return 0;
	if (!(ctl->cfg_admin_listen = strdup(cfg->admin.listen)))
		return -ENOMEM;
	if (cfg->admin.token && !(ctl->cfg_admin_token = strdup(cfg->admin.token)))
		return -ENOMEM;
	return 0;
}

int ctl_config_read(struct ctl *ctl, const char *path)
{
	struct sluice_config *cfg = NULL;
	struct config_error cerr = { { 0 } };
	int err = config_load(path, &cfg, &cerr);

	if (err) {
		fprintf(stderr, "sluicectl: %s\n", cerr.text[0] ? cerr.text : strerror(-err));
		return CTL_FAILED;
	}
	if (cfg->kernel.pin_root && cfg->kernel.pin_root[0]) {
		ctl->cfg_pin_root = strdup(cfg->kernel.pin_root);
		err = ctl->cfg_pin_root ? 0 : -ENOMEM;
	}
	if (!err)
		err = copy_names(ctl, cfg);
	if (!err)
		err = copy_admin(ctl, cfg);
	config_free(cfg);
	if (!err)
		ctl->config_path = path;
	if (err) {
		fprintf(stderr, "sluicectl: %s: %s\n", path, strerror(-err));
		return CTL_FAILED;
	}
	return CTL_OK;
}

void ctl_config_free(struct ctl *ctl)
{
	for (size_t i = 0; i < ctl->nnames; i++) {
		free(ctl->names[i].name);
		free(ctl->names[i].keys_file);
	}
	free(ctl->names);
	free(ctl->cfg_pin_root);
	free(ctl->cfg_admin_listen);
	free(ctl->cfg_admin_token);
	ctl->cfg_admin_listen = ctl->cfg_admin_token = NULL;
	ctl->names = NULL;
	ctl->nnames = 0;
	ctl->cfg_pin_root = NULL;
}

/*
 * A tenant's slot in the maps follows its name (quota/tenants.c), not its
 * place in the file: look each name up in the pinned tenant array.  A
 * name the daemon has not given a slot yet (or no maps) gets UINT_MAX,
 * which matches no id.
 */
void ctl_resolve_tenant_ids(struct ctl *ctl)
{
	char path[PATH_MAX];
	int fd = -1;

	for (size_t i = 0; i < ctl->nnames; i++)
		ctl->names[i].id = UINT_MAX;
	if (!ctl->nnames ||
	    snprintf(path, sizeof(path), "%s/%s", ctl->pin_root, SLUICE_MAP_TENANTS) >=
		    (int)sizeof(path) ||
	    (fd = bpf_obj_get(path)) < 0)
		return;
	for (__u32 id = 1; id < SLUICE_MAX_TENANTS; id++) {
		struct sluice_tenant_state st;

		if (bpf_map_lookup_elem(fd, &id, &st) || !st.name_hash)
			continue;
		for (size_t i = 0; i < ctl->nnames; i++)
			if (ctl->names[i].id == UINT_MAX && tenants_slot_is(&st, ctl->names[i].name))
				ctl->names[i].id = id;
	}
	close(fd);
}

const char *ctl_tenant_name(const struct ctl *ctl, unsigned id)
{
	for (size_t i = 0; i < ctl->nnames; i++)
		if (ctl->names[i].id == id)
			return ctl->names[i].name;
	return NULL;
}

const char *ctl_tenant_label(const struct ctl *ctl, unsigned id, char *tmp, size_t cap)
{
	const char *name = ctl_tenant_name(ctl, id);

	if (name)
		return name;
	if (id == SLUICE_TENANT_ANON)
		return "anonymous";
	snprintf(tmp, cap, "#%u", id);
	return tmp;
}

const struct ctl_tenant_name *ctl_tenant_by_name(const struct ctl *ctl, const char *name)
{
	for (size_t i = 0; i < ctl->nnames; i++)
		if (strcmp(ctl->names[i].name, name) == 0)
			return &ctl->names[i];
	return NULL;
}

/* A tenant id as typed: decimal digits only, below SLUICE_MAX_TENANTS. */
static bool parse_tenant_id(const char *s, unsigned *id)
{
	unsigned long v = 0;

	if (!s[0] || strspn(s, "0123456789") != strlen(s) || strlen(s) > 6)
		return false;
	v = strtoul(s, NULL, 10);
	if (v >= SLUICE_MAX_TENANTS)
		return false;
	*id = (unsigned)v;
	return true;
}

int ctl_tenant_arg(const struct ctl *ctl, const char *arg, unsigned *id)
{
	const struct ctl_tenant_name *t = ctl_tenant_by_name(ctl, arg);

	if (t) {
		*id = t->id;
		return CTL_OK;
	}
	if (parse_tenant_id(arg, id))
		return CTL_OK;
	if (ctl->config_path)
		fprintf(stderr, "sluicectl: no tenant '%s' in %s (and not a tenant id 0..%d)\n",
			arg, ctl->config_path, SLUICE_MAX_TENANTS - 1);
	else
		fprintf(stderr, "sluicectl: tenant '%s': not a tenant id 0..%d, and no config "
			"to find the name in (give -c CONFIG or set SLUICE_CONFIG)\n",
			arg, SLUICE_MAX_TENANTS - 1);
	return CTL_FAILED;
}

int ctl_parse_cidr(const char *text, uint8_t bytes[16], uint32_t *prefixlen)
{
	struct cidr_cfg cidr = { .text = NULL };
	int err = config_parse_cidr(text, &cidr);

	if (err)
		return err;
	memcpy(bytes, cidr.bytes, sizeof(cidr.bytes));
	*prefixlen = cidr.prefixlen;
	free(cidr.text);	/* config_parse_cidr keeps a copy of the text */
	return 0;
}
