/* cs_time.h: event times: parsing, formatting and civil-date arithmetic in
 * the proleptic Gregorian calendar, one home for every caller (ingest,
 * rebuild, offsets, generate).
 *
 * A time is whole seconds since 1970-01-01 00:00:00 (int64_t) plus
 * microseconds; times are naive (no zone), taken as given. No I/O, no
 * global state, no locale: safe from any thread. */
#ifndef CS_TIME_H
#define CS_TIME_H

#include "cs_common.h"

/* The representable event times: 0001-01-01 00:00:00 up to, not
 * including, 10000-01-01 00:00:00 (seconds since 1970). */
#define CS_TS_MIN (-62135596800LL)
#define CS_TS_END 253402300800LL

/* Size of a buffer for cs_time_format(): "YYYY-MM-DD HH:MM:SS.ffffff". */
#define CS_TS_BUFSZ 32

/* a / b rounded towards minus infinity (b > 0). */
static inline int64_t cs_time_floor_div(int64_t a, int64_t b)
{
        return a / b - (a % b < 0);
}

/* 1 when y is a leap year of the Gregorian calendar, else 0. */
static inline int cs_time_is_leap(int64_t y)
{
        return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

/* Days in month m (1-12) of year y. */
int cs_time_days_in_month(int64_t y, int m);

/* Days from 1970-01-01 to y-m-d (m 1-12, d 1-31; y any year, 0 being 1 BC;
 * the date is not checked), H. Hinnant's days_from_civil. */
int64_t cs_time_days_from_civil(int64_t y, int m, int d);

/* The date of day z since 1970-01-01 (the inverse of the above), for
 * days whose year fits an int. */
void cs_time_civil_from_days(int64_t z, int *y, int *m, int *d);

/* Parses a date "YYYY-MM-DD" of exactly 10 bytes, year 0001-9999, naming a
 * real day, into days since 1970-01-01. Returns 0 or -1. */
int cs_time_parse_date(const char *s, size_t len, int64_t *days) CS_MUSTCHECK;

/* Parses an event timestamp "YYYY-MM-DD[T ]HH:MM[:SS[.f{1,6}]]", years
 * 0001-9999, naming a real calendar date and time (no leap second), into
 * seconds and microseconds. s is borrowed, len bytes, need not be
 * NUL-terminated. Returns 0 or -1 (and then leaves *ts and *usec alone). */
int cs_time_parse(const char *s, size_t len, int64_t *ts,
                  int32_t *usec) CS_MUSTCHECK;

/* Formats ts as "YYYY-MM-DD HH:MM:SS", adding ".ffffff" when usec is not
 * zero, NUL-terminated, into out (at least CS_TS_BUFSZ bytes); ts must lie
 * in [CS_TS_MIN, CS_TS_END). Returns the length. */
size_t cs_time_format(int64_t ts, int32_t usec, char *out);

/* Formats day z as "YYYY-MM-DD" into out (10 bytes, not NUL-terminated);
 * the year must be 0-9999. */
void cs_time_format_date(int64_t z, char *out);

/* Formats t (whole seconds) like cs_time_format(), clamped to the
 * representable years: for the bounds of a range in SQL. */
size_t cs_time_format_bound(int64_t t, char *out);

#endif
