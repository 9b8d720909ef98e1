/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The kernel half as the daemon drives it: load the BPF programs from their
 * skeletons, open (or create) the pinned maps, write the config into them,
 * attach XDP, sockops and reuseport steering, and give typed access to what
 * the kernel shares (socket tags, counters, tenant state).
 *
 * Everything is optional at run time: without privileges or BPF support
 * kern_open() fails with a reason and the daemon runs userspace-only.
 * Attachments are BPF links owned by this process, so they go away with
 * it (clean exit or crash); the maps stay pinned, and so do counters and
 * quotas across restarts.  With kernel.pin_links the XDP and sockops links
 * are pinned too: they outlive the process, and the next sluiced swaps its
 * programs into them (bpf_link_update), so a rolling restart has no moment
 * without admission.  `sluicectl detach` removes them.
 */
#ifndef SLUICE_KERN_KERN_H
#define SLUICE_KERN_KERN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config/config.h"
#include "sluice_maps.h"

struct kern;

struct kern_why {
	char text[256];
};

/*
 * Load the programs and open the maps under cfg->kernel.pin_root.
 * 0: loaded.  -EPERM/-ENOSYS/-EOPNOTSUPP...: the machine cannot (why says
 * what), run userspace-only.  -ESTALE: pinned maps of another layout
 * version and reset_maps is false: the daemon must refuse to start.
 */
int kern_open(const struct sluice_config *cfg, bool reset_maps, struct kern **out,
	      struct kern_why *why);

/* Write ports, limits, worker groups, tenants, tenant networks and the
 * config's deny list into the maps (CLI deny entries are kept).  Safe to
 * call again on reload: connections are not touched.  nworkers is the
 * number of workers running (a reloaded file may name another). */
int kern_apply_config(struct kern *k, const struct sluice_config *cfg, uint16_t port,
		      unsigned nworkers);

/* Move this process into the configured cgroup (created if missing) and
 * attach sockops there.  Call before creating listening sockets: accepted
 * sockets belong to the cgroup of the listener's creator. */
int kern_attach_sockops(struct kern *k, struct kern_why *why);

/* Put the workers' listening sockets in the reuseport array (index =
 * worker id) and attach the steering program to their group. */
int kern_attach_steer(struct kern *k, const int *listen_fds, unsigned n, struct kern_why *why);

/* Attach XDP to every configured interface (native, generic or auto). */
int kern_attach_xdp(struct kern *k, struct kern_why *why);

/* The tag sockops wrote on an accepted socket: 0, or -ENOENT. */
int kern_sock_tag(const struct kern *k, int fd, struct sluice_sock_tag *tag);

/* A request from this address showed tenant's credentials (or none:
 * LEARNED_NO_CREDENTIAL).  No identity: XDP only uses it to refuse a
 * blocked tenant's SYNs from an address it used alone (kern/learned.h). */
int kern_learn_source(struct kern *k, const struct sockaddr_storage *peer, uint32_t tenant);

/* Forget what was learned for tenant (it is gone), or for every tenant
 * (UINT32_MAX: keys were revoked). */
int kern_forget_tenant(struct kern *k, uint32_t tenant);

/* Every kernel counter, summed over CPUs. */
int kern_counters(const struct kern *k, uint64_t out[SLUICE_C_MAX]);

/* The shared tenant state array (SLUICE_MAX_TENANTS entries), mapped into
 * this process: workers update it with atomics, without a syscall. */
struct sluice_tenant_state *kern_tenants(const struct kern *k);
/* The daemon's own shared counters (TLS modes), mapped the same way. */
struct sluice_daemon_stats *kern_daemon_stats(const struct kern *k);
/* The per-key and per-tenant-model quota slots (SLUICE_MAX_QUOTA_SLOTS). */
struct sluice_quota_slot *kern_quota_slots(const struct kern *k);

/* One line saying what is on and off, for the start-up log. */
void kern_describe(const struct kern *k, char *out, size_t len);

/* Detach everything; the maps stay pinned. */
void kern_close(struct kern *k);

#endif
