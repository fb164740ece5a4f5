/* model.c: calendar and window arithmetic of the tests' model (model.h). */
#include <stdio.h>
#include <string.h>

#include "model.h"

int64_t tm_floor_div(int64_t a, int64_t b)
{
        int64_t q = a / b;

        if ((a % b != 0) && ((a < 0) != (b < 0)))
                q--;
        return q;
}

int64_t tm_days_from_civil(int64_t y, int m, int d)
{
        int64_t era, yoe, doy, doe;

        y -= m <= 2;
        era = tm_floor_div(y, 400);
        yoe = y - era * 400;
        doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
        doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + doe - 719468;
}

void tm_civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
        int64_t era, doe, yoe, doy, mp;

        z += 719468;
        era = tm_floor_div(z, 146097);
        doe = z - era * 146097;
        yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        mp = (5 * doy + 2) / 153;
        *d = (int)(doy - (153 * mp + 2) / 5 + 1);
        *m = (int)(mp < 10 ? mp + 3 : mp - 9);
        *y = yoe + era * 400 + (*m <= 2);
}

int tm_days_in_month(int y, int m)
{
        static const int dim[12] = {31, 28, 31, 30, 31, 30,
                                    31, 31, 30, 31, 30, 31};
        int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

        return m == 2 && leap ? 29 : dim[m - 1];
}

/* Reads n ASCII digits at s; returns -1 when one is not a digit. */
static int digits(const char *s, int n)
{
        int v = 0, i;

        for (i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -1;
                v = v * 10 + (s[i] - '0');
        }
        return v;
}

int tm_parse_ts(const char *s, size_t len, int64_t *us)
{
        int y, mo, d, h, mi, sec = 0, frac = 0, nd = 0;
        size_t i = 16;

        if (len < 16)
                return -1;
        y = digits(s, 4);
        mo = digits(s + 5, 2);
        d = digits(s + 8, 2);
        h = digits(s + 11, 2);
        mi = digits(s + 14, 2);
        if (y < 0 || s[4] != '-' || mo < 0 || s[7] != '-' || d < 0 ||
            (s[10] != 'T' && s[10] != ' ') || h < 0 || s[13] != ':' || mi < 0)
                return -1;
        if (i < len) {
                if (len < i + 3 || s[i] != ':' ||
                    (sec = digits(s + i + 1, 2)) < 0)
                        return -1;
                i += 3;
        }
        if (i < len) {
                if (s[i] != '.')
                        return -1;
                for (i++; i < len && nd < 6; i++, nd++) {
                        if (s[i] < '0' || s[i] > '9')
                                return -1;
                        frac = frac * 10 + (s[i] - '0');
                }
                if (nd == 0 || i != len)
                        return -1;
                for (; nd < 6; nd++)
                        frac *= 10;
        }
        if (y < 1 || mo < 1 || mo > 12 || d < 1 ||
            d > tm_days_in_month(y, mo) || h > 23 || mi > 59 || sec > 59)
                return -1;
        *us = (tm_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 +
               sec) * TM_USEC +
              frac;
        return 0;
}

void tm_format_ts(int64_t us, char out[TM_TS_SIZE])
{
        int64_t t = tm_floor_div(us, TM_USEC);
        int n;

        tm_format_sec(t, out);
        n = (int)strlen(out);
        if (us != t * TM_USEC)
                snprintf(out + n, (size_t)(TM_TS_SIZE - n), ".%06lld",
                         (long long)(us - t * TM_USEC));
}

void tm_format_sec(int64_t sec, char out[TM_TS_SIZE])
{
        int64_t days = tm_floor_div(sec, 86400), secs = sec - days * 86400, y;
        int m, d;

        tm_civil_from_days(days, &y, &m, &d);
        snprintf(out, TM_TS_SIZE, "%04lld-%02d-%02d %02d:%02d:%02d",
                 (long long)y, m, d, (int)(secs / 3600), (int)(secs / 60 % 60),
                 (int)(secs % 60));
}

int64_t tm_window_first(int64_t sec, int64_t size, int64_t slide)
{
        return tm_floor_div(sec - size, slide) * slide + slide;
}

int64_t tm_window_last(int64_t sec, int64_t slide)
{
        return tm_floor_div(sec, slide) * slide;
}

json_t *tm_load_radio_codes(const char *path)
{
        json_error_t jerr;
        json_t *arr = json_load_file(path, 0, &jerr), *v, *map;
        size_t i;

        if (!json_is_array(arr)) {
                fprintf(stderr, "# %s: %s\n", path, jerr.text);
                json_decref(arr);
                return NULL;
        }
        map = json_object();
        json_array_foreach(arr, i, v)
        {
                json_t *code = json_object_get(v, "disposition_code");
                json_t *desc = json_object_get(v, "description");

                if (json_is_string(code) && json_is_string(desc))
                        json_object_set(map, json_string_value(code), desc);
        }
        json_decref(arr);
        return map;
}
