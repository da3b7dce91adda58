/*
 * static_link.c - a program that links libmembank.a statically and has
 * functions of its own named like the library's internals.  Before the
 * installed archive was localised, this failed to link ("multiple
 * definition of `kv_open'"); now it links, and the library works.  It also
 * checks that the library's version is the project's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <membank.h>

/* Names of the library's internal functions: the program's own. */
int kv_open(void);
int buf_add(void);
int json_parse(void);
int apply_record(void);
int mbj_open(void);
int kv_open(void) { return 1; }
int buf_add(void) { return 2; }
int json_parse(void) { return 3; }
int apply_record(void) { return 4; }
int mbj_open(void) { return 5; }

int main(void)
{
	char dir[] = "/tmp/membank-static-XXXXXX", path[64], *json = NULL;
	int number = 0, rc;
	mb_bank *b = NULL;

	if (strcmp(mb_version(&number), EXPECT_VERSION) || number != MB_VERSION_NUMBER ||
	    strcmp(MB_VERSION, EXPECT_VERSION)) {
		fprintf(stderr, "version: library %s (%d), header %s, project %s\n",
		        mb_version(NULL), number, MB_VERSION, EXPECT_VERSION);
		return 1;
	}
	if (kv_open() + buf_add() + json_parse() + apply_record() + mbj_open() != 15)
		return 1;
	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof path, "%s/bank", dir);
	rc = mb_open(path, NULL, &b);
	if (!rc)
		rc = mb_page_put(b, "p", "{\"a\":1}", (size_t)-1);
	if (!rc)
		rc = mb_page_get(b, "p", &json, NULL);
	if (rc || !strstr(json, "\"a\":1")) {
		fprintf(stderr, "static library: %s: %s\n", mb_errname(rc), mb_last_error(b));
		return 1;
	}
	mb_free(json);
	mb_close(b);
	snprintf(path, sizeof path, "rm -rf '%s'", dir);
	return system(path) ? 1 : 0;
}
