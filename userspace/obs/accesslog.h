/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The access log: one JSON object per line per request, e.g.
 *   {"time":"2026-11-27T09:30:00.123Z","worker":0,"method":"POST",
 *    "path":"/v1/chat/completions","model":"mock-small","backend":"local",
 *    "tenant":"acme",  (then "client_cert":"CN=team-a,O=acme" under mutual TLS)
 *    "status":200,"stream":true,"tokens_in":12,"tokens_out":30,
 *    "tokens_cached":0,"tokens_reasoning":0,"latency_ms":12.345,
 *    "ttft_ms":3.210,"bytes_in":120,"bytes_out":4000,"error":null}
 * (unknown token counts are null).  Each worker formats into its own buffer
 * and hands whole lines to the kernel in one write(2) when the buffer passes
 * a threshold or at accesslog_flush(), which the worker calls once per loop
 * iteration, so a request costs no syscall of its own and lines of
 * different workers never interleave.
 */
#ifndef SLUICE_OBS_ACCESSLOG_H
#define SLUICE_OBS_ACCESSLOG_H

#include <stdint.h>

#include "core/buf.h"
#include "obs/record.h"

struct accesslog {
	int fd;			/* -1: logging off; each handle owns its own fd */
	struct buf pending;
	uint64_t dropped;	/* lines lost: destination stuck or failing */
};

/* dest: "-" (stdout), "off", or a path opened O_APPEND|O_CREAT. 0 or -errno. */
int accesslog_open(struct accesslog *log, const char *dest);
/* A second handle on the same destination, for another worker.  */
int accesslog_dup(struct accesslog *log, const struct accesslog *from);
void accesslog_close(struct accesslog *log);	/* flushes */
void accesslog_write(struct accesslog *log, const struct request_record *rec);
void accesslog_flush(struct accesslog *log);
/* Format one record as a JSON line (with '\n') into out; for tests. */
int accesslog_format(const struct request_record *rec, struct buf *out);

#endif
