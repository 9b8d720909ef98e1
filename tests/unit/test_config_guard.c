/* SPDX-License-Identifier: Apache-2.0 */
/* guardrails: in the config: policies, tenants' choice, precise errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"
#include "guard/guard.h"

#include "config_fixture.h"

/* expected: the error text after "PATH:" (a prefix of it when partial). */
static void assert_load_error(const char *yaml, const char *expected, bool partial)
{
	struct sluice_config *cfg = NULL;
	struct config_error err;
	char path[64], want[600];
	int rc = load_text(yaml, path, sizeof(path), &cfg, &err);

	snprintf(want, sizeof(want), "%s:%s", path, expected);
	assert_int_equal(rc, -EINVAL);
	assert_null(cfg);
	if (partial && strncmp(err.text, want, strlen(want)) != 0)
		fail_msg("got  %s\nwant %s...", err.text, want);
	if (!partial)
		assert_string_equal(err.text, want);
}

static void test_policies_and_tenants(void **state)
{
	char words[] = "/tmp/sluice-guardwords-XXXXXX";
	int fd = mkstemp(words);
	char yaml[2048];

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "# rivals\nGlobex\n\n  Initech\n", 27), 27);
	close(fd);
	snprintf(yaml, sizeof(yaml), BACKEND
		 "guardrails:\n"
		 "  default: strict\n"
		 "  policies:\n"
		 "    - name: default\n"
		 "      detect: {email: mask, credit_card: block, secrets: block}\n"
		 "      custom:\n"
		 "        - {name: project_codename, regex: \"(?i)project\\\\s+nightjar\", action: block}\n"
		 "        - {name: competitors, words_file: %s, action: flag}\n"
		 "      topics: {deny: [crypto trading], action: block}\n"
		 "      response: {enabled: true, hold_back: 32}\n"
		 "    - name: strict\n"
		 "      detect: {email: block}\n"
		 "tenants:\n"
		 "  - name: acme\n"
		 "    guardrails: default\n"
		 "  - name: other\n", words);
	struct sluice_config *cfg = load_ok(yaml);
	unlink(words);
	assert_int_equal(cfg->guardrails.npolicies, 2);
	const struct guard_policy *p = config_guard_policy(cfg, cfg->tenants[0].id);
	assert_string_equal(guard_policy_name(p), "default");
	assert_int_equal(guard_policy_hold_back(p), 32);
	assert_int_equal(guard_entity_action(p, GUARD_EMAIL), GUARD_MASK);
	assert_int_equal(guard_entity_action(p, GUARD_PHONE), GUARD_OFF);
	assert_string_equal(guard_entity_name(p, GUARD_CUSTOM0 + 1), "competitors");
	/* A tenant without its own policy gets guardrails.default. */
	assert_string_equal(guard_policy_name(config_guard_policy(cfg, cfg->tenants[1].id)),
			    "strict");
	assert_string_equal(guard_policy_name(config_guard_policy(cfg, 0)), "strict");
	config_free(cfg);

	/* No guardrails: section: no policy anywhere. */
	cfg = load_ok(BACKEND);
	assert_null(config_guard_policy(cfg, 0));
	config_free(cfg);
}

static void test_errors(void **state)
{
	(void)state;
	assert_load_error(BACKEND "guardrails:\n  policies:\n    - name: p\n"
			  "      detect: {emial: mask}\n",
			  "8: guardrails.policies[0].detect.emial: unknown detector", true);
	assert_load_error(BACKEND "guardrails:\n  policies:\n    - name: p\n"
			  "      detect: {email: hide}\n",
			  "8: guardrails.policies[0].detect.email: must be mask, block, flag or off",
			  false);
	/* A construct Hyperscan does not support: the rule's line and its reason. */
	assert_load_error(BACKEND "guardrails:\n  policies:\n    - name: p\n"
			  "      custom:\n"
			  "        - name: backref\n"
			  "          regex: \"(a)\\\\1\"\n",
			  "10: guardrails.policies[0]: backref: Hyperscan refused /(a)\\1/: ",
			  true);
	assert_load_error(BACKEND "guardrails:\n  policies:\n    - name: p\n"
			  "      custom:\n        - {name: w, words_file: /nonexistent/w.txt}\n",
			  "9: guardrails.policies[0].custom[0].words_file: cannot read "
			  "/nonexistent/w.txt: No such file or directory", false);
	assert_load_error(BACKEND "guardrails:\n  policies:\n    - name: p\n"
			  "      response: {hold_back: 100000}\n",
			  "8: guardrails.policies[0].response.hold_back: must be an integer "
			  "between 0 and 4096", false);
	assert_load_error(BACKEND "guardrails:\n  policies:\n    - name: p\n    - name: p\n",
			  "8: guardrails.policies[1]: duplicate policy name p", false);
	assert_load_error(BACKEND "tenants:\n  - name: acme\n    guardrails: nope\n",
			  "7: tenants[0].guardrails: no policy named nope in guardrails.policies",
			  false);
	assert_load_error(BACKEND "guardrails:\n  default: nope\n",
			  "6: guardrails.default: no policy named nope", false);
	assert_load_error(BACKEND "guardrails:\n  policies:\n    - name: p\n"
			  "      external: {backend: guard}\n",
			  "8: guardrails.policies[0].external: unknown key", false);
}

/* A policy in an included file: its errors name that file and its line. */
static void test_included_policy(void **state)
{
	char dir[] = "/tmp/sluice-guardinc-XXXXXX", path[300], want[700];
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/guard.yaml", dir);
	assert_non_null(f = fopen(path, "w"));
	fputs("guardrails:\n  policies:\n    - name: p\n      custom:\n"
	      "        - {name: bad, regex: \"(a)\\\\1\"}\n", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/main.yaml", dir);
	assert_non_null(f = fopen(path, "w"));
	fputs("include: guard.yaml\n" BACKEND, f);
	fclose(f);
	struct sluice_config *cfg = NULL;
	struct config_error err;
	assert_int_equal(config_load(path, &cfg, &err), -EINVAL);
	snprintf(want, sizeof(want), "%s/guard.yaml:5: guardrails.policies[0]: bad: Hyperscan", dir);
	if (strncmp(err.text, want, strlen(want)) != 0)
		fail_msg("got  %s\nwant %s...", err.text, want);
	snprintf(path, sizeof(path), "%s/guard.yaml", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/main.yaml", dir);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policies_and_tenants),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_included_policy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
