/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The endpoint table: for each endpoint (api/openai.h maps method and
 * path to it), which listener serves it, whether the caller must be
 * identified, and what answers it.  A new endpoint is its path row in
 * api/openai.c and its row here; nothing else lists endpoints.
 */
#ifndef SLUICE_PROXY_ENDPOINT_H
#define SLUICE_PROXY_ENDPOINT_H

#include <stdbool.h>

#include "api/openai.h"

struct exchange;

enum endpoint_flag {
	EP_MAIN = 1u << 0,	/* served on the API listener */
	EP_ADMIN = 1u << 1,	/* served on the admin listener (token needed) */
	EP_PROBE = 1u << 2,	/* on the admin listener without the token */
	EP_IDENTITY = 1u << 3,	/* the head stages run: who is calling */
};

struct endpoint {
	enum api_endpoint ep;
	unsigned flags;
	void (*handle)(struct exchange *x);	/* head and body are in */
};

/* The row of ep, or NULL (API_NONE). */
const struct endpoint *endpoint_of(enum api_endpoint ep);
/* Does this listener serve ep? */
bool endpoint_served(const struct endpoint *e, bool admin);

#endif
