/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sluicectl key create|revoke|list: a tenant's keys file (auth/apikey.h),
 * the one named by tenants[].keys_file in sluiced's config or given with
 * --keys-file.  No maps involved: sluiced notices the changed file itself.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/apikey.h"
#include "ctl.h"
#include "render.h"

/* The config's tenant named arg, or of the id arg. */
static const struct ctl_tenant_name *find_tenant(const struct ctl *ctl, const char *arg)
{
	const struct ctl_tenant_name *t = ctl_tenant_by_name(ctl, arg);
	char *end;
	unsigned long id;

	if (t || !arg[0] || strspn(arg, "0123456789") != strlen(arg))
		return t;
	id = strtoul(arg, &end, 10);
	for (size_t i = 0; i < ctl->nnames; i++)
		if (ctl->names[i].id == id)
			return &ctl->names[i];
	return NULL;
}

/* The keys file of TENANT: --keys-file, else the config's keys_file.
 * Returns an exit code; says why on failure. */
static int keys_file_of(const struct ctl *ctl, const char *tenant, const char **path)
{
	const struct ctl_tenant_name *t = ctl->config_path ? find_tenant(ctl, tenant) : NULL;

	if (ctl->config_path && !t) {
		fprintf(stderr, "sluicectl: no tenant '%s' in %s\n", tenant, ctl->config_path);
		return CTL_FAILED;
	}
	if (ctl->keys_file) {
		*path = ctl->keys_file;
		return CTL_OK;
	}
	if (!ctl->config_path) {
		fprintf(stderr, "sluicectl: no config to find tenant %s's keys file in: give "
			"-c CONFIG, set SLUICE_CONFIG, or give --keys-file PATH\n", tenant);
		return CTL_USAGE;
	}
	if (!t->keys_file) {
		fprintf(stderr, "sluicectl: tenant %s has no keys_file in %s\n", t->name,
			ctl->config_path);
		return CTL_FAILED;
	}
	*path = t->keys_file;
	return CTL_OK;
}

/* A file system error as an exit code, with its message. */
static int file_error(const char *path, int err)
{
	fprintf(stderr, "sluicectl: %s: %s\n", path, strerror(-err));
	return err == -EACCES || err == -EPERM ? CTL_NO_PERM : CTL_FAILED;
}

/* ---- create ---- */

static int key_create(const struct ctl *ctl, const char *tenant, const char *path)
{
	char key[APIKEY_LEN + 1], id[APIKEY_ID_LEN + 1];
	int err = apikey_create(path, ctl->label, key, sizeof(key), id), rc = CTL_OK;
	struct jw w;

	if (err == -EINVAL) {
		fprintf(stderr, "sluicectl: --label: printable text of at most %d bytes, "
			"no control characters\n", APIKEY_LABEL_MAX);
		return CTL_USAGE;
	}
	if (err)
		return file_error(path, err);
	if (!ctl->json) {
		printf("%s\n", key);
		fprintf(stderr, "sluicectl: created key %s for tenant %s in %s; the key above is "
			"shown only this once\n", id, tenant, path);
	} else {
		jw_init(&w);
		jw_open(&w, NULL);
		jw_str(&w, "tenant", tenant);
		jw_str(&w, "id", id);
		jw_str(&w, "key", key);
		jw_str(&w, "keys_file", path);
		jw_str(&w, "label", ctl->label && ctl->label[0] ? ctl->label : NULL);
		jw_close(&w);
		rc = jw_finish(&w, stdout) ? CTL_FAILED : CTL_OK;
	}
	explicit_bzero(key, sizeof(key));
	return rc;
}

/* ---- revoke ---- */

/* A revoke argument that may be a (mistyped) key is never echoed. */
static const char *printable_arg(const char *arg)
{
	return strncmp(arg, "sk-", 3) == 0 ? "(a key)" : arg;
}

static int revoke_one(const char *path, const char *arg, char id[APIKEY_ID_LEN + 1])
{
	int err = apikey_revoke(path, arg);

	if (apikey_key_id(arg, strlen(arg), id) != 0)
		snprintf(id, APIKEY_ID_LEN + 1, "%.*s", APIKEY_ID_LEN, arg);
	if (err == 0)
		return CTL_OK;
	if (err == -ENOENT)
		fprintf(stderr, "sluicectl: no key %s in %s\n", id, path);
	else if (err == -EINVAL)
		fprintf(stderr, "sluicectl: %s is neither a key id (12 hex digits) nor a "
			"sluice key\n", printable_arg(arg));
	else
		return file_error(path, err);
	return CTL_FAILED;
}

static int key_revoke(const struct ctl *ctl, const char *tenant, const char *path, int n,
		      char **args)
{
	int rc = CTL_OK;
	struct jw w;

	if (ctl->json) {
		jw_init(&w);
		jw_open(&w, NULL);
		jw_str(&w, "tenant", tenant);
		jw_open_array(&w, "revoked");
	}
	for (int i = 0; i < n; i++) {
		char id[APIKEY_ID_LEN + 1];
		int one = revoke_one(path, args[i], id);

		if (one != CTL_OK)
			rc = rc == CTL_OK ? one : rc;	/* the first failure's code */
		else if (ctl->json)
			jw_str(&w, NULL, id);
		else
			printf("revoked %s\n", id);
	}
	if (ctl->json) {
		jw_close_array(&w);
		jw_close(&w);
		if (jw_finish(&w, stdout) && rc == CTL_OK)
			rc = CTL_FAILED;
	}
	return rc;
}

/* ---- list ---- */

static int list_json(const char *tenant, const char *path, const struct apikey_info *keys,
		     size_t n)
{
	struct jw w;

	jw_init(&w);
	jw_open(&w, NULL);
	jw_str(&w, "tenant", tenant);
	jw_str(&w, "keys_file", path);
	jw_open_array(&w, "keys");
	for (size_t i = 0; i < n; i++) {
		jw_open(&w, NULL);
		jw_str(&w, "id", keys[i].id);
		jw_str(&w, "created", keys[i].created);
		jw_str(&w, "label", keys[i].label[0] ? keys[i].label : NULL);
		jw_close(&w);
	}
	jw_close_array(&w);
	jw_close(&w);
	return jw_finish(&w, stdout);
}

static int list_table(const struct apikey_info *keys, size_t n)
{
	static const char *const heads[] = { "ID", "CREATED", "LABEL" };
	struct table t;

	table_init(&t, 3, heads, 0);
	for (size_t i = 0; i < n; i++) {
		table_cell(&t, "%s", keys[i].id);
		table_cell(&t, "%s", keys[i].created);
		table_cell(&t, "%s", keys[i].label);
	}
	return table_finish(&t, stdout);
}

static int key_list(const struct ctl *ctl, const char *tenant, const char *path)
{
	struct apikey_info *keys = NULL;
	char why[512] = "";
	size_t n = 0;
	int err = apikey_list(path, &keys, &n, why, sizeof(why));

	if (err) {
		fprintf(stderr, "sluicectl: %s\n", why[0] ? why : strerror(-err));
		return err == -EACCES || err == -EPERM ? CTL_NO_PERM : CTL_FAILED;
	}
	err = ctl->json ? list_json(tenant, path, keys, n) : list_table(keys, n);
	apikey_list_free(keys, n);
	if (err) {
		fprintf(stderr, "sluicectl: key list: %s\n", strerror(-err));
		return CTL_FAILED;
	}
	return CTL_OK;
}

/* ---- the command ---- */

/* The subcommand, its argument count and its options. */
static int key_args(const struct ctl *ctl, int argc, char **argv)
{
	bool create = argc == 3 && strcmp(argv[1], "create") == 0;
	bool revoke = argc >= 4 && strcmp(argv[1], "revoke") == 0;
	bool list = argc == 3 && strcmp(argv[1], "list") == 0;

	if ((create || revoke || list) && !ctl->limits_set && (create || !ctl->label))
		return CTL_OK;
	ctl_usage("key", true);
	return CTL_USAGE;
}

int cmd_key(const struct ctl *ctl, int argc, char **argv)
{
	const char *path = NULL;
	int rc = key_args(ctl, argc, argv);

	if (rc == CTL_OK)
		rc = keys_file_of(ctl, argv[2], &path);
	if (rc != CTL_OK)
		return rc;
	if (strcmp(argv[1], "create") == 0)
		return key_create(ctl, argv[2], path);
	if (strcmp(argv[1], "revoke") == 0)
		return key_revoke(ctl, argv[2], path, argc - 3, argv + 3);
	return key_list(ctl, argv[2], path);
}
