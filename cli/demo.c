/*
 * demo.c - membank demo: N worker processes and a compactor share one bank.
 *
 * Each worker (fork, then its own handle) plays a Notion sync function over a
 * workspace of DEMO_PAGES pages: it puts and merges page properties, reads
 * pages, records sync successes and failures with the errors Notion's API
 * really returns, and resolves some.  It counts what it did and reports to
 * the parent through one pipe: fixed-size messages no larger than PIPE_BUF,
 * which POSIX writes atomically, so messages of different children never
 * interleave.  A compactor child snapshots every second.  At the end the
 * parent takes a last snapshot and checks its counts against the reports.
 *
 * With --machines M (a journal on a cluster: --journal URL), M bank
 * directories stand for M machines: each has its own workers (spread over
 * them) and its own compactor, and all write through the one stream.  At
 * the end each machine catches up with the stream and is checked alone:
 * every machine must hold exactly what all the workers did, at the stream's
 * last seq, with the same four files byte for byte.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"

#define DEMO_PAGES 3000u           /* the workspace */
#define DEMO_MAX_ENTRIES 5000u     /* cache_settings.max_entries: above the workspace */
#define DEMO_MAX_WORKERS 64u
#define DEMO_MAX_MACHINES 8u
#define REPORT_MAGIC 0x6d62646dU   /* "mbdm" */

enum op { OP_PUT, OP_MERGE, OP_GET, OP_SYNC_OK, OP_SYNC_FAIL, OP_RESOLVE, OP_N };
static const char *const op_names[OP_N] = {
	"page put", "page merge", "page get", "sync success", "sync failure", "error resolve",
};

/* The errors a Notion client meets, with the API's own wording. */
typedef struct api_error {
	const char *type, *code, *message, *steps;
} api_error;

static const api_error api_errors[] = {
	{ "rate_limited", "429",
	  "HTTP 429 rate_limited: This request exceeds the number of requests allowed. "
	  "Slow down and try again. (Retry-After: 3)",
	  "Honour Retry-After; back off exponentially from 1 s, at most 3 requests/s per integration" },
	{ "validation_error", "400",
	  "HTTP 400 validation_error: body failed validation: "
	  "body.properties.Status.select.name should be one of the existing options",
	  "Create the missing select option first; validate properties against the database schema" },
	{ "timeout", "no response",
	  "Request to https://api.notion.com/v1/pages timed out after 30 s (ReadTimeout)",
	  "Retry with the same idempotent payload; raise notion_settings.timeout_seconds to 60" },
	{ "conflict_error", "409",
	  "HTTP 409 conflict_error: Conflict occurred while saving. Please try again.",
	  "Re-read the page, re-apply the change and retry once" },
};
#define ERR_N (sizeof api_errors / sizeof api_errors[0])

/* One message from a child.  Worker -1 - m is machine m's compactor. */
typedef struct report {
	uint32_t magic;
	int32_t worker;
	uint32_t final;          /* the last message of this child */
	uint32_t failed;         /* a library call failed (the child said why) */
	uint64_t ops[OP_N];
	uint64_t errors[ERR_N];  /* errors logged, by type */
	uint64_t snapshots, snap_bytes, snap_seq;
	uint64_t turns;          /* turn records its handle published (cluster) */
	uint8_t touched[(DEMO_PAGES + 7) / 8];  /* pages this worker wrote */
} report;

_Static_assert(sizeof(report) <= PIPE_BUF, "a report must be written atomically");

typedef struct demo {
	cli *c;
	const char *bank;        /* machine 0's bank (the only one without a cluster) */
	const char *banks[DEMO_MAX_MACHINES];
	unsigned machines;       /* 0: no cluster, one bank */
	unsigned workers;
	double seconds;
	uint64_t seed;
	uint64_t base_seq;       /* journal seq once the bank is prepared */
	int wfd;                 /* children: the pipe's write end */
} demo;

/* ------------------------------------------------------------ the workers */

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Page i's id: 32 hex digits, as Notion prints page ids. */
static void page_id(uint64_t seed, unsigned i, char out[33])
{
	uint64_t s = seed ^ ((uint64_t)i * 0x2545f4914f6cdd1dULL);
	uint64_t a = splitmix(&s), b = splitmix(&s);

	snprintf(out, 33, "%016" PRIx64 "%016" PRIx64, a, b);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *const words[] = {
	"Roadmap", "Q4", "Launch", "Onboarding", "Billing", "API", "Migration", "Review",
	"Design", "Retro", "Incident", "Hiring", "Budget", "Docs", "Sync", "Sprint",
};
static const char *const statuses[] = { "Not started", "In progress", "Blocked", "Done" };
static const char *const owners[] = { "ana@acme.io", "bo@acme.io", "chen@acme.io", "dee@acme.io" };
static const char *const tags[] = { "backend", "frontend", "urgent", "customer", "infra" };

#define PICK(arr, r) (arr[(r) % (sizeof(arr) / sizeof((arr)[0]))])

static void page_props(uint64_t *rng, int worker, uint64_t n, bool merge, char *out, size_t len)
{
	uint64_t r = splitmix(rng);

	if (merge) {
		snprintf(out, len,
		         "{\"status\":\"%s\",\"counter\":%" PRIu64 ",\"edited_by\":\"worker-%d\"}",
		         PICK(statuses, r), n, worker);
		return;
	}
	snprintf(out, len,
	         "{\"title\":\"%s %s %u\",\"status\":\"%s\",\"tags\":[\"%s\",\"%s\"],"
	         "\"owner\":\"%s\",\"due\":\"2026-12-%02u\",\"counter\":%" PRIu64 ","
	         "\"edited_by\":\"worker-%d\"}",
	         PICK(words, r), PICK(words, r >> 8), (unsigned)(r >> 16) % 100,
	         PICK(statuses, r >> 24), PICK(tags, r >> 32), PICK(tags, r >> 40),
	         PICK(owners, r >> 48), 1 + (unsigned)(r >> 56) % 28, n, worker);
}

static int send_report(int fd, const report *r)
{
	ssize_t n;

	do
		n = write(fd, r, sizeof *r);
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)sizeof *r ? 0 : -1;
}

/* One operation, chosen at random.  Returns an MB_E* code. */
static int worker_op(mb_bank *b, const demo *d, int k, uint64_t *rng, report *r)
{
	uint64_t x = splitmix(rng);
	unsigned pct = (unsigned)(x % 100), page = (unsigned)((x >> 8) % DEMO_PAGES);
	const api_error *e = &api_errors[(x >> 40) % ERR_N];
	char id[33], props[512];
	char *json = NULL;
	int rc;

	page_id(d->seed, page, id);
	if (pct < 65) {
		bool merge = pct >= 35;
		page_props(rng, k, r->ops[OP_PUT] + r->ops[OP_MERGE], merge, props, sizeof props);
		rc = merge ? mb_page_merge(b, id, props, (size_t)-1)
		           : mb_page_put(b, id, props, (size_t)-1);
		if (!rc)   /* a failed write may not be there: not counted */
			r->touched[page / 8] |= (uint8_t)(1u << (page % 8));
		r->ops[merge ? OP_MERGE : OP_PUT] += !rc;
	} else if (pct < 75) {
		rc = mb_page_get(b, id, &json, NULL);
		mb_free(json);
		rc = rc == MB_ENOTFOUND ? 0 : rc;
		r->ops[OP_GET] += !rc;
	} else if (pct < 88) {
		rc = mb_sync_record(b, "success", NULL);
		r->ops[OP_SYNC_OK] += !rc;
	} else if (pct < 97) {
		/* A failed sync is recorded twice, as the original did: in the sync
		 * history and in the error log.  Both count only when both land. */
		rc = mb_sync_record(b, "failed", e->message);
		r->ops[OP_SYNC_FAIL] += !rc;
		if (!rc && !(rc = mb_error_log(b, e->type, e->message)))
			r->errors[e - api_errors]++;
	} else {
		rc = mb_error_resolve(b, e->type, e->steps);
		r->ops[OP_RESOLVE] += !rc;
	}
	return rc;
}

static bool stop_pending(void)
{
	sigset_t p;

	sigpending(&p);
	return sigismember(&p, SIGINT) || sigismember(&p, SIGTERM);
}

/* The turn records this handle published (stats "cluster"."turns_asked"):
 * stream messages that are not writes (docs/cluster.md, Taking turns). */
static uint64_t turns_asked(mb_bank *b)
{
	char *st = NULL;
	uint64_t n = 0;

	if (mb_stats(b, &st))
		return 0;
	cJSON *j = cJSON_Parse(st);
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(j, "cluster"), "turns_asked");
	if (cJSON_IsNumber(v) && v->valuedouble >= 0)
		n = (uint64_t)v->valuedouble;
	cJSON_Delete(j);
	mb_free(st);
	return n;
}

static int worker_main(const demo *d, int k, double deadline)
{
	uint64_t rng = d->seed * 31 + (uint64_t)k + 1;
	report r = { .magic = REPORT_MAGIC, .worker = k };
	double next_report = now_s() + 0.2;
	mb_bank *b = NULL;
	int rc;

	if ((rc = mb_open(d->banks[(unsigned)k % (d->machines ? d->machines : 1)], &d->c->opts,
	                  &b))) {
		cli_fail(d->c, NULL, rc, "worker %d: cannot open the bank", k);
		r.failed = 1;
	}
	for (uint64_t i = 0; b && !r.failed; i++) {
		if ((rc = worker_op(b, d, k, &rng, &r))) {
			cli_fail(d->c, b, rc, "worker %d", k);
			r.failed = 1;
		}
		if ((i & 31) == 0) {
			double t = now_s();
			if (t >= deadline || stop_pending())
				break;
			if (t >= next_report) {
				send_report(d->wfd, &r);
				next_report = t + 0.2;
			}
		}
	}
	if (b && d->machines)
		r.turns = turns_asked(b);
	mb_close(b);
	r.final = 1;
	return send_report(d->wfd, &r) || r.failed ? 1 : 0;
}

#if CLI_HAVE_SNAPSHOT
static int compactor_main(const demo *d, unsigned m, const sigset_t *set)
{
	report r = { .magic = REPORT_MAGIC, .worker = -1 - (int32_t)m };
	mb_snapshot_info info;
	mb_bank *b = NULL;
	int rc;

	if ((rc = mb_open(d->banks[m], &d->c->opts, &b))) {
		cli_fail(d->c, NULL, rc, "compactor: cannot open the bank");
		r.failed = 1;
	}
	while (b) {
		if ((rc = mb_snapshot(b, NULL, &info))) {
			cli_fail(d->c, b, rc, "compactor: cannot write the files");
			r.failed = 1;
			break;
		}
		r.snapshots++;
		r.snap_bytes = info.bytes;
		r.snap_seq = info.seq;
		send_report(d->wfd, &r);
		if (cli_wait_signal(set, 1000))
			break;
	}
	mb_close(b);
	r.final = 1;
	return send_report(d->wfd, &r) || r.failed ? 1 : 0;
}
#endif

/* ------------------------------------------------------------- the parent */

typedef struct tally {
	report w[DEMO_MAX_WORKERS];     /* each worker's latest report */
	report comp[DEMO_MAX_MACHINES]; /* each compactor's latest */
	unsigned char buf[2 * sizeof(report)];
	size_t have;
	unsigned workers;
} tally;

static void take(tally *t, const report *r)
{
	if (r->magic != REPORT_MAGIC)
		return;
	if (r->worker < 0 && r->worker >= -(int32_t)DEMO_MAX_MACHINES)
		t->comp[-1 - r->worker] = *r;
	else if (r->worker >= 0 && (unsigned)r->worker < t->workers)
		t->w[r->worker] = *r;
}

/* Read what the (non-blocking) pipe has; 0 at EOF, 1 otherwise. */
static int drain(tally *t, int fd)
{
	for (;;) {
		ssize_t n = read(fd, t->buf + t->have, sizeof t->buf - t->have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n == 0 ? 0 : 1;
		t->have += (size_t)n;
		while (t->have >= sizeof(report)) {
			report r;
			memcpy(&r, t->buf, sizeof r);
			take(t, &r);
			t->have -= sizeof r;
			memmove(t->buf, t->buf + sizeof r, t->have);
		}
	}
}

static uint64_t total_ops(const tally *t)
{
	uint64_t n = 0;

	for (unsigned k = 0; k < t->workers; k++)
		for (unsigned o = 0; o < OP_N; o++)
			n += t->w[k].ops[o];
	return n;
}

static uint64_t snapshots(const tally *t)
{
	uint64_t n = 0;

	for (unsigned m = 0; m < DEMO_MAX_MACHINES; m++)
		n += t->comp[m].snapshots;
	return n;
}

static void progress(const demo *d, const tally *t, double elapsed, bool done)
{
	uint64_t n = total_ops(t);
	double rate = elapsed > 0 ? (double)n / elapsed : 0;

	if (d->c->tty)
		printf("\r  %5.1f s  %9" PRIu64 " ops  %9.0f ops/s  %4" PRIu64 " snapshots%s",
		       elapsed, n, rate, snapshots(t), done ? "\n" : "");
	else if (!done)
		printf("  %5.1f s  %" PRIu64 " ops  %.0f ops/s  %" PRIu64 " snapshots\n",
		       elapsed, n, rate, snapshots(t));
	fflush(stdout);
}

static bool all_final(const tally *t, const pid_t *pids)
{
	for (unsigned k = 0; k < t->workers; k++)
		if (!t->w[k].final && pids[k] > 0)
			return false;
	return true;
}

/* Watch the workers until each has sent its last report or died.
 * Returns true when a signal cut the run short. */
static bool watch(const demo *d, tally *t, int rfd, pid_t *pids, int *status, double t0)
{
	struct pollfd pfd = { .fd = rfd, .events = POLLIN };
	double next_line = t0 + (d->c->tty ? 0.25 : 1.0);
	bool stopped = false;
	sigset_t stop;

	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	while (!all_final(t, pids)) {
		struct timespec zero = { 0, 0 };
		if (poll(&pfd, 1, 100) > 0)
			drain(t, rfd);
		/* The terminal sends SIGINT to every child too; a SIGTERM to the
		 * parent alone is passed on, and workers stop at their next check. */
		if (sigtimedwait(&stop, NULL, &zero) >= 0) {
			stopped = true;
			for (unsigned k = 0; k < t->workers; k++)
				if (pids[k] > 0)
					kill(pids[k], SIGTERM);
		}
		for (unsigned k = 0; k < t->workers; k++)
			if (pids[k] > 0 && waitpid(pids[k], &status[k], WNOHANG) == pids[k]) {
				drain(t, rfd);
				pids[k] = 0;
			}
		if (now_s() >= next_line) {
			progress(d, t, now_s() - t0, false);
			next_line += d->c->tty ? 0.25 : 1.0;
		}
	}
	for (unsigned k = 0; k < t->workers; k++)
		if (pids[k] > 0)
			waitpid(pids[k], &status[k], 0);
	return stopped;
}

/* ------------------------------------------------------------- the check */

/* What the bank says, from the final snapshot's files (or, in a build
 * without snapshots, from the live documents). */
typedef struct facts {
	double success, failures, history, total_errors, resolved;
	double pattern[ERR_N];
	int pattern_keys;
	double total_pages, pages_listed;   /* metadata.total_pages, keys of "pages" */
	double seq;                         /* the journal's last seq */
	double stream_seq;                  /* with a cluster: the stream's last seq */
	double same_files;                  /* the four files equal machine 1's: 1 */
} facts;

static double num(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static void error_facts(const cJSON *stats, const cJSON *patterns, facts *f)
{
	f->total_errors = num(stats, "total_errors");
	f->resolved = num(stats, "resolved_errors");
	f->pattern_keys = cJSON_GetArraySize(patterns);
	for (unsigned i = 0; i < ERR_N; i++) {
		double v = num(patterns, api_errors[i].type);
		f->pattern[i] = v < 0 ? 0 : v;
	}
}

static void sync_facts(const cJSON *s, facts *f)
{
	f->success = num(s, "success_count");
	f->failures = num(s, "error_count");
	f->history = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(s, "sync_history"));
}

#if CLI_HAVE_SNAPSHOT
static cJSON *parse_file(const char *dir, const char *name)
{
	char path[PATH_MAX];
	cJSON *doc = NULL;
	char *text = NULL;
	long n;
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	if (!(f = fopen(path, "rb")))
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && n < (1L << 30) &&
	    fseek(f, 0, SEEK_SET) == 0 && (text = malloc((size_t)n + 1)) &&
	    fread(text, 1, (size_t)n, f) == (size_t)n) {
		text[n] = '\0';
		doc = cJSON_Parse(text);
	}
	free(text);
	fclose(f);
	return doc;
}

static int snapshot_facts(const char *dir, facts *f)
{
	cJSON *pages = parse_file(dir, "notion_pages.json");
	cJSON *sync = parse_file(dir, "sync_status.json");
	cJSON *errs = parse_file(dir, "error_log.json");
	int ok = pages && sync && errs;

	if (ok) {
		const cJSON *meta = cJSON_GetObjectItemCaseSensitive(pages, "metadata");
		f->total_pages = num(meta, "total_pages");
		f->pages_listed = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(pages, "pages"));
		sync_facts(sync, f);
		error_facts(cJSON_GetObjectItemCaseSensitive(errs, "error_stats"),
		            cJSON_GetObjectItemCaseSensitive(errs, "patterns"), f);
	}
	cJSON_Delete(pages);
	cJSON_Delete(sync);
	cJSON_Delete(errs);
	return ok ? 0 : -1;
}
#endif

static int live_facts(mb_bank *b, facts *f)
{
	char *sync = NULL, *errs = NULL;
	cJSON *s = NULL, *e = NULL;
	uint64_t n = 0;
	int rc;

	if ((rc = mb_sync_status(b, &sync)) || (rc = mb_error_stats(b, &errs)) ||
	    (rc = mb_page_count(b, &n)))
		goto cleanup;
	s = cJSON_Parse(sync);
	e = cJSON_Parse(errs);
	if (!s || !e) {
		rc = MB_ECORRUPT;
		goto cleanup;
	}
	sync_facts(s, f);
	error_facts(e, cJSON_GetObjectItemCaseSensitive(e, "patterns"), f);
	f->total_pages = f->pages_listed = (double)n;
cleanup:
	cJSON_Delete(s);
	cJSON_Delete(e);
	mb_free(sync);
	mb_free(errs);
	return rc;
}

/* What the workers reported, summed. */
typedef struct sums {
	uint64_t ops[OP_N], errors[ERR_N], distinct_pages, turns;
	unsigned failed;
} sums;

static void sum_up(const tally *t, sums *s)
{
	uint8_t all[sizeof t->w[0].touched] = { 0 };

	memset(s, 0, sizeof *s);
	for (unsigned k = 0; k < t->workers; k++) {
		const report *r = &t->w[k];
		s->failed += r->failed || !r->final;
		s->turns += r->turns;
		for (unsigned o = 0; o < OP_N; o++)
			s->ops[o] += r->ops[o];
		for (unsigned i = 0; i < ERR_N; i++)
			s->errors[i] += r->errors[i];
		for (size_t i = 0; i < sizeof all; i++)
			all[i] |= r->touched[i];
	}
	for (size_t i = 0; i < sizeof all; i++)
		s->distinct_pages += (uint64_t)__builtin_popcount(all[i]);
}

static bool check(const char *what, double bank, double expect)
{
	bool ok = bank == expect;

	printf("  %-34s %10.0f %10.0f   %s\n", what, bank, expect, ok ? "ok" : "DIFFERENT");
	return ok;
}

/* Every acknowledged write is one journal record: a failed sync is two
 * (sync record, error log). */
static uint64_t writes(const sums *s)
{
	return s->ops[OP_PUT] + s->ops[OP_MERGE] + s->ops[OP_SYNC_OK] +
	       2 * s->ops[OP_SYNC_FAIL] + s->ops[OP_RESOLVE];
}

static bool check_all(const demo *d, unsigned m, const facts *f, const sums *s,
                      double bank_pages)
{
	uint64_t records = s->ops[OP_SYNC_OK] + s->ops[OP_SYNC_FAIL];
	double history = (double)(records < MB_DEFAULT_HISTORY ? records : MB_DEFAULT_HISTORY);
	uint64_t errors = 0, types = 0;
	char name[64];
	bool ok = true;

	if (d->machines)
		printf("\nchecks of machine-%u: %-15s %10s %10s\n", m + 1, "", "bank", "workers");
	else
		printf("\nchecks: %-26s %10s %10s\n", "", "bank", "workers");
	ok &= check("success_count", f->success, (double)s->ops[OP_SYNC_OK]);
	ok &= check("error_count", f->failures, (double)s->ops[OP_SYNC_FAIL]);
	ok &= check("sync_history entries (bounded)", f->history, history);
	for (unsigned i = 0; i < ERR_N; i++) {
		errors += s->errors[i];
		types += s->errors[i] != 0;
		snprintf(name, sizeof name, "patterns.%s", api_errors[i].type);
		ok &= check(name, f->pattern[i], (double)s->errors[i]);
	}
	ok &= check("error types in patterns", f->pattern_keys, (double)types);
	ok &= check("total_errors", f->total_errors, (double)errors);
	ok &= check("resolved_errors <= total_errors: 1", f->resolved <= f->total_errors, 1);
	ok &= check("metadata.total_pages", f->total_pages, (double)s->distinct_pages);
	ok &= check("pages in notion_pages.json", f->pages_listed, (double)s->distinct_pages);
	ok &= check("page count of the bank", bank_pages, (double)s->distinct_pages);
	if (!d->machines) {
		ok &= check("journal records written", f->seq - (double)d->base_seq,
		            (double)writes(s));
		return ok;
	}
	/* A write group is published as one stream message: fewer seqs than
	 * writes when writers met; never more, but for the turn records. */
	double msgs = f->seq - (double)d->base_seq, w = (double)(writes(s) + s->turns);
	bool le = msgs > 0 && msgs <= w;
	printf("  %-34s %10.0f %10.0f   %s\n", "stream messages (<= writes+turns)", msgs, w,
	       le ? "ok" : "DIFFERENT");
	ok &= le;
	ok &= check("applied seq = stream's last seq", f->seq, f->stream_seq);
	if (m)
		ok &= check("four files = machine-1's: 1", f->same_files, 1);
	return ok;
}

/* ------------------------------------------------------------- the report */

static void print_table(const demo *d, const sums *s, const tally *t, double elapsed)
{
	uint64_t total = 0;

	printf("\n%-22s %12s %12s\n", "operation", "count", "ops/s");
	for (unsigned o = 0; o < OP_N; o++) {
		total += s->ops[o];
		printf("%-22s %12" PRIu64 " %12.0f\n", op_names[o], s->ops[o],
		       (double)s->ops[o] / elapsed);
	}
	printf("%-22s %12" PRIu64 " %12.0f   (%u workers, %.2f s)\n", "total", total,
	       (double)total / elapsed, d->workers, elapsed);
	printf("\n%-34s %10s\n", "errors logged, by type", "count");
	for (unsigned i = 0; i < ERR_N; i++) {
		char name[64];
		snprintf(name, sizeof name, "%s (%s)", api_errors[i].type, api_errors[i].code);
		printf("%-34s %10" PRIu64 "\n", name, s->errors[i]);
	}
	for (unsigned m = 0; m < (d->machines ? d->machines : 1); m++) {
		const report *c = &t->comp[m];
		if (d->machines)
			printf("%smachine-%u: ", m ? "" : "\n", m + 1);
		else
			putchar('\n');
		printf("snapshots by the compactor (every 1 s): %" PRIu64, c->snapshots);
		if (c->snapshots)
			printf(", the last %" PRIu64 " bytes at journal seq %" PRIu64,
			       c->snap_bytes, c->snap_seq);
		putchar('\n');
	}
}

#if CLI_HAVE_SNAPSHOT
static const char *const four_files[] = {
	"notion_pages.json", "sync_status.json", "error_log.json", "config_cache.json",
};

static void print_files(const char *dir)
{
	printf("\nthe four JSON files:\n");
	for (unsigned i = 0; i < 4; i++)
		printf("  %s/%s\n", dir, four_files[i]);
}
#endif

#if CLI_HAVE_SNAPSHOT
/* 1 when file @p name is the same, byte for byte, in both directories. */
static double same_file(const char *a, const char *b, const char *name)
{
	char pa[PATH_MAX], pb[PATH_MAX], ba[65536], bb[65536];
	FILE *fa, *fb;
	size_t na, nb;
	double same = 0;

	snprintf(pa, sizeof pa, "%s/%s", a, name);
	snprintf(pb, sizeof pb, "%s/%s", b, name);
	fa = fopen(pa, "rb");
	fb = fopen(pb, "rb");
	if (fa && fb) {
		do {
			na = fread(ba, 1, sizeof ba, fa);
			nb = fread(bb, 1, sizeof bb, fb);
		} while (na == nb && !memcmp(ba, bb, na) && na == sizeof ba);
		same = na == nb && !memcmp(ba, bb, na) && !ferror(fa) && !ferror(fb);
	}
	if (fa)
		fclose(fa);
	if (fb)
		fclose(fb);
	return same;
}
#endif

/* Machine @p m's final snapshot (or live documents) against the reports.
 * With a cluster, the machine first catches up with the stream. */
static int final_check(const demo *d, unsigned m, const sums *s)
{
	mb_cluster_info ci;
	facts f = { 0 };
	mb_bank *b = NULL;
	uint64_t pages = 0, seq = 0;
	int rc;

	if ((rc = mb_open(d->banks[m], &d->c->opts, &b)) || (rc = mb_catch_up(b)) ||
	    (rc = mb_page_count(b, &pages)) || (rc = mb_journal_last_seq(b, &seq)))
		goto fail;
	if (d->machines) {
		if ((rc = mb_cluster_status(b, &ci)))
			goto fail;
		f.stream_seq = (double)ci.last_seq;
	}
#if CLI_HAVE_SNAPSHOT
	mb_snapshot_info info;
	if ((rc = mb_snapshot(b, NULL, &info)))
		goto fail;
	if (d->machines)
		printf("\nmachine-%u: ", m + 1);
	printf("final snapshot: %" PRIu64 " pages, %" PRIu64 " bytes, journal seq %" PRIu64
	       ", %.3f s\n", info.pages, info.bytes, info.seq, info.seconds);
	if (!d->machines)
		print_files(mb_path(b));
	rc = snapshot_facts(mb_path(b), &f) ? MB_ECORRUPT : 0;
	f.same_files = 1;
	for (unsigned i = 0; m && i < 4; i++)
		if (!same_file(d->banks[0], mb_path(b), four_files[i]))
			f.same_files = 0;
#else
	printf("(this build has no snapshots: checking the live documents)\n");
	rc = live_facts(b, &f);
#endif
	if (rc)
		goto fail;
	f.seq = (double)seq;
	mb_close(b);
	return check_all(d, m, &f, s, (double)pages) ? EX_OK : EX_BANK;
fail:
	cli_fail(d->c, b, rc, "final check of %s", d->banks[m]);
	mb_close(b);
	return cli_exit_code(rc);
}

/* With a cluster: what the stream holds in the end. */
static void print_stream(const demo *d, const sums *s)
{
	mb_cluster_info ci;
	mb_bank *b = NULL;

	if (!d->machines || mb_open(d->banks[0], &d->c->opts, &b))
		return;
	if (!mb_cluster_status(b, &ci))
		printf("\nstream %s: last seq %" PRIu64 ", %u replica%s, leader %s; every "
		       "machine applied it up to seq %" PRIu64 "\n", ci.stream, ci.last_seq,
		       ci.replicas, ci.replicas == 1 ? "" : "s", *ci.leader ? ci.leader : "?",
		       ci.last_seq);
	if (s->turns)
		printf("turn records (a machine that kept losing races asked for the turn): %"
		       PRIu64 "\n", s->turns);
	mb_close(b);
}

/* ------------------------------------------------------------- the setup */

/* A fresh bank: the checks compare its counts with the workers' alone.
 * With a cluster, machine 1 prepares it and every other machine joins (its
 * open bootstraps from the stream) and must see the same empty bank. */
static int prepare_bank(demo *d, unsigned m)
{
	char conf[128];
	facts f = { 0 };
	mb_bank *b = NULL;
	int rc, ex = EX_OK;

	if ((rc = mb_open(d->banks[m], &d->c->opts, &b)) || (rc = live_facts(b, &f)))
		goto fail;
	if (f.total_pages || f.success || f.failures || f.total_errors) {
		if (d->machines)
			cli_msg(d->c, "the stream of the bank %s is not empty: give the URL of a new "
			        "stream (another STREAM name)", d->banks[m]);
		else
			cli_msg(d->c, "the bank %s is not empty: give a fresh directory, or no -b",
			        d->banks[m]);
		mb_close(b);
		return EX_USAGE;
	}
	/* a new bank evicts nothing, but an empty bank created before keeps
	 * max_entries 1000 (the least recently updated page is evicted beyond
	 * it); the workspace must fit for total_pages to be checkable. */
	snprintf(conf, sizeof conf, "{\"cache_settings\":{\"max_entries\":%u}}", DEMO_MAX_ENTRIES);
	if (m == 0 && ((rc = mb_config_update(b, conf, (size_t)-1)) ||
	               (rc = mb_journal_last_seq(b, &d->base_seq))))
		goto fail;
	mb_close(b);
	return ex;
fail:
	ex = cli_fail(d->c, b, rc, "cannot prepare the bank %s", d->banks[m]);
	mb_close(b);
	return ex;
}

/* Worker k (k >= 0), or machine -1 - k's compactor. */
static pid_t spawn(const demo *d, int rfd, int k, double deadline, const sigset_t *set)
{
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	if ((pid = fork()) != 0)
		return pid;
	close(rfd);
#if CLI_HAVE_SNAPSHOT
	_exit(k < 0 ? compactor_main(d, (unsigned)(-1 - k), set) : worker_main(d, k, deadline));
#else
	(void)set;
	_exit(worker_main(d, k, deadline));
#endif
}

/* Stop the compactors and read their last reports, then reap them. */
static int stop_compactors(tally *t, int rfd, const pid_t *comp, unsigned n)
{
	struct pollfd pfd = { .fd = rfd, .events = POLLIN };
	int status = 0, ex = 0;

	for (unsigned m = 0; m < n; m++)
		if (comp[m] > 0)
			kill(comp[m], SIGTERM);
	while (poll(&pfd, 1, 1000) >= 0 && drain(t, rfd))
		;
	for (unsigned m = 0; m < n; m++) {
		if (comp[m] == 0)
			continue;   /* a build without snapshots has no compactor */
		if (comp[m] < 0 || waitpid(comp[m], &status, 0) != comp[m] ||
		    !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			ex = -1;    /* fork failed, or the compactor did */
	}
	return ex;
}

static int run(demo *d)
{
	pid_t pids[DEMO_MAX_WORKERS] = { 0 }, comp[DEMO_MAX_MACHINES] = { 0 };
	int status[DEMO_MAX_WORKERS] = { 0 }, fds[2], ex;
	unsigned machines = d->machines ? d->machines : 1;
	tally *t = calloc(1, sizeof *t);
	sigset_t set;
	double t0, elapsed;
	sums s;

	if (!t || pipe2(fds, O_CLOEXEC)) {
		free(t);
		cli_msg(d->c, "cannot create a pipe: %s", strerror(errno));
		return EX_BANK;
	}
	fcntl(fds[0], F_SETFL, O_NONBLOCK);
	t->workers = d->workers;
	d->wfd = fds[1];
	cli_block_signals(&set);   /* inherited: children take signals by polling */
	t0 = now_s();
#if CLI_HAVE_SNAPSHOT
	for (unsigned m = 0; m < machines; m++)
		comp[m] = spawn(d, fds[0], -1 - (int)m, 0, &set);
#endif
	for (unsigned k = 0; k < d->workers; k++)
		pids[k] = spawn(d, fds[0], (int)k, t0 + d->seconds, &set);
	close(fds[1]);
	bool stopped = watch(d, t, fds[0], pids, status, t0);
	elapsed = now_s() - t0;
	progress(d, t, elapsed, true);
	if (stopped)
		printf("stopped early by a signal after %.1f s\n", elapsed);
	ex = stop_compactors(t, fds[0], comp, machines) ? EX_BANK : EX_OK;
	close(fds[0]);
	sum_up(t, &s);
	print_table(d, &s, t, elapsed);
	if (s.failed || ex) {
		cli_msg(d->c, "%u worker(s) failed%s", s.failed, ex ? ", a compactor failed" : "");
		ex = EX_BANK;
	}
	for (unsigned m = 0; m < machines; m++)
		if (final_check(d, m, &s) != EX_OK)
			ex = EX_BANK;
	print_stream(d, &s);
	printf("\nresult: %s\n", ex ? "FAILED" : "all checks passed");
	free(t);
	return ex;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

/* The banks: -b DIR or a new temporary directory; with machines, one
 * directory per machine inside it (machine-1 ...). */
static int place_banks(demo *d, char *tmp, char (*paths)[PATH_MAX + 16])
{
	const char *base;

	if (d->c->bank_given) {
		base = d->c->bank_dir;
		/* the machines' banks go inside it: made when missing */
		if (d->machines && mkdir(base, 0700) && errno != EEXIST) {
			cli_msg(d->c, "cannot create %s: %s", base, strerror(errno));
			return EX_BANK;
		}
	} else {
		const char *t = getenv("TMPDIR");
		snprintf(tmp, PATH_MAX, "%s/membank-demo-XXXXXX", t && *t ? t : "/tmp");
		if (!mkdtemp(tmp)) {
			cli_msg(d->c, "cannot create a temporary directory: %s", strerror(errno));
			return EX_BANK;
		}
		base = tmp;
	}
	for (unsigned m = 0; m < (d->machines ? d->machines : 1); m++) {
		if (d->machines)
			snprintf(paths[m], PATH_MAX + 16, "%s/machine-%u", base, m + 1);
		else if (d->c->bank_given)
			snprintf(paths[m], PATH_MAX + 16, "%s", base);
		else
			snprintf(paths[m], PATH_MAX + 16, "%s/memory-bank", base);
		d->banks[m] = paths[m];
	}
	d->bank = d->banks[0];
	return EX_OK;
}

static void say_plan(const demo *d)
{
	mb_cluster_info ci;
	mb_bank *b = NULL;
	const char *dur = d->c->opts.durability == MB_DURABILITY_FAST ? "fast" : "full";

	if (!d->machines) {
		printf("membank demo: %u workers for %.0f s on %s (durability %s)\n", d->workers,
		       d->seconds, d->bank, dur);
	} else {
		printf("membank demo: %u machines (bank directories), %u workers spread over "
		       "them, for %.0f s (durability %s)\n", d->machines, d->workers, d->seconds,
		       dur);
		for (unsigned m = 0; m < d->machines; m++)
			printf("  machine-%u: %s\n", m + 1, d->banks[m]);
		if (!mb_open(d->bank, &d->c->opts, &b) && !mb_cluster_status(b, &ci))
			printf("every write goes through the stream %s (%u replica%s, leader %s)\n",
			       ci.stream, ci.replicas, ci.replicas == 1 ? "" : "s",
			       *ci.leader ? ci.leader : "?");
		mb_close(b);
	}
	printf("workspace: %u pages; cache_settings.max_entries set to %u so that no page\n"
	       "is evicted and total_pages can be checked\n", DEMO_PAGES, DEMO_MAX_ENTRIES);
}

static int prepare_here(demo *d)
{
	int ex = EX_OK;

	for (unsigned m = 0; m < (d->machines ? d->machines : 1) && !ex; m++)
		ex = prepare_bank(d, m);
	if (!ex)
		say_plan(d);
	return ex;
}

/* Prepare the banks and say the plan.  With a cluster, in a child: libnats
 * cannot be used in a process forked after it was used (the library
 * refuses it), so the parent touches the cluster only once every worker
 * and compactor is forked.  The child hands back the journal's seq. */
static int prepare(demo *d)
{
	int fds[2], status = 0, ex;
	pid_t pid;

	if (!d->machines)
		return prepare_here(d);
	if (pipe2(fds, O_CLOEXEC)) {
		cli_msg(d->c, "cannot create a pipe: %s", strerror(errno));
		return EX_BANK;
	}
	fflush(stdout);
	fflush(stderr);
	if ((pid = fork()) == 0) {
		close(fds[0]);
		ex = prepare_here(d);
		if (!ex && write(fds[1], &d->base_seq, sizeof d->base_seq) != sizeof d->base_seq)
			ex = EX_BANK;
		fflush(stdout);
		_exit(ex);
	}
	close(fds[1]);
	if (pid < 0) {
		close(fds[0]);
		cli_msg(d->c, "cannot fork: %s", strerror(errno));
		return EX_BANK;
	}
	ex = read(fds[0], &d->base_seq, sizeof d->base_seq) == sizeof d->base_seq ? EX_OK : -1;
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status))
		return EX_BANK;
	return WEXITSTATUS(status) ? WEXITSTATUS(status) : ex ? EX_BANK : EX_OK;
}

int cmd_demo(cli *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "workers", required_argument, NULL, 'w' },
		{ "seconds", required_argument, NULL, 's' },
		{ "keep", no_argument, NULL, 'k' },
		{ "machines", required_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 },
	};
	demo d = { .c = c, .workers = 4, .seconds = 5 };
	char tmp[PATH_MAX] = "", paths[DEMO_MAX_MACHINES][PATH_MAX + 16];
	bool keep = false;
	uint64_t v;
	int ch, ex = 0;

	c->usage = "membank demo [--workers N] [--seconds S] [--machines M] [--keep]\n\n"
	           "N worker processes (default 4) share one bank for S seconds (default 5),\n"
	           "putting and merging pages of a 3000-page workspace, recording syncs and\n"
	           "Notion API errors, while a compactor snapshots every second.  Then a\n"
	           "summary, and a check that the final snapshot holds exactly what the\n"
	           "workers reported (exit 4 if not).  Uses a fresh bank in a temporary\n"
	           "directory, removed at the end unless --keep or a check failed, unless\n"
	           "-b is given (which must then be empty).\n"
	           "Sets cache_settings.max_entries to 5000 so no page is evicted.\n"
	           "With --machines M and --journal URL (a new stream), M bank directories\n"
	           "(machine-1 ... in the temporary directory, or in DIR of -b) stand for M\n"
	           "machines, the workers spread over them, a compactor each, every write\n"
	           "through the one stream; at the end each machine catches up and must hold\n"
	           "exactly what all the workers did, at the stream's last seq, its four\n"
	           "files identical to machine-1's.\n\n"
	           "  -w, --workers N   1..64 (in all, with --machines: at least M)\n"
	           "  -s, --seconds S   1..3600\n"
	           "  -m, --machines M  1..8 bank directories sharing the journal's stream\n"
	           "  -k, --keep        keep the temporary bank\n";
	while ((ch = cli_getopt(c, argc, argv, "w:s:m:k", lo, &ex)) > 0) {
		if (ch == 'k')
			keep = true;
		if (ch == 'w' && (cli_parse_u64(optarg, DEMO_MAX_WORKERS, &v) || !v))
			return cli_usage_error(c, "--workers needs 1..%u, not '%s'", DEMO_MAX_WORKERS, optarg);
		if (ch == 'w')
			d.workers = (unsigned)v;
		if (ch == 's' && (cli_parse_u64(optarg, 3600, &v) || !v))
			return cli_usage_error(c, "--seconds needs 1..3600, not '%s'", optarg);
		if (ch == 's')
			d.seconds = (double)v;
		if (ch == 'm' && (cli_parse_u64(optarg, DEMO_MAX_MACHINES, &v) || !v))
			return cli_usage_error(c, "--machines needs 1..%u, not '%s'", DEMO_MAX_MACHINES,
			                       optarg);
		if (ch == 'm')
			d.machines = (unsigned)v;
	}
	if (ch < 0)
		return ex;
	if (optind != argc)
		return cli_usage_error(c, "too many arguments");
	if (d.machines && !cli_journal(c))
		return cli_usage_error(c, "--machines needs a journal on a cluster: --journal URL "
		                          "or MEMBANK_JOURNAL");
	if (d.workers < d.machines)
		return cli_usage_error(c, "--workers %u is fewer than --machines %u", d.workers,
		                       d.machines);
	/* its processes snapshot every second and print their own report: no
	 * progress lines of theirs interleaved with it */
	c->opts.progress = NULL;
	if ((ex = place_banks(&d, tmp, paths)))
		return ex;
	d.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	if ((ex = prepare(&d))) {
		/* nothing ran: nothing worth keeping */
		if (*tmp)
			nftw(tmp, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
		return ex;
	}
	ex = run(&d);
	if (!*tmp)
		return ex;
	if (keep || ex) {
		printf("the bank%s kept in %s%s\n", d.machines ? "s are" : " is",
		       d.machines ? tmp : d.bank, keep ? "" : " (a check failed)");
	} else if (nftw(tmp, remove_entry, 16, FTW_DEPTH | FTW_PHYS)) {
		cli_msg(c, "cannot remove the temporary bank %s: %s", tmp, strerror(errno));
		ex = EX_BANK;
	} else {
		printf("the temporary bank%s removed (--keep keeps %s)\n",
		       d.machines ? "s are" : " is", d.machines ? "them" : "it");
	}
	return ex;
}
