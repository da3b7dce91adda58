/*
 * bench_cluster.c - figures of a bank on a JetStream stream (not a test):
 * write latency and throughput with 1 and 4 writer processes on one
 * machine, the raw chained synchronous publish of the same bytes
 * (mbs_publish expecting the previous seq: the limit a writer cannot
 * beat), and the visibility delay of a write on another machine (a bank
 * directory of its own, with a handle open: its follower).
 *
 *   python3 tests/nats/cluster.py --nodes 3 -- build/tests/cluster/cluster-bench [N]
 *
 * Every process is started afresh (exec): libnats cannot cross fork().
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "membank.h"
#include "stream.h"

static const char body[] = "{\"title\":\"a page of about a hundred bytes, as a sync writes "
                           "them\",\"n\":%d}";

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int open_bank(const char *path, const char *url, mb_bank **b)
{
	mb_options o;

	mb_options_init(&o);
	o.journal_url = url;
	o.journal_replicas = 3;
	o.durability = MB_DURABILITY_FAST;
	o.no_auto_checkpoint = true;
	if (mb_open(path, &o, b)) {
		fprintf(stderr, "open %s: %s\n", path, mb_last_error(NULL));
		return 1;
	}
	return 0;
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* Writer: @n puts; each latency (us) to @out, binary. */
static int role_write(const char *path, const char *url, int who, int n, const char *out)
{
	mb_bank *b;
	char id[32], json[160];
	int64_t *lat = malloc(sizeof *lat * (size_t)n);
	FILE *fp;

	if (!lat || open_bank(path, url, &b))
		return 1;
	for (int i = 0; i < n; i++) {
		int64_t t0 = now_us();
		snprintf(id, sizeof id, "w%dn%d", who, i);
		snprintf(json, sizeof json, body, i);
		if (mb_page_put(b, id, json, (size_t)-1)) {
			fprintf(stderr, "put: %s\n", mb_last_error(b));
			return 1;
		}
		lat[i] = now_us() - t0;
	}
	mb_close(b);
	fp = fopen(out, "wb");
	if (!fp || fwrite(lat, sizeof *lat, (size_t)n, fp) != (size_t)n)
		return 1;
	fclose(fp);
	free(lat);
	return 0;
}

/* Raw: @n chained synchronous publishes of a record of the same size. */
static int role_raw(const char *url, int n, const char *out)
{
	mbs_options o = { .url = url, .timeout_ms = 5000, .deadline_ms = 20000 };
	mbs_conn *c;
	mbs_info info;
	char payload[160], id[40];
	uint64_t seq;
	int64_t *lat = malloc(sizeof *lat * (size_t)n);
	FILE *fp;
	int len = snprintf(payload, sizeof payload, body, 0) + 24;  /* as a put record packs */

	if (!lat || mbs_connect(&o, &c) || mbs_stream_ensure(c, 3, true, &info))
		return 1;
	seq = info.last_seq;
	for (int i = 0; i < n; i++) {
		int64_t t0 = now_us();
		snprintf(id, sizeof id, "raw-%d-%d", (int)getpid(), i);
		if (mbs_publish(c, seq, id, 1, t0, payload, (uint32_t)len, &seq)) {
			fprintf(stderr, "publish: %s\n", mbs_errmsg(c));
			return 1;
		}
		lat[i] = now_us() - t0;
	}
	mbs_close(c);
	fp = fopen(out, "wb");
	if (!fp || fwrite(lat, sizeof *lat, (size_t)n, fp) != (size_t)n)
		return 1;
	fclose(fp);
	free(lat);
	return 0;
}

/* Watcher on another machine: polls its own copy for v0..v(n-1); the time
 * each appears (us, CLOCK_MONOTONIC) to @out.  Ready once open (@ready
 * created). */
static int role_watch(const char *path, const char *url, int n, const char *ready,
                      const char *out)
{
	mb_bank *b;
	char id[32], *page;
	int64_t *seen = calloc((size_t)n, sizeof *seen), deadline;
	FILE *fp;

	if (!seen || open_bank(path, url, &b))
		return 1;
	fp = fopen(ready, "w");
	if (fp)
		fclose(fp);
	deadline = now_us() + 600 * 1000000LL;
	for (int i = 0; i < n && now_us() < deadline;) {
		snprintf(id, sizeof id, "v%d", i);
		if (mb_page_get(b, id, &page, NULL) == 0) {
			seen[i++] = now_us();
			mb_free(page);
			continue;
		}
		usleep(200);
	}
	mb_close(b);
	fp = fopen(out, "wb");
	if (!fp || fwrite(seen, sizeof *seen, (size_t)n, fp) != (size_t)n)
		return 1;
	fclose(fp);
	return 0;
}

/* Writer of the visibility run: v0..v(n-1), 20 ms apart; ack times out. */
static int role_vwrite(const char *path, const char *url, int n, const char *out)
{
	mb_bank *b;
	char id[32];
	int64_t *ack = malloc(sizeof *ack * (size_t)n);
	FILE *fp;

	if (!ack || open_bank(path, url, &b))
		return 1;
	for (int i = 0; i < n; i++) {
		snprintf(id, sizeof id, "v%d", i);
		if (mb_page_put(b, id, "{\"v\":1}", (size_t)-1))
			return 1;
		ack[i] = now_us();
		usleep(20000);
	}
	mb_close(b);
	fp = fopen(out, "wb");
	if (!fp || fwrite(ack, sizeof *ack, (size_t)n, fp) != (size_t)n)
		return 1;
	fclose(fp);
	free(ack);
	return 0;
}

static pid_t spawn(char *const argv[])
{
	pid_t pid = fork();

	if (pid == 0) {
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	return pid;
}

static int64_t *load(const char *path, int n)
{
	int64_t *v = malloc(sizeof *v * (size_t)n);
	FILE *fp = fopen(path, "rb");

	if (!v || !fp || fread(v, sizeof *v, (size_t)n, fp) != (size_t)n) {
		fprintf(stderr, "%s: unreadable\n", path);
		exit(1);
	}
	fclose(fp);
	return v;
}

/* Throughput over the wall time of the whole run (processes started,
 * banks opened) and over the time spent in the calls (per process: the
 * sum of its latencies; their mean for several). */
static void report(const char *what, int64_t *lat, int n, double secs, int ops, int procs)
{
	double in_calls = 0;

	for (int i = 0; i < n; i++)
		in_calls += (double)lat[i] / 1e6;
	qsort(lat, (size_t)n, sizeof *lat, cmp64);
	printf("%-32s %6.0f ops/s wall, %6.0f ops/s in calls; latency p50 %5.2f ms p99 %6.2f ms "
	       "(n=%d)\n", what, ops / secs, ops / (in_calls / procs), lat[n / 2] / 1000.0,
	       lat[n * 99 / 100] / 1000.0, n);
}

/* P processes of role @role, @n each: their figures. */
static void run_writers(const char *self, const char *dir, const char *url, const char *role,
                        int p, int n, const char *label)
{
	char path[4200], out[8][4300], who[8], ns[16];
	pid_t pid[8];
	int64_t t0 = now_us(), *all = malloc(sizeof *all * (size_t)(p * n));
	int status;

	snprintf(path, sizeof path, "%s/%s", dir, label);
	snprintf(ns, sizeof ns, "%d", n);
	for (int i = 0; i < p; i++) {
		snprintf(out[i], sizeof out[i], "%s/%s.lat%d", dir, label, i);
		snprintf(who, sizeof who, "%d", i);
		char *argv[] = { (char *)self, "--role", (char *)role, path, (char *)url, who, ns,
		                 out[i], NULL };
		pid[i] = spawn(argv);
	}
	for (int i = 0; i < p; i++)
		if (waitpid(pid[i], &status, 0) != pid[i] || !WIFEXITED(status) ||
		    WEXITSTATUS(status)) {
			fprintf(stderr, "%s: a writer failed\n", label);
			exit(1);
		}
	double secs = (double)(now_us() - t0) / 1e6;
	for (int i = 0; i < p; i++) {
		int64_t *v = load(out[i], n);
		memcpy(all + (size_t)i * (size_t)n, v, sizeof *v * (size_t)n);
		free(v);
	}
	report(label, all, p * n, secs, p * n, p);
	free(all);
}

int main(int argc, char **argv)
{
	const char *base = getenv("MEMBANK_TEST_NATS_URL");
	char dir[] = "/tmp/membank-cbench-XXXXXX", url[4096], a[4300], b[4300], ready[4300];
	char sf[4300], af[4300], ns[16], cmd[4400];
	int n = argc > 1 && argv[1][0] != '-' ? atoi(argv[1]) : 1000, k = 200, status;

	if (argc > 2 && !strcmp(argv[1], "--role")) {
		const char *r = argv[2];
		if (!strcmp(r, "write") && argc == 8)
			return role_write(argv[3], argv[4], atoi(argv[5]), atoi(argv[6]), argv[7]);
		if (!strcmp(r, "raw") && argc == 8)
			return role_raw(argv[4], atoi(argv[6]), argv[7]);
		if (!strcmp(r, "watch") && argc == 8)
			return role_watch(argv[3], argv[4], atoi(argv[5]), argv[6], argv[7]);
		if (!strcmp(r, "vwrite") && argc == 7)
			return role_vwrite(argv[3], argv[4], atoi(argv[5]), argv[6]);
		return 2;
	}
	if (!base || !mkdtemp(dir)) {
		fprintf(stderr, "run under tests/nats/cluster.py\n");
		return 77;
	}
	printf("cluster-bench: %d writes per process, ~100-byte pages, 3-replica streams, "
	       "fast durability (the stream's ack)\n", n);
	snprintf(url, sizeof url, "%s/braw", base);
	run_writers(argv[0], dir, url, "raw", 1, n, "raw chained publish, 1 publisher");
	snprintf(url, sizeof url, "%s/b1", base);
	run_writers(argv[0], dir, url, "write", 1, n, "membank put, 1 process");
	snprintf(url, sizeof url, "%s/b4", base);
	run_writers(argv[0], dir, url, "write", 4, n, "membank put, 4 processes");

	/* visibility: machine B watches, machine A writes */
	snprintf(url, sizeof url, "%s/bvis", base);
	snprintf(a, sizeof a, "%s/visA", dir);
	snprintf(b, sizeof b, "%s/visB", dir);
	snprintf(ready, sizeof ready, "%s/ready", dir);
	snprintf(sf, sizeof sf, "%s/seen", dir);
	snprintf(af, sizeof af, "%s/acks", dir);
	snprintf(ns, sizeof ns, "%d", k);
	{
		mb_bank *x;   /* create both machines first, in a process of their own */
		char *argv0[] = { argv[0], "--role", "vwrite", a, url, "0", af, NULL };
		pid_t c = spawn(argv0);
		waitpid(c, &status, 0);
		(void)x;
	}
	char *wargv[] = { argv[0], "--role", "watch", b, url, ns, ready, sf, NULL };
	pid_t w = spawn(wargv);
	for (int i = 0; i < 600 * 100 && access(ready, F_OK); i++)
		usleep(10000);
	usleep(1500 * 1000);   /* its follower starts 1 s after the open */
	char *vargv[] = { argv[0], "--role", "vwrite", a, url, ns, af, NULL };
	pid_t v = spawn(vargv);
	if (waitpid(v, &status, 0) != v || WEXITSTATUS(status) || waitpid(w, &status, 0) != w ||
	    WEXITSTATUS(status)) {
		fprintf(stderr, "visibility run failed\n");
		return 1;
	}
	int64_t *seen = load(sf, k), *ack = load(af, k), *d = malloc(sizeof *d * (size_t)k);
	for (int i = 0; i < k; i++)
		d[i] = seen[i] > ack[i] ? seen[i] - ack[i] : 0;
	qsort(d, (size_t)k, sizeof *d, cmp64);
	printf("%-34s p50 %6.2f ms  p99 %6.2f ms  max %6.2f ms  (n=%d, writes 20 ms apart, "
	       "polled every 0.2 ms)\n", "visibility on another machine", d[k / 2] / 1000.0,
	       d[k * 99 / 100] / 1000.0, d[k - 1] / 1000.0, k);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd))
		return 1;
	return 0;
}
