/*
 * cmd_doctor.c - membank doctor: check a bank and change nothing in it.
 *
 * Each check is one entry of the report {"bank","healthy","checks":[...]};
 * a check that fails makes the bank unhealthy (exit 4), a warning does not.
 * Opening the bank finishes what a crashed writer left (rolls a whole
 * record forward, cuts a torn tail), exactly as any process opening it
 * would: that is recovery, not a change of the bank's data.  Otherwise the
 * doctor writes nothing: like every command that only reads, it leaves
 * data.mdb, the journal and the JSON files as they were; only
 * store/lock.mdb, LMDB's reader table, changes (a reader takes a slot).
 * Unlike other opens it leaves the slots of dead processes as found and
 * reports them (LMDB resets the table itself when no process has the bank
 * open, so they are seen only beside a live process).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"

typedef struct report {
	cJSON *checks;
	bool healthy;
} report;

enum level { PASS, WARN, FAIL };

/* A check's entry {"check","result","detail":{...}}: the detail is an
 * object (its "message" says it in words, other members give the figures),
 * owned by the report from here on. */
static void add_detail(report *r, const char *name, enum level lv, cJSON *detail)
{
	static const char *const words[] = { "ok", "warning", "failed" };
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "check", name);
	cJSON_AddStringToObject(o, "result", words[lv]);
	cJSON_AddItemToObject(o, "detail", detail ? detail : cJSON_CreateObject());
	cJSON_AddItemToArray(r->checks, o);
	if (lv == FAIL)
		r->healthy = false;
}

static void add(report *r, const char *name, enum level lv, const char *message)
{
	cJSON *d = cJSON_CreateObject();

	cJSON_AddStringToObject(d, "message", message);
	add_detail(r, name, lv, d);
}

/* An exact count: cJSON keeps numbers as doubles, exact only to 2^53. */
static void add_count(cJSON *o, const char *key, uint64_t v)
{
	char text[24];

	snprintf(text, sizeof text, "%llu", (unsigned long long)v);
	cJSON_AddRawToObject(o, key, text);
}

/* The journal's report, as mb_journal_verify() wrote it (raw: its numbers
 * are copied, not parsed). */
static void check_journal(report *r, const char *path)
{
	char *json = NULL;
	int rc = mb_journal_verify(path, &json);

	if (rc == 0 && json)
		add_detail(r, "journal", PASS, cJSON_CreateRaw(json));
	else if (json && rc == MB_ECORRUPT) {
		cJSON *d = cJSON_CreateObject();
		cJSON_AddStringToObject(d, "message", *mb_last_error(NULL) ? mb_last_error(NULL)
		                                                           : mb_strerror(rc));
		cJSON_AddRawToObject(d, "report", json);
		add_detail(r, "journal", FAIL, d);
	} else
		add(r, "journal", FAIL, *mb_last_error(NULL) ? mb_last_error(NULL) : mb_strerror(rc));
	mb_free(json);
}

/* The walk feeds the progress line as the library's loops do: every
 * MB_PROGRESS_EVERY pages, then once finished. */
typedef struct walk {
	uint64_t pages;
	mb_progress_fn fn;  /* NULL: no progress line */
	mb_progress p;
} walk;

static int count_page(void *ctx, const char *id, const char *page)
{
	walk *w = ctx;

	(void)id;
	(void)page;
	if (++w->pages % MB_PROGRESS_EVERY == 0 && w->fn) {
		w->p.done = w->pages;
		w->fn(NULL, &w->p);
	}
	return 0;
}

/* Every record of the store decoded: pages, sync, errors, config. */
static void check_store(report *r, mb_bank *b, mb_progress_fn fn)
{
	char *doc = NULL;
	walk w = { 0 };
	uint64_t count = 0;
	cJSON *d;
	int rc;

	w.fn = fn;
	w.p = (mb_progress){ .phase = "doctor", .unit = "pages" };
	if (!(rc = mb_page_count(b, &count)) && fn) {
		w.p.total = count;
		fn(NULL, &w.p);
	}
	if (rc || (rc = mb_page_iterate(b, NULL, 0, count_page, &w)) ||
	    (rc = mb_sync_status(b, &doc))) {
		add(r, "store", FAIL, mb_last_error(b));
		return;
	}
	mb_free(doc);
	if ((rc = mb_error_stats(b, &doc)) || (mb_free(doc), rc = mb_config_get(b, &doc))) {
		add(r, "store", FAIL, mb_last_error(b));
		return;
	}
	mb_free(doc);
	if (fn) {
		w.p.done = w.p.total = w.pages;
		w.p.finished = true;
		fn(NULL, &w.p);
	}
	d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "message", "pages, sync, errors and config decoded "
	                                      "(stored beyond decoded: expired)");
	add_count(d, "pages_decoded", w.pages);
	add_count(d, "pages_stored", count);
	add_detail(r, "store", w.pages <= count ? PASS : FAIL, d);
}

static void check_readers(report *r, mb_bank *b)
{
	char *json = NULL;
	cJSON *j, *store, *d;
	double lag, stale;

	if (mb_stats(b, &json) || !(j = cJSON_Parse(json))) {
		add(r, "readers", FAIL, mb_last_error(b));
		mb_free(json);
		return;
	}
	store = cJSON_GetObjectItemCaseSensitive(j, "store");
	lag = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(store, "reader_lag_txns"));
	stale = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(store, "stale_readers"));
	/* The counts move from the stats document as they are. */
	d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "message", "reader slots in use; stale: of dead processes, "
	                                      "left as found; lag: transactions the oldest "
	                                      "reader is behind");
	cJSON_AddItemToObject(d, "readers", cJSON_DetachItemFromObjectCaseSensitive(store, "readers"));
	cJSON_AddItemToObject(d, "stale_readers",
	                      cJSON_DetachItemFromObjectCaseSensitive(store, "stale_readers"));
	cJSON_AddItemToObject(d, "reader_lag_txns",
	                      cJSON_DetachItemFromObjectCaseSensitive(store, "reader_lag_txns"));
	add_detail(r, "readers", lag > 10000 || stale > 0 ? WARN : PASS, d);
	cJSON_Delete(j);
	mb_free(json);
}

/* Modes: nothing for others, and for the group only if every file is. */
static void check_modes(report *r, const char *dir, int depth, int *bad, int *group, uid_t owner)
{
	char sub[4096];
	struct dirent *e;
	struct stat st;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
		if (lstat(sub, &st))
			continue;
		if ((st.st_mode & 07) || S_ISLNK(st.st_mode) || st.st_uid != owner) {
			if (!*bad) {
				cJSON *dt = cJSON_CreateObject();
				cJSON_AddStringToObject(dt, "message", "open to others, a symlink or "
				                                       "owned by another user");
				cJSON_AddStringToObject(dt, "path", sub);
				add_detail(r, "permissions", FAIL, dt);
			}
			++*bad;
		}
		if (st.st_mode & 070)
			++*group;
		if (S_ISDIR(st.st_mode) && depth < 3)
			check_modes(r, sub, depth + 1, bad, group, owner);
	}
	closedir(d);
}

static void check_permissions(report *r, const char *path)
{
	struct stat st;
	int bad = 0, group = 0;
	cJSON *d;

	if (lstat(path, &st))
		return;
	if (st.st_mode & 07) {
		d = cJSON_CreateObject();
		cJSON_AddStringToObject(d, "message", "the bank directory is open to others");
		cJSON_AddStringToObject(d, "path", path);
		add_detail(r, "permissions", FAIL, d);
		return;
	}
	check_modes(r, path, 0, &bad, &group, st.st_uid);
	if (bad)
		return;
	d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "message", "nothing open to others or owned by another "
	                                      "user");
	add_count(d, "group_accessible", (uint64_t)group);
	add_detail(r, "permissions", PASS, d);
}

static void check_checkpoint(report *r, const char *path, mb_bank *b)
{
	static const char *const files[] = { "notion_pages.json", "sync_status.json",
	                                     "error_log.json", "config_cache.json" };
	/* checkpoint.json holds error_types.last_seen too: up to ~1,000 types */
	enum { CKPT_MAX = 4 << 20 };
	char p[4096], *text;
	uint64_t last = 0;
	double seq;
	size_t n;
	cJSON *j, *d;
	FILE *f;

	snprintf(p, sizeof p, "%s/checkpoint.json", path);
	if (!(f = fopen(p, "r"))) {
		add(r, "checkpoint", PASS, "no snapshot yet: recovery replays the whole journal");
		return;
	}
	n = (text = malloc(CKPT_MAX)) ? fread(text, 1, CKPT_MAX - 1, f) : 0;
	fclose(f);
	j = text ? cJSON_ParseWithLength(text, n) : NULL;
	free(text);
	seq = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(j, "seq"));
	cJSON_Delete(j);
	mb_journal_last_seq(b, &last);
	for (size_t i = 0; i < 4; i++) {
		snprintf(p, sizeof p, "%s/%s", path, files[i]);
		if (access(p, R_OK)) {
			d = cJSON_CreateObject();
			cJSON_AddStringToObject(d, "message", "a file of the checkpoint is missing");
			cJSON_AddStringToObject(d, "path", p);
			add_detail(r, "checkpoint", FAIL, d);
			return;
		}
	}
	d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "message", "the snapshot covers the journal up to seq");
	if (seq == seq && seq >= 0)
		add_count(d, "seq", (uint64_t)seq);
	else
		cJSON_AddNullToObject(d, "seq");
	add_count(d, "journal_last_seq", last);
	add_detail(r, "checkpoint", seq == seq && seq <= (double)last ? PASS : FAIL, d);
}

int cmd_doctor(cli *c, int argc, char **argv)
{
	report r = { NULL, true };
	mb_bank *b = NULL;
	cJSON *out;
	char *text;
	int ex, rc;

	c->usage = "membank doctor\n\n"
	           "Check the bank without changing it: format version, journal, every store\n"
	           "record, readers, permissions and the checkpoint.  Prints a report\n"
	           "{\"bank\",\"healthy\",\"checks\":[{\"check\",\"result\",\"detail\":{...}}]},\n"
	           "each detail an object with a \"message\" and the check's figures;\n"
	           "exit 0 when healthy, 4 when a check failed or there is no bank.\n";
	if (cli_positional(c, argc, argv, 0, 0, &ex))
		return ex;
	r.checks = cJSON_CreateArray();
	if (cli_bank_missing(c)) {
		/* Nothing to check: said once, not as every check's I/O error. */
		cli_msg(c, "no bank at %s", cli_bank_path(c));
		add(&r, "open", FAIL, "missing: no bank at this path");
		out = cJSON_CreateObject();
		cJSON_AddStringToObject(out, "bank", cli_bank_path(c));
		cJSON_AddBoolToObject(out, "missing", true);
		goto print;
	}
	c->opts.create = false;
	c->opts.keep_reader_slots = true;   /* reported, not cleared */
	if ((rc = mb_open(c->bank_dir, &c->opts, &b)))
		add(&r, "open", FAIL, mb_last_error(NULL));
	else
		add(&r, "open", PASS, "identity and format version read; no crashed writer's work left");
	{
		const char *path = b ? mb_path(b) : cli_bank_path(c);
		check_journal(&r, path);
		check_permissions(&r, path);
		if (b) {
			check_store(&r, b, c->opts.progress);
			check_readers(&r, b);
			check_checkpoint(&r, path, b);
		}
		out = cJSON_CreateObject();
		cJSON_AddStringToObject(out, "bank", path);
	}
print:
	cJSON_AddBoolToObject(out, "healthy", r.healthy);
	cJSON_AddItemToObject(out, "checks", r.checks);
	text = cJSON_PrintUnformatted(out);
	ex = text ? cli_print_json(c, text) : EX_BANK;
	free(text);
	cJSON_Delete(out);
	mb_close(b);
	return ex == EX_OK && !r.healthy ? EX_BANK : ex;
}
