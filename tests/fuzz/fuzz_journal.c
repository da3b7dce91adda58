/*
 * fuzz_journal.c - libFuzzer target: hostile bytes as journal segments.
 *
 * Input: byte 0 selects the layout.  Bit 0 clear: bytes 1.. are segment 1.
 * Bit 0 set: byte 1 names a second segment (first seq 2 + byte 1) and the
 * rest is split in half between segment 1 and it.  Bit 1 set: the header
 * and record CRCs are recomputed before writing, so that mutations of
 * lengths, seqs and types get past the CRC and reach the later checks.  Then verify, iterate, settle the
 * tail with mbj_next_at, append, and repair run on it, and these must hold
 * (abort otherwise):
 *  - the iterator yields exactly what verify counted, in seq order;
 *  - on a journal verify calls clean, settling the tail and appending one
 *    record gives a clean journal with one more record;
 *  - after mbj_repair, verify is clean (unless the format is newer).
 * The sync state and segments live in a tmpfs directory when there is one,
 * so the fdatasyncs cost nothing.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "journal_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char jdir[96];

static void empty_dir(void)
{
	DIR *d = opendir(jdir);
	struct dirent *e;
	char p[200];

	if (!d)
		return;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.') {
			snprintf(p, sizeof(p), "%s/%s", jdir, e->d_name);
			unlink(p);
		}
	closedir(d);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Make every frame that fits carry a correct CRC (format: segment.c). */
static void fix_crcs(uint8_t *p, size_t n)
{
	if (n < MBJ_SEG_HDR)
		return;
	put32(p + 28, mbj_crc32c(0, p, 28));
	for (size_t off = MBJ_SEG_HDR; n - off >= MBJ_REC_HDR;) {
		uint32_t len = le32(p + off);
		if (len > n - off - MBJ_REC_HDR)
			break;
		uint32_t c = mbj_crc32c(0, p + off, 4);
		put32(p + off + 4, mbj_crc32c(c, p + off + 8, 17 + (size_t)len));
		off += MBJ_REC_HDR + len;
	}
}

static void put_segment(uint64_t first, const uint8_t *data, size_t n,
                        bool fix)
{
	char path[200], name[MBJ_SEG_NAME_LEN + 1];
	uint8_t *p = malloc(n ? n : 1);

	if (!p)
		abort();
	if (n)
		memcpy(p, data, n);
	if (fix)
		fix_crcs(p, n);

	mbj_seg_name(name, first);
	snprintf(path, sizeof(path), "%s/%s", jdir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		abort();
	if (n && write(fd, p, n) != (ssize_t)n)
		abort();
	close(fd);
	free(p);
}

/* Iterate everything; returns the count, *end the last record's end. */
static uint64_t iterate(int *rc, mbj_pos *end)
{
	mbj_iter *it;
	mbj_record rec;
	uint64_t n = 0, sum = 0, prev = 0;

	*rc = mbj_iter_open(jdir, 0, &it);
	if (*rc < 0)
		return 0;
	while ((*rc = mbj_iter_next(it, &rec)) == 1) {
		if (prev && rec.seq != prev + 1)
			abort();
		prev = rec.seq;
		for (uint32_t i = 0; i < rec.len; i++)   /* ASan checks bounds */
			sum += rec.payload[i];
		*end = rec.end;
		n++;
	}
	mbj_iter_close(it);
	return n + (sum & 0);
}

static void settle_and_append(const mbj_report *rep, mbj_pos end)
{
	mbj_options o = { .segment_bytes = MBJ_MIN_SEGMENT_BYTES };
	mbj_log *log;
	mbj_record rec;
	mbj_report after;
	int rc;

	if (mbj_open(jdir, &o, &log) != 0)
		abort();
	if (mbj_next_at(log, &end, &rec) != 0)
		abort();   /* verify was clean: nothing may follow the end */
	if (mbj_append(log, &end, 7, 42, "fuzz", 4, &end) != 0)
		abort();
	mbj_close(log);
	if (mbj_verify(jdir, &after) != 0 || after.torn_tail ||
	    after.records != rep->records + 1 || after.last_seq != end.seq)
		abort();
	if (iterate(&rc, &end) != after.records || rc != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	mbj_report rep;
	mbj_pos end = { 0, 0, 0 };
	int rc;

	if (!jdir[0]) {
		snprintf(jdir, sizeof(jdir), "/dev/shm/mbj-fuzz-XXXXXX");
		if (!mkdtemp(jdir)) {
			snprintf(jdir, sizeof(jdir), "/tmp/mbj-fuzz-XXXXXX");
			if (!mkdtemp(jdir))
				abort();
		}
	}
	if (size < 2)
		return 0;
	empty_dir();
	bool fix = data[0] & 2;
	if (data[0] & 1) {
		size_t half = (size - 2) / 2;
		put_segment(1, data + 2, half, fix);
		put_segment(2 + data[1], data + 2 + half, size - 2 - half, fix);
	} else {
		put_segment(1, data + 1, size - 1, fix);
	}
	int vr = mbj_verify(jdir, &rep);
	uint64_t n = iterate(&rc, &end);
	if (vr == 0 && (rc != 0 || n != rep.records))
		abort();
	if (vr == 0)
		settle_and_append(&rep, end);
	rc = mbj_repair(jdir, &rep);
	if (rc == 0 && mbj_verify(jdir, &rep) != 0)
		abort();
	return 0;
}
