/* avroref.h: Avro C's generic reader as the reference the Avro decoder
 * (cs_avro.h) is held to, by tests/test_avro_decode.c and
 * tests/fuzz/fuzz_parse.c.
 *
 * Avro C's generic reader leaks what it allocated when a read fails (a
 * string's whole declared length among it), so while it reads one message
 * it allocates from a static arena, dropped whole before the next; what it
 * asks for beyond the arena fails, as a huge declared length should. The
 * schema and class the values refer to (and count references to) can be
 * made in static memory too (avroref_perm), never freed, so that nothing
 * leaks. Single-threaded. */
#ifndef AVROREF_H
#define AVROREF_H

#include <stddef.h>

#include <avro.h>

#include "cs_parse.h"

/* Makes Avro C allocate through the reference's allocator: malloc as
 * before while neither the arena nor the static memory is on. */
void avroref_use_allocator(void);

/* While on, what Avro C allocates comes from the static memory. */
void avroref_perm(int on);

/* Avro C's verdict on msg under iface: 0 when it reads one datum and no
 * byte is left over, its value in *v (valid until the next call). */
int avroref_read(avro_value_iface_t *iface, const char *msg, size_t len,
                 avro_value_t *v);

/* The first field of the call whose text differs from the value's (a null
 * branch must be an absent field), or -1 when all agree. Fields the value
 * lacks are not compared. */
int avroref_diff(const avro_value_t *v, const struct cs_call *call);

#endif
