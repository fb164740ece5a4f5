/* test_window_keys.c: window counts under integer keys (SQLite, migration
 * 010_window_keys.sql): window_totals keyed by dictionary ids and epoch
 * seconds, and the view window_counts that shows them as the old table
 * did. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "cs_common.h"
#include "cs_sink.h"
#include "harness.h"
#include "cs_window.h"

static void exec_sql(const char *path, const char *sql)
{
        sqlite3 *db;
        char *msg = NULL;

        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
                fail_msg("%s: %s", sql, msg ? msg : "?");
        sqlite3_close(db);
}

/* The rows of a query as "a|b|c\n" lines, through a separate connection.
 * The caller frees it. */
static char *query_text(const char *path, const char *sql)
{
        sqlite3 *db;
        sqlite3_stmt *st;
        size_t len = 0, cap = 4096;
        char *out = malloc(cap);
        int i, n;

        assert_non_null(out);
        out[0] = '\0';
        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
                fail_msg("%s: %s", sql, sqlite3_errmsg(db));
        while (sqlite3_step(st) == SQLITE_ROW) {
                n = sqlite3_column_count(st);
                for (i = 0; i < n; i++) {
                        const char *v =
                                (const char *)sqlite3_column_text(st, i);
                        size_t vl = v ? strlen(v) : 4;

                        while (len + vl + 2 >= cap)
                                assert_non_null(out = realloc(out, cap *= 2));
                        len += (size_t)sprintf(out + len, "%s%c",
                                               v ? v : "NULL",
                                               i + 1 < n ? '|' : '\n');
                }
        }
        sqlite3_finalize(st);
        sqlite3_close(db);
        return out;
}

static void open_migrated(struct th_sinkdir *f)
{
        char err[512];

        assert_int_equal(
                cs_sink_open(f->path, NULL, &f->sink, err, sizeof(err)), 0);
        if (f->sink->ops->migrate(f->sink, err, sizeof(err)) != 0)
                fail_msg("migrate: %s", err);
}

static void assert_text(const char *path, const char *sql, const char *want)
{
        char *got = query_text(path, sql);

        if (strcmp(got, want))
                fail_msg("%s\n# expected:\n%s# got:\n%s", sql, want, got);
        free(got);
}

#define WC_ALL                                                                 \
        "SELECT window_spec, window_start, window_end, crime_type, "           \
        "quote(disposition), calls, late_calls FROM window_counts "            \
        "ORDER BY 1, 2, 4, 5"

/* A database as migration 009 left it: window_counts a table with text
 * keys, holding rows; migrate moves them to window_totals unchanged. */
static void test_migration_moves_rows(void **state)
{
        struct th_sinkdir *f = *state;

        open_migrated(f);
        cs_sink_close(f->sink);
        f->sink = NULL;
        exec_sql(f->path,
                 "DROP VIEW window_counts; DROP TABLE window_totals; "
                 "DROP TABLE window_spec_ids; DROP TABLE crime_type_ids; "
                 "DROP TABLE disposition_ids; "
                 "DELETE FROM schema_migrations WHERE version = 10; "
                 "CREATE TABLE window_counts ("
                 " window_spec TEXT NOT NULL, window_start TEXT NOT NULL,"
                 " window_end TEXT NOT NULL, crime_type TEXT NOT NULL,"
                 " disposition TEXT NOT NULL, calls INTEGER NOT NULL,"
                 " late_calls INTEGER NOT NULL DEFAULT 0,"
                 " PRIMARY KEY (window_spec, window_start, crime_type,"
                 " disposition)) WITHOUT ROWID; "
                 "INSERT INTO window_counts VALUES "
                 "('1h', '2019-01-01 00:00:00', '2019-01-01 01:00:00',"
                 " 'Traffic Stop', 'HAN', 3, 1),"
                 "('1h', '2019-01-01 00:00:00', '2019-01-01 01:00:00',"
                 " 'Traffic Stop', '', 2, 0),"
                 "('1h', '2019-01-01 01:00:00', '2019-01-01 02:00:00',"
                 " 'Fight', 'ADV', 1, 0),"
                 "('1h/15m', '2018-12-31 23:15:00', '2019-01-01 00:15:00',"
                 " 'Traffic Stop', 'HAN', 3, 0),"
                 "('1d', '0001-01-01 00:00:00', '0001-01-02 00:00:00',"
                 " 'Old', '', 7, 0),"
                 "('1d', '9999-12-31 00:00:00', '9999-12-31 23:59:59',"
                 " 'Late''s', 'X Y', 1, 1)");
        open_migrated(f);
        assert_text(f->path, WC_ALL,
                    "1d|0001-01-01 00:00:00|0001-01-02 00:00:00|Old|''|7|0\n"
                    "1d|9999-12-31 00:00:00|9999-12-31 23:59:59|Late's|'X Y'|"
                    "1|1\n"
                    "1h|2019-01-01 00:00:00|2019-01-01 01:00:00|Traffic Stop|"
                    "''|2|0\n"
                    "1h|2019-01-01 00:00:00|2019-01-01 01:00:00|Traffic Stop|"
                    "'HAN'|3|1\n"
                    "1h|2019-01-01 01:00:00|2019-01-01 02:00:00|Fight|'ADV'|"
                    "1|0\n"
                    "1h/15m|2018-12-31 23:15:00|2019-01-01 00:15:00|"
                    "Traffic Stop|'HAN'|3|0\n");
        /* Stored as integers: 2019-01-01 00:00:00 UTC is 1546300800. */
        assert_text(f->path,
                    "SELECT typeof(window_start), typeof(window_end), "
                    "typeof(spec_id), typeof(crime_type_id), "
                    "typeof(disposition_id), count(*) FROM window_totals "
                    "GROUP BY 1, 2, 3, 4, 5",
                    "integer|integer|integer|integer|integer|6\n");
        assert_text(f->path,
                    "SELECT count(*) FROM window_totals WHERE window_start = "
                    "1546300800",
                    "2\n");
        assert_text(f->path,
                    "SELECT (SELECT count(*) FROM window_spec_ids), "
                    "(SELECT count(*) FROM crime_type_ids), "
                    "(SELECT count(*) FROM disposition_ids)",
                    "3|4|4\n");
        assert_text(f->path,
                    "SELECT window_spec, window_start, crime_type, calls, "
                    "late_calls FROM call_counts WHERE window_spec = '1h' "
                    "ORDER BY 2, 3",
                    "1h|2019-01-01 00:00:00|Traffic Stop|5|1\n"
                    "1h|2019-01-01 01:00:00|Fight|1|0\n");
}

/* Rows written through the view land in window_totals; deletes too. */
static void test_view_takes_writes(void **state)
{
        struct th_sinkdir *f = *state;

        open_migrated(f);
        exec_sql(f->path,
                 "INSERT INTO window_counts (window_spec, window_start, "
                 "window_end, crime_type, disposition, calls) VALUES "
                 "('1h', '2019-01-01 05:00:00', '2019-01-01 06:00:00', 'A', "
                 "'', 4), "
                 "('1h', '2019-01-01 06:00:00', '2019-01-01 07:00:00', 'A', "
                 "'HAN', 1)");
        assert_text(f->path, WC_ALL,
                    "1h|2019-01-01 05:00:00|2019-01-01 06:00:00|A|''|4|0\n"
                    "1h|2019-01-01 06:00:00|2019-01-01 07:00:00|A|'HAN'|1|0\n");
        exec_sql(f->path, "DELETE FROM window_counts WHERE window_start < "
                          "'2019-01-01 06:00:00'");
        assert_text(f->path,
                    "SELECT spec_id IS NOT NULL, window_start, window_end, "
                    "calls FROM window_totals",
                    "1|1546322400|1546326000|1\n");
}

/* A rolled-back batch may have assigned ids that are gone with it: the
 * next batch must not use them from memory. */
static void test_rollback_forgets_ids(void **state)
{
        struct th_sinkdir *f = *state;
        struct cs_window_spec spec = {.size = 3600, .slide = 3600};
        struct cs_window_count row;
        const struct cs_sink_ops *ops;
        char err[512];

        strcpy(spec.name, "1h");
        memset(&row, 0, sizeof(row));
        row.start = 1546297200; /* 2018-12-31 23:00:00 */
        row.crime_type = (struct cs_str){"Brand New", 9};
        row.disposition = (struct cs_str){"ZZZ", 3};
        row.calls = 2;
        open_migrated(f);
        ops = f->sink->ops;
        /* Another type first, so that ids differ if they are reassigned. */
        assert_int_equal(ops->begin(f->sink, err, sizeof(err)), 0);
        assert_int_equal(ops->write_window_counts(f->sink, &row, 1, &spec, err,
                                                  sizeof(err)),
                         0);
        ops->rollback(f->sink);
        exec_sql(f->path, "INSERT INTO crime_type_ids (crime_type) VALUES "
                          "('Other'); INSERT INTO disposition_ids "
                          "(disposition) VALUES ('Q'); INSERT INTO "
                          "window_spec_ids (window_spec) VALUES ('1d')");
        assert_int_equal(ops->begin(f->sink, err, sizeof(err)), 0);
        assert_int_equal(ops->write_window_counts(f->sink, &row, 1, &spec, err,
                                                  sizeof(err)),
                         0);
        assert_int_equal(ops->commit(f->sink, err, sizeof(err)), 0);
        assert_text(f->path, WC_ALL,
                    "1h|2018-12-31 23:00:00|2019-01-01 00:00:00|Brand New|"
                    "'ZZZ'|2|0\n");
        /* And a second batch finds them in memory, rightly. */
        row.calls = -2;
        assert_int_equal(ops->begin(f->sink, err, sizeof(err)), 0);
        assert_int_equal(ops->write_window_counts(f->sink, &row, 1, &spec, err,
                                                  sizeof(err)),
                         0);
        assert_int_equal(ops->commit(f->sink, err, sizeof(err)), 0);
        assert_text(f->path, "SELECT count(*) FROM window_totals", "0\n");
}

/* Rows of one batch in any order, with a call without disposition and one
 * with '' sharing a key: all counted. */
static void test_batch_rows_sum(void **state)
{
        struct th_sinkdir *f = *state;
        struct cs_window_spec specs[2] = {{.size = 3600, .slide = 3600},
                                          {.size = 3600, .slide = 900}};
        struct cs_window_count rows[4];
        const struct cs_sink_ops *ops;
        char err[512];

        strcpy(specs[0].name, "1h");
        strcpy(specs[1].name, "1h/15m");
        memset(rows, 0, sizeof(rows));
        rows[0].spec = 1;
        rows[0].start = 1546300800 + 900;
        rows[0].crime_type = (struct cs_str){"B", 1};
        rows[0].calls = 1;
        rows[1] = rows[0];
        rows[1].spec = 0;
        rows[1].start = 1546300800;
        rows[1].disposition = (struct cs_str){"", 0};
        rows[1].calls = 2;
        rows[2] = rows[1];
        rows[2].disposition = (struct cs_str){NULL, 0};
        rows[2].calls = 3;
        rows[2].late_calls = 1;
        rows[3] = rows[1];
        rows[3].crime_type = (struct cs_str){"A", 1};
        rows[3].calls = 5;
        open_migrated(f);
        ops = f->sink->ops;
        assert_int_equal(ops->begin(f->sink, err, sizeof(err)), 0);
        assert_int_equal(ops->write_window_counts(f->sink, rows, 4, specs, err,
                                                  sizeof(err)),
                         0);
        assert_int_equal(ops->commit(f->sink, err, sizeof(err)), 0);
        assert_text(
                f->path, WC_ALL,
                "1h|2019-01-01 00:00:00|2019-01-01 01:00:00|A|''|5|0\n"
                "1h|2019-01-01 00:00:00|2019-01-01 01:00:00|B|''|5|1\n"
                "1h/15m|2019-01-01 00:15:00|2019-01-01 01:15:00|B|''|1|0\n");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_migration_moves_rows,
                                                th_sinkdir_setup,
                                                th_sinkdir_teardown),
                cmocka_unit_test_setup_teardown(test_view_takes_writes,
                                                th_sinkdir_setup,
                                                th_sinkdir_teardown),
                cmocka_unit_test_setup_teardown(test_rollback_forgets_ids,
                                                th_sinkdir_setup,
                                                th_sinkdir_teardown),
                cmocka_unit_test_setup_teardown(test_batch_rows_sum,
                                                th_sinkdir_setup,
                                                th_sinkdir_teardown),
        };

        cs_log_threshold = CS_LOG_WARN;
        return cmocka_run_group_tests(tests, NULL, NULL);
}
