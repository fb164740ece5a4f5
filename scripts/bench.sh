#!/bin/sh
# bench.sh BIN BENCH_PARSE [JSON]: callstream's throughput, peak memory and
# freshness next to anchors that do the least the same work can cost (kcat
# reading the topic, sqlite3 .import and PostgreSQL COPY of the same calls),
# in one run on one generated stream. Prints one table and writes JSON
# (default build/bench.json). Timing lives here, never in `make test`.
#
#   BENCH_COUNT   messages in the stream (default 1000000)
#   BENCH_RUNS    runs of each figure, the median is reported (default 3)
#   BENCH_SMALL   the smaller stream for peak RSS (default BENCH_COUNT/4)
#   BENCH_FRESH   calls produced for the freshness figure (default 200000)
#   BENCH_PARTITIONS  topic partitions (default 64; the local broker keeps
#                     about 5 MB a partition)
#   PG_BINDIR     PostgreSQL server binaries (default: pg_config, else 15's)
#
# Every rate is the stream's message count divided by the wall time of the
# whole command (start to exit, migrations included), so a ratio of two
# rates is the inverse ratio of their times for the same stream.
set -e
BIN=$(realpath "$1")
PARSE=$(realpath "$2")
JSON=${3:-build/bench.json}
COUNT=${BENCH_COUNT:-1000000}
RUNS=${BENCH_RUNS:-3}
SMALL=${BENCH_SMALL:-$((COUNT / 4))}
FRESH=${BENCH_FRESH:-200000}
FRESH_RATE=20000
PARTS=${BENCH_PARTITIONS:-64}

tmp=$(mktemp -d)
fig=$tmp/fig
mkdir "$fig"
pgdata=""
AS=""
cleanup() {
        set +e
        [ -n "$ingest_pid" ] && kill "$ingest_pid" 2>/dev/null
        [ -n "$poll_pid" ] && kill "$poll_pid" 2>/dev/null
        [ -f "$tmp/broker.pid" ] && kill "$(cat "$tmp/broker.pid")" 2>/dev/null
        [ -n "$pgdata" ] && $AS "$PGBIN/pg_ctl" -D "$pgdata" -m immediate \
                stop >/dev/null 2>&1
        wait 2>/dev/null
        rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf 'bench: %s\n' "$*" >&2; }
now() { date +%s.%N; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f\n", n / (b - a) }'; }
# add KEY VALUE: one run's value of a figure.
add() { echo "$2" >>"$fig/$1"; }
# fail WHAT LOG: a step that must work did not.
fail() {
        say "$1 failed; its output ends:"
        tail -n 20 "$2" >&2
        exit 1
}

# timed KEY N RSSKEY CMD...: runs CMD under /usr/bin/time -v, adds N / wall
# seconds to KEY and the peak RSS (MiB) to RSSKEY (unless RSSKEY is -).
timed() {
        key=$1 n=$2 rsskey=$3
        shift 3
        t0=$(now)
        /usr/bin/time -v -o "$tmp/time.out" "$@" >"$tmp/cmd.log" 2>&1 ||
                fail "$key" "$tmp/cmd.log"
        t1=$(now)
        add "$key" "$(rate "$n" "$t0" "$t1")"
        [ "$rsskey" = - ] || add "$rsskey" "$(awk -F': ' \
                '/Maximum resident set size/ { printf "%.1f\n", $2 / 1024 }' \
                "$tmp/time.out")"
}

# --- the machine -----------------------------------------------------------
cores=$(nproc)
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
load=$(cut -d' ' -f1-3 /proc/loadavg)
say "$cores cores, $cpu, load $load; $COUNT messages, $RUNS runs"

# --- the streams -----------------------------------------------------------
# The big and the small stream: ~5% exact duplicates, ~1% malformed. The
# freshness stream has neither, so that the n-th call produced is the n-th
# row in calls; its first line is a warm-up call.
"$BIN" generate --count "$COUNT" --seed 1 --duplicates 0.05 --malformed 0.01 \
        --output "$tmp/big.ndjson"
"$BIN" generate --count "$SMALL" --seed 2 --duplicates 0.05 --malformed 0.01 \
        --output "$tmp/small.ndjson"
"$BIN" generate --count "$((FRESH + 1))" --seed 3 --output "$tmp/fresh.ndjson"
bytes=$(wc -c <"$tmp/big.ndjson")
say "stream: $COUNT messages, $((bytes / COUNT)) bytes each on average"

topics="--topic calls --topic small"
r=1
while [ "$r" -le "$RUNS" ]; do
        topics="$topics --topic fresh$r"
        r=$((r + 1))
done
# shellcheck disable=SC2086
B=$("$BIN" broker --daemon --pid-file "$tmp/broker.pid" \
        --partitions "$PARTS" $topics)
"$BIN" produce -b "$B" -t calls "$tmp/big.ndjson" 2>"$tmp/produce.log" ||
        fail "produce" "$tmp/produce.log"
"$BIN" produce -b "$B" -t small "$tmp/small.ndjson" 2>"$tmp/produce.log" ||
        fail "produce" "$tmp/produce.log"

# --- PostgreSQL: a throw-away server, Unix socket only, fsync off -----------
PGBIN=${PG_BINDIR:-$(pg_config --bindir 2>/dev/null || true)}
[ -x "$PGBIN/initdb" ] || PGBIN=/usr/lib/postgresql/15/bin
pgdir=$tmp/pg
mkdir "$pgdir"
if [ "$(id -u)" -eq 0 ]; then
        # The server runs as postgres and must reach its folder inside ours.
        chmod 711 "$tmp"
        chown postgres: "$pgdir"
        AS="runuser -u postgres --"
fi
$AS "$PGBIN/initdb" -D "$pgdir/data" -U postgres --auth=trust \
        --encoding=UTF8 --no-locale --no-sync >"$tmp/initdb.log" 2>&1 ||
        fail "initdb" "$tmp/initdb.log"
cat >>"$pgdir/data/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$pgdir'
fsync = off
EOF
pgdata=$pgdir/data
$AS "$PGBIN/pg_ctl" -D "$pgdata" -l "$pgdir/server.log" -w start \
        >"$tmp/pgctl.log" 2>&1 || fail "pg_ctl start" "$pgdir/server.log"
psql_() { psql -X -q -v ON_ERROR_STOP=1 -h "$pgdir" -U postgres "$@"; }
pg_db() { psql_ -d postgres -c "CREATE DATABASE $1" && echo "host=$pgdir user=postgres dbname=$1"; }

# --- kcat: reading the topic, nothing else ----------------------------------
r=1
while [ "$r" -le "$RUNS" ]; do
        t0=$(now)
        got=$(kcat -C -b "$B" -t calls -o beginning -e -q | wc -l)
        t1=$(now)
        [ "$got" -eq "$COUNT" ] ||
                say "warning: kcat read $got of $COUNT messages (the broker dropped some: raise BENCH_PARTITIONS)"
        add kcat "$(rate "$COUNT" "$t0" "$t1")"
        r=$((r + 1))
done

# --- the ingests ------------------------------------------------------------
W1="--window 1h"
W2="--window 1h --window 1h/15m"
calls_sqlite() { sqlite3 "$1" "SELECT count(*) FROM calls"; }
expect=""
# check WHAT N: every run of a stream must store the same calls.
check() {
        if [ -z "$expect" ]; then
                expect=$2
        elif [ "$2" != "$expect" ]; then
                say "warning: $1 stored $2 calls, the first ingest $expect"
        fi
}
for size in big small; do
        if [ $size = big ]; then n=$COUNT topic=calls s=""; else n=$SMALL topic=small s=_small; fi
        expect=""
        r=1
        while [ "$r" -le "$RUNS" ]; do
                d=$tmp/$size$r
                mkdir "$d"
                # shellcheck disable=SC2086
                timed "sqlite_1h$s" "$n" "rss_sqlite_1h$s" "$BIN" ingest -b "$B" \
                        -t $topic --db "$d/w1.db" $W1 --from-beginning --exit-at-end -q
                check "sqlite 1h" "$(calls_sqlite "$d/w1.db")"
                # shellcheck disable=SC2086
                timed "sqlite_2w$s" "$n" "rss_sqlite_2w$s" "$BIN" ingest -b "$B" \
                        -t $topic --db "$d/w2.db" $W2 --from-beginning --exit-at-end -q
                check "sqlite 1h+1h/15m" "$(calls_sqlite "$d/w2.db")"
                # shellcheck disable=SC2086
                timed "file_2w$s" "$n" "rss_file_2w$s" "$BIN" ingest \
                        --file "$tmp/$size.ndjson" --db "$d/file.db" $W2 -q
                check "--file 1h+1h/15m" "$(calls_sqlite "$d/file.db")"
                db=$(pg_db "${size}_w1_$r")
                # shellcheck disable=SC2086
                timed "pg_1h$s" "$n" "rss_pg_1h$s" "$BIN" ingest -b "$B" \
                        -t $topic --db "$db" $W1 --from-beginning --exit-at-end -q
                check "pg 1h" "$(psql_ -d "${size}_w1_$r" -Atc "SELECT count(*) FROM calls")"
                db=$(pg_db "${size}_w2_$r")
                # shellcheck disable=SC2086
                timed "pg_2w$s" "$n" "rss_pg_2w$s" "$BIN" ingest -b "$B" \
                        -t $topic --db "$db" $W2 --from-beginning --exit-at-end -q
                check "pg 1h+1h/15m" "$(psql_ -d "${size}_w2_$r" -Atc "SELECT count(*) FROM calls")"
                # Keep only what the anchors read (big1/w2.db, big_w2_1).
                psql_ -d postgres -c "DROP DATABASE ${size}_w1_$r"
                [ "$size$r" = big1 ] ||
                        psql_ -d postgres -c "DROP DATABASE ${size}_w2_$r"
                rm -f "$d/w1.db"* "$d/file.db"*
                [ "$size$r" = big1 ] || rm -rf "$d"
                r=$((r + 1))
        done
        [ $size = big ] && ncalls=$expect
done
say "ingests done: $ncalls calls stored of $COUNT messages"

# --- the database anchors: the same calls, bulk-loaded ----------------------
# sqlite3: the calls (the view of big1/w2.db) into the calls table as
# migration 001 made it (text primary key crime_id, index on call_ts; the
# ingest keeps them more compactly since 012_compact_calls.sql), WAL,
# synchronous=NORMAL, every row in one transaction. In crime_id order (as
# the calls were generated; the best case for a text primary key), which is
# what the target ratios use, and again in the order the topic gave them to
# the ingest (its 64 partitions merged by timestamp, so nearly the same
# order, duplicates aside), the order its tables keep them in (a scan of
# call_rows by rowid, of the heap of calls): the same work the ingest does,
# shown beside.
sqlite3 -csv "$tmp/big1/w2.db" "SELECT * FROM calls ORDER BY crime_id" >"$tmp/calls.csv"
sqlite3 -csv "$tmp/big1/w2.db" "SELECT * FROM calls" >"$tmp/calls_arrival.csv"
cat >"$tmp/calls.sql" <<'EOF'
CREATE TABLE calls (crime_id TEXT PRIMARY KEY,
        original_crime_type_name TEXT NOT NULL, report_date TEXT,
        call_date TEXT, offense_date TEXT, call_time TEXT,
        call_date_time TEXT NOT NULL, disposition TEXT, address TEXT,
        city TEXT, state TEXT, agency_id TEXT, address_type TEXT,
        common_location TEXT, call_ts TEXT NOT NULL, kafka_topic TEXT NOT NULL,
        kafka_partition INTEGER NOT NULL, kafka_offset INTEGER NOT NULL,
        ingested_at TEXT NOT NULL, watermark_at_count TEXT,
        late_policy TEXT NOT NULL DEFAULT 'count');
CREATE INDEX calls_call_ts ON calls (call_ts);
EOF
# PostgreSQL: a table LIKE calls INCLUDING ALL (columns, defaults,
# constraints, indexes) in the database the ingest filled, one COPY.
psql_ -d big_w2_1 -c "\\copy (SELECT * FROM calls ORDER BY crime_id) TO '$tmp/calls_pg.csv' CSV"
psql_ -d big_w2_1 -c "\\copy calls TO '$tmp/calls_pg_arrival.csv' CSV"
r=1
while [ "$r" -le "$RUNS" ]; do
        {
                echo "PRAGMA journal_mode=WAL;"
                echo "PRAGMA synchronous=NORMAL;"
                cat "$tmp/calls.sql"
                echo "BEGIN;"
                echo ".import --csv $tmp/calls.csv calls"
                echo "COMMIT;"
        } >"$tmp/import.sql"
        timed sqlite_import "$COUNT" - sqlite3 -bail "$tmp/import$r.db" \
                ".read $tmp/import.sql"
        got=$(calls_sqlite "$tmp/import$r.db")
        [ "$got" -eq "$ncalls" ] || say "warning: .import stored $got of $ncalls calls"
        sed "s|$tmp/calls.csv|$tmp/calls_arrival.csv|" "$tmp/import.sql" >"$tmp/import_arrival.sql"
        timed sqlite_import_arrival "$COUNT" - sqlite3 -bail "$tmp/import_arrival$r.db" \
                ".read $tmp/import_arrival.sql"
        rm -f "$tmp/import$r.db"* "$tmp/import_arrival$r.db"*
        psql_ -d big_w2_1 -c "CREATE TABLE copy_anchor$r (LIKE calls INCLUDING ALL)"
        timed pg_copy "$COUNT" - psql -X -q -v ON_ERROR_STOP=1 -h "$pgdir" \
                -U postgres -d big_w2_1 \
                -c "\\copy copy_anchor$r FROM '$tmp/calls_pg.csv' CSV"
        psql_ -d big_w2_1 -c "CREATE TABLE copy_arrival$r (LIKE calls INCLUDING ALL)"
        timed pg_copy_arrival "$COUNT" - psql -X -q -v ON_ERROR_STOP=1 -h "$pgdir" \
                -U postgres -d big_w2_1 \
                -c "\\copy copy_arrival$r FROM '$tmp/calls_pg_arrival.csv' CSV"
        psql_ -d big_w2_1 -c "DROP TABLE copy_anchor$r" -c "DROP TABLE copy_arrival$r"
        r=$((r + 1))
done

# --- the parser alone, one core ---------------------------------------------
r=1
while [ "$r" -le "$RUNS" ]; do
        add parse "$("$PARSE" "$tmp/big.ndjson" | awk '{ print $NF }')"
        r=$((r + 1))
done

# --- freshness at 20k/s -----------------------------------------------------
# An ingest (SQLite, 1h + 1h/15m, default --batch-max-ms) consumes a fresh
# topic; once a warm-up call is visible, produce sends the FRESH calls at
# 20000/s while a reader polls the count of calls (committed in the same
# transaction as the window counts behind call_counts) every ~20 ms and
# notes the time after each answer. Call i (in produce order, by its Kafka CreateTime,
# set when produce hands it to librdkafka) became visible no later than
# the first poll answering >= i + 1; its delay is that time less its
# CreateTime. An upper bound, too high by at most one poll interval.
r=1
head -n 1 "$tmp/fresh.ndjson" >"$tmp/warmup.ndjson"
tail -n +2 "$tmp/fresh.ndjson" >"$tmp/fresh_rest.ndjson"
while [ "$r" -le "$RUNS" ]; do
        db=$tmp/fresh$r.db
        # shellcheck disable=SC2086
        "$BIN" ingest -b "$B" -t "fresh$r" --db "$db" $W2 --from-beginning -q \
                2>"$tmp/fresh_ingest.log" &
        ingest_pid=$!
        "$BIN" produce -b "$B" -t "fresh$r" "$tmp/warmup.ndjson" 2>/dev/null
        i=0
        until [ "$(sqlite3 "$db" "SELECT count(*) FROM calls" 2>/dev/null)" = 1 ]; do
                i=$((i + 1))
                [ $i -lt 600 ] || fail "freshness warm-up" "$tmp/fresh_ingest.log"
                sleep 0.05
        done
        # One sqlite3 process answers every poll: the count, then the time
        # (ms) once that count is known. A fresh snapshot each statement.
        # The sum of kafka_offsets.calls_total is the count of calls here
        # (committed with them; no row is ever deleted or replaced, checked
        # below) at a lookup's cost rather than a scan's, so the poller
        # takes little CPU from the ingest it watches.
        rm -f "$tmp/poll.stop"
        (
                while [ ! -f "$tmp/poll.stop" ]; do
                        echo "SELECT coalesce(sum(calls_total), 0) FROM kafka_offsets;"
                        echo "SELECT CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER);"
                        sleep 0.02
                done
        ) | sqlite3 -cmd ".timeout 1000" "$db" |
                awk 'NR % 2 { c = $1; next } { print $1, c }' >"$tmp/poll$r.log" &
        poll_pid=$!
        "$BIN" produce -b "$B" -t "fresh$r" --rate "$FRESH_RATE" \
                "$tmp/fresh_rest.ndjson" 2>"$tmp/produce.log" ||
                fail "produce --rate" "$tmp/produce.log"
        i=0
        until [ "$(sqlite3 "$db" "SELECT count(*) FROM calls")" = "$((FRESH + 1))" ]; do
                i=$((i + 1))
                if [ $i -ge 3600 ]; then
                        say "warning: freshness run $r: calls not all visible 3 minutes after produce"
                        break
                fi
                sleep 0.05
        done
        sleep 0.2
        touch "$tmp/poll.stop"
        [ "$(sqlite3 "$db" "SELECT (SELECT count(*) FROM calls) = (SELECT sum(calls_total) FROM kafka_offsets)")" = 1 ] ||
                say "warning: freshness run $r: calls_total is not the count of calls"
        wait "$poll_pid"
        poll_pid=""
        kill "$ingest_pid"
        wait "$ingest_pid" || true
        ingest_pid=""
        kcat -C -b "$B" -t "fresh$r" -o beginning -e -q -f '%T\n' | sort -n |
                tail -n +2 >"$tmp/sent$r.txt"
        awk -v out="$tmp/delays$r.txt" '
                FNR == NR { pt[np] = $1; pc[np] = $2; np++; next }
                {
                        i++
                        while (j < np && pc[j] < i + 1) j++
                        if (j < np) print pt[j] - $1 > out
                }
                END { for (k = 1; k < np; k++) print pt[k] - pt[k - 1] }
                ' "$tmp/poll$r.log" "$tmp/sent$r.txt" | sort -n >"$tmp/gaps$r"
        sort -n "$tmp/delays$r.txt" >"$tmp/d$r.txt"
        n=$(wc -l <"$tmp/d$r.txt")
        [ "$n" -eq "$FRESH" ] || say "warning: freshness run $r timed $n of $FRESH calls"
        add fresh_p50 "$(sed -n "$(((n + 1) / 2))p" "$tmp/d$r.txt")"
        add fresh_p99 "$(sed -n "$(((n * 99 + 99) / 100))p" "$tmp/d$r.txt")"
        add fresh_poll "$(sed -n "$((($(wc -l <"$tmp/gaps$r") + 1) / 2))p" "$tmp/gaps$r")"
        r=$((r + 1))
done

# --- the table and the JSON -------------------------------------------------
# median KEY: of the runs (the mean of the middle two for an even count).
median() { sort -g "$fig/$1" | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
runs() { paste -sd' ' "$fig/$1"; }
min2() { awk -v a="$1" -v b="$2" 'BEGIN { print (a < b) ? a : b }'; }
sqlite_anchor=$(min2 "$(median kcat)" "$(median sqlite_import)")
pg_anchor=$(min2 "$(median kcat)" "$(median pg_copy)")

# The figures: key, label, unit, anchor (a number or -), target ratio or
# bound (with its sense), as one line each for the awk below.
{
        echo "kcat|kcat read|msg/s|-|-"
        echo "sqlite_import|sqlite3 .import, same calls|msg/s|-|-"
        echo "sqlite_import_arrival|sqlite3 .import, same calls, arrival order|msg/s|-|-"
        echo "pg_copy|PostgreSQL COPY, same calls|msg/s|-|-"
        echo "pg_copy_arrival|PostgreSQL COPY, same calls, arrival order|msg/s|-|-"
        echo "sqlite_1h|ingest SQLite, 1h|msg/s|$sqlite_anchor|-"
        echo "sqlite_2w|ingest SQLite, 1h + 1h/15m|msg/s|$sqlite_anchor|>=0.9"
        echo "file_2w|ingest --file SQLite, 1h + 1h/15m|msg/s|$(median sqlite_import)|-"
        echo "pg_1h|ingest PostgreSQL, 1h|msg/s|$pg_anchor|-"
        echo "pg_2w|ingest PostgreSQL, 1h + 1h/15m|msg/s|$pg_anchor|>=0.6"
        echo "parse|parser alone, one core|rec/s|-|>=1000000"
        for k in "sqlite_1h SQLite 1h" "sqlite_2w SQLite 1h + 1h/15m" \
                "file_2w --file 1h + 1h/15m" "pg_1h PostgreSQL 1h" \
                "pg_2w PostgreSQL 1h + 1h/15m"; do
                echo "rss_${k%% *}|peak RSS, ${k#* }, $COUNT msgs|MiB|-|<=64"
                echo "rss_${k%% *}_small|peak RSS, ${k#* }, $SMALL msgs|MiB|-|<=64"
        done
        echo "fresh_p50|freshness p50 at 20k/s|ms|-|-"
        echo "fresh_p99|freshness p99 at 20k/s|ms|-|<=500"
        echo "fresh_poll|freshness poll interval (resolution)|ms|-|-"
} >"$tmp/figures"

while IFS='|' read -r key label unit anchor target; do
        echo "$key|$label|$unit|$anchor|$target|$(median "$key")|$(runs "$key")"
done <"$tmp/figures" >"$tmp/table"

mkdir -p "$(dirname "$JSON")"
awk -F'|' -v cores="$cores" -v cpu="$cpu" -v load="$load" -v count="$COUNT" \
        -v small="$SMALL" -v nruns="$RUNS" -v parts="$PARTS" -v bytes="$bytes" \
        -v ncalls="$ncalls" -v fresh="$FRESH" -v json="$JSON" -v date="$(date -u +%Y-%m-%dT%H:%M:%SZ)" '
function q(s) { gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); return "\"" s "\"" }
# met: the ratio (or the median itself when there is no anchor) against
# the target; "" when the figure has no target.
function met(v, t) {
        if (t == "-") return ""
        if (substr(t, 1, 2) == ">=") return v >= substr(t, 3) + 0 ? "yes" : "NO"
        return v <= substr(t, 3) + 0 ? "yes" : "NO"
}
BEGIN {
        printf "callstream bench: %d messages (%d calls after dedup, %.0f bytes each), %d runs each, median shown\n", count, ncalls, bytes / count, nruns
        printf "machine: %d cores, %s, load %s at start\n\n", cores, cpu, load
        printf "%-46s %11s %-6s %7s %10s %4s  %s\n", "figure", "median", "unit", "ratio", "target", "met", "runs"
        printf "{\n  \"date\": %s,\n  \"machine\": {\"cores\": %d, \"cpu_model\": %s, \"loadavg_at_start\": %s},\n", q(date), cores, q(cpu), q(load) > json
        printf "  \"stream\": {\"messages\": %d, \"calls_stored\": %d, \"bytes\": %d, \"duplicates\": 0.05, \"malformed\": 0.01, \"small_messages\": %d, \"freshness_calls\": %d, \"freshness_rate\": 20000, \"partitions\": %d},\n", count, ncalls, bytes, small, fresh, parts > json
        printf "  \"runs\": %d,\n  \"figures\": [\n", nruns > json
}
{
        key = $1; label = $2; unit = $3; anchor = $4; target = $5; med = $6; rs = $7
        ratio = anchor == "-" ? "" : sprintf("%.2f", med / anchor)
        m = met(anchor == "-" ? med : ratio, target)
        printf "%-46s %11s %-6s %7s %10s %4s  %s\n", label, (med >= 1000 ? sprintf("%.0f", med) : med), unit, ratio, target == "-" ? "" : target, m, rs
        n = split(rs, a, " ")
        list = ""
        for (i = 1; i <= n; i++) list = list (i > 1 ? ", " : "") a[i]
        printf "%s    {\"key\": %s, \"label\": %s, \"unit\": %s, \"runs\": [%s], \"median\": %s", (NR > 1 ? ",\n" : ""), q(key), q(label), q(unit), list, med > json
        if (anchor != "-") printf ", \"anchor\": %s, \"ratio\": %s", anchor, ratio > json
        if (target != "-") printf ", \"target\": %s, \"met\": %s", q(target), m == "yes" ? "true" : "false" > json
        printf "}" > json
}
END { printf "\n  ]\n}\n" > json }' "$tmp/table"
echo
echo "ratio: to min(kcat, sqlite3 .import) for SQLite, min(kcat, COPY) for PostgreSQL, .import for --file; written to $JSON"
