/* jsonsplit.c: streaming JSON array / NDJSON splitter (see cs_jsonsplit.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cs_jsonsplit.h"

enum state {
        S_DETECT, /* white space before the first significant byte */
        S_LINE,   /* NDJSON */
        S_OPEN,   /* after '[': a value or ']' */
        S_VALUE,  /* after ',': a value */
        S_NEST,   /* inside an object or array element */
        S_STRING, /* inside a string element */
        S_TOKEN,  /* inside a number or literal element */
        S_NEXT,   /* after an element: ',' or ']' */
        S_END,    /* after the closing ']' */
        S_FAILED, /* an error or a stop; no more input */
};

struct cs_jsonsplit {
        cs_jsonsplit_msg_cb *on_msg;
        void *opaque;
        char *buf;           /* the current message, while it fits */
        size_t len;          /* bytes held in buf */
        size_t size;         /* allocated size of buf, at most max */
        size_t max;          /* longest message kept */
        size_t msg_len;      /* full length of the current message */
        uint64_t msg_offset; /* input offset where it starts */
        uint64_t offset;     /* input offset of the next chunk */
        uint64_t lines;      /* NDJSON: newlines before the current line */
        uint64_t elements;   /* array: elements delivered */
        uint64_t number;     /* of the message being delivered */
        enum state state;
        enum cs_jsonsplit_mode mode;
        int in_string;
        int escape;
        int depth;
        char last; /* last byte appended, to see a '\r' before '\n' */
        /* One bit per open bracket, set for '[': closers must match. */
        unsigned char brackets[CS_JSONSPLIT_MAX_DEPTH / 8];
        char err[160];
};

struct cs_jsonsplit *cs_jsonsplit_new(size_t max_msg,
                                      cs_jsonsplit_msg_cb *on_msg, void *opaque)
{
        struct cs_jsonsplit *js;

        if (max_msg == 0)
                return NULL;
        js = calloc(1, sizeof(*js));
        if (!js)
                return NULL;
        js->size = max_msg < 65536 ? max_msg : 65536;
        js->buf = malloc(js->size);
        if (!js->buf) {
                free(js);
                return NULL;
        }
        js->max = max_msg;
        js->on_msg = on_msg;
        js->opaque = opaque;
        js->state = S_DETECT;
        return js;
}

void cs_jsonsplit_destroy(struct cs_jsonsplit *js)
{
        if (!js)
                return;
        free(js->buf);
        free(js);
}

const char *cs_jsonsplit_error(const struct cs_jsonsplit *js)
{
        return js->err;
}

enum cs_jsonsplit_mode cs_jsonsplit_mode(const struct cs_jsonsplit *js)
{
        return js->mode;
}

uint64_t cs_jsonsplit_number(const struct cs_jsonsplit *js)
{
        return js->number;
}

static int is_ws(unsigned char c)
{
        return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

/* Bytes of a number or literal (true, false, null) element. Whether the
 * token is valid JSON is the consumer's business. */
static int is_token(unsigned char c)
{
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
               (c >= 'A' && c <= 'Z') || c == '-' || c == '+' || c == '.';
}

static int fail(struct cs_jsonsplit *js, uint64_t at, const char *what,
                unsigned char c)
{
        if (c >= 0x21 && c <= 0x7e)
                snprintf(js->err, sizeof(js->err),
                         "invalid JSON array at byte %llu: %s, got '%c'",
                         (unsigned long long)at, what, c);
        else
                snprintf(js->err, sizeof(js->err),
                         "invalid JSON array at byte %llu: %s, got byte 0x%02x",
                         (unsigned long long)at, what, c);
        js->state = S_FAILED;
        return -1;
}

/* Appends n bytes to the current message. Past max only the length is
 * counted, so one huge element cannot exhaust memory. */
static int append(struct cs_jsonsplit *js, const char *p, size_t n)
{
        js->msg_len += n;
        if (n > 0)
                js->last = p[n - 1];
        if (js->msg_len > js->max)
                return 0;
        if (js->len + n > js->size) {
                size_t size = js->size * 2;
                char *buf;

                if (size < js->len + n)
                        size = js->len + n;
                if (size > js->max)
                        size = js->max;
                buf = realloc(js->buf, size);
                if (!buf) {
                        snprintf(js->err, sizeof(js->err),
                                 "out of memory for a message of %zu bytes",
                                 js->len + n);
                        js->state = S_FAILED;
                        return -1;
                }
                js->buf = buf;
                js->size = size;
        }
        memcpy(js->buf + js->len, p, n);
        js->len += n;
        return 0;
}

static inline int put(struct cs_jsonsplit *js, char c)
{
        if (js->msg_len < js->size) {
                js->buf[js->len++] = c;
                js->msg_len++;
                return 0;
        }
        return append(js, &c, 1);
}

static void reset(struct cs_jsonsplit *js)
{
        js->len = 0;
        js->msg_len = 0;
}

static int deliver(struct cs_jsonsplit *js, const char *msg, size_t len,
                   size_t full_len)
{
        if (full_len > js->max)
                msg = NULL, len = full_len;
        js->number = js->mode == CS_JSONSPLIT_NDJSON ? js->lines + 1
                                                     : ++js->elements;
        if (js->on_msg(js->opaque, msg, len, js->msg_offset)) {
                snprintf(js->err, sizeof(js->err), "stopped");
                js->state = S_FAILED;
                return CS_STOPPED;
        }
        return 0;
}

/* Delivers one NDJSON line (without its '\n') unless it is blank. len bytes
 * of it are at line, full_len is its whole length, ends_cr is true when the
 * last byte is '\r' (even if that byte was past max and not kept). */
static int deliver_line(struct cs_jsonsplit *js, const char *line, size_t len,
                        size_t full_len, int ends_cr)
{
        size_t i;

        if (ends_cr) {
                full_len--;
                if (len > full_len)
                        len = full_len;
        }
        for (i = 0; i < len && is_ws((unsigned char)line[i]); i++)
                ;
        if (i == len && full_len <= js->max)
                return 0;
        return deliver(js, line, len, full_len);
}

static int split_lines(struct cs_jsonsplit *js, const char *data, size_t n,
                       size_t i)
{
        while (i < n) {
                const char *nl = memchr(data + i, '\n', n - i);
                size_t end;
                int rc;

                if (!nl)
                        return append(js, data + i, n - i);
                end = (size_t)(nl - data);
                if (js->msg_len == 0) {
                        /* The whole line is in this chunk: no copy. */
                        rc = deliver_line(js, data + i, end - i, end - i,
                                          end > i && data[end - 1] == '\r');
                } else {
                        if (append(js, data + i, end - i) == -1)
                                return -1;
                        rc = deliver_line(js, js->buf, js->len, js->msg_len,
                                          js->last == '\r');
                }
                if (rc)
                        return rc;
                reset(js);
                js->lines++;
                js->msg_offset = js->offset + end + 1;
                i = end + 1;
        }
        return 0;
}

static int open_bracket(struct cs_jsonsplit *js, uint64_t at, unsigned char c)
{
        unsigned char bit = (unsigned char)(1u << (js->depth % 8));

        if (js->depth == CS_JSONSPLIT_MAX_DEPTH)
                return fail(js, at, "element nested too deeply", c);
        if (c == '[')
                js->brackets[js->depth / 8] |= bit;
        else
                js->brackets[js->depth / 8] &= (unsigned char)~bit;
        js->depth++;
        return 0;
}

static int close_bracket(struct cs_jsonsplit *js, uint64_t at, unsigned char c)
{
        int top = js->depth - 1;
        int is_array = (js->brackets[top / 8] >> (top % 8)) & 1;

        if (is_array != (c == ']'))
                return fail(js, at,
                            is_array ? "expected ']' to close an array"
                                     : "expected '}' to close an object",
                            c);
        js->depth--;
        return 0;
}

static int split_array(struct cs_jsonsplit *js, const char *data, size_t n,
                       size_t i)
{
        int rc;

        for (; i < n; i++) {
                unsigned char c = (unsigned char)data[i];
                uint64_t at = js->offset + i;

                switch (js->state) {
                case S_NEST:
                        if (js->in_string) {
                                if (put(js, (char)c))
                                        return -1;
                                if (js->escape)
                                        js->escape = 0;
                                else if (c == '\\')
                                        js->escape = 1;
                                else if (c == '"')
                                        js->in_string = 0;
                                break;
                        }
                        if (is_ws(c))
                                break;
                        rc = 0;
                        if (c == '"')
                                js->in_string = 1;
                        else if (c == '{' || c == '[')
                                rc = open_bracket(js, at, c);
                        else if (c == '}' || c == ']')
                                rc = close_bracket(js, at, c);
                        if (rc || put(js, (char)c))
                                return -1;
                        if (js->depth == 0) {
                                js->state = S_NEXT;
                                if ((rc = deliver(js, js->buf, js->len,
                                                  js->msg_len)))
                                        return rc;
                        }
                        break;

                case S_STRING:
                        if (put(js, (char)c))
                                return -1;
                        if (js->escape) {
                                js->escape = 0;
                        } else if (c == '\\') {
                                js->escape = 1;
                        } else if (c == '"') {
                                js->state = S_NEXT;
                                if ((rc = deliver(js, js->buf, js->len,
                                                  js->msg_len)))
                                        return rc;
                        }
                        break;

                case S_TOKEN:
                        if (is_token(c)) {
                                if (put(js, (char)c))
                                        return -1;
                                break;
                        }
                        js->state = S_NEXT;
                        if ((rc = deliver(js, js->buf, js->len, js->msg_len)))
                                return rc;
                        /* c ends the token and is read again as what
                         * follows an element. */
                        /* fall through */
                case S_NEXT:
                        if (is_ws(c))
                                break;
                        if (c == ',')
                                js->state = S_VALUE;
                        else if (c == ']')
                                js->state = S_END;
                        else
                                return fail(js, at,
                                            "expected ',' or ']' after an "
                                            "element",
                                            c);
                        break;

                case S_OPEN:
                case S_VALUE:
                        if (is_ws(c))
                                break;
                        if (c == ']' && js->state == S_OPEN) {
                                js->state = S_END;
                                break;
                        }
                        reset(js);
                        js->msg_offset = at;
                        if (c == '{' || c == '[') {
                                js->depth = 0;
                                js->in_string = 0;
                                js->escape = 0;
                                if (open_bracket(js, at, c))
                                        return -1;
                                js->state = S_NEST;
                        } else if (c == '"') {
                                js->escape = 0;
                                js->state = S_STRING;
                        } else if (is_token(c)) {
                                js->state = S_TOKEN;
                        } else {
                                return fail(js, at, "expected a value", c);
                        }
                        if (put(js, (char)c))
                                return -1;
                        break;

                case S_END:
                        if (is_ws(c))
                                break;
                        return fail(js, at, "expected the end of input", c);

                default:
                        return -1;
                }
        }
        return 0;
}

int cs_jsonsplit_feed(struct cs_jsonsplit *js, const char *buf, size_t len)
{
        size_t i = 0;
        int rc;

        if (js->state == S_FAILED)
                return -1;
        if (js->offset == 0 && len >= 3 && !memcmp(buf, "\xef\xbb\xbf", 3)) {
                i = 3;
                js->msg_offset = 3;
        }

        /* Leading white space is kept for the case where this is NDJSON and
         * the first line starts with blanks: it is sent as is. */
        for (; js->state == S_DETECT && i < len; i++) {
                unsigned char c = (unsigned char)buf[i];

                if (c == '\n') {
                        reset(js);
                        js->lines++;
                        js->msg_offset = js->offset + i + 1;
                } else if (is_ws(c)) {
                        if (put(js, (char)c))
                                return -1;
                } else if (c == '[') {
                        reset(js);
                        js->state = S_OPEN;
                        js->mode = CS_JSONSPLIT_ARRAY;
                        i++;
                        break;
                } else {
                        js->state = S_LINE;
                        js->mode = CS_JSONSPLIT_NDJSON;
                        break;
                }
        }

        if (js->state == S_LINE)
                rc = split_lines(js, buf, len, i);
        else if (js->state != S_DETECT)
                rc = split_array(js, buf, len, i);
        else
                rc = 0;
        if (rc == 0)
                js->offset += len;
        return rc;
}

int cs_jsonsplit_end(struct cs_jsonsplit *js)
{
        int rc;

        switch (js->state) {
        case S_DETECT:
        case S_END:
                return 0;
        case S_LINE:
                if (js->msg_len == 0)
                        return 0;
                rc = deliver_line(js, js->buf, js->len, js->msg_len,
                                  js->last == '\r');
                reset(js);
                return rc;
        case S_TOKEN:
                /* Not delivered: a cut-off file may have cut it short. */
        case S_OPEN:
        case S_VALUE:
        case S_NEST:
        case S_STRING:
        case S_NEXT:
                snprintf(js->err, sizeof(js->err),
                         "invalid JSON array at byte %llu: unexpected end of "
                         "input, the array is not closed",
                         (unsigned long long)js->offset);
                js->state = S_FAILED;
                return -1;
        default:
                return -1;
        }
}
