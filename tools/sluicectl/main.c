/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sluicectl: inspect sluice's kernel maps, edit the deny list, set and
 * reset quotas, and manage API keys.
 *   sluicectl [--pin-root DIR | -c CONFIG] [--json] COMMAND [ARGS]
 * Options may come before or after the command.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "sluice_maps.h"

#define DEFAULT_CONFIG "/etc/sluice/sluice.yaml"

struct command {
	const char *name;
	const char *usage;	/* its lines of the command list */
	int (*run)(const struct ctl *ctl, int argc, char **argv);
	bool tenant_config;	/* finds tenants by name or the admin listener:
				 * reads the default config too */
};

static const struct command commands[] = {
	{ "status",
	  "  status              layout, daemon, XDP/sockops/steering attachments, maps\n",
	  cmd_status, false },
	{ "counters",
	  "  counters            every kernel decision counter, summed over CPUs\n",
	  cmd_counters, false },
	{ "tenants",
	  "  tenants             configured or active tenants: limits, counts, quota usage\n",
	  cmd_tenants, false },
	{ "deny",
	  "  deny add CIDR       deny a network (IPv4 or IPv6) or a single address\n"
	  "  deny del CIDR       take it off the deny list\n"
	  "  deny list           the deny list, from the config and from sluicectl\n",
	  cmd_deny, false },
	{ "sources",
	  "  sources [--top N]   the most recently seen sources (default 20)\n",
	  cmd_sources, false },
	{ "quota",
	  "  quota show TENANT   a tenant's limits and usage, with its API keys and models\n"
	  "  quota set TENANT [--requests-per-minute N] [--tokens-per-minute N]\n"
	  "            [--input-tokens-per-minute N] [--output-tokens-per-minute N]\n"
	  "            [--concurrent N] [--tokens-per-day N] [--tokens-per-month N]\n"
	  "                      change a tenant's limits now (0 = unlimited); a reload\n"
	  "                      or restart of sluiced writes the config's limits again\n"
	  "  quota reset TENANT  forget a tenant's usage (its keys' and models' too) and\n"
	  "                      unblock it\n",
	  cmd_quota, true },
	{ "diff",
	  "  diff OLD NEW        what reloading config OLD as NEW would change (tenants,\n"
	  "                      keys files, limits, backends), each marked reload or restart\n",
	  cmd_diff, false },
	{ "detach",
	  "  detach              remove the XDP and sockops links pinned under the pin root\n"
	  "                      (kernel.pin_links), for an uninstall; the maps stay\n",
	  cmd_detach, false },
	{ "key",
	  "  key create TENANT [--label TEXT]\n"
	  "                      a new API key, printed once on stdout (its id on stderr)\n"
	  "  key revoke TENANT ID_OR_KEY...\n"
	  "                      remove keys from the tenant's keys file\n"
	  "  key list TENANT     the tenant's keys: id, created, label\n",
	  cmd_key, true },
	{ "routes",
	  "  routes              the running daemon's routes: arms, live weights,\n"
	  "                      requests, failures, fallbacks, breakers (admin listener)\n",
	  cmd_routes, true },
	{ "route",
	  "  route set ROUTE BACKEND=WEIGHT...\n"
	  "                      change arms' live weights now, on every worker (0 drains\n"
	  "                      an arm); they hold until the next reload or restart\n",
	  cmd_route, true },
	{ "reload",
	  "  reload              make the daemon reload its config file and print the\n"
	  "                      outcome: what changed, or file:line: key: reason (exit 1)\n",
	  cmd_reload, true },
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const char options_help[] =
	"options:\n"
	"  --pin-root DIR      the maps' pin root (default: kernel.pin_root from -c,\n"
	"                      else " SLUICE_PIN_ROOT ")\n"
	"  -c, --config FILE   sluiced's config: pin root, tenant names, keys files\n"
	"                      (quota and key: default $SLUICE_CONFIG, else\n"
	"                      " DEFAULT_CONFIG " when it exists)\n"
	"  --json              JSON output for scripts\n"
	"  --top N             sources: how many to show\n"
	"  --keys-file PATH    key: this keys file instead of the tenant's keys_file\n"
	"                      (the config is then not needed)\n"
	"  --label TEXT        key create: a note kept with the key\n"
	"  --admin HOST:PORT   routes, route, reload: the admin listener (default: admin.listen\n"
	"                      from the config; token: $SLUICE_ADMIN_TOKEN, else\n"
	"                      admin.token)\n"
	"  -h, --help          this text\n"
	"\n"
	"exit codes: 0 ok, 1 operation failed, 2 usage, 3 no maps or another layout,\n"
	"            4 permission denied (needs root or CAP_BPF)\n";

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* Usage of one command, or of all when cmd is NULL or unknown. */
void ctl_usage(const char *cmd, bool to_stderr)
{
	const struct command *c = cmd ? find_command(cmd) : NULL;
	FILE *out = to_stderr ? stderr : stdout;

	if (c) {
		fprintf(out, "usage: sluicectl [options] %s ...\n\n%s\n%s", c->name, c->usage,
			options_help);
		return;
	}
	fputs("usage: sluicectl [options] COMMAND [ARGS]\n\n"
	      "Reads the maps sluiced pins under its pin root; no daemon needed\n"
	      "(except routes, route and reload, which ask the daemon's admin listener).\n\n"
	      "commands:\n", out);
	for (size_t i = 0; i < NCOMMANDS; i++)
		fputs(commands[i].usage, out);
	fprintf(out, "  help [COMMAND]      this text, or one command's\n\n%s", options_help);
}

static int parse_top(const char *s, unsigned *top)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v == 0 || v > UINT_MAX || s[0] == '-') {
		fprintf(stderr, "sluicectl: --top wants a positive number, not '%s'\n", s);
		return CTL_USAGE;
	}
	*top = (unsigned)v;
	return CTL_OK;
}

/* A limit of quota set: a count, 0 or "unlimited" for none.  concurrent
 * is stored in 32 bits. */
static int parse_limit(const char *name, const char *s, enum ctl_limit which, struct ctl *ctl)
{
	uint64_t max = which == CTL_LIM_CONCURRENT ? UINT32_MAX : UINT64_MAX;
	unsigned long long v = 0;
	char *end;

	if (strcmp(s, "unlimited") != 0) {
		errno = 0;
		v = strtoull(s, &end, 10);
		if (errno || end == s || *end || s[0] == '-' || s[0] == '+' || v > max) {
			fprintf(stderr, "sluicectl: --%s wants a count (0 or unlimited for none), "
				"not '%s'\n", name, s);
			return CTL_USAGE;
		}
	}
	ctl->limits[which] = v;
	ctl->limits_set |= 1u << which;
	return CTL_OK;
}

enum {
	OPT_PIN_ROOT = 256, OPT_JSON, OPT_TOP, OPT_KEYS_FILE, OPT_LABEL, OPT_ADMIN,
	OPT_LIMIT,	/* OPT_LIMIT + enum ctl_limit */
};

static const struct option long_options[] = {
	{ "pin-root", required_argument, NULL, OPT_PIN_ROOT },
	{ "config", required_argument, NULL, 'c' },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "top", required_argument, NULL, OPT_TOP },
	{ "keys-file", required_argument, NULL, OPT_KEYS_FILE },
	{ "label", required_argument, NULL, OPT_LABEL },
	{ "admin", required_argument, NULL, OPT_ADMIN },
	{ "requests-per-minute", required_argument, NULL, OPT_LIMIT + CTL_LIM_REQUESTS_PER_MINUTE },
	{ "tokens-per-minute", required_argument, NULL, OPT_LIMIT + CTL_LIM_TOKENS_PER_MINUTE },
	{ "input-tokens-per-minute", required_argument, NULL,
	  OPT_LIMIT + CTL_LIM_INPUT_TOKENS_PER_MINUTE },
	{ "output-tokens-per-minute", required_argument, NULL,
	  OPT_LIMIT + CTL_LIM_OUTPUT_TOKENS_PER_MINUTE },
	{ "concurrent", required_argument, NULL, OPT_LIMIT + CTL_LIM_CONCURRENT },
	{ "tokens-per-day", required_argument, NULL, OPT_LIMIT + CTL_LIM_TOKENS_PER_DAY },
	{ "tokens-per-month", required_argument, NULL, OPT_LIMIT + CTL_LIM_TOKENS_PER_MONTH },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

struct cli {
	const char *pin_root;	/* --pin-root */
	const char *config;	/* -c */
	bool help;
};

/* Options anywhere: getopt_long moves the positionals to argv[optind..]. */
static int parse_options(int argc, char **argv, struct ctl *ctl, struct cli *cli)
{
	int opt, index = 0, rc = CTL_OK;

	opterr = 1;
	while (rc == CTL_OK &&
	       (opt = getopt_long(argc, argv, "c:h", long_options, &index)) != -1) {
		if (opt >= OPT_LIMIT && opt < OPT_LIMIT + CTL_NLIMITS) {
			rc = parse_limit(long_options[index].name, optarg,
					 (enum ctl_limit)(opt - OPT_LIMIT), ctl);
			continue;
		}
		switch (opt) {
		case OPT_PIN_ROOT: cli->pin_root = optarg; break;
		case 'c': cli->config = optarg; break;
		case OPT_JSON: ctl->json = true; break;
		case OPT_TOP: rc = parse_top(optarg, &ctl->top); break;
		case OPT_KEYS_FILE: ctl->keys_file = optarg; break;
		case OPT_LABEL: ctl->label = optarg; break;
		case OPT_ADMIN: ctl->admin = optarg; break;
		case 'h': cli->help = true; break;
		default: rc = CTL_USAGE; break;	/* getopt said what */
		}
	}
	return rc;
}

/* `help [CMD]` and --help print to stdout and succeed. */
static int run_help(int argc, char **argv)
{
	if (argc > 1 && !find_command(argv[1])) {
		fprintf(stderr, "sluicectl: no command '%s'\n", argv[1]);
		ctl_usage(NULL, true);
		return CTL_USAGE;
	}
	ctl_usage(argc > 1 ? argv[1] : NULL, false);
	return CTL_OK;
}

/*
 * The config a command reads: -c, else for the commands that find tenants
 * by name $SLUICE_CONFIG, else the default one when it exists (but not for
 * a key command given --keys-file, which then needs no config at all).
 */
static const char *config_to_read(const struct ctl *ctl, const struct cli *cli,
				  const struct command *c)
{
	const char *env = getenv("SLUICE_CONFIG");

	if (cli->config)
		return cli->config;
	if (!c->tenant_config)
		return NULL;
	if (env && env[0])
		return env;
	if (c->run == cmd_key && ctl->keys_file)
		return NULL;
	return access(DEFAULT_CONFIG, F_OK) == 0 ? DEFAULT_CONFIG : NULL;
}

static int run_command(struct ctl *ctl, const struct cli *cli, int argc, char **argv)
{
	const char *config;
	const struct command *c = find_command(argv[0]);
	int rc;

	if (!c) {
		fprintf(stderr, "sluicectl: no command '%s'\n", argv[0]);
		ctl_usage(NULL, true);
		return CTL_USAGE;
	}
	if (cli->help) {
		ctl_usage(c->name, false);
		return CTL_OK;
	}
	config = config_to_read(ctl, cli, c);
	if (config && (rc = ctl_config_read(ctl, config)) != CTL_OK)
		return rc;
	ctl->pin_root = cli->pin_root ? cli->pin_root
		      : ctl->cfg_pin_root ? ctl->cfg_pin_root : SLUICE_PIN_ROOT;
	ctl_resolve_tenant_ids(ctl);
	return c->run(ctl, argc, argv);
}

int main(int argc, char **argv)
{
	struct ctl ctl = { .top = 20 };
	struct cli cli = { NULL, NULL, false };
	int rc = parse_options(argc, argv, &ctl, &cli);

	if (rc != CTL_OK) {
		ctl_usage(NULL, true);
		return rc;
	}
	argc -= optind;
	argv += optind;
	if (argc == 0 && cli.help) {
		ctl_usage(NULL, false);
		return CTL_OK;
	}
	if (argc == 0) {
		ctl_usage(NULL, true);
		return CTL_USAGE;
	}
	if (strcmp(argv[0], "help") == 0)
		return run_help(argc, argv);
	rc = run_command(&ctl, &cli, argc, argv);
	ctl_config_free(&ctl);
	return rc;
}
