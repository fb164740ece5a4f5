/* fuzz_parse.c: libFuzzer target for the call parser, differential twice:
 * cs_parse_call() (the flat reader, then yajl) must give exactly what
 * cs_parse_call_yajl() (yajl alone) gives, return, reason and every field;
 * and against jansson, whatever one of them calls valid JSON, so must the
 * other. No input may crash any of them (build and run with `make fuzz`). */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cs_parse.h"

/* Verdicts jansson gives for what RFC 8259 allows but it cannot hold:
 * numbers out of its range, and nesting deeper than its limit. */
static int jansson_limit(const json_error_t *e)
{
        return strstr(e->text, "too big") || strstr(e->text, "overflow") ||
               strstr(e->text, "depth");
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
