/* SPDX-License-Identifier: Apache-2.0 */
#include "config/yaml_tree.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* Nesting deeper than this is no configuration; it only costs stack. */
#define YTREE_MAX_DEPTH 64

struct yparse {
	yaml_parser_t parser;
	struct ytree_error *err;
};

static int set_error(struct ytree_error *err, size_t mark_line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int set_error(struct ytree_error *err, size_t mark_line, const char *fmt, ...)
{
	va_list ap;

	err->line = (unsigned)mark_line + 1;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* Turn libyaml's error state into ours.  Reader errors (bad encoding) carry
 * no problem mark, so the reader's current position stands in for it. */
static int parser_error(struct yparse *yp)
{
	const yaml_parser_t *p = &yp->parser;
	size_t line = p->error == YAML_READER_ERROR ? p->mark.line : p->problem_mark.line;

	if (p->error == YAML_MEMORY_ERROR) {
		set_error(yp->err, line, "out of memory");
		return -ENOMEM;
	}
	set_error(yp->err, line, "%s", p->problem ? p->problem : "cannot parse");
	return p->error == YAML_READER_ERROR ? -EIO : -EINVAL;
}

static int next_event(struct yparse *yp, yaml_event_t *ev)
{
	if (yaml_parser_parse(&yp->parser, ev))
		return 0;
	return parser_error(yp);
}

void ytree_free(struct ynode *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->nkids; i++)
		ytree_free(n->kids[i]);
	free(n->kids);
	free(n->value);
	free(n);
}

static struct ynode *node_new(enum ynode_type type, const yaml_event_t *ev)
{
	struct ynode *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->type = type;
	n->line = (unsigned)ev->start_mark.line + 1;
	return n;
}

int ynode_append(struct ynode *parent, struct ynode *kid)
{
	if (parent->nkids == parent->cap) {
		size_t cap = parent->cap ? parent->cap * 2 : 8;
		struct ynode **kids = realloc(parent->kids, cap * sizeof(*kids));

		if (!kids)
			return -ENOMEM;
		parent->kids = kids;
		parent->cap = cap;
	}
	parent->kids[parent->nkids++] = kid;
	return 0;
}

static int build_scalar(struct yparse *yp, const yaml_event_t *ev, struct ynode **out)
{
	const char *text = (const char *)ev->data.scalar.value;
	size_t len = ev->data.scalar.length;

	/* A "\0" escape would make every later strcmp() see a shorter string. */
	if (memchr(text, '\0', len))
		return set_error(yp->err, ev->start_mark.line, "NUL character in scalar");

	struct ynode *n = node_new(YNODE_SCALAR, ev);
	if (!n)
		return -ENOMEM;
	n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	n->value = strndup(text, len);
	if (!n->value) {
		free(n);
		return -ENOMEM;
	}
	*out = n;
	return 0;
}

static int build_node(struct yparse *yp, const yaml_event_t *ev, unsigned depth,
		      struct ynode **out);

/* Read the items (or key, value pairs) up to the matching end event. */
static int build_collection(struct yparse *yp, const yaml_event_t *start, unsigned depth,
			    struct ynode **out)
{
	bool seq = start->type == YAML_SEQUENCE_START_EVENT;
	yaml_event_type_t end = seq ? YAML_SEQUENCE_END_EVENT : YAML_MAPPING_END_EVENT;
	struct ynode *n = node_new(seq ? YNODE_SEQUENCE : YNODE_MAPPING, start);

	if (!n)
		return -ENOMEM;
	for (;;) {
		yaml_event_t ev;
		struct ynode *kid = NULL;
		int err = next_event(yp, &ev);

		if (!err && ev.type == end) {
			yaml_event_delete(&ev);
			break;
		}
		if (!err) {
			err = build_node(yp, &ev, depth + 1, &kid);
			yaml_event_delete(&ev);
		}
		if (!err) {
			err = ynode_append(n, kid);
			if (err)
				ytree_free(kid);
		}
		if (err) {
			ytree_free(n);
			return err;
		}
	}
	*out = n;
	return 0;
}

static int build_node(struct yparse *yp, const yaml_event_t *ev, unsigned depth,
		      struct ynode **out)
{
	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		return build_scalar(yp, ev, out);
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT:
		if (depth >= YTREE_MAX_DEPTH)
			return set_error(yp->err, ev->start_mark.line, "nested too deeply");
		return build_collection(yp, ev, depth, out);
	case YAML_ALIAS_EVENT:
		return set_error(yp->err, ev->start_mark.line, "aliases are not supported");
	default:
		return set_error(yp->err, ev->start_mark.line, "unexpected YAML event");
	}
}

/* Consume one event and insist on its type (the stream's fixed framing). */
static int expect_event(struct yparse *yp, yaml_event_type_t type, const char *what)
{
	yaml_event_t ev;
	int err = next_event(yp, &ev);

	if (err)
		return err;
	if (ev.type != type)
		err = set_error(yp->err, ev.start_mark.line, "%s", what);
	yaml_event_delete(&ev);
	return err;
}

/* STREAM-START, then either STREAM-END (nothing but comments) or one
 * DOCUMENT-START node DOCUMENT-END, then STREAM-END. */
static int parse_stream(struct yparse *yp, struct ynode **out)
{
	yaml_event_t ev;
	int err = expect_event(yp, YAML_STREAM_START_EVENT, "expected a stream");

	if (!err)
		err = next_event(yp, &ev);
	if (err)
		return err;
	if (ev.type == YAML_STREAM_END_EVENT) {
		yaml_event_delete(&ev);
		return 0;
	}
	yaml_event_delete(&ev);

	err = next_event(yp, &ev);
	if (err)
		return err;
	err = build_node(yp, &ev, 0, out);
	yaml_event_delete(&ev);
	if (!err)
		err = expect_event(yp, YAML_DOCUMENT_END_EVENT, "expected the end of the document");
	if (!err)
		err = expect_event(yp, YAML_STREAM_END_EVENT, "only one document is allowed");
	if (err) {
		ytree_free(*out);
		*out = NULL;
	}
	return err;
}

int ytree_load(FILE *fp, struct ynode **out, struct ytree_error *err)
{
	struct yparse yp = { .err = err };

	*out = NULL;
	if (!yaml_parser_initialize(&yp.parser)) {
		set_error(err, 0, "out of memory");
		return -ENOMEM;
	}
	yaml_parser_set_input_file(&yp.parser, fp);
	int rc = parse_stream(&yp, out);
	yaml_parser_delete(&yp.parser);
	return rc;
}

const struct ynode *ymap_get(const struct ynode *m, const char *key)
{
	for (size_t i = 0; i < ymap_len(m); i++) {
		const struct ynode *k = ymap_key(m, i);

		if (k->type == YNODE_SCALAR && strcmp(k->value, key) == 0)
			return ymap_value(m, i);
	}
	return NULL;
}

bool ynode_is_null(const struct ynode *n)
{
	if (n->type != YNODE_SCALAR || !n->plain)
		return false;
	return n->value[0] == '\0' || strcmp(n->value, "~") == 0 ||
	       strcmp(n->value, "null") == 0 || strcmp(n->value, "Null") == 0 ||
	       strcmp(n->value, "NULL") == 0;
}
