/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The low-level SHA256_* calls are deprecated in OpenSSL 3.0 but present
 * throughout 3.x; this file asks for the 1.1.1 API so they come without
 * the deprecation attribute.  See hash_key() for why they are used.
 */
#define OPENSSL_API_COMPAT 10101

#include "auth/apikey.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#define SALT_LEN	16
#define HASH_LEN	32
#define SLOT_USED	(1ull << 63)	/* ids are 48 bits: the top bit marks a taken slot */
#define ID_TRIES	8		/* fresh ids drawn when one is already in the file */

static const char base62[] =
	"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* One key in the table; also the load-time record (src and line say where
 * it came from, for the duplicate message). */
struct key_slot {
	uint64_t id;			/* 48-bit id | SLOT_USED; 0 = empty */
	uint32_t tenant;
	uint32_t src;
	uint32_t line;
	uint8_t salt[SALT_LEN];
	uint8_t hash[HASH_LEN];
};

/* What apikeys_changed() compares: enough to notice an append (size,
 * mtime) and a replacement by rename (device, inode). */
struct file_stamp {
	bool exists;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtim;
};

struct key_source {
	uint32_t tenant;
	char *path;
	struct file_stamp stamp;
};

struct apikeys {
	struct key_slot *slots;		/* open addressing by id, power of two */
	size_t mask;
	unsigned shift;			/* 64 - log2(slots) */
	size_t count;
	struct key_source *src;
	size_t nsrc;
};

/* ---- small parsers ---- */

static int lower_hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* n lowercase hex digits into n / 2 bytes.  0 or -1. */
static int parse_hex(const char *p, size_t n, uint8_t *out)
{
	for (size_t i = 0; i < n; i += 2) {
		int hi = lower_hex_value(p[i]), lo = lower_hex_value(p[i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i / 2] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

static void format_hex(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
}

/* A 12-digit id as its 48-bit value.  0 or -1. */
static int parse_id(const char *p, size_t n, uint64_t *id)
{
	uint8_t b[APIKEY_ID_LEN / 2];

	if (n != APIKEY_ID_LEN || parse_hex(p, n, b))
		return -1;
	*id = 0;
	for (size_t i = 0; i < sizeof(b); i++)
		*id = *id << 8 | b[i];
	return 0;
}

static void format_id(uint64_t id, char out[APIKEY_ID_LEN + 1])
{
	uint8_t b[APIKEY_ID_LEN / 2];

	for (size_t i = 0; i < sizeof(b); i++)
		b[i] = (uint8_t)(id >> (8 * (sizeof(b) - 1 - i)));
	format_hex(b, sizeof(b), out);
	out[APIKEY_ID_LEN] = '\0';
}

static bool is_base62(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* The id of a well-formed key: prefix, 12 lowercase hex, '-', 43 base62. */
static int parse_key(const char *key, size_t len, uint64_t *id)
{
	const char *secret;

	if (!key || len != APIKEY_LEN || memcmp(key, APIKEY_PREFIX, APIKEY_PREFIX_LEN) != 0 ||
	    key[APIKEY_PREFIX_LEN + APIKEY_ID_LEN] != '-' ||
	    parse_id(key + APIKEY_PREFIX_LEN, APIKEY_ID_LEN, id))
		return -1;
	secret = key + APIKEY_PREFIX_LEN + APIKEY_ID_LEN + 1;
	for (size_t i = 0; i < APIKEY_SECRET_LEN; i++)
		if (!is_base62(secret[i]))
			return -1;
	return 0;
}

int apikey_key_id(const char *key, size_t len, char id_out[APIKEY_ID_LEN + 1])
{
	uint64_t id;

	if (parse_key(key, len, &id))
		return -EINVAL;
	format_id(id, id_out);
	return 0;
}

/*
 * SHA-256(salt || key).  The low-level calls because OpenSSL 3.0's
 * one-shot SHA256() and the EVP digest calls allocate on every use (three
 * and one allocations, measured) and cost two to four times as much, while
 * verification runs once per request on every worker.
 */
static void hash_key(const uint8_t salt[SALT_LEN], const char *key, size_t len,
		     uint8_t out[HASH_LEN])
{
	SHA256_CTX c;

	SHA256_Init(&c);
	SHA256_Update(&c, salt, SALT_LEN);
	SHA256_Update(&c, key, len);
	SHA256_Final(out, &c);
	OPENSSL_cleanse(&c, sizeof(c));
}

/* "2024-05-01T12:00:00Z", optionally with fractional seconds before the Z. */
static bool created_ok(const char *s)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd";
	size_t i = 0;

	for (; shape[i]; i++) {
		bool digit = s[i] >= '0' && s[i] <= '9';

		if (shape[i] == 'd' ? !digit : s[i] != shape[i])
			return false;
	}
	if (s[i] == '.') {
		size_t start = ++i;

		while (s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == start)
			return false;
	}
	return s[i] == 'Z' && s[i + 1] == '\0';
}

/* ---- reading keys files ---- */

/* One line of a keys file, parsed. */
struct key_line {
	uint64_t id;
	uint8_t salt[SALT_LEN];
	uint8_t hash[HASH_LEN];
	const char *created;		/* points into the line */
	const char *label;		/* points into the line, "" when none */
};

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* The next whitespace-separated field of *p, NUL-terminated in place. */
static char *next_field(char **p)
{
	char *s = *p, *start;

	while (is_blank(*s))
		s++;
	if (*s == '\0')
		return NULL;
	start = s;
	while (*s && !is_blank(*s))
		s++;
	if (*s)
		*s++ = '\0';
	*p = s;
	return start;
}

/* Parse one line (NUL-terminated, changed in place).  NULL with *skip set
 * for comments and blank lines, NULL for a key line, else the reason it is
 * not one. */
static const char *parse_line(char *line, struct key_line *kl, bool *skip)
{
	char *p = line, *id, *salt, *hash, *created, *end;

	*skip = false;
	while (is_blank(*p))
		p++;
	if (*p == '\0' || *p == '#') {
		*skip = true;
		return NULL;
	}
	id = next_field(&p);
	salt = next_field(&p);
	hash = next_field(&p);
	created = next_field(&p);
	if (!created)
		return "want: ID SALT SHA256 CREATED [LABEL]";
	if (parse_id(id, strlen(id), &kl->id))
		return "key id must be 12 lowercase hex digits";
	if (strlen(salt) != 2 * SALT_LEN || parse_hex(salt, 2 * SALT_LEN, kl->salt))
		return "salt must be 32 lowercase hex digits";
	if (strlen(hash) != 2 * HASH_LEN || parse_hex(hash, 2 * HASH_LEN, kl->hash))
		return "hash must be 64 lowercase hex digits";
	if (!created_ok(created))
		return "created must be a UTC time like 2024-05-01T12:00:00Z";
	while (is_blank(*p))
		p++;
	end = p + strlen(p);
	while (end > p && is_blank(end[-1]))
		*--end = '\0';
	kl->created = created;
	kl->label = p;
	return NULL;
}

/* The whole file behind fd, NUL-terminated.  0 or a negative errno. */
static int read_all(int fd, char **out, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	ssize_t got;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		if (cap - n < 2) {
			char *bigger = realloc(buf, cap * 2);

			if (!bigger) {
				free(buf);
				return -ENOMEM;
			}
			buf = bigger;
			cap *= 2;
		}
		got = pread(fd, buf + n, cap - n - 1, (off_t)n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			int err = -errno;

			free(buf);
			return err;
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

/* The next line of [*cur, end): NUL-terminated in place ("\r\n" too). */
static char *next_line(char **cur, char *end)
{
	char *line = *cur, *nl;

	if (line >= end)
		return NULL;
	nl = memchr(line, '\n', (size_t)(end - line));
	if (nl) {
		*nl = '\0';
		*cur = nl + 1;
	} else {
		*cur = end;
	}
	if (nl && nl > line && nl[-1] == '\r')
		nl[-1] = '\0';
	return line;
}

static void stamp_from_stat(const struct stat *st, struct file_stamp *s)
{
	s->exists = true;
	s->dev = st->st_dev;
	s->ino = st->st_ino;
	s->size = st->st_size;
	s->mtim = st->st_mtim;
}

static bool stamp_equal(const struct file_stamp *a, const struct file_stamp *b)
{
	if (a->exists != b->exists)
		return false;
	return !a->exists ||
	       (a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
		a->mtim.tv_sec == b->mtim.tv_sec && a->mtim.tv_nsec == b->mtim.tv_nsec);
}

static __attribute__((format(printf, 3, 4)))
void set_err(char *err, size_t cap, const char *fmt, ...)
{
	va_list ap;

	if (!err || cap == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, cap, fmt, ap);
	va_end(ap);
}

/*
 * Open and read a keys file.  The stamp is taken from the open file
 * before it is read: a change that lands while reading gives a stamp older
 * than the contents, so the next apikeys_changed() says true and nothing
 * is missed.  A missing file is 0 with *buf NULL and stamp->exists false.
 */
static int read_keys_file(const char *path, char **buf, size_t *len, struct file_stamp *stamp,
			  char *err, size_t errcap)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc;

	memset(stamp, 0, sizeof(*stamp));
	*buf = NULL;
	*len = 0;
	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0 || fstat(fd, &st) != 0) {
		rc = -errno;
		set_err(err, errcap, "%s: %s", path, strerror(-rc));
		if (fd >= 0)
			close(fd);
		return rc;
	}
	stamp_from_stat(&st, stamp);
	rc = read_all(fd, buf, len);
	close(fd);
	if (rc)
		set_err(err, errcap, "%s: %s", path, strerror(-rc));
	return rc;
}

/* Keys collected from the files before the table is sized. */
struct key_vec {
	struct key_slot *v;
	size_t n, cap;
};

static int key_vec_push(struct key_vec *kv, const struct key_slot *s)
{
	if (kv->n == kv->cap) {
		size_t cap = kv->cap ? kv->cap * 2 : 64;
		struct key_slot *v = realloc(kv->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		kv->v = v;
		kv->cap = cap;
	}
	kv->v[kv->n++] = *s;
	return 0;
}

/* Every key line of source i into kv. */
static int load_source(struct apikeys *k, uint32_t i, struct key_vec *kv, char *err,
		       size_t errcap)
{
	struct key_source *src = &k->src[i];
	char *buf, *cur, *line;
	size_t len;
	uint32_t lineno = 0;
	int rc = read_keys_file(src->path, &buf, &len, &src->stamp, err, errcap);

	cur = buf;
	while (rc == 0 && buf && (line = next_line(&cur, buf + len)) != NULL) {
		struct key_line kl;
		struct key_slot s = { .tenant = src->tenant, .src = i, .line = ++lineno };
		bool skip;
		const char *why = parse_line(line, &kl, &skip);

		if (why) {
			set_err(err, errcap, "%s:%u: %s", src->path, lineno, why);
			rc = -EINVAL;
		} else if (!skip) {
			s.id = kl.id | SLOT_USED;
			memcpy(s.salt, kl.salt, SALT_LEN);
			memcpy(s.hash, kl.hash, HASH_LEN);
			rc = key_vec_push(kv, &s);
		}
	}
	free(buf);
	return rc;
}

/* ---- the table ---- */

/* Ids are random, but the keys files are text anyone with access can
 * edit: a multiplicative hash keeps crafted ids from piling up anyway. */
static size_t slot_of(const struct apikeys *k, uint64_t id)
{
	return (size_t)((id * 0x9e3779b97f4a7c15ull) >> k->shift) & k->mask;
}

static const struct key_slot *table_find(const struct apikeys *k, uint64_t id)
{
	uint64_t want = id | SLOT_USED;

	for (size_t i = slot_of(k, id);; i = (i + 1) & k->mask) {
		const struct key_slot *s = &k->slots[i];

		if (s->id == want)
			return s;
		if (s->id == 0)
			return NULL;	/* the table is at most half full: a free slot ends every probe */
	}
}

static int table_insert(struct apikeys *k, const struct key_slot *s, char *err, size_t errcap)
{
	for (size_t i = slot_of(k, s->id & ~SLOT_USED);; i = (i + 1) & k->mask) {
		struct key_slot *t = &k->slots[i];
		char id[APIKEY_ID_LEN + 1];

		if (t->id == 0) {
			*t = *s;
			k->count++;
			return 0;
		}
		if (t->id == s->id) {
			format_id(s->id & ~SLOT_USED, id);
			set_err(err, errcap, "%s:%u: duplicate key id %s (also %s:%u)",
				k->src[s->src].path, s->line, id, k->src[t->src].path, t->line);
			return -EINVAL;
		}
	}
}

/* A power of two at least twice the keys: probes stay short. */
static int table_build(struct apikeys *k, const struct key_vec *kv, char *err, size_t errcap)
{
	size_t n = 16;
	unsigned bits = 4;
	int rc = 0;

	while (n < 2 * kv->n) {
		n *= 2;
		bits++;
	}
	k->slots = calloc(n, sizeof(*k->slots));
	if (!k->slots)
		return -ENOMEM;
	k->mask = n - 1;
	k->shift = 64 - bits;
	for (size_t i = 0; i < kv->n && rc == 0; i++)
		rc = table_insert(k, &kv->v[i], err, errcap);
	return rc;
}

static int copy_sources(struct apikeys *k, const struct apikey_source *src, size_t n)
{
	k->src = calloc(n ? n : 1, sizeof(*k->src));
	if (!k->src)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		k->src[i].tenant = src[i].tenant;
		k->src[i].path = strdup(src[i].path);
		if (!k->src[i].path)
			return -ENOMEM;
		k->nsrc = i + 1;
	}
	return 0;
}

int apikeys_load(const struct apikey_source *src, size_t n, struct apikeys **out,
		 char *err, size_t errcap)
{
	struct apikeys *k = calloc(1, sizeof(*k));
	struct key_vec kv = { 0 };
	int rc = k ? copy_sources(k, src, n) : -ENOMEM;

	for (size_t i = 0; i < n && rc == 0; i++)
		rc = load_source(k, (uint32_t)i, &kv, err, errcap);
	if (rc == 0)
		rc = table_build(k, &kv, err, errcap);
	if (kv.v)
		OPENSSL_cleanse(kv.v, kv.cap * sizeof(*kv.v));
	free(kv.v);
	if (rc == -ENOMEM)
		set_err(err, errcap, "API keys: %s", strerror(ENOMEM));
	if (rc) {
		apikeys_free(k);
		return rc;
	}
	*out = k;
	return 0;
}

void apikeys_free(struct apikeys *k)
{
	if (!k)
		return;
	for (size_t i = 0; i < k->nsrc; i++)
		free(k->src[i].path);
	free(k->src);
	if (k->slots)
		OPENSSL_cleanse(k->slots, (k->mask + 1) * sizeof(*k->slots));
	free(k->slots);
	free(k);
}

bool apikeys_changed(const struct apikeys *k)
{
	for (size_t i = 0; k && i < k->nsrc; i++) {
		struct file_stamp now = { .exists = false };
		struct stat st;

		/* A file that cannot be stat'ed counts as gone. */
		if (stat(k->src[i].path, &st) == 0)
			stamp_from_stat(&st, &now);
		if (!stamp_equal(&now, &k->src[i].stamp))
			return true;
	}
	return false;
}

size_t apikeys_count(const struct apikeys *k)
{
	return k ? k->count : 0;
}

int apikeys_verify(const struct apikeys *k, const char *key, size_t len, uint32_t *tenant,
		   char id_out[APIKEY_ID_LEN + 1])
{
	static const uint8_t no_salt[SALT_LEN];
	const struct key_slot *s;
	uint8_t digest[HASH_LEN];
	uint64_t id;

	if (parse_key(key, len, &id))
		return -EINVAL;
	memcpy(id_out, key + APIKEY_PREFIX_LEN, APIKEY_ID_LEN);
	id_out[APIKEY_ID_LEN] = '\0';
	s = k && k->count ? table_find(k, id) : NULL;
	/* Hash also for an unknown id, so its answer takes as long. */
	hash_key(s ? s->salt : no_salt, key, len, digest);
	if (!s || CRYPTO_memcmp(digest, s->hash, HASH_LEN) != 0)
		return -ENOENT;
	*tenant = s->tenant;
	return 0;
}

/* ---- writing keys files ---- */

static int fill_random(void *p, size_t n)
{
	uint8_t *b = p;

	while (n > 0) {
		ssize_t got = getrandom(b, n, 0);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return -errno;
		b += got;
		n -= (size_t)got;
	}
	return 0;
}

/* n base62 characters: random bytes below 248 (= 4 * 62) taken modulo 62,
 * the rest dropped, so every character is equally likely. */
static int random_base62(char *out, size_t n)
{
	uint8_t pool[64];
	size_t used = sizeof(pool), i = 0;
	int rc = 0;

	while (i < n && rc == 0) {
		if (used == sizeof(pool)) {
			rc = fill_random(pool, sizeof(pool));
			used = 0;
			continue;
		}
		if (pool[used] < 248)
			out[i++] = base62[pool[used] % 62];
		used++;
	}
	OPENSSL_cleanse(pool, sizeof(pool));
	return rc;
}

/* Printable text (UTF-8 allowed), no control characters. */
static bool label_ok(const char *label)
{
	size_t n = label ? strlen(label) : 0;

	if (n > APIKEY_LABEL_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)label[i];

		if (c < 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

/* The directory part of path, "." when it has none. */
static void dir_of(const char *path, char *dir, size_t cap)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		snprintf(dir, cap, ".");
	else if (slash == path)
		snprintf(dir, cap, "/");
	else
		snprintf(dir, cap, "%.*s", (int)(slash - path), path);
}

static int make_parent_dir(const char *path)
{
	char dir[4096];

	dir_of(path, dir, sizeof(dir));
	if (mkdir(dir, 0700) == 0 || errno == EEXIST)
		return 0;
	return -errno;
}

/* A new directory entry (a created or renamed file) is durable only once
 * its directory is synced. */
static int sync_dir_of(const char *path)
{
	char dir[4096];
	int fd, rc = 0;

	dir_of(path, dir, sizeof(dir));
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) != 0)
		rc = -errno;
	close(fd);
	return rc;
}

/*
 * Open path and take an exclusive flock on it.  A revoke replaces the file
 * by rename while holding the lock on the old one, so after locking, the
 * path must still name the file we hold; otherwise open the new one.
 * This keeps a create from appending to a file a revoke is replacing.
 */
static int open_locked(const char *path, int flags)
{
	for (int tries = 0; tries < 100; tries++) {
		struct stat held, named;
		int fd = open(path, flags | O_CLOEXEC, 0600);

		if (fd < 0)
			return -errno;
		if (flock(fd, LOCK_EX) != 0) {
			int rc = -errno;

			close(fd);
			return rc;
		}
		if (fstat(fd, &held) == 0 && stat(path, &named) == 0 &&
		    held.st_dev == named.st_dev && held.st_ino == named.st_ino)
			return fd;
		close(fd);
	}
	return -EAGAIN;
}

/* The first field of a key line, if it is an id; -1 for comments, blank
 * lines and anything else.  line need not be NUL-terminated at end. */
static int line_id(const char *line, const char *end, uint64_t *id)
{
	const char *p = line, *start;

	while (p < end && is_blank(*p))
		p++;
	start = p;
	while (p < end && !is_blank(*p) && *p != '\n' && *p != '\r')
		p++;
	return parse_id(start, (size_t)(p - start), id);
}

static bool file_has_id(const char *buf, size_t len, uint64_t id)
{
	const char *p = buf, *end = buf + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end;
		uint64_t have;

		if (line_id(p, eol, &have) == 0 && have == id)
			return true;
		p = nl ? nl + 1 : end;
	}
	return false;
}

/* A fresh key: its id not yet in the file (48 random bits make a clash
 * all but impossible; the check makes it impossible within one file). */
static int new_key(const char *existing, size_t len, char key[APIKEY_LEN + 1], uint64_t *id)
{
	uint8_t idb[APIKEY_ID_LEN / 2];
	int rc = -EEXIST;

	for (int tries = 0; tries < ID_TRIES && rc == -EEXIST; tries++) {
		rc = fill_random(idb, sizeof(idb));
		if (rc)
			return rc;
		*id = 0;
		for (size_t i = 0; i < sizeof(idb); i++)
			*id = *id << 8 | idb[i];
		if (file_has_id(existing, len, *id))
			rc = -EEXIST;
	}
	if (rc)
		return rc;
	memcpy(key, APIKEY_PREFIX, APIKEY_PREFIX_LEN);
	format_id(*id, key + APIKEY_PREFIX_LEN);
	key[APIKEY_PREFIX_LEN + APIKEY_ID_LEN] = '-';
	rc = random_base62(key + APIKEY_PREFIX_LEN + APIKEY_ID_LEN + 1, APIKEY_SECRET_LEN);
	key[APIKEY_LEN] = '\0';
	return rc;
}

static void format_created(char out[APIKEY_CREATED_LEN + 1])
{
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(out, APIKEY_CREATED_LEN + 1, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The keys-file line of a key, with a leading newline when the file does
 * not end in one (edited by hand).  Returns its length or -ENOMEM. */
static int format_key_line(const char *key, uint64_t id, const char *label, bool newline_first,
			   char **out)
{
	uint8_t salt[SALT_LEN], hash[HASH_LEN];
	char salt_hex[2 * SALT_LEN + 1], hash_hex[2 * HASH_LEN + 1];
	char id_text[APIKEY_ID_LEN + 1], created[APIKEY_CREATED_LEN + 1];
	int rc = fill_random(salt, sizeof(salt));

	if (rc)
		return rc;
	hash_key(salt, key, APIKEY_LEN, hash);
	format_hex(salt, SALT_LEN, salt_hex);
	salt_hex[2 * SALT_LEN] = '\0';
	format_hex(hash, HASH_LEN, hash_hex);
	hash_hex[2 * HASH_LEN] = '\0';
	format_id(id, id_text);
	format_created(created);
	rc = asprintf(out, "%s%s %s %s %s%s%s\n", newline_first ? "\n" : "", id_text, salt_hex,
		      hash_hex, created, label[0] ? " " : "", label);
	return rc < 0 ? -ENOMEM : rc;
}

/* A label without the blanks around it (the reader trims them anyway). */
static void trim_label(const char *label, char *out, size_t cap)
{
	const char *p = label ? label : "";
	size_t n;

	while (is_blank(*p))
		p++;
	n = strlen(p);
	while (n > 0 && is_blank(p[n - 1]))
		n--;
	snprintf(out, cap, "%.*s", (int)n, p);
}

/* One write() of the whole line, so a reader never sees half of it; a
 * short write is undone. */
static int append_line(int fd, const char *line, size_t len, off_t old_size)
{
	ssize_t put = write(fd, line, len);

	if (put == (ssize_t)len)
		return fsync(fd) == 0 ? 0 : -errno;
	int rc = put < 0 ? -errno : -EIO;

	if (ftruncate(fd, old_size) != 0)
		rc = -errno;
	return rc;
}

int apikey_create(const char *keys_file, const char *label, char *key_out, size_t cap,
		  char id_out[APIKEY_ID_LEN + 1])
{
	char key[APIKEY_LEN + 1], clean[APIKEY_LABEL_MAX + 1], *buf = NULL, *line = NULL;
	struct stat before;
	bool existed = stat(keys_file, &before) == 0;
	size_t len = 0;
	uint64_t id = 0;
	int fd, rc, n;

	if (cap < APIKEY_LEN + 1)
		return -ENOSPC;
	if (!label_ok(label))
		return -EINVAL;
	trim_label(label, clean, sizeof(clean));
	rc = make_parent_dir(keys_file);
	if (rc)
		return rc;
	fd = open_locked(keys_file, O_RDWR | O_APPEND | O_CREAT);
	if (fd < 0)
		return fd;
	rc = read_all(fd, &buf, &len);
	if (rc == 0)
		rc = new_key(buf, len, key, &id);
	if (rc == 0) {
		n = format_key_line(key, id, clean, len > 0 && buf[len - 1] != '\n', &line);
		rc = n < 0 ? n : append_line(fd, line, (size_t)n, (off_t)len);
	}
	if (rc == 0 && !existed)
		rc = sync_dir_of(keys_file);
	close(fd);	/* and the lock */
	free(buf);
	free(line);
	if (rc == 0) {
		memcpy(key_out, key, APIKEY_LEN + 1);
		format_id(id, id_out);
	}
	OPENSSL_cleanse(key, sizeof(key));
	return rc;
}

/* The id a revoke argument names: a bare id or a whole key. */
static int revoke_target(const char *arg, uint64_t *id)
{
	size_t n = arg ? strlen(arg) : 0;

	if (parse_id(arg, n, id) == 0)
		return 0;
	return parse_key(arg, n, id) == 0 ? 0 : -EINVAL;
}

/* buf without the lines of key id; *removed counts them.  The rest is
 * kept byte for byte, comments and line endings included. */
static size_t drop_lines(char *buf, size_t len, uint64_t id, size_t *removed)
{
	char *p = buf, *end = buf + len, *w = buf;

	*removed = 0;
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *next = nl ? nl + 1 : end;
		uint64_t have;

		if (line_id(p, nl ? nl : end, &have) == 0 && have == id) {
			(*removed)++;
		} else {
			memmove(w, p, (size_t)(next - p));
			w += next - p;
		}
		p = next;
	}
	return (size_t)(w - buf);
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t put = write(fd, p, n);

		if (put < 0 && errno == EINTR)
			continue;
		if (put < 0)
			return -errno;
		p += put;
		n -= (size_t)put;
	}
	return 0;
}

/* Write data to a temporary file next to path (same mode and, when we may,
 * owner as the file it replaces), sync it and rename it over path. */
static int replace_file(const char *path, const struct stat *old, const char *data, size_t len)
{
	char tmp[4096];
	int fd, rc;

	if (snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = fchmod(fd, old->st_mode & 07777) == 0 ? 0 : -errno;
	if (fchown(fd, old->st_uid, old->st_gid) != 0) {
		/* not root: the file stays ours, which it already was */
	}
	if (rc == 0)
		rc = write_all(fd, data, len);
	if (rc == 0 && fsync(fd) != 0)
		rc = -errno;
	if (close(fd) != 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -errno;
	if (rc) {
		unlink(tmp);
		return rc;
	}
	return sync_dir_of(path);
}

int apikey_revoke(const char *keys_file, const char *id_or_key)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0, removed = 0;
	uint64_t id;
	int fd, rc = revoke_target(id_or_key, &id);

	if (rc)
		return rc;
	fd = open_locked(keys_file, O_RDONLY);
	if (fd < 0)
		return fd;
	rc = fstat(fd, &st) == 0 ? 0 : -errno;
	if (rc == 0)
		rc = read_all(fd, &buf, &len);
	if (rc == 0) {
		len = drop_lines(buf, len, id, &removed);
		rc = removed ? replace_file(keys_file, &st, buf, len) : -ENOENT;
	}
	close(fd);	/* and the lock, after the rename */
	free(buf);
	return rc;
}

/* ---- listing ---- */

struct info_vec {
	struct apikey_info *v;
	size_t n, cap;
};

static int info_push(struct info_vec *iv, const struct key_line *kl)
{
	struct apikey_info *i;

	if (iv->n == iv->cap) {
		size_t cap = iv->cap ? iv->cap * 2 : 16;
		struct apikey_info *v = realloc(iv->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		iv->v = v;
		iv->cap = cap;
	}
	i = &iv->v[iv->n];
	memset(i, 0, sizeof(*i));
	format_id(kl->id, i->id);
	if (strlen(kl->created) <= APIKEY_CREATED_LEN)
		memcpy(i->created, kl->created, strlen(kl->created) + 1);
	i->label = strdup(kl->label);
	if (!i->label)
		return -ENOMEM;
	iv->n++;
	return 0;
}

int apikey_list(const char *keys_file, struct apikey_info **out, size_t *n,
		char *err, size_t errcap)
{
	struct info_vec iv = { 0 };
	struct file_stamp stamp;
	char *buf, *cur, *line;
	size_t len;
	unsigned lineno = 0;
	int rc = read_keys_file(keys_file, &buf, &len, &stamp, err, errcap);

	cur = buf;
	while (rc == 0 && buf && (line = next_line(&cur, buf + len)) != NULL) {
		struct key_line kl;
		bool skip;
		const char *why = parse_line(line, &kl, &skip);

		lineno++;
		if (why) {
			set_err(err, errcap, "%s:%u: %s", keys_file, lineno, why);
			rc = -EINVAL;
		} else if (!skip) {
			rc = info_push(&iv, &kl);
		}
	}
	free(buf);
	if (rc) {
		apikey_list_free(iv.v, iv.n);
		return rc;
	}
	*out = iv.v;
	*n = iv.n;
	return 0;
}

void apikey_list_free(struct apikey_info *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(list[i].label);
	free(list);
}
