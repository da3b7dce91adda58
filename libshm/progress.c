/*
 * progress.c - the plumbing of mb_options.progress (progress.h).
 */
#include <string.h>

#include "internal.h"
#include "progress.h"

int progress_start(progress *pr, const mb_options *o, const void *tag, const char *phase,
                   const char *unit, uint64_t total)
{
	memset(pr, 0, sizeof *pr);
	pr->fn = o ? o->progress : NULL;
	pr->ctx = o ? o->progress_ctx : NULL;
	pr->tag = tag;
	pr->p.phase = phase;
	pr->p.unit = unit;
	pr->p.total = total;
	pr->next = UINT64_MAX;
	return pr->fn ? progress_call(pr) : 0;
}

int progress_call(progress *pr)
{
	if (!pr->fn)
		return 0;
	pr->next = pr->p.done + MB_PROGRESS_EVERY;
	if (pr->p.total && pr->p.done > pr->p.total)
		pr->p.total = pr->p.done;  /* a count that grew meanwhile */
	if (pr->fn(pr->ctx, &pr->p))
		return mb_fail(pr->tag, MB_ECANCELED, "%s: cancelled by the progress callback",
		               pr->p.phase);
	return 0;
}

void progress_rewind(progress *pr)
{
	if (pr->fn) {
		pr->p.done = 0;
		pr->next = MB_PROGRESS_EVERY;
	}
}

void progress_end(progress *pr)
{
	if (!pr->fn)
		return;
	pr->p.total = pr->p.done;
	pr->p.bytes_done = pr->p.bytes_total;
	pr->p.finished = true;
	pr->fn(pr->ctx, &pr->p);
	pr->fn = NULL;  /* once */
}
