/* file_source.c: NDJSON or JSON array files as a message source (cs_file.h).
 *
 * cs_jsonsplit pushes messages through a callback while a chunk is fed; this
 * turns that into a pull: the messages of one chunk are queued (copied into
 * one reused buffer) and handed out one by one. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cs_arena.h"
#include "cs_file.h"
#include "cs_jsonsplit.h"

#define CHUNK (64 * 1024)

struct queued {
        size_t at; /* in bytes; (size_t)-1: too long, not kept */
        size_t len;
        int64_t number;
};

struct cs_file_source {
        char *path;
        FILE *fp;
        struct cs_jsonsplit *js;
        int eof;
        char chunk[CHUNK];

        /* The first bytes, read at open; stdin cannot seek back, so there
         * they are fed to the splitter before anything else is read. */
        char head[CS_FILE_HEAD_MAX];
        size_t nhead;
        int head_pending;

        /* Messages of the last chunk fed, not handed out yet. */
        char *bytes;
        size_t nbytes, bytes_cap;
        struct queued *q;
        size_t nq, q_cap, next;
        int64_t from; /* messages numbered below are not queued */
};

static int on_msg(void *opaque, const char *msg, size_t len, uint64_t offset)
{
        struct cs_file_source *src = opaque;
        int64_t number = (int64_t)cs_jsonsplit_number(src->js);
        struct queued *e;

        (void)offset;
        if (number < src->from)
                return 0;
        if (CS_RESERVE(src->q, src->nq, src->q_cap) < 0)
                return -1;
        e = &src->q[src->nq++];
        e->len = len;
        e->number = number;
        e->at = (size_t)-1;
        if (!msg)
                return 0;
        if (src->nbytes + len > src->bytes_cap) {
                size_t cap = src->bytes_cap ? src->bytes_cap : CHUNK;
                char *p;

                while (cap < src->nbytes + len)
                        cap *= 2;
                p = realloc(src->bytes, cap);
                if (!p)
                        return -1;
                src->bytes = p;
                src->bytes_cap = cap;
        }
        memcpy(src->bytes + src->nbytes, msg, len);
        e->at = src->nbytes;
        src->nbytes += len;
        return 0;
}

int cs_file_source_restart(struct cs_file_source *src, char *errstr,
                           size_t errstr_size)
{
        if (src->fp != stdin && fseek(src->fp, 0, SEEK_SET) != 0) {
                snprintf(errstr, errstr_size, "%s: %s", src->path,
                         strerror(errno));
                return -1;
        }
        cs_jsonsplit_destroy(src->js);
        src->js = cs_jsonsplit_new(CS_FILE_MSG_MAX, on_msg, src);
        if (!src->js) {
                snprintf(errstr, errstr_size, "out of memory");
                return -1;
        }
        src->eof = 0;
        src->nq = src->next = src->nbytes = 0;
        return 0;
}

struct cs_file_source *cs_file_source_open(const char *path, char *errstr,
                                           size_t errstr_size)
{
        struct cs_file_source *src = calloc(1, sizeof(*src));

        if (!src || !(src->path = strdup(path))) {
                free(src);
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
        }
        src->fp = strcmp(path, "-") ? fopen(path, "rb") : stdin;
        if (!src->fp) {
                snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
                cs_file_source_close(src);
                return NULL;
        }
        /* fread() waits for a full head unless the input ends first. */
        src->nhead = fread(src->head, 1, sizeof(src->head), src->fp);
        if (src->nhead < sizeof(src->head) && ferror(src->fp)) {
                snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
                cs_file_source_close(src);
                return NULL;
        }
        src->head_pending = src->fp == stdin;
        if (cs_file_source_restart(src, errstr, errstr_size) < 0) {
                cs_file_source_close(src);
                return NULL;
        }
        return src;
}

/* Feeds the next chunk (or the end) to the splitter, queueing what it
 * finds. Returns 0, or -1 with errstr. */
static int refill(struct cs_file_source *src, char *errstr, size_t errstr_size)
{
        size_t n;
        int rc;

        src->nq = src->next = src->nbytes = 0;
        if (src->head_pending) {
                src->head_pending = 0;
                n = src->nhead;
                memcpy(src->chunk, src->head, n);
        } else {
                n = fread(src->chunk, 1, sizeof(src->chunk), src->fp);
        }
        if (n == 0 && ferror(src->fp)) {
                snprintf(errstr, errstr_size, "%s: %s", src->path,
                         strerror(errno));
                return -1;
        }
        if (n > 0) {
                rc = cs_jsonsplit_feed(src->js, src->chunk, n);
        } else {
                src->eof = 1;
                rc = cs_jsonsplit_end(src->js);
        }
        if (rc < 0) {
                snprintf(errstr, errstr_size, "%s: %s", src->path,
                         *cs_jsonsplit_error(src->js)
                                 ? cs_jsonsplit_error(src->js)
                                 : "out of memory");
                return -1;
        }
        return 0;
}

int cs_file_source_next(struct cs_file_source *src, int64_t from,
                        struct cs_file_msg *msg, char *errstr,
                        size_t errstr_size)
{
        const struct queued *e;

        src->from = from;
        while (src->next == src->nq) {
                if (src->eof)
                        return 0;
                if (refill(src, errstr, errstr_size) < 0)
                        return -1;
        }
        e = &src->q[src->next++];
        msg->payload = e->at == (size_t)-1 ? NULL : src->bytes + e->at;
        msg->len = e->len;
        msg->number = e->number;
        return 1;
}

void cs_file_source_head(const struct cs_file_source *src, const char **head,
                         size_t *len)
{
        *head = src->head;
        *len = src->nhead;
}

void cs_file_source_close(struct cs_file_source *src)
{
        if (!src)
                return;
        if (src->fp && src->fp != stdin)
                fclose(src->fp);
        cs_jsonsplit_destroy(src->js);
        free(src->bytes);
        free(src->q);
        free(src->path);
        free(src);
}
