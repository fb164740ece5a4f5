/* count.c: a call counted into its windows (cs_count.h). */
#include "cs_count.h"

int cs_count_call(struct cs_window_agg *agg, int spec_index,
                  const struct cs_window_spec *spec,
                  const struct cs_count_call *c, int sign, int64_t from,
                  int64_t to, int64_t *starts, struct cs_count_result *res)
{
        struct cs_str disp = c->disposition;
        int j, n = cs_window_assign(spec, c->ts, starts);

        res->late = res->dropped = res->counted = 0;
        /* No disposition and an empty one are one key: ''. */
        if (!disp.len)
                disp.ptr = NULL;
        for (j = 0; j < n; j++) {
                int final =
                        c->has_mark && starts[j] + spec->size <= c->mark.sec;

                res->late |= final;
                if (final && c->drop) {
                        res->dropped++;
                        continue;
                }
                if (starts[j] < from || starts[j] >= to)
                        continue;
                if (cs_window_agg_add(agg, spec_index, starts[j], c->crime_type,
                                      disp, sign, sign * final) < 0)
                        return -1;
                res->counted++;
        }
        return 0;
}
