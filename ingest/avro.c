/* avro.c: police calls as Avro binary data. Avro C parses the schema and
 * writes (the encoder); the decoder is a small binary reader driven by the
 * writer's fields resolved once by name, which reads in place, allocates
 * nothing per message, and is held to Avro C's generic reader by
 * tests/test_avro_decode.c and tests/fuzz/fuzz_avro.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <avro.h>

#include "cs_avro.h"

const char cs_avro_calls_schema[] =
        "{\n"
        "  \"type\": \"record\",\n"
        "  \"name\": \"Call\",\n"
        "  \"namespace\": \"callstream\",\n"
        "  \"doc\": \"One SF police call for service, as callstream ingests "
        "it: the JSON record's fields, all text; the optional ones may be "
        "null.\",\n"
        "  \"fields\": [\n"
        "    {\"name\": \"crime_id\", \"type\": \"string\"},\n"
        "    {\"name\": \"original_crime_type_name\", \"type\": "
        "\"string\"},\n"
        "    {\"name\": \"report_date\", \"type\": [\"null\", \"string\"], "
        "\"default\": null},\n"
        "    {\"name\": \"call_date\", \"type\": [\"null\", \"string\"], "
        "\"default\": null},\n"
        "    {\"name\": \"offense_date\", \"type\": [\"null\", \"string\"], "
        "\"default\": null},\n"
        "    {\"name\": \"call_time\", \"type\": [\"null\", \"string\"], "
        "\"default\": null},\n"
        "    {\"name\": \"call_date_time\", \"type\": \"string\"},\n"
        "    {\"name\": \"disposition\", \"type\": [\"null\", \"string\"], "
        "\"default\": null},\n"
        "    {\"name\": \"address\", \"type\": [\"null\", \"string\"], "
        "\"default\": null},\n"
        "    {\"name\": \"city\", \"type\": [\"null\", \"string\"], "
        "\"default\": null},\n"
        "    {\"name\": \"state\", \"type\": [\"null\", \"string\"], "
        "\"default\": null},\n"
        "    {\"name\": \"agency_id\", \"type\": [\"null\", \"string\"], "
        "\"default\": null},\n"
        "    {\"name\": \"address_type\", \"type\": [\"null\", \"string\"], "
        "\"default\": null},\n"
        "    {\"name\": \"common_location\", \"type\": [\"null\", "
        "\"string\"], \"default\": null}\n"
        "  ]\n"
        "}\n";

/* How a field of the writer's record is read. */
enum how {
        H_SKIP = 0, /* a field the project does not know */
        H_STRING,
        H_LONG,
        H_INT,
        H_NULL, /* encoder only: a field it cannot fill, always null */
};

struct action {
        avro_schema_t schema; /* the field's type, borrowed from the record */
        int field;            /* enum cs_field, or -1 */
        int how;
        int null_branch; /* in a union of null and the type: null's index
                            (the other is 1 - it); -1 not a union */
};

/* The record's fields in the writer's order. */
struct plan {
        avro_schema_t schema; /* owned */
        struct action *a;
        size_t n;
};

struct cs_avro_decoder {
        struct plan plan;
        int framing;
        int64_t schema_id;
        char id_text[24]; /* a long crime_id as decimal text */
};

struct cs_avro_encoder {
        struct plan plan;
        int framing;
        uint32_t schema_id;
        avro_value_iface_t *iface;
        avro_value_t value;
        avro_writer_t writer;
        char *buf; /* the framed message */
        size_t cap;
        char *text; /* a field's text NUL-terminated, as Avro C wants */
        size_t text_cap;
};

int cs_avro_schema_load(const char *path, char **json, char *errstr,
                        size_t errstr_size)
{
        FILE *f = fopen(path, "rb");
        char *s = NULL;
        size_t n = 0, cap = 0;

        if (!f) {
                snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
                return -1;
        }
        for (;;) {
                size_t got;

                if (cap - n < 4096) {
                        char *t;

                        if (cap > (size_t)16 << 20) {
                                snprintf(errstr, errstr_size,
                                         "%s: larger than 16 MiB", path);
                                goto fail;
                        }
                        t = realloc(s, cap ? cap * 2 : 8192);
                        if (!t) {
                                snprintf(errstr, errstr_size,
                                         "%s: out of memory", path);
                                goto fail;
                        }
                        s = t;
                        cap = cap ? cap * 2 : 8192;
                }
                got = fread(s + n, 1, cap - n - 1, f);
                n += got;
                if (got == 0)
                        break;
        }
        if (ferror(f)) {
                snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
                goto fail;
        }
        fclose(f);
        s[n] = '\0';
        *json = s;
        return 0;
fail:
        fclose(f);
        free(s);
        return -1;
}

static int field_of(const char *name)
{
        int i;

        for (i = 0; i < CS_F_COUNT; i++)
                if (!strcmp(name, cs_field_names[i]))
                        return i;
        return -1;
}

/* How a known field of this (non-union) type is read, or -1. */
static int how_of(avro_schema_t t, int field)
{
        switch (avro_typeof(t)) {
        case AVRO_STRING:
                return H_STRING;
        case AVRO_INT64:
                return field == CS_F_CRIME_ID ? H_LONG : -1;
        case AVRO_INT32:
                return field == CS_F_CRIME_ID ? H_INT : -1;
        default:
                return -1;
        }
}

static void plan_free(struct plan *p)
{
        if (p->schema)
                avro_schema_decref(p->schema);
        free(p->a);
        memset(p, 0, sizeof(*p));
}

/* Parses the schema and resolves its fields by name. encoder: a field the
 * call cannot fill is read as null (it must admit null) instead of being
 * skipped. Returns 0, or -1 with one line in errstr. */
static int plan_make(struct plan *p, const char *json, int encoder,
                     char *errstr, size_t errstr_size)
{
        int seen[CS_F_COUNT] = {0};
        static const int required[] = {CS_F_CRIME_ID,
                                       CS_F_ORIGINAL_CRIME_TYPE_NAME,
                                       CS_F_CALL_DATE_TIME};
        size_t i;

        memset(p, 0, sizeof(*p));
        if (avro_schema_from_json_length(json, strlen(json), &p->schema)) {
                char why[200];

                snprintf(why, sizeof(why), "%s", avro_strerror());
                why[strcspn(why, "\n")] = '\0';
                p->schema = NULL;
                snprintf(errstr, errstr_size, "avro schema: %s", why);
                return -1;
        }
        if (!is_avro_record(p->schema)) {
                snprintf(errstr, errstr_size,
                         "avro schema: the top level is a %s, not a record",
                         avro_schema_type_name(p->schema));
                goto fail;
        }
        p->n = avro_schema_record_size(p->schema);
        p->a = calloc(p->n ? p->n : 1, sizeof(*p->a));
        if (!p->a) {
                snprintf(errstr, errstr_size, "out of memory");
                goto fail;
        }
        for (i = 0; i < p->n; i++) {
                struct action *a = &p->a[i];
                const char *name =
                        avro_schema_record_field_name(p->schema, (int)i);
                avro_schema_t t = avro_schema_record_field_get_by_index(
                        p->schema, (int)i);

                a->schema = t;
                a->field = field_of(name);
                a->null_branch = -1;
                if (a->field < 0) {
                        a->how = H_SKIP;
                        if (!encoder)
                                continue;
                        /* The encoder writes null into what it does not
                         * know. */
                        if (is_avro_null(t)) {
                                a->how = H_NULL;
                                continue;
                        }
                        if (is_avro_union(t) &&
                            avro_schema_union_size(t) >= 1) {
                                size_t b, nb = avro_schema_union_size(t);

                                for (b = 0; b < nb; b++)
                                        if (is_avro_null(
                                                    avro_schema_union_branch(
                                                            t, (int)b)))
                                                break;
                                if (b < nb) {
                                        a->how = H_NULL;
                                        a->null_branch = (int)b;
                                        continue;
                                }
                        }
                        snprintf(errstr, errstr_size,
                                 "avro schema: field %s (%s) cannot be "
                                 "written: it is not a call's and does not "
                                 "admit null",
                                 name, avro_schema_type_name(t));
                        goto fail;
                }
                seen[a->field] = 1;
                if (is_avro_union(t) && avro_schema_union_size(t) == 2) {
                        avro_schema_t b0 = avro_schema_union_branch(t, 0);
                        avro_schema_t b1 = avro_schema_union_branch(t, 1);

                        if (is_avro_null(b0) && !is_avro_null(b1)) {
                                a->null_branch = 0;
                                a->how = how_of(b1, a->field);
                        } else if (is_avro_null(b1) && !is_avro_null(b0)) {
                                a->null_branch = 1;
                                a->how = how_of(b0, a->field);
                        } else {
                                a->how = -1;
                        }
                } else {
                        a->how = how_of(t, a->field);
                }
                if (a->how < 0) {
                        snprintf(errstr, errstr_size,
                                 "avro schema: field %s has type %s; expected "
                                 "%s, or a union of null and it",
                                 name, avro_schema_type_name(t),
                                 a->field == CS_F_CRIME_ID
                                         ? "string, long or int"
                                         : "string");
                        goto fail;
                }
        }
        for (i = 0; i < CS_ARRAY_SIZE(required); i++) {
                if (!seen[required[i]]) {
                        snprintf(errstr, errstr_size,
                                 "avro schema: missing required field %s",
                                 cs_field_names[required[i]]);
                        goto fail;
                }
        }
        return 0;
fail:
        plan_free(p);
        return -1;
}

struct cs_avro_decoder *cs_avro_decoder_new(const char *schema_json,
                                            int framing, int64_t schema_id,
                                            char *errstr, size_t errstr_size)
{
        struct cs_avro_decoder *dec = calloc(1, sizeof(*dec));

        if (!dec) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        if (plan_make(&dec->plan, schema_json, 0, errstr, errstr_size) < 0) {
                free(dec);
                return NULL;
        }
        dec->framing = framing;
        dec->schema_id = schema_id;
        return dec;
}

void cs_avro_decoder_destroy(struct cs_avro_decoder *dec)
{
        if (!dec)
                return;
        plan_free(&dec->plan);
        free(dec);
}

/* A message being read; pos counts from the message's first byte, the
 * Confluent header included, so reasons point into what was received. */
struct rd {
        const unsigned char *s;
        size_t pos, len;
        size_t items; /* array and map items still allowed */
        char *reason;
        size_t reason_size;
};

static int truncated(struct rd *r, size_t at)
{
        snprintf(r->reason, r->reason_size,
                 "invalid Avro: truncated at byte %zu", at);
        return -1;
}

/* A zig-zag varint, as Avro C reads one: at most 10 bytes. */
static int read_long(struct rd *r, int64_t *v)
{
        uint64_t u = 0;
        size_t at = r->pos;
        int shift = 0;
        unsigned char b;

        /* Most are one byte: string lengths under 64, union branches. */
        if (r->pos < r->len && !(r->s[r->pos] & 0x80)) {
                b = r->s[r->pos++];
                *v = (int64_t)(b >> 1) ^ -(int64_t)(b & 1);
                return 0;
        }
        do {
                if (shift == 70) {
                        snprintf(r->reason, r->reason_size,
                                 "invalid Avro: varint longer than 10 bytes "
                                 "at byte %zu",
                                 at);
                        return -1;
                }
                if (r->pos == r->len)
                        return truncated(r, at);
                b = r->s[r->pos++];
                u |= (uint64_t)(b & 0x7f) << (shift < 64 ? shift : 63);
                shift += 7;
        } while (b & 0x80);
        *v = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
        return 0;
}

static int need(struct rd *r, size_t n, size_t at)
{
        if (r->len - r->pos < n)
                return truncated(r, at);
        r->pos += n;
        return 0;
}

/* The length of a string or bytes value, checked against what is left. */
static int read_len(struct rd *r, const char *what, size_t *n)
{
        size_t at = r->pos;
        int64_t v;

        if (read_long(r, &v) < 0)
                return -1;
        if (v < 0) {
                snprintf(r->reason, r->reason_size,
                         "invalid Avro: negative length %lld in %s at byte "
                         "%zu",
                         (long long)v, what, at);
                return -1;
        }
        if (v > CS_AVRO_STRING_MAX) {
                snprintf(r->reason, r->reason_size,
                         "invalid Avro: %s of %lld bytes at byte %zu, over "
                         "the limit of %d",
                         what, (long long)v, at, CS_AVRO_STRING_MAX);
                return -1;
        }
        if (r->len - r->pos < (size_t)v)
                return truncated(r, at);
        *n = (size_t)v;
        return 0;
}

/* A union's branch index, checked against its size. */
static int read_branch(struct rd *r, size_t nbranches, const char *what,
                       size_t *branch)
{
        size_t at = r->pos;
        int64_t v;

        if (read_long(r, &v) < 0)
                return -1;
        if (v < 0 || (uint64_t)v >= nbranches) {
                snprintf(r->reason, r->reason_size,
                         "invalid Avro: union branch %lld of %s at byte %zu "
                         "(it has %zu)",
                         (long long)v, what, at, nbranches);
                return -1;
        }
        *branch = (size_t)v;
        return 0;
}

/* Skips one value of type t (a field the project does not know). */
static int skip(struct rd *r, avro_schema_t t, const char *what, int depth)
{
        size_t at = r->pos, n, i, b;
        int64_t v;

        if (depth > CS_AVRO_DEPTH_MAX) {
                snprintf(r->reason, r->reason_size,
                         "invalid Avro: %s nests deeper than %d at byte %zu",
                         what, CS_AVRO_DEPTH_MAX, at);
                return -1;
        }
        switch (avro_typeof(t)) {
        case AVRO_NULL:
                return 0;
        case AVRO_BOOLEAN:
                return need(r, 1, at);
        case AVRO_INT32:
        case AVRO_INT64:
        case AVRO_ENUM:
                return read_long(r, &v);
        case AVRO_FLOAT:
                return need(r, 4, at);
        case AVRO_DOUBLE:
                return need(r, 8, at);
        case AVRO_STRING:
        case AVRO_BYTES:
                if (read_len(r, what, &n) < 0)
                        return -1;
                r->pos += n;
                return 0;
        case AVRO_FIXED:
                return need(r, (size_t)avro_schema_fixed_size(t), at);
        case AVRO_ARRAY:
        case AVRO_MAP:
                for (;;) {
                        int is_map = is_avro_map(t);

                        at = r->pos;
                        if (read_long(r, &v) < 0)
                                return -1;
                        if (v == 0)
                                return 0;
                        if (v < 0) {
                                int64_t size;

                                /* A block with its byte size first. */
                                if (read_long(r, &size) < 0)
                                        return -1;
                                v = v == INT64_MIN ? INT64_MAX : -v;
                        }
                        if ((uint64_t)v > r->items) {
                                snprintf(r->reason, r->reason_size,
                                         "invalid Avro: %s has more than %d "
                                         "items at byte %zu",
                                         what, CS_AVRO_STRING_MAX, at);
                                return -1;
                        }
                        r->items -= (size_t)v;
                        for (i = 0; i < (size_t)v; i++) {
                                if (is_map) {
                                        if (read_len(r, what, &n) < 0)
                                                return -1;
                                        r->pos += n;
                                }
                                if (skip(r,
                                         is_map ? avro_schema_map_values(t)
                                                : avro_schema_array_items(t),
                                         what, depth + 1) < 0)
                                        return -1;
                        }
                }
        case AVRO_UNION:
                if (read_branch(r, avro_schema_union_size(t), what, &b) < 0)
                        return -1;
                return skip(r, avro_schema_union_branch(t, (int)b), what,
                            depth + 1);
        case AVRO_RECORD:
                n = avro_schema_record_size(t);
                for (i = 0; i < n; i++)
                        if (skip(r,
                                 avro_schema_record_field_get_by_index(t,
                                                                       (int)i),
                                 what, depth + 1) < 0)
                                return -1;
                return 0;
        case AVRO_LINK:
                return skip(r, avro_schema_link_target(t), what, depth + 1);
        default:
                snprintf(r->reason, r->reason_size,
                         "invalid Avro: %s has a type this reader does not "
                         "know",
                         what);
                return -1;
        }
}

/* Strict UTF-8 (RFC 3629: no overlong forms, surrogates or code points
 * over U+10FFFF); returns the offset of the first bad byte, or len. Sets
 * *nul when the text holds a U+0000 (validation then looks for it). */
static size_t utf8_bad(const unsigned char *s, size_t len, int *nul)
{
        const uint64_t ones = 0x0101010101010101ULL;
        const uint64_t highs = 0x8080808080808080ULL;
        size_t i = 0, n, k;
        unsigned cp;

        while (i < len) {
                /* Eight ASCII bytes with no NUL at a time. */
                if (len - i >= 8) {
                        uint64_t x;

                        memcpy(&x, s + i, 8);
                        if (!((x | ((x - ones) & ~x)) & highs)) {
                                i += 8;
                                continue;
                        }
                }
                if (s[i] < 0x80) {
                        *nul |= s[i] == 0;
                        i++;
                        continue;
                }
                if (s[i] < 0xc2 || s[i] > 0xf4)
                        return i;
                n = s[i] >= 0xf0 ? 4 : s[i] >= 0xe0 ? 3 : 2;
                if (len - i < n)
                        return i;
                cp = s[i] & (0x7f >> n);
                for (k = 1; k < n; k++) {
                        if ((s[i + k] & 0xc0) != 0x80)
                                return i;
                        cp = cp << 6 | (s[i + k] & 0x3f);
                }
                if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
                    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
                        return i;
                i += n;
        }
        return len;
}

int cs_avro_decode(struct cs_avro_decoder *dec, const char *buf, size_t len,
                   struct cs_call *call, char *reason, size_t reason_size)
{
        unsigned char kind[CS_F_COUNT] = {0};
        int nul = 0;
        struct rd r = {(const unsigned char *)buf, 0,      len,
                       CS_AVRO_STRING_MAX,         reason, reason_size};
        size_t i;

        memset(call, 0, sizeof(*call));
        if (dec->framing == CS_AVRO_CONFLUENT) {
                uint32_t id;

                if (len > 0 && r.s[0] != 0) {
                        snprintf(reason, reason_size,
                                 "invalid Avro: magic byte 0x%02x, expected 0 "
                                 "(Confluent framing)",
                                 r.s[0]);
                        return -1;
                }
                if (len < CS_AVRO_CONFLUENT_HEADER) {
                        snprintf(reason, reason_size,
                                 "invalid Avro: %zu bytes, shorter than the "
                                 "Confluent header",
                                 len);
                        return -1;
                }
                id = (uint32_t)r.s[1] << 24 | (uint32_t)r.s[2] << 16 |
                     (uint32_t)r.s[3] << 8 | r.s[4];
                if (dec->schema_id >= 0 && id != (uint64_t)dec->schema_id) {
                        snprintf(reason, reason_size,
                                 "unexpected schema id %u (expected %lld)", id,
                                 (long long)dec->schema_id);
                        return -1;
                }
                r.pos = CS_AVRO_CONFLUENT_HEADER;
        }
        for (i = 0; i < dec->plan.n; i++) {
                const struct action *a = &dec->plan.a[i];
                const char *name =
                        a->field >= 0 ? cs_field_names[a->field] : "a field";
                struct cs_str *f;
                size_t at, n, b, bad;
                int64_t v;

                if (a->how == H_SKIP) {
                        if (skip(&r, a->schema,
                                 avro_schema_record_field_name(dec->plan.schema,
                                                               (int)i),
                                 0) < 0)
                                goto fail;
                        continue;
                }
                if (a->null_branch >= 0) {
                        if (read_branch(&r, 2, name, &b) < 0)
                                goto fail;
                        if ((int)b == a->null_branch) {
                                kind[a->field] = CS_V_NULL;
                                continue;
                        }
                }
                f = &call->field[a->field];
                at = r.pos;
                if (a->how == H_STRING) {
                        if (read_len(&r, name, &n) < 0)
                                goto fail;
                        f->ptr = buf + r.pos;
                        f->len = n;
                        bad = utf8_bad(r.s + r.pos, n, &nul);
                        if (bad < n) {
                                snprintf(reason, reason_size,
                                         "invalid Avro: invalid UTF-8 in %s "
                                         "at byte %zu",
                                         name, r.pos + bad);
                                goto fail;
                        }
                        r.pos += n;
                        kind[a->field] = CS_V_STRING;
                        continue;
                }
                if (read_long(&r, &v) < 0)
                        goto fail;
                if (a->how == H_INT && (v < INT32_MIN || v > INT32_MAX)) {
                        snprintf(reason, reason_size,
                                 "invalid Avro: int %s out of range at byte "
                                 "%zu",
                                 name, at);
                        goto fail;
                }
                /* crime_id, the only integer field: its text, as a JSON
                 * number's is. */
                f->len = (size_t)snprintf(dec->id_text, sizeof(dec->id_text),
                                          "%lld", (long long)v);
                f->ptr = dec->id_text;
                kind[a->field] = CS_V_NUMBER;
        }
        if (r.pos != len) {
                snprintf(reason, reason_size,
                         "invalid Avro: %zu trailing bytes at byte %zu",
                         len - r.pos, r.pos);
                goto fail;
        }
        if (cs_parse_validate(kind, call, !nul, reason, reason_size) < 0)
                goto fail;
        return 0;
fail:
        memset(call, 0, sizeof(*call));
        return -1;
}

struct cs_avro_encoder *cs_avro_encoder_new(const char *schema_json,
                                            int framing, int64_t schema_id,
                                            char *errstr, size_t errstr_size)
{
        struct cs_avro_encoder *enc = calloc(1, sizeof(*enc));

        if (!enc) {
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        if (plan_make(&enc->plan, schema_json, 1, errstr, errstr_size) < 0) {
                free(enc);
                return NULL;
        }
        enc->framing = framing;
        enc->schema_id = schema_id < 0 ? 0 : (uint32_t)schema_id;
        enc->cap = 4096;
        enc->text_cap = 256;
        enc->buf = malloc(enc->cap);
        enc->text = malloc(enc->text_cap);
        enc->iface = avro_generic_class_from_schema(enc->plan.schema);
        enc->writer = avro_writer_memory(enc->buf, 0);
        if (!enc->buf || !enc->text || !enc->iface || !enc->writer ||
            avro_generic_value_new(enc->iface, &enc->value)) {
                snprintf(errstr, errstr_size, "avro: %s", avro_strerror());
                if (enc->iface)
                        avro_value_iface_decref(enc->iface);
                enc->iface = NULL;
                cs_avro_encoder_destroy(enc);
                return NULL;
        }
        return enc;
}

void cs_avro_encoder_destroy(struct cs_avro_encoder *enc)
{
        if (!enc)
                return;
        if (enc->iface) {
                avro_value_decref(&enc->value);
                avro_value_iface_decref(enc->iface);
        }
        if (enc->writer)
                avro_writer_free(enc->writer);
        free(enc->buf);
        free(enc->text);
        plan_free(&enc->plan);
        free(enc);
}

/* Sets v, a string, long or int value, from s. */
static int set_scalar(struct cs_avro_encoder *enc, avro_value_t *v, int how,
                      const struct cs_str *s, const char *name, char *errstr,
                      size_t errstr_size)
{
        char *end;
        long long n;

        if (s->len + 1 > enc->text_cap) {
                size_t cap = s->len + 1 + 256;
                char *t = realloc(enc->text, cap);

                if (!t) {
                        snprintf(errstr, errstr_size, "out of memory");
                        return -1;
                }
                enc->text = t;
                enc->text_cap = cap;
        }
        memcpy(enc->text, s->ptr, s->len);
        enc->text[s->len] = '\0';
        if (how == H_STRING)
                return avro_value_set_string_len(v, enc->text, s->len + 1)
                               ? (snprintf(errstr, errstr_size, "avro: %s",
                                           avro_strerror()),
                                  -1)
                               : 0;
        errno = 0;
        n = strtoll(enc->text, &end, 10);
        if (s->len == 0 || *end || errno ||
            (how == H_INT && (n < INT32_MIN || n > INT32_MAX))) {
                snprintf(errstr, errstr_size,
                         "%s '%.40s' is not an integer the schema's %s holds",
                         name, enc->text, how == H_INT ? "int" : "long");
                return -1;
        }
        if (how == H_INT ? avro_value_set_int(v, (int32_t)n)
                         : avro_value_set_long(v, n)) {
                snprintf(errstr, errstr_size, "avro: %s", avro_strerror());
                return -1;
        }
        return 0;
}

int cs_avro_encode(struct cs_avro_encoder *enc, const struct cs_call *call,
                   const char **out, size_t *out_len, char *errstr,
                   size_t errstr_size)
{
        size_t i, size, hdr;

        for (i = 0; i < enc->plan.n; i++) {
                const struct action *a = &enc->plan.a[i];
                const struct cs_str *s =
                        a->field >= 0 ? &call->field[a->field] : NULL;
                const char *name =
                        a->field >= 0 ? cs_field_names[a->field] : "field";
                avro_value_t fv, bv;

                if (avro_value_get_by_index(&enc->value, i, &fv, NULL))
                        goto avro_fail;
                if (a->how == H_NULL || (s && !s->ptr)) {
                        if (a->null_branch < 0 && a->how != H_NULL) {
                                snprintf(errstr, errstr_size,
                                         "%s is absent and the schema does "
                                         "not admit null",
                                         name);
                                return -1;
                        }
                        if (a->null_branch >= 0) {
                                if (avro_value_set_branch(&fv, a->null_branch,
                                                          &bv))
                                        goto avro_fail;
                                fv = bv;
                        }
                        if (avro_value_set_null(&fv))
                                goto avro_fail;
                        continue;
                }
                if (a->null_branch >= 0) {
                        if (avro_value_set_branch(&fv, 1 - a->null_branch, &bv))
                                goto avro_fail;
                        fv = bv;
                }
                if (set_scalar(enc, &fv, a->how, s, name, errstr, errstr_size) <
                    0)
                        return -1;
        }
        if (avro_value_sizeof(&enc->value, &size))
                goto avro_fail;
        hdr = enc->framing == CS_AVRO_CONFLUENT ? CS_AVRO_CONFLUENT_HEADER : 0;
        if (size + hdr > enc->cap) {
                size_t cap = size + hdr + 4096;
                char *t = realloc(enc->buf, cap);

                if (!t) {
                        snprintf(errstr, errstr_size, "out of memory");
                        return -1;
                }
                enc->buf = t;
                enc->cap = cap;
        }
        if (hdr) {
                enc->buf[0] = 0;
                enc->buf[1] = (char)(enc->schema_id >> 24);
                enc->buf[2] = (char)(enc->schema_id >> 16);
                enc->buf[3] = (char)(enc->schema_id >> 8);
                enc->buf[4] = (char)enc->schema_id;
        }
        avro_writer_memory_set_dest(enc->writer, enc->buf + hdr,
                                    (int64_t)(enc->cap - hdr));
        if (avro_value_write(enc->writer, &enc->value))
                goto avro_fail;
        *out = enc->buf;
        *out_len = hdr + (size_t)avro_writer_tell(enc->writer);
        return 0;
avro_fail:
        snprintf(errstr, errstr_size, "avro: %s", avro_strerror());
        return -1;
}

struct cs_avro_frames {
        size_t max_msg;
        cs_avro_frame_cb *on_msg;
        void *opaque;
        unsigned char hdr[4];
        int hlen;    /* prefix bytes seen of the current message */
        size_t need; /* its length */
        size_t got;  /* its bytes seen */
        uint64_t at; /* input offset of the next byte */
        uint64_t start;
        char *buf; /* max_msg bytes */
        char error[128];
};

struct cs_avro_frames *
cs_avro_frames_new(size_t max_msg, cs_avro_frame_cb *on_msg, void *opaque)
{
        struct cs_avro_frames *f = calloc(1, sizeof(*f));

        if (!f || !(f->buf = malloc(max_msg ? max_msg : 1))) {
                free(f);
                return NULL;
        }
        f->max_msg = max_msg;
        f->on_msg = on_msg;
        f->opaque = opaque;
        return f;
}

void cs_avro_frames_destroy(struct cs_avro_frames *f)
{
        if (!f)
                return;
        free(f->buf);
        free(f);
}

int cs_avro_frames_feed(struct cs_avro_frames *f, const char *buf, size_t len)
{
        while (len > 0 || (f->hlen == 4 && f->got == f->need)) {
                size_t n;

                if (f->hlen < 4) {
                        if (f->hlen == 0)
                                f->start = f->at;
                        f->hdr[f->hlen++] = (unsigned char)*buf++;
                        len--;
                        f->at++;
                        if (f->hlen == 4) {
                                f->need = (size_t)f->hdr[0] << 24 |
                                          (size_t)f->hdr[1] << 16 |
                                          (size_t)f->hdr[2] << 8 | f->hdr[3];
                                f->got = 0;
                        }
                        continue;
                }
                n = f->need - f->got;
                if (n > len)
                        n = len;
                /* A message over max_msg is passed over, not held. */
                if (f->need <= f->max_msg)
                        memcpy(f->buf + f->got, buf, n);
                f->got += n;
                buf += n;
                len -= n;
                f->at += n;
                if (f->got == f->need) {
                        int stop =
                                f->on_msg(f->opaque,
                                          f->need <= f->max_msg ? f->buf : NULL,
                                          f->need, f->start);

                        f->hlen = 0;
                        f->need = f->got = 0;
                        if (stop)
                                return CS_STOPPED;
                }
        }
        return 0;
}

int cs_avro_frames_end(struct cs_avro_frames *f)
{
        if (f->hlen == 0)
                return 0;
        snprintf(f->error, sizeof(f->error),
                 "input ends inside the message at byte %llu",
                 (unsigned long long)f->start);
        return -1;
}

const char *cs_avro_frames_error(const struct cs_avro_frames *f)
{
        return f->error;
}

static int put_frame(FILE *out, const char *msg, size_t len)
{
        unsigned char hdr[4] = {(unsigned char)(len >> 24),
                                (unsigned char)(len >> 16),
                                (unsigned char)(len >> 8), (unsigned char)len};

        return fwrite(hdr, 1, 4, out) == 4 && fwrite(msg, 1, len, out) == len
                       ? 0
                       : -1;
}

long long cs_avro_ndjson_to_frames(FILE *in, FILE *out,
                                   struct cs_avro_encoder *enc, char *errstr,
                                   size_t errstr_size)
{
        struct cs_parser *parser = cs_parser_new();
        char reason[CS_PARSE_REASON_MAX], why[256];
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        long long count = 0;

        if (!parser) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        while ((n = getline(&line, &cap, in)) > 0) {
                struct cs_call call;
                const char *msg = line;
                size_t len = (size_t)n;

                if (line[len - 1] == '\n')
                        len--;
                if (cs_parse_call(parser, line, len, &call, reason,
                                  sizeof(reason)) == 0 &&
                    cs_avro_encode(enc, &call, &msg, &len, why, sizeof(why)) <
                            0) {
                        /* Valid JSON the schema cannot hold: kept as JSON,
                         * as other records are. */
                        msg = line;
                        len = (size_t)n - (line[n - 1] == '\n');
                }
                if (put_frame(out, msg, len) < 0) {
                        snprintf(errstr, errstr_size, "cannot write: %s",
                                 strerror(errno));
                        count = -1;
                        break;
                }
                count++;
        }
        if (count >= 0 && ferror(in)) {
                snprintf(errstr, errstr_size, "cannot read: %s",
                         strerror(errno));
                count = -1;
        }
        free(line);
        cs_parser_destroy(parser);
        return count;
}
