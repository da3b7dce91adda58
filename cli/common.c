/*
 * common.c - messages, exit codes, option parsing, input and output shared by
 * every membank command.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

int cli_exit_code(int mb_code)
{
	switch (mb_code) {
	case MB_OK:        return EX_OK;
	case MB_ENOTFOUND: return EX_NOTFOUND;
	case MB_EINVAL:    return EX_INVALID;
	default:           return EX_BANK;
	}
}

static void vmsg(const cli *c, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void vmsg(const cli *c, const char *fmt, va_list ap)
{
	fprintf(stderr, "membank: ");
	if (c && c->cmd)
		fprintf(stderr, "%s: ", c->cmd);
	vfprintf(stderr, fmt, ap);
}

void cli_msg(const cli *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(c, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* The library's message names the field or byte; when a call failed
 * without one (not found is not a fault), the code's description stands in. */
int cli_fail(const cli *c, const mb_bank *b, int code, const char *fmt, ...)
{
	const char *why = mb_last_error(b);
	va_list ap;

	if (code == MB_ENOTFOUND || !why || !*why)
		why = mb_strerror(code);
	va_start(ap, fmt);
	vmsg(c, fmt, ap);
	va_end(ap);
	fprintf(stderr, ": %s\n", why);
	return cli_exit_code(code);
}

int cli_usage_error(const cli *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(c, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (c && c->usage) {
		/* The first line of the usage text is the synopsis. */
		const char *nl = strchr(c->usage, '\n');
		int n = nl ? (int)(nl - c->usage) : (int)strlen(c->usage);
		fprintf(stderr, "usage: %.*s\n", n, c->usage);
	}
	if (c && c->cmd)
		fprintf(stderr, "Try 'membank %s --help' for more.\n", c->cmd);
	else
		fprintf(stderr, "Try 'membank --help' for more.\n");
	return EX_USAGE;
}

int cli_getopt(const cli *c, int argc, char **argv, const char *shortopts,
               const struct option *longopts, int *exit_code)
{
	/* -h and --help are every command's; the caller's table comes first. */
	struct option all[16];
	char shorts[64];
	size_t n = 0;
	int ch;

	while (longopts && longopts[n].name && n < 14) {
		all[n] = longopts[n];
		n++;
	}
	all[n++] = (struct option){ "help", no_argument, NULL, 'h' };
	all[n] = (struct option){ NULL, 0, NULL, 0 };
	/* GNU getopt wants a leading '+' (stop at the first operand) before the
	 * ':' that makes it report a missing value apart from an unknown option. */
	shortopts = shortopts ? shortopts : "";
	if (*shortopts == '+')
		snprintf(shorts, sizeof shorts, "+:%sh", shortopts + 1);
	else
		snprintf(shorts, sizeof shorts, ":%sh", shortopts);

	ch = getopt_long(argc, argv, shorts, all, NULL);
	if (ch == -1)
		return 0;
	if (ch == 'h') {
		fputs("usage: ", stdout);
		fputs(c->usage, stdout);
		*exit_code = EX_OK;
		return -1;
	}
	if (ch == '?' || ch == ':') {
		const char *opt = argv[optind - 1];
		*exit_code = cli_usage_error(c, ch == '?' ? "unknown option '%s'"
		                                          : "option '%s' needs a value",
		                             opt ? opt : "?");
		return -1;
	}
	return ch;
}

int cli_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return -1;
	*out = v;
	return 0;
}

static int open_bank(const cli *c, bool create, mb_bank **out)
{
	mb_options opts = c->opts;
	int rc;

	opts.create = create;
	if ((rc = mb_open(c->bank_dir, &opts, out)))
		return cli_fail(c, NULL, rc, "cannot open the bank %s",
		                c->bank_dir ? c->bank_dir : "(default)");
	return EX_OK;
}

int cli_open(const cli *c, mb_bank **out)
{
	return open_bank(c, true, out);
}

int cli_open_existing(const cli *c, mb_bank **out)
{
	return open_bank(c, false, out);
}

/* errno of the first failed flush: a stream that failed keeps only its
 * error flag, and the final flush may have nothing left to report. */
static int out_errno;

bool cli_output_failed(void)
{
	if (!ferror(stdout))
		return false;
	if (!out_errno)
		out_errno = errno;  /* called right after the failed write */
	return true;
}

int cli_flush(void)
{
	if (fflush(stdout) == EOF) {
		if (!out_errno)
			out_errno = errno;
		return -1;
	}
	return ferror(stdout) ? -1 : 0;
}

int cli_close_stdout(const cli *c, int ex)
{
	bool failed = ferror(stdout) != 0;
	int err = out_errno;

	/* fflush reports the error of the bytes still buffered (the usual
	 * case: stdout to a file is flushed at exit); a stream that failed
	 * earlier keeps its error flag, whose errno is gone. */
	errno = 0;
	if (fflush(stdout) == EOF) {
		failed = true;
		err = err ? err : errno;
	}
	if (fclose(stdout) == EOF && !failed) {
		failed = true;
		err = errno;
	}
	if (failed && err != EPIPE) {
		if (err)
			fprintf(stderr, "membank: %s%swrite error: %s\n", c && c->cmd ? c->cmd : "",
			        c && c->cmd ? ": " : "", strerror(err));
		else
			fprintf(stderr, "membank: %s%swrite error\n", c && c->cmd ? c->cmd : "",
			        c && c->cmd ? ": " : "");
	}
	if (failed && ex == EX_OK)
		ex = EX_OUTPUT;
	return ex;
}

static void newline(int depth)
{
	putchar('\n');
	for (int i = 0; i < depth; i++)
		putchar('\t');
}

/* JSON text as the library gives it (valid, no white space outside
 * strings), indented with tabs.  Every token is copied as it is, so a
 * number prints exactly as stored: parsing it to print it (cJSON) would
 * turn 18446744073709551615 into 1.8446744073709552e+19 and 1.0 into 1. */
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

int cli_print_json_n(const cli *c, const char *json, size_t len)
{
	if (c->tty)
		print_pretty(json, len);
	else {
		fwrite(json, 1, len, stdout);
		putchar('\n');
	}
	return EX_OK;   /* a write error is reported at exit (cli_close_stdout) */
}

int cli_print_json(const cli *c, const char *json)
{
	return cli_print_json_n(c, json, strlen(json));
}

/* Read all of stdin, refusing more than CLI_MAX_INPUT bytes. */
static int read_stdin(const cli *c, char **buf, size_t *len)
{
	size_t cap = 64 * 1024, n = 0;
	char *p = malloc(cap + 1), *q;

	while (p) {
		ssize_t r = read(STDIN_FILENO, p + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			cli_msg(c, "cannot read stdin: %s", strerror(errno));
			free(p);
			return EX_BANK;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > CLI_MAX_INPUT) {
			cli_msg(c, "stdin: input larger than %u bytes (16 MiB) refused",
			        CLI_MAX_INPUT);
			free(p);
			return EX_INVALID;
		}
		if (n == cap) {
			q = realloc(p, cap * 2 + 1);
			if (!q)
				free(p);
			p = q;
			cap *= 2;
		}
	}
	if (!p) {
		cli_msg(c, "stdin: out of memory");
		return EX_BANK;
	}
	p[n] = '\0';
	*buf = p;
	*len = n;
	return EX_OK;
}

int cli_input(const cli *c, const char *arg, char **buf, const char **text, size_t *len)
{
	int ex;

	*buf = NULL;
	if (strcmp(arg, "-") != 0) {
		*text = arg;
		*len = strlen(arg);
		if (*len > CLI_MAX_INPUT) {
			cli_msg(c, "JSON argument larger than 16 MiB refused");
			return EX_INVALID;
		}
		return EX_OK;
	}
	if ((ex = read_stdin(c, buf, len)))
		return ex;
	*text = *buf;
	return EX_OK;
}

void cli_block_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	sigprocmask(SIG_BLOCK, set, NULL);
}

bool cli_wait_signal(const sigset_t *set, long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	struct timespec end, now;

	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += ts.tv_sec;
	end.tv_nsec += ts.tv_nsec;
	if (end.tv_nsec >= 1000000000L) {
		end.tv_sec++;
		end.tv_nsec -= 1000000000L;
	}
	for (;;) {
		if (sigtimedwait(set, NULL, &ts) >= 0)
			return true;
		if (errno != EINTR)
			return false;   /* EAGAIN: the time is up */
		/* Another signal (SIGCHLD, SIGWINCH...) woke us: sleep the rest. */
		clock_gettime(CLOCK_MONOTONIC, &now);
		long left = (end.tv_sec - now.tv_sec) * 1000000000L + (end.tv_nsec - now.tv_nsec);
		if (left <= 0)
			return false;
		ts.tv_sec = left / 1000000000L;
		ts.tv_nsec = left % 1000000000L;
	}
}

int cli_dispatch(cli *c, const char *group, const cli_sub *subs, int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : NULL;

	if (sub && (!strcmp(sub, "--help") || !strcmp(sub, "-h"))) {
		const cli_sub *s = subs;

		printf("usage: membank %s <command> ...\n\ncommands:\n", group);
		for (; s->name; s++) {
			const char *nl = strchr(s->usage, '\n');
			printf("  %.*s\n", nl ? (int)(nl - s->usage) : (int)strlen(s->usage),
			       s->usage);
		}
		if (s->usage)
			printf("\n%s", s->usage);
		return EX_OK;
	}
	for (const cli_sub *s = subs; sub && s->name; s++) {
		if (strcmp(sub, s->name) != 0)
			continue;
		snprintf(c->cmdbuf, sizeof c->cmdbuf, "%s %s", group, s->name);
		c->cmd = c->cmdbuf;
		c->usage = s->usage;
		optind = 0;   /* GNU getopt: 0 re-initialises for the new argv */
		return s->fn(c, argc - 1, argv + 1);
	}
	c->cmd = group;
	snprintf(c->usagebuf, sizeof c->usagebuf, "membank %s <command> ...", group);
	c->usage = c->usagebuf;
	if (!sub)
		return cli_usage_error(c, "missing command; 'membank %s --help' lists them", group);
	return cli_usage_error(c, "unknown command '%s'; 'membank %s --help' lists them", sub, group);
}

int cli_positional(cli *c, int argc, char **argv, int min, int max, int *ex)
{
	int ch = cli_getopt(c, argc, argv, "", NULL, ex);
	int n;

	if (ch < 0)
		return -1;
	n = argc - optind;
	if (n < min || n > max) {
		*ex = cli_usage_error(c, n < min ? "missing argument" : "too many arguments");
		return -1;
	}
	return 0;
}
