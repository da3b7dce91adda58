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
 *
 * WAITING.  The lock is polled (F_SETLK, naps from 0.25 to 2 ms: an open
 * holds it for a few ms, and a cold process must not oversleep it), not
 * waited for with F_SETLKW, so that no call waits without bound on a
 * process that does not progress: a holder that stays stopped (SIGSTOP, a
 * debugger: state T or t in /proc/<pid>/stat, pid from F_GETLK) for
 * LOCK_STOPPED_MS makes lockfile_acquire fail with MB_EIO and a message
 * naming it.  A holder that runs is waited for (an open may rebuild a
 * large store under the open lock); a dead one releases the lock.
 */
#ifndef MEMBANK_LOCKFILE_H
#define MEMBANK_LOCKFILE_H

/* LOCK_BOOT: a machine on a stream starting again from its cluster's
 * checkpoint (cluster.c), taken outside LMDB's writer lock. */
enum lock_kind { LOCK_OPEN, LOCK_COMPACTOR, LOCK_BOOT, LOCK_KINDS };

#define LOCK_STOPPED_MS 10000

typedef struct lockfile {
	int fd;
	enum lock_kind kind;
} lockfile;

/* Create (mode, never through a symlink) and lock <dir>/<name>.  A lock
 * file replaced while we waited (its directory swapped by a restore) is
 * let go and the one now at the path is locked instead. */
int lockfile_acquire(lockfile *l, enum lock_kind kind, const char *dir, const char *name,
                     unsigned mode, const void *tag);
/* The same without waiting: 1 (nothing held) when another process or
 * thread holds it. */
int lockfile_try(lockfile *l, enum lock_kind kind, const char *dir, const char *name,
                 unsigned mode, const void *tag);
void lockfile_release(lockfile *l);

#endif /* MEMBANK_LOCKFILE_H */
