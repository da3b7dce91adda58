/*
 * abi_layout.c - prints, as JSON, the size of each public struct of
 * membank.h that the Python binding declares with ctypes, and the offset and
 * size of each of its fields, so that test_membank.py can check that
 * python/membank/_lib.py lays them out exactly as the compiler does.  A
 * field added to the header must be added here (the struct's size would
 * differ otherwise) and to _lib.py.
 */
#include <stddef.h>
#include <stdio.h>

#include "membank.h"

#define F(type, field) \
	printf("%s\"%s\":[%zu,%zu]", first ? "" : ",", #field, offsetof(type, field), \
	       sizeof(((type *)0)->field)), first = 0

#define BEGIN(type) \
	printf("%s\"%s\":{\"size\":%zu,\"fields\":{", nth++ ? "," : "", #type, sizeof(type)), \
	first = 1
#define END() printf("}}")

int main(void)
{
	int first, nth = 0;

	printf("{");
	BEGIN(mb_options);
	F(mb_options, durability);
	F(mb_options, group_shared);
	F(mb_options, create);
	F(mb_options, allow_network_fs);
	F(mb_options, map_size);
	F(mb_options, max_json_bytes);
	F(mb_options, history_limit);
	F(mb_options, segment_bytes);
	F(mb_options, journal_retention_s);
	F(mb_options, keep_reader_slots);
	F(mb_options, checkpoint_min_bytes);
	F(mb_options, checkpoint_pct);
	F(mb_options, checkpoint_interval_s);
	F(mb_options, no_auto_checkpoint);
	F(mb_options, defer_auto_checkpoint);
	F(mb_options, progress);
	F(mb_options, progress_ctx);
	F(mb_options, journal_url);
	F(mb_options, journal_creds);
	F(mb_options, journal_tls_ca);
	F(mb_options, journal_tls_cert);
	F(mb_options, journal_tls_key);
	F(mb_options, journal_replicas);
	F(mb_options, journal_timeout_ms);
	END();
	BEGIN(mb_cluster_info);
	F(mb_cluster_info, url);
	F(mb_cluster_info, stream);
	F(mb_cluster_info, reachable);
	F(mb_cluster_info, error);
	F(mb_cluster_info, replicas);
	F(mb_cluster_info, leader);
	F(mb_cluster_info, first_seq);
	F(mb_cluster_info, last_seq);
	F(mb_cluster_info, applied_seq);
	F(mb_cluster_info, lag_records);
	F(mb_cluster_info, since_contact_ms);
	F(mb_cluster_info, checkpoint_seq);
	F(mb_cluster_info, foreign_skipped);
	F(mb_cluster_info, diverged);
	END();
	BEGIN(mb_snapshot_info);
	F(mb_snapshot_info, seq);
	F(mb_snapshot_info, pages);
	F(mb_snapshot_info, bytes);
	F(mb_snapshot_info, purged);
	F(mb_snapshot_info, segments_removed);
	F(mb_snapshot_info, seconds);
	F(mb_snapshot_info, pages_evicted);
	F(mb_snapshot_info, pages_purged);
	F(mb_snapshot_info, pages_expired);
	END();
	printf("}\n");
	return ferror(stdout) ? 1 : 0;
}
