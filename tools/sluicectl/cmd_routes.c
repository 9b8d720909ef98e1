/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sluicectl routes / route set: the one pair of commands that talk to the
 * running daemon rather than its maps.  Arm weights, in-flight counts and
 * breakers live in the workers' memory, so they are read and changed over
 * the admin listener (GET /admin/routes, POST /admin/routes/<route>).
 * Control plane, off every hot path: libcurl does the HTTP.
 */
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/json.h"
#include "core/buf.h"
#include "ctl.h"
#include "render.h"

/* Routes are small; a reply beyond this is not from sluiced. */
#define ADMIN_REPLY_MAX (8u << 20)

struct reply {
	struct buf body;
	int err;
};

static size_t collect(char *data, size_t size, size_t n, void *arg)
{
	struct reply *r = arg;
	size_t len = size * n;

	if (r->body.len + len > ADMIN_REPLY_MAX) {
		r->err = -EFBIG;
		return 0;
	}
	if (buf_append(&r->body, data, len)) {
		r->err = -ENOMEM;
		return 0;
	}
	return len;
}

/* The admin address: --admin, else admin.listen of the config. */
static const char *admin_address(const struct ctl *ctl)
{
	if (ctl->admin)
		return ctl->admin;
	return ctl->cfg_admin_listen;
}

/* $SLUICE_ADMIN_TOKEN, else admin.token of the config, else none. */
static const char *admin_token(const struct ctl *ctl)
{
	const char *env = getenv("SLUICE_ADMIN_TOKEN");

	return env && env[0] ? env : ctl->cfg_admin_token;
}

/*
 * One request to the admin listener.  *status gets the HTTP status; the
 * body is in r->body.  Returns an exit code, having said why on failure.
 */
static int admin_call(const struct ctl *ctl, const char *path, const char *post,
		      struct reply *r, long *status)
{
	const char *addr = admin_address(ctl), *token = admin_token(ctl);
	struct curl_slist *hdrs = NULL;
	char url[512], auth[512];
	CURLcode rc;
	CURL *h;

	if (!addr) {
		fprintf(stderr, "sluicectl: no admin listener: give --admin HOST:PORT or a "
			"config (-c) with an admin: section\n");
		return CTL_USAGE;
	}
	if ((size_t)snprintf(url, sizeof(url), "http://%s%s", addr, path) >= sizeof(url) ||
	    (token && (size_t)snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token) >=
			      sizeof(auth))) {
		fprintf(stderr, "sluicectl: the admin address or token is too long\n");
		return CTL_USAGE;
	}
	if (!(h = curl_easy_init()))
		return CTL_FAILED;
	if (token)
		hdrs = curl_slist_append(hdrs, auth);
	if (post)
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
	if (post)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, post);
	rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	if (rc != CURLE_OK) {
		fprintf(stderr, "sluicectl: %s: %s\n", url,
			r->err ? strerror(-r->err) : curl_easy_strerror(rc));
		return CTL_FAILED;
	}
	return CTL_OK;
}

/* A non-2xx answer: print the OpenAI-style error's message and code. */
static int report_error(const struct reply *r, long status)
{
	struct json_val root, err, msg, code;
	char m[512] = "", c[128] = "";
	size_t off;
	const char *why;

	if (json_parse(r->body.data, r->body.len, &root, &off, &why) == 0 &&
	    json_get(&root, "error", &err) == 0) {
		if (json_get(&err, "message", &msg) == 0)
			json_string(&msg, m, sizeof(m));
		if (json_get(&err, "code", &code) == 0)
			json_string(&code, c, sizeof(c));
	}
	fprintf(stderr, "sluicectl: sluiced answered %ld%s%s%s%s\n", status, c[0] ? " " : "", c,
		m[0] ? ": " : "", m);
	return status == 401 || status == 403 ? CTL_NO_PERM : CTL_FAILED;
}

static void str_cell(struct table *t, const struct json_val *obj, const char *key)
{
	struct json_val v;
	char s[256] = "-";

	if (json_get(obj, key, &v) == 0 && v.type == JSON_STRING)
		json_string(&v, s, sizeof(s));
	table_cell(t, "%s", s);
}

static void int_cell(struct table *t, const struct json_val *obj, const char *key)
{
	struct json_val v;
	int64_t n = 0;

	if (json_get(obj, key, &v) == 0)
		json_int64(&v, &n);
	table_cell(t, "%" PRId64, n);
}

/* A duration in ms the daemon estimated; negative: no sample yet. */
static void ms_cell(struct table *t, const struct json_val *obj, const char *key)
{
	struct json_val v;
	char num[32];
	double ms = -1;

	/* raw spans into the reply, not NUL-terminated: copy it out */
	if (json_get(obj, key, &v) == 0 && v.type == JSON_NUMBER && v.raw.len < sizeof(num)) {
		memcpy(num, v.raw.p, v.raw.len);
		num[v.raw.len] = '\0';
		ms = strtod(num, NULL);
	}
	if (ms < 0)
		table_cell(t, "-");
	else
		table_cell(t, "%.1f", ms);
}

static void arm_rows(struct table *t, const char *route, const struct json_val *arms,
		     const char *role)
{
	struct json_iter it;
	struct json_val arm;
	struct str unused;

	json_iter_init(&it, arms);
	while (json_iter_next(&it, &unused, &arm)) {
		table_cell(t, "%s", route);
		table_cell(t, "%s", role);
		str_cell(t, &arm, "backend");
		str_cell(t, &arm, "model");
		int_cell(t, &arm, "weight");
		int_cell(t, &arm, "requests");
		int_cell(t, &arm, "failures");
		int_cell(t, &arm, "errors");
		int_cell(t, &arm, "fallbacks");
		int_cell(t, &arm, "in_flight");
		ms_cell(t, &arm, "latency_p50_ms");
		ms_cell(t, &arm, "ttft_p50_ms");
		int_cell(t, &arm, "input_tokens");
		int_cell(t, &arm, "output_tokens");
		str_cell(t, &arm, "breaker");
		str_cell(t, &arm, "health");
	}
}

/* GET /admin/routes as a table: one row per arm and per fallback target. */
static int print_routes(const struct reply *r)
{
	static const char *const heads[] = { "ROUTE", "ROLE", "BACKEND", "MODEL", "WEIGHT",
					     "REQUESTS", "FAILURES", "ERRORS", "FALLBACKS",
					     "IN_FLIGHT", "P50_MS", "TTFT_P50_MS", "TOKENS_IN",
					     "TOKENS_OUT", "BREAKER", "HEALTH" };
	struct json_val root, routes, route, v;
	struct json_iter it;
	struct table t;
	struct str unused;
	const char *why;
	size_t off;

	if (json_parse(r->body.data, r->body.len, &root, &off, &why) ||
	    json_get(&root, "routes", &routes) || routes.type != JSON_ARRAY) {
		fprintf(stderr, "sluicectl: sluiced's /admin/routes is not what it should be\n");
		return CTL_FAILED;
	}
	table_init(&t, 16, heads, 0x3ff0);
	json_iter_init(&it, &routes);
	while (json_iter_next(&it, &unused, &route)) {
		char name[256] = "?";
		if (json_get(&route, "model", &v) == 0)
			json_string(&v, name, sizeof(name));
		if (json_get(&route, "arms", &v) == 0)
			arm_rows(&t, name, &v, "arm");
		if (json_get(&route, "fallback", &v) == 0)
			arm_rows(&t, name, &v, "fallback");
	}
	return table_finish(&t, stdout) ? CTL_FAILED : CTL_OK;
}

static int routes_show(const struct ctl *ctl)
{
	struct reply r = { .body = { 0 } };
	long status = 0;
	int rc = admin_call(ctl, "/admin/routes", NULL, &r, &status);

	if (rc == CTL_OK && (status < 200 || status > 299))
		rc = report_error(&r, status);
	else if (rc == CTL_OK && ctl->json && r.body.len)
		fwrite(r.body.data, 1, r.body.len, stdout);
	else if (rc == CTL_OK)
		rc = print_routes(&r);
	buf_free(&r.body);
	return rc;
}

int cmd_routes(const struct ctl *ctl, int argc, char **argv)
{
	(void)argv;
	if (argc != 1) {
		ctl_usage("routes", true);
		return CTL_USAGE;
	}
	return routes_show(ctl);
}

/* BACKEND=WEIGHT, a weight 0..1000000 (the config's bound). */
static int parse_weight(const char *arg, struct buf *body, bool first)
{
	const char *eq = strrchr(arg, '=');
	unsigned long w;
	char *end;
	int err;

	if (!eq || eq == arg || !eq[1] || eq[1] == '-' || eq[1] == '+') {
		fprintf(stderr, "sluicectl: '%s' is not BACKEND=WEIGHT\n", arg);
		return CTL_USAGE;
	}
	errno = 0;
	w = strtoul(eq + 1, &end, 10);
	if (errno || *end || w > 1000000) {
		fprintf(stderr, "sluicectl: the weight in '%s' must be 0..1000000\n", arg);
		return CTL_USAGE;
	}
	size_t cap = (size_t)(eq - arg) * 6 + 3;
	if ((err = buf_printf(body, "%s", first ? "" : ",")) || (err = buf_reserve(body, cap)))
		return CTL_FAILED;
	int n = json_escape(buf_tail(body), cap, arg, (size_t)(eq - arg));
	if (n < 0)
		return CTL_FAILED;
	body->len += (size_t)n;
	return buf_printf(body, ":%lu", w) ? CTL_FAILED : CTL_OK;
}

/* The route's name as one path segment: everything but unreserved bytes
 * percent-encoded, so a name with '/' or '?' still names one route. */
static int route_path(const char *route, char *out, size_t cap)
{
	CURL *h = curl_easy_init();
	char *esc = h ? curl_easy_escape(h, route, 0) : NULL;
	int n = esc ? snprintf(out, cap, "/admin/routes/%s", esc) : -1;

	curl_free(esc);
	if (h)
		curl_easy_cleanup(h);
	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

static int route_set(const struct ctl *ctl, int argc, char **argv)
{
	struct buf body = { 0 };
	struct reply r = { .body = { 0 } };
	char path[1024];
	long status = 0;
	int rc = CTL_OK;

	if (route_path(argv[2], path, sizeof(path))) {
		fprintf(stderr, "sluicectl: the route name is too long\n");
		return CTL_USAGE;
	}
	if (buf_printf(&body, "{\"weights\":{"))
		rc = CTL_FAILED;
	for (int i = 3; rc == CTL_OK && i < argc; i++)
		rc = parse_weight(argv[i], &body, i == 3);
	if (rc == CTL_OK && (buf_printf(&body, "}}") || buf_append(&body, "", 1)))
		rc = CTL_FAILED;
	if (rc == CTL_OK)
		rc = admin_call(ctl, path, body.data, &r, &status);
	if (rc == CTL_OK && (status < 200 || status > 299))
		rc = report_error(&r, status);
	else if (rc == CTL_OK && r.body.len)
		fwrite(r.body.data, 1, r.body.len, stdout);
	buf_free(&body);
	buf_free(&r.body);
	return rc;
}

int cmd_route(const struct ctl *ctl, int argc, char **argv)
{
	if (argc >= 4 && strcmp(argv[1], "set") == 0)
		return route_set(ctl, argc, argv);
	ctl_usage("route", true);
	return CTL_USAGE;
}

/*
 * sluicectl reload: POST /admin/reload?wait=1 and print the outcome, so a
 * deploy script learns at once whether its file was taken: what changed
 * (exit 0), or file:line: key: reason with the running config kept (1).
 */
int cmd_reload(const struct ctl *ctl, int argc, char **argv)
{
	struct reply r = { 0 };
	struct json_val root, detail;
	char text[1100] = "";
	size_t off;
	const char *why;
	long status = 0;
	int rc;

	(void)argv;
	if (argc != 1) {
		fprintf(stderr, "usage: sluicectl reload\n");
		return CTL_USAGE;
	}
	rc = admin_call(ctl, "/admin/reload?wait=1", "", &r, &status);
	if (rc == CTL_OK && status != 200)
		rc = report_error(&r, status);
	else if (rc == CTL_OK) {
		if (json_parse(r.body.data, r.body.len, &root, &off, &why) == 0 &&
		    json_get(&root, "detail", &detail) == 0)
			json_string(&detail, text, sizeof(text));
		printf("reloaded: %s\n", text[0] ? text : "ok");
	}
	buf_free(&r.body);
	return rc;
}
