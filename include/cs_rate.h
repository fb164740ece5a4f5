/* cs_rate.h: a token bucket per partition, for ingest
 * --max-rate-per-partition (Spark's maxRatePerPartition): a partition
 * whose bucket is empty is paused by its source until the bucket is half
 * full again, so it hands out at most rate messages a second on average,
 * and in any T seconds at most rate * (T + 1).
 *
 * No I/O, no globals, no locks: the owner (a source, on its one thread)
 * passes the clock in. */
#ifndef CS_RATE_H
#define CS_RATE_H

#include <stdint.h>

struct cs_rate {
        double rate;   /* messages per second; 0: no limit */
        double burst;  /* the bucket's size: a second's worth, at least 1 */
        double tokens; /* may go below 0 after a rewind: a debt */
        int64_t at_ms; /* when tokens was last brought up to date */
};

/* Starts r full, at now_ms (so the first second may bring 2 * rate); rate 0
 * makes every call below a no-op. */
void cs_rate_init(struct cs_rate *r, double rate, int64_t now_ms);

/* Takes a token for one message handed out. Returns 1 when another may
 * follow at once, 0 when the bucket is empty: the partition must wait
 * (pause) until cs_rate_wait_ms() says 0. */
int cs_rate_take(struct cs_rate *r, int64_t now_ms);

/* Milliseconds until the bucket is half full again (at least one token)
 * and an empty partition may go on (0: now, or no limit). */
int64_t cs_rate_wait_ms(struct cs_rate *r, int64_t now_ms);

#endif
