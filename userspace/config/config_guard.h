/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The guardrails: section of the config: policies compiled into Hyperscan
 * databases at load time, so a pattern Hyperscan refuses is a config
 * error with file, line, key and Hyperscan's reason, and a reload that
 * carries one keeps the running config.
 *
 *   guardrails:
 *     default: NAME          # tenants without guardrails: of their own
 *     policies:
 *       - name: default
 *         detect: {email: mask, credit_card: block, ...}
 *         custom: [{name: x, regex: "...", action: block},
 *                  {name: y, words_file: /etc/sluice/y.txt, action: flag}]
 *         topics: {deny: [...], allow: [...], action: block}
 *         response: {enabled: true, hold_back: 64}
 */
#ifndef SLUICE_CONFIG_CONFIG_GUARD_H
#define SLUICE_CONFIG_CONFIG_GUARD_H

#include <stddef.h>

struct ynode;
struct config_error;
struct include_files;
struct guard_policy;

struct guardrails_cfg {
	struct guard_policy **policies;
	size_t npolicies;
	const struct guard_policy *default_policy;	/* guardrails.default, or NULL */
};

/* Load and compile guardrails: (v); files turns its lines into the
 * file:line they came from (include:).  0, or -EINVAL / -ENOMEM with
 * err->text "file:line: key: reason". */
int config_guard_load(const struct ynode *v, const struct include_files *files,
		      struct guardrails_cfg *out, struct config_error *err);
void config_guard_free(struct guardrails_cfg *g);
/* The policy named name, or NULL. */
const struct guard_policy *config_guard_find(const struct guardrails_cfg *g, const char *name);

#endif
