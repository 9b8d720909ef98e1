/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "obs/accesslog.h"

/* ---- fixtures ---- */

/* The record of the example in accesslog.h. */
static struct request_record example(void)
{
	return (struct request_record){
		.start_real_ns = UINT64_C(1795771800) * 1000000000u + 123456789u,
		.latency_ns = 12345678,
		.ttft_ns = 3210000,
		.method = STR_LIT("POST"),
		.path = STR_LIT("/v1/chat/completions"),
		.endpoint = API_CHAT,
		.model = STR_LIT("mock-small"),
		.backend = 0,
		.backend_name = "local",
		.tenant = "acme",
		.status = 200,
		.stream = true,
		.usage = { .prompt_tokens = 12, .completion_tokens = 30, .total_tokens = 42,
			   .cached_tokens = 0, .reasoning_tokens = 0 },
		.bytes_in = 120,
		.bytes_out = 4000,
		.worker = 0,
	};
}

static const char example_line[] =
	"{\"time\":\"2026-11-27T09:30:00.123Z\",\"worker\":0,\"method\":\"POST\","
	"\"path\":\"/v1/chat/completions\",\"model\":\"mock-small\",\"backend\":\"local\","
	"\"tenant\":\"acme\",\"status\":200,\"stream\":true,\"tokens_in\":12,\"tokens_out\":30,"
	"\"tokens_cached\":0,\"tokens_reasoning\":0,\"latency_ms\":12.345,"
	"\"ttft_ms\":3.210,\"bytes_in\":120,\"bytes_out\":4000,\"error\":null}\n";

/* One line of the stream tests, told apart by bytes_in. */
static struct request_record numbered(uint64_t i)
{
	struct request_record r = example();

	r.bytes_in = i;
	r.worker = 3;
	return r;
}

static char *format(const struct request_record *r)
{
	struct buf out = { 0 };

	assert_int_equal(accesslog_format(r, &out), 0);
	assert_int_equal(buf_append(&out, "", 1), 0);
	return out.data;
}

static void assert_format(const struct request_record *r, const char *want)
{
	char *got = format(r);

	assert_string_equal(got, want);
	free(got);
}

static char tmp_path[64];

static int make_tmp_path(void **state)
{
	(void)state;
	snprintf(tmp_path, sizeof(tmp_path), "/tmp/sluice-accesslog-XXXXXX");
	int fd = mkstemp(tmp_path);
	assert_true(fd >= 0);
	close(fd);
	return 0;
}

static int remove_tmp_path(void **state)
{
	(void)state;
	unlink(tmp_path);
	return 0;
}

/* The whole file, NUL-terminated; the caller frees it. */
static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	struct buf b = { 0 };
	char chunk[4096];
	size_t n;

	assert_non_null(f);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		assert_int_equal(buf_append(&b, chunk, n), 0);
	fclose(f);
	*len = buf_used(&b);
	assert_int_equal(buf_append(&b, "", 1), 0);
	return b.data;
}

static off_t file_size(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_size;
}

/* ---- formatting ---- */

static void test_format_example(void **state)
{
	(void)state;
	struct request_record r = example();

	assert_format(&r, example_line);
}

static void test_format_nulls(void **state)
{
	(void)state;
	struct request_record r = {
		.start_real_ns = 0,
		.latency_ns = 999,
		.method = STR_LIT("GET"),
		.path = STR_LIT("/nope"),
		.model = STR_NULL,
		.backend = -1,
		.status = 404,
		.usage = { -1, -1, -1, -1, -1 },
		.error_code = "not_found",
		.worker = 7,
	};

	assert_format(&r,
		"{\"time\":\"1970-01-01T00:00:00.000Z\",\"worker\":7,\"method\":\"GET\","
		"\"path\":\"/nope\",\"model\":null,\"backend\":null,\"tenant\":null,\"status\":404,"
		"\"stream\":false,\"tokens_in\":null,\"tokens_out\":null,"
		"\"tokens_cached\":null,\"tokens_reasoning\":null,\"latency_ms\":0.000,"
		"\"ttft_ms\":null,\"bytes_in\":0,\"bytes_out\":0,\"error\":\"not_found\"}\n");

	/* A request that never got as far as a method and path, and a model
	 * that is there but empty. */
	r.method = STR_NULL;
	r.path = STR_NULL;
	r.model = (struct str){ "", 0 };
	r.usage.completion_tokens = 5;
	r.error_code = NULL;
	r.status = 408;
	char *line = format(&r);
	assert_non_null(strstr(line, "\"method\":null,\"path\":null,\"model\":\"\",\"backend\":null,"
				     "\"tenant\":null,\"status\":408"));
	assert_non_null(strstr(line, "\"tokens_in\":null,\"tokens_out\":5,\"tokens_cached\":null"));
	assert_non_null(strstr(line, "\"error\":null}\n"));
	free(line);
}

static void test_format_escaping(void **state)
{
	(void)state;
	struct request_record r = example();

	r.path = STR_LIT("/v1/\"x\"\\y");
	r.model = STR_LIT("a\nb\x01\xff\xc3\xa9");
	r.backend_name = "b\"e";
	r.tenant = "t\\1";
	r.error_code = "tab\there";

	char *line = format(&r);
	assert_non_null(strstr(line, "\"path\":\"/v1/\\\"x\\\"\\\\y\","));
	assert_non_null(strstr(line, "\"model\":\"a\\nb\\u0001\\ufffd\xc3\xa9\","));
	assert_non_null(strstr(line, "\"backend\":\"b\\\"e\","));
	assert_non_null(strstr(line, "\"tenant\":\"t\\\\1\","));
	assert_null(strstr(line, "client_cert"));
	free(line);
	r.client_cert = "CN=team \"a\"";
	line = format(&r);
	assert_non_null(strstr(line, "\"tenant\":\"t\\\\1\",\"client_cert\":\"CN=team \\\"a\\\"\","));
	assert_non_null(strstr(line, "\"error\":\"tab\\there\"}\n"));
	assert_int_equal(strchr(line, '\n') - line, strlen(line) - 1);
	free(line);
	r.auth = "api_key";
	r.key_id = "0123456789ab";
	line = format(&r);
	assert_non_null(strstr(line, "\"client_cert\":\"CN=team \\\"a\\\"\",\"auth\":\"api_key\","
				     "\"key_id\":\"0123456789ab\",\"status\""));
	free(line);
}

/* A string far bigger than the buffer's room, all of it escaped. */
static void test_format_long_escaped_path(void **state)
{
	(void)state;
	struct request_record r = example();
	size_t n = 40000;
	char *path = malloc(n);

	assert_non_null(path);
	memset(path, '\x02', n);
	r.path = (struct str){ path, n };

	char *line = format(&r);
	const char *p = strstr(line, "\"path\":\"") + 8;
	for (size_t i = 0; i < n; i++)
		assert_memory_equal(p + 6 * i, "\\u0002", 6);
	assert_memory_equal(p + 6 * n, "\",\"model\"", 9);
	free(line);
	free(path);
}

static void test_format_appends(void **state)
{
	(void)state;
	struct request_record r = example();
	struct buf out = { 0 };

	assert_int_equal(buf_append(&out, "xxprev\n", 7), 0);
	buf_consume(&out, 2);
	assert_int_equal(accesslog_format(&r, &out), 0);
	assert_int_equal(accesslog_format(&r, &out), 0);
	assert_int_equal(buf_used(&out), 5 + 2 * (sizeof(example_line) - 1));
	assert_memory_equal(buf_head(&out), "prev\n", 5);
	assert_memory_equal(buf_head(&out) + 5, example_line, sizeof(example_line) - 1);
	assert_memory_equal(buf_head(&out) + 5 + sizeof(example_line) - 1, example_line,
			    sizeof(example_line) - 1);
	buf_free(&out);
}

/* The hand-rolled calendar against the C library's, leap years included,
 * up to where nanoseconds since 1970 fit in 64 bits (2554). */
static void test_time_matches_gmtime(void **state)
{
	(void)state;
	static const uint64_t fixed[] = {
		0, 951782400, 951868799, 1709251199, 4107542400, 4107628799, 18446744073,
	};
	char want[64], prefix[80];

	for (size_t i = 0; i < 200000 + sizeof(fixed) / sizeof(fixed[0]); i++) {
		uint64_t secs = i < 200000 ? i * UINT64_C(92111) : fixed[i - 200000];
		uint64_t ms = (i * 37) % 1000;
		struct request_record r = example();
		r.start_real_ns = secs * 1000000000u + ms * 1000000u + 999999u;

		time_t t = (time_t)secs;
		struct tm tm;
		assert_non_null(gmtime_r(&t, &tm));
		strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(prefix, sizeof(prefix), "{\"time\":\"%s.%03uZ\",", want, (unsigned)ms);

		struct buf out = { 0 };
		assert_int_equal(accesslog_format(&r, &out), 0);
		if (memcmp(buf_head(&out), prefix, strlen(prefix)) != 0)
			fail_msg("%llu: want %s got %.40s", (unsigned long long)secs, prefix,
				 buf_head(&out));
		buf_free(&out);
	}
}

/* ---- output ---- */

static void test_nothing_written_before_flush(void **state)
{
	(void)state;
	struct accesslog log;
	struct request_record r = example();

	assert_int_equal(accesslog_open(&log, tmp_path), 0);
	for (int i = 0; i < 3; i++)
		accesslog_write(&log, &r);
	assert_int_equal(file_size(tmp_path), 0);

	accesslog_flush(&log);
	size_t len;
	char *text = slurp(tmp_path, &len);
	assert_int_equal(len, 3 * (sizeof(example_line) - 1));
	for (int i = 0; i < 3; i++)
		assert_memory_equal(text + i * (sizeof(example_line) - 1), example_line,
				    sizeof(example_line) - 1);
	free(text);

	/* O_APPEND: a second open adds to what is there. */
	accesslog_close(&log);
	assert_int_equal(log.fd, -1);
	assert_int_equal(accesslog_open(&log, tmp_path), 0);
	accesslog_write(&log, &r);
	accesslog_close(&log);
	assert_int_equal(file_size(tmp_path), 4 * (sizeof(example_line) - 1));
}

static void test_threshold_writes_whole_lines(void **state)
{
	(void)state;
	struct accesslog log;
	struct request_record r = example();
	size_t line = sizeof(example_line) - 1, written = 0;

	assert_int_equal(accesslog_open(&log, tmp_path), 0);
	while (file_size(tmp_path) == 0) {
		accesslog_write(&log, &r);
		written++;
		assert_true(written * line <= 32 * 1024 + line);
	}
	/* One write carried every line so far, and only whole ones. */
	assert_true(written * line > 32 * 1024);
	assert_int_equal(file_size(tmp_path), written * line);
	assert_int_equal(buf_used(&log.pending), 0);

	accesslog_write(&log, &r);
	accesslog_close(&log);
	size_t len;
	char *text = slurp(tmp_path, &len);
	assert_int_equal(len, (written + 1) * line);
	for (size_t i = 0; i <= written; i++)
		assert_memory_equal(text + i * line, example_line, line);
	free(text);
}

static bool fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

static void test_dup_then_close_in_any_order(void **state)
{
	(void)state;
	struct accesslog first, second, third;
	struct request_record r1 = numbered(1), r2 = numbered(2), r3 = numbered(3);

	assert_int_equal(accesslog_open(&first, tmp_path), 0);
	assert_int_equal(accesslog_dup(&second, &first), 0);
	assert_int_equal(accesslog_dup(&third, &second), 0);
	assert_int_not_equal(first.fd, second.fd);
	assert_int_not_equal(second.fd, third.fd);

	accesslog_write(&second, &r2);
	accesslog_write(&first, &r1);
	int first_fd = first.fd;
	accesslog_close(&first);
	assert_false(fd_is_open(first_fd));

	accesslog_write(&third, &r3);
	accesslog_write(&second, &r2);
	accesslog_flush(&third);
	accesslog_close(&second);
	accesslog_close(&third);

	size_t len;
	char *text = slurp(tmp_path, &len);
	char *l1 = format(&r1), *l2 = format(&r2), *l3 = format(&r3);
	struct buf want = { 0 };
	assert_int_equal(buf_printf(&want, "%s%s%s%s", l1, l3, l2, l2), 0);
	assert_int_equal(len, buf_used(&want));
	assert_memory_equal(text, buf_head(&want), len);
	buf_free(&want);
	free(l1);
	free(l2);
	free(l3);
	free(text);
}

static void test_stdout_is_not_closed(void **state)
{
	(void)state;
	struct accesslog log, dup;

	assert_int_equal(accesslog_open(&log, "-"), 0);
	assert_true(log.fd > STDERR_FILENO);
	assert_int_equal(accesslog_dup(&dup, &log), 0);
	accesslog_close(&log);
	accesslog_close(&dup);
	assert_true(fd_is_open(STDOUT_FILENO));
}

static void test_off(void **state)
{
	(void)state;
	struct accesslog log, dup;
	struct request_record r = example();

	assert_int_equal(accesslog_open(&log, "off"), 0);
	assert_int_equal(log.fd, -1);
	accesslog_write(&log, &r);
	assert_int_equal(buf_used(&log.pending), 0);
	assert_int_equal(accesslog_dup(&dup, &log), 0);
	assert_int_equal(dup.fd, -1);
	accesslog_flush(&log);
	accesslog_close(&log);
	accesslog_close(&dup);

	assert_int_equal(accesslog_open(&log, "/nonexistent-dir/x.log"), -ENOENT);
	assert_int_equal(log.fd, -1);
	accesslog_close(&log);
}

/* Read whatever the pipe holds, appending it to got. */
static void drain(int fd, struct buf *got)
{
	char chunk[65536];
	ssize_t n;

	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		assert_int_equal(buf_append(got, chunk, (size_t)n), 0);
	assert_true(n < 0 && errno == EAGAIN);
}

/*
 * A reader that does not keep up: the log must not block, must bound what
 * it keeps by dropping the oldest lines, and what finally comes out must
 * still be whole lines, in order.
 */
static void test_stuck_pipe_drops_oldest_whole_lines(void **state)
{
	(void)state;
	int p[2];
	char path[64];
	struct accesslog log;
	const uint64_t total = 8000;

	assert_int_equal(pipe2(p, O_NONBLOCK), 0);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", p[1]);
	assert_int_equal(accesslog_open(&log, path), 0);
	assert_int_equal(fcntl(log.fd, F_SETFL, O_NONBLOCK), 0);

	for (uint64_t i = 0; i < total; i++) {
		struct request_record r = numbered(i);
		accesslog_write(&log, &r);
		assert_true(buf_used(&log.pending) <= 1024 * 1024 + 1024);
	}
	assert_true(log.dropped > 0);

	struct buf got = { 0 };
	do {
		drain(p[0], &got);
		accesslog_flush(&log);
	} while (buf_used(&log.pending));
	drain(p[0], &got);

	/* Whole lines, bytes_in strictly increasing, none invented. */
	uint64_t lines = 0;
	long long prev = -1;
	char *text = buf_head(&got), *end = buf_tail(&got);
	assert_true(end > text && end[-1] == '\n');
	for (char *l = text, *nl; l < end; l = nl + 1) {
		nl = memchr(l, '\n', (size_t)(end - l));
		const char *num = strstr(l, "\"bytes_in\":");
		assert_true(num && num < nl);
		long long i = strtoll(num + 11, NULL, 10);
		assert_true(i > prev);
		prev = i;

		struct request_record r = numbered((uint64_t)i);
		char *want = format(&r);
		assert_int_equal(nl + 1 - l, strlen(want));
		assert_memory_equal(l, want, strlen(want));
		free(want);
		lines++;
	}
	assert_int_equal(lines + log.dropped, total);
	assert_int_equal(prev, (long long)total - 1);

	buf_free(&got);
	accesslog_close(&log);
	close(p[0]);
	close(p[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_example),
		cmocka_unit_test(test_format_nulls),
		cmocka_unit_test(test_format_escaping),
		cmocka_unit_test(test_format_long_escaped_path),
		cmocka_unit_test(test_format_appends),
		cmocka_unit_test(test_time_matches_gmtime),
		cmocka_unit_test_setup_teardown(test_nothing_written_before_flush,
						make_tmp_path, remove_tmp_path),
		cmocka_unit_test_setup_teardown(test_threshold_writes_whole_lines,
						make_tmp_path, remove_tmp_path),
		cmocka_unit_test_setup_teardown(test_dup_then_close_in_any_order,
						make_tmp_path, remove_tmp_path),
		cmocka_unit_test(test_stdout_is_not_closed),
		cmocka_unit_test(test_off),
		cmocka_unit_test(test_stuck_pipe_drops_oldest_whole_lines),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
