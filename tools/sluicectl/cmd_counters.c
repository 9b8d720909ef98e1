/* SPDX-License-Identifier: Apache-2.0 */
/* sluicectl counters: every enum sluice_counter, summed over CPUs. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define SLUICE_COUNTER_NAMES
#include "maps.h"
#include "render.h"

static int print_json(const uint64_t sums[SLUICE_C_MAX])
{
	struct jw w;

	jw_init(&w);
	jw_open(&w, NULL);
	jw_open(&w, "counters");
	for (int c = 0; c < SLUICE_C_MAX; c++)
		jw_u64(&w, sluice_counter_names[c], sums[c]);
	jw_close(&w);
	jw_close(&w);
	return jw_finish(&w, stdout);
}

static int print_table(const uint64_t sums[SLUICE_C_MAX])
{
	static const char *const heads[] = { "COUNTER", "VALUE" };
	struct table t;

	table_init(&t, 2, heads, 1u << 1);
	for (int c = 0; c < SLUICE_C_MAX; c++) {
		table_cell(&t, "%s", sluice_counter_names[c]);
		table_cell(&t, "%llu", (unsigned long long)sums[c]);
	}
	return table_finish(&t, stdout);
}

int cmd_counters(const struct ctl *ctl, int argc, char **argv)
{
	uint64_t sums[SLUICE_C_MAX];
	int fd, err, rc;

	(void)argv;
	if (argc != 1) {
		ctl_usage("counters", true);
		return CTL_USAGE;
	}
	rc = maps_open_checked(ctl, SLUICE_MAP_COUNTERS, &fd);
	if (rc != CTL_OK)
		return rc;
	err = maps_read_counters(fd, sums);
	close(fd);
	if (!err)
		err = ctl->json ? print_json(sums) : print_table(sums);
	if (err) {
		fprintf(stderr, "sluicectl: counters: %s\n", strerror(-err));
		return CTL_FAILED;
	}
	return CTL_OK;
}
