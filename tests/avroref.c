/* avroref.c: Avro C's generic reader as the decoder's reference (see
 * avroref.h). */
#include <stdlib.h>
#include <string.h>

#include "avroref.h"

static char arena[1 << 22];
static size_t arena_used;
static int arena_on;
static char perm[1 << 20];
static size_t perm_used;
static int perm_on;

/* nsize bytes (ptr's first osize copied) from the region buf of size
 * bufsize, *used of it taken; NULL when it is full. */
static void *bump(char *buf, size_t bufsize, size_t *used, void *ptr,
                  size_t osize, size_t nsize)
{
        void *p;

        nsize = (nsize + 15) & ~(size_t)15;
        if (nsize > bufsize - *used)
                return NULL;
        p = buf + *used;
        *used += nsize;
        if (ptr)
                memcpy(p, ptr, osize < nsize ? osize : nsize);
        return p;
}

static void *alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
        (void)ud;
        if (perm_on || arena_on) {
                if (nsize == 0)
                        return NULL; /* freed with its region */
                return perm_on ? bump(perm, sizeof(perm), &perm_used, ptr,
                                      osize, nsize)
                               : bump(arena, sizeof(arena), &arena_used, ptr,
                                      osize, nsize);
        }
        if (nsize == 0) {
                free(ptr);
                return NULL;
        }
        return realloc(ptr, nsize);
}

void avroref_use_allocator(void)
{
        avro_set_allocator(alloc, NULL);
}

void avroref_perm(int on)
{
        perm_on = on;
}

int avroref_read(avro_value_iface_t *iface, const char *msg, size_t len,
                 avro_value_t *v)
{
        avro_reader_t r;
        char extra;
        int rc;

        arena_used = 0;
        arena_on = 1;
        if (avro_generic_value_new(iface, v))
                abort();
        r = avro_reader_memory(msg, (int64_t)len);
        rc = avro_value_read(r, v);
        if (rc == 0 && avro_read(r, &extra, 1) == 0)
                rc = -1; /* trailing bytes */
        arena_on = 0;
        return rc ? -1 : 0;
}

int avroref_diff(const avro_value_t *v, const struct cs_call *call)
{
        int k;

        for (k = 0; k < CS_F_COUNT; k++) {
                avro_value_t f, b;
                const char *s;
                size_t n;

                if (avro_value_get_by_name(v, cs_field_names[k], &f, NULL))
                        continue;
                if (avro_value_get_type(&f) == AVRO_UNION) {
                        if (avro_value_get_current_branch(&f, &b))
                                return k;
                        f = b;
                }
                if (avro_value_get_type(&f) == AVRO_NULL) {
                        if (call->field[k].ptr)
                                return k;
                        continue;
                }
                if (avro_value_get_string(&f, &s, &n) ||
                    call->field[k].len != n - 1 ||
                    memcmp(call->field[k].ptr, s, n - 1))
                        return k;
        }
        return -1;
}
