/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the config tests share: a YAML text loaded through a temporary
 * file, and the smallest valid backends section.  Include after
 * <cmocka.h> and "config/config.h".
 */
#ifndef SLUICE_TESTS_CONFIG_FIXTURE_H
#define SLUICE_TESTS_CONFIG_FIXTURE_H

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The smallest valid backends section, three lines after "backends:". */
#define BACKEND \
	"backends:\n" \
	"  - name: a\n" \
	"    url: http://127.0.0.1:9000\n" \
	"    models: [m]\n"

/* Write yaml to a fresh temporary file, load it, remove the file. */
static inline int load_text(const char *yaml, char *path, size_t size,
			    struct sluice_config **cfg, struct config_error *err)
{
	snprintf(path, size, "/tmp/sluice-config-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	size_t len = strlen(yaml);
	assert_int_equal(write(fd, yaml, len), (ssize_t)len);
	close(fd);
	int rc = config_load(path, cfg, err);
	unlink(path);
	return rc;
}

static inline struct sluice_config *load_ok(const char *yaml)
{
	struct sluice_config *cfg = NULL;
	struct config_error err;
	char path[64];
	int rc = load_text(yaml, path, sizeof(path), &cfg, &err);

	if (rc)
		print_error("unexpected error: %s\n", err.text);
	assert_int_equal(rc, 0);
	assert_non_null(cfg);
	return cfg;
}

#endif
