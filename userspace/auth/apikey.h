/* SPDX-License-Identifier: Apache-2.0 */
/*
 * API keys: `sk-sluice-<id>-<secret>`.
 *
 *   id      12 lowercase hex digits (48 random bits): the key's public name,
 *           safe to log and to pass to `sluicectl key revoke`
 *   secret  43 base62 characters (256 random bits) from getrandom()
 *
 * Each tenant has a keys file, one key per line:
 *
 *   <id> <salt: 32 hex> <sha256: 64 hex> <created: RFC 3339 UTC> [label...]
 *
 * with `#` comments and blank lines allowed.  The hash is SHA-256 over the
 * 16 salt bytes followed by the whole key string; the plain key is never
 * stored.  A fast hash is the right one here: the secret carries 256 random
 * bits, so there is nothing for a slow password hash to protect against
 * (guessing a secret costs 2^255 tries whatever the hash costs), while
 * every request pays the verification.
 *
 * The daemon loads every tenant's file into one immutable table (struct
 * apikeys) shared read-only by all workers, and builds a new one when
 * apikeys_changed() says a file moved on.  sluicectl writes the files with
 * apikey_create() and apikey_revoke().
 */
#ifndef SLUICE_AUTH_APIKEY_H
#define SLUICE_AUTH_APIKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define APIKEY_PREFIX		"sk-sluice-"
#define APIKEY_PREFIX_LEN	10
#define APIKEY_ID_LEN		12
#define APIKEY_SECRET_LEN	43
/* The whole key: prefix, id, '-', secret (66 characters, no NUL). */
#define APIKEY_LEN		(APIKEY_PREFIX_LEN + APIKEY_ID_LEN + 1 + APIKEY_SECRET_LEN)
#define APIKEY_LABEL_MAX	200	/* bytes of a label, printable text */
#define APIKEY_CREATED_LEN	20	/* "2024-05-01T12:00:00Z" */

/* One tenant's keys file.  A file that does not exist holds no keys. */
struct apikey_source {
	uint32_t tenant;
	const char *path;
};

/* Every tenant's keys, immutable once loaded. */
struct apikeys;

/*
 * Load the keys files of n sources into a new table.  0 and *out, or a
 * negative errno with err set to "path:line: reason" (a malformed line,
 * a key id present twice in any of the files) or "path: reason" (a file
 * that cannot be read).  A missing file is an empty set and no error.
 */
int apikeys_load(const struct apikey_source *src, size_t n, struct apikeys **out,
		 char *err, size_t errcap);

/* NULL is fine. */
void apikeys_free(struct apikeys *k);

/*
 * True when any source differs from what the table was built from (device,
 * inode, size and modification time of each file, or its appearing or
 * disappearing): one stat() per source, so cheap enough for a periodic
 * check.  A table whose rebuild failed keeps saying true, so the caller
 * simply tries again at its next check.
 */
bool apikeys_changed(const struct apikeys *k);

/* Keys in the table (0 for NULL). */
size_t apikeys_count(const struct apikeys *k);

/*
 * Check a presented key: one parse, one table probe, one SHA-256 and a
 * constant-time compare; no allocation, safe from any thread.
 *   0        a valid key: *tenant is its tenant
 *   -ENOENT  a well-formed key of unknown id or wrong secret
 *   -EINVAL  not a sluice key at all (prefix, length, alphabet)
 * id_out (12 characters and a NUL) gets the key's id whenever the key is
 * well-formed, also on -ENOENT, so the caller can log which key failed.
 * An unknown id costs the same hash as a known one.  k may be NULL (no keys).
 */
int apikeys_verify(const struct apikeys *k, const char *key, size_t len, uint32_t *tenant,
		   char id_out[APIKEY_ID_LEN + 1]);

/* The id of a well-formed key (nothing verified): 0, or -EINVAL. */
int apikey_key_id(const char *key, size_t len, char id_out[APIKEY_ID_LEN + 1]);

/*
 * Make a new key and append its line to keys_file (created with mode 0600,
 * and its parent directory with 0700, when missing), written with one
 * write() and fsync'ed.  The plain key goes to key_out (cap at least
 * APIKEY_LEN + 1) and is not kept anywhere: this is the only time it is
 * seen.  label may be NULL; it must be printable (no control characters)
 * and at most APIKEY_LABEL_MAX bytes.  0, -EINVAL (label), -ENOSPC (cap),
 * or another negative errno from the file system.
 */
int apikey_create(const char *keys_file, const char *label, char *key_out, size_t cap,
		  char id_out[APIKEY_ID_LEN + 1]);

/*
 * Remove a key from keys_file by its id or by the whole key: the file is
 * rewritten through a temporary file in the same directory, fsync'ed and
 * renamed over it, with comments and every other line kept as they were.
 * 0, -ENOENT (no such id in the file, or no file), -EINVAL (neither an id
 * nor a key), or another negative errno.
 */
int apikey_revoke(const char *keys_file, const char *id_or_key);

/* One line of a keys file as `sluicectl key list` shows it: never the hash. */
struct apikey_info {
	char id[APIKEY_ID_LEN + 1];
	char created[APIKEY_CREATED_LEN + 1];	/* as stored, "" if longer */
	char *label;				/* owned, "" when none */
};

/*
 * Every key of one keys file, in file order.  0 with *out (free with
 * apikey_list_free) and *n; a missing file is 0 keys.  A malformed line is
 * -EINVAL with err "path:line: reason".
 */
int apikey_list(const char *keys_file, struct apikey_info **out, size_t *n,
		char *err, size_t errcap);
void apikey_list_free(struct apikey_info *list, size_t n);

#endif
