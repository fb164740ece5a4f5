/* test_produce_extras.c: what issue 11 added to `callstream produce`, with
 * the real binary (CALLSTREAM_BIN) and the local broker. --speedup X: the
 * calls reach the topic in file order, the in-order ones at least their
 * event-time spacing / X apart (CreateTime, read back with kcat), the run
 * takes at least the span / X (lower bounds only), and the summary line
 * counts right (test_produce_speedup); the summary counts a failed record
 * (test_produce_summary_failed); the progress line shows on a terminal
 * (a pty) only, not in a pipe nor with -q (test_produce_progress); a bad
 * --speedup is a usage error (test_produce_speedup_usage).
 *
 * E2E_KEEP=1 keeps the folder; PRODUCE_TEST_FILTER='test_produce_s*' runs
 * some tests. */
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define WATCHDOG_S 600
#define SPEEDUP    50
#define STEP_S     20 /* event time between in-order calls */
#define NORDER     11 /* in-order calls: a span of 200 s, 4 s at 50x */

static struct {
        char dir[512];
        char *bin;
        char *data;
        struct th_broker broker;
} g;

static char *path_in(const char *name)
{
        return th_asprintf("%s/%s", g.dir, name);
}

static void call_line(struct th_buf *b, const char *id, int secs)
{
        th_buf_addf(b,
                    "{\"crime_id\":\"%s\",\"original_crime_type_name\":"
                    "\"Passing Call\",\"call_date_time\":"
                    "\"2018-12-31T10:%02d:%02d\"}\n",
                    id, secs / 60, secs % 60);
}

/* The numbers of a summary line "sent N messages to T: D delivered, F
 * failed..., in S s, R messages/s". Returns 0, or -1 when there is none. */
static int summary(const char *err, long long *sent, long long *delivered,
                   long long *failed, double *secs, double *rate)
{
        const char *s = err ? strstr(err, "sent ") : NULL;
        const char *in;

        if (!s || sscanf(s,
                         "sent %lld messages to %*s %lld delivered, %lld "
                         "failed",
                         sent, delivered, failed) != 3)
                return -1;
        if (!(in = strstr(s, ", in ")) ||
            sscanf(in, ", in %lf s, %lf messages/s", secs, rate) != 2)
                return -1;
        return 0;
}

static void test_produce_speedup(void **state)
{
        char *file = path_in("speedup.ndjson");
        struct th_buf b = {0};
        struct th_args a = {0};
        struct th_run r = {0};
        long long sent, delivered, failed;
        double secs, rate,
                span_ms = (double)(NORDER - 1) * STEP_S * 1000 / SPEEDUP;
        char *line, *save = NULL, *speed = th_asprintf("%d", SPEEDUP);
        long long t0 = -1, last_t = -1;
        int i, n = 0, inorder = 0;
        char id[32];

        (void)state;
        /* In-order calls every STEP_S, with older calls and a record that
         * is no call between them: those go at once. */
        for (i = 0; i < NORDER; i++) {
                snprintf(id, sizeof(id), "s%d", i);
                call_line(&b, id, i * STEP_S);
                if (i % 4 == 2) {
                        snprintf(id, sizeof(id), "late%d", i);
                        call_line(&b, id, i * STEP_S - 30);
                }
        }
        th_buf_addf(&b, "{\"not\":\"a call\"}\n");
        assert_int_equal(th_write_file(file, b.p, 0), 0);
        th_buf_free(&b);

        th_args_addv(&a, g.bin, "produce", "-b", g.broker.brokers, "-t",
                     "speedup", "--speedup", speed, file, NULL);
        th_run_ok(&a, &r);
        th_args_free(&a);
        fprintf(stderr, "# span / speedup %.0f ms, run %lld ms\n", span_ms,
                (long long)r.ms);
        /* A lower bound only: the last in-order call waits for it. */
        assert_true((double)r.ms >= span_ms * 0.95);
        assert_int_equal(
                summary(r.err.p, &sent, &delivered, &failed, &secs, &rate), 0);
        assert_int_equal(sent, NORDER + 3 + 1);
        assert_int_equal(delivered, sent);
        assert_int_equal(failed, 0);
        assert_non_null(strstr(r.err.p, "1 without a key"));
        assert_true(secs * 1000 >= span_ms * 0.95);
        assert_true(secs * 1000 <= (double)r.ms + 50);
        /* The rate is the count over the seconds, as printed. */
        assert_true(rate >= (double)sent / secs * 0.95 - 1 &&
                    rate <= (double)sent / secs * 1.05 + 1);
        th_run_free(&r);

        /* Read back: the file's order, and the in-order calls' CreateTimes
         * at least their event-time spacing / SPEEDUP apart (less a little
         * for the clocks' granularity). */
        th_args_addv(&a, "kcat", "-C", "-b", g.broker.brokers, "-t", "speedup",
                     "-o", "beginning", "-e", "-q", "-f", "%T\t%s\n", NULL);
        th_run_ok(&a, &r);
        th_args_free(&a);
        for (line = strtok_r(r.out.p, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save)) {
                long long t = atoll(line);
                const char *sid = strstr(line, "\"crime_id\":\"s");

                n++;
                assert_true(t >= last_t);
                last_t = t;
                if (!sid)
                        continue;
                i = atoi(sid + 13);
                /* File order: s0, s1... in turn. */
                assert_int_equal(i, inorder);
                inorder++;
                if (t0 < 0)
                        t0 = t;
                assert_true((double)(t - t0) >=
                            (double)i * STEP_S * 1000 / SPEEDUP * 0.95 - 20);
        }
        assert_int_equal(n, NORDER + 4);
        assert_int_equal(inorder, NORDER);
        th_run_free(&r);
        free(file);
        free(speed);
}

/* A record over message.max.bytes fails; the summary says so, exit 1. */
static void test_produce_summary_failed(void **state)
{
        char *file = path_in("big.ndjson");
        struct th_buf b = {0};
        struct th_args a = {0};
        struct th_run r = {0};
        long long sent, delivered, failed;
        double secs, rate;
        int i;

        (void)state;
        call_line(&b, "f1", 0);
        th_buf_addf(&b, "{\"crime_id\":\"f2\",\"address\":\"");
        for (i = 0; i < 5000; i++)
                th_buf_add(&b, "a", 1);
        th_buf_addf(&b, "\"}\n");
        call_line(&b, "f3", 60);
        assert_int_equal(th_write_file(file, b.p, 0), 0);
        th_buf_free(&b);
        th_args_addv(&a, g.bin, "produce", "-b", g.broker.brokers, "-t",
                     "speedup", "-X", "message.max.bytes=2000", file, NULL);
        th_run_args(&a, TH_RUN_TIMEOUT_MS, &r);
        th_args_free(&a);
        assert_int_equal(r.status, 1);
        assert_int_equal(
                summary(r.err.p, &sent, &delivered, &failed, &secs, &rate), 0);
        assert_int_equal(sent, 3);
        assert_int_equal(delivered, 2);
        assert_int_equal(failed, 1);
        th_run_free(&r);
        free(file);
}

/* Runs produce with its stderr on a terminal (a pty) and returns what it
 * wrote there. */
static int run_on_pty(struct th_args *a, struct th_buf *out)
{
        int master, slave, devnull = open("/dev/null", O_WRONLY);
        int64_t until = th_now_ms() + TH_RUN_TIMEOUT_MS;
        int rc = -1;
        pid_t pid;

        assert_int_equal(openpty(&master, &slave, NULL, NULL, NULL), 0);
        pid = th_spawn(a, devnull, slave);
        close(slave);
        close(devnull);
        assert_true(pid > 0);
        while (th_now_ms() < until) {
                struct pollfd p = {.fd = master, .events = POLLIN};
                char buf[4096];
                ssize_t n;

                if (poll(&p, 1, 100) > 0) {
                        n = read(master, buf, sizeof(buf));
                        if (n > 0) {
                                th_buf_add(out, buf, (size_t)n);
                                continue;
                        }
                        /* EIO: the child closed the terminal. */
                }
                if ((rc = th_exited(pid)) >= 0)
                        break;
        }
        close(master);
        if (rc < 0)
                rc = th_wait_until(pid, th_now_ms() + 1000);
        return rc;
}

static void test_produce_progress(void **state)
{
        char *file = path_in("progress.ndjson");
        struct th_args a = {0};
        struct th_buf tty = {0};
        struct th_run r = {0};

        (void)state;
        th_args_addv(&a, g.bin, "generate", "--count", "3000", "--seed", "6",
                     "--output", file, NULL);
        th_run_ok_free(&a);

        /* About 2 s at 1500/s: the line shows after the first second. */
        th_args_addv(&a, g.bin, "produce", "-b", g.broker.brokers, "-t",
                     "progress", "--rate", "1500", file, NULL);
        assert_int_equal(run_on_pty(&a, &tty), 0);
        th_args_free(&a);
        assert_non_null(tty.p);
        assert_non_null(strstr(tty.p, "\r\033[K["));
        assert_non_null(strstr(tty.p, " msg/s, ETA "));
        assert_non_null(strstr(tty.p, "%"));
        /* Taken off before the summary line. */
        assert_non_null(strstr(tty.p, "\r\033[K20"));
        assert_non_null(strstr(tty.p, "sent 3000 messages to progress"));
        th_buf_free(&tty);

        /* -q on a terminal: nothing. */
        th_args_addv(&a, g.bin, "produce", "-b", g.broker.brokers, "-t",
                     "progress", "--rate", "1500", "-q", file, NULL);
        assert_int_equal(run_on_pty(&a, &tty), 0);
        th_args_free(&a);
        assert_true(!tty.p || !strstr(tty.p, "msg/s"));
        th_buf_free(&tty);

        /* Not a terminal: no progress line, the summary alone. */
        th_args_addv(&a, g.bin, "produce", "-b", g.broker.brokers, "-t",
                     "progress", "--rate", "1500", file, NULL);
        th_run_ok(&a, &r);
        th_args_free(&a);
        assert_null(strchr(r.err.p, '\r'));
        assert_null(strstr(r.err.p, "ETA"));
        assert_int_equal(th_count_lines(r.err.p, r.err.len), 1);
        th_run_free(&r);
        free(file);
}

static void test_produce_speedup_usage(void **state)
{
        static const char *const bad[] = {"0",   "-1", "abc", "nan",
                                          "inf", "2x", ""};
        size_t i;

        (void)state;
        for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                struct th_args a = {0};
                struct th_run r = {0};

                th_args_addv(&a, g.bin, "produce", "-b", g.broker.brokers, "-t",
                             "speedup", "--speedup", bad[i], "/dev/null", NULL);
                th_run_args(&a, 30000, &r);
                assert_int_equal(r.status, 2);
                assert_non_null(strstr(r.err.p, "--speedup"));
                assert_int_equal(th_count_lines(r.err.p, r.err.len), 1);
                th_run_free(&r);
                th_args_free(&a);
        }
}

/*
 * Fixture.
 */

static int group_setup(void **state)
{
        static const char *const extra[] = {
                "--partitions", "1",        "--topic", "speedup",
                "--topic",      "progress", NULL};
        char *err;
        int r;

        (void)state;
        th_fatal_handlers("test_produce_extras", WATCHDOG_S);
        if (th_find_bin_data(&g.bin, &g.data) ||
            th_tmpdir_make("cs_test_produce", g.dir, sizeof(g.dir)))
                return -1;
        th_fatal_dir(g.dir);
        err = path_in("broker.err");
        r = th_broker_start(&g.broker, g.bin, extra, err);
        free(err);
        if (r < 0)
                return -1;
        th_fatal_broker(0, g.broker.pid);
        return 0;
}

static int group_teardown(void **state)
{
        (void)state;
        th_broker_stop(&g.broker);
        th_fatal_broker(0, 0);
        if (*g.dir)
                th_tmpdir_remove(g.dir);
        free(g.bin);
        free(g.data);
        return 0;
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_produce_speedup,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_produce_summary_failed,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_produce_progress,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_produce_speedup_usage,
                                          th_test_teardown),
        };
        const char *only = getenv("PRODUCE_TEST_FILTER");

        if (only && *only)
                cmocka_set_test_filter(only);
        return cmocka_run_group_tests_name("produce_extras", tests, group_setup,
                                           group_teardown);
}
