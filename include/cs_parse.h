/* cs_parse.h: validating parser for one police call record (a Kafka message).
 *
 * A message is a valid call when it is one JSON object (RFC 8259, UTF-8,
 * nothing after it but white space) with:
 *   crime_id                  a non-empty string, or a non-negative integer
 *                             (183653763 and "183653763" are the same call)
 *   original_crime_type_name  a non-empty string
 *   call_date_time            "YYYY-MM-DDTHH:MM[:SS[.f...]]" naming a real
 *                             date and time (a space may replace the T, up
 *                             to 6 fraction digits)
 * Other known fields are optional and kept as given: strings decoded, numbers
 * and true/false as their JSON text, objects and arrays as their JSON text,
 * null as absent. Unknown fields are ignored. When a key repeats, the last
 * value wins. No string may contain U+0000 (PostgreSQL text cannot hold it).
 *
 * The parser does no I/O and keeps no global state. */
#ifndef CS_PARSE_H
#define CS_PARSE_H

#include "cs_common.h"
#include "cs_time.h"

/* The fields of a call, in the column order of the calls table. */
enum cs_field {
        CS_F_CRIME_ID = 0,
        CS_F_ORIGINAL_CRIME_TYPE_NAME,
        CS_F_REPORT_DATE,
        CS_F_CALL_DATE,
        CS_F_OFFENSE_DATE,
        CS_F_CALL_TIME,
        CS_F_CALL_DATE_TIME,
        CS_F_DISPOSITION,
        CS_F_ADDRESS,
        CS_F_CITY,
        CS_F_STATE,
        CS_F_AGENCY_ID,
        CS_F_ADDRESS_TYPE,
        CS_F_COMMON_LOCATION,
        CS_F_COUNT
};

/* The JSON key (and column name) of each field. */
extern const char *const cs_field_names[CS_F_COUNT];

/* A parsed call. Every string borrows from the message buffer or from the
 * parser's scratch space: valid until the next cs_parse_call() on the same
 * parser or until the message is freed, whichever comes first. */
struct cs_call {
        struct cs_str field[CS_F_COUNT];
        int64_t ts;      /* call_date_time as seconds since 1970-01-01 */
        int32_t ts_usec; /* and its fraction in microseconds */
};

/* Longest rejection reason, NUL included. */
#define CS_PARSE_REASON_MAX 128

struct cs_parser;

/* Returns a new parser, or NULL when out of memory. */
struct cs_parser *cs_parser_new(void);
/* Frees the parser; NULL is accepted. */
void cs_parser_destroy(struct cs_parser *p);

/* Parses and validates buf[0..len). Returns 0 and fills *call when the
 * message is a valid call; otherwise returns -1 and writes a short reason
 * ("invalid JSON at byte 17", "missing crime_id", "invalid call_date_time")
 * to reason. buf is borrowed and need not be NUL-terminated. */
int cs_parse_call(struct cs_parser *p, const char *buf, size_t len,
                  struct cs_call *call, char *reason,
                  size_t reason_size) CS_MUSTCHECK;

/* The same with yajl alone, without the flat reader cs_parse_call() tries
 * first: the reference tests/test_parse_diff.c and tests/fuzz/fuzz_parse.c
 * hold cs_parse_call() to (same return, reason and fields for every
 * input). */
int cs_parse_call_yajl(struct cs_parser *p, const char *buf, size_t len,
                       struct cs_call *call, char *reason,
                       size_t reason_size) CS_MUSTCHECK;

/* Whether buf[0..len) is strict UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF), as cs_parse_call() requires. */
int cs_parse_utf8_valid(const void *buf, size_t len);

/* What another decoder (Avro) found for a field, for cs_parse_validate():
 * absent, null, a string, or an integer given as its decimal text. */
enum cs_value_kind {
        CS_V_ABSENT = 0,
        CS_V_NULL,
        CS_V_STRING,
        CS_V_NUMBER,
};

/* The checks cs_parse_call() makes once the JSON is read, for a call that
 * another decoder filled: kind[i] says what field i held (enum
 * cs_value_kind), call->field[i] its text. Sets call->ts and ts_usec and
 * returns 0 when the call is valid; otherwise -1 with the same reason the
 * JSON path gives ("missing call_date_time", "invalid crime_id: ..."). So a
 * call is valid in any format exactly when it is valid as JSON. nul_free:
 * the caller knows no string holds U+0000, which spares the scan for it. */
int cs_parse_validate(const unsigned char kind[CS_F_COUNT],
                      struct cs_call *call, int nul_free, char *reason,
                      size_t reason_size) CS_MUSTCHECK;

/* How many messages cs_parse_call() read with the flat reader and how many
 * it left to yajl, since the parser was made: for tests and benchmarks. */
void cs_parser_counts(const struct cs_parser *p, uint64_t *flat,
                      uint64_t *yajl);

#endif
