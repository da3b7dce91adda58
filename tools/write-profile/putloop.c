/* putloop BANK N full|fast [PREFILL]: N single-page puts on 100 ids after PREFILL puts (default 1000),
 * no automatic checkpoint; put_one() brackets the measured part for callgrind:
 *   cc -O2 -g -o putloop putloop.c -Ilibshm -Lbuild/libshm -lmembank -Wl,-rpath,$PWD/build/libshm
 *   valgrind --tool=callgrind --collect-atstart=no --toggle-collect=put_one ./putloop /tmp/b 2000 fast
 *   ./perwrite.sh ./putloop fast 1000      (strace: syscalls per write, data.mdb bytes per write)
 *   ./brk.sh callgrind.out.N 2000           (instructions per write by function) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "membank.h"
static const char PROPS[] = "{\"title\":\"Benchmark page\",\"status\":\"In progress\","
	"\"tags\":[\"a\",\"b\",\"c\"],\"count\":42}";
__attribute__((noinline)) int put_one(mb_bank *b, const char *id)
{
	return mb_page_put(b, id, PROPS, sizeof PROPS - 1);
}
int main(int argc, char **argv)
{
	mb_options o; mb_bank *b; char id[32];
	long n = atol(argv[2]), pre = argc > 4 ? atol(argv[4]) : 1000;
	mb_options_init(&o);
	o.durability = strcmp(argv[3], "fast") ? MB_DURABILITY_FULL : MB_DURABILITY_FAST;
	o.no_auto_checkpoint = true;
	if (mb_open(argv[1], &o, &b)) { fprintf(stderr, "%s\n", mb_last_error(NULL)); return 1; }
	for (long i = 0; i < pre; i++) {
		snprintf(id, sizeof id, "pre-%06ld", i);
		if (mb_page_put(b, id, PROPS, sizeof PROPS - 1)) return 2;
	}
	fprintf(stderr, "MARK-START\n");
	for (long i = 0; i < n; i++) {
		snprintf(id, sizeof id, "bench-%03ld", i % 100);
		if (put_one(b, id)) { fprintf(stderr, "%s\n", mb_last_error(b)); return 3; }
	}
	fprintf(stderr, "MARK-END\n");
	mb_close(b);
	return 0;
}
