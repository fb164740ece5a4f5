/* test_window.c: unit tests for window specs and window assignment
 * (include/cs_window.h), checked against a brute-force enumeration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cs_window.h"

/* Event times the parser can produce: 0001-01-01 .. 9999-12-31 23:59:59. */
#define T_MIN (-62135596800LL)
#define T_MAX 253402300799LL

/* A fixed-seed generator so that a failure reproduces. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void)
{
        uint64_t x = rng_state;

        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        rng_state = x;
        return x;
}

/* Uniform in [lo, hi]. */
static int64_t rng_range(int64_t lo, int64_t hi)
{
        return lo + (int64_t)(rng() % (uint64_t)(hi - lo + 1));
}

static int64_t floor_div(int64_t a, int64_t b)
{
        int64_t q = a / b;

        if (a % b != 0 && (a < 0) != (b < 0))
                q--;
        return q;
}

static int64_t floor_mod(int64_t a, int64_t b)
{
        return a - floor_div(a, b) * b;
}

/* Every multiple k * slide with k * slide <= t < k * slide + size, found by
 * trying every k that could possibly qualify (and a margin either side). */
static int brute_assign(int64_t size, int64_t slide, int64_t t, int64_t *out)
{
        int64_t k, s;
        int n = 0;

        for (k = floor_div(t - size, slide) - 2; k <= floor_div(t, slide) + 2;
             k++) {
                s = k * slide;
                if (s <= t && t < s + size)
                        out[n++] = s;
        }
        return n;
}

/* The same by trying every second near t: only for small windows. */
static int brute_assign_seconds(int64_t size, int64_t slide, int64_t t,
                                int64_t *out)
{
        int64_t s;
        int n = 0;

        for (s = t - size - slide; s <= t + slide; s++)
                if (floor_mod(s, slide) == 0 && s <= t && t < s + size)
                        out[n++] = s;
        return n;
}

/* Normalised spelling of a duration: the largest unit that divides it. */
static void duration_name(int64_t secs, char *out, size_t out_size)
{
        if (secs % 86400 == 0)
                snprintf(out, out_size, "%lldd", (long long)(secs / 86400));
        else if (secs % 3600 == 0)
                snprintf(out, out_size, "%lldh", (long long)(secs / 3600));
        else if (secs % 60 == 0)
                snprintf(out, out_size, "%lldm", (long long)(secs / 60));
        else
                snprintf(out, out_size, "%llds", (long long)secs);
}

static void spec_name(int64_t size, int64_t slide, char *out, size_t out_size)
{
        char a[32], b[32];

        duration_name(size, a, sizeof(a));
        if (slide == size) {
                snprintf(out, out_size, "%s", a);
        } else {
                duration_name(slide, b, sizeof(b));
                snprintf(out, out_size, "%s/%s", a, b);
        }
}

static int64_t ceil_div(int64_t a, int64_t b)
{
        return (a + b - 1) / b;
}

/* Parses spec, failing the test with the input when it is rejected. */
static void parse_ok(const char *spec, struct cs_window_spec *ws)
{
        char errstr[256] = "";

        memset(ws, 0x5a, sizeof(*ws));
        if (cs_window_spec_parse(spec, ws, errstr, sizeof(errstr)) != 0)
                fail_msg("spec \"%s\" rejected: %s", spec, errstr);
}

/* Runs cs_window_assign with exactly ceil(size / slide) slots (the documented
 * minimum) followed by guard slots that must stay untouched, and compares
 * with the brute-force answer. */
static void check_assign(const struct cs_window_spec *ws, int64_t t)
{
        int64_t room = ceil_div(ws->size, ws->slide);
        int64_t want[CS_WINDOW_MAX_PER_EVENT + 8];
        int64_t *got;
        int64_t i;
        int n, nwant;
        const int64_t guard = (int64_t)0x7eadbeefdeadbeefLL;

        assert_true(room >= 1 && room <= CS_WINDOW_MAX_PER_EVENT);
        got = malloc((size_t)(room + 4) * sizeof(*got));
        assert_non_null(got);
        for (i = 0; i < room + 4; i++)
                got[i] = guard;

        n = cs_window_assign(ws, t, got);
        nwant = brute_assign(ws->size, ws->slide, t, want);

        for (i = room; i < room + 4; i++)
                if (got[i] != guard)
                        fail_msg("spec %s t=%lld: wrote past the %lld slots "
                                 "the caller must provide",
                                 ws->name, (long long)t, (long long)room);
        if (n != nwant)
                fail_msg("spec %s t=%lld: %d windows, expected %d", ws->name,
                         (long long)t, n, nwant);
        for (i = 0; i < n; i++)
                if (got[i] != want[i])
                        fail_msg("spec %s t=%lld: window %lld starts at %lld, "
                                 "expected %lld",
                                 ws->name, (long long)t, (long long)i,
                                 (long long)got[i], (long long)want[i]);
        free(got);
}

/* Checks an assignment against a list written out by hand. */
static void check_assign_list(const char *spec, int64_t t, int nwant,
                              const int64_t *want)
{
        struct cs_window_spec ws;
        int64_t got[CS_WINDOW_MAX_PER_EVENT];
        int i, n;

        parse_ok(spec, &ws);
        n = cs_window_assign(&ws, t, got);
        if (n != nwant)
                fail_msg("spec %s t=%lld: %d windows, expected %d", spec,
                         (long long)t, n, nwant);
        for (i = 0; i < n; i++)
                if (got[i] != want[i])
                        fail_msg("spec %s t=%lld: window %d starts at %lld, "
                                 "expected %lld",
                                 spec, (long long)t, i, (long long)got[i],
                                 (long long)want[i]);
}

#define ASSIGN_IS(spec, t, ...)                                                \
        do {                                                                   \
                const int64_t want_[] = {__VA_ARGS__};                         \
                check_assign_list(spec, t, (int)CS_ARRAY_SIZE(want_), want_);  \
        } while (0)

/* ---- cs_window_spec_parse ---------------------------------------------- */

static const struct {
        const char *spec;
        int64_t size;
        int64_t slide;
        const char *name;
} valid_specs[] = {
        {"1h", 3600, 3600, "1h"},
        {"60m", 3600, 3600, "1h"},
        {"90m", 5400, 5400, "90m"},
        {"1h/15m", 3600, 900, "1h/15m"},
        {"1h/1h", 3600, 3600, "1h"},
        {"1d", 86400, 86400, "1d"},
        {"30s", 30, 30, "30s"},
        {"24h", 86400, 86400, "1d"},
        {"2h/30m", 7200, 1800, "2h/30m"},
        {"3600s", 3600, 3600, "1h"},
        {"1440m", 86400, 86400, "1d"},
        {"90s", 90, 90, "90s"},
        {"60s/30s", 60, 30, "1m/30s"},
        {"120m/60m", 7200, 3600, "2h/1h"},
        {"1h/3600s", 3600, 3600, "1h"},
        {"1h/1800s", 3600, 1800, "1h/30m"},
        {"1d/60m", 86400, 3600, "1d/1h"},
        {"1h/25m", 3600, 1500, "1h/25m"},
        {"25h", 90000, 90000, "25h"},
        {"48h", 172800, 172800, "2d"},
        {"7d", 604800, 604800, "7d"},
        {"1s", 1, 1, "1s"},
        {"1m", 60, 60, "1m"},
        /* Largest size: 366 days, in every unit. */
        {"366d", 366LL * 86400, 366LL * 86400, "366d"},
        {"8784h", 366LL * 86400, 366LL * 86400, "366d"},
        {"527040m", 366LL * 86400, 366LL * 86400, "366d"},
        {"31622400s", 366LL * 86400, 366LL * 86400, "366d"},
        /* Exactly CS_WINDOW_MAX_PER_EVENT windows per event. */
        {"1024s/1s", 1024, 1, "1024s/1s"},
        {"2048s/2s", 2048, 2, "2048s/2s"},
        {"2047s/2s", 2047, 2, "2047s/2s"},
        {"1024m/1m", 1024 * 60, 60, "1024m/1m"},
        {"366d/1d", 366LL * 86400, 86400, "366d/1d"},
};

static void test_spec_valid(void **state)
{
        size_t i;

        (void)state;
        for (i = 0; i < CS_ARRAY_SIZE(valid_specs); i++) {
                struct cs_window_spec ws;

                parse_ok(valid_specs[i].spec, &ws);
                if (ws.size != valid_specs[i].size ||
                    ws.slide != valid_specs[i].slide)
                        fail_msg("spec \"%s\": size %lld slide %lld, expected "
                                 "%lld %lld",
                                 valid_specs[i].spec, (long long)ws.size,
                                 (long long)ws.slide,
                                 (long long)valid_specs[i].size,
                                 (long long)valid_specs[i].slide);
                if (memchr(ws.name, '\0', sizeof(ws.name)) == NULL)
                        fail_msg("spec \"%s\": name not NUL-terminated",
                                 valid_specs[i].spec);
                if (strcmp(ws.name, valid_specs[i].name) != 0)
                        fail_msg("spec \"%s\": name \"%s\", expected \"%s\"",
                                 valid_specs[i].spec, ws.name,
                                 valid_specs[i].name);
        }
}

/* A normalised name parses back to the same spec and the same name. */
static void test_spec_name_round_trip(void **state)
{
        size_t i;

        (void)state;
        for (i = 0; i < CS_ARRAY_SIZE(valid_specs); i++) {
                struct cs_window_spec a, b;

                parse_ok(valid_specs[i].spec, &a);
                parse_ok(a.name, &b);
                assert_int_equal(a.size, b.size);
                assert_int_equal(a.slide, b.slide);
                assert_string_equal(a.name, b.name);
        }
}

static const char *const invalid_specs[] = {
        "",
        "0h",
        "0s",
        "0d",
        "h",
        "1",
        "1x",
        "1hh",
        "1h15m",
        "1h/",
        "/15m",
        "/",
        "1h//15m",
        "1h/15m/5m",
        "1h/15",
        "1h/0m",
        "1h/0s",
        "0h/0m",
        "1h/2h",  /* slide larger than size */
        "30m/1h", /* slide larger than size */
        "1s/2s",
        "-1h",
        "1h/-15m",
        "+1h",
        "1.5h",
        "1e3s",
        "0x10s",
        /* Overflowing numbers, including ones that wrap around to a
         * plausible small value in 64-bit arithmetic. */
        "99999999999999999999s",
        "18446744073709551617s", /* 2^64 + 1 */
        "9223372036854775807s",
        "9223372036854775808s",
        "9223372036854775807d",
        "106751991167301d",     /* times 86400 exceeds INT64_MAX */
        "144115188075855873d",  /* (2^57 + 1) * 86400 wraps to 86400 */
        "1152921504606846977h", /* (2^60 + 1) * 3600 wraps to 3600 */
        "4611686018427387905m", /* (2^62 + 1) * 60 wraps to 60 */
        "1h/18446744073709551617s",
        /* Longer than CS_WINDOW_MAX_SECONDS (366 days). */
        "367d",
        "8785h",
        "527041m",
        "31622401s",
        /* More than CS_WINDOW_MAX_PER_EVENT windows per event. */
        "1d/1s",
        "1025s/1s",
        "2049s/2s", /* ceil(2049 / 2) = 1025 */
        "1h/3s",    /* 1200 */
        /* White space is not part of the grammar. */
        " 1h",
        "1h ",
        "1 h",
        "1h /15m",
        "1h/ 15m",
        "\t1h",
        "1h\n",
};

static void test_spec_invalid(void **state)
{
        size_t i;

        (void)state;
        for (i = 0; i < CS_ARRAY_SIZE(invalid_specs); i++) {
                struct cs_window_spec ws;
                char errstr[256];
                int rc;

                memset(errstr, 0, sizeof(errstr));
                rc = cs_window_spec_parse(invalid_specs[i], &ws, errstr,
                                          sizeof(errstr));
                if (rc != -1)
                        fail_msg("spec \"%s\": returned %d (size %lld slide "
                                 "%lld), expected -1",
                                 invalid_specs[i], rc, (long long)ws.size,
                                 (long long)ws.slide);
                if (errstr[0] == '\0')
                        fail_msg("spec \"%s\": rejected with an empty errstr",
                                 invalid_specs[i]);
        }
}

/* errstr_size is honoured: nothing written past it, and NUL-terminated. */
static void test_spec_errstr_truncated(void **state)
{
        char errstr[64];
        struct cs_window_spec ws;
        size_t i;

        (void)state;
        memset(errstr, 'Z', sizeof(errstr));
        assert_int_equal(cs_window_spec_parse("1x", &ws, errstr, 6), -1);
        assert_non_null(memchr(errstr, '\0', 6));
        assert_true(errstr[0] != '\0');
        for (i = 6; i < sizeof(errstr); i++)
                assert_int_equal(errstr[i], 'Z');
}

/* Random specs: accepted exactly when the contract allows them, with the
 * size, slide and normalised name computed independently. */
static void test_spec_random(void **state)
{
        static const char units[] = "smhd";
        static const int64_t unit_secs[] = {1, 60, 3600, 86400};
        int i;

        (void)state;
        for (i = 0; i < 20000; i++) {
                char spec[64], name[64], errstr[256];
                struct cs_window_spec ws;
                int u1 = (int)(rng() % 4), u2 = (int)(rng() % 4);
                int64_t n1 = rng_range(0, rng() % 2 ? 100 : 600000);
                int64_t n2 = rng_range(0, rng() % 2 ? 100 : 600000);
                int hopping = (int)(rng() % 3) != 0;
                int64_t size = n1 * unit_secs[u1], slide;
                int want_ok, rc;

                if (hopping) {
                        slide = n2 * unit_secs[u2];
                        snprintf(spec, sizeof(spec), "%lld%c/%lld%c",
                                 (long long)n1, units[u1], (long long)n2,
                                 units[u2]);
                } else {
                        slide = size;
                        snprintf(spec, sizeof(spec), "%lld%c", (long long)n1,
                                 units[u1]);
                }
                want_ok = size >= 1 && size <= CS_WINDOW_MAX_SECONDS &&
                          slide >= 1 && slide <= size &&
                          ceil_div(size, slide) <= CS_WINDOW_MAX_PER_EVENT;
                errstr[0] = '\0';
                rc = cs_window_spec_parse(spec, &ws, errstr, sizeof(errstr));
                if (!want_ok) {
                        if (rc != -1 || errstr[0] == '\0')
                                fail_msg("spec \"%s\": returned %d errstr "
                                         "\"%s\", expected -1 and a reason",
                                         spec, rc, errstr);
                        continue;
                }
                if (rc != 0)
                        fail_msg("spec \"%s\" rejected: %s", spec, errstr);
                spec_name(size, slide, name, sizeof(name));
                if (ws.size != size || ws.slide != slide ||
                    strcmp(ws.name, name) != 0)
                        fail_msg("spec \"%s\": got %lld/%lld \"%s\", expected "
                                 "%lld/%lld \"%s\"",
                                 spec, (long long)ws.size, (long long)ws.slide,
                                 ws.name, (long long)size, (long long)slide,
                                 name);
        }
}

/* ---- cs_window_assign -------------------------------------------------- */

/* Bounds are in seconds, whatever unit the duration is written in: 30m
 * passes a minimum of one minute, 30s does not. */
static void test_duration_bounds(void **state)
{
        char errstr[128];
        int64_t v;

        (void)state;
        assert_int_equal(
                cs_duration_parse("30m", 60, 86400, &v, errstr, sizeof(errstr)),
                0);
        assert_int_equal(v, 1800);
        assert_int_equal(
                cs_duration_parse("1m", 60, 86400, &v, errstr, sizeof(errstr)),
                0);
        assert_int_equal(
                cs_duration_parse("59s", 60, 86400, &v, errstr, sizeof(errstr)),
                -1);
        assert_non_null(strstr(errstr, "too short"));
        assert_int_equal(
                cs_duration_parse("0s", 1, 86400, &v, errstr, sizeof(errstr)),
                -1);
        assert_non_null(strstr(errstr, "positive"));
        assert_int_equal(
                cs_duration_parse("1d", 0, 86400, &v, errstr, sizeof(errstr)),
                0);
        assert_int_equal(
                cs_duration_parse("25h", 0, 86400, &v, errstr, sizeof(errstr)),
                -1);
        assert_non_null(strstr(errstr, "too long"));
}

static void test_assign_tumbling(void **state)
{
        (void)state;
        ASSIGN_IS("1h", 0, 0);
        ASSIGN_IS("1h", 1, 0);
        ASSIGN_IS("1h", 3599, 0);
        ASSIGN_IS("1h", 3600, 3600);
        ASSIGN_IS("1h", 7199, 3600);
        ASSIGN_IS("1h", 7200, 7200);
        /* 2018-12-31 23:57:00 is in [23:00, 00:00). */
        ASSIGN_IS("1h", 1546300620, 1546297200);
        ASSIGN_IS("1h", 1546300800, 1546300800);
        ASSIGN_IS("1h", 1546300799, 1546297200);
        ASSIGN_IS("1d", 1546300620, 1546214400);
        ASSIGN_IS("1d", 1546300800, 1546300800);
        ASSIGN_IS("90m", 1546300620, 1546295400);
        ASSIGN_IS("30s", 1546300620, 1546300620);
        ASSIGN_IS("30s", 1546300649, 1546300620);
        ASSIGN_IS("30s", 1546300650, 1546300650);
        ASSIGN_IS("1s", 12345, 12345);
}

static void test_assign_tumbling_negative(void **state)
{
        (void)state;
        /* Before 1970 the window start is still floor(t / size) * size. */
        ASSIGN_IS("1h", -1, -3600);
        ASSIGN_IS("1h", -3599, -3600);
        ASSIGN_IS("1h", -3600, -3600);
        ASSIGN_IS("1h", -3601, -7200);
        ASSIGN_IS("1d", -1, -86400);
        ASSIGN_IS("1d", -86400, -86400);
        ASSIGN_IS("1d", -86401, -172800);
        ASSIGN_IS("90m", -1, -5400);
        ASSIGN_IS("7s", -7, -7);
        ASSIGN_IS("7s", -8, -14);
        /* 0001-01-01 00:00:00 is a day boundary; 9999-12-31 23:59:59 is in
         * the day that starts at 9999-12-31 00:00:00. */
        ASSIGN_IS("1d", T_MIN, T_MIN);
        ASSIGN_IS("1d", T_MIN + 86399, T_MIN);
        ASSIGN_IS("1d", T_MAX, T_MAX - 86399);
        ASSIGN_IS("1h", T_MAX, T_MAX - 3599);
}

static void test_assign_hopping(void **state)
{
        (void)state;
        ASSIGN_IS("1h/15m", 1546300620, 1546297200, 1546298100, 1546299000,
                  1546299900);
        /* On a slide boundary: the window starting at t is included and the
         * one that ended at t is not. */
        ASSIGN_IS("1h/15m", 3600, 900, 1800, 2700, 3600);
        ASSIGN_IS("1h/15m", 3599, 0, 900, 1800, 2700);
        ASSIGN_IS("1h/15m", 0, -2700, -1800, -900, 0);
        ASSIGN_IS("1h/15m", 900, -1800, -900, 0, 900);
        ASSIGN_IS("1h/15m", 899, -2700, -1800, -900, 0);
        ASSIGN_IS("2h/30m", 7200, 1800, 3600, 5400, 7200);
        ASSIGN_IS("2h/1h", 5000, 0, 3600);
        ASSIGN_IS("1d/1h", 86399, 0, 3600, 7200, 10800, 14400, 18000, 21600,
                  25200, 28800, 32400, 36000, 39600, 43200, 46800, 50400, 54000,
                  57600, 61200, 64800, 68400, 72000, 75600, 79200, 82800);
}

static void test_assign_hopping_negative(void **state)
{
        (void)state;
        ASSIGN_IS("1h/15m", -1, -3600, -2700, -1800, -900);
        ASSIGN_IS("1h/15m", -900, -3600, -2700, -1800, -900);
        ASSIGN_IS("1h/15m", -901, -4500, -3600, -2700, -1800);
        ASSIGN_IS("1h/15m", -5400, -8100, -7200, -6300, -5400);
        ASSIGN_IS("1h/25m", -1, -3000, -1500);
        ASSIGN_IS("1h/25m", -1500, -4500, -3000, -1500);
}

/* Size not a multiple of the slide: 1h/25m gives 2 or 3 windows. */
static void test_assign_uneven(void **state)
{
        struct cs_window_spec ws;
        int64_t t, got[CS_WINDOW_MAX_PER_EVENT], want[64];
        int n, nwant, seen2 = 0, seen3 = 0;

        (void)state;
        ASSIGN_IS("1h/25m", 0, -3000, -1500, 0);
        ASSIGN_IS("1h/25m", 700, -1500, 0);
        ASSIGN_IS("1h/25m", 599, -3000, -1500, 0);
        ASSIGN_IS("1h/25m", 600, -1500, 0);
        ASSIGN_IS("1h/25m", 1500, -1500, 0, 1500);

        parse_ok("1h/25m", &ws);
        for (t = -20000; t <= 20000; t++) {
                nwant = brute_assign_seconds(ws.size, ws.slide, t, want);
                n = cs_window_assign(&ws, t, got);
                if (n != nwant || memcmp(got, want, sizeof(*got) * n) != 0)
                        fail_msg("spec 1h/25m t=%lld: %d windows starting "
                                 "%lld, expected %d starting %lld",
                                 (long long)t, n, (long long)got[0], nwant,
                                 (long long)want[0]);
                seen2 += n == 2;
                seen3 += n == 3;
        }
        assert_true(seen2 > 0 && seen3 > 0);
}

/* Small specs, every second over a range around 0 (both signs), against a
 * brute force that tries every possible start. */
static void test_assign_brute_small(void **state)
{
        static const char *const specs[] = {
                "1s",     "2s",     "5s",      "7s",     "2s/1s",  "7s/3s",
                "10s/4s", "10s/5s", "1m/7s",   "1m/59s", "59s/2s", "1m/1m",
                "90s/1m", "5m/2m",  "17s/16s", "1h/25m",
        };
        size_t i;

        (void)state;
        for (i = 0; i < CS_ARRAY_SIZE(specs); i++) {
                struct cs_window_spec ws;
                int64_t t, want[CS_WINDOW_MAX_PER_EVENT];
                int64_t got[CS_WINDOW_MAX_PER_EVENT];
                int n, nwant, j;

                parse_ok(specs[i], &ws);
                for (t = -2000; t <= 2000; t++) {
                        nwant = brute_assign_seconds(ws.size, ws.slide, t,
                                                     want);
                        n = cs_window_assign(&ws, t, got);
                        if (n != nwant)
                                fail_msg("spec %s t=%lld: %d windows, "
                                         "expected %d",
                                         specs[i], (long long)t, n, nwant);
                        for (j = 0; j < n; j++)
                                if (got[j] != want[j])
                                        fail_msg("spec %s t=%lld: window %d "
                                                 "at %lld, expected %lld",
                                                 specs[i], (long long)t, j,
                                                 (long long)got[j],
                                                 (long long)want[j]);
                }
        }
}

/* Properties that hold for any spec: ascending, every window holds t, the
 * count is floor or ceil of size / slide, and the caller's buffer of
 * ceil(size / slide) slots is never overrun. */
static void check_properties(const struct cs_window_spec *ws, int64_t t)
{
        int64_t got[CS_WINDOW_MAX_PER_EVENT + 1];
        int n, i;

        n = cs_window_assign(ws, t, got);
        if (n < 1 || n > CS_WINDOW_MAX_PER_EVENT || n < ws->size / ws->slide ||
            n > ceil_div(ws->size, ws->slide))
                fail_msg("spec %s t=%lld: %d windows", ws->name, (long long)t,
                         n);
        for (i = 0; i < n; i++) {
                if (floor_mod(got[i], ws->slide) != 0 || got[i] > t ||
                    t >= got[i] + ws->size)
                        fail_msg("spec %s t=%lld: window at %lld does not "
                                 "hold t or is misaligned",
                                 ws->name, (long long)t, (long long)got[i]);
                if (i > 0 && got[i] != got[i - 1] + ws->slide)
                        fail_msg("spec %s t=%lld: windows %lld then %lld",
                                 ws->name, (long long)t, (long long)got[i - 1],
                                 (long long)got[i]);
        }
}

/* Random specs and random times over the whole range of event times,
 * with extra weight on window edges. */
static void test_assign_random(void **state)
{
        static const char units[] = "smhd";
        static const int64_t unit_secs[] = {1, 60, 3600, 86400};
        int i, j, specs = 0;

        (void)state;
        for (i = 0; i < 3000; i++) {
                char spec[64], errstr[256];
                struct cs_window_spec ws;
                int u1 = (int)(rng() % 4), u2 = (int)(rng() % 4);
                int64_t n1 = rng_range(1, u1 == 3 ? 366 : 300);
                int64_t n2 = rng_range(1, 300);

                if (rng() % 4 == 0)
                        snprintf(spec, sizeof(spec), "%lld%c", (long long)n1,
                                 units[u1]);
                else
                        snprintf(spec, sizeof(spec), "%lld%c/%lld%c",
                                 (long long)n1, units[u1], (long long)n2,
                                 units[u2]);
                if (cs_window_spec_parse(spec, &ws, errstr, sizeof(errstr)) !=
                    0)
                        continue; /* validity is test_spec_random's job */
                assert_true(ws.size == n1 * unit_secs[u1]);
                specs++;
                for (j = 0; j < 40; j++) {
                        int64_t t = rng_range(T_MIN, T_MAX);

                        switch (j % 4) {
                        case 1: /* near a window start */
                                t = floor_div(t, ws.slide) * ws.slide +
                                    rng_range(-2, 2);
                                break;
                        case 2: /* near a window end */
                                t = floor_div(t, ws.slide) * ws.slide +
                                    ws.size + rng_range(-2, 2);
                                break;
                        case 3: /* near 1970 */
                                t = rng_range(-3 * ws.size, 3 * ws.size);
                                break;
                        }
                        check_assign(&ws, t);
                        check_properties(&ws, t);
                }
        }
        assert_true(specs > 500);
}

/* The largest counts per event, at the edges of the event time range. */
static void test_assign_max_windows(void **state)
{
        static const char *const specs[] = {"1024s/1s", "2048s/2s", "2047s/2s",
                                            "366d/1d",  "366d",     "1024m/1m",
                                            "366d/10h"};
        static const int64_t times[] = {
                0, -1, 1, T_MIN, T_MIN + 1, T_MAX, T_MAX - 1, 1546300620};
        size_t i, j;

        (void)state;
        for (i = 0; i < CS_ARRAY_SIZE(specs); i++) {
                struct cs_window_spec ws;

                parse_ok(specs[i], &ws);
                for (j = 0; j < CS_ARRAY_SIZE(times); j++) {
                        check_assign(&ws, times[j]);
                        check_properties(&ws, times[j]);
                }
        }
}

/* The spec is only read: assigning twice gives the same answer. */
static void test_assign_pure(void **state)
{
        struct cs_window_spec ws, copy;
        int64_t a[8], b[8];
        int na, nb;

        (void)state;
        parse_ok("1h/15m", &ws);
        memcpy(&copy, &ws, sizeof(ws));
        na = cs_window_assign(&ws, 1546300620, a);
        nb = cs_window_assign(&ws, 1546300620, b);
        assert_int_equal(na, 4);
        assert_int_equal(nb, 4);
        assert_memory_equal(a, b, sizeof(*a) * 4);
        assert_memory_equal(&ws, &copy, sizeof(ws));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_spec_valid),
                cmocka_unit_test(test_spec_name_round_trip),
                cmocka_unit_test(test_spec_invalid),
                cmocka_unit_test(test_spec_errstr_truncated),
                cmocka_unit_test(test_spec_random),
                cmocka_unit_test(test_duration_bounds),
                cmocka_unit_test(test_assign_tumbling),
                cmocka_unit_test(test_assign_tumbling_negative),
                cmocka_unit_test(test_assign_hopping),
                cmocka_unit_test(test_assign_hopping_negative),
                cmocka_unit_test(test_assign_uneven),
                cmocka_unit_test(test_assign_brute_small),
                cmocka_unit_test(test_assign_random),
                cmocka_unit_test(test_assign_max_windows),
                cmocka_unit_test(test_assign_pure),
        };

        return cmocka_run_group_tests_name("window", tests, NULL, NULL);
}
