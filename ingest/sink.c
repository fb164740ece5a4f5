/* sink.c: picks the backend for a --db value. */
#include <stdio.h>
#include <string.h>

#include "cs_sink.h"

int cs_sink_open(const char *db, struct cs_sink **out, char *errstr,
                 size_t errstr_size)
{
        *out = NULL;
        if (!strncmp(db, "postgresql://", 13) ||
            !strncmp(db, "postgres://", 11)) {
                snprintf(errstr, errstr_size,
                         "PostgreSQL databases are not supported by this "
                         "build yet; use a SQLite path");
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

void cs_sink_close(struct cs_sink *s)
{
        if (s)
                s->ops->close(s);
}
