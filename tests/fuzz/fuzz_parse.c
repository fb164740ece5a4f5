/* fuzz_parse.c: libFuzzer target for the call parser, differential twice:
 * cs_parse_call() (the flat reader, then yajl) must give exactly what
 * cs_parse_call_yajl() (yajl alone) gives, return, reason and every field;
 * and against jansson, whatever one of them calls valid JSON, so must the
 * other. The same input is also an Avro message: cs_avro_decode() must
 * agree with Avro C's generic reader (avro_value_read) on whether it is a
 * datum of the schema below, and on every field it reads. No input may
 * crash any of them (build and run with `make fuzz`). */
#include <stdlib.h>
#include <string.h>

#include <avro.h>
#include <jansson.h>

#include "../avroref.h"
#include "cs_avro.h"
#include "cs_parse.h"

/* The call's fields among others of every kind, so that skipping is
 * fuzzed too (the same as tests/test_avro_decode.c's schema_extra). */
static const char avro_schema[] =
        "{\"type\":\"record\",\"name\":\"T\",\"fields\":["
        "{\"name\":\"x_int\",\"type\":\"int\"},"
        "{\"name\":\"crime_id\",\"type\":\"string\"},"
        "{\"name\":\"x_arr\",\"type\":{\"type\":\"array\","
        "\"items\":\"string\"}},"
        "{\"name\":\"x_map\",\"type\":{\"type\":\"map\","
        "\"values\":\"long\"}},"
        "{\"name\":\"original_crime_type_name\",\"type\":\"string\"},"
        "{\"name\":\"x_rec\",\"type\":{\"type\":\"record\",\"name\":"
        "\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"double\"},"
        "{\"name\":\"b\",\"type\":\"boolean\"},"
        "{\"name\":\"c\",\"type\":\"bytes\"}]}},"
        "{\"name\":\"x_enum\",\"type\":{\"type\":\"enum\",\"name\":"
        "\"E\",\"symbols\":[\"A\",\"B\",\"C\"]}},"
        "{\"name\":\"call_date_time\",\"type\":\"string\"},"
        "{\"name\":\"x_fixed\",\"type\":{\"type\":\"fixed\",\"name\":"
        "\"F\",\"size\":3}},"
        "{\"name\":\"x_union\",\"type\":[\"null\",\"float\",\"R\"]},"
        "{\"name\":\"city\",\"type\":[\"null\",\"string\"]},"
        "{\"name\":\"disposition\",\"type\":[\"string\",\"null\"]},"
        "{\"name\":\"address\",\"type\":[\"null\",\"string\"]}]}";

/* Aborts unless our decoder and Avro C's generic reader agree on data.
 * Avro C checks no UTF-8, and we stop at the first bad string, maybe
 * before where it fails; a message it reads may still not be a valid
 * call. */
static void same_as_avro_c(const unsigned char *data, size_t size)
{
        static struct cs_avro_decoder *dec;
        static avro_value_iface_t *iface;
        avro_value_t v;
        char reason[CS_PARSE_REASON_MAX] = "", errstr[256];
        struct cs_call call;
        avro_schema_t schema;
        int ours, theirs, avro_reason;

        if (!dec) {
                dec = cs_avro_decoder_new(avro_schema, CS_AVRO_PLAIN,
                                          CS_AVRO_ANY_SCHEMA_ID, errstr,
                                          sizeof(errstr));
                if (!dec || avro_schema_from_json_length(
                                    avro_schema, strlen(avro_schema), &schema))
                        abort();
                iface = avro_generic_class_from_schema(schema);
                if (!iface)
                        abort();
                avroref_use_allocator();
        }
        ours = cs_avro_decode(dec, (const char *)data, size, &call, reason,
                              sizeof(reason));
        theirs = avroref_read(iface, (const char *)data, size, &v);
        avro_reason = ours < 0 && !strncmp(reason, "invalid Avro: ", 14);
        if (theirs && !avro_reason)
                abort();
        if (!theirs && avro_reason && !strstr(reason, "UTF-8"))
                abort();
        if (ours == 0 && avroref_diff(&v, &call) >= 0)
                abort();
}

/* Verdicts jansson gives for what RFC 8259 allows but it cannot hold:
 * numbers out of its range, nesting deeper than its limit, and \u0000 in
 * an object key (JSON_ALLOW_NUL covers values only). */
static int jansson_limit(const json_error_t *e)
{
        return strstr(e->text, "too big") || strstr(e->text, "overflow") ||
               strstr(e->text, "depth") ||
               strstr(e->text, "NUL byte in object key");
}

/* Aborts unless the flat reader and yajl agree on data: its own parser
 * each, so neither result's borrowed strings are overwritten. */
static void same_as_yajl(struct cs_parser *fast, struct cs_parser *ref,
                         const unsigned char *data, size_t size)
{
        char ra[CS_PARSE_REASON_MAX] = "", rb[CS_PARSE_REASON_MAX] = "";
        struct cs_call a, b;
        int i;

        if (cs_parse_call(fast, (const char *)data, size, &a, ra, sizeof(ra)) !=
                    cs_parse_call_yajl(ref, (const char *)data, size, &b, rb,
                                       sizeof(rb)) ||
            strcmp(ra, rb) || a.ts != b.ts || a.ts_usec != b.ts_usec)
                abort();
        for (i = 0; i < CS_F_COUNT; i++)
                if (!a.field[i].ptr != !b.field[i].ptr ||
                    a.field[i].len != b.field[i].len ||
                    (a.field[i].len &&
                     memcmp(a.field[i].ptr, b.field[i].ptr, a.field[i].len)))
                        abort();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
        static struct cs_parser *p, *ref;
        char reason[CS_PARSE_REASON_MAX];
        struct cs_call call;
        json_error_t err;
        json_t *doc;
        int ours, json_ok, our_json_ok;

        if (!p) {
                p = cs_parser_new();
                ref = cs_parser_new();
                if (!p || !ref)
                        abort();
        }
        same_as_avro_c(data, size);
        same_as_yajl(p, ref, data, size);
        ours = cs_parse_call(p, (const char *)data, size, &call, reason,
                             sizeof(reason));
        doc = json_loadb((const char *)data, size,
                         JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
        /* jansson stops at a raw NUL byte (RFC 8259 has none outside
         * strings, and we refuse it), so such inputs prove nothing. */
        if ((!doc && jansson_limit(&err)) || memchr(data, 0, size)) {
                json_decref(doc);
                return 0;
        }
        json_ok = doc != NULL;
        /* Our reasons for text that is not JSON at all. */
        our_json_ok = ours == 0 || (strncmp(reason, "invalid JSON", 12) &&
                                    strncmp(reason, "invalid UTF-8", 13) &&
                                    strcmp(reason, "empty message"));
        if (json_ok != our_json_ok)
                abort();
        /* A valid call is an object to jansson too, with its crime_id. */
        if (ours == 0 &&
            (!json_is_object(doc) || !json_object_get(doc, "crime_id")))
                abort();
        json_decref(doc);
        return 0;
}
