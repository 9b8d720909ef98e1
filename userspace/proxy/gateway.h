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
 * Apply a new, already validated config while serving: the kernel maps
 * (tenant networks, deny list, connection limits, worker groups), the
 * tenant names, and the TLS certificates for new connections.  Connections are not touched.  What cannot change without
 * a restart (listener, workers, backends, limits, timeouts, attach points)
 * is named in the log.  `next` must outlive the gateway.
 */
void gateway_reload(struct gateway *gw, struct sluice_config *next);
/* Copy the current tenant names (NULL for unused ids) into names. */
void gateway_tenant_names(struct gateway *gw, const char *names[SLUICE_MAX_TENANTS]);
/* Ask every worker to stop accepting and finish what is in flight. */
void gateway_drain(struct gateway *gw);
/* Wait for the workers; 0 when all ended cleanly. */
int gateway_wait(struct gateway *gw);
void gateway_free(struct gateway *gw);

#endif
