/*
 * jtest.h - helpers shared by the journal tests: temp directories, a
 * deterministic payload per seq, appending and reading back.
 */
#ifndef MEMBANK_JTEST_H
#define MEMBANK_JTEST_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "journal_int.h"

#define JT_SMALL_SEG MBJ_MIN_SEGMENT_BYTES

static inline int jt_rm_one(const char *p, const struct stat *st, int flag,
                            struct FTW *f)
{
	(void)st; (void)flag; (void)f;
	return remove(p);
}

static inline void jt_rm_rf(const char *dir)
{
	nftw(dir, jt_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh directory on @fs; the journal goes in "<base>/j". */
static inline void jt_mkdir_on(const char *fs, char base[64], char jdir[80])
{
	snprintf(base, 64, "%s/mbj-test-XXXXXX", fs);
	assert_non_null(mkdtemp(base));
	snprintf(jdir, 80, "%s/j", base);
}

/* Tests of format and logic run on tmpfs when there is one: there an
 * fdatasync costs nothing, so thousands of cases stay within seconds on a
 * busy disk.  Tests of durability itself use jt_mkdir_on("/tmp", ...). */
static inline void jt_mkdir(char base[64], char jdir[80])
{
	struct stat st;
	jt_mkdir_on(stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) &&
	            access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp",
	            base, jdir);
}

static inline void jt_path(char out[128], const char *jdir, uint64_t first)
{
	char name[MBJ_SEG_NAME_LEN + 1];
	mbj_seg_name(name, first);
	snprintf(out, 128, "%s/%s", jdir, name);
}

/* Payload of record @seq: 0..300 bytes, content from the seq. */
static inline uint32_t jt_payload(uint64_t seq, uint8_t *buf)
{
	uint32_t len = (uint32_t)((seq * 37) % 301);
	for (uint32_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(seq * 7 + i * 13 + 1);
	return len;
}

static inline uint8_t jt_type(uint64_t seq)
{
	return (uint8_t)(1 + seq % 255);
}

static inline int64_t jt_ts(uint64_t seq)
{
	return 1764000000000000ll + (int64_t)seq;
}

/* Settle (expect nothing pending) and append the next record. */
static inline int jt_append(mbj_log *log, mbj_pos *end)
{
	uint8_t buf[512];
	mbj_record rec;
	int r = mbj_next_at(log, end, &rec);
	if (r != 0)
		return r < 0 ? r : -100;
	uint64_t seq = end->seq + 1;
	uint32_t len = jt_payload(seq, buf);
	return mbj_append(log, end, jt_type(seq), jt_ts(seq), buf, len, end);
}

static inline bool jt_record_ok(const mbj_record *rec)
{
	uint8_t buf[512];
	uint32_t len = jt_payload(rec->seq, buf);
	return rec->len == len && rec->type == jt_type(rec->seq) &&
	       rec->ts_us == jt_ts(rec->seq) &&
	       (len == 0 || memcmp(rec->payload, buf, len) == 0);
}

/* Read everything: the number of records, each checked against what was
 * written (a record that differs fails the test), *rc the final code. */
static inline uint64_t jt_read_all(const char *jdir, int *rc, mbj_pos *last)
{
	mbj_iter *it;
	mbj_record rec;
	uint64_t n = 0;
	int r = mbj_iter_open(jdir, 0, &it);

	if (r < 0) {
		*rc = r;
		return 0;
	}
	while ((r = mbj_iter_next(it, &rec)) == 1) {
		n++;
		assert_int_equal(rec.seq, n);
		assert_true(jt_record_ok(&rec));
		if (last)
			*last = rec.end;
	}
	*rc = r;
	mbj_iter_close(it);
	return n;
}

static inline void jt_write_file(const char *path, const void *buf, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, n), (ssize_t)n);
	close(fd);
}

static inline uint8_t *jt_read_file(const char *path, size_t *n)
{
	struct stat st;
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	uint8_t *buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(mbj_pread_full(fd, buf, (size_t)st.st_size, 0),
	                 st.st_size);
	close(fd);
	*n = (size_t)st.st_size;
	return buf;
}

/* Write @count records to a new journal in @jdir; ends[i] is the end of
 * record i + 1 (ends may be NULL). */
static inline void jt_build(const char *jdir, uint64_t seg_bytes,
                            uint64_t count, mbj_pos *ends)
{
	mbj_options o = { .segment_bytes = seg_bytes };
	mbj_log *log;
	mbj_pos end = { 0, 0, 0 };
	assert_int_equal(mbj_open(jdir, &o, &log), 0);
	for (uint64_t i = 0; i < count; i++) {
		assert_int_equal(jt_append(log, &end), 0);
		if (ends)
			ends[i] = end;
	}
	mbj_close(log);
}

#endif /* MEMBANK_JTEST_H */
