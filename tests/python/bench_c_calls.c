/*
 * bench_c_calls.c - the C side of python/bench_binding.py: the same calls
 * (mb_page_put, mb_page_get) in a tight C loop, to measure what the Python
 * binding adds per call.
 *
 * Usage: bench_c_calls BANK_DIR [N] [full|fast] [wall|cpu]
 * "cpu" times with the process CPU clock (user + system time), which a
 * machine busy with other work disturbs far less than the wall clock.
 * Output, one line per operation, the format bench_binding.py parses:
 *   c mb_page_put <ops> ops <seconds> s <ops/s> ops/s
 *   c mb_page_get <ops> ops <seconds> s <ops/s> ops/s
 *
 * Both loops cycle over 100 page ids with the same 4-property JSON object
 * that the Python benchmark writes, so the work done in the library matches.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "membank.h"

#define PAGES 100

/* The properties bench_binding.py sends, as json.dumps(compact) gives them. */
static const char PROPS[] =
	"{\"title\":\"Benchmark page\",\"status\":\"In progress\","
	"\"tags\":[\"a\",\"b\",\"c\"],\"count\":42}";

static double now(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void page_id(char *buf, size_t cap, long i)
{
	snprintf(buf, cap, "bench-%03ld", i % PAGES);
}

static int run_put(mb_bank *b, long n)
{
	char id[32];

	for (long i = 0; i < n; i++) {
		page_id(id, sizeof id, i);
		if (mb_page_put(b, id, PROPS, sizeof PROPS - 1))
			return -1;
	}
	return 0;
}

static int run_get(mb_bank *b, long n)
{
	char id[32], *json;
	size_t len;

	for (long i = 0; i < n; i++) {
		page_id(id, sizeof id, i);
		if (mb_page_get(b, id, &json, &len))
			return -1;
		mb_free(json);
	}
	return 0;
}

static int timed(const char *name, int (*fn)(mb_bank *, long), mb_bank *b, long n,
                 clockid_t clk)
{
	double t0 = now(clk), dt;

	if (fn(b, n)) {
		fprintf(stderr, "%s: %s\n", name, mb_last_error(b));
		return -1;
	}
	dt = now(clk) - t0;
	printf("c %s %ld ops %.4f s %.0f ops/s\n", name, n, dt, (double)n / dt);
	return 0;
}

int main(int argc, char **argv)
{
	mb_options o;
	mb_bank *b;
	long n = argc > 2 ? strtol(argv[2], NULL, 10) : 20000;
	clockid_t clk = argc > 4 && !strcmp(argv[4], "cpu") ? CLOCK_PROCESS_CPUTIME_ID
	                                                     : CLOCK_MONOTONIC;
	int rc;

	if (argc < 2 || n <= 0) {
		fprintf(stderr, "usage: %s BANK_DIR [N] [full|fast] [wall|cpu]\n", argv[0]);
		return 2;
	}
	mb_options_init(&o);
	if (argc > 3 && !strcmp(argv[3], "fast"))
		o.durability = MB_DURABILITY_FAST;
	if (mb_open(argv[1], &o, &b)) {
		fprintf(stderr, "%s: %s\n", argv[1], mb_last_error(NULL));
		return 1;
	}
	rc = timed("mb_page_put", run_put, b, n, clk) ||
	     timed("mb_page_get", run_get, b, n, clk);
	mb_close(b);
	return rc ? 1 : 0;
}
