/*
 * bench.c - journal-bench: durable appends per second (not a test).
 *
 *   journal-bench DIR [RECORDS] [PROCS...]
 *
 * For each P in PROCS (default 1 4): P processes each append RECORDS/P
 * records of 250 bytes (settle + append under an flock standing in for the
 * store's writer lock, then mbj_sync outside it).  Then the baselines, one
 * process: write()+fdatasync of the same 250 bytes to a growing file, and
 * pwrite()+fdatasync over a zero-filled, pre-synced file.  DIR is created
 * and must not exist.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "journal.h"

#define REC 250

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int child(const char *jdir, const char *lockpath, mbj_pos *shared,
                 long count)
{
	uint8_t buf[REC];
	mbj_log *log;
	mbj_record rec;
	int lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	memset(buf, 0x5a, sizeof(buf));
	if (lockfd < 0 || mbj_open(jdir, NULL, &log) != 0)
		return 2;
	for (long i = 0; i < count; i++) {
		mbj_pos end;
		flock(lockfd, LOCK_EX);
		end = *shared;
		if (mbj_next_at(log, &end, &rec) != 0 ||
		    mbj_append(log, &end, 1, 0, buf, REC, &end) != 0)
			return 3;
		*shared = end;
		flock(lockfd, LOCK_UN);
		if (mbj_sync(log, end.seq) != 0)
			return 4;
	}
	mbj_close(log);
	return 0;
}

static int run_journal(const char *dir, long records, int procs)
{
	char jdir[512], lockpath[512];
	mbj_pos *shared = mmap(NULL, sizeof(*shared), PROT_READ | PROT_WRITE,
	                       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shared == MAP_FAILED)
		return 1;
	memset(shared, 0, sizeof(*shared));
	snprintf(jdir, sizeof(jdir), "%s/journal-p%d", dir, procs);
	snprintf(lockpath, sizeof(lockpath), "%s/lock-p%d", dir, procs);
	double t0 = now_s();
	for (int p = 0; p < procs; p++)
		if (fork() == 0)
			_exit(child(jdir, lockpath, shared, records / procs));
	int bad = 0, status;
	for (int p = 0; p < procs; p++)
		if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
			bad = 1;
	double dt = now_s() - t0;
	printf("journal append+mbj_sync  P=%d  %ld records  %.0f ops/s%s\n",
	       procs, records / procs * procs,
	       (double)(records / procs * procs) / dt, bad ? "  (FAILED)" : "");
	munmap(shared, sizeof(*shared));
	return bad;
}

static int run_raw(const char *dir, long records, bool prealloc)
{
	char path[512];
	uint8_t buf[REC];

	memset(buf, 0x5a, sizeof(buf));
	snprintf(path, sizeof(path), "%s/raw-%s", dir, prealloc ? "pre" : "grow");
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return 1;
	if (prealloc) {
		uint8_t *z = calloc(1, (size_t)records * REC);
		if (!z || write(fd, z, (size_t)records * REC) < 0 || fdatasync(fd))
			return 1;
		free(z);
	}
	double t0 = now_s();
	for (long i = 0; i < records; i++) {
		ssize_t w = prealloc ? pwrite(fd, buf, REC, (off_t)(i * REC))
		                     : write(fd, buf, REC);
		if (w != REC || fdatasync(fd) != 0)
			return 1;
	}
	double dt = now_s() - t0;
	printf("raw %s+fdatasync%s  P=1  %ld records  %.0f ops/s\n",
	       prealloc ? "pwrite" : "write", prealloc ? " (zero-filled file)" : "",
	       records, (double)records / dt);
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s DIR [RECORDS] [PROCS...]\n", argv[0]);
		return 2;
	}
	const char *dir = argv[1];
	long records = argc > 2 ? atol(argv[2]) : 20000;
	if (records < 1 || mkdir(dir, 0700) < 0) {
		fprintf(stderr, "%s: bad record count, or cannot create %s\n",
		        argv[0], dir);
		return 2;
	}
	int rc = 0;
	if (argc > 3)
		for (int i = 3; i < argc; i++)
			rc |= run_journal(dir, records, atoi(argv[i]));
	else
		rc = run_journal(dir, records, 1) | run_journal(dir, records, 4);
	rc |= run_raw(dir, records, false);
	rc |= run_raw(dir, records, true);
	return rc;
}
