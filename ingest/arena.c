/* arena.c: block-chained bump allocator (see cs_arena.h). */
#include <stdlib.h>
#include <string.h>

#include "cs_arena.h"

#define BLOCK_SIZE (1024 * 1024)

struct block {
        struct block *next;
        size_t size;
        size_t used;
        char data[];
};

struct cs_arena {
        struct block *head; /* block being filled */
        struct block *all;  /* every block, head among them */
};

int cs_reserve(void *arrp, size_t *cap, size_t elem_size)
{
        size_t ncap = *cap ? *cap * 2 : 16;
        void *arr, *grown;

        /* Through memcpy: arrp is the address of any object pointer. */
        memcpy(&arr, arrp, sizeof(arr));
        grown = realloc(arr, ncap * elem_size);
        if (!grown)
                return -1;
        memcpy(arrp, &grown, sizeof(grown));
        *cap = ncap;
        return 0;
}

struct cs_arena *cs_arena_new(void)
{
        return calloc(1, sizeof(struct cs_arena));
}

void cs_arena_destroy(struct cs_arena *a)
{
        struct block *b, *next;

        if (!a)
                return;
        for (b = a->all; b; b = next) {
                next = b->next;
                free(b);
        }
        free(a);
}

void cs_arena_reset(struct cs_arena *a)
{
        struct block *b;

        for (b = a->all; b; b = b->next)
                b->used = 0;
        a->head = a->all;
}

char *cs_arena_alloc(struct cs_arena *a, size_t len)
{
        struct block *b = a->head;

        /* Move on to the next kept block that fits, else add one. */
        while (b && b->size - b->used < len)
                b = b->next;
        if (!b) {
                size_t size = len > BLOCK_SIZE ? len : BLOCK_SIZE;

                b = malloc(sizeof(*b) + size);
                if (!b)
                        return NULL;
                b->size = size;
                b->used = 0;
                b->next = a->all;
                a->all = b;
        }
        a->head = b;
        b->used += len;
        return b->data + b->used - len;
}

int cs_arena_copy(struct cs_arena *a, struct cs_str s, struct cs_str *out)
{
        char *p;

        if (!s.ptr) {
                out->ptr = NULL;
                out->len = 0;
                return 0;
        }
        p = cs_arena_alloc(a, s.len ? s.len : 1);
        if (!p)
                return -1;
        memcpy(p, s.ptr, s.len);
        out->ptr = p;
        out->len = s.len;
        return 0;
}
