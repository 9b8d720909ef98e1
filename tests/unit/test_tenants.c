/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The tenant registry (quota/tenants.c) and the learned-source rule
 * (kern/learned.c): a tenant's state follows its name across reloads
 * that reorder, add and remove tenants (issue 9 case 3), and an address
 * is exclusive only when one tenant's credentials alone were seen there
 * within the window (case 2).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config/config.h"
#include "kern/learned.h"
#include "quota/tenants.h"

#define BACKEND \
	"backends:\n" \
	"  - name: b\n" \
	"    url: http://127.0.0.1:9000\n" \
	"    models: [m]\n"

static struct sluice_config *load(const char *yaml)
{
	char path[] = "/tmp/sluice-tenants-XXXXXX";
	struct sluice_config *cfg = NULL;
	struct config_error err;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, yaml, strlen(yaml)), (ssize_t)strlen(yaml));
	close(fd);
	int rc = config_load(path, &cfg, &err);
	unlink(path);
	if (rc)
		print_error("config: %s\n", err.text);
	assert_int_equal(rc, 0);
	return cfg;
}

struct reg {
	struct sluice_tenant_state st[SLUICE_MAX_TENANTS];
	uint32_t freed[SLUICE_MAX_TENANTS];
	size_t nfreed;
};

static struct reg *reg_new(void)
{
	struct reg *r = calloc(1, sizeof(*r));
	assert_non_null(r);
	return r;
}

static struct sluice_config *assign(struct reg *r, const char *yaml)
{
	struct sluice_config *cfg = load(yaml);
	assert_int_equal(tenants_assign(r->st, cfg, r->freed, &r->nfreed), 0);
	return cfg;
}

static unsigned id_of(const struct sluice_config *cfg, const char *name)
{
	const struct tenant_cfg *t = config_tenant_by_name(cfg, name);
	assert_non_null(t);
	assert_ptr_equal(config_tenant_by_id(cfg, t->id), t);
	return t->id;
}

/* Case 3: [alpha, beta], alpha blocked; then [gamma, beta]: gamma starts
 * clean, beta keeps its slot, alpha's state is gone with it. */
static void test_reorder_and_replace(void **state)
{
	(void)state;
	struct reg *r = reg_new();
	struct sluice_config *c1 = assign(r, "tenants:\n  - name: alpha\n  - name: beta\n" BACKEND);
	unsigned alpha = id_of(c1, "alpha"), beta = id_of(c1, "beta");
	assert_int_not_equal(alpha, beta);
	assert_true(alpha > 0 && beta > 0);
	r->st[alpha].blocked = 1;
	r->st[alpha].usage.tokens_day = 60;
	r->st[alpha].active_connections = 3;
	r->st[beta].requests = 7;

	struct sluice_config *c2 = assign(r, "tenants:\n  - name: gamma\n  - name: beta\n" BACKEND);
	assert_int_equal(id_of(c2, "beta"), beta);
	assert_int_equal(r->st[beta].requests, 7);
	unsigned gamma = id_of(c2, "gamma");
	assert_int_equal(r->nfreed, 1);
	assert_int_equal(r->freed[0], alpha);
	/* gamma reuses alpha's slot, but none of its state... */
	assert_int_equal(r->st[gamma].blocked, 0);
	assert_int_equal(r->st[gamma].usage.tokens_day, 0);
	/* ...except connections still open, which count themselves out. */
	assert_int_equal(r->st[gamma].active_connections, 3);

	/* Reordered (a restart reads the same pinned array): same slots. */
	struct sluice_config *c3 = assign(r, "tenants:\n  - name: beta\n  - name: gamma\n" BACKEND);
	assert_int_equal(id_of(c3, "beta"), beta);
	assert_int_equal(id_of(c3, "gamma"), gamma);
	assert_int_equal(r->nfreed, 0);
	config_free(c1);
	config_free(c2);
	config_free(c3);
	free(r);
}

/* auth.anonymous names a tenant: its id follows the registry too. */
static void test_anonymous_tenant_follows(void **state)
{
	(void)state;
	struct reg *r = reg_new();
	struct sluice_config *c1 = assign(r, "tenants:\n  - name: x\n" BACKEND);
	struct sluice_config *c2 = assign(r, "tenants:\n  - name: corp\n  - name: x\n"
					  "auth: {anonymous: corp}\n" BACKEND);
	assert_int_equal(id_of(c2, "x"), id_of(c1, "x"));
	assert_int_equal(c2->auth.anonymous_tenant, id_of(c2, "corp"));
	assert_int_not_equal(c2->auth.anonymous_tenant, 1 + 0);	/* not its position */
	config_free(c1);
	config_free(c2);
	free(r);
}

/* Names longer than the stored prefix are told apart by hash and length. */
static void test_long_names(void **state)
{
	(void)state;
	char yaml[1024], a[80], b[80];
	memset(a, 'n', 60);
	a[60] = '\0';
	memcpy(b, a, 61);
	b[59] = 'm';
	snprintf(yaml, sizeof(yaml), "tenants:\n  - name: %s\n  - name: %s\n" BACKEND, a, b);
	struct reg *r = reg_new();
	struct sluice_config *c1 = assign(r, yaml);
	unsigned ia = id_of(c1, a), ib = id_of(c1, b);
	assert_int_not_equal(ia, ib);
	assert_true(tenants_slot_is(&r->st[ia], a));
	assert_false(tenants_slot_is(&r->st[ia], b));
	assert_int_equal(tenants_find(r->st, b), ib);
	snprintf(yaml, sizeof(yaml), "tenants:\n  - name: %s\n  - name: %s\n" BACKEND, b, a);
	struct sluice_config *c2 = assign(r, yaml);
	assert_int_equal(id_of(c2, a), ia);
	assert_int_equal(id_of(c2, b), ib);
	config_free(c1);
	config_free(c2);
	free(r);
}

/* ---- learned sources ---- */

#define S 1000000000ull
#define TTL (600 * S)

static void test_learned_exclusive_then_shared(void **state)
{
	(void)state;
	struct sluice_learned l = learned_next(NULL, 5, 100 * S, TTL);
	assert_int_equal(l.tenant, 5);
	assert_true(learned_exclusive(&l, 100 * S));
	assert_true(learned_exclusive(&l, 699 * S));
	assert_false(learned_exclusive(&l, 700 * S));	/* expired */

	/* The same tenant again: still exclusive, window pushed. */
	l = learned_next(&l, 5, 200 * S, TTL);
	assert_true(learned_exclusive(&l, 799 * S));

	/* Case 2: beta's key from the same address: shared for a window. */
	l = learned_next(&l, 6, 300 * S, TTL);
	assert_false(learned_exclusive(&l, 300 * S));
	assert_false(learned_exclusive(&l, 899 * S));
	/* alpha after beta: both seen within a window, shared till 1000 s... */
	l = learned_next(&l, 5, 400 * S, TTL);
	assert_false(learned_exclusive(&l, 400 * S));
	l = learned_next(&l, 5, 950 * S, TTL);
	assert_false(learned_exclusive(&l, 999 * S));
	/* ...and then an address alpha kept using alone is its again. */
	assert_int_equal(l.tenant, 5);
	assert_true(learned_exclusive(&l, 1001 * S));
}

/* A keyless request makes the address shared; a stale entry is forgotten. */
static void test_learned_keyless_and_expiry(void **state)
{
	(void)state;
	struct sluice_learned l = learned_next(NULL, 5, 100 * S, TTL);
	l = learned_next(&l, LEARNED_NO_CREDENTIAL, 110 * S, TTL);
	assert_false(learned_exclusive(&l, 110 * S));
	assert_int_equal(l.tenant, 5);

	struct sluice_learned k = learned_next(NULL, LEARNED_NO_CREDENTIAL, 100 * S, TTL);
	assert_int_equal(k.tenant, SLUICE_TENANT_ANON);
	assert_false(learned_exclusive(&k, 100 * S));

	/* Expired: the old sightings (shared ones too) no longer count. */
	l = learned_next(&l, 7, 2000 * S, TTL);
	assert_int_equal(l.tenant, 7);
	assert_true(learned_exclusive(&l, 2000 * S));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reorder_and_replace),
		cmocka_unit_test(test_anonymous_tenant_follows),
		cmocka_unit_test(test_long_names),
		cmocka_unit_test(test_learned_exclusive_then_shared),
		cmocka_unit_test(test_learned_keyless_and_expiry),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
