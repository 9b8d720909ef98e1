/* SPDX-License-Identifier: Apache-2.0 */
#include "core/errtext.h"

#include <stdarg.h>
#include <stdio.h>

int errtext(char *buf, size_t cap, int rc, const char *fmt, ...)
{
	va_list ap;

	if (buf && cap) {
		va_start(ap, fmt);
		vsnprintf(buf, cap, fmt, ap);
		va_end(ap);
	}
	return rc;
}
