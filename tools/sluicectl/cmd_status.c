/* SPDX-License-Identifier: Apache-2.0 */
/* sluicectl status: what the meta map says was attached, checked against
 * the kernel where it can be (the daemon's pid, XDP on each interface). */
#include <errno.h>
#include <linux/if_link.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#define SLUICE_TLS_MODE_NAMES
#include "maps.h"
#include "render.h"

struct xdp_state {
	char ifname[sizeof(((struct sluice_meta *)0)->xdp_ifname[0]) + 1];
	__u32 ifindex;
	__u32 mode;		/* enum sluice_xdp_mode, from meta */
	int query_err;		/* bpf_xdp_query: 0 or a negative errno */
	__u32 prog_id;		/* what the kernel has attached, 0: nothing */
};

struct status {
	struct sluice_meta meta;
	char cgroup[sizeof(((struct sluice_meta *)0)->cgroup) + 1];
	bool daemon_alive;
	struct xdp_state xdp[SLUICE_MAX_XDP_IFACES];
	size_t nxdp;
	struct map_probe maps[CTL_NMAPS];
	struct sluice_daemon_stats daemon;	/* TLS modes; zero when absent */
	bool have_daemon;
};

static const char *xdp_mode_name(__u32 mode)
{
	switch (mode) {
	case SLUICE_XDP_NATIVE: return "native";
	case SLUICE_XDP_GENERIC: return "generic";
	case SLUICE_XDP_OFF: return "off";
	default: return "unknown";
	}
}

/* The program id the kernel reports in the mode the daemon asked for. */
static void query_xdp(struct xdp_state *x)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, opts);
	int err = bpf_xdp_query((int)x->ifindex, 0, &opts);

	x->query_err = err < 0 ? err : 0;
	if (err < 0)
		return;
	if (x->mode == SLUICE_XDP_NATIVE)
		x->prog_id = opts.drv_prog_id ? opts.drv_prog_id : opts.prog_id;
	else if (x->mode == SLUICE_XDP_GENERIC)
		x->prog_id = opts.skb_prog_id ? opts.skb_prog_id : opts.prog_id;
	else
		x->prog_id = opts.prog_id;
}

static void gather_xdp(struct status *st)
{
	const struct sluice_meta *m = &st->meta;

	for (size_t i = 0; i < SLUICE_MAX_XDP_IFACES; i++) {
		struct xdp_state *x = &st->xdp[st->nxdp];

		if (m->xdp_ifindex[i] == 0)
			continue;
		/* The name field need not be NUL-terminated when it fills 16 bytes. */
		memcpy(x->ifname, m->xdp_ifname[i], sizeof(m->xdp_ifname[i]));
		x->ifindex = m->xdp_ifindex[i];
		x->mode = m->xdp_mode[i];
		query_xdp(x);
		st->nxdp++;
	}
}

/* The daemon's own counters (TLS connection modes), when its map is there
 * in this layout (the probes said so: no error printed when it is not). */
static void gather_daemon(const struct ctl *ctl, struct status *st)
{
	__u32 key = 0;
	int fd;

	for (size_t i = 0; i < CTL_NMAPS; i++)
		if (strcmp(ctl_map_specs[i].name, SLUICE_MAP_DAEMON) == 0 &&
		    !(st->maps[i].present && st->maps[i].layout_ok))
			return;
	if (maps_open(ctl, SLUICE_MAP_DAEMON, &fd) != CTL_OK)
		return;
	st->have_daemon = bpf_map_lookup_elem(fd, &key, &st->daemon) == 0;
	close(fd);
}

static void gather(const struct ctl *ctl, struct status *st)
{
	pid_t pid = (pid_t)st->meta.daemon_pid;

	/* EPERM still means the process exists. */
	st->daemon_alive = pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
	memcpy(st->cgroup, st->meta.cgroup, sizeof(st->meta.cgroup));
	gather_xdp(st);
	for (size_t i = 0; i < CTL_NMAPS; i++)
		maps_probe(ctl, &ctl_map_specs[i], &st->maps[i]);
	gather_daemon(ctl, st);
}

static void json_xdp(struct jw *w, const struct status *st)
{
	jw_open_array(w, "xdp");
	for (size_t i = 0; i < st->nxdp; i++) {
		const struct xdp_state *x = &st->xdp[i];

		jw_open(w, NULL);
		jw_str(w, "ifname", x->ifname);
		jw_u64(w, "ifindex", x->ifindex);
		jw_str(w, "mode", xdp_mode_name(x->mode));
		if (x->query_err)
			jw_null(w, "attached");		/* could not ask the kernel */
		else
			jw_bool(w, "attached", x->prog_id != 0);
		jw_u64(w, "prog_id", x->prog_id);
		jw_close(w);
	}
	jw_close_array(w);
}

static void json_maps(struct jw *w, const struct status *st)
{
	jw_open_array(w, "maps");
	for (size_t i = 0; i < CTL_NMAPS; i++) {
		const struct map_probe *p = &st->maps[i];

		jw_open(w, NULL);
		jw_str(w, "name", ctl_map_specs[i].name);
		jw_str(w, "type", libbpf_bpf_map_type_str(ctl_map_specs[i].type));
		jw_bool(w, "present", p->present);
		jw_bool(w, "layout_ok", p->layout_ok);
		if (p->entries >= 0)
			jw_i64(w, "entries", p->entries);
		else
			jw_null(w, "entries");
		jw_u64(w, "max_entries", p->max_entries);
		jw_close(w);
	}
	jw_close_array(w);
}

static int print_json(const struct ctl *ctl, const struct status *st)
{
	const struct sluice_meta *m = &st->meta;
	struct jw w;

	jw_init(&w);
	jw_open(&w, NULL);
	jw_str(&w, "pin_root", ctl->pin_root);
	jw_u64(&w, "layout_version", m->layout_version);
	jw_open(&w, "daemon");
	jw_u64(&w, "pid", m->daemon_pid);
	jw_bool(&w, "alive", st->daemon_alive);
	jw_u64(&w, "started_ns", m->started_ns);
	jw_close(&w);
	json_xdp(&w, st);
	jw_open(&w, "sockops");
	jw_str(&w, "cgroup", st->cgroup);
	jw_bool(&w, "attached", m->sockops_attached);
	jw_close(&w);
	jw_open(&w, "steering");
	jw_bool(&w, "attached", m->steer_attached);
	jw_u64(&w, "workers", m->nworkers);
	jw_close(&w);
	jw_open(&w, "tls");
	jw_bool(&w, "enabled", st->daemon.tls_enabled);
	jw_bool(&w, "ktls_available", st->daemon.ktls_available);
	jw_open(&w, "connections");
	for (unsigned i = 0; i < SLUICE_TLS_MODES; i++)
		jw_u64(&w, sluice_tls_mode_names[i], st->daemon.tls_conns[i]);
	jw_close(&w);
	jw_close(&w);
	json_maps(&w, st);
	jw_close(&w);
	return jw_finish(&w, stdout);
}

static void print_daemon(const struct status *st)
{
	const struct sluice_meta *m = &st->meta;
	char ago[32];

	if (m->daemon_pid == 0) {
		printf("daemon:          none attached\n");
		return;
	}
	printf("daemon:          pid %u (%s)", m->daemon_pid,
	       st->daemon_alive ? "running" : "not running: stale maps");
	if (m->started_ns && m->started_ns <= ctl_now_ns()) {
		format_duration(ctl_now_ns() - m->started_ns, ago, sizeof(ago));
		printf(", attached %s ago", ago);
	}
	putchar('\n');
}

static void print_xdp(const struct status *st)
{
	if (st->nxdp == 0)
		printf("xdp:             off\n");
	for (size_t i = 0; i < st->nxdp; i++) {
		const struct xdp_state *x = &st->xdp[i];

		printf("xdp:             %s (ifindex %u) %s, ", x->ifname, x->ifindex,
		       xdp_mode_name(x->mode));
		if (x->query_err)
			printf("kernel not asked: %s\n", strerror(-x->query_err));
		else if (x->prog_id)
			printf("attached (prog %u)\n", x->prog_id);
		else
			printf("NOT attached in the kernel\n");
	}
}

static int print_maps(const struct status *st)
{
	static const char *const heads[] = { "MAP", "TYPE", "STATE", "ENTRIES", "MAX" };
	struct table t;

	table_init(&t, 5, heads, (1u << 3) | (1u << 4));
	for (size_t i = 0; i < CTL_NMAPS; i++) {
		const struct map_probe *p = &st->maps[i];

		table_cell(&t, "%s", ctl_map_specs[i].name);
		table_cell(&t, "%s", libbpf_bpf_map_type_str(ctl_map_specs[i].type));
		table_cell(&t, "%s", !p->present ? "missing" : p->layout_ok ? "ok" : "other layout");
		if (p->entries >= 0)
			table_cell(&t, "%ld", p->entries);
		else
			table_cell(&t, "-");
		table_cell(&t, "%u", p->max_entries);
	}
	return table_finish(&t, stdout);
}

static void print_tls(const struct status *st)
{
	const struct sluice_daemon_stats *d = &st->daemon;

	if (!d->tls_enabled) {
		printf("tls:             off\n");
		return;
	}
	printf("tls:             on, kernel TLS %s; connections:",
	       d->ktls_available ? "available" : "unavailable");
	for (unsigned i = 0; i < SLUICE_TLS_MODES; i++)
		printf(" %s %llu", sluice_tls_mode_names[i], (unsigned long long)d->tls_conns[i]);
	putchar('\n');
}

static int print_human(const struct ctl *ctl, const struct status *st)
{
	const struct sluice_meta *m = &st->meta;

	printf("pin root:        %s\n", ctl->pin_root);
	printf("layout version:  %u\n", m->layout_version);
	print_daemon(st);
	print_xdp(st);
	if (st->cgroup[0])
		printf("sockops:         %s, %s\n", st->cgroup,
		       m->sockops_attached ? "attached" : "not attached");
	else
		printf("sockops:         off\n");
	printf("steering:        %s, %u workers\n",
	       m->steer_attached ? "attached" : "not attached", m->nworkers);
	print_tls(st);
	putchar('\n');
	return print_maps(st);
}

int cmd_status(const struct ctl *ctl, int argc, char **argv)
{
	struct status st;
	int rc, err;

	(void)argv;
	if (argc != 1) {
		ctl_usage("status", true);
		return CTL_USAGE;
	}
	memset(&st, 0, sizeof(st));
	rc = maps_read_meta(ctl, &st.meta);
	if (rc != CTL_OK)
		return rc;
	gather(ctl, &st);
	err = ctl->json ? print_json(ctl, &st) : print_human(ctl, &st);
	if (err) {
		fprintf(stderr, "sluicectl: status: %s\n", strerror(-err));
		return CTL_FAILED;
	}
	return CTL_OK;
}
