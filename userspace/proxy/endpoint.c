/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The endpoint table (endpoint.h).  Proxied endpoints run the stages and
 * go to a backend; the others are answered by the gateway itself.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/json.h"

#include "proxy/endpoint.h"
#include "proxy/proxy.h"

static void reply_healthz(struct exchange *x)
{
	conn_reply(x->c, 200, "application/json", "{\"status\":\"ok\"}", 15);
}

/* Not ready while draining, or while some route has no target that may
 * take a request (its backends down by their checks or their breakers
 * open on every worker): a load balancer then sends traffic elsewhere. */
static void reply_readyz(struct exchange *x)
{
	struct gateway *gw = x->c->w->gw;
	const char *unready = NULL;
	char body[400];
	if (x->c->w->draining) {
		conn_reply(x->c, 503, "application/json", "{\"status\":\"draining\"}", 21);
		return;
	}
	/* A probe, not the request path: the small array is allocated. */
	struct route_cursor **cursors = calloc(gw->nworkers, sizeof(*cursors));
	if (!cursors) {
		conn_reply_error(x->c, 500, "server_error", "out_of_memory", "out of memory");
		return;
	}
	for (unsigned i = 0; i < gw->nworkers; i++)
		cursors[i] = &x->snap->w[i].cursor;
	bool ready = route_ready(&x->snap->routes, cursors, gw->nworkers, x->c->w->loop.now,
				 &unready);
	free(cursors);
	if (ready) {
		conn_reply(x->c, 200, "application/json", "{\"status\":\"ready\"}", 18);
		return;
	}
	char name[300];
	int len = json_escape(name, sizeof(name), unready, strlen(unready));
	/* json_escape writes no NUL: the name goes by its length */
	int blen = len > 0 ? snprintf(body, sizeof(body),
				      "{\"status\":\"no_healthy_target\",\"route\":%.*s}", len, name)
			   : snprintf(body, sizeof(body),
				      "{\"status\":\"no_healthy_target\",\"route\":null}");
	conn_reply(x->c, 503, "application/json", body, (size_t)blen);
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
