/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Loading guardrails: policies.  Each policy is read into a spec, checked
 * key by key (file:line: dotted.key: reason, like the rest of the config),
 * then compiled; the spec is dropped once the policy holds what it needs.
 */
#include "config/config_guard.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "config/include.h"
#include "config/yaml_tree.h"
#include "guard/guard.h"

#define KEY_MAX		192
#define HOLD_BACK_MAX	4096
#define WORDS_MAX	100000	/* words in one words_file */

struct gloader {
	const struct include_files *files;
	struct config_error *err;
};

static int fail(struct gloader *ld, unsigned line, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(struct gloader *ld, unsigned line, const char *key, const char *fmt, ...)
{
	va_list ap;

	unsigned at;
	const char *file = include_where(ld->files, line, &at);

	va_start(ap, fmt);
	int rc = config_verrorf(ld->err, file, at, key, fmt, ap);
	va_end(ap);
	return rc;
}

/* A dotted key for errors; a key too long to print is cut short. */
static void subkey(char *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void subkey(char *k, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(k, KEY_MAX, fmt, ap);
	va_end(ap);
	if (n < 0)
		k[0] = '\0';
}

static int fail_oom(struct gloader *ld)
{
	snprintf(ld->err->text, sizeof(ld->err->text), "%s: out of memory", ld->files->names[0]);
	return -ENOMEM;
}

/* A mapping whose keys are all among allowed[] (NULL-terminated). */
static int check_keys(struct gloader *ld, const struct ynode *m, const char *key,
		      const char *const *allowed)
{
	char k[KEY_MAX];

	if (m->type != YNODE_MAPPING)
		return fail(ld, m->line, key, "must be a mapping");
	for (size_t i = 0; i < ymap_len(m); i++) {
		const struct ynode *kn = ymap_key(m, i);
		bool ok = false;

		subkey(k, "%s.%s", key, kn->type == YNODE_SCALAR ? kn->value : "?");
		for (size_t a = 0; allowed[a] && !ok; a++)
			ok = kn->type == YNODE_SCALAR && strcmp(kn->value, allowed[a]) == 0;
		if (!ok)
			return fail(ld, kn->line, k, "unknown key");
		for (size_t j = 0; j < i; j++)
			if (strcmp(ymap_key(m, j)->value, kn->value) == 0)
				return fail(ld, kn->line, k, "duplicate key");
	}
	return 0;
}

static int scalar(struct gloader *ld, const struct ynode *v, const char *key, char **out)
{
	if (v->type != YNODE_SCALAR || ynode_is_null(v))
		return fail(ld, v->line, key, "must be a string");
	if (!(*out = config_expand_env(v->value)))
		return errno == EINVAL ? fail(ld, v->line, key, "unterminated ${ in value")
				       : fail_oom(ld);
	return 0;
}

static int action(struct gloader *ld, const struct ynode *v, const char *key,
		  enum guard_action *out)
{
	char *s;
	int err = scalar(ld, v, key, &s);

	if (err)
		return err;
	err = guard_action_parse(s, out);
	free(s);
	return err ? fail(ld, v->line, key, "must be mask, block, flag or off") : 0;
}

static int uint_value(struct gloader *ld, const struct ynode *v, const char *key,
		      unsigned max, unsigned *out)
{
	char *s, *end;
	int err = scalar(ld, v, key, &s);

	if (err)
		return err;
	errno = 0;
	unsigned long n = strtoul(s, &end, 10);
	bool bad = !isdigit((unsigned char)s[0]) || *end || errno || n > max;
	free(s);
	if (bad)
		return fail(ld, v->line, key, "must be an integer between 0 and %u", max);
	*out = (unsigned)n;
	return 0;
}

static int bool_value(struct gloader *ld, const struct ynode *v, const char *key, bool *out)
{
	char *s;
	int err = scalar(ld, v, key, &s);

	if (err)
		return err;
	if (!strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "on"))
		*out = true;
	else if (!strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "off"))
		*out = false;
	else
		err = fail(ld, v->line, key, "must be true or false");
	free(s);
	return err;
}

static int push_word(char ***list, size_t *n, char *w)
{
	char **l = realloc(*list, (*n + 1) * sizeof(*l));

	if (!l) {
		free(w);
		return -ENOMEM;
	}
	*list = l;
	l[(*n)++] = w;
	return 0;
}

static int string_list(struct gloader *ld, const struct ynode *v, const char *key,
		       char ***out, size_t *n)
{
	char k[KEY_MAX];

	if (v->type != YNODE_SEQUENCE)
		return fail(ld, v->line, key, "must be a list of strings");
	for (size_t i = 0; i < v->nkids; i++) {
		char *s;
		subkey(k, "%s[%zu]", key, i);
		int err = scalar(ld, v->kids[i], k, &s);
		if (!err && !*s) {
			free(s);
			err = fail(ld, v->kids[i]->line, k, "must not be empty");
		}
		if (!err && push_word(out, n, s))
			err = fail_oom(ld);
		if (err)
			return err;
	}
	return 0;
}

/* One word or phrase per line; blank lines and # comments skipped. */
static int words_file(struct gloader *ld, const struct ynode *v, const char *key,
		      struct guard_custom_spec *c)
{
	char *path, line[1024];
	int err = scalar(ld, v, key, &path);

	if (err)
		return err;
	FILE *fp = path[0] == '/' ? fopen(path, "re") : NULL;
	if (!fp) {
		err = fail(ld, v->line, key, path[0] == '/' ? "cannot read %s: %s"
			   : "%s: must be an absolute path%s", path,
			   path[0] == '/' ? strerror(errno) : "");
		free(path);
		return err;
	}
	while (!err && fgets(line, sizeof(line), fp)) {
		size_t n = strcspn(line, "\r\n");
		line[n] = '\0';
		char *w = line;
		while (*w == ' ' || *w == '\t')
			w++;
		if (!*w || *w == '#')
			continue;
		if (c->nwords == WORDS_MAX)
			err = fail(ld, v->line, key, "%s: more than %d words", path, WORDS_MAX);
		else if (push_word(&c->words, &c->nwords, strdup(w)))
			err = fail_oom(ld);
	}
	fclose(fp);
	if (!err && c->nwords == 0)
		err = fail(ld, v->line, key, "%s holds no words", path);
	free(path);
	return err;
}

static bool valid_name(const char *s)
{
	if (!*s || strlen(s) > 64)
		return false;
	for (; *s; s++)
		if (!islower((unsigned char)*s) && !isdigit((unsigned char)*s) && *s != '_')
			return false;
	return true;
}

static int load_custom_one(struct gloader *ld, const struct ynode *m, const char *key,
			   struct guard_custom_spec *c)
{
	static const char *const keys[] = { "name", "regex", "words", "words_file", "action", NULL };
	const struct ynode *v;
	char k[KEY_MAX];
	int err = check_keys(ld, m, key, keys);

	c->line = m->line;
	c->action = GUARD_FLAG;
	if (err)
		return err;
	subkey(k, "%s.name", key);
	if (!(v = ymap_get(m, "name")))
		return fail(ld, m->line, k, "required key is missing");
	if ((err = scalar(ld, v, k, &c->name)))
		return err;
	if (!valid_name(c->name))
		return fail(ld, v->line, k, "must be lower-case letters, digits and _");
	if ((v = ymap_get(m, "action"))) {
		subkey(k, "%s.action", key);
		if ((err = action(ld, v, k, &c->action)))
			return err;
	}
	if ((v = ymap_get(m, "regex"))) {
		subkey(k, "%s.regex", key);
		c->line = v->line;
		if ((err = scalar(ld, v, k, &c->regex)))
			return err;
	}
	if ((v = ymap_get(m, "words"))) {
		subkey(k, "%s.words", key);
		if ((err = string_list(ld, v, k, &c->words, &c->nwords)))
			return err;
	}
	if ((v = ymap_get(m, "words_file"))) {
		subkey(k, "%s.words_file", key);
		if ((err = words_file(ld, v, k, c)))
			return err;
	}
	if (!c->regex && !c->nwords)
		return fail(ld, m->line, key, "needs regex, words or words_file");
	return 0;
}

static int load_custom(struct gloader *ld, const struct ynode *v, const char *key,
		       struct guard_policy_spec *spec)
{
	char k[KEY_MAX];

	if (v->type != YNODE_SEQUENCE)
		return fail(ld, v->line, key, "must be a list of {name, regex | words_file, action}");
	if (v->nkids > GUARD_CUSTOM_MAX)
		return fail(ld, v->line, key, "at most %d custom rules", GUARD_CUSTOM_MAX);
	if (v->nkids && !(spec->custom = calloc(v->nkids, sizeof(*spec->custom))))
		return fail_oom(ld);
	for (size_t i = 0; i < v->nkids; i++) {
		subkey(k, "%s[%zu]", key, i);
		spec->ncustom = i + 1;
		int err = load_custom_one(ld, v->kids[i], k, &spec->custom[i]);
		for (size_t j = 0; !err && j < i; j++)
			if (strcmp(spec->custom[j].name, spec->custom[i].name) == 0)
				err = fail(ld, v->kids[i]->line, k, "duplicate name %s",
					   spec->custom[i].name);
		if (err)
			return err;
	}
	return 0;
}

static int load_detect(struct gloader *ld, const struct ynode *m, const char *key,
		       struct guard_policy_spec *spec)
{
	char k[KEY_MAX];

	if (m->type != YNODE_MAPPING)
		return fail(ld, m->line, key, "must be a mapping of detector: action");
	for (size_t i = 0; i < ymap_len(m); i++) {
		const struct ynode *kn = ymap_key(m, i);
		int d = kn->type == YNODE_SCALAR ? guard_builtin_parse(kn->value) : -1;

		subkey(k, "%s.%s", key, kn->type == YNODE_SCALAR ? kn->value : "?");
		if (d < 0)
			return fail(ld, kn->line, k, "unknown detector (email, phone, credit_card, "
				    "iban, us_ssn, ip_address, secrets, prompt_injection)");
		int err = action(ld, ymap_value(m, i), k, &spec->detect[d]);
		if (err)
			return err;
	}
	return 0;
}

static int load_topics(struct gloader *ld, const struct ynode *m, const char *key,
		       struct guard_policy_spec *spec)
{
	static const char *const keys[] = { "deny", "allow", "action", NULL };
	const struct ynode *v;
	char k[KEY_MAX];
	int err = check_keys(ld, m, key, keys);

	if (!err && (v = ymap_get(m, "deny"))) {
		subkey(k, "%s.deny", key);
		err = string_list(ld, v, k, &spec->topics_deny, &spec->ntopics_deny);
	}
	if (!err && (v = ymap_get(m, "allow"))) {
		subkey(k, "%s.allow", key);
		err = string_list(ld, v, k, &spec->topics_allow, &spec->ntopics_allow);
	}
	if (!err && (v = ymap_get(m, "action"))) {
		subkey(k, "%s.action", key);
		err = action(ld, v, k, &spec->topics_action);
		if (!err && spec->topics_action == GUARD_MASK)
			err = fail(ld, v->line, k, "must be block, flag or off "
				   "(a topic is a whole text, it cannot be masked)");
	}
	return err;
}

static int load_response(struct gloader *ld, const struct ynode *m, const char *key,
			 struct guard_policy_spec *spec)
{
	static const char *const keys[] = { "enabled", "hold_back", NULL };
	const struct ynode *v;
	char k[KEY_MAX];
	int err = check_keys(ld, m, key, keys);

	if (!err && (v = ymap_get(m, "enabled"))) {
		subkey(k, "%s.enabled", key);
		err = bool_value(ld, v, k, &spec->response);
	}
	if (!err && (v = ymap_get(m, "hold_back"))) {
		subkey(k, "%s.hold_back", key);
		err = uint_value(ld, v, k, HOLD_BACK_MAX, &spec->hold_back);
	}
	return err;
}

static int load_policy_keys(struct gloader *ld, const struct ynode *m, const char *key,
			    struct guard_policy_spec *spec)
{
	static const char *const keys[] = { "name", "detect", "custom", "topics", "response",
					    NULL };
	const struct ynode *v;
	char k[KEY_MAX];
	int err = check_keys(ld, m, key, keys);

	if (err)
		return err;
	subkey(k, "%s.name", key);
	if (!(v = ymap_get(m, "name")))
		return fail(ld, m->line, k, "required key is missing");
	if ((err = scalar(ld, v, k, &spec->name)))
		return err;
	if (!valid_name(spec->name))
		return fail(ld, v->line, k, "must be lower-case letters, digits and _");
	subkey(k, "%s.detect", key);
	if (!err && (v = ymap_get(m, "detect")))
		err = load_detect(ld, v, k, spec);
	subkey(k, "%s.custom", key);
	if (!err && (v = ymap_get(m, "custom")))
		err = load_custom(ld, v, k, spec);
	subkey(k, "%s.topics", key);
	if (!err && (v = ymap_get(m, "topics")))
		err = load_topics(ld, v, k, spec);
	subkey(k, "%s.response", key);
	if (!err && (v = ymap_get(m, "response")))
		err = load_response(ld, v, k, spec);
	return err;
}

/* Read, then compile; a Hyperscan refusal points at the rule's line. */
static int load_policy(struct gloader *ld, const struct ynode *m, const char *key,
		       struct guard_policy **out)
{
	struct guard_policy_spec spec = { .response = true, .hold_back = 64,
					  .topics_action = GUARD_BLOCK };
	char why[384];
	unsigned line = 0;
	int err = load_policy_keys(ld, m, key, &spec);

	if (!err && guard_policy_compile(&spec, out, why, sizeof(why), &line)) {
		const char *what = "policy";
		for (size_t i = 0; i < spec.ncustom; i++)
			if (spec.custom[i].line == line)
				what = spec.custom[i].name;
		err = fail(ld, line ? line : m->line, key, "%s: %s", what, why);
	}
	guard_policy_spec_free(&spec);
	return err;
}

int config_guard_load(const struct ynode *v, const struct include_files *files,
		      struct guardrails_cfg *out, struct config_error *err)
{
	static const char *const keys[] = { "policies", "default", NULL };
	struct gloader ld = { .files = files, .err = err };
	const struct ynode *pol, *def;
	char k[KEY_MAX];
	int rc = check_keys(&ld, v, "guardrails", keys);

	if (rc)
		return rc;
	if ((pol = ymap_get(v, "policies"))) {
		if (pol->type != YNODE_SEQUENCE)
			return fail(&ld, pol->line, "guardrails.policies", "must be a list of policies");
		if (pol->nkids && !(out->policies = calloc(pol->nkids, sizeof(*out->policies))))
			return fail_oom(&ld);
		for (size_t i = 0; i < pol->nkids; i++) {
			subkey(k, "guardrails.policies[%zu]", i);
			if ((rc = load_policy(&ld, pol->kids[i], k, &out->policies[i])))
				return rc;
			out->npolicies = i + 1;
			for (size_t j = 0; j < i; j++)
				if (!strcmp(guard_policy_name(out->policies[j]),
					    guard_policy_name(out->policies[i])))
					return fail(&ld, pol->kids[i]->line, k,
						    "duplicate policy name %s",
						    guard_policy_name(out->policies[i]));
		}
	}
	if ((def = ymap_get(v, "default"))) {
		char *name;
		if ((rc = scalar(&ld, def, "guardrails.default", &name)))
			return rc;
		out->default_policy = config_guard_find(out, name);
		rc = out->default_policy ? 0 : fail(&ld, def->line, "guardrails.default",
						    "no policy named %s", name);
		free(name);
	}
	return rc;
}

void config_guard_free(struct guardrails_cfg *g)
{
	for (size_t i = 0; i < g->npolicies; i++)
		guard_policy_free(g->policies[i]);
	free(g->policies);
	memset(g, 0, sizeof(*g));
}

const struct guard_policy *config_guard_find(const struct guardrails_cfg *g, const char *name)
{
	for (size_t i = 0; i < g->npolicies; i++)
		if (strcmp(guard_policy_name(g->policies[i]), name) == 0)
			return g->policies[i];
	return NULL;
}
