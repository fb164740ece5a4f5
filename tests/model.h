/* model.h: the calendar and window arithmetic of the end-to-end tests'
 * independent model of the contract: event times as microseconds since
 * 1970-01-01 00:00:00 (naive, taken as UTC; proleptic Gregorian), their
 * strict text form, and which windows hold a time. Test code only: it
 * shares nothing with the product (no ingest/ module, no include/ header),
 * so that the expected values are worked out a second, separate way. */
#ifndef TM_MODEL_H
#define TM_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define TM_USEC 1000000LL /* microseconds a second */

/* Room for the text of any time tm_format_ts() writes, NUL included. */
#define TM_TS_SIZE 48

/* a / b rounded down (towards minus infinity); b must not be 0. */
int64_t tm_floor_div(int64_t a, int64_t b);

/* Days since 1970-01-01 of the civil date y-m-d, and back. */
int64_t tm_days_from_civil(int64_t y, int m, int d);
void tm_civil_from_days(int64_t z, int64_t *y, int *m, int *d);

/* Days in month m (1-12) of year y. */
int tm_days_in_month(int y, int m);

/* Checks s[0, len) is "YYYY-MM-DD[T ]HH:MM[:SS[.f{1,6}]]" naming a real
 * date and time in years 0001-9999 (no leap second). Returns 0 with *us,
 * or -1 (then *us is untouched). s need not be NUL-terminated. */
int tm_parse_ts(const char *s, size_t len, int64_t *us);

/* Formats us as "YYYY-MM-DD HH:MM:SS", plus ".ffffff" when it has a
 * fraction: how both databases' text forms of times read. */
void tm_format_ts(int64_t us, char out[TM_TS_SIZE]);

/* Formats a whole second sec as "YYYY-MM-DD HH:MM:SS". */
void tm_format_sec(int64_t sec, char out[TM_TS_SIZE]);

/* The windows of size and slide (seconds; windows start at multiples of
 * slide) holding second sec, start <= sec < start + size, start from
 * tm_window_first() to tm_window_last() every slide. */
int64_t tm_window_first(int64_t sec, int64_t size, int64_t slide);
int64_t tm_window_last(int64_t sec, int64_t slide);

/* Reads the radio-code list (a JSON array of {disposition_code,
 * description}) into an object mapping code to description; NULL (after a
 * "# path: why" line on stderr) when it cannot. The caller owns it. */
json_t *tm_load_radio_codes(const char *path);

#endif
