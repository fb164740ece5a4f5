/* window.c: window specs ("1h", "1h/15m") and the windows an event falls in. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cs_window.h"

static const struct unit {
        char c;
        int64_t seconds;
} units[] = {{'d', 86400}, {'h', 3600}, {'m', 60}, {'s', 1}};

/* Parses "<integer><unit>" from s[0..len) into seconds in [min, max]; a
 * bare "0" is zero seconds. */
static int parse_duration_range(const char *s, size_t len, int64_t min,
                                int64_t max, int64_t *out, char *errstr,
                                size_t errstr_size)
{
        int64_t v = 0;
        size_t i, u;

        for (i = 0; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
                v = v * 10 + (s[i] - '0');
                if (v > max) {
                        snprintf(errstr, errstr_size,
                                 "duration '%.*s' is too long", (int)len, s);
                        return -1;
                }
        }
        if (len == 1 && s[0] == '0' && min == 0) {
                *out = 0;
                return 0;
        }
        if (i == 0 || i + 1 != len) {
                snprintf(errstr, errstr_size,
                         "'%.*s' is not a number followed by s, m, h or d",
                         (int)len, s);
                return -1;
        }
        for (u = 0; u < CS_ARRAY_SIZE(units); u++) {
                if (units[u].c != s[i])
                        continue;
                if (v > max / units[u].seconds) {
                        snprintf(errstr, errstr_size,
                                 "duration '%.*s' is too long", (int)len, s);
                        return -1;
                }
                /* min is in seconds, like max: 30m passes a minimum of 1m. */
                if (v * units[u].seconds < min) {
                        snprintf(errstr, errstr_size,
                                 min == 1 ? "duration '%.*s' must be positive"
                                          : "duration '%.*s' is too short",
                                 (int)len, s);
                        return -1;
                }
                *out = v * units[u].seconds;
                return 0;
        }
        snprintf(errstr, errstr_size,
                 "unknown unit '%c' in '%.*s' (use s, m, h or d)", s[i],
                 (int)len, s);
        return -1;
}

/* A window size or slide: positive, at most 366 days. */
static int parse_duration(const char *s, size_t len, int64_t *out, char *errstr,
                          size_t errstr_size)
{
        if (parse_duration_range(s, len, 1, CS_WINDOW_MAX_SECONDS, out, errstr,
                                 errstr_size) == 0)
                return 0;
        if (strstr(errstr, "too long"))
                snprintf(errstr, errstr_size,
                         "duration '%.*s' longer than 366 days", (int)len, s);
        return -1;
}

int cs_duration_parse(const char *s, int64_t min, int64_t max, int64_t *out,
                      char *errstr, size_t errstr_size)
{
        return parse_duration_range(s, strlen(s), min, max, out, errstr,
                                    errstr_size);
}

/* Writes seconds in the largest unit that divides it exactly. */
static int format_duration(int64_t seconds, char *out, size_t size)
{
        size_t u;

        for (u = 0; u < CS_ARRAY_SIZE(units); u++)
                if (seconds % units[u].seconds == 0)
                        break;
        return snprintf(out, size, "%lld%c",
                        (long long)(seconds / units[u].seconds), units[u].c);
}

int cs_window_spec_parse(const char *spec, struct cs_window_spec *out,
                         char *errstr, size_t errstr_size)
{
        const char *slash = strchr(spec, '/');
        size_t size_len = slash ? (size_t)(slash - spec) : strlen(spec);
        int n;

        if (parse_duration(spec, size_len, &out->size, errstr, errstr_size))
                return -1;
        out->slide = out->size;
        if (slash && parse_duration(slash + 1, strlen(slash + 1), &out->slide,
                                    errstr, errstr_size))
                return -1;
        if (out->slide > out->size) {
                snprintf(errstr, errstr_size,
                         "slide larger than size in '%s' (windows would leave "
                         "gaps)",
                         spec);
                return -1;
        }
        if ((out->size + out->slide - 1) / out->slide >
            CS_WINDOW_MAX_PER_EVENT) {
                snprintf(errstr, errstr_size,
                         "'%s' puts each call in more than %d windows", spec,
                         CS_WINDOW_MAX_PER_EVENT);
                return -1;
        }
        n = format_duration(out->size, out->name, sizeof(out->name));
        if (out->slide != out->size) {
                out->name[n++] = '/';
                format_duration(out->slide, out->name + n,
                                sizeof(out->name) - (size_t)n);
        }
        return 0;
}

/* floor(a / b) for b > 0. */
static int64_t floor_div(int64_t a, int64_t b)
{
        int64_t q = a / b;

        return (a % b != 0 && a < 0) ? q - 1 : q;
}

int cs_window_assign(const struct cs_window_spec *spec, int64_t t,
                     int64_t *starts)
{
        /* The last window to contain t starts at the multiple of the slide
         * at or before t; earlier ones follow while start + size > t. */
        int64_t last = floor_div(t, spec->slide) * spec->slide;
        int64_t first = last;
        int n = 0;

        while (first - spec->slide + spec->size > t)
                first -= spec->slide;
        for (int64_t s = first; s <= last; s += spec->slide)
                starts[n++] = s;
        return n;
}

struct cs_window_agg {
        struct cs_window_count *rows; /* dense, first-seen order */
        size_t nrows;
        size_t rows_cap;
        uint32_t *index; /* open addressing: row number + 1, 0 empty */
        size_t mask;
        struct cs_arena *arena; /* copies strings of new rows, if set */
};

void cs_window_agg_set_arena(struct cs_window_agg *agg, struct cs_arena *arena)
{
        agg->arena = arena;
}

struct cs_window_agg *cs_window_agg_new(void)
{
        struct cs_window_agg *agg = calloc(1, sizeof(*agg));

        if (!agg)
                return NULL;
        agg->mask = 1023;
        agg->index = calloc(agg->mask + 1, sizeof(*agg->index));
        if (!agg->index) {
                free(agg);
                return NULL;
        }
        return agg;
}

void cs_window_agg_destroy(struct cs_window_agg *agg)
{
        if (!agg)
                return;
        free(agg->rows);
        free(agg->index);
        free(agg);
}

void cs_window_agg_reset(struct cs_window_agg *agg)
{
        if (agg->nrows)
                memset(agg->index, 0, (agg->mask + 1) * sizeof(*agg->index));
        agg->nrows = 0;
}

static int str_eq(struct cs_str a, struct cs_str b)
{
        if (!a.ptr || !b.ptr)
                return a.ptr == b.ptr;
        return a.len == b.len && !memcmp(a.ptr, b.ptr, a.len);
}

static int agg_grow(struct cs_window_agg *agg)
{
        size_t cap = (agg->mask + 1) * 2, i, j;
        uint32_t *index = calloc(cap, sizeof(*index));

        if (!index)
                return -1;
        for (i = 0; i < agg->nrows; i++) {
                for (j = agg->rows[i].hash & (cap - 1); index[j];
                     j = (j + 1) & (cap - 1))
                        ;
                index[j] = (uint32_t)i + 1;
        }
        free(agg->index);
        agg->index = index;
        agg->mask = cap - 1;
        return 0;
}

int cs_window_agg_add(struct cs_window_agg *agg, int spec, int64_t start,
                      struct cs_str crime_type, struct cs_str disposition,
                      int64_t delta, int64_t late)
{
        uint64_t h = cs_hash(&start, sizeof(start), (uint64_t)spec);
        struct cs_window_count *r;
        size_t i;

        h = cs_hash(crime_type.ptr, crime_type.len, h);
        h = cs_hash(disposition.ptr, disposition.len,
                    h ^ (disposition.ptr ? 1 : 0));
        for (i = h & agg->mask; agg->index[i]; i = (i + 1) & agg->mask) {
                r = &agg->rows[agg->index[i] - 1];
                if (r->hash == h && r->spec == spec && r->start == start &&
                    str_eq(r->crime_type, crime_type) &&
                    str_eq(r->disposition, disposition)) {
                        r->calls += delta;
                        r->late_calls += late;
                        return 0;
                }
        }
        if (CS_RESERVE(agg->rows, agg->nrows, agg->rows_cap) < 0)
                return -1;
        r = &agg->rows[agg->nrows++];
        r->spec = spec;
        r->start = start;
        r->crime_type = crime_type;
        r->disposition = disposition;
        if (agg->arena &&
            (cs_arena_copy(agg->arena, crime_type, &r->crime_type) < 0 ||
             cs_arena_copy(agg->arena, disposition, &r->disposition) < 0)) {
                agg->nrows--;
                return -1;
        }
        r->calls = delta;
        r->late_calls = late;
        r->hash = h;
        agg->index[i] = (uint32_t)agg->nrows;
        /* Keep the index at most half full. */
        if (agg->nrows * 2 > agg->mask + 1)
                return agg_grow(agg);
        return 0;
}

const struct cs_window_count *
cs_window_agg_rows(const struct cs_window_agg *agg, size_t *n)
{
        *n = agg->nrows;
        return agg->rows;
}
