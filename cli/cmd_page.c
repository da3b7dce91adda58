/*
 * cmd_page.c - membank page put|merge|get|rm|list|count.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

typedef int (*write_fn)(mb_bank *, const char *, const char *, size_t);

static int page_write(cli *c, int argc, char **argv, write_fn fn)
{
	const char *id, *text;
	char *buf = NULL;
	mb_bank *b = NULL;
	size_t len;
	int ex, rc;

	if (cli_positional(c, argc, argv, 2, 2, &ex))
		return ex;
	id = argv[optind];
	if ((ex = cli_input(c, argv[optind + 1], &buf, &text, &len)))
		return ex;
	if ((ex = cli_open(c, &b)))
		goto cleanup;
	if ((rc = fn(b, id, text, len)))
		ex = cli_fail(c, b, rc, "page \"%s\"", id);
cleanup:
	cli_close_written(b, ex);
	free(buf);
	return ex;
}

static int page_put(cli *c, int argc, char **argv)
{
	return page_write(c, argc, argv, mb_page_put);
}

static int page_merge(cli *c, int argc, char **argv)
{
	return page_write(c, argc, argv, mb_page_merge);
}

static int page_get(cli *c, int argc, char **argv)
{
	mb_bank *b = NULL;
	char *json = NULL;
	int ex, rc;

	if (cli_positional(c, argc, argv, 1, 1, &ex))
		return ex;
	if ((ex = cli_open_existing(c, &b)))
		return ex;
	if ((rc = mb_page_get(b, argv[optind], &json, NULL)))
		ex = cli_fail(c, b, rc, "page \"%s\"", argv[optind]);
	else
		ex = cli_print_json(c, json);
	mb_free(json);
	mb_close(b);
	return ex;
}

static int page_rm(cli *c, int argc, char **argv)
{
	mb_bank *b = NULL;
	int ex, rc;

	if (cli_positional(c, argc, argv, 1, 1, &ex))
		return ex;
	if ((ex = cli_open_existing(c, &b)))
		return ex;
	if ((rc = mb_page_delete(b, argv[optind])))
		ex = cli_fail(c, b, rc, "page \"%s\"", argv[optind]);
	cli_close_written(b, ex);
	return ex;
}

/* page list walks in batches: the ids of one batch are copied out of the
 * read snapshot and printed after it ends, so a slow reader of our stdout
 * never pins old pages of the bank. */
#define LIST_BATCH 1024u

typedef struct id_batch {
	char ids[LIST_BATCH][MB_MAX_ID_BYTES + 1];
	char updated[LIST_BATCH][40];  /* last_updated, for --format text */
	unsigned n, max;
} id_batch;

static int collect_id(void *ctx, const char *id, const char *page_json)
{
	id_batch *ib = ctx;
	/* The page ends with "last_updated":"<time>"} (mb_page_get's layout):
	 * the last such key, as a property may have the same name. */
	const char *u = NULL, *t = "";

	for (const char *p = page_json; p && (p = strstr(p, "\"last_updated\":\"")); p++)
		u = p;
	if (u)
		t = u + 16;

	snprintf(ib->updated[ib->n], sizeof ib->updated[0], "%.*s", (int)strcspn(t, "\""), t);
	snprintf(ib->ids[ib->n++], sizeof ib->ids[0], "%s", id);
	return ib->n >= ib->max ? 1 : 0;
}

/* An id as a JSON string (ids are UTF-8; the library checked them). */
static void put_json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

/* The rows of --format text, kept until the widths are known. */
typedef struct rows {
	char **cells;
	size_t n, cap;
} rows;

static int add_row(rows *r, const char *id, const char *updated)
{
	if (r->n + 2 > r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 256;
		char **p = realloc(r->cells, cap * sizeof *p);
		if (!p)
			return -1;
		r->cells = p;
		r->cap = cap;
	}
	if (!(r->cells[r->n] = strdup(id)))
		return -1;
	if (!(r->cells[r->n + 1] = strdup(updated))) {
		free(r->cells[r->n]);
		return -1;
	}
	r->n += 2;
	return 0;
}

/* One batch in the format asked: ids a line (default), a JSON array (json,
 * pretty) or rows of a table (text). */
static int print_batch(int fmt, const id_batch *ib, uint64_t printed, rows *r)
{
	for (unsigned i = 0; i < ib->n; i++) {
		if (fmt == FMT_TEXT) {
			if (add_row(r, ib->ids[i], ib->updated[i]))
				return -1;
			continue;
		}
		if (fmt == FMT_AUTO) {
			puts(ib->ids[i]);
			continue;
		}
		if (printed + i)
			putchar(',');
		if (fmt == FMT_PRETTY)
			fputs("\n\t", stdout);
		put_json_string(ib->ids[i]);
	}
	return 0;
}

static int list_pages(cli *c, mb_bank *b, uint64_t limit)
{
	char after[MB_MAX_ID_BYTES + 1] = "";
	id_batch *ib = malloc(sizeof *ib);
	uint64_t printed = 0;
	rows r = { 0 };
	int rc = 0, fmt = c->format;  /* default: one id a line, on a terminal too */

	if (!ib)
		return cli_fail(c, b, MB_ENOMEM, "page list");
	if (fmt == FMT_TEXT && add_row(&r, "ID", "LAST_UPDATED"))
		rc = MB_ENOMEM;
	if (fmt == FMT_JSON || fmt == FMT_PRETTY)
		putchar('[');
	while (!rc) {
		ib->n = 0;
		ib->max = (limit && limit - printed < LIST_BATCH) ? (unsigned)(limit - printed)
		                                                  : LIST_BATCH;
		rc = mb_page_iterate(b, *after ? after : NULL,
		                     fmt == FMT_TEXT ? 0 : MB_ITER_IDS, collect_id, ib);
		if (rc < 0)
			break;
		if (print_batch(fmt, ib, printed, &r)) {
			rc = MB_ENOMEM;
			break;
		}
		if (cli_output_failed())
			break;   /* reported at exit */
		printed += ib->n;
		if (ib->n)
			memcpy(after, ib->ids[ib->n - 1], sizeof after);
		if (rc != 1 || (limit && printed >= limit))
			break;
		rc = 0;
	}
	free(ib);
	if (rc < 0) {
		for (size_t i = 0; i < r.n; i++)
			free(r.cells[i]);
		free(r.cells);
		return cli_fail(c, b, rc, "cannot list the pages");
	}
	if (fmt == FMT_JSON || fmt == FMT_PRETTY)
		fputs(fmt == FMT_PRETTY && printed ? "\n]\n" : "]\n", stdout);
	if (fmt == FMT_TEXT)
		cli_print_table(r.cells, r.n / 2, 2);
	for (size_t i = 0; i < r.n; i++)
		free(r.cells[i]);
	free(r.cells);
	return EX_OK;   /* a write error is reported at exit (cli_close_stdout) */
}

static int page_list(cli *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "limit", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t limit = 0;
	mb_bank *b = NULL;
	int ch, ex = 0;

	while ((ch = cli_getopt(c, argc, argv, "n:", lo, &ex)) > 0) {
		if (ch == 'n' && (cli_parse_u64(optarg, UINT64_MAX, &limit) || !limit))
			return cli_usage_error(c, "--limit needs a positive integer, not '%s'", optarg);
	}
	if (ch < 0)
		return ex;
	if (optind != argc)
		return cli_usage_error(c, "too many arguments");
	if ((ex = cli_open_existing(c, &b)))
		return ex;
	ex = list_pages(c, b, limit);
	mb_close(b);
	return ex;
}

static int page_count(cli *c, int argc, char **argv)
{
	mb_bank *b = NULL;
	uint64_t n = 0;
	int ex, rc;

	if (cli_positional(c, argc, argv, 0, 0, &ex))
		return ex;
	if ((ex = cli_open_existing(c, &b)))
		return ex;
	if ((rc = mb_page_count(b, &n)))
		ex = cli_fail(c, b, rc, "cannot count the pages");
	else
		printf("%" PRIu64 "\n", n);
	mb_close(b);
	return ex;
}

static const cli_sub page_subs[] = {
	{ "put", "membank page put <id> <json|->\n\n"
	         "Replace the properties of page <id> with the JSON object; '-' reads it\n"
	         "from stdin (at most 16 MiB).  Creates the page when absent.\n", page_put },
	{ "merge", "membank page merge <id> <json|->\n\n"
	           "Merge the JSON object's top-level keys into page <id>'s properties\n"
	           "(a null value removes the key); '-' reads stdin.  Creates the page.\n",
	  page_merge },
	{ "get", "membank page get <id>\n\n"
	         "Print {\"properties\":{...},\"last_updated\":\"...\"}; exit 1 when absent.\n",
	  page_get },
	{ "rm", "membank page rm <id>\n\nDelete page <id>; exit 1 when absent.\n", page_rm },
	{ "list", "membank page list [--limit N]\n\n"
	          "Print the page ids in id order, one a line; with --format json or\n"
	          "pretty a JSON array of them, with --format text a table of ids and\n"
	          "last_updated times.\n\n"
	          "  -n, --limit N   at most N ids\n", page_list },
	{ "count", "membank page count\n\nPrint the number of pages.\n", page_count },
	{ NULL, NULL, NULL },
};

int cmd_page(cli *c, int argc, char **argv)
{
	return cli_dispatch(c, "page", page_subs, argc, argv);
}
