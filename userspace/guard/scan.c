/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One scan: Hyperscan reports candidates with their leftmost start; each
 * goes through its detector's validator at once (the text is at hand),
 * counts toward the result by its action, and, when its action is mask,
 * joins the list of spans to replace.  Overlapping mask spans resolve to
 * the earliest start, then the longest, so "+44 20 7946 0958" is one
 * phone, not "+44 20 7946" and a tail.
 */
#include "guard/guard_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <hs/hs.h>

struct scan_ctx {
	const struct guard_policy *p;
	struct guard_scratch *s;
	const char *text;
	size_t len;
	size_t skip_before;	/* mask candidates starting earlier were released */
	struct guard_result *res;
};

/* Candidate list growth: amortised, and only until the worker is warm. */
static int cand_push(struct guard_scratch *s, struct guard_match m)
{
	if (s->ncand == s->cand_cap) {
		size_t cap = s->cand_cap ? 2 * s->cand_cap : 256;
		if (cap > GUARD_CAND_MAX)
			return -E2BIG;
		struct guard_match *c = realloc(s->cand, cap * sizeof(*c));
		if (!c)
			return -ENOMEM;
		s->cand = c;
		s->cand_cap = cap;
	}
	s->cand[s->ncand++] = m;
	return 0;
}

static int on_match(unsigned id, unsigned long long from, unsigned long long to,
		    unsigned flags, void *arg)
{
	struct scan_ctx *c = arg;
	const struct guard_pat *pat = &c->p->pats[id];
	uint64_t bit = 1ull << pat->entity;

	(void)flags;
	if (pat->allow) {
		c->res->allow_seen = true;
		return 0;
	}
	if (pat->validate && !pat->validate(c->text, c->len, (size_t)from, (size_t)to))
		return 0;
	c->res->hits |= bit;
	switch ((enum guard_action)pat->action) {
	case GUARD_BLOCK:
		c->res->blocked |= bit;
		return 0;
	case GUARD_FLAG:
		c->res->flagged |= bit;
		return 0;
	case GUARD_MASK:
		c->res->masked |= bit;
		if (from < c->skip_before)
			return 0;
		break;
	case GUARD_OFF:
		return 0;
	}
	int err = cand_push(c->s, (struct guard_match){ .from = (uint32_t)from, .to = (uint32_t)to,
				.entity = pat->entity, .action = pat->action });
	if (err) {
		c->s->overflow = true;
		return 1;	/* stop the scan: the caller fails closed */
	}
	return 0;
}

static int by_start_then_longest(const void *a, const void *b)
{
	const struct guard_match *x = a, *y = b;

	if (x->from != y->from)
		return x->from < y->from ? -1 : 1;
	return x->to > y->to ? -1 : x->to < y->to ? 1 : 0;
}

/* Candidates to non-overlapping mask spans, in place in s->match. */
static int resolve(struct guard_scratch *s)
{
	s->nmatch = 0;
	if (s->ncand == 0)
		return 0;
	if (s->match_cap < s->ncand) {
		struct guard_match *m = realloc(s->match, s->ncand * sizeof(*m));
		if (!m)
			return -ENOMEM;
		s->match = m;
		s->match_cap = s->ncand;
	}
	qsort(s->cand, s->ncand, sizeof(*s->cand), by_start_then_longest);
	uint32_t end = 0;
	for (size_t i = 0; i < s->ncand; i++) {
		if (s->nmatch && s->cand[i].from < end)
			continue;
		s->match[s->nmatch++] = s->cand[i];
		end = s->cand[i].to;
	}
	return 0;
}

int guard_scan(const struct guard_policy *p, struct guard_scratch *s, const char *text,
	       size_t len, struct guard_result *res)
{
	return guard_scan_after(p, s, text, len, 0, res);
}

int guard_scan_after(const struct guard_policy *p, struct guard_scratch *s, const char *text,
		     size_t len, size_t skip_before, struct guard_result *res)
{
	struct scan_ctx c = { .p = p, .s = s, .text = text, .len = len,
			      .skip_before = skip_before, .res = res };

	s->ncand = s->nmatch = 0;
	s->overflow = false;
	if (!p->db || len == 0)
		return 0;
	if (len > UINT32_MAX)
		return -E2BIG;
	if (s->hs_db != p->db) {
		if (hs_alloc_scratch(p->db, (hs_scratch_t **)&s->hs) != HS_SUCCESS)
			return -ENOMEM;
		s->hs_db = p->db;
	}
	hs_error_t rc = hs_scan(p->db, text, (unsigned)len, 0, s->hs, on_match, &c);
	if (s->overflow)
		return -E2BIG;
	if (rc != HS_SUCCESS)
		return -EIO;
	return resolve(s);
}

void guard_finish_topics(const struct guard_policy *p, struct guard_result *res)
{
	uint64_t bit = 1ull << GUARD_TOPIC;

	if (!p->has_allow || res->allow_seen)
		return;
	res->hits |= bit;
	if (p->action[GUARD_TOPIC] == GUARD_BLOCK)
		res->blocked |= bit;
	else
		res->flagged |= bit;	/* a whole text cannot be masked: flag it */
}

int guard_mask_append(const struct guard_policy *p, const struct guard_scratch *s,
		      const char *text, size_t from, size_t upto, struct buf *out)
{
	size_t pos = from;

	for (size_t i = 0; i < s->nmatch; i++) {
		const struct guard_match *m = &s->match[i];
		if (m->from < from)
			continue;
		if (m->from >= upto)
			break;
		if (buf_append(out, text + pos, m->from - pos) ||
		    buf_append(out, p->placeholder[m->entity], p->placeholder_len[m->entity]))
			return -ENOMEM;
		pos = m->to < upto ? m->to : upto;
	}
	return buf_append(out, text + pos, upto - pos) ? -ENOMEM : 0;
}

void guard_scratch_free(struct guard_scratch *s)
{
	hs_free_scratch(s->hs);
	free(s->cand);
	free(s->match);
	buf_free(&s->text);
	buf_free(&s->tmp);
	memset(s, 0, sizeof(*s));
}
