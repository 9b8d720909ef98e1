/* SPDX-License-Identifier: Apache-2.0 */
/* Errors are values; their sentence goes into the caller's buffer. */
#ifndef SLUICE_CORE_ERRTEXT_H
#define SLUICE_CORE_ERRTEXT_H

#include <stddef.h>

/* Format into buf (when buf and cap are set) and return rc, so a failure
 * path is one line: return errtext(err, cap, -EINVAL, "bad %s", what); */
int errtext(char *buf, size_t cap, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
