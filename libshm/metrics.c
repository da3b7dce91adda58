/*
 * metrics.c - the bank's figures as OpenMetrics text (mb_metrics).
 *
 * The exposition format (OpenMetrics 1.0, which Prometheus reads): per
 * family "# HELP name text", "# TYPE name type" and, for a family with a
 * unit, "# UNIT name unit" (the name then ends with _unit); then its
 * samples "name{bank="PATH"} value", a counter's sample named name_total;
 * the text ends with "# EOF\n".  Label values escape \ " and newline
 * (\\ \" \n); a byte of the path that is not UTF-8 becomes U+FFFD (label
 * values are UTF-8).  HELP text escapes \ and newline.  Integers print
 * exactly (%llu); ages as seconds with microseconds.
 *
 * The store's records (journal end, sync, errors, error types) come from
 * one read transaction, so those counters agree with each other.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "apply.h"
#include "bank.h"
#include "group.h"
#include "load.h"

/* One metrics text under way: the buffer and the escaped bank label. */
typedef struct mtext {
	mb_buf out;
	mb_buf label;   /* bank="..." */
} mtext;

static void escape_label(mb_buf *b, const char *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		size_t bad = mb_utf8_bad_at(s + i, len - i);
		size_t good = bad == (size_t)-1 ? len - i : bad;
		for (size_t k = 0; k < good; k++) {
			char ch = s[i + k];
			if (ch == '\\' || ch == '"')
				buf_addc(b, '\\'), buf_addc(b, ch);
			else if (ch == '\n')
				buf_adds(b, "\\n");
			else
				buf_addc(b, ch);
		}
		i += good;
		if (i < len) {
			buf_adds(b, "\xef\xbf\xbd");   /* U+FFFD for the byte */
			i++;
		}
	}
}

/* "# HELP", "# TYPE" and, when @unit is not NULL, "# UNIT" of a family. */
static void family(mtext *m, const char *name, const char *type, const char *unit,
                   const char *help)
{
	buf_adds(&m->out, "# HELP ");
	buf_adds(&m->out, name);
	buf_addc(&m->out, ' ');
	buf_adds(&m->out, help);   /* our own text: no \ or newline */
	buf_adds(&m->out, "\n# TYPE ");
	buf_adds(&m->out, name);
	buf_addc(&m->out, ' ');
	buf_adds(&m->out, type);
	buf_addc(&m->out, '\n');
	if (unit) {
		buf_adds(&m->out, "# UNIT ");
		buf_adds(&m->out, name);
		buf_addc(&m->out, ' ');
		buf_adds(&m->out, unit);
		buf_addc(&m->out, '\n');
	}
}

/* A sample: @suffix is "_total" for a counter; @extra another label
 * (already escaped, "" for none). */
static void sample(mtext *m, const char *name, const char *suffix, const char *extra,
                   const char *value)
{
	buf_adds(&m->out, name);
	buf_adds(&m->out, suffix);
	buf_addc(&m->out, '{');
	buf_add(&m->out, m->label.data, m->label.len);
	buf_adds(&m->out, extra);
	buf_adds(&m->out, "} ");
	buf_adds(&m->out, value);
	buf_addc(&m->out, '\n');
}

static void sample_u64(mtext *m, const char *name, const char *suffix, uint64_t v)
{
	char text[24];

	snprintf(text, sizeof text, "%llu", (unsigned long long)v);
	sample(m, name, suffix, "", text);
}

static void gauge(mtext *m, const char *name, const char *unit, const char *help, uint64_t v)
{
	family(m, name, "gauge", unit, help);
	sample_u64(m, name, "", v);
}

static void counter(mtext *m, const char *name, const char *help, uint64_t v)
{
	family(m, name, "counter", NULL, help);
	sample_u64(m, name, "_total", v);
}

static void seconds(mtext *m, const char *name, const char *suffix, double s)
{
	char text[48];

	snprintf(text, sizeof text, "%.6f", s);
	sample(m, name, suffix, "", text);
}

/* checkpoint.json of the bank directory: the seq it covers and when it
 * was written (its mtime).  false when there is none (or it is unreadable:
 * the doctor and recovery say why; metrics only leave the figures out). */
static bool checkpoint_of(mb_bank *b, uint64_t *seq, struct timespec *when, uint64_t *write_us)
{
	char path[4096];
	struct stat st;
	cJSON *j = NULL;
	bool ok;

	/* the whole file (bounded), not its first bytes: the error types'
	 * times make it as long as there are types */
	mb_pathf(path, sizeof path, "%s/%s", b->path, MB_CHECKPOINT_FILE);
	if (lstat(path, &st) || load_parse_file(b->path, MB_CHECKPOINT_FILE,
	                                        MB_MAX_CHECKPOINT_FILE, NULL, &j)) {
		mb_clear_error(NULL);
		return false;
	}
	ok = json_whole(cJSON_GetObjectItemCaseSensitive(j, "seq"), MB_JSON_WHOLE_MAX, seq);
	if (!json_whole(cJSON_GetObjectItemCaseSensitive(j, "write_us"), MB_JSON_WHOLE_MAX,
	                write_us))
		*write_us = UINT64_MAX;   /* an older checkpoint: not known */
	*when = st.st_mtim;
	cJSON_Delete(j);
	return ok;
}

/* The samples of membank_errors_by_type_total{type="..."}, one per error
 * type, into @out (written after the others: the family comes last). */
static int error_types(const mtext *m, kv_txn *t, mb_buf *out)
{
	kv_cursor *c;
	kv_val k, v;
	st_errtype et;
	char text[24];
	int rc;

	if ((rc = kv_cursor_open(t, KV_ERRTYPES, &c)))
		return rc;
	for (rc = kv_cursor_seek(c, NULL, &k, &v); !rc; rc = kv_cursor_next(c, &k, &v)) {
		if ((rc = st_errtype_decode(v, &et)))
			break;
		buf_adds(out, "membank_errors_by_type_total{");
		buf_add(out, m->label.data, m->label.len);
		buf_adds(out, ",type=\"");
		escape_label(out, k.data, k.len);
		snprintf(text, sizeof text, "\"} %llu\n", (unsigned long long)et.count);
		buf_adds(out, text);
	}
	kv_cursor_close(c);
	return rc == MB_ENOTFOUND ? 0 : rc;
}

/* The figures read in the one transaction. */
typedef struct figures {
	mbj_pos end;
	st_sync sync;
	st_errors errors;
	st_removed removed;   /* pages evicted and purged so far */
	uint64_t live;        /* pages not expired */
} figures;

static void store_metrics(mtext *m, const kv_info *ki, uint64_t file_bytes)
{
	gauge(m, "membank_pages", NULL, "Pages stored (as mb_page_count; pages past "
	      "ttl_seconds count until a snapshot purges them).", ki->entries[KV_PAGES]);
	gauge(m, "membank_store_file_bytes", "bytes", "Size of store/data.mdb.", file_bytes);
	gauge(m, "membank_store_map_size_bytes", "bytes", "Size of the store's memory map.",
	      ki->map_size);
	gauge(m, "membank_store_map_used_bytes", "bytes", "Bytes of the map in use.",
	      ki->map_used);
	gauge(m, "membank_store_last_txn", NULL, "Id of the store's last committed "
	      "transaction.", ki->last_txn);
	gauge(m, "membank_store_readers", NULL, "Reader slots in use.", ki->readers);
	gauge(m, "membank_store_max_readers", NULL, "Reader slots in all.", ki->max_readers);
	gauge(m, "membank_store_stale_readers", NULL, "Reader slots of dead processes.",
	      ki->stale_readers);
	gauge(m, "membank_store_reader_lag_transactions", NULL, "Transactions the oldest "
	      "live reader is behind the last commit.",
	      ki->oldest_reader ? ki->last_txn - ki->oldest_reader : 0);
}

static void journal_metrics(mtext *m, mb_bank *b, const figures *f)
{
	mbj_usage ju = { 0 };

	mbj_usage_of(b->journal_dir, &ju);
	gauge(m, "membank_journal_segments", NULL, "Journal segment files kept.", ju.segments);
	gauge(m, "membank_journal_bytes", "bytes", "Bytes of the journal segments kept.",
	      ju.bytes);
	gauge(m, "membank_journal_first_seq", NULL, "Seq of the oldest journal record kept.",
	      ju.first_seq);
	gauge(m, "membank_journal_last_seq", NULL, "Seq of the last committed journal record.",
	      f->end.seq);
	gauge(m, "membank_journal_durable_seq", NULL, "Seq up to which this process knows the "
	      "journal is on disk.", mbj_durable_seq(b->jn));
}

/* What the writers of the bank did on this machine since its boot:
 * group.shm's and sync.shm's counters (they start again at a reboot, as
 * counters may). */
static void write_path_metrics(mtext *m, mb_bank *b)
{
	static const char *const kinds[] = {
		[REC_PAGE_PUT] = "page_put", [REC_PAGE_MERGE] = "page_merge",
		[REC_PAGE_DELETE] = "page_delete", [REC_SYNC] = "sync",
		[REC_ERROR_LOG] = "error_log", [REC_ERROR_RESOLVE] = "error_resolve",
		[REC_CONFIG] = "config_update", [REC_PURGE] = "purge", [REC_BATCH] = "batch",
		[REC_GROUP] = "group",
	};
	gq_figures g;
	char text[24], label[48];

	gq_stats(b->gq, &g);
	family(m, "membank_writes", "counter", NULL, "Records journaled, by kind (a batch "
	       "is one), on this machine since its boot.");
	for (unsigned i = 0; i < sizeof kinds / sizeof *kinds; i++) {
		if (!kinds[i])
			continue;
		snprintf(text, sizeof text, "%llu", (unsigned long long)g.by_type[i]);
		snprintf(label, sizeof label, ",kind=\"%s\"", kinds[i]);
		sample(m, "membank_writes", "_total", label, text);
	}
	counter(m, "membank_write_groups", "Write groups (one journal append and one "
	        "transaction each) on this machine since its boot.", g.passes);
	counter(m, "membank_write_group_records", "Records those groups appended.", g.records);
	counter(m, "membank_journal_fdatasyncs", "fdatasyncs that made journal records "
	        "durable (each serves a whole group commit) on this machine since its boot.",
	        mbj_sync_count(b->jn));
}

static void checkpoint_metrics(mtext *m, mb_bank *b)
{
	struct timespec when, now;
	uint64_t seq = 0, write_us = UINT64_MAX;
	bool have = checkpoint_of(b, &seq, &when, &write_us);

	gauge(m, "membank_checkpoint_seq", NULL, "Journal seq the checkpoint covers (0: none "
	      "yet; recovery replays the whole journal).", have ? seq : 0);
	/* Without a checkpoint the families stand without samples. */
	family(m, "membank_checkpoint_timestamp_seconds", "gauge", "seconds",
	       "When the checkpoint was written (Unix time).");
	if (have)
		seconds(m, "membank_checkpoint_timestamp_seconds", "",
		        (double)when.tv_sec + when.tv_nsec / 1e9);
	family(m, "membank_checkpoint_age_seconds", "gauge", "seconds",
	       "Seconds since the checkpoint was written.");
	if (have) {
		clock_gettime(CLOCK_REALTIME, &now);
		double age = (double)(now.tv_sec - when.tv_sec) + (now.tv_nsec - when.tv_nsec) / 1e9;
		seconds(m, "membank_checkpoint_age_seconds", "", age > 0 ? age : 0);
	}
	family(m, "membank_checkpoint_duration_seconds", "gauge", "seconds",
	       "How long writing the checkpoint took.");
	if (have && write_us != UINT64_MAX)
		seconds(m, "membank_checkpoint_duration_seconds", "", (double)write_us / 1e6);
}

static void state_metrics(mtext *m, const kv_info *ki, const figures *f, uint32_t limit)
{
	counter(m, "membank_sync_successes", "Syncs recorded as a success (success_count).",
	        f->sync.successes);
	counter(m, "membank_sync_errors", "Syncs recorded with an error (error_count).",
	        f->sync.errors);
	family(m, "membank_sync_last_success_timestamp_seconds", "gauge", "seconds",
	       "When the last successful sync was recorded (Unix time).");
	if (f->sync.last_success != MB_NEVER)
		seconds(m, "membank_sync_last_success_timestamp_seconds", "",
		        (double)f->sync.last_success / 1e6);
	gauge(m, "membank_sync_history_entries", NULL, "Entries of sync_history kept.",
	      ki->entries[KV_SYNCHIST]);
	counter(m, "membank_errors", "Errors logged (total_errors).", f->errors.total);
	counter(m, "membank_errors_resolved", "Errors resolved (resolved_errors).",
	        f->errors.resolved);
	gauge(m, "membank_error_types", NULL, "Distinct error types logged.",
	      ki->entries[KV_ERRTYPES]);
	gauge(m, "membank_errors_kept", NULL, "Entries of the error log kept.",
	      ki->entries[KV_ERRHIST]);
	gauge(m, "membank_history_limit", NULL, "Entries each history keeps (fixed at "
	      "creation).", limit);
	counter(m, "membank_pages_evicted", "Pages dropped by cache_settings.max_entries.",
	        f->removed.evicted);
	counter(m, "membank_pages_purged", "Expired pages a snapshot removed (ttl_seconds).",
	        f->removed.purged);
	gauge(m, "membank_pages_expired", NULL, "Pages older than ttl_seconds, absent to every "
	      "operation, not purged yet.", ki->entries[KV_PAGES] - f->live);
}

/* The store's records from one read transaction; the map and reader
 * figures after it ends (as mb_stats(): our own reader is not counted as
 * the oldest). */
static int write_metrics(mb_bank *b, mtext *m)
{
	char data[4096];
	struct stat st;
	figures f = { 0 };
	mb_buf types = { 0 };
	kv_info ki;
	kv_txn *t;
	int rc;

	if ((rc = bank_read_begin(b, &t)))
		return rc;
	if (!(rc = bank_jend_load(t, &f.end)) && !(rc = st_sync_load(t, &f.sync)) &&
	    !(rc = st_errors_load(t, &f.errors)) && !(rc = st_removed_load(t, &f.removed)) &&
	    !(rc = apply_count_live(t, mb_now_us(), &f.live)))
		rc = error_types(m, t, &types);
	kv_abort(t);
	if (!rc)
		rc = kv_info_get(b->kv, &ki);
	if (rc) {
		buf_free(&types);
		return mb_fail(b, rc, "metrics: %s", mb_strerror(rc));
	}
	mb_pathf(data, sizeof data, "%s/data.mdb", b->store_dir);
	store_metrics(m, &ki, stat(data, &st) ? 0 : (uint64_t)st.st_size);
	journal_metrics(m, b, &f);
	write_path_metrics(m, b);
	checkpoint_metrics(m, b);
	state_metrics(m, &ki, &f, b->history_limit);
	family(m, "membank_errors_by_type", "counter", NULL,
	       "Errors logged of each type (the patterns of error statistics).");
	buf_add(&m->out, types.data, types.len);
	m->out.failed |= types.failed;
	buf_free(&types);
	buf_adds(&m->out, "# EOF\n");
	return 0;
}

int mb_metrics(mb_bank *b, char **text)
{
	mtext m = { { 0 }, { 0 } };
	int rc;

	if (!text)
		return mb_fail(b, MB_EINVAL, "metrics: output pointer is NULL");
	*text = NULL;
	if ((rc = bank_check(b)))
		return rc;
	buf_adds(&m.label, "bank=\"");
	escape_label(&m.label, b->path, strlen(b->path));
	buf_addc(&m.label, '"');
	rc = write_metrics(b, &m);
	if (!rc && (m.out.failed || m.label.failed))
		rc = mb_fail(b, MB_ENOMEM, "metrics: out of memory");
	if (!rc && !(*text = buf_take(&m.out, NULL)))
		rc = mb_fail(b, MB_ENOMEM, "metrics: out of memory");
	buf_free(&m.out);
	buf_free(&m.label);
	return rc;
}
