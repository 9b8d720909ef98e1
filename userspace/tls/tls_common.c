/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Error reporting shared by the TLS client and server.
 */
#include "tls/tls_internal.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>

#include <openssl/err.h>
#include <openssl/x509.h>

void tls_describe_err_queue(char *out, size_t outlen)
{
	unsigned long e = ERR_peek_error();
	const char *reason = e ? ERR_reason_error_string(e) : NULL;

	if (reason)
		snprintf(out, outlen, "%s", reason);
	else if (e)
		ERR_error_string_n(e, out, outlen);
	else
		snprintf(out, outlen, "unknown TLS error");
}

int tls_ctx_error(char *err, size_t errlen, const char *what)
{
	char why[200];

	tls_describe_err_queue(why, sizeof(why));
	if (err && errlen)
		snprintf(err, errlen, "%s: %s", what, why);
	ERR_clear_error();
	return -EINVAL;
}

static bool is_verify_failure(unsigned long e)
{
	return ERR_GET_LIB(e) == ERR_LIB_SSL &&
	       ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED;
}

void tls_describe_failure(const SSL *ssl, int code, char *out, size_t outlen)
{
	unsigned long e = ERR_peek_error();
	long vr = SSL_get_verify_result(ssl);

	if (is_verify_failure(e) && vr != X509_V_OK)
		snprintf(out, outlen, "certificate verify failed: %s",
			 X509_verify_cert_error_string(vr));
	else if (e)
		tls_describe_err_queue(out, outlen);
	else
		snprintf(out, outlen, "TLS failure (SSL error %d)", code);
}
