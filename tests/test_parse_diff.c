/* test_parse_diff.c: the parser's flat reader against yajl. cs_parse_call()
 * (the flat reader first, yajl for what it leaves) must give exactly what
 * cs_parse_call_yajl() (yajl alone, the reference) gives: the same return,
 * the same reason, the same fields byte for byte, for the real sample, the
 * hostile corpus, generated streams with malformed lines, and random
 * mutations of them all (byte flips, truncations, insertions, \u escapes,
 * duplicate keys, white space, deep nesting). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "cs_jsonsplit.h"
#include "cs_parse.h"
#include "harness.h"

/* Two parsers, so that neither result's borrowed strings are overwritten by
 * the other's parse. */
struct fx {
        struct cs_parser *fast;
        struct cs_parser *ref;
        char *bin, *data;
        uint64_t checked;
};

static int setup(void **state)
{
        struct fx *f = calloc(1, sizeof(*f));

        if (!f)
                return -1;
        f->fast = cs_parser_new();
        f->ref = cs_parser_new();
        if (!f->fast || !f->ref || th_find_bin_data(&f->bin, &f->data) < 0)
                return -1;
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fx *f = *state;

        cs_parser_destroy(f->fast);
        cs_parser_destroy(f->ref);
        free(f->bin);
        free(f->data);
        free(f);
        return 0;
}

/* A deterministic generator (splitmix64), so a failure repeats. */
static uint64_t rng_state;

static uint64_t rnd(void)
{
        uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

static size_t below(size_t n)
{
        return n ? (size_t)(rnd() % n) : 0;
}

/* The first bytes of msg, escaped, for a failure message. */
static const char *shown(const char *msg, size_t len)
{
        static char out[4 * 300 + 8];
        size_t i, n = 0;

        for (i = 0; i < len && i < 300; i++) {
                unsigned char c = (unsigned char)msg[i];

                if (c >= 0x20 && c < 0x7f && c != '\\')
                        out[n++] = (char)c;
                else
                        n += (size_t)sprintf(out + n, "\\x%02x", c);
        }
        if (i < len)
                n += (size_t)sprintf(out + n, "...");
        out[n] = '\0';
        return out;
}

/* Parses msg both ways and fails the test unless the results are equal.
 * The message is copied to a buffer of exactly its length, so a read past
 * the end shows under the sanitizers. Returns the return value. */
static int same(struct fx *f, const char *msg, size_t len)
{
        char *buf = malloc(len ? len : 1);
        char ra[CS_PARSE_REASON_MAX], rb[CS_PARSE_REASON_MAX];
        struct cs_call a, b;
        int rca, rcb, i;

        assert_non_null(buf);
        if (len)
                memcpy(buf, msg, len);
        memset(ra, 0, sizeof(ra));
        memset(rb, 0, sizeof(rb));
        rca = cs_parse_call(f->fast, buf, len, &a, ra, sizeof(ra));
        rcb = cs_parse_call_yajl(f->ref, buf, len, &b, rb, sizeof(rb));
        if (rca != rcb || strcmp(ra, rb))
                fail_msg("%d \"%s\" but yajl %d \"%s\" for %s", rca, ra, rcb,
                         rb, shown(msg, len));
        for (i = 0; i < CS_F_COUNT; i++) {
                const struct cs_str *x = &a.field[i], *y = &b.field[i];

                if (!x->ptr != !y->ptr || x->len != y->len ||
                    (x->len && memcmp(x->ptr, y->ptr, x->len)))
                        fail_msg("%s: \"%.*s\" (%s) but yajl \"%.*s\" (%s) "
                                 "for %s",
                                 cs_field_names[i], (int)x->len,
                                 x->ptr ? x->ptr : "", x->ptr ? "set" : "NULL",
                                 (int)y->len, y->ptr ? y->ptr : "",
                                 y->ptr ? "set" : "NULL", shown(msg, len));
        }
        if (a.ts != b.ts || a.ts_usec != b.ts_usec)
                fail_msg("time %lld.%06d but yajl %lld.%06d for %s",
                         (long long)a.ts, a.ts_usec, (long long)b.ts, b.ts_usec,
                         shown(msg, len));
        free(buf);
        f->checked++;
        return rca;
}

/*
 * Seeds: the real sample, the hostile corpus, generated streams.
 */

struct corpus {
        struct th_buf *msg;
        size_t n, cap;
};

static void corpus_add(struct corpus *c, const char *msg, size_t len)
{
        if (c->n == c->cap) {
                c->cap = c->cap ? 2 * c->cap : 256;
                c->msg = th_realloc(c->msg, c->cap * sizeof(*c->msg));
        }
        memset(&c->msg[c->n], 0, sizeof(c->msg[c->n]));
        th_buf_add(&c->msg[c->n], msg, len);
        c->n++;
}

static void corpus_free(struct corpus *c)
{
        size_t i;

        for (i = 0; i < c->n; i++)
                th_buf_free(&c->msg[i]);
        free(c->msg);
}

static int on_msg(void *opaque, const char *msg, size_t len, uint64_t off)
{
        (void)off;
        corpus_add(opaque, msg, len);
        return 0;
}

/* The sample's records as the ingest sees them (split and compacted by
 * cs_jsonsplit), and again as jansson prints them indented: white space
 * between every token. */
static void load_sample(struct fx *f, struct corpus *c)
{
        char *path = th_asprintf("%s/police-department-calls-for-service"
                                 ".sample.json",
                                 f->data);
        struct cs_jsonsplit *js;
        struct th_buf text = {0};
        json_error_t err;
        json_t *doc, *v;
        size_t i, before = c->n;

        assert_int_equal(th_read_file(path, &text), 0);
        js = cs_jsonsplit_new(1 << 20, on_msg, c);
        assert_non_null(js);
        assert_int_equal(cs_jsonsplit_feed(js, text.p, text.len), 0);
        assert_int_equal(cs_jsonsplit_end(js), 0);
        cs_jsonsplit_destroy(js);
        assert_true(c->n - before > 100);

        doc = json_loadb(text.p, text.len, 0, &err);
        assert_non_null(doc);
        json_array_foreach(doc, i, v)
        {
                char *s = json_dumps(v, JSON_INDENT(i % 5) | JSON_ENSURE_ASCII |
                                                JSON_PRESERVE_ORDER);

                assert_non_null(s);
                corpus_add(c, s, strlen(s));
                free(s);
        }
        json_decref(doc);
        th_buf_free(&text);
        free(path);
}

/* Decodes the payload escapes of hostile.tsv (\\, \t, \n, \xHH). */
static void hostile_unescape(const char *s, struct th_buf *out)
{
        while (*s) {
                char ch = *s++;

                if (ch == '\\' && *s) {
                        char e = *s++;

                        if (e == 't')
                                ch = '\t';
                        else if (e == 'n')
                                ch = '\n';
                        else if (e == 'x' && s[0] && s[1]) {
                                char hex[3] = {s[0], s[1], 0};

                                ch = (char)strtol(hex, NULL, 16);
                                s += 2;
                        } else
                                ch = e;
                }
                th_buf_add(out, &ch, 1);
        }
}

/* The generated payloads of hostile.tsv (@KIND:ARGS), nesting capped: the
 * differential holds at any depth, and deep ones cost only time here. */
static void hostile_generate(const char *spec, struct th_buf *out)
{
        static const char head[] =
                "\"original_crime_type_name\":\"Passing Call\","
                "\"call_date_time\":\"2018-12-31T23:00:00\"";
        char id[32];
        long n = 0, i;

        if (sscanf(spec, "@bigfield:%31[^:]:%ld", id, &n) == 2) {
                th_buf_addf(out, "{\"crime_id\":\"%s\",%s,\"address\":\"", id,
                            head);
                for (i = 0; i < n; i++)
                        th_buf_add(out, "a", 1);
                th_buf_add(out, "\"}", 2);
        } else if (sscanf(spec, "@digits:%ld", &n) == 1) {
                th_buf_add(out, "{\"crime_id\":", 12);
                for (i = 0; i < n; i++)
                        th_buf_add(out, i ? "7" : "1", 1);
                th_buf_addf(out, ",%s}", head);
        } else if (sscanf(spec, "@nestedobj:%31[^:]:%ld", id, &n) == 2) {
                n = n > 20000 ? 20000 : n;
                th_buf_addf(out, "{\"crime_id\":\"%s\",%s,\"x\":", id, head);
                for (i = 0; i < n; i++)
                        th_buf_add(out, "{\"a\":", 5);
                th_buf_add(out, "1", 1);
                for (i = 0; i < n; i++)
                        th_buf_add(out, "}", 1);
                th_buf_add(out, "}", 1);
        } else if (sscanf(spec, "@nested:%31[^:]:%ld", id, &n) == 2) {
                n = n > 20000 ? 20000 : n;
                th_buf_addf(out, "{\"crime_id\":\"%s\",%s,\"x\":", id, head);
                for (i = 0; i < n; i++)
                        th_buf_add(out, "[", 1);
                for (i = 0; i < n; i++)
                        th_buf_add(out, "]", 1);
                th_buf_add(out, "}", 1);
        } else {
                fail_msg("hostile.tsv: unknown payload %s", spec);
        }
}

static void load_hostile(struct fx *f, struct corpus *c)
{
        char *path = th_asprintf("%s/hostile.tsv", f->data);
        struct th_buf text = {0};
        char *line, *save = NULL;
        size_t before = c->n;

        assert_int_equal(th_read_file(path, &text), 0);
        for (line = strtok_r(text.p, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save)) {
                char *t1 = strchr(line, '\t'), *t2;
                struct th_buf msg = {0};

                if (line[0] == '#' || !t1 || !(t2 = strchr(t1 + 1, '\t')))
                        continue;
                if (t2[1] == '@')
                        hostile_generate(t2 + 1, &msg);
                else
                        hostile_unescape(t2 + 1, &msg);
                corpus_add(c, msg.p ? msg.p : "", msg.len);
                th_buf_free(&msg);
        }
        assert_true(c->n - before >= 45);
        th_buf_free(&text);
        free(path);
}

/* `callstream generate` with every kind of line, split into lines. */
static void load_generated(struct fx *f, struct corpus *c, int count,
                           const char *seed, const char *malformed)
{
        struct th_args a = {0};
        struct th_run r;
        char *line, *save = NULL, *cnt = th_asprintf("%d", count);

        th_args_addv(&a, f->bin, "generate", "--count", cnt, "--seed", seed,
                     "--malformed", malformed, "--duplicates", "0.05",
                     "--changed-duplicates", "0.05", "--int-ids", "0.3",
                     "--out-of-order", "0.1", NULL);
        th_run_ok(&a, &r);
        for (line = strtok_r(r.out.p, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save))
                corpus_add(c, line, strlen(line));
        th_run_free(&r);
        th_args_free(&a);
        free(cnt);
}

static void check_corpus(struct fx *f, const struct corpus *c, size_t *valid)
{
        size_t i;

        for (i = 0; i < c->n; i++)
                if (same(f, c->msg[i].p ? c->msg[i].p : "", c->msg[i].len) == 0)
                        (*valid)++;
}

static void test_sample(void **state)
{
        struct fx *f = *state;
        struct corpus c = {0};
        uint64_t flat, yajl;
        size_t valid = 0;

        load_sample(f, &c);
        check_corpus(f, &c, &valid);
        /* Every real record is valid and the flat reader's to read. */
        assert_int_equal(valid, c.n);
        cs_parser_counts(f->fast, &flat, &yajl);
        assert_int_equal(flat, c.n);
        assert_int_equal(yajl, 0);
        corpus_free(&c);
}

static void test_hostile(void **state)
{
        struct fx *f = *state;
        struct corpus c = {0};
        uint64_t flat, yajl;
        size_t valid = 0;

        load_hostile(f, &c);
        check_corpus(f, &c, &valid);
        cs_parser_counts(f->fast, &flat, &yajl);
        /* Both paths have work here. */
        assert_true(flat >= 10);
        assert_true(yajl >= 20);
        corpus_free(&c);
}

static void test_generated(void **state)
{
        struct fx *f = *state;
        struct corpus c = {0};
        uint64_t flat, yajl;
        size_t valid = 0;

        load_generated(f, &c, 20000, "11", "0.02");
        load_generated(f, &c, 20000, "12", "0.5");
        check_corpus(f, &c, &valid);
        cs_parser_counts(f->fast, &flat, &yajl);
        /* The flat reader takes the valid calls and the malformed ones
         * that are well-formed JSON; yajl only broken JSON. */
        assert_true(valid > 25000);
        assert_true(flat > 30000);
        assert_true(yajl > 1000);
        corpus_free(&c);
}

/*
 * Mutations.
 */

/* Pieces worth inserting: tokens, escapes, UTF-8 good and bad, white space
 * good and bad, members, deep nesting. */
static const char *const pieces[] = {
        "\"",
        "\\",
        "\\\"",
        "\\\\",
        "\\/",
        "\\b",
        "\\f",
        "\\n",
        "\\r",
        "\\t",
        "\\u",
        "\\u0000",
        "\\u0041",
        "\\u00e9",
        "\\u20AC",
        "\\ud83d\\ude00",
        "\\ud83d",
        "\\ude00",
        "\\uD800\\u0041",
        "\\x41",
        "\\'",
        "{",
        "}",
        "[",
        "]",
        ":",
        ",",
        ",,",
        "null",
        "nul",
        "true",
        "false",
        "tru",
        "0",
        "-0",
        "01",
        "-",
        "1.",
        ".5",
        "1e5",
        "1E+05",
        "1e",
        "2.5e-3",
        "0x1F",
        "NaN",
        " ",
        "\t",
        "\r\n",
        "\n",
        "\x0b",
        "\x0c",
        "\x00",
        "\x01",
        "\x1f",
        "\x7f",
        "\xc3\xa9",
        "\xe2\x82\xac",
        "\xf0\x9f\x98\x80",
        "\xc3",
        "\xc0\xaf",
        "\xe0\x80\xaf",
        "\xed\xa0\x80",
        "\xf4\x90\x80\x80",
        "\xff",
        "\xef\xbb\xbf",
        "/*c*/",
        "//",
        "\"crime_id\":\"dup\",",
        "\"crime_id\":42,",
        "\"crime_id\":null,",
        "\"call_date_time\":\"2019-02-29T00:00\",",
        "\"call_date_time\":\"2020-02-29 23:59:59.999999\",",
        "\"original_crime_type_name\":\"\",",
        "\"disposition\":[1,{\"a\":null}],",
        "\"address\":{\"x\":\"y\"},",
        "\"x\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
        ",",
        "\"city\":true,",
        "\"state\":-1.5e3,",
        "\"crime\\u005fid\":\"esc\",",
        "\"unknown\\n\":1,",
};

/* Byte offsets just inside string values and keys of msg, where escapes
 * and UTF-8 do the most. */
static size_t string_spot(const char *msg, size_t len)
{
        size_t tries, i;

        for (tries = 0; tries < 8 && len; tries++) {
                i = below(len);
                if (msg[i] == '"')
                        return i + 1;
        }
        return below(len + 1);
}

/* Applies one random mutation to b. */
static void mutate(struct th_buf *b)
{
        struct th_buf out = {0};
        size_t len = b->len, at, n, k;
        const char *piece;
        char byte;
        int kind;

        switch (kind = (int)below(8)) {
        case 0: /* flip bits of a byte */
                if (len) {
                        at = below(len);
                        b->p[at] ^= (char)(1u << below(8));
                }
                return;
        case 1: /* set a byte to anything */
                if (len) {
                        at = below(len);
                        b->p[at] = (char)below(256);
                }
                return;
        case 2: /* truncate */
                b->len = below(len + 1);
                return;
        case 3: /* delete a run */
                if (len) {
                        at = below(len);
                        n = 1 + below(len - at < 8 ? len - at : 8);
                        memmove(b->p + at, b->p + at + n, len - at - n);
                        b->len -= n;
                }
                return;
        case 4: /* insert a piece anywhere */
        case 5: /* ... or inside a string */
                piece = pieces[below(CS_ARRAY_SIZE(pieces))];
                n = piece[0] ? strlen(piece) : 1; /* "\x00" is one NUL */
                at = kind == 5 ? string_spot(b->p, len) : below(len + 1);
                break;
        case 6: /* a character of a string as a \u escape */
                at = string_spot(b->p, len);
                if (at >= len)
                        return;
                {
                        static char esc[8];

                        snprintf(esc, sizeof(esc), "\\u%04x",
                                 (unsigned char)b->p[at]);
                        piece = esc;
                        n = 6;
                        th_buf_add(&out, b->p, at);
                        th_buf_add(&out, piece, n);
                        th_buf_add(&out, b->p + at + 1, len - at - 1);
                        goto swap;
                }
        default: /* repeat a member (duplicate key) or the whole thing */
                at = string_spot(b->p, len);
                for (k = at; k < len && b->p[k] != ','; k++)
                        ;
                if (k >= len) {
                        th_buf_add(&out, b->p, len);
                        th_buf_add(&out, b->p, len);
                        goto swap;
                }
                /* Copy from the key before at through the comma. */
                while (at > 0 && b->p[at - 1] != ',' && b->p[at - 1] != '{')
                        at--;
                th_buf_add(&out, b->p, k + 1);
                th_buf_add(&out, b->p + at, k + 1 - at);
                th_buf_add(&out, b->p + k + 1, len - k - 1);
                goto swap;
        }
        byte = 0;
        th_buf_add(&out, b->p, at);
        th_buf_add(&out, n == 1 && !piece[0] ? &byte : piece, n);
        th_buf_add(&out, b->p + at, len - at);
swap:
        th_buf_free(b);
        *b = out;
}

static void mutate_corpus(struct fx *f, const struct corpus *c, int rounds)
{
        struct th_buf b;
        int r, m, nmut;
        size_t pick;

        for (r = 0; r < rounds; r++) {
                pick = below(c->n);
                memset(&b, 0, sizeof(b));
                th_buf_add(&b, c->msg[pick].p ? c->msg[pick].p : "",
                           c->msg[pick].len);
                nmut = 1 + (int)below(4);
                for (m = 0; m < nmut; m++)
                        mutate(&b);
                same(f, b.p ? b.p : "", b.len);
                th_buf_free(&b);
        }
}

static void test_mutations(void **state)
{
        struct fx *f = *state;
        struct corpus c = {0};
        struct corpus small = {0};
        uint64_t flat, yajl;
        size_t i;

        rng_state = 20261201;
        load_sample(f, &c);
        load_hostile(f, &c);
        load_generated(f, &c, 2000, "21", "0.2");
        /* The big hostile payloads only slow the mutations down. */
        for (i = 0; i < c.n; i++)
                if (c.msg[i].len < 100000)
                        corpus_add(&small, c.msg[i].p ? c.msg[i].p : "",
                                   c.msg[i].len);
        mutate_corpus(f, &small, 300000);
        cs_parser_counts(f->fast, &flat, &yajl);
        print_message("# %llu mutated messages: %llu read flat, %llu by "
                      "yajl\n",
                      (unsigned long long)(flat + yajl),
                      (unsigned long long)flat, (unsigned long long)yajl);
        /* Mutations must reach both paths in numbers. */
        assert_true(flat > 30000);
        assert_true(yajl > 30000);
        corpus_free(&small);
        corpus_free(&c);
}

/* Every short value in every member position: what the number, literal
 * and string scanners accept, next to what follows them. */
static void test_value_grammar(void **state)
{
        static const char *const values[] = {
                "0",
                "-0",
                "00",
                "01",
                "-01",
                "1",
                "-1",
                "123",
                "1.",
                "1.0",
                "1.01",
                ".1",
                "-.1",
                "1e",
                "1e1",
                "1E1",
                "1e+1",
                "1e-1",
                "1e+",
                "1e-",
                "1.5e3",
                "1.e3",
                "-",
                "--1",
                "+1",
                "1-",
                "0x1",
                "1_0",
                "Infinity",
                "NaN",
                "true",
                "false",
                "null",
                "tru",
                "fals",
                "nul",
                "truex",
                "True",
                "NULL",
                "\"\"",
                "\"a\"",
                "\"\\\"\"",
                "\"\\\\\"",
                "\"\\/\"",
                "\"\\b\\f\\n\\r\\t\"",
                "\"\\a\"",
                "\"\\u0041\"",
                "\"\\u0000\"",
                "\"\x7f\"",
                "\"\xc3\xa9\"",
                "\"\xc3\"",
                "\"a",
                "\"\t\"",
                "{}",
                "[]",
                "[1]",
                "{\"a\":1}",
                "",
                "1 2",
                "\"a\" \"b\"",
                "1,",
                "1}",
        };
        static const char *const seps[] = {"", " ", "\n", "\r\n\t ", "\x0b"};
        static const char *const fields[] = {
                "crime_id", "original_crime_type_name", "call_date_time",
                "address", "unknown"};
        struct fx *f = *state;
        struct th_buf b;
        size_t v, s, k, pos;

        for (v = 0; v < CS_ARRAY_SIZE(values); v++)
                for (s = 0; s < CS_ARRAY_SIZE(seps); s++)
                        for (k = 0; k < CS_ARRAY_SIZE(fields); k++)
                                for (pos = 0; pos < 2; pos++) {
                                        memset(&b, 0, sizeof(b));
                                        th_buf_addf(
                                                &b,
                                                "%s{%s\"crime_id\":\"1\","
                                                "\"original_crime_type_name\""
                                                ":\"X\",\"call_date_time\":"
                                                "\"2018-12-31T23:57\"%s",
                                                seps[s], seps[s],
                                                pos ? "" : ",");
                                        if (pos == 0)
                                                th_buf_addf(&b,
                                                            "%s\"%s\"%s:%s%s"
                                                            "%s}%s",
                                                            seps[s], fields[k],
                                                            seps[s], seps[s],
                                                            values[v], seps[s],
                                                            seps[s]);
                                        else
                                                th_buf_addf(&b, "}%s%s",
                                                            seps[s], values[v]);
                                        same(f, b.p, b.len);
                                        th_buf_free(&b);
                                }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_sample, setup, teardown),
                cmocka_unit_test_setup_teardown(test_hostile, setup, teardown),
                cmocka_unit_test_setup_teardown(test_generated, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_value_grammar, setup,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_mutations, setup,
                                                teardown),
        };

        return cmocka_run_group_tests_name("parse_diff", tests, NULL, NULL);
}
