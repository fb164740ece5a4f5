/* test_broker.c: end-to-end tests of the broker and produce front-ends
 * with the real binary (CALLSTREAM_BIN): `callstream broker --daemon`,
 * --pid-file, --address-file and --log-file (issue 7.3); the fault
 * injection of --control (issue 8); and produce's --delivery-timeout,
 * SIGTERM and Ctrl-C during the wait for deliveries, -b/-t and its summary
 * line (issues 7.17 and 7.23).
 *
 * What is checked is observed from outside: addresses are used by kcat and
 * produce, pid files are matched against /proc, partition leaders are read
 * back with kcat -L, message counts with kcat -C. Times are hang guards
 * only. E2E_KEEP=1 keeps the folder; BROKER_TEST_FILTER='test_produce*'
 * runs some tests. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define WATCHDOG_S    600
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define NREC          5 /* lines of records.ndjson */
/* Hang guards: how long a step may take before the test gives up. */
#define STEP_MS     (30 * 1000)
#define DEADLINE_MS (60 * 1000)

struct bt {
        char dir[PATH_MAX];
        char *bin;
        char *data;
        char *records;                   /* dir/records.ndjson, NREC lines */
        pid_t daemons[TH_FATAL_BROKERS]; /* to kill if a test fails */
};

static struct bt g;

static char *path_in(const char *name)
{
        return th_asprintf("%s/%s", g.dir, name);
}

/* A daemon is not our child: track it so that a failed test (or the
 * fatal-signal handler) still kills it. */
static void daemon_track(pid_t pid)
{
        int i;

        for (i = 0; i < TH_FATAL_BROKERS; i++) {
                if (!g.daemons[i]) {
                        g.daemons[i] = pid;
                        th_fatal_broker(i, pid);
                        return;
                }
        }
        kill(pid, SIGKILL);
        fail_msg("too many daemons");
}

static void daemons_kill(void)
{
        int i;

        for (i = 0; i < TH_FATAL_BROKERS; i++) {
                if (g.daemons[i] > 0)
                        kill(g.daemons[i], SIGKILL);
                g.daemons[i] = 0;
                th_fatal_broker(i, 0);
        }
}

/* Whether pid has ended: no such process, or a zombie its new parent has
 * not reaped yet. */
static int pid_gone(pid_t pid)
{
        char path[64], buf[512], *p;
        FILE *f;
        size_t n;

        snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
        if (!(f = fopen(path, "r")))
                return 1;
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        p = strrchr(buf, ')');
        return p && p[1] == ' ' && p[2] == 'Z';
}

/* argv[1] of pid from /proc, to tell that a pid file names a broker. */
static char *proc_arg(pid_t pid, int i)
{
        char path[64];
        struct th_buf b = {0};
        size_t off = 0;
        char *s;

        snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)pid);
        if (th_read_file(path, &b))
                return NULL;
        while (i-- > 0 && off < b.len)
                off += strlen(b.p + off) + 1;
        if (off >= b.len) {
                th_buf_free(&b);
                return NULL;
        }
        s = th_strdup(b.p + off);
        th_buf_free(&b);
        return s;
}

/* The contents of path, or NULL when it does not exist. */
static char *slurp(const char *path)
{
        struct th_buf b = {0};

        if (th_read_file(path, &b)) {
                th_buf_free(&b);
                return NULL;
        }
        th_buf_add(&b, "", 0);
        return b.p;
}

/* Waits until the file at path contains needle. */
static int wait_for_text(const char *path, const char *needle, int64_t ms)
{
        int64_t deadline = th_now_ms() + ms;

        for (;;) {
                char *s = slurp(path);
                int found = s && strstr(s, needle);

                free(s);
                if (found)
                        return 0;
                if (th_now_ms() >= deadline)
                        return -1;
                th_sleep_ms(20);
        }
}

/* The file at path holds line and a newline. */
static void assert_file_line(const char *path, const char *line)
{
        char *text = slurp(path), *want = th_asprintf("%s\n", line);

        assert_non_null(text);
        assert_string_equal(text, want);
        free(text);
        free(want);
}

static int file_exists(const char *path)
{
        struct stat st;

        return lstat(path, &st) == 0;
}

/* Runs a, saying what ran and how it ended; a is taken. */
static void run(struct th_args *a, int timeout_ms, struct th_run *r)
{
        char *cmd = th_args_str(a);

        th_run_args(a, timeout_ms, r);
        fprintf(stderr, "# $ %s  -> %d (%.1f s)\n", cmd, r->status,
                r->ms / 1000.0);
        if (r->err.len)
                th_show_tail("stderr", r->err.p, r->err.len);
        free(cmd);
        th_args_free(a);
}

/* Asserts that text is exactly one line and returns it without its
 * newline (freed by the caller). */
static char *one_line(const struct th_buf *b)
{
        assert_non_null(b->p);
        assert_int_equal(th_count_lines(b->p, b->len), 1);
        assert_true(b->len > 1 && b->p[b->len - 1] == '\n');
        return th_strndup(b->p, b->len - 1);
}

/* Every address of a bootstrap list is host:port with a port number. */
static void assert_address(const char *addr)
{
        const char *p = addr;

        assert_true(*addr);
        while (*p) {
                const char *colon = strchr(p, ':');
                size_t digits;

                assert_non_null(colon);
                digits = strspn(colon + 1, "0123456789");
                assert_true(digits > 0 && digits <= 5);
                p = colon + 1 + digits;
                assert_true(*p == '\0' || *p == ',');
                if (*p == ',')
                        p++;
        }
}

static void produce_args(struct th_args *a, const char *brokers,
                         const char *timeout, const char *file)
{
        th_args_addv(a, g.bin, "produce", "-b", brokers, "-t", "calls", NULL);
        if (timeout)
                th_args_addv(a, "--delivery-timeout", timeout, NULL);
        th_args_add(a, file);
}

/* Messages in topic calls, read back with kcat. */
static int kcat_count(const char *brokers)
{
        struct th_args a = {0};
        struct th_run r;
        int n;

        th_args_addv(&a, "kcat", "-C", "-b", brokers, "-t", "calls", "-o",
                     "beginning", "-e", "-q", "-f", "%o\\n", NULL);
        run(&a, STEP_MS, &r);
        assert_int_equal(r.status, 0);
        n = th_count_lines(r.out.p, r.out.len);
        th_run_free(&r);
        return n;
}

/* The leader of calls [part] as kcat -L reports it, or -2. */
static int kcat_leader(const char *brokers, int part)
{
        struct th_args a = {0};
        struct th_run r;
        char needle[64], *p;
        int leader = -2;

        th_args_addv(&a, "kcat", "-L", "-b", brokers, "-t", "calls", NULL);
        run(&a, STEP_MS, &r);
        assert_int_equal(r.status, 0);
        snprintf(needle, sizeof(needle), "partition %d, leader ", part);
        if ((p = strstr(r.out.p, needle)))
                leader = atoi(p + strlen(needle));
        th_run_free(&r);
        return leader;
}

/* Starts `broker --daemon ARGS...` (NULL-terminated) and returns the
 * address it printed; *pid is read from pid_file. */
static char *daemon_start(const char *pid_file, pid_t *pid, ...)
{
        struct th_args a = {0};
        struct th_run r;
        const char *s;
        char *addr, *text;
        va_list ap;

        th_args_addv(&a, g.bin, "broker", "--daemon", "--pid-file", pid_file,
                     NULL);
        va_start(ap, pid);
        while ((s = va_arg(ap, const char *)) != NULL)
                th_args_add(&a, s);
        va_end(ap);
        run(&a, STEP_MS, &r);
        if (r.status == 0 && (text = slurp(pid_file))) {
                *pid = (pid_t)atol(text);
                free(text);
                if (*pid > 0)
                        daemon_track(*pid);
        }
        assert_int_equal(r.status, 0);
        addr = one_line(&r.out);
        /* Once ready the daemon keeps its log away from our stderr. */
        assert_int_equal(r.err.len, 0);
        th_run_free(&r);
        assert_true(*pid > 0);
        assert_address(addr);
        return addr;
}

/* SIGTERMs a daemon and waits until its pid file is gone and it ended. */
static void daemon_stop(pid_t pid, const char *pid_file)
{
        int64_t deadline = th_now_ms() + STEP_MS;
        int i;

        assert_int_equal(kill(pid, SIGTERM), 0);
        while ((file_exists(pid_file) || !pid_gone(pid)) &&
               th_now_ms() < deadline)
                th_sleep_ms(20);
        assert_false(file_exists(pid_file));
        assert_true(pid_gone(pid));
        for (i = 0; i < TH_FATAL_BROKERS; i++) {
                if (g.daemons[i] == pid) {
                        g.daemons[i] = 0;
                        th_fatal_broker(i, 0);
                }
        }
}

/* Starts a with its stdin and stdout on pipes (*to, *from) and its stderr
 * in the file at err_path. */
static pid_t spawn_piped(const struct th_args *a, int *to, int *from,
                         const char *err_path)
{
        int in[2], out[2], err;
        pid_t parent = getpid(), pid;

        assert_int_equal(pipe2(in, O_CLOEXEC), 0);
        assert_int_equal(pipe2(out, O_CLOEXEC), 0);
        err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(err >= 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 ||
                    getppid() != parent || dup2(in[0], 0) < 0 ||
                    dup2(out[1], 1) < 0 || dup2(err, 2) < 0)
                        _exit(127);
                signal(SIGPIPE, SIG_DFL);
                execvp(a->v[0], a->v);
                _exit(127);
        }
        th_child_track(pid);
        close(in[0]);
        close(out[1]);
        close(err);
        *to = in[1];
        *from = out[0];
        return pid;
}

/* Reads one line from fd (without its newline) into buf. */
static int read_line(int fd, char *buf, size_t size, int64_t ms)
{
        int64_t deadline = th_now_ms() + ms;
        size_t n = 0;

        while (n + 1 < size) {
                struct pollfd pf = {.fd = fd, .events = POLLIN};
                int64_t left = deadline - th_now_ms();
                ssize_t r;

                if (left <= 0 || poll(&pf, 1, (int)left) <= 0)
                        return -1;
                r = read(fd, buf + n, 1);
                if (r <= 0)
                        return -1;
                if (buf[n] == '\n') {
                        buf[n] = '\0';
                        return 0;
                }
                n++;
        }
        return -1;
}

/* The broker that command() talks to. */
static pid_t ctl_pid;

/* Sends one command line to a broker's --control - and returns its
 * answer line (static storage). */
static const char *command(int to, int from, const char *line,
                           const char *err_path)
{
        static char answer[1024];

        if (write(to, line, strlen(line)) != (ssize_t)strlen(line) ||
            read_line(from, answer, sizeof(answer), STEP_MS)) {
                th_show_file_tail("broker stderr", err_path);
                fail_msg("the broker did not answer '%.*s' (status %d, -1: "
                         "running)",
                         (int)strcspn(line, "\n"), line, th_exited(ctl_pid));
        }
        /* One TAP comment line: the command's newlines shown as \n. */
        fprintf(stderr, "# control: ");
        for (; *line; line++)
                fputs(*line == '\n' ? "\\n" : (char[]){*line, 0}, stderr);
        fprintf(stderr, " -> %s\n", answer);
        return answer;
}

/* A TCP port on 127.0.0.1 where nothing listens (it was free a moment
 * ago, and nothing here listens on it). */
static int dead_port(void)
{
        struct sockaddr_in sa = {.sin_family = AF_INET};
        socklen_t len = sizeof(sa);
        int fd = socket(AF_INET, SOCK_STREAM, 0), port;

        assert_true(fd >= 0);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
        port = ntohs(sa.sin_port);
        close(fd);
        return port;
}

/*
 * Tests.
 */

/* --daemon returns at once with the address; the pid file names the
 * broker; the address works for kcat and produce; SIGTERM ends it
 * cleanly and removes its files. */
static void test_daemon(void **state)
{
        char *pid_file = path_in("d.pid"), *addr_file = path_in("d.addr");
        char *log_file = path_in("d.log"), *addr, *arg;
        struct th_args a = {0};
        struct th_run r;
        pid_t pid = 0;

        (void)state;
        addr = daemon_start(pid_file, &pid, "--address-file", addr_file,
                            "--log-file", log_file, "--partitions", "3",
                            "--topic", "calls", NULL);

        /* The pid file names a running callstream broker. */
        assert_false(pid_gone(pid));
        arg = proc_arg(pid, 1);
        assert_non_null(arg);
        assert_string_equal(arg, "broker");
        free(arg);
        assert_file_line(addr_file, addr);

        /* kcat sees the topic as created, produce delivers to it. */
        th_args_addv(&a, "kcat", "-L", "-b", addr, "-t", "calls", NULL);
        run(&a, STEP_MS, &r);
        assert_int_equal(r.status, 0);
        assert_non_null(strstr(r.out.p, "topic \"calls\" with 3 partitions"));
        th_run_free(&r);
        produce_args(&a, addr, "30s", g.records);
        run(&a, DEADLINE_MS, &r);
        assert_int_equal(r.status, 0);
        /* The summary line, with counts of the NREC lines. */
        assert_non_null(strstr(r.err.p, "sent 5 messages to calls: 5 "
                                        "delivered, 0 failed"));
        th_run_free(&r);
        assert_int_equal(kcat_count(addr), NREC);

        daemon_stop(pid, pid_file);
        assert_false(file_exists(addr_file));
        assert_int_equal(wait_for_text(log_file,
                                       "stopping the broker "
                                       "(SIGTERM)",
                                       STEP_MS),
                         0);
        free(addr);
        free(pid_file);
        free(addr_file);
        free(log_file);
}

/* --daemon that cannot start: exit status not 0, one line saying why,
 * nothing on stdout. */
static void test_daemon_errors(void **state)
{
        static const struct {
                const char *flag, *value;
                int status;
                const char *says;
        } cases[] = {
                {"--pid-file", "missing/b.pid", 1, "missing/b.pid"},
                {"--address-file", "missing/b.addr", 1, "missing/b.addr"},
                {"--log-file", "missing/b.log", 1, "missing/b.log"},
                {"--partitions", "0", 2, "--partitions"},
                {"--bogus", NULL, 2, "--bogus"},
                {"--control", "-", 2, "--control -"},
        };
        size_t i;

        (void)state;
        for (i = 0; i < ARRAY_SIZE(cases); i++) {
                struct th_args a = {0};
                struct th_run r;
                char *err, *value = NULL;

                th_args_addv(&a, g.bin, "broker", "--daemon", cases[i].flag,
                             NULL);
                /* missing/...: a file in a folder that does not exist. */
                if (cases[i].value)
                        value = strncmp(cases[i].value, "missing/", 8)
                                        ? th_strdup(cases[i].value)
                                        : path_in(cases[i].value);
                if (value)
                        th_args_add(&a, value);
                free(value);
                run(&a, STEP_MS, &r);
                assert_int_equal(r.status, cases[i].status);
                assert_int_equal(r.out.len, 0);
                err = one_line(&r.err);
                assert_non_null(strstr(err, cases[i].says));
                free(err);
                th_run_free(&r);
        }
}

/* In the foreground the address is still the first line of stdout, and
 * the files match it and the pid. */
static void test_foreground_files(void **state)
{
        char *pid_file = path_in("f.pid"), *addr_file = path_in("f.addr");
        char *err_path = path_in("f.err"), *text;
        const char *extra[] = {"--pid-file", pid_file, "--address-file",
                               addr_file, NULL};
        struct th_broker b;

        (void)state;
        assert_int_equal(th_broker_start(&b, g.bin, extra, err_path), 0);
        th_fatal_broker(TH_FATAL_BROKERS - 1, b.pid);
        assert_file_line(addr_file, b.brokers);
        text = slurp(pid_file);
        assert_non_null(text);
        assert_int_equal(atol(text), b.pid);
        free(text);
        assert_int_equal(th_broker_stop(&b), 0);
        th_fatal_broker(TH_FATAL_BROKERS - 1, 0);
        assert_false(file_exists(pid_file));
        assert_false(file_exists(addr_file));
        free(pid_file);
        free(addr_file);
        free(err_path);
}

/* --control -: each command answers one line; down 1 makes a produce
 * with a short --delivery-timeout fail, up 1 lets the next one deliver. */
static void test_control_stdin(void **state)
{
        char *err_path = path_in("c.err"), addr[512];
        struct th_args a = {0};
        struct th_run r;
        int to, from;
        pid_t pid;

        (void)state;
        th_args_addv(&a, g.bin, "broker", "--control", "-", "--topic", "calls",
                     NULL);
        pid = spawn_piped(&a, &to, &from, err_path);
        th_args_free(&a);
        th_fatal_broker(TH_FATAL_BROKERS - 1, pid);
        ctl_pid = pid;
        assert_int_equal(read_line(from, addr, sizeof(addr), STEP_MS), 0);
        assert_address(addr);

        assert_non_null(strstr(command(to, from, "help\n", err_path), "ok"));
        assert_string_equal(command(to, from, "ping\n", err_path),
                            "error: unknown command 'ping' (try 'help')");
        /* Blank lines and comments get no answer: the next answer is the
         * next command's. */
        assert_memory_equal(command(to, from, "\n# note\ndown 2\n", err_path),
                            "error: ", 7);
        assert_memory_equal(command(to, from, "rtt 1 soon\n", err_path),
                            "error: ", 7);
        assert_memory_equal(
                command(to, from, "error Produce NO_SUCH 1\n", err_path),
                "error: ", 7);
        assert_string_equal(command(to, from, "rtt 1 0\n", err_path), "ok");
        assert_string_equal(command(to, from, "down 1\n", err_path), "ok");

        produce_args(&a, addr, "3s", g.records);
        run(&a, DEADLINE_MS, &r);
        assert_int_equal(r.status, 1);
        assert_non_null(strstr(r.err.p, "Message timed out"));
        assert_non_null(strstr(r.err.p, "0 delivered, 5 failed"));
        th_run_free(&r);

        assert_string_equal(command(to, from, "up 1\n", err_path), "ok");
        produce_args(&a, addr, "30s", g.records);
        run(&a, DEADLINE_MS, &r);
        assert_int_equal(r.status, 0);
        th_run_free(&r);
        assert_int_equal(kcat_count(addr), NREC);

        /* The end of the commands is not the end of the broker. */
        close(to);
        th_sleep_ms(200);
        assert_int_equal(th_exited(pid), -1);
        assert_int_equal(kill(pid, SIGTERM), 0);
        assert_int_equal(th_wait_until(pid, th_now_ms() + STEP_MS), 0);
        th_fatal_broker(TH_FATAL_BROKERS - 1, 0);
        close(from);
        free(err_path);
}

/* `broker --control PATH COMMAND` against a 3-broker daemon: leaders move
 * as kcat sees them, an injected Produce error fails a delivery, wrong
 * commands exit 1 with an error line. */
static void test_control_socket(void **state)
{
        char *pid_file = path_in("s.pid"), *sock = path_in("s.sock");
        char *one = path_in("one.ndjson"), *addr;
        struct th_args a = {0};
        struct th_run r;
        pid_t pid = 0;
        static const struct {
                const char *cmd[5];
                int status;
        } cases[] = {
                {{"leader", "1", "3"}, 0},
                {{"leader", "calls", "0", "2"}, 0},
                {{"leader", "0", "4"}, 1},
                {{"leader", "calls", "x", "1"}, 1},
                {{"down", "-1"}, 0},
                {{"up", "-1"}, 0},
                {{"clear", "Fetch"}, 0},
                {{"error", "Produce", "TOPIC_AUTHORIZATION_FAILED", "1"}, 0},
        };
        size_t i;

        (void)state;
        assert_int_equal(th_write_file(one, "{\"crime_id\":\"x1\"}\n", 0), 0);
        addr = daemon_start(pid_file, &pid, "--brokers-count", "3",
                            "--partitions", "2", "--topic", "calls",
                            "--control", sock, NULL);
        assert_int_equal(kcat_leader(addr, 0) > 0, 1);

        for (i = 0; i < ARRAY_SIZE(cases); i++) {
                char *line;
                int k;

                th_args_addv(&a, g.bin, "broker", "--control", sock, NULL);
                for (k = 0; k < 5 && cases[i].cmd[k]; k++)
                        th_args_add(&a, cases[i].cmd[k]);
                run(&a, STEP_MS, &r);
                assert_int_equal(r.status, cases[i].status);
                line = one_line(&r.out);
                if (cases[i].status)
                        assert_memory_equal(line, "error: ", 7);
                else
                        assert_string_equal(line, "ok");
                free(line);
                th_run_free(&r);
        }
        assert_int_equal(kcat_leader(addr, 1), 3);
        assert_int_equal(kcat_leader(addr, 0), 2);

        /* The next Produce request fails, and so does the message. */
        produce_args(&a, addr, "10s", one);
        run(&a, DEADLINE_MS, &r);
        assert_int_equal(r.status, 1);
        assert_non_null(strstr(r.err.p, "Topic authorization failed"));
        th_run_free(&r);
        produce_args(&a, addr, "30s", one);
        run(&a, DEADLINE_MS, &r);
        assert_int_equal(r.status, 0);
        th_run_free(&r);

        /* A second broker cannot take the socket of a live one. */
        th_args_addv(&a, g.bin, "broker", "--control", sock, NULL);
        run(&a, STEP_MS, &r);
        assert_int_equal(r.status, 1);
        assert_non_null(strstr(r.err.p, "another broker"));
        th_run_free(&r);

        daemon_stop(pid, pid_file);
        assert_false(file_exists(sock));
        /* No broker there now: one line, exit 1. */
        th_args_addv(&a, g.bin, "broker", "--control", sock, "up", "1", NULL);
        run(&a, STEP_MS, &r);
        assert_int_equal(r.status, 1);
        free(one_line(&r.err));
        th_run_free(&r);
        free(addr);
        free(pid_file);
        free(sock);
        free(one);
}

/* Nothing listens: produce gives up after --delivery-timeout (or -X
 * message.timeout.ms), exits 1 and names the failure. */
static void test_produce_dead_broker(void **state)
{
        char *brokers = th_asprintf("127.0.0.1:%d", dead_port());
        struct th_args a = {0};
        struct th_run r;

        (void)state;
        produce_args(&a, brokers, "2s", g.records);
        run(&a, DEADLINE_MS, &r);
        assert_int_equal(r.status, 1);
        assert_non_null(strstr(r.err.p, "Message timed out"));
        assert_non_null(strstr(r.err.p, "sent 5 messages to calls: 0 "
                                        "delivered, 5 failed"));
        th_run_free(&r);

        th_args_addv(&a, g.bin, "produce", "--brokers", brokers, "--topic",
                     "calls", "-X", "message.timeout.ms=2000", g.records, NULL);
        run(&a, DEADLINE_MS, &r);
        assert_int_equal(r.status, 1);
        assert_non_null(strstr(r.err.p, "0 delivered, 5 failed"));
        th_run_free(&r);

        th_args_addv(&a, g.bin, "produce", "-b", brokers, "-t", "calls",
                     "--delivery-timeout", "2 weeks", g.records, NULL);
        run(&a, STEP_MS, &r);
        assert_int_equal(r.status, 2);
        free(one_line(&r.err));
        assert_non_null(strstr(r.err.p, "--delivery-timeout"));
        th_run_free(&r);
        free(brokers);
}

/* SIGTERM during the wait for deliveries ends produce at once, saying how
 * many messages were not confirmed. */
static void test_produce_sigterm(void **state)
{
        char *brokers = th_asprintf("127.0.0.1:%d", dead_port());
        char *err_path = path_in("t.err"), *err;
        struct th_args a = {0};
        pid_t pid;
        int code;

        (void)state;
        produce_args(&a, brokers, NULL, g.records); /* the 5 m default */
        pid = th_spawn_logged(&a, err_path);
        th_args_free(&a);
        assert_true(pid > 0);
        assert_int_equal(
                wait_for_text(err_path, "waiting for 5 deliveries", STEP_MS),
                0);
        assert_int_equal(kill(pid, SIGTERM), 0);
        code = th_wait_until(pid, th_now_ms() + STEP_MS);
        th_show_file_tail("produce stderr", err_path);
        assert_int_equal(code, 1);
        err = slurp(err_path);
        assert_non_null(strstr(err, "aborted by SIGTERM: 5 messages not "
                                    "confirmed"));
        assert_non_null(strstr(err, "0 delivered, 0 failed, 5 not confirmed"));
        free(err);
        free(err_path);
        free(brokers);
}

/* The first Ctrl-C stops reading a stdin that stays open and waits for
 * the deliveries, saying so; the second aborts. */
static void test_produce_ctrl_c(void **state)
{
        char *brokers = th_asprintf("127.0.0.1:%d", dead_port());
        char *err_path = path_in("i.err"), *err, *text, *p;
        struct th_args a = {0};
        int64_t deadline;
        int to, from, pending = 1, code;
        unsigned long waiting, aborted;
        pid_t pid;

        (void)state;
        text = slurp(g.records);
        assert_non_null(text);
        produce_args(&a, brokers, NULL, "-");
        pid = spawn_piped(&a, &to, &from, err_path);
        th_args_free(&a);
        assert_int_equal(write(to, text, strlen(text)), (ssize_t)strlen(text));
        free(text);
        /* Until produce has read it all (the pipe is empty). */
        deadline = th_now_ms() + STEP_MS;
        while (ioctl(to, FIONREAD, &pending) == 0 && pending > 0 &&
               th_now_ms() < deadline)
                th_sleep_ms(10);
        assert_int_equal(pending, 0);

        assert_int_equal(kill(pid, SIGINT), 0);
        assert_int_equal(
                wait_for_text(err_path, "(Ctrl-C again to abort)", STEP_MS), 0);
        assert_int_equal(th_exited(pid), -1);
        assert_int_equal(kill(pid, SIGINT), 0);
        code = th_wait_until(pid, th_now_ms() + STEP_MS);
        th_show_file_tail("produce stderr", err_path);
        assert_int_equal(code, 1);

        /* Whatever it had sent when the signal came, the numbers agree. */
        err = slurp(err_path);
        assert_non_null(p = strstr(err, "waiting for "));
        waiting = strtoul(p + strlen("waiting for "), NULL, 10);
        assert_non_null(p = strstr(err, "aborted by Ctrl-C: "));
        aborted = strtoul(p + strlen("aborted by Ctrl-C: "), NULL, 10);
        assert_true(waiting >= 1 && waiting <= NREC);
        assert_int_equal(aborted, waiting);
        free(err);
        close(to);
        close(from);
        free(err_path);
        free(brokers);
}

/*
 * Fixture.
 */

static int group_setup(void **state)
{
        struct th_buf b = {0};
        int i;

        (void)state;
        th_fatal_handlers("test_broker", WATCHDOG_S);
        if (th_find_bin_data(&g.bin, &g.data) ||
            th_tmpdir_make("cs_test_broker", g.dir, sizeof(g.dir)))
                return -1;
        th_fatal_dir(g.dir);
        /* Records that are not calls are sent too (without a key): the
         * counts, not the contents, matter here. */
        for (i = 1; i <= NREC; i++)
                th_buf_addf(&b, "{\"crime_id\":\"t%d\",\"n\":%d}\n", i, i);
        g.records = path_in("records.ndjson");
        i = th_write_file(g.records, b.p, 0);
        th_buf_free(&b);
        return i;
}

static int group_teardown(void **state)
{
        (void)state;
        daemons_kill();
        if (*g.dir)
                th_tmpdir_remove(g.dir);
        free(g.bin);
        free(g.data);
        free(g.records);
        return 0;
}

static int teardown(void **state)
{
        daemons_kill();
        return th_test_teardown(state);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_daemon, teardown),
                cmocka_unit_test_teardown(test_daemon_errors, teardown),
                cmocka_unit_test_teardown(test_foreground_files, teardown),
                cmocka_unit_test_teardown(test_control_stdin, teardown),
                cmocka_unit_test_teardown(test_control_socket, teardown),
                cmocka_unit_test_teardown(test_produce_dead_broker, teardown),
                cmocka_unit_test_teardown(test_produce_sigterm, teardown),
                cmocka_unit_test_teardown(test_produce_ctrl_c, teardown),
        };

        const char *only = getenv("BROKER_TEST_FILTER");

        if (only && *only)
                cmocka_set_test_filter(only);
        return cmocka_run_group_tests_name("broker", tests, group_setup,
                                           group_teardown);
}
