/* sink.c: the registry of database kinds a --db value names, opening a sink
 * through it, and the wrappers of the operations a sink may leave NULL. */
#include <stdio.h>
#include <string.h>

#include "cs_sink.h"

static int pg_claims(const char *db)
{
        /* key=value conninfo: "host=... dbname=..." */
        return strchr(db, '=') != NULL;
}

static int sqlite_claims(const char *db)
{
        (void)db;
        return 1; /* any other value is a path */
}

/* "sqlite:PATH" names a path that looks like something else. */
static const char *sqlite_path(const char *db)
{
        return strncmp(db, "sqlite:", 7) ? db : db + 7;
}

static int sqlite_open(const char *db, const char *schema, struct cs_sink **out,
                       char *errstr, size_t errstr_size)
{
        if (schema) {
                snprintf(errstr, errstr_size,
                         "--schema is for PostgreSQL databases only");
                return -1;
        }
        db = sqlite_path(db);
        if (!*db) {
                snprintf(errstr, errstr_size, "empty database path");
                return -1;
        }
        return cs_sink_sqlite_open(db, out, errstr, errstr_size);
}

static int sqlite_require_existing(const char *db, char *errstr,
                                   size_t errstr_size)
{
        return cs_sink_sqlite_check(sqlite_path(db), 0, errstr, errstr_size);
}

static const char *const pg_schemes[] = {"postgresql://", "postgres://", NULL};
static const char *const sqlite_schemes[] = {"sqlite:", NULL};

static const struct cs_sink_type pg_type = {
        .name = "postgresql",
        .schemes = pg_schemes,
        .claims = pg_claims,
        .open = cs_sink_pg_open,
};

static const struct cs_sink_type sqlite_type = {
        .name = "sqlite",
        .schemes = sqlite_schemes,
        .claims = sqlite_claims,
        .open = sqlite_open,
        .require_existing = sqlite_require_existing,
};

/* Built in, in the order their claims() are asked: SQLite takes any value
 * no other kind claims, so it comes last. */
static const struct cs_sink_type *const builtin[] = {&pg_type, &sqlite_type};
#define NBUILTIN (sizeof(builtin) / sizeof(builtin[0]))

static const struct cs_sink_type *registered[CS_SINK_TYPES_MAX];
static size_t nregistered;

int cs_sink_register(const struct cs_sink_type *type)
{
        if (nregistered == CS_SINK_TYPES_MAX)
                return -1;
        registered[nregistered++] = type;
        return 0;
}

/* The i-th type to ask: the registered ones first, newest first. */
static const struct cs_sink_type *type_at(size_t i)
{
        if (i < nregistered)
                return registered[nregistered - 1 - i];
        i -= nregistered;
        return i < NBUILTIN ? builtin[i] : NULL;
}

const struct cs_sink_type *cs_sink_type_of(const char *db)
{
        const struct cs_sink_type *t;
        size_t i;

        /* A scheme decides first: "sqlite:a=b" is a path, not conninfo. */
        for (i = 0; (t = type_at(i)) != NULL; i++) {
                const char *const *scheme;

                for (scheme = t->schemes; scheme && *scheme; scheme++)
                        if (!strncmp(db, *scheme, strlen(*scheme)))
                                return t;
        }
        for (i = 0; (t = type_at(i)) != NULL; i++)
                if (t->claims && t->claims(db))
                        return t;
        return &sqlite_type;
}

int cs_sink_is_postgresql(const char *db)
{
        return cs_sink_type_of(db) == &pg_type;
}

/* The first required operation ops lacks, or NULL. */
static const char *missing_op(const struct cs_sink_ops *o)
{
#define REQUIRE(op)                                                            \
        if (!o->op)                                                            \
                return #op;
        REQUIRE(migrate)
        REQUIRE(load_offsets)
        REQUIRE(begin)
        REQUIRE(write_calls)
        REQUIRE(write_window_counts)
        REQUIRE(write_rejects)
        REQUIRE(write_late_records)
        REQUIRE(store_offsets)
        REQUIRE(commit)
        REQUIRE(rollback)
        REQUIRE(reconnect)
        REQUIRE(close)
        REQUIRE(query)
        REQUIRE(write_gaps)
        REQUIRE(store_high_watermarks)
#undef REQUIRE
        return NULL;
}

int cs_sink_open(const char *db, const char *schema, struct cs_sink **out,
                 char *errstr, size_t errstr_size)
{
        const struct cs_sink_type *t = cs_sink_type_of(db);
        const char *op;
        int r;

        *out = NULL;
        if ((r = t->open(db, schema, out, errstr, errstr_size)) < 0)
                return r;
        /* A backend without an operation the ingest needs is a bug in
         * it: say so here rather than crash on a NULL later. */
        if ((op = missing_op((*out)->ops)) != NULL) {
                snprintf(errstr, errstr_size,
                         "%s: the %s backend lacks the operation %s",
                         (*out)->name, t->name, op);
                cs_sink_close(*out);
                *out = NULL;
                return -1;
        }
        return 0;
}

int cs_sink_require_existing(const char *db, char *errstr, size_t errstr_size)
{
        const struct cs_sink_type *t = cs_sink_type_of(db);

        return t->require_existing
                       ? t->require_existing(db, errstr, errstr_size)
                       : 0;
}

int cs_sink_set_durability(struct cs_sink *s, int durability, char *errstr,
                           size_t errstr_size)
{
        if (!s->ops->set_durability)
                return 0;
        return s->ops->set_durability(s, durability, errstr, errstr_size);
}

int cs_sink_claim(struct cs_sink *s, char *errstr, size_t errstr_size)
{
        return s->ops->claim ? s->ops->claim(s, errstr, errstr_size) : 0;
}

/* What an optional operation left NULL answers. */
static int unsupported(const struct cs_sink *s, const char *what, char *errstr,
                       size_t errstr_size)
{
        snprintf(errstr, errstr_size, "%s: this database does not support %s",
                 s->name, what);
        return -1;
}

int cs_sink_retain(struct cs_sink *s, int64_t retention, int limit,
                   long *deleted, char *errstr, size_t errstr_size)
{
        *deleted = 0;
        if (!s->ops->retain)
                return unsupported(s, "--retention", errstr, errstr_size);
        return s->ops->retain(s, retention, limit, deleted, errstr,
                              errstr_size);
}

int cs_sink_rebuild_begin(struct cs_sink *s, char *errstr, size_t errstr_size)
{
        if (!s->ops->rebuild_begin)
                return unsupported(s, "rebuild", errstr, errstr_size);
        return s->ops->rebuild_begin(s, errstr, errstr_size);
}

int cs_sink_scan_calls(struct cs_sink *s, int64_t lo, int64_t hi,
                       cs_sink_call_cb *cb, void *opaque, char *errstr,
                       size_t errstr_size)
{
        if (!s->ops->scan_calls)
                return unsupported(s, "rebuild", errstr, errstr_size);
        return s->ops->scan_calls(s, lo, hi, cb, opaque, errstr, errstr_size);
}

int cs_sink_clear_windows(struct cs_sink *s, const char *spec, int64_t from,
                          int64_t to, char *errstr, size_t errstr_size)
{
        if (!s->ops->clear_windows)
                return unsupported(s, "rebuild", errstr, errstr_size);
        return s->ops->clear_windows(s, spec, from, to, errstr, errstr_size);
}

int cs_sink_write_stored_late(struct cs_sink *s, const char *spec,
                              const struct cs_stored_late *recs, size_t n,
                              char *errstr, size_t errstr_size)
{
        if (!s->ops->write_stored_late)
                return unsupported(s, "rebuild", errstr, errstr_size);
        return s->ops->write_stored_late(s, spec, recs, n, errstr, errstr_size);
}

int cs_sink_window_specs(struct cs_sink *s, char (*names)[32], int max, int *n,
                         char *errstr, size_t errstr_size)
{
        *n = 0;
        if (!s->ops->window_specs)
                return unsupported(s, "rebuild", errstr, errstr_size);
        return s->ops->window_specs(s, names, max, n, errstr, errstr_size);
}

void cs_sink_close(struct cs_sink *s)
{
        if (s)
                s->ops->close(s);
}
