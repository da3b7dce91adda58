/*
 * cmd_batch.c - membank batch: many operations, applied together or not at
 * all, from JSON lines.
 *
 * One operation a line, a JSON object whose "op" and fields are those of
 * the events `membank journal tail` prints (so a tail can be replayed into
 * another bank); "seq" and "timestamp" are ignored:
 *   {"op":"page.put","id":ID,"properties":{...}}     also page.merge
 *   {"op":"page.delete","id":ID}
 *   {"op":"sync.record","status":S,"error":MSG|null}  error optional
 *   {"op":"error.log","error_type":T,"message":MSG}
 *   {"op":"error.resolve","error_type":T,"steps":STEPS}
 *   {"op":"config.update","config":{...}}
 * Blank lines are skipped.  The properties and config objects are handed to
 * the library as the text they are in the line (their raw span), so numbers
 * reach it exactly as written.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"

typedef struct line_in {
	const char *text;
	size_t len;
	unsigned long no;
} line_in;

/* End of the JSON string starting at @p (on its opening quote). */
static const char *skip_string(const char *p, const char *end)
{
	for (p++; p < end && *p != '"'; p++)
		if (*p == '\\')
			p++;
	return p < end ? p + 1 : end;
}

/* End of the JSON value starting at @p (the line was parsed: it is valid). */
static const char *skip_value(const char *p, const char *end)
{
	int depth = 0;

	do {
		if (*p == '"') {
			p = skip_string(p, end);
			continue;
		}
		if (*p == '{' || *p == '[')
			depth++;
		else if (*p == '}' || *p == ']')
			depth--;
		p++;
	} while (p < end && (depth > 0 || !strchr(",}] \t\r\n", *p)));
	return p;
}

static const char *skip_ws(const char *p, const char *end)
{
	while (p < end && strchr(" \t\r\n", *p))
		p++;
	return p;
}

/* The raw text of top-level member @key of the object in @l. */
static int raw_member(const line_in *l, const char *key, const char **val, size_t *vlen)
{
	const char *p = skip_ws(l->text, l->text + l->len), *end = l->text + l->len;
	size_t klen = strlen(key);

	if (p >= end || *p++ != '{')
		return -1;
	while ((p = skip_ws(p, end)) < end && *p == '"') {
		const char *k = p + 1, *kend = skip_string(p, end);
		bool match = (size_t)(kend - k - 1) == klen && !memcmp(k, key, klen);
		p = skip_ws(kend, end);
		if (p >= end || *p++ != ':')
			return -1;
		p = skip_ws(p, end);
		const char *v = p;
		p = skip_value(p, end);
		if (match) {
			*val = v;
			*vlen = (size_t)(p - v);
			return 0;
		}
		p = skip_ws(p, end);
		if (p < end && *p == ',')
			p++;
	}
	return -1;
}

/* A "\u0000" escape: the library's strings are C strings. */
static bool has_nul_escape(const char *s, size_t len)
{
	for (size_t i = 1; i + 5 <= len; i++) {
		size_t bs = 0;
		if (s[i] != 'u' || memcmp(s + i + 1, "0000", 4))
			continue;
		while (bs < i && s[i - 1 - bs] == '\\')
			bs++;
		if (bs % 2)
			return true;
	}
	return false;
}

typedef struct op_spec {
	const char *op;
	const char *fields[3];   /* required (a "?" prefix: optional, may be null) */
} op_spec;

static const op_spec specs[] = {
	{ "page.put", { "id", "properties" } },
	{ "page.merge", { "id", "properties" } },
	{ "page.delete", { "id" } },
	{ "sync.record", { "status", "?error" } },
	{ "error.log", { "error_type", "message" } },
	{ "error.resolve", { "error_type", "steps" } },
	{ "config.update", { "config" } },
};

static int line_error(const cli *c, const line_in *l, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int line_error(const cli *c, const line_in *l, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	cli_msg(c, "line %lu: %s; nothing was applied", l->no, what);
	return EX_INVALID;
}

/* Check the object's keys against @s: every required field there and of
 * its type, nothing unknown, nothing twice. */
static int check_fields(const cli *c, const line_in *l, const cJSON *o, const op_spec *s)
{
	for (const cJSON *m = o->child; m; m = m->next) {
		bool known = !strcmp(m->string, "op") || !strcmp(m->string, "seq") ||
		             !strcmp(m->string, "timestamp");
		for (int i = 0; i < 3 && s->fields[i] && !known; i++)
			known = !strcmp(m->string, s->fields[i] + (s->fields[i][0] == '?'));
		if (!known)
			return line_error(c, l, "unknown key \"%s\"", m->string);
		for (const cJSON *n = m->next; n; n = n->next)
			if (!strcmp(m->string, n->string))
				return line_error(c, l, "duplicate key \"%s\"", m->string);
	}
	for (int i = 0; i < 3 && s->fields[i]; i++) {
		bool optional = s->fields[i][0] == '?';
		const char *name = s->fields[i] + optional;
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
		bool object = !strcmp(name, "properties") || !strcmp(name, "config");
		if (!v && optional)
			continue;
		if (!v)
			return line_error(c, l, "missing \"%s\"", name);
		if (object ? !cJSON_IsObject(v) : !(cJSON_IsString(v) || (optional && cJSON_IsNull(v))))
			return line_error(c, l, object ? "\"%s\" must be an object" :
			                  "\"%s\" must be a string", name);
	}
	return EX_OK;
}

static const char *str_of(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Add the operation of line @l to @bt.  An exit code. */
static int add_line(const cli *c, mb_bank *b, mb_batch *bt, const line_in *l)
{
	const cJSON *opv;
	const op_spec *s = NULL;
	const char *raw = NULL;
	size_t rawlen = 0;
	cJSON *o = cJSON_ParseWithLength(l->text, l->len);
	int rc = 0, ex;

	if (!o || !cJSON_IsObject(o)) {
		cJSON_Delete(o);
		return line_error(c, l, "%s", "not a JSON object");
	}
	opv = cJSON_GetObjectItemCaseSensitive(o, "op");
	for (size_t i = 0; cJSON_IsString(opv) && i < sizeof specs / sizeof specs[0]; i++)
		if (!strcmp(opv->valuestring, specs[i].op))
			s = &specs[i];
	if (!s) {
		ex = line_error(c, l, "%s", "\"op\" must be one of page.put, page.merge, page.delete, "
		                "sync.record, error.log, error.resolve, config.update");
	} else if (has_nul_escape(l->text, l->len)) {
		ex = line_error(c, l, "%s", "\\u0000 in a string");
	} else if (!(ex = check_fields(c, l, o, s))) {
		const char *obj = !strcmp(s->op, "config.update") ? "config" :
		                  !strncmp(s->op, "page.", 5) && strcmp(s->op, "page.delete") ?
		                  "properties" : NULL;
		if (obj && raw_member(l, obj, &raw, &rawlen))
			ex = line_error(c, l, "write the key \"%s\" without escapes", obj);
	}
	if (!ex) {
		const char *op = s->op;
		if (!strcmp(op, "page.put"))
			rc = mb_batch_page_put(bt, str_of(o, "id"), raw, rawlen);
		else if (!strcmp(op, "page.merge"))
			rc = mb_batch_page_merge(bt, str_of(o, "id"), raw, rawlen);
		else if (!strcmp(op, "page.delete"))
			rc = mb_batch_page_delete(bt, str_of(o, "id"));
		else if (!strcmp(op, "sync.record"))
			rc = mb_batch_sync_record(bt, str_of(o, "status"), str_of(o, "error"));
		else if (!strcmp(op, "error.log"))
			rc = mb_batch_error_log(bt, str_of(o, "error_type"), str_of(o, "message"));
		else if (!strcmp(op, "error.resolve"))
			rc = mb_batch_error_resolve(bt, str_of(o, "error_type"), str_of(o, "steps"));
		else
			rc = mb_batch_config_update(bt, raw, rawlen);
		if (rc) {
			cli_msg(c, "line %lu: %s: %s; nothing was applied", l->no, op,
			        *mb_last_error(b) ? mb_last_error(b) : mb_strerror(rc));
			ex = cli_exit_code(rc);
		}
	}
	cJSON_Delete(o);
	return ex;
}

/* Read @fp a line at a time into @bt; the numbers of the lines of each
 * operation go to *lines (for a commit error).  An exit code. */
static int read_ops(const cli *c, mb_bank *b, mb_batch *bt, FILE *fp, unsigned long **lines)
{
	char *buf = NULL;
	size_t cap = 0, nops = 0, lcap = 0;
	ssize_t n;
	line_in l = { NULL, 0, 0 };
	int ex = EX_OK;

	errno = 0;
	while (!ex && (n = getline(&buf, &cap, fp)) >= 0) {
		l.no++;
		l.text = buf;
		l.len = (size_t)n;
		if (l.len > CLI_MAX_INPUT) {
			ex = line_error(c, &l, "%s", "longer than 16 MiB");
			break;
		}
		if (skip_ws(l.text, l.text + l.len) == l.text + l.len)
			continue;
		if (nops == lcap) {
			unsigned long *p = realloc(*lines, (lcap = lcap ? 2 * lcap : 256) * sizeof *p);
			if (!p) {
				cli_msg(c, "out of memory");
				ex = EX_BANK;
				break;
			}
			*lines = p;
		}
		(*lines)[nops++] = l.no;
		ex = add_line(c, b, bt, &l);
	}
	if (!ex && ferror(fp)) {
		cli_msg(c, "cannot read the operations: %s", strerror(errno));
		ex = EX_BANK;
	}
	free(buf);
	return ex;
}

int cmd_batch(cli *c, int argc, char **argv)
{
	const char *path;
	unsigned long *lines = NULL, op;
	mb_batch *bt = NULL;
	mb_bank *b = NULL;
	uint64_t seq = 0;
	size_t count;
	char out[96];
	FILE *fp;
	int ex, rc;

	c->usage = "membank batch [FILE|-]\n\n"
	           "Apply the operations of FILE (default: stdin), one JSON object a line, as\n"
	           "one write: all of them or none.  Each line is an event as 'membank journal\n"
	           "tail' prints it: {\"op\":\"page.put\",\"id\":ID,\"properties\":{...}}, page.merge,\n"
	           "page.delete {\"id\"}, sync.record {\"status\",\"error\"}, error.log and\n"
	           "error.resolve {\"error_type\",\"message\"|\"steps\"}, config.update {\"config\"}.\n"
	           "Bad input exits 3 naming its line; a delete of a page absent at its point\n"
	           "of the batch exits 1; either way nothing is applied.  Prints\n"
	           "{\"operations\":N,\"seq\":S}.\n";
	if (cli_positional(c, argc, argv, 0, 1, &ex))
		return ex;
	path = optind < argc ? argv[optind] : "-";
	if (!strcmp(path, "-")) {
		fp = stdin;
	} else if (!(fp = fopen(path, "r"))) {
		cli_msg(c, "%s: %s", path, strerror(errno));
		return errno == ENOENT ? EX_NOTFOUND : EX_BANK;
	}
	if ((ex = cli_open(c, &b)))
		goto out;
	if ((rc = mb_batch_begin(b, &bt))) {
		ex = cli_fail(c, b, rc, "cannot begin a batch");
		goto out;
	}
	if ((ex = read_ops(c, b, bt, fp, &lines))) {
		mb_batch_abort(bt);
		goto out;
	}
	count = mb_batch_count(bt);
	if ((rc = mb_batch_commit(bt))) {
		/* the message names the operation: add its line */
		if (rc == MB_ENOTFOUND && sscanf(mb_last_error(b), "batch: operation %lu", &op) == 1 &&
		    op >= 1 && op <= count) {
			cli_msg(c, "line %lu: %s", lines[op - 1], mb_last_error(b) + 7);
			ex = EX_NOTFOUND;
		} else {
			ex = cli_fail(c, b, rc, "cannot apply the batch");
		}
		goto out;
	}
	mb_journal_last_seq(b, &seq);
	snprintf(out, sizeof out, "{\"operations\":%zu,\"seq\":%llu}", count,
	         (unsigned long long)seq);
	ex = cli_print_json(c, out);
out:
	free(lines);
	if (fp && fp != stdin)
		fclose(fp);
	cli_close_written(b, ex);
	return ex;
}
