/*
 * journal_int.h - what the journal's own files share (never installed).
 *
 * The byte format is documented at the top of segment.c.
 */
#ifndef MEMBANK_JOURNAL_INT_H
#define MEMBANK_JOURNAL_INT_H

#include <pthread.h>

#include "journal.h"

#define MBJ_MAGIC "MBJRNL\r\n"         /* 8 bytes, no NUL on disk */
#define MBJ_FORMAT_VERSION 1u
#define MBJ_SEG_HDR 32u                /* segment header bytes */
#define MBJ_REC_HDR 25u                /* record header bytes */
#define MBJ_PREALLOC_CHUNK (1u << 20)  /* zero-fill step, see writer.c */
#define MBJ_SEG_NAME_LEN 24            /* "%020llu.jnl" */
#define MBJ_WINDOW (1u << 20)          /* reader's read-ahead */
#define MBJ_MARK_NAME "durable.mark"   /* see segment.c, THE DURABLE MARK */
#define MBJ_MARK_MAGIC "MBJMARK"       /* 8 bytes with its NUL */
#define MBJ_MARK_BYTES 32u
/* A record found after damage counts as "valid" only when its seq lies in
 * [expected, expected + MBJ_SEQ_SLACK): random bytes almost never do. */
#define MBJ_SEQ_SLACK (1ull << 32)

/* What mbj_seg_read() found at an offset. */
enum mbj_at {
	MBJ_AT_END = 0,   /* zero header, or no bytes left: end of data */
	MBJ_AT_REC = 1,   /* a whole, valid record with the expected seq */
	MBJ_AT_BAD = 2,   /* bytes that are not a whole valid record */
};

/* mbj_seg_open() result besides 0 and MBJ_E*: the file is shorter than a
 * header or its header is all zero (a roll that crashed before the header
 * reached the disk): it holds no record. */
#define MBJ_SEG_EMPTY 3

/* One segment file open for reading, with a read-ahead window.  Pointers
 * handed out stay valid until the next read on the same mbj_seg. */
typedef struct mbj_seg {
	int fd;
	uint64_t first;     /* name and header's first seq */
	uint64_t size;      /* file size as last seen (refreshed on demand) */
	uint8_t *buf;
	size_t cap;
	uint64_t boff;      /* file offset of buf[0] */
	size_t blen;        /* valid bytes in buf */
	size_t ahead;       /* read-ahead, MBJ_WINDOW unless set smaller */
} mbj_seg;

/* crc32c.c: the portable path, always available (tests compare both) */
uint32_t mbj_crc32c_sw(uint32_t crc, const void *buf, size_t n);

/* segment.c: format and reading */
void mbj_seg_header(uint8_t out[MBJ_SEG_HDR], uint64_t first);
void mbj_mark_encode(uint8_t out[MBJ_MARK_BYTES], const mbj_pos *end);
bool mbj_mark_decode(const uint8_t in[MBJ_MARK_BYTES], mbj_pos *end);
size_t mbj_frame(uint8_t *out, uint64_t seq, uint8_t type, int64_t ts_us,
                 const void *payload, uint32_t len);
void mbj_seg_init(mbj_seg *s);
int mbj_seg_open(int dirfd, uint64_t first, mbj_seg *s, char *why, size_t n);
int mbj_seg_open_fd(int fd, uint64_t first, mbj_seg *s, char *why, size_t n);
void mbj_seg_close(mbj_seg *s);
void mbj_seg_forget(mbj_seg *s);
int mbj_seg_read(mbj_seg *s, uint64_t off, uint64_t expect, mbj_record *rec,
                 const char **why);
int mbj_seg_valid_after(mbj_seg *s, uint64_t from, uint64_t min_seq,
                        uint64_t *at);
int mbj_seg_next(mbj_seg *s, uint64_t off, uint64_t expect, bool last,
                 mbj_record *rec, const char **why);
void mbj_seg_name(char out[MBJ_SEG_NAME_LEN + 1], uint64_t first);
bool mbj_seg_parse_name(const char *name, uint64_t *first);
int mbj_list_segments(int dirfd, uint64_t **out, size_t *count);
ssize_t mbj_pread_full(int fd, void *buf, size_t n, uint64_t off);

/* writer.c / gsync.c shared pieces */
struct mbj_shm;
int mbj_shm_open(mbj_log *log, int file_mode, bool alone);
void mbj_shm_close(mbj_log *log);
void mbj_shm_publish(mbj_log *log, const mbj_pos *end);
void mbj_shm_set_durable(mbj_log *log, const mbj_pos *end);
mbj_pos mbj_shm_durable(mbj_log *log);
int mbj_boot_settle(mbj_log *log);   /* writer.c, the first open of a boot */
bool mbj_shm_failed(mbj_log *log);
void mbj_shm_set_failed(mbj_log *log);
uint64_t mbj_shm_clean_segment(mbj_log *log);
/* What the last fdatasync covered and took (gsync.c, GATHERING). */
void mbj_shm_gathering(mbj_log *log, uint32_t *covered, uint32_t *sync_us);
void mbj_shm_set_clean_segment(mbj_log *log, uint64_t segment);
void mbj_shm_set_appending(mbj_log *log, bool on);
bool mbj_shm_tail_at(mbj_log *log, const mbj_pos *end);
void mbj_shm_tail_found(mbj_log *log, const mbj_pos *end);
int mbj_shm_recover(mbj_log *log);
void mbj_shm_lock(mbj_log *log);   /* tests: die holding it */

/* The log handle.  Writer fields are used under the caller's writer lock
 * and, in case a caller shares the handle between threads carelessly, wmu;
 * sync fields only by the group-commit leader (one at a time across every
 * process, see gsync.c) under mu.  Two mutexes, so that an append never
 * waits for this process's leader to finish its fdatasync. */
struct mbj_log {
	int dirfd;
	uint64_t seg_bytes;
	int file_mode;
	mbj_io io;                /* every member set */
	/* writer side */
	pthread_mutex_t wmu;
	int wfd;                  /* current segment, -1 none */
	uint64_t wseg;
	uint64_t wsize;           /* lower bound of its file size */
	uint8_t *wbuf;
	size_t wcap;
	mbj_seg rseg;             /* next_at's reader */
	bool tail_checked;        /* this handle read the tail once (THE TAIL CHECK) */
	bool shm_v2;              /* sync.shm of version 2: no `appending` to trust */
	/* sync side */
	pthread_mutex_t mu;
	int sfd;
	uint64_t sseg;
	int shmfd;
	struct mbj_shm *shm;
	int fatal;                /* atomic: a sync failed on this handle */
	char err[256];
};

void mbj_set_err(mbj_log *log, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int mbj_errno_code(int e);
int mbj_sync_file(mbj_log *log, int fd, const char *what);
int mbj_dir_sync(mbj_log *log);

#endif /* MEMBANK_JOURNAL_INT_H */
