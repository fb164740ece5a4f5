#!/bin/sh
# bench-rates.sh BIN: throughput and freshness of `callstream ingest` under a
# few settings of --max-rate-per-partition (Spark's maxRatePerPartition) and
# --batch-max-records (its maxOffsetsPerTrigger), on a small generated
# stream, into SQLite (1h + 1h/15m). Prints a Markdown table. Part of
# `make bench`, after scripts/bench.sh; never of `make test`.
#
#   RATES_COUNT       messages of the backlog (default 100000)
#   RATES_FRESH       calls of the live stream (default 20000)
#   RATES_OFFERED     the live stream's rate, messages/s (default 5000)
#   RATES_PARTITIONS  topic partitions (default 8)
#
# Throughput: the backlog's message count over the wall time of an ingest
# that reads it from the beginning to its end (--exit-at-end), start to
# exit. Freshness: an ingest follows an empty topic while produce sends the
# live stream at RATES_OFFERED; a sqlite3 poller notes every ~20 ms how many
# calls are visible; the delay of the n-th call produced is the time the
# poller first saw n calls less its CreateTime (kcat %T). Under a rate
# limit partitions do not keep step, so this is the delay of the n-th call
# to become visible, whichever it was: the freshness a dashboard sees.
set -e
BIN=$(realpath "$1")
COUNT=${RATES_COUNT:-100000}
FRESH=${RATES_FRESH:-20000}
OFFERED=${RATES_OFFERED:-5000}
PARTS=${RATES_PARTITIONS:-8}
# max-rate-per-partition:batch-max-records, - for no limit.
SETTINGS="-:10000 1000:10000 400:10000 -:500"

tmp=$(mktemp -d)
ingest_pid=""
poll_pid=""
cleanup() {
        set +e
        [ -n "$ingest_pid" ] && kill "$ingest_pid" 2>/dev/null
        [ -n "$poll_pid" ] && kill "$poll_pid" 2>/dev/null
        [ -f "$tmp/broker.pid" ] && kill "$(cat "$tmp/broker.pid")" 2>/dev/null
        wait 2>/dev/null
        rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf 'bench-rates: %s\n' "$*" >&2; }
now() { date +%s.%N; }
fail() {
        say "$1 failed; its output ends:"
        tail -n 20 "$2" >&2
        exit 1
}

say "$(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); backlog $COUNT" \
        "messages, live $FRESH at $OFFERED/s, $PARTS partitions"
"$BIN" generate --count "$COUNT" --seed 21 --duplicates 0.05 --malformed 0.01 \
        --output "$tmp/backlog.ndjson"
# The live stream has neither duplicates nor malformed messages, so that
# every message is a call; its first line is a warm-up call.
"$BIN" generate --count "$((FRESH + 1))" --seed 22 --output "$tmp/live.ndjson"
head -n 1 "$tmp/live.ndjson" >"$tmp/warmup.ndjson"
tail -n +2 "$tmp/live.ndjson" >"$tmp/live_rest.ndjson"

topics="--topic backlog"
k=0
for s in $SETTINGS; do
        topics="$topics --topic live$k"
        k=$((k + 1))
done
# shellcheck disable=SC2086
B=$("$BIN" broker --daemon --pid-file "$tmp/broker.pid" \
        --partitions "$PARTS" $topics)
"$BIN" produce -b "$B" -t backlog -q "$tmp/backlog.ndjson" \
        2>"$tmp/produce.log" || fail "produce" "$tmp/produce.log"

W="--window 1h --window 1h/15m --allowed-lateness 1h"
# pct FILE P: the P-th percentile of a sorted file of numbers.
pct() {
        n=$(wc -l <"$1")
        [ "$n" -gt 0 ] || { echo "-"; return; }
        sed -n "$(((n * $2 + 99) / 100))p" "$1"
}

printf '| --max-rate-per-partition | --batch-max-records | backlog msg/s | live: freshness p50 | p99 | max |\n'
printf '|---:|---:|---:|---:|---:|---:|\n'
k=0
for s in $SETTINGS; do
        rate=${s%:*} batch=${s#*:}
        opts="--batch-max-records $batch"
        [ "$rate" = - ] || opts="$opts --max-rate-per-partition $rate"

        # Throughput: the backlog, from its beginning to its end.
        t0=$(now)
        # shellcheck disable=SC2086
        "$BIN" ingest -b "$B" -t backlog --db "$tmp/backlog$k.db" $W $opts \
                --from-beginning --exit-at-end -q 2>"$tmp/ingest.log" ||
                fail "ingest $opts" "$tmp/ingest.log"
        t1=$(now)
        tput=$(awk -v n="$COUNT" -v a="$t0" -v b="$t1" \
                'BEGIN { printf "%.0f", n / (b - a) }')

        # Freshness: a live stream at OFFERED/s, followed.
        db=$tmp/live$k.db
        # shellcheck disable=SC2086
        "$BIN" ingest -b "$B" -t "live$k" --db "$db" $W $opts \
                --from-beginning -q 2>"$tmp/live_ingest.log" &
        ingest_pid=$!
        "$BIN" produce -b "$B" -t "live$k" -q "$tmp/warmup.ndjson"
        i=0
        until [ "$(sqlite3 "$db" "SELECT count(*) FROM calls" 2>/dev/null)" = 1 ]; do
                i=$((i + 1))
                [ $i -lt 600 ] || fail "warm-up" "$tmp/live_ingest.log"
                sleep 0.05
        done
        rm -f "$tmp/poll.stop"
        (
                while [ ! -f "$tmp/poll.stop" ]; do
                        echo "SELECT coalesce(sum(calls_total), 0) FROM kafka_offsets;"
                        echo "SELECT CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER);"
                        sleep 0.02
                done
        ) | sqlite3 -cmd ".timeout 1000" "$db" |
                awk 'NR % 2 { c = $1; next } { print $1, c }' >"$tmp/poll.log" &
        poll_pid=$!
        "$BIN" produce -b "$B" -t "live$k" -q --rate "$OFFERED" \
                "$tmp/live_rest.ndjson" 2>"$tmp/produce.log" ||
                fail "produce --rate" "$tmp/produce.log"
        i=0
        until [ "$(sqlite3 "$db" "SELECT count(*) FROM calls")" = "$((FRESH + 1))" ]; do
                i=$((i + 1))
                [ $i -lt 3600 ] || { say "warning: not all visible after 3 minutes"; break; }
                sleep 0.05
        done
        sleep 0.2
        touch "$tmp/poll.stop"
        wait "$poll_pid" || true
        poll_pid=""
        kill "$ingest_pid"
        wait "$ingest_pid" || true
        ingest_pid=""
        kcat -C -b "$B" -t "live$k" -o beginning -e -q -f '%T\n' | sort -n |
                tail -n +2 >"$tmp/sent.txt"
        awk 'FNR == NR { pt[np] = $1; pc[np] = $2; np++; next }
             { i++; while (j < np && pc[j] < i + 1) j++
               if (j < np) print pt[j] - $1 }' \
                "$tmp/poll.log" "$tmp/sent.txt" | sort -n >"$tmp/delays.txt"
        printf '| %s | %s | %s | %s ms | %s ms | %s ms |\n' \
                "$([ "$rate" = - ] && echo "no limit" || echo "$rate")" \
                "$batch" "$tput" "$(pct "$tmp/delays.txt" 50)" \
                "$(pct "$tmp/delays.txt" 99)" "$(pct "$tmp/delays.txt" 100)"
        k=$((k + 1))
done
