/*
 * progress.h - calling mb_options.progress from long loops, cheaply.
 *
 * A loop calls progress_step() per item: one increment and one compare
 * while no call is due (every MB_PROGRESS_EVERY items), nothing else; with
 * no callback the next call is never due.  A callback's non-zero return
 * turns into MB_ECANCELED with the message on @tag, which the loop returns
 * like any failure (it undoes its work the usual way).
 */
#ifndef MEMBANK_PROGRESS_H
#define MEMBANK_PROGRESS_H

#include "membank.h"

typedef struct progress {
	mb_progress_fn fn;
	void *ctx;
	const void *tag;   /* where the cancel message goes */
	mb_progress p;
	uint64_t next;     /* p.done at which the next call is due */
} progress;

/* Start @phase counting @unit (total 0: unknown); calls the callback with
 * done 0.  @o NULL or without a callback: every call is a no-op. */
int progress_start(progress *pr, const mb_options *o, const void *tag, const char *phase,
                   const char *unit, uint64_t total);
/* Call the callback now (done as it is). */
int progress_call(progress *pr);
/* The work starts over: done back to 0 (no call). */
void progress_rewind(progress *pr);
/* The last call: finished, total = done.  No-op without a callback. */
void progress_end(progress *pr);

/* One more item; @bytes_done: the input read so far (0: none). */
static inline int progress_step(progress *pr, uint64_t bytes_done)
{
	if (!pr || ++pr->p.done < pr->next)
		return 0;
	pr->p.bytes_done = bytes_done;
	return progress_call(pr);
}

#endif /* MEMBANK_PROGRESS_H */
