/* test_avro.c: end-to-end tests of Avro input (issue 12): one generated
 * stream produced as JSON, as plain Avro (produce --format avro), as
 * Confluent Avro (generate --format avro, sent by produce --input-framing
 * length), as Avro with another schema (crime_id a long, fields reversed),
 * and mixed JSON and Confluent Avro read with --format auto, gives the same
 * tables and views; corrupt messages land in rejected_records with their
 * reason; a schema without call_date_time is refused at start.
 *
 * It drives build/callstream (CALLSTREAM_BIN) through fork/exec and the
 * local broker, one-partition topics so that every topic holds the same
 * messages at the same offsets. E2E_KEEP=1 keeps the folder. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "eventtime.h"
#include "harness.h"

#define WATCHDOG_S 900
#define NELEM(a)   (sizeof(a) / sizeof((a)[0]))

struct fx {
        char dir[PATH_MAX];
        char *bin;
        char *data;
        char *schema; /* schemas/calls.avsc */
        char *stream; /* the generated NDJSON */
        struct th_broker b;
};

static char *path_in(const struct fx *f, const char *name)
{
        return th_asprintf("%s/%s", f->dir, name);
}

static int group_setup(void **state)
{
        static const char *const args[] = {
                "--partitions", "1",       "--topic", "json",    "--topic",
                "avro",         "--topic", "conf",    "--topic", "long",
                "--topic",      "mixed",   "--topic", "corrupt", NULL};
        struct fx *f = calloc(1, sizeof(*f));
        struct th_args a = {0};
        char *p;
        int r;

        if (!f)
                return -1;
        *state = f;
        th_fatal_handlers("test_avro", WATCHDOG_S);
        if (th_find_bin_data(&f->bin, &f->data) ||
            th_tmpdir_make("callstream-avro", f->dir, sizeof(f->dir)))
                return -1;
        th_fatal_dir(f->dir);
        f->schema = th_asprintf("%s/../../schemas/calls.avsc", f->data);
        p = path_in(f, "broker.err");
        r = th_broker_start(&f->b, f->bin, args, p);
        free(p);
        if (r < 0)
                return -1;
        th_fatal_broker(0, f->b.pid);
        /* Every kind of line: duplicates, changed copies, late calls,
         * malformed records, integer crime_ids. */
        f->stream = path_in(f, "stream.ndjson");
        th_args_addv(&a, f->bin, "generate", "--count", "3000", "--seed", "12",
                     "--malformed", "0.05", "--int-ids", "0.2", "--duplicates",
                     "0.05", "--changed-duplicates", "0.05", "--out-of-order",
                     "0.1", "--output", f->stream, NULL);
        th_run_ok_free(&a);
        return 0;
}

static int group_teardown(void **state)
{
        struct fx *f = *state;

        if (!f)
                return 0;
        if (f->b.pid)
                th_broker_stop(&f->b);
        th_fatal_broker(0, 0);
        if (f->dir[0])
                th_tmpdir_remove(f->dir);
        free(f->bin);
        free(f->data);
        free(f->schema);
        free(f->stream);
        free(f);
        return 0;
}

/* Runs callstream ARGS... (NULL-terminated) to success. */
static void run_ok(const struct fx *f, ...)
{
        struct th_args a = {0};
        const char *s;
        va_list ap;

        th_args_add(&a, f->bin);
        va_start(ap, f);
        while ((s = va_arg(ap, const char *)))
                th_args_add(&a, s);
        va_end(ap);
        th_run_ok_free(&a);
}

/* Ingests topic to its end into db; extra: the format options, up to
 * NULL. */
static void ingest(const struct fx *f, const char *topic, const char *db, ...)
{
        struct th_args a = {0};
        const char *s;
        va_list ap;

        th_args_addv(&a, f->bin, "ingest", "-q", "--brokers", f->b.brokers,
                     "--topic", topic, "--db", db, "--from-beginning",
                     "--exit-at-end", "--window", "1h", "--window", "1h/15m",
                     "--batch-max-records", "400", NULL);
        va_start(ap, db);
        while ((s = va_arg(ap, const char *)))
                th_args_add(&a, s);
        va_end(ap);
        th_run_ok_free(&a);
}

/* The dump of every table and view but the topic's name, times, and the
 * reasons of rejected_records (which say JSON or Avro); the rejects'
 * partition, offset and payload are compared through their own query. */
static void dump(const char *db, struct th_lines *out)
{
        struct th_lines all = {0};
        sqlite3 *h;
        sqlite3_stmt *st;
        size_t i;

        et_sqlite_dump(db, 1, &all);
        for (i = 0; i < all.n; i++) {
                if (!strncmp(all.v[i], "'rejected_records'|", 19)) {
                        free(all.v[i]);
                        continue;
                }
                th_lines_add(out, all.v[i]);
        }
        free(all.v);
        assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL),
                         SQLITE_OK);
        assert_int_equal(
                sqlite3_prepare_v2(h,
                                   "SELECT kafka_partition, kafka_offset, "
                                   "hex(payload) FROM rejected_records",
                                   -1, &st, NULL),
                SQLITE_OK);
        while (sqlite3_step(st) == SQLITE_ROW)
                th_lines_addf(out, "reject %d %lld %s",
                              sqlite3_column_int(st, 0),
                              (long long)sqlite3_column_int64(st, 1),
                              (const char *)sqlite3_column_text(st, 2));
        sqlite3_finalize(st);
        sqlite3_close(h);
        th_lines_sort(out);
}

/* The schema with crime_id a long and the fields in reverse order, unions
 * the other way round. */
static const char long_schema[] =
        "{\"type\":\"record\",\"name\":\"Other\",\"namespace\":\"x.y\","
        "\"fields\":["
        "{\"name\":\"common_location\",\"type\":[\"string\",\"null\"]},"
        "{\"name\":\"address_type\",\"type\":[\"string\",\"null\"]},"
        "{\"name\":\"agency_id\",\"type\":[\"string\",\"null\"]},"
        "{\"name\":\"state\",\"type\":[\"string\",\"null\"]},"
        "{\"name\":\"city\",\"type\":[\"string\",\"null\"]},"
        "{\"name\":\"address\",\"type\":[\"string\",\"null\"]},"
        "{\"name\":\"extra\",\"type\":[\"null\",{\"type\":\"array\","
        "\"items\":\"double\"}]},"
        "{\"name\":\"disposition\",\"type\":[\"string\",\"null\"]},"
        "{\"name\":\"call_date_time\",\"type\":\"string\"},"
        "{\"name\":\"call_time\",\"type\":[\"string\",\"null\"]},"
        "{\"name\":\"offense_date\",\"type\":[\"string\",\"null\"]},"
        "{\"name\":\"call_date\",\"type\":[\"string\",\"null\"]},"
        "{\"name\":\"report_date\",\"type\":[\"string\",\"null\"]},"
        "{\"name\":\"original_crime_type_name\",\"type\":\"string\"},"
        "{\"name\":\"crime_id\",\"type\":\"long\"}]}";

/* Reads a length-prefixed file into messages. */
static void read_frames(const char *path, struct et_msgs *m)
{
        struct th_buf b = {0};
        size_t at = 0;
        int64_t off = 0;

        assert_int_equal(th_read_file(path, &b), 0);
        while (at < b.len) {
                const unsigned char *u = (const unsigned char *)b.p + at;
                size_t n;

                assert_true(b.len - at >= 4);
                n = (size_t)u[0] << 24 | (size_t)u[1] << 16 |
                    (size_t)u[2] << 8 | u[3];
                assert_true(b.len - at - 4 >= n);
                et_msgs_add(m, 0, off++, b.p + at + 4, n);
                at += 4 + n;
        }
        th_buf_free(&b);
}

static void write_frames(const char *path, const struct et_msgs *m)
{
        FILE *f = fopen(path, "wb");
        size_t i;

        assert_non_null(f);
        for (i = 0; i < m->n; i++) {
                unsigned char h[4] = {(unsigned char)(m->v[i].len >> 24),
                                      (unsigned char)(m->v[i].len >> 16),
                                      (unsigned char)(m->v[i].len >> 8),
                                      (unsigned char)m->v[i].len};

                assert_int_equal(fwrite(h, 1, 4, f), 4);
                assert_int_equal(fwrite(m->v[i].p, 1, m->v[i].len, f),
                                 m->v[i].len);
        }
        assert_int_equal(fclose(f), 0);
}

/* 1. The same stream as JSON, plain Avro, Confluent Avro, Avro with
 * another schema, and mixed under --format auto: the same rows. */
static void test_avro_same_tables_as_json(void **state)
{
        struct fx *f = *state;
        char *db_json = path_in(f, "json.db"), *db_avro = path_in(f, "avro.db");
        char *db_conf = path_in(f, "conf.db"), *db_long = path_in(f, "long.db");
        char *db_mixed = path_in(f, "mixed.db");
        char *conf_frames = path_in(f, "stream.avro");
        char *mixed_frames = path_in(f, "mixed.frames");
        char *long_path = path_in(f, "long.avsc");
        struct et_msgs avro = {0}, mixed = {0};
        struct th_buf json = {0};
        struct th_lines base = {0};
        const char *dbs[] = {db_avro, db_conf, db_long, db_mixed};
        const char *names[] = {"plain Avro", "Confluent Avro",
                               "Avro, long crime_id", "auto, mixed"};
        size_t i, line_start;
        int bad = 0;

        /* JSON. */
        run_ok(f, "produce", "-q", "--brokers", f->b.brokers, "--topic", "json",
               f->stream, NULL);
        ingest(f, "json", db_json, NULL);
        /* Plain Avro: produce encodes each valid call. */
        run_ok(f, "produce", "-q", "--brokers", f->b.brokers, "--topic", "avro",
               "--format", "avro", "--avro-schema", f->schema, f->stream, NULL);
        ingest(f, "avro", db_avro, "--format", "avro", "--avro-schema",
               f->schema, NULL);
        /* Confluent Avro: generate writes it, produce sends it as is. */
        run_ok(f, "generate", "--count", "3000", "--seed", "12", "--malformed",
               "0.05", "--int-ids", "0.2", "--duplicates", "0.05",
               "--changed-duplicates", "0.05", "--out-of-order", "0.1",
               "--format", "avro", "--framing", "confluent", "--schema-id",
               "42", "--output", conf_frames, NULL);
        run_ok(f, "produce", "-q", "--brokers", f->b.brokers, "--topic", "conf",
               "--format", "avro", "--framing", "confluent", "--input-framing",
               "length", conf_frames, NULL);
        ingest(f, "conf", db_conf, "--format", "avro", "--avro-schema",
               f->schema, "--framing", "confluent", "--schema-id", "42", NULL);
        /* Another schema: crime_id a long, fields reversed, one extra. */
        assert_int_equal(th_write_file(long_path, long_schema, 0), 0);
        run_ok(f, "produce", "-q", "--brokers", f->b.brokers, "--topic", "long",
               "--format", "avro", "--avro-schema", long_path, f->stream, NULL);
        ingest(f, "long", db_long, "--format", "avro", "--avro-schema",
               long_path, NULL);
        /* Mixed: every other message JSON, the rest Confluent Avro. */
        read_frames(conf_frames, &avro);
        assert_int_equal(th_read_file(f->stream, &json), 0);
        line_start = 0;
        for (i = 0; i < avro.n; i++) {
                const char *nl = memchr(json.p + line_start, '\n',
                                        json.len - line_start);

                assert_non_null(nl);
                if (i % 2)
                        et_msgs_add(&mixed, 0, (int64_t)i, avro.v[i].p,
                                    avro.v[i].len);
                else
                        et_msgs_add(&mixed, 0, (int64_t)i, json.p + line_start,
                                    (size_t)(nl - json.p) - line_start);
                line_start = (size_t)(nl - json.p) + 1;
        }
        write_frames(mixed_frames, &mixed);
        run_ok(f, "produce", "-q", "--brokers", f->b.brokers, "--topic",
               "mixed", "--format", "avro", "--framing", "confluent",
               "--input-framing", "length", mixed_frames, NULL);
        /* Without --avro-schema: the built-in schema. */
        ingest(f, "mixed", db_mixed, "--format", "auto", NULL);

        dump(db_json, &base);
        printf("# JSON: %lld calls, %lld rejected, %lld window rows\n",
               th_sqlite_int(db_json, "SELECT count(*) FROM calls"),
               th_sqlite_int(db_json, "SELECT count(*) FROM rejected_records"),
               th_sqlite_int(db_json, "SELECT count(*) FROM window_counts"));
        assert_true(th_sqlite_int(db_json, "SELECT count(*) FROM calls") >
                    2000);
        assert_true(th_sqlite_int(db_json,
                                  "SELECT count(*) FROM rejected_records") >
                    50);
        for (i = 0; i < NELEM(dbs); i++) {
                struct th_lines other = {0};

                dump(dbs[i], &other);
                bad += th_lines_compare(names[i], "JSON", &base, names[i],
                                        &other, ET_MAX_SHOWN) != 0;
                th_lines_free(&other);
        }
        /* The Avro topics' rejects say why in Avro's words. */
        assert_true(th_sqlite_int(db_avro,
                                  "SELECT count(*) FROM rejected_records "
                                  "WHERE reason LIKE 'invalid Avro: %'") > 0);
        th_lines_free(&base);
        th_buf_free(&json);
        et_msgs_free(&avro);
        et_msgs_free(&mixed);
        free(db_json);
        free(db_avro);
        free(db_conf);
        free(db_long);
        free(db_mixed);
        free(conf_frames);
        free(mixed_frames);
        free(long_path);
        if (bad)
                fail_msg("%d database(s) differ from JSON's (above)", bad);
}

/* 2. Corrupt messages: each rejected with its reason, none stops the
 * ingest, the valid ones around them are stored. */
static void test_avro_corrupt_rejected(void **state)
{
        struct fx *f = *state;
        char *frames = path_in(f, "valid.avro"),
             *corrupt = path_in(f, "c.avro");
        char *db = path_in(f, "corrupt.db");
        struct et_msgs in = {0}, out = {0};
        struct th_buf b = {0};
        char *m;
        size_t n, i;
        static const struct {
                const char *what, *reason;
        } want[] = {
                {"valid", NULL},
                {"truncated", "invalid Avro: truncated at byte "},
                {"trailing bytes", "invalid Avro: 2 trailing bytes at byte "},
                {"garbage", "invalid Avro: "},
                {"bad magic byte", "invalid Avro: magic byte 0x7b, expected 0"},
                {"wrong schema id", "unexpected schema id 8 (expected 7)"},
                {"invalid UTF-8", "invalid Avro: invalid UTF-8 in "},
                {"valid", NULL},
        };

        run_ok(f, "generate", "--count", "2", "--seed", "3", "--format", "avro",
               "--framing", "confluent", "--schema-id", "7", "--output", frames,
               NULL);
        read_frames(frames, &in);
        assert_int_equal(in.n, 2);
        n = in.v[0].len;
        m = malloc(n + 2);
        et_msgs_add(&out, 0, 0, in.v[0].p, n);
        et_msgs_add(&out, 0, 1, in.v[0].p, n - 3);
        memcpy(m, in.v[0].p, n);
        memcpy(m + n, "\x02\x04", 2);
        et_msgs_add(&out, 0, 2, m, n + 2);
        et_msgs_add(&out, 0, 3, "\0\0\0\0\x07\xff\xff\xff\xff\xff\xff", 11);
        et_msgs_add(&out, 0, 4, "{\"crime_id\":\"1\"}", 16);
        memcpy(m, in.v[0].p, n);
        m[4] = 8;
        et_msgs_add(&out, 0, 5, m, n);
        /* The crime type's first byte made a stray continuation byte: its
         * text follows crime_id's (length byte, 9 digits, length byte). */
        memcpy(m, in.v[0].p, n);
        m[5 + 1 + 9 + 1] = (char)0x80;
        et_msgs_add(&out, 0, 6, m, n);
        et_msgs_add(&out, 0, 7, in.v[1].p, in.v[1].len);
        write_frames(corrupt, &out);
        run_ok(f, "produce", "-q", "--brokers", f->b.brokers, "--topic",
               "corrupt", "--format", "avro", "--framing", "confluent",
               "--input-framing", "length", corrupt, NULL);
        ingest(f, "corrupt", db, "--format", "avro", "--avro-schema", f->schema,
               "--framing", "confluent", "--schema-id", "7", NULL);

        assert_int_equal(th_sqlite_int(db, "SELECT count(*) FROM calls"), 2);
        for (i = 0; i < NELEM(want); i++) {
                char sql[160];
                sqlite3 *h;
                sqlite3_stmt *st;
                const char *reason = NULL;

                snprintf(sql, sizeof(sql),
                         "SELECT reason FROM rejected_records WHERE "
                         "kafka_offset = %zu",
                         i);
                assert_int_equal(
                        sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL),
                        SQLITE_OK);
                assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &st, NULL),
                                 SQLITE_OK);
                if (sqlite3_step(st) == SQLITE_ROW)
                        reason = (const char *)sqlite3_column_text(st, 0);
                printf("# %s: %s\n", want[i].what, reason ? reason : "stored");
                if (!want[i].reason != !reason ||
                    (reason &&
                     strncmp(reason, want[i].reason, strlen(want[i].reason))))
                        fail_msg("%s: reason '%s', want '%s'", want[i].what,
                                 reason ? reason : "(stored)",
                                 want[i].reason ? want[i].reason : "(stored)");
                sqlite3_finalize(st);
                sqlite3_close(h);
        }
        free(m);
        th_buf_free(&b);
        et_msgs_free(&in);
        et_msgs_free(&out);
        free(frames);
        free(corrupt);
        free(db);
}

/* Runs ingest with args and expects exit 2 and one line naming want. */
static void expect_usage_error(const struct fx *f, const char *want, ...)
{
        struct th_args a = {0};
        struct th_run r;
        const char *s;
        va_list ap;

        th_args_addv(&a, f->bin, "ingest", "--db", "never.db", NULL);
        va_start(ap, want);
        while ((s = va_arg(ap, const char *)))
                th_args_add(&a, s);
        va_end(ap);
        a.cwd = th_strdup(f->dir);
        th_run_args(&a, 60000, &r);
        if (r.status != 2 || !r.err.p || !strstr(r.err.p, want) ||
            th_count_lines(r.err.p, r.err.len) != 1)
                fail_msg("exit %d, stderr '%.*s'; want 2 and one line with "
                         "'%s'",
                         r.status, (int)r.err.len, r.err.p ? r.err.p : "",
                         want);
        th_run_free(&r);
        th_args_free(&a);
}

/* 3. A schema without call_date_time, or giving crime_id a type it cannot
 * be, is refused at start: exit 2, one line naming the field; so are
 * --file with Avro and --framing plain under auto. Nothing is created. */
static void test_avro_schema_refused_at_start(void **state)
{
        struct fx *f = *state;
        char *p1 = path_in(f, "no_time.avsc"), *p2 = path_in(f, "bool.avsc");
        char *never = path_in(f, "never.db");

        assert_int_equal(
                th_write_file(
                        p1,
                        "{\"type\":\"record\",\"name\":\"C\",\"fields\":["
                        "{\"name\":\"crime_id\",\"type\":\"string\"},"
                        "{\"name\":\"original_crime_type_name\","
                        "\"type\":\"string\"},"
                        "{\"name\":\"call_datetime\",\"type\":\"string\"}]}",
                        0),
                0);
        assert_int_equal(
                th_write_file(p2,
                              "{\"type\":\"record\",\"name\":\"C\",\"fields\":"
                              "[{\"name\":\"crime_id\",\"type\":\"boolean\"},"
                              "{\"name\":\"original_crime_type_name\","
                              "\"type\":\"string\"},"
                              "{\"name\":\"call_date_time\",\"type\":"
                              "\"string\"}]}",
                              0),
                0);
        expect_usage_error(f, "missing required field call_date_time",
                           "--brokers", f->b.brokers, "--topic", "json",
                           "--format", "avro", "--avro-schema", p1, NULL);
        expect_usage_error(f, "field crime_id has type boolean", "--brokers",
                           f->b.brokers, "--topic", "json", "--format", "auto",
                           "--avro-schema", p2, NULL);
        expect_usage_error(f, "--framing plain", "--brokers", f->b.brokers,
                           "--topic", "json", "--format", "auto", "--framing",
                           "plain", "--avro-schema", f->schema, NULL);
        expect_usage_error(f, "--schema-id needs --framing confluent",
                           "--brokers", f->b.brokers, "--topic", "json",
                           "--format", "avro", "--schema-id", "3",
                           "--avro-schema", f->schema, NULL);
        expect_usage_error(f, "--file replays JSON", "--file", f->stream,
                           "--format", "avro", "--avro-schema", f->schema,
                           NULL);
        assert_int_not_equal(access(never, F_OK), 0);
        free(p1);
        free(p2);
        free(never);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_avro_same_tables_as_json,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_avro_corrupt_rejected,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_avro_schema_refused_at_start,
                                          th_test_teardown),
        };

        return cmocka_run_group_tests_name("avro", tests, group_setup,
                                           group_teardown);
}
