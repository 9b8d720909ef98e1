/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The OpenAI HTTP API as the gateway sees it: which endpoint a request is,
 * what its body asks for, the usage a response reports, and error bodies.
 * Bodies are forwarded untouched except for the one edit streaming needs
 * (see api_stream_usage_edit).
 */
#ifndef SLUICE_API_OPENAI_H
#define SLUICE_API_OPENAI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/json.h"
#include "core/str.h"

enum api_endpoint {
	API_NONE = 0,		/* not an API route: 404 */
	API_CHAT,		/* POST /v1/chat/completions */
	API_COMPLETIONS,	/* POST /v1/completions */
	API_EMBEDDINGS,		/* POST /v1/embeddings */
	API_MODELS,		/* GET  /v1/models */
	API_HEALTHZ,		/* GET  /healthz */
	API_READYZ,		/* GET  /readyz */
	API_METRICS,		/* GET  /metrics (admin listener) */
	API_ADMIN_RELOAD,	/* POST /admin/reload (admin listener) */
};

/* Endpoint of a request path (query string already removed).  Sets
 * *method_ok false when the path is known but the method is not allowed
 * (405).  Path suffix after "/v1" is what is forwarded upstream. */
enum api_endpoint api_route_path(struct str method, struct str path, bool *method_ok);
const char *api_endpoint_name(enum api_endpoint ep);	/* "chat", "completions", ... */

/* What the gateway needs from a request body. */
struct api_request {
	struct str model;		/* unescaped model name, points into model_buf */
	char model_buf[256];
	bool stream;			/* "stream": true */
	bool client_wants_usage;	/* stream_options.include_usage == true */
	struct json_val stream_options;	/* JSON_NONE when absent */
	struct json_val root;
	const char *body;		/* as passed: api_body_edit offsets count from it */
};

/* Validate and inspect a JSON request body.  0, or -EINVAL with *why set to
 * a client-facing sentence ("request body is not valid JSON: ... at byte N",
 * "you must provide a model parameter", "'stream' must be a boolean", ...),
 * written into why_buf.  A root member "model", "stream" or "stream_options"
 * given twice is refused: the backend may read the other copy. */
int api_parse_request(const char *body, size_t len, struct api_request *req,
		      char *why_buf, size_t why_cap);

/*
 * The edit that asks a backend for usage on a streaming request the client
 * did not ask it for: the body becomes body[0..at) + insert + body[at + del..).
 *   no stream_options          -> insert "\"stream_options\":{\"include_usage\":true},"
 *                                 after the root '{' (or without the comma
 *                                 for an empty object)
 *   stream_options is null     -> replace the null with
 *                                 "{\"include_usage\":true}" (del = 4)
 *   stream_options is {...}    -> insert "\"include_usage\":true," after its '{'
 *                                 (no comma if empty), or replace the value
 *                                 of an existing include_usage:false (del > 0)
 * Returns 0 with the edit, or 1 when no edit is needed (not streaming, or
 * the client asked for usage itself), or -EINVAL when stream_options is not
 * an object.
 */
struct api_body_edit {
	size_t at;
	size_t del;
	struct str insert;	/* static text */
};
int api_stream_usage_edit(const struct api_request *req, struct api_body_edit *edit);

/* Token usage as reported by a backend. -1 for a field not reported. */
struct api_usage {
	int64_t prompt_tokens;
	int64_t completion_tokens;
	int64_t total_tokens;
	int64_t cached_tokens;		/* usage.prompt_tokens_details.cached_tokens */
	int64_t reasoning_tokens;	/* usage.completion_tokens_details.reasoning_tokens */
};
void api_usage_clear(struct api_usage *u);	/* all -1 */

/* Read "usage" from a response body or one stream chunk's JSON.  0 when a
 * usage object is present (non-null), -ENOENT otherwise, -EINVAL for
 * invalid JSON.  *only_usage, if not NULL, is set when the chunk carries no
 * choices (absent or empty "choices" array), i.e. it is the usage-only final
 * chunk that include_usage adds. */
int api_parse_usage(const char *json, size_t len, struct api_usage *u, bool *only_usage);

/*
 * Write an OpenAI-style error body into dst:
 *   {"error":{"message":"...","type":"...","param":null,"code":"..."}}
 * code may be NULL (then "code":null).  Returns the length (dst is also
 * NUL-terminated), or -ENOSPC. */
int api_error_body(char *dst, size_t cap, const char *message, const char *type,
		   const char *code);

#endif
