/*
 * stream_stub.c - TEMPORARY: journal/stream.h without NATS, until
 * journal/stream.c (branch wg/stream) is merged; then this file goes.
 * Every call fails: a bank on a stream cannot be opened.
 */
#include <stdio.h>

#include "stream.h"

int mbs_connect(const mbs_options *o, mbs_conn **out) { (void)o; *out = NULL; return MBS_EURL; }
const char *mbs_connect_errmsg(void) { return "this build has no NATS support"; }
void mbs_close(mbs_conn *c) { (void)c; }
const char *mbs_errmsg(const mbs_conn *c) { (void)c; return "no NATS support"; }
const char *mbs_url_redacted(const mbs_conn *c) { (void)c; return ""; }
int mbs_url_check(const char *url, char *why, size_t n)
{
	(void)url;
	snprintf(why, n, "this build has no NATS support");
	return MBS_EURL;
}
int mbs_stream_ensure(mbs_conn *c, uint32_t r, bool cr, mbs_info *i)
{ (void)c; (void)r; (void)cr; (void)i; return MBS_EURL; }
int mbs_stream_info(mbs_conn *c, mbs_info *i) { (void)c; (void)i; return MBS_EURL; }
int mbs_publish(mbs_conn *c, uint64_t e, const char *id, uint8_t t, int64_t ts, const void *p,
                uint32_t l, uint64_t *s)
{ (void)c; (void)e; (void)id; (void)t; (void)ts; (void)p; (void)l; (void)s; return MBS_EURL; }
int mbs_fetch(mbs_conn *c, uint64_t f, uint64_t t, int (*fn)(void *, const mbj_record *), void *x)
{ (void)c; (void)f; (void)t; (void)fn; (void)x; return MBS_EURL; }
int mbs_wait_beyond(mbs_conn *c, uint64_t s, uint32_t t) { (void)c; (void)s; (void)t; return 0; }
int mbs_purge_before(mbs_conn *c, uint64_t s) { (void)c; (void)s; return MBS_EURL; }
int mbs_checkpoint_put(mbs_conn *c, const char *d, uint64_t s) { (void)c; (void)d; (void)s; return MBS_EURL; }
int mbs_checkpoint_get(mbs_conn *c, const char *d, uint64_t *s) { (void)c; (void)d; (void)s; return MBS_EURL; }
