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
	API_ADMIN_ROUTES,	/* GET  /admin/routes (admin listener) */
	API_ADMIN_ROUTE,	/* POST /admin/routes/<route> (admin listener) */
};

/* Endpoint of a request path (query string already removed).  Sets
 * *method_ok false when the path is known but the method is not allowed
 * (405).  Path suffix after "/v1" is what is forwarded upstream. */
enum api_endpoint api_route_path(struct str method, struct str path, bool *method_ok);
const char *api_endpoint_name(enum api_endpoint ep);	/* "chat", "completions", ... */

/* The longest model name accepted, in bytes after JSON unescaping. */
#define API_MODEL_MAX	256

/* What the gateway needs from a request body. */
struct api_request {
	struct str model;		/* unescaped model name, points into model_buf */
	char model_buf[API_MODEL_MAX + 1];
	bool stream;			/* "stream": true */
	bool client_wants_usage;	/* stream_options.include_usage == true */
	struct json_val stream_options;	/* JSON_NONE when absent */
	struct json_val root;
	const char *body;		/* as passed: api_body_edit offsets count from it */
	const char *error_code;		/* why a body was refused, for the error's
					 * "code": invalid_json, missing_model,
					 * duplicate_model, invalid_model,
					 * model_too_long or invalid_request */
};

/* Validate and inspect a JSON request body.  0, or -EINVAL with *why set to
 * a client-facing sentence ("request body is not valid JSON: ... at byte N",
 * "you must provide a model parameter", "'stream' must be a boolean", ...),
 * written into why_buf, and req->error_code.  A root member "model",
 * "stream" or "stream_options" given twice is refused: the backend may read
 * the other copy.  A model is a string of 1..API_MODEL_MAX bytes without
 * control characters. */
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

/*
 * The completion tokens a request may use: max_completion_tokens, else
 * max_tokens, else dflt (a missing, negative or non-integer value counts as
 * absent), times n (absent or 0: 1; above 128: 128).  Both factors are the
 * client's, so the product saturates at UINT64_MAX rather than wrap: a
 * request for 2^62 tokens four times is not a request for none.
 */
uint64_t api_output_tokens(const struct api_request *req, uint64_t dflt);

/* Token usage as reported by a backend: a count in [0, INT64_MAX], or -1
 * for a field not reported (absent, negative, not an integer).  The counts
 * are the backend's: whoever adds them up saturates (core/sat.h). */
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
