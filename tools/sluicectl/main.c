/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sluicectl: inspect sluice's kernel maps and edit the deny list.
 *   sluicectl [--pin-root DIR | -c CONFIG] [--json] COMMAND [ARGS]
 * Options may come before or after the command.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "sluice_maps.h"

struct command {
	const char *name;
	const char *usage;	/* its lines of the command list */
	int (*run)(const struct ctl *ctl, int argc, char **argv);
};

static const struct command commands[] = {
	{ "status",
	  "  status              layout, daemon, XDP/sockops/steering attachments, maps\n",
	  cmd_status },
	{ "counters",
	  "  counters            every kernel decision counter, summed over CPUs\n",
	  cmd_counters },
	{ "tenants",
	  "  tenants             configured or active tenants: limits and counts\n",
	  cmd_tenants },
	{ "deny",
	  "  deny add CIDR       deny a network (IPv4 or IPv6) or a single address\n"
	  "  deny del CIDR       take it off the deny list\n"
	  "  deny list           the deny list, from the config and from sluicectl\n",
	  cmd_deny },
	{ "sources",
	  "  sources [--top N]   the most recently seen sources (default 20)\n",
	  cmd_sources },
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const char options_help[] =
	"options:\n"
	"  --pin-root DIR      the maps' pin root (default: kernel.pin_root from -c,\n"
	"                      else " SLUICE_PIN_ROOT ")\n"
	"  -c, --config FILE   sluiced's config: pin root and tenant names\n"
	"  --json              JSON output for scripts\n"
	"  --top N             sources: how many to show\n"
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
	      "Reads the maps sluiced pins under its pin root; no daemon needed.\n\n"
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

enum { OPT_PIN_ROOT = 256, OPT_JSON, OPT_TOP };

static const struct option long_options[] = {
	{ "pin-root", required_argument, NULL, OPT_PIN_ROOT },
	{ "config", required_argument, NULL, 'c' },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "top", required_argument, NULL, OPT_TOP },
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
	int opt, rc = CTL_OK;

	opterr = 1;
	while (rc == CTL_OK && (opt = getopt_long(argc, argv, "c:h", long_options, NULL)) != -1) {
		switch (opt) {
		case OPT_PIN_ROOT: cli->pin_root = optarg; break;
		case 'c': cli->config = optarg; break;
		case OPT_JSON: ctl->json = true; break;
		case OPT_TOP: rc = parse_top(optarg, &ctl->top); break;
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

static int run_command(struct ctl *ctl, const struct cli *cli, int argc, char **argv)
{
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
	if (cli->config && (rc = ctl_config_read(ctl, cli->config)) != CTL_OK)
		return rc;
	ctl->pin_root = cli->pin_root ? cli->pin_root
		      : ctl->cfg_pin_root ? ctl->cfg_pin_root : SLUICE_PIN_ROOT;
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
