/*
 * fuzz_restore.c - libFuzzer target: hostile bytes as one of the four JSON
 * files mb_restore() reads.
 *
 * Input: byte 0 modulo 4 picks the file (notion_pages.json,
 * sync_status.json, error_log.json, config_cache.json); bytes 1.. are its
 * content.  The other three are the files of a valid snapshot made once
 * per process from a small bank.  Then mb_restore() into a fresh target
 * path, and these must hold (abort otherwise):
 *  - it returns 0, or MB_EINVAL / MB_ECORRUPT with a message naming the file;
 *  - on failure nothing is left behind: no target, no "<target>.restore-*";
 *  - on success the target opens, and a snapshot of it restores again (the
 *    bank's own output is always accepted).
 * Everything lives in a tmpfs directory when there is one (fsync is free
 * there) and is removed after each input.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file.h"
#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const files[4] = {
	"notion_pages.json", "sync_status.json", "error_log.json", "config_cache.json",
};

static char root[96], good[160], in[160], target[160], again[160];
static mb_options opts;

static void die(const char *what, int rc)
{
	fprintf(stderr, "fuzz_restore: %s: %s: %s\n", what, mb_errname(rc), mb_last_error(NULL));
	abort();
}

static void make_good(void)
{
	char bank[200];
	mb_bank *b;
	int rc;

	snprintf(bank, sizeof bank, "%s/seed-bank", root);
	if ((rc = mb_open(bank, &opts, &b)))
		die("open seed bank", rc);
	if (mb_page_put(b, "page-1", "{\"title\":\"One\",\"n\":[1,2.5,null,true]}", (size_t)-1) ||
	    mb_page_put(b, "page-\xc3\xa9", "{\"deep\":{\"a\":{\"b\":\"\\u00e9\"}}}", (size_t)-1) ||
	    mb_sync_record(b, "success", NULL) || mb_sync_record(b, "failed", "timeout") ||
	    mb_error_log(b, "NetworkError", "reset") || mb_error_resolve(b, "NetworkError", "retry") ||
	    mb_error_log(b, "Auth", "401") ||
	    mb_config_update(b, "{\"cache_settings\":{\"max_entries\":50}}", (size_t)-1))
		die("seed writes", -1);
	mkdir(good, 0700);
	if ((rc = mb_snapshot(b, good, NULL)))
		die("seed snapshot", rc);
	mb_close(b);
	mb_rm_tree(bank);
}

static void cleanup(void)
{
	mb_rm_tree(root);
}

static void init(void)
{
	snprintf(root, sizeof root, "%s/fuzz-restore-XXXXXX",
	         access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	if (!mkdtemp(root))
		abort();
	atexit(cleanup);
	snprintf(good, sizeof good, "%s/good", root);
	snprintf(in, sizeof in, "%s/in", root);
	snprintf(target, sizeof target, "%s/target", root);
	snprintf(again, sizeof again, "%s/again", root);
	mb_options_init(&opts);
	opts.durability = MB_DURABILITY_FAST;
	opts.map_size = (size_t)1 << 20;
	make_good();
	mkdir(in, 0700);
}

static void put_file(const char *dir, const char *name, const void *p, size_t n)
{
	char path[256];
	int fd;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || (n && write(fd, p, n) != (ssize_t)n))
		abort();
	close(fd);
}

static void copy_good(const char *name)
{
	static char buf[1 << 16];
	char path[256];
	ssize_t n;
	int fd;

	snprintf(path, sizeof path, "%s/%s", good, name);
	if ((fd = open(path, O_RDONLY)) < 0 || (n = read(fd, buf, sizeof buf)) < 0)
		abort();
	close(fd);
	put_file(in, name, buf, (size_t)n);
}

/* Nothing of a failed restore may remain beside the target. */
static void check_nothing_left(void)
{
	struct dirent *e;
	DIR *d = opendir(root);

	while ((e = readdir(d)))
		if (!strncmp(e->d_name, "target", 6)) {
			fprintf(stderr, "left behind after a failed restore: %s\n", e->d_name);
			abort();
		}
	closedir(d);
}

static void check_restored(void)
{
	char snap[200];
	mb_bank *b;
	int rc;

	if ((rc = mb_open(target, &opts, &b)))
		die("open restored", rc);
	snprintf(snap, sizeof snap, "%s/snap", root);
	mkdir(snap, 0700);
	if ((rc = mb_snapshot(b, snap, NULL)))
		die("snapshot restored", rc);
	mb_close(b);
	if ((rc = mb_restore(snap, again, &opts, 0)))
		die("restore of the bank's own snapshot", rc);
	mb_rm_tree(snap);
	mb_rm_tree(again);
	mb_rm_tree(target);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int which, rc;

	if (size < 1)
		return 0;
	if (!root[0])
		init();
	which = data[0] & 3;
	for (int i = 0; i < 4; i++)
		if (i != which)
			copy_good(files[i]);
	put_file(in, files[which], data + 1, size - 1);
	rc = mb_restore(in, target, &opts, 0);
	if (rc == 0) {
		check_restored();
	} else if (rc == MB_EINVAL || rc == MB_ECORRUPT) {
		if (!strstr(mb_last_error(NULL), files[which]) &&
		    !strstr(mb_last_error(NULL), "restore"))
			die("message does not name the file", rc);
		check_nothing_left();
	} else {
		die("restore", rc);
	}
	return 0;
}
