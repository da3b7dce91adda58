#!/bin/bash
# brk.sh FILE N: inclusive instructions per write of the write path's parts
f=$1; n=$2
callgrind_annotate --inclusive=yes $f 2>/dev/null | sed -n '/PROGRAM TOTALS/,/Auto-annotated/p' | sed 's#/work/wt/fixedcost/build/../##; s#\[/.*\]##' > $f.brk
tot=$(grep "PROGRAM TOTALS" $f.brk | awk '{gsub(",","",$1); print $1}')
printf "%-40s %8.0f\n" "TOTAL per put" $(echo "$tot/$n" | bc -l)
for fn in write.c:bank_prep_page write.c:bank_write kv_lmdb.c:kv_begin write.c:bank_jend_load write.c:bank_roll_forward writer.c:mbj_next_at write.c:record_time state.c:st_clock_load writer.c:mbj_append write.c:apply_journaled record.c:rec_decode apply.c:apply_record apply.c:st_config_load state.c:st_config_load apply.c:page_remove apply.c:page_unindex apply.c:page_store state.c:st_pages_store state.c:st_clock_advance write.c:bank_jend_store kv_lmdb.c:kv_end mdb_txn_commit writer.c:next_segment; do
  v=$(grep -E "[ /]$fn *$|$fn \$" $f.brk | head -1 | awk '{gsub(",","",$1); print $1}')
  [ -n "$v" ] && printf "%-40s %8.0f\n" "$fn" $(echo "$v/$n" | bc -l)
done
