/* harness.c: helpers shared by the end-to-end tests (harness.h). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "cs_sink.h"
#include "harness.h"

#define MAX_CHILDREN 32

static void oom(void)
{
        fprintf(stderr, "# %s: out of memory\n", program_invocation_short_name);
        abort();
}

void *th_malloc(size_t n)
{
        void *p = malloc(n ? n : 1);

        if (!p)
                oom();
        return p;
}

void *th_realloc(void *p, size_t n)
{
        p = realloc(p, n ? n : 1);
        if (!p)
                oom();
        return p;
}

char *th_strndup(const char *s, size_t n)
{
        char *d = th_malloc(n + 1);

        memcpy(d, s, n);
        d[n] = '\0';
        return d;
}

char *th_strdup(const char *s)
{
        return th_strndup(s, strlen(s));
}

char *th_asprintf(const char *fmt, ...)
{
        va_list ap;
        char *s;

        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                oom();
        va_end(ap);
        return s;
}

int64_t th_now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void th_sleep_ms(int64_t ms)
{
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};

        while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
                ;
}

void th_buf_add(struct th_buf *b, const void *data, size_t n)
{
        if (b->len + n + 1 > b->cap) {
                b->cap = (b->len + n + 1) * 2;
                b->p = th_realloc(b->p, b->cap);
        }
        if (n)
                memcpy(b->p + b->len, data, n);
        b->len += n;
        b->p[b->len] = '\0';
}

void th_buf_addf(struct th_buf *b, const char *fmt, ...)
{
        va_list ap;
        char *s;
        int n;

        va_start(ap, fmt);
        n = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (n < 0)
                oom();
        th_buf_add(b, s, (size_t)n);
        free(s);
}

void th_buf_free(struct th_buf *b)
{
        free(b->p);
        memset(b, 0, sizeof(*b));
}

int th_read_file(const char *path, struct th_buf *out)
{
        char tmp[65536];
        ssize_t n;
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        if (fd < 0)
                return -1;
        th_buf_add(out, "", 0);
        while ((n = read(fd, tmp, sizeof(tmp))) != 0) {
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        close(fd);
                        return -1;
                }
                th_buf_add(out, tmp, (size_t)n);
        }
        close(fd);
        return 0;
}

int th_count_lines(const char *text, size_t len)
{
        int n = 0;
        size_t i;

        for (i = 0; i < len; i++)
                n += text[i] == '\n';
        if (len && text[len - 1] != '\n')
                n++;
        return n;
}

void th_show_tail(const char *what, const char *text, size_t len)
{
        size_t start = len > 1500 ? len - 1500 : 0;
        size_t i;

        if (!len)
                return;
        fprintf(stderr, "# --- %s (last %zu bytes):\n# ", what, len - start);
        for (i = start; i < len; i++) {
                unsigned char c = (unsigned char)text[i];

                if (c == '\n')
                        fputs("\n# ", stderr);
                else if (c < 0x20 || c == 0x7f)
                        fprintf(stderr, "\\x%02x", c);
                else
                        fputc(c, stderr);
        }
        fputc('\n', stderr);
}

void th_show_file_tail(const char *what, const char *path)
{
        struct th_buf b = {0};

        if (th_read_file(path, &b) == 0)
                th_show_tail(what, b.p, b.len);
        else
                fprintf(stderr, "# --- %s: cannot read %s: %s\n", what, path,
                        strerror(errno));
        th_buf_free(&b);
}

/*
 * Children.
 */

static pid_t children[MAX_CHILDREN];
static volatile size_t n_children;

void th_child_track(pid_t pid)
{
        if (n_children < MAX_CHILDREN)
                children[n_children++] = pid;
}

void th_child_forget(pid_t pid)
{
        size_t i;

        for (i = 0; i < n_children; i++) {
                if (children[i] == pid) {
                        children[i] = children[--n_children];
                        return;
                }
        }
}

void th_children_kill_all(void)
{
        while (n_children > 0) {
                pid_t pid = children[--n_children];

                kill(pid, SIGKILL);
                while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
                        ;
        }
}

void th_args_add(struct th_args *a, const char *s)
{
        assert_true(a->n < 63);
        a->v[a->n++] = th_strdup(s);
        a->v[a->n] = NULL;
}

void th_args_addv(struct th_args *a, ...)
{
        va_list ap;
        const char *s;

        va_start(ap, a);
        while ((s = va_arg(ap, const char *)) != NULL)
                th_args_add(a, s);
        va_end(ap);
}

void th_args_setenv(struct th_args *a, const char *name_value)
{
        assert_true(a->nenv < 7 && strchr(name_value, '='));
        a->env[a->nenv++] = th_strdup(name_value);
        a->env[a->nenv] = NULL;
}

void th_args_free(struct th_args *a)
{
        int i;

        for (i = 0; i < a->n; i++)
                free(a->v[i]);
        for (i = 0; i < a->nenv; i++)
                free(a->env[i]);
        free(a->cwd);
        memset(a, 0, sizeof(*a));
}

char *th_args_str(const struct th_args *a)
{
        struct th_buf b = {0};
        const char *base = strrchr(a->v[0], '/');
        int i;

        for (i = 0; i < a->nenv; i++)
                th_buf_addf(&b, "%s ", a->env[i]);
        th_buf_addf(&b, "%s", base ? base + 1 : a->v[0]);
        for (i = 1; i < a->n; i++)
                th_buf_addf(&b, " %s", a->v[i]);
        return b.p;
}

pid_t th_spawn(const struct th_args *a, int out_fd, int err_fd)
{
        pid_t parent = getpid();
        pid_t pid = fork();
        int i;

        if (pid < 0)
                return -1;
        if (pid == 0) {
                int in = open("/dev/null", O_RDONLY);

                if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 ||
                    getppid() != parent)
                        _exit(127);
                if (in < 0 || dup2(in, 0) < 0 || dup2(out_fd, 1) < 0 ||
                    dup2(err_fd, 2) < 0)
                        _exit(127);
                for (i = 0; i < a->nenv; i++)
                        putenv(a->env[i]);
                if (a->cwd && chdir(a->cwd) == -1) {
                        dprintf(2, "%s: chdir %s: %s\n",
                                program_invocation_short_name, a->cwd,
                                strerror(errno));
                        _exit(127);
                }
                /* SIG_IGN survives exec; the child gets the default. */
                signal(SIGPIPE, SIG_DFL);
                execvp(a->v[0], a->v);
                dprintf(2, "%s: exec %s: %s\n", program_invocation_short_name,
                        a->v[0], strerror(errno));
                _exit(127);
        }
        th_child_track(pid);
        return pid;
}

pid_t th_spawn_logged(const struct th_args *a, const char *log_path)
{
        int fd =
                open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        pid_t pid;

        if (fd < 0) {
                fprintf(stderr, "# cannot open %s: %s\n", log_path,
                        strerror(errno));
                return -1;
        }
        pid = th_spawn(a, fd, fd);
        close(fd);
        return pid;
}

int th_status_code(int ws)
{
        if (WIFEXITED(ws))
                return WEXITSTATUS(ws);
        if (WIFSIGNALED(ws))
                return 128 + WTERMSIG(ws);
        return -1;
}

int th_wait_until(pid_t pid, int64_t deadline)
{
        int ws = 0;
        pid_t r;

        for (;;) {
                r = waitpid(pid, &ws, WNOHANG);
                if (r == pid) {
                        th_child_forget(pid);
                        return th_status_code(ws);
                }
                if (r == -1 && errno != EINTR) {
                        th_child_forget(pid);
                        return -1;
                }
                if (th_now_ms() >= deadline)
                        break;
                th_sleep_ms(10);
        }
        kill(pid, SIGKILL);
        while (waitpid(pid, &ws, 0) == -1 && errno == EINTR)
                ;
        th_child_forget(pid);
        return -1;
}

int th_exited(pid_t pid)
{
        int ws = 0;
        pid_t r;

        while ((r = waitpid(pid, &ws, WNOHANG)) == -1 && errno == EINTR)
                ;
        if (r == 0)
                return -1;
        th_child_forget(pid);
        return r == pid ? th_status_code(ws) : 255;
}

void th_run_args(const struct th_args *a, int timeout_ms, struct th_run *r)
{
        int op[2], ep[2], i, open_fds = 2;
        struct pollfd pf[2];
        int64_t start = th_now_ms(), deadline = start + timeout_ms;
        pid_t pid;

        memset(r, 0, sizeof(*r));
        th_buf_add(&r->out, "", 0);
        th_buf_add(&r->err, "", 0);
        assert_int_equal(pipe2(op, O_CLOEXEC), 0);
        assert_int_equal(pipe2(ep, O_CLOEXEC), 0);
        pid = th_spawn(a, op[1], ep[1]);
        close(op[1]);
        close(ep[1]);
        if (pid < 0) {
                close(op[0]);
                close(ep[0]);
                fail_msg("fork failed: %s", strerror(errno));
        }
        pf[0].fd = op[0];
        pf[1].fd = ep[0];
        pf[0].events = pf[1].events = POLLIN;
        while (open_fds > 0) {
                int64_t left = deadline - th_now_ms();

                if (left <= 0)
                        break;
                if (poll(pf, 2, (int)left) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                for (i = 0; i < 2; i++) {
                        char tmp[65536];
                        ssize_t n;

                        if (pf[i].fd < 0 || !pf[i].revents)
                                continue;
                        n = read(pf[i].fd, tmp, sizeof(tmp));
                        if (n > 0) {
                                th_buf_add(i ? &r->err : &r->out, tmp,
                                           (size_t)n);
                        } else if (n == 0 || errno != EINTR) {
                                close(pf[i].fd);
                                pf[i].fd = -1;
                                open_fds--;
                        }
                }
        }
        for (i = 0; i < 2; i++)
                if (pf[i].fd >= 0)
                        close(pf[i].fd);
        r->status = th_wait_until(pid, deadline);
        r->ms = th_now_ms() - start;
        if (r->status == -1) {
                char *cmd = th_args_str(a);

                fprintf(stderr, "# timed out after %d ms: %s\n", timeout_ms,
                        cmd);
                free(cmd);
        }
}

void th_run_ok(const struct th_args *a, struct th_run *r)
{
        char *cmd = th_args_str(a);

        th_run_args(a, TH_RUN_TIMEOUT_MS, r);
        fprintf(stderr, "# $ %s  -> %d (%.1f s)\n", cmd, r->status,
                r->ms / 1000.0);
        if (r->status != 0) {
                th_show_tail("stderr", r->err.p, r->err.len);
                fail_msg("'%s' exited with %d, expected 0", cmd, r->status);
        }
        free(cmd);
}

void th_run_free(struct th_run *r)
{
        th_buf_free(&r->out);
        th_buf_free(&r->err);
}

/*
 * Temporary directory.
 */

int th_tmpdir_make(const char *prefix, char *out, size_t size)
{
        const char *tmp = getenv("TMPDIR");

        snprintf(out, size, "%s/%s.XXXXXX", tmp && *tmp ? tmp : "/tmp", prefix);
        if (!mkdtemp(out)) {
                fprintf(stderr, "# mkdtemp %s: %s\n", out, strerror(errno));
                out[0] = '\0';
                return -1;
        }
        return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw)
{
        (void)sb;
        (void)flag;
        (void)ftw;
        return remove(path);
}

void th_tmpdir_remove(const char *dir)
{
        if (!dir || !dir[0])
                return;
        if (getenv("E2E_KEEP"))
                fprintf(stderr, "# kept %s\n", dir);
        else
                nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/*
 * The broker.
 */

/* Reads the broker's first stdout line (its bootstrap address). */
static int read_bootstrap(struct th_broker *b)
{
        int64_t deadline = th_now_ms() + TH_BROKER_TIMEOUT_MS;
        size_t n = 0;

        while (n < sizeof(b->brokers) - 1) {
                struct pollfd pf = {b->out, POLLIN, 0};
                int64_t left = deadline - th_now_ms();
                ssize_t k;

                if (left <= 0 || poll(&pf, 1, (int)left) <= 0)
                        return -1;
                k = read(b->out, b->brokers + n, 1);
                if (k <= 0)
                        return -1;
                if (b->brokers[n] == '\n') {
                        b->brokers[n] = '\0';
                        if (n > 0 && b->brokers[n - 1] == '\r')
                                b->brokers[n - 1] = '\0';
                        return b->brokers[0] ? 0 : -1;
                }
                n++;
        }
        return -1;
}

int th_broker_start(struct th_broker *b, const char *bin,
                    const char *const *extra, const char *err_path)
{
        struct th_args a = {0};
        int out[2], err_fd;

        memset(b, 0, sizeof(*b));
        b->out = -1;
        th_args_addv(&a, bin, "broker", NULL);
        for (; extra && *extra; extra++)
                th_args_add(&a, *extra);
        err_fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (err_fd < 0 || pipe2(out, O_CLOEXEC)) {
                fprintf(stderr, "# broker: %s: %s\n", err_path,
                        strerror(errno));
                if (err_fd >= 0)
                        close(err_fd);
                th_args_free(&a);
                return -1;
        }
        b->pid = th_spawn(&a, out[1], err_fd);
        th_args_free(&a);
        /* The broker outlives the tests; only the group teardown stops it,
         * the per-test teardowns kill the rest. */
        th_child_forget(b->pid);
        close(out[1]);
        close(err_fd);
        b->out = out[0];
        if (b->pid < 0 || read_bootstrap(b)) {
                fprintf(stderr,
                        "# broker gave no bootstrap line within %d ms\n",
                        TH_BROKER_TIMEOUT_MS);
                th_show_file_tail("broker stderr", err_path);
                th_broker_stop(b);
                return -1;
        }
        fprintf(stderr, "# broker at %s\n", b->brokers);
        return 0;
}

int th_broker_stop(struct th_broker *b)
{
        int rc, r = 0;

        if (b->pid > 0) {
                /* The broker runs until SIGINT/SIGTERM; it must go on
                 * SIGTERM. */
                kill(b->pid, SIGTERM);
                rc = th_wait_until(b->pid, th_now_ms() + 10000);
                if (rc != 0 && rc != 128 + SIGTERM) {
                        fprintf(stderr,
                                "# broker: on SIGTERM it ended with status %d "
                                "(-1: still running after 10 s, killed)\n",
                                rc);
                        r = -1;
                }
        }
        b->pid = 0;
        /* fd 0 is stdin, never the broker's pipe: a struct that was only
         * zero-initialised has nothing to close. */
        if (b->out > 0)
                close(b->out);
        b->out = -1;
        return r;
}

void th_broker_assert_alive(struct th_broker *b)
{
        int ws;

        if (b->pid > 0 && waitpid(b->pid, &ws, WNOHANG) == b->pid) {
                b->pid = 0;
                fail_msg("the broker ended with status %d", th_status_code(ws));
        }
        assert_true(b->pid > 0);
}

/*
 * PostgreSQL.
 */

#define PG_TOOL_TIMEOUT_MS (90 * 1000)
#define PG_DEFAULT_BINDIR  "/usr/lib/postgresql/15/bin"

/* For th_pg_stop_async(): the postmaster's pid file. */
static char pg_pidfile[4096];

/* The argument vector of a server tool: as postgres when we are root, run
 * from the server's folder (which that user may enter). */
static void pg_tool_args(const struct th_pg *pg, struct th_args *a,
                         const char *tool)
{
        char *path = th_asprintf("%s/%s", pg->bindir, tool);

        if (pg->runuser)
                th_args_addv(a, pg->runuser, "-u", "postgres", "--", NULL);
        th_args_add(a, path);
        a->cwd = th_strdup(pg->dir);
        free(path);
}

/* Runs a server tool, then frees a; shows its output and the server log
 * unless it exits 0. Returns its status. */
static int pg_run_tool(const struct th_pg *pg, struct th_args *a)
{
        char *cmd = th_args_str(a);
        struct th_run r;
        int status;

        th_run_args(a, PG_TOOL_TIMEOUT_MS, &r);
        fprintf(stderr, "# $ %s  -> %d (%.1f s)\n", cmd, r.status,
                r.ms / 1000.0);
        status = r.status;
        if (status != 0) {
                th_show_tail("stdout", r.out.p, r.out.len);
                th_show_tail("stderr", r.err.p, r.err.len);
                if (pg->log)
                        th_show_file_tail("server log", pg->log);
        }
        th_run_free(&r);
        th_args_free(a);
        free(cmd);
        return status;
}

int th_pg_ctl(const struct th_pg *pg, const char *mode, const char *action)
{
        struct th_args a = {0};

        pg_tool_args(pg, &a, "pg_ctl");
        th_args_addv(&a, "-D", pg->data, "-l", pg->log, "-w", "-t", "80", NULL);
        if (mode)
                th_args_addv(&a, "-m", mode, NULL);
        th_args_add(&a, action);
        return pg_run_tool(pg, &a);
}

/* The postmaster's pid from its pid file, or -1. Async-signal-safe. */
static pid_t pg_postmaster_pid(void)
{
        char buf[32];
        ssize_t n;
        pid_t pid = 0;
        int fd, i;

        if (!pg_pidfile[0] || (fd = open(pg_pidfile, O_RDONLY | O_CLOEXEC)) < 0)
                return -1;
        n = read(fd, buf, sizeof(buf));
        close(fd);
        for (i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; i++)
                pid = pid * 10 + (buf[i] - '0');
        return pid > 1 ? pid : -1;
}

static int pg_free_port(void)
{
        struct sockaddr_in sa = {0};
        socklen_t len = sizeof(sa);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
            getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
                port = ntohs(sa.sin_port);
        if (fd >= 0)
                close(fd);
        return port;
}

int th_write_file(const char *path, const char *text, int append)
{
        int fd = open(path,
                      O_WRONLY | O_CREAT | O_CLOEXEC |
                              (append ? O_APPEND : O_TRUNC),
                      0600);
        size_t n = strlen(text);
        int r = fd >= 0 && write(fd, text, n) == (ssize_t)n ? 0 : -1;

        if (r < 0)
                fprintf(stderr, "# cannot write %s: %s\n", path,
                        strerror(errno));
        if (fd >= 0)
                close(fd);
        return r;
}

/* $PG_BINDIR, else pg_config --bindir, else Debian's PostgreSQL 15. */
static int pg_find_bindir(struct th_pg *pg)
{
        const char *env = getenv("PG_BINDIR");
        char *initdb;
        int ok;

        if (env && *env) {
                pg->bindir = th_strdup(env);
        } else {
                struct th_args a = {0};
                struct th_run r;

                th_args_addv(&a, "pg_config", "--bindir", NULL);
                th_run_args(&a, 15000, &r);
                if (r.status == 0 && r.out.len)
                        pg->bindir =
                                th_strndup(r.out.p, strcspn(r.out.p, "\r\n"));
                th_run_free(&r);
                th_args_free(&a);
        }
        initdb = th_asprintf("%s/initdb", pg->bindir ? pg->bindir : "");
        ok = pg->bindir && access(initdb, X_OK) == 0;
        free(initdb);
        if (!ok) {
                free(pg->bindir);
                pg->bindir = th_strdup(PG_DEFAULT_BINDIR);
        }
        initdb = th_asprintf("%s/initdb", pg->bindir);
        ok = access(initdb, X_OK) == 0;
        free(initdb);
        if (!ok)
                fprintf(stderr,
                        "# no PostgreSQL server binaries (initdb) in %s: "
                        "install the postgresql package (make deps)\n",
                        pg->bindir);
        return ok ? 0 : -1;
}

/* Whether every folder above dir lets others through: the server's user
 * must reach its folder inside ours. */
static int pg_reachable_by_others(const char *dir)
{
        char *p = th_strdup(dir), *slash;
        struct stat sb;
        int ok = 1;

        while (ok && (slash = strrchr(p, '/')) != NULL) {
                *slash = '\0';
                if (stat(*p ? p : "/", &sb) == 0 && !(sb.st_mode & S_IXOTH)) {
                        fprintf(stderr,
                                "# %s is closed to other users, so postgres "
                                "cannot reach %s: set TMPDIR to another "
                                "folder\n",
                                *p ? p : "/", dir);
                        ok = 0;
                }
        }
        free(p);
        return ok;
}

static const char *pg_find_runuser(void)
{
        static const char *const runusers[] = {
                "/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser",
                "/bin/runuser"};
        size_t i;

        for (i = 0; i < sizeof(runusers) / sizeof(runusers[0]); i++)
                if (access(runusers[i], X_OK) == 0)
                        return runusers[i];
        return "runuser";
}

/* Makes the server's folder (postgres's when we are root), runs initdb
 * there and writes its settings: the socket, trusted, and with TH_PG_TCP
 * 127.0.0.1, wanting a password. Nothing else gets in. */
static int pg_init(struct th_pg *pg, const char *parent, int flags)
{
        struct th_args a = {0};
        char *path, *conf;
        int rc;

        pg->dir = th_asprintf("%s/pg", parent);
        pg->data = th_asprintf("%s/data", pg->dir);
        pg->log = th_asprintf("%s/server.log", pg->dir);
        if (strlen(pg->dir) + sizeof("/.s.PGSQL.65535") > 100 ||
            strlen(pg->data) + sizeof("/postmaster.pid") > sizeof(pg_pidfile)) {
                fprintf(stderr,
                        "# %s is too long for a Unix socket path: set "
                        "TMPDIR to a shorter folder\n",
                        pg->dir);
                return -1;
        }
        if (mkdir(pg->dir, 0700) < 0) {
                fprintf(stderr, "# mkdir %s: %s\n", pg->dir, strerror(errno));
                return -1;
        }
        if (geteuid() == 0) {
                struct passwd *pw = getpwnam("postgres");

                if (!pw) {
                        fprintf(stderr, "# running as root, but there is no "
                                        "postgres user to run the server\n");
                        return -1;
                }
                if (!pg_reachable_by_others(parent))
                        return -1;
                pg->runuser = pg_find_runuser();
                if (chmod(parent, 0711) < 0 ||
                    chown(pg->dir, pw->pw_uid, pw->pw_gid) < 0) {
                        fprintf(stderr, "# giving %s to postgres: %s\n",
                                pg->dir, strerror(errno));
                        return -1;
                }
        }
        pg_tool_args(pg, &a, "initdb");
        th_args_addv(&a, "-D", pg->data, "-U", "postgres", "--auth=trust",
                     "--encoding=UTF8", "--no-locale", "--no-sync", NULL);
        if (pg_run_tool(pg, &a) != 0)
                return -1;
        path = th_asprintf("%s/pg_hba.conf", pg->data);
        rc = th_write_file(path,
                           flags & TH_PG_TCP
                                   ? "local all all trust\n"
                                     "host all all 127.0.0.1/32 scram-sha-256\n"
                                   : "local all all trust\n",
                           0);
        free(path);
        path = th_asprintf("%s/postgresql.conf", pg->data);
        conf = th_asprintf("\n# test harness\n"
                           "listen_addresses = '%s'\n"
                           "unix_socket_directories = '%s'\n"
                           "password_encryption = 'scram-sha-256'\n"
                           "fsync = off\n"
                           "full_page_writes = off\n"
                           "max_connections = 40\n"
                           "shared_buffers = 32MB\n"
                           "log_line_prefix = '%%m [%%p] %%a '\n",
                           flags & TH_PG_TCP ? "127.0.0.1" : "", pg->dir);
        if (rc == 0)
                rc = th_write_file(path, conf, 1);
        free(conf);
        free(path);
        return rc;
}

int th_pg_start(struct th_pg *pg, const char *parent, int flags)
{
        static const char *const pg_env[] = {"PGHOST",
                                             "PGHOSTADDR",
                                             "PGPORT",
                                             "PGUSER",
                                             "PGPASSWORD",
                                             "PGDATABASE",
                                             "PGSERVICE",
                                             "PGSERVICEFILE",
                                             "PGOPTIONS",
                                             "PGSSLMODE",
                                             "PGDATA",
                                             "PGAPPNAME",
                                             "PGCONNECT_TIMEOUT",
                                             "PGTARGETSESSIONATTRS",
                                             NULL};
        const char *const *e;
        char *conf;
        int attempt, rc = -1;

        memset(pg, 0, sizeof(*pg));
        for (e = pg_env; *e; e++)
                unsetenv(*e);
        conf = th_asprintf("%s/no.pgpass", parent);
        setenv("PGPASSFILE", conf, 1);
        free(conf);
        if (pg_find_bindir(pg) < 0 || pg_init(pg, parent, flags) < 0)
                return -1;
        snprintf(pg_pidfile, sizeof(pg_pidfile), "%s/postmaster.pid", pg->data);
        conf = th_asprintf("%s/postgresql.conf", pg->data);
        for (attempt = 0; attempt < 3 && rc != 0; attempt++) {
                char line[64];

                pg->port = pg_free_port();
                if (pg->port <= 0)
                        break;
                /* The last setting in the file wins. */
                snprintf(line, sizeof(line), "port = %d\n", pg->port);
                if (th_write_file(conf, line, 1) < 0)
                        break;
                pg->started = 1;
                rc = th_pg_ctl(pg, NULL, "start");
                /* A port taken meanwhile: stop what may be left, retry. */
                if (rc != 0 && th_pg_ctl(pg, "immediate", "stop") == 0)
                        pg->started = 0;
        }
        free(conf);
        if (rc != 0)
                return -1;
        fprintf(stderr, "# PostgreSQL at socket %s port %d%s, log %s\n",
                pg->dir, pg->port, flags & TH_PG_TCP ? " (and 127.0.0.1)" : "",
                pg->log);
        return 0;
}

void th_pg_stop(struct th_pg *pg)
{
        pid_t pid;
        int64_t deadline;

        if (pg->started && th_pg_ctl(pg, "immediate", "stop") != 0 &&
            (pid = pg_postmaster_pid()) > 0) {
                fprintf(stderr, "# killing postmaster %d\n", (int)pid);
                kill(pid, SIGKILL);
                deadline = th_now_ms() + 10000;
                while (kill(pid, 0) == 0 && th_now_ms() < deadline)
                        th_sleep_ms(50);
        }
        pg_pidfile[0] = '\0';
        free(pg->bindir);
        free(pg->dir);
        free(pg->data);
        free(pg->log);
        memset(pg, 0, sizeof(*pg));
}

void th_pg_stop_async(void)
{
        struct timespec tick = {0, 50 * 1000 * 1000};
        pid_t pid = pg_postmaster_pid();
        int i;

        if (pid > 0 && kill(pid, SIGQUIT) == 0)
                for (i = 0; i < 100 && kill(pid, 0) == 0; i++)
                        nanosleep(&tick, NULL);
}

char *th_pg_conninfo(const struct th_pg *pg, const char *db)
{
        return th_pg_conninfo_as(pg, "postgres", db);
}

char *th_pg_conninfo_as(const struct th_pg *pg, const char *user,
                        const char *db)
{
        return th_asprintf("host=%s port=%d user=%s dbname=%s", pg->dir,
                           pg->port, user, db);
}

int th_pg_createdb(const struct th_pg *pg, const char *name, const char *owner)
{
        struct th_args a = {0};
        char *path = th_asprintf("%s/createdb", pg->bindir);
        char *port = th_asprintf("%d", pg->port);

        /* A client: it runs as we are, over the trusted socket. */
        th_args_addv(&a, path, "-h", pg->dir, "-p", port, "-U", "postgres",
                     NULL);
        if (owner)
                th_args_addv(&a, "-O", owner, NULL);
        th_args_add(&a, name);
        free(path);
        free(port);
        return pg_run_tool(pg, &a);
}

/*
 * Rows as lines.
 */

void th_lines_add(struct th_lines *l, char *s)
{
        if (l->n == l->cap) {
                l->cap = l->cap * 2 + 1024;
                l->v = th_realloc(l->v, l->cap * sizeof(*l->v));
        }
        l->v[l->n++] = s;
}

void th_lines_addf(struct th_lines *l, const char *fmt, ...)
{
        va_list ap;
        char *s;

        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                oom();
        va_end(ap);
        th_lines_add(l, s);
}

static int str_cmp(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

void th_lines_sort(struct th_lines *l)
{
        if (l->n)
                qsort(l->v, l->n, sizeof(*l->v), str_cmp);
}

void th_lines_free(struct th_lines *l)
{
        size_t i;

        if (!l)
                return;
        for (i = 0; i < l->n; i++)
                free(l->v[i]);
        free(l->v);
        memset(l, 0, sizeof(*l));
}

static void show_line(const char *tag, const char *line)
{
        size_t n = strlen(line);

        fprintf(stderr, "#   %s %.*s%s\n", tag, n > 400 ? 400 : (int)n, line,
                n > 400 ? "..." : "");
}

size_t th_lines_compare(const char *what, const char *an,
                        const struct th_lines *a, const char *bn,
                        const struct th_lines *b, size_t max_shown)
{
        size_t i = 0, j = 0, only_a = 0, only_b = 0;

        while (i < a->n || j < b->n) {
                int c = i == a->n   ? 1
                        : j == b->n ? -1
                                    : strcmp(a->v[i], b->v[j]);

                if (c == 0) {
                        i++;
                        j++;
                } else if (c < 0) {
                        if (only_a + only_b < max_shown)
                                show_line(an, a->v[i]);
                        only_a++;
                        i++;
                } else {
                        if (only_a + only_b < max_shown)
                                show_line(bn, b->v[j]);
                        only_b++;
                        j++;
                }
        }
        if (only_a + only_b)
                fprintf(stderr,
                        "# %s: %zu rows differ: %zu only in %s (of %zu), "
                        "%zu only in %s (of %zu)\n",
                        what, only_a + only_b, only_a, an, a->n, only_b, bn,
                        b->n);
        return only_a + only_b;
}

void th_put_quoted(struct th_buf *b, const unsigned char *p, size_t n)
{
        size_t i;

        th_buf_add(b, "'", 1);
        for (i = 0; i < n; i++) {
                if (p[i] < 0x20 || p[i] == 0x7f || p[i] == '\'' || p[i] == '\\')
                        th_buf_addf(b, "\\x%02x", p[i]);
                else
                        th_buf_add(b, &p[i], 1);
        }
        th_buf_add(b, "'", 1);
}

void th_put_hex(struct th_buf *b, const unsigned char *p, size_t n)
{
        size_t i;

        th_buf_add(b, "x'", 2);
        for (i = 0; i < n; i++)
                th_buf_addf(b, "%02x", p[i]);
        th_buf_add(b, "'", 1);
}

/*
 * Set-up shared by the end-to-end tests.
 */

int th_find_bin_data(char **bin, char **data)
{
        const char *b = getenv("CALLSTREAM_BIN");
        const char *d = getenv("CALLSTREAM_DATA");

        *bin = realpath(b ? b : "build/callstream", NULL);
        *data = realpath(d ? d : "tests/data", NULL);
        if (!*bin || access(*bin, X_OK)) {
                fprintf(stderr, "# no callstream binary at %s\n",
                        b ? b : "build/callstream");
                return -1;
        }
        if (!*data) {
                fprintf(stderr, "# no data directory at %s\n",
                        d ? d : "tests/data");
                return -1;
        }
        return 0;
}

/* For the fatal-signal handler: async-signal-safe copies. */
static const char *fatal_name = "test";
static char fatal_dir[PATH_MAX];
static int fatal_keep; /* E2E_KEEP */
static volatile pid_t fatal_brokers[TH_FATAL_BROKERS];

static void fatal_say(const char *s)
{
        if (write(2, s, strlen(s)) < 0)
                _exit(1);
}

/* A fatal signal or the watchdog: stop the brokers, the children and the
 * server, delete the folder, die of the signal. Async-signal-safe calls
 * only. */
static void on_fatal_signal(int sig)
{
        pid_t rm = -1;
        int i;

        for (i = 0; i < TH_FATAL_BROKERS; i++)
                if (fatal_brokers[i] > 0)
                        kill(fatal_brokers[i], SIGKILL);
        th_children_kill_all();
        th_pg_stop_async();
        if (fatal_dir[0] && !fatal_keep)
                rm = fork();
        if (rm == 0) {
                execl("/bin/rm", "rm", "-rf", fatal_dir, (char *)NULL);
                _exit(127);
        }
        if (rm > 0)
                waitpid(rm, NULL, 0);
        fatal_say("# ");
        fatal_say(fatal_name);
        fatal_say(": killed or timed out; stopped the server");
        if (rm > 0) {
                fatal_say(" and removed ");
                fatal_say(fatal_dir);
        }
        fatal_say("\n");
        signal(sig, SIG_DFL);
        raise(sig);
}

void th_fatal_handlers(const char *name, unsigned watchdog_s)
{
        struct sigaction sa;

        fatal_name = name;
        signal(SIGPIPE, SIG_IGN);
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_fatal_signal;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
        sigaction(SIGALRM, &sa, NULL);
        alarm(watchdog_s);
}

void th_fatal_dir(const char *dir)
{
        fatal_keep = getenv("E2E_KEEP") != NULL;
        snprintf(fatal_dir, sizeof(fatal_dir), "%s", dir ? dir : "");
}

void th_fatal_broker(int slot, pid_t pid)
{
        if (slot >= 0 && slot < TH_FATAL_BROKERS)
                fatal_brokers[slot] = pid;
}

void th_run_ok_free(struct th_args *a)
{
        struct th_run r;

        th_run_ok(a, &r);
        th_run_free(&r);
        th_args_free(a);
}

int th_test_teardown(void **state)
{
        (void)state;
        th_children_kill_all();
        return 0;
}

/*
 * A folder for one test of a sink.
 */

int th_sinkdir_setup(void **state)
{
        struct th_sinkdir *f = calloc(1, sizeof(*f));

        if (!f)
                return -1;
        snprintf(f->dir, sizeof(f->dir), "/tmp/cs_sink_XXXXXX");
        if (!mkdtemp(f->dir)) {
                free(f);
                return -1;
        }
        snprintf(f->path, sizeof(f->path), "%s/t.db", f->dir);
        *state = f;
        return 0;
}

int th_sinkdir_teardown(void **state)
{
        struct th_sinkdir *f = *state;

        cs_sink_close(f->sink);
        th_tmpdir_remove(f->dir);
        free(f);
        *state = NULL;
        return 0;
}

void th_http_resp_free(struct th_http_resp *r)
{
        free(r->type);
        th_buf_free(&r->raw);
        memset(r, 0, sizeof(*r));
}

void th_http_get(int port, const char *target, struct th_http_resp *r)
{
        struct timeval tv = {30, 0};
        struct sockaddr_in sin;
        char req[2048], buf[8192], *p, *hend;
        ssize_t n;
        int fd;

        memset(r, 0, sizeof(*r));
        fd = socket(AF_INET, SOCK_STREAM, 0);
        assert_true(fd >= 0);
        memset(&sin, 0, sizeof(sin));
        sin.sin_family = AF_INET;
        sin.sin_port = htons((uint16_t)port);
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
                fail_msg("connect to port %d: %s", port, strerror(errno));
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: x\r\n\r\n",
                 target);
        assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
        while ((n = read(fd, buf, sizeof(buf))) > 0)
                th_buf_add(&r->raw, buf, (size_t)n);
        close(fd);
        assert_true(n == 0);
        th_buf_add(&r->raw, "", 1);
        r->raw.len--;
        assert_int_equal(sscanf(r->raw.p, "HTTP/1.%*d %d", &r->status), 1);
        hend = strstr(r->raw.p, "\r\n\r\n");
        assert_non_null(hend);
        r->body = hend + 4;
        r->len = r->raw.len - (size_t)(r->body - r->raw.p);
        p = strcasestr(r->raw.p, "\r\nContent-Type: ");
        if (p && p < hend) {
                p += strlen("\r\nContent-Type: ");
                r->type = th_strndup(p, strcspn(p, "\r"));
        }
}

long long th_sqlite_int(const char *path, const char *sql)
{
        sqlite3 *db = NULL;
        sqlite3_stmt *st = NULL;
        long long v;

        if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) ||
            sqlite3_prepare_v2(db, sql, -1, &st, NULL) ||
            sqlite3_step(st) != SQLITE_ROW)
                fail_msg("%s on %s: %s", sql, path, sqlite3_errmsg(db));
        v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        sqlite3_close(db);
        return v;
}

int th_no_offsets(void *opaque, struct cs_partition_offset *offs, size_t n)
{
        size_t i;

        (void)opaque;
        for (i = 0; i < n; i++)
                offs[i].next_offset = -1;
        return 0;
}

int th_nothing_to_commit(void *opaque)
{
        (void)opaque;
        return 0;
}
