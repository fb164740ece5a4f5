/* parse.c: validates one call record: a flat reader for the common shape
 * (at the end of this file), yajl's event parser for everything else.
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

        /* Messages the flat reader decided and those it left to yajl. */
        uint64_t n_flat;
        uint64_t n_yajl;
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

/* Returns the field named by key, or -1: by length first, then by
 * comparisons of a constant size, which compile to a few loads (this runs
 * for every member of every message). */
static int field_of(const unsigned char *key, size_t len)
{
#define IS(name, f)                                                            \
        do {                                                                   \
                if (!memcmp(key, name, sizeof(name) - 1))                      \
                        return f;                                              \
        } while (0)
        switch (len) {
        case 4:
                IS("city", CS_F_CITY);
                break;
        case 5:
                IS("state", CS_F_STATE);
                break;
        case 7:
                IS("address", CS_F_ADDRESS);
                break;
        case 8:
                IS("crime_id", CS_F_CRIME_ID);
                break;
        case 9:
                IS("call_date", CS_F_CALL_DATE);
                IS("call_time", CS_F_CALL_TIME);
                IS("agency_id", CS_F_AGENCY_ID);
                break;
        case 11:
                IS("report_date", CS_F_REPORT_DATE);
                IS("disposition", CS_F_DISPOSITION);
                break;
        case 12:
                IS("offense_date", CS_F_OFFENSE_DATE);
                IS("address_type", CS_F_ADDRESS_TYPE);
                break;
        case 14:
                IS("call_date_time", CS_F_CALL_DATE_TIME);
                break;
        case 15:
                IS("common_location", CS_F_COMMON_LOCATION);
                break;
        case 24:
                IS("original_crime_type_name", CS_F_ORIGINAL_CRIME_TYPE_NAME);
                break;
        }
        return -1;
#undef IS
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

int cs_parse_utf8_valid(const void *buf, size_t len)
{
        const unsigned char *s = buf;
        size_t i = 0, n;

        while (i < len) {
                if (s[i] < 0x80) {
                        i++;
                        continue;
                }
                if (!(n = utf8_len(s + i, len - i)))
                        return 0;
                i += n;
        }
        return 1;
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

/* Checks the required fields once the JSON itself is known to be valid.
 * nul_free says no string can hold U+0000 (the flat reader refuses both
 * raw control characters and \u escapes), which spares the scan for it. */
static int validate_kinds(const unsigned char *kind, struct cs_call *call,
                          int nul_free, char *reason, size_t reason_size)
{
        const struct cs_str *id = &call->field[CS_F_CRIME_ID];
        const struct cs_str *dt = &call->field[CS_F_CALL_DATE_TIME];
        int i;

        switch (kind[CS_F_CRIME_ID]) {
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

        if (kind[CS_F_ORIGINAL_CRIME_TYPE_NAME] == K_ABSENT) {
                snprintf(reason, reason_size,
                         "missing original_crime_type_name");
                return -1;
        }
        if (kind[CS_F_ORIGINAL_CRIME_TYPE_NAME] != K_STRING ||
            call->field[CS_F_ORIGINAL_CRIME_TYPE_NAME].len == 0) {
                snprintf(reason, reason_size,
                         "invalid original_crime_type_name");
                return -1;
        }

        if (kind[CS_F_CALL_DATE_TIME] == K_ABSENT) {
                snprintf(reason, reason_size, "missing call_date_time");
                return -1;
        }
        if (kind[CS_F_CALL_DATE_TIME] != K_STRING ||
            cs_time_parse(dt->ptr, dt->len, &call->ts, &call->ts_usec) < 0) {
                snprintf(reason, reason_size, "invalid call_date_time");
                return -1;
        }

        for (i = 0; i < CS_F_COUNT && !nul_free; i++) {
                if (kind[i] == K_STRING && call->field[i].len &&
                    memchr(call->field[i].ptr, '\0', call->field[i].len)) {
                        snprintf(reason, reason_size,
                                 "invalid %s: contains \\u0000",
                                 cs_field_names[i]);
                        return -1;
                }
        }
        return 0;
}

/* The kinds are the same values as enum cs_value_kind in cs_parse.h. */
_Static_assert((int)K_ABSENT == (int)CS_V_ABSENT &&
                       (int)K_NULL == (int)CS_V_NULL &&
                       (int)K_STRING == (int)CS_V_STRING &&
                       (int)K_NUMBER == (int)CS_V_NUMBER,
               "enum kind and enum cs_value_kind agree");

static int validate(struct cs_parser *p, struct cs_call *call, int nul_free,
                    char *reason, size_t reason_size)
{
        return validate_kinds(p->kind, call, nul_free, reason, reason_size);
}

int cs_parse_validate(const unsigned char kind[CS_F_COUNT],
                      struct cs_call *call, int nul_free, char *reason,
                      size_t reason_size)
{
        return validate_kinds(kind, call, nul_free, reason, reason_size);
}

int cs_parse_call_yajl(struct cs_parser *p, const char *buf, size_t len,
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
                r = validate(p, call, 0, reason, reason_size);
        yajl_free(p->h);
        p->h = NULL;
        if (r < 0)
                memset(call, 0, sizeof(*call));
        return r;
}

/*
 * The flat reader: the fast path for what real calls are, one JSON object
 * whose members are strings, numbers, true, false or null. It reads such a
 * message in one pass without yajl and fills the call as the callbacks
 * above would; it never rejects: whatever it does not know for sure is
 * valid JSON of that shape (nesting, \u escapes, escapes in keys, control
 * characters, invalid UTF-8, white space other than space, tab, CR and LF,
 * trailing bytes, any syntax error) goes to cs_parse_call_yajl(), which
 * then gives the reason. tests/test_parse_diff.c and tests/fuzz/ check that
 * both paths give the same result for every input.
 */

#define ONES ((uint64_t)0x0101010101010101ULL)
#define HIGH ((uint64_t)0x8080808080808080ULL)

/* Non-zero when one of the 8 bytes of x is a byte a plain string run
 * stops at: '"', '\\', a control character (< 0x20) or a byte >= 0x80. A
 * subtraction borrows only from a byte that is itself one of these, so
 * there are no false alarms on plain text. */
static inline uint64_t special8(uint64_t x)
{
        return ((x - ONES * 0x20) | ((x ^ (ONES * '"')) - ONES) |
                ((x ^ (ONES * '\\')) - ONES) | x) &
               HIGH;
}

/* The same for one byte. */
static inline int special1(unsigned char c)
{
        return c == '"' || c == '\\' || c < 0x20 || c >= 0x80;
}

static inline int is_ws(unsigned char c)
{
        return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static inline size_t skip_ws(const unsigned char *s, size_t i, size_t len)
{
        while (i < len && s[i] <= ' ' && is_ws(s[i]))
                i++;
        return i;
}

/* The escapes the flat reader decodes itself (all but \u). */
static inline int simple_escape(unsigned char c)
{
        return c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' ||
               c == 'n' || c == 'r' || c == 't';
}

/* Scans the string whose opening quote is at s[i - 1]. Returns the index of
 * the closing quote, or 0 when the string is not one the flat reader takes
 * (never a valid answer: a closing quote cannot be at 0). *esc is set when
 * it holds a simple escape (\" \\ \/ \b \f \n \r \t); \u is refused. */
static size_t scan_string(const unsigned char *s, size_t i, size_t len,
                          int *esc)
{
        uint64_t w, m;
        size_t n;

        for (;;) {
                if (i + 8 <= len) {
                        memcpy(&w, s + i, 8);
                        m = special8(w);
                        if (!m) {
                                i += 8;
                                continue;
                        }
#if defined(__GNUC__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
                        /* The lowest flagged byte is a true one. */
                        i += (size_t)__builtin_ctzll(m) >> 3;
#else
                        while (!special1(s[i]))
                                i++;
#endif
                } else {
                        while (i < len && !special1(s[i]))
                                i++;
                        if (i >= len)
                                return 0;
                }
                if (s[i] == '"')
                        return i;
                if (s[i] == '\\') {
                        if (i + 1 >= len || !simple_escape(s[i + 1]))
                                return 0;
                        *esc = 1;
                        i += 2;
                } else if (s[i] >= 0x80) {
                        n = utf8_len(s + i, len - i);
                        if (!n)
                                return 0;
                        i += n;
                } else {
                        return 0; /* a control character */
                }
        }
}

/* Decodes the simple escapes of s[0..len) into out, as yajl does. Returns
 * the decoded length. */
static size_t unescape(const unsigned char *s, size_t len, char *out)
{
        size_t i, n = 0;

        for (i = 0; i < len; i++) {
                if (s[i] != '\\') {
                        out[n++] = (char)s[i];
                        continue;
                }
                switch (s[++i]) {
                case 'b':
                        out[n++] = '\b';
                        break;
                case 'f':
                        out[n++] = '\f';
                        break;
                case 'n':
                        out[n++] = '\n';
                        break;
                case 'r':
                        out[n++] = '\r';
                        break;
                case 't':
                        out[n++] = '\t';
                        break;
                default: /* '"', '\\', '/' stand for themselves */
                        out[n++] = (char)s[i];
                        break;
                }
        }
        return n;
}

/* The end of the JSON number at s[i], or 0 when there is none (RFC 8259:
 * -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?). What follows it is
 * judged by the caller. */
static size_t scan_number(const unsigned char *s, size_t i, size_t len)
{
        size_t d;

        if (s[i] == '-' && ++i >= len)
                return 0;
        if (s[i] == '0')
                i++;
        else if (s[i] >= '1' && s[i] <= '9')
                while (++i < len && s[i] >= '0' && s[i] <= '9')
                        ;
        else
                return 0;
        if (i < len && s[i] == '.') {
                for (d = ++i; i < len && s[i] >= '0' && s[i] <= '9'; i++)
                        ;
                if (i == d)
                        return 0;
        }
        if (i < len && (s[i] == 'e' || s[i] == 'E')) {
                if (++i < len && (s[i] == '+' || s[i] == '-'))
                        i++;
                for (d = i; i < len && s[i] >= '0' && s[i] <= '9'; i++)
                        ;
                if (i == d)
                        return 0;
        }
        return i;
}

/* Reads buf as a flat object into call and p->kind. Returns 1 when it did
 * (the JSON is valid: only validate() is left), 0 when yajl must decide. */
static int parse_flat(struct cs_parser *p, const char *buf, size_t len,
                      struct cs_call *call)
{
        const unsigned char *s = (const unsigned char *)buf;
        size_t i, k, end;
        int field, esc;
        enum kind kind;

        memset(call, 0, sizeof(*call));
        memset(p->kind, 0, sizeof(p->kind));
        p->scratch_used = 0;
        i = skip_ws(s, 0, len);
        if (i >= len || s[i] != '{')
                return 0;
        i = skip_ws(s, i + 1, len);
        if (i < len && s[i] == '}')
                return skip_ws(s, i + 1, len) == len;
        for (;;) {
                /* The key, compared as is: one with escapes is left to
                 * yajl, which decodes it first. */
                if (i >= len || s[i] != '"')
                        return 0;
                esc = 0;
                k = i + 1;
                i = scan_string(s, k, len, &esc);
                if (!i || esc)
                        return 0;
                field = field_of(s + k, i - k);
                i = skip_ws(s, i + 1, len);
                if (i >= len || s[i] != ':')
                        return 0;
                i = skip_ws(s, i + 1, len);
                if (i >= len)
                        return 0;

                /* The value: [k, end) is its text, i the byte after it. */
                esc = 0;
                switch (s[i]) {
                case '"':
                        k = i + 1;
                        end = scan_string(s, k, len, &esc);
                        if (!end)
                                return 0;
                        i = end + 1;
                        kind = K_STRING;
                        break;
                case 't':
                case 'f':
                case 'n':
                        k = i;
                        end = i + (s[i] == 'f' ? 5 : 4);
                        if (end > len || memcmp(s + i,
                                                s[i] == 't'   ? "true"
                                                : s[i] == 'f' ? "false"
                                                              : "null",
                                                end - i))
                                return 0;
                        i = end;
                        kind = s[k] == 'n' ? K_NULL : K_BOOL;
                        break;
                default:
                        k = i;
                        end = scan_number(s, i, len);
                        if (!end)
                                return 0;
                        i = end;
                        kind = K_NUMBER;
                        break;
                }
                if (field >= 0) {
                        struct cs_str *f = &call->field[field];

                        p->kind[field] = (unsigned char)kind;
                        if (kind == K_NULL) {
                                f->ptr = NULL;
                                f->len = 0;
                        } else if (!esc) {
                                f->ptr = buf + k;
                                f->len = end - k;
                        } else {
                                /* Decoded text is shorter than its source,
                                 * so len bytes hold every string of the
                                 * message: scratch grows at most once, on
                                 * the first escaped field, before anything
                                 * points into it. */
                                if (len + 16 > p->scratch_cap) {
                                        char *n = realloc(p->scratch, len + 16);

                                        if (!n)
                                                return 0;
                                        p->scratch = n;
                                        p->scratch_cap = len + 16;
                                }
                                f->ptr = p->scratch + p->scratch_used;
                                f->len = unescape(s + k, end - k,
                                                  p->scratch + p->scratch_used);
                                p->scratch_used += f->len;
                        }
                }

                i = skip_ws(s, i, len);
                if (i >= len)
                        return 0;
                if (s[i] == '}')
                        return skip_ws(s, i + 1, len) == len;
                if (s[i] != ',')
                        return 0;
                i = skip_ws(s, i + 1, len);
        }
}

int cs_parse_call(struct cs_parser *p, const char *buf, size_t len,
                  struct cs_call *call, char *reason, size_t reason_size)
{
        int r;

        if (!parse_flat(p, buf, len, call)) {
                p->n_yajl++;
                return cs_parse_call_yajl(p, buf, len, call, reason,
                                          reason_size);
        }
        p->n_flat++;
        r = validate(p, call, 1, reason, reason_size);
        if (r < 0)
                memset(call, 0, sizeof(*call));
        return r;
}

void cs_parser_counts(const struct cs_parser *p, uint64_t *flat, uint64_t *yajl)
{
        *flat = p->n_flat;
        *yajl = p->n_yajl;
}
