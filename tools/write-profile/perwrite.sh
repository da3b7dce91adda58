#!/bin/bash
# perwrite.sh BIN MODE N: syscalls per write between the marks, by name, with fd targets
BIN=$1; MODE=$2; N=${3:-1000}
D=$(mktemp -d "${TMPDIR:-/tmp}/perwrite.XXXX")
strace -f -yy -o $D.trace $BIN $D/bank $N $MODE 1000 2>/dev/null
awk '/MARK-START/{on=1;next} /MARK-END/{on=0} on' $D.trace > $D.mid
echo "== $BIN $MODE: syscalls per write (N=$N)"
sed -E 's/^[0-9]+ +//; s/\(.*//' $D.mid | sort | uniq -c | sort -rn | awk -v n=$N '{printf "%8.3f %s\n", $1/n, $2}'
echo "-- total per write:" $(wc -l < $D.mid | awk -v n=$N '{print $1/n}')
echo "-- by target (first arg), per write:"
sed -E 's/^[0-9]+ +//; s/^([a-z0-9_]+)\(([^,)]*).*/\1 \2/; s/<[^>]*\/(journal|store)\//<\1\//; s/[0-9]{20}/SEG/' $D.mid | sed -E 's/"[^"]*\/([^/"]+)"/"\1"/' | sort | uniq -c | sort -rn | awk -v n=$N '{c=$1; $1=""; printf "%8.3f %s\n", c/n, $0}' | head -20
echo "-- data.mdb bytes written per write:"
grep -E 'pwrite64\([0-9]+<[^>]*data.mdb>|writev\([0-9]+<[^>]*data.mdb>' $D.mid | sed -E 's/.*= ([0-9]+)$/\1/' | awk -v n=$N '{s+=$1; c++} END{printf "%.1f bytes = %.2f pages of 4096 in %.2f calls\n", s/n, s/n/4096, c/n}'
rm -rf $D $D.trace $D.mid
