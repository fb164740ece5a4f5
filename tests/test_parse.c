/* test_parse.c: unit tests for the call parser (include/cs_parse.h), written
 * against the contract; jansson and gmtime_r serve as independent oracles. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>

#include "cs_parse.h"
#include "cs_time.h"

#define T_MIN (-62135596800LL) /* 0001-01-01 00:00:00 */
#define T_MAX 253402300799LL   /* 9999-12-31 23:59:59 */

/* The three required fields, with ' standing for " (see parsef). */
#define REQ                                                                    \
        "'crime_id':'1','original_crime_type_name':'X',"                       \
        "'call_date_time':'2018-12-31T23:57'"

static const char sample_record[] =
        "{\"crime_id\": \"183653763\", \"original_crime_type_name\": \"Traffic "
        "Stop\", \"report_date\": \"2018-12-31T00:00:00.000\", \"call_date\": "
        "\"2018-12-31T00:00:00.000\", \"offense_date\": "
        "\"2018-12-31T00:00:00.000\", \"call_time\": \"23:57\", "
        "\"call_date_time\": \"2018-12-31T23:57:00.000\", \"disposition\": "
        "\"ADM\", \"address\": \"Geary Bl/divisadero St\", \"city\": \"San "
        "Francisco\", \"state\": \"CA\", \"agency_id\": \"1\", "
        "\"address_type\": \"Intersection\", \"common_location\": \"\"}";

/* Per-test state: the parser and the last message, kept in a private
 * buffer of exactly its length (no NUL after it) so the call's borrowed
 * strings stay valid until the next parse. */
struct fx {
        struct cs_parser *p;
        struct cs_call call;
        char reason[CS_PARSE_REASON_MAX + 16];
        char *buf;
        size_t len;
        int rc;
};

static int setup(void **state)
{
        struct fx *f = calloc(1, sizeof(*f));

        if (f == NULL)
                return -1;
        f->p = cs_parser_new();
        if (f->p == NULL) {
                free(f);
                return -1;
        }
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fx *f = *state;

        cs_parser_destroy(f->p);
        free(f->buf);
        free(f);
        return 0;
}

/* Renders bytes printable for failure messages; two rotating buffers. */
static const char *show(const char *s, size_t len)
{
        static char bufs[2][400];
        static int which;
        char *out = bufs[which++ & 1];
        size_t i, o = 0;

        for (i = 0; i < len && o < sizeof(bufs[0]) - 8; i++) {
                unsigned char c = (unsigned char)s[i];

                if (c >= 0x20 && c < 0x7f && c != '\\')
                        out[o++] = (char)c;
                else
                        o += (size_t)snprintf(out + o, sizeof(bufs[0]) - o,
                                              "\\x%02x", c);
        }
        if (i < len)
                memcpy(out + o, "...", 4);
        else
                out[o] = '\0';
        return out;
}

/* Parses len bytes of msg: the first len bytes are copied to a buffer of
 * exactly len bytes, so any read past the end is a memory error. */
static void parsen(struct fx *f, const char *msg, size_t len)
{
        free(f->buf);
        f->buf = malloc(len ? len : 1);
        assert_non_null(f->buf);
        if (len)
                memcpy(f->buf, msg, len);
        f->len = len;
        memset(&f->call, 0xa5, sizeof(f->call));
        memset(f->reason, 'Z', sizeof(f->reason));
        f->rc = cs_parse_call(f->p, f->buf, len, &f->call, f->reason,
                              CS_PARSE_REASON_MAX);
}

/* Formats a message, turns every ' into ", and parses it. */
static void parsef(struct fx *f, const char *fmt, ...) CS_PRINTF(2, 3);
static void parsef(struct fx *f, const char *fmt, ...)
{
        va_list ap;
        char *s;
        int n;
        size_t i;

        va_start(ap, fmt);
        n = vasprintf(&s, fmt, ap);
        va_end(ap);
        assert_true(n >= 0);
        for (i = 0; i < (size_t)n; i++)
                if (s[i] == '\'')
                        s[i] = '"';
        parsen(f, s, (size_t)n);
        free(s);
}

static void is_valid(struct fx *f)
{
        if (f->rc != 0)
                fail_msg("rejected (rc %d, \"%s\"): %s", f->rc,
                         f->rc == -1 ? f->reason : "?", show(f->buf, f->len));
}

/* The message was rejected with a short NUL-terminated reason that starts
 * with prefix (any reason when prefix is NULL). Returns the reason. */
static const char *is_rejected(struct fx *f, const char *prefix)
{
        size_t i;

        if (f->rc != -1)
                fail_msg("accepted (rc %d), expected rejection \"%s\": %s",
                         f->rc, prefix ? prefix : "*", show(f->buf, f->len));
        if (memchr(f->reason, '\0', CS_PARSE_REASON_MAX) == NULL)
                fail_msg("reason not NUL-terminated within "
                         "CS_PARSE_REASON_MAX: %s",
                         show(f->buf, f->len));
        for (i = CS_PARSE_REASON_MAX; i < sizeof(f->reason); i++)
                if (f->reason[i] != 'Z')
                        fail_msg("reason written past reason_size: %s",
                                 show(f->buf, f->len));
        if (f->reason[0] == '\0')
                fail_msg("empty reason: %s", show(f->buf, f->len));
        if (prefix && strncmp(f->reason, prefix, strlen(prefix)) != 0)
                fail_msg("reason \"%s\", expected \"%s...\": %s", f->reason,
                         prefix, show(f->buf, f->len));
        return f->reason;
}

/* Byte offset N of "invalid JSON at byte N", or -1 when the reason has
 * another form. */
static long long json_error_pos(const char *reason)
{
        static const char pfx[] = "invalid JSON at byte ";
        const char *d;
        long long n = 0;

        if (strncmp(reason, pfx, sizeof(pfx) - 1) != 0)
                return -1;
        d = reason + sizeof(pfx) - 1;
        if (*d < '0' || *d > '9')
                return -2;
        while (*d >= '0' && *d <= '9' && n < 1000000000000LL)
                n = n * 10 + (*d++ - '0');
        return n;
}

/* Rejected as "invalid JSON at byte N" with min_pos <= N <= length. */
static void is_json_error(struct fx *f, size_t min_pos)
{
        long long n;

        is_rejected(f, "invalid JSON at byte ");
        n = json_error_pos(f->reason);
        if (n < (long long)min_pos || n > (long long)f->len)
                fail_msg("reason \"%s\": offset outside [%zu, %zu]: %s",
                         f->reason, min_pos, f->len, show(f->buf, f->len));
}

static void field_is(struct fx *f, enum cs_field fld, const char *want,
                     size_t want_len)
{
        const struct cs_str *s = &f->call.field[fld];

        if (s->ptr == NULL)
                fail_msg("%s absent, expected \"%s\": %s", cs_field_names[fld],
                         show(want, want_len), show(f->buf, f->len));
        if (s->len != want_len || memcmp(s->ptr, want, want_len) != 0)
                fail_msg("%s is \"%s\", expected \"%s\"", cs_field_names[fld],
                         show(s->ptr, s->len), show(want, want_len));
}

#define FIELD(f, fld, lit) field_is(f, fld, lit, sizeof(lit) - 1)

static void absent(struct fx *f, enum cs_field fld)
{
        const struct cs_str *s = &f->call.field[fld];

        if (s->ptr != NULL)
                fail_msg("%s is \"%s\", expected absent: %s",
                         cs_field_names[fld], show(s->ptr, s->len),
                         show(f->buf, f->len));
}

/* ---- independent calendar arithmetic ----------------------------------- */

static int is_leap(int64_t y)
{
        return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
        static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

        return m == 2 && is_leap(y) ? 29 : d[m - 1];
}

/* Seconds since 1970-01-01 00:00:00 by counting whole years and months. */
static int64_t epoch_of(int64_t y, int mo, int d, int h, int mi, int s)
{
        int64_t days = 0, yy;
        int m;

        if (y >= 1970)
                for (yy = 1970; yy < y; yy++)
                        days += is_leap(yy) ? 366 : 365;
        else
                for (yy = y; yy < 1970; yy++)
                        days -= is_leap(yy) ? 366 : 365;
        for (m = 1; m < mo; m++)
                days += days_in_month(y, m);
        days += d - 1;
        return days * 86400 + h * 3600 + mi * 60 + s;
}

/* "YYYY-MM-DD HH:MM:SS[.ffffff]" for ts via the C library. */
static void format_oracle(int64_t ts, int32_t usec, char *out, size_t size)
{
        time_t tt = (time_t)ts;
        struct tm tm;
        int n;

        assert_non_null(gmtime_r(&tt, &tm));
        n = snprintf(out, size, "%04d-%02d-%02d %02d:%02d:%02d",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec);
        if (usec != 0)
                snprintf(out + n, size - (size_t)n, ".%06d", (int)usec);
}

/* ---- valid records ----------------------------------------------------- */

static void test_field_names(void **state)
{
        static const char *const want[CS_F_COUNT] = {
                "crime_id",       "original_crime_type_name",
                "report_date",    "call_date",
                "offense_date",   "call_time",
                "call_date_time", "disposition",
                "address",        "city",
                "state",          "agency_id",
                "address_type",   "common_location",
        };
        int i;

        (void)state;
        for (i = 0; i < CS_F_COUNT; i++)
                assert_string_equal(cs_field_names[i], want[i]);
}

static void check_sample_fields(struct fx *f)
{
        FIELD(f, CS_F_CRIME_ID, "183653763");
        FIELD(f, CS_F_ORIGINAL_CRIME_TYPE_NAME, "Traffic Stop");
        FIELD(f, CS_F_REPORT_DATE, "2018-12-31T00:00:00.000");
        FIELD(f, CS_F_CALL_DATE, "2018-12-31T00:00:00.000");
        FIELD(f, CS_F_OFFENSE_DATE, "2018-12-31T00:00:00.000");
        FIELD(f, CS_F_CALL_TIME, "23:57");
        FIELD(f, CS_F_CALL_DATE_TIME, "2018-12-31T23:57:00.000");
        FIELD(f, CS_F_DISPOSITION, "ADM");
        FIELD(f, CS_F_ADDRESS, "Geary Bl/divisadero St");
        FIELD(f, CS_F_CITY, "San Francisco");
        FIELD(f, CS_F_STATE, "CA");
        FIELD(f, CS_F_AGENCY_ID, "1");
        FIELD(f, CS_F_ADDRESS_TYPE, "Intersection");
        /* An empty string is present, not absent. */
        FIELD(f, CS_F_COMMON_LOCATION, "");
        assert_int_equal(f->call.ts, 1546300620);
        assert_int_equal(f->call.ts_usec, 0);
}

static void test_sample_record(void **state)
{
        struct fx *f = *state;

        parsen(f, sample_record, sizeof(sample_record) - 1);
        is_valid(f);
        check_sample_fields(f);
}

static void test_minimal_record(void **state)
{
        struct fx *f = *state;
        int i;

        parsef(f, "{" REQ "}");
        is_valid(f);
        FIELD(f, CS_F_CRIME_ID, "1");
        FIELD(f, CS_F_ORIGINAL_CRIME_TYPE_NAME, "X");
        FIELD(f, CS_F_CALL_DATE_TIME, "2018-12-31T23:57");
        for (i = 0; i < CS_F_COUNT; i++)
                if (i != CS_F_CRIME_ID && i != CS_F_ORIGINAL_CRIME_TYPE_NAME &&
                    i != CS_F_CALL_DATE_TIME)
                        absent(f, (enum cs_field)i);
        assert_int_equal(f->call.ts, 1546300620);
        assert_int_equal(f->call.ts_usec, 0);

        /* Same with the required fields in another order. */
        parsef(f, "{'call_date_time':'2018-12-31 23:57:00',"
                  "'original_crime_type_name':'Y','crime_id':'2'}");
        is_valid(f);
        FIELD(f, CS_F_CRIME_ID, "2");
        FIELD(f, CS_F_ORIGINAL_CRIME_TYPE_NAME, "Y");
        FIELD(f, CS_F_CALL_DATE_TIME, "2018-12-31 23:57:00");
        absent(f, CS_F_DISPOSITION);
        assert_int_equal(f->call.ts, 1546300620);
}

static void test_all_fields_reversed(void **state)
{
        struct fx *f = *state;

        parsef(f, "{'common_location':'Civic Center','address_type':'Premise',"
                  "'agency_id':'2','state':'CA','city':'SF',"
                  "'address':'1 Main St','disposition':'HAN',"
                  "'call_date_time':'2019-01-01T00:00:01.5',"
                  "'call_time':'00:00','offense_date':'2019-01-01',"
                  "'call_date':'2019-01-02','report_date':'2019-01-03',"
                  "'original_crime_type_name':'Fight','crime_id':'190010001'}");
        is_valid(f);
        FIELD(f, CS_F_CRIME_ID, "190010001");
        FIELD(f, CS_F_ORIGINAL_CRIME_TYPE_NAME, "Fight");
        FIELD(f, CS_F_REPORT_DATE, "2019-01-03");
        FIELD(f, CS_F_CALL_DATE, "2019-01-02");
        FIELD(f, CS_F_OFFENSE_DATE, "2019-01-01");
        FIELD(f, CS_F_CALL_TIME, "00:00");
        FIELD(f, CS_F_CALL_DATE_TIME, "2019-01-01T00:00:01.5");
        FIELD(f, CS_F_DISPOSITION, "HAN");
        FIELD(f, CS_F_ADDRESS, "1 Main St");
        FIELD(f, CS_F_CITY, "SF");
        FIELD(f, CS_F_STATE, "CA");
        FIELD(f, CS_F_AGENCY_ID, "2");
        FIELD(f, CS_F_ADDRESS_TYPE, "Premise");
        FIELD(f, CS_F_COMMON_LOCATION, "Civic Center");
        assert_int_equal(f->call.ts, 1546300801);
        assert_int_equal(f->call.ts_usec, 500000);
}

/* Unknown fields of every type are ignored, including known key names
 * nested inside them and near-miss key names. */
static void test_unknown_fields(void **state)
{
        struct fx *f = *state;

        parsef(f, "{'pd_district':'Richmond','x':{'crime_id':'NESTED1',"
                  "'a':[1,2.5e-3,{'b':null,'c':[[],{}]}],'d':true},"
                  "'crime_id':'5','original_crime_type_name':'X',"
                  "'call_date_time':'2018-12-31T23:57','disposition':'A',"
                  "'y':[{'crime_id':'NESTED2','disposition':'NESTED'}],"
                  "'z':{'call_date_time':'bogus','address':'NESTED'},"
                  "'Crime_id':'UPPER','crime_id ':'SPACE','crime_idx':'X',"
                  "'crime_i':'Y','CITY':'Z','':'empty key','n':-0.0,"
                  "'t':true,'f':false,'nul':null,'s':'a\\\"b\\u00e9',"
                  "'e':{},'arr':[],'deep':[[[[[[[[[[{'state':'NESTED'}]]]]]]"
                  "]]]]}");
        is_valid(f);
        FIELD(f, CS_F_CRIME_ID, "5");
        FIELD(f, CS_F_ORIGINAL_CRIME_TYPE_NAME, "X");
        FIELD(f, CS_F_CALL_DATE_TIME, "2018-12-31T23:57");
        FIELD(f, CS_F_DISPOSITION, "A");
        absent(f, CS_F_ADDRESS);
        absent(f, CS_F_CITY);
        absent(f, CS_F_STATE);
        assert_int_equal(f->call.ts, 1546300620);
}

static void test_whitespace(void **state)
{
        struct fx *f = *state;
        static const char msg[] =
                " \t\r\n{ \n\t\"crime_id\" \t:\r\n \"7\" \n,\t\"address\"\n:"
                "\t\"A\"  ,  \"original_crime_type_name\"  :  \"X\"  , "
                "\"call_date_time\"\r\n:\r\n\"2018-12-31T23:57\" , "
                "\"u\" : [ 1 , { \"k\" : null } ] \n\t\r }\n\t\r ";

        parsen(f, msg, sizeof(msg) - 1);
        is_valid(f);
        FIELD(f, CS_F_CRIME_ID, "7");
        FIELD(f, CS_F_ADDRESS, "A");
        FIELD(f, CS_F_ORIGINAL_CRIME_TYPE_NAME, "X");
        FIELD(f, CS_F_CALL_DATE_TIME, "2018-12-31T23:57");

        /* The whole sample record with newlines and tabs around each token. */
        parsef(f, "\n{\n\t'crime_id' : '183653763' ,\n\t"
                  "'original_crime_type_name'\t:\t'Traffic Stop',\n"
                  "'report_date':'2018-12-31T00:00:00.000',"
                  "'call_date':'2018-12-31T00:00:00.000',"
                  "'offense_date':'2018-12-31T00:00:00.000',\r\n"
                  "'call_time':'23:57','call_date_time' :"
                  "'2018-12-31T23:57:00.000','disposition':'ADM',"
                  "'address':'Geary Bl/divisadero St','city':'San Francisco',"
                  "'state':'CA','agency_id':'1','address_type':'Intersection',"
                  "'common_location':''\n}\n");
        is_valid(f);
        check_sample_fields(f);
}

static void test_integer_crime_id(void **state)
{
        struct fx *f = *state;
        static const char *const ids[] = {
                "0",
                "7",
                "183653763",
                "9223372036854775807",
                "12345678901234567890",
                "18446744073709551616", /* 2^64 */
                "99999999999999999999",
                "123456789012345678901234567890",
        };
        size_t i;

        for (i = 0; i < CS_ARRAY_SIZE(ids); i++) {
                char text[64];
                size_t n = strlen(ids[i]);

                parsef(f,
                       "{'crime_id':%s,'original_crime_type_name':'X',"
                       "'call_date_time':'2018-12-31T23:57'}",
                       ids[i]);
                is_valid(f);
                field_is(f, CS_F_CRIME_ID, ids[i], n);

                /* The string form gives the same text. */
                memcpy(text, f->call.field[CS_F_CRIME_ID].ptr, n);
                parsef(f,
                       "{'crime_id':'%s','original_crime_type_name':'X',"
                       "'call_date_time':'2018-12-31T23:57'}",
                       ids[i]);
                is_valid(f);
                field_is(f, CS_F_CRIME_ID, text, n);
        }
}

/* ---- rejections -------------------------------------------------------- */

static void test_reject_empty(void **state)
{
        struct fx *f = *state;
        static const char *const msgs[] = {"", " ", "\n", "\t\r\n ",
                                           "        \n\n"};
        size_t i;

        for (i = 0; i < CS_ARRAY_SIZE(msgs); i++) {
                parsen(f, msgs[i], strlen(msgs[i]));
                is_rejected(f, NULL);
                if (json_error_pos(f->reason) > (long long)f->len)
                        fail_msg("reason \"%s\" for %zu bytes", f->reason,
                                 f->len);
        }
}

static void test_reject_invalid_json(void **state)
{
        struct fx *f = *state;
        /* prefix is a correct start; the error is in suffix, so the
         * reported offset is at least strlen(prefix). */
        static const char P[] = "{\"crime_id\":\"1\",\"original_crime_type_"
                                "name\":\"X\",\"call_date_time\":\"2018-12-"
                                "31T23:57\",";
        static const struct {
                const char *prefix;
                const char *suffix;
        } cases[] = {
                {"", "x"},
                {"", "{x"},
                {"", "}"},
                {"", "{"},
                {"", "]"},
                {"", "{\"crime_id\""},
                {"", "{'crime_id':'1'}"},
                {"", "{crime_id:\"1\"}"},
                {P, "}"},
                {P, "\"a\"}"},
                {P, "\"a\":}"},
                {P, "\"a\" 1}"},
                {P, "\"a\"::1}"},
                {P, "'a':1}"},
                {P, "a:1}"},
                {P, "\"a\":01}"},
                {P, "\"a\":-}"},
                {P, "\"a\":-a}"},
                {P, "\"a\":1.}"},
                {P, "\"a\":.5}"},
                {P, "\"a\":1e}"},
                {P, "\"a\":1e+}"},
                {P, "\"a\":+1}"},
                {P, "\"a\":0x10}"},
                {P, "\"a\":NaN}"},
                {P, "\"a\":Infinity}"},
                {P, "\"a\":tru}"},
                {P, "\"a\":nul}"},
                {P, "\"a\":True}"},
                {P, "\"a\":truex}"},
                {P, "\"a\":\"\\x\"}"},
                {P, "\"a\":\"\\'\"}"},
                {P, "\"a\":\"\\u12\"}"},
                {P, "\"a\":\"\\u12G4\"}"},
                {P, "\"a\":\"\\U00e9\"}"},
                {P, "\"a\":\"\\"},
                {P, "\"a\":[1,]}"},
                {P, "\"a\":[,1]}"},
                {P, "\"a\":[1 2]}"},
                {P, "\"a\":{\"b\"}}"},
                {P, "\"a\":{\"b\":1,}}"},
                {P, "\"a\":{1:2}}"},
                {P, "\"a\":[}"},
                {P, "\"a\":{]}"},
                {P, "\"a\":1]"},
                {P, "\"a\":1 /* c */}"},
                {P, "/* c */\"a\":1}"},
                {P, "// c\n\"a\":1}"},
                {P, "# c\n\"a\":1}"},
                {P, "\"a\":1"},
                {P, "\"a\":\"unterminated}"},
                {P, "\"a\":[1,2"},
        };
        size_t i;

        for (i = 0; i < CS_ARRAY_SIZE(cases); i++) {
                char msg[512];
                int n = snprintf(msg, sizeof(msg), "%s%s", cases[i].prefix,
                                 cases[i].suffix);

                parsen(f, msg, (size_t)n);
                is_json_error(f, strlen(cases[i].prefix));
        }
}

/* Every proper prefix of a valid record is rejected; when the reason
 * names an offset it is near the cut, not at the start of the message
 * (no token of the record is longer than 32 bytes). */
static void test_reject_truncated(void **state)
{
        struct fx *f = *state;
        size_t k, vlen = sizeof(sample_record) - 1;
        long long pos;

        for (k = 1; k < vlen; k++) {
                parsen(f, sample_record, k);
                is_rejected(f, NULL);
                pos = json_error_pos(f->reason);
                if (pos == -1 && strncmp(f->reason, "empty", 5) == 0)
                        continue;
                if (pos < (long long)k - 32 || pos > (long long)k)
                        fail_msg("cut at %zu of %zu: reason \"%s\"", k, vlen,
                                 f->reason);
        }
}

/* RFC 8259 white space is space, tab, LF and CR only. */
static void test_reject_other_whitespace(void **state)
{
        struct fx *f = *state;
        static const char *const ws[] = {"\x0b", "\x0c", "\xc2\xa0",
                                         "\xe2\x80\xa8", "\xe3\x80\x80"};
        size_t i;

        for (i = 0; i < CS_ARRAY_SIZE(ws); i++) {
                parsef(f, "%s{" REQ "}", ws[i]);
                is_rejected(f, NULL);
                parsef(f, "{%s" REQ "}", ws[i]);
                is_rejected(f, NULL);
                parsef(f,
                       "{'crime_id'%s:'1','original_crime_type_name':'X',"
                       "'call_date_time':'2018-12-31T23:57'}",
                       ws[i]);
                is_rejected(f, NULL);
                parsef(f, "{" REQ "%s}", ws[i]);
                is_rejected(f, NULL);
                parsef(f, "{" REQ "}%s", ws[i]);
                is_rejected(f, NULL);
        }
}

/* Nothing but white space may follow the object. */
static void test_reject_trailing(void **state)
{
        struct fx *f = *state;
        static const char V[] = "{\"crime_id\":\"1\",\"original_crime_type_"
                                "name\":\"X\",\"call_date_time\":\"2018-12-"
                                "31T23:57\"}";
        static const struct {
                const char *tail;
                size_t len;
        } tails[] = {
#define T(s) {s, sizeof(s) - 1}
                T("x"),
                T(" x"),
                T("}"),
                T("]"),
                T(","),
                T("1"),
                T("[]"),
                T("\"\""),
                T("null"),
                T(" // c"),
                T(" /* c */"),
                T("\0"),
                T(" \0"),
                T("\n\n \t garbage"),
                T("\xc3\xa9"),
                T("\x0b"), /* vertical tab is not JSON white space */
                T("\x0c"),
                T("\xc2\xa0"), /* nor is U+00A0 */
                /* Unfinished tokens, which yajl alone lets pass (found by
                 * tests/fuzz/fuzz_parse.c). */
                T("\""),
                T("\"garbage"),
                T(" \"x"),
                T(" tr"),
                T(" -"),
#undef T
        };
        char msg[512];
        size_t i, vlen = sizeof(V) - 1;
        long long pos;

        for (i = 0; i < CS_ARRAY_SIZE(tails); i++) {
                memcpy(msg, V, vlen);
                memcpy(msg + vlen, tails[i].tail, tails[i].len);
                parsen(f, msg, vlen + tails[i].len);
                is_rejected(f, NULL);
                pos = json_error_pos(f->reason);
                if (pos != -1 &&
                    (pos < (long long)vlen - 1 || pos > (long long)f->len))
                        fail_msg("reason \"%s\" for %s", f->reason,
                                 show(f->buf, f->len));
        }

        /* Two objects, with or without a separator. */
        parsef(f, "%s%s", V, V);
        is_rejected(f, NULL);
        parsef(f, "%s\n%s", V, V);
        is_rejected(f, NULL);
        parsef(f, "%s %s\n", V, V);
        is_rejected(f, NULL);
        parsef(f, "[%s]", V);
        is_rejected(f, NULL);

        /* Trailing white space is fine. */
        parsef(f, "%s \n\t\r", V);
        is_valid(f);
}

static void test_reject_not_object(void **state)
{
        struct fx *f = *state;
        static const char *const msgs[] = {
                "[]",
                "[1,2]",
                "\"str\"",
                "\"\"",
                "42",
                "0",
                "-1",
                "1.5",
                "1e3",
                "true",
                "false",
                "null",
                " 42 ",
                "\n[]\n",
                "[{\"crime_id\":\"1\",\"original_crime_type_name\":\"X\","
                "\"call_date_time\":\"2018-12-31T23:57\"}]",
                "\"{\\\"crime_id\\\":\\\"1\\\"}\"",
        };
        size_t i;

        for (i = 0; i < CS_ARRAY_SIZE(msgs); i++) {
                parsen(f, msgs[i], strlen(msgs[i]));
                is_rejected(f, "not a JSON object");
        }
}

static void test_reject_crime_id(void **state)
{
        struct fx *f = *state;
        static const char *const bad[] = {
                "''",          "-1",      "-183653763", "1.5",  "1.0",
                "0.0",         "1e3",     "1E3",        "1e+3", "0e0",
                "183653763.0", "true",    "false",      "null", "{}",
                "[]",          "{'a':1}", "['1']",      "[1]",
        };
        size_t i;

        parsef(f, "{'original_crime_type_name':'X',"
                  "'call_date_time':'2018-12-31T23:57'}");
        is_rejected(f, "missing crime_id");
        parsef(f, "{'original_crime_type_name':'X','crime_idx':'1',"
                  "'call_date_time':'2018-12-31T23:57','x':{'crime_id':'1'}}");
        is_rejected(f, "missing crime_id");

        for (i = 0; i < CS_ARRAY_SIZE(bad); i++) {
                parsef(f,
                       "{'crime_id':%s,'original_crime_type_name':'X',"
                       "'call_date_time':'2018-12-31T23:57'}",
                       bad[i]);
                is_rejected(f, "invalid crime_id");
        }
}

static void test_reject_crime_type(void **state)
{
        struct fx *f = *state;
        static const char *const bad[] = {"''",        "5",  "0",  "true",
                                          "false",     "{}", "[]", "['X']",
                                          "{'a':'X'}", "1.5"};
        size_t i;

        parsef(f, "{'crime_id':'1','call_date_time':'2018-12-31T23:57'}");
        is_rejected(f, "missing original_crime_type_name");
        parsef(f, "{'crime_id':'1','original_crime_type':'X',"
                  "'call_date_time':'2018-12-31T23:57'}");
        is_rejected(f, "missing original_crime_type_name");

        for (i = 0; i < CS_ARRAY_SIZE(bad); i++) {
                parsef(f,
                       "{'crime_id':'1','original_crime_type_name':%s,"
                       "'call_date_time':'2018-12-31T23:57'}",
                       bad[i]);
                is_rejected(f, "invalid original_crime_type_name");
        }

        /* null: the field cannot be absent, so either wording will do. */
        parsef(f, "{'crime_id':'1','original_crime_type_name':null,"
                  "'call_date_time':'2018-12-31T23:57'}");
        is_rejected(f, NULL);
        if (strstr(f->reason, "original_crime_type_name") == NULL)
                fail_msg("null original_crime_type_name: reason \"%s\"",
                         f->reason);
}

/* call_date_time values that are not a real "YYYY-MM-DD[T ]HH:MM[:SS[.f]]"
 * time. Shared with the cs_time_parse tests. */
static const char *const bad_times[] = {
        "",
        "2019-02-29T00:00:00", /* not a leap year */
        "1900-02-29T00:00:00", /* divisible by 100, not by 400 */
        "2100-02-29T00:00",
        "2018-02-30T00:00",
        "2018-04-31T00:00:00",
        "2018-06-31T00:00",
        "2018-09-31T00:00",
        "2018-11-31T00:00",
        "2018-01-32T00:00:00",
        "2018-13-01T00:00:00",
        "2018-00-01T00:00:00",
        "2018-01-00T00:00:00",
        "2018-12-31T24:00:00",
        "2018-12-31T24:00",
        "2018-12-31T23:60:00",
        "2018-12-31T23:60",
        "2018-12-31T23:59:60", /* no leap seconds */
        "2016-12-31T23:59:60", /* not even real ones */
        "2018-12-31T23:57:00.1234567",
        "2018-12-31T23:57:00.",
        "2018-12-31T23:57:00..5",
        "2018-12-31T23:57:00.000.0",
        "2018-12-31T23:57:00.-1",
        "2018-12-31T23:57:00.1a",
        "2018-12-31T23:57:00,5",
        "2018-12-31T23:57.5",
        "2018-12-31t23:57:00",
        "2018-12-31T23:57:00Z",
        "2018-12-31T23:57Z",
        "2018-12-31T23:57:00+00:00",
        "2018-12-31T23:57:00 ",
        "2018-12-31T23:57 ",
        " 2018-12-31T23:57",
        "2018-12-31T23:57\n",
        "0000-01-01T00:00:00",
        "0000-12-31T23:59:59",
        "10000-01-01T00:00:00",
        "-2018-12-31T23:57",
        "+2018-12-31T23:57",
        "2018-12-31",
        "2018-12-31T",
        "2018-12-31 ",
        "2018-12-31T23",
        "2018-12-31T23:",
        "2018-12-31T23:5",
        "2018-12-31T23:57:",
        "2018-12-31T23:57:0",
        "2018-12-31T23:57:000",
        "2018-1-31T23:57",
        "2018-12-1T23:57",
        "18-12-31T23:57",
        "2018-12-31T3:57",
        "2018-12-31T23:7",
        "2018-12-31T-1:57",
        "2018-12-31T+1:57",
        "2018-12-31T 1:57",
        "2018/12/31T23:57",
        "2018-12-31T23.57",
        "2018-12-31  23:57",
        "2018-12-31_23:57",
        "2018-12-31TT23:57",
        "201a-12-31T23:57",
        "2018-12-31T23:57:0a",
        "2018-12-31T23:57:00 .5",
        "2018-12-31T23:57:00.\xd9\xa1",
        "\xd9\xa2\xd9\xa0\xd9\xa1\xd9\xa8-12-31T23:57",
        "12/31/2018 11:57:00 PM",
        "1546300620",
};

/* Writes s as the inside of a JSON string: control characters escaped. */
static void json_escape(const char *s, char *out, size_t size)
{
        size_t o = 0;

        for (; *s && o + 8 < size; s++) {
                unsigned char c = (unsigned char)*s;

                if (c == '"' || c == '\\')
                        o += (size_t)snprintf(out + o, size - o, "\\%c", c);
                else if (c < 0x20)
                        o += (size_t)snprintf(out + o, size - o, "\\u%04x", c);
                else
                        out[o++] = (char)c;
        }
        assert_true(*s == '\0');
        out[o] = '\0';
}

static void test_reject_call_date_time(void **state)
{
        struct fx *f = *state;
        static const char *const non_strings[] = {
                "1546300620", "0", "true", "{}", "[]", "['2018-12-31T23:57']"};
        size_t i;

        parsef(f, "{'crime_id':'1','original_crime_type_name':'X'}");
        is_rejected(f, "missing call_date_time");
        parsef(f, "{'crime_id':'1','original_crime_type_name':'X',"
                  "'call_date':'2018-12-31T00:00:00.000','call_time':'23:57'}");
        is_rejected(f, "missing call_date_time");

        for (i = 0; i < CS_ARRAY_SIZE(bad_times); i++) {
                char esc[256];

                json_escape(bad_times[i], esc, sizeof(esc));
                parsef(f,
                       "{'crime_id':'1','original_crime_type_name':'X',"
                       "'call_date_time':'%s'}",
                       esc);
                is_rejected(f, "invalid call_date_time");
        }
        for (i = 0; i < CS_ARRAY_SIZE(non_strings); i++) {
                parsef(f,
                       "{'crime_id':'1','original_crime_type_name':'X',"
                       "'call_date_time':%s}",
                       non_strings[i]);
                is_rejected(f, "invalid call_date_time");
        }
        parsef(f, "{'crime_id':'1','original_crime_type_name':'X',"
                  "'call_date_time':null}");
        is_rejected(f, NULL);
        if (strstr(f->reason, "call_date_time") == NULL)
                fail_msg("null call_date_time: reason \"%s\"", f->reason);
}

/* Malformed UTF-8 anywhere in the message: known and unknown values and
 * keys. */
static void test_reject_invalid_utf8(void **state)
{
        struct fx *f = *state;
        static const char *const bad[] = {
                "\x80",                 /* lone continuation byte */
                "\xbf",                 /* lone continuation byte */
                "a\x80z",               /* lone continuation byte */
                "\xc0\xaf",             /* overlong '/' */
                "\xc1\xbf",             /* overlong */
                "\xc0\x80",             /* overlong NUL */
                "\xe0\x80\xaf",         /* overlong 3-byte */
                "\xe0\x9f\xbf",         /* overlong 3-byte */
                "\xf0\x80\x80\xaf",     /* overlong 4-byte */
                "\xf0\x8f\xbf\xbf",     /* overlong 4-byte */
                "\xed\xa0\x80",         /* UTF-16 surrogate D800 */
                "\xed\xbf\xbf",         /* UTF-16 surrogate DFFF */
                "\xf4\x90\x80\x80",     /* above U+10FFFF */
                "\xf5\x80\x80\x80",     /* above U+10FFFF */
                "\xf8\x88\x80\x80\x80", /* 5-byte form */
                "\xfe",
                "\xff",
                "\xc3",             /* truncated 2-byte */
                "\xe2\x82",         /* truncated 3-byte */
                "\xf0\x9f\x98",     /* truncated 4-byte */
                "\xc3\x28",         /* bad continuation */
                "\xe2\x28\xa1",     /* bad continuation */
                "\xe2\x82\x28",     /* bad continuation */
                "\xf0\x28\x8c\xbc", /* bad continuation */
        };
        size_t i;

        for (i = 0; i < CS_ARRAY_SIZE(bad); i++) {
                parsef(f, "{" REQ ",'address':'%s'}", bad[i]);
                is_rejected(f, NULL);
                parsef(f, "{" REQ ",'unknown':'%s'}", bad[i]);
                is_rejected(f, NULL);
                parsef(f, "{" REQ ",'unknown':['%s']}", bad[i]);
                is_rejected(f, NULL);
                parsef(f, "{" REQ ",'k%s':1}", bad[i]);
                is_rejected(f, NULL);
                parsef(f,
                       "{'crime_id':'1','original_crime_type_name':'X%s',"
                       "'call_date_time':'2018-12-31T23:57'}",
                       bad[i]);
                is_rejected(f, NULL);
        }

        /* Truncated sequence at the very end of the message. */
        parsef(f, "{" REQ ",'address':'\xe2\x82");
        is_rejected(f, NULL);
}

/* RFC 8259: U+0000..U+001F must be escaped inside strings. */
static void test_reject_control_chars(void **state)
{
        struct fx *f = *state;
        int c;

        for (c = 0; c < 0x20; c++) {
                char msg[256];
                int n;

                n = snprintf(msg, sizeof(msg),
                             "{\"crime_id\":\"1\","
                             "\"original_crime_type_name\":"
                             "\"X\",\"call_date_time\":"
                             "\"2018-12-31T23:57\","
                             "\"address\":\"a");
                msg[n++] = (char)c;
                n += snprintf(msg + n, sizeof(msg) - (size_t)n, "b\"}");
                parsen(f, msg, (size_t)n);
                is_rejected(f, NULL);

                n = snprintf(msg, sizeof(msg),
                             "{\"crime_id\":\"1\","
                             "\"original_crime_type_name\":"
                             "\"X\",\"call_date_time\":"
                             "\"2018-12-31T23:57\","
                             "\"unknown\":\"a");
                msg[n++] = (char)c;
                n += snprintf(msg + n, sizeof(msg) - (size_t)n, "b\"}");
                parsen(f, msg, (size_t)n);
                is_rejected(f, NULL);

                n = snprintf(msg, sizeof(msg), "{\"crime_id\":\"1");
                msg[n++] = (char)c;
                n += snprintf(msg + n, sizeof(msg) - (size_t)n,
                              "\",\"original_crime_type_name\":\"X\","
                              "\"call_date_time\":\"2018-12-31T23:57\"}");
                parsen(f, msg, (size_t)n);
                is_rejected(f, NULL);

                n = snprintf(msg, sizeof(msg),
                             "{\"crime_id\":\"1\","
                             "\"original_crime_type_name\":"
                             "\"X\",\"call_date_time\":"
                             "\"2018-12-31T23:57\",\"k");
                msg[n++] = (char)c;
                n += snprintf(msg + n, sizeof(msg) - (size_t)n, "\":1}");
                parsen(f, msg, (size_t)n);
                is_rejected(f, NULL);
        }
}

/* \u0000 in the value of any known field. */
static void test_reject_nul_escape(void **state)
{
        struct fx *f = *state;
        int i;

        for (i = 0; i < CS_F_COUNT; i++) {
                const char *crime_id = "'1'";
                const char *type = "'X'";
                const char *when = "'2018-12-31T23:57'";

                switch (i) {
                case CS_F_CRIME_ID:
                        crime_id = "'1\\u0000'";
                        break;
                case CS_F_ORIGINAL_CRIME_TYPE_NAME:
                        type = "'X\\u0000Y'";
                        break;
                case CS_F_CALL_DATE_TIME:
                        when = "'2018-12-31T23:57\\u0000'";
                        break;
                }
                if (i == CS_F_CRIME_ID || i == CS_F_ORIGINAL_CRIME_TYPE_NAME ||
                    i == CS_F_CALL_DATE_TIME)
                        parsef(f,
                               "{'crime_id':%s,'original_crime_type_name':%s,"
                               "'call_date_time':%s}",
                               crime_id, type, when);
                else
                        parsef(f, "{" REQ ",'%s':'a\\u0000b'}",
                               cs_field_names[i]);
                is_rejected(f, NULL);
        }
        /* Also alone, at the start and at the end. */
        parsef(f, "{" REQ ",'address':'\\u0000'}");
        is_rejected(f, NULL);
        parsef(f, "{" REQ ",'disposition':'\\u0000ADM'}");
        is_rejected(f, NULL);
        parsef(f, "{" REQ ",'city':'SF\\u0000'}");
        is_rejected(f, NULL);
        parsef(f, "{'crime_id':'\\u0000','original_crime_type_name':'X',"
                  "'call_date_time':'2018-12-31T23:57'}");
        is_rejected(f, NULL);
}

/* ---- string decoding --------------------------------------------------- */

static void test_escapes(void **state)
{
        struct fx *f = *state;

        parsef(f, "{'crime_id':'1\\u0032','original_crime_type_name':"
                  "'Traffic\\u0020Stop','call_date_time':"
                  "'2018-12-31\\u005423:57\\u003a01',"
                  "'address':'a\\\"b\\\\c\\/d\\be\\ff\\ng\\rh\\ti',"
                  "'city':'caf\\u00e9','state':'\\u00E9\\u00c9',"
                  "'agency_id':'\\u20ac','disposition':'\\ud83d\\ude00',"
                  "'address_type':'\\uD83D\\uDE00\\u0041\\u0062',"
                  "'common_location':'\\u007f\\u0080\\u07ff\\u0800\\uffff',"
                  "'call_time':'\\ud800\\udc00\\udbff\\udfff',"
                  "'report_date':'\\u0001\\u001f\\u0009',"
                  "'call_date':'\\\\u0041','offense_date':'\\\"\\\"'}");
        is_valid(f);
        FIELD(f, CS_F_CRIME_ID, "12");
        FIELD(f, CS_F_ORIGINAL_CRIME_TYPE_NAME, "Traffic Stop");
        /* The timestamp is validated after decoding. */
        FIELD(f, CS_F_CALL_DATE_TIME, "2018-12-31T23:57:01");
        assert_int_equal(f->call.ts, 1546300621);
        FIELD(f, CS_F_ADDRESS, "a\"b\\c/d\be\ff\ng\rh\ti");
        FIELD(f, CS_F_CITY, "caf\xc3\xa9");
        FIELD(f, CS_F_STATE, "\xc3\xa9\xc3\x89");
        FIELD(f, CS_F_AGENCY_ID, "\xe2\x82\xac");
        FIELD(f, CS_F_DISPOSITION, "\xf0\x9f\x98\x80");
        FIELD(f, CS_F_ADDRESS_TYPE,
              "\xf0\x9f\x98\x80"
              "Ab");
        FIELD(f, CS_F_COMMON_LOCATION,
              "\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80"
              "\xef\xbf\xbf");
        FIELD(f, CS_F_CALL_TIME, "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf");
        FIELD(f, CS_F_REPORT_DATE, "\x01\x1f\t");
        FIELD(f, CS_F_CALL_DATE, "\\u0041");
        FIELD(f, CS_F_OFFENSE_DATE, "\"\"");
}

/* A \u escape of a lone UTF-16 surrogate has no UTF-8 form. */
static void test_reject_lone_surrogates(void **state)
{
        struct fx *f = *state;
        static const char *const bad[] = {
                "\\ud83d",        "\\ude00",        "\\ud83dx",
                "x\\ude00",       "\\ud83d\\u0041", "\\ude00\\ud83d",
                "\\ud83d\\ud83d", "\\udbff\\ue000", "\\ud800\\n",
        };
        size_t i;

        for (i = 0; i < CS_ARRAY_SIZE(bad); i++) {
                parsef(f, "{" REQ ",'address':'%s'}", bad[i]);
                is_rejected(f, NULL);
        }
}

/* Keys are JSON strings too: an escaped key names the same field. */
static void test_escaped_key(void **state)
{
        struct fx *f = *state;

        parsef(f, "{'crime\\u005fid':'9','original_crime_type_name':'X',"
                  "'call_date_time':'2018-12-31T23:57','\\u0061ddress':'A',"
                  "'cit\\u0079':'C'}");
        is_valid(f);
        FIELD(f, CS_F_CRIME_ID, "9");
        FIELD(f, CS_F_ADDRESS, "A");
        FIELD(f, CS_F_CITY, "C");
}

static void test_raw_utf8(void **state)
{
        struct fx *f = *state;

        parsef(f, "{'crime_id':'\xc3\xa9\xe2\x82\xac',"
                  "'original_crime_type_name':'Caf\xc3\xa9 \xe2\x98\x95',"
                  "'call_date_time':'2018-12-31T23:57',"
                  "'address':'\xf0\x9f\x98\x80 Stra\xc3\x9f"
                  "e','city':'\x7f',"
                  "'state':'\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf"
                  "\xee\x80\x80\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf',"
                  "'\xc3\xa9':'\xc3\xa9'}");
        is_valid(f);
        FIELD(f, CS_F_CRIME_ID, "\xc3\xa9\xe2\x82\xac");
        FIELD(f, CS_F_ORIGINAL_CRIME_TYPE_NAME, "Caf\xc3\xa9 \xe2\x98\x95");
        FIELD(f, CS_F_ADDRESS,
              "\xf0\x9f\x98\x80 Stra\xc3\x9f"
              "e");
        FIELD(f, CS_F_CITY, "\x7f");
        FIELD(f, CS_F_STATE,
              "\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf"
              "\xee\x80\x80\xef\xbf\xbf\xf0\x90\x80\x80"
              "\xf4\x8f\xbf\xbf");
}

/* ---- optional fields ---------------------------------------------------- */

static void test_optional_null(void **state)
{
        struct fx *f = *state;
        int i;

        for (i = 0; i < CS_F_COUNT; i++) {
                if (i == CS_F_CRIME_ID || i == CS_F_ORIGINAL_CRIME_TYPE_NAME ||
                    i == CS_F_CALL_DATE_TIME)
                        continue;
                parsef(f, "{" REQ ",'%s':null}", cs_field_names[i]);
                is_valid(f);
                absent(f, (enum cs_field)i);

                parsef(f, "{" REQ ",'%s':''}", cs_field_names[i]);
                is_valid(f);
                field_is(f, (enum cs_field)i, "", 0);
        }
}

/* Numbers and true/false are kept as their JSON text. */
static void test_optional_scalars(void **state)
{
        struct fx *f = *state;

        parsef(f, "{" REQ ",'agency_id':1,'disposition':true,'state':false,"
                  "'city':-12.5e+3,'address':0,'address_type':1E400,"
                  "'common_location':123456789012345678901234567890,"
                  "'call_time':-0.0,'report_date':0.1e-7}");
        is_valid(f);
        FIELD(f, CS_F_AGENCY_ID, "1");
        FIELD(f, CS_F_DISPOSITION, "true");
        FIELD(f, CS_F_STATE, "false");
        FIELD(f, CS_F_CITY, "-12.5e+3");
        FIELD(f, CS_F_ADDRESS, "0");
        FIELD(f, CS_F_ADDRESS_TYPE, "1E400");
        FIELD(f, CS_F_COMMON_LOCATION, "123456789012345678901234567890");
        FIELD(f, CS_F_CALL_TIME, "-0.0");
        FIELD(f, CS_F_REPORT_DATE, "0.1e-7");
}

/* Objects and arrays are kept as JSON text that denotes the same value. */
static void test_optional_containers(void **state)
{
        struct fx *f = *state;
        static const char *const values[] = {
                "{}",
                "[]",
                "{\"a\": [1, 2, {\"b\": null}], \"c\": \"x\\\"y\\u00e9\"}",
                "[true, false, null, 1.5, \"s\", [], {}]",
                "[[[[\"deep\"]]]]",
                "{\"crime_id\": \"NOT\", \"call_date_time\": \"x\"}",
        };
        size_t i;

        for (i = 0; i < CS_ARRAY_SIZE(values); i++) {
                const struct cs_str *s;
                json_t *want, *got;
                json_error_t jerr;

                parsef(f,
                       "{\"crime_id\":\"1\",\"original_crime_type_name\":"
                       "\"X\",\"call_date_time\":\"2018-12-31T23:57\","
                       "\"address\": %s }",
                       values[i]);
                is_valid(f);
                FIELD(f, CS_F_CRIME_ID, "1");
                s = &f->call.field[CS_F_ADDRESS];
                if (s->ptr == NULL)
                        fail_msg("address %s: absent", values[i]);
                /* parsef turned ' into " and there are none here. */
                want = json_loads(values[i], JSON_DECODE_ANY, &jerr);
                assert_non_null(want);
                got = json_loadb(s->ptr, s->len, JSON_DECODE_ANY, &jerr);
                if (got == NULL || !json_equal(want, got))
                        fail_msg("address %s stored as \"%s\"", values[i],
                                 show(s->ptr, s->len));
                json_decref(want);
                json_decref(got);
        }
}

static void test_duplicate_keys(void **state)
{
        struct fx *f = *state;

        parsef(f, "{'crime_id':'1','crime_id':'2'," REQ ",'crime_id':'3'}");
        is_valid(f);
        FIELD(f, CS_F_CRIME_ID, "3");

        parsef(f, "{" REQ ",'disposition':'A','disposition':null}");
        is_valid(f);
        absent(f, CS_F_DISPOSITION);

        parsef(f, "{" REQ ",'disposition':null,'disposition':'B'}");
        is_valid(f);
        FIELD(f, CS_F_DISPOSITION, "B");

        parsef(f, "{" REQ ",'address':'x','address':5}");
        is_valid(f);
        FIELD(f, CS_F_ADDRESS, "5");

        parsef(f, "{" REQ ",'address':'a\\nb','address':'plain'}");
        is_valid(f);
        FIELD(f, CS_F_ADDRESS, "plain");

        parsef(f, "{" REQ ",'address':'plain','address':'a\\nb'}");
        is_valid(f);
        FIELD(f, CS_F_ADDRESS, "a\nb");

        parsef(f, "{" REQ ",'crime_id':5,'crime_id':'6'}");
        is_valid(f);
        FIELD(f, CS_F_CRIME_ID, "6");

        parsef(f, "{" REQ ",'crime_id':'6','crime_id':5}");
        is_valid(f);
        FIELD(f, CS_F_CRIME_ID, "5");

        /* The earlier value does not count, valid or not. */
        parsef(f, "{'crime_id':'','original_crime_type_name':'X',"
                  "'call_date_time':'2018-12-31T23:57','crime_id':'7'}");
        is_valid(f);
        FIELD(f, CS_F_CRIME_ID, "7");

        parsef(f, "{" REQ ",'crime_id':''}");
        is_rejected(f, "invalid crime_id");

        parsef(f, "{" REQ ",'crime_id':true}");
        is_rejected(f, "invalid crime_id");

        parsef(f, "{'crime_id':'1','original_crime_type_name':'X',"
                  "'call_date_time':'2019-02-29T00:00',"
                  "'call_date_time':'2018-12-31T23:57:02'}");
        is_valid(f);
        FIELD(f, CS_F_CALL_DATE_TIME, "2018-12-31T23:57:02");
        assert_int_equal(f->call.ts, 1546300622);

        parsef(f, "{" REQ ",'call_date_time':'2019-02-29T00:00'}");
        is_rejected(f, "invalid call_date_time");

        parsef(f, "{" REQ ",'original_crime_type_name':'Y'}");
        is_valid(f);
        FIELD(f, CS_F_ORIGINAL_CRIME_TYPE_NAME, "Y");

        parsef(f, "{" REQ ",'original_crime_type_name':''}");
        is_rejected(f, "invalid original_crime_type_name");
}

/* ---- parsed time --------------------------------------------------------- */

static void test_call_timestamps(void **state)
{
        struct fx *f = *state;
        static const struct {
                const char *s;
                int64_t ts;
                int32_t usec;
        } cases[] = {
                {"2018-12-31T23:57:00.000", 1546300620, 0},
                {"2018-12-31T23:57", 1546300620, 0},
                {"2018-12-31 23:57", 1546300620, 0},
                {"2018-12-31 23:57:00", 1546300620, 0},
                {"2018-12-31T23:57:00.5", 1546300620, 500000},
                {"2018-12-31T23:57:00.000", 1546300620, 0},
                {"2018-12-31T23:57:00.123456", 1546300620, 123456},
                {"2020-02-29T00:00:00", 1582934400, 0},
                {"2000-02-29T12:00:00", 951825600, 0},
                {"1969-12-31T23:59:59.5", -1, 500000},
                {"0001-01-01T00:00", T_MIN, 0},
                {"9999-12-31T23:59:59.999999", T_MAX, 999999},
        };
        size_t i;

        for (i = 0; i < CS_ARRAY_SIZE(cases); i++) {
                parsef(f,
                       "{'crime_id':'1','original_crime_type_name':'X',"
                       "'call_date_time':'%s'}",
                       cases[i].s);
                is_valid(f);
                field_is(f, CS_F_CALL_DATE_TIME, cases[i].s,
                         strlen(cases[i].s));
                if (f->call.ts != cases[i].ts ||
                    f->call.ts_usec != cases[i].usec)
                        fail_msg("%s: ts %lld usec %d, expected %lld %d",
                                 cases[i].s, (long long)f->call.ts,
                                 (int)f->call.ts_usec, (long long)cases[i].ts,
                                 (int)cases[i].usec);
        }
}

/* ---- buffers and parser state ------------------------------------------- */

/* buf need not be NUL-terminated: parse a prefix of a larger buffer whose
 * next bytes would change the meaning if read. */
static void test_not_nul_terminated(void **state)
{
        struct fx *f = *state;
        static const char V[] = "{\"crime_id\":\"1\",\"original_crime_type_"
                                "name\":\"X\",\"call_date_time\":\"2018-12-"
                                "31T23:57\"}";
        static const char garbage[] = "garbage\xff\x80{\"crime_id\":";
        char big[512];
        size_t vlen = sizeof(V) - 1;
        int64_t ts;
        int32_t usec;

        memcpy(big, V, vlen);
        memcpy(big + vlen, garbage, sizeof(garbage));
        parsen(f, big, vlen);
        is_valid(f);
        FIELD(f, CS_F_CRIME_ID, "1");
        FIELD(f, CS_F_CALL_DATE_TIME, "2018-12-31T23:57");

        /* Parse the message in place, the garbage right behind it. */
        f->rc = cs_parse_call(f->p, big, vlen, &f->call, f->reason,
                              CS_PARSE_REASON_MAX);
        assert_int_equal(f->rc, 0);
        assert_int_equal(f->call.field[CS_F_CRIME_ID].len, 1);

        /* Cut before the closing brace, which is still in memory. */
        parsen(f, big, vlen - 1);
        is_rejected(f, NULL);
        f->rc = cs_parse_call(f->p, big, vlen - 1, &f->call, f->reason,
                              CS_PARSE_REASON_MAX);
        assert_int_equal(f->rc, -1);

        /* Cut inside a string and inside a literal. */
        f->rc = cs_parse_call(f->p, big, 10, &f->call, f->reason,
                              CS_PARSE_REASON_MAX);
        assert_int_equal(f->rc, -1);
        memcpy(big, "{\"a\":true}", 10);
        f->rc = cs_parse_call(f->p, big, 7, &f->call, f->reason,
                              CS_PARSE_REASON_MAX);
        assert_int_equal(f->rc, -1);

        /* A top-level number followed by more digits in memory. */
        memcpy(big, "12345", 5);
        f->rc = cs_parse_call(f->p, big, 2, &f->call, f->reason,
                              CS_PARSE_REASON_MAX);
        assert_int_equal(f->rc, -1);
        assert_int_equal(strncmp(f->reason, "not a JSON object", 17), 0);

        /* The timestamp parser too. */
        assert_int_equal(
                cs_time_parse("2018-12-31T23:57:00.000XYZ", 23, &ts, &usec), 0);
        assert_int_equal(ts, 1546300620);
        assert_int_equal(usec, 0);
        assert_int_equal(cs_time_parse("2018-12-31T23:57:00", 16, &ts, &usec),
                         0);
        assert_int_equal(ts, 1546300620);
        assert_int_equal(
                cs_time_parse("2018-12-31T23:57:00.12", 21, &ts, &usec), 0);
        assert_int_equal(usec, 100000);
        assert_int_equal(cs_time_parse("2018-12-31T23:57:59", 18, &ts, &usec),
                         -1);
        assert_int_equal(cs_time_parse("2018-12-31T23:57:00\0", 20, &ts, &usec),
                         -1);
        assert_int_equal(cs_time_parse("2018-12-31T23:57:00", 0, &ts, &usec),
                         -1);
}

/* Every string of a call stays correct until the next parse, however many
 * fields needed decoding into scratch space (scratch must not move). */
static void test_borrowed_strings_stable(void **state)
{
        struct fx *f = *state;
        char *want[CS_F_COUNT];
        size_t want_len[CS_F_COUNT];
        char *msg, *m;
        size_t cap = 8u << 20;
        int i;
        size_t j, n;

        msg = malloc(cap);
        assert_non_null(msg);
        m = msg;
        *m++ = '{';
        for (i = 0; i < CS_F_COUNT; i++) {
                /* Lengths grow so that scratch space has to grow. */
                n = (size_t)(1000 + i * i * 1500);
                want[i] = malloc(n * 3 + 32);
                assert_non_null(want[i]);
                want_len[i] = 0;
                m += sprintf(m, "%s\"%s\":\"", i ? "," : "", cs_field_names[i]);
                if (i == CS_F_CALL_DATE_TIME) {
                        m += sprintf(m, "2018-12-31\\u005423:57");
                        want_len[i] =
                                (size_t)sprintf(want[i], "2018-12-31T23:57");
                } else {
                        for (j = 0; j < n; j++) {
                                switch ((j + (size_t)i) % 4) {
                                case 0:
                                        *m++ = (char)('a' + i);
                                        want[i][want_len[i]++] =
                                                (char)('a' + i);
                                        break;
                                case 1:
                                        m += sprintf(m, "\\n");
                                        want[i][want_len[i]++] = '\n';
                                        break;
                                case 2:
                                        m += sprintf(m, "\\u00e9");
                                        want[i][want_len[i]++] = '\xc3';
                                        want[i][want_len[i]++] = '\xa9';
                                        break;
                                default:
                                        m += sprintf(m, "%d", i % 10);
                                        want[i][want_len[i]++] =
                                                (char)('0' + i % 10);
                                }
                        }
                }
                *m++ = '"';
                assert_true((size_t)(m - msg) < cap - 64);
        }
        *m++ = '}';
        parsen(f, msg, (size_t)(m - msg));
        is_valid(f);
        for (i = 0; i < CS_F_COUNT; i++) {
                field_is(f, (enum cs_field)i, want[i], want_len[i]);
                free(want[i]);
        }
        free(msg);
}

/* One parser over many messages: nothing leaks from one call to the next,
 * in particular not after a rejection half-way through a message. */
static void test_reuse(void **state)
{
        struct fx *f = *state;
        int i;

        parsen(f, sample_record, sizeof(sample_record) - 1);
        is_valid(f);
        parsef(f, "{'address':'leak','disposition':'leak','crime_id':'9',"
                  "'city':'leak','original_crime_type_name':'X',"
                  "'call_date_time':'2019-02-29T00:00'}");
        is_rejected(f, "invalid call_date_time");
        parsef(f, "{" REQ "}");
        is_valid(f);
        FIELD(f, CS_F_CRIME_ID, "1");
        absent(f, CS_F_ADDRESS);
        absent(f, CS_F_DISPOSITION);
        absent(f, CS_F_CITY);
        absent(f, CS_F_REPORT_DATE);

        /* A syntax error half-way, then a valid message. */
        parsef(f, "{'crime_id':'8','address':'x\\u00e9y','city':tru");
        is_json_error(f, 0);
        parsef(f, "{" REQ "}");
        is_valid(f);
        absent(f, CS_F_ADDRESS);
        absent(f, CS_F_CITY);

        for (i = 0; i < 20000; i++) {
                switch (i % 5) {
                case 0:
                        parsef(f, "{'crime_id':'%d','address':'a\\u00e9%d',", i,
                               i);
                        is_json_error(f, 0);
                        break;
                case 1:
                        parsef(f, "{'crime_id':'%d','disposition':'D%d'}", i,
                               i);
                        is_rejected(f, "missing original_crime_type_name");
                        break;
                case 2:
                        parsef(f,
                               "{'crime_id':%d,'original_crime_type_name':"
                               "'T\\t%d','call_date_time':"
                               "'2018-12-31 23:57:%02d.%d'}",
                               i, i, i % 60, i % 10);
                        is_valid(f);
                        absent(f, CS_F_DISPOSITION);
                        absent(f, CS_F_ADDRESS);
                        assert_int_equal(f->call.ts, 1546300620 + i % 60);
                        assert_int_equal(f->call.ts_usec, (i % 10) * 100000);
                        break;
                default: {
                        char id[32], addr[32];
                        int n;

                        parsef(f,
                               "{'crime_id':'%d','original_crime_type_name':"
                               "'X','call_date_time':'2018-12-31T23:57',"
                               "'address':'\\u00e9%d'}",
                               i, i);
                        is_valid(f);
                        n = snprintf(id, sizeof(id), "%d", i);
                        field_is(f, CS_F_CRIME_ID, id, (size_t)n);
                        n = snprintf(addr, sizeof(addr), "\xc3\xa9%d", i);
                        field_is(f, CS_F_ADDRESS, addr, (size_t)n);
                        absent(f, CS_F_DISPOSITION);
                        assert_int_equal(f->call.ts_usec, 0);
                }
                }
        }
}

/* reason_size is honoured: nothing written past it, always NUL-terminated. */
static void test_reason_size(void **state)
{
        struct fx *f = *state;
        struct cs_call call;
        char reason[64];
        size_t i, sizes[] = {1, 2, 8, 17};
        size_t k;

        for (k = 0; k < CS_ARRAY_SIZE(sizes); k++) {
                memset(reason, 'Z', sizeof(reason));
                assert_int_equal(
                        cs_parse_call(f->p, "[]", 2, &call, reason, sizes[k]),
                        -1);
                assert_non_null(memchr(reason, '\0', sizes[k]));
                for (i = sizes[k]; i < sizeof(reason); i++)
                        assert_int_equal(reason[i], 'Z');
                assert_int_equal(
                        strncmp(reason, "not a JSON object", strlen(reason)),
                        0);
        }
}

/* Deep nesting in an ignored field must not crash; either outcome is
 * acceptable, but a rejection needs a reason. */
static void test_deep_nesting(void **state)
{
        struct fx *f = *state;
        static const char head[] =
                "{\"crime_id\":\"1\",\"original_crime_type_name\":\"X\","
                "\"call_date_time\":\"2018-12-31T23:57\",\"deep\":";
        size_t depth = 200000, hl = sizeof(head) - 1, n, i;
        char *msg = malloc(hl + 2 * depth + 2);

        assert_non_null(msg);
        memcpy(msg, head, hl);
        n = hl;
        for (i = 0; i < depth; i++)
                msg[n++] = '[';
        for (i = 0; i < depth; i++)
                msg[n++] = ']';
        msg[n++] = '}';
        parsen(f, msg, n);
        if (f->rc == 0)
                FIELD(f, CS_F_CRIME_ID, "1");
        else
                is_rejected(f, NULL);

        /* Unclosed. */
        parsen(f, msg, hl + depth);
        is_rejected(f, NULL);

        /* Objects. */
        n = hl;
        for (i = 0; i < depth / 8; i++) {
                memcpy(msg + n, "{\"a\":", 5);
                n += 5;
        }
        msg[n++] = '1';
        for (i = 0; i < depth / 8; i++)
                msg[n++] = '}';
        msg[n++] = '}';
        parsen(f, msg, n);
        if (f->rc == 0)
                FIELD(f, CS_F_CRIME_ID, "1");
        else
                is_rejected(f, NULL);
        free(msg);

        /* The parser still works afterwards. */
        parsen(f, sample_record, sizeof(sample_record) - 1);
        is_valid(f);
        check_sample_fields(f);
}

static void test_large_values(void **state)
{
        struct fx *f = *state;
        size_t n = 1u << 20, hl, i;
        char *msg = malloc(3 * n + 256);
        static const char head[] =
                "{\"crime_id\":\"1\",\"original_crime_type_name\":\"X\","
                "\"call_date_time\":\"2018-12-31T23:57\",\"unknown\":\"";

        assert_non_null(msg);
        hl = sizeof(head) - 1;
        memcpy(msg, head, hl);
        for (i = 0; i < n; i++)
                msg[hl + i] = (char)('a' + i % 26);
        memcpy(msg + hl + n, "\",\"address\":\"", 13);
        for (i = 0; i < n; i++)
                msg[hl + n + 13 + i] = (char)('A' + i % 26);
        memcpy(msg + hl + 2 * n + 13, "\"}", 2);
        parsen(f, msg, hl + 2 * n + 15);
        is_valid(f);
        assert_int_equal(f->call.field[CS_F_ADDRESS].len, n);
        for (i = 0; i < n; i++)
                if (f->call.field[CS_F_ADDRESS].ptr[i] != (char)('A' + i % 26))
                        fail_msg("address byte %zu differs", i);
        free(msg);
}

/* ---- the real sample ---------------------------------------------------- */

static char *read_file(const char *path, size_t *len)
{
        FILE *fp = fopen(path, "rb");
        char *buf = NULL;
        long n;

        if (fp == NULL)
                return NULL;
        if (fseek(fp, 0, SEEK_END) != 0 || (n = ftell(fp)) < 0 ||
            fseek(fp, 0, SEEK_SET) != 0)
                goto fail;
        buf = malloc((size_t)n + 1);
        if (buf == NULL || fread(buf, 1, (size_t)n, fp) != (size_t)n) {
                free(buf);
                buf = NULL;
                goto fail;
        }
        buf[n] = '\0';
        *len = (size_t)n;
fail:
        fclose(fp);
        return buf;
}

/* Byte ranges of the objects in a top-level JSON array, found by matching
 * braces outside strings. Returns how many, or -1 when malformed. */
static int split_array(const char *buf, size_t len, size_t *start, size_t *end,
                       int max)
{
        size_t i = 0;
        int n = 0, depth, in_str;

        while (i < len && buf[i] && strchr(" \t\r\n", buf[i]))
                i++;
        if (i == len || buf[i++] != '[')
                return -1;
        for (;;) {
                while (i < len && buf[i] && strchr(" \t\r\n,", buf[i]))
                        i++;
                if (i == len)
                        return -1;
                if (buf[i] == ']')
                        return n;
                if (buf[i] != '{' || n == max)
                        return -1;
                start[n] = i;
                depth = 0;
                in_str = 0;
                for (; i < len; i++) {
                        char c = buf[i];

                        if (in_str) {
                                if (c == '\\')
                                        i++;
                                else if (c == '"')
                                        in_str = 0;
                        } else if (c == '"') {
                                in_str = 1;
                        } else if (c == '{' || c == '[') {
                                depth++;
                        } else if ((c == '}' || c == ']') && --depth == 0) {
                                i++;
                                break;
                        }
                }
                if (depth != 0)
                        return -1;
                end[n++] = i;
        }
}

/* Expected ts/usec of a "YYYY-MM-DDTHH:MM:SS.fff" value, by hand. */
static void expected_time(const char *s, int64_t *ts, int32_t *usec)
{
        int y, mo, d, h, mi, sec = 0, k = 0, i;
        int32_t frac = 0, scale = 100000;

        if (sscanf(s, "%4d-%2d-%2d%*c%2d:%2d%n", &y, &mo, &d, &h, &mi, &k) !=
                    5 ||
            k != 16)
                fail_msg("oracle cannot read call_date_time \"%s\"", s);
        if (s[16] == ':') {
                sec = (s[17] - '0') * 10 + (s[18] - '0');
                if (s[19] == '.')
                        for (i = 20; s[i] >= '0' && s[i] <= '9'; i++) {
                                frac += (s[i] - '0') * scale;
                                scale /= 10;
                        }
        }
        *ts = epoch_of(y, mo, d, h, mi, sec);
        *usec = frac;
}

static void check_against_oracle(struct fx *f, const char *text, size_t len,
                                 json_t *obj, const char *form, size_t idx)
{
        int64_t ts;
        int32_t usec;
        int k;

        parsen(f, text, len);
        if (f->rc != 0)
                fail_msg("sample record %zu (%s) rejected: %s", idx, form,
                         f->reason);
        for (k = 0; k < CS_F_COUNT; k++) {
                json_t *v = json_object_get(obj, cs_field_names[k]);

                if (v == NULL || json_is_null(v)) {
                        absent(f, (enum cs_field)k);
                } else if (json_is_string(v)) {
                        field_is(f, (enum cs_field)k, json_string_value(v),
                                 json_string_length(v));
                } else {
                        fail_msg("record %zu: %s is not a string", idx,
                                 cs_field_names[k]);
                }
        }
        expected_time(json_string_value(json_object_get(obj, "call_date_time")),
                      &ts, &usec);
        if (f->call.ts != ts || f->call.ts_usec != usec)
                fail_msg("sample record %zu (%s): ts %lld.%06d, expected "
                         "%lld.%06d",
                         idx, form, (long long)f->call.ts, (int)f->call.ts_usec,
                         (long long)ts, (int)usec);
}

static void test_sample_file(void **state)
{
        struct fx *f = *state;
        const char *dir = getenv("CALLSTREAM_DATA");
        char path[4096];
        char *buf, *s;
        size_t len = 0, i;
        size_t start[800], end[800];
        json_t *root;
        json_error_t jerr;
        int n;

        if (dir == NULL || *dir == '\0')
                dir = "tests/data";
        snprintf(path, sizeof(path),
                 "%s/police-department-calls-for-service.sample.json", dir);
        buf = read_file(path, &len);
        if (buf == NULL)
                fail_msg("cannot read %s (set CALLSTREAM_DATA)", path);
        root = json_loadb(buf, len, 0, &jerr);
        if (root == NULL)
                fail_msg("jansson: %s: %s", path, jerr.text);
        assert_true(json_is_array(root));
        assert_int_equal(json_array_size(root), 700);
        n = split_array(buf, len, start, end, 800);
        assert_int_equal(n, 700);

        for (i = 0; i < 700; i++) {
                json_t *obj = json_array_get(root, i);

                assert_true(json_is_object(obj));
                /* As the bytes appear in the file, pretty-printed. */
                check_against_oracle(f, buf + start[i], end[i] - start[i], obj,
                                     "as in the file", i);
                /* Compact, one line, as the producer might send it. */
                s = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
                assert_non_null(s);
                check_against_oracle(f, s, strlen(s), obj, "compact", i);
                free(s);
                /* Sorted keys, every non-ASCII character and '/' escaped. */
                s = json_dumps(obj, JSON_SORT_KEYS | JSON_ENSURE_ASCII |
                                            JSON_ESCAPE_SLASH);
                assert_non_null(s);
                check_against_oracle(f, s, strlen(s), obj, "escaped", i);
                free(s);
        }
        json_decref(root);
        free(buf);
}

/* ---- cs_time_parse / cs_time_format ------------------------------------- */

static void test_epoch_oracle(void **state)
{
        (void)state;
        /* Anchors known independently of this file's arithmetic. */
        assert_int_equal(epoch_of(1970, 1, 1, 0, 0, 0), 0);
        assert_int_equal(epoch_of(2018, 12, 31, 23, 57, 0), 1546300620);
        assert_int_equal(epoch_of(2038, 1, 19, 3, 14, 8), 2147483648LL);
        assert_int_equal(epoch_of(1901, 12, 13, 20, 45, 52), -2147483648LL);
        assert_int_equal(epoch_of(1, 1, 1, 0, 0, 0), T_MIN);
        assert_int_equal(epoch_of(9999, 12, 31, 23, 59, 59), T_MAX);
}

static void test_parse_timestamp_valid(void **state)
{
        static const struct {
                const char *s;
                int64_t ts;
                int32_t usec;
        } cases[] = {
                {"2018-12-31T23:57:00.000", 1546300620, 0},
                {"2018-12-31T23:57:00", 1546300620, 0},
                {"2018-12-31T23:57", 1546300620, 0},
                {"2018-12-31 23:57:00", 1546300620, 0},
                {"2018-12-31 23:57", 1546300620, 0},
                {"2018-12-31T23:57:00.5", 1546300620, 500000},
                {"2018-12-31T23:57:00.05", 1546300620, 50000},
                {"2018-12-31T23:57:00.1", 1546300620, 100000},
                {"2018-12-31T23:57:00.123456", 1546300620, 123456},
                {"2018-12-31T23:57:00.000001", 1546300620, 1},
                {"2018-12-31T23:57:00.999999", 1546300620, 999999},
                {"2018-12-31T23:57:00.000000", 1546300620, 0},
                {"2018-12-31T23:57:00.0", 1546300620, 0},
                {"2018-12-31T23:59:59", 1546300799, 0},
                {"2019-01-01T00:00:00", 1546300800, 0},
                {"1970-01-01T00:00:00", 0, 0},
                {"1970-01-01T00:00:01", 1, 0},
                {"1969-12-31T23:59:59", -1, 0},
                {"1969-12-31T23:59:59.5", -1, 500000},
                {"2020-02-29T00:00:00", 1582934400, 0},
                {"2000-02-29T12:00:00", 951825600, 0},
                {"1900-03-01T00:00", -2203891200LL, 0},
                {"2038-01-19T03:14:08", 2147483648LL, 0},
                {"1901-12-13T20:45:52", -2147483648LL, 0},
                {"0001-01-01T00:00:00", T_MIN, 0},
                {"0001-01-01 00:00", T_MIN, 0},
                {"9999-12-31T23:59:59.999999", T_MAX, 999999},
                {"2016-12-31T23:59:59", 1483228799, 0},
                {"2018-12-31T00:00", 1546214400, 0},
                {"2018-12-31T09:05:07.25", 1546247107, 250000},
        };
        size_t i;

        (void)state;
        for (i = 0; i < CS_ARRAY_SIZE(cases); i++) {
                int64_t ts = 12345;
                int32_t usec = 12345;

                if (cs_time_parse(cases[i].s, strlen(cases[i].s), &ts, &usec) !=
                    0)
                        fail_msg("\"%s\" rejected", cases[i].s);
                if (ts != cases[i].ts || usec != cases[i].usec)
                        fail_msg("\"%s\": %lld %d, expected %lld %d",
                                 cases[i].s, (long long)ts, (int)usec,
                                 (long long)cases[i].ts, (int)cases[i].usec);
        }
}

static void test_parse_timestamp_invalid(void **state)
{
        size_t i;

        (void)state;
        for (i = 0; i < CS_ARRAY_SIZE(bad_times); i++) {
                int64_t ts;
                int32_t usec;

                if (cs_time_parse(bad_times[i], strlen(bad_times[i]), &ts,
                                  &usec) != -1)
                        fail_msg("\"%s\" accepted as %lld.%06d",
                                 show(bad_times[i], strlen(bad_times[i])),
                                 (long long)ts, (int)usec);
        }
}

/* Every day of years 0001-9999 (and days 29-31 that do not exist), each
 * with its own time of day, checked against a running count of seconds,
 * then formatted back. */
static void test_timestamp_every_day(void **state)
{
        int64_t day = T_MIN, ts;
        int32_t usec;
        int y, m, d;
        char s[64], want[64], out[CS_TS_BUFSZ];
        size_t n;

        (void)state;
        for (y = 1; y <= 9999; y++) {
                for (m = 1; m <= 12; m++) {
                        for (d = 1; d <= 31; d++) {
                                int h = (y + d) % 24, mi = (y * 7 + m) % 60;
                                int sec = (d * 13 + y) % 60;
                                int exists = d <= days_in_month(y, m);
                                int32_t frac = (d % 3 == 0) ? d * 1001 : 0;

                                n = (size_t)snprintf(
                                        s, sizeof(s),
                                        "%04d-%02d-%02d%c%02d:%02d:%02d", y, m,
                                        d, d % 2 ? 'T' : ' ', h, mi, sec);
                                if (frac)
                                        n += (size_t)snprintf(
                                                s + n, sizeof(s) - n, ".%06d",
                                                (int)frac);
                                if (!exists) {
                                        if (cs_time_parse(s, n, &ts, &usec) !=
                                            -1)
                                                fail_msg("\"%s\" accepted", s);
                                        continue;
                                }
                                if (cs_time_parse(s, n, &ts, &usec) != 0)
                                        fail_msg("\"%s\" rejected", s);
                                if (ts != day + h * 3600 + mi * 60 + sec ||
                                    usec != frac)
                                        fail_msg("\"%s\": %lld.%06d, expected "
                                                 "%lld.%06d",
                                                 s, (long long)ts, (int)usec,
                                                 (long long)(day + h * 3600 +
                                                             mi * 60 + sec),
                                                 (int)frac);
                                snprintf(want, sizeof(want),
                                         "%04d-%02d-%02d %02d:%02d:%02d", y, m,
                                         d, h, mi, sec);
                                if (frac)
                                        snprintf(want + 19, sizeof(want) - 19,
                                                 ".%06d", (int)frac);
                                n = cs_time_format(ts, usec, out);
                                if (n != strlen(want) || strcmp(out, want))
                                        fail_msg("format(%lld, %d) = \"%s\" "
                                                 "(%zu), expected \"%s\"",
                                                 (long long)ts, (int)usec, out,
                                                 n, want);
                                day += 86400;
                        }
                }
        }
        assert_int_equal(day, T_MAX + 1);
}

static void test_format_timestamp(void **state)
{
        static const struct {
                int64_t ts;
                int32_t usec;
                const char *want;
        } cases[] = {
                {1546300620, 0, "2018-12-31 23:57:00"},
                {1546300620, 500000, "2018-12-31 23:57:00.500000"},
                {1546300620, 1, "2018-12-31 23:57:00.000001"},
                {1546300620, 999999, "2018-12-31 23:57:00.999999"},
                {0, 0, "1970-01-01 00:00:00"},
                {-1, 0, "1969-12-31 23:59:59"},
                {-1, 500000, "1969-12-31 23:59:59.500000"},
                {T_MIN, 0, "0001-01-01 00:00:00"},
                {T_MAX, 999999, "9999-12-31 23:59:59.999999"},
                {951825600, 0, "2000-02-29 12:00:00"},
                {-2203891200LL, 0, "1900-03-01 00:00:00"},
                {2147483648LL, 0, "2038-01-19 03:14:08"},
        };
        size_t i;

        (void)state;
        for (i = 0; i < CS_ARRAY_SIZE(cases); i++) {
                char out[CS_TS_BUFSZ + 8];
                size_t n;

                memset(out, 'Z', sizeof(out));
                n = cs_time_format(cases[i].ts, cases[i].usec, out);
                if (strcmp(out, cases[i].want) != 0 ||
                    n != strlen(cases[i].want))
                        fail_msg("format(%lld, %d) = \"%s\" (%zu), expected "
                                 "\"%s\"",
                                 (long long)cases[i].ts, (int)cases[i].usec,
                                 out, n, cases[i].want);
                assert_int_equal(out[CS_TS_BUFSZ], 'Z');
        }
}

/* Parse then format, and format then parse. */
static void test_timestamp_round_trip(void **state)
{
        static const struct {
                const char *in;
                const char *out;
        } cases[] = {
                {"2018-12-31T23:57:00.000", "2018-12-31 23:57:00"},
                {"2018-12-31T23:57", "2018-12-31 23:57:00"},
                {"2018-12-31 23:57:00", "2018-12-31 23:57:00"},
                {"2018-12-31T23:57:00.5", "2018-12-31 23:57:00.500000"},
                {"2018-12-31T23:57:00.000001", "2018-12-31 23:57:00.000001"},
                {"2020-02-29T23:59:59.999999", "2020-02-29 23:59:59.999999"},
        };
        uint64_t x = 88172645463325252ULL;
        size_t i;
        int k;

        (void)state;
        for (i = 0; i < CS_ARRAY_SIZE(cases); i++) {
                char out[CS_TS_BUFSZ];
                int64_t ts;
                int32_t usec;

                assert_int_equal(cs_time_parse(cases[i].in, strlen(cases[i].in),
                                               &ts, &usec),
                                 0);
                cs_time_format(ts, usec, out);
                assert_string_equal(out, cases[i].out);
        }

        for (k = 0; k < 200000; k++) {
                char out[CS_TS_BUFSZ], want[64];
                int64_t ts, ts2;
                int32_t usec, usec2;
                size_t n;

                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ts = T_MIN + (int64_t)(x % (uint64_t)(T_MAX - T_MIN + 1));
                usec = (k % 2) ? (int32_t)((x >> 40) % 1000000) : 0;
                n = cs_time_format(ts, usec, out);
                format_oracle(ts, usec, want, sizeof(want));
                if (strcmp(out, want) != 0 || n != strlen(want))
                        fail_msg("format(%lld, %d) = \"%s\", expected \"%s\"",
                                 (long long)ts, (int)usec, out, want);
                if (cs_time_parse(out, n, &ts2, &usec2) != 0 || ts2 != ts ||
                    usec2 != usec)
                        fail_msg("\"%s\" does not parse back to %lld.%06d", out,
                                 (long long)ts, (int)usec);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
                cmocka_unit_test(test_field_names),
                T(test_sample_record),
                T(test_minimal_record),
                T(test_all_fields_reversed),
                T(test_unknown_fields),
                T(test_whitespace),
                T(test_integer_crime_id),
                T(test_reject_empty),
                T(test_reject_invalid_json),
                T(test_reject_truncated),
                T(test_reject_trailing),
                T(test_reject_other_whitespace),
                T(test_reject_not_object),
                T(test_reject_crime_id),
                T(test_reject_crime_type),
                T(test_reject_call_date_time),
                T(test_reject_invalid_utf8),
                T(test_reject_control_chars),
                T(test_reject_nul_escape),
                T(test_escapes),
                T(test_reject_lone_surrogates),
                T(test_escaped_key),
                T(test_raw_utf8),
                T(test_optional_null),
                T(test_optional_scalars),
                T(test_optional_containers),
                T(test_duplicate_keys),
                T(test_call_timestamps),
                T(test_not_nul_terminated),
                T(test_borrowed_strings_stable),
                T(test_reuse),
                T(test_reason_size),
                T(test_deep_nesting),
                T(test_large_values),
                T(test_sample_file),
                cmocka_unit_test(test_epoch_oracle),
                cmocka_unit_test(test_parse_timestamp_valid),
                cmocka_unit_test(test_parse_timestamp_invalid),
                cmocka_unit_test(test_timestamp_every_day),
                cmocka_unit_test(test_format_timestamp),
                cmocka_unit_test(test_timestamp_round_trip),
#undef T
        };

        return cmocka_run_group_tests_name("parse", tests, NULL, NULL);
}
