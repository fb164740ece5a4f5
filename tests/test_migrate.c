/* test_migrate.c: migrations and the SQLite sink's transaction contract. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "cs_batch.h"
#include "cs_migrate.h"
#include "cs_parse.h"
#include "cs_sink.h"
#include "harness.h"

static void exec_sql(const char *path, const char *sql)
{
        sqlite3 *db;

        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
}

static void open_migrated(struct th_sinkdir *f)
{
        char err[512];

        assert_int_equal(
                cs_sink_open(f->path, NULL, &f->sink, err, sizeof(err)), 0);
        assert_int_equal(f->sink->ops->migrate(f->sink, err, sizeof(err)), 0);
}

static void test_migrations_listed_in_order(void **state)
{
        struct cs_migration m[CS_MIGRATIONS_MAX];
        int n = cs_migrations("sqlite", m, CS_MIGRATIONS_MAX), i;

        (void)state;
        assert_true(n >= 2);
        /* Ascending and unique; numbers reserved for work in progress
         * may leave a hole. */
        assert_int_equal(m[0].version, 1);
        for (i = 0; i < n; i++) {
                assert_true(i == 0 || m[i].version > m[i - 1].version);
                assert_int_equal(strlen(m[i].checksum), 16);
        }
        {
                const char *views[CS_VIEWS_MAX];

                assert_true(cs_views("sqlite", views, CS_VIEWS_MAX) >= 1);
                assert_non_null(strstr(views[0], "CREATE VIEW call_counts"));
                assert_int_equal(cs_views("nosuch", views, CS_VIEWS_MAX), 0);
        }
}

static void test_migrate_creates_schema_and_is_idempotent(void **state)
{
        struct th_sinkdir *f = *state;
        struct cs_migration m[CS_MIGRATIONS_MAX];
        int n = cs_migrations("sqlite", m, CS_MIGRATIONS_MAX);
        char err[512];

        open_migrated(f);
        assert_int_equal(th_sqlite_int(f->path, "SELECT COUNT(*) FROM "
                                                "schema_migrations"),
                         n);
        /* Every radio code of the shared list, checked by count and one
         * known pair. */
        assert_int_equal(
                th_sqlite_int(f->path, "SELECT COUNT(*) FROM radio_codes"), 19);
        assert_int_equal(th_sqlite_int(f->path,
                                       "SELECT COUNT(*) FROM radio_codes WHERE "
                                       "disposition_code = 'HAN' AND "
                                       "description = 'Handled'"),
                         1);
        assert_int_equal(
                th_sqlite_int(f->path,
                              "SELECT COUNT(*) FROM sqlite_master WHERE "
                              "type = 'view' AND name IN ('call_counts', "
                              "'disposition_counts')"),
                2);
        /* Again, on the same and on a new connection: nothing changes. */
        assert_int_equal(f->sink->ops->migrate(f->sink, err, sizeof(err)), 0);
        cs_sink_close(f->sink);
        f->sink = NULL;
        open_migrated(f);
        assert_int_equal(th_sqlite_int(f->path, "SELECT COUNT(*) FROM "
                                                "schema_migrations"),
                         n);
        assert_int_equal(
                th_sqlite_int(f->path, "SELECT COUNT(*) FROM radio_codes"), 19);
}

static void test_changed_migration_is_refused(void **state)
{
        struct th_sinkdir *f = *state;
        char err[512];

        open_migrated(f);
        cs_sink_close(f->sink);
        f->sink = NULL;
        exec_sql(f->path, "UPDATE schema_migrations SET checksum = 'x' "
                          "WHERE version = 1");
        assert_int_equal(
                cs_sink_open(f->path, NULL, &f->sink, err, sizeof(err)), 0);
        assert_int_equal(f->sink->ops->migrate(f->sink, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "001_schema.sql"));
        assert_non_null(strstr(err, "changed"));
}

static void test_failed_migration_leaves_nothing(void **state)
{
        struct th_sinkdir *f = *state;
        char err[512];

        /* A table in the way makes 001 fail half-way through. */
        exec_sql(f->path, "CREATE TABLE window_counts (x)");
        assert_int_equal(
                cs_sink_open(f->path, NULL, &f->sink, err, sizeof(err)), 0);
        assert_int_equal(f->sink->ops->migrate(f->sink, err, sizeof(err)), -1);
        assert_non_null(strstr(err, f->path));
        assert_int_equal(th_sqlite_int(f->path,
                                       "SELECT COUNT(*) FROM sqlite_master"
                                       " WHERE name IN ('calls', "
                                       "'rejected_records', "
                                       "'radio_codes')"),
                         0);
        assert_int_equal(th_sqlite_int(f->path, "SELECT COUNT(*) FROM "
                                                "schema_migrations"),
                         0);
}

static void test_newer_schema_is_refused(void **state)
{
        struct th_sinkdir *f = *state;
        char err[512];

        open_migrated(f);
        cs_sink_close(f->sink);
        f->sink = NULL;
        exec_sql(f->path, "INSERT INTO schema_migrations VALUES (999, "
                          "'999_future.sql', 'x', 'now')");
        assert_int_equal(
                cs_sink_open(f->path, NULL, &f->sink, err, sizeof(err)), 0);
        assert_int_equal(f->sink->ops->migrate(f->sink, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "newer"));
}

static void test_database_kinds(void **state)
{
        struct cs_sink *s = NULL;
        char err[512];

        (void)state;
        assert_true(cs_sink_is_postgresql("postgresql://u@h/db"));
        assert_true(cs_sink_is_postgresql("postgres://h/db"));
        assert_true(cs_sink_is_postgresql("host=/tmp dbname=x"));
        assert_false(cs_sink_is_postgresql("calls.db"));
        assert_false(cs_sink_is_postgresql("sqlite:a=b.db"));
        assert_int_equal(cs_sink_open("calls.db", "s", &s, err, sizeof(err)),
                         -1);
        assert_null(s);
        assert_non_null(strstr(err, "--schema"));
}

/* Nothing listens on port 1: a server that may yet come (CS_RETRY),
 * with a one-line error naming the host, never the password. */
static void test_postgres_unreachable_names_host_not_password(void **state)
{
        struct cs_sink *s = NULL;
        char err[512];

        (void)state;
        assert_int_equal(cs_sink_open("postgresql://u:s3cr3t@127.0.0.1:1/db",
                                      NULL, &s, err, sizeof(err)),
                         CS_RETRY);
        assert_null(s);
        assert_non_null(strstr(err, "127.0.0.1"));
        assert_null(strstr(err, "s3cr3t"));
        assert_null(strchr(err, '\n'));
}

/* Adds a call parsed from json to b. */
static void add_call(struct cs_batch *b, struct cs_parser *p, const char *json,
                     int32_t partition, int64_t offset)
{
        struct cs_watermark none = {0};
        struct cs_call call;
        char reason[CS_PARSE_REASON_MAX];

        assert_int_equal(
                cs_parse_call(p, json, strlen(json), &call, reason, 128), 0);
        assert_int_equal(cs_batch_add_call(b, &call, partition, offset, NULL),
                         0);
        assert_int_equal(cs_batch_advance(b, partition, offset + 1, &none), 0);
}

static void test_sink_batch_rollback_and_offsets(void **state)
{
        struct th_sinkdir *f = *state;
        struct cs_parser *p = cs_parser_new();
        struct cs_batch *b = cs_batch_new("t", 16);
        const struct cs_sink_ops *ops;
        unsigned char inserted[16];
        struct cs_old_call old[16];
        char err[512];

        open_migrated(f);
        ops = f->sink->ops;
        add_call(b, p,
                 "{\"crime_id\":\"1\",\"original_crime_type_name\":\"A\","
                 "\"call_date_time\":\"2018-12-31T23:57:00\"}",
                 0, 10);
        /* The same id again in the batch: the first copy wins. */
        add_call(b, p,
                 "{\"crime_id\":1,\"original_crime_type_name\":\"B\","
                 "\"call_date_time\":\"2018-12-31T23:58:00\"}",
                 0, 11);
        assert_int_equal(b->ncalls, 1);
        assert_int_equal(b->nduplicates, 1);

        /* A rolled back batch leaves no trace. */
        assert_int_equal(ops->begin(f->sink, err, sizeof(err)), 0);
        assert_int_equal(
                ops->write_calls(f->sink, b, inserted, old, err, sizeof(err)),
                0);
        assert_int_equal(ops->store_offsets(f->sink, b, err, sizeof(err)), 0);
        ops->rollback(f->sink);
        assert_int_equal(th_sqlite_int(f->path, "SELECT COUNT(*) FROM calls"),
                         0);
        assert_int_equal(th_sqlite_int(f->path, "SELECT COUNT(*) FROM "
                                                "kafka_offsets"),
                         0);

        assert_int_equal(ops->begin(f->sink, err, sizeof(err)), 0);
        assert_int_equal(
                ops->write_calls(f->sink, b, inserted, old, err, sizeof(err)),
                0);
        assert_int_equal(inserted[0], 1);
        assert_int_equal(ops->store_offsets(f->sink, b, err, sizeof(err)), 0);
        assert_int_equal(ops->commit(f->sink, err, sizeof(err)), 0);
        assert_int_equal(th_sqlite_int(f->path,
                                       "SELECT COUNT(*) FROM calls WHERE "
                                       "original_crime_type_name = 'A' "
                                       "AND call_ts = '2018-12-31 "
                                       "23:57:00' AND kafka_offset = 10"),
                         1);

        /* A later batch with the stored id: not new. A stale offset does
         * not move the stored one backwards. */
        cs_batch_reset(b);
        add_call(b, p,
                 "{\"crime_id\":\"1\",\"original_crime_type_name\":\"C\","
                 "\"call_date_time\":\"2019-01-01T00:00:00\"}",
                 0, 3);
        assert_int_equal(ops->begin(f->sink, err, sizeof(err)), 0);
        assert_int_equal(
                ops->write_calls(f->sink, b, inserted, old, err, sizeof(err)),
                0);
        assert_int_equal(inserted[0], 0);
        assert_int_equal(ops->store_offsets(f->sink, b, err, sizeof(err)), 0);
        assert_int_equal(ops->commit(f->sink, err, sizeof(err)), 0);
        assert_int_equal(th_sqlite_int(f->path,
                                       "SELECT next_offset FROM "
                                       "kafka_offsets WHERE topic = 't' "
                                       "AND kafka_partition = 0"),
                         12);
        {
                struct cs_partition_offset o[2] = {{.partition = 0},
                                                   {.partition = 7}};

                assert_int_equal(
                        ops->load_offsets(f->sink, "t", o, 2, err, sizeof(err)),
                        0);
                assert_int_equal(o[0].next_offset, 12);
                assert_int_equal(o[1].next_offset, -1);
        }
        cs_batch_destroy(b);
        cs_parser_destroy(p);
}

static void test_sink_window_counts_add_up(void **state)
{
        struct th_sinkdir *f = *state;
        struct cs_window_spec spec = {.size = 3600, .slide = 3600};
        struct cs_window_count rows[2];
        const struct cs_sink_ops *ops;
        char err[512];
        int i;

        strcpy(spec.name, "1h");
        memset(rows, 0, sizeof(rows));
        rows[0].start = 1546297200; /* 2018-12-31 23:00:00 */
        rows[0].crime_type = (struct cs_str){"Traffic Stop", 12};
        rows[0].disposition = (struct cs_str){"HAN", 3};
        rows[0].calls = 2;
        rows[1] = rows[0];
        rows[1].disposition = (struct cs_str){NULL, 0};
        rows[1].calls = 1;
        open_migrated(f);
        ops = f->sink->ops;
        for (i = 0; i < 2; i++) {
                assert_int_equal(ops->begin(f->sink, err, sizeof(err)), 0);
                assert_int_equal(ops->write_window_counts(f->sink, rows, 2,
                                                          &spec, err,
                                                          sizeof(err)),
                                 0);
                assert_int_equal(ops->commit(f->sink, err, sizeof(err)), 0);
        }
        assert_int_equal(th_sqlite_int(f->path,
                                       "SELECT calls FROM call_counts WHERE "
                                       "window_spec = '1h' AND window_start = "
                                       "'2018-12-31 23:00:00' AND window_end = "
                                       "'2019-01-01 00:00:00'"),
                         6);
        assert_int_equal(th_sqlite_int(f->path,
                                       "SELECT calls FROM disposition_counts "
                                       "WHERE disposition IS NULL AND "
                                       "disposition_description = 'Unknown'"),
                         2);
        assert_int_equal(th_sqlite_int(f->path,
                                       "SELECT calls FROM disposition_counts "
                                       "WHERE disposition = 'HAN' AND "
                                       "disposition_description = 'Handled'"),
                         4);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_migrations_listed_in_order),
                cmocka_unit_test_setup_teardown(
                        test_migrate_creates_schema_and_is_idempotent,
                        th_sinkdir_setup, th_sinkdir_teardown),
                cmocka_unit_test_setup_teardown(
                        test_changed_migration_is_refused, th_sinkdir_setup,
                        th_sinkdir_teardown),
                cmocka_unit_test_setup_teardown(
                        test_failed_migration_leaves_nothing, th_sinkdir_setup,
                        th_sinkdir_teardown),
                cmocka_unit_test_setup_teardown(test_newer_schema_is_refused,
                                                th_sinkdir_setup,
                                                th_sinkdir_teardown),
                cmocka_unit_test(test_database_kinds),
                cmocka_unit_test(
                        test_postgres_unreachable_names_host_not_password),
                cmocka_unit_test_setup_teardown(
                        test_sink_batch_rollback_and_offsets, th_sinkdir_setup,
                        th_sinkdir_teardown),
                cmocka_unit_test_setup_teardown(test_sink_window_counts_add_up,
                                                th_sinkdir_setup,
                                                th_sinkdir_teardown),
        };

        cs_log_threshold = CS_LOG_WARN;
        return cmocka_run_group_tests_name("migrate", tests, NULL, NULL);
}
