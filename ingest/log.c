/* log.c: the one stderr logger every module writes through. */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "cs_common.h"

int cs_log_threshold = CS_LOG_INFO;
int cs_log_line_drawn;

static const char *const level_names[] = {"error", "warning", "info", "debug"};

void cs_log_write(int level, const char *fmt, ...)
{
        char line[1024];
        struct timespec ts;
        struct tm tm;
        va_list ap;
        int n;

        if (level < 0 || level > CS_LOG_DEBUG)
                level = CS_LOG_ERROR;
        /* ISO 8601 UTC first: lines sort, and grep on "callstream: error:"
         * still finds them. */
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        n = (int)strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
        n += snprintf(line + n, sizeof(line) - (size_t)n,
                      ".%03ldZ callstream: %s: ", ts.tv_nsec / 1000000,
                      level_names[level]);
        va_start(ap, fmt);
        vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
        va_end(ap);
        /* One fputs per line so lines from threads do not interleave. */
        if (__atomic_exchange_n(&cs_log_line_drawn, 0, __ATOMIC_RELAXED))
                fprintf(stderr, "\r\033[K%s\n", line);
        else
                fprintf(stderr, "%s\n", line);
}

int64_t cs_now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
