/* cs_jsonsplit.h: splits a byte stream into messages, one per element of a
 * top-level JSON array or one per line of NDJSON, holding at most one
 * message in memory.
 *
 * The input is fed in chunks of any size; the splitter keeps its state
 * (inside a string, after a backslash, nesting depth) across chunk
 * boundaries. When the first byte that is not white space is '[' the input
 * is one JSON array: each top-level element becomes a message, compacted by
 * dropping white space outside strings. Otherwise it is NDJSON: each line
 * that is not blank is a message as is, without its "\n" or "\r\n". A UTF-8
 * byte order mark at the very start is skipped.
 *
 * Only the array structure is checked (brackets, commas, strings); whether
 * an element is valid JSON is left to the consumer of the message. */
#ifndef CS_JSONSPLIT_H
#define CS_JSONSPLIT_H

#include "cs_common.h"

/* Deepest nesting of objects and arrays inside one array element. */
#define CS_JSONSPLIT_MAX_DEPTH 1024

/* feed and end return CS_STOPPED (cs_common.h) when the callback asked to
 * stop. */

enum cs_jsonsplit_mode {
        CS_JSONSPLIT_UNKNOWN = 0, /* nothing but white space seen yet */
        CS_JSONSPLIT_ARRAY,
        CS_JSONSPLIT_NDJSON,
};

struct cs_jsonsplit;

/* Called once per message. msg is borrowed for the duration of the call (it
 * points into the fed chunk or into the splitter's buffer). When the message
 * is longer than max_msg bytes, msg is NULL and len is its full length.
 * offset is the input byte offset where the message starts. Returns 0 to go
 * on, anything else to stop. */
typedef int cs_jsonsplit_msg_cb(void *opaque, const char *msg, size_t len,
                                uint64_t offset);

/* Returns a new splitter that keeps messages of up to max_msg (> 0) bytes,
 * or NULL when out of memory. opaque is passed to on_msg as is. */
struct cs_jsonsplit *
cs_jsonsplit_new(size_t max_msg, cs_jsonsplit_msg_cb *on_msg, void *opaque);

/* Frees the splitter; NULL is accepted. */
void cs_jsonsplit_destroy(struct cs_jsonsplit *js);

/* Feeds the next len bytes of input (borrowed). Returns 0; -1 when the
 * array structure is broken or memory ran out (see cs_jsonsplit_error());
 * or CS_STOPPED when on_msg returned non-zero. After a non-zero
 * return the splitter accepts no more input. */
int cs_jsonsplit_feed(struct cs_jsonsplit *js, const char *buf,
                      size_t len) CS_MUSTCHECK;

/* Ends the input: delivers a last NDJSON line that has no newline, and
 * fails (-1) on an unterminated array. Returns like cs_jsonsplit_feed(). */
int cs_jsonsplit_end(struct cs_jsonsplit *js) CS_MUSTCHECK;

/* The reason for the last -1, e.g. "invalid JSON array at byte 1234:
 * expected ',' or ']' after an element, got '{'"; "" when none. */
const char *cs_jsonsplit_error(const struct cs_jsonsplit *js);

/* What the input turned out to be. */
enum cs_jsonsplit_mode cs_jsonsplit_mode(const struct cs_jsonsplit *js);

/* During on_msg: the message's number, counting from 1: its line number in
 * NDJSON (blank lines count), its element number in an array. */
uint64_t cs_jsonsplit_number(const struct cs_jsonsplit *js);

#endif
