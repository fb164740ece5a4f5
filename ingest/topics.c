/* topics.c: replay identities, maintained window specs and stored positions
 * (cs_topics.h), as named statements run through the sink's query(). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cs_time.h"
#include "cs_topics.h"

/* A query's first row, copied: up to 4 columns of up to 4 KiB each. */
struct first_row {
        int found;
        int null[4];
        char v[4][4096];
};

static int keep_first(void *opaque, int n, const char *const *values)
{
        struct first_row *row = opaque;
        int i;

        if (row->found++)
                return 0;
        for (i = 0; i < n && i < 4; i++) {
                row->null[i] = !values[i];
                snprintf(row->v[i], sizeof(row->v[i]), "%s",
                         values[i] ? values[i] : "");
        }
        return 0;
}

static int first_row(struct cs_sink *s, const char *name,
                     const char *const *params, int n, struct first_row *row,
                     char *errstr, size_t errstr_size)
{
        memset(row, 0, sizeof(*row));
        return cs_sink_query(s, name, params, n, keep_first, row, NULL, errstr,
                             errstr_size);
}

static void fingerprint(const char *head, size_t n, char out[17])
{
        snprintf(out, 17, "%016" PRIx64, cs_hash(head, n, 0));
}

int cs_topics_check_replay(struct cs_sink *s, const char *topic,
                           const char *head, size_t nhead, char *errstr,
                           size_t errstr_size)
{
        const char *params[1] = {topic};
        struct first_row src, offs;
        char fp[17];
        long long nbytes;
        int r;

        /* Offsets first: a replay commits its fingerprint with its first
         * offsets, so an ingest of the same input committing between the
         * two reads is seen with its fingerprint. */
        if ((r = first_row(s, "topic_offsets_count", params, 1, &offs, errstr,
                           errstr_size)) < 0 ||
            (r = first_row(s, "replay_source", params, 1, &src, errstr,
                           errstr_size)) < 0)
                return r;
        if (!src.found) {
                if (offs.found && atoll(offs.v[0]) > 0) {
                        snprintf(errstr, errstr_size,
                                 "topic '%s' has stored offsets but no "
                                 "replay fingerprint (a Kafka topic, or a "
                                 "replay stored by an older callstream): give "
                                 "this replay another --topic, or run "
                                 "'callstream offsets forget --topic %s' "
                                 "(with this --db) to replay it from its "
                                 "start",
                                 topic, topic);
                        return CS_REFUSED;
                }
                return 0;
        }
        /* The stored head must be a prefix of this one: the same input,
         * perhaps grown since (an appended NDJSON file resumes). */
        nbytes = atoll(src.v[2]);
        if (nbytes >= 0 && (size_t)nbytes <= nhead) {
                fingerprint(head, (size_t)nbytes, fp);
                if (!strcmp(fp, src.v[1]))
                        return 0;
        }
        snprintf(errstr, errstr_size,
                 "topic '%s' was replayed from other input (%s, whose first "
                 "%lld bytes differ from this input's): give this replay "
                 "another --topic, or run 'callstream offsets forget --topic "
                 "%s' (with this --db) to replay it from its start",
                 topic, src.v[0], nbytes, topic);
        return CS_REFUSED;
}

int cs_topics_store_replay(struct cs_sink *s, const char *topic,
                           const char *path, const char *head, size_t nhead,
                           int at_end, char *errstr, size_t errstr_size)
{
        char fp[17], nbytes[24];
        const char *params[5] = {topic, path, fp, nbytes, at_end ? "1" : "0"};

        fingerprint(head, nhead, fp);
        snprintf(nbytes, sizeof(nbytes), "%zu", nhead);
        return cs_sink_query(s, "store_replay_source", params, 5, NULL, NULL,
                             NULL, errstr, errstr_size);
}

int cs_topics_check_kafka(struct cs_sink *s, const char *topic, char *errstr,
                          size_t errstr_size)
{
        const char *params[1] = {topic};
        struct first_row src;
        int r;

        if ((r = first_row(s, "replay_source", params, 1, &src, errstr,
                           errstr_size)) < 0)
                return r;
        if (!src.found)
                return 0;
        snprintf(errstr, errstr_size,
                 "topic '%s' holds a file replay (%s) whose offsets are line "
                 "numbers: consume Kafka into another database, or run "
                 "'callstream offsets forget --topic %s' (with this --db) "
                 "first",
                 topic, src.v[0], topic);
        return CS_REFUSED;
}

/* The registered window specs: name and maintained flag. */
struct spec_rows {
        char (*name)[CS_WINDOW_NAME_MAX];
        int *maintained;
        size_t n, cap;
};

static int keep_spec(void *opaque, int n, const char *const *values)
{
        struct spec_rows *rows = opaque;

        if (n < 2 || !values[0])
                return 0;
        if (rows->n == rows->cap) {
                size_t cap = rows->cap ? 2 * rows->cap : 16;
                void *p = realloc(rows->name, cap * sizeof(*rows->name));

                if (!p)
                        return -1;
                rows->name = p;
                p = realloc(rows->maintained, cap * sizeof(*rows->maintained));
                if (!p)
                        return -1;
                rows->maintained = p;
                rows->cap = cap;
        }
        snprintf(rows->name[rows->n], sizeof(rows->name[0]), "%s", values[0]);
        rows->maintained[rows->n++] = values[1] && atoi(values[1]) != 0;
        return 0;
}

/* Registers spec as maintained, warning when its counts miss calls. */
static int maintain(struct cs_sink *s, const char *spec, int known,
                    int was_maintained, int have_calls, char *errstr,
                    size_t errstr_size)
{
        const char *params[1] = {spec};
        struct first_row counts;
        int r;

        if (!known && have_calls) {
                if ((r = first_row(s, "spec_has_counts", params, 1, &counts,
                                   errstr, errstr_size)) < 0)
                        return r;
                known = counts.found && atoi(counts.v[0]);
                if (!known)
                        cs_log(CS_LOG_WARN,
                               "window spec %s is new to this database: it "
                               "counts only the calls ingested from now on; "
                               "'callstream rebuild --window %s' (with this "
                               "--db) counts the calls stored before",
                               spec, spec);
        } else if (known && !was_maintained) {
                cs_log(CS_LOG_WARN,
                       "window spec %s was not maintained for a while: the "
                       "calls ingested meanwhile are missing from it; "
                       "'callstream rebuild --window %s' (with this --db) "
                       "counts them",
                       spec, spec);
        }
        return cs_sink_query(s, "spec_maintain", params, 1, NULL, NULL, NULL,
                             errstr, errstr_size);
}

int cs_topics_track_specs(struct cs_sink *s, const struct cs_window_spec *specs,
                          int n, char *errstr, size_t errstr_size)
{
        struct spec_rows rows = {0};
        struct first_row calls;
        size_t i;
        int j, r;

        if ((r = cs_sink_begin(s, errstr, errstr_size)) < 0)
                return r;
        if ((r = cs_sink_query(s, "window_spec_rows", NULL, 0, keep_spec, &rows,
                               NULL, errstr, errstr_size)) < 0 ||
            (r = first_row(s, "calls_exist", NULL, 0, &calls, errstr,
                           errstr_size)) < 0)
                goto fail;
        for (j = 0; j < n; j++) {
                int known = 0, was = 0;

                for (i = 0; i < rows.n; i++)
                        if (!strcmp(rows.name[i], specs[j].name)) {
                                known = 1;
                                was = rows.maintained[i];
                        }
                if ((r = maintain(s, specs[j].name, known, was,
                                  calls.found && atoi(calls.v[0]), errstr,
                                  errstr_size)) < 0)
                        goto fail;
        }
        for (i = 0; i < rows.n; i++) {
                const char *params[1] = {rows.name[i]};

                if (!rows.maintained[i])
                        continue;
                for (j = 0; j < n && strcmp(rows.name[i], specs[j].name); j++)
                        ;
                if (j < n)
                        continue;
                cs_log(CS_LOG_WARN,
                       "window spec %s is no longer maintained: this ingest "
                       "does not count it (window_specs.maintained is off "
                       "and its windows past today's watermark are never "
                       "final); add --window %s to keep it",
                       rows.name[i], rows.name[i]);
                if ((r = cs_sink_query(s, "spec_retire", params, 1, NULL, NULL,
                                       NULL, errstr, errstr_size)) < 0)
                        goto fail;
        }
        free(rows.name);
        free(rows.maintained);
        return cs_sink_commit(s, errstr, errstr_size);
fail:
        free(rows.name);
        free(rows.maintained);
        cs_sink_rollback(s);
        return r;
}

struct list_ctx {
        cs_topics_row_cb *cb;
        void *opaque;
};

static int list_row(void *opaque, int n, const char *const *v)
{
        struct list_ctx *ctx = opaque;
        struct cs_topic_row row;

        if (n < 10)
                return -1;
        row.topic = v[0];
        row.partition = v[1];
        row.next_offset = v[2];
        row.watermark = v[3];
        row.lag = v[4];
        row.path = v[5];
        row.fingerprint = v[6];
        row.fingerprint_bytes = v[7];
        row.at_end = v[8];
        row.updated_at = v[9];
        return ctx->cb(ctx->opaque, &row);
}

int cs_topics_list(struct cs_sink *s, cs_topics_row_cb *cb, void *opaque,
                   char *errstr, size_t errstr_size)
{
        struct list_ctx ctx = {cb, opaque};

        return cs_sink_query(s, "offsets_list", NULL, 0, list_row, &ctx, NULL,
                             errstr, errstr_size);
}

/* Partitions and where --to-timestamp moves them (NULL: nowhere). */
struct targets {
        struct {
                char partition[16];
                char offset[24];
                int found;
        } v[1024];
        int n;
};

static int keep_target(void *opaque, int n, const char *const *values)
{
        struct targets *t = opaque;

        if (n < 2 || !values[0] || t->n == (int)CS_ARRAY_SIZE(t->v))
                return 0;
        snprintf(t->v[t->n].partition, sizeof(t->v[0].partition), "%s",
                 values[0]);
        t->v[t->n].found = values[1] != NULL;
        snprintf(t->v[t->n].offset, sizeof(t->v[0].offset), "%s",
                 values[1] ? values[1] : "");
        t->n++;
        return 0;
}

static void nothing_stored(const char *topic, int32_t partition, char *errstr,
                           size_t errstr_size)
{
        if (partition < 0)
                snprintf(errstr, errstr_size,
                         "no offsets stored for topic '%s' (see 'callstream "
                         "offsets list')",
                         topic);
        else
                snprintf(errstr, errstr_size,
                         "no offset stored for topic '%s' partition %d (see "
                         "'callstream offsets list')",
                         topic, (int)partition);
}

int cs_topics_reset(struct cs_sink *s, const char *topic, int32_t partition,
                    enum cs_topics_seek how, int64_t offset, int64_t ts,
                    void (*report)(const char *partition, const char *to),
                    long *moved, char *errstr, size_t errstr_size)
{
        struct targets *t = calloc(1, sizeof(*t));
        char part[16], when[CS_TS_BUFSZ], to[24];
        const char *params[3] = {topic, NULL, NULL};
        long changed;
        int i, r;

        *moved = 0;
        if (!t) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        if (partition >= 0) {
                snprintf(part, sizeof(part), "%d", (int)partition);
                params[1] = part;
        }
        cs_time_format(ts, 0, when);
        params[2] = when;
        if ((r = cs_sink_begin(s, errstr, errstr_size)) < 0) {
                free(t);
                return r;
        }
        /* Every stored partition asked for, with its target. */
        if ((r = cs_sink_query(s, "offsets_at_time", params, 3, keep_target, t,
                               NULL, errstr, errstr_size)) < 0)
                goto fail;
        if (t->n == 0) {
                nothing_stored(topic, partition, errstr, errstr_size);
                r = CS_REFUSED;
                goto fail;
        }
        snprintf(to, sizeof(to), "%" PRId64,
                 how == CS_SEEK_OFFSET ? offset : 0);
        for (i = 0; i < t->n; i++) {
                const char *p[3] = {topic, t->v[i].partition,
                                    how == CS_SEEK_TIME ? t->v[i].offset : to};

                if (how == CS_SEEK_TIME && !t->v[i].found) {
                        if (report)
                                report(t->v[i].partition, NULL);
                        continue;
                }
                if ((r = cs_sink_query(s, "offsets_reset", p, 3, NULL, NULL,
                                       &changed, errstr, errstr_size)) < 0)
                        goto fail;
                *moved += changed;
                if (report)
                        report(t->v[i].partition, p[2]);
        }
        free(t);
        return cs_sink_commit(s, errstr, errstr_size);
fail:
        free(t);
        cs_sink_rollback(s);
        return r;
}

int cs_topics_forget(struct cs_sink *s, const char *topic, long *partitions,
                     char *errstr, size_t errstr_size)
{
        const char *params[1] = {topic};
        long sources = 0;
        int r;

        *partitions = 0;
        if ((r = cs_sink_begin(s, errstr, errstr_size)) < 0)
                return r;
        if ((r = cs_sink_query(s, "offsets_forget", params, 1, NULL, NULL,
                               partitions, errstr, errstr_size)) < 0 ||
            (r = cs_sink_query(s, "replay_source_forget", params, 1, NULL, NULL,
                               &sources, errstr, errstr_size)) < 0)
                goto fail;
        if (*partitions == 0 && sources == 0) {
                nothing_stored(topic, -1, errstr, errstr_size);
                r = CS_REFUSED;
                goto fail;
        }
        return cs_sink_commit(s, errstr, errstr_size);
fail:
        cs_sink_rollback(s);
        return r;
}
