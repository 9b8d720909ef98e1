/* SPDX-License-Identifier: Apache-2.0 */
/* What one finished request leaves behind, for the access log and metrics. */
#ifndef SLUICE_OBS_RECORD_H
#define SLUICE_OBS_RECORD_H

#include <stdbool.h>
#include <stdint.h>

#include "api/openai.h"
#include "core/str.h"

struct request_record {
	uint64_t start_real_ns;		/* wall clock at the first byte of the request */
	uint64_t latency_ns;		/* first request byte -> last response byte */
	uint64_t ttft_ns;		/* first request byte -> first response body byte
					 * sent to the client; 0 when none was sent */
	struct str method;
	struct str path;
	enum api_endpoint endpoint;
	struct str model;		/* STR_NULL when the request had none */
	int backend;			/* index into config backends, -1 for none */
	const char *backend_name;	/* NULL for none */
	const char *tenant;		/* tenant name, or NULL when unknown */
	const char *client_cert;	/* mutual TLS: the client certificate's
					 * subject, or NULL */
	const char *auth;		/* how the tenant was known ("api_key", "jwt",
					 * ...), NULL when authentication is off */
	const char *key_id;		/* the API key's public id, or NULL */
	int status;			/* status sent to the client */
	bool stream;
	struct api_usage usage;		/* fields -1 when unknown */
	uint64_t bytes_in;		/* request body bytes */
	uint64_t bytes_out;		/* response body bytes */
	const char *error_code;		/* OpenAI error code the gateway produced, or NULL */
	unsigned worker;
	const char *route;		/* an explicit route's name, or NULL */
	const char *upstream_model;	/* the model the target was asked for, when
					 * the route rewrote it; else NULL */
	unsigned attempts;		/* targets tried (route fallbacks + 1) */
	const char *guardrails;		/* "masked=email;flagged=ip_address", NULL or "" for none */
};

#endif
