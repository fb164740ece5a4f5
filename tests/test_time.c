/* test_time.c: the time module (include/cs_time.h) against an independent
 * computation: glibc's gmtime_r/timegm with a 64-bit time_t, which cover
 * the proleptic Gregorian years 0001-9999, and dates written by snprintf. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "cs_time.h"

#define T_LAST (CS_TS_END - 1) /* 9999-12-31 23:59:59 */

/* A deterministic generator (splitmix64), so a failure repeats. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
        uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

/* A uniform time in [CS_TS_MIN, CS_TS_END). */
static int64_t rnd_time(void)
{
        return CS_TS_MIN + (int64_t)(rnd() % (uint64_t)(CS_TS_END - CS_TS_MIN));
}

static void oracle_tm(int64_t t, struct tm *tm)
{
        time_t tt = (time_t)t;

        assert_true(sizeof(time_t) == 8);
        assert_non_null(gmtime_r(&tt, tm));
}

static int64_t oracle_timegm(int y, int m, int d, int h, int mi, int s)
{
        struct tm tm = {0};

        tm.tm_year = y - 1900;
        tm.tm_mon = m - 1;
        tm.tm_mday = d;
        tm.tm_hour = h;
        tm.tm_min = mi;
        tm.tm_sec = s;
        return (int64_t)timegm(&tm);
}

/* The oracle agrees at the bounds the module promises (else the tests
 * below would prove nothing). */
static void test_oracle_bounds(void **state)
{
        struct tm tm;

        (void)state;
        assert_int_equal(oracle_timegm(1, 1, 1, 0, 0, 0), CS_TS_MIN);
        assert_int_equal(oracle_timegm(10000, 1, 1, 0, 0, 0), CS_TS_END);
        oracle_tm(T_LAST, &tm);
        assert_int_equal(tm.tm_year + 1900, 9999);
        assert_int_equal(tm.tm_mon, 11);
        assert_int_equal(tm.tm_mday, 31);
}

/* Every day of years 0001-9999, both ways, and the month lengths and leap
 * years that follow from the day after. */
static void test_civil_every_day(void **state)
{
        int64_t z, first = CS_TS_MIN / 86400, end = CS_TS_END / 86400;
        struct tm tm, next;
        int y, m, d;

        (void)state;
        for (z = first; z < end; z++) {
                oracle_tm(z * 86400, &tm);
                cs_time_civil_from_days(z, &y, &m, &d);
                if (y != tm.tm_year + 1900 || m != tm.tm_mon + 1 ||
                    d != tm.tm_mday)
                        fail_msg("day %lld: %04d-%02d-%02d, oracle "
                                 "%04d-%02d-%02d",
                                 (long long)z, y, m, d, tm.tm_year + 1900,
                                 tm.tm_mon + 1, tm.tm_mday);
                if (cs_time_days_from_civil(y, m, d) != z)
                        fail_msg("days_from_civil(%04d-%02d-%02d) != %lld", y,
                                 m, d, (long long)z);
                oracle_tm((z + 1) * 86400, &next);
                if (next.tm_mday == 1 &&
                    cs_time_days_in_month(y, m) != tm.tm_mday)
                        fail_msg("days_in_month(%d, %d) = %d, oracle %d", y, m,
                                 cs_time_days_in_month(y, m), tm.tm_mday);
                if (m == 2 && d == 28)
                        assert_int_equal(cs_time_is_leap(y),
                                         next.tm_mday == 29);
        }
}

/* The leap years everybody gets wrong, stated outright. */
static void test_leap_years(void **state)
{
        static const struct {
                int y, leap;
        } cases[] = {{1, 0},    {4, 1},    {100, 0},  {400, 1},
                     {1600, 1}, {1700, 0}, {1900, 0}, {2000, 1},
                     {2024, 1}, {2100, 0}, {9996, 1}, {9999, 0}};
        size_t i;

        (void)state;
        for (i = 0; i < CS_ARRAY_SIZE(cases); i++) {
                assert_int_equal(cs_time_is_leap(cases[i].y), cases[i].leap);
                assert_int_equal(cs_time_days_in_month(cases[i].y, 2),
                                 28 + cases[i].leap);
        }
}

static void test_floor_div(void **state)
{
        static const int64_t bs[] = {1, 7, 60, 900, 3600, 86400, 1000000};
        int64_t a, q;
        size_t i;
        int k;

        (void)state;
        for (i = 0; i < CS_ARRAY_SIZE(bs); i++) {
                for (k = 0; k < 20000; k++) {
                        a = k < 100 ? k - 50 : rnd_time();
                        q = cs_time_floor_div(a, bs[i]);
                        /* q is the floor when q*b <= a < (q+1)*b. */
                        assert_true(q * bs[i] <= a);
                        assert_true(a < (q + 1) * bs[i]);
                }
        }
}

/* Random times, written by snprintf from the oracle's fields in each
 * accepted form, parse back to the oracle's time. */
static void test_parse_random(void **state)
{
        char s[64];
        struct tm tm;
        int64_t t, ts;
        int32_t usec;
        int k, n, form, ndig, frac, want_usec, p;

        (void)state;
        for (k = 0; k < 200000; k++) {
                t = k == 0 ? CS_TS_MIN : k == 1 ? T_LAST : rnd_time();
                oracle_tm(t, &tm);
                form = (int)(rnd() % 3); /* HH:MM, HH:MM:SS, with fraction */
                ndig = 1 + (int)(rnd() % 6);
                frac = (int)(rnd() % 1000000);
                n = snprintf(s, sizeof(s), "%04d-%02d-%02d%c%02d:%02d",
                             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                             rnd() % 2 ? 'T' : ' ', tm.tm_hour, tm.tm_min);
                want_usec = 0;
                if (form == 0) {
                        t -= tm.tm_sec;
                } else {
                        n += snprintf(s + n, sizeof(s) - (size_t)n, ":%02d",
                                      tm.tm_sec);
                }
                if (form == 2) {
                        n += snprintf(s + n, sizeof(s) - (size_t)n, ".%06d",
                                      frac);
                        n -= 6 - ndig; /* keep the first ndig digits */
                        s[n] = '\0';
                        want_usec = frac;
                        for (p = 0; p < 6 - ndig; p++)
                                want_usec /= 10;
                        for (p = 0; p < 6 - ndig; p++)
                                want_usec *= 10;
                }
                if (cs_time_parse(s, (size_t)n, &ts, &usec) != 0)
                        fail_msg("refused \"%s\"", s);
                if (ts != t || usec != want_usec)
                        fail_msg("\"%s\": %lld.%06d, want %lld.%06d", s,
                                 (long long)ts, usec, (long long)t, want_usec);
        }
}

static void test_parse_edges(void **state)
{
        static const struct {
                const char *s;
                int y, m, d, h, mi, sec, usec;
        } ok[] = {
                {"0001-01-01T00:00", 1, 1, 1, 0, 0, 0, 0},
                {"9999-12-31 23:59:59.999999", 9999, 12, 31, 23, 59, 59,
                 999999},
                {"2000-02-29T12:00:00", 2000, 2, 29, 12, 0, 0, 0},
                {"1600-02-29T00:00", 1600, 2, 29, 0, 0, 0, 0},
                {"0004-02-29T00:00", 4, 2, 29, 0, 0, 0, 0},
                {"2024-02-29T23:59:59.5", 2024, 2, 29, 23, 59, 59, 500000},
                {"1969-12-31T23:59:59.000001", 1969, 12, 31, 23, 59, 59, 1},
                {"1970-01-01T00:00:00.000", 1970, 1, 1, 0, 0, 0, 0},
                {"2018-12-31T23:57:00.000", 2018, 12, 31, 23, 57, 0, 0},
        };
        static const char *const bad[] = {
                "",
                "2018-12-31",
                "2018-12-31T23",
                "2018-12-31T23:5",
                "2018-12-31T23:57:",
                "2018-12-31T23:57:0",
                "2018-12-31T23:57:00.",
                "2018-12-31T23:57:00.1234567",
                "2018-12-31T23:57:00,5",
                "2018-12-31T23:57:00Z",
                "2018-12-31T23:57:00.5Z",
                "2018-12-31t23:57",
                "2018-12-31_23:57",
                "2018/12/31T23:57",
                "0000-12-31T23:57",
                "1900-02-29T00:00",
                "2100-02-29T00:00",
                "0001-02-29T00:00",
                "2019-02-29T00:00",
                "2018-04-31T00:00",
                "2018-00-10T00:00",
                "2018-13-10T00:00",
                "2018-12-00T00:00",
                "2018-12-32T00:00",
                "2018-12-31T24:00",
                "2018-12-31T23:60",
                "2018-12-31T23:59:60",
                "+018-12-31T23:57",
                "2018-1-31T23:57:00",
                " 2018-12-31T23:57",
                "2018-12-31T23:57 ",
                "2018-12-31T-1:57",
                "10000-01-01T00:00",
        };
        int64_t ts;
        int32_t usec;
        size_t i;

        (void)state;
        for (i = 0; i < CS_ARRAY_SIZE(ok); i++) {
                if (cs_time_parse(ok[i].s, strlen(ok[i].s), &ts, &usec) != 0)
                        fail_msg("refused \"%s\"", ok[i].s);
                assert_int_equal(ts,
                                 oracle_timegm(ok[i].y, ok[i].m, ok[i].d,
                                               ok[i].h, ok[i].mi, ok[i].sec));
                assert_int_equal(usec, ok[i].usec);
        }
        for (i = 0; i < CS_ARRAY_SIZE(bad); i++) {
                ts = 42;
                usec = 42;
                if (cs_time_parse(bad[i], strlen(bad[i]), &ts, &usec) == 0)
                        fail_msg("accepted \"%s\"", bad[i]);
                /* A refusal leaves the outputs alone. */
                assert_int_equal(ts, 42);
                assert_int_equal(usec, 42);
        }
        /* Only len bytes are read: no NUL needed, none looked for. */
        assert_int_equal(
                cs_time_parse("2018-12-31T23:57:00xyz", 19, &ts, &usec), 0);
        assert_int_equal(ts, oracle_timegm(2018, 12, 31, 23, 57, 0));
}

static void test_parse_date(void **state)
{
        int64_t days;
        int k;

        (void)state;
        assert_int_equal(cs_time_parse_date("1970-01-01", 10, &days), 0);
        assert_int_equal(days, 0);
        assert_int_equal(cs_time_parse_date("0001-01-01", 10, &days), 0);
        assert_int_equal(days * 86400, CS_TS_MIN);
        assert_int_equal(cs_time_parse_date("9999-12-31", 10, &days), 0);
        assert_int_equal(days * 86400, T_LAST - 86399);
        assert_int_equal(cs_time_parse_date("2100-02-29", 10, &days), -1);
        assert_int_equal(cs_time_parse_date("2018-12-31T", 11, &days), -1);
        assert_int_equal(cs_time_parse_date("2018-12-3", 9, &days), -1);
        for (k = 0; k < 20000; k++) {
                int64_t t = rnd_time();
                struct tm tm;
                char s[64];

                oracle_tm(t, &tm);
                snprintf(s, sizeof(s), "%04d-%02d-%02d", tm.tm_year + 1900,
                         tm.tm_mon + 1, tm.tm_mday);
                assert_int_equal(cs_time_parse_date(s, 10, &days), 0);
                assert_int_equal(days, cs_time_floor_div(t, 86400));
        }
}

/* What the oracle says the formatted text must be. */
static void oracle_format(int64_t t, int32_t usec, char *out, size_t size)
{
        struct tm tm;
        int n;

        oracle_tm(t, &tm);
        n = snprintf(out, size, "%04d-%02d-%02d %02d:%02d:%02d",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec);
        if (usec)
                snprintf(out + n, size - (size_t)n, ".%06d", (int)usec);
}

static void test_format_random(void **state)
{
        char got[CS_TS_BUFSZ + 8], want[64], date[16];
        int64_t t, back;
        int32_t usec, back_usec;
        size_t n;
        int k;

        (void)state;
        for (k = 0; k < 200000; k++) {
                t = k == 0   ? CS_TS_MIN
                    : k == 1 ? T_LAST
                    : k == 2 ? -1
                    : k == 3 ? 0
                             : rnd_time();
                usec = k % 3 ? (int32_t)(rnd() % 1000000) : 0;
                memset(got, 'x', sizeof(got));
                n = cs_time_format(t, usec, got);
                oracle_format(t, usec, want, sizeof(want));
                if (n != strlen(want) || strcmp(got, want))
                        fail_msg("%lld.%06d: \"%s\", want \"%s\"", (long long)t,
                                 usec, got, want);
                assert_true(n < CS_TS_BUFSZ);
                /* And it reads back. */
                assert_int_equal(cs_time_parse(got, n, &back, &back_usec), 0);
                assert_int_equal(back, t);
                assert_int_equal(back_usec, usec);
                cs_time_format_date(cs_time_floor_div(t, 86400), date);
                assert_memory_equal(date, want, 10);
        }
}

static void test_format_bound(void **state)
{
        char got[CS_TS_BUFSZ];

        (void)state;
        cs_time_format_bound(INT64_MIN / 2, got);
        assert_string_equal(got, "0001-01-01 00:00:00");
        cs_time_format_bound(CS_TS_MIN - 1, got);
        assert_string_equal(got, "0001-01-01 00:00:00");
        cs_time_format_bound(CS_TS_END, got);
        assert_string_equal(got, "9999-12-31 23:59:59");
        cs_time_format_bound(INT64_MAX / 2, got);
        assert_string_equal(got, "9999-12-31 23:59:59");
        cs_time_format_bound(1546300620, got); /* the sample's first call */
        assert_string_equal(got, "2018-12-31 23:57:00");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_oracle_bounds),
                cmocka_unit_test(test_civil_every_day),
                cmocka_unit_test(test_leap_years),
                cmocka_unit_test(test_floor_div),
                cmocka_unit_test(test_parse_random),
                cmocka_unit_test(test_parse_edges),
                cmocka_unit_test(test_parse_date),
                cmocka_unit_test(test_format_random),
                cmocka_unit_test(test_format_bound),
        };

        return cmocka_run_group_tests_name("time", tests, NULL, NULL);
}
