/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A YAML document as a small tree of nodes that remember their line.
 *
 * libyaml's own document API drops nothing we need, but walking events
 * into this tree keeps the schema code free of libyaml types and lets it
 * report "file:line" for every value it rejects.  Aliases are refused:
 * a configuration file has no use for them and they allow "billion
 * laughs" expansion.
 */
#ifndef SLUICE_CONFIG_YAML_TREE_H
#define SLUICE_CONFIG_YAML_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum ynode_type { YNODE_SCALAR, YNODE_SEQUENCE, YNODE_MAPPING };

struct ynode {
	enum ynode_type type;
	unsigned line;		/* 1-based */
	bool plain;		/* unquoted scalar: may spell null, a bool, a number */
	char *value;		/* scalar text, NUL-terminated, no embedded NUL */
	struct ynode **kids;	/* sequence: items; mapping: key, value, key, value... */
	size_t nkids;
	size_t cap;
};

struct ytree_error {
	unsigned line;		/* 1-based */
	char msg[256];
};

/* Parse one document from fp.  0 with *out set (NULL for an empty stream),
 * or -EINVAL / -ENOMEM / -EIO with err filled in. */
int ytree_load(FILE *fp, struct ynode **out, struct ytree_error *err);
void ytree_free(struct ynode *n);

/* A mapping's number of pairs and its i-th key and value. */
static inline size_t ymap_len(const struct ynode *m) { return m->nkids / 2; }
static inline const struct ynode *ymap_key(const struct ynode *m, size_t i)
{
	return m->kids[2 * i];
}
static inline const struct ynode *ymap_value(const struct ynode *m, size_t i)
{
	return m->kids[2 * i + 1];
}

/* The value of the first scalar key equal to key, or NULL. */
const struct ynode *ymap_get(const struct ynode *m, const char *key);

/* Add kid as parent's last child (the tree then owns it): 0 or -ENOMEM.
 * config/include.c grafts included files' nodes into the main tree. */
int ynode_append(struct ynode *parent, struct ynode *kid);

/* A plain "", "~" or "null": what YAML reads as no value at all. */
bool ynode_is_null(const struct ynode *n);

#endif
