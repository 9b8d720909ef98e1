/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The endpoint table (endpoint.h).  Proxied endpoints run the stages and
 * go to a backend; the others are answered by the gateway itself.
 */
#include <stddef.h>

#include "proxy/endpoint.h"
#include "proxy/proxy.h"

static void reply_healthz(struct exchange *x)
{
	conn_reply(x->c, 200, "application/json", "{\"status\":\"ok\"}", 15);
}

static void reply_readyz(struct exchange *x)
{
	if (x->c->w->draining)
		conn_reply(x->c, 503, "application/json", "{\"status\":\"draining\"}", 21);
	else
		conn_reply(x->c, 200, "application/json", "{\"status\":\"ready\"}", 18);
}

static const struct endpoint endpoints[] = {
	{ API_CHAT,         EP_MAIN | EP_IDENTITY, exchange_proxy },
	{ API_COMPLETIONS,  EP_MAIN | EP_IDENTITY, exchange_proxy },
	{ API_EMBEDDINGS,   EP_MAIN | EP_IDENTITY, exchange_proxy },
	{ API_MODELS,       EP_MAIN | EP_IDENTITY, exchange_reply_models },
	{ API_HEALTHZ,      EP_MAIN | EP_ADMIN | EP_PROBE, reply_healthz },
	{ API_READYZ,       EP_MAIN | EP_ADMIN | EP_PROBE, reply_readyz },
	{ API_METRICS,      EP_ADMIN, admin_reply_metrics },
	{ API_ADMIN_RELOAD, EP_ADMIN, admin_reply_reload },
	{ API_ADMIN_ROUTES, EP_ADMIN, admin_reply_routes },
	{ API_ADMIN_ROUTE,  EP_ADMIN, admin_set_route },
};

const struct endpoint *endpoint_of(enum api_endpoint ep)
{
	for (size_t i = 0; i < sizeof(endpoints) / sizeof(endpoints[0]); i++)
		if (endpoints[i].ep == ep)
			return &endpoints[i];
	return NULL;
}

bool endpoint_served(const struct endpoint *e, bool admin)
{
	return e && (e->flags & (admin ? EP_ADMIN : EP_MAIN));
}
