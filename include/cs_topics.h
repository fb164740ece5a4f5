/* cs_topics.h: what the database keeps about the ingest's sources beside
 * their offsets: the identity of each replayed file, the window specs the
 * ingest maintains, and the `callstream offsets` operations on stored
 * positions.
 *
 * Every function runs named statements through the sink's query(), so each
 * value is bound; errors come back as the sink's (0, CS_RETRY or -1)
 * with a one-line reason in errstr, plus CS_REFUSED below. */
#ifndef CS_TOPICS_H
#define CS_TOPICS_H

#include "cs_sink.h"
#include "cs_window.h"

/* CS_REFUSED (cs_common.h): what is stored does not fit what the user
 * asked for (another input under a replay's topic, an unknown topic): say
 * errstr and exit 2. */

/* Before a file replay under topic: its head (the first bytes, see
 * cs_file_source_head()) must begin with the bytes the stored position was
 * read from, so a resumed replay skips only lines it has stored. A topic
 * with a stored position and no stored fingerprint (a Kafka topic, or a
 * replay stored by an older callstream) is refused too. Returns 0 (a new
 * topic, or the same input, perhaps grown), CS_REFUSED with what to do in
 * errstr, or a sink error. Everything is borrowed. */
int cs_topics_check_replay(struct cs_sink *s, const char *topic,
                           const char *head, size_t nhead, char *errstr,
                           size_t errstr_size) CS_MUSTCHECK;

/* Stores (in the open transaction, if any) topic's replay identity: path
 * (its real path, or "-"), the fingerprint of head, and whether the replay
 * has read its input to the end. Everything is borrowed. */
int cs_topics_store_replay(struct cs_sink *s, const char *topic,
                           const char *path, const char *head, size_t nhead,
                           int at_end, char *errstr,
                           size_t errstr_size) CS_MUSTCHECK;

/* Before consuming Kafka topic: CS_REFUSED when a file replay keeps its
 * position under that name (its offsets are line numbers). */
int cs_topics_check_kafka(struct cs_sink *s, const char *topic, char *errstr,
                          size_t errstr_size) CS_MUSTCHECK;

/* At ingest start, in a transaction of its own: registers specs[0..n) as
 * maintained and marks the registered specs not among them as no longer
 * maintained (window_specs), warning on stderr about each change: a new
 * spec counts only the calls ingested from now on (`callstream rebuild`
 * fills it), a dropped one stops being final past today's watermark. */
int cs_topics_track_specs(struct cs_sink *s, const struct cs_window_spec *specs,
                          int n, char *errstr, size_t errstr_size) CS_MUSTCHECK;

/* One row of cs_topics_list(); strings valid during the callback, NULL
 * when absent (no watermark, not a replay). */
struct cs_topic_row {
        const char *topic;
        const char *partition;
        const char *next_offset;
        const char *watermark;
        const char *lag;
        const char *path; /* replays: the file, its fingerprint... */
        const char *fingerprint;
        const char *fingerprint_bytes;
        const char *at_end;
        const char *updated_at;
};

typedef int cs_topics_row_cb(void *opaque, const struct cs_topic_row *row);

/* Calls cb for each stored partition position, by topic and partition. */
int cs_topics_list(struct cs_sink *s, cs_topics_row_cb *cb, void *opaque,
                   char *errstr, size_t errstr_size) CS_MUSTCHECK;

/* How `offsets reset` moves a position. */
enum cs_topics_seek {
        CS_SEEK_OFFSET,   /* to offset */
        CS_SEEK_EARLIEST, /* to 0: Kafka's oldest kept, a file's start */
        CS_SEEK_TIME,     /* to the first stored call at or after ts */
};

/* Sets the next offset of topic's partition (partition < 0: of each
 * stored partition) in one transaction, backwards too. With CS_SEEK_TIME a
 * partition with no stored call at or after ts keeps its offset. Calls
 * report (may be NULL) with each partition moved and where to, and sets
 * *moved. CS_REFUSED when nothing is stored for topic (and partition). */
int cs_topics_reset(struct cs_sink *s, const char *topic, int32_t partition,
                    enum cs_topics_seek how, int64_t offset, int64_t ts,
                    void (*report)(const char *partition, const char *to),
                    long *moved, char *errstr, size_t errstr_size) CS_MUSTCHECK;

/* Deletes topic's stored offsets, watermarks and replay identity in one
 * transaction; its calls and counts stay. *partitions gets how many
 * partitions went; CS_REFUSED when nothing was stored for it. */
int cs_topics_forget(struct cs_sink *s, const char *topic, long *partitions,
                     char *errstr, size_t errstr_size) CS_MUSTCHECK;

#endif
