/*
 * cluster.c - a bank whose journal is a NATS JetStream stream: the public
 * calls (mb_catch_up, mb_cluster_status).
 */
#include <string.h>

#include "bank.h"

int mb_catch_up(mb_bank *b)
{
	int rc;

	if (!b)
		return mb_fail(NULL, MB_EINVAL, "catch up: bank is NULL");
	if ((rc = bank_check(b)))
		return rc;
	return 0;
}

int mb_cluster_status(mb_bank *b, mb_cluster_info *out)
{
	int rc;

	if (!b || !out)
		return mb_fail(b, MB_EINVAL, "cluster status: %s is NULL", b ? "output" : "bank");
	if ((rc = bank_check(b)))
		return rc;
	memset(out, 0, sizeof *out);
	return mb_fail(b, MB_EINVAL, "cluster status: the bank at %s is not bound to a cluster "
	               "(its journal is local)", b->path);
}
