/* SPDX-License-Identifier: Apache-2.0 */
/* The data plane as the daemon's entry point sees it. */
#ifndef SLUICE_PROXY_GATEWAY_H
#define SLUICE_PROXY_GATEWAY_H

#include <stdbool.h>

#include "config/config.h"
#include "sluice_maps.h"

struct gateway;

/* Build routes and TLS contexts, bind every worker's listening socket.
 * Nothing serves yet.  0 or -errno (already logged). */
int gateway_new(struct sluice_config *cfg, bool reset_maps, struct gateway **out);
/* Start the worker threads. */
int gateway_start(struct gateway *gw);
/*
 * SIGHUP: load path again and apply it while serving: backends, routes,
 * timeouts, limits, TLS client settings, tenants, keys, the admin token,
 * the deny list and the server certificates.  New requests use the new
 * snapshot; requests in flight finish on theirs (snap.h).  A bad file
 * keeps the running config.  What needs a restart (listen, workers,
 * admin.listen, attach points, Redis) is named in the log and kept.  The
 * outcome also answers POST /admin/reload?wait=1.
 */
void gateway_reload(struct gateway *gw, const char *path);
/* Copy the current tenant names (NULL for unused ids) into names. */
void gateway_tenant_names(struct gateway *gw, const char *names[SLUICE_MAX_TENANTS]);
/* Ask every worker to stop accepting and finish what is in flight. */
void gateway_drain(struct gateway *gw);
/* Wait for the workers; 0 when all ended cleanly. */
int gateway_wait(struct gateway *gw);
void gateway_free(struct gateway *gw);

#endif
