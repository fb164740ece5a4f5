/* parse.c: validates one call record with yajl's event parser.
 *
 * yajl checks the JSON (RFC 8259 grammar, UTF-8, no trailing data); the
 * callbacks below only pick out the known fields. yajl allocates a handle per
 * document, so its allocations come from an arena that is reset for every
 * message: steady-state parsing does no malloc. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "cs_parse.h"
#include "cs_time.h"

const char *const cs_field_names[CS_F_COUNT] = {
        "crime_id",       "original_crime_type_name",
        "report_date",    "call_date",
        "offense_date",   "call_time",
        "call_date_time", "disposition",
        "address",        "city",
        "state",          "agency_id",
        "address_type",   "common_location",
};

/* What JSON value a known field held. */
enum kind {
        K_ABSENT = 0,
        K_NULL,
        K_STRING,
        K_NUMBER,
        K_BOOL,
        K_NESTED,
};

#define ARENA_SIZE (64 * 1024)

/* An allocation header; heap marks an overflow block from malloc(). */
struct chunk {
        size_t size;
        size_t heap;
};

struct cs_parser {
        /* yajl's arena: reset per message. */
        char *arena;
        size_t arena_used;
        yajl_alloc_funcs afuncs;

        /* Decoded strings that do not lie in the input; sized from the
         * input length, which bounds them, so it never moves mid-parse. */
        char *scratch;
        size_t scratch_cap;
        size_t scratch_used;

        /* Per-message state. */
        yajl_handle h;
        const char *buf;
        size_t len;
        struct cs_call *call;
        int depth;        /* 1 inside the top-level object */
        int key;          /* field of the current depth-1 key, -1 unknown */
        int nested_field; /* field whose nested value is being skipped */
        size_t nested_start;
        unsigned char kind[CS_F_COUNT];
        int not_object;
        size_t end;    /* where the top-level value ended */
        int finishing; /* in yajl_complete_parse(): all input is read */
};

/* The arena allocator handed to yajl. */
static void *arena_malloc(void *ctx, size_t sz)
{
        struct cs_parser *p = ctx;
        size_t need = sizeof(struct chunk) + ((sz + 15) & ~(size_t)15);
        struct chunk *c;

        if (p->arena_used + need <= ARENA_SIZE) {
                c = (struct chunk *)(p->arena + p->arena_used);
                p->arena_used += need;
                c->heap = 0;
        } else {
                c = malloc(sizeof(*c) + sz);
                if (!c)
                        return NULL;
                c->heap = 1;
        }
        c->size = sz;
        return c + 1;
}

static void arena_free(void *ctx, void *ptr)
{
        struct chunk *c;

        (void)ctx;
        if (!ptr)
                return;
        c = (struct chunk *)ptr - 1;
        if (c->heap)
                free(c);
}

static void *arena_realloc(void *ctx, void *ptr, size_t sz)
{
        struct chunk *c;
        void *n;

        if (!ptr)
                return arena_malloc(ctx, sz);
        c = (struct chunk *)ptr - 1;
        if (sz <= c->size)
                return ptr;
        n = arena_malloc(ctx, sz);
        if (!n)
                return NULL;
        memcpy(n, ptr, c->size);
        arena_free(ctx, ptr);
        return n;
}

struct cs_parser *cs_parser_new(void)
{
        struct cs_parser *p = calloc(1, sizeof(*p));

        if (!p)
                return NULL;
        p->arena = malloc(ARENA_SIZE);
        if (!p->arena) {
                free(p);
                return NULL;
        }
        p->afuncs.malloc = arena_malloc;
        p->afuncs.realloc = arena_realloc;
        p->afuncs.free = arena_free;
        p->afuncs.ctx = p;
        return p;
}

void cs_parser_destroy(struct cs_parser *p)
{
        if (!p)
                return;
        free(p->arena);
        free(p->scratch);
        free(p);
}

/* Returns the field named by key, or -1. Lengths first: most differ. */
static int field_of(const unsigned char *key, size_t len)
{
#define L(s) (sizeof(s) - 1)
        static const unsigned char lens[CS_F_COUNT] = {
                L("crime_id"),       L("original_crime_type_name"),
                L("report_date"),    L("call_date"),
                L("offense_date"),   L("call_time"),
                L("call_date_time"), L("disposition"),
                L("address"),        L("city"),
                L("state"),          L("agency_id"),
                L("address_type"),   L("common_location"),
        };
#undef L
        int i;

        for (i = 0; i < CS_F_COUNT; i++)
                if (lens[i] == len && !memcmp(cs_field_names[i], key, len))
                        return i;
        return -1;
}

/* Points the current field at s, copying it into scratch unless it lies in
 * the input buffer (yajl passes unescaped strings and numbers in place). */
static void set_field(struct cs_parser *p, enum kind kind, const char *s,
                      size_t len)
{
        struct cs_str *f = &p->call->field[p->key];

        p->kind[p->key] = (unsigned char)kind;
        if ((uintptr_t)s >= (uintptr_t)p->buf &&
            (uintptr_t)s + len <= (uintptr_t)p->buf + p->len) {
                f->ptr = s;
        } else {
                /* Decoded text is never longer than its JSON source. */
                memcpy(p->scratch + p->scratch_used, s, len);
                f->ptr = p->scratch + p->scratch_used;
                p->scratch_used += len;
        }
        f->len = len;
}

/* Where the token just parsed ends. A number at the very end is only
 * finished by yajl_complete_parse(), whose byte count starts afresh. */
static size_t end_of_token(const struct cs_parser *p)
{
        return p->finishing ? p->len : yajl_get_bytes_consumed(p->h);
}

/* A scalar value: at depth 0 the message is not an object; at depth 1 it
 * belongs to the current key; deeper it is inside a skipped value. */
static int on_scalar(struct cs_parser *p, enum kind kind, const char *s,
                     size_t len)
{
        if (p->depth == 0) {
                /* Parse on: invalid JSON is told apart from a non-object. */
                p->not_object = 1;
                p->end = end_of_token(p);
                return 1;
        }
        if (p->depth == 1 && p->key >= 0) {
                if (kind == K_NULL) {
                        p->kind[p->key] = K_NULL;
                        p->call->field[p->key].ptr = NULL;
                        p->call->field[p->key].len = 0;
                } else {
                        set_field(p, kind, s, len);
                }
        }
        return 1;
}

static int cb_null(void *ctx)
{
        return on_scalar(ctx, K_NULL, NULL, 0);
}

static int cb_boolean(void *ctx, int b)
{
        return on_scalar(ctx, K_BOOL, b ? "true" : "false", b ? 4 : 5);
}

static int cb_number(void *ctx, const char *s, size_t len)
{
        return on_scalar(ctx, K_NUMBER, s, len);
}

static int cb_string(void *ctx, const unsigned char *s, size_t len)
{
        return on_scalar(ctx, K_STRING, (const char *)s, len);
}

static int cb_map_key(void *ctx, const unsigned char *key, size_t len)
{
        struct cs_parser *p = ctx;

        if (p->depth == 1)
                p->key = field_of(key, len);
        return 1;
}

static int on_open(struct cs_parser *p, int is_map)
{
        if (p->depth == 0 && !is_map)
                p->not_object = 1;
        if (p->depth == 1 && p->key >= 0) {
                /* Keep a known field's object or array as its JSON text. */
                p->nested_field = p->key;
                p->nested_start = yajl_get_bytes_consumed(p->h) - 1;
        }
        p->depth++;
        return 1;
}

static int on_close(struct cs_parser *p)
{
        if (--p->depth == 0)
                p->end = end_of_token(p);
        if (p->depth == 1 && p->nested_field >= 0) {
                size_t end = yajl_get_bytes_consumed(p->h);

                p->key = p->nested_field;
                set_field(p, K_NESTED, p->buf + p->nested_start,
                          end - p->nested_start);
                p->nested_field = -1;
        }
        return 1;
}

static int cb_start_map(void *ctx)
{
        return on_open(ctx, 1);
}

static int cb_end_map(void *ctx)
{
        return on_close(ctx);
}

static int cb_start_array(void *ctx)
{
        return on_open(ctx, 0);
}

static int cb_end_array(void *ctx)
{
        return on_close(ctx);
}

static const yajl_callbacks callbacks = {
        .yajl_null = cb_null,
        .yajl_boolean = cb_boolean,
        .yajl_number = cb_number,
        .yajl_string = cb_string,
        .yajl_start_map = cb_start_map,
        .yajl_map_key = cb_map_key,
        .yajl_end_map = cb_end_map,
        .yajl_start_array = cb_start_array,
        .yajl_end_array = cb_end_array,
};

/* Reads 4 hex digits; returns the value or -1. */
static long hex4(const unsigned char *s)
{
        long v = 0;
        int i;

        for (i = 0; i < 4; i++) {
                int c = s[i];

                v <<= 4;
                if (c >= '0' && c <= '9')
                        v |= c - '0';
                else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
                        v |= (c | 0x20) - 'a' + 10;
                else
                        return -1;
        }
        return v;
}

/* Length of the strict UTF-8 sequence at s (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *s, size_t left)
{
        size_t n, i;
        unsigned cp;

        if (s[0] < 0xc2 || s[0] > 0xf4)
                return 0;
        n = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : 2;
        if (left < n)
                return 0;
        cp = s[0] & (0x7f >> n);
        for (i = 1; i < n; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                cp = cp << 6 | (s[i] & 0x3f);
        }
        if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
            (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
                return 0;
        return n;
}

/* What yajl lets through: checks the text is strict UTF-8, that white space
 * is only what RFC 8259 allows, and that \u escapes of surrogates come in
 * pairs. The rest of the grammar is yajl's. Returns 0, or -1 with reason. */
static int check_text(const unsigned char *s, size_t len, char *reason,
                      size_t reason_size)
{
        int in_string = 0;
        size_t i = 0, n;
        long hi, lo;

        while (i < len) {
                unsigned char c = s[i];

                if (c >= 0x80) {
                        n = utf8_len(s + i, len - i);
                        if (!n) {
                                snprintf(reason, reason_size,
                                         "invalid UTF-8 at byte %zu", i);
                                return -1;
                        }
                        i += n;
                } else if (!in_string) {
                        if (c == 0x0b || c == 0x0c) {
                                snprintf(reason, reason_size,
                                         "invalid JSON at byte %zu: white "
                                         "space other than space, tab, CR, LF",
                                         i);
                                return -1;
                        }
                        in_string = c == '"';
                        i++;
                } else if (c == '"') {
                        in_string = 0;
                        i++;
                } else if (c != '\\') {
                        i++;
                } else if (i + 6 > len || s[i + 1] != 'u' ||
                           (hi = hex4(s + i + 2)) < 0xd800 || hi > 0xdfff) {
                        /* Not a surrogate; yajl judges the escape. */
                        i += 2;
                } else if (hi >= 0xdc00 || i + 12 > len || s[i + 6] != '\\' ||
                           s[i + 7] != 'u' || (lo = hex4(s + i + 8)) < 0xdc00 ||
                           lo > 0xdfff) {
                        snprintf(reason, reason_size,
                                 "invalid JSON at byte %zu: unpaired "
                                 "surrogate escape",
                                 i);
                        return -1;
                } else {
                        i += 12;
                }
        }
        return 0;
}

/* Writes "invalid JSON at byte N: <yajl's words>" to reason; at is where
 * the parser stopped. */
static void json_error(struct cs_parser *p, size_t at, char *reason,
                       size_t reason_size)
{
        unsigned char *msg = yajl_get_error(p->h, 0, NULL, 0);
        const char *detail = (const char *)msg;
        size_t n;

        if (detail) {
                if (!strncmp(detail, "lexical error: ", 15))
                        detail += 15;
                else if (!strncmp(detail, "parse error: ", 13))
                        detail += 13;
        }
        n = detail ? strcspn(detail, ".\n") : 0;
        if (n)
                snprintf(reason, reason_size, "invalid JSON at byte %zu: %.*s",
                         at, (int)n, detail);
        else
                snprintf(reason, reason_size, "invalid JSON at byte %zu", at);
        if (msg)
                yajl_free_error(p->h, msg);
}

static int all_digits(const struct cs_str *s)
{
        size_t i;

        for (i = 0; i < s->len; i++)
                if (s->ptr[i] < '0' || s->ptr[i] > '9')
                        return 0;
        return s->len > 0;
}

/* Checks the required fields once the JSON itself is known to be valid. */
static int validate(struct cs_parser *p, struct cs_call *call, char *reason,
                    size_t reason_size)
{
        const struct cs_str *id = &call->field[CS_F_CRIME_ID];
        const struct cs_str *dt = &call->field[CS_F_CALL_DATE_TIME];
        int i;

        switch (p->kind[CS_F_CRIME_ID]) {
        case K_ABSENT:
                snprintf(reason, reason_size, "missing crime_id");
                return -1;
        case K_STRING:
                if (id->len == 0) {
                        snprintf(reason, reason_size,
                                 "invalid crime_id: empty string");
                        return -1;
                }
                break;
        case K_NUMBER:
                /* JSON grammar already excludes leading zeros. */
                if (!all_digits(id)) {
                        snprintf(reason, reason_size,
                                 "invalid crime_id: not a non-negative "
                                 "integer");
                        return -1;
                }
                break;
        default:
                snprintf(reason, reason_size,
                         "invalid crime_id: not a string or integer");
                return -1;
        }

        if (p->kind[CS_F_ORIGINAL_CRIME_TYPE_NAME] == K_ABSENT) {
                snprintf(reason, reason_size,
                         "missing original_crime_type_name");
                return -1;
        }
        if (p->kind[CS_F_ORIGINAL_CRIME_TYPE_NAME] != K_STRING ||
            call->field[CS_F_ORIGINAL_CRIME_TYPE_NAME].len == 0) {
                snprintf(reason, reason_size,
                         "invalid original_crime_type_name");
                return -1;
        }

        if (p->kind[CS_F_CALL_DATE_TIME] == K_ABSENT) {
                snprintf(reason, reason_size, "missing call_date_time");
                return -1;
        }
        if (p->kind[CS_F_CALL_DATE_TIME] != K_STRING ||
            cs_time_parse(dt->ptr, dt->len, &call->ts, &call->ts_usec) < 0) {
                snprintf(reason, reason_size, "invalid call_date_time");
                return -1;
        }

        for (i = 0; i < CS_F_COUNT; i++) {
                if (p->kind[i] == K_STRING && call->field[i].len &&
                    memchr(call->field[i].ptr, '\0', call->field[i].len)) {
                        snprintf(reason, reason_size,
                                 "invalid %s: contains \\u0000",
                                 cs_field_names[i]);
                        return -1;
                }
        }
        return 0;
}

int cs_parse_call(struct cs_parser *p, const char *buf, size_t len,
                  struct cs_call *call, char *reason, size_t reason_size)
{
        yajl_status st;
        size_t i, at;
        int r = -1;

        memset(call, 0, sizeof(*call));
        memset(p->kind, 0, sizeof(p->kind));
        for (i = 0; i < len; i++)
                if (buf[i] != ' ' && buf[i] != '\t' && buf[i] != '\n' &&
                    buf[i] != '\r')
                        break;
        if (i == len) {
                snprintf(reason, reason_size, "empty message");
                return -1;
        }
        if (check_text((const unsigned char *)buf, len, reason, reason_size))
                return -1;
        if (len + 16 > p->scratch_cap) {
                char *s = realloc(p->scratch, len + 16);

                if (!s) {
                        snprintf(reason, reason_size, "out of memory");
                        return -1;
                }
                p->scratch = s;
                p->scratch_cap = len + 16;
        }
        p->scratch_used = 0;
        p->arena_used = 0;
        p->buf = buf;
        p->len = len;
        p->call = call;
        p->depth = 0;
        p->key = -1;
        p->nested_field = -1;
        p->not_object = 0;
        p->end = len;
        p->finishing = 0;

        p->h = yajl_alloc(&callbacks, &p->afuncs, p);
        if (!p->h) {
                snprintf(reason, reason_size, "out of memory");
                return -1;
        }
        /* check_text() did the UTF-8, so yajl need not. */
        yajl_config(p->h, yajl_dont_validate_strings, 1);
        st = yajl_parse(p->h, (const unsigned char *)buf, len);
        at = yajl_get_bytes_consumed(p->h);
        if (st == yajl_status_ok) {
                /* What is left to judge is at the end of the input. */
                p->finishing = 1;
                st = yajl_complete_parse(p->h);
                at = len;
        }

        /* yajl lets an unfinished token after the value pass (a lone '"'
         * at the end): only white space may follow. */
        for (i = p->end; st == yajl_status_ok && i < len; i++)
                if (buf[i] != ' ' && buf[i] != '\t' && buf[i] != '\n' &&
                    buf[i] != '\r')
                        break;
        if (st == yajl_status_ok && i < len)
                snprintf(reason, reason_size,
                         "invalid JSON at byte %zu: trailing garbage", i);
        else if (st != yajl_status_ok)
                json_error(p, at, reason, reason_size);
        else if (p->not_object)
                snprintf(reason, reason_size, "not a JSON object");
        else
                r = validate(p, call, reason, reason_size);
        yajl_free(p->h);
        p->h = NULL;
        if (r < 0)
                memset(call, 0, sizeof(*call));
        return r;
}
