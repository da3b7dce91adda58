/*
 * test_journal.c - format, writer, reader, torn tails, bit flips, repair.
 */
#include "jtest.h"

static void test_crc32c_vectors(void **state)
{
	(void)state;
	uint8_t buf[1024];

	assert_int_equal(mbj_crc32c(0, "123456789", 9), 0xE3069283u);
	assert_int_equal(mbj_crc32c_sw(0, "123456789", 9), 0xE3069283u);
	assert_int_equal(mbj_crc32c(0, buf, 0), 0);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 131 + 7);
	for (size_t off = 0; off < 9; off++)
		for (size_t n = 0; n + off <= sizeof(buf); n += 37) {
			uint32_t hw = mbj_crc32c(0, buf + off, n);
			assert_int_equal(hw, mbj_crc32c_sw(0, buf + off, n));
			/* continuing equals one pass */
			uint32_t half = mbj_crc32c(0, buf + off, n / 2);
			assert_int_equal(mbj_crc32c_sw(half, buf + off + n / 2,
			                               n - n / 2), hw);
		}
}

static void test_roundtrip_across_rolls(void **state)
{
	(void)state;
	char base[64], jdir[80];
	mbj_pos ends[2000], last;
	mbj_usage u;
	int rc;

	jt_mkdir(base, jdir);
	jt_build(jdir, JT_SMALL_SEG, 2000, ends);
	assert_int_equal(jt_read_all(jdir, &rc, &last), 2000);
	assert_int_equal(rc, 0);
	assert_memory_equal(&last, &ends[1999], sizeof(last));
	/* every position handed out is where the reader ends the record */
	mbj_iter *it;
	mbj_record rec;
	assert_int_equal(mbj_iter_open(jdir, 0, &it), 0);
	for (int i = 0; i < 2000; i++) {
		assert_int_equal(mbj_iter_next(it, &rec), 1);
		assert_memory_equal(&rec.end, &ends[i], sizeof(rec.end));
		assert_true(rec.end.segment <= rec.seq);
	}
	assert_int_equal(mbj_iter_next(it, &rec), 0);
	mbj_iter_close(it);
	assert_int_equal(mbj_usage_of(jdir, &u), 0);
	assert_true(u.segments >= 4);
	assert_int_equal(u.first_seq, 1);
	assert_int_equal(ends[1999].segment, ends[1999].segment);
	mbj_report rep;
	assert_int_equal(mbj_verify(jdir, &rep), 0);
	assert_int_equal(rep.records, 2000);
	assert_int_equal(rep.segments, u.segments);
	assert_int_equal(rep.first_seq, 1);
	assert_int_equal(rep.last_seq, 2000);
	assert_false(rep.torn_tail);
	assert_false(rep.damaged);
	jt_rm_rf(base);
}

static void test_iter_from_seq(void **state)
{
	(void)state;
	char base[64], jdir[80];
	mbj_iter *it;
	mbj_record rec;
	uint64_t removed;

	jt_mkdir(base, jdir);
	jt_build(jdir, JT_SMALL_SEG, 1500, NULL);
	assert_int_equal(mbj_iter_open(jdir, 1000, &it), 0);
	assert_int_equal(mbj_iter_next(it, &rec), 1);
	assert_int_equal(rec.seq, 1000);
	assert_true(jt_record_ok(&rec));
	mbj_iter_close(it);
	assert_int_equal(mbj_remove_before(jdir, 1000, &removed), 0);
	assert_true(removed >= 1);
	assert_int_equal(mbj_iter_open(jdir, 1, &it), MBJ_EINVAL);
	assert_null(it);
	assert_int_equal(mbj_iter_open(jdir, 1000, &it), 0);
	assert_int_equal(mbj_iter_next(it, &rec), 1);
	assert_int_equal(rec.seq, 1000);
	mbj_iter_close(it);
	jt_rm_rf(base);
}

static void test_iter_sees_later_appends(void **state)
{
	(void)state;
	char base[64], jdir[80];
	mbj_log *log;
	mbj_iter *it;
	mbj_record rec;
	mbj_pos end = { 0, 0, 0 };

	jt_mkdir(base, jdir);
	assert_int_equal(mbj_open(jdir, NULL, &log), 0);
	assert_int_equal(mbj_iter_open(jdir, 0, &it), 0);
	assert_int_equal(mbj_iter_next(it, &rec), 0);   /* empty */
	assert_int_equal(jt_append(log, &end), 0);
	assert_int_equal(mbj_iter_next(it, &rec), 1);
	assert_int_equal(rec.seq, 1);
	assert_int_equal(mbj_iter_next(it, &rec), 0);
	assert_int_equal(jt_append(log, &end), 0);
	assert_int_equal(mbj_iter_next(it, &rec), 1);
	assert_int_equal(rec.seq, 2);
	assert_true(jt_record_ok(&rec));
	mbj_iter_close(it);
	mbj_close(log);
	jt_rm_rf(base);
}

static void test_next_at_pending_record(void **state)
{
	(void)state;
	char base[64], jdir[80];
	mbj_log *a, *b;
	mbj_pos end = { 0, 0, 0 }, committed, six;
	mbj_record rec;

	jt_mkdir(base, jdir);
	assert_int_equal(mbj_open(jdir, NULL, &a), 0);
	assert_int_equal(mbj_next_at(a, &end, &rec), 0);   /* empty journal */
	for (int i = 0; i < 5; i++)
		assert_int_equal(jt_append(a, &end), 0);
	assert_int_equal(mbj_next_at(a, &end, &rec), 0);
	committed = end;
	/* another handle appends seq 6 but "dies" before committing */
	assert_int_equal(mbj_open(jdir, NULL, &b), 0);
	six = end;
	assert_int_equal(jt_append(b, &six), 0);
	mbj_close(b);
	assert_int_equal(mbj_next_at(a, &committed, &rec), 1);
	assert_int_equal(rec.seq, 6);
	assert_true(jt_record_ok(&rec));
	assert_memory_equal(&rec.end, &six, sizeof(six));
	mbj_pos after = rec.end;
	assert_int_equal(mbj_next_at(a, &after, &rec), 0);
	mbj_close(a);
	jt_rm_rf(base);
}

static void test_next_at_across_roll(void **state)
{
	(void)state;
	char base[64], jdir[80];
	mbj_options o = { .segment_bytes = JT_SMALL_SEG };
	mbj_log *log;
	mbj_pos end = { 0, 0, 0 }, before;
	mbj_record rec;

	jt_mkdir(base, jdir);
	assert_int_equal(mbj_open(jdir, &o, &log), 0);
	do {
		before = end;
		assert_int_equal(jt_append(log, &end), 0);
	} while (end.segment == before.segment || before.segment == 0);
	assert_int_equal(end.segment, end.seq);
	assert_int_equal(end.offset, MBJ_SEG_HDR + MBJ_REC_HDR +
	                             jt_payload(end.seq, (uint8_t[512]){ 0 }));
	assert_int_equal(mbj_next_at(log, &before, &rec), 1);
	assert_int_equal(rec.seq, end.seq);
	assert_memory_equal(&rec.end, &end, sizeof(end));
	assert_int_equal(mbj_next_at(log, &end, &rec), 0);
	mbj_close(log);
	jt_rm_rf(base);
}

static void test_append_bad_arguments(void **state)
{
	(void)state;
	char base[64], jdir[80];
	mbj_log *log;
	mbj_pos end = { 0, 0, 0 }, out, bad = { 5, 10, 7 };
	uint8_t x = 1;

	jt_mkdir(base, jdir);
	assert_int_equal(mbj_open(jdir, NULL, &log), 0);
	assert_int_equal(mbj_append(log, &end, 0, 0, &x, 1, &out), MBJ_EINVAL);
	assert_int_equal(mbj_append(log, &end, 1, 0, &x, MBJ_MAX_PAYLOAD + 1,
	                            &out), MBJ_EINVAL);
	assert_int_equal(mbj_append(log, &bad, 1, 0, &x, 1, &out), MBJ_EINVAL);
	assert_true(strlen(mbj_errmsg(log)) > 0);
	assert_int_equal(mbj_append(log, &end, 1, 0, &x, 1, &out), 0);
	/* appending again at the same end (next_at skipped) is refused */
	mbj_pos again;
	assert_int_equal(mbj_append(log, &end, 1, 0, &x, 1, &again), MBJ_EINVAL);
	mbj_close(log);
	mbj_options tiny = { .segment_bytes = 4096 };
	assert_int_equal(mbj_open(jdir, &tiny, &log), MBJ_EINVAL);
	jt_rm_rf(base);
}

static void test_large_records(void **state)
{
	(void)state;
	char base[64], jdir[80];
	mbj_options o = { .segment_bytes = JT_SMALL_SEG };
	mbj_log *log;
	mbj_pos end = { 0, 0, 0 };
	mbj_record rec;
	const uint32_t sizes[] = { 1u << 20, MBJ_MAX_PAYLOAD, 10 };
	uint8_t *big = malloc(MBJ_MAX_PAYLOAD);

	assert_non_null(big);
	for (uint32_t i = 0; i < MBJ_MAX_PAYLOAD; i++)
		big[i] = (uint8_t)(i * 31 + (i >> 16));
	jt_mkdir(base, jdir);
	assert_int_equal(mbj_open(jdir, &o, &log), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(mbj_next_at(log, &end, &rec), 0);
		assert_int_equal(mbj_append(log, &end, 2, 0, big, sizes[i], &end), 0);
		assert_int_equal(end.segment, end.seq);   /* each rolled */
	}
	mbj_close(log);
	mbj_iter *it;
	assert_int_equal(mbj_iter_open(jdir, 0, &it), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(mbj_iter_next(it, &rec), 1);
		assert_int_equal(rec.len, sizes[i]);
		assert_memory_equal(rec.payload, big, sizes[i]);
	}
	assert_int_equal(mbj_iter_next(it, &rec), 0);
	mbj_iter_close(it);
	free(big);
	jt_rm_rf(base);
}

static void test_end_past_file_is_corrupt(void **state)
{
	(void)state;
	char base[64], jdir[80];
	mbj_pos ends[3];
	mbj_log *log;
	mbj_record rec;

	jt_mkdir(base, jdir);
	jt_build(jdir, JT_SMALL_SEG, 3, ends);
	mbj_pos far = { 1, JT_SMALL_SEG + 100, 3 };
	assert_int_equal(mbj_open(jdir, NULL, &log), 0);
	assert_int_equal(mbj_next_at(log, &far, &rec), MBJ_ECORRUPT);
	assert_non_null(strstr(mbj_errmsg(log), "past the end"));
	mbj_close(log);
	jt_rm_rf(base);
}

/* Damage modes for the torn-tail test. */
enum { CUT_TRUNCATE, CUT_ZEROS, CUT_GARBAGE };

static void damage_tail(const char *path, const uint8_t *orig, size_t size,
                        uint64_t off, uint64_t end, int mode)
{
	uint8_t *img = malloc(size);
	assert_non_null(img);
	memcpy(img, orig, size);
	for (uint64_t i = off; i < end; i++)
		img[i] = mode == CUT_ZEROS ? 0 : (uint8_t)(i * 2654435761u >> 13 | 1);
	jt_write_file(path, img, mode == CUT_TRUNCATE ? (size_t)off : size);
	free(img);
}

static void check_torn_case(const char *jdir, const char *path,
                            const mbj_pos *ends, uint64_t n, uint64_t off)
{
	uint64_t whole = 0;
	int rc;
	mbj_report rep;

	while (whole < n && ends[whole].offset <= off)
		whole++;
	assert_int_equal(jt_read_all(jdir, &rc, NULL), whole);
	assert_int_equal(rc, 0);
	assert_int_equal(mbj_verify(jdir, &rep), 0);
	assert_false(rep.damaged);
	assert_int_equal(rep.records, whole);
	/* a simulated reboot: the next writer starts from a fresh sync.shm */
	char shm[128];
	snprintf(shm, sizeof(shm), "%s/sync.shm", jdir);
	unlink(shm);
	mbj_options o = { .segment_bytes = JT_SMALL_SEG };
	mbj_log *log;
	mbj_record rec;
	mbj_pos end = ends[whole - 1];
	assert_int_equal(mbj_open(jdir, &o, &log), 0);
	assert_int_equal(mbj_next_at(log, &end, &rec), 0);
	assert_int_equal(jt_append(log, &end), 0);
	mbj_close(log);
	assert_int_equal(jt_read_all(jdir, &rc, NULL), whole + 1);
	assert_int_equal(rc, 0);
	assert_int_equal(mbj_verify(jdir, &rep), 0);
	assert_false(rep.torn_tail);
	(void)path;
}

static void test_torn_tail_every_offset(void **state)
{
	(void)state;
	char base[64], jdir[80], path[128];
	mbj_pos ends[24];
	size_t size;
	const uint64_t n = 24;

	jt_mkdir(base, jdir);
	jt_build(jdir, JT_SMALL_SEG, n, ends);
	jt_path(path, jdir, 1);
	uint8_t *orig = jt_read_file(path, &size);
	uint64_t from = ends[n - 4].offset, to = ends[n - 1].offset;
	int torn_seen = 0;
	for (int mode = CUT_TRUNCATE; mode <= CUT_GARBAGE; mode++)
		for (uint64_t off = from; off < to; off++) {
			damage_tail(path, orig, size, off, to, mode);
			mbj_report rep;
			assert_int_equal(mbj_verify(jdir, &rep), 0);
			torn_seen += rep.torn_tail;
			check_torn_case(jdir, path, ends, n, off);
		}
	assert_true(torn_seen > (int)(to - from));
	free(orig);
	jt_rm_rf(base);
}

/* Every yielded record must be one that was written, unchanged. */
static int read_checked(const char *jdir, uint64_t *count)
{
	mbj_iter *it;
	mbj_record rec;
	int r = mbj_iter_open(jdir, 0, &it);

	*count = 0;
	if (r < 0)
		return r;
	while ((r = mbj_iter_next(it, &rec)) == 1) {
		assert_int_equal(rec.seq, *count + 1);
		assert_true(jt_record_ok(&rec));
		(*count)++;
	}
	mbj_iter_close(it);
	return r;
}

static void test_bitflip_every_bit(void **state)
{
	(void)state;
	char base[64], jdir[80], path[128];
	mbj_pos ends[8];
	size_t size;

	jt_mkdir(base, jdir);
	jt_build(jdir, JT_SMALL_SEG, 8, ends);
	jt_path(path, jdir, 1);
	uint8_t *img = jt_read_file(path, &size);
	size_t span = (size_t)ends[7].offset + 40;
	for (size_t bit = 0; bit < span * 8; bit++) {
		img[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		jt_write_file(path, img, span);
		img[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		uint64_t got, at = bit / 8;
		int r = read_checked(jdir, &got);
		if (at < MBJ_SEG_HDR) {
			assert_true(r == MBJ_ECORRUPT || r == MBJ_EVERSION);
			continue;
		}
		uint64_t k = 0;   /* index of the damaged record */
		while (k < 8 && ends[k].offset <= at)
			k++;
		if (k < 7) {      /* damage followed by valid records */
			assert_int_equal(r, MBJ_ECORRUPT);
			assert_int_equal(got, k);
			mbj_report rep;
			assert_int_equal(mbj_verify(jdir, &rep), MBJ_ECORRUPT);
			assert_true(rep.damaged);
			assert_int_equal(rep.damage_seq, k + 1);
			assert_int_equal(rep.damage_offset,
			                 k ? ends[k - 1].offset : MBJ_SEG_HDR);
			assert_string_equal(rep.damage_segment, "00000000000000000001.jnl");
			assert_true(strlen(rep.reason) > 0);
		} else {          /* the last record, or past it: a torn tail */
			assert_int_equal(r, 0);
			assert_int_equal(got, k == 7 ? 7 : 8);
		}
	}
	free(img);
	jt_rm_rf(base);
}

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void test_random_bitflips(void **state)
{
	(void)state;
	char base[64], jdir[80], path[128];
	enum { N = 1500 };
	mbj_pos *ends = calloc(N, sizeof(*ends));
	size_t size;
	uint64_t s = 0x9E3779B97F4A7C15ull;

	jt_mkdir(base, jdir);
	jt_build(jdir, 4ull << 20, N, ends);
	jt_path(path, jdir, 1);
	uint8_t *img = jt_read_file(path, &size);
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	for (int round = 0; round < 1500; round++) {
		uint64_t at = MBJ_SEG_HDR + rng_next(&s) % (ends[N - 1].offset -
		                                             MBJ_SEG_HDR);
		uint8_t b = img[at] ^ (uint8_t)(1u << (rng_next(&s) % 8));
		assert_int_equal(pwrite(fd, &b, 1, (off_t)at), 1);
		uint64_t got;
		int r = read_checked(jdir, &got);
		uint64_t k = 0;
		while (ends[k].offset <= at)
			k++;
		assert_int_equal(got, k);
		assert_int_equal(r, k < N - 1 ? MBJ_ECORRUPT : 0);
		assert_int_equal(pwrite(fd, img + at, 1, (off_t)at), 1);
	}
	close(fd);
	free(img);
	free(ends);
	jt_rm_rf(base);
}

/* Offset where record i + 1 starts. */
static uint64_t rec_start(const mbj_pos *ends, int i)
{
	return i && ends[i - 1].segment == ends[i].segment ? ends[i - 1].offset
	                                                   : MBJ_SEG_HDR;
}

static void corrupt_byte(const char *path, uint64_t at)
{
	int fd = open(path, O_RDWR);
	uint8_t b;
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, (off_t)at), 1);
	b ^= 0x40;
	assert_int_equal(pwrite(fd, &b, 1, (off_t)at), 1);
	close(fd);
}

static void test_middle_damage_reported(void **state)
{
	(void)state;
	char base[64], jdir[80], path[128];
	mbj_pos ends[1200];
	mbj_report rep;
	int rc;

	jt_mkdir(base, jdir);
	jt_build(jdir, JT_SMALL_SEG, 1200, ends);
	/* seq 500's payload, in the middle of some segment */
	uint64_t seg = ends[499].segment;
	jt_path(path, jdir, seg);
	corrupt_byte(path, rec_start(ends, 499) + MBJ_REC_HDR + 3);
	assert_int_equal(mbj_verify(jdir, &rep), MBJ_ECORRUPT);
	assert_true(rep.damaged);
	assert_int_equal(rep.damage_seq, 500);
	assert_int_equal(rep.damage_offset, rec_start(ends, 499));
	assert_string_equal(rep.reason, "crc mismatch");
	char name[MBJ_SEG_NAME_LEN + 1];
	mbj_seg_name(name, seg);
	assert_string_equal(rep.damage_segment, name);
	assert_int_equal(jt_read_all(jdir, &rc, NULL), 499);
	assert_int_equal(rc, MBJ_ECORRUPT);
	jt_rm_rf(base);
}

static void test_repair_torn_tail(void **state)
{
	(void)state;
	char base[64], jdir[80], path[128];
	mbj_pos ends[30];
	mbj_report rep;
	int rc;

	jt_mkdir(base, jdir);
	jt_build(jdir, JT_SMALL_SEG, 30, ends);
	jt_path(path, jdir, 1);
	int fd = open(path, O_RDWR);
	assert_int_equal(pwrite(fd, "\x55\x01garbage", 9, (off_t)ends[29].offset), 9);
	close(fd);
	assert_int_equal(mbj_verify(jdir, &rep), 0);
	assert_true(rep.torn_tail);
	assert_int_equal(mbj_repair(jdir, &rep), 0);
	assert_non_null(strstr(rep.action, "cut"));
	assert_int_equal(mbj_verify(jdir, &rep), 0);
	assert_false(rep.torn_tail);
	assert_int_equal(rep.last_seq, 30);
	assert_int_equal(jt_read_all(jdir, &rc, NULL), 30);
	jt_rm_rf(base);
}

static void test_repair_middle_damage(void **state)
{
	(void)state;
	char base[64], jdir[80], path[160];
	mbj_pos ends[1200], last;
	mbj_report rep;
	struct stat st;
	int rc;

	jt_mkdir(base, jdir);
	jt_build(jdir, JT_SMALL_SEG, 1200, ends);
	uint64_t seg = ends[499].segment;
	jt_path(path, jdir, seg);
	corrupt_byte(path, rec_start(ends, 499) + 4);   /* seq 500's crc */
	assert_int_equal(mbj_repair(jdir, &rep), 0);
	assert_non_null(strstr(rep.action, "aside"));
	strcat(path, ".damaged");
	assert_int_equal(stat(path, &st), 0);   /* never deleted */
	jt_path(path, jdir, ends[1199].segment);
	strcat(path, ".damaged");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(mbj_verify(jdir, &rep), 0);
	assert_false(rep.torn_tail);
	assert_int_equal(rep.last_seq, 499);
	assert_int_equal(jt_read_all(jdir, &rc, &last), 499);
	assert_int_equal(rc, 0);
	assert_memory_equal(&last, &ends[498], sizeof(last));
	/* the journal goes on from there */
	mbj_log *log;
	mbj_options o = { .segment_bytes = JT_SMALL_SEG };
	assert_int_equal(mbj_open(jdir, &o, &log), 0);
	for (int i = 0; i < 300; i++)
		assert_int_equal(jt_append(log, &last), 0);
	mbj_close(log);
	assert_int_equal(jt_read_all(jdir, &rc, NULL), 799);
	assert_int_equal(rc, 0);
	jt_rm_rf(base);
}

static void write_header(const char *jdir, const char *magic, uint32_t version)
{
	char path[128];
	uint8_t h[MBJ_SEG_HDR + 64] = { 0 };

	mbj_seg_header(h, 1);
	memcpy(h, magic, 8);
	h[8] = (uint8_t)version;
	uint32_t c = mbj_crc32c(0, h, 28);
	memcpy(h + 28, &c, 4);
	mkdir(jdir, 0700);
	jt_path(path, jdir, 1);
	jt_write_file(path, h, sizeof(h));
}

static void test_bad_magic_and_newer_version(void **state)
{
	(void)state;
	char base[64], jdir[80];
	mbj_report rep;
	int rc;

	jt_mkdir(base, jdir);
	write_header(jdir, "MBJRNX\r\n", 1);
	assert_int_equal(mbj_verify(jdir, &rep), MBJ_ECORRUPT);
	assert_true(rep.damaged);
	assert_string_equal(rep.reason, "bad magic");
	jt_read_all(jdir, &rc, NULL);
	assert_int_equal(rc, MBJ_ECORRUPT);
	write_header(jdir, MBJ_MAGIC, 2);
	assert_int_equal(mbj_verify(jdir, &rep), MBJ_EVERSION);
	assert_false(rep.damaged);
	jt_read_all(jdir, &rc, NULL);
	assert_int_equal(rc, MBJ_EVERSION);
	write_header(jdir, MBJ_MAGIC, 1);
	assert_int_equal(mbj_verify(jdir, &rep), 0);
	jt_rm_rf(base);
}

static void test_remove_before_and_usage(void **state)
{
	(void)state;
	char base[64], jdir[80];
	mbj_pos ends[1500];
	mbj_usage u0, u1;
	uint64_t removed;

	jt_mkdir(base, jdir);
	jt_build(jdir, JT_SMALL_SEG, 1500, ends);
	assert_int_equal(mbj_usage_of(jdir, &u0), 0);
	assert_true(u0.segments >= 4);
	assert_true(u0.bytes >= ends[1499].offset);
	/* the third segment's first seq: everything before it can go */
	uint64_t third = 0, segs = 0, prev = 0;
	for (int i = 0; i < 1500 && segs < 3; i++)
		if (ends[i].segment != prev) {
			prev = ends[i].segment;
			third = prev;
			segs++;
		}
	assert_int_equal(mbj_remove_before(jdir, third, &removed), 0);
	assert_int_equal(removed, 2);
	assert_int_equal(mbj_usage_of(jdir, &u1), 0);
	assert_int_equal(u1.segments, u0.segments - 2);
	assert_int_equal(u1.first_seq, third);
	assert_true(u1.bytes < u0.bytes);
	assert_int_equal(mbj_remove_before(jdir, UINT64_MAX, &removed), 0);
	assert_int_equal(removed, u1.segments - 1);   /* never the newest */
	assert_int_equal(mbj_usage_of(jdir, &u1), 0);
	assert_int_equal(u1.segments, 1);
	assert_int_equal(u1.first_seq, ends[1499].segment);
	jt_rm_rf(base);
}

static void test_crashed_roll_is_dropped(void **state)
{
	(void)state;
	char base[64], jdir[80], path[128];
	mbj_pos ends[5], end;
	mbj_log *log;
	mbj_record rec;
	struct stat st;
	int rc;

	jt_mkdir(base, jdir);
	jt_build(jdir, JT_SMALL_SEG, 5, ends);
	jt_path(path, jdir, 6);
	jt_write_file(path, (uint8_t[100]){ 0 }, 100);   /* header never landed */
	mbj_report rep;
	assert_int_equal(mbj_verify(jdir, &rep), 0);
	assert_true(rep.torn_tail);
	end = ends[4];
	assert_int_equal(mbj_open(jdir, NULL, &log), 0);
	assert_int_equal(mbj_next_at(log, &end, &rec), 0);
	assert_int_equal(stat(path, &st), -1);
	assert_int_equal(jt_append(log, &end), 0);
	assert_int_equal(end.segment, 1);
	mbj_close(log);
	assert_int_equal(jt_read_all(jdir, &rc, NULL), 6);
	assert_int_equal(rc, 0);
	jt_rm_rf(base);
}

static void test_stale_bytes_after_end_are_zeroed(void **state)
{
	(void)state;
	char base[64], jdir[80], path[128], shm[128];
	mbj_pos ends[5], end;
	mbj_log *log;
	mbj_record rec;
	uint8_t junk[200], back[200];
	int rc;

	jt_mkdir(base, jdir);
	jt_build(jdir, JT_SMALL_SEG, 5, ends);
	jt_path(path, jdir, 1);
	/* a power cut kept a later page of a torn record but not its start */
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i | 0x80);
	int fd = open(path, O_RDWR);
	assert_int_equal(pwrite(fd, junk, sizeof(junk), (off_t)ends[4].offset + 300),
	                 (ssize_t)sizeof(junk));
	assert_int_equal(jt_read_all(jdir, &rc, NULL), 5);
	assert_int_equal(rc, 0);
	snprintf(shm, sizeof(shm), "%s/sync.shm", jdir);
	unlink(shm);    /* the reboot */
	end = ends[4];
	assert_int_equal(mbj_open(jdir, NULL, &log), 0);
	assert_int_equal(mbj_next_at(log, &end, &rec), 0);
	mbj_close(log);
	assert_int_equal(pread(fd, back, sizeof(back), (off_t)ends[4].offset + 300),
	                 (ssize_t)sizeof(back));
	for (size_t i = 0; i < sizeof(back); i++)
		assert_int_equal(back[i], 0);
	close(fd);
	jt_rm_rf(base);
}

/* A power loss with several writers leaves, in the newest segment, a
 * record that is not whole followed by whole ones (none of them covered by
 * a completed fdatasync).  The first open of the next boot cuts from the
 * hole when it lies at or after durable.mark (keeping the bytes aside);
 * damage before the mark is rot and stays for the readers to refuse. */
#define HOLE_N 9000
static void hole_journal(const char *jdir, mbj_pos *ends, mbj_pos *mark)
{
	mbj_options o = { .segment_bytes = 8u << 20 };
	mbj_log *log;
	mbj_pos end = { 0, 0, 0 };
	char p[128];
	uint8_t m[MBJ_MARK_BYTES];

	assert_int_equal(mbj_open(jdir, &o, &log), 0);
	for (uint64_t i = 0; i < HOLE_N; i++) {
		assert_int_equal(jt_append(log, &end), 0);
		ends[i] = end;
		if (i % 500 == 499)
			assert_int_equal(mbj_sync(log, end.seq), 0);
	}
	mbj_close(log);
	assert_true(end.offset > (1u << 20) + (64u << 10));   /* one fill past the first MiB */
	snprintf(p, sizeof(p), "%s/" MBJ_MARK_NAME, jdir);
	int fd = open(p, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, m, sizeof(m), 0), (ssize_t)sizeof(m));
	close(fd);
	assert_true(mbj_mark_decode(m, mark));
	assert_int_equal(mark->segment, 1);
	assert_true(mark->offset > MBJ_SEG_HDR && mark->offset < end.offset);
	assert_int_equal(mark->offset, ends[mark->seq - 1].offset);
	snprintf(p, sizeof(p), "%s/sync.shm", jdir);
	assert_int_equal(unlink(p), 0);   /* the reboot */
}

static void test_power_loss_hole_after_mark_is_cut(void **state)
{
	(void)state;
	char base[64], jdir[80], path[128];
	static mbj_pos ends[HOLE_N];
	mbj_pos mark;
	mbj_report rep;
	mbj_log *log;
	int rc;

	jt_mkdir(base, jdir);
	hole_journal(jdir, ends, &mark);
	/* the record after the mark's + 3 never reached the disk; later ones did */
	uint64_t hole = mark.seq + 3;   /* index of record seq hole + 1 */
	uint64_t at = ends[hole - 1].offset;
	uint8_t z[MBJ_REC_HDR] = { 0 };
	jt_path(path, jdir, 1);
	int fd = open(path, O_RDWR);
	assert_int_equal(pwrite(fd, z, sizeof(z), (off_t)at), (ssize_t)sizeof(z));
	close(fd);
	assert_int_equal(mbj_verify(jdir, &rep), MBJ_ECORRUPT);
	assert_int_equal(mbj_open(jdir, NULL, &log), 0);
	mbj_close(log);
	assert_int_equal(jt_read_all(jdir, &rc, NULL), hole);
	assert_int_equal(rc, 0);
	assert_int_equal(mbj_verify(jdir, &rep), 0);
	assert_int_equal(rep.last_seq, hole);
	char kept[160];
	snprintf(kept, sizeof(kept), "%s.torn-at-%llu", path, (unsigned long long)at);
	struct stat st;
	assert_int_equal(stat(kept, &st), 0);
	assert_int_equal((uint64_t)st.st_size, ends[HOLE_N - 1].offset - at);
	jt_rm_rf(base);
}

static void test_power_loss_rot_before_mark_is_refused(void **state)
{
	(void)state;
	char base[64], jdir[80], path[128];
	static mbj_pos ends[HOLE_N];
	mbj_pos mark;
	mbj_report rep;
	mbj_log *log;
	int rc;

	jt_mkdir(base, jdir);
	hole_journal(jdir, ends, &mark);
	uint64_t rot = mark.seq - 10;   /* record seq rot + 1, durable */
	uint8_t b;
	jt_path(path, jdir, 1);
	int fd = open(path, O_RDWR);
	assert_int_equal(pread(fd, &b, 1, (off_t)ends[rot - 1].offset + 30), 1);
	b ^= 0x20;
	assert_int_equal(pwrite(fd, &b, 1, (off_t)ends[rot - 1].offset + 30), 1);
	close(fd);
	assert_int_equal(mbj_open(jdir, NULL, &log), 0);
	mbj_close(log);
	assert_int_equal(jt_read_all(jdir, &rc, NULL), rot);
	assert_int_equal(rc, MBJ_ECORRUPT);
	assert_int_equal(mbj_verify(jdir, &rep), MBJ_ECORRUPT);
	assert_int_equal(rep.damage_seq, rot + 1);
	jt_rm_rf(base);
}

/* The fuzz seeds are written by tests/fuzz/gen_corpus.py, a second
 * implementation of the documented format: the reader must agree with it. */
static int verify_seed(const char *name, mbj_report *rep)
{
	char src[512], base[64], jdir[80], path[128];
	size_t n;

	snprintf(src, sizeof(src), "%s/%s", getenv("MBJ_CORPUS"), name);
	uint8_t *img = jt_read_file(src, &n);
	jt_mkdir(base, jdir);
	assert_int_equal(mkdir(jdir, 0700), 0);
	jt_path(path, jdir, 1);
	jt_write_file(path, img + 1, n - 1);
	free(img);
	int r = mbj_verify(jdir, rep);
	jt_rm_rf(base);
	return r;
}

static void test_documented_format_seeds(void **state)
{
	(void)state;
	mbj_report rep;

	if (!getenv("MBJ_CORPUS"))
		skip();
	assert_int_equal(verify_seed("valid-6", &rep), 0);
	assert_int_equal(rep.records, 6);
	assert_false(rep.torn_tail);
	assert_int_equal(verify_seed("valid-1-empty-payload", &rep), 0);
	assert_int_equal(rep.records, 1);
	assert_int_equal(verify_seed("torn-tail", &rep), 0);
	assert_int_equal(rep.records, 5);
	assert_true(rep.torn_tail);
	assert_int_equal(verify_seed("crc-flip-middle", &rep), MBJ_ECORRUPT);
	assert_int_equal(verify_seed("zeroed-middle", &rep), MBJ_ECORRUPT);
	assert_int_equal(verify_seed("seq-gap", &rep), MBJ_ECORRUPT);
	assert_string_equal(rep.reason, "seq gap");
	assert_int_equal(verify_seed("bad-magic", &rep), MBJ_ECORRUPT);
	assert_int_equal(verify_seed("newer-version", &rep), MBJ_EVERSION);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c_vectors),
		cmocka_unit_test(test_roundtrip_across_rolls),
		cmocka_unit_test(test_iter_from_seq),
		cmocka_unit_test(test_iter_sees_later_appends),
		cmocka_unit_test(test_next_at_pending_record),
		cmocka_unit_test(test_next_at_across_roll),
		cmocka_unit_test(test_append_bad_arguments),
		cmocka_unit_test(test_large_records),
		cmocka_unit_test(test_end_past_file_is_corrupt),
		cmocka_unit_test(test_torn_tail_every_offset),
		cmocka_unit_test(test_bitflip_every_bit),
		cmocka_unit_test(test_random_bitflips),
		cmocka_unit_test(test_middle_damage_reported),
		cmocka_unit_test(test_repair_torn_tail),
		cmocka_unit_test(test_repair_middle_damage),
		cmocka_unit_test(test_bad_magic_and_newer_version),
		cmocka_unit_test(test_remove_before_and_usage),
		cmocka_unit_test(test_crashed_roll_is_dropped),
		cmocka_unit_test(test_stale_bytes_after_end_are_zeroed),
		cmocka_unit_test(test_documented_format_seeds),
		cmocka_unit_test(test_power_loss_hole_after_mark_is_cut),
		cmocka_unit_test(test_power_loss_rot_before_mark_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
