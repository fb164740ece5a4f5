/* migrate.c: lists the embedded migrations and views of one SQL dialect,
 * and applies them to a sink (the one migration algorithm of every
 * backend). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cs_migrate.h"
#include "cs_sink.h"
#include "cs_sql.h"

/* Returns the path's text after prefix when it starts with it, else NULL. */
static const char *after(const char *path, const char *prefix)
{
        size_t n = strlen(prefix);

        return strncmp(path, prefix, n) ? NULL : path + n;
}

int cs_migrations(const char *dialect, struct cs_migration *out, int max)
{
        char own[64];
        int i, j, n = 0;

        snprintf(own, sizeof(own), "migrations/%s/", dialect);
        for (i = 0; i < cs_sql_file_count && n < max; i++) {
                const char *path = cs_sql_files[i].path;
                const char *name = after(path, own);
                const char *sql = cs_sql_files[i].text;
                struct cs_migration m;

                if (!name)
                        name = after(path, "migrations/any/");
                if (!name)
                        continue;
                m.version = atoi(name);
                m.path = path;
                m.sql = sql;
                snprintf(m.checksum, sizeof(m.checksum), "%016llx",
                         (unsigned long long)cs_hash(sql, strlen(sql), 0));
                /* Two folders: keep the list in version order. */
                for (j = n; j > 0 && out[j - 1].version > m.version; j--)
                        out[j] = out[j - 1];
                out[j] = m;
                n++;
        }
        return n;
}

/* Returns the text of sql/<dialect>/<file>, or NULL. */
static const char *sql_file(const char *dialect, const char *file)
{
        char path[128];
        int i;

        snprintf(path, sizeof(path), "sql/%s/%s", dialect, file);
        for (i = 0; i < cs_sql_file_count; i++)
                if (!strcmp(cs_sql_files[i].path, path))
                        return cs_sql_files[i].text;
        return NULL;
}

int cs_views(const char *dialect, const char **out, int max)
{
        char prefix[64];
        int i, n = 0;

        /* Sorted by path: views.sql comes before views_*.sql, which may
         * build on it. */
        snprintf(prefix, sizeof(prefix), "sql/%s/views", dialect);
        for (i = 0; i < cs_sql_file_count && n < max; i++)
                if (after(cs_sql_files[i].path, prefix))
                        out[n++] = cs_sql_files[i].text;
        return n;
}

const char *cs_sql_statement(const char *dialect, const char *name, size_t *len)
{
        const char *text = sql_file(dialect, "statements.sql");
        size_t n = strlen(name);
        const char *p, *end;

        for (p = text; p && (p = strstr(p, "-- name: "));) {
                p += 9;
                if (strncmp(p, name, n) || p[n] != '\n')
                        continue;
                p += n + 1;
                end = strstr(p, "-- name: ");
                *len = end ? (size_t)(end - p) : strlen(p);
                return p;
        }
        return NULL;
}

/* Keeps the first column of the first row, as text ("NULL" for NULL). */
struct first_value {
        int found;
        char text[64];
};

static int keep_first(void *opaque, int n, const char *const *values)
{
        struct first_value *v = opaque;

        if (!v->found && n > 0) {
                v->found = 1;
                snprintf(v->text, sizeof(v->text), "%s",
                         values[0] ? values[0] : "NULL");
        }
        return 0;
}

/* Ends the transaction of ops->lock(): commits it when r is 0 (what names
 * the commit), else rolls it back and returns r. */
static int finish(struct cs_sink *s, const struct cs_migrate_ops *ops, int r,
                  const char *what, char *errstr, size_t errstr_size)
{
        if (r == 0)
                return ops->unlock(s, what, errstr, errstr_size);
        ops->unlock(s, NULL, NULL, 0);
        return r;
}

/* Applies migration m unless schema_migrations holds it; an applied
 * migration whose text changed since is an error, not something to run
 * again. */
static int apply(struct cs_sink *s, const struct cs_migrate_ops *ops,
                 const struct cs_migration *m, char *errstr, size_t errstr_size)
{
        const char *name = strrchr(m->path, '/') + 1;
        struct first_value sum = {0};
        char version[16];
        const char *params[3] = {version, name, m->checksum};
        int r;

        snprintf(version, sizeof(version), "%d", m->version);
        if ((r = ops->lock(s, "starting migration", errstr, errstr_size)) < 0)
                return r;
        r = cs_sink_query(s, "migration_checksum", params, 1, keep_first, &sum,
                          NULL, errstr, errstr_size);
        if (r == 0 && sum.found) {
                if (strcmp(sum.text, m->checksum)) {
                        snprintf(errstr, errstr_size,
                                 "%s: migration %s was changed after it was "
                                 "applied (checksum %s, now %s)",
                                 s->name, name, sum.text, m->checksum);
                        r = -1;
                }
                return finish(s, ops, r, "committing migration", errstr,
                              errstr_size);
        }
        if (r == 0)
                r = ops->exec(s, m->sql, name, errstr, errstr_size);
        if (r == 0)
                r = cs_sink_query(s, "record_migration", params, 3, NULL, NULL,
                                  NULL, errstr, errstr_size);
        if (r == 0)
                cs_log(CS_LOG_INFO, "%s: applied migration %s", s->name, name);
        return finish(s, ops, r, "committing migration", errstr, errstr_size);
}

/* Runs every view script of the dialect in one transaction, under the
 * lock: views are recreated at every migrate. */
static int run_views(struct cs_sink *s, const struct cs_migrate_ops *ops,
                     char *errstr, size_t errstr_size)
{
        const char *views[CS_VIEWS_MAX];
        int n = cs_views(s->ops->dialect, views, CS_VIEWS_MAX), i, r;

        if ((r = ops->lock(s, "starting views", errstr, errstr_size)) < 0)
                return r;
        for (i = 0; i < n && r == 0; i++)
                r = ops->exec(s, views[i], "creating views", errstr,
                              errstr_size);
        return finish(s, ops, r, "committing views", errstr, errstr_size);
}

int cs_migrate_run(struct cs_sink *s, const struct cs_migrate_ops *ops,
                   char *errstr, size_t errstr_size)
{
        struct cs_migration m[CS_MIGRATIONS_MAX];
        int n = cs_migrations(s->ops->dialect, m, CS_MIGRATIONS_MAX);
        struct first_value latest = {0};
        int i, r;

        if ((r = ops->lock(s, "starting migration", errstr, errstr_size)) < 0)
                return r;
        r = ops->prepare ? ops->prepare(s, errstr, errstr_size)
                         : cs_sink_query(s, "create_migrations_table", NULL, 0,
                                         NULL, NULL, NULL, errstr, errstr_size);
        if ((r = finish(s, ops, r, "committing migration", errstr,
                        errstr_size)) < 0 ||
            (r = cs_sink_query(s, "latest_migration", NULL, 0, keep_first,
                               &latest, NULL, errstr, errstr_size)) < 0)
                return r;
        if (n > 0 && atoi(latest.text) > m[n - 1].version) {
                snprintf(errstr, errstr_size,
                         "%s: schema version %d is newer than this "
                         "callstream knows (%d); upgrade callstream",
                         s->name, atoi(latest.text), m[n - 1].version);
                return -1;
        }
        for (i = 0; i < n; i++)
                if ((r = apply(s, ops, &m[i], errstr, errstr_size)) < 0)
                        return r;
        if (ops->install_views)
                return ops->install_views(s, errstr, errstr_size);
        return run_views(s, ops, errstr, errstr_size);
}
