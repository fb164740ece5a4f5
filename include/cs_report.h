/* cs_report.h: reports on what the ingest stored: one of the public views,
 * or the standard report (calls per crime type and per disposition, and
 * where the ingest stands), read from SQLite or PostgreSQL and rendered as
 * CSV, JSON, NDJSON, Markdown or one self-contained HTML page.
 *
 * The report opens its own read-only connection for each rendering
 * (SQLite: a read-only handle, one statement at a time, so no lock outlives
 * a query; PostgreSQL: one REPEATABLE READ READ ONLY transaction, so all
 * the report's tables agree) and closes it before returning. Front-ends
 * (`callstream report`, an HTTP page) fill a struct cs_report_opts and call
 * cs_report_render() with any FILE, a memory stream included. */
#ifndef CS_REPORT_H
#define CS_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "cs_common.h"

enum cs_report_format {
        CS_REPORT_CSV = 0,
        CS_REPORT_JSON,
        CS_REPORT_NDJSON,
        CS_REPORT_MARKDOWN,
        CS_REPORT_HTML,
};

#define CS_REPORT_MAX_WINDOWS 16

/* What to report; zero-initialise, then set what applies. Strings are
 * borrowed for the length of a cs_report_render() call. */
struct cs_report_opts {
        const char *db;     /* as --db of every command */
        const char *schema; /* PostgreSQL schema, or NULL */
        const char *view;   /* one of cs_report_views(), NULL: standard */
        /* normalised window specs ("1h", "1h/15m"); none: every spec */
        const char *windows[CS_REPORT_MAX_WINDOWS];
        int nwindows;
        int has_from, has_to;
        int64_t from, to; /* window_start in [from, to), seconds */
        int64_t last;     /* > 0: windows ending after newest watermark -
                             last seconds */
        int final_only;   /* only windows the watermark has passed */
        int top;          /* > 0: per window the top N crime types */
        enum cs_report_format format;
};

/* What each option needs of a view (cs_report_view_takes()). */
enum {
        CS_REPORT_TAKES_WINDOWS = 0x1, /* --window, --from, --to, --last */
        CS_REPORT_TAKES_FINAL = 0x2,   /* --final-only */
        CS_REPORT_TAKES_TOP = 0x4,     /* --top */
};

/* The views --view accepts, comma-separated ("call_counts, ..."): static
 * text. */
const char *cs_report_views(void);

/* The CS_REPORT_TAKES_... flags of view name, or -1 when it is not one of
 * cs_report_views(). The standard report (NULL) takes everything. */
int cs_report_view_takes(const char *name);

/* Reads a --format name into *out. Returns 0, or -1 when unknown. */
int cs_report_format_parse(const char *name,
                           enum cs_report_format *out) CS_MUSTCHECK;

/* Renders the report o describes into out (borrowed, not closed; written
 * only once the queries succeeded, so a failure leaves out untouched).
 * Returns 0, -1 with a one-line reason in errstr (naming the database,
 * never a password), or -2 (CS_RETRY) when the database is out of
 * reach for now: a later try may succeed. */
int cs_report_render(const struct cs_report_opts *o, FILE *out, char *errstr,
                     size_t errstr_size) CS_MUSTCHECK;

#endif
