/* test_sink_registry.c: how a --db value finds its kind of database
 * (sink.c's registry), and what the wrappers answer for the operations a
 * backend may leave NULL.
 *
 *   test_builtin_kinds        URIs, conninfo, "sqlite:" and paths go to
 *                             the kind the README says, schemes first
 *   test_registered_kind      a registered kind is found by its scheme and
 *                             by its claims(), before the built-in ones,
 *                             and opens through the registry
 *   test_missing_required_op  a backend that lacks a required operation is
 *                             refused at open, naming it, and closed
 *   test_optional_ops_null    claim, retain and the rebuild operations left
 *                             NULL: claim passes, the others fail with a
 *                             reason; the required ones go to the backend
 *   test_sqlite_usage_errors  --schema with SQLite and an empty path */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cs_sink.h"

/* A backend that does nothing, counting what it was asked. */
struct fake {
        struct cs_sink base;
        int begins, commits, closed;
};

static int fake_closed; /* fakes closed, for those freed at close */

static int ok_migrate(struct cs_sink *s, char *errstr, size_t errstr_size)
{
        (void)s;
        (void)errstr;
        (void)errstr_size;
        return 0;
}

static int ok_load_offsets(struct cs_sink *s, const char *topic,
                           struct cs_partition_offset *offs, size_t n,
                           char *errstr, size_t errstr_size)
{
        (void)s;
        (void)topic;
        (void)offs;
        (void)n;
        (void)errstr;
        (void)errstr_size;
        return 0;
}

static int ok_begin(struct cs_sink *s, char *errstr, size_t errstr_size)
{
        (void)errstr;
        (void)errstr_size;
        ((struct fake *)s)->begins++;
        return 0;
}

static int ok_write_calls(struct cs_sink *s, const struct cs_batch *b,
                          unsigned char *outcome, struct cs_old_call *old,
                          char *errstr, size_t errstr_size)
{
        (void)s;
        (void)b;
        (void)outcome;
        (void)old;
        (void)errstr;
        (void)errstr_size;
        return 0;
}

static int ok_write_window_counts(struct cs_sink *s,
                                  const struct cs_window_count *rows, size_t n,
                                  const struct cs_window_spec *specs,
                                  char *errstr, size_t errstr_size)
{
        (void)s;
        (void)rows;
        (void)n;
        (void)specs;
        (void)errstr;
        (void)errstr_size;
        return 0;
}

static int ok_batch_op(struct cs_sink *s, const struct cs_batch *b,
                       char *errstr, size_t errstr_size)
{
        (void)s;
        (void)b;
        (void)errstr;
        (void)errstr_size;
        return 0;
}

static int ok_write_late_records(struct cs_sink *s, const struct cs_batch *b,
                                 const struct cs_late_record *recs, size_t n,
                                 const struct cs_window_spec *specs,
                                 char *errstr, size_t errstr_size)
{
        (void)s;
        (void)b;
        (void)recs;
        (void)n;
        (void)specs;
        (void)errstr;
        (void)errstr_size;
        return 0;
}

static int ok_commit(struct cs_sink *s, char *errstr, size_t errstr_size)
{
        (void)errstr;
        (void)errstr_size;
        ((struct fake *)s)->commits++;
        return 0;
}

static void ok_rollback(struct cs_sink *s)
{
        (void)s;
}

static void ok_close(struct cs_sink *s)
{
        fake_closed++;
        free(s);
}

static int ok_query(struct cs_sink *s, const char *name,
                    const char *const *params, int n, cs_sink_row_cb *cb,
                    void *opaque, long *changed, char *errstr,
                    size_t errstr_size)
{
        (void)s;
        (void)name;
        (void)params;
        (void)n;
        (void)cb;
        (void)opaque;
        (void)changed;
        (void)errstr;
        (void)errstr_size;
        return 0;
}

static int ok_write_gaps(struct cs_sink *s, const char *topic,
                         const struct cs_offset_gap *gaps, size_t n,
                         char *errstr, size_t errstr_size)
{
        (void)s;
        (void)topic;
        (void)gaps;
        (void)n;
        (void)errstr;
        (void)errstr_size;
        return 0;
}

static int ok_store_high_watermarks(struct cs_sink *s, const char *topic,
                                    const struct cs_partition_offset *offs,
                                    size_t n, char *errstr, size_t errstr_size)
{
        (void)s;
        (void)topic;
        (void)offs;
        (void)n;
        (void)errstr;
        (void)errstr_size;
        return 0;
}

/* Every required operation; every optional one NULL. */
static const struct cs_sink_ops fake_ops = {
        .dialect = "sqlite",
        .migrate = ok_migrate,
        .load_offsets = ok_load_offsets,
        .begin = ok_begin,
        .write_calls = ok_write_calls,
        .write_window_counts = ok_write_window_counts,
        .write_rejects = ok_batch_op,
        .write_late_records = ok_write_late_records,
        .store_offsets = ok_batch_op,
        .commit = ok_commit,
        .rollback = ok_rollback,
        .reconnect = ok_migrate,
        .close = ok_close,
        .query = ok_query,
        .write_gaps = ok_write_gaps,
        .store_high_watermarks = ok_store_high_watermarks,
};

/* The same without commit. */
static const struct cs_sink_ops broken_ops = {
        .dialect = "sqlite",
        .migrate = ok_migrate,
        .load_offsets = ok_load_offsets,
        .begin = ok_begin,
        .write_calls = ok_write_calls,
        .write_window_counts = ok_write_window_counts,
        .write_rejects = ok_batch_op,
        .write_late_records = ok_write_late_records,
        .store_offsets = ok_batch_op,
        .rollback = ok_rollback,
        .reconnect = ok_migrate,
        .close = ok_close,
        .query = ok_query,
        .write_gaps = ok_write_gaps,
        .store_high_watermarks = ok_store_high_watermarks,
};

static char opened[256]; /* the db the last fake open got */

static int open_with(const struct cs_sink_ops *ops, const char *db,
                     struct cs_sink **out)
{
        struct fake *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        f->base.ops = ops;
        snprintf(f->base.name, sizeof(f->base.name), "fake %s", db);
        snprintf(opened, sizeof(opened), "%s", db);
        *out = &f->base;
        return 0;
}

static int fake_open(const char *db, const char *schema, struct cs_sink **out,
                     char *errstr, size_t errstr_size)
{
        (void)schema;
        (void)errstr;
        (void)errstr_size;
        return open_with(&fake_ops, db, out);
}

static int broken_open(const char *db, const char *schema, struct cs_sink **out,
                       char *errstr, size_t errstr_size)
{
        (void)schema;
        (void)errstr;
        (void)errstr_size;
        return open_with(&broken_ops, db, out);
}

/* Claims values that end in ".fake". */
static int fake_claims(const char *db)
{
        size_t n = strlen(db);

        return n > 5 && !strcmp(db + n - 5, ".fake");
}

static const char *const fake_schemes[] = {"fake://", NULL};
static const char *const broken_schemes[] = {"broken://", NULL};

static const struct cs_sink_type fake_type = {
        .name = "fake",
        .schemes = fake_schemes,
        .claims = fake_claims,
        .open = fake_open,
};

static const struct cs_sink_type broken_type = {
        .name = "broken",
        .schemes = broken_schemes,
        .open = broken_open,
};

static const char *kind(const char *db)
{
        return cs_sink_type_of(db)->name;
}

static void test_builtin_kinds(void **state)
{
        (void)state;
        assert_string_equal(kind("postgresql://u@h/db"), "postgresql");
        assert_string_equal(kind("postgres://h/db"), "postgresql");
        assert_string_equal(kind("host=/tmp dbname=x"), "postgresql");
        assert_string_equal(kind("calls.db"), "sqlite");
        assert_string_equal(kind("/var/lib/x/calls.db"), "sqlite");
        /* The scheme decides before conninfo's '='. */
        assert_string_equal(kind("sqlite:a=b.db"), "sqlite");
        assert_string_equal(kind("sqlite:postgresql://x"), "sqlite");
        assert_true(cs_sink_is_postgresql("postgresql://u@h/db"));
        assert_true(cs_sink_is_postgresql("dbname=x"));
        assert_false(cs_sink_is_postgresql("sqlite:a=b.db"));
        assert_false(cs_sink_is_postgresql("calls.db"));
}

static void test_registered_kind(void **state)
{
        struct cs_sink *s = NULL;
        char err[256] = "";

        (void)state;
        assert_string_equal(kind("fake://x"), "sqlite");
        assert_int_equal(cs_sink_register(&fake_type), 0);
        assert_string_equal(kind("fake://x"), "fake");
        assert_string_equal(kind("calls.fake"), "fake");
        /* Schemes still come first; the others are unchanged. */
        assert_string_equal(kind("sqlite:calls.fake"), "sqlite");
        assert_string_equal(kind("postgresql://h/calls.fake"), "postgresql");
        assert_string_equal(kind("calls.db"), "sqlite");

        assert_int_equal(cs_sink_open("fake://x", NULL, &s, err, sizeof(err)),
                         0);
        assert_non_null(s);
        assert_string_equal(opened, "fake://x");
        assert_int_equal(cs_sink_begin(s, err, sizeof(err)), 0);
        assert_int_equal(cs_sink_commit(s, err, sizeof(err)), 0);
        assert_int_equal(((struct fake *)s)->begins, 1);
        assert_int_equal(((struct fake *)s)->commits, 1);
        cs_sink_close(s);
}

static void test_missing_required_op(void **state)
{
        struct cs_sink *s = (struct cs_sink *)1;
        char err[256] = "";
        int closed = fake_closed;

        (void)state;
        assert_int_equal(cs_sink_register(&broken_type), 0);
        assert_int_equal(cs_sink_open("broken://y", NULL, &s, err, sizeof(err)),
                         -1);
        assert_null(s);
        assert_string_equal(err, "fake broken://y: the broken backend lacks "
                                 "the operation commit");
        assert_int_equal(fake_closed, closed + 1);
}

static void test_optional_ops_null(void **state)
{
        struct cs_sink *s = NULL;
        char err[256] = "", names[4][32];
        long deleted = -1;
        int n = -1;

        (void)state;
        assert_int_equal(open_with(&fake_ops, "opt", &s), 0);
        assert_int_equal(cs_sink_claim(s, err, sizeof(err)), 0);
        assert_int_equal(
                cs_sink_set_durability(s, CS_DURABILITY_FULL, err, sizeof(err)),
                0);
        assert_int_equal(
                cs_sink_retain(s, 3600, 10, &deleted, err, sizeof(err)), -1);
        assert_int_equal(deleted, 0);
        assert_string_equal(err, "fake opt: this database does not support "
                                 "--retention");
        err[0] = '\0';
        assert_int_equal(cs_sink_rebuild_begin(s, err, sizeof(err)), -1);
        assert_string_equal(err,
                            "fake opt: this database does not support rebuild");
        err[0] = '\0';
        assert_int_equal(
                cs_sink_window_specs(s, names, 4, &n, err, sizeof(err)), -1);
        assert_int_equal(n, 0);
        assert_non_null(strstr(err, "rebuild"));
        assert_int_equal(
                cs_sink_scan_calls(s, 0, 1, NULL, NULL, err, sizeof(err)), -1);
        assert_int_equal(cs_sink_clear_windows(s, "1h", 0, 1, err, sizeof(err)),
                         -1);
        assert_int_equal(
                cs_sink_write_stored_late(s, "1h", NULL, 0, err, sizeof(err)),
                -1);
        cs_sink_close(s);
}

static void test_sqlite_usage_errors(void **state)
{
        struct cs_sink *s = (struct cs_sink *)1;
        char err[256] = "";

        (void)state;
        assert_int_equal(cs_sink_open("calls.db", "s", &s, err, sizeof(err)),
                         -1);
        assert_null(s);
        assert_string_equal(err, "--schema is for PostgreSQL databases only");
        s = (struct cs_sink *)1;
        assert_int_equal(cs_sink_open("sqlite:", NULL, &s, err, sizeof(err)),
                         -1);
        assert_null(s);
        assert_string_equal(err, "empty database path");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_builtin_kinds),
                cmocka_unit_test(test_registered_kind),
                cmocka_unit_test(test_missing_required_op),
                cmocka_unit_test(test_optional_ops_null),
                cmocka_unit_test(test_sqlite_usage_errors),
        };

        return cmocka_run_group_tests_name("sink_registry", tests, NULL, NULL);
}
