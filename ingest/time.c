/* time.c: parse, format and civil-date arithmetic of event times (see
 * cs_time.h). By hand rather than strptime/strftime/timegm: it runs for
 * every call and window row, must not depend on the locale or TZ, and must
 * cover years 0001-9999, where time_t conversions differ between libcs. */
#include "cs_time.h"

int cs_time_days_in_month(int64_t y, int m)
{
        static const unsigned char mdays[12] = {31, 28, 31, 30, 31, 30,
                                                31, 31, 30, 31, 30, 31};

        return m == 2 && cs_time_is_leap(y) ? 29 : mdays[m - 1];
}

/* Howard Hinnant, "chrono-Compatible Low-Level Date Algorithms": years
 * counted from March so the leap day ends the year, in eras of 400 years
 * (146097 days). */
int64_t cs_time_days_from_civil(int64_t y, int m, int d)
{
        int64_t era, yoe, doy, doe;

        y -= m <= 2;
        era = (y >= 0 ? y : y - 399) / 400;
        yoe = y - era * 400;
        doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
        doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + doe - 719468;
}

void cs_time_civil_from_days(int64_t z, int *y, int *m, int *d)
{
        int64_t era, doe, yoe, doy, mp;

        z += 719468;
        era = (z >= 0 ? z : z - 146096) / 146097;
        doe = z - era * 146097;
        yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        mp = (5 * doy + 2) / 153;
        *d = (int)(doy - (153 * mp + 2) / 5 + 1);
        *m = (int)(mp < 10 ? mp + 3 : mp - 9);
        *y = (int)(yoe + era * 400 + (*m <= 2));
}

/* Reads exactly n ASCII digits at s; -1 when one is not a digit. */
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

int cs_time_parse_date(const char *s, size_t len, int64_t *days)
{
        int y, mo, d;

        if (len != 10 || s[4] != '-' || s[7] != '-')
                return -1;
        y = digits(s, 4);
        mo = digits(s + 5, 2);
        d = digits(s + 8, 2);
        if (y < 1 || mo < 1 || mo > 12 || d < 1 ||
            d > cs_time_days_in_month(y, mo))
                return -1;
        *days = cs_time_days_from_civil(y, mo, d);
        return 0;
}

int cs_time_parse(const char *s, size_t len, int64_t *ts, int32_t *usec)
{
        int64_t days;
        int h, mi, sec = 0, frac = 0;
        size_t nfrac;

        /* YYYY-MM-DDTHH:MM is 16 bytes. */
        if (len < 16 || (s[10] != 'T' && s[10] != ' ') || s[13] != ':' ||
            cs_time_parse_date(s, 10, &days) < 0)
                return -1;
        h = digits(s + 11, 2);
        mi = digits(s + 14, 2);
        if (len > 16) {
                if (len < 19 || s[16] != ':' || (sec = digits(s + 17, 2)) < 0)
                        return -1;
                if (len > 19) {
                        nfrac = len - 20;
                        if (s[19] != '.' || nfrac < 1 || nfrac > 6 ||
                            (frac = digits(s + 20, (int)nfrac)) < 0)
                                return -1;
                        for (; nfrac < 6; nfrac++)
                                frac *= 10;
                }
        }
        if (h < 0 || h > 23 || mi < 0 || mi > 59 || sec > 59)
                return -1;
        *ts = days * 86400 + h * 3600 + mi * 60 + sec;
        *usec = frac;
        return 0;
}

/* Writes v as exactly n decimal digits. */
static void put_digits(char *out, int v, int n)
{
        while (n--) {
                out[n] = (char)('0' + v % 10);
                v /= 10;
        }
}

void cs_time_format_date(int64_t z, char *out)
{
        int y, m, d;

        cs_time_civil_from_days(z, &y, &m, &d);
        put_digits(out, y, 4);
        out[4] = '-';
        put_digits(out + 5, m, 2);
        out[7] = '-';
        put_digits(out + 8, d, 2);
}

size_t cs_time_format(int64_t ts, int32_t usec, char *out)
{
        int64_t days = cs_time_floor_div(ts, 86400);
        int secs = (int)(ts - days * 86400);
        size_t n = 19;

        cs_time_format_date(days, out);
        out[10] = ' ';
        put_digits(out + 11, secs / 3600, 2);
        out[13] = ':';
        put_digits(out + 14, secs / 60 % 60, 2);
        out[16] = ':';
        put_digits(out + 17, secs % 60, 2);
        if (usec) {
                out[19] = '.';
                put_digits(out + 20, usec, 6);
                n = 26;
        }
        out[n] = '\0';
        return n;
}

size_t cs_time_format_bound(int64_t t, char *out)
{
        if (t < CS_TS_MIN)
                t = CS_TS_MIN;
        if (t >= CS_TS_END)
                t = CS_TS_END - 1;
        return cs_time_format(t, 0, out);
}
