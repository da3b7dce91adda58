/*
 * vis.c - cross-machine visibility on a stream journal (issue 16): how long
 * after machine A's write returned does machine B's local read see it.
 *
 * usage: bench-vis --dir DIR [--count N] [--interval-ms I]
 *   MEMBANK_JOURNAL=nats://HOSTS/STREAM (a stream of its own, created here
 *   with MEMBANK_BENCH_NATS_REPLICAS replicas, default 3).
 *
 * Two "machines" on this host: bank directories DIR/a and DIR/b bound to the
 * same stream, one process each (children: libnats cannot cross fork(), so
 * this parent never uses it).  B opens its bank (its follower runs while the
 * handle is open) and says ready; A writes a warm-up page and waits until
 * B saw it (B's follower runs: it starts a moment after the open, and this
 * is what "a handle open here" means); then A writes pages vis-000000.. one every
 * I ms with fast durability (the local fdatasync is not what is measured),
 * each stamped {"i":i,"mono_ns":..,"realtime_ns":..} (the clocks at the
 * write's start), and notes CLOCK_MONOTONIC when mb_page_put returned (the
 * stream acknowledged it).  B polls mb_page_get() of the next page every
 * 200 us and notes CLOCK_MONOTONIC when it appears.  Both notes go to a
 * shared mapping; the parent prints one JSON line:
 *   {"count":N,"seen":N,"interval_ms":I,
 *    "ack_p50_ms":..,"ack_p99_ms":..,"ack_max_ms":..    (seen - A's return)
 *    "start_p50_ms":..,"start_p99_ms":..,"start_max_ms":.. (seen - A's start)}
 * A page B has not seen 30 s after A's return counts as not seen (exit 1).
 * A measure, not a test: no assertion on the figures.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "membank.h"

#define VIS_GIVE_UP_NS (30ull * 1000000000ull)

typedef struct note {
	uint64_t start_ns, ack_ns, seen_ns;   /* 0: not (yet) */
} note;

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void nap_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int open_machine(const char *dir, const char *name, mb_bank **b)
{
	char path[4096];
	const char *r = getenv("MEMBANK_BENCH_NATS_REPLICAS");
	mb_options o;
	int rc;

	mb_options_init(&o);
	o.durability = MB_DURABILITY_FAST;
	o.journal_replicas = r ? (uint32_t)atoi(r) : 3;
	snprintf(path, sizeof path, "%s/%s", dir, name);
	rc = mb_open(path, &o, b);
	if (rc != 0)
		fprintf(stderr, "vis: mb_open %s: %s: %s\n", path, mb_errname(rc),
		        mb_last_error(NULL));
	return rc;
}

/* Machine A: say ready on @ready, wait for @go, then write @n pages
 * @interval_ns apart. */
static int writer(const char *dir, note *notes, int n, uint64_t interval_ns, int ready, int go,
                  int live)
{
	mb_bank *b;
	char id[32], json[160], c;
	int rc = open_machine(dir, "a", &b);

	if (rc != 0)
		return 1;
	if (write(ready, "a", 1) != 1)
		rc = -1;
	close(ready);
	/* go: B is open; the warm-up page, then wait until B's follower saw it */
	if (read(go, &c, 1) < 0)
		rc = -1;
	if (rc == 0 && (rc = mb_page_put(b, "vis-warm", "{}", 2)) != 0)
		fprintf(stderr, "vis: A: mb_page_put: %s: %s\n", mb_errname(rc), mb_last_error(b));
	if (rc == 0 && read(live, &c, 1) != 1)
		rc = -1;
	for (int i = 0; rc == 0 && i < n; i++) {
		struct timespec rt;
		uint64_t t0 = mono_ns();
		int len;

		clock_gettime(CLOCK_REALTIME, &rt);
		snprintf(id, sizeof id, "vis-%06d", i);
		len = snprintf(json, sizeof json, "{\"i\":%d,\"mono_ns\":%" PRIu64
		               ",\"realtime_ns\":%" PRIu64 "}", i, t0,
		               (uint64_t)rt.tv_sec * 1000000000u + (uint64_t)rt.tv_nsec);
		notes[i].start_ns = t0;
		rc = mb_page_put(b, id, json, (size_t)len);
		notes[i].ack_ns = mono_ns();
		if (rc != 0)
			fprintf(stderr, "vis: A: mb_page_put: %s: %s\n", mb_errname(rc),
			        mb_last_error(b));
		else if (notes[i].ack_ns - t0 < interval_ns)
			nap_ns(interval_ns - (notes[i].ack_ns - t0));
	}
	mb_close(b);
	return rc == 0 ? 0 : 1;
}

/* Page @id once it is here: 0, or -1 after an error or 30 s past @ack. */
static int wait_page(mb_bank *b, const char *id, const uint64_t *ack, uint64_t *seen)
{
	uint64_t t0 = mono_ns();

	for (;;) {
		char *json = NULL;
		int g = mb_page_get(b, id, &json, NULL);
		uint64_t now = mono_ns(), a;

		mb_free(json);
		if (g == 0) {
			*seen = now;
			return 0;
		}
		if (g != MB_ENOTFOUND) {
			fprintf(stderr, "vis: B: mb_page_get: %s: %s\n", mb_errname(g),
			        mb_last_error(b));
			return -1;
		}
		a = ack ? __atomic_load_n(ack, __ATOMIC_ACQUIRE) : t0;
		if (a && now > a && now - a > VIS_GIVE_UP_NS) {
			fprintf(stderr, "vis: B: %s not seen 30 s after A's write\n", id);
			return -1;
		}
		nap_ns(200000);
	}
}

/* Machine B: say open on @ready; once its follower brought A's warm-up
 * page (written after this open: so the follower runs), say so on @live,
 * then poll each page in turn. */
static int reader(const char *dir, note *notes, int n, int ready, int live)
{
	mb_bank *b;
	char id[32];
	uint64_t warm;
	int rc = open_machine(dir, "b", &b);

	if (rc != 0)
		return 1;
	if (write(ready, "r", 1) != 1)
		rc = -1;
	close(ready);
	if (rc == 0)
		rc = wait_page(b, "vis-warm", NULL, &warm);
	if (rc == 0 && write(live, "l", 1) != 1)
		rc = -1;
	close(live);
	for (int i = 0; rc == 0 && i < n; i++) {
		snprintf(id, sizeof id, "vis-%06d", i);
		rc = wait_page(b, id, &notes[i].ack_ns, &notes[i].seen_ns);
	}
	mb_close(b);
	return rc == 0 ? 0 : 1;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double pct_ms(const uint64_t *v, int n, double q)
{
	int i = (int)(q * n);

	return n ? (double)v[i >= n ? n - 1 : i] / 1e6 : 0.0;
}

/* @fn(@arg) in a child that first closes @shut[0..n) (the pipe ends that
 * are not its own: a read must see EOF when their owner is gone). */
static pid_t start(int (*fn)(void *), void *arg, const int *shut, int n)
{
	pid_t pid = fork();

	if (pid == 0) {
		for (int i = 0; i < n; i++)
			close(shut[i]);
		_exit(fn(arg));
	}
	return pid;
}

typedef struct job {
	const char *dir;
	note *notes;
	int n, fd, fd2, live;
	uint64_t interval_ns;
} job;

static int run_writer(void *a)
{
	job *j = a;
	return writer(j->dir, j->notes, j->n, j->interval_ns, j->fd2, j->fd, j->live);
}

static int run_reader(void *a)
{
	job *j = a;
	return reader(j->dir, j->notes, j->n, j->fd, j->live);
}

static bool exited_ok(pid_t pid)
{
	int st;

	return pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

int main(int argc, char **argv)
{
	const char *dir = NULL;
	int n = 200, seen = 0, ready[2], go[2], a_ready[2], live[2];
	double interval_ms = 10;
	char c;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
			dir = argv[++i];
		else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc)
			n = atoi(argv[++i]);
		else if (strcmp(argv[i], "--interval-ms") == 0 && i + 1 < argc)
			interval_ms = strtod(argv[++i], NULL);
		else
			dir = NULL, i = argc;
	}
	if (!dir || n <= 0 || n > 1000000 || interval_ms < 0 || !getenv("MEMBANK_JOURNAL")) {
		fprintf(stderr, "usage: MEMBANK_JOURNAL=nats://HOSTS/STREAM bench-vis --dir DIR "
		        "[--count N] [--interval-ms I]\n");
		return 2;
	}
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		fprintf(stderr, "vis: mkdir %s: %s\n", dir, strerror(errno));
		return 1;
	}
	note *notes = mmap(NULL, (size_t)n * sizeof *notes, PROT_READ | PROT_WRITE,
	                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (notes == MAP_FAILED || pipe(ready) || pipe(go) || pipe(a_ready) || pipe(live))
		return 1;
	job jw = { dir, notes, n, go[0], a_ready[1], live[0], (uint64_t)(interval_ms * 1e6) };
	job jr = { dir, notes, n, ready[1], -1, live[1], 0 };
	/* A opens first (it creates the stream), then B joins the stream */
	int not_a[] = { go[1], a_ready[0], ready[0], ready[1], live[1] };
	int not_b[] = { go[0], go[1], ready[0], live[0] };
	pid_t a = start(run_writer, &jw, not_a, 5), b = -1;
	close(a_ready[1]);
	close(live[0]);
	bool b_ready = false;
	if (read(a_ready[0], &c, 1) == 1) {
		b = start(run_reader, &jr, not_b, 4);
		close(ready[1]);
		b_ready = read(ready[0], &c, 1) == 1;
	}
	close(live[1]);
	close(go[0]);
	close(go[1]);   /* A starts writing (or, if B failed, ends at once) */
	bool ok = exited_ok(a) & exited_ok(b) & b_ready;

	uint64_t *ack = calloc((size_t)n, sizeof *ack), *st = calloc((size_t)n, sizeof *st);
	if (!ack || !st)
		return 1;
	for (int i = 0; i < n; i++)
		if (notes[i].seen_ns && notes[i].ack_ns) {
			/* seen before A's return is possible (B's follower may apply the
			 * message before A's ack arrives): a delay of 0 */
			ack[seen] = notes[i].seen_ns > notes[i].ack_ns ?
				notes[i].seen_ns - notes[i].ack_ns : 0;
			st[seen++] = notes[i].seen_ns - notes[i].start_ns;
		}
	qsort(ack, (size_t)seen, sizeof *ack, cmp_u64);
	qsort(st, (size_t)seen, sizeof *st, cmp_u64);
	printf("{\"count\":%d,\"seen\":%d,\"interval_ms\":%.1f,"
	       "\"ack_p50_ms\":%.3f,\"ack_p99_ms\":%.3f,\"ack_max_ms\":%.3f,"
	       "\"start_p50_ms\":%.3f,\"start_p99_ms\":%.3f,\"start_max_ms\":%.3f}\n",
	       n, seen, interval_ms, pct_ms(ack, seen, 0.5), pct_ms(ack, seen, 0.99),
	       seen ? (double)ack[seen - 1] / 1e6 : 0.0, pct_ms(st, seen, 0.5),
	       pct_ms(st, seen, 0.99), seen ? (double)st[seen - 1] / 1e6 : 0.0);
	free(ack);
	free(st);
	return ok && seen == n ? 0 : 1;
}
