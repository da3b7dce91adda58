/*
 * load.c - the four JSON files back into a store (see load.h).
 *
 * notion_pages.json is mapped and walked by a small scanner that finds the
 * extent of each page's value; that page alone is then parsed (jsonmp.c,
 * numbers exact), so memory stays flat however many pages there are.  The
 * other files are bounded and parsed whole by cJSON.
 */
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apply.h"
#include "bank.h"
#include "config.h"
#include "journal.h"
#include "load.h"
#include "progress.h"

typedef struct ld {
	const char *file;
	const void *tag;
} ld;

static int bad(const ld *l, const char *fmt, const char *a, const char *b)
{
	return mb_fail(l->tag, MB_EINVAL, "%s: %s%s%s", l->file, a, fmt, b ? b : "");
}

static const cJSON *get(const ld *l, const cJSON *obj, const char *key, int *rc)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!v && !*rc)
		*rc = bad(l, ": missing", key, NULL);
	return v;
}

static int only_keys(const ld *l, const cJSON *obj, const char *where, const char *const *keys)
{
	for (const cJSON *c = obj->child; c; c = c->next) {
		const char *const *k = keys;
		while (*k && strcmp(*k, c->string))
			k++;
		if (!*k)
			return mb_fail(l->tag, MB_EINVAL, "%s: %s: unknown key \"%.64s\"", l->file,
			               where, c->string);
	}
	return 0;
}

static int get_count(const ld *l, const cJSON *obj, const char *key, uint64_t *v)
{
	int rc = 0;
	const cJSON *j = get(l, obj, key, &rc);

	if (rc)
		return rc;
	if (!json_whole(j, MB_JSON_WHOLE_MAX, v))
		return bad(l, ": must be a whole number from 0 to 9007199254740991", key, NULL);
	return 0;
}

/* A string of min..max bytes, or null when @nullable (*s = NULL). */
static int get_text(const ld *l, const cJSON *obj, const char *key, size_t min, size_t max,
                    bool nullable, const char **s)
{
	int rc = 0;
	const cJSON *j = get(l, obj, key, &rc);
	size_t n;

	if (rc)
		return rc;
	*s = NULL;
	if (nullable && cJSON_IsNull(j))
		return 0;
	if (!cJSON_IsString(j) || (n = strlen(j->valuestring)) < min || n > max)
		return bad(l, nullable ? ": must be null or a string within bounds"
		                       : ": must be a string within bounds", key, NULL);
	*s = j->valuestring;
	return 0;
}

static int parse_time(const ld *l, const cJSON *j, const char *key, bool nullable, int64_t *t)
{
	if (nullable && cJSON_IsNull(j)) {
		*t = MB_NEVER;
		return 0;
	}
	if (!cJSON_IsString(j) || mb_parse_time(j->valuestring, strlen(j->valuestring), t))
		return bad(l, ": must be a timestamp like 2026-01-31T12:00:00.000000Z", key,
		           nullable ? " or null" : NULL);
	return 0;
}

static int get_time(const ld *l, const cJSON *obj, const char *key, bool nullable, int64_t *t)
{
	int rc = 0;
	const cJSON *j = get(l, obj, key, &rc);

	return rc ? rc : parse_time(l, j, key, nullable, t);
}

/* --------------------------------------------------------- small files */

/* Files from outside are opened O_NONBLOCK: a FIFO planted in their place
 * would block open() itself, before fstat() could refuse it. */
static int read_whole(const char *dir, const char *name, size_t max, const void *tag,
                      char **data, size_t *len, load_digest *dg)
{
	char path[4096];
	struct stat st;
	ssize_t n;
	int fd;

	mb_pathf(path, sizeof path, "%s/%s", dir, name);
	fd = mb_open_fd(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0);
	if (fd < 0)
		return mb_fail(tag, errno == ENOENT ? MB_EINVAL : mb_errno_code(errno), "%s: %s",
		               path, strerror(errno));
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
		close(fd);
		return mb_fail(tag, MB_EINVAL, "%s: not a regular file of at most %zu bytes", path, max);
	}
	*len = (size_t)st.st_size;
	if (!(*data = malloc(*len + 1))) {
		close(fd);
		return mb_fail(tag, MB_ENOMEM, "%s: out of memory", path);
	}
	n = read(fd, *data, *len);
	close(fd);
	if (n != (ssize_t)*len) {
		free(*data);
		return mb_fail(tag, MB_EIO, "%s: short read", path);
	}
	if (dg)
		*dg = (load_digest){ *len, mbj_crc32c(0, *data, *len) };
	return 0;
}

/* load_parse_file(), and the digest of the bytes parsed into *@dg. */
static int parse_file(const char *dir, const char *name, size_t max, const void *tag,
                      cJSON **out, load_digest *dg)
{
	char *text;
	size_t len;
	int rc = read_whole(dir, name, max, tag, &text, &len, dg);

	if (rc)
		return rc;
	rc = json_parse(text, len, max, name, tag, out);
	free(text);
	if (!rc && !cJSON_IsObject(*out)) {
		cJSON_Delete(*out);
		*out = NULL;
		rc = mb_fail(tag, MB_EINVAL, "%s: the top level is not an object", name);
	}
	return rc;
}

int load_parse_file(const char *dir, const char *name, size_t max, const void *tag, cJSON **out)
{
	return parse_file(dir, name, max, tag, out, NULL);
}

static int parse_config(const char *dir, const void *tag, mb_buf *out, load_digest *dg)
{
	const char *name = "config_cache.json";
	char *text;
	size_t len;
	int rc = read_whole(dir, name, MB_MAX_CONFIG_FILE, tag, &text, &len, dg);

	if (rc)
		return rc;
	rc = json_to_mp(text, len, MB_MAX_CONFIG_FILE, MB_MAX_DEPTH, name, tag, out);
	free(text);
	if (!rc && ((uint8_t)out->data[0] & 0xf0) != 0x80 && (uint8_t)out->data[0] != 0xde &&
	    (uint8_t)out->data[0] != 0xdf)
		rc = mb_fail(tag, MB_EINVAL, "%s: the top level is not an object", name);
	return rc;
}

static int check_array(const ld *l, const cJSON *obj, const char *key, size_t *n)
{
	int rc = 0;
	const cJSON *a = get(l, obj, key, &rc);

	if (rc)
		return rc;
	if (!cJSON_IsArray(a))
		return bad(l, ": must be an array", key, NULL);
	*n = (size_t)cJSON_GetArraySize(a);
	return 0;
}

/* checkpoint.json, if @dir has one: {"format","seq","segment","offset",
 * "write_us":N,"error_types":{"dropped":N,"last_seen":{type:time|null}}}
 * (checkpoint.h); error_types and write_us (how long the checkpoint took
 * to write, for metrics only) are optional (older checkpoints have none). */
static int read_ckpt(const char *dir, const void *tag, cJSON **out)
{
	static const char *const keys[] = { "format", "seq", "segment", "offset", "write_us",
	                                    "pages_removed", "error_types", NULL };
	static const char *const et_keys[] = { "dropped", "last_seen", NULL };
	static const char *const rm_keys[] = { "evicted", "purged", NULL };
	ld l = { MB_CHECKPOINT_FILE, tag };
	const cJSON *et, *seen, *removed;
	char path[4096];
	struct stat st;
	uint64_t n;
	int64_t ts;
	int rc;

	*out = NULL;
	if (mb_pathf(path, sizeof path, "%s/%s", dir, MB_CHECKPOINT_FILE) ||
	    (lstat(path, &st) && errno == ENOENT))
		return 0;
	if ((rc = load_parse_file(dir, MB_CHECKPOINT_FILE, MB_MAX_CHECKPOINT_FILE, tag, out)) ||
	    (rc = only_keys(&l, *out, "top level", keys)))
		return rc;
	/* pages_removed (the eviction and purge counters) is optional too */
	if ((removed = cJSON_GetObjectItemCaseSensitive(*out, "pages_removed")) &&
	    (!cJSON_IsObject(removed) || (rc = only_keys(&l, removed, "pages_removed", rm_keys)) ||
	     (rc = get_count(&l, removed, "evicted", &n)) ||
	     (rc = get_count(&l, removed, "purged", &n))))
		return rc ? rc : bad(&l, ": must be an object", "pages_removed", NULL);
	if (!(et = cJSON_GetObjectItemCaseSensitive(*out, "error_types")))
		return 0;
	if (!cJSON_IsObject(et) || !cJSON_IsObject(seen = cJSON_GetObjectItemCaseSensitive(et,
	                                                                           "last_seen")))
		return bad(&l, ": must be an object with an object \"last_seen\"", "error_types",
		           NULL);
	if ((rc = only_keys(&l, et, "error_types", et_keys)) ||
	    (rc = get_count(&l, et, "dropped", &n)))
		return rc;
	for (const cJSON *c = seen->child; c && !rc; c = c->next)
		rc = parse_time(&l, c, "error_types.last_seen", true, &ts);
	return rc;
}

/* The eviction and purge counters checkpoint.json carries (checked by
 * read_ckpt(); absent: 0, as in checkpoints written before them). */
static int load_removed(kv_txn *t, const cJSON *ckpt)
{
	const cJSON *g = cJSON_GetObjectItemCaseSensitive(ckpt, "pages_removed");
	st_removed rm = { 0, 0 };

	if (g) {
		rm.evicted = (uint64_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(g, "evicted"));
		rm.purged = (uint64_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(g, "purged"));
	}
	return st_removed_store(t, &rm);
}

/* The empty documents an absent file stands for (LOAD_MISSING_EMPTY); an
 * empty config reads as a new bank's (config_from_file()). */
static const char *const empty_doc[] = {
	"{\"last_successful_sync\":null,\"sync_history\":[],\"current_status\":null,"
	"\"error_count\":0,\"success_count\":0}",
	"{\"errors\":[],\"patterns\":{},\"resolutions\":{},\"last_error\":{},"
	"\"error_stats\":{\"total_errors\":0,\"resolved_errors\":0}}",
	"{}",
};
static const char *const doc_name[] = { "sync_status.json", "error_log.json",
                                        "config_cache.json", "notion_pages.json" };

static bool absent(const char *dir, const char *name)
{
	char path[4096];
	struct stat st;

	return !mb_pathf(path, sizeof path, "%s/%s", dir, name) && lstat(path, &st) &&
	       errno == ENOENT;
}

static int read_empty(int which, const void *tag, load_docs *d)
{
	const char *text = empty_doc[which];

	if (which == 2)
		return json_to_mp(text, strlen(text), MB_MAX_CONFIG_FILE, MB_MAX_DEPTH,
		                  doc_name[which], tag, &d->config);
	return json_parse(text, strlen(text), MB_MAX_SYNC_FILE, doc_name[which], tag,
	                  which ? &d->errors : &d->sync);
}

int load_docs_read(const char *dir, const void *tag, load_docs *d)
{
	return load_docs_read_from(dir, 0, tag, d);
}

int load_docs_read_from(const char *dir, unsigned flags, const void *tag, load_docs *d)
{
	bool gone[4] = { false, false, false, false };
	static const char *const sync_keys[] = { "last_successful_sync", "sync_history",
	        "current_status", "error_count", "success_count", NULL };
	static const char *const err_keys[] = { "errors", "patterns", "resolutions",
	        "last_error", "error_stats", NULL };
	ld ls = { "sync_status.json", tag }, le = { "error_log.json", tag };
	int rc;

	memset(d, 0, sizeof *d);
	for (int i = 0; i < 4 && (flags & LOAD_MISSING_EMPTY); i++)
		d->missing += gone[i] = absent(dir, doc_name[i]);
	if (d->missing == 4)
		return mb_fail(tag, MB_EINVAL, "%s: none of notion_pages.json, sync_status.json, "
		               "error_log.json, config_cache.json is there", dir);
	d->no_pages = gone[3];
	d->no_config = gone[2];
	if ((rc = gone[0] ? read_empty(0, tag, d) :
	          parse_file(dir, "sync_status.json", MB_MAX_SYNC_FILE, tag, &d->sync,
	                     &d->small[0])) ||
	    (rc = gone[1] ? read_empty(1, tag, d) :
	          parse_file(dir, "error_log.json", MB_MAX_ERROR_FILE, tag, &d->errors,
	                     &d->small[1])) ||
	    (rc = gone[2] ? read_empty(2, tag, d) : parse_config(dir, tag, &d->config,
	                                                         &d->small[2])) ||
	    (rc = only_keys(&ls, d->sync, "top level", sync_keys)) ||
	    (rc = only_keys(&le, d->errors, "top level", err_keys)) ||
	    (rc = check_array(&ls, d->sync, "sync_history", &d->sync_history)) ||
	    (rc = check_array(&le, d->errors, "errors", &d->error_history)) ||
	    (rc = read_ckpt(dir, tag, &d->ckpt)))
		load_docs_free(d);
	return rc;
}

void load_docs_free(load_docs *d)
{
	cJSON_Delete(d->sync);
	cJSON_Delete(d->errors);
	buf_free(&d->config);
	cJSON_Delete(d->ckpt);
	memset(d, 0, sizeof *d);
}

/* -------------------------------------------------------------- history */

static int put_hist(kv_txn *t, int db, uint64_t n, int64_t ts, const char *a, const char *c)
{
	mb_buf b = { 0 };
	uint8_t key[8];
	int rc = st_hist_entry(&b, ts, a, strlen(a), c, c ? strlen(c) : 0);

	st_be64(key, n);
	rc = rc ? rc : !t ? 0 : kv_put(t, db, (kv_val){ key, 8 }, (kv_val){ b.data, b.len });
	buf_free(&b);
	return rc;
}

/* Entries {timestamp, ka, kc}; the newest @limit are kept as 0..n-1. */
static int load_history(const ld *l, kv_txn *t, int db, const cJSON *arr, const char *ka,
                        size_t amax, const char *kc, bool c_nullable, uint32_t limit,
                        uint64_t *next)
{
	const char *const keys[] = { "timestamp", ka, kc, NULL };
	size_t total = (size_t)cJSON_GetArraySize(arr), i = 0;
	const char *a, *c;
	int64_t ts;
	int rc = 0;

	*next = 0;
	for (const cJSON *e = arr->child; e && !rc; e = e->next, i++) {
		if (!cJSON_IsObject(e))
			return bad(l, ": an entry is not an object", ka, NULL);
		if ((rc = only_keys(l, e, "history entry", keys)) ||
		    (rc = get_time(l, e, "timestamp", false, &ts)) ||
		    (rc = get_text(l, e, ka, 1, amax, false, &a)) ||
		    (rc = get_text(l, e, kc, 0, MB_MAX_TEXT_BYTES, c_nullable, &c)))
			return rc;
		if (total - i <= limit)
			rc = put_hist(t, db, (*next)++, ts, a, c);
	}
	return rc;
}

/* ---------------------------------------------------------------- sync */

static int load_sync(kv_txn *t, const cJSON *j, int64_t last_sync, uint32_t limit, const void *tag)
{
	ld l = { "sync_status.json", tag };
	const char *status;
	st_sync s;
	int rc;

	memset(&s, 0, sizeof s);
	s.last_sync = last_sync;
	if ((rc = get_time(&l, j, "last_successful_sync", true, &s.last_success)) ||
	    (rc = get_text(&l, j, "current_status", 1, MB_MAX_STATUS_BYTES, true, &status)) ||
	    (rc = get_count(&l, j, "error_count", &s.errors)) ||
	    (rc = get_count(&l, j, "success_count", &s.successes)) ||
	    (rc = load_history(&l, t, KV_SYNCHIST, cJSON_GetObjectItemCaseSensitive(j, "sync_history"),
	                       "status", MB_MAX_STATUS_BYTES, "error", true, limit, &s.hist_next)))
		return rc;
	s.has_status = status != NULL;
	if (status)
		strcpy(s.status, status);
	return t ? st_sync_store(t, &s) : 0;
}

/* -------------------------------------------------------------- errors */

static int load_last_error(const ld *l, const cJSON *j, st_errors *s)
{
	int rc = 0;
	const cJSON *le = get(l, j, "last_error", &rc);
	const char *type, *msg;

	if (rc)
		return rc;
	if (!cJSON_IsObject(le))
		return bad(l, ": must be an object", "last_error", NULL);
	if (!le->child)
		return 0;
	if ((rc = get_time(l, le, "timestamp", false, &s->last_ts)) ||
	    (rc = get_text(l, le, "error_type", 1, MB_MAX_TYPE_BYTES, false, &type)) ||
	    (rc = get_text(l, le, "message", 0, MB_MAX_TEXT_BYTES, false, &msg)))
		return rc;
	strcpy(s->last_type, type);
	strcpy(s->last_msg, msg);
	return 0;
}

/* One pattern with its resolution and the time it was last seen, if any. */
static int load_errtype(const ld *l, kv_txn *t, const cJSON *p, const cJSON *res,
                        const cJSON *seen, uint64_t *resolved)
{
	const cJSON *r = cJSON_GetObjectItemCaseSensitive(res, p->string);
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(seen, p->string);
	static const char *const rkeys[] = { "steps", "timestamp", "resolved", NULL };
	size_t len = strlen(p->string);
	const char *steps = "";
	st_errtype et;
	int rc = 0;

	memset(&et, 0, sizeof et);
	et.resolved_at = et.last_seen = MB_NEVER;
	if (!len || len > MB_MAX_TYPE_BYTES || !json_whole(p, MB_JSON_WHOLE_MAX, &et.count))
		return mb_fail(l->tag, MB_EINVAL, "%s: patterns.\"%.64s\": must be a non-empty type "
		               "with a whole count from 0 to 9007199254740991", l->file, p->string);
	if (s && (rc = parse_time(l, s, "last_seen", true, &et.last_seen)))
		return rc;
	if (r) {
		if (!cJSON_IsObject(r))
			return bad(l, "\" must be an object", "resolutions.\"", NULL);
		if ((rc = only_keys(l, r, "resolutions entry", rkeys)) ||
		    (rc = get_text(l, r, "steps", 0, MB_MAX_TEXT_BYTES, false, &steps)) ||
		    (rc = get_time(l, r, "timestamp", false, &et.resolved_at)) ||
		    (rc = get_count(l, r, "resolved", &et.resolved)))
			return rc;
		if (et.resolved > et.count)
			return bad(l, " resolved more errors than its pattern counts",
			           "resolutions: a type", NULL);
		strcpy(et.steps, steps);
	}
	*resolved += et.resolved;
	return t ? st_errtype_store(t, p->string, len, &et) : 0;
}

/* Every key of @obj (resolutions) names a pattern. */
static int all_patterns(const ld *l, const cJSON *obj, const char *what, const cJSON *pat)
{
	for (const cJSON *r = obj->child; r; r = r->next)
		if (!cJSON_GetObjectItemCaseSensitive(pat, r->string))
			return mb_fail(l->tag, MB_EINVAL, "%s: %s.\"%.64s\": no such pattern",
			               l->file, what, r->string);
	return 0;
}

/* @seen, checkpoint.json's error_types.last_seen (NULL: none; checked by
 * read_ckpt()), says which types a bank at MB_MAX_ERROR_TYPES drops first;
 * its entries for types that are not patterns are ignored (an
 * error_log.json edited by hand beside it). */
static int load_patterns(const ld *l, kv_txn *t, const cJSON *j, const cJSON *seen,
                         uint64_t *sum, uint64_t *resolved)
{
	const cJSON *pat = cJSON_GetObjectItemCaseSensitive(j, "patterns");
	const cJSON *res = cJSON_GetObjectItemCaseSensitive(j, "resolutions");
	int rc = 0;

	if (!cJSON_IsObject(pat) || !cJSON_IsObject(res))
		return bad(l, " must be objects", "patterns and resolutions", NULL);
	if ((rc = all_patterns(l, res, "resolutions", pat)))
		return rc;
	for (const cJSON *p = pat->child; p && !rc; p = p->next) {
		uint64_t n = 0;
		rc = load_errtype(l, t, p, res, seen, resolved);
		/* checked by load_errtype(); 1,000 of them cannot wrap */
		if (!rc && json_whole(p, MB_JSON_WHOLE_MAX, &n))
			*sum += n;
	}
	return rc;
}

/* total_errors and resolved_errors count every error logged and resolved;
 * patterns and resolutions only those of the types kept (@ckpt's
 * error_types.dropped, membank's, counts those that were not). */
static int load_errors(kv_txn *t, const cJSON *j, const cJSON *ckpt, uint32_t limit,
                       const void *tag)
{
	static const char *const stat_keys[] = { "total_errors", "resolved_errors", NULL };
	ld l = { "error_log.json", tag };
	const cJSON *stats = cJSON_GetObjectItemCaseSensitive(j, "error_stats");
	const cJSON *et = cJSON_GetObjectItemCaseSensitive(ckpt, "error_types");
	const cJSON *dropped = cJSON_GetObjectItemCaseSensitive(et, "dropped");
	uint64_t sum = 0, resolved = 0;
	st_errors s;
	int rc = 0;

	memset(&s, 0, sizeof s);
	s.last_ts = MB_NEVER;
	if (!cJSON_IsObject(stats))
		return bad(&l, ": must be an object", "error_stats", NULL);
	if ((rc = only_keys(&l, stats, "error_stats", stat_keys)) ||
	    (rc = get_count(&l, stats, "total_errors", &s.total)) ||
	    (rc = get_count(&l, stats, "resolved_errors", &s.resolved)) ||
	    (rc = load_last_error(&l, j, &s)) ||
	    (rc = load_patterns(&l, t, j, cJSON_GetObjectItemCaseSensitive(et, "last_seen"), &sum,
	                        &resolved)) ||
	    (rc = load_history(&l, t, KV_ERRHIST, cJSON_GetObjectItemCaseSensitive(j, "errors"),
	                       "error_type", MB_MAX_TYPE_BYTES, "message", false, limit, &s.hist_next)))
		return rc;
	if (dropped)  /* checked by read_ckpt() */
		json_whole(dropped, MB_JSON_WHOLE_MAX, &s.types_dropped);
	/* at least what the patterns count: more when types were dropped, which
	 * the four files alone (without checkpoint.json) cannot tell */
	if (sum > s.total || resolved > s.resolved || s.resolved > s.total)
		return mb_fail(tag, MB_EINVAL, "error_log.json: error_stats (%llu total, %llu resolved) "
		               "disagree with patterns and resolutions (%llu, %llu)",
		               (unsigned long long)s.total, (unsigned long long)s.resolved,
		               (unsigned long long)sum, (unsigned long long)resolved);
	/* a file from before the bound may hold more types than are kept */
	if (t && (rc = st_errtypes_trim(t, MB_MAX_ERROR_TYPES + 1, &s.types_dropped)))
		return rc;
	return t ? st_errors_store(t, &s) : 0;
}

/* -------------------------------------------------------------- config */

static int load_config(kv_txn *t, const mb_buf *doc, const void *tag)
{
	mb_buf extra = { 0 };
	mb_config c;
	int rc = config_from_file(doc->data, doc->len, tag, &c, &extra);

	if (rc == MB_ECORRUPT)
		rc = mb_fail(tag, MB_EINVAL, "config_cache.json: bad configuration");
	else if (rc)
		rc = mb_fail(tag, rc, "config_cache.json: %s",
		             *mb_last_error(tag) ? mb_last_error(tag) : mb_strerror(rc));
	if (!rc && t && extra.len)
		rc = kv_put(t, KV_META, (kv_val){ CONFIG_EXTRA_KEY, sizeof CONFIG_EXTRA_KEY - 1 },
		            (kv_val){ extra.data, extra.len });
	buf_free(&extra);
	return rc || !t ? rc : st_config_store(t, &c);
}

/* --------------------------------------------------------------- pages */

typedef struct scan {
	const char *base, *p, *end;
	const void *tag;
	kv_txn **t;        /* the transaction pages go into */
	kv_env *batch;     /* non-NULL: commit every LOAD_BATCH_BYTES (a bank
	                      built aside, which nobody sees before it is whole) */
	uint64_t in_batch; /* bytes dirtied since the last commit (dirtied()) */
	bool index;        /* the time index is kept (apply_index_on()) */
	load_tally *tally; /* NULL, or pages counted and the file's digest */
	const char *crc_at;/* the file's bytes before it are in tally->file */
	mb_buf mp, val;    /* one page's msgpack and store value, reused */
	progress *prog;    /* NULL, or stepped per page */
} scan;

/* LMDB keeps a write transaction's dirty pages in memory (and refuses
 * more than 128k of them), so a bank built aside is committed every
 * LOAD_BATCH_BYTES of pages it may have dirtied (dirtied()): the heap stays
 * flat however large the file.  Larger batches save little when pages come
 * in key order (a commit writes the same pages), and hold more memory. */
#define LOAD_BATCH_BYTES ((uint64_t)16 << 20)

static int scan_fail(const scan *s, const char *what)
{
	return mb_fail(s->tag, MB_EINVAL, "notion_pages.json: byte %zu: %s",
	               (size_t)(s->p - s->base), what);
}

static void ws(scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\t' || *s->p == '\r'))
		s->p++;
}

static bool eat(scan *s, char c)
{
	ws(s);
	if (s->p < s->end && *s->p == c) {
		s->p++;
		return true;
	}
	return false;
}

/* The extent of one JSON value starting at s->p (not checked here: cJSON
 * checks it); depth is bounded so a hostile file cannot run us deep. */
static int value_extent(scan *s, const char **start, size_t *len)
{
	const char *p, *end = s->end;  /* locals: s->p would be stored every byte */
	unsigned depth = 0;
	bool str = false;

	ws(s);
	*start = p = s->p;
	for (; p < end; p++) {
		char c = *p;
		if (str) {
			/* most of a page is string bytes: skip them eight at a
			 * time, then in a tight loop */
			uint64_t w;

			while (end - p >= 8 && (memcpy(&w, p, 8), !mb_json_stops8(w)))
				p += 8;
			if (p >= end)
				break;
			c = *p;
			while (c != '"' && c != '\\' && ++p < end)
				c = *p;
			if (p >= end)
				break;
			if (c == '\\')
				p++;
			else if ((str = false, depth == 0)) {
				p++;
				break;
			}
		} else if (c == '"')
			str = true;
		else if (c == '{' || c == '[') {
			if (++depth > MB_MAX_DEPTH + 2) {
				s->p = p;
				return scan_fail(s, "nested too deep");
			}
		} else if (c == '}' || c == ']') {
			if (depth == 0)
				break;
			if (--depth == 0) {
				p++;
				break;
			}
		} else if (depth == 0 && (c == ',' || c == ' ' || c == '\n' || c == '\r' || c == '\t'))
			break;
	}
	s->p = p;
	if (p > end || p == *start || str || depth)
		return scan_fail(s, "truncated or malformed value");
	*len = (size_t)(p - *start);
	return 0;
}

static int parse_at(scan *s, size_t max, const char *what, cJSON **out)
{
	const char *start = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;  /* callers free it whether or not the value was parsed */
	if ((rc = value_extent(s, &start, &len)))
		return rc;
	if (len > max)
		return mb_fail(s->tag, MB_EINVAL, "notion_pages.json: byte %zu: %s larger than %zu bytes",
		               (size_t)(start - s->base), what, max);
	rc = json_parse(start, len, max, what, s->tag, out);
	if (rc)
		mb_fail(s->tag, rc, "notion_pages.json: byte %zu: %s", (size_t)(start - s->base),
		        mb_last_error(s->tag));
	return rc;
}

/* A key of printable ASCII without escapes (every page id membank
 * writes) is copied as it stands; any other goes through cJSON. */
static int read_key(scan *s, char *key, size_t cap)
{
	const char *q;
	cJSON *k;
	int rc;

	ws(s);
	if (s->p >= s->end || *s->p != '"')
		return scan_fail(s, "expected a key");
	for (q = s->p + 1; q < s->end && *q >= 0x20 && *q < 0x7f && *q != '"' && *q != '\\' &&
	                   (size_t)(q - s->p) <= cap; q++)
		;
	if (q < s->end && *q == '"' && (size_t)(q - s->p) <= cap) {  /* shorter than cap */
		memcpy(key, s->p + 1, (size_t)(q - s->p - 1));
		key[q - s->p - 1] = '\0';
		s->p = q + 1;
		return eat(s, ':') ? 0 : scan_fail(s, "expected ':'");
	}
	if ((rc = parse_at(s, cap * 6 + 2, "key", &k)))
		return rc;
	if (!cJSON_IsString(k) || strlen(k->valuestring) >= cap) {
		cJSON_Delete(k);
		return scan_fail(s, "key too long");
	}
	strcpy(key, k->valuestring);
	cJSON_Delete(k);
	return eat(s, ':') ? 0 : scan_fail(s, "expected ':'");
}

/* What a put of @n bytes may add to the transaction's dirty pages: an
 * append fills the last leaf, an insert elsewhere may copy a whole one. */
static uint64_t dirtied(size_t n, bool appended)
{
	return appended ? n : n + 4096;
}

/* MB_EEXIST: a duplicate id.  Pages in key order are appended. */
static int store_page(scan *s, const char *id, int64_t ts, const uint8_t *props, size_t plen)
{
	uint8_t tkey[8 + MB_MAX_ID_BYTES];
	kv_txn *t = *s->t;
	size_t len = strlen(id);
	bool end;
	int rc;

	if (!t)
		return 0;  /* checking only (a duplicate is the loader's to find) */
	if ((rc = st_page_value(&s->val, ts, props, plen)) ||
	    (rc = kv_put_new(t, KV_PAGES, (kv_val){ id, len }, (kv_val){ s->val.data, s->val.len },
	                     true, &end)))
		return rc;
	s->in_batch += dirtied(len + s->val.len, end);
	if (!s->index)
		return 0;
	/* (time, id) pairs are unique, since ids are */
	rc = kv_put_new(t, KV_PTIME, (kv_val){ tkey, st_ptime_key(tkey, ts, id, len) },
	                (kv_val){ "\xc0", 1 } /* nil */, true, &end);  /* nil */
	s->in_batch += dirtied(8 + len, end);
	return rc;
}

/* The page's {"properties":{...},"last_updated":"..."} as msgpack: where
 * its properties are, and its time.  NULL, or what is wrong. */
static const char *page_parts(const mb_buf *mp, const uint8_t **props, size_t *plen, int64_t *ts)
{
	static const char shape[] = "must be {\"properties\":{...},\"last_updated\":\"...\"}";
	/* json_prefix_to_mp() made @mp, checked as mp_check() would (UTF-8,
	 * string keys, depth, finite floats): its extents need no second check */
	mp_reader r = { (const uint8_t *)mp->data, (const uint8_t *)mp->data + mp->len, true };
	bool have_props = false, have_ts = false;
	const char *k, *t;
	uint32_t n, klen, tlen;
	mp_kind kind;

	if (mp_read_map(&r, &n) || n != 2)
		return shape;
	for (uint32_t i = 0; i < n; i++) {
		if (mp_read_str(&r, &k, &klen))
			return shape;
		if (klen == 10 && !memcmp(k, "properties", 10) && !mp_peek(&r, &kind) &&
		    kind == MP_MAP) {
			*props = r.p;
			if (mp_skip(&r, 0))  /* depth as the store sees it: a page's own */
				return shape;
			*plen = (size_t)(r.p - *props);
			have_props = true;
		} else if (klen == 12 && !memcmp(k, "last_updated", 12) && !mp_read_str(&r, &t, &tlen)) {
			if (mb_parse_time(t, tlen, ts))
				return "last_updated: must be a timestamp like 2026-01-31T12:00:00.000000Z";
			have_ts = true;
		} else
			return shape;
	}
	return have_props && have_ts ? NULL : shape;
}

/* A page is read by jsonmp.c, not cJSON, so that its numbers stay exact;
 * the wrapper object adds one level to the properties' depth. */
static int load_page(scan *s, const char *id)
{
	const uint8_t *props = NULL;
	const char *start = NULL, *wrong;
	size_t len = 0, plen = 0;
	int64_t ts = 0;
	int rc;

	if (!*id || mb_utf8_bad_at(id, strlen(id)) != (size_t)-1)
		return scan_fail(s, "a page id is empty or not UTF-8");
	ws(s);
	start = s->p;
	s->mp.len = 0;
	if ((rc = json_prefix_to_mp(start, (size_t)(s->end - start), MB_MAX_PAGE_JSON,
	                            MB_MAX_DEPTH + 1, "page", s->tag, &s->mp, &len)))
		return mb_fail(s->tag, rc, "notion_pages.json: byte %zu: %s",
		               (size_t)(start - s->base), mb_last_error(s->tag));
	s->p = start + len;
	if ((wrong = page_parts(&s->mp, &props, &plen, &ts)))
		rc = mb_fail(s->tag, MB_EINVAL, "notion_pages.json: pages.\"%.64s\": %s", id, wrong);
	else
		rc = store_page(s, id, ts, props, plen);
	if (!rc && s->tally) {
		s->tally->pages++;
		s->tally->expired += s->tally->cutoff != MB_NEVER && ts <= s->tally->cutoff;
	}
	if (rc == MB_EEXIST)
		rc = mb_fail(s->tag, MB_EINVAL, "notion_pages.json: pages.\"%.64s\": duplicate id", id);
	return rc;
}

/* The file's bytes up to @to into its digest: right behind the parse,
 * while they are in the cache. */
static void digest_to(scan *s, const char *to)
{
	if (!s->tally || to <= s->crc_at)
		return;
	s->tally->file.crc = mbj_crc32c(s->tally->file.crc, s->crc_at, (size_t)(to - s->crc_at));
	s->tally->file.bytes += (uint64_t)(to - s->crc_at);
	s->crc_at = to;
}

static int next_batch(scan *s)
{
	int rc;

	if (!s->batch || s->in_batch < LOAD_BATCH_BYTES)
		return 0;
	s->in_batch = 0;
	rc = kv_commit(*s->t);
	*s->t = NULL;
	return rc ? rc : kv_begin(s->batch, true, s->t);
}

static int load_page_map(scan *s, uint64_t *n)
{
	char id[MB_MAX_ID_BYTES + 1];
	int rc;

	if (!eat(s, '{'))
		return scan_fail(s, "pages: expected '{'");
	if (eat(s, '}'))
		return 0;
	do {
		if ((rc = read_key(s, id, sizeof id)) || (rc = load_page(s, id)) ||
		    (rc = next_batch(s)) ||
		    (rc = progress_step(s->prog, (uint64_t)(s->p - s->base))))
			return rc;
		digest_to(s, s->p);
		++*n;
	} while (eat(s, ','));
	return eat(s, '}') ? 0 : scan_fail(s, "pages: expected ',' or '}'");
}

static int load_meta(scan *s, uint64_t n, int64_t *last_sync)
{
	static const char *const keys[] = { "total_pages", "last_sync", NULL };
	ld l = { "notion_pages.json", s->tag };
	uint64_t total;
	cJSON *j;
	int rc = parse_at(s, 4096, "metadata", &j);

	if (rc)
		return rc;
	if (!cJSON_IsObject(j))
		rc = bad(&l, ": must be an object", "metadata", NULL);
	if (!rc && !(rc = only_keys(&l, j, "metadata", keys)) &&
	    !(rc = get_count(&l, j, "total_pages", &total)) &&
	    !(rc = get_time(&l, j, "last_sync", true, last_sync)) && total != n)
		rc = mb_fail(s->tag, MB_EINVAL, "notion_pages.json: metadata.total_pages is %llu "
		             "but the file holds %llu pages", (unsigned long long)total,
		             (unsigned long long)n);
	cJSON_Delete(j);
	return rc;
}

static int walk_pages(scan *s, int64_t *last_sync)
{
	char key[32];
	bool seen[3] = { false, false, false };
	uint64_t n = 0;
	int64_t last_updated = MB_NEVER;
	cJSON *j;
	int rc;

	if (!eat(s, '{'))
		return scan_fail(s, "expected '{'");
	do {
		if ((rc = read_key(s, key, sizeof key)))
			return rc;
		if (!strcmp(key, "pages") && !seen[0]) {
			seen[0] = true;
			rc = load_page_map(s, &n);
		} else if (!strcmp(key, "last_updated") && !seen[1]) {
			ld l = { "notion_pages.json", s->tag };
			seen[1] = true;
			if (!(rc = parse_at(s, 64, "last_updated", &j)))
				rc = parse_time(&l, j, "last_updated", true, &last_updated);
			cJSON_Delete(j);
		} else if (!strcmp(key, "metadata") && !seen[2] && seen[0]) {
			seen[2] = true;
			rc = load_meta(s, n, last_sync);
		} else
			return scan_fail(s, "unknown or repeated key (pages must come before metadata)");
		if (rc)
			return rc;
	} while (eat(s, ','));
	if (!eat(s, '}'))
		return scan_fail(s, "expected ',' or '}'");
	ws(s);
	if (s->p != s->end)
		return scan_fail(s, "text after the document");
	if (!seen[0] || !seen[1] || !seen[2])
		return scan_fail(s, "missing pages, last_updated or metadata");
	digest_to(s, s->end);
	return *s->t ? st_pages_store(*s->t, last_updated) : 0;
}

static int load_pages(kv_txn **t, kv_env *batch, const char *dir, const load_docs *d,
                      bool index, int64_t *last_sync, const void *tag)
{
	char path[4096];
	struct stat st;
	void *map;
	scan s;
	int fd, rc;

	if (d->no_pages)
		return *t ? st_pages_store(*t, MB_NEVER) : 0;
	mb_pathf(path, sizeof path, "%s/notion_pages.json", dir);
	fd = mb_open_fd(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0);
	if (fd < 0)
		return mb_fail(tag, errno == ENOENT ? MB_EINVAL : mb_errno_code(errno), "%s: %s",
		               path, strerror(errno));
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > MB_MAX_PAGES_FILE ||
	    st.st_size == 0) {
		close(fd);
		return mb_fail(tag, MB_EINVAL, "%s: not a regular, non-empty file of at most %llu bytes",
		               path, (unsigned long long)MB_MAX_PAGES_FILE);
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
		return mb_fail(tag, mb_errno_code(errno), "%s: mmap: %s", path, strerror(errno));
	madvise(map, (size_t)st.st_size, MADV_SEQUENTIAL);
	s = (scan){ map, map, (const char *)map + st.st_size, tag, t, batch, 0, index, d->tally,
	            map, { 0 }, { 0 }, d->progress };
	if (d->tally)
		d->tally->file = (load_digest){ 0, 0 };
	if (d->progress)
		d->progress->p.bytes_total = (uint64_t)st.st_size;
	rc = walk_pages(&s, last_sync);
	buf_free(&s.mp);
	buf_free(&s.val);
	munmap(map, (size_t)st.st_size);
	return rc;
}

int load_all(kv_txn **tp, kv_env *batch, const char *dir, const load_docs *d, uint32_t limit,
             const void *tag)
{
	kv_txn *t;
	int64_t last_sync = MB_NEVER;
	mb_buf extra = { 0 };
	mb_config cfg;
	bool index;
	int rc;

	/* the time index is built only when the files' config uses it (one
	 * that does not read fails the load below; until then, index) */
	if (config_from_file(d->config.data, d->config.len, tag, &cfg, &extra)) {
		index = true;
		mb_clear_error(tag);
	} else {
		index = apply_index_on(&cfg);
	}
	buf_free(&extra);
	if ((rc = load_pages(tp, batch, dir, d, index, &last_sync, tag)))
		return rc;
	t = *tp;
	if ((rc = load_sync(t, d->sync, last_sync, limit, tag)) ||
	    (rc = load_errors(t, d->errors, d->ckpt, limit, tag)) || (rc = load_config(t, &d->config, tag)) ||
	    !t || (rc = load_removed(t, d->ckpt)) || (rc = st_config_load(t, &cfg)))
		return rc;
	/* the pages were indexed by time; the index is kept only when used */
	return apply_index_on(&cfg) ? 0 : kv_drop(t, KV_PTIME);
}

int load_check(const char *dir, uint32_t limit, bool skip_pages, const void *tag)
{
	kv_txn *none = NULL;
	load_docs d;
	int rc = load_docs_read(dir, tag, &d);

	if (!rc && skip_pages)
		d.no_pages = true;
	if (!rc)
		rc = load_all(&none, NULL, dir, &d, limit, tag);
	load_docs_free(&d);
	return rc;
}
