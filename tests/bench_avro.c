/* bench_avro.c: the decoders alone, on one core, over the same calls
 * (scripts/bench-avro.sh runs it; never part of `make test`):
 * cs_parse_call() over every line of an NDJSON file, cs_avro_decode() over
 * the same lines written as plain Avro with the shipped schema, and Avro
 * C's generic reader (avro_value_read) over those messages, the choice the
 * decoder did not take.
 *
 *   bench_avro FILE
 *
 * Prints one line per path, "PATH records N valid V cpu_s C rate R", R the
 * records per CPU second of this thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <avro.h>

#include "cs_avro.h"

static double cpu_seconds(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct msgs {
        char **p;
        size_t *len;
        size_t n, cap;
};

static int add(struct msgs *m, const char *p, size_t len)
{
        if (m->n == m->cap) {
                size_t cap = m->cap ? m->cap * 2 : 1024;
                char **np = realloc(m->p, cap * sizeof(*np));
                size_t *nl = realloc(m->len, cap * sizeof(*nl));

                if (np)
                        m->p = np;
                if (nl)
                        m->len = nl;
                if (!np || !nl)
                        return -1;
                m->cap = cap;
        }
        if (!(m->p[m->n] = malloc(len ? len : 1)))
                return -1;
        memcpy(m->p[m->n], p, len);
        m->len[m->n++] = len;
        return 0;
}

static void report(const char *what, size_t n, size_t valid, double cpu)
{
        printf("%s records %zu valid %zu cpu_s %.3f rate %.0f\n", what, n,
               valid, cpu, cpu > 0 ? (double)n / cpu : 0);
}

int main(int argc, char **argv)
{
        struct msgs json = {0}, avro = {0};
        struct cs_parser *parser = cs_parser_new();
        struct cs_avro_encoder *enc;
        struct cs_avro_decoder *dec;
        struct cs_call call;
        char reason[CS_PARSE_REASON_MAX], errstr[256], *line = NULL;
        size_t cap = 0, i, valid;
        ssize_t n;
        double t;
        FILE *f;
        avro_schema_t schema;
        avro_value_iface_t *iface;
        avro_value_t v;
        avro_reader_t r;

        if (argc != 2) {
                fprintf(stderr, "usage: bench_avro FILE\n");
                return 2;
        }
        enc = cs_avro_encoder_new(cs_avro_calls_schema, CS_AVRO_PLAIN, 0,
                                  errstr, sizeof(errstr));
        dec = cs_avro_decoder_new(cs_avro_calls_schema, CS_AVRO_PLAIN,
                                  CS_AVRO_ANY_SCHEMA_ID, errstr,
                                  sizeof(errstr));
        if (!parser || !enc || !dec || !(f = fopen(argv[1], "rb"))) {
                fprintf(stderr, "bench_avro: cannot start: %s\n", argv[1]);
                return 1;
        }
        /* The valid calls only, as both formats can carry them. */
        while ((n = getline(&line, &cap, f)) > 0) {
                const char *out;
                size_t len = (size_t)n - (line[n - 1] == '\n'), olen;

                if (cs_parse_call(parser, line, len, &call, reason,
                                  sizeof(reason)) < 0 ||
                    cs_avro_encode(enc, &call, &out, &olen, errstr,
                                   sizeof(errstr)) < 0)
                        continue;
                if (add(&avro, out, olen) < 0 || add(&json, line, len) < 0) {
                        fprintf(stderr, "bench_avro: out of memory\n");
                        return 1;
                }
        }
        fclose(f);
        free(line);

        t = cpu_seconds();
        for (i = 0, valid = 0; i < json.n; i++)
                valid += cs_parse_call(parser, json.p[i], json.len[i], &call,
                                       reason, sizeof(reason)) == 0;
        report("json", json.n, valid, cpu_seconds() - t);

        t = cpu_seconds();
        for (i = 0, valid = 0; i < avro.n; i++)
                valid += cs_avro_decode(dec, avro.p[i], avro.len[i], &call,
                                        reason, sizeof(reason)) == 0;
        report("avro", avro.n, valid, cpu_seconds() - t);

        /* Avro C's generic reader: read only, no validation. */
        avro_schema_from_json_length(cs_avro_calls_schema,
                                     strlen(cs_avro_calls_schema), &schema);
        iface = avro_generic_class_from_schema(schema);
        avro_generic_value_new(iface, &v);
        r = avro_reader_memory(avro.p[0], (int64_t)avro.len[0]);
        t = cpu_seconds();
        for (i = 0, valid = 0; i < avro.n; i++) {
                avro_reader_memory_set_source(r, avro.p[i],
                                              (int64_t)avro.len[i]);
                avro_value_reset(&v);
                valid += avro_value_read(r, &v) == 0;
        }
        report("avro_c_generic", avro.n, valid, cpu_seconds() - t);
        avro_reader_free(r);
        avro_value_decref(&v);
        avro_value_iface_decref(iface);
        avro_schema_decref(schema);
        for (i = 0; i < json.n; i++)
                free(json.p[i]);
        for (i = 0; i < avro.n; i++)
                free(avro.p[i]);
        free(json.p);
        free(json.len);
        free(avro.p);
        free(avro.len);
        cs_avro_encoder_destroy(enc);
        cs_avro_decoder_destroy(dec);
        cs_parser_destroy(parser);
        return 0;
}
