/* SPDX-License-Identifier: Apache-2.0 */
#include "config/include.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int say(char *err, size_t len, const char *file, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static int say(char *err, size_t len, const char *file, unsigned line, const char *fmt, ...)
{
	int n = snprintf(err, len, "%s:%u: include: ", file, line);
	if (n >= 0 && (size_t)n < len) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err + n, len - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

const char *include_where(const struct include_files *files, unsigned stamped, unsigned *line)
{
	unsigned idx = stamped >> INCLUDE_LINE_SHIFT;
	*line = stamped & INCLUDE_LINE_MASK;
	return idx < files->n ? files->names[idx] : files->names[0];
}

void include_files_free(struct include_files *files)
{
	for (unsigned i = 1; i < files->n; i++)
		free((char *)files->names[i]);
	files->n = files->n ? 1 : 0;
}

/* Every node of an included tree remembers its file (see include.h). */
static void stamp(struct ynode *n, unsigned idx)
{
	unsigned line = n->line > INCLUDE_LINE_MASK ? INCLUDE_LINE_MASK : n->line;
	n->line = (idx << INCLUDE_LINE_SHIFT) | line;
	for (size_t i = 0; i < n->nkids; i++)
		stamp(n->kids[i], idx);
}

/* The index in root->kids of the value of key, or -1. */
static long value_index(const struct ynode *root, const char *key)
{
	for (size_t i = 0; i < ymap_len(root); i++) {
		const struct ynode *k = ymap_key(root, i);
		if (k->type == YNODE_SCALAR && strcmp(k->value, key) == 0)
			return (long)(2 * i + 1);
	}
	return -1;
}

/*
 * Move the pairs of an included mapping into root.  Lists concatenate;
 * another key twice is an error at its second place.  inc's kids are
 * moved out (set to NULL) as they go, so freeing inc frees the rest.
 */
static int merge(struct ynode *root, struct ynode *inc, const struct include_files *files,
		 char *err, size_t errlen)
{
	for (size_t i = 0; i < ymap_len(inc); i++) {
		struct ynode *k = inc->kids[2 * i], *v = inc->kids[2 * i + 1];
		unsigned line, first_line;
		const char *file = include_where(files, k->line, &line);
		if (k->type != YNODE_SCALAR)
			return say(err, errlen, file, line, "a key must be a plain word");
		if (strcmp(k->value, "include") == 0)
			return say(err, errlen, file, line, "only the main file may include files");
		long at = value_index(root, k->value);
		if (at < 0) {
			if (ynode_append(root, k) || ynode_append(root, v))
				return -ENOMEM;
			inc->kids[2 * i] = inc->kids[2 * i + 1] = NULL;
			continue;
		}
		struct ynode *have = root->kids[at];
		if (have->type != YNODE_SEQUENCE || v->type != YNODE_SEQUENCE) {
			const char *first = include_where(files, root->kids[at - 1]->line, &first_line);
			snprintf(err, errlen, "%s:%u: %s: already set in %s:%u (only lists such as "
				 "tenants and backends may be spread over several files)",
				 file, line, k->value, first, first_line);
			return -EINVAL;
		}
		for (size_t j = 0; j < v->nkids; j++) {
			if (ynode_append(have, v->kids[j]))
				return -ENOMEM;
			v->kids[j] = NULL;
		}
		v->nkids = 0;
	}
	return 0;
}

static void free_moved(struct ynode *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->nkids; i++)
		if (n->kids[i])
			ytree_free(n->kids[i]);
	n->nkids = 0;
	ytree_free(n);
}

/* Read one file into root; item is the include: entry that named it, so
 * a file that cannot be had is reported where it was asked for. */
static int load_one(struct ynode *root, const char *path, const struct ynode *item,
		    struct include_files *files, char *err, size_t errlen)
{
	unsigned idx = files->n;
	if (idx >= INCLUDE_MAX_FILES) {
		say(err, errlen, files->names[0], item->line, "more than %d files",
		    INCLUDE_MAX_FILES - 1);
		return -E2BIG;
	}
	for (unsigned i = 0; i < files->n; i++)
		if (strcmp(files->names[i], path) == 0)
			return say(err, errlen, files->names[0], item->line, "%s: included twice",
				   path);
	/* Regular files only, opened without blocking: a glob that meets a
	 * FIFO or a device must not hang the daemon (or a reload). */
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	int e = fd < 0 ? errno : fstat(fd, &st) ? errno : S_ISDIR(st.st_mode) ? EISDIR
		: !S_ISREG(st.st_mode) ? EINVAL : 0;
	FILE *fp = e ? NULL : fdopen(fd, "r");
	if (!fp) {
		e = e ? e : errno;
		if (fd >= 0)
			close(fd);
		say(err, errlen, files->names[0], item->line, "%s: cannot open: %s", path,
		    e == EINVAL ? "not a regular file" : strerror(e));
		return -e;
	}
	if (!(files->names[idx] = strdup(path))) {
		fclose(fp);
		return -ENOMEM;
	}
	files->n++;
	struct ynode *inc = NULL;
	struct ytree_error yerr;
	int rc = ytree_load(fp, &inc, &yerr);
	fclose(fp);
	if (rc) {
		snprintf(err, errlen, "%s:%u: yaml: %s", path, yerr.line, yerr.msg);
		return rc;
	}
	if (!inc || ynode_is_null(inc)) {
		free_moved(inc);
		return 0;	/* an empty file adds nothing */
	}
	stamp(inc, idx);
	if (inc->type != YNODE_MAPPING) {
		free_moved(inc);
		snprintf(err, errlen, "%s:1: the file must be a mapping of top-level keys", path);
		return -EINVAL;
	}
	rc = merge(root, inc, files, err, errlen);
	free_moved(inc);
	return rc;
}

/* A relative pattern is relative to the main file's directory. */
static void resolve(char *out, size_t len, const char *main_file, const char *pattern)
{
	const char *slash = strrchr(main_file, '/');
	if (pattern[0] == '/' || !slash)
		snprintf(out, len, "%s", pattern);
	else
		snprintf(out, len, "%.*s/%s", (int)(slash - main_file), main_file, pattern);
}

static int expand_pattern(struct ynode *root, const struct ynode *item,
			  struct include_files *files, char *err, size_t errlen)
{
	const char *main_file = files->names[0];
	if (item->type != YNODE_SCALAR || !item->value[0])
		return say(err, errlen, main_file, item->line, "wants a path or a glob");
	char path[4096];
	resolve(path, sizeof(path), main_file, item->value);
	bool is_glob = strpbrk(item->value, "*?[") != NULL;
	if (!is_glob)
		return load_one(root, path, item, files, err, errlen);
	glob_t g;
	int rc = glob(path, GLOB_ERR, NULL, &g);
	if (rc == GLOB_NOMATCH)
		return 0;	/* an empty conf.d is fine */
	if (rc) {
		globfree(&g);
		return say(err, errlen, main_file, item->line, "cannot expand %s", path);
	}
	for (size_t i = 0; !rc && i < g.gl_pathc; i++)
		rc = load_one(root, g.gl_pathv[i], item, files, err, errlen);
	globfree(&g);
	return rc;
}

int include_expand(struct ynode *root, struct include_files *files, char *err, size_t errlen)
{
	if (!root || root->type != YNODE_MAPPING)
		return 0;	/* the schema says what is wrong */
	long at = value_index(root, "include");
	if (at < 0)
		return 0;
	const struct ynode *v = root->kids[at];
	if (v->type == YNODE_SCALAR)
		return expand_pattern(root, v, files, err, errlen);
	if (v->type != YNODE_SEQUENCE)
		return say(err, errlen, files->names[0], v->line, "wants a path, a glob or a list");
	for (size_t i = 0; i < v->nkids; i++) {
		int rc = expand_pattern(root, v->kids[i], files, err, errlen);
		if (rc)
			return rc;
	}
	return 0;
}
