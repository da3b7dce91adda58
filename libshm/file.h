/*
 * file.h - files replaced atomically: a reader never sees half a file.
 *
 * A temp file is created beside the target (O_CREAT|O_EXCL|O_NOFOLLOW, so a
 * planted symlink is never followed), written, fsync'ed, renamed over the
 * target, and the directory fsync'ed so the rename itself survives a crash.
 * Until afile_commit() the target is untouched; afile_abort() removes the
 * temp file.
 */
#ifndef MEMBANK_FILE_H
#define MEMBANK_FILE_H

#include <dirent.h>
#include <stddef.h>

typedef struct afile {
	int fd;
	char *dir, *tmp, *name;
	const void *tag;   /* error messages go to this handle */
	size_t pending;
	char buf[64 * 1024];
} afile;

int afile_open(afile *f, const char *dir, const char *name, unsigned mode, const void *tag);
int afile_write(afile *f, const void *p, size_t n);
int afile_commit(afile *f);
void afile_abort(afile *f);

/* Remove a directory and everything in it (no symlink is followed). */
int mb_rm_tree(const char *path);

/* fsync a directory by path. */
int fsync_dir(const char *dir);

/* opendir(), on a descriptor above 0..2 like mb_open_fd(). */
DIR *mb_opendir(const char *path);

#endif /* MEMBANK_FILE_H */
