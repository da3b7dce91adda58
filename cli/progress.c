/*
 * progress.c - the progress line of long work on a terminal.
 *
 * The library calls cli_progress() (mb_options.progress) every few thousand
 * items; the line is redrawn at most every PROGRESS_MS (one clock read per
 * call), in place with '\r', on stderr only when it is a terminal and
 * --quiet was not given, and ended with a newline by the phase's last call
 * or before any message.  Format:
 *   "membank: restore: 120000 pages of 500000 (24%), 61234 pages/s, ETA 6 s"
 * the last line of a phase "membank: restore: 500000 pages, 8.1 s, 61728 pages/s".
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define PROGRESS_MS 250

static struct {
	bool on;            /* stderr is a terminal, not --quiet */
	bool open;          /* a line is drawn and not ended */
	bool transient;     /* erase the line when done (the compactor logs
	                       each run itself) */
	char phase[64];     /* the phase being shown */
	double start, last; /* when it started; last drawn */
	size_t width;       /* of the line drawn, to blank what is left */
} pg;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void cli_progress_setup(cli *c)
{
	pg.on = !c->quiet && isatty(STDERR_FILENO);
	c->opts.progress = pg.on ? cli_progress : NULL;
	c->opts.progress_ctx = NULL;
}

void cli_progress_transient(void)
{
	pg.transient = true;
}

void cli_progress_break(void)
{
	if (pg.open) {
		fputc('\n', stderr);
		pg.open = false;
	}
}

static void draw(const mb_progress *p, double now)
{
	double secs = now - pg.start, rate = secs > 0 ? (double)p->done / secs : 0;
	char line[256];
	int n;

	if (p->finished)
		n = snprintf(line, sizeof line, "membank: %s: %llu %s, %.1f s, %.0f %s/s", p->phase,
		             (unsigned long long)p->done, p->unit, secs, rate, p->unit);
	else {
		double left = -1;
		n = snprintf(line, sizeof line, "membank: %s: %llu %s", p->phase,
		             (unsigned long long)p->done, p->unit);
		if (p->total) {
			n += snprintf(line + n, sizeof line - (size_t)n, " of %llu (%d%%)",
			              (unsigned long long)p->total, (int)(100.0 * p->done / p->total));
			if (rate > 0)
				left = (double)(p->total - p->done) / rate;
		} else if (p->bytes_total && p->bytes_done) {
			n += snprintf(line + n, sizeof line - (size_t)n, " (%d%% of the file)",
			              (int)(100.0 * p->bytes_done / p->bytes_total));
			left = secs * (double)(p->bytes_total - p->bytes_done) / (double)p->bytes_done;
		}
		n += snprintf(line + n, sizeof line - (size_t)n, ", %.0f %s/s", rate, p->unit);
		if (left >= 0)
			snprintf(line + n, sizeof line - (size_t)n, ", ETA %.0f s", left);
	}
	n = (int)strlen(line);
	fprintf(stderr, "\r%s%*s", line, pg.width > (size_t)n ? (int)(pg.width - (size_t)n) : 0, "");
	pg.width = (size_t)n;
	pg.open = true;
	if (p->finished)
		cli_progress_break();
	fflush(stderr);
	pg.last = now;
}

int cli_progress(void *ctx, const mb_progress *p)
{
	double now = now_s();

	(void)ctx;
	if (!pg.on)
		return 0;
	if (strncmp(pg.phase, p->phase, sizeof pg.phase - 1)) {  /* a new phase */
		cli_progress_break();
		snprintf(pg.phase, sizeof pg.phase, "%s", p->phase);
		pg.start = pg.last = now;
		pg.width = 0;
		if (!p->finished)
			return 0;  /* nothing to show yet */
	}
	if (p->finished && pg.transient) {
		if (pg.open)
			fprintf(stderr, "\r%*s\r", (int)pg.width, "");
		pg.open = false;
	} else if (p->finished || now - pg.last >= PROGRESS_MS / 1000.0)
		draw(p, now);
	if (p->finished)
		pg.phase[0] = '\0';
	return 0;
}
