/*
 * cmd_maint.c - membank init, stats, snapshot, restore, compactor and journal.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cli.h"

/* --max-json-bytes N: the bank's bound on JSON input, within the library's. */
static int parse_max_json(cli *c, const char *arg)
{
	uint64_t v;

	if (cli_parse_u64(arg, MB_MAX_JSON_BYTES, &v) || v < MB_MIN_JSON_BYTES) {
		cli_usage_error(c, "--max-json-bytes needs %u..%u bytes, not '%s'",
		                MB_MIN_JSON_BYTES, MB_MAX_JSON_BYTES, arg);
		return -1;
	}
	c->opts.max_json_bytes = (size_t)v;
	return 0;
}

/* The bank's max_json_bytes, from its statistics (0: unknown). */
static uint64_t bank_max_json(mb_bank *b)
{
	char *text = NULL;
	cJSON *j = mb_stats(b, &text) ? NULL : cJSON_Parse(text);
	const cJSON *v = cJSON_GetObjectItem(j, "max_json_bytes");
	uint64_t n = cJSON_IsNumber(v) ? (uint64_t)v->valuedouble : 0;

	cJSON_Delete(j);
	mb_free(text);
	return n;
}

/* The most replicas a JetStream stream may have. */
#define MAX_REPLICAS 5

/* init --replicas N against the bank just opened: its journal is a stream
 * with N replicas (an existing stream keeps the replicas it was created
 * with, as an existing bank keeps its max_json_bytes).  An exit code. */
static int check_replicas(cli *c, mb_bank *b)
{
	mb_cluster_info info;
	int rc = mb_cluster_status(b, &info);

	if (rc == MB_EINVAL) {
		cli_msg(c, "--replicas %u: the bank at %s has a local journal (give --journal "
		        "URL or MEMBANK_JOURNAL when it is created)", c->opts.journal_replicas,
		        mb_path(b));
		return EX_INVALID;
	}
	if (rc)
		return cli_fail(c, b, rc, "cannot read the stream's replicas");
	if (info.reachable && info.replicas != c->opts.journal_replicas) {
		cli_msg(c, "--replicas %u, but the stream %s has %u (set when it was created)",
		        c->opts.journal_replicas, info.stream, info.replicas);
		return EX_INVALID;
	}
	return EX_OK;
}

int cmd_init(cli *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "max-json-bytes", required_argument, NULL, 'm' },
		{ "replicas", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	mb_bank *b = NULL;
	uint64_t have, v;
	int ch, ex = 0;

	c->usage = "membank init [--max-json-bytes N] [--replicas N]\n\n"
	           "Create the bank if missing and print its path.  With --journal URL (or\n"
	           "MEMBANK_JOURNAL), the bank's journal is that stream: created when missing\n"
	           "(file storage, the replicas asked, messages large enough for the largest\n"
	           "record), else checked; the bank is bound to it for life.\n\n"
	           "      --max-json-bytes N  the largest JSON document the bank accepts, from\n"
	           "                          any client (the command, C, Python): fixed at\n"
	           "                          creation, in membank.json (64..16777216; default\n"
	           "                          1048576).  An existing bank must have it already.\n"
	           "  -r, --replicas N        copies of the stream the cluster keeps (1..5,\n"
	           "                          default 1; 3 survives the loss of any one node).\n"
	           "                          An existing stream must have them already.\n";
	while ((ch = cli_getopt(c, argc, argv, "r:", lo, &ex)) > 0) {
		if (ch == 'm' && parse_max_json(c, optarg))
			return EX_USAGE;
		if (ch == 'r' && (cli_parse_u64(optarg, MAX_REPLICAS, &v) || !v))
			return cli_usage_error(c, "--replicas needs 1..%d, not '%s'", MAX_REPLICAS,
			                       optarg);
		if (ch == 'r')
			c->opts.journal_replicas = (uint32_t)v;
	}
	if (ch < 0)
		return ex;
	if (optind != argc)
		return cli_usage_error(c, "too many arguments");
	/* a new bank would be created with a local journal: refused before
	 * anything is created (an existing bank may have recorded its URL) */
	if (c->opts.journal_replicas && !cli_journal(c) && cli_bank_missing(c))
		return cli_usage_error(c, "--replicas needs a journal on a cluster: --journal URL "
		                          "or MEMBANK_JOURNAL");
	c->opts.create = true;
	if ((ex = cli_open(c, &b)))
		return ex;
	if (c->opts.max_json_bytes && (have = bank_max_json(b)) != c->opts.max_json_bytes) {
		cli_msg(c, "--max-json-bytes %zu, but the bank at %s accepts %llu (set when it "
		        "was created)", c->opts.max_json_bytes, mb_path(b), (unsigned long long)have);
		mb_close(b);
		return EX_INVALID;
	}
	if (c->opts.journal_replicas && (ex = check_replicas(c, b))) {
		mb_close(b);
		return ex;
	}
	puts(mb_path(b));
	mb_close(b);
	return EX_OK;
}

int cmd_stats(cli *c, int argc, char **argv)
{
	mb_bank *b = NULL;
	char *text = NULL;
	bool prom;
	int ex, rc;

	c->usage = "membank stats [--format json|pretty|text|prometheus] [--fresh]\n\n"
	           "Print the bank's counters and sizes as JSON: pages, events, file sizes,\n"
	           "map use, readers and their lag, journal segments.  \"cluster\" says how\n"
	           "stale this machine may be when its journal is on a cluster (null for a\n"
	           "local journal): applied_seq, stream_last_seq (as last seen), lag_records,\n"
	           "since_contact_ms (null: never), foreign_skipped, conflicts,\n"
	           "turns_asked, turn_waits, checkpoint_seq, checkpoint_failures,\n"
	           "diverged; the url has no\n"
	           "credentials.  Pages removed behind\n"
	           "the caller's back (cache_settings): pages_evicted (by max_entries),\n"
	           "pages_expired (older than ttl_seconds, absent, not yet purged),\n"
	           "pages_purged (expired pages a snapshot removed).  With --format\n"
	           "prometheus, print them as OpenMetrics text for a Prometheus scrape\n"
	           "(node_exporter's textfile collector, or any HTTP server), with the\n"
	           "checkpoint's age and the sync and error counters; README.md lists the\n"
	           "metrics.\n\n"
	           "      --format FORMAT   json, pretty, text or prometheus\n";
	c->formats |= 1u << FMT_PROMETHEUS;
	if (cli_positional(c, argc, argv, 0, 0, &ex))
		return ex;
	if ((ex = cli_open_existing(c, &b)))
		return ex;
	prom = c->format == FMT_PROMETHEUS;
	if ((rc = prom ? mb_metrics(b, &text) : mb_stats(b, &text)))
		ex = cli_fail(c, b, rc, "cannot read the statistics");
	else if (prom)
		fputs(text, stdout);   /* a write error is reported at exit */
	else
		ex = cli_print_json(c, text);
	mb_free(text);
	mb_close(b);
	return ex;
}

/* --------------------------------------------------- snapshot and restore */

#if CLI_HAVE_SNAPSHOT
/* What a snapshot did, as JSON (cJSON escapes the directory name). */
static int print_info(cli *c, const char *dir, const mb_snapshot_info *in)
{
	cJSON *o = cJSON_CreateObject();
	char *text = NULL;
	int ex = EX_BANK;

	if (o && cJSON_AddStringToObject(o, "dir", dir) &&
	    cJSON_AddNumberToObject(o, "seq", (double)in->seq) &&
	    cJSON_AddNumberToObject(o, "pages", (double)in->pages) &&
	    cJSON_AddNumberToObject(o, "bytes", (double)in->bytes) &&
	    cJSON_AddNumberToObject(o, "purged", (double)in->purged) &&
	    cJSON_AddNumberToObject(o, "segments_removed", (double)in->segments_removed) &&
	    cJSON_AddNumberToObject(o, "seconds", in->seconds) &&
	    cJSON_AddNumberToObject(o, "pages_evicted", (double)in->pages_evicted) &&
	    cJSON_AddNumberToObject(o, "pages_purged", (double)in->pages_purged) &&
	    cJSON_AddNumberToObject(o, "pages_expired", (double)in->pages_expired) &&
	    (text = cJSON_PrintUnformatted(o)))
		ex = cli_print_json(c, text);
	else
		cli_msg(c, "out of memory");
	cJSON_free(text);
	cJSON_Delete(o);
	return ex;
}
#endif

#define RETENTION_HELP \
	"  -r, --journal-retention S\n" \
	"                  keep journal segments a checkpoint covers for S seconds\n" \
	"                  (default 0: removed at once), so that a lagging reader\n" \
	"                  ('journal tail --follow') still finds their events\n"

/* --journal-retention S: 0..4294967295 seconds (journal_retention_s). */
static int parse_retention(cli *c, const char *arg)
{
	uint64_t v;

	if (cli_parse_u64(arg, UINT32_MAX, &v)) {
		cli_usage_error(c, "--journal-retention needs 0..4294967295 seconds, not '%s'", arg);
		return -1;
	}
	c->opts.journal_retention_s = (uint32_t)v;
	return 0;
}

/* --out DIR is created 0700 when it does not exist, as sqlite3's .backup
 * creates its file; its parent must exist (a typo in a path must not grow a
 * tree).  mkdir() never follows a symlink: one in DIR's place is EEXIST,
 * then refused by mb_snapshot().  *created says whether to remove it again
 * when the snapshot fails. */
static int make_out_dir(const cli *c, const char *out, bool *created)
{
	*created = false;
	if (!out)
		return EX_OK;
	if (!mkdir(out, 0700)) {
		*created = true;
		return EX_OK;
	}
	if (errno == EEXIST)
		return EX_OK;
	cli_msg(c, "cannot create %s: %s", out, strerror(errno));
	return errno == ENOENT || errno == ENOTDIR ? EX_INVALID : EX_BANK;
}

int cmd_snapshot(cli *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "out", required_argument, NULL, 'o' },
		{ "journal-retention", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	const char *out = NULL;
	int ch, ex = 0;

	c->usage = "membank snapshot [--out DIR] [--journal-retention S]\n\n"
	           "Write notion_pages.json, sync_status.json, error_log.json and\n"
	           "config_cache.json, each replaced atomically, from one instant of the bank.\n"
	           "Without --out they go to the bank directory and are its checkpoint.\n"
	           "Prints {\"dir\":...,\"seq\":N,\"pages\":N,\"bytes\":N,...}.\n\n"
	           "  -o, --out DIR   write the files into DIR instead (created 0700 when\n"
	           "                  missing; its parent must exist; never a symlink)\n"
	           RETENTION_HELP;
	while ((ch = cli_getopt(c, argc, argv, "o:r:", lo, &ex)) > 0)
		if (ch == 'o')
			out = optarg;
		else if (ch == 'r' && parse_retention(c, optarg))
			return EX_USAGE;
	if (ch < 0)
		return ex;
	if (optind != argc)
		return cli_usage_error(c, "too many arguments");
#if CLI_HAVE_SNAPSHOT
	mb_snapshot_info info;
	mb_bank *b = NULL;
	bool created;
	int rc;

	if ((ex = cli_open_existing(c, &b)))
		return ex;
	if ((ex = make_out_dir(c, out, &created)))
		goto cleanup;
	if ((rc = mb_snapshot(b, out, &info))) {
		ex = cli_fail(c, b, rc, "cannot write the files");
		if (created)
			rmdir(out);   /* only when empty: it was ours */
	} else {
		ex = print_info(c, out ? out : mb_path(b), &info);
	}
cleanup:
	mb_close(b);
	return ex;
#else
	cli_msg(c, "not available in this build");
	return EX_BANK;
#endif
}

#if CLI_HAVE_SNAPSHOT
static int64_t report_int(const cJSON *r, const char *key)
{
	return (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(r, key));
}

/* What the restore changed or dropped, on stderr (nothing when it kept
 * the files' settings and every page): never silently. */
static void say_restored(const cli *c, const char *report)
{
	cJSON *r = report ? cJSON_Parse(report) : NULL;
	int64_t was = report_int(r, "max_entries_was"), now = report_int(r, "max_entries_now");

	if (!r)
		return;
	if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(r, "config_cache_json")))
		cli_msg(c, "no config_cache.json: cache_settings off (max_entries 0, ttl_seconds "
		        "0), as in a new bank");
	if (was != now)
		cli_msg(c, "max_entries was %lld, fewer than the pages kept: set to 0 (no bound), "
		        "so that none is evicted", (long long)was);
	if (report_int(r, "expired_pages_kept"))
		cli_msg(c, "%lld pages older than ttl_seconds=%lld kept: ttl_seconds set to 0",
		        (long long)report_int(r, "expired_pages_kept"),
		        (long long)report_int(r, "ttl_seconds_was"));
	if (report_int(r, "expired_pages_dropped"))
		cli_msg(c, "%lld pages older than ttl_seconds=%lld dropped (--expire)",
		        (long long)report_int(r, "expired_pages_dropped"),
		        (long long)report_int(r, "ttl_seconds_was"));
	cJSON_Delete(r);
}
#endif

int cmd_restore(cli *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "force", no_argument, NULL, 'f' },
		{ "keep-expired", no_argument, NULL, 'k' },
		{ "expire", no_argument, NULL, 'e' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned flags = 0;
	int ch, ex = 0;

	c->usage = "membank restore <DIR> [--force] [--keep-expired|--expire]\n\n"
	           "Build this bank from the four JSON files in DIR.  The bank is built aside\n"
	           "and moved into place when complete.  A non-empty bank is replaced only\n"
	           "with --force, and only while no other process has it open.  A file of\n"
	           "the four that is absent reads as an empty one (one must be there).\n"
	           "Pages older than the files' ttl_seconds would be expired on arrival:\n"
	           "then one of --keep-expired and --expire is required.\n"
	           "No page is evicted: when more are kept than max_entries, max_entries is\n"
	           "set to 0 (no bound).  Without config_cache.json, cache_settings are off.\n"
	           "Prints the bank's path; on stderr, what the restore changed or dropped.\n\n"
	           "  -f, --force          replace a non-empty bank\n"
	           "      --keep-expired   keep pages older than ttl_seconds: ttl_seconds is\n"
	           "                       set to 0 (expiry off) when any would expire\n"
	           "      --expire         accept it: those pages are dropped\n";
	while ((ch = cli_getopt(c, argc, argv, "f", lo, &ex)) > 0)
		if (ch == 'f')
			flags |= MB_RESTORE_FORCE;
		else if (ch == 'k')
			flags |= MB_RESTORE_KEEP_EXPIRED;
		else if (ch == 'e')
			flags |= MB_RESTORE_EXPIRE;
	if (ch < 0)
		return ex;
	if ((flags & MB_RESTORE_KEEP_EXPIRED) && (flags & MB_RESTORE_EXPIRE))
		return cli_usage_error(c, "--keep-expired and --expire exclude each other");
	if (argc - optind != 1)
		return cli_usage_error(c, argc - optind < 1 ? "missing DIR" : "too many arguments");
#if CLI_HAVE_SNAPSHOT
	char *report = NULL;
	int rc = mb_restore_report(argv[optind], c->bank_dir, &c->opts, flags, &report);
	if (rc)
		return cli_fail(c, NULL, rc, "cannot restore from %s", argv[optind]);
	say_restored(c, report);
	mb_free(report);
	mb_bank *b = NULL;
	if ((ex = cli_open_existing(c, &b)))
		return ex;
	puts(mb_path(b));
	mb_close(b);
	return EX_OK;
#else
	cli_msg(c, "not available in this build");
	return EX_BANK;
#endif
}

/* ------------------------------------------------------------- compactor */

#if CLI_HAVE_SNAPSHOT
static void log_run(const cli *c, const mb_snapshot_info *in)
{
	char when[32];
	time_t now = time(NULL);
	struct tm tm;

	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
	cli_msg(c, "%s snapshot in %.3f s: %" PRIu64 " pages, %" PRIu64 " bytes, seq %" PRIu64
	        ", %" PRIu64 " purged, %" PRIu64 " segments removed",
	        when, in->seconds, in->pages, in->bytes, in->seq, in->purged,
	        in->segments_removed);
}

/* The bank directory's checkpoint already covers every record: 1, and
 * *seq is that record; 0 otherwise (or when the stats cannot tell). */
static int unchanged(mb_bank *b, uint64_t *seq)
{
	char *text = NULL;
	cJSON *j = mb_stats(b, &text) ? NULL : cJSON_Parse(text);
	const cJSON *ck = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "checkpoint"), "seq");
	const cJSON *last = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "journal"), "last_seq");
	int same = cJSON_IsNumber(ck) && cJSON_IsNumber(last) && ck->valuedouble > 0 &&
	           ck->valuedouble == last->valuedouble;

	*seq = same ? (uint64_t)ck->valuedouble : 0;
	cJSON_Delete(j);
	mb_free(text);
	return same;
}

static int compact_loop(cli *c, const char *out, uint64_t every)
{
	uint64_t seq;
	mb_snapshot_info info;
	mb_bank *b = NULL;
	sigset_t set;
	bool created;
	int ex, rc;

	/* Blocked before the bank opens: a SIGTERM that arrives at any moment
	 * stays pending until the next wait, so a snapshot always completes. */
	cli_block_signals(&set);
	cli_progress_transient();
	if ((ex = cli_open_existing(c, &b)))
		return ex;
	if ((ex = make_out_dir(c, out, &created))) {
		mb_close(b);
		return ex;
	}
	for (;;) {
		if (!out && unchanged(b, &seq)) {
			cli_msg(c, "unchanged since the checkpoint at seq %" PRIu64 ": no snapshot", seq);
		} else if ((rc = mb_snapshot(b, out, &info))) {
			ex = cli_fail(c, b, rc, "cannot write the files");
			if (created)
				rmdir(out);   /* only when empty: it was ours */
			break;
		} else {
			created = false;
			log_run(c, &info);
		}
		if (cli_wait_signal(&set, (long)(every * 1000))) {
			cli_msg(c, "stopping on signal");
			break;
		}
	}
	mb_close(b);
	return ex;
}
#endif

int cmd_compactor(cli *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "every", required_argument, NULL, 'e' },
		{ "out", required_argument, NULL, 'o' },
		{ "journal-retention", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	const char *out = NULL;
	uint64_t every = 60;
	int ch, ex = 0;

	c->usage = "membank compactor [--every S] [--out DIR] [--journal-retention S]\n\n"
	           "Snapshot the bank every S seconds (default 60) until SIGTERM or SIGINT,\n"
	           "then exit 0.  One line per run on stderr: duration, pages, bytes, seq, or\n"
	           "\"unchanged\" when the checkpoint already covers every write (nothing written).\n"
	           "Writers also checkpoint by themselves (README \"Automatic checkpoints\");\n"
	           "the compactor takes that work off their path.\n\n"
	           "  -e, --every S   seconds between snapshots (1..86400)\n"
	           "  -o, --out DIR   write the files into DIR instead of the bank directory\n"
	           "                  (created 0700 when missing; its parent must exist)\n"
	           RETENTION_HELP;
	while ((ch = cli_getopt(c, argc, argv, "e:o:r:", lo, &ex)) > 0) {
		if (ch == 'o')
			out = optarg;
		else if (ch == 'r' && parse_retention(c, optarg))
			return EX_USAGE;
		else if (ch == 'e' && (cli_parse_u64(optarg, 86400, &every) || !every))
			return cli_usage_error(c, "--every needs 1..86400 seconds, not '%s'", optarg);
	}
	if (ch < 0)
		return ex;
	if (optind != argc)
		return cli_usage_error(c, "too many arguments");
#if CLI_HAVE_SNAPSHOT
	return compact_loop(c, out, every);
#else
	(void)out;
	cli_msg(c, "not available in this build");
	return EX_BANK;
#endif
}

/* --------------------------------------------------------------- journal */

/* print_event's stop when stdout failed (reported at exit). */
#define OUTPUT_FAILED 3

static int print_event(void *ctx, uint64_t seq, const char *event_json)
{
	uint64_t *next = ctx;

	puts(event_json);
	*next = seq + 1;
	return cli_output_failed() ? OUTPUT_FAILED : 0;
}

static int stop_at_first(void *ctx, uint64_t seq, const char *event_json)
{
	(void)ctx, (void)seq, (void)event_json;
	return 2;
}

/* Print from @p *next to @p last.  When the oldest records asked for are no
 * longer kept (a snapshot removed their segment), start at the oldest kept,
 * found by bisection over what mb_journal_read() accepts, and say on stderr
 * which events were skipped: a reader never loses events silently. */
static int print_from(cli *c, mb_bank *b, uint64_t *next, uint64_t last)
{
	uint64_t lo = *next, hi = last;
	int rc = mb_journal_read(b, *next, print_event, next);

	if (rc != MB_ENOTFOUND)
		return rc;
	/* Invariant: lo is not kept, hi is (last always is, it was committed). */
	while (hi - lo > 1) {
		uint64_t mid = lo + (hi - lo) / 2;
		rc = mb_journal_read(b, mid, stop_at_first, NULL);
		if (rc == MB_ENOTFOUND)
			lo = mid;
		else if (rc == 2)
			hi = mid;
		else
			return rc;
	}
	cli_msg(c, "events %" PRIu64 " to %" PRIu64 " (%" PRIu64 ") were skipped: a snapshot "
	        "removed the journal segments that held them before they were read (keep them "
	        "longer with --journal-retention on the snapshot or compactor)",
	        *next, hi - 1, hi - *next);
	*next = hi;
	return mb_journal_read(b, hi, print_event, next);
}

static int tail_follow(cli *c, mb_bank *b, uint64_t next)
{
	uint64_t last;
	sigset_t set;
	int rc;

	cli_block_signals(&set);
	while (!cli_wait_signal(&set, 100)) {
		/* nothing may come to write for hours: `| head -1` must end it */
		if (cli_reader_gone())
			return EX_OK;   /* reported at exit, as a failed write */
		if ((rc = mb_journal_last_seq(b, &last)))
			return cli_fail(c, b, rc, "cannot read the journal");
		if (last < next)
			continue;
		if ((rc = print_from(c, b, &next, last)) == OUTPUT_FAILED)
			return EX_OK;   /* the reader went away: reported at exit */
		if (rc)
			return cli_fail(c, b, rc, "cannot read the journal");
		if (cli_flush())
			return EX_OK;
	}
	return EX_OK;
}

static int journal_tail(cli *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "lines", required_argument, NULL, 'n' },
		{ "follow", no_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t n = 10, last, next;
	bool follow = false;
	mb_bank *b = NULL;
	int ch, ex = 0, rc;

	while ((ch = cli_getopt(c, argc, argv, "n:f", lo, &ex)) > 0) {
		if (ch == 'f')
			follow = true;
		else if (ch == 'n' && cli_parse_u64(optarg, UINT64_MAX / 2, &n))
			return cli_usage_error(c, "-n needs a number, not '%s'", optarg);
	}
	if (ch < 0)
		return ex;
	if (optind != argc)
		return cli_usage_error(c, "too many arguments");
	if ((ex = cli_open_existing(c, &b)))
		return ex;
	if ((rc = mb_journal_last_seq(b, &last))) {
		ex = cli_fail(c, b, rc, "cannot read the journal");
		goto cleanup;
	}
	next = last >= n ? last - n + 1 : 1;
	if (n && last && (rc = print_from(c, b, &next, last)) && rc != OUTPUT_FAILED)
		ex = cli_fail(c, b, rc, "cannot read the journal");
	else if (follow && !rc && !cli_flush())
		ex = tail_follow(c, b, last + 1);
cleanup:
	mb_close(b);
	return ex;
}

typedef int (*check_fn)(const char *, char **);

static int journal_check(cli *c, int argc, char **argv, check_fn fn, const char *what)
{
	char *report = NULL;
	int ex, rc;

	if (cli_positional(c, argc, argv, 0, 0, &ex))
		return ex;
	if (cli_bank_missing(c)) {
		cli_msg(c, "no bank at %s", cli_bank_path(c));
		return EX_BANK;
	}
	rc = fn(c->bank_dir, &report);
	if (report && (!rc || rc == MB_ECORRUPT))
		cli_print_json(c, report);
	if (rc)
		cli_fail(c, NULL, rc, "%s", rc == MB_ECORRUPT ? what : "cannot check the journal");
	mb_free(report);
	/* A damaged journal is a bank error, whatever the code's class. */
	return rc ? EX_BANK : EX_OK;
}

static int journal_verify(cli *c, int argc, char **argv)
{
	return journal_check(c, argc, argv, mb_journal_verify, "the journal is damaged");
}

static int journal_repair(cli *c, int argc, char **argv)
{
	return journal_check(c, argc, argv, mb_journal_repair, "repair failed");
}

static const cli_sub journal_subs[] = {
	{ "tail", "membank journal tail [-n N] [--follow]\n\n"
	          "Print the newest N events (default 10), one JSON object a line.\n\n"
	          "  -n, --lines N   how many events\n"
	          "  -f, --follow    then print new events as they come, until SIGINT/SIGTERM\n",
	  journal_tail },
	{ "verify", "membank journal verify\n\n"
	            "Check every journal record without opening the bank and print the report\n"
	            "JSON; exit 0 when clean, 4 when damaged (the report names the first damage).\n"
	            "Records the store holds that the journal lacks are damage too.\n",
	  journal_verify },
	{ "repair", "membank journal repair\n\n"
	            "Cut a torn tail and move a segment damaged in the middle aside (*.damaged),\n"
	            "keeping every record before the damage.  When the store holds records the\n"
	            "journal would lose, write a checkpoint of the store first and move every\n"
	            "segment aside.  Prints the report JSON; \"action\" says what was done.\n",
	  journal_repair },
	{ NULL, NULL, NULL },
};

int cmd_journal(cli *c, int argc, char **argv)
{
	return cli_dispatch(c, "journal", journal_subs, argc, argv);
}
