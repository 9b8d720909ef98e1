/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Quota limits and usage as sluicectl shows them: the counters of a
 * window that has ended read as 0, as the daemon would count them.
 */
#ifndef SLUICECTL_USAGE_H
#define SLUICECTL_USAGE_H

#include <stdbool.h>
#include <stdint.h>

#include <linux/types.h>

#include "render.h"
#include "sluice_maps.h"

/* One scope's usage at one moment. */
struct usage_view {
	uint64_t requests_minute;
	uint64_t tokens_minute;
	uint64_t input_tokens_minute;
	uint64_t output_tokens_minute;
	uint64_t tokens_day;
	uint64_t tokens_month;
	uint64_t concurrent;		/* requests in flight */
	uint64_t reserved_tokens;	/* reservations of those requests */
	uint64_t denied;		/* requests refused by a limit, in total */
};

/* Unix time in milliseconds: the quota windows' clock. */
uint64_t ctl_now_ms(void);

/* Read a usage record written concurrently by the daemon (field by field,
 * with atomic loads) as of now_ms. */
void usage_view_of(const struct sluice_usage *u, uint64_t now_ms, struct usage_view *v);

/* A copy of limits written concurrently (atomic loads). */
void limits_copy(const struct sluice_limits *l, struct sluice_limits *out);

bool limits_any(const struct sluice_limits *l);
bool usage_any(const struct usage_view *v);

/* "limits": {...} and "usage": {...} members of the open JSON object;
 * a limit of 0 (unlimited) is null. */
void usage_json(struct jw *w, const struct sluice_limits *l, const struct usage_view *v);

/* "12/600", or "12/-" when the limit is 0 (unlimited). */
void usage_cell(struct table *t, uint64_t used, uint64_t limit);

#endif
