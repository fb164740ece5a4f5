/* progress.c: the progress reporter of `callstream ingest` (cs_progress.h),
 * Spark's StreamingQueryProgress as JSON lines, or a line redrawn on a
 * terminal. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <yajl/yajl_gen.h>

#include "cs_progress.h"
#include "cs_time.h"

/* A terminal line is redrawn at most this often. */
#define HUMAN_MIN_MS 250

/* One partition in the report being gathered. */
struct part {
        int32_t partition;
        int64_t start, end, latest; /* -1: unknown */
        int has_mark;
        struct cs_time mark;
};

struct cs_progress {
        struct cs_progress_conf conf;
        char *topic, *source;
        FILE *out;
        int own_out; /* out is our file */
        char id[37], run_id[37];
        uint64_t batches;         /* committed in this run */
        uint64_t total_rows;      /* messages in this run */
        int64_t last_report_wall; /* wall ms of the last report's end, or 0 */
        int64_t last_report_mono;
        int drawn; /* a human line is on the terminal */

        /* The report being gathered: batches since the last one. */
        uint64_t nbatches;
        uint64_t rows, calls, duplicates, rejected, late, updated;
        double poll_s, parse_s, write_s, commit_s;
        int64_t opened_wall, committed_wall;
        int has_event;
        int64_t event_min, event_max;
        struct part *parts; /* sorted by partition */
        size_t nparts, parts_cap;
};

/* Formats 16 bytes as a UUID of version ver (RFC 9562). */
static void format_uuid(unsigned char b[16], int ver, char out[37])
{
        int i, n = 0;

        b[6] = (unsigned char)((b[6] & 0x0f) | (ver << 4));
        b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
        for (i = 0; i < 16; i++) {
                if (i == 4 || i == 6 || i == 8 || i == 10)
                        out[n++] = '-';
                n += snprintf(out + n, 3, "%02x", b[i]);
        }
        out[36] = '\0';
}

/* The database's name without a password: a URI's "user:password@" keeps
 * the user, and any "password=" value (conninfo or URI parameter) goes.
 * The caller frees the copy. */
static char *without_password(const char *db)
{
        char *s = strdup(db), *p, *at, *slash, *colon;
        size_t n;

        if (!s)
                return NULL;
        if ((p = strstr(s, "://")) && !strncmp(s, "postgres", 8)) {
                p += 3;
                slash = p + strcspn(p, "/?");
                at = memchr(p, '@', (size_t)(slash - p));
                colon = memchr(p, ':', at ? (size_t)(at - p) : 0);
                if (at && colon)
                        memmove(colon, at, strlen(at) + 1);
        }
        for (p = s; (p = strstr(p, "password=")); p += 9) {
                char *v = p + 9, *end;

                if (*v == '\'') {
                        for (end = v + 1; *end && *end != '\''; end++)
                                if (*end == '\\' && end[1])
                                        end++;
                        if (*end)
                                end++;
                } else {
                        end = v + strcspn(v, " &");
                }
                n = strlen(end);
                memmove(v, end, n + 1);
        }
        return s;
}

/* A SQLite database by its real path (its folder's, with its name), so
 * that calls.db and ./calls.db are one query; anything else as given. The
 * caller frees it. */
static char *db_identity(const char *db)
{
        const char *path = db, *base;
        char *dir, *real, *out;

        if (strstr(db, "://") || strchr(db, '='))
                return without_password(db);
        if (!strncmp(path, "sqlite:", 7))
                path += 7;
        base = strrchr(path, '/');
        dir = base ? strndup(path, (size_t)(base - path) + (base == path))
                   : strdup(".");
        base = base ? base + 1 : path;
        real = dir ? realpath(dir, NULL) : NULL;
        if (real && asprintf(&out, "%s/%s", real, base) < 0)
                out = NULL;
        else if (!real)
                out = strdup(db);
        free(dir);
        free(real);
        return out;
}

/* id: a name-based UUID of the query's identity (two FNV-1a hashes). */
static int make_id(struct cs_progress *p, const struct cs_progress_conf *conf)
{
        const char *parts[4];
        unsigned char b[16];
        uint64_t h1 = 0, h2 = 0x9e3779b97f4a7c15ULL;
        char *db = db_identity(conf->db ? conf->db : "");
        int i;

        if (!db)
                return -1;
        parts[0] = db;
        parts[1] = conf->schema ? conf->schema : "";
        parts[2] = p->topic;
        parts[3] = conf->group ? conf->group : "";
        for (i = 0; i < 4; i++) {
                /* The NUL too: "ab"+"c" is not "a"+"bc". */
                h1 = cs_hash(parts[i], strlen(parts[i]) + 1, h1);
                h2 = cs_hash(parts[i], strlen(parts[i]) + 1, h2);
        }
        free(db);
        for (i = 0; i < 8; i++) {
                b[i] = (unsigned char)(h1 >> (8 * i));
                b[8 + i] = (unsigned char)(h2 >> (8 * i));
        }
        format_uuid(b, 8, p->id);
        return 0;
}

static void make_run_id(struct cs_progress *p)
{
        unsigned char b[16];
        size_t got = 0;

        while (got < sizeof(b)) {
                ssize_t n = getrandom(b + got, sizeof(b) - got, 0);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                got += (size_t)n;
        }
        if (got < sizeof(b)) {
                /* No entropy source: the clock still tells runs apart. */
                struct timespec ts;
                uint64_t h;

                clock_gettime(CLOCK_REALTIME, &ts);
                h = cs_hash(&ts, sizeof(ts), (uint64_t)cs_now_ms());
                memcpy(b, &h, 8);
                h = cs_hash(&h, sizeof(h), 1);
                memcpy(b + 8, &h, 8);
        }
        format_uuid(b, 4, p->run_id);
}

struct cs_progress *cs_progress_new(const struct cs_progress_conf *conf,
                                    char *errstr, size_t errstr_size)
{
        struct cs_progress *p = calloc(1, sizeof(*p));

        if (!p || !(p->topic = strdup(conf->topic ? conf->topic : "")) ||
            !(p->source = strdup(conf->source ? conf->source : "kafka")))
                goto oom;
        p->conf = *conf;
        p->conf.topic = p->topic;
        p->conf.source = p->source;
        /* The rest is borrowed no longer than this call. */
        p->conf.file = p->conf.db = p->conf.schema = p->conf.group = NULL;
        if (make_id(p, conf) < 0)
                goto oom;
        make_run_id(p);
        p->out = stderr;
        if (conf->mode != CS_PROGRESS_OFF && conf->file) {
                if (!(p->out = fopen(conf->file, "a"))) {
                        snprintf(errstr, errstr_size, "--progress-file %s: %s",
                                 conf->file, strerror(errno));
                        cs_progress_destroy(p);
                        return NULL;
                }
                p->own_out = 1;
        }
        return p;
oom:
        snprintf(errstr, errstr_size, "out of memory");
        cs_progress_destroy(p);
        return NULL;
}

const char *cs_progress_id(const struct cs_progress *p)
{
        return p->id;
}

const char *cs_progress_run_id(const struct cs_progress *p)
{
        return p->run_id;
}

/* Returns the gathered report's entry for partition, added when new (-1
 * offsets), or NULL when out of memory. */
static struct part *part_of(struct cs_progress *p, int32_t partition)
{
        size_t i;

        for (i = 0; i < p->nparts && p->parts[i].partition < partition; i++)
                ;
        if (i < p->nparts && p->parts[i].partition == partition)
                return &p->parts[i];
        if (p->nparts == p->parts_cap) {
                size_t cap = p->parts_cap ? p->parts_cap * 2 : 8;
                struct part *np = realloc(p->parts, cap * sizeof(*np));

                if (!np)
                        return NULL;
                p->parts = np;
                p->parts_cap = cap;
        }
        memmove(&p->parts[i + 1], &p->parts[i],
                (p->nparts - i) * sizeof(*p->parts));
        p->nparts++;
        p->parts[i] = (struct part){partition, -1, -1, -1, 0, {0, 0}};
        return &p->parts[i];
}

static void gen_str(yajl_gen g, const char *s)
{
        yajl_gen_string(g, (const unsigned char *)s, strlen(s));
}

static void gen_int(yajl_gen g, const char *key, long long v)
{
        gen_str(g, key);
        yajl_gen_integer(g, v);
}

/* A rate or duration with a fixed number of decimals. */
static void gen_num(yajl_gen g, const char *key, double v, int decimals)
{
        char buf[64];
        int n = snprintf(buf, sizeof(buf), "%.*f", decimals, v);

        gen_str(g, key);
        yajl_gen_number(g, buf, (size_t)n);
}

/* An event time in the database's text form (naive local time). */
static void gen_time(yajl_gen g, const char *key, int64_t sec, int32_t usec)
{
        char buf[CS_TS_BUFSZ];

        gen_str(g, key);
        if (sec < CS_TS_MIN || sec >= CS_TS_END) {
                yajl_gen_null(g);
                return;
        }
        cs_time_format(sec, usec, buf);
        gen_str(g, buf);
}

/* {"topic": {"0": offset, ...}} of one field of the partitions; which: 0
 * start, 1 end, 2 latest, 3 lag. */
static void gen_offsets(struct cs_progress *p, yajl_gen g, const char *key,
                        int which)
{
        size_t i;

        gen_str(g, key);
        yajl_gen_map_open(g);
        gen_str(g, p->topic);
        yajl_gen_map_open(g);
        for (i = 0; i < p->nparts; i++) {
                const struct part *pt = &p->parts[i];
                char name[16];
                int64_t v =
                        which == 0   ? pt->start
                        : which == 1 ? pt->end
                        : which == 2 ? pt->latest
                        : pt->latest >= 0 && pt->end >= 0
                                ? (pt->latest > pt->end ? pt->latest - pt->end
                                                        : 0)
                                : -1;

                if (v < 0)
                        continue;
                snprintf(name, sizeof(name), "%d", (int)pt->partition);
                gen_int(g, name, v);
        }
        yajl_gen_map_close(g);
        yajl_gen_map_close(g);
}

/* The global watermark: the lowest of the partitions' (as Spark's
 * default "min" policy). Returns 0 when no partition has one. */
static int global_mark(const struct cs_progress *p, struct cs_time *out)
{
        int found = 0;
        size_t i;

        for (i = 0; i < p->nparts; i++) {
                if (!p->parts[i].has_mark)
                        continue;
                if (!found || !cs_time_ge(p->parts[i].mark, *out))
                        *out = p->parts[i].mark;
                found = 1;
        }
        return found;
}

static int64_t lag_of(const struct cs_progress *p)
{
        int64_t lag = 0;
        size_t i;

        for (i = 0; i < p->nparts; i++)
                if (p->parts[i].latest > p->parts[i].end &&
                    p->parts[i].end >= 0)
                        lag += p->parts[i].latest - p->parts[i].end;
        return lag;
}

static void report_json(struct cs_progress *p, double span_s, double since_s)
{
        yajl_gen g = yajl_gen_alloc(NULL);
        const unsigned char *buf;
        struct cs_time mark;
        char stamp[96], desc[300];
        time_t secs;
        struct tm tm;
        size_t len;

        if (!g)
                return;
        secs = (time_t)(p->opened_wall / 1000);
        gmtime_r(&secs, &tm);
        snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, (int)(p->opened_wall % 1000));
        yajl_gen_map_open(g);
        gen_str(g, "id");
        gen_str(g, p->id);
        gen_str(g, "runId");
        gen_str(g, p->run_id);
        gen_int(g, "batchId", (long long)(p->batches - 1));
        gen_int(g, "numBatches", (long long)p->nbatches);
        gen_str(g, "timestamp");
        gen_str(g, stamp);
        gen_int(g, "numInputRows", (long long)p->rows);
        gen_num(g, "inputRowsPerSecond", (double)p->rows / since_s, 1);
        gen_num(g, "processedRowsPerSecond", (double)p->rows / span_s, 1);
        gen_str(g, "durationMs");
        yajl_gen_map_open(g);
        gen_num(g, "poll", p->poll_s * 1000.0, 3);
        gen_num(g, "parse", p->parse_s * 1000.0, 3);
        gen_num(g, "write", p->write_s * 1000.0, 3);
        gen_num(g, "commit", p->commit_s * 1000.0, 3);
        gen_num(g, "total", span_s * 1000.0, 3);
        yajl_gen_map_close(g);
        gen_str(g, "eventTime");
        yajl_gen_map_open(g);
        if (p->has_event) {
                gen_time(g, "min", p->event_min, 0);
                gen_time(g, "max", p->event_max, 0);
        }
        if (global_mark(p, &mark))
                gen_time(g, "watermark", mark.sec, mark.usec);
        yajl_gen_map_close(g);
        gen_str(g, "sources");
        yajl_gen_array_open(g);
        yajl_gen_map_open(g);
        snprintf(desc, sizeof(desc), "%s[%s]",
                 strcmp(p->source, "file") ? "KafkaSource" : "FileSource",
                 p->topic);
        gen_str(g, "description");
        gen_str(g, desc);
        gen_offsets(p, g, "startOffset", 0);
        gen_offsets(p, g, "endOffset", 1);
        gen_offsets(p, g, "latestOffset", 2);
        gen_offsets(p, g, "lag", 3);
        gen_int(g, "numInputRows", (long long)p->rows);
        yajl_gen_map_close(g);
        yajl_gen_array_close(g);
        gen_str(g, "callstream");
        yajl_gen_map_open(g);
        gen_int(g, "calls", (long long)p->calls);
        gen_int(g, "duplicates", (long long)p->duplicates);
        gen_int(g, "rejected", (long long)p->rejected);
        gen_int(g, "late", (long long)p->late);
        gen_int(g, "updated", (long long)p->updated);
        yajl_gen_map_close(g);
        yajl_gen_map_close(g);
        if (yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok) {
                fwrite(buf, 1, len, p->out);
                fputc('\n', p->out);
                fflush(p->out);
        }
        yajl_gen_free(g);
}

static void report_human(struct cs_progress *p, double since_s)
{
        struct cs_time mark;
        char wm[CS_TS_BUFSZ] = "-";

        if (global_mark(p, &mark) && mark.sec >= CS_TS_MIN &&
            mark.sec < CS_TS_END)
                cs_time_format(mark.sec, 0, wm);
        /* \r and erase-line: the line is redrawn where it stands. */
        fprintf(p->out,
                "\r\033[K%s: %llu messages, %.0f/s, lag %lld, watermark %s, "
                "%llu batches",
                p->topic, (unsigned long long)p->total_rows,
                (double)p->rows / since_s, (long long)lag_of(p), wm,
                (unsigned long long)p->batches);
        fflush(p->out);
        p->drawn = 1;
        __atomic_store_n(&cs_log_line_drawn, 1, __ATOMIC_RELAXED);
}

/* Writes the gathered report and starts the next. */
static void report(struct cs_progress *p)
{
        double span_s, since_s;
        size_t i;

        if (!p->nbatches)
                return;
        span_s = (double)(p->committed_wall - p->opened_wall) / 1000.0;
        since_s = p->last_report_wall
                          ? (double)(p->committed_wall - p->last_report_wall) /
                                    1000.0
                          : span_s;
        /* Rates of rows done within the clock's millisecond. */
        if (span_s < 0.001)
                span_s = 0.001;
        if (since_s < 0.001)
                since_s = 0.001;
        if (p->conf.mode == CS_PROGRESS_JSON)
                report_json(p, span_s, since_s);
        else if (p->conf.mode == CS_PROGRESS_HUMAN)
                report_human(p, since_s);
        p->last_report_wall = p->committed_wall;
        p->last_report_mono = cs_now_ms();
        p->nbatches = 0;
        p->rows = p->calls = p->duplicates = p->rejected = p->late =
                p->updated = 0;
        p->poll_s = p->parse_s = p->write_s = p->commit_s = 0;
        p->has_event = 0;
        /* Partitions stay, their next start where this report ended. */
        for (i = 0; i < p->nparts; i++)
                p->parts[i].start = -1;
}

void cs_progress_batch(struct cs_progress *p, const struct cs_stats_batch *sb)
{
        const struct cs_batch *b = sb->batch;
        int64_t interval;
        size_t i;

        if (!p || p->conf.mode == CS_PROGRESS_OFF)
                return;
        if (!p->nbatches)
                p->opened_wall = sb->opened_wall_ms ? sb->opened_wall_ms
                                                    : sb->committed_wall_ms;
        p->batches++;
        p->nbatches++;
        p->total_rows += b->nmessages;
        p->rows += b->nmessages;
        p->calls += sb->calls;
        p->duplicates += sb->duplicates;
        p->rejected += b->nrejects;
        p->late += sb->late;
        p->updated += sb->updated;
        p->poll_s += sb->poll_s;
        p->parse_s += sb->parse_s;
        p->write_s += sb->write_s;
        p->commit_s += sb->commit_s;
        p->committed_wall = sb->committed_wall_ms;
        if (sb->has_event) {
                if (!p->has_event || sb->event_min < p->event_min)
                        p->event_min = sb->event_min;
                if (!p->has_event || sb->event_max > p->event_max)
                        p->event_max = sb->event_max;
                p->has_event = 1;
        }
        for (i = 0; i < sb->nstarts; i++) {
                struct part *pt = part_of(p, sb->starts[i].partition);

                if (pt && pt->start < 0)
                        pt->start = sb->starts[i].offset;
        }
        for (i = 0; i < b->noffsets; i++) {
                const struct cs_partition_offset *o = &b->offsets[i];
                struct part *pt = part_of(p, o->partition);

                if (!pt)
                        continue;
                if (pt->start < 0)
                        pt->start = pt->end; /* its first message unknown */
                pt->end = o->next_offset;
                if (o->high_watermark >= 0)
                        pt->latest = o->high_watermark;
                if (o->watermark.valid) {
                        pt->has_mark = 1;
                        pt->mark = o->watermark.mark;
                }
        }
        interval = p->conf.interval_ms;
        if (p->conf.mode == CS_PROGRESS_HUMAN && interval < HUMAN_MIN_MS)
                interval = HUMAN_MIN_MS;
        if (!p->last_report_mono ||
            cs_now_ms() - p->last_report_mono >= interval)
                report(p);
}

void cs_progress_destroy(struct cs_progress *p)
{
        if (!p)
                return;
        if (p->out && p->conf.mode != CS_PROGRESS_OFF)
                report(p);
        /* The last line stays, ended; unless a log line erased it. */
        if (p->drawn &&
            __atomic_exchange_n(&cs_log_line_drawn, 0, __ATOMIC_RELAXED)) {
                fputc('\n', p->out);
                fflush(p->out);
        }
        if (p->own_out)
                fclose(p->out);
        free(p->parts);
        free(p->topic);
        free(p->source);
        free(p);
}
