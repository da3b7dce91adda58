/*
 * lockfile.h - a lock file that excludes other processes and other threads.
 *
 * POSIX record locks (fcntl F_SETLKW), not flock(): a flock belongs to the
 * open file description, which a child inherits across fork(), so a child
 * that forks while another thread holds the lock would wait forever for a
 * lock its own inherited descriptor keeps alive.  Record locks belong to the
 * process and are not inherited.  They do not exclude threads of one
 * process, so a process-wide mutex per kind of lock does that; a child
 * re-initialises the mutexes it inherits (pthread_atfork), since the thread
 * that held one does not exist in the child.  A thread may hold two locks
 * of one kind on different files (never the same file: closing either
 * descriptor would drop both record locks).
 */
#ifndef MEMBANK_LOCKFILE_H
#define MEMBANK_LOCKFILE_H

enum lock_kind { LOCK_OPEN, LOCK_COMPACTOR, LOCK_KINDS };

typedef struct lockfile {
	int fd;
	enum lock_kind kind;
} lockfile;

/* Create (mode, never through a symlink) and lock <dir>/<name>.  A lock
 * file replaced while we waited (its directory swapped by a restore) is
 * let go and the one now at the path is locked instead. */
int lockfile_acquire(lockfile *l, enum lock_kind kind, const char *dir, const char *name,
                     unsigned mode, const void *tag);
void lockfile_release(lockfile *l);

#endif /* MEMBANK_LOCKFILE_H */
