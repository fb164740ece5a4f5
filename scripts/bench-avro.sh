#!/bin/sh
# bench-avro.sh BIN BENCH_AVRO: Avro ingest next to JSON ingest of the same
# generated stream, through the local broker into SQLite (a fresh database
# each run), and the decoders alone (tests/bench_avro.c). `make bench` runs
# it after scripts/bench.sh; never part of `make test`.
#
#   BENCH_COUNT       messages in the stream (default 1000000)
#   BENCH_RUNS        runs of each ingest, the median is reported (default 3)
#   BENCH_PARTITIONS  topic partitions (default 64; the local broker keeps
#                     about 5 MB a partition)
#
# The rate is the message count over the wall time of the whole ingest
# (start to exit, migrations included); CPU is its user + system seconds,
# the figure that holds on a shared machine.
set -e
BIN=$(realpath "$1")
DECODE=$(realpath "$2")
COUNT=${BENCH_COUNT:-1000000}
RUNS=${BENCH_RUNS:-3}
PARTS=${BENCH_PARTITIONS:-64}
SCHEMA=$(cd "$(dirname "$0")/.." && pwd)/schemas/calls.avsc

tmp=$(mktemp -d)
cleanup() {
        set +e
        [ -f "$tmp/broker.pid" ] && kill "$(cat "$tmp/broker.pid")" 2>/dev/null
        wait 2>/dev/null
        rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf 'bench-avro: %s\n' "$*" >&2; }
fail() {
        say "$1 failed; its output ends:"
        tail -n 20 "$2" >&2
        exit 1
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

"$BIN" generate --count "$COUNT" --seed 1 --duplicates 0.05 --malformed 0.01 \
        --output "$tmp/stream.ndjson"
B=$("$BIN" broker --daemon --pid-file "$tmp/broker.pid" \
        --partitions "$PARTS" --topic json --topic avro)
"$BIN" produce -q -b "$B" -t json "$tmp/stream.ndjson" 2>"$tmp/p.log" ||
        fail "produce (JSON)" "$tmp/p.log"
"$BIN" produce -q -b "$B" -t avro --format avro --avro-schema "$SCHEMA" \
        "$tmp/stream.ndjson" 2>"$tmp/p.log" || fail "produce (Avro)" "$tmp/p.log"

# ingest FORMAT TOPIC: RUNS runs; appends "rate cpu" lines to $tmp/FORMAT.
ingest() {
        r=1
        while [ "$r" -le "$RUNS" ]; do
                rm -f "$tmp/db" "$tmp/db-wal" "$tmp/db-shm"
                set -- "$1" "$2"
                extra=""
                [ "$1" = avro ] && extra="--format avro --avro-schema $SCHEMA"
                t0=$(date +%s.%N)
                # shellcheck disable=SC2086
                /usr/bin/time -f '%U %S' -o "$tmp/time.out" "$BIN" ingest -q \
                        -b "$B" -t "$2" -d "$tmp/db" --from-beginning \
                        --exit-at-end $extra >"$tmp/i.log" 2>&1 ||
                        fail "ingest ($1)" "$tmp/i.log"
                t1=$(date +%s.%N)
                awk -v n="$COUNT" -v a="$t0" -v b="$t1" \
                        '{ printf "%.0f %.2f\n", n / (b - a), $1 + $2 }' \
                        "$tmp/time.out" >>"$tmp/$1"
                r=$((r + 1))
        done
        calls=$(sqlite3 "$tmp/db" "SELECT count(*) FROM calls")
        echo "$calls" >"$tmp/$1.calls"
}
say "$COUNT messages, $RUNS runs each, $PARTS partitions"
ingest json json
ingest avro avro
[ "$(cat "$tmp/json.calls")" = "$(cat "$tmp/avro.calls")" ] || {
        say "JSON stored $(cat "$tmp/json.calls") calls, Avro $(cat "$tmp/avro.calls")"
        exit 1
}
"$DECODE" "$tmp/stream.ndjson" >"$tmp/decode"

bytes_json=$(wc -c <"$tmp/stream.ndjson")
"$BIN" generate --count "$COUNT" --seed 1 --duplicates 0.05 --malformed 0.01 \
        --format avro --output "$tmp/stream.avro"
bytes_avro=$(($(wc -c <"$tmp/stream.avro") - 4 * COUNT))

printf 'callstream bench-avro: %d messages (%d calls), %d runs each, median shown\n' \
        "$COUNT" "$(cat "$tmp/json.calls")" "$RUNS"
printf '%-24s %12s %14s %12s\n' "ingest into SQLite" "msg/s wall" "CPU s (u+s)" \
        "bytes/msg"
for f in json avro; do
        rate=$(cut -d' ' -f1 "$tmp/$f" | median)
        cpu=$(cut -d' ' -f2 "$tmp/$f" | median)
        [ $f = json ] && b=$((bytes_json / COUNT - 1)) || b=$((bytes_avro / COUNT))
        printf '%-24s %12s %14s %12s\n' "$f" "$rate" "$cpu" "$b"
done
printf '%-24s %12s\n' "decode only, one thread" "calls/CPU s"
awk '{ printf "%-24s %12s\n", ($1 == "json" ? "json (cs_parse_call)" : $1 == "avro" ? "avro (cs_avro_decode)" : "avro (Avro C generic)"), $NF }' \
        "$tmp/decode"
