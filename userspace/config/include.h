/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Policy as code: `include:` in the main config pulls more YAML files in,
 * so teams keep their own tenants, backends or limits in their own files:
 *
 *     include: ["conf.d/<star>.yaml", "tenants/acme.yaml"]   (<star>: a glob *)
 *
 * Paths are relative to the main file's directory; globs expand in sorted
 * order and may match nothing (an empty conf.d), a plain path must exist.
 * Each included file is a mapping of top-level keys.  A list key
 * (tenants, backends, ...) set in several files is concatenated; any other
 * key may be set in one file only.  Included files include nothing more.
 *
 * Errors keep naming the right file: every node of an included file
 * carries its file's index in the high bits of ynode.line, which
 * include_where() turns back into "file:line".
 */
#ifndef SLUICE_CONFIG_INCLUDE_H
#define SLUICE_CONFIG_INCLUDE_H

#include <stddef.h>

#include "config/yaml_tree.h"

#define INCLUDE_MAX_FILES	255
#define INCLUDE_LINE_SHIFT	24
#define INCLUDE_LINE_MASK	((1u << INCLUDE_LINE_SHIFT) - 1)

/* The files of one config: [0] is the main file (not owned). */
struct include_files {
	const char *names[INCLUDE_MAX_FILES + 1];
	unsigned n;
};

/*
 * Expand root's include: key in place (the key itself stays, for the
 * schema to skip).  0, or a negative errno with "file:line: include: why"
 * (or the included file's own YAML error) in err[errlen].
 */
int include_expand(struct ynode *root, struct include_files *files, char *err, size_t errlen);

/* The file and line a (possibly stamped) ynode.line stands for. */
const char *include_where(const struct include_files *files, unsigned stamped, unsigned *line);

/* Free the names include_expand() added. */
void include_files_free(struct include_files *files);

#endif
