-- 013_calls_in_arrival_order.sql: call_rows stored in the order the calls
-- arrive, under a unique index on their key (SQLite).
-- 012 made the crime_id itself the rowid, so each call went to its place
-- among the stored ones. Partitions read side by side hand a batch calls
-- from weeks of the stream, and their inserts dirtied most leaf pages of
-- the table at every commit: about 5 times the WAL writes of this layout,
-- where the rows go at the end and only the small index pages of id (and
-- of call_sec) are spread. id keeps its meaning (the numeric crime_id, or
-- a negative number for a text one); rid is only the place in the table.
DROP VIEW IF EXISTS calls;

CREATE TABLE call_rows_by_arrival (
        rid                      INTEGER PRIMARY KEY,
        id                       INTEGER NOT NULL,
        crime_id                 TEXT,  -- NULL when id is the crime_id
        original_crime_type_name TEXT NOT NULL,
        report_date              TEXT,
        call_date                TEXT,
        offense_date             TEXT,
        call_time                TEXT,
        call_date_time           TEXT NOT NULL,
        disposition              TEXT,
        address                  TEXT,
        city                     TEXT,
        state                    TEXT,
        agency_id                TEXT,
        address_type             TEXT,
        common_location          TEXT,
        call_sec                 INTEGER NOT NULL,  -- call_ts: seconds
        call_usec                INTEGER NOT NULL,  -- and microseconds
        kafka_topic              TEXT NOT NULL,
        kafka_partition          INTEGER NOT NULL,
        kafka_offset             INTEGER NOT NULL,
        ingested_at              INTEGER NOT NULL,  -- seconds, UTC
        mark_sec                 INTEGER,  -- watermark_at_count, or NULL
        mark_usec                INTEGER,
        late_drop                INTEGER NOT NULL   -- late_policy 'drop'
);

INSERT INTO call_rows_by_arrival (id, crime_id, original_crime_type_name,
                                  report_date, call_date, offense_date,
                                  call_time, call_date_time, disposition,
                                  address, city, state, agency_id,
                                  address_type, common_location, call_sec,
                                  call_usec, kafka_topic, kafka_partition,
                                  kafka_offset, ingested_at, mark_sec,
                                  mark_usec, late_drop)
SELECT id, crime_id, original_crime_type_name, report_date, call_date,
       offense_date, call_time, call_date_time, disposition, address, city,
       state, agency_id, address_type, common_location, call_sec, call_usec,
       kafka_topic, kafka_partition, kafka_offset, ingested_at, mark_sec,
       mark_usec, late_drop
FROM call_rows
ORDER BY ingested_at, kafka_topic, kafka_offset, kafka_partition;

DROP TABLE call_rows;
ALTER TABLE call_rows_by_arrival RENAME TO call_rows;

-- Dedup by the key; --retention and rebuild go by event time.
CREATE UNIQUE INDEX call_rows_id ON call_rows (id);
CREATE UNIQUE INDEX call_rows_crime_id ON call_rows (crime_id)
WHERE crime_id IS NOT NULL;
CREATE INDEX call_rows_call_sec ON call_rows (call_sec);
