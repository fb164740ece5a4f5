/* cs_avro.h: police calls as Avro binary data (Apache Avro's C library
 * reads the schema): a decoder that fills the same struct cs_call as the
 * JSON parser, and an encoder for produce and generate.
 *
 * The writer's schema is a record; its fields are matched to the call's by
 * name, so any record schema with the call's fields works:
 *   crime_id                  string, long or int, or a union of null with
 *                             one of them (a long is the same call as its
 *                             decimal text, as 123 and "123" are in JSON)
 *   every other known field   string, ["null","string"] or ["string","null"]
 * crime_id, original_crime_type_name and call_date_time must be present;
 * fields the project does not know are skipped, whatever their type.
 *
 * Framing: plain, one datum per message; or Confluent, magic byte 0, a
 * 4-byte big-endian schema id, then the datum. */
#ifndef CS_AVRO_H
#define CS_AVRO_H

#include <stdio.h>

#include "cs_parse.h"

enum cs_avro_framing {
        CS_AVRO_PLAIN = 0,
        CS_AVRO_CONFLUENT,
};

/* What `ingest --format` reads: JSON, Avro, or per message Avro when it
 * starts with the Confluent magic byte 0 (which no JSON text does). */
enum cs_format {
        CS_FORMAT_JSON = 0,
        CS_FORMAT_AVRO,
        CS_FORMAT_AUTO,
};

/* Any schema id is accepted (--schema-id not given). */
#define CS_AVRO_ANY_SCHEMA_ID (-1)
/* Bytes before the datum under Confluent framing. */
#define CS_AVRO_CONFLUENT_HEADER 5
/* Longest string the decoder accepts, like the JSON path's message size
 * limit: a longer one rejects the record. */
#define CS_AVRO_STRING_MAX (1024 * 1024)
/* Deepest nesting of the unknown fields skipped (records, arrays, maps,
 * unions inside each other): a recursive schema cannot exhaust the stack. */
#define CS_AVRO_DEPTH_MAX 64

/* The schema shipped as schemas/calls.avsc (the same text), the default of
 * produce and generate. */
extern const char cs_avro_calls_schema[];

/* Reads a schema file whole into *json (NUL-terminated, the caller frees
 * it). Returns 0, or -1 with "FILE: why" in errstr. */
int cs_avro_schema_load(const char *path, char **json, char *errstr,
                        size_t errstr_size) CS_MUSTCHECK;

struct cs_avro_decoder;

/* Returns a decoder for data written with schema_json (borrowed: parsed
 * here), or NULL with one line in errstr: the schema does not parse, is not
 * a record, lacks a required field or gives a known field a type the call
 * cannot use ("avro schema: missing required field call_date_time").
 * schema_id: CS_AVRO_ANY_SCHEMA_ID, or the only id Confluent framing
 * accepts. */
struct cs_avro_decoder *cs_avro_decoder_new(const char *schema_json,
                                            int framing, int64_t schema_id,
                                            char *errstr, size_t errstr_size);
/* Frees the decoder; NULL is accepted. */
void cs_avro_decoder_destroy(struct cs_avro_decoder *dec);

/* Decodes and validates one message buf[0..len) (borrowed). Returns 0 and
 * fills *call when it is a valid call: strings borrow from buf, or from the
 * decoder (a long crime_id's text) until the next call on it. Otherwise
 * returns -1 with a reason: "invalid Avro: truncated at byte 37",
 * "invalid Avro: 3 trailing bytes at byte 80", "unexpected schema id 7",
 * or the JSON path's for an invalid call ("invalid call_date_time").
 * Allocates nothing. One thread at a time per decoder. */
int cs_avro_decode(struct cs_avro_decoder *dec, const char *buf, size_t len,
                   struct cs_call *call, char *reason,
                   size_t reason_size) CS_MUSTCHECK;

struct cs_avro_encoder;

/* Returns an encoder that writes calls with schema_json (borrowed), framed
 * as asked (schema_id is written under Confluent framing; < 0 means 0), or
 * NULL with one line in errstr: the same schema checks as the decoder's,
 * and a field the call cannot fill must admit null. */
struct cs_avro_encoder *cs_avro_encoder_new(const char *schema_json,
                                            int framing, int64_t schema_id,
                                            char *errstr, size_t errstr_size);
/* Frees the encoder; NULL is accepted. */
void cs_avro_encoder_destroy(struct cs_avro_encoder *enc);

/* Encodes a call (borrowed) with Avro C's writer. Returns 0 with the
 * message in *out, *out_len (the encoder's buffer: valid until the next
 * call), or -1 with a reason: a crime_id that is not an integer for a long
 * field, a required field that is absent, out of memory. */
int cs_avro_encode(struct cs_avro_encoder *enc, const struct cs_call *call,
                   const char **out, size_t *out_len, char *errstr,
                   size_t errstr_size) CS_MUSTCHECK;

/*
 * Streams of Avro messages in a file: each message is a 4-byte big-endian
 * length, then that many bytes (generate --format avro writes them,
 * produce --input-framing length sends them).
 */

struct cs_avro_frames;

/* Called once per message, as cs_jsonsplit's callback is (cs_jsonsplit.h):
 * msg borrowed for the call, NULL when longer than max_msg (len is then its
 * length), offset where its length prefix starts. Non-zero stops. */
typedef int cs_avro_frame_cb(void *opaque, const char *msg, size_t len,
                             uint64_t offset);

/* Returns a splitter, or NULL when out of memory. */
struct cs_avro_frames *
cs_avro_frames_new(size_t max_msg, cs_avro_frame_cb *on_msg, void *opaque);
/* Frees the splitter; NULL is accepted. */
void cs_avro_frames_destroy(struct cs_avro_frames *f);
/* Feeds len bytes (borrowed). Returns 0, -1 out of memory, or CS_STOPPED
 * when on_msg returned non-zero. */
int cs_avro_frames_feed(struct cs_avro_frames *f, const char *buf,
                        size_t len) CS_MUSTCHECK;
/* Ends the input: -1 when it stops inside a message (see
 * cs_avro_frames_error()), else 0. */
int cs_avro_frames_end(struct cs_avro_frames *f) CS_MUSTCHECK;
const char *cs_avro_frames_error(const struct cs_avro_frames *f);

/* Writes each line of NDJSON in as one length-prefixed message to out: a
 * valid call encoded by enc, any other line as it is (so that a consumer
 * rejects it, as it would the JSON). Returns the number of lines written,
 * or -1 with errstr on a read or write error. */
long long cs_avro_ndjson_to_frames(FILE *in, FILE *out,
                                   struct cs_avro_encoder *enc, char *errstr,
                                   size_t errstr_size);

#endif
