/* test_migrate_driver.c: the one migration algorithm (cs_migrate_run(),
 * migrate.c) over a fake sink that keeps schema_migrations in memory and
 * writes down every primitive it is asked for, so that the order of locks,
 * scripts, records and commits can be checked, and faults injected where a
 * real database cannot fail on purpose.
 *
 *   test_fresh_applies_all       every migration of the dialect, in version
 *                                order, each in a locked transaction of its
 *                                own with its record and checksum; the views
 *                                after them, under the lock
 *   test_second_run_is_idle      a second run runs no migration script
 *   test_changed_checksum        an applied migration whose checksum differs
 *                                is refused, naming it and both checksums;
 *                                nothing after it runs
 *   test_newer_schema            a schema newer than the newest migration is
 *                                refused before anything runs
 *   test_failed_script           a failing script is rolled back unrecorded
 *                                and stops the run with its status
 *   test_lock_busy               a lock that cannot be had (CS_RETRY)
 *                                stops the run with that status
 *   test_backend_prepare_views   a backend's own prepare and view
 *                                installation replace the defaults
 *
 * The real SQLite and PostgreSQL sinks run the same driver in test_migrate,
 * test_pg, test_pg_ops and test_offsets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cs_migrate.h"
#include "cs_sink.h"

#define RECORDS_MAX 80

struct record {
        int version;
        char name[64];
        char checksum[32];
};

struct fake {
        struct cs_sink base;
        /* schema_migrations as committed, and as the open transaction has
         * it. */
        struct record done[RECORDS_MAX], tx[RECORDS_MAX];
        int ndone, ntx;
        int table; /* schema_migrations exists */
        int in_tx;
        char trace[16384];     /* "lock(what) exec(what) ..." */
        const char *fail_exec; /* exec of this what fails with -1 */
        int lock_status;       /* what lock() returns when not 0 */
        int prepared, views_installed;
};

static void note(struct fake *f, const char *fmt, const char *arg)
{
        size_t n = strlen(f->trace);

        snprintf(f->trace + n, sizeof(f->trace) - n, fmt, arg);
}

static int fake_lock(struct cs_sink *s, const char *what, char *errstr,
                     size_t errstr_size)
{
        struct fake *f = (struct fake *)s;

        assert_false(f->in_tx);
        if (f->lock_status) {
                snprintf(errstr, errstr_size, "busy");
                return f->lock_status;
        }
        note(f, "lock(%s) ", what);
        f->in_tx = 1;
        memcpy(f->tx, f->done, sizeof(f->tx));
        f->ntx = f->ndone;
        return 0;
}

static int fake_unlock(struct cs_sink *s, const char *what, char *errstr,
                       size_t errstr_size)
{
        struct fake *f = (struct fake *)s;

        (void)errstr;
        (void)errstr_size;
        assert_true(f->in_tx);
        f->in_tx = 0;
        if (!what) {
                note(f, "%srollback ", "");
                return 0;
        }
        note(f, "commit(%s) ", what);
        memcpy(f->done, f->tx, sizeof(f->done));
        f->ndone = f->ntx;
        return 0;
}

static int fake_exec(struct cs_sink *s, const char *sql, const char *what,
                     char *errstr, size_t errstr_size)
{
        struct fake *f = (struct fake *)s;

        assert_non_null(sql);
        assert_true(f->in_tx);
        note(f, "exec(%s) ", what);
        if (f->fail_exec && !strcmp(what, f->fail_exec)) {
                snprintf(errstr, errstr_size, "%s: failed on purpose", what);
                return -1;
        }
        return 0;
}

static int fake_prepare(struct cs_sink *s, char *errstr, size_t errstr_size)
{
        struct fake *f = (struct fake *)s;

        (void)errstr;
        (void)errstr_size;
        assert_true(f->in_tx);
        note(f, "%sprepare ", "");
        f->prepared++;
        f->table = 1;
        return 0;
}

static int fake_install_views(struct cs_sink *s, char *errstr,
                              size_t errstr_size)
{
        struct fake *f = (struct fake *)s;

        (void)errstr;
        (void)errstr_size;
        assert_false(f->in_tx);
        note(f, "%sinstall_views ", "");
        f->views_installed++;
        return 0;
}

/* The four statements of schema_migrations the driver runs through
 * query(), on the in-memory table. */
static int fake_query(struct cs_sink *s, const char *name,
                      const char *const *params, int n, cs_sink_row_cb *cb,
                      void *opaque, long *changed, char *errstr,
                      size_t errstr_size)
{
        struct fake *f = (struct fake *)s;
        char text[32];
        const char *row[1] = {text};
        int i;

        (void)changed;
        (void)errstr;
        (void)errstr_size;
        if (!strcmp(name, "create_migrations_table")) {
                assert_true(f->in_tx);
                note(f, "%screate_table ", "");
                f->table = 1;
                return 0;
        }
        assert_true(f->table);
        if (!strcmp(name, "latest_migration")) {
                int max = 0;

                for (i = 0; i < f->ndone; i++)
                        if (f->done[i].version > max)
                                max = f->done[i].version;
                snprintf(text, sizeof(text), "%d", max);
                return cb(opaque, 1, row);
        }
        assert_true(f->in_tx);
        if (!strcmp(name, "migration_checksum")) {
                assert_int_equal(n, 1);
                for (i = 0; i < f->ntx; i++)
                        if (f->tx[i].version == atoi(params[0])) {
                                snprintf(text, sizeof(text), "%s",
                                         f->tx[i].checksum);
                                return cb(opaque, 1, row);
                        }
                return 0;
        }
        if (!strcmp(name, "record_migration")) {
                assert_int_equal(n, 3);
                assert_true(f->ntx < RECORDS_MAX);
                f->tx[f->ntx].version = atoi(params[0]);
                snprintf(f->tx[f->ntx].name, sizeof(f->tx[0].name), "%s",
                         params[1]);
                snprintf(f->tx[f->ntx].checksum, sizeof(f->tx[0].checksum),
                         "%s", params[2]);
                f->ntx++;
                note(f, "record(%s) ", params[1]);
                return 0;
        }
        fail_msg("unexpected statement %s", name);
        return -1;
}

static const struct cs_sink_ops fake_sink_ops = {
        .dialect = "sqlite",
        .query = fake_query,
};

static const struct cs_migrate_ops fake_migrator = {
        .lock = fake_lock,
        .unlock = fake_unlock,
        .exec = fake_exec,
};

static const struct cs_migrate_ops fake_migrator_own = {
        .lock = fake_lock,
        .unlock = fake_unlock,
        .exec = fake_exec,
        .prepare = fake_prepare,
        .install_views = fake_install_views,
};

static int setup(void **state)
{
        struct fake *f = calloc(1, sizeof(*f));

        if (!f)
                return -1;
        f->base.ops = &fake_sink_ops;
        snprintf(f->base.name, sizeof(f->base.name), "fake.db");
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        free(*state);
        return 0;
}

/* The migrations the driver must apply: the dialect's list. */
static int migrations(struct cs_migration *m)
{
        int n = cs_migrations("sqlite", m, CS_MIGRATIONS_MAX);

        assert_true(n >= 3);
        return n;
}

static const char *file_name(const struct cs_migration *m)
{
        return strrchr(m->path, '/') + 1;
}

/* Appends to out (size bytes, NUL-terminated) what fmt says. */
static void put(char *out, size_t size, const char *fmt, const char *a,
                const char *b)
{
        size_t len = strlen(out);

        assert_true((size_t)snprintf(out + len, size - len, fmt, a, b) <
                    size - len);
}

/* The trace of a run that finds migrations m[0..from) applied and
 * applies m[from..n): prepare, then each in its own locked transaction,
 * then the default view installation. */
static void expect_run(char *out, size_t size, const struct cs_migration *m,
                       int from, int n)
{
        const char *views[CS_VIEWS_MAX];
        int nviews = cs_views("sqlite", views, CS_VIEWS_MAX), i;

        out[0] = '\0';
        put(out, size,
            "lock(starting migration) create_table "
            "commit(committing migration) ",
            NULL, NULL);
        for (i = 0; i < n; i++) {
                const char *name = file_name(&m[i]);

                if (i < from)
                        put(out, size,
                            "lock(starting migration) "
                            "commit(committing migration) ",
                            NULL, NULL);
                else
                        put(out, size,
                            "lock(starting migration) exec(%s) record(%s) "
                            "commit(committing migration) ",
                            name, name);
        }
        assert_true(nviews >= 1);
        put(out, size, "lock(starting views) ", NULL, NULL);
        for (i = 0; i < nviews; i++)
                put(out, size, "exec(creating views) ", NULL, NULL);
        put(out, size, "commit(committing views) ", NULL, NULL);
}

/* Checks that schema_migrations holds exactly m[0..n). */
static void assert_recorded(const struct fake *f, const struct cs_migration *m,
                            int n)
{
        int i;

        assert_int_equal(f->ndone, n);
        for (i = 0; i < n; i++) {
                assert_int_equal(f->done[i].version, m[i].version);
                assert_string_equal(f->done[i].name, file_name(&m[i]));
                assert_string_equal(f->done[i].checksum, m[i].checksum);
        }
}

static void test_fresh_applies_all(void **state)
{
        struct fake *f = *state;
        struct cs_migration m[CS_MIGRATIONS_MAX];
        int n = migrations(m), i;
        char want[16384], err[256] = "";

        for (i = 1; i < n; i++)
                assert_true(m[i].version > m[i - 1].version);
        assert_int_equal(
                cs_migrate_run(&f->base, &fake_migrator, err, sizeof(err)), 0);
        expect_run(want, sizeof(want), m, 0, n);
        assert_string_equal(f->trace, want);
        assert_false(f->in_tx);
        assert_recorded(f, m, n);
}

static void test_second_run_is_idle(void **state)
{
        struct fake *f = *state;
        struct cs_migration m[CS_MIGRATIONS_MAX];
        int n = migrations(m);
        char want[16384], err[256] = "";

        assert_int_equal(
                cs_migrate_run(&f->base, &fake_migrator, err, sizeof(err)), 0);
        f->trace[0] = '\0';
        assert_int_equal(
                cs_migrate_run(&f->base, &fake_migrator, err, sizeof(err)), 0);
        expect_run(want, sizeof(want), m, n, n);
        assert_string_equal(f->trace, want);
        assert_recorded(f, m, n);
}

/* Marks m[0..n) applied, the one at changed (if any) with another
 * checksum. */
static void seed(struct fake *f, const struct cs_migration *m, int n,
                 int changed)
{
        int i;

        f->table = 1;
        for (i = 0; i < n; i++) {
                f->done[i].version = m[i].version;
                snprintf(f->done[i].name, sizeof(f->done[i].name), "%s",
                         file_name(&m[i]));
                snprintf(f->done[i].checksum, sizeof(f->done[i].checksum), "%s",
                         i == changed ? "0123456789abcdef" : m[i].checksum);
        }
        f->ndone = n;
}

static void test_changed_checksum(void **state)
{
        struct fake *f = *state;
        struct cs_migration m[CS_MIGRATIONS_MAX];
        int n = migrations(m);
        char want[512], err[512] = "";

        seed(f, m, 2, 1);
        assert_int_equal(
                cs_migrate_run(&f->base, &fake_migrator, err, sizeof(err)), -1);
        snprintf(want, sizeof(want),
                 "fake.db: migration %s was changed after it was applied "
                 "(checksum 0123456789abcdef, now %s)",
                 file_name(&m[1]), m[1].checksum);
        assert_string_equal(err, want);
        /* Nothing ran after the first, unchanged one; the lock is gone. */
        assert_string_equal(f->trace, "lock(starting migration) create_table "
                                      "commit(committing migration) "
                                      "lock(starting migration) "
                                      "commit(committing migration) "
                                      "lock(starting migration) rollback ");
        assert_false(f->in_tx);
        assert_int_equal(f->ndone, 2);
        (void)n;
}

static void test_newer_schema(void **state)
{
        struct fake *f = *state;
        struct cs_migration m[CS_MIGRATIONS_MAX];
        int n = migrations(m);
        char want[512], err[512] = "";

        f->table = 1;
        f->done[0].version = m[n - 1].version + 1;
        f->ndone = 1;
        assert_int_equal(
                cs_migrate_run(&f->base, &fake_migrator, err, sizeof(err)), -1);
        snprintf(want, sizeof(want),
                 "fake.db: schema version %d is newer than this callstream "
                 "knows (%d); upgrade callstream",
                 m[n - 1].version + 1, m[n - 1].version);
        assert_string_equal(err, want);
        assert_string_equal(f->trace, "lock(starting migration) create_table "
                                      "commit(committing migration) ");
        assert_int_equal(f->ndone, 1);
}

static void test_failed_script(void **state)
{
        struct fake *f = *state;
        struct cs_migration m[CS_MIGRATIONS_MAX];
        int n = migrations(m);
        char want[16384], err[512] = "";

        f->fail_exec = file_name(&m[2]);
        assert_int_equal(
                cs_migrate_run(&f->base, &fake_migrator, err, sizeof(err)), -1);
        snprintf(want, sizeof(want), "%s: failed on purpose", file_name(&m[2]));
        assert_string_equal(err, want);
        /* The first two applied; the third rolled back unrecorded; none
         * after it tried. */
        assert_recorded(f, m, 2);
        want[0] = '\0';
        put(want, sizeof(want),
            "lock(starting migration) create_table "
            "commit(committing migration) ",
            NULL, NULL);
        put(want, sizeof(want),
            "lock(starting migration) exec(%s) record(%s) "
            "commit(committing migration) ",
            file_name(&m[0]), file_name(&m[0]));
        put(want, sizeof(want),
            "lock(starting migration) exec(%s) record(%s) "
            "commit(committing migration) ",
            file_name(&m[1]), file_name(&m[1]));
        put(want, sizeof(want), "lock(starting migration) exec(%s) rollback ",
            file_name(&m[2]), NULL);
        assert_string_equal(f->trace, want);
        assert_false(f->in_tx);
        (void)n;
}

static void test_lock_busy(void **state)
{
        struct fake *f = *state;
        char err[256] = "";

        f->lock_status = CS_RETRY;
        assert_int_equal(
                cs_migrate_run(&f->base, &fake_migrator, err, sizeof(err)),
                CS_RETRY);
        assert_string_equal(err, "busy");
        assert_string_equal(f->trace, "");
        assert_int_equal(f->ndone, 0);
}

static void test_backend_prepare_views(void **state)
{
        struct fake *f = *state;
        struct cs_migration m[CS_MIGRATIONS_MAX];
        int n = migrations(m);
        char err[256] = "";
        const char *p;

        assert_int_equal(
                cs_migrate_run(&f->base, &fake_migrator_own, err, sizeof(err)),
                0);
        assert_int_equal(f->prepared, 1);
        assert_int_equal(f->views_installed, 1);
        assert_null(strstr(f->trace, "create_table"));
        assert_null(strstr(f->trace, "creating views"));
        assert_true(!strncmp(f->trace,
                             "lock(starting migration) prepare "
                             "commit(committing migration) ",
                             strlen("lock(starting migration) prepare "
                                    "commit(committing migration) ")));
        p = strstr(f->trace, "install_views ");
        assert_non_null(p);
        assert_string_equal(p, "install_views ");
        assert_recorded(f, m, n);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_fresh_applies_all, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_second_run_is_idle, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_changed_checksum, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_newer_schema, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_failed_script, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_lock_busy, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_backend_prepare_views,
                                                setup, teardown),
        };

        cs_log_threshold = CS_LOG_WARN;
        return cmocka_run_group_tests_name("migrate_driver", tests, NULL, NULL);
}
