/*
 * snap.c - W6 helper: fill a bank, snapshot it, restore it, one step per
 * process so that the harness can read each step's peak RSS (wait4).
 *
 *   bench-snap available                exit 0 when mb_snapshot and
 *                                       mb_restore are in libmembank
 *   bench-snap prefill BANK N           N pages, fast durability, no eviction
 *   bench-snap snapshot BANK OUTDIR     mb_snapshot(bank, OUTDIR)
 *   bench-snap restore FROMDIR NEWBANK  mb_restore(FROMDIR, NEWBANK)
 *
 * Each step prints one JSON line ({"seconds":..,...}); a missing function
 * prints {"skipped":"not available"} and exits 3.  Snapshot and restore also
 * report "anon_peak_kib": the largest RssAnon of /proc/self/status, sampled
 * every 5 ms by a thread (the heap, without the pages of the LMDB map, which
 * count in the peak RSS of any reader of a large environment, mdb_dump's
 * too), and "hwm_kib": VmHWM, the peak RSS since exec.  The functions are looked
 * up with dlsym so that this builds before they exist.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "membank.h"

typedef int (*snapshot_fn)(mb_bank *, const char *, mb_snapshot_info *);
typedef int (*restore_fn)(const char *, const char *, const mb_options *, unsigned);

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct sampler {
	pthread_t thread;
	atomic_bool stop;
	long anon_peak_kib;      /* written by the thread, read after join */
} sampler;

/* The value in KiB of @field ("RssAnon:") in /proc/self/status, or -1. */
static long status_kib(const char *field)
{
	char line[256];
	size_t n = strlen(field);
	long v = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, field, n) == 0) {
			v = strtol(line + n, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

static void *sample(void *arg)
{
	sampler *s = arg;
	const struct timespec tick = {0, 5000000};

	while (!atomic_load(&s->stop)) {
		long v = status_kib("RssAnon:");

		if (v > s->anon_peak_kib)
			s->anon_peak_kib = v;
		nanosleep(&tick, NULL);
	}
	return NULL;
}

static int sampler_start(sampler *s)
{
	atomic_init(&s->stop, false);
	s->anon_peak_kib = status_kib("RssAnon:");
	return pthread_create(&s->thread, NULL, sample, s);
}

/* Stop the thread; print the memory fields (no leading comma). */
static void sampler_stop(sampler *s)
{
	atomic_store(&s->stop, true);
	pthread_join(s->thread, NULL);
	printf("\"anon_peak_kib\":%ld,\"hwm_kib\":%ld", s->anon_peak_kib, status_kib("VmHWM:"));
}

static void *lookup(const char *name)
{
	void *f = dlsym(RTLD_DEFAULT, name);

	if (!f)
		printf("{\"skipped\":\"not available\"}\n");
	return f;
}

static int fail(mb_bank *b, const char *what, int rc)
{
	fprintf(stderr, "bench-snap: %s: %s: %s\n", what, mb_errname(rc), mb_last_error(b));
	return 1;
}

static int open_fast(const char *path, mb_bank **b)
{
	mb_options o;

	mb_options_init(&o);
	o.durability = MB_DURABILITY_FAST;
	o.map_size = (size_t)4 << 30;
	return mb_open(path, &o, b);
}

static int prefill(const char *path, uint32_t n)
{
	static const char cfg[] = "{\"cache_settings\":{\"max_entries\":0,\"ttl_seconds\":0}}";
	char key[BENCH_KEY_MAX];
	double t0 = now_s();
	mb_bank *b;
	int rc = open_fast(path, &b);

	if (rc != 0)
		return fail(NULL, "mb_open", rc);
	rc = mb_config_update(b, cfg, sizeof cfg - 1);
	for (uint32_t k = 0; rc == 0 && k < n; k++) {
		const bench_value *v = bench_value_get(k);

		bench_key(key, k);
		rc = mb_page_put(b, key, v->json, v->json_len);
	}
	if (rc != 0) {
		fail(b, "prefill", rc);
		mb_close(b);
		return 1;
	}
	mb_close(b);
	printf("{\"pages\":%u,\"seconds\":%.4f}\n", n, now_s() - t0);
	return 0;
}

static int snapshot(const char *path, const char *out)
{
	snapshot_fn fn = (snapshot_fn)lookup("mb_snapshot");
	mb_snapshot_info info = {0};
	sampler sm;
	mb_bank *b;
	double t0;
	int rc;

	if (!fn)
		return 3;
	if ((rc = open_fast(path, &b)) != 0)
		return fail(NULL, "mb_open", rc);
	if (sampler_start(&sm) != 0)
		return 1;
	t0 = now_s();
	rc = fn(b, out, &info);
	t0 = now_s() - t0;
	if (rc != 0) {
		fail(b, "mb_snapshot", rc);
		mb_close(b);
		return 1;
	}
	mb_close(b);
	printf("{\"seconds\":%.4f,\"pages\":%llu,\"bytes\":%llu,", t0,
	       (unsigned long long)info.pages, (unsigned long long)info.bytes);
	sampler_stop(&sm);
	printf("}\n");
	return 0;
}

static int restore(const char *from, const char *path)
{
	restore_fn fn = (restore_fn)lookup("mb_restore");
	sampler sm;
	mb_options o;
	double t0;
	int rc;

	if (!fn)
		return 3;
	mb_options_init(&o);
	o.durability = MB_DURABILITY_FAST;
	o.map_size = (size_t)4 << 30;
	if (sampler_start(&sm) != 0)
		return 1;
	t0 = now_s();
	rc = fn(from, path, &o, 0);
	t0 = now_s() - t0;
	if (rc != 0)
		return fail(NULL, "mb_restore", rc);
	printf("{\"seconds\":%.4f,", t0);
	sampler_stop(&sm);
	printf("}\n");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "available") == 0)
		return dlsym(RTLD_DEFAULT, "mb_snapshot") && dlsym(RTLD_DEFAULT, "mb_restore") ? 0 : 3;
	if (bench_values_init() != 0)
		return 1;
	if (argc == 4 && strcmp(argv[1], "prefill") == 0)
		return prefill(argv[2], (uint32_t)strtoul(argv[3], NULL, 10));
	if (argc == 4 && strcmp(argv[1], "snapshot") == 0)
		return snapshot(argv[2], argv[3]);
	if (argc == 4 && strcmp(argv[1], "restore") == 0)
		return restore(argv[2], argv[3]);
	fprintf(stderr, "usage: bench-snap available | prefill BANK N | "
	                "snapshot BANK OUTDIR | restore FROMDIR NEWBANK\n");
	return 2;
}
