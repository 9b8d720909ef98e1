/* SPDX-License-Identifier: Apache-2.0 */
/* sluicectl sources: the per-source buckets, most recently seen first. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "maps.h"
#include "render.h"

struct source_row {
	struct sluice_addr addr;
	struct sluice_bucket bucket;
};

static int newest_first(const void *a, const void *b)
{
	__u64 x = ((const struct source_row *)a)->bucket.last_ns;
	__u64 y = ((const struct source_row *)b)->bucket.last_ns;

	return (x < y) - (x > y);
}

/* Every bucket of the LRU hash.  0 or a negative errno. */
static int collect(int fd, struct source_row **out, size_t *n)
{
	struct sluice_addr prev, next;
	struct source_row *rows = calloc(SLUICE_MAX_SOURCES, sizeof(*rows));
	size_t count = 0;
	int err = 0;

	if (!rows)
		return -ENOMEM;
	while (count < SLUICE_MAX_SOURCES &&
	       bpf_map_get_next_key(fd, count ? &prev : NULL, &next) == 0) {
		/* LRU eviction can take an entry between the two calls. */
		if (bpf_map_lookup_elem(fd, &next, &rows[count].bucket) == 0)
			rows[count++].addr = next;
		prev = next;
	}
	if (errno != ENOENT && count < SLUICE_MAX_SOURCES)
		err = -errno;
	*out = rows;
	*n = count;
	return err;
}

static uint64_t age_ns(uint64_t now, const struct sluice_bucket *b)
{
	return now > b->last_ns ? now - b->last_ns : 0;
}

static int print_json(const struct source_row *rows, size_t n, size_t total, uint64_t now)
{
	char addr[CTL_ADDR_LEN];
	struct jw w;

	jw_init(&w);
	jw_open(&w, NULL);
	jw_u64(&w, "total", total);
	jw_open_array(&w, "sources");
	for (size_t i = 0; i < n; i++) {
		addr_format(rows[i].addr.bytes, addr);
		jw_open(&w, NULL);
		jw_str(&w, "source", addr);
		jw_u64(&w, "passed", rows[i].bucket.passed);
		jw_u64(&w, "dropped", rows[i].bucket.dropped);
		jw_u64(&w, "last_seen_ago_ms", age_ns(now, &rows[i].bucket) / 1000000);
		jw_close(&w);
	}
	jw_close_array(&w);
	jw_close(&w);
	return jw_finish(&w, stdout);
}

static int print_table(const struct source_row *rows, size_t n, size_t total, uint64_t now)
{
	static const char *const heads[] = { "SOURCE", "PASSED", "DROPPED", "LAST_SEEN" };
	char addr[CTL_ADDR_LEN], ago[32];
	struct table t;
	int err;

	table_init(&t, 4, heads, (1u << 1) | (1u << 2));
	for (size_t i = 0; i < n; i++) {
		addr_format(rows[i].addr.bytes, addr);
		format_duration(age_ns(now, &rows[i].bucket), ago, sizeof(ago));
		table_cell(&t, "%s", addr);
		table_cell(&t, "%llu", (unsigned long long)rows[i].bucket.passed);
		table_cell(&t, "%llu", (unsigned long long)rows[i].bucket.dropped);
		table_cell(&t, "%s ago", ago);
	}
	err = table_finish(&t, stdout);
	if (!err && n < total)
		printf("(%zu of %zu sources; --top N for more)\n", n, total);
	return err;
}

int cmd_sources(const struct ctl *ctl, int argc, char **argv)
{
	struct source_row *rows = NULL;
	size_t n = 0, shown;
	int fd, err, rc;

	(void)argv;
	if (argc != 1) {
		ctl_usage("sources", true);
		return CTL_USAGE;
	}
	rc = maps_open_checked(ctl, SLUICE_MAP_SRC_BUCKETS, &fd);
	if (rc != CTL_OK)
		return rc;
	err = collect(fd, &rows, &n);
	close(fd);
	if (!err) {
		qsort(rows, n, sizeof(*rows), newest_first);
		shown = n < ctl->top ? n : ctl->top;
		err = ctl->json ? print_json(rows, shown, n, ctl_now_ns())
				: print_table(rows, shown, n, ctl_now_ns());
	}
	free(rows);
	if (err) {
		fprintf(stderr, "sluicectl: sources: %s\n", strerror(-err));
		return CTL_FAILED;
	}
	return CTL_OK;
}
