/* rebuild.c: window counts recomputed from stored calls (cs_rebuild.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cs_arena.h"
#include "cs_count.h"
#include "cs_rebuild.h"
#include "cs_sink.h"

#define MAX_SPECS 64

struct rebuild {
        const struct cs_rebuild_conf *conf;
        const struct cs_window_spec *spec; /* being rebuilt */
        struct cs_window_agg *agg;
        struct cs_arena *arena; /* strings that outlive a scanned row */
        struct cs_stored_late *late;
        size_t nlate, late_cap;
        int64_t starts[CS_WINDOW_MAX_PER_EVENT];
        size_t calls; /* counted into at least one window in range */
};

/* Copies s into the arena, NUL-terminated. */
static int keep(struct cs_arena *a, struct cs_str s, struct cs_str *out)
{
        char *p = cs_arena_alloc(a, s.len + 1);

        if (!p)
                return -1;
        memcpy(p, s.ptr, s.len);
        p[s.len] = '\0';
        out->ptr = p;
        out->len = s.len;
        return 0;
}

/* Counts one stored call into the spec's windows in range, as the ingest
 * did (cs_count_call()). */
static int on_call(void *opaque, const struct cs_stored_call *c)
{
        struct rebuild *rb = opaque;
        struct cs_count_call cc = {
                .crime_type = c->crime_type,
                .disposition = c->disposition,
                .ts = c->ts.sec,
                .has_mark = c->has_mark,
                .mark = c->mark,
                .drop = c->late_drop,
        };
        struct cs_count_result res;
        int dropped, counted;

        if (cs_count_call(rb->agg, 0, rb->spec, &cc, 1, rb->conf->from,
                          rb->conf->to, rb->starts, &res) < 0)
                return -1;
        dropped = res.dropped;
        counted = res.counted > 0;
        /* The scan reaches a window size past --to: not every call it
         * returns falls in a window in range. */
        if (counted)
                rb->calls++;
        /* Late records belong to calls in range, as clear_windows has it. */
        if (dropped && c->ts.sec >= rb->conf->from &&
            c->ts.sec < rb->conf->to) {
                struct cs_stored_late *l;

                if (CS_RESERVE(rb->late, rb->nlate, rb->late_cap) < 0)
                        return -1;
                l = &rb->late[rb->nlate];
                if (keep(rb->arena, c->crime_id, &l->crime_id) < 0 ||
                    keep(rb->arena, c->topic, &l->topic) < 0)
                        return -1;
                l->ts = c->ts;
                l->mark = c->mark;
                l->windows_dropped = dropped;
                l->partition = c->partition;
                l->offset = c->offset;
                rb->nlate++;
        }
        return 0;
}

/* Recomputes one spec inside the open transaction. */
static int rebuild_spec(struct rebuild *rb, struct cs_sink *sink,
                        const struct cs_window_spec *spec, char *errstr,
                        size_t errstr_size)
{
        const struct cs_sink_ops *ops = sink->ops;
        const struct cs_window_count *rows;
        int64_t hi;
        size_t n;
        int r;

        rb->spec = spec;
        rb->nlate = 0;
        rb->calls = 0;
        cs_window_agg_reset(rb->agg);
        cs_arena_reset(rb->arena);
        /* The last window in range ends size after its start. */
        hi = rb->conf->to >= CS_TS_END - spec->size ? CS_TS_END
                                                    : rb->conf->to + spec->size;
        if ((r = ops->clear_windows(sink, spec->name, rb->conf->from,
                                    rb->conf->to, errstr, errstr_size)) < 0 ||
            (r = ops->scan_calls(sink, rb->conf->from, hi, on_call, rb, errstr,
                                 errstr_size)) < 0)
                return r;
        rows = cs_window_agg_rows(rb->agg, &n);
        if ((r = ops->write_window_counts(sink, rows, n, spec, errstr,
                                          errstr_size)) < 0 ||
            (r = ops->write_stored_late(sink, spec->name, rb->late, rb->nlate,
                                        errstr, errstr_size)) < 0)
                return r;
        cs_log(CS_LOG_INFO,
               "rebuilt %s: %zu window counts from %zu calls, %zu late "
               "records",
               spec->name, n, rb->calls, rb->nlate);
        return 0;
}

int cs_rebuild_run(const struct cs_rebuild_conf *conf)
{
        struct cs_window_spec specs[MAX_SPECS];
        char names[MAX_SPECS][32];
        struct rebuild rb = {.conf = conf};
        struct cs_sink *sink = NULL;
        char errstr[512];
        int i, n = conf->nspecs, r = -1;

        rb.agg = cs_window_agg_new();
        rb.arena = cs_arena_new();
        if (!rb.agg || !rb.arena) {
                snprintf(errstr, sizeof(errstr), "out of memory");
                goto fail;
        }
        cs_window_agg_set_arena(rb.agg, rb.arena);
        if (cs_sink_open(conf->db, conf->schema, &sink, errstr,
                         sizeof(errstr)) < 0 ||
            cs_sink_migrate(sink, errstr, sizeof(errstr)) < 0)
                goto fail;
        if (n) {
                memcpy(specs, conf->specs, (size_t)n * sizeof(*specs));
        } else if (cs_sink_window_specs(sink, names, MAX_SPECS, &n, errstr,
                                        sizeof(errstr)) < 0) {
                goto fail;
        }
        for (i = 0; i < n && !conf->nspecs; i++) {
                if (cs_window_spec_parse(names[i], &specs[i], errstr,
                                         sizeof(errstr)) < 0)
                        goto fail;
        }
        if (n == 0) {
                cs_log(CS_LOG_INFO,
                       "%s: no window counts to rebuild; give "
                       "--window",
                       sink->name);
                r = 0;
                goto fail;
        }
        if (cs_sink_rebuild_begin(sink, errstr, sizeof(errstr)) < 0)
                goto fail;
        for (i = 0; i < n; i++)
                if (rebuild_spec(&rb, sink, &specs[i], errstr, sizeof(errstr)) <
                    0) {
                        cs_sink_rollback(sink);
                        goto fail;
                }
        if (cs_sink_commit(sink, errstr, sizeof(errstr)) < 0) {
                cs_sink_rollback(sink);
                goto fail;
        }
        r = 0;
fail:
        if (r < 0)
                cs_log(CS_LOG_ERROR, "rebuild: %s", errstr);
        cs_sink_close(sink);
        cs_window_agg_destroy(rb.agg);
        cs_arena_destroy(rb.arena);
        free(rb.late);
        return r;
}
