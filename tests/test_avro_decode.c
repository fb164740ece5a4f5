/* test_avro_decode.c: the Avro decoder (ingest/avro.c) alone, no broker.
 *
 * The messages are written here with Avro C's generic writer from JSON
 * calls (not with the project's encoder), and the decoded calls are held
 * to what cs_parse_call() makes of the same call as JSON: same result,
 * same reason, same fields. The differential test holds the decoder to
 * Avro C's generic reader over many mutated messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <avro.h>
#include <jansson.h>

#include "avroref.h"
#include "cs_avro.h"
#include "cs_parse.h"

/* Calls as JSON, valid and not: nulls, absent and empty fields, integer
 * crime_ids, non-ASCII text, a bad date. All crime_ids are digits so that
 * the schemas with a long crime_id hold them too. */
static const char *const calls_json[] = {
        "{\"crime_id\":\"190000001\",\"original_crime_type_name\":\"Passing "
        "Call\",\"call_date_time\":\"2018-12-31T00:03:00.000\","
        "\"disposition\":\"HAN\",\"address\":\"700 Block Of Folsom "
        "St\",\"city\":\"San Francisco\",\"state\":\"CA\"}",
        "{\"crime_id\":190000002,\"original_crime_type_name\":\"Audible "
        "Alarm\",\"call_date_time\":\"2018-12-31 00:05\",\"report_date\":"
        "\"2018-12-31T00:00:00.000\",\"call_date\":\"2018-12-31T00:00:00.000\","
        "\"offense_date\":\"2018-12-31T00:00:00.000\",\"call_time\":\"00:05\","
        "\"agency_id\":\"1\",\"address_type\":\"Premise address\","
        "\"common_location\":\"\"}",
        "{\"crime_id\":\"190000003\",\"original_crime_type_name\":\"Caf\xc3\xa9"
        " \xe2\x82\xac\",\"call_date_time\":\"2019-01-01T10:00:00.123456\","
        "\"city\":null,\"disposition\":null}",
        "{\"crime_id\":\"190000004\",\"original_crime_type_name\":\"Fight\","
        "\"call_date_time\":\"2019-02-30T10:00:00\"}",
        "{\"crime_id\":\"190000005\",\"original_crime_type_name\":\"\","
        "\"call_date_time\":\"2019-01-01T10:00:00\"}",
        "{\"crime_id\":\"190000006\",\"original_crime_type_name\":\"Fight\","
        "\"call_date_time\":\"2019-01-01T10:00:00\",\"address\":\"a\\u0000b\"}",
};

/* Calls the nullable schemas alone can hold (a required field null). */
static const char *const null_calls_json[] = {
        "{\"crime_id\":\"190000007\",\"original_crime_type_name\":\"Fight\","
        "\"call_date_time\":null}",
        "{\"crime_id\":null,\"original_crime_type_name\":\"Fight\","
        "\"call_date_time\":\"2019-01-01T10:00:00\"}",
        "{\"crime_id\":\"190000008\",\"original_crime_type_name\":null,"
        "\"call_date_time\":\"2019-01-01T10:00:00\"}",
};

#define F_STR       "\"string\""
#define F_NS        "[\"null\",\"string\"]"
#define F_SN        "[\"string\",\"null\"]"
#define FIELD(n, t) "{\"name\":\"" n "\",\"type\":" t "}"
#define RECORD(fields)                                                         \
        "{\"type\":\"record\",\"name\":\"T\",\"fields\":[" fields "]}"

/* Every known field, in the reverse of the table's order, unions the other
 * way round. */
static const char schema_reversed[] = RECORD(
        FIELD("common_location", F_SN) "," FIELD("address_type", F_SN) "," FIELD("agency_id", F_SN) "," FIELD("state", F_SN) "," FIELD("city", F_SN) "," FIELD(
                "address",
                F_SN) "," FIELD("disposition",
                                F_SN) "," FIELD("call_date_time",
                                                F_STR) "," FIELD("call_time",
                                                                 F_SN) "," FIELD("offense_date",
                                                                                 F_SN) "," FIELD("call_date",
                                                                                                 F_SN) "," FIELD("report_date",
                                                                                                                 F_SN) "," FIELD("original_crime_type_name",
                                                                                                                                 F_STR) "," FIELD("crime_id",
                                                                                                                                                  F_STR));

/* Fields of every Avro type the project does not know, between its own. */
static const char
        schema_extra
                [] = RECORD(FIELD("x_int", "\"int\"") "," FIELD("crime_id", F_STR) "," FIELD("x_arr", "{\"type\":\"array\",\"items\":\"string\"}") "," FIELD("x_map", "{\"type\":\"map\",\"values\":\"long\"}") "," FIELD("original_crime_type_name", F_STR) "," FIELD("x_rec",
                                                                                                                                                                                                                                                                       "{\"type\":\"record\",\"name\":\"R\",\"fields\":[" FIELD("a", "\"double\"") "," FIELD("b", "\"boolean\"") "," FIELD("c",
                                                                                                                                                                                                                                                                                                                                                                                           "\"bytes\"") "]}") "," FIELD("x_enum",
                                                                                                                                                                                                                                                                                                                                                                                                                        "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"B\",\"C\"]}") "," FIELD("call_date_time", F_STR) "," FIELD("x_fixed", "{\"type\":\"fixed\",\"name\":\"F\",\"size\":3}") "," FIELD("x_union",
                                                                                                                                                                                                                                                                                                                                                                                                                                                                                                                                                                                                                  "[\"null\",\"float\",\"R\"]") "," FIELD("city", F_NS) "," FIELD("x_null", "\"null\"") "," FIELD("disposition", F_NS) "," FIELD("address",
                                                                                                                                                                                                                                                                                                                                                                                                                                                                                                                                                                                                                                                                                                                                                 F_NS) "," FIELD("x_long",
                                                                                                                                                                                                                                                                                                                                                                                                                                                                                                                                                                                                                                                                                                                                                                 "\"long\""));

/* crime_id a long, the other fields the shipped schema's. */
static const char schema_long_id[] = RECORD(
        FIELD("crime_id", "\"long\"") "," FIELD("original_crime_type_name", F_STR) "," FIELD("call_date_time", F_STR) "," FIELD("report_date", F_NS) "," FIELD(
                "call_date",
                F_NS) "," FIELD("offense_date",
                                F_NS) "," FIELD("call_time",
                                                F_NS) "," FIELD("disposition",
                                                                F_NS) "," FIELD("address",
                                                                                F_NS) "," FIELD("city",
                                                                                                F_NS) "," FIELD("state",
                                                                                                                F_NS) "," FIELD("agency_id",
                                                                                                                                F_NS) "," FIELD("address_type",
                                                                                                                                                F_NS) "," FIELD("common_location",
                                                                                                                                                                F_NS));

/* Everything nullable, crime_id a nullable long. */
static const char schema_nullable[] = RECORD(FIELD(
        "crime_id",
        "[\"null\","
        "\"long\"]") "," FIELD("original_crime_type_name",
                               F_SN) "," FIELD("call_date_time",
                                               F_NS) "," FIELD("city",
                                                               F_NS) "," FIELD("disposition",
                                                                               F_SN) "," FIELD("addres"
                                                                                               "s",
                                                                                               F_NS));

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
        uint64_t x = rng_state;

        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        return rng_state = x;
}

/* Fills a value the project does not read with something of its type. */
static void fill_other(avro_value_t *v, int depth)
{
        avro_schema_t s = avro_value_get_schema(v);
        avro_value_t c;
        size_t i, n;
        static const char bytes[] = "\x00\xff\x10";

        switch (avro_value_get_type(v)) {
        case AVRO_BOOLEAN:
                assert_int_equal(avro_value_set_boolean(v, 1), 0);
                break;
        case AVRO_INT32:
                assert_int_equal(avro_value_set_int(v, -300), 0);
                break;
        case AVRO_INT64:
                assert_int_equal(avro_value_set_long(v, 1LL << 40), 0);
                break;
        case AVRO_FLOAT:
                assert_int_equal(avro_value_set_float(v, 1.5f), 0);
                break;
        case AVRO_DOUBLE:
                assert_int_equal(avro_value_set_double(v, -2.25), 0);
                break;
        case AVRO_STRING:
                assert_int_equal(avro_value_set_string(v, "extra text"), 0);
                break;
        case AVRO_BYTES:
                assert_int_equal(avro_value_set_bytes(v, (void *)bytes, 3), 0);
                break;
        case AVRO_NULL:
                assert_int_equal(avro_value_set_null(v), 0);
                break;
        case AVRO_ENUM:
                assert_int_equal(avro_value_set_enum(v, 2), 0);
                break;
        case AVRO_FIXED:
                assert_int_equal(
                        avro_value_set_fixed(v, (void *)bytes,
                                             (size_t)avro_schema_fixed_size(s)),
                        0);
                break;
        case AVRO_ARRAY:
                for (i = 0; i < 3; i++) {
                        assert_int_equal(avro_value_append(v, &c, NULL), 0);
                        fill_other(&c, depth + 1);
                }
                break;
        case AVRO_MAP:
                assert_int_equal(avro_value_add(v, "k1", &c, NULL, NULL), 0);
                fill_other(&c, depth + 1);
                assert_int_equal(avro_value_add(v, "k2", &c, NULL, NULL), 0);
                fill_other(&c, depth + 1);
                break;
        case AVRO_RECORD:
                assert_int_equal(avro_value_get_size(v, &n), 0);
                for (i = 0; i < n; i++) {
                        assert_int_equal(
                                avro_value_get_by_index(v, i, &c, NULL), 0);
                        fill_other(&c, depth + 1);
                }
                break;
        case AVRO_UNION:
                /* The last branch, the most involved one here. */
                n = avro_schema_union_size(s);
                assert_int_equal(avro_value_set_branch(
                                         v, depth < 3 ? (int)n - 1 : 0, &c),
                                 0);
                fill_other(&c, depth + 1);
                break;
        default:
                fail_msg("type %d", avro_value_get_type(v));
        }
}

/* Sets a known field's value (not a union) from JSON j. */
static void fill_known(avro_value_t *v, json_t *j)
{
        char text[32];

        switch (avro_value_get_type(v)) {
        case AVRO_STRING:
                if (json_is_integer(j)) {
                        snprintf(text, sizeof(text), "%lld",
                                 (long long)json_integer_value(j));
                        assert_int_equal(avro_value_set_string(v, text), 0);
                } else {
                        assert_true(json_is_string(j));
                        assert_int_equal(avro_value_set_string_len(
                                                 v, json_string_value(j),
                                                 json_string_length(j) + 1),
                                         0);
                }
                break;
        case AVRO_INT64:
                assert_int_equal(
                        avro_value_set_long(
                                v, json_is_integer(j)
                                           ? json_integer_value(j)
                                           : strtoll(json_string_value(j), NULL,
                                                     10)),
                        0);
                break;
        default:
                fail_msg("known field of type %d", avro_value_get_type(v));
        }
}

/* Writes call (JSON text) as a datum of schema with Avro C's generic
 * writer: known fields from the call (absent or null: the null branch),
 * the others filled by fill_other(). *out is the caller's to free. */
static void write_with_avro_c(const char *schema_json, const char *call,
                              char **out, size_t *len)
{
        avro_schema_t schema;
        avro_value_iface_t *iface;
        avro_value_t rec, fv, bv;
        avro_writer_t w;
        json_error_t jerr;
        json_t *obj = json_loads(call, JSON_ALLOW_NUL, &jerr);
        size_t i, n, size;

        assert_non_null(obj);
        assert_int_equal(avro_schema_from_json_length(
                                 schema_json, strlen(schema_json), &schema),
                         0);
        iface = avro_generic_class_from_schema(schema);
        assert_int_equal(avro_generic_value_new(iface, &rec), 0);
        n = avro_schema_record_size(schema);
        for (i = 0; i < n; i++) {
                const char *name;
                json_t *j;
                int known = 0, k;

                assert_int_equal(avro_value_get_by_index(&rec, i, &fv, &name),
                                 0);
                for (k = 0; k < CS_F_COUNT; k++)
                        known |= !strcmp(name, cs_field_names[k]);
                if (!known) {
                        fill_other(&fv, 0);
                        continue;
                }
                j = json_object_get(obj, name);
                if (avro_value_get_type(&fv) == AVRO_UNION) {
                        avro_schema_t us = avro_value_get_schema(&fv);
                        int null_at =
                                is_avro_null(avro_schema_union_branch(us, 0))
                                        ? 0
                                        : 1;

                        if (!j || json_is_null(j)) {
                                assert_int_equal(avro_value_set_branch(
                                                         &fv, null_at, &bv),
                                                 0);
                                assert_int_equal(avro_value_set_null(&bv), 0);
                                continue;
                        }
                        assert_int_equal(
                                avro_value_set_branch(&fv, 1 - null_at, &bv),
                                0);
                        fill_known(&bv, j);
                        continue;
                }
                assert_non_null(j);
                fill_known(&fv, j);
        }
        assert_int_equal(avro_value_sizeof(&rec, &size), 0);
        *out = malloc(size + 1);
        assert_non_null(*out);
        w = avro_writer_memory(*out, (int64_t)size);
        assert_int_equal(avro_value_write(w, &rec), 0);
        assert_int_equal(avro_writer_tell(w), (int64_t)size);
        *len = size;
        avro_writer_free(w);
        avro_value_decref(&rec);
        avro_value_iface_decref(iface);
        avro_schema_decref(schema);
        json_decref(obj);
}

/* The decoder's call and reason equal the JSON parser's for the same
 * call. */
static void check_same_as_json(struct cs_avro_decoder *dec,
                               struct cs_parser *parser, const char *schema,
                               const char *json)
{
        struct cs_call a, j;
        char ra[CS_PARSE_REASON_MAX] = "", rj[CS_PARSE_REASON_MAX] = "";
        char *msg;
        size_t len;
        int ka, kj, i;

        write_with_avro_c(schema, json, &msg, &len);
        ka = cs_avro_decode(dec, msg, len, &a, ra, sizeof(ra));
        kj = cs_parse_call(parser, json, strlen(json), &j, rj, sizeof(rj));
        if (ka != kj || (ka && strcmp(ra, rj)))
                fail_msg("%s\n  avro %d '%s', json %d '%s'", json, ka, ra, kj,
                         rj);
        for (i = 0; i < CS_F_COUNT && ka == 0; i++) {
                char quoted[64];

                /* A field the schema lacks is absent. */
                snprintf(quoted, sizeof(quoted), "\"%s\"", cs_field_names[i]);
                if (!strstr(schema, quoted)) {
                        assert_null(a.field[i].ptr);
                        continue;
                }
                if (!a.field[i].ptr != !j.field[i].ptr ||
                    a.field[i].len != j.field[i].len ||
                    (a.field[i].len &&
                     memcmp(a.field[i].ptr, j.field[i].ptr, a.field[i].len)))
                        fail_msg("%s: field %s differs", json,
                                 cs_field_names[i]);
        }
        if (ka == 0) {
                assert_int_equal(a.ts, j.ts);
                assert_int_equal(a.ts_usec, j.ts_usec);
        }
        free(msg);
}

static void test_avro_shipped_schema_is_built_in(void **state)
{
        const char *data = getenv("CALLSTREAM_DATA");
        char path[4096], errstr[256], *json = NULL;

        (void)state;
        snprintf(path, sizeof(path), "%s/../../schemas/calls.avsc",
                 data ? data : "tests/data");
        if (cs_avro_schema_load(path, &json, errstr, sizeof(errstr)) < 0)
                fail_msg("%s", errstr);
        assert_string_equal(json, cs_avro_calls_schema);
        free(json);
}

static void test_avro_schema_variants_decode_same_calls(void **state)
{
        const char *const schemas[] = {cs_avro_calls_schema, schema_reversed,
                                       schema_extra, schema_long_id,
                                       schema_nullable};
        struct cs_parser *parser = cs_parser_new();
        char errstr[256];
        size_t s, i;

        (void)state;
        for (s = 0; s < CS_ARRAY_SIZE(schemas); s++) {
                struct cs_avro_decoder *dec = cs_avro_decoder_new(
                        schemas[s], CS_AVRO_PLAIN, CS_AVRO_ANY_SCHEMA_ID,
                        errstr, sizeof(errstr));

                if (!dec)
                        fail_msg("schema %zu: %s", s, errstr);
                for (i = 0; i < CS_ARRAY_SIZE(calls_json); i++)
                        check_same_as_json(dec, parser, schemas[s],
                                           calls_json[i]);
                if (schemas[s] == schema_nullable)
                        for (i = 0; i < CS_ARRAY_SIZE(null_calls_json); i++)
                                check_same_as_json(dec, parser, schemas[s],
                                                   null_calls_json[i]);
                cs_avro_decoder_destroy(dec);
        }
        cs_parser_destroy(parser);
}

static void test_avro_schema_refused(void **state)
{
        static const struct {
                const char *schema, *want;
        } cases[] = {
                {RECORD(FIELD("crime_id", F_STR) "," FIELD(
                         "original_crime_type_name", F_STR)),
                 "avro schema: missing required field call_date_time"},
                {RECORD(FIELD("original_crime_type_name",
                              F_STR) "," FIELD("call_date_time", F_STR)),
                 "avro schema: missing required field crime_id"},
                {RECORD(FIELD("crime_id", "\"double\"") "," FIELD(
                         "original_crime_type_name",
                         F_STR) "," FIELD("call_date_time", F_STR)),
                 "avro schema: field crime_id has type double"},
                {RECORD(FIELD("crime_id", F_STR) "," FIELD(
                         "original_crime_type_name",
                         F_STR) "," FIELD("call_date_time",
                                          "[\"null\",\"string\",\"int\"]")),
                 "avro schema: field call_date_time has type union"},
                {RECORD(FIELD("crime_id", F_STR) "," FIELD(
                         "original_crime_type_name",
                         F_STR) "," FIELD("call_date_time",
                                          F_STR) "," FIELD("city", "\"int\"")),
                 "avro schema: field city has type int"},
                {"\"string\"", "not a record"},
                {"{\"type\":\"record\",", "avro schema: "},
        };
        char errstr[256];
        size_t i;

        (void)state;
        for (i = 0; i < CS_ARRAY_SIZE(cases); i++) {
                struct cs_avro_decoder *dec = cs_avro_decoder_new(
                        cases[i].schema, CS_AVRO_PLAIN, CS_AVRO_ANY_SCHEMA_ID,
                        errstr, sizeof(errstr));

                assert_null(dec);
                if (!strstr(errstr, cases[i].want))
                        fail_msg("case %zu: '%s', want '%s'", i, errstr,
                                 cases[i].want);
                assert_null(strchr(errstr, '\n'));
        }
}

static void expect_reject(struct cs_avro_decoder *dec, const char *msg,
                          size_t len, const char *want)
{
        struct cs_call call;
        char reason[CS_PARSE_REASON_MAX] = "";

        if (cs_avro_decode(dec, msg, len, &call, reason, sizeof(reason)) == 0)
                fail_msg("decoded, want '%s'", want);
        if (strncmp(reason, want, strlen(want)))
                fail_msg("reason '%s', want '%s'", reason, want);
        assert_null(call.field[CS_F_CRIME_ID].ptr);
}

static void test_avro_corrupt_payloads_rejected(void **state)
{
        struct cs_avro_decoder *plain, *conf7, *conf_any;
        struct cs_call call;
        char errstr[256], want[128], reason[CS_PARSE_REASON_MAX];
        char *d, *m, *bad;
        size_t dlen, blen, i;
        const char *at;

        (void)state;
        plain = cs_avro_decoder_new(cs_avro_calls_schema, CS_AVRO_PLAIN,
                                    CS_AVRO_ANY_SCHEMA_ID, errstr,
                                    sizeof(errstr));
        conf7 = cs_avro_decoder_new(cs_avro_calls_schema, CS_AVRO_CONFLUENT, 7,
                                    errstr, sizeof(errstr));
        conf_any = cs_avro_decoder_new(cs_avro_calls_schema, CS_AVRO_CONFLUENT,
                                       CS_AVRO_ANY_SCHEMA_ID, errstr,
                                       sizeof(errstr));
        assert_non_null(plain);
        assert_non_null(conf7);
        assert_non_null(conf_any);
        write_with_avro_c(cs_avro_calls_schema, calls_json[0], &d, &dlen);
        assert_int_equal(
                cs_avro_decode(plain, d, dlen, &call, reason, sizeof(reason)),
                0);

        /* Every cut short: truncated. */
        for (i = 0; i < dlen; i++)
                expect_reject(plain, d, i, "invalid Avro: truncated at byte ");
        /* Bytes after the datum. */
        m = malloc(dlen + 5 + 3);
        memcpy(m, d, dlen);
        memcpy(m + dlen, "xyz", 3);
        snprintf(want, sizeof(want),
                 "invalid Avro: 3 trailing bytes at byte %zu", dlen);
        expect_reject(plain, m, dlen + 3, want);
        /* Garbage. */
        expect_reject(plain, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11,
                      "invalid Avro: varint longer than 10 bytes at byte 0");
        expect_reject(plain, "\x01garbage", 8,
                      "invalid Avro: negative length -1 in crime_id at byte 0");
        expect_reject(plain, "{\"crime_id\":\"1\"}", 16, "invalid Avro: ");
        expect_reject(plain, "\x82\x80\x80\x01", 4,
                      "invalid Avro: crime_id of 1048577 bytes at byte 0, "
                      "over the limit");

        /* Confluent framing: magic byte, schema id, header. */
        m[0] = 0;
        m[1] = m[2] = m[3] = 0;
        m[4] = 7;
        memcpy(m + 5, d, dlen);
        assert_int_equal(cs_avro_decode(conf7, m, dlen + 5, &call, reason,
                                        sizeof(reason)),
                         0);
        assert_int_equal(cs_avro_decode(conf_any, m, dlen + 5, &call, reason,
                                        sizeof(reason)),
                         0);
        m[4] = 8;
        expect_reject(conf7, m, dlen + 5, "unexpected schema id 8");
        assert_int_equal(cs_avro_decode(conf_any, m, dlen + 5, &call, reason,
                                        sizeof(reason)),
                         0);
        m[0] = 1;
        expect_reject(conf_any, m, dlen + 5,
                      "invalid Avro: magic byte 0x01, expected 0");
        expect_reject(conf_any, "\0\0\0", 3,
                      "invalid Avro: 3 bytes, shorter than the Confluent "
                      "header");
        /* Positions count from the message's first byte. */
        m[0] = 0;
        expect_reject(conf_any, m, dlen + 5 - 1,
                      "invalid Avro: truncated at byte ");
        free(m);

        /* Invalid UTF-8 in a string, at its byte. */
        write_with_avro_c(cs_avro_calls_schema,
                          "{\"crime_id\":\"190000009\","
                          "\"original_crime_type_name\":\"Fight\","
                          "\"call_date_time\":\"2019-01-01T10:00:00\","
                          "\"address\":\"BADMARK\"}",
                          &bad, &blen);
        at = memmem(bad, blen, "BADMARK", 7);
        assert_non_null(at);
        memcpy((char *)at + 3, "\xc3\x28", 2);
        snprintf(want, sizeof(want),
                 "invalid Avro: invalid UTF-8 in address at byte %zu",
                 (size_t)(at - bad) + 3);
        expect_reject(plain, bad, blen, want);
        /* An overlong form and a surrogate, as the JSON path refuses. */
        memcpy((char *)at + 3, "\xc0\xaf", 2);
        expect_reject(plain, bad, blen, want);
        free(bad);

        free(d);
        cs_avro_decoder_destroy(plain);
        cs_avro_decoder_destroy(conf7);
        cs_avro_decoder_destroy(conf_any);
        cs_avro_decoder_destroy(NULL);
}

/* The decoder's fields equal those of the generic value. */
static void check_fields(const avro_value_t *v, const struct cs_call *call,
                         size_t len)
{
        int k = avroref_diff(v, call);

        if (k >= 0)
                fail_msg("field %s differs on a message of %zu bytes",
                         cs_field_names[k], len);
}

static void test_avro_differential_against_avro_c(void **state)
{
        struct cs_avro_decoder *dec;
        avro_schema_t schema;
        avro_value_iface_t *iface;
        avro_value_t v;
        char *base[CS_ARRAY_SIZE(calls_json)], errstr[256];
        size_t blen[CS_ARRAY_SIZE(calls_json)];
        size_t i, agree_ok = 0, agree_bad = 0, invalid_call = 0;
        const char *schema_json = schema_extra;

        (void)state;
        dec = cs_avro_decoder_new(schema_json, CS_AVRO_PLAIN,
                                  CS_AVRO_ANY_SCHEMA_ID, errstr,
                                  sizeof(errstr));
        assert_non_null(dec);
        /* Malloc as before while neither arena is on. */
        avroref_use_allocator();
        avroref_perm(1);
        assert_int_equal(avro_schema_from_json_length(
                                 schema_json, strlen(schema_json), &schema),
                         0);
        iface = avro_generic_class_from_schema(schema);
        avroref_perm(0);
        assert_non_null(iface);
        for (i = 0; i < CS_ARRAY_SIZE(calls_json); i++)
                write_with_avro_c(schema_json, calls_json[i], &base[i],
                                  &blen[i]);

        for (i = 0; i < 30000; i++) {
                size_t b = rnd() % CS_ARRAY_SIZE(calls_json);
                size_t len = blen[b], k, nmut = 1 + rnd() % 3;
                char msg[1024], reason[CS_PARSE_REASON_MAX];
                struct cs_call call;
                int ours, theirs, structural, avro_reason;

                memcpy(msg, base[b], len);
                for (k = 0; k < nmut; k++) {
                        size_t at = len ? rnd() % len : 0;

                        switch (rnd() % 6) {
                        case 0:
                        case 1: /* a byte changed */
                                if (len)
                                        msg[at] = (char)rnd();
                                break;
                        case 2: /* a small varint's value moved */
                                if (len)
                                        msg[at] = (char)(msg[at] ^
                                                         (1 << rnd() % 7));
                                break;
                        case 3: /* cut */
                                len = at;
                                break;
                        case 4: /* a byte inserted */
                                if (len < sizeof(msg) - 1) {
                                        memmove(msg + at + 1, msg + at,
                                                len - at);
                                        msg[at] = (char)rnd();
                                        len++;
                                }
                                break;
                        default: /* a byte removed */
                                if (len) {
                                        memmove(msg + at, msg + at + 1,
                                                len - at - 1);
                                        len--;
                                }
                        }
                }
                ours = cs_avro_decode(dec, msg, len, &call, reason,
                                      sizeof(reason));
                theirs = avroref_read(iface, msg, len, &v);
                /* Avro C does not check UTF-8: we may stop at a bad
                 * string before the place where it fails. */
                avro_reason =
                        ours < 0 && !strncmp(reason, "invalid Avro: ", 14);
                structural = avro_reason && !strstr(reason, "UTF-8");
                if (theirs < 0) {
                        if (!avro_reason)
                                fail_msg("Avro C refuses a message we read "
                                         "(%d, '%s')",
                                         ours, ours ? reason : "");
                        agree_bad++;
                        continue;
                }
                if (structural)
                        fail_msg("Avro C reads a message we refuse: %s",
                                 reason);
                if (ours == 0) {
                        check_fields(&v, &call, len);
                        agree_ok++;
                } else {
                        invalid_call++;
                }
        }
        printf("# %zu read by both, %zu refused by both, %zu read by both "
               "and not valid calls\n",
               agree_ok, agree_bad, invalid_call);
        assert_true(agree_ok > 100 && agree_bad > 100);
        for (i = 0; i < CS_ARRAY_SIZE(calls_json); i++)
                free(base[i]);
        cs_avro_decoder_destroy(dec);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_avro_shipped_schema_is_built_in),
                cmocka_unit_test(test_avro_schema_variants_decode_same_calls),
                cmocka_unit_test(test_avro_schema_refused),
                cmocka_unit_test(test_avro_corrupt_payloads_rejected),
                cmocka_unit_test(test_avro_differential_against_avro_c),
        };

        return cmocka_run_group_tests_name("avro_decode", tests, NULL, NULL);
}
