/* test_generate.c: `callstream generate` output is deterministic, has the
 * asked-for number of lines, and the parser accepts exactly the lines that
 * are meant to be valid calls. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

#include "cs_cmd.h"
#include "cs_common.h"
#include "cs_parse.h"

/* A generated file read back into memory, split into lines. */
struct output {
        char *data;
        size_t size;
        char **line;
        size_t *len;
        size_t n;
};

static char tmpdir[64];

static int setup(void **state)
{
        (void)state;
        strcpy(tmpdir, "/tmp/cs_test_generate.XXXXXX");
        return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
        char path[128];
        int i;

        (void)state;
        for (i = 0; i < 4; i++) {
                snprintf(path, sizeof(path), "%s/%d.ndjson", tmpdir, i);
                unlink(path);
        }
        return rmdir(tmpdir);
}

/* Runs `generate ARGS... --output <tmpdir>/<slot>.ndjson` with stderr
 * silenced, so expected usage errors do not clutter the test output. */
static int run(int slot, const char *const *args)
{
        char *argv[32];
        char path[128];
        int argc = 0, saved, devnull, rc;

        snprintf(path, sizeof(path), "%s/%d.ndjson", tmpdir, slot);
        argv[argc++] = (char *)"generate";
        while (*args)
                argv[argc++] = (char *)*args++;
        argv[argc++] = (char *)"--output";
        argv[argc++] = path;
        argv[argc] = NULL;

        fflush(stderr);
        saved = dup(2);
        devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 2);
        rc = cs_cmd_generate(argc, argv);
        fflush(stderr);
        dup2(saved, 2);
        close(saved);
        close(devnull);
        return rc;
}

static void load(int slot, struct output *out)
{
        char path[128];
        FILE *f;
        size_t i, start;

        snprintf(path, sizeof(path), "%s/%d.ndjson", tmpdir, slot);
        f = fopen(path, "rb");
        assert_non_null(f);
        fseek(f, 0, SEEK_END);
        out->size = (size_t)ftell(f);
        rewind(f);
        out->data = malloc(out->size + 1);
        assert_non_null(out->data);
        assert_int_equal(fread(out->data, 1, out->size, f), out->size);
        fclose(f);

        out->n = 0;
        for (i = 0; i < out->size; i++)
                out->n += out->data[i] == '\n';
        out->line = calloc(out->n + 1, sizeof(*out->line));
        out->len = calloc(out->n + 1, sizeof(*out->len));
        assert_non_null(out->line);
        assert_non_null(out->len);
        out->n = 0;
        for (i = start = 0; i < out->size; i++) {
                if (out->data[i] != '\n')
                        continue;
                out->line[out->n] = out->data + start;
                out->len[out->n++] = i - start;
                start = i + 1;
        }
        /* Every line ends with a newline. */
        assert_int_equal(start, out->size);
}

static void unload(struct output *out)
{
        free(out->data);
        free(out->line);
        free(out->len);
}

/* Counts the lines the parser accepts; marks them in ok[] when not NULL. */
static size_t count_valid(const struct output *out, char *ok)
{
        struct cs_parser *p = cs_parser_new();
        struct cs_call call;
        char reason[CS_PARSE_REASON_MAX];
        size_t i, valid = 0;
        int r;

        assert_non_null(p);
        for (i = 0; i < out->n; i++) {
                r = cs_parse_call(p, out->line[i], out->len[i], &call, reason,
                                  sizeof(reason));
                valid += r == 0;
                if (ok)
                        ok[i] = r == 0;
        }
        cs_parser_destroy(p);
        return valid;
}

static void test_deterministic(void **state)
{
        const char *const a[] = {"--count",
                                 "5000",
                                 "--seed",
                                 "7",
                                 "--duplicates",
                                 "0.1",
                                 "--malformed",
                                 "0.1",
                                 "--out-of-order",
                                 "0.1",
                                 "--changed-duplicates",
                                 "0.1",
                                 "--int-ids",
                                 "0.2",
                                 NULL};
        const char *const b[] = {"--count",
                                 "5000",
                                 "--seed",
                                 "8",
                                 "--duplicates",
                                 "0.1",
                                 "--malformed",
                                 "0.1",
                                 "--out-of-order",
                                 "0.1",
                                 "--changed-duplicates",
                                 "0.1",
                                 "--int-ids",
                                 "0.2",
                                 NULL};
        struct output o0, o1, o2;

        (void)state;
        assert_int_equal(run(0, a), CS_EXIT_OK);
        assert_int_equal(run(1, a), CS_EXIT_OK);
        assert_int_equal(run(2, b), CS_EXIT_OK);
        load(0, &o0);
        load(1, &o1);
        load(2, &o2);
        assert_int_equal(o0.n, 5000);
        assert_int_equal(o0.size, o1.size);
        assert_memory_equal(o0.data, o1.data, o0.size);
        assert_true(o0.size != o2.size ||
                    memcmp(o0.data, o2.data, o0.size) != 0);
        unload(&o0);
        unload(&o1);
        unload(&o2);
}

static void test_lines(void **state)
{
        const char *const a[] = {"--count",      "20000", "--malformed", "0.5",
                                 "--duplicates", "0.2",   NULL};
        struct output o;
        size_t i;

        (void)state;
        assert_int_equal(run(0, a), CS_EXIT_OK);
        load(0, &o);
        assert_int_equal(o.n, 20000);
        for (i = 0; i < o.n; i++) {
                assert_true(o.len[i] > 0);
                assert_null(memchr(o.line[i], '\0', o.len[i]));
                assert_null(memchr(o.line[i], '\r', o.len[i]));
        }
        unload(&o);
}

static void test_valid_calls_parse(void **state)
{
        const char *const a[] = {"--count",
                                 "50000",
                                 "--duplicates",
                                 "0.1",
                                 "--changed-duplicates",
                                 "0.1",
                                 "--out-of-order",
                                 "0.2",
                                 "--int-ids",
                                 "0.3",
                                 NULL};
        struct cs_parser *p = cs_parser_new();
        struct cs_call call;
        char reason[CS_PARSE_REASON_MAX];
        struct output o;
        size_t i;
        int f;

        (void)state;
        assert_non_null(p);
        assert_int_equal(run(0, a), CS_EXIT_OK);
        load(0, &o);
        for (i = 0; i < o.n; i++) {
                if (cs_parse_call(p, o.line[i], o.len[i], &call, reason,
                                  sizeof(reason)) != 0)
                        fail_msg("line %zu rejected (%s): %.*s", i + 1, reason,
                                 (int)o.len[i], o.line[i]);
                for (f = 0; f < CS_F_COUNT; f++)
                        assert_non_null(call.field[f].ptr);
                assert_int_equal(call.field[CS_F_CRIME_ID].len, 9);
                assert_int_equal(call.ts % 60, 0);
                assert_int_equal(call.ts_usec, 0);
        }
        cs_parser_destroy(p);
        unload(&o);
}

static void test_malformed_rejected(void **state)
{
        const char *const a[] = {"--count", "100000", "--malformed", "1",
                                 "--seed",  "3",      NULL};
        struct cs_parser *p = cs_parser_new();
        struct cs_call call;
        char reason[CS_PARSE_REASON_MAX];
        struct output o;
        size_t i;

        (void)state;
        assert_non_null(p);
        assert_int_equal(run(0, a), CS_EXIT_OK);
        load(0, &o);
        for (i = 0; i < o.n; i++) {
                if (cs_parse_call(p, o.line[i], o.len[i], &call, reason,
                                  sizeof(reason)) == 0)
                        fail_msg("malformed line %zu accepted: %.*s", i + 1,
                                 (int)o.len[i], o.line[i]);
        }
        cs_parser_destroy(p);
        unload(&o);
}

static void test_rates(void **state)
{
        const char *const a[] = {"--count",      "40000", "--malformed", "0.25",
                                 "--duplicates", "0.1",   NULL};
        struct output o;
        size_t valid, dups = 0, i, j;
        char *ok;

        (void)state;
        assert_int_equal(run(0, a), CS_EXIT_OK);
        load(0, &o);
        ok = malloc(o.n);
        assert_non_null(ok);
        valid = count_valid(&o, ok);
        assert_in_range(o.n - valid, 9000, 11000);
        /* Exact duplicates repeat one of the last 1024 new calls. Malformed
         * lines such as "[]" may repeat too; they are not counted. */
        for (i = 1; i < o.n; i++) {
                for (j = i > 3000 ? i - 3000 : 0; ok[i] && j < i; j++) {
                        if (o.len[j] == o.len[i] &&
                            !memcmp(o.line[j], o.line[i], o.len[i])) {
                                dups++;
                                break;
                        }
                }
        }
        free(ok);
        assert_in_range(dups, 3500, 4500);
        unload(&o);
}

static void test_usage_errors(void **state)
{
        const char *const no_count[] = {"--seed", "1", NULL};
        const char *const too_much[] = {
                "--count", "1", "--duplicates", "0.6", "--malformed",
                "0.5",     NULL};
        const char *const bad_start[] = {"--count", "1", "--start",
                                         "2019-02-29", NULL};
        const char *const bad_delay[] = {"--count", "1", "--max-delay", "6x",
                                         NULL};
        const char *const bad_rate[] = {"--count", "1", "--int-ids", "1.5",
                                        NULL};
        const char *const unknown[] = {"--count", "1", "--bogus", NULL};
        const char *const exact_one[] = {"--count",
                                         "10",
                                         "--duplicates",
                                         "0.1",
                                         "--changed-duplicates",
                                         "0.2",
                                         "--out-of-order",
                                         "0.3",
                                         "--malformed",
                                         "0.4",
                                         NULL};

        (void)state;
        assert_int_equal(run(3, no_count), CS_EXIT_USAGE);
        assert_int_equal(run(3, too_much), CS_EXIT_USAGE);
        assert_int_equal(run(3, bad_start), CS_EXIT_USAGE);
        assert_int_equal(run(3, bad_delay), CS_EXIT_USAGE);
        assert_int_equal(run(3, bad_rate), CS_EXIT_USAGE);
        assert_int_equal(run(3, unknown), CS_EXIT_USAGE);
        assert_int_equal(run(3, exact_one), CS_EXIT_OK);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_deterministic),
                cmocka_unit_test(test_lines),
                cmocka_unit_test(test_valid_calls_parse),
                cmocka_unit_test(test_malformed_rejected),
                cmocka_unit_test(test_rates),
                cmocka_unit_test(test_usage_errors),
        };

        return cmocka_run_group_tests_name("generate", tests, setup, teardown);
}
