/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A real redis-server for unit tests: started on a free loopback port (and
 * a unix socket) in a temporary directory, without persistence, stopped,
 * killed and restarted on the same port at will.  Header only; include it
 * after <cmocka.h>.
 *
 *   static struct redis_fixture rf;
 *   redis_fixture_start(&rf)  ...  redis_fixture_cleanup(&rf);
 *
 * The child gets SIGKILL if the test process dies, and every fixture
 * started is cleaned up by an atexit handler too, so a failed assertion
 * leaves neither a server nor a directory behind.
 */
#ifndef SLUICE_TESTS_REDIS_FIXTURE_H
#define SLUICE_TESTS_REDIS_FIXTURE_H

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#define REDIS_FIXTURE_BIN "/usr/bin/redis-server"
#define REDIS_FIXTURE_MAX 4

struct redis_fixture {
	pid_t pid;			/* 0: not running */
	int port;			/* chosen on the first start, kept on restarts */
	char dir[64];			/* the temporary directory; empty: none yet */
	char sock[96];			/* its unix socket */
	char url[64];			/* redis://127.0.0.1:PORT */
	bool registered;
};

/* Fixtures to clean up at exit (a test binary's own, not shared). */
static struct redis_fixture *redis_fixture_all[REDIS_FIXTURE_MAX];

static inline void redis_fixture_sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* A loopback port nobody listens on right now. */
static inline int redis_fixture_free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int port = -1;

	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

/* Does the server answer PING? */
static inline bool redis_fixture_ping(const struct redis_fixture *f)
{
	struct timeval tv = { .tv_sec = 0, .tv_usec = 200000 };
	redisContext *c = redisConnectWithTimeout("127.0.0.1", f->port, tv);
	bool ok = false;

	if (c && !c->err) {
		redisSetTimeout(c, tv);
		redisReply *r = redisCommand(c, "PING");
		ok = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
		if (r)
			freeReplyObject(r);
	}
	if (c)
		redisFree(c);
	return ok;
}

/* Kill the server at once (SIGKILL) and reap it. */
static inline void redis_fixture_kill(struct redis_fixture *f)
{
	if (f->pid <= 0)
		return;
	kill(f->pid, SIGKILL);
	waitpid(f->pid, NULL, 0);
	f->pid = 0;
}

/* Ask the server to stop (SIGTERM), killing it after 3 s. */
static inline void redis_fixture_stop(struct redis_fixture *f)
{
	if (f->pid <= 0)
		return;
	kill(f->pid, SIGTERM);
	for (int i = 0; i < 300; i++) {
		if (waitpid(f->pid, NULL, WNOHANG) == f->pid) {
			f->pid = 0;
			return;
		}
		redis_fixture_sleep_ms(10);
	}
	redis_fixture_kill(f);
}

/* Stop the server and remove its directory with what is in it. */
static inline void redis_fixture_cleanup(struct redis_fixture *f)
{
	redis_fixture_stop(f);
	if (!f->dir[0])
		return;
	DIR *d = opendir(f->dir);
	if (d) {
		struct dirent *de;
		char path[512];
		while ((de = readdir(d))) {
			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			snprintf(path, sizeof(path), "%s/%s", f->dir, de->d_name);
			unlink(path);
		}
		closedir(d);
	}
	rmdir(f->dir);
	f->dir[0] = '\0';
}

static inline void redis_fixture_atexit(void)
{
	for (int i = 0; i < REDIS_FIXTURE_MAX; i++)
		if (redis_fixture_all[i])
			redis_fixture_cleanup(redis_fixture_all[i]);
}

static inline void redis_fixture_register(struct redis_fixture *f)
{
	static bool hooked;

	if (f->registered)
		return;
	for (int i = 0; i < REDIS_FIXTURE_MAX; i++) {
		if (!redis_fixture_all[i]) {
			redis_fixture_all[i] = f;
			f->registered = true;
			break;
		}
	}
	if (!hooked) {
		atexit(redis_fixture_atexit);
		hooked = true;
	}
}

static inline void redis_fixture_exec(const struct redis_fixture *f)
{
	char port[16], log[128];

	snprintf(port, sizeof(port), "%d", f->port);
	snprintf(log, sizeof(log), "%s/redis.log", f->dir);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
	if (fd >= 0) {
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		close(fd);
	}
	execl(REDIS_FIXTURE_BIN, REDIS_FIXTURE_BIN, "--save", "", "--appendonly", "no",
	      "--port", port, "--bind", "127.0.0.1", "--dir", f->dir,
	      "--unixsocket", f->sock, "--unixsocketperm", "700", (char *)NULL);
	_exit(127);
}

/*
 * Start (or restart, on the same port) the server and wait until it
 * answers PING, at most 5 s.  false when it could not be started.
 */
static inline bool redis_fixture_start(struct redis_fixture *f)
{
	redis_fixture_register(f);
	if (!f->dir[0]) {
		snprintf(f->dir, sizeof(f->dir), "/tmp/sluice-redis-XXXXXX");
		if (!mkdtemp(f->dir)) {
			f->dir[0] = '\0';
			return false;
		}
		snprintf(f->sock, sizeof(f->sock), "%s/redis.sock", f->dir);
	}
	if (f->port <= 0 && (f->port = redis_fixture_free_port()) <= 0)
		return false;
	snprintf(f->url, sizeof(f->url), "redis://127.0.0.1:%d", f->port);
	if (f->pid > 0)
		return redis_fixture_ping(f);
	f->pid = fork();
	if (f->pid < 0) {
		f->pid = 0;
		return false;
	}
	if (f->pid == 0)
		redis_fixture_exec(f);
	for (int i = 0; i < 500; i++) {
		if (waitpid(f->pid, NULL, WNOHANG) == f->pid) {
			f->pid = 0;	/* exited: the port was taken, or no binary */
			return false;
		}
		if (redis_fixture_ping(f))
			return true;
		redis_fixture_sleep_ms(10);
	}
	redis_fixture_kill(f);
	return false;
}

/* A direct connection to the fixture, for checks (redisFree it). */
static inline redisContext *redis_fixture_connect(const struct redis_fixture *f)
{
	struct timeval tv = { .tv_sec = 1, .tv_usec = 0 };
	redisContext *c = redisConnectWithTimeout("127.0.0.1", f->port, tv);

	if (c && c->err) {
		redisFree(c);
		return NULL;
	}
	if (c)
		redisSetTimeout(c, tv);
	return c;
}

#endif
