/* SPDX-License-Identifier: Apache-2.0 */
/* sluicectl deny add|del|list: the sluice_deny LPM trie. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "maps.h"
#include "render.h"

struct deny_row {
	struct sluice_lpm_key key;
	struct sluice_deny_entry entry;
};

static const char *reason_name(__u32 reason)
{
	switch (reason) {
	case SLUICE_DENY_CONFIG: return "config";
	case SLUICE_DENY_CLI: return "cli";
	default: return "unknown";
	}
}

static int parse_key(const char *text, struct sluice_lpm_key *key)
{
	int err;

	memset(key, 0, sizeof(*key));
	err = ctl_parse_cidr(text, key->bytes, &key->prefixlen);
	if (err == 0)
		return CTL_OK;
	if (err != -EINVAL) {
		fprintf(stderr, "sluicectl: %s: %s\n", text, strerror(-err));
		return CTL_FAILED;
	}
	fprintf(stderr, "sluicectl: '%s' is not a network: want an address or a CIDR "
		"like 10.0.0.0/8 or 2001:db8::/32, with no host bits set\n", text);
	return CTL_FAILED;
}

/* Report what add or del did, in the output format asked for. */
static int report(const struct ctl *ctl, const char *verb, const struct sluice_lpm_key *key)
{
	char cidr[CTL_ADDR_LEN];
	struct jw w;

	cidr_format(key, cidr);
	if (!ctl->json) {
		printf("%s %s\n", verb, cidr);
		return CTL_OK;
	}
	jw_init(&w);
	jw_open(&w, NULL);
	jw_str(&w, verb, cidr);
	jw_close(&w);
	return jw_finish(&w, stdout) ? CTL_FAILED : CTL_OK;
}

static int deny_add(const struct ctl *ctl, int fd, const struct sluice_lpm_key *key,
		    const char *text)
{
	struct sluice_deny_entry entry = {
		.reason = SLUICE_DENY_CLI,
		.added_ns = ctl_now_ns(),
	};

	if (bpf_map_update_elem(fd, key, &entry, BPF_NOEXIST) == 0)
		return report(ctl, "added", key);
	if (errno == EEXIST)
		fprintf(stderr, "sluicectl: %s: already in the deny list\n", text);
	else if (errno == ENOSPC || errno == E2BIG)
		fprintf(stderr, "sluicectl: the deny list is full (%d entries)\n", SLUICE_MAX_NETS);
	else
		fprintf(stderr, "sluicectl: deny add %s: %s\n", text, strerror(errno));
	return CTL_FAILED;
}

static int deny_del(const struct ctl *ctl, int fd, const struct sluice_lpm_key *key,
		    const char *text)
{
	if (bpf_map_delete_elem(fd, key) == 0)
		return report(ctl, "deleted", key);
	if (errno == ENOENT)
		fprintf(stderr, "sluicectl: %s: not in the deny list\n", text);
	else
		fprintf(stderr, "sluicectl: deny del %s: %s\n", text, strerror(errno));
	return CTL_FAILED;
}

/* By address bytes (IPv4-mapped networks sort together), then prefix length. */
static int row_cmp(const void *a, const void *b)
{
	const struct sluice_lpm_key *x = &((const struct deny_row *)a)->key;
	const struct sluice_lpm_key *y = &((const struct deny_row *)b)->key;
	int c = memcmp(x->bytes, y->bytes, sizeof(x->bytes));

	if (c)
		return c > 0 ? 1 : -1;
	return (x->prefixlen > y->prefixlen) - (x->prefixlen < y->prefixlen);
}

/* Every entry of the trie, sorted.  0 or a negative errno. */
static int collect(int fd, struct deny_row **out, size_t *n)
{
	struct sluice_lpm_key prev, next;
	struct deny_row *rows = calloc(SLUICE_MAX_NETS, sizeof(*rows));
	size_t count = 0;
	int err = 0;

	if (!rows)
		return -ENOMEM;
	while (count < SLUICE_MAX_NETS &&
	       bpf_map_get_next_key(fd, count ? &prev : NULL, &next) == 0) {
		/* An entry deleted between the two calls is skipped. */
		if (bpf_map_lookup_elem(fd, &next, &rows[count].entry) == 0)
			rows[count++].key = next;
		prev = next;
	}
	if (errno != ENOENT && count < SLUICE_MAX_NETS)
		err = -errno;
	qsort(rows, count, sizeof(*rows), row_cmp);
	*out = rows;
	*n = count;
	return err;
}

static int list_json(const struct deny_row *rows, size_t n, uint64_t now)
{
	char cidr[CTL_ADDR_LEN];
	struct jw w;

	jw_init(&w);
	jw_open(&w, NULL);
	jw_open_array(&w, "deny");
	for (size_t i = 0; i < n; i++) {
		cidr_format(&rows[i].key, cidr);
		jw_open(&w, NULL);
		jw_str(&w, "cidr", cidr);
		jw_str(&w, "reason", reason_name(rows[i].entry.reason));
		jw_u64(&w, "added_ago_ms", now > rows[i].entry.added_ns ?
		       (now - rows[i].entry.added_ns) / 1000000 : 0);
		jw_close(&w);
	}
	jw_close_array(&w);
	jw_close(&w);
	return jw_finish(&w, stdout);
}

static int list_table(const struct deny_row *rows, size_t n, uint64_t now)
{
	static const char *const heads[] = { "NETWORK", "REASON", "ADDED" };
	char cidr[CTL_ADDR_LEN], ago[32];
	struct table t;

	table_init(&t, 3, heads, 0);
	for (size_t i = 0; i < n; i++) {
		cidr_format(&rows[i].key, cidr);
		format_duration(now > rows[i].entry.added_ns ? now - rows[i].entry.added_ns : 0,
				ago, sizeof(ago));
		table_cell(&t, "%s", cidr);
		table_cell(&t, "%s", reason_name(rows[i].entry.reason));
		table_cell(&t, "%s ago", ago);
	}
	return table_finish(&t, stdout);
}

static int deny_list(const struct ctl *ctl, int fd)
{
	struct deny_row *rows = NULL;
	size_t n = 0;
	int err = collect(fd, &rows, &n);

	if (!err)
		err = ctl->json ? list_json(rows, n, ctl_now_ns()) : list_table(rows, n, ctl_now_ns());
	free(rows);
	if (err) {
		fprintf(stderr, "sluicectl: deny list: %s\n", strerror(-err));
		return CTL_FAILED;
	}
	return CTL_OK;
}

/* The subcommand and its argument count, checked before any map is opened. */
static int deny_args(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "list") == 0)
		return CTL_OK;
	if (argc == 3 && (strcmp(argv[1], "add") == 0 || strcmp(argv[1], "del") == 0))
		return CTL_OK;
	ctl_usage("deny", true);
	return CTL_USAGE;
}

int cmd_deny(const struct ctl *ctl, int argc, char **argv)
{
	struct sluice_lpm_key key;
	int fd, rc = deny_args(argc, argv);

	if (rc == CTL_OK && argc == 3)
		rc = parse_key(argv[2], &key);
	if (rc == CTL_OK)
		rc = maps_open_checked(ctl, SLUICE_MAP_DENY, &fd);
	if (rc != CTL_OK)
		return rc;
	if (argc == 2)
		rc = deny_list(ctl, fd);
	else if (strcmp(argv[1], "add") == 0)
		rc = deny_add(ctl, fd, &key, argv[2]);
	else
		rc = deny_del(ctl, fd, &key, argv[2]);
	close(fd);
	return rc;
}
