#!/bin/sh
# demo.sh BIN: a local broker, a generated stream of calls (with duplicates,
# late and malformed records) produced into it, ingested into callstream.db,
# and the top rows of the views.
set -e
BIN=$1
# The database lives under build/, which is the demo's own: it never
# touches a callstream.db of the user's.
DB=build/callstream.db
tmp=$(mktemp -d)
broker=""
cleanup() {
        [ -n "$broker" ] && kill "$broker" 2>/dev/null && wait "$broker" 2>/dev/null
        rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

"$BIN" broker --partitions 4 --topic calls >"$tmp/broker.out" 2>"$tmp/broker.err" &
broker=$!
i=0
while [ ! -s "$tmp/broker.out" ]; do
        i=$((i + 1))
        [ $i -lt 100 ] || { cat "$tmp/broker.err"; exit 1; }
        sleep 0.1
done
brokers=$(head -n 1 "$tmp/broker.out")
echo "== broker at $brokers"

"$BIN" generate --count 20000 --seed 42 --duplicates 0.03 \
        --changed-duplicates 0.01 --out-of-order 0.05 --malformed 0.01 \
        --output "$tmp/calls.ndjson"
echo "== producing 20000 generated calls into topic 'calls'"
"$BIN" produce --brokers "$brokers" --topic calls "$tmp/calls.ndjson"

# The demo's database starts afresh: its offsets belong to this broker.
rm -f "$DB" "$DB-wal" "$DB-shm"
echo "== ingesting into $DB"
"$BIN" ingest --brokers "$brokers" --topic calls --db "$DB" \
        --window 1h --window 1h/15m --from-beginning --exit-at-end

q() {
        echo
        echo "== $1"
        sqlite3 -header -column "$DB" "$2"
}
q "what was stored" "
SELECT (SELECT COUNT(*) FROM calls) AS calls,
       (SELECT COUNT(*) FROM rejected_records) AS rejected,
       (SELECT SUM(next_offset) FROM kafka_offsets) AS messages"
q "busiest hours and crime types (call_counts)" "
SELECT window_start, crime_type, calls, late_calls, is_final FROM call_counts
WHERE window_spec = '1h' ORDER BY calls DESC, window_start LIMIT 8"
q "how calls ended (disposition_counts)" "
SELECT disposition, disposition_description, SUM(calls) AS calls
FROM disposition_counts WHERE window_spec = '1h'
GROUP BY 1, 2 ORDER BY calls DESC LIMIT 8"
q "where the ingest stands (pipeline_progress)" "
SELECT topic, SUM(stored_offset) AS consumed, SUM(lag) AS lag,
       MIN(watermark) AS watermark, SUM(calls) AS calls,
       SUM(duplicates) AS duplicates, SUM(rejected) AS rejected,
       SUM(late) AS late
FROM pipeline_progress GROUP BY topic"
q "why records were rejected" "
SELECT substr(reason, 1, instr(reason || ' at', ' at') - 1) AS reason,
       COUNT(*) AS records
FROM rejected_records GROUP BY 1 ORDER BY records DESC LIMIT 8"
echo
echo "Next: sqlite3 $DB  (see README.md for queries to try)"
