/* cs_common.h: small definitions every callstream module shares. */
#ifndef CS_COMMON_H
#define CS_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define CS_MUSTCHECK         __attribute__((warn_unused_result))
#define CS_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define CS_ARRAY_SIZE(a)     (sizeof(a) / sizeof((a)[0]))

/* Exit statuses of every subcommand. */
/* Status codes: a function returning int returns CS_OK (0) or one of
 * these, as its header says; callers compare with the names, never with
 * bare numbers. */
enum cs_status {
        CS_OK = 0,
        CS_ERR = -1,     /* failed for good; the reason is in errstr */
        CS_RETRY = -2,   /* out of reach for now: the database, the broker */
        CS_REFUSED = -3, /* the stored state does not fit: a usage error */
        CS_STOPPED = -4, /* a callback or a signal asked to stop */
};

#define CS_EXIT_OK      0
#define CS_EXIT_FAILURE 1
#define CS_EXIT_USAGE   2

/* A borrowed byte string; ptr == NULL means absent (SQL NULL). */
struct cs_str {
        const char *ptr;
        size_t len;
};

enum cs_log_level {
        CS_LOG_ERROR = 0,
        CS_LOG_WARN,
        CS_LOG_INFO,
        CS_LOG_DEBUG,
};

/* Process-wide log threshold; only main() changes it. */
extern int cs_log_threshold;

/* Set while a line redrawn in place (--progress human) ends stderr
 * without a newline: the next log line first erases it (the progress
 * line is drawn again below at its next report). */
extern int cs_log_line_drawn;

/* Writes one line "2026-12-01T18:20:00.123Z callstream: LEVEL: message"
 * (UTC; LEVEL error, warning, info or debug) to stderr when level is at or
 * under the threshold; the level is checked before anything is formatted. */
void cs_log_write(int level, const char *fmt, ...) CS_PRINTF(2, 3);

#define cs_log(level, ...)                                                     \
        do {                                                                   \
                if ((level) <= cs_log_threshold)                               \
                        cs_log_write((level), __VA_ARGS__);                    \
        } while (0)

/* Monotonic clock in milliseconds. */
int64_t cs_now_ms(void);

/* 64-bit FNV-1a: a small, good-enough hash for short keys. */
static inline uint64_t cs_hash(const void *data, size_t len, uint64_t seed)
{
        const unsigned char *p = data;
        uint64_t h = 14695981039346656037ULL ^ seed;

        while (len--)
                h = (h ^ *p++) * 1099511628211ULL;
        return h;
}

#endif
