/* migrate.c: lists the embedded migrations of one SQL dialect. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cs_migrate.h"
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
