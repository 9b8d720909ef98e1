/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Diagnostics: one call-site style for the whole daemon, to stderr.
 *   log_warn("backend %s: %s", name, strerror(-err));
 * The level is set once at start-up (before threads start) and only read
 * afterwards.  Request records go to the access log (obs/accesslog.h), not
 * here.
 */
#ifndef SLUICE_CORE_LOG_H
#define SLUICE_CORE_LOG_H

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* program: the name each line starts with (a static string). */
void log_init(const char *program, enum log_level level);
int log_level_parse(const char *name, enum log_level *out);
void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int log_enabled(enum log_level level);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) \
	do { if (log_enabled(LOG_DEBUG)) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
