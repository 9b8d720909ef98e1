/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The hold-back window of a streamed response.  A model writes an e-mail
 * address or a key across several chunks, so text cannot go out as it
 * comes: each feed scans what is held plus the new text, and releases
 * only the part no match can still grow across, that is all but the last
 * hold_back bytes, and never a part of a mask span that reaches into
 * them.  The held tail is scanned again with the next chunk, which is
 * what makes a match split at any offset visible.  The cut never splits
 * a UTF-8 sequence, nor a word (up to 4 KiB), so a JWT or a key much
 * longer than hold_back is still held whole until its end is seen.
 */
#include "guard/guard_int.h"

#include <errno.h>
#include <string.h>

void guard_window_init(struct guard_window *w, const struct guard_policy *p)
{
	memset(w, 0, sizeof(*w));
	w->p = p;
}

void guard_window_free(struct guard_window *w)
{
	buf_free(&w->held);
}

#define GUARD_WORD_MAX	4096	/* longest word held back whole */
#define GUARD_CONTEXT	16	/* released bytes kept for validators' look-behind */
#define GUARD_RELEASE_STEP 32	/* fewest bytes a scan of a feed may release */

static bool is_space(char c)
{
	return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

/* Where held text may be cut: before the last hold_back bytes, before a
 * mask span that reaches past that point, and on a UTF-8 boundary. */
static size_t release_point(const struct guard_window *w, const struct guard_scratch *s,
			    struct str h, bool final)
{
	size_t hold = guard_policy_hold_back(w->p);
	size_t cut = final ? h.len : h.len > hold ? h.len - hold : 0;

	if (cut < w->ctx)
		return w->ctx;
	/* Secrets are single long tokens (a JWT is hundreds of bytes): a cut
	 * goes back to the start of the word it falls in, up to a bound
	 * beyond which the word is released anyway. */
	size_t word = cut;
	while (!final && word > w->ctx && cut - word < GUARD_WORD_MAX &&
	       !is_space(h.p[word - 1]))
		word--;
	if (word == w->ctx || is_space(h.p[word - 1]))
		cut = word;
	while (cut > w->ctx && cut < h.len && ((unsigned char)h.p[cut] & 0xc0) == 0x80)
		cut--;
	/* Last, so nothing moves the cut into a span again: a mask span
	 * (phones and IBANs hold spaces) goes out whole or not at all. */
	for (size_t i = 0; i < s->nmatch && !final; i++) {
		const struct guard_match *m = &s->match[i];
		if (m->from >= cut)
			break;
		if (m->to > cut) {
			cut = m->from;
			break;
		}
	}
	return cut < w->ctx ? w->ctx : cut;
}

static int release(struct guard_window *w, struct guard_scratch *s, struct buf *out, bool final)
{
	/* An empty buffer may have no memory yet: no pointer arithmetic on it. */
	struct str h = w->held.data ? buf_str(&w->held) : (struct str){ "", 0 };
	int err = guard_scan_after(w->p, s, h.p, h.len, w->ctx, &w->res);

	if (err)
		return err;
	if (final)
		guard_finish_topics(w->p, &w->res);
	if (w->res.blocked) {
		/* Nothing of the held text goes out, now or later. */
		w->blocked = true;
		buf_reset(&w->held);
		return 0;
	}
	size_t cut = release_point(w, s, h, final);
	if (cut < w->ctx)
		return 0;
	if (guard_mask_append(w->p, s, h.p, w->ctx, cut, out))
		return -ENOMEM;
	/* Keep a little released text in front as context for the next scan. */
	size_t keep = cut < GUARD_CONTEXT ? cut : GUARD_CONTEXT;
	buf_consume(&w->held, cut - keep);
	w->ctx = keep;
	return 0;
}

int guard_window_feed(struct guard_window *w, struct guard_scratch *s, const char *text,
		      size_t len, struct buf *out)
{
	if (w->blocked || len == 0)
		return 0;
	if (buf_append(&w->held, text, len))
		return -ENOMEM;
	/* A scan only when it can release GUARD_RELEASE_STEP bytes or more:
	 * a model's chunks are a few bytes each, and scanning the held text
	 * for every one cost more than the rest of the relay.  Skipping is
	 * safe: what is not released needs no verdict yet. */
	if (buf_used(&w->held) - w->ctx < (size_t)guard_policy_hold_back(w->p) + GUARD_RELEASE_STEP)
		return 0;
	return release(w, s, out, false);
}

int guard_window_finish(struct guard_window *w, struct guard_scratch *s, struct buf *out)
{
	if (w->blocked)
		return 0;
	return release(w, s, out, true);
}
