/* sink.c: picks the backend for a --db value. */
#include <stdio.h>
#include <string.h>

#include "cs_sink.h"

int cs_sink_is_postgresql(const char *db)
{
        return !strncmp(db, "postgresql://", 13) ||
               !strncmp(db, "postgres://", 11) ||
               (strncmp(db, "sqlite:", 7) && strchr(db, '='));
}

int cs_sink_open(const char *db, const char *schema, struct cs_sink **out,
                 char *errstr, size_t errstr_size)
{
        *out = NULL;
        if (cs_sink_is_postgresql(db))
                return cs_sink_pg_open(db, schema, out, errstr, errstr_size);
        if (schema) {
                snprintf(errstr, errstr_size,
                         "--schema is for PostgreSQL databases only");
                return -1;
        }
        if (!strncmp(db, "sqlite:", 7))
                db += 7;
        if (!*db) {
                snprintf(errstr, errstr_size, "empty database path");
                return -1;
        }
        return cs_sink_sqlite_open(db, out, errstr, errstr_size);
}

int cs_sink_require_existing(const char *db, char *errstr, size_t errstr_size)
{
        if (cs_sink_is_postgresql(db))
                return 0;
        if (!strncmp(db, "sqlite:", 7))
                db += 7;
        return cs_sink_sqlite_check(db, 0, errstr, errstr_size);
}

int cs_sink_set_durability(struct cs_sink *s, int durability, char *errstr,
                           size_t errstr_size)
{
        if (!s->ops->set_durability)
                return 0;
        return s->ops->set_durability(s, durability, errstr, errstr_size);
}

void cs_sink_close(struct cs_sink *s)
{
        if (s)
                s->ops->close(s);
}
