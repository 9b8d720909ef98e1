/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sluicectl detach: take sluice's programs off their hooks for an
 * uninstall.  With kernel.pin_links the XDP and sockops attachments are
 * links pinned under the pin root (link_*), which outlive sluiced; each is
 * detached (BPF_LINK_DETACH, so a daemon still holding it loses the hook
 * too) and unpinned.  The maps stay: removing the pin root is the last
 * step of an uninstall, after this.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "maps.h"

/* Detach and unpin one link: 0, or -errno. */
static int detach_one(const char *path)
{
	int fd = bpf_obj_get(path);
	if (fd < 0)
		return -errno;
	int err = bpf_link_detach(fd) ? -errno : 0;
	close(fd);
	/* An already defunct link (its interface is gone) is only a pin. */
	if (err == -ENOLINK || err == -EINVAL)
		err = 0;
	if (!err && unlink(path))
		err = -errno;
	return err;
}

int cmd_detach(const struct ctl *ctl, int argc, char **argv)
{
	(void)argv;
	if (argc != 1) {
		ctl_usage("detach", true);
		return CTL_USAGE;
	}
	DIR *d = opendir(ctl->pin_root);
	if (!d) {
		int err = errno;
		fprintf(stderr, "sluicectl: detach: %s: %s\n", ctl->pin_root, strerror(err));
		return err == EACCES || err == EPERM ? CTL_NO_PERM : CTL_NO_MAPS;
	}
	int rc = CTL_OK;
	unsigned n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, SLUICE_LINK_PREFIX, strlen(SLUICE_LINK_PREFIX)) != 0)
			continue;
		char path[512];
		snprintf(path, sizeof(path), "%s/%s", ctl->pin_root, e->d_name);
		int err = detach_one(path);
		if (err) {
			fprintf(stderr, "sluicectl: detach: %s: %s\n", path, strerror(-err));
			rc = err == -EACCES || err == -EPERM ? CTL_NO_PERM : CTL_FAILED;
			continue;
		}
		n++;
		if (!ctl->json)
			printf("detached %s\n", e->d_name);
	}
	closedir(d);
	if (ctl->json)
		printf("{\"detached\":%u}\n", n);
	else if (n == 0)
		printf("no pinned links under %s\n", ctl->pin_root);
	return rc;
}
