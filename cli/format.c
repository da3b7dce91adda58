/*
 * format.c - a JSON document printed as --format asks: one line (json),
 * indented (pretty) or as aligned tables for people (text).
 *
 * Every token is copied as the library wrote it: a number is never parsed
 * to be printed (cJSON would turn 18446744073709551615 into
 * 1.8446744073709552e+19 and 1.0 into 1), so it stays exact in every
 * format.  The input is JSON as the library or cJSON_PrintUnformatted
 * writes it: valid, with no white space outside strings.
 *
 * The text form: the scalars of the document, one "key  value" row each,
 * nested keys dotted (journal.last_seq), an array of scalars on one row
 * ("1, 2"); then each array of objects (sync history, doctor's checks) as
 * its own table under a "key:" title, one column per key, a nested value
 * inline as "k=v, k=v" (a "message" member as its value alone).  Strings print without quotes; a control character
 * keeps its JSON escape (\n), so a row is always one line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* ------------------------------------------------------------- pretty */

static void newline(int depth)
{
	putchar('\n');
	for (int i = 0; i < depth; i++)
		putchar('\t');
}

static void print_pretty(const char *s, size_t len)
{
	const char *end = s + len;
	bool str = false;
	int depth = 0;

	for (const char *p = s; p < end; p++) {
		char ch = *p;
		if (str) {
			putchar(ch);
			if (ch == '\\' && p + 1 < end)
				putchar(*++p);
			else if (ch == '"')
				str = false;
			continue;
		}
		if (ch == '}' || ch == ']')
			newline(--depth);
		putchar(ch);
		if (ch == '"')
			str = true;
		else if ((ch == '{' || ch == '[') && p + 1 < end && (p[1] == '}' || p[1] == ']'))
			putchar(*++p);  /* {} and [] stay as they are */
		else if (ch == '{' || ch == '[')
			newline(++depth);
		else if (ch == ',')
			newline(depth);
		else if (ch == ':')
			putchar('\t');
	}
	putchar('\n');
}

/* --------------------------------------------------------- a small DOM */

/* A value: kind '{', '[', '"' or 'v' (number, true, false, null), its text
 * as written (raw, len: the whole token for scalars), its key in the parent
 * object (the raw string token, quotes included), and its children. */
typedef struct jv {
	char kind;
	const char *raw, *key;
	size_t len, klen;
	struct jv *kids, *next;
} jv;

static void jv_free(jv *v)
{
	while (v) {
		jv *n = v->next;
		jv_free(v->kids);
		free(v);
		v = n;
	}
}

/* The end of the string token at @p (its opening quote), or NULL. */
static const char *str_end(const char *p)
{
	for (p++; *p && *p != '"'; p++)
		if (*p == '\\' && !*++p)
			return NULL;
	return *p ? p + 1 : NULL;
}

static jv *parse(const char **pp, int depth)
{
	const char *p = *pp;
	jv *v = calloc(1, sizeof *v), **tail;

	if (!v || depth > 200)
		return free(v), NULL;
	v->raw = p;
	if (*p == '{' || *p == '[') {
		char close = *p == '{' ? '}' : ']';
		v->kind = *p++;
		tail = &v->kids;
		while (*p && *p != close) {
			const char *key = NULL, *kend = NULL;
			if (v->kind == '{') {
				if (*p != '"' || !(kend = str_end(p)) || *kend != ':')
					goto bad;
				key = p;
				p = kend + 1;
			}
			if (!(*tail = parse(&p, depth + 1)))
				goto bad;
			(*tail)->key = key;
			(*tail)->klen = key ? (size_t)(kend - key) : 0;
			tail = &(*tail)->next;
			if (*p == ',')
				p++;
			else if (*p != close)
				goto bad;
		}
		if (*p++ != close)
			goto bad;
	} else if (*p == '"') {
		v->kind = '"';
		if (!(p = str_end(p)))
			goto bad;
	} else {
		v->kind = 'v';
		while (*p && !strchr(",]}:", *p))
			p++;
		if (p == v->raw)
			goto bad;
	}
	v->len = (size_t)(p - v->raw);
	*pp = p;
	return v;
bad:
	jv_free(v);
	return NULL;
}

/* ----------------------------------------------------------- text form */

/* A growing string. */
typedef struct sbuf {
	char *s;
	size_t len, cap;
	bool failed;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = (b->cap ? b->cap * 2 : 64) + n;
		char *p = realloc(b->s, cap);
		if (!p) {
			b->failed = true;
			return;
		}
		b->s = p;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void sb_adds(sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

static void sb_utf8(sbuf *b, unsigned long c)
{
	char u[4];
	size_t n;

	if (c < 0x80)
		u[0] = (char)c, n = 1;
	else if (c < 0x800)
		u[0] = (char)(0xc0 | c >> 6), u[1] = (char)(0x80 | (c & 0x3f)), n = 2;
	else if (c < 0x10000)
		u[0] = (char)(0xe0 | c >> 12), u[1] = (char)(0x80 | ((c >> 6) & 0x3f)),
		u[2] = (char)(0x80 | (c & 0x3f)), n = 3;
	else
		u[0] = (char)(0xf0 | c >> 18), u[1] = (char)(0x80 | ((c >> 12) & 0x3f)),
		u[2] = (char)(0x80 | ((c >> 6) & 0x3f)), u[3] = (char)(0x80 | (c & 0x3f)), n = 4;
	sb_add(b, u, n);
}

static unsigned long hex4(const char *p)
{
	char h[5] = { p[0], p[1], p[2], p[3], 0 };

	return strtoul(h, NULL, 16);
}

/* A string token (quotes included) without its quotes and escapes, except
 * the escapes of control characters, which stay (a row is one line). */
static void sb_unquote(sbuf *b, const char *s, size_t len)
{
	const char *p = s + 1, *end = s + len - 1;

	while (p < end) {
		const char *q = p;
		while (q < end && *q != '\\')
			q++;
		sb_add(b, p, (size_t)(q - p));
		if (q >= end)
			break;
		if (strchr("\"\\/", q[1])) {
			sb_add(b, q + 1, 1);
			p = q + 2;
		} else if (q[1] == 'u' && end - q >= 6) {
			unsigned long c = hex4(q + 2);
			p = q + 6;
			if (c >= 0xd800 && c < 0xdc00 && end - p >= 6 && p[0] == '\\' && p[1] == 'u') {
				c = 0x10000 + ((c - 0xd800) << 10) + (hex4(p + 2) - 0xdc00);
				p += 6;
			}
			if (c < 0x20)
				sb_add(b, q, 6);
			else
				sb_utf8(b, c);
		} else {
			sb_add(b, q, 2);   /* \n \t \r \b \f */
			p = q + 2;
		}
	}
}

static bool all_objects(const jv *v)
{
	if (v->kind != '[' || !v->kids)
		return false;
	for (const jv *k = v->kids; k; k = k->next)
		if (k->kind != '{')
			return false;
	return true;
}

/* @v on one line: a scalar as text, an array "a, b", an object "k=v, k=v". */
static void inline_value(sbuf *b, const jv *v)
{
	if (v->kind == '"') {
		sb_unquote(b, v->raw, v->len);
		return;
	}
	if (v->kind == 'v') {
		sb_add(b, v->raw, v->len);
		return;
	}
	if (!v->kids)
		sb_adds(b, v->kind == '{' ? "{}" : "[]");
	for (const jv *k = v->kids; k; k = k->next) {
		if (k != v->kids)
			sb_adds(b, ", ");
		if (k->key && strncmp(k->key, "\"message\"", k->klen)) {
			sb_unquote(b, k->key, k->klen);
			sb_adds(b, "=");
		}
		if (k->kids)
			sb_adds(b, k->kind == '{' ? "{" : "[");
		inline_value(b, k);
		if (k->kids)
			sb_adds(b, k->kind == '{' ? "}" : "]");
	}
}

/* Rows of a table: cells[row * ncols + col] (NULL: empty). */
typedef struct table {
	char **cells;
	size_t rows, cols;
} table;

static size_t width(const char *s)
{
	size_t w = 0;

	for (; s && *s; s++)
		w += ((unsigned char)*s & 0xc0) != 0x80;   /* code points */
	return w;
}

static void print_table(const table *t)
{
	size_t *w = calloc(t->cols ? t->cols : 1, sizeof *w);

	if (!w)
		return;
	for (size_t r = 0; r < t->rows; r++)
		for (size_t c = 0; c < t->cols; c++)
			if (width(t->cells[r * t->cols + c]) > w[c])
				w[c] = width(t->cells[r * t->cols + c]);
	for (size_t r = 0; r < t->rows; r++) {
		for (size_t c = 0; c < t->cols; c++) {
			const char *s = t->cells[r * t->cols + c];
			fputs(s ? s : "", stdout);
			if (c + 1 < t->cols)
				printf("%*s", (int)(w[c] - width(s) + 2), "");
		}
		putchar('\n');
	}
	free(w);
}

static void table_free(table *t)
{
	for (size_t i = 0; i < t->rows * t->cols; i++)
		free(t->cells[i]);
	free(t->cells);
}

static char *take(sbuf *b)
{
	return b->failed ? (free(b->s), NULL) : (b->s ? b->s : strdup(""));
}

/* The key/value rows: t has two columns. */
typedef struct text_doc {
	table kv;
	const jv *arrays[64];     /* arrays of objects, printed after */
	char *titles[64];
	size_t narrays;
	bool failed;
} text_doc;

static void add_row(text_doc *d, char *key, char *val)
{
	char **cells = realloc(d->kv.cells, (d->kv.rows + 1) * 2 * sizeof *cells);

	if (!cells || !key || !val) {
		free(key);
		free(val);
		d->failed = true;
		if (cells)
			d->kv.cells = cells;
		return;
	}
	d->kv.cells = cells;
	cells[d->kv.rows * 2] = key;
	cells[d->kv.rows * 2 + 1] = val;
	d->kv.rows++;
}

static void flatten(text_doc *d, const jv *v, const char *path)
{
	sbuf key = { 0 }, val = { 0 };

	if (v->kind == '{' && v->kids) {
		for (const jv *k = v->kids; k; k = k->next) {
			sbuf sub = { 0 };
			if (*path) {
				sb_adds(&sub, path);
				sb_adds(&sub, ".");
			}
			sb_unquote(&sub, k->key, k->klen);
			char *s = take(&sub);
			if (s)
				flatten(d, k, s);
			else
				d->failed = true;
			free(s);
		}
		return;
	}
	if (all_objects(v) && d->narrays < 64) {
		d->arrays[d->narrays] = v;
		if (!(d->titles[d->narrays++] = strdup(path)))
			d->failed = true;
		return;
	}
	if (v->kind == '[' && v->kids) {
		bool scalars = true;
		for (const jv *k = v->kids; k; k = k->next)
			scalars = scalars && (k->kind == '"' || k->kind == 'v');
		if (!scalars) {
			size_t i = 0;
			for (const jv *k = v->kids; k; k = k->next, i++) {
				char sub[32];
				sbuf p = { 0 };
				snprintf(sub, sizeof sub, "%s%zu", *path ? "." : "", i);
				sb_adds(&p, path);
				sb_adds(&p, sub);
				char *s = take(&p);
				if (s)
					flatten(d, k, s);
				free(s);
			}
			return;
		}
	}
	sb_adds(&key, path);
	inline_value(&val, v);
	add_row(d, take(&key), take(&val));
}

/* An array of objects: one column per key, in order of first appearance. */
static void print_objects(const jv *arr)
{
	const jv *cols[64];
	size_t ncols = 0, nrows = 1;
	table t = { 0 };

	for (const jv *o = arr->kids; o; o = o->next, nrows++)
		for (const jv *k = o->kids; k; k = k->next) {
			size_t c = 0;
			while (c < ncols && !(cols[c]->klen == k->klen &&
			                      !memcmp(cols[c]->key, k->key, k->klen)))
				c++;
			if (c == ncols && ncols < 64)
				cols[ncols++] = k;
		}
	if (!ncols || !(t.cells = calloc(nrows * ncols, sizeof *t.cells)))
		return;
	t.rows = nrows;
	t.cols = ncols;
	for (size_t c = 0; c < ncols; c++) {
		sbuf h = { 0 };
		sb_unquote(&h, cols[c]->key, cols[c]->klen);
		for (size_t i = 0; h.s && i < h.len; i++)
			if (h.s[i] >= 'a' && h.s[i] <= 'z')
				h.s[i] = (char)(h.s[i] - 'a' + 'A');
		t.cells[c] = take(&h);
	}
	size_t r = 1;
	for (const jv *o = arr->kids; o; o = o->next, r++)
		for (const jv *k = o->kids; k; k = k->next)
			for (size_t c = 0; c < ncols; c++) {
				if (cols[c]->klen != k->klen || memcmp(cols[c]->key, k->key, k->klen))
					continue;
				sbuf cell = { 0 };
				inline_value(&cell, k);
				free(t.cells[r * ncols + c]);
				t.cells[r * ncols + c] = take(&cell);
			}
	print_table(&t);
	table_free(&t);
}

static int print_text(const cli *c, const jv *root)
{
	text_doc d = { .kv = { .cols = 2 } };

	flatten(&d, root, "");
	if (d.failed) {
		cli_msg(c, "out of memory");
		table_free(&d.kv);
		for (size_t i = 0; i < d.narrays; i++)
			free(d.titles[i]);
		return EX_BANK;
	}
	print_table(&d.kv);
	for (size_t i = 0; i < d.narrays; i++) {
		if (d.kv.rows || i)
			putchar('\n');
		if (*d.titles[i])
			printf("%s:\n", d.titles[i]);
		print_objects(d.arrays[i]);
		free(d.titles[i]);
	}
	table_free(&d.kv);
	return EX_OK;
}

/* ------------------------------------------------------------- output */

int cli_print_json(const cli *c, const char *json)
{
	int fmt = c->format == FMT_AUTO ? (c->tty ? FMT_PRETTY : FMT_JSON) : c->format;

	if (fmt == FMT_PRETTY) {
		print_pretty(json, strlen(json));
	} else if (fmt == FMT_TEXT) {
		const char *p = json;
		jv *root = parse(&p, 0);
		int ex;
		if (!root || *p) {
			jv_free(root);
			puts(json);  /* not JSON as the library writes it: as it is */
			return EX_OK;
		}
		ex = print_text(c, root);
		jv_free(root);
		return ex;
	} else {
		puts(json);
	}
	return EX_OK;   /* a write error is reported at exit (cli_close_stdout) */
}

void cli_print_table(char **cells, size_t rows, size_t cols)
{
	table t = { cells, rows, cols };

	print_table(&t);
}

int cli_parse_format(const char *name)
{
	static const char *const names[] = { "json", "pretty", "text", "prometheus" };
	static const int formats[] = { FMT_JSON, FMT_PRETTY, FMT_TEXT, FMT_PROMETHEUS };

	for (size_t i = 0; i < 4; i++)
		if (!strcmp(name, names[i]))
			return formats[i];
	return -1;
}

const char *cli_format_names(unsigned mask, char *buf, size_t cap)
{
	static const char *const names[] = { "json", "pretty", "text", "prometheus" };
	static const int formats[] = { FMT_JSON, FMT_PRETTY, FMT_TEXT, FMT_PROMETHEUS };
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < 4; i++)
		if (mask & (1u << formats[i]))
			n += (size_t)snprintf(buf + n, n < cap ? cap - n : 0, "%s%s", n ? ", " : "",
			                      names[i]);
	return buf;
}

int cli_print_json_n(const cli *c, const char *json, size_t len)
{
	char *copy = strndup(json, len);
	int ex;

	if (!copy) {
		cli_msg(c, "out of memory");
		return EX_BANK;
	}
	ex = cli_print_json(c, copy);
	free(copy);
	return ex;
}
