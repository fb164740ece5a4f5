#!/bin/sh
# bench.sh BIN [COUNT]: ingest throughput against a local broker, next to the
# rate at which kcat merely reads the same topic. Timing lives here, never in
# `make test`: machines are noisy, so read the figures, don't assert them.
set -e
BIN=$1
COUNT=${2:-${BENCH_COUNT:-400000}}
PARTS=${BENCH_PARTITIONS:-32}
tmp=$(mktemp -d)
broker=""
cleanup() {
        [ -n "$broker" ] && kill "$broker" 2>/dev/null && wait "$broker" 2>/dev/null
        rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

now() { date +%s.%N; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f", n / (b - a) }'; }

"$BIN" broker --partitions "$PARTS" --topic calls >"$tmp/broker.out" 2>/dev/null &
broker=$!
while [ ! -s "$tmp/broker.out" ]; do sleep 0.1; done
B=$(head -n 1 "$tmp/broker.out")

"$BIN" generate --count "$COUNT" --seed 1 --duplicates 0.02 --malformed 0.005 \
        --output "$tmp/calls.ndjson"
bytes=$(wc -c <"$tmp/calls.ndjson")
t0=$(now)
"$BIN" produce --brokers "$B" --topic calls "$tmp/calls.ndjson" 2>/dev/null
t1=$(now)
echo "produce:        $COUNT messages ($bytes bytes) $(rate "$COUNT" "$t0" "$t1") msg/s"

t0=$(now)
kcat -C -b "$B" -t calls -o beginning -e -q -f '%s\n' >"$tmp/kcat.out"
t1=$(now)
got=$(wc -l <"$tmp/kcat.out")
kcat_rate=$(rate "$got" "$t0" "$t1")
echo "kcat read:      $got messages $kcat_rate msg/s"
[ "$got" -eq "$COUNT" ] || echo "warning: the broker kept $got of $COUNT messages (add partitions)"

t0=$(now)
"$BIN" ingest --brokers "$B" --topic calls --db "$tmp/bench.db" --window 1h \
        --window 1h/15m --from-beginning --exit-at-end -q
t1=$(now)
ingest_rate=$(rate "$got" "$t0" "$t1")
echo "ingest sqlite:  $got messages $ingest_rate msg/s (windows 1h, 1h/15m)"
awk -v a="$ingest_rate" -v b="$kcat_rate" \
        'BEGIN { printf "ingest / kcat:  %.2f\n", a / b }'
