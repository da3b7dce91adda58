/*
 * driver.c - runs cells of one system and prints one JSON line per cell.
 *
 * usage: bench-<system> --dir DIR [--sock SOCK] [--keys N] [--seconds S]
 *                       [--no-prefill] [--own-files] [--max-entries N] [--counts]
 *                       CELL... [-- ARGV...]
 *        bench-<system> --values   (print the value variants, one a line)
 *   CELL is WORKLOAD/DURABILITY/P, e.g. W1/fast/4:
 *     W1 upsert, W2 get, W3 sync-or-error event, W4 90% get + 10% upsert,
 *     W5 one spawned process per put (ARGV after -- is the command;
 *        {key} and {json} in it are replaced), W7 BENCH_BATCH upserts as one
 *        batch (ops count pages; latencies are per batch), W8 as W5 (the
 *        harness spawns Python processes: a cold invocation).
 *
 * A cell forks P workers.  Each opens the system, writes one byte to the
 * ready pipe and blocks reading the go pipe; the parent closes the go pipe
 * when all are ready, so all start together.  Each worker then runs for S
 * seconds, timing every operation with CLOCK_MONOTONIC into an array that it
 * writes to DIR/lat-<i> (header + uint32 nanoseconds).  The parent merges
 * the arrays: ops/s is the sum of operations over the longest worker's run.
 * Between cells the bench filesystem is synced (not timed).
 *
 * Output line: {"system":..,"workload":"W1","durability":"fast","procs":4,
 *   "ops":N,"seconds":S,"ops_per_s":X,"p50_us":..,"p99_us":..,
 *   "p999_us":..,"errors":E}, and for a durable cell of a system that counts
 *   them (membank: mb_stats), "records":N,"fdatasyncs":N,"records_per_sync":R
 *   (records: journal records the cell added; with --counts for every cell,
 *   fast ones too: a bank on a stream, where one record is one message).
 * Exit status: 0 when every cell produced a figure without errors, else 1.
 */
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define MAX_PROCS 64

typedef struct lat_header {
	uint64_t ops;
	uint64_t errors;
	uint64_t elapsed_ns;
	uint64_t count;           /* latencies that follow */
} lat_header;

typedef struct lat_vec {
	uint32_t *v;
	size_t n, cap;
} lat_vec;

typedef struct cell {
	char wl[4];
	bool full;
	int procs;
} cell;

typedef struct opts {
	bench_cfg cfg;
	double seconds;
	bool prefill;
	bool counts;            /* --counts: sync_counts around every cell */
	cell cells[256];
	int ncells;
} opts;

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int lat_push(lat_vec *l, uint64_t ns)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 65536;
		uint32_t *v = realloc(l->v, cap * sizeof *v);

		if (!v)
			return -1;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
	return 0;
}

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1Dull;
}

/* The operation of workload @wl for this draw. */
static bench_op pick_op(const char *wl, uint64_t *rng)
{
	switch (wl[1]) {
	case '1': return OP_UPSERT;
	case '2': return OP_GET;
	case '3': return OP_EVENT;
	case '4': return rng_next(rng) % 10 == 0 ? OP_UPSERT : OP_GET;
	case '7': return OP_BATCH;
	default: return OP_SPAWN;
	}
}

static int write_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t w = write(fd, c, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

static int save_lat(const bench_cfg *cfg, const lat_header *h, const lat_vec *l)
{
	char path[4096];
	int fd, rc;

	snprintf(path, sizeof path, "%s/lat-%d", cfg->dir, cfg->worker);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	rc = write_all(fd, h, sizeof *h);
	if (rc == 0 && l->n)
		rc = write_all(fd, l->v, l->n * sizeof *l->v);
	close(fd);
	return rc;
}

static void run_ops(void *h, const bench_cfg *cfg, const cell *c, double seconds,
                    lat_header *hdr, lat_vec *lat)
{
	uint64_t rng = (uint64_t)getpid() * 0x9E3779B97F4A7C15ull ^ mono_ns();
	uint64_t start = mono_ns(), end = start;
	uint64_t deadline = start + (uint64_t)(seconds * 1e9);

	while (end < deadline) {
		bench_op op = pick_op(c->wl, &rng);
		uint32_t key = (uint32_t)(rng_next(&rng) % cfg->keys);
		uint64_t t0 = mono_ns();
		int rc = bench_system.op(h, cfg, op, key, hdr->ops);

		end = mono_ns();
		if (rc != 0) {
			hdr->errors++;
			break;
		}
		hdr->ops += op == OP_BATCH ? BENCH_BATCH : 1;
		if (lat_push(lat, end - t0) != 0) {
			hdr->errors++;   /* out of memory: no figure rather than a partial one */
			break;
		}
	}
	hdr->elapsed_ns = end - start;
}

static int worker(const bench_cfg *cfg, const cell *c, double seconds, int ready, int go)
{
	lat_header hdr = {0};
	lat_vec lat = {0};
	void *h = NULL;
	char b = 1;
	int rc;

	rc = bench_system.open(cfg, &h);
	if (write_all(ready, &b, 1) != 0)
		return 1;
	while (read(go, &b, 1) < 0 && errno == EINTR)
		;
	if (rc == 0)
		run_ops(h, cfg, c, seconds, &hdr, &lat);
	else
		hdr.errors = 1;
	if (h)
		bench_system.close(h);
	hdr.count = lat.n;
	rc = save_lat(cfg, &hdr, &lat);
	free(lat.v);
	return rc == 0 && hdr.errors == 0 ? 0 : 1;
}

/* Wait for every child; kill those still running at @deadline_ns. */
static int reap(const pid_t *pids, int n, uint64_t deadline_ns)
{
	int left = n, bad = 0;
	bool done[MAX_PROCS] = {false};

	while (left > 0) {
		for (int i = 0; i < n; i++) {
			int st;

			if (done[i] || waitpid(pids[i], &st, WNOHANG) != pids[i])
				continue;
			done[i] = true;
			left--;
			if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
				bad++;
		}
		if (left > 0 && mono_ns() > deadline_ns) {
			for (int i = 0; i < n; i++)
				if (!done[i])
					kill(pids[i], SIGKILL);
			deadline_ns = UINT64_MAX;
		}
		if (left > 0)
			usleep(2000);
	}
	return bad;
}

static void swap32(uint32_t *a, uint32_t *b)
{
	uint32_t t = *a;

	*a = *b;
	*b = t;
}

/* The k-th smallest of v[0..n) (Hoare's selection; reorders v). */
static uint32_t select_kth(uint32_t *v, size_t n, size_t k)
{
	ptrdiff_t lo = 0, hi = (ptrdiff_t)n - 1, kk = (ptrdiff_t)k;

	while (lo < hi) {
		uint32_t pivot = v[lo + (hi - lo) / 2];
		ptrdiff_t i = lo, j = hi;

		while (i <= j) {
			while (v[i] < pivot)
				i++;
			while (v[j] > pivot)
				j--;
			if (i <= j) {
				swap32(&v[i], &v[j]);
				i++;
				j--;
			}
		}
		if (kk <= j)
			hi = j;
		else if (kk >= i)
			lo = i;
		else
			return v[kk];
	}
	return v[kk];
}

static double pct_us(uint32_t *v, size_t n, double q)
{
	size_t k;

	if (n == 0)
		return 0;
	k = (size_t)(q * (double)n);
	if (k >= n)
		k = n - 1;
	return select_kth(v, n, k) / 1000.0;
}

typedef struct merged {
	lat_header sum;
	lat_vec lat;
} merged;

static int merge_one(const char *dir, int i, merged *m)
{
	char path[4096];
	lat_header h;
	FILE *f;
	int rc = -1;

	snprintf(path, sizeof path, "%s/lat-%d", dir, i);
	f = fopen(path, "rb");
	if (!f)
		return -1;
	if (fread(&h, sizeof h, 1, f) != 1 || h.count > (1ull << 32))
		goto out;
	if (m->lat.n + h.count > m->lat.cap) {
		uint32_t *v = realloc(m->lat.v, (m->lat.n + h.count + 1) * sizeof *v);
		if (!v)
			goto out;
		m->lat.v = v;
		m->lat.cap = m->lat.n + h.count + 1;
	}
	if (fread(m->lat.v + m->lat.n, sizeof *m->lat.v, h.count, f) != h.count)
		goto out;
	m->lat.n += h.count;
	m->sum.ops += h.ops;
	m->sum.errors += h.errors;
	if (h.elapsed_ns > m->sum.elapsed_ns)
		m->sum.elapsed_ns = h.elapsed_ns;
	rc = 0;
out:
	fclose(f);
	unlink(path);
	return rc;
}

/* Records and fdatasyncs a durable cell made (from, to: the counts
 * before and after); printed when the system counts them. */
typedef struct sync_delta {
	bool known;
	uint64_t records, syncs;
} sync_delta;

static void report(const cell *c, merged *m, int failed, const sync_delta *sd)
{
	double secs = (double)m->sum.elapsed_ns / 1e9;
	uint64_t errors = m->sum.errors + (uint64_t)failed;

	printf("{\"system\":\"%s\",\"workload\":\"%s\",\"durability\":\"%s\","
	       "\"procs\":%d,\"ops\":%llu,\"seconds\":%.4f,\"ops_per_s\":%.1f,",
	       bench_system.name, c->wl, c->full ? "full" : "fast", c->procs,
	       (unsigned long long)m->sum.ops, secs,
	       secs > 0 ? (double)m->sum.ops / secs : 0.0);
	printf("\"p50_us\":%.2f,", pct_us(m->lat.v, m->lat.n, 0.50));
	printf("\"p99_us\":%.2f,", pct_us(m->lat.v, m->lat.n, 0.99));
	printf("\"p999_us\":%.2f,", pct_us(m->lat.v, m->lat.n, 0.999));
	if (sd->known)
		printf("\"records\":%llu,\"fdatasyncs\":%llu,\"records_per_sync\":%.2f,",
		       (unsigned long long)sd->records, (unsigned long long)sd->syncs,
		       sd->syncs ? (double)sd->records / (double)sd->syncs : 0.0);
	printf("\"errors\":%llu}\n", (unsigned long long)errors);
	fflush(stdout);
}

static void close_pipes(int *ready, int *go)
{
	for (int i = 0; i < 2; i++) {
		if (ready[i] >= 0)
			close(ready[i]);
		if (go[i] >= 0)
			close(go[i]);
	}
}

/* Fork the workers of @c; @pids gets them.  Returns how many started. */
static int spawn_workers(const opts *o, const cell *c, pid_t *pids, int *ready, int *go)
{
	int n = 0;

	for (; n < c->procs; n++) {
		bench_cfg cfg = o->cfg;

		cfg.full = c->full;
		cfg.worker = n;
		fflush(stdout);
		pids[n] = fork();
		if (pids[n] < 0)
			break;
		if (pids[n] == 0) {
			close(ready[0]);
			close(go[1]);
			_exit(worker(&cfg, c, o->seconds, ready[1], go[0]));
		}
	}
	return n;
}

/* Between cells: let the system drop its leftovers, then write back every
 * dirty page of the bench filesystem, so that one cell's writeback (a fast
 * cell dirties hundreds of MB) is not paid by the next cell's fdatasync. */
static void settle(const bench_cfg *cfg)
{
	int fd;

	if (bench_system.reset)
		bench_system.reset(cfg);
	fd = open(cfg->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		syncfs(fd);
		close(fd);
	}
}

static int run_cell(const opts *o, const cell *c)
{
	int ready[2] = {-1, -1}, go[2] = {-1, -1}, started, failed = 0;
	pid_t pids[MAX_PROCS];
	merged m = {0};
	sync_delta sd = {0}, after = {0};
	char b;

	if (pipe2(ready, O_CLOEXEC) != 0 || pipe2(go, O_CLOEXEC) != 0) {
		close_pipes(ready, go);
		return -1;
	}
	if ((c->full || o->counts) && bench_system.sync_counts)
		sd.known = bench_system.sync_counts(&o->cfg, &sd.records, &sd.syncs) == 0;
	started = spawn_workers(o, c, pids, ready, go);
	close(ready[1]);
	ready[1] = -1;
	for (int i = 0; i < started; i++)
		if (read(ready[0], &b, 1) != 1)
			break;
	close(go[1]);        /* the barrier: every worker's read returns now */
	go[1] = -1;
	failed = reap(pids, started, mono_ns() + (uint64_t)((o->seconds + 60) * 1e9));
	failed += c->procs - started;
	for (int i = 0; i < started; i++)
		if (merge_one(o->cfg.dir, i, &m) != 0)
			failed++;
	if (sd.known && bench_system.sync_counts(&o->cfg, &after.records, &after.syncs) == 0) {
		sd.records = after.records - sd.records;
		sd.syncs = after.syncs - sd.syncs;
	} else {
		sd.known = false;
	}
	report(c, &m, failed, &sd);
	free(m.lat.v);
	close_pipes(ready, go);
	settle(&o->cfg);
	return failed || m.sum.errors || m.sum.ops == 0 ? -1 : 0;
}

static int parse_cell(const char *s, cell *c)
{
	char dur[8];

	if (sscanf(s, "%3[W0-9]/%7[a-z]/%d", c->wl, dur, &c->procs) != 3)
		return -1;
	if (strlen(c->wl) != 2 || c->wl[1] < '1' || c->wl[1] == '6' || c->wl[1] > '8')
		return -1;
	if (c->procs < 1 || c->procs > MAX_PROCS)
		return -1;
	if (strcmp(dur, "fast") != 0 && strcmp(dur, "full") != 0)
		return -1;
	c->full = strcmp(dur, "full") == 0;
	return 0;
}

static int parse_args(int argc, char **argv, opts *o)
{
	o->cfg.keys = 10000;
	o->seconds = 1;
	o->prefill = true;
	o->cfg.shared_file = true;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		bool has = i + 1 < argc;

		if (strcmp(a, "--") == 0) {
			o->cfg.spawn_argv = argv + i + 1;
			break;
		} else if (strcmp(a, "--dir") == 0 && has) {
			o->cfg.dir = argv[++i];
		} else if (strcmp(a, "--sock") == 0 && has) {
			o->cfg.sock = argv[++i];
		} else if (strcmp(a, "--keys") == 0 && has) {
			o->cfg.keys = (uint32_t)strtoul(argv[++i], NULL, 10);
		} else if (strcmp(a, "--seconds") == 0 && has) {
			o->seconds = strtod(argv[++i], NULL);
		} else if (strcmp(a, "--no-prefill") == 0) {
			o->prefill = false;
		} else if (strcmp(a, "--max-entries") == 0 && has) {
			o->cfg.max_entries = strtol(argv[++i], NULL, 10);
		} else if (strcmp(a, "--counts") == 0) {
			o->counts = true;
		} else if (strcmp(a, "--own-files") == 0) {
			o->cfg.shared_file = false;
		} else if (o->ncells < 256 && parse_cell(a, &o->cells[o->ncells]) == 0) {
			o->ncells++;
		} else {
			fprintf(stderr, "bench-%s: bad argument '%s'\n", bench_system.name, a);
			return -1;
		}
	}
	if (!o->cfg.dir || o->cfg.keys == 0 || o->seconds <= 0 || o->cfg.max_entries < 0) {
		fprintf(stderr, "bench-%s: need --dir, --keys > 0, --seconds > 0\n",
		        bench_system.name);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static opts o;   /* large: keep it off the stack */
	int bad = 0;

	umask(077);   /* bench files 0600, dirs 0700, whatever the peer library does */
	if (bench_values_init() != 0) {
		fprintf(stderr, "bench-%s: cannot build the values\n", bench_system.name);
		return 1;
	}
	if (argc == 2 && strcmp(argv[1], "--values") == 0) {
		/* The variants, one JSON object a line, for bench/jsonfile.py. */
		for (unsigned i = 0; i < BENCH_VARIANTS; i++)
			printf("%s\n", bench_value_get(i)->json);
		return 0;
	}
	if (parse_args(argc, argv, &o) != 0)
		return 2;
	if (o.prefill && bench_system.prefill(&o.cfg) != 0) {
		fprintf(stderr, "bench-%s: prefill failed\n", bench_system.name);
		return 1;
	}
	for (int i = 0; i < o.ncells; i++)
		if (run_cell(&o, &o.cells[i]) != 0)
			bad++;
	return bad ? 1 : 0;
}
