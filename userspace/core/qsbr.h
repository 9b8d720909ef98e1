/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Quiescent-state reclamation for data that workers read without locks and
 * one background thread replaces (the API key table, the JWKS key set).
 *
 * The writer publishes a new pointer with an atomic store, then retires the
 * old one.  A reader touches published data only while "online" (between
 * qsbr_online and qsbr_offline, i.e. while a worker handles completions)
 * and never keeps a pointer across going offline.  So once every reader
 * has been offline, or online again since the retirement, nobody can hold
 * the old pointer and it is freed.  Readers pay one store and one fence per
 * loop iteration; no reference counts bounce between CPUs per request.
 */
#ifndef SLUICE_CORE_QSBR_H
#define SLUICE_CORE_QSBR_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* One per reader thread, each on its own cache line. */
struct qsbr_reader {
	_Alignas(64) uint64_t seen;	/* epoch when it last came online; UINT64_MAX: offline */
};

struct qsbr_retired {
	struct qsbr_retired *next;
	uint64_t epoch;			/* readers must have seen this to free it */
	void *p;
	void (*free_fn)(void *);
};

struct qsbr {
	uint64_t epoch;			/* bumped by each retirement */
	struct qsbr_reader *readers;
	unsigned nreaders;
	pthread_mutex_t lock;		/* writers and reclaim */
	struct qsbr_retired *retired;
};

/* 0 or -ENOMEM.  Readers start offline. */
int qsbr_init(struct qsbr *q, unsigned nreaders);
/* Frees everything still retired: call when no reader runs any more. */
void qsbr_destroy(struct qsbr *q);

/* Reader i is about to use published pointers / will not until next online. */
void qsbr_online(struct qsbr *q, unsigned i);
void qsbr_offline(struct qsbr *q, unsigned i);

/* After replacing a published pointer: free p with free_fn once no reader
 * can still hold it (at a later qsbr_reclaim).  A NULL p is ignored.
 * Without memory to queue it, waits for the readers and frees it now. */
int qsbr_retire(struct qsbr *q, void *p, void (*free_fn)(void *));
/* Free what every reader has passed; returns how many are still waiting. */
size_t qsbr_reclaim(struct qsbr *q);

#endif
