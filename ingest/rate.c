/* rate.c: the token bucket behind --max-rate-per-partition (cs_rate.h). */
#include <math.h>

#include "cs_rate.h"

void cs_rate_init(struct cs_rate *r, double rate, int64_t now_ms)
{
        r->rate = rate > 0 ? rate : 0;
        r->burst = r->rate > 1 ? r->rate : 1;
        r->tokens = r->burst;
        r->at_ms = now_ms;
}

static void refill(struct cs_rate *r, int64_t now_ms)
{
        if (now_ms > r->at_ms) {
                r->tokens += r->rate * (double)(now_ms - r->at_ms) / 1000.0;
                if (r->tokens > r->burst)
                        r->tokens = r->burst;
        }
        r->at_ms = now_ms;
}

/* The tokens a paused partition waits for. */
static double need(const struct cs_rate *r)
{
        return r->burst / 2 > 1 ? r->burst / 2 : 1;
}

int cs_rate_take(struct cs_rate *r, int64_t now_ms)
{
        if (!r->rate)
                return 1;
        refill(r, now_ms);
        r->tokens -= 1;
        return r->tokens >= 1;
}

int64_t cs_rate_wait_ms(struct cs_rate *r, int64_t now_ms)
{
        if (!r->rate)
                return 0;
        refill(r, now_ms);
        /* Waiting for half a bucket rather than one token: a pause and a
         * resume (a new fetch, which may wait for the broker's long poll
         * of the other partitions) per half second, not per message; the
         * bucket goes on filling meanwhile. */
        if (r->tokens >= need(r))
                return 0;
        return (int64_t)ceil((need(r) - r->tokens) * 1000.0 / r->rate);
}
