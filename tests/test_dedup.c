/* test_dedup.c: the batch-local structures: dedup set, window aggregate and
 * arena, each checked against a plain reference over many keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cs_arena.h"
#include "cs_dedup.h"
#include "cs_window.h"

static struct cs_str str(const char *s)
{
        struct cs_str r = {s, strlen(s)};

        return r;
}

static void test_dedup_first_copy_wins(void **state)
{
        struct cs_dedup *d = cs_dedup_new(4);
        char id1[] = "183653763", id2[] = "183653763";

        (void)state;
        assert_int_equal(cs_dedup_add(d, str(id1)), 1);
        /* Equal bytes at another address are the same id. */
        assert_int_equal(cs_dedup_add(d, str(id2)), 0);
        assert_int_equal(cs_dedup_add(d, str("18365376")), 1);
        assert_int_equal(cs_dedup_add(d, str("")), 1);
        assert_int_equal(cs_dedup_add(d, str("")), 0);
        assert_int_equal(cs_dedup_count(d), 3);
        cs_dedup_reset(d);
        assert_int_equal(cs_dedup_count(d), 0);
        assert_int_equal(cs_dedup_add(d, str(id1)), 1);
        cs_dedup_destroy(d);
        cs_dedup_destroy(NULL);
}

/* Many ids, with repeats, through growth: the set agrees with a sorted
 * reference of which ids came before. */
static void test_dedup_many_ids_grow(void **state)
{
        enum { N = 50000 };
        struct cs_dedup *d = cs_dedup_new(16);
        static char ids[N][16];
        static unsigned char seen[N / 3 + 1];
        unsigned long x = 12345;
        size_t i, expect_new = 0;

        (void)state;
        for (i = 0; i < N; i++) {
                size_t k;

                x = x * 6364136223846793005UL + 1442695040888963407UL;
                k = (x >> 33) % (N / 3);
                snprintf(ids[i], sizeof(ids[i]), "%zu", k * 7919);
                assert_int_equal(cs_dedup_add(d, str(ids[i])), !seen[k]);
                expect_new += !seen[k];
                seen[k] = 1;
        }
        assert_int_equal(cs_dedup_count(d), expect_new);
        cs_dedup_destroy(d);
}

static void test_window_agg_sums_by_key(void **state)
{
        struct cs_window_agg *agg = cs_window_agg_new();
        const struct cs_window_count *rows;
        char ct[] = "Traffic Stop";
        size_t n;

        (void)state;
        assert_int_equal(cs_window_agg_add(agg, 0, 3600, str("Traffic Stop"),
                                           str("HAN"), 1, 0),
                         0);
        /* The same key through other pointers. */
        assert_int_equal(
                cs_window_agg_add(agg, 0, 3600, str(ct), str("HAN"), 2, 0), 0);
        /* Each differing part makes another row; no disposition differs
         * from an empty one only in the pointer, and is its own key. */
        assert_int_equal(
                cs_window_agg_add(agg, 1, 3600, str(ct), str("HAN"), 1, 0), 0);
        assert_int_equal(
                cs_window_agg_add(agg, 0, 7200, str(ct), str("HAN"), 1, 0), 0);
        assert_int_equal(cs_window_agg_add(agg, 0, 3600, str("Passing Call"),
                                           str("HAN"), 1, 0),
                         0);
        assert_int_equal(cs_window_agg_add(agg, 0, 3600, str(ct),
                                           (struct cs_str){NULL, 0}, 1, 0),
                         0);
        rows = cs_window_agg_rows(agg, &n);
        assert_int_equal(n, 5);
        assert_int_equal(rows[0].calls, 3);
        assert_int_equal(rows[0].spec, 0);
        assert_int_equal(rows[0].start, 3600);
        assert_null(rows[4].disposition.ptr);
        cs_window_agg_reset(agg);
        rows = cs_window_agg_rows(agg, &n);
        assert_int_equal(n, 0);
        cs_window_agg_destroy(agg);
}

/* Many keys through index growth: totals match a reference table. Add k
 * goes to spec k % 3, start (k / 291) * 60 and crime type "type (k % 97)",
 * so different k share keys; ref[] is indexed by those three parts. */
static void test_window_agg_many_keys(void **state)
{
        enum { KEYS = 5000, ADDS = 40000, REF = 3 * 18 * 97 };
        struct cs_window_agg *agg = cs_window_agg_new();
        static long long ref[REF];
        static char names[97][12];
        const struct cs_window_count *rows;
        size_t i, r, n, distinct = 0;
        unsigned long x = 99;

        (void)state;
        for (i = 0; i < 97; i++)
                snprintf(names[i], sizeof(names[i]), "type %zu", i);
        for (i = 0; i < ADDS; i++) {
                size_t k;

                x = x * 6364136223846793005UL + 1442695040888963407UL;
                k = (x >> 33) % KEYS;
                assert_int_equal(cs_window_agg_add(agg, (int)(k % 3),
                                                   (int64_t)(k / 291) * 60,
                                                   str(names[k % 97]), str("X"),
                                                   1, 0),
                                 0);
                ref[(k % 3 * 18 + k / 291) * 97 + k % 97]++;
        }
        rows = cs_window_agg_rows(agg, &n);
        for (i = 0; i < REF; i++)
                distinct += ref[i] > 0;
        assert_int_equal(n, distinct);
        for (r = 0; r < n; r++) {
                int type = atoi(rows[r].crime_type.ptr + 5);
                size_t at = ((size_t)rows[r].spec * 18 +
                             (size_t)(rows[r].start / 60)) *
                                    97 +
                            (size_t)type;

                assert_int_equal(rows[r].calls, ref[at]);
                ref[at] = 0; /* each key once */
        }
        cs_window_agg_destroy(agg);
}

static void test_arena_copies_survive_growth(void **state)
{
        struct cs_arena *a = cs_arena_new();
        struct cs_str copies[3000];
        char buf[600];
        int i, round;

        (void)state;
        for (round = 0; round < 2; round++) {
                for (i = 0; i < 3000; i++) {
                        size_t len = (size_t)(i * 37 % 599) + 1;

                        memset(buf, 'a' + i % 26, len);
                        assert_int_equal(
                                cs_arena_copy(a, (struct cs_str){buf, len},
                                              &copies[i]),
                                0);
                }
                /* About 900 KB over 1 MB blocks: earlier copies intact. */
                for (i = 0; i < 3000; i++) {
                        size_t len = (size_t)(i * 37 % 599) + 1, j;

                        assert_int_equal(copies[i].len, len);
                        for (j = 0; j < len; j++)
                                assert_int_equal(copies[i].ptr[j],
                                                 'a' + i % 26);
                }
                cs_arena_reset(a);
        }
        /* A string larger than a block gets a block of its own. */
        assert_non_null(cs_arena_alloc(a, 3 * 1024 * 1024));
        assert_int_equal(cs_arena_copy(a, (struct cs_str){NULL, 0}, &copies[0]),
                         0);
        assert_null(copies[0].ptr);
        cs_arena_destroy(a);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_dedup_first_copy_wins),
                cmocka_unit_test(test_dedup_many_ids_grow),
                cmocka_unit_test(test_window_agg_sums_by_key),
                cmocka_unit_test(test_window_agg_many_keys),
                cmocka_unit_test(test_arena_copies_survive_growth),
        };

        return cmocka_run_group_tests_name("dedup", tests, NULL, NULL);
}
