/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One scan, in two passes.  The first runs every pattern of the policy
 * and reports only where matches end (Hyperscan is several times faster
 * without start-of-match); the second runs, for each pattern that had
 * ends, that pattern alone with leftmost start over the bytes before them.
 * Each placed match goes through its detector's validator (the text is
 * at hand), counts toward the result by its action, and, when its action
 * is mask, joins the list of spans to replace.  Overlapping mask spans resolve to
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
	/* second pass: the pattern being placed and its ends, sorted */
	const struct guard_pat *pat;
	const struct guard_match *ends;
	size_t nends;
	size_t base;		/* offset of the region scanned */
	int err;
};

/* Growth of the two lists: amortised, and only until the worker is warm. */
static int list_push(struct guard_match **v, size_t *n, size_t *cap, struct guard_match m)
{
	if (*n == *cap) {
		size_t c = *cap ? 2 * *cap : 256;
		if (c > GUARD_CAND_MAX)
			return -E2BIG;
		struct guard_match *nv = realloc(*v, c * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		*v = nv;
		*cap = c;
	}
	(*v)[(*n)++] = m;
	return 0;
}

/* First pass: every pattern, ends only.  `entity` holds the pattern id
 * until the second pass has placed the match. */
static int on_end(unsigned id, unsigned long long from, unsigned long long to,
		  unsigned flags, void *arg)
{
	struct scan_ctx *c = arg;

	(void)from;
	(void)flags;
	if (c->p->pats[id].allow) {
		c->res->allow_seen = true;
		return 0;
	}
	c->err = list_push(&c->s->cand, &c->s->ncand, &c->s->cand_cap,
			   (struct guard_match){ .to = (uint32_t)to, .entity = (uint16_t)id });
	return c->err ? 1 : 0;	/* stop: the caller fails closed */
}

static bool is_candidate_end(const struct scan_ctx *c, uint32_t to)
{
	size_t lo = 0, hi = c->nends;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (c->ends[mid].to < to)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < c->nends && c->ends[lo].to == to;
}

/* A placed match: validated, counted by its action, kept when masked. */
static int accept(struct scan_ctx *c, size_t from, size_t to)
{
	const struct guard_pat *pat = c->pat;
	uint64_t bit = 1ull << pat->entity;

	if (pat->validate && !pat->validate(c->text, c->len, from, to))
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
		break;
	case GUARD_OFF:
		return 0;
	}
	if (from < c->skip_before)
		return 0;
	return list_push(&c->s->match, &c->s->nmatch, &c->s->match_cap,
			 (struct guard_match){ .from = (uint32_t)from, .to = (uint32_t)to,
					       .entity = pat->entity, .action = pat->action });
}

/* Second pass: leftmost starts, for the ends the first pass reported. */
static int on_start(unsigned id, unsigned long long from, unsigned long long to,
		    unsigned flags, void *arg)
{
	struct scan_ctx *c = arg;
	size_t f = c->base + (size_t)from, t = c->base + (size_t)to;

	(void)id;
	(void)flags;
	if (!is_candidate_end(c, (uint32_t)t))
		return 0;
	c->err = accept(c, f, t);
	return c->err ? 1 : 0;
}

static int by_pattern_then_end(const void *a, const void *b)
{
	const struct guard_match *x = a, *y = b;

	if (x->entity != y->entity)
		return x->entity < y->entity ? -1 : 1;
	return x->to < y->to ? -1 : x->to > y->to;
}

#define CONTEXT_BYTES	16	/* around a region, for \b and validators' look-around */

/* Place the ends of one pattern (c->ends): one leftmost-start scan per
 * run of ends whose look-back regions overlap, so the work stays linear
 * however many ends there are. */
static int place_pattern(struct scan_ctx *c)
{
	const struct guard_pat *pat = c->pat;
	size_t i = 0;

	for (size_t k = 0; pat->start && k < c->nends; k++) {
		size_t to = c->ends[k].to, from = pat->start(c->text, to);
		int err = from < to ? accept(c, from, to) : 0;
		if (err)
			return err;
	}
	while (!pat->start && i < c->nends) {
		size_t back = (size_t)pat->span + CONTEXT_BYTES;
		size_t a = c->ends[i].to > back ? c->ends[i].to - back : 0;
		size_t b = c->ends[i].to + CONTEXT_BYTES;
		while (++i < c->nends && c->ends[i].to - (c->ends[i].to > back ? back : c->ends[i].to) <= b)
			b = c->ends[i].to + CONTEXT_BYTES;
		if (b > c->len)
			b = c->len;
		c->base = a;
		hs_error_t rc = hs_scan(pat->som_db, c->text + a, (unsigned)(b - a), 0, c->s->hs,
					on_start, c);
		if (c->err)
			return c->err;
		if (rc != HS_SUCCESS)
			return -EIO;
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

/* Mask matches to non-overlapping spans, in place in s->match. */
static void resolve(struct guard_scratch *s)
{
	size_t n = 0;
	uint32_t end = 0;

	if (s->nmatch < 2)	/* also: qsort must not see the NULL of an empty list */
		return;
	qsort(s->match, s->nmatch, sizeof(*s->match), by_start_then_longest);
	for (size_t i = 0; i < s->nmatch; i++) {
		if (n && s->match[i].from < end)
			continue;
		s->match[n++] = s->match[i];
		end = s->match[i].to;
	}
	s->nmatch = n;
}

/* hs scratch sized for the policy's databases (done once per policy). */
static int fit_scratch(const struct guard_policy *p, struct guard_scratch *s)
{
	if (s->hs_db == p->db)
		return 0;
	for (unsigned g = 0; g < GUARD_GROUPS; g++)
		if (p->dbs[g] && hs_alloc_scratch(p->dbs[g], (hs_scratch_t **)&s->hs) != HS_SUCCESS)
			return -ENOMEM;
	for (size_t i = 0; i < p->npats; i++)
		if (p->pats[i].som_db &&
		    hs_alloc_scratch(p->pats[i].som_db, (hs_scratch_t **)&s->hs) != HS_SUCCESS)
			return -ENOMEM;
	s->hs_db = p->db;
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
	if (fit_scratch(p, s))
		return -ENOMEM;
	for (unsigned g = 0; g < GUARD_GROUPS; g++) {
		if (!p->dbs[g])
			continue;
		hs_error_t rc = hs_scan(p->dbs[g], text, (unsigned)len, 0, s->hs, on_end, &c);
		if (c.err) {
			s->overflow = c.err == -E2BIG;
			return c.err;
		}
		if (rc != HS_SUCCESS)
			return -EIO;
	}
	if (s->ncand > 1)
		qsort(s->cand, s->ncand, sizeof(*s->cand), by_pattern_then_end);
	for (size_t i = 0; i < s->ncand;) {
		size_t j = i;
		while (j < s->ncand && s->cand[j].entity == s->cand[i].entity)
			j++;
		c.pat = &p->pats[s->cand[i].entity];
		c.ends = &s->cand[i];
		c.nends = j - i;
		int err = place_pattern(&c);
		if (err) {
			s->overflow = err == -E2BIG;
			return err;
		}
		i = j;
	}
	resolve(s);
	return 0;
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
	free(s->seg);
	buf_free(&s->text);
	buf_free(&s->tmp);
	memset(s, 0, sizeof(*s));
}
