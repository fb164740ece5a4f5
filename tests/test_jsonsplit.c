/* test_jsonsplit.c: unit tests of the streaming JSON array / NDJSON splitter,
 * fed whole and one byte at a time so every chunk boundary is crossed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cs_jsonsplit.h"

#define MAX_MSGS 16

struct sink {
        int count;
        char msg[MAX_MSGS][256]; /* "" and len -1 for an oversize message */
        long long len[MAX_MSGS];
        uint64_t offset[MAX_MSGS];
        int stop_after; /* ask to stop after this many; 0 never */
};

static int collect(void *opaque, const char *msg, size_t len, uint64_t offset)
{
        struct sink *s = opaque;
        int i = s->count++;

        assert_true(i < MAX_MSGS);
        if (msg) {
                assert_true(len < sizeof(s->msg[i]));
                memcpy(s->msg[i], msg, len);
                s->msg[i][len] = '\0';
                s->len[i] = (long long)len;
        } else {
                s->msg[i][0] = '\0';
                s->len[i] = -(long long)len;
        }
        s->offset[i] = offset;
        return s->stop_after && s->count >= s->stop_after;
}

/* Splits input fed in chunks of step bytes (0: all at once); returns the
 * final status and leaves the error text in err. */
static int split(const char *input, size_t step, size_t max, struct sink *s,
                 char *err, size_t err_size)
{
        struct cs_jsonsplit *js = cs_jsonsplit_new(max, collect, s);
        size_t n = strlen(input), i;
        int rc = 0;

        assert_non_null(js);
        if (step == 0)
                step = n ? n : 1;
        for (i = 0; i < n && rc == 0; i += step)
                rc = cs_jsonsplit_feed(js, input + i,
                                       n - i < step ? n - i : step);
        if (rc == 0)
                rc = cs_jsonsplit_end(js);
        snprintf(err, err_size, "%s", cs_jsonsplit_error(js));
        cs_jsonsplit_destroy(js);
        return rc;
}

/* Runs the same input whole and byte by byte; both must agree. */
static int split_both(const char *input, size_t max, struct sink *s, char *err,
                      size_t err_size)
{
        struct sink one = {0};
        char err1[256];
        int rc, rc1, i;

        rc = split(input, 0, max, s, err, err_size);
        one.stop_after = s->stop_after;
        rc1 = split(input, 1, max, &one, err1, sizeof(err1));
        assert_int_equal(rc, rc1);
        assert_string_equal(err, err1);
        assert_int_equal(s->count, one.count);
        for (i = 0; i < s->count; i++) {
                assert_string_equal(s->msg[i], one.msg[i]);
                assert_true(s->len[i] == one.len[i]);
                assert_true(s->offset[i] == one.offset[i]);
        }
        return rc;
}

static void test_array_compacts(void **state)
{
        struct sink s = {0};
        char err[256];
        const char *in = "  [\n  {\"crime_id\" : \"1 2\",\n \"a\": [1, 2]},\n"
                         "  { \"crime_id\": 3 } ]\n";

        (void)state;
        assert_int_equal(split_both(in, 1024, &s, err, sizeof(err)), 0);
        assert_int_equal(s.count, 2);
        assert_string_equal(s.msg[0], "{\"crime_id\":\"1 2\",\"a\":[1,2]}");
        assert_string_equal(s.msg[1], "{\"crime_id\":3}");
        assert_true(s.offset[0] == 6);
        assert_string_equal(err, "");
}

static void test_array_strings_and_escapes(void **state)
{
        struct sink s = {0};
        char err[256];
        const char *in = "[{\"k\": \"a \\\" ] } , [ b\"}, \"x\\\\\" , 12 ,"
                         "true,null, {\"e\":\"\\\\\"}]";

        (void)state;
        assert_int_equal(split_both(in, 1024, &s, err, sizeof(err)), 0);
        assert_int_equal(s.count, 6);
        assert_string_equal(s.msg[0], "{\"k\":\"a \\\" ] } , [ b\"}");
        assert_string_equal(s.msg[1], "\"x\\\\\"");
        assert_string_equal(s.msg[2], "12");
        assert_string_equal(s.msg[3], "true");
        assert_string_equal(s.msg[4], "null");
        assert_string_equal(s.msg[5], "{\"e\":\"\\\\\"}");
}

static void test_array_empty(void **state)
{
        struct sink s = {0};
        char err[256];

        (void)state;
        assert_int_equal(split_both(" [ ] \n", 1024, &s, err, sizeof(err)), 0);
        assert_int_equal(s.count, 0);
        assert_int_equal(split_both("", 1024, &s, err, sizeof(err)), 0);
        assert_int_equal(split_both(" \n\t", 1024, &s, err, sizeof(err)), 0);
        assert_int_equal(s.count, 0);
}

static void test_array_errors(void **state)
{
        static const struct {
                const char *in;
                int msgs;
                const char *err;
        } cases[] = {
                {"[{\"a\":1}, {\"b\":2}", 2,
                 "invalid JSON array at byte 17: unexpected end of input, the "
                 "array is not closed"},
                {"[{\"a\":1} {\"b\":2}]", 1,
                 "invalid JSON array at byte 9: expected ',' or ']' after an "
                 "element, got '{'"},
                {"[1,]", 1,
                 "invalid JSON array at byte 3: expected a value, got ']'"},
                {"[,1]", 0,
                 "invalid JSON array at byte 1: expected a value, got ','"},
                {"[{\"a\":[1}]", 0,
                 "invalid JSON array at byte 8: expected ']' to close an "
                 "array, got '}'"},
                {"[1] x", 1,
                 "invalid JSON array at byte 4: expected the end of input, "
                 "got 'x'"},
                {"[\"abc", 0,
                 "invalid JSON array at byte 5: unexpected end of input, the "
                 "array is not closed"},
                {"[12", 0,
                 "invalid JSON array at byte 3: unexpected end of input, the "
                 "array is not closed"},
                {"[1\x01]", 1,
                 "invalid JSON array at byte 2: expected ',' or ']' after an "
                 "element, got '\x01'"},
        };
        size_t i;

        (void)state;
        for (i = 0; i < CS_ARRAY_SIZE(cases); i++) {
                struct sink s = {0};
                char err[256];

                assert_int_equal(
                        split_both(cases[i].in, 1024, &s, err, sizeof(err)),
                        -1);
                assert_int_equal(s.count, cases[i].msgs);
                if (strchr(cases[i].in, '\x01'))
                        assert_string_equal(err,
                                            "invalid JSON array at byte 2: "
                                            "expected ',' or ']' after an "
                                            "element, got byte 0x01");
                else
                        assert_string_equal(err, cases[i].err);
        }
}

static void test_array_too_deep(void **state)
{
        char in[CS_JSONSPLIT_MAX_DEPTH + 8];
        struct sink s = {0};
        char err[256];

        (void)state;
        in[0] = '[';
        memset(in + 1, '[', CS_JSONSPLIT_MAX_DEPTH + 1);
        in[CS_JSONSPLIT_MAX_DEPTH + 2] = '\0';
        assert_int_equal(split(in, 0, 1 << 20, &s, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "nested too deeply"));
}

static void test_ndjson(void **state)
{
        struct sink s = {0};
        char err[256];
        const char *in = "\n  {\"a\": 1}\r\n\r\n   \n{\"b\" : [ 2 ]}\n"
                         "not json\n{\"c\":3}";

        (void)state;
        assert_int_equal(split_both(in, 1024, &s, err, sizeof(err)), 0);
        assert_int_equal(s.count, 4);
        assert_string_equal(s.msg[0], "  {\"a\": 1}");
        assert_true(s.offset[0] == 1);
        assert_string_equal(s.msg[1], "{\"b\" : [ 2 ]}");
        assert_true(s.offset[1] == 19);
        assert_string_equal(s.msg[2], "not json");
        assert_string_equal(s.msg[3], "{\"c\":3}");
}

static void test_oversize(void **state)
{
        struct sink s = {0};
        char err[256];

        (void)state;
        assert_int_equal(split_both("[ \"abcdefgh\" , \"ab\", {\"x\" : 1234}]",
                                    8, &s, err, sizeof(err)),
                         0);
        assert_int_equal(s.count, 3);
        assert_true(s.len[0] == -10);
        assert_string_equal(s.msg[1], "\"ab\"");
        assert_true(s.len[2] == -10);

        memset(&s, 0, sizeof(s));
        assert_int_equal(
                split_both("0123456789\r\n12\n", 8, &s, err, sizeof(err)), 0);
        assert_int_equal(s.count, 2);
        assert_true(s.len[0] == -10);
        assert_string_equal(s.msg[1], "12");
}

static void test_stop_and_bom(void **state)
{
        struct sink s = {0};
        char err[256];

        (void)state;
        s.stop_after = 1;
        assert_int_equal(split_both("[1,2,3]", 64, &s, err, sizeof(err)),
                         CS_STOPPED);
        assert_int_equal(s.count, 1);

        memset(&s, 0, sizeof(s));
        assert_int_equal(split("\xef\xbb\xbf[1]", 0, 64, &s, err, sizeof(err)),
                         0);
        assert_int_equal(s.count, 1);
        assert_string_equal(s.msg[0], "1");
        assert_true(s.offset[0] == 4);
}

/* The real sample: a pretty-printed array of 700 calls, fed in odd chunks. */
struct count_sink {
        int count;
        int bad;
};

static int count_calls(void *opaque, const char *msg, size_t len,
                       uint64_t offset)
{
        struct count_sink *c = opaque;

        (void)offset;
        c->count++;
        if (!msg || len < 2 || msg[0] != '{' || msg[len - 1] != '}' ||
            memchr(msg, '\n', len) || !memmem(msg, len, "\"crime_id\":\"", 12))
                c->bad++;
        return 0;
}

static void test_sample_file(void **state)
{
        const char *dir = getenv("CALLSTREAM_DATA");
        char path[1024], buf[4093];
        struct count_sink c = {0};
        struct cs_jsonsplit *js;
        size_t n;
        FILE *f;

        (void)state;
        snprintf(path, sizeof(path),
                 "%s/police-department-calls-for-service.sample.json",
                 dir ? dir : "tests/data");
        f = fopen(path, "rb");
        if (!f)
                fail_msg("cannot read %s (set CALLSTREAM_DATA)", path);
        js = cs_jsonsplit_new(1 << 20, count_calls, &c);
        assert_non_null(js);
        while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
                assert_int_equal(cs_jsonsplit_feed(js, buf, n), 0);
        assert_int_equal(cs_jsonsplit_end(js), 0);
        assert_int_equal(cs_jsonsplit_mode(js), CS_JSONSPLIT_ARRAY);
        cs_jsonsplit_destroy(js);
        fclose(f);
        assert_int_equal(c.count, 700);
        assert_int_equal(c.bad, 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_array_compacts),
                cmocka_unit_test(test_array_strings_and_escapes),
                cmocka_unit_test(test_array_empty),
                cmocka_unit_test(test_array_errors),
                cmocka_unit_test(test_array_too_deep),
                cmocka_unit_test(test_ndjson),
                cmocka_unit_test(test_oversize),
                cmocka_unit_test(test_stop_and_bom),
                cmocka_unit_test(test_sample_file),
        };

        return cmocka_run_group_tests_name("jsonsplit", tests, NULL, NULL);
}
