/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Loading sluice.yaml: the YAML is first read into a tree of nodes that
 * know their line (yaml_tree.h), then each mapping is walked against a
 * table of the keys it may hold.  Every value is checked where it is read,
 * so an error always names the file, the line and the dotted key.
 * Nothing is logged: the caller decides what to do with err->text.
 */
#include "config/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <net/if.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config_guard.h"
#include "config/include.h"
#include "config/yaml_tree.h"
#include "core/buf.h"
#include "core/log.h"
#include "sluice_maps.h"

#define KEY_MAX		192	/* longest dotted key we print */
#define WORKERS_MAX	256
#define DAY_MS		(24u * 3600u * 1000u)
#define CGROUP_DEFAULT	"/sys/fs/cgroup/unified/sluice"

struct loader {
	const char *file;
	struct include_files files;	/* the main file and what it includes */
	struct config_error *err;
	struct sluice_config *cfg;
};

struct field;
typedef int (*field_load_fn)(struct loader *ld, const struct ynode *v, const char *key,
			     void *dst, const struct field *f);

/* One key a mapping may hold: how to read it and where it lands in dst. */
struct field {
	const char *name;
	field_load_fn load;
	size_t off;
	unsigned long long min, max;
	const char *range;	/* min..max in words, for the error */
	bool required;
};

/* ------------------------------------------------------------------ */
/* Errors                                                              */

static int fail(struct loader *ld, unsigned line, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

int config_verrorf(struct config_error *err, const char *file, unsigned line, const char *key,
		   const char *fmt, va_list ap)
{
	char *text = err->text;
	size_t size = sizeof(err->text);
	int n = snprintf(text, size, "%s:%u: %s: ", file, line, key);

	if (n >= 0 && (size_t)n < size)
		vsnprintf(text + n, size - (size_t)n, fmt, ap);
	return -EINVAL;
}

int config_errorf(struct config_error *err, const char *file, unsigned line, const char *key,
		  const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	int rc = config_verrorf(err, file, line, key, fmt, ap);
	va_end(ap);
	return rc;
}

static int fail(struct loader *ld, unsigned line, const char *key, const char *fmt, ...)
{
	va_list ap;
	unsigned at;
	const char *file = include_where(&ld->files, line, &at);

	va_start(ap, fmt);
	int rc = config_verrorf(ld->err, file, at, key, fmt, ap);
	va_end(ap);
	return rc;
}

static int fail_oom(struct loader *ld)
{
	snprintf(ld->err->text, sizeof(ld->err->text), "%s: out of memory", ld->file);
	return -ENOMEM;
}

/* "prefix.name", or just "name" at the top level. */
static const char *key_join(char *buf, size_t size, const char *prefix, const char *name)
{
	snprintf(buf, size, "%s%s%s", prefix, *prefix ? "." : "", name);
	return buf;
}

/* ------------------------------------------------------------------ */
/* Numbers, sizes, durations                                           */

/* Leading decimal digits of *sp; at least one, no sign, no overflow. */
static int parse_digits(const char **sp, unsigned long long *out)
{
	const char *s = *sp;
	unsigned long long n = 0;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	for (; *s >= '0' && *s <= '9'; s++) {
		unsigned digit = (unsigned)(*s - '0');

		if (n > (ULLONG_MAX - digit) / 10)
			return -EINVAL;
		n = n * 10 + digit;
	}
	*sp = s;
	*out = n;
	return 0;
}

struct unit {
	const char *name;
	unsigned long long mult;
};

/* Number followed by an optional unit from table (the "" entry allows none). */
static int parse_with_unit(const char *s, const struct unit *units, size_t nunits,
			   unsigned long long max, unsigned long long *out)
{
	unsigned long long n;

	if (parse_digits(&s, &n))
		return -EINVAL;
	while (*s == ' ')
		s++;
	for (size_t i = 0; i < nunits; i++) {
		if (strcasecmp(s, units[i].name) != 0)
			continue;
		if (n > max / units[i].mult)
			return -EINVAL;
		*out = n * units[i].mult;
		return 0;
	}
	return -EINVAL;
}

int config_parse_size(const char *s, size_t *out)
{
	static const struct unit units[] = {
		{ "", 1 }, { "B", 1 },
		{ "KB", 1000ull }, { "MB", 1000ull * 1000 }, { "GB", 1000ull * 1000 * 1000 },
		{ "KiB", 1ull << 10 }, { "MiB", 1ull << 20 }, { "GiB", 1ull << 30 },
	};
	unsigned long long n;
	int err = parse_with_unit(s, units, sizeof(units) / sizeof(units[0]), SIZE_MAX, &n);

	if (!err)
		*out = (size_t)n;
	return err;
}

int config_parse_duration_ms(const char *s, unsigned *out)
{
	static const struct unit units[] = {
		{ "", 1 }, { "ms", 1 }, { "s", 1000 }, { "m", 60 * 1000 }, { "h", 3600 * 1000 },
	};
	unsigned long long n;
	int err = parse_with_unit(s, units, sizeof(units) / sizeof(units[0]), UINT_MAX, &n);

	if (!err)
		*out = (unsigned)n;
	return err;
}

/* "1..65535" spanning exactly len bytes. */
static int parse_port(const char *s, size_t len, uint16_t *out)
{
	const char *end = s;
	unsigned long long n;

	if (parse_digits(&end, &n) || (size_t)(end - s) != len || n < 1 || n > 65535)
		return -EINVAL;
	*out = (uint16_t)n;
	return 0;
}

/* ------------------------------------------------------------------ */
/* ${VAR} expansion                                                    */

/* *sp points at "${".  Append the variable's value (or its default) and
 * move *sp past the closing brace.  As in the shell, ":-" also applies
 * the default when the variable is set but empty. */
static int expand_ref(struct buf *b, const char **sp)
{
	const char *inner = *sp + 2;
	const char *close = strchr(inner, '}');

	if (!close)
		return -EINVAL;
	const char *sep = memmem(inner, (size_t)(close - inner), ":-", 2);
	const char *name_end = sep ? sep : close;
	char *name = strndup(inner, (size_t)(name_end - inner));

	if (!name)
		return -ENOMEM;
	const char *value = getenv(name);
	free(name);

	int err;
	if (sep && (!value || !*value))
		err = buf_append(b, sep + 2, (size_t)(close - sep - 2));
	else
		err = buf_append(b, value ? value : "", value ? strlen(value) : 0);
	*sp = close + 1;
	return err;
}

char *config_expand_env(const char *s)
{
	struct buf b = { 0 };
	int err = 0;

	while (!err && *s) {
		const char *dollar = strchr(s, '$');

		if (!dollar) {
			err = buf_append(&b, s, strlen(s));
			break;
		}
		err = buf_append(&b, s, (size_t)(dollar - s));
		s = dollar;
		if (err)
			break;
		if (s[1] == '{') {
			err = expand_ref(&b, &s);
		} else {
			/* "$$" is one literal '$'; a lone '$' is kept as is. */
			err = buf_append(&b, "$", 1);
			s += s[1] == '$' ? 2 : 1;
		}
	}
	if (!err)
		err = buf_append(&b, "", 1);
	if (err) {
		buf_free(&b);
		errno = -err;
		return NULL;
	}
	return b.data;
}

/* ------------------------------------------------------------------ */
/* Scalars                                                             */

/* The scalar's text after ${VAR} expansion, malloc'd.  `what` completes
 * "must be ..." when v is null, a list or a mapping. */
static int expand_scalar(struct loader *ld, const struct ynode *v, const char *key,
			 const char *what, char **out)
{
	if (v->type != YNODE_SCALAR || ynode_is_null(v))
		return fail(ld, v->line, key, "must be %s", what);
	*out = config_expand_env(v->value);
	if (*out)
		return 0;
	if (errno == EINVAL)
		return fail(ld, v->line, key, "unterminated ${ in value");
	return fail_oom(ld);
}

static char **field_str(void *dst, const struct field *f)
{
	return (char **)((char *)dst + f->off);
}

static int load_string(struct loader *ld, const struct ynode *v, const char *key,
		       void *dst, const struct field *f)
{
	return expand_scalar(ld, v, key, "a string", field_str(dst, f));
}

static int load_nonempty_string(struct loader *ld, const struct ynode *v, const char *key,
				void *dst, const struct field *f)
{
	int err = load_string(ld, v, key, dst, f);

	if (!err && !**field_str(dst, f))
		return fail(ld, v->line, key, "must not be empty");
	return err;
}

/* Text to number, one per unit style; 0 or -EINVAL. */
typedef int (*number_parser)(const char *s, unsigned long long *out);

static int parse_plain_uint(const char *s, unsigned long long *out)
{
	return parse_digits(&s, out) == 0 && *s == '\0' ? 0 : -EINVAL;
}

static int parse_size_text(const char *s, unsigned long long *out)
{
	size_t n = 0;
	int err = config_parse_size(s, &n);

	*out = n;
	return err;
}

static int parse_duration_text(const char *s, unsigned long long *out)
{
	unsigned n = 0;
	int err = config_parse_duration_ms(s, &n);

	*out = n;
	return err;
}

/* A scalar (after ${VAR} expansion) that parse reads as a number within
 * the field's range; what names the expected form in errors. */
static int load_number(struct loader *ld, const struct ynode *v, const char *key,
		       const struct field *f, const char *what, number_parser parse,
		       unsigned long long *out)
{
	char *s;
	int err = expand_scalar(ld, v, key, what, &s);

	if (err)
		return err;
	err = parse(s, out);
	free(s);
	if (err)
		return fail(ld, v->line, key, "must be %s", what);
	if (*out < f->min || *out > f->max)
		return fail(ld, v->line, key, "must be between %s", f->range);
	return 0;
}

static int load_uint(struct loader *ld, const struct ynode *v, const char *key,
		     void *dst, const struct field *f)
{
	const char *what = f->min ? "a positive integer" : "a non-negative integer";
	unsigned long long n;
	int err = load_number(ld, v, key, f, what, parse_plain_uint, &n);

	if (!err)
		*(unsigned *)((char *)dst + f->off) = (unsigned)n;
	return err;
}

static int load_size(struct loader *ld, const struct ynode *v, const char *key,
		     void *dst, const struct field *f)
{
	unsigned long long n;
	int err = load_number(ld, v, key, f, "a size such as 8MiB or 16384", parse_size_text, &n);

	if (!err)
		*(size_t *)((char *)dst + f->off) = (size_t)n;
	return err;
}

static int load_duration(struct loader *ld, const struct ynode *v, const char *key,
			 void *dst, const struct field *f)
{
	unsigned long long n;
	int err = load_number(ld, v, key, f, "a duration such as 250ms, 10s, 2m, 1h or milliseconds",
			      parse_duration_text, &n);

	if (!err)
		*(unsigned *)((char *)dst + f->off) = (unsigned)n;
	return err;
}

static int load_bool(struct loader *ld, const struct ynode *v, const char *key,
		     void *dst, const struct field *f)
{
	static const char *const yes[] = { "true", "yes", "on" };
	static const char *const no[] = { "false", "no", "off" };
	bool *out = (bool *)((char *)dst + f->off);
	char *s;
	int err = expand_scalar(ld, v, key, "true or false", &s);

	if (err)
		return err;
	err = -EINVAL;
	for (size_t i = 0; err && i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			err = 0;
		} else if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			err = 0;
		}
	}
	free(s);
	return err ? fail(ld, v->line, key, "must be true or false") : 0;
}

/* ------------------------------------------------------------------ */
/* Mappings                                                            */

/* Levenshtein distance, for "did you mean"; long keys get no suggestion. */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t prev[64], cur[64];

	if (la >= 64 || lb >= 64)
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		prev[j] = j;
	for (size_t i = 1; i <= la; i++) {
		cur[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
			size_t del = prev[j] + 1, ins = cur[j - 1] + 1;

			cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
		}
		memcpy(prev, cur, (lb + 1) * sizeof(prev[0]));
	}
	return prev[lb];
}

static const struct field *find_field(const struct field *fields, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(fields[i].name, name) == 0)
			return &fields[i];
	return NULL;
}

static int fail_unknown_key(struct loader *ld, const struct ynode *k, const char *key,
			    const struct field *fields, size_t n)
{
	const char *best = NULL;
	size_t best_d = 3;	/* suggest only within two edits */

	for (size_t i = 0; i < n; i++) {
		size_t d = edit_distance(k->value, fields[i].name);

		if (d < best_d && d < strlen(fields[i].name)) {
			best = fields[i].name;
			best_d = d;
		}
	}
	if (best)
		return fail(ld, k->line, key, "unknown key (did you mean %s?)", best);
	return fail(ld, k->line, key, "unknown key");
}

static bool key_seen_before(const struct ynode *m, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (strcmp(ymap_key(m, j)->value, ymap_key(m, i)->value) == 0)
			return true;
	return false;
}

/* Walk m in file order, loading each key through its field; then report
 * the first required key that was absent, at the mapping's own line. */
static int load_mapping(struct loader *ld, const struct ynode *m, const char *prefix,
			const struct field *fields, size_t nfields, void *dst)
{
	char key[KEY_MAX];

	if (m->type != YNODE_MAPPING)
		return fail(ld, m->line, *prefix ? prefix : "top level", "must be a mapping");
	for (size_t i = 0; i < ymap_len(m); i++) {
		const struct ynode *k = ymap_key(m, i);

		if (k->type != YNODE_SCALAR)
			return fail(ld, k->line, *prefix ? prefix : "top level",
				    "keys must be strings");
		key_join(key, sizeof(key), prefix, k->value);
		if (key_seen_before(m, i))
			return fail(ld, k->line, key, "duplicate key");
		const struct field *f = find_field(fields, nfields, k->value);
		if (!f)
			return fail_unknown_key(ld, k, key, fields, nfields);
		int err = f->load(ld, ymap_value(m, i), key, dst, f);
		if (err)
			return err;
	}
	for (size_t i = 0; i < nfields; i++) {
		if (fields[i].required && !ymap_get(m, fields[i].name))
			return fail(ld, m->line, key_join(key, sizeof(key), prefix, fields[i].name),
				    "required key is missing");
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Addresses                                                           */

/* The first address for host:port, or a getaddrinfo error code. */
static int resolve(const char *host, const char *port, int flags,
		   struct sockaddr_storage *ss, socklen_t *len)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = flags | AI_NUMERICSERV,
	};
	struct addrinfo *res;
	int rc = getaddrinfo(host, port, &hints, &res);

	if (rc)
		return rc;
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* Split "host:port", "[v6]:port" or ":port" in place.  An empty host is
 * the IPv4 wildcard.  Returns what is wrong, or NULL. */
static const char *split_listen(char *s, char **host, char **port, bool *bracketed)
{
	char *colon;

	*bracketed = s[0] == '[';
	if (*bracketed) {
		char *close = strchr(s, ']');

		if (!close || close == s + 1 || close[1] != ':')
			return "must be [address]:port";
		*close = '\0';
		*host = s + 1;
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return "must be host:port, [address]:port or :port";
		*colon = '\0';
		if (strchr(s, ':'))
			return "IPv6 addresses must be in brackets, as [::1]:8080";
		*host = *s ? s : "0.0.0.0";
	}
	*port = colon + 1;
	uint16_t p;
	if (parse_port(*port, strlen(*port), &p))
		return "port must be between 1 and 65535";
	return NULL;
}

/* A listening address into ss and len.  Numeric addresses first; a name
 * such as "localhost" only if that fails. */
static int resolve_listen_addr(struct loader *ld, const char *text, unsigned line,
			       const char *key, struct sockaddr_storage *ss, socklen_t *len)
{
	char *copy = strdup(text);
	char *host, *port;
	bool bracketed;

	if (!copy)
		return fail_oom(ld);
	const char *why = split_listen(copy, &host, &port, &bracketed);
	int rc = why ? 0 : resolve(host, port, AI_PASSIVE | AI_NUMERICHOST, ss, len);
	if (rc == EAI_NONAME && !bracketed)
		rc = resolve(host, port, AI_PASSIVE, ss, len);

	int err = 0;
	if (why)
		err = fail(ld, line, key, "%s", why);
	else if (rc)
		err = fail(ld, line, key, "cannot resolve %s: %s", host, gai_strerror(rc));
	free(copy);
	return err;
}

static int resolve_listen(struct loader *ld, unsigned line, const char *key)
{
	struct sluice_config *cfg = ld->cfg;

	return resolve_listen_addr(ld, cfg->listen, line, key, &cfg->listen_addr,
				   &cfg->listen_addrlen);
}

static int load_listen(struct loader *ld, const struct ynode *v, const char *key,
		       void *dst, const struct field *f)
{
	int err = load_nonempty_string(ld, v, key, dst, f);

	return err ? err : resolve_listen(ld, v->line, key);
}

/* ------------------------------------------------------------------ */
/* Top-level scalars                                                   */

static int load_log_level(struct loader *ld, const struct ynode *v, const char *key,
			  void *dst, const struct field *f)
{
	enum log_level level;
	int err = load_string(ld, v, key, dst, f);

	if (!err && log_level_parse(*field_str(dst, f), &level))
		return fail(ld, v->line, key, "must be one of error, warn, info, debug");
	return err;
}

/* ------------------------------------------------------------------ */
/* Backends                                                            */

static bool valid_backend_name(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++) {
		bool ok = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
			  (*s >= '0' && *s <= '9') || *s == '_' || *s == '.' || *s == '-';
		if (!ok)
			return false;
	}
	return true;
}

static int load_backend_name(struct loader *ld, const struct ynode *v, const char *key,
			     void *dst, const struct field *f)
{
	int err = load_string(ld, v, key, dst, f);

	if (!err && !valid_backend_name(*field_str(dst, f)))
		return fail(ld, v->line, key, "must match [A-Za-z0-9_.-]+");
	return err;
}

/* The host part of an authority: "[v6]" or a name/IPv4, then ":port" or
 * nothing.  Sets b->host and b->port (when given).  NULL or what is wrong. */
static const char *split_authority(const char *auth, size_t len, struct backend_cfg *b)
{
	const char *host = auth, *host_end, *rest;

	if (len && auth[0] == '[') {
		host_end = memchr(auth, ']', len);
		if (!host_end)
			return "unterminated [ in host";
		host = auth + 1;
		rest = host_end + 1;
	} else {
		host_end = memchr(auth, ':', len);
		if (!host_end)
			host_end = auth + len;
		rest = host_end;
	}
	if (host_end == host)
		return "missing host";
	if (rest < auth + len) {
		if (*rest != ':')
			return "expected :port after the host";
		if (parse_port(rest + 1, (size_t)(auth + len - rest - 1), &b->port))
			return "port must be between 1 and 65535";
	}
	b->host = strndup(host, (size_t)(host_end - host));
	return b->host ? NULL : "out of memory";
}

/* base_path is the URL's path without its trailing slashes. */
static const char *set_base_path(const char *path, struct backend_cfg *b)
{
	size_t len = strlen(path);

	if (strpbrk(path, "?#"))
		return "query and fragment are not allowed";
	while (len && path[len - 1] == '/')
		len--;
	b->base_path = strndup(path, len);
	return b->base_path ? NULL : "out of memory";
}

static const char *parse_url(struct backend_cfg *b)
{
	const char *s = b->url;

	/* It goes into request lines as is; a space would split one. */
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return "must not contain spaces or control characters";
	if (strncasecmp(s, "http://", 7) == 0) {
		s += 7;
	} else if (strncasecmp(s, "https://", 8) == 0) {
		b->tls = true;
		s += 8;
	} else {
		return "scheme must be http or https";
	}
	size_t auth_len = strcspn(s, "/?#");
	if (memchr(s, '@', auth_len))
		return "user info is not allowed";
	b->port = b->tls ? 443 : 80;
	const char *why = split_authority(s, auth_len, b);
	return why ? why : set_base_path(s + auth_len, b);
}

static int load_backend_url(struct loader *ld, const struct ynode *v, const char *key,
			    void *dst, const struct field *f)
{
	struct backend_cfg *b = dst;
	char port[8];
	int err = load_nonempty_string(ld, v, key, dst, f);

	if (err)
		return err;
	const char *why = parse_url(b);
	if (why)
		return fail(ld, v->line, key, "%s", why);
	snprintf(port, sizeof(port), "%u", (unsigned)b->port);
	int rc = resolve(b->host, port, 0, &b->addr, &b->addrlen);
	if (rc)
		return fail(ld, v->line, key, "cannot resolve %s: %s", b->host, gai_strerror(rc));
	return 0;
}

/* A non-empty list of non-empty strings into *out and *n. */
static int load_string_list(struct loader *ld, const struct ynode *v, const char *key,
			    char ***out, size_t *n)
{
	char item[KEY_MAX];

	if (v->type != YNODE_SEQUENCE)
		return fail(ld, v->line, key, "must be a list of strings");
	if (v->nkids == 0)
		return fail(ld, v->line, key, "must not be empty");
	if (!(*out = calloc(v->nkids, sizeof(**out))))
		return fail_oom(ld);
	*n = v->nkids;
	for (size_t i = 0; i < v->nkids; i++) {
		const struct ynode *m = v->kids[i];

		snprintf(item, sizeof(item), "%s[%zu]", key, i);
		int err = expand_scalar(ld, m, item, "a string", &(*out)[i]);
		if (err)
			return err;
		if (!*(*out)[i])
			return fail(ld, m->line, item, "must not be empty");
	}
	return 0;
}

static void string_list_free(char **list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

static int load_backend_models(struct loader *ld, const struct ynode *v, const char *key,
			       void *dst, const struct field *f)
{
	struct backend_cfg *b = dst;
	int err = load_string_list(ld, v, key, &b->models, &b->nmodels);

	(void)f;
	for (size_t i = 0; !err && i < b->nmodels; i++)
		b->any_model |= strcmp(b->models[i], "*") == 0;
	return err;
}

static int load_ca_file(struct loader *ld, const struct ynode *v, const char *key,
			void *dst, const struct field *f)
{
	int err = load_string(ld, v, key, dst, f);
	const char *path = err ? NULL : *field_str(dst, f);

	if (path && access(path, R_OK) != 0)
		return fail(ld, v->line, key, "cannot read %s: %s", path, strerror(errno));
	return err;
}

#define BACKEND_OFF(member) offsetof(struct backend_cfg, member)

/* health_check: {path, interval, timeout, unhealthy_after, healthy_after} */
static int load_hc_path(struct loader *ld, const struct ynode *v, const char *key,
			void *dst, const struct field *f)
{
	int err = load_nonempty_string(ld, v, key, dst, f);
	const char *p = err ? NULL : *field_str(dst, f);
	if (!err && (p[0] != '/' || strpbrk(p, " \r\n\t")))
		return fail(ld, v->line, key, "must be a path starting with / and without spaces");
	return err;
}

static const struct field health_check_fields[] = {
	{ .name = "path", .load = load_hc_path, .off = BACKEND_OFF(hc_path) },
	{ .name = "interval", .load = load_duration, .off = BACKEND_OFF(hc_interval_ms),
	  .min = 10, .max = 3600000, .range = "10ms and 1h" },
	{ .name = "timeout", .load = load_duration, .off = BACKEND_OFF(hc_timeout_ms),
	  .min = 10, .max = 600000, .range = "10ms and 10m" },
	{ .name = "unhealthy_after", .load = load_uint, .off = BACKEND_OFF(hc_unhealthy_after),
	  .min = 1, .max = 1000, .range = "1 and 1000" },
	{ .name = "healthy_after", .load = load_uint, .off = BACKEND_OFF(hc_healthy_after),
	  .min = 1, .max = 1000, .range = "1 and 1000" },
};

static int load_health_check(struct loader *ld, const struct ynode *v, const char *key,
			     void *dst, const struct field *f)
{
	struct backend_cfg *b = dst;

	(void)f;
	b->hc_enabled = true;
	int err = load_mapping(ld, v, key, health_check_fields,
			       sizeof(health_check_fields) / sizeof(health_check_fields[0]), dst);
	if (!err && !b->hc_path && !(b->hc_path = strdup("/health")))
		return fail_oom(ld);
	return err;
}

static const struct field backend_breaker_fields[] = {
	{ .name = "failures", .load = load_uint, .off = BACKEND_OFF(br_failures),
	  .min = 0, .max = 1000000, .range = "0 (off) and 1000000" },
	{ .name = "error_percent", .load = load_uint, .off = BACKEND_OFF(br_error_percent),
	  .min = 0, .max = 100, .range = "0 (off) and 100" },
	{ .name = "min_requests", .load = load_uint, .off = BACKEND_OFF(br_min_requests),
	  .min = 1, .max = 1000000, .range = "1 and 1000000" },
	{ .name = "window", .load = load_duration, .off = BACKEND_OFF(br_window_ms),
	  .min = 100, .max = 3600000, .range = "100ms and 1h" },
	{ .name = "open", .load = load_duration, .off = BACKEND_OFF(br_open_ms),
	  .min = 1, .max = 3600000, .range = "1ms and 1h" },
};

static int load_backend_breaker(struct loader *ld, const struct ynode *v, const char *key,
				void *dst, const struct field *f)
{
	(void)f;
	return load_mapping(ld, v, key, backend_breaker_fields,
			    sizeof(backend_breaker_fields) / sizeof(backend_breaker_fields[0]), dst);
}

static const struct field backend_fields[] = {
	{ .name = "name", .load = load_backend_name, .off = BACKEND_OFF(name), .required = true },
	{ .name = "url", .load = load_backend_url, .off = BACKEND_OFF(url), .required = true },
	{ .name = "api_key", .load = load_string, .off = BACKEND_OFF(api_key) },
	{ .name = "models", .load = load_backend_models, .off = BACKEND_OFF(models),
	  .required = true },
	{ .name = "ca_file", .load = load_ca_file, .off = BACKEND_OFF(ca_file) },
	{ .name = "tls_verify", .load = load_bool, .off = BACKEND_OFF(tls_verify) },
	{ .name = "max_idle_connections", .load = load_uint, .off = BACKEND_OFF(max_idle),
	  .min = 0, .max = 4096, .range = "0 and 4096" },
	{ .name = "idle_timeout", .load = load_duration, .off = BACKEND_OFF(idle_timeout_ms),
	  .min = 1, .max = 3600000, .range = "1ms and 1h" },
	{ .name = "health_check", .load = load_health_check },
	{ .name = "breaker", .load = load_backend_breaker },
};

/* Names must be unique: routes and metrics refer to backends by name. */
static int check_unique_name(struct loader *ld, const struct ynode *item, size_t i)
{
	const struct backend_cfg *b = ld->cfg->backends;
	char key[KEY_MAX];

	for (size_t j = 0; j < i; j++) {
		if (strcmp(b[j].name, b[i].name) != 0)
			continue;
		snprintf(key, sizeof(key), "backends[%zu].name", i);
		return fail(ld, ymap_get(item, "name")->line, key,
			    "duplicate backend name %s (also backends[%zu])", b[i].name, j);
	}
	return 0;
}

static int load_backend(struct loader *ld, const struct ynode *item, size_t i)
{
	struct backend_cfg *b = &ld->cfg->backends[i];
	char prefix[KEY_MAX];

	b->index = (unsigned)i;
	b->tls_verify = true;
	b->max_idle = 64;
	b->idle_timeout_ms = 4000;
	b->hc_interval_ms = 10000;
	b->hc_timeout_ms = 2000;
	b->hc_unhealthy_after = 3;
	b->hc_healthy_after = 2;
	b->br_failures = 5;
	b->br_min_requests = 20;
	b->br_window_ms = 10000;
	b->br_open_ms = 10000;
	snprintf(prefix, sizeof(prefix), "backends[%zu]", i);
	int err = load_mapping(ld, item, prefix, backend_fields,
			       sizeof(backend_fields) / sizeof(backend_fields[0]), b);
	return err ? err : check_unique_name(ld, item, i);
}

static int load_backends(struct loader *ld, const struct ynode *v, const char *key,
			 void *dst, const struct field *f)
{
	struct sluice_config *cfg = dst;

	(void)f;
	if (v->type != YNODE_SEQUENCE)
		return fail(ld, v->line, key, "must be a list of backends");
	if (v->nkids == 0)
		return fail(ld, v->line, key, "must not be empty");
	cfg->backends = calloc(v->nkids, sizeof(*cfg->backends));
	if (!cfg->backends)
		return fail_oom(ld);
	cfg->nbackends = v->nkids;
	for (size_t i = 0; i < v->nkids; i++) {
		int err = load_backend(ld, v->kids[i], i);
		if (err)
			return err;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Networks                                                            */

/* 16 bytes for "a.b.c.d" (as ::ffff:a.b.c.d) or an IPv6 address; the
 * family's own longest prefix (32 or 128), or 0 when s is neither. */
static unsigned parse_addr16(const char *s, uint8_t bytes[16])
{
	static const uint8_t v4_mapped[12] = { [10] = 0xff, [11] = 0xff };
	struct in_addr v4;

	if (inet_pton(AF_INET, s, &v4) == 1) {
		memcpy(bytes, v4_mapped, sizeof(v4_mapped));
		memcpy(bytes + 12, &v4, sizeof(v4));
		return 32;
	}
	return inet_pton(AF_INET6, s, bytes) == 1 ? 128 : 0;
}

/* Clear every bit after the first prefixlen; true if one was set. */
static bool clear_host_bits(uint8_t bytes[16], unsigned prefixlen)
{
	bool had_host_bits = false;

	for (unsigned i = 0; i < 16; i++) {
		/* Byte i keeps its top min(8, bits of prefix left) bits. */
		unsigned left = prefixlen > 8 * i ? prefixlen - 8 * i : 0;
		uint8_t mask = (uint8_t)(0xff00u >> (left < 8 ? left : 8));

		had_host_bits |= (bytes[i] & ~mask) != 0;
		bytes[i] &= mask;
	}
	return had_host_bits;
}

/* The network part of c as the user wrote its family: "10.20.0.0". */
static void format_network(const struct cidr_cfg *c, bool v4, char *buf, size_t size)
{
	if (v4)
		inet_ntop(AF_INET, c->bytes + 12, buf, (socklen_t)size);
	else
		inet_ntop(AF_INET6, c->bytes, buf, (socklen_t)size);
}

/* Parse s into out's bytes and prefixlen (not its text).  0, or -EINVAL
 * with what is wrong written to why.  A prefix with host bits set is
 * refused rather than masked: "10.20.1.0/16" is more likely a typo for a
 * /24 than a wish for the whole /16, so the error suggests, never guesses. */
static int parse_cidr(const char *s, struct cidr_cfg *out, char *why, size_t size)
{
	char addr[INET6_ADDRSTRLEN], net[INET6_ADDRSTRLEN];
	struct cidr_cfg c = { 0 };
	const char *slash = strchr(s, '/');
	size_t len = slash ? (size_t)(slash - s) : strlen(s);
	unsigned max = 0;
	unsigned long long n;

	if (len < sizeof(addr)) {
		memcpy(addr, s, len);
		addr[len] = '\0';
		max = parse_addr16(addr, c.bytes);
	}
	if (!max) {
		snprintf(why, size, "must be an address or a network such as 10.0.0.0/8");
		return -EINVAL;
	}
	n = max;
	const char *p = slash ? slash + 1 : "";
	if (slash && (parse_digits(&p, &n) || *p || n > max)) {
		snprintf(why, size, "prefix length must be between 0 and %u", max);
		return -EINVAL;
	}
	c.prefixlen = (uint32_t)(128 - max + n);
	if (clear_host_bits(c.bytes, c.prefixlen)) {
		format_network(&c, max == 32, net, sizeof(net));
		snprintf(why, size, "host bits set below /%llu (did you mean %s/%llu?)", n, net, n);
		return -EINVAL;
	}
	memcpy(out->bytes, c.bytes, sizeof(c.bytes));
	out->prefixlen = c.prefixlen;
	return 0;
}

int config_parse_cidr(const char *s, struct cidr_cfg *out)
{
	char why[128];
	struct cidr_cfg c;

	if (parse_cidr(s, &c, why, sizeof(why)))
		return -EINVAL;
	if (!(c.text = strdup(s)))
		return -ENOMEM;
	*out = c;
	return 0;
}

static bool cidr_equal(const struct cidr_cfg *a, const struct cidr_cfg *b)
{
	return a->prefixlen == b->prefixlen && memcmp(a->bytes, b->bytes, sizeof(a->bytes)) == 0;
}

/* The index of the first entry of list[0..n) equal to c, or n. */
static size_t cidr_find(const struct cidr_cfg *list, size_t n, const struct cidr_cfg *c)
{
	size_t i = 0;

	while (i < n && !cidr_equal(&list[i], c))
		i++;
	return i;
}

static int load_cidr(struct loader *ld, const struct ynode *v, const char *key,
		     struct cidr_cfg *c)
{
	char why[128];
	int err = expand_scalar(ld, v, key, "a network such as 10.0.0.0/8", &c->text);

	if (!err && parse_cidr(c->text, c, why, sizeof(why)))
		return fail(ld, v->line, key, "%s", why);
	return err;
}

/* A list of networks into *out and *n; one listed twice is an error. */
static int load_cidr_list(struct loader *ld, const struct ynode *v, const char *key,
			  struct cidr_cfg **out, size_t *n)
{
	char item[KEY_MAX];

	if (v->type != YNODE_SEQUENCE)
		return fail(ld, v->line, key, "must be a list of networks");
	if (v->nkids == 0)
		return 0;
	if (!(*out = calloc(v->nkids, sizeof(**out))))
		return fail_oom(ld);
	*n = v->nkids;
	for (size_t i = 0; i < v->nkids; i++) {
		struct cidr_cfg *c = &(*out)[i];

		snprintf(item, sizeof(item), "%s[%zu]", key, i);
		int err = load_cidr(ld, v->kids[i], item, c);
		if (err)
			return err;
		size_t j = cidr_find(*out, i, c);
		if (j < i)
			return fail(ld, v->kids[i]->line, item,
				    "duplicate network %s (also %s[%zu])", c->text, key, j);
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Small shared loaders                                                */

/* One of words, stored as its index (the enums follow the same order). */
static int load_word(struct loader *ld, const struct ynode *v, const char *key,
		     const char *const *words, size_t nwords, const char *what, unsigned *out)
{
	char *s;
	int err = expand_scalar(ld, v, key, what, &s);

	if (err)
		return err;
	err = -EINVAL;
	for (unsigned i = 0; err && i < nwords; i++) {
		if (strcmp(s, words[i]) == 0) {
			*out = i;
			err = 0;
		}
	}
	free(s);
	return err ? fail(ld, v->line, key, "must be %s", what) : 0;
}

/* A burst left out follows the rate; one given must let at least one
 * connection through whenever the rate limits at all. */
static int default_burst(struct loader *ld, const struct ynode *limits, const char *prefix,
			 const char *burst_name, const char *rate_name,
			 unsigned rate, unsigned *burst)
{
	const struct ynode *v = ymap_get(limits, burst_name);
	char key[KEY_MAX];

	if (!v)
		*burst = rate;
	else if (rate > 0 && *burst == 0)
		return fail(ld, v->line, key_join(key, sizeof(key), prefix, burst_name),
			    "must be at least 1 when %s is above 0", rate_name);
	return 0;
}

#define RATE_MAX	1000000u
#define RATE_FIELD(key, type, member) \
	{ .name = key, .load = load_uint, .off = offsetof(type, member), \
	  .min = 0, .max = RATE_MAX, .range = "0 and 1000000" }

/* ------------------------------------------------------------------ */
/* Kernel                                                              */

static int load_absolute_path(struct loader *ld, const struct ynode *v, const char *key,
			      void *dst, const struct field *f)
{
	int err = load_string(ld, v, key, dst, f);

	if (!err && **field_str(dst, f) != '/')
		return fail(ld, v->line, key, "must be an absolute path");
	return err;
}

/* "" is allowed: it keeps the sockops program unattached. */
static int load_cgroup(struct loader *ld, const struct ynode *v, const char *key,
		       void *dst, const struct field *f)
{
	int err = load_string(ld, v, key, dst, f);
	const char *path = err ? NULL : *field_str(dst, f);

	if (path && *path && *path != '/')
		return fail(ld, v->line, key, "must be an absolute path, or \"\" for none");
	return err;
}

/* What the kernel's dev_valid_name() refuses, or NULL. */
static const char *invalid_ifname(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len >= IFNAMSIZ)
		return "must be 1 to 15 characters";
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return "must not be . or ..";
	for (const char *p = name; *p; p++)
		if (*p == '/' || *p == ':' || isspace((unsigned char)*p))
			return "must not contain '/', ':' or spaces";
	return NULL;
}

static int load_xdp_interfaces(struct loader *ld, const struct ynode *v, const char *key,
			       void *dst, const struct field *f)
{
	struct kernel_cfg *k = dst;
	char item[KEY_MAX];

	(void)f;
	if (v->type != YNODE_SEQUENCE)
		return fail(ld, v->line, key, "must be a list of interface names");
	if (v->nkids > SLUICE_MAX_XDP_IFACES)
		return fail(ld, v->line, key, "at most %d interfaces", SLUICE_MAX_XDP_IFACES);
	if (v->nkids == 0)
		return 0;
	if (!(k->xdp_interfaces = calloc(v->nkids, sizeof(*k->xdp_interfaces))))
		return fail_oom(ld);
	k->n_xdp_interfaces = v->nkids;
	for (size_t i = 0; i < v->nkids; i++) {
		char **name = &k->xdp_interfaces[i];
		const char *why;

		snprintf(item, sizeof(item), "%s[%zu]", key, i);
		int err = expand_scalar(ld, v->kids[i], item, "an interface name", name);
		if (err)
			return err;
		if ((why = invalid_ifname(*name)))
			return fail(ld, v->kids[i]->line, item, "%s", why);
		for (size_t j = 0; j < i; j++)
			if (strcmp(k->xdp_interfaces[j], *name) == 0)
				return fail(ld, v->kids[i]->line, item,
					    "duplicate interface %s (also %s[%zu])", *name, key, j);
	}
	return 0;
}

static int load_xdp_mode(struct loader *ld, const struct ynode *v, const char *key,
			 void *dst, const struct field *f)
{
	static const char *const modes[] = { "auto", "native", "generic" };
	struct kernel_cfg *k = dst;
	unsigned mode;
	int err = load_word(ld, v, key, modes, sizeof(modes) / sizeof(modes[0]),
			    "one of auto, native, generic", &mode);

	(void)f;
	if (!err)
		k->xdp_mode = (enum xdp_mode_cfg)mode;
	return err;
}

static const struct field xdp_fields[] = {
	{ .name = "interfaces", .load = load_xdp_interfaces },
	{ .name = "mode", .load = load_xdp_mode },
};

static const struct field kernel_limit_fields[] = {
	RATE_FIELD("source_conn_rate", struct kernel_cfg, source_conn_rate),
	RATE_FIELD("source_conn_burst", struct kernel_cfg, source_conn_burst),
};

static int load_xdp(struct loader *ld, const struct ynode *v, const char *key,
		    void *dst, const struct field *f)
{
	(void)f;
	return load_mapping(ld, v, key, xdp_fields, sizeof(xdp_fields) / sizeof(xdp_fields[0]),
			    dst);
}

static int load_kernel_limits(struct loader *ld, const struct ynode *v, const char *key,
			      void *dst, const struct field *f)
{
	struct kernel_cfg *k = dst;
	int err = load_mapping(ld, v, key, kernel_limit_fields,
			       sizeof(kernel_limit_fields) / sizeof(kernel_limit_fields[0]), k);

	(void)f;
	return err ? err : default_burst(ld, v, key, "source_conn_burst", "source_conn_rate",
					 k->source_conn_rate, &k->source_conn_burst);
}

static int load_deny(struct loader *ld, const struct ynode *v, const char *key,
		     void *dst, const struct field *f)
{
	struct kernel_cfg *k = dst;

	(void)f;
	return load_cidr_list(ld, v, key, &k->deny, &k->ndeny);
}

#define KERNEL_OFF(member) offsetof(struct kernel_cfg, member)

static const struct field kernel_fields[] = {
	{ .name = "enabled", .load = load_bool, .off = KERNEL_OFF(enabled) },
	{ .name = "pin_root", .load = load_absolute_path, .off = KERNEL_OFF(pin_root) },
	{ .name = "pin_links", .load = load_bool, .off = KERNEL_OFF(pin_links) },
	{ .name = "cgroup", .load = load_cgroup, .off = KERNEL_OFF(cgroup) },
	{ .name = "xdp", .load = load_xdp },
	{ .name = "limits", .load = load_kernel_limits },
	{ .name = "deny", .load = load_deny },
	{ .name = "learned_ttl", .load = load_duration, .off = KERNEL_OFF(learned_ttl_ms),
	  .min = 1000, .max = 86400000, .range = "1s and 24h" },
};

static int load_kernel(struct loader *ld, const struct ynode *v, const char *key,
		       void *dst, const struct field *f)
{
	return load_mapping(ld, v, key, kernel_fields,
			    sizeof(kernel_fields) / sizeof(kernel_fields[0]),
			    (char *)dst + f->off);
}

/* The paths the file left out; an absent kernel: section gets them all. */
static int set_kernel_defaults(struct loader *ld)
{
	struct kernel_cfg *k = &ld->cfg->kernel;

	if (!k->pin_root && !(k->pin_root = strdup(SLUICE_PIN_ROOT)))
		return fail_oom(ld);
	if (!k->cgroup && !(k->cgroup = strdup(CGROUP_DEFAULT)))
		return fail_oom(ld);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Tenants                                                             */

/* Tenant ids index kernel arrays; 0 is the anonymous tenant. */
#define TENANT_ID_MAX	(SLUICE_MAX_TENANTS - 1)
#define TENANT_NAME_MAX	63
_Static_assert(TENANT_ID_MAX == 1023, "tenant id range text below says 1..1023");

static int load_tenant_name(struct loader *ld, const struct ynode *v, const char *key,
			    void *dst, const struct field *f)
{
	int err = load_backend_name(ld, v, key, dst, f);
	const char *name = err ? NULL : *field_str(dst, f);

	if (name && strlen(name) > TENANT_NAME_MAX)
		return fail(ld, v->line, key, "must be at most %d characters", TENANT_NAME_MAX);
	if (name && strcmp(name, "anonymous") == 0)
		return fail(ld, v->line, key, "anonymous is reserved for clients of no tenant");
	return err;
}

static int load_tenant_networks(struct loader *ld, const struct ynode *v, const char *key,
				void *dst, const struct field *f)
{
	struct tenant_cfg *t = dst;

	(void)f;
	return load_cidr_list(ld, v, key, &t->networks, &t->nnetworks);
}

#define TENANT_OFF(member) offsetof(struct tenant_cfg, member)

static int load_u64(struct loader *ld, const struct ynode *v, const char *key,
		    void *dst, const struct field *f)
{
	unsigned long long n;
	int err = load_number(ld, v, key, f, "a non-negative integer", parse_plain_uint, &n);

	if (!err)
		*(__u64 *)((char *)dst + f->off) = n;
	return err;
}

/* The request and token limits of one scope (struct sluice_limits at
 * `base` inside `type`); 0 or absent means unlimited. */
#define QUOTA_MAX	1000000000000000ull
#define QUOTA_FIELD(key, type, member) \
	{ .name = key, .load = load_u64, .off = offsetof(type, member), \
	  .min = 0, .max = QUOTA_MAX, .range = "0 and 10^15" }
#define QUOTA_FIELDS(type, base) \
	QUOTA_FIELD("requests_per_minute", type, base.requests_per_minute), \
	QUOTA_FIELD("tokens_per_minute", type, base.tokens_per_minute), \
	QUOTA_FIELD("input_tokens_per_minute", type, base.input_tokens_per_minute), \
	QUOTA_FIELD("output_tokens_per_minute", type, base.output_tokens_per_minute), \
	QUOTA_FIELD("tokens_per_day", type, base.tokens_per_day), \
	QUOTA_FIELD("tokens_per_month", type, base.tokens_per_month), \
	{ .name = "concurrent", .load = load_uint, .off = offsetof(type, base.concurrent), \
	  .min = 0, .max = 1000000, .range = "0 and 1000000" }

static const struct field tenant_limit_fields[] = {
	RATE_FIELD("conn_rate", struct tenant_cfg, conn_rate),
	RATE_FIELD("conn_burst", struct tenant_cfg, conn_burst),
	RATE_FIELD("max_connections", struct tenant_cfg, max_connections),
	QUOTA_FIELDS(struct tenant_cfg, limits),
};

static const struct field key_limit_fields[] = {
	QUOTA_FIELDS(struct tenant_cfg, key_limits),
};

static const struct field model_limit_fields[] = {
	{ .name = "model", .load = load_nonempty_string,
	  .off = offsetof(struct model_limits_cfg, model), .required = true },
	QUOTA_FIELDS(struct model_limits_cfg, limits),
};

static int load_tenant_limits(struct loader *ld, const struct ynode *v, const char *key,
			      void *dst, const struct field *f)
{
	struct tenant_cfg *t = dst;
	int err = load_mapping(ld, v, key, tenant_limit_fields,
			       sizeof(tenant_limit_fields) / sizeof(tenant_limit_fields[0]), t);

	(void)f;
	return err ? err : default_burst(ld, v, key, "conn_burst", "conn_rate",
					 t->conn_rate, &t->conn_burst);
}

static int load_tenant_workers(struct loader *ld, const struct ynode *v, const char *key,
			       void *dst, const struct field *f)
{
	static const char *const kinds[] = { "shared", "dedicated" };
	struct tenant_cfg *t = dst;
	unsigned kind;
	int err = load_word(ld, v, key, kinds, sizeof(kinds) / sizeof(kinds[0]),
			    "shared or dedicated", &kind);

	(void)f;
	if (!err)
		t->workers = (enum tenant_workers)kind;
	return err;
}

static int load_key_limits(struct loader *ld, const struct ynode *v, const char *key,
			   void *dst, const struct field *f)
{
	struct tenant_cfg *t = dst;

	(void)f;
	t->has_key_limits = true;
	return load_mapping(ld, v, key, key_limit_fields,
			    sizeof(key_limit_fields) / sizeof(key_limit_fields[0]), t);
}

static int load_model_limits(struct loader *ld, const struct ynode *v, const char *key,
			     void *dst, const struct field *f)
{
	struct tenant_cfg *t = dst;
	char item[KEY_MAX];

	(void)f;
	if (v->type != YNODE_SEQUENCE)
		return fail(ld, v->line, key, "must be a list of {model: GLOB, limits...}");
	if (v->nkids == 0)
		return 0;
	if (!(t->model_limits = calloc(v->nkids, sizeof(*t->model_limits))))
		return fail_oom(ld);
	t->nmodel_limits = v->nkids;
	for (size_t i = 0; i < v->nkids; i++) {
		snprintf(item, sizeof(item), "%s[%zu]", key, i);
		int err = load_mapping(ld, v->kids[i], item, model_limit_fields,
				       sizeof(model_limit_fields) / sizeof(model_limit_fields[0]),
				       &t->model_limits[i]);
		if (err)
			return err;
	}
	return 0;
}

static int load_tenant_models(struct loader *ld, const struct ynode *v, const char *key,
			      void *dst, const struct field *f)
{
	struct tenant_cfg *t = dst;

	(void)f;
	return load_string_list(ld, v, key, &t->models, &t->nmodels);
}

static int load_client_subjects(struct loader *ld, const struct ynode *v, const char *key,
				void *dst, const struct field *f)
{
	struct tenant_cfg *t = dst;

	(void)f;
	return load_string_list(ld, v, key, &t->client_subjects, &t->nclient_subjects);
}

/* tenants[].id was a position-free slot number; state now follows the
 * name (quota/tenants.c), so an old file is told, not silently changed. */
static int load_tenant_id_removed(struct loader *ld, const struct ynode *v, const char *key,
				  void *dst, const struct field *f)
{
	(void)dst;
	(void)f;
	return fail(ld, v->line, key, "no longer supported: a tenant's state follows its name; "
		    "remove the key");
}

static const struct field tenant_fields[] = {
	{ .name = "name", .load = load_tenant_name, .off = TENANT_OFF(name), .required = true },
	{ .name = "id", .load = load_tenant_id_removed },
	{ .name = "networks", .load = load_tenant_networks },
	{ .name = "limits", .load = load_tenant_limits },
	{ .name = "workers", .load = load_tenant_workers },
	/* written by sluicectl key create, so it need not exist yet */
	{ .name = "keys_file", .load = load_absolute_path, .off = TENANT_OFF(keys_file) },
	{ .name = "models", .load = load_tenant_models },
	{ .name = "client_subjects", .load = load_client_subjects },
	{ .name = "key_limits", .load = load_key_limits },
	{ .name = "model_limits", .load = load_model_limits },
	{ .name = "guardrails", .load = load_nonempty_string, .off = TENANT_OFF(guardrails) },
};

static int check_tenant_name(struct loader *ld, const struct ynode *item, size_t i)
{
	const struct tenant_cfg *t = ld->cfg->tenants;
	char key[KEY_MAX];

	for (size_t j = 0; j < i; j++) {
		if (strcmp(t[j].name, t[i].name) != 0)
			continue;
		snprintf(key, sizeof(key), "tenants[%zu].name", i);
		return fail(ld, ymap_get(item, "name")->line, key,
			    "duplicate tenant name %s (also tenants[%zu])", t[i].name, j);
	}
	return 0;
}

/* A network names one tenant: the same one in two tenants is an error
 * (duplicates inside one tenant's list were refused while loading it). */
static int check_tenant_networks(struct loader *ld, const struct ynode *item, size_t i)
{
	const struct tenant_cfg *t = ld->cfg->tenants;
	const struct ynode *nets = ymap_get(item, "networks");
	char key[KEY_MAX];

	for (size_t n = 0; n < t[i].nnetworks; n++) {
		for (size_t j = 0; j < i; j++) {
			size_t k = cidr_find(t[j].networks, t[j].nnetworks, &t[i].networks[n]);

			if (k == t[j].nnetworks)
				continue;
			snprintf(key, sizeof(key), "tenants[%zu].networks[%zu]", i, n);
			return fail(ld, nets->kids[n]->line, key,
				    "duplicate network %s (also tenants[%zu].networks[%zu], %s)",
				    t[i].networks[n].text, j, k, t[j].name);
		}
	}
	return 0;
}

static int load_tenant(struct loader *ld, const struct ynode *list, size_t i)
{
	struct tenant_cfg *t = &ld->cfg->tenants[i];
	const struct ynode *item = list->kids[i];
	char prefix[KEY_MAX];

	t->id = (unsigned)i + 1;
	snprintf(prefix, sizeof(prefix), "tenants[%zu]", i);
	int err = load_mapping(ld, item, prefix, tenant_fields,
			       sizeof(tenant_fields) / sizeof(tenant_fields[0]), t);
	if (!err)
		err = check_tenant_name(ld, item, i);
	return err ? err : check_tenant_networks(ld, item, i);
}

static int load_tenants(struct loader *ld, const struct ynode *v, const char *key,
			void *dst, const struct field *f)
{
	struct sluice_config *cfg = dst;

	(void)f;
	if (v->type != YNODE_SEQUENCE)
		return fail(ld, v->line, key, "must be a list of tenants");
	if (v->nkids > TENANT_ID_MAX)
		return fail(ld, v->line, key, "at most %d tenants", TENANT_ID_MAX);
	if (v->nkids == 0)
		return 0;
	if (!(cfg->tenants = calloc(v->nkids, sizeof(*cfg->tenants))))
		return fail_oom(ld);
	cfg->ntenants = v->nkids;
	for (size_t i = 0; i < v->nkids; i++) {
		int err = load_tenant(ld, v, i);
		if (err)
			return err;
	}
	return 0;
}

/* The line of a key the mapping m is known to hold. */
static unsigned key_line(const struct ynode *m, const char *name)
{
	for (size_t i = 0; i < ymap_len(m); i++)
		if (strcmp(ymap_key(m, i)->value, name) == 0)
			return ymap_key(m, i)->line;
	return m->line;
}

/* Each dedicated tenant gets a worker group of its own, and one worker
 * at least stays shared for everyone else.  Checked once the whole file
 * is read, since workers: may come after tenants:. */
static int check_dedicated(struct loader *ld, const struct ynode *root)
{
	const struct sluice_config *cfg = ld->cfg;
	unsigned n = 0;

	for (size_t i = 0; i < cfg->ntenants; i++)
		n += cfg->tenants[i].workers == TENANT_WORKERS_DEDICATED;
	if (n == 0)
		return 0;
	unsigned line = key_line(root, "tenants");
	if (n > SLUICE_MAX_GROUPS - 1)
		return fail(ld, line, "tenants", "at most %d tenants can be dedicated",
			    SLUICE_MAX_GROUPS - 1);
	if (n + 1 > cfg->workers)
		return fail(ld, line, "tenants",
			    "%u dedicated %s at least %u workers (workers: %u)",
			    n, n == 1 ? "tenant needs" : "tenants need", n + 1, cfg->workers);
	return 0;
}

/* ------------------------------------------------------------------ */
/* TLS                                                                 */

#define DNS_NAME_MAX	253
#define DNS_LABEL_MAX	63

/* Letters, digits and inner hyphens in dot-separated labels, without the
 * trailing dot SNI never carries (RFC 6066 3).  A leading "*." makes a
 * wildcard that stands for exactly one label. */
static bool valid_sni_name(const char *s)
{
	static const char label_chars[] = "abcdefghijklmnopqrstuvwxyz"
					  "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-";

	if (strncmp(s, "*.", 2) == 0)
		s += 2;
	if (*s == '\0' || strlen(s) > DNS_NAME_MAX)
		return false;
	for (;;) {
		size_t len = strspn(s, label_chars);

		if (len == 0 || len > DNS_LABEL_MAX || s[0] == '-' || s[len - 1] == '-')
			return false;
		s += len;
		if (*s == '\0')
			return true;
		if (*s != '.')
			return false;
		s++;
	}
}

static int load_readable_file(struct loader *ld, const struct ynode *v, const char *key,
			      void *dst, const struct field *f)
{
	int err = load_nonempty_string(ld, v, key, dst, f);
	const char *path = err ? NULL : *field_str(dst, f);

	if (path && access(path, R_OK) != 0)
		return fail(ld, v->line, key, "cannot read %s: %s", path, strerror(errno));
	return err;
}

static int load_min_version(struct loader *ld, const struct ynode *v, const char *key,
			    void *dst, const struct field *f)
{
	static const char *const versions[] = { "1.2", "1.3" };
	unsigned version;
	int err = load_word(ld, v, key, versions, sizeof(versions) / sizeof(versions[0]),
			    "\"1.2\" or \"1.3\"", &version);

	if (!err)
		*(enum tls_version_cfg *)((char *)dst + f->off) = (enum tls_version_cfg)version;
	return err;
}

static int load_sni_names(struct loader *ld, const struct ynode *v, const char *key,
			  void *dst, const struct field *f)
{
	struct tls_sni_cfg *e = dst;
	char item[KEY_MAX];

	(void)f;
	if (v->type != YNODE_SEQUENCE)
		return fail(ld, v->line, key, "must be a list of host names");
	if (v->nkids == 0)
		return fail(ld, v->line, key, "must not be empty");
	if (!(e->names = calloc(v->nkids, sizeof(*e->names))))
		return fail_oom(ld);
	e->nnames = v->nkids;
	for (size_t i = 0; i < v->nkids; i++) {
		snprintf(item, sizeof(item), "%s[%zu]", key, i);
		int err = expand_scalar(ld, v->kids[i], item, "a host name", &e->names[i]);
		if (err)
			return err;
		if (!valid_sni_name(e->names[i]))
			return fail(ld, v->kids[i]->line, item, "must be a host name "
				    "such as api.example.com or *.corp.example");
	}
	return 0;
}

#define SNI_OFF(member) offsetof(struct tls_sni_cfg, member)

static const struct field sni_fields[] = {
	{ .name = "names", .load = load_sni_names, .required = true },
	{ .name = "cert", .load = load_readable_file, .off = SNI_OFF(cert), .required = true },
	{ .name = "key", .load = load_readable_file, .off = SNI_OFF(key), .required = true },
};

/* A name picks one certificate: the same name (any case) twice is an error,
 * inside one entry or across entries up to i. */
static int check_sni_names(struct loader *ld, const struct ynode *item, size_t i)
{
	const struct tls_sni_cfg *sni = ld->cfg->tls.sni;
	const struct ynode *names = ymap_get(item, "names");
	char key[KEY_MAX];

	for (size_t n = 0; n < sni[i].nnames; n++) {
		for (size_t j = 0; j <= i; j++) {
			size_t end = j == i ? n : sni[j].nnames;

			for (size_t m = 0; m < end; m++) {
				if (strcasecmp(sni[j].names[m], sni[i].names[n]) != 0)
					continue;
				snprintf(key, sizeof(key), "tls.sni[%zu].names[%zu]", i, n);
				return fail(ld, names->kids[n]->line, key,
					    "duplicate name %s (also tls.sni[%zu].names[%zu])",
					    sni[i].names[n], j, m);
			}
		}
	}
	return 0;
}

static int load_sni(struct loader *ld, const struct ynode *v, const char *key,
		    void *dst, const struct field *f)
{
	struct tls_listen_cfg *t = dst;
	char prefix[KEY_MAX];

	(void)f;
	if (v->type != YNODE_SEQUENCE)
		return fail(ld, v->line, key, "must be a list of certificates");
	if (v->nkids == 0)
		return 0;
	if (!(t->sni = calloc(v->nkids, sizeof(*t->sni))))
		return fail_oom(ld);
	t->nsni = v->nkids;
	for (size_t i = 0; i < v->nkids; i++) {
		snprintf(prefix, sizeof(prefix), "%s[%zu]", key, i);
		int err = load_mapping(ld, v->kids[i], prefix, sni_fields,
				       sizeof(sni_fields) / sizeof(sni_fields[0]), &t->sni[i]);
		if (!err)
			err = check_sni_names(ld, v->kids[i], i);
		if (err)
			return err;
	}
	return 0;
}

#define TLS_OFF(member) offsetof(struct tls_listen_cfg, member)

static const struct field tls_fields[] = {
	{ .name = "cert", .load = load_readable_file, .off = TLS_OFF(cert), .required = true },
	{ .name = "key", .load = load_readable_file, .off = TLS_OFF(key), .required = true },
	{ .name = "min_version", .load = load_min_version, .off = TLS_OFF(min_version) },
	{ .name = "ciphers", .load = load_nonempty_string, .off = TLS_OFF(ciphers) },
	{ .name = "ciphersuites", .load = load_nonempty_string, .off = TLS_OFF(ciphersuites) },
	{ .name = "groups", .load = load_nonempty_string, .off = TLS_OFF(groups) },
	{ .name = "client_ca", .load = load_readable_file, .off = TLS_OFF(client_ca) },
	{ .name = "sni", .load = load_sni },
	{ .name = "ktls", .load = load_bool, .off = TLS_OFF(ktls) },
};

static int load_tls(struct loader *ld, const struct ynode *v, const char *key,
		    void *dst, const struct field *f)
{
	struct tls_listen_cfg *t = (struct tls_listen_cfg *)((char *)dst + f->off);

	t->enabled = true;
	t->ktls = true;
	return load_mapping(ld, v, key, tls_fields, sizeof(tls_fields) / sizeof(tls_fields[0]), t);
}

/* ------------------------------------------------------------------ */
/* Authentication and quotas                                           */

/* auth.anonymous: "allow", "deny" or a tenant name, resolved once the
 * tenants are known (check_auth). */
static int load_anonymous(struct loader *ld, const struct ynode *v, const char *key,
			  void *dst, const struct field *f)
{
	struct auth_cfg *a = dst;
	int err = expand_scalar(ld, v, key, "deny, allow or a tenant name", &a->anonymous_name);

	(void)f;
	if (err)
		return err;
	if (strcmp(a->anonymous_name, "deny") == 0)
		a->anonymous = ANON_DENY;
	else if (strcmp(a->anonymous_name, "allow") == 0)
		a->anonymous = ANON_ALLOW;
	else
		a->anonymous = ANON_TENANT;
	return 0;
}

static int load_http_url(struct loader *ld, const struct ynode *v, const char *key,
			 void *dst, const struct field *f)
{
	int err = load_nonempty_string(ld, v, key, dst, f);
	const char *url = err ? NULL : *field_str(dst, f);

	if (url && strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
		return fail(ld, v->line, key, "must be an http:// or https:// URL");
	return err;
}

#define JWT_OFF(member) offsetof(struct jwt_cfg, member)

static const struct field jwt_fields[] = {
	{ .name = "jwks_file", .load = load_readable_file, .off = JWT_OFF(jwks_file) },
	{ .name = "jwks_url", .load = load_http_url, .off = JWT_OFF(jwks_url) },
	{ .name = "refresh", .load = load_duration, .off = JWT_OFF(refresh_ms),
	  .min = 1000, .max = DAY_MS, .range = "1s and 24h" },
	{ .name = "ca_file", .load = load_readable_file, .off = JWT_OFF(ca_file) },
	{ .name = "issuer", .load = load_nonempty_string, .off = JWT_OFF(issuer) },
	{ .name = "audience", .load = load_nonempty_string, .off = JWT_OFF(audience) },
	{ .name = "tenant_claim", .load = load_nonempty_string, .off = JWT_OFF(tenant_claim) },
	{ .name = "models_claim", .load = load_nonempty_string, .off = JWT_OFF(models_claim) },
	{ .name = "leeway", .load = load_uint, .off = JWT_OFF(leeway_s),
	  .min = 0, .max = 3600, .range = "0 and 3600 (seconds)" },
};

static int load_jwt(struct loader *ld, const struct ynode *v, const char *key,
		    void *dst, const struct field *f)
{
	struct jwt_cfg *j = &((struct auth_cfg *)dst)->jwt;
	char k[KEY_MAX];

	(void)f;
	j->enabled = true;
	int err = load_mapping(ld, v, key, jwt_fields, sizeof(jwt_fields) / sizeof(jwt_fields[0]), j);
	if (!err && !j->jwks_file && !j->jwks_url)
		return fail(ld, v->line, key_join(k, sizeof(k), key, "jwks_file"),
			    "jwks_file or jwks_url is required");
	if (!err && !j->tenant_claim && !(j->tenant_claim = strdup("tenant")))
		return fail_oom(ld);
	return err;
}

static const struct field auth_fields[] = {
	{ .name = "anonymous", .load = load_anonymous },
	{ .name = "jwt", .load = load_jwt },
};

static int load_auth(struct loader *ld, const struct ynode *v, const char *key,
		     void *dst, const struct field *f)
{
	struct auth_cfg *a = (struct auth_cfg *)((char *)dst + f->off);

	a->present = true;
	a->anonymous = ANON_DENY;
	a->jwt.refresh_ms = 300000;
	a->jwt.leeway_s = 60;
	return load_mapping(ld, v, key, auth_fields, sizeof(auth_fields) / sizeof(auth_fields[0]), a);
}

/* The anonymous tenant must be one of tenants:, which may come later in
 * the file. */
static int check_auth(struct loader *ld, const struct ynode *root)
{
	struct auth_cfg *a = &ld->cfg->auth;
	const struct ynode *auth = ymap_get(root, "auth");

	if (a->anonymous != ANON_TENANT)
		return 0;
	const struct tenant_cfg *t = config_tenant_by_name(ld->cfg, a->anonymous_name);
	if (!t)
		return fail(ld, key_line(auth, "anonymous"), "auth.anonymous",
			    "must be deny, allow or the name of a tenant (no tenant %s)",
			    a->anonymous_name);
	a->anonymous_tenant = t->id;
	return 0;
}

static int load_redis_url(struct loader *ld, const struct ynode *v, const char *key,
			  void *dst, const struct field *f)
{
	int err = load_nonempty_string(ld, v, key, dst, f);
	const char *url = err ? NULL : *field_str(dst, f);

	if (url && strncmp(url, "redis://", 8) != 0 && strncmp(url, "unix://", 7) != 0)
		return fail(ld, v->line, key,
			    "must be redis://[:password@]host:port[/db] or unix:///path");
	return err;
}

static int load_on_error(struct loader *ld, const struct ynode *v, const char *key,
			 void *dst, const struct field *f)
{
	static const char *const policies[] = { "closed", "open" };
	unsigned open;
	int err = load_word(ld, v, key, policies, 2, "open or closed", &open);

	(void)f;
	if (!err)
		((struct quota_cfg *)dst)->fail_open = open;
	return err;
}

#define QUOTA_OFF(member) offsetof(struct quota_cfg, member)

static const struct field redis_fields[] = {
	{ .name = "url", .load = load_redis_url, .off = QUOTA_OFF(redis_url), .required = true },
	{ .name = "on_error", .load = load_on_error },
	{ .name = "timeout", .load = load_duration, .off = QUOTA_OFF(redis_timeout_ms),
	  .min = 1, .max = 10000, .range = "1ms and 10s" },
	{ .name = "lease_percent", .load = load_uint, .off = QUOTA_OFF(lease_percent),
	  .min = 1, .max = 100, .range = "1 and 100" },
};

static int load_redis(struct loader *ld, const struct ynode *v, const char *key,
		      void *dst, const struct field *f)
{
	(void)f;
	((struct quota_cfg *)dst)->redis = true;
	return load_mapping(ld, v, key, redis_fields,
			    sizeof(redis_fields) / sizeof(redis_fields[0]), dst);
}

static const struct field quota_fields[] = {
	{ .name = "redis", .load = load_redis },
	{ .name = "default_max_tokens", .load = load_uint, .off = QUOTA_OFF(default_max_tokens),
	  .min = 1, .max = 10000000, .range = "1 and 10000000" },
	{ .name = "bytes_per_token", .load = load_uint, .off = QUOTA_OFF(bytes_per_token),
	  .min = 1, .max = 64, .range = "1 and 64" },
	{ .name = "max_scopes_per_tenant", .load = load_uint,
	  .off = QUOTA_OFF(max_scopes_per_tenant), .min = 1, .max = SLUICE_MAX_QUOTA_SLOTS,
	  .range = "1 and 8192" },
};

static int load_quota(struct loader *ld, const struct ynode *v, const char *key,
		      void *dst, const struct field *f)
{
	return load_mapping(ld, v, key, quota_fields, sizeof(quota_fields) / sizeof(quota_fields[0]),
			    (char *)dst + f->off);
}

/* ------------------------------------------------------------------ */
/* The admin listener                                                  */

#define ADMIN_OFF(member) offsetof(struct admin_cfg, member)
#define ADMIN_TOKEN_MIN	16

static int load_admin_listen(struct loader *ld, const struct ynode *v, const char *key,
			     void *dst, const struct field *f)
{
	struct admin_cfg *a = dst;
	int err = load_nonempty_string(ld, v, key, dst, f);

	return err ? err : resolve_listen_addr(ld, a->listen, v->line, key, &a->listen_addr,
					       &a->listen_addrlen);
}

/* The token travels in an Authorization header: visible ASCII, no spaces.
 * An empty one (an unset ${VAR}) is refused rather than read as "no
 * token", which would open the listener without anyone noticing. */
static int load_admin_token(struct loader *ld, const struct ynode *v, const char *key,
			    void *dst, const struct field *f)
{
	int err = load_string(ld, v, key, dst, f);
	const char *t = err ? NULL : *field_str(dst, f);

	if (t && !*t)
		return fail(ld, v->line, key,
			    "is empty (an unset environment variable?); leave token out for none");
	if (t && strlen(t) < ADMIN_TOKEN_MIN)
		return fail(ld, v->line, key, "must be at least %d characters", ADMIN_TOKEN_MIN);
	for (; t && *t; t++)
		if (*t <= ' ' || *t > '~')
			return fail(ld, v->line, key, "must be printable ASCII without spaces");
	return err;
}

static const struct field admin_fields[] = {
	{ .name = "listen", .load = load_admin_listen, .off = ADMIN_OFF(listen), .required = true },
	{ .name = "token", .load = load_admin_token, .off = ADMIN_OFF(token) },
};

static int load_admin(struct loader *ld, const struct ynode *v, const char *key,
		      void *dst, const struct field *f)
{
	struct admin_cfg *a = (struct admin_cfg *)((char *)dst + f->off);

	a->enabled = true;
	return load_mapping(ld, v, key, admin_fields,
			    sizeof(admin_fields) / sizeof(admin_fields[0]), a);
}

static uint16_t sockaddr_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

/* The kernel half knows the gateway by its port alone (XDP, sockops): an
 * admin listener on the same port, on whatever address, would have its
 * connections counted, limited and tagged as the API's. */
static int check_admin(struct loader *ld, const struct ynode *root)
{
	const struct sluice_config *cfg = ld->cfg;
	uint16_t port = sockaddr_port(&cfg->listen_addr);

	if (!cfg->admin.enabled || sockaddr_port(&cfg->admin.listen_addr) != port)
		return 0;
	return fail(ld, key_line(ymap_get(root, "admin"), "listen"), "admin.listen",
		    "must use another port than listen (%u)", (unsigned)port);
}

/* ------------------------------------------------------------------ */
/* Forwarding: what the backend learns about the client                */

#define FWD_OFF(member) offsetof(struct forwarding_cfg, member)

static int load_trusted_proxies(struct loader *ld, const struct ynode *v, const char *key,
				void *dst, const struct field *f)
{
	struct forwarding_cfg *fw = dst;

	(void)f;
	return load_cidr_list(ld, v, key, &fw->trusted_proxies, &fw->ntrusted_proxies);
}

static int load_forward_headers(struct loader *ld, const struct ynode *v, const char *key,
				void *dst, const struct field *f)
{
	/* In the order of enum forward_headers_cfg. */
	static const char *const words[] = { "x-forwarded", "forwarded", "both", "none" };
	unsigned which;
	int err = load_word(ld, v, key, words, sizeof(words) / sizeof(words[0]),
			    "x-forwarded, forwarded, both or none", &which);

	(void)f;
	if (!err)
		((struct forwarding_cfg *)dst)->headers = (enum forward_headers_cfg)which;
	return err;
}

static const struct field forwarding_fields[] = {
	{ .name = "trusted_proxies", .load = load_trusted_proxies },
	{ .name = "headers", .load = load_forward_headers },
	{ .name = "tenant_header", .load = load_bool, .off = FWD_OFF(tenant_header) },
};

static int load_forwarding(struct loader *ld, const struct ynode *v, const char *key,
			   void *dst, const struct field *f)
{
	return load_mapping(ld, v, key, forwarding_fields,
			    sizeof(forwarding_fields) / sizeof(forwarding_fields[0]),
			    (char *)dst + f->off);
}

bool config_cidr_contains(const struct cidr_cfg *list, size_t n, const uint8_t addr[16])
{
	for (size_t i = 0; i < n; i++) {
		const struct cidr_cfg *c = &list[i];
		unsigned whole = c->prefixlen / 8, bits = c->prefixlen % 8;
		uint8_t mask = (uint8_t)(0xff00u >> bits);

		if (memcmp(c->bytes, addr, whole) == 0 &&
		    (!bits || ((c->bytes[whole] ^ addr[whole]) & mask) == 0))
			return true;
	}
	return false;
}

/* ------------------------------------------------------------------ */
/* Sections and the top level                                          */

/* ------------------------------------------------------------------ */
/* Routes                                                              */

#define TARGET_OFF(member) offsetof(struct route_target_cfg, member)
#define ROUTE_OFF(member) offsetof(struct route_cfg, member)
#define WEIGHT_MAX	1000000

static const struct field target_fields[] = {
	{ .name = "backend", .load = load_backend_name, .off = TARGET_OFF(backend_name),
	  .required = true },
	{ .name = "model", .load = load_nonempty_string, .off = TARGET_OFF(model) },
	{ .name = "weight", .load = load_uint, .off = TARGET_OFF(weight),
	  .min = 0, .max = WEIGHT_MAX, .range = "0 and 1000000" },
};

/* A fallback link has no weight: it is tried in its place in the chain. */
static const struct field fallback_fields[] = {
	{ .name = "backend", .load = load_backend_name, .off = TARGET_OFF(backend_name),
	  .required = true },
	{ .name = "model", .load = load_nonempty_string, .off = TARGET_OFF(model) },
	{ .name = "context_fallback", .load = load_bool, .off = TARGET_OFF(context_fallback) },
};

static int load_target_list(struct loader *ld, const struct ynode *v, const char *key,
			    bool arms, struct route_target_cfg **out, size_t *n)
{
	char item[KEY_MAX];

	if (v->type != YNODE_SEQUENCE)
		return fail(ld, v->line, key, "must be a list of {backend: NAME, model: NAME%s}",
			    arms ? ", weight: N" : "");
	if (arms && v->nkids == 0)
		return fail(ld, v->line, key, "must not be empty");
	if (v->nkids && !(*out = calloc(v->nkids, sizeof(**out))))
		return fail_oom(ld);
	*n = v->nkids;
	for (size_t i = 0; i < v->nkids; i++) {
		struct route_target_cfg *t = &(*out)[i];
		snprintf(item, sizeof(item), "%s[%zu]", key, i);
		t->weight = 1;
		t->line = v->kids[i]->line;
		int err = arms ? load_mapping(ld, v->kids[i], item, target_fields,
					      sizeof(target_fields) / sizeof(target_fields[0]), t)
			       : load_mapping(ld, v->kids[i], item, fallback_fields,
					      sizeof(fallback_fields) / sizeof(fallback_fields[0]), t);
		if (err)
			return err;
	}
	return 0;
}

static int load_route_targets(struct loader *ld, const struct ynode *v, const char *key,
			      void *dst, const struct field *f)
{
	struct route_cfg *r = dst;

	(void)f;
	int err = load_target_list(ld, v, key, true, &r->targets, &r->ntargets);
	unsigned long long sum = 0;
	for (size_t i = 0; !err && i < r->ntargets; i++)
		sum += r->targets[i].weight;
	if (!err && sum == 0)
		return fail(ld, v->line, key, "at least one target needs a weight above 0");
	return err;
}

static int load_route_fallback(struct loader *ld, const struct ynode *v, const char *key,
			       void *dst, const struct field *f)
{
	struct route_cfg *r = dst;

	(void)f;
	return load_target_list(ld, v, key, false, &r->fallback, &r->nfallback);
}

static int load_route_balance(struct loader *ld, const struct ynode *v, const char *key,
			      void *dst, const struct field *f)
{
	static const char *const names[] = { "weighted", "least_inflight", "peak_ewma" };
	struct route_cfg *r = dst;
	char *s;
	int err = expand_scalar(ld, v, key, "weighted, least_inflight or peak_ewma", &s);

	(void)f;
	if (err)
		return err;
	err = -EINVAL;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(s, names[i]) == 0) {
			r->balance = (enum route_balance_cfg)i;
			err = 0;
		}
	}
	free(s);
	return err ? fail(ld, v->line, key, "must be weighted, least_inflight or peak_ewma") : 0;
}

/* sticky: exactly one of {header: NAME}, {api_key: true}, {tenant: true}. */
struct sticky_tmp {
	char *header;
	bool api_key, tenant;
};

static const struct field sticky_fields[] = {
	{ .name = "header", .load = load_nonempty_string, .off = offsetof(struct sticky_tmp, header) },
	{ .name = "api_key", .load = load_bool, .off = offsetof(struct sticky_tmp, api_key) },
	{ .name = "tenant", .load = load_bool, .off = offsetof(struct sticky_tmp, tenant) },
};

static int load_route_sticky(struct loader *ld, const struct ynode *v, const char *key,
			     void *dst, const struct field *f)
{
	struct route_cfg *r = dst;
	struct sticky_tmp t = { 0 };

	(void)f;
	int err = load_mapping(ld, v, key, sticky_fields,
			       sizeof(sticky_fields) / sizeof(sticky_fields[0]), &t);
	if (err) {
		free(t.header);
		return err;
	}
	if ((t.header != NULL) + t.api_key + t.tenant != 1) {
		free(t.header);
		return fail(ld, v->line, key,
			    "must be one of {header: NAME}, {api_key: true}, {tenant: true}");
	}
	r->sticky_header = t.header;
	r->sticky = t.header ? ROUTE_STICKY_HEADER
		  : t.api_key ? ROUTE_STICKY_API_KEY : ROUTE_STICKY_TENANT;
	return 0;
}

static int load_match_header(struct loader *ld, const struct ynode *v, const char *key,
			     void *dst, const struct field *f)
{
	struct route_cfg *r = dst;

	(void)f;
	if (v->type != YNODE_MAPPING || ymap_len(v) != 1)
		return fail(ld, v->line, key, "must be one {HEADER: VALUE}");
	const struct ynode *k = ymap_key(v, 0);
	if (k->type != YNODE_SCALAR || !*k->value)
		return fail(ld, v->line, key, "must be one {HEADER: VALUE}");
	char hkey[KEY_MAX];
	key_join(hkey, sizeof(hkey), key, k->value);
	if (!(r->match_header = strdup(k->value)))
		return fail_oom(ld);
	return expand_scalar(ld, ymap_value(v, 0), hkey, "a string", &r->match_value);
}

static const struct field match_fields[] = {
	{ .name = "header", .load = load_match_header },
	{ .name = "tenant", .load = load_nonempty_string, .off = ROUTE_OFF(match_tenant) },
};

static int load_route_match(struct loader *ld, const struct ynode *v, const char *key,
			    void *dst, const struct field *f)
{
	(void)f;
	return load_mapping(ld, v, key, match_fields,
			    sizeof(match_fields) / sizeof(match_fields[0]), dst);
}

static const struct field retry_budget_fields[] = {
	{ .name = "percent", .load = load_uint, .off = ROUTE_OFF(retry_percent),
	  .min = 0, .max = 100, .range = "0 and 100" },
	{ .name = "min_retries", .load = load_uint, .off = ROUTE_OFF(retry_min),
	  .min = 0, .max = 1000000, .range = "0 and 1000000" },
};

static const struct field breaker_fields[] = {
	{ .name = "failures", .load = load_uint, .off = ROUTE_OFF(breaker_failures),
	  .min = 0, .max = 1000000, .range = "0 (off) and 1000000" },
	{ .name = "open", .load = load_duration, .off = ROUTE_OFF(breaker_open_ms),
	  .min = 1, .max = 3600000, .range = "1ms and 1h" },
};

static const struct field retry_fields[] = {
	{ .name = "backoff_base", .load = load_duration, .off = ROUTE_OFF(backoff_base_ms),
	  .min = 0, .max = 60000, .range = "0 (off) and 1m" },
	{ .name = "backoff_max", .load = load_duration, .off = ROUTE_OFF(backoff_max_ms),
	  .min = 0, .max = 600000, .range = "0 and 10m" },
};

static int load_retry(struct loader *ld, const struct ynode *v, const char *key,
		      void *dst, const struct field *f)
{
	(void)f;
	return load_mapping(ld, v, key, retry_fields,
			    sizeof(retry_fields) / sizeof(retry_fields[0]), dst);
}

static int load_retry_budget(struct loader *ld, const struct ynode *v, const char *key,
			     void *dst, const struct field *f)
{
	(void)f;
	return load_mapping(ld, v, key, retry_budget_fields,
			    sizeof(retry_budget_fields) / sizeof(retry_budget_fields[0]), dst);
}

static int load_breaker(struct loader *ld, const struct ynode *v, const char *key,
			void *dst, const struct field *f)
{
	(void)f;
	return load_mapping(ld, v, key, breaker_fields,
			    sizeof(breaker_fields) / sizeof(breaker_fields[0]), dst);
}

static const struct field route_fields[] = {
	{ .name = "model", .load = load_nonempty_string, .off = ROUTE_OFF(model), .required = true },
	{ .name = "targets", .load = load_route_targets, .required = true },
	{ .name = "fallback", .load = load_route_fallback },
	{ .name = "balance", .load = load_route_balance },
	{ .name = "sticky", .load = load_route_sticky },
	{ .name = "match", .load = load_route_match },
	{ .name = "retry_budget", .load = load_retry_budget },
	{ .name = "breaker", .load = load_breaker },
	{ .name = "retry", .load = load_retry },
};

static int load_routes(struct loader *ld, const struct ynode *v, const char *key,
		       void *dst, const struct field *f)
{
	struct sluice_config *cfg = dst;
	char item[KEY_MAX];

	(void)f;
	if (v->type != YNODE_SEQUENCE)
		return fail(ld, v->line, key, "must be a list of routes");
	if (v->nkids == 0)
		return 0;
	if (!(cfg->routes = calloc(v->nkids, sizeof(*cfg->routes))))
		return fail_oom(ld);
	cfg->nroutes = v->nkids;
	for (size_t i = 0; i < v->nkids; i++) {
		struct route_cfg *r = &cfg->routes[i];
		r->retry_percent = 20;
		r->retry_min = 3;
		r->breaker_failures = 5;
		r->breaker_open_ms = 10000;
		r->backoff_base_ms = 25;
		r->backoff_max_ms = 1000;
		r->line = v->kids[i]->line;
		snprintf(item, sizeof(item), "%s[%zu]", key, i);
		int err = load_mapping(ld, v->kids[i], item, route_fields,
				       sizeof(route_fields) / sizeof(route_fields[0]), r);
		if (err)
			return err;
	}
	return 0;
}

static int resolve_targets(struct loader *ld, size_t ri, const char *what,
			   struct route_target_cfg *t, size_t n)
{
	char key[KEY_MAX];

	for (size_t i = 0; i < n; i++) {
		size_t b = 0;
		while (b < ld->cfg->nbackends && strcmp(ld->cfg->backends[b].name, t[i].backend_name))
			b++;
		snprintf(key, sizeof(key), "routes[%zu].%s[%zu].backend", ri, what, i);
		if (b == ld->cfg->nbackends)
			return fail(ld, t[i].line, key, "no backend named %s", t[i].backend_name);
		t[i].backend = (unsigned)b;
	}
	return 0;
}

/* Once backends: is read too (it may come after routes:): every target
 * names a backend, and no route hides behind an earlier one that matches
 * everything for the same model. */
static int check_routes(struct loader *ld)
{
	struct sluice_config *cfg = ld->cfg;
	char key[KEY_MAX];

	for (size_t i = 0; i < cfg->nroutes; i++) {
		struct route_cfg *r = &cfg->routes[i];
		int err = resolve_targets(ld, i, "targets", r->targets, r->ntargets);
		if (!err)
			err = resolve_targets(ld, i, "fallback", r->fallback, r->nfallback);
		if (err)
			return err;
		for (size_t j = 0; j < i; j++) {
			const struct route_cfg *p = &cfg->routes[j];
			if (strcmp(p->model, r->model) || p->match_header || p->match_tenant)
				continue;
			snprintf(key, sizeof(key), "routes[%zu].model", i);
			return fail(ld, r->line, key,
				    "routes[%zu] already takes every request for %s "
				    "(give it a match: to share the name)", j, r->model);
		}
	}
	return 0;
}

#define CFG_OFF(member) offsetof(struct sluice_config, member)

static const struct field limit_fields[] = {
	{ .name = "max_body_bytes", .load = load_size, .off = CFG_OFF(max_body_bytes),
	  .min = 1024, .max = 1u << 30, .range = "1KiB and 1GiB" },
	{ .name = "max_header_bytes", .load = load_size, .off = CFG_OFF(max_header_bytes),
	  .min = 1024, .max = 1u << 20, .range = "1KiB and 1MiB" },
	{ .name = "max_connections", .load = load_uint, .off = CFG_OFF(max_connections),
	  .min = 1, .max = 1000000, .range = "1 and 1000000" },
	{ .name = "max_sse_line_bytes", .load = load_size, .off = CFG_OFF(max_sse_line_bytes),
	  .min = 1024, .max = 1ull << 30, .range = "1KiB and 1GiB" },
	{ .name = "max_sse_event_bytes", .load = load_size, .off = CFG_OFF(max_sse_event_bytes),
	  .min = 1024, .max = 1ull << 30, .range = "1KiB and 1GiB" },
	{ .name = "max_stream_bytes", .load = load_size, .off = CFG_OFF(max_stream_bytes),
	  .min = 0, .max = 1ull << 50, .range = "0 (no limit) and 1PiB" },
};

#define TIMEOUT_FIELD(key, member) \
	{ .name = key, .load = load_duration, .off = CFG_OFF(member), \
	  .min = 1, .max = DAY_MS, .range = "1ms and 24h" }

static const struct field timeout_fields[] = {
	TIMEOUT_FIELD("client_header", client_header_ms),
	TIMEOUT_FIELD("client_body", client_body_ms),
	TIMEOUT_FIELD("keepalive", keepalive_ms),
	TIMEOUT_FIELD("upstream_connect", upstream_connect_ms),
	TIMEOUT_FIELD("upstream_first_byte", upstream_first_byte_ms),
	TIMEOUT_FIELD("upstream_idle", upstream_idle_ms),
	TIMEOUT_FIELD("drain", drain_ms),
	TIMEOUT_FIELD("stage", stage_ms),
};

static const struct field debug_fields[] = {
	{ .name = "test_stage", .load = load_bool, .off = CFG_OFF(debug_test_stage) },
};

static int load_limits(struct loader *ld, const struct ynode *v, const char *key,
		       void *dst, const struct field *f)
{
	(void)f;
	return load_mapping(ld, v, key, limit_fields,
			    sizeof(limit_fields) / sizeof(limit_fields[0]), dst);
}

static int load_timeouts(struct loader *ld, const struct ynode *v, const char *key,
			 void *dst, const struct field *f)
{
	(void)f;
	return load_mapping(ld, v, key, timeout_fields,
			    sizeof(timeout_fields) / sizeof(timeout_fields[0]), dst);
}

static int load_guardrails(struct loader *ld, const struct ynode *v, const char *key,
			   void *dst, const struct field *f)
{
	(void)key;
	(void)f;
	return config_guard_load(v, &ld->files, &((struct sluice_config *)dst)->guardrails,
				 ld->err);
}

/* tenants[].guardrails names a policy of guardrails.policies; checked
 * once the whole file is read, as the sections may come in any order. */
static int check_tenant_guardrails(struct loader *ld, const struct ynode *root)
{
	const struct ynode *list = ymap_get(root, "tenants");
	char key[KEY_MAX];

	for (size_t i = 0; i < ld->cfg->ntenants; i++) {
		struct tenant_cfg *t = &ld->cfg->tenants[i];
		if (!t->guardrails)
			continue;
		t->guard = config_guard_find(&ld->cfg->guardrails, t->guardrails);
		if (t->guard)
			continue;
		snprintf(key, sizeof(key), "tenants[%zu].guardrails", i);
		return fail(ld, ymap_get(list->kids[i], "guardrails")->line, key,
			    "no policy named %s in guardrails.policies", t->guardrails);
	}
	return 0;
}

/* include: was expanded before the schema ran (config/include.c). */
static int load_include_done(struct loader *ld, const struct ynode *v, const char *key,
			     void *dst, const struct field *f)
{
	(void)ld, (void)v, (void)key, (void)dst, (void)f;
	return 0;
}

static int load_debug(struct loader *ld, const struct ynode *v, const char *key,
		      void *dst, const struct field *f)
{
	(void)f;
	return load_mapping(ld, v, key, debug_fields,
			    sizeof(debug_fields) / sizeof(debug_fields[0]), dst);
}

static const struct field top_fields[] = {
	{ .name = "include", .load = load_include_done },
	{ .name = "listen", .load = load_listen, .off = CFG_OFF(listen) },
	{ .name = "workers", .load = load_uint, .off = CFG_OFF(workers),
	  .min = 1, .max = WORKERS_MAX, .range = "1 and 256" },
	{ .name = "log_level", .load = load_log_level, .off = CFG_OFF(log_level) },
	{ .name = "access_log", .load = load_nonempty_string, .off = CFG_OFF(access_log) },
	{ .name = "limits", .load = load_limits },
	{ .name = "timeouts", .load = load_timeouts },
	{ .name = "backends", .load = load_backends, .required = true },
	{ .name = "routes", .load = load_routes },
	{ .name = "kernel", .load = load_kernel, .off = CFG_OFF(kernel) },
	{ .name = "tenants", .load = load_tenants },
	{ .name = "tls", .load = load_tls, .off = CFG_OFF(tls) },
	{ .name = "auth", .load = load_auth, .off = CFG_OFF(auth) },
	{ .name = "quota", .load = load_quota, .off = CFG_OFF(quota) },
	{ .name = "admin", .load = load_admin, .off = CFG_OFF(admin) },
	{ .name = "forwarding", .load = load_forwarding, .off = CFG_OFF(forwarding) },
	{ .name = "guardrails", .load = load_guardrails },
	{ .name = "debug", .load = load_debug },
};

static void set_numeric_defaults(struct sluice_config *cfg)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	cfg->workers = cpus < 1 ? 1 : cpus > WORKERS_MAX ? WORKERS_MAX : (unsigned)cpus;
	cfg->max_body_bytes = 8u << 20;
	cfg->max_header_bytes = 16u << 10;
	cfg->max_sse_line_bytes = 8u << 20;
	cfg->max_sse_event_bytes = 16u << 20;
	cfg->max_stream_bytes = 0;
	cfg->max_connections = 10000;
	cfg->client_header_ms = 10000;
	cfg->client_body_ms = 30000;
	cfg->keepalive_ms = 60000;
	cfg->upstream_connect_ms = 5000;
	cfg->upstream_first_byte_ms = 60000;
	cfg->upstream_idle_ms = 30000;
	cfg->drain_ms = 10000;
	cfg->stage_ms = 5000;
	cfg->kernel.enabled = true;
	cfg->kernel.learned_ttl_ms = 600000;
	cfg->quota.fail_open = true;
	cfg->quota.redis_timeout_ms = 50;
	cfg->quota.lease_percent = 1;
	cfg->quota.default_max_tokens = 4096;
	cfg->quota.max_scopes_per_tenant = 512;
	cfg->quota.bytes_per_token = 4;
}

/* Strings the file did not set; the default listen address still needs
 * resolving, which cannot fail for a numeric address. */
static int set_string_defaults(struct loader *ld)
{
	struct sluice_config *cfg = ld->cfg;

	if (!cfg->log_level && !(cfg->log_level = strdup("info")))
		return fail_oom(ld);
	if (!cfg->access_log && !(cfg->access_log = strdup("-")))
		return fail_oom(ld);
	if (cfg->listen)
		return 0;
	if (!(cfg->listen = strdup("127.0.0.1:8080")))
		return fail_oom(ld);
	return resolve_listen(ld, 1, "listen");
}

static int load_root(struct loader *ld, const struct ynode *root)
{
	if (!root || ynode_is_null(root)) {
		snprintf(ld->err->text, sizeof(ld->err->text), "%s: file is empty", ld->file);
		return -EINVAL;
	}
	int err = load_mapping(ld, root, "", top_fields,
			       sizeof(top_fields) / sizeof(top_fields[0]), ld->cfg);
	if (!err)
		err = set_string_defaults(ld);
	if (!err)
		err = set_kernel_defaults(ld);
	if (!err)
		err = check_auth(ld, root);
	if (!err)
		err = check_admin(ld, root);
	if (!err)
		err = check_routes(ld);
	if (!err)
		err = check_tenant_guardrails(ld, root);
	ld->cfg->auth.on = ld->cfg->auth.present;
	for (size_t i = 0; !err && i < ld->cfg->ntenants; i++) {
		ld->cfg->tenant_by_id[ld->cfg->tenants[i].id] = &ld->cfg->tenants[i];
		ld->cfg->auth.on |= ld->cfg->tenants[i].keys_file != NULL;
	}
	return err ? err : check_dedicated(ld, root);
}

void config_set_tenant_ids(struct sluice_config *cfg, const unsigned *ids)
{
	memset(cfg->tenant_by_id, 0, sizeof(cfg->tenant_by_id));
	for (size_t i = 0; i < cfg->ntenants; i++) {
		struct tenant_cfg *t = &cfg->tenants[i];
		t->id = ids[i];
		if (t->id < SLUICE_MAX_TENANTS)
			cfg->tenant_by_id[t->id] = t;
	}
	if (cfg->auth.anonymous == ANON_TENANT) {
		const struct tenant_cfg *t = config_tenant_by_name(cfg, cfg->auth.anonymous_name);
		cfg->auth.anonymous_tenant = t ? t->id : SLUICE_TENANT_ANON;
	}
}

/* ------------------------------------------------------------------ */
/* Files                                                               */

static int fail_open(struct loader *ld, int errnum)
{
	snprintf(ld->err->text, sizeof(ld->err->text), "%s: cannot open: %s",
		 ld->file, strerror(errnum));
	return -errnum;
}

static int read_tree(struct loader *ld, struct ynode **root)
{
	struct ytree_error yerr;
	struct stat st;
	FILE *fp = fopen(ld->file, "re");

	if (!fp)
		return fail_open(ld, errno);
	/* fopen() happily opens a directory; reading it would then fail. */
	if (fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode)) {
		fclose(fp);
		return fail_open(ld, EISDIR);
	}
	int err = ytree_load(fp, root, &yerr);
	fclose(fp);
	if (err == -ENOMEM)
		return fail_oom(ld);
	if (err) {
		snprintf(ld->err->text, sizeof(ld->err->text), "%s:%u: yaml: %s",
			 ld->file, yerr.line, yerr.msg);
		return err;
	}
	err = include_expand(*root, &ld->files, ld->err->text, sizeof(ld->err->text));
	return err == -ENOMEM ? fail_oom(ld) : err;
}

int config_load(const char *path, struct sluice_config **out, struct config_error *err)
{
	struct loader ld = { .file = path, .err = err };
	struct ynode *root = NULL;

	ld.files.names[0] = path;
	ld.files.n = 1;

	*out = NULL;
	err->text[0] = '\0';
	ld.cfg = calloc(1, sizeof(*ld.cfg));
	if (!ld.cfg || !(ld.cfg->path = strdup(path))) {
		free(ld.cfg);
		return fail_oom(&ld);
	}
	set_numeric_defaults(ld.cfg);

	int rc = read_tree(&ld, &root);
	if (!rc)
		rc = load_root(&ld, root);
	ytree_free(root);
	include_files_free(&ld.files);
	if (rc) {
		config_free(ld.cfg);
		return rc;
	}
	*out = ld.cfg;
	return 0;
}

static void backend_free(struct backend_cfg *b)
{
	free(b->name);
	free(b->url);
	free(b->host);
	free(b->base_path);
	free(b->api_key);
	string_list_free(b->models, b->nmodels);
	free(b->ca_file);
	free(b->hc_path);
}

static void targets_free(struct route_target_cfg *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(t[i].backend_name);
		free(t[i].model);
	}
	free(t);
}

static void route_free(struct route_cfg *r)
{
	free(r->model);
	targets_free(r->targets, r->ntargets);
	targets_free(r->fallback, r->nfallback);
	free(r->sticky_header);
	free(r->match_header);
	free(r->match_value);
	free(r->match_tenant);
}

static void cidr_list_free(struct cidr_cfg *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(list[i].text);
	free(list);
}

static void kernel_free(struct kernel_cfg *k)
{
	free(k->pin_root);
	free(k->cgroup);
	for (size_t i = 0; i < k->n_xdp_interfaces; i++)
		free(k->xdp_interfaces[i]);
	free(k->xdp_interfaces);
	cidr_list_free(k->deny, k->ndeny);
}

static void tenant_free(struct tenant_cfg *t)
{
	free(t->name);
	cidr_list_free(t->networks, t->nnetworks);
	free(t->keys_file);
	string_list_free(t->models, t->nmodels);
	string_list_free(t->client_subjects, t->nclient_subjects);
	for (size_t i = 0; i < t->nmodel_limits; i++)
		free(t->model_limits[i].model);
	free(t->model_limits);
	free(t->guardrails);
}

static void auth_free(struct auth_cfg *a)
{
	free(a->anonymous_name);
	free(a->jwt.jwks_file);
	free(a->jwt.jwks_url);
	free(a->jwt.ca_file);
	free(a->jwt.issuer);
	free(a->jwt.audience);
	free(a->jwt.tenant_claim);
	free(a->jwt.models_claim);
}

static void tls_listen_free(struct tls_listen_cfg *t)
{
	for (size_t i = 0; i < t->nsni; i++) {
		for (size_t n = 0; n < t->sni[i].nnames; n++)
			free(t->sni[i].names[n]);
		free(t->sni[i].names);
		free(t->sni[i].cert);
		free(t->sni[i].key);
	}
	free(t->sni);
	free(t->cert);
	free(t->key);
	free(t->ciphers);
	free(t->ciphersuites);
	free(t->groups);
	free(t->client_ca);
}

void config_free(struct sluice_config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->nbackends; i++)
		backend_free(&cfg->backends[i]);
	free(cfg->backends);
	for (size_t i = 0; i < cfg->nroutes; i++)
		route_free(&cfg->routes[i]);
	free(cfg->routes);
	kernel_free(&cfg->kernel);
	for (size_t i = 0; i < cfg->ntenants; i++)
		tenant_free(&cfg->tenants[i]);
	free(cfg->tenants);
	tls_listen_free(&cfg->tls);
	auth_free(&cfg->auth);
	free(cfg->quota.redis_url);
	free(cfg->admin.listen);
	free(cfg->admin.token);
	cidr_list_free(cfg->forwarding.trusted_proxies, cfg->forwarding.ntrusted_proxies);
	config_guard_free(&cfg->guardrails);
	free(cfg->path);
	free(cfg->listen);
	free(cfg->log_level);
	free(cfg->access_log);
	free(cfg);
}

/* ------------------------------------------------------------------ */
/* Lookups for the request path                                        */

const struct tenant_cfg *config_tenant_by_name(const struct sluice_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->ntenants; i++)
		if (strcmp(cfg->tenants[i].name, name) == 0)
			return &cfg->tenants[i];
	return NULL;
}

/* fnmatch wants a C string; model names longer than this match nothing. */
static bool glob_match(const char *glob, const char *s, size_t len)
{
	char name[256];

	if (len >= sizeof(name))
		return false;
	memcpy(name, s, len);
	name[len] = '\0';
	return fnmatch(glob, name, 0) == 0;
}

bool config_tenant_allows_model(const struct tenant_cfg *t, const char *model, size_t len)
{
	if (t->nmodels == 0)
		return true;
	for (size_t i = 0; i < t->nmodels; i++)
		if (glob_match(t->models[i], model, len))
			return true;
	return false;
}

const struct model_limits_cfg *config_model_limits(const struct tenant_cfg *t, const char *model,
						   size_t len)
{
	for (size_t i = 0; i < t->nmodel_limits; i++)
		if (glob_match(t->model_limits[i].model, model, len))
			return &t->model_limits[i];
	return NULL;
}
