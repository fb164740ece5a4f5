/* cs_file.h: a file of calls as a source, to replay the pipeline without
 * Kafka.
 *
 * The file is NDJSON or one JSON array (see cs_jsonsplit.h), read in chunks,
 * never whole. Its messages are numbered like offsets of a single partition:
 * by line number in NDJSON, by element number in an array, from 1. */
#ifndef CS_FILE_H
#define CS_FILE_H

#include "cs_common.h"

/* The most bytes of the head of a file that cs_file_source_head() gives. */
#define CS_FILE_HEAD_MAX (64 * 1024)

/* Longest message kept; a longer one comes back with payload NULL. */
#define CS_FILE_MSG_MAX (4 * 1024 * 1024)

struct cs_file_msg {
        const char *payload; /* valid until the next call; NULL: too long */
        size_t len;          /* full length */
        int64_t number;      /* line or element number */
};

struct cs_file_source;

/* Opens path ("-" is stdin, which cannot be restarted) and reads its head
 * (see cs_file_source_head()). Returns NULL with the reason in errstr. path
 * is copied. */
struct cs_file_source *cs_file_source_open(const char *path, char *errstr,
                                           size_t errstr_size);

/* Reads the next message numbered at least from. Returns 1 and fills *msg,
 * 0 at the end of the file, or -1 with the reason in errstr (a read error,
 * a broken JSON array). */
int cs_file_source_next(struct cs_file_source *src, int64_t from,
                        struct cs_file_msg *msg, char *errstr,
                        size_t errstr_size) CS_MUSTCHECK;

/* Starts reading the file again from its first byte. Returns 0, or -1. */
int cs_file_source_restart(struct cs_file_source *src, char *errstr,
                           size_t errstr_size) CS_MUSTCHECK;

/* The file's first bytes as read when it was opened: all of it, or the
 * first CS_FILE_HEAD_MAX bytes of a longer one (stdin's too: they are read
 * ahead and still handed out as messages). *head is valid until
 * cs_file_source_close(); a replay is identified by them. */
void cs_file_source_head(const struct cs_file_source *src, const char **head,
                         size_t *len);

/* Closes the file and frees the source; NULL is accepted. */
void cs_file_source_close(struct cs_file_source *src);

#endif
