/*
 * segment.c - the journal's byte format, and reading it without trusting it.
 *
 * A journal is a directory of segment files "%020llu.jnl", each named by the
 * seq of its first record.  All integers are little-endian, whatever the
 * host.  CRC is CRC-32C (Castagnoli), see crc32c.c.
 *
 * SEGMENT HEADER (32 bytes, at offset 0):
 *
 *   offset size  field
 *     0     8    magic "MBJRNL\r\n" = 4D 42 4A 52 4E 4C 0D 0A (the CR LF
 *                catches text-mode mangling)
 *     8     4    format version, u32 = 1.  A larger version is refused with
 *                MBJ_EVERSION before anything else is read; a bad magic is
 *                MBJ_ECORRUPT: the two are distinct on purpose.
 *    12     4    reserved, 0
 *    16     8    first seq, u64: the seq of the first record; must equal the
 *                number in the file name
 *    24     4    reserved, 0
 *    28     4    CRC-32C of bytes 0..27
 *
 * RECORDS follow from offset 32, back to back, no padding.  A record at
 * offset o:
 *
 *   offset size  field
 *     0     4    len, u32: payload bytes, 0..MBJ_MAX_PAYLOAD (32 MiB)
 *     4     4    crc, u32: CRC-32C of bytes 0..3 (len) followed by bytes
 *                8..25+len-1 (seq, type, ts, payload): everything of the
 *                record except the crc field itself
 *     8     8    seq, u64: previous record's seq + 1 (the first record of a
 *                segment has the segment's first seq)
 *    16     1    type, 1..255 (0 is never a record)
 *    17     8    ts_us, i64: microseconds since the epoch, from the writer
 *    25   len    payload
 *
 * The next record starts at o + 25 + len.  Records never span segments.
 *
 * END OF DATA.  Segments are zero-filled ahead of the write position (see
 * writer.c), so the end of the data is a record header of 25 zero bytes, or
 * the end of the file.  Such a header cannot be a record (type 0).
 *
 * A RECORD IS VALID when: its 25 header bytes lie inside the file and are
 * not all zero; len <= MBJ_MAX_PAYLOAD and o + 25 + len <= file size; type
 * != 0; the crc matches; seq is the expected one.  Nothing is trusted before
 * its check: lengths are compared with the bytes present before any read,
 * every read is a bounded pread.
 *
 * A BAD RECORD (any check failed) is a TORN TAIL only when it is in the
 * newest segment and no valid frame follows it: a frame at a later offset
 * whose len, type and crc check and whose seq lies in [expected, expected +
 * 2^32).  Otherwise it is corruption (MBJ_ECORRUPT), reported with the
 * segment, offset, expected seq and reason, never cut silently.  A zero
 * header followed by a valid frame is corruption too (zeroed sectors).
 * Because a concurrent writer may complete records while we look, a bad or
 * zero record is re-read once after a valid frame is seen beyond it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal_int.h"

static void put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

void mbj_seg_header(uint8_t out[MBJ_SEG_HDR], uint64_t first)
{
	memset(out, 0, MBJ_SEG_HDR);
	memcpy(out, MBJ_MAGIC, 8);
	put_u32(out + 8, MBJ_FORMAT_VERSION);
	put_u64(out + 16, first);
	put_u32(out + 28, mbj_crc32c(0, out, 28));
}

static uint32_t record_crc(const uint8_t *rec, uint32_t len)
{
	uint32_t c = mbj_crc32c(0, rec, 4);
	return mbj_crc32c(c, rec + 8, 17 + (size_t)len);
}

size_t mbj_frame(uint8_t *out, uint64_t seq, uint8_t type, int64_t ts_us,
                 const void *payload, uint32_t len)
{
	put_u32(out, len);
	put_u64(out + 8, seq);
	out[16] = type;
	put_u64(out + 17, (uint64_t)ts_us);
	if (len)
		memcpy(out + MBJ_REC_HDR, payload, len);
	put_u32(out + 4, record_crc(out, len));
	return MBJ_REC_HDR + (size_t)len;
}

void mbj_seg_name(char out[MBJ_SEG_NAME_LEN + 1], uint64_t first)
{
	snprintf(out, MBJ_SEG_NAME_LEN + 1, "%020llu.jnl",
	         (unsigned long long)first);
}

/* Only the canonical spelling counts: "<name>.damaged" and strays are not
 * segments. */
bool mbj_seg_parse_name(const char *name, uint64_t *first)
{
	char canon[MBJ_SEG_NAME_LEN + 1];
	uint64_t v = 0;

	if (strlen(name) != MBJ_SEG_NAME_LEN || strcmp(name + 20, ".jnl"))
		return false;
	for (int i = 0; i < 20; i++) {
		if (name[i] < '0' || name[i] > '9')
			return false;
		if (v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(name[i] - '0');
	}
	mbj_seg_name(canon, v);
	if (v == 0 || strcmp(canon, name))
		return false;
	*first = v;
	return true;
}

ssize_t mbj_pread_full(int fd, void *buf, size_t n, uint64_t off)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = pread(fd, (uint8_t *)buf + got, n - got,
		                  (off_t)(off + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

void mbj_seg_init(mbj_seg *s)
{
	memset(s, 0, sizeof(*s));
	s->fd = -1;
	s->ahead = MBJ_WINDOW;
}

void mbj_seg_forget(mbj_seg *s)
{
	s->blen = 0;
}

void mbj_seg_close(mbj_seg *s)
{
	if (s->fd >= 0)
		close(s->fd);
	free(s->buf);
	mbj_seg_init(s);
}

static int refresh_size(mbj_seg *s)
{
	struct stat st;

	if (fstat(s->fd, &st) < 0)
		return MBJ_EIO;
	s->size = (uint64_t)st.st_size;
	return 0;
}

/* Make bytes [off, off+n) available at *p.  1: present; 0: the file is
 * shorter; <0: MBJ_EIO / MBJ_ENOMEM.  n is bounded by the callers to
 * MBJ_REC_HDR + MBJ_MAX_PAYLOAD. */
static int seg_fetch(mbj_seg *s, uint64_t off, size_t n, const uint8_t **p)
{
	if (off > s->size || n > s->size - off) {
		if (refresh_size(s) < 0)
			return MBJ_EIO;
		if (off > s->size || n > s->size - off)
			return 0;
	}
	if (off >= s->boff && off - s->boff <= s->blen &&
	    n <= s->blen - (off - s->boff)) {
		*p = s->buf + (off - s->boff);
		return 1;
	}
	size_t want = n > s->ahead ? n : s->ahead;
	if (want > s->size - off)
		want = (size_t)(s->size - off);
	if (want > s->cap) {
		uint8_t *nb = realloc(s->buf, want);
		if (!nb)
			return MBJ_ENOMEM;
		s->buf = nb;
		s->cap = want;
	}
	s->blen = 0;
	ssize_t got = mbj_pread_full(s->fd, s->buf, want, off);
	if (got < 0)
		return MBJ_EIO;
	s->boff = off;
	s->blen = (size_t)got;
	if ((size_t)got < n)
		return 0;
	*p = s->buf;
	return 1;
}

static int check_header(const uint8_t *h, uint64_t first, char *why, size_t n)
{
	if (memcmp(h, MBJ_MAGIC, 8)) {
		snprintf(why, n, "bad magic");
		return MBJ_ECORRUPT;
	}
	uint32_t version = get_u32(h + 8);
	if (version > MBJ_FORMAT_VERSION) {
		snprintf(why, n, "format version %u is newer than %u", version,
		         MBJ_FORMAT_VERSION);
		return MBJ_EVERSION;
	}
	if (version == 0 || get_u32(h + 28) != mbj_crc32c(0, h, 28)) {
		snprintf(why, n, version ? "header crc mismatch" : "bad version 0");
		return MBJ_ECORRUPT;
	}
	if (get_u64(h + 16) != first) {
		snprintf(why, n, "header first seq %llu does not match the name",
		         (unsigned long long)get_u64(h + 16));
		return MBJ_ECORRUPT;
	}
	return 0;
}

/* Takes ownership of fd (closed on failure too). */
int mbj_seg_open_fd(int fd, uint64_t first, mbj_seg *s, char *why, size_t n)
{
	const uint8_t *h;
	uint64_t at;
	int r;

	mbj_seg_init(s);
	s->fd = fd;
	s->first = first;
	if (refresh_size(s) < 0) {
		snprintf(why, n, "fstat: %s", strerror(errno));
		r = MBJ_EIO;
		goto fail;
	}
	size_t have = s->size < MBJ_SEG_HDR ? (size_t)s->size : MBJ_SEG_HDR;
	s->ahead = 4096;   /* the header and the first records */
	r = seg_fetch(s, 0, have, &h);
	s->ahead = MBJ_WINDOW;
	if (r < 0 || (r == 0 && have)) {
		snprintf(why, n, "read of the header failed");
		r = r < 0 ? r : MBJ_EIO;
		goto fail;
	}
	if (have == 0 || all_zero(h, have)) {
		/* A crashed roll, unless valid records follow the zeros. */
		r = have < MBJ_SEG_HDR ? 0 :
		    mbj_seg_valid_after(s, MBJ_SEG_HDR, first, &at);
		if (r < 0)
			goto fail;
		if (r == 0)
			return MBJ_SEG_EMPTY;
		snprintf(why, n, "zeroed header before valid records");
		r = MBJ_ECORRUPT;
		goto fail;
	}
	if (have < MBJ_SEG_HDR) {
		snprintf(why, n, "short header (%zu bytes)", have);
		r = MBJ_ECORRUPT;
		goto fail;
	}
	r = check_header(h, first, why, n);
	if (r == 0)
		return 0;
fail:
	mbj_seg_close(s);
	return r;
}

int mbj_seg_open(int dirfd, uint64_t first, mbj_seg *s, char *why, size_t n)
{
	char name[MBJ_SEG_NAME_LEN + 1];

	mbj_seg_name(name, first);
	int fd = mbj_fd_above_stdio(openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
	if (fd < 0) {
		mbj_seg_init(s);
		snprintf(why, n, "open: %s", strerror(errno));
		return errno == ENOENT ? MBJ_EINVAL : MBJ_EIO;
	}
	return mbj_seg_open_fd(fd, first, s, why, n);
}

/* Header checks that need no payload: len, room in the file, type. */
static const char *frame_shape(const uint8_t *h, uint64_t off, uint64_t size)
{
	uint32_t len = get_u32(h);

	if (len > MBJ_MAX_PAYLOAD)
		return "impossible length";
	if (MBJ_REC_HDR + (uint64_t)len > size - off)
		return "length past the end of the file";
	if (h[16] == 0)
		return "type 0";
	return NULL;
}

int mbj_seg_read(mbj_seg *s, uint64_t off, uint64_t expect, mbj_record *rec,
                 const char **why)
{
	const uint8_t *h;
	int r;

	if (off >= s->size && refresh_size(s) < 0)
		return MBJ_EIO;
	if (off >= s->size)
		return MBJ_AT_END;
	size_t hn = s->size - off < MBJ_REC_HDR ? (size_t)(s->size - off)
	                                        : MBJ_REC_HDR;
	r = seg_fetch(s, off, hn, &h);
	/* the file was cut (a failed append's ftruncate) after it was sized */
	if (r == 0 && refresh_size(s) == 0 && off >= s->size)
		return MBJ_AT_END;
	if (r <= 0)
		return r < 0 ? r : MBJ_EIO;
	if (all_zero(h, hn))
		return MBJ_AT_END;
	if (hn < MBJ_REC_HDR) {
		*why = "truncated header";
		return MBJ_AT_BAD;
	}
	*why = frame_shape(h, off, s->size);
	if (*why)
		return MBJ_AT_BAD;
	uint32_t len = get_u32(h);
	r = seg_fetch(s, off, MBJ_REC_HDR + (size_t)len, &h);
	if (r <= 0)
		return r < 0 ? r : MBJ_EIO;
	if (get_u32(h + 4) != record_crc(h, len)) {
		*why = "crc mismatch";
		return MBJ_AT_BAD;
	}
	if (get_u64(h + 8) != expect) {
		*why = get_u64(h + 8) > expect ? "seq gap" : "seq out of order";
		return MBJ_AT_BAD;
	}
	rec->seq = expect;
	rec->type = h[16];
	rec->ts_us = (int64_t)get_u64(h + 17);
	rec->payload = h + MBJ_REC_HDR;
	rec->len = len;
	rec->end = (mbj_pos){ s->first, off + MBJ_REC_HDR + len, expect };
	return MBJ_AT_REC;
}

/* Is a valid frame with a plausible seq at @off?  1 yes, 0 no, <0 error. */
static int frame_at(mbj_seg *s, uint64_t off, uint64_t min_seq)
{
	const uint8_t *h;
	int r = seg_fetch(s, off, MBJ_REC_HDR, &h);

	if (r <= 0)
		return r;
	if (frame_shape(h, off, s->size))
		return 0;
	uint64_t seq = get_u64(h + 8);
	if (seq < min_seq || seq - min_seq >= MBJ_SEQ_SLACK)
		return 0;
	uint32_t len = get_u32(h);
	r = seg_fetch(s, off, MBJ_REC_HDR + (size_t)len, &h);
	if (r <= 0)
		return r;
	return get_u32(h + 4) == record_crc(h, len);
}

/* Look for a valid frame at or after @from.  A frame's type byte (offset
 * 16) is never zero, so only offsets whose type byte is non-zero are tried:
 * zero-filled space is skipped quickly. */
int mbj_seg_valid_after(mbj_seg *s, uint64_t from, uint64_t min_seq,
                        uint64_t *at)
{
	uint64_t off = from;

	if (refresh_size(s) < 0)
		return MBJ_EIO;
	while (off < s->size && s->size - off >= MBJ_REC_HDR) {
		uint64_t last = s->size - MBJ_REC_HDR;   /* last candidate */
		size_t span = last - off + 1 > MBJ_WINDOW - MBJ_REC_HDR
		                  ? MBJ_WINDOW - MBJ_REC_HDR
		                  : (size_t)(last - off + 1);
		const uint8_t *p;
		int r = seg_fetch(s, off, span + 16, &p);
		if (r <= 0)
			return r;
		size_t i = 0;
		while (i < span && p[i + 16] == 0)
			i++;
		if (i == span) {
			off += span;
			continue;
		}
		r = frame_at(s, off + i, min_seq);
		if (r != 0) {
			*at = off + i;
			return r;
		}
		off += i + 1;
	}
	return 0;
}

/* Read the record at @off, classifying what is not a record: returns
 * MBJ_AT_REC, MBJ_AT_END (end of data), MBJ_AT_BAD (a torn tail: only when
 * @last, nothing valid follows), or MBJ_ECORRUPT (*why set), MBJ_EIO,
 * MBJ_ENOMEM. */
int mbj_seg_next(mbj_seg *s, uint64_t off, uint64_t expect, bool last,
                 mbj_record *rec, const char **why)
{
	uint64_t at;
	int r = mbj_seg_read(s, off, expect, rec, why);

	if (r == MBJ_AT_REC || r < 0)
		return r;
	mbj_seg_forget(s);
	int found = mbj_seg_valid_after(s, off, expect, &at);
	if (found < 0)
		return found;
	if (found) {
		/* A writer may have finished this record meanwhile. */
		mbj_seg_forget(s);
		const char *why2;
		int again = mbj_seg_read(s, off, expect, rec, &why2);
		if (again == MBJ_AT_REC || again < 0)
			return again;
		if (r == MBJ_AT_END)
			*why = "zeroed bytes before valid records";
		return MBJ_ECORRUPT;
	}
	if (r == MBJ_AT_BAD && !last)
		return MBJ_ECORRUPT;
	return r;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Sorted first seqs of the segments in the directory. */
int mbj_list_segments(int dirfd, uint64_t **out, size_t *count)
{
	uint64_t *v = NULL;
	size_t n = 0, cap = 0;
	int r = MBJ_EIO;
	int fd = mbj_fd_above_stdio(openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return MBJ_EIO;
	}
	while ((errno = 0, e = readdir(d))) {
		uint64_t first;
		if (!mbj_seg_parse_name(e->d_name, &first))
			continue;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 16;
			uint64_t *nv = realloc(v, nc * sizeof(*v));
			if (!nv) {
				r = MBJ_ENOMEM;
				goto cleanup;
			}
			v = nv;
			cap = nc;
		}
		v[n++] = first;
	}
	if (errno)
		goto cleanup;
	if (n)
		qsort(v, n, sizeof(*v), cmp_u64);
	*out = v;
	*count = n;
	v = NULL;
	r = 0;
cleanup:
	free(v);
	closedir(d);
	return r;
}
