/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The config file half of sluicectl (-c): the pin root and tenant names,
 * and the CIDR parser shared with the config loader.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
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
		ctl->names[i].name = strdup(cfg->tenants[i].name ? cfg->tenants[i].name : "");
		if (!ctl->names[i].name)
			return -ENOMEM;
		ctl->nnames = i + 1;
	}
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
	config_free(cfg);
	if (err) {
		fprintf(stderr, "sluicectl: %s: %s\n", path, strerror(-err));
		return CTL_FAILED;
	}
	return CTL_OK;
}

void ctl_config_free(struct ctl *ctl)
{
	for (size_t i = 0; i < ctl->nnames; i++)
		free(ctl->names[i].name);
	free(ctl->names);
	free(ctl->cfg_pin_root);
	ctl->names = NULL;
	ctl->nnames = 0;
	ctl->cfg_pin_root = NULL;
}

const char *ctl_tenant_name(const struct ctl *ctl, unsigned id)
{
	for (size_t i = 0; i < ctl->nnames; i++)
		if (ctl->names[i].id == id)
			return ctl->names[i].name;
	return NULL;
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
