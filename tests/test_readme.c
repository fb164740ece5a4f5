/* test_readme.c: the README's recipes run as written.
 *
 * Every ```sh block of README.md runs, in README order, in one `sh -e` in a
 * fresh folder with the binary on PATH as `callstream` and tests/data
 * linked there (so `tests/data/...` resolves as from the top of the
 * repository); every ```sql block runs with sqlite3 against a database
 * built the way `make demo` builds it (scripts/demo.sh), in
 * build/callstream.db of that folder. A block right after a line starting
 * with "<!-- norun" is skipped (it installs packages, needs a PostgreSQL
 * server or is interactive). The test says how many blocks ran and were
 * skipped, and which block failed with its output.
 *
 * CALLSTREAM_README names the README (default README.md: the test runs
 * from the top of the repository, as `make test` runs it); E2E_KEEP=1
 * keeps the folder. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define WATCHDOG_S 900
/* Hang guards, not speed limits. */
#define SCRIPT_TIMEOUT_S 600
#define DEMO_TIMEOUT_S   300

/* One fenced block of the README. */
struct block {
        char lang[16]; /* "sh", "sql", "" ... */
        int line;      /* of the opening fence, 1-based */
        int norun;     /* after a "<!-- norun" line */
        char *text;
};

struct st {
        char *bin;
        char *data;
        char *readme;
        char *repo; /* the README's folder: scripts/demo.sh is there */
        char dir[512];
        struct block *blocks;
        size_t n;
};

/* Splits the README into its fenced blocks. */
static int read_blocks(struct st *st)
{
        struct th_buf b = {0}, body = {0};
        const char *line, *next, *prev = "";
        struct block *open = NULL;
        int no = 0;

        if (th_read_file(st->readme, &b) < 0 || !b.p) {
                fprintf(stderr, "# cannot read %s: %s\n", st->readme,
                        strerror(errno));
                return -1;
        }
        for (line = b.p; *line; prev = line, line = next) {
                const char *nl = strchr(line, '\n');
                size_t len = nl ? (size_t)(nl - line) : strlen(line);

                next = line + len + (nl != NULL);
                no++;
                if (strncmp(line, "```", 3)) {
                        if (open)
                                th_buf_addf(&body, "%.*s\n", (int)len, line);
                        continue;
                }
                if (open) {
                        open->text = th_strdup(body.p ? body.p : "");
                        th_buf_free(&body);
                        memset(&body, 0, sizeof(body));
                        open = NULL;
                        continue;
                }
                st->blocks = th_realloc(st->blocks,
                                        (st->n + 1) * sizeof(*st->blocks));
                open = &st->blocks[st->n++];
                memset(open, 0, sizeof(*open));
                snprintf(open->lang, sizeof(open->lang), "%.*s", (int)(len - 3),
                         line + 3);
                open->line = no;
                open->norun = !strncmp(prev, "<!-- norun", 10);
        }
        th_buf_free(&body);
        th_buf_free(&b);
        if (open) {
                fprintf(stderr, "# %s: block at line %d is not closed\n",
                        st->readme, open->line);
                open->text = th_strdup("");
                return -1;
        }
        return 0;
}

static char *in_dir(const struct st *st, const char *name)
{
        return th_asprintf("%s/%s", st->dir, name);
}

/* Puts `callstream` on PATH in dir/bin: a link to the binary. */
static int make_bin(struct st *st)
{
        char *bindir = in_dir(st, "bin");
        char *link = in_dir(st, "bin/callstream");
        int ret = -1;

        if (mkdir(bindir, 0700) == 0)
                ret = symlink(st->bin, link);
        if (ret < 0)
                fprintf(stderr, "# cannot make %s: %s\n", link,
                        strerror(errno));
        free(bindir);
        free(link);
        return ret;
}

/* Runs args (NULL-terminated) in the folder with bin/ first on PATH,
 * under `timeout`, which kills the whole process group when it hangs. */
static void run_in_dir(const struct st *st, int timeout_s, struct th_run *r,
                       ...)
{
        struct th_args a = {0};
        const char *path = getenv("PATH");
        char *secs = th_asprintf("%d", timeout_s);
        char *env;
        const char *s;
        va_list ap;

        th_args_addv(&a, "timeout", "-k", "10", secs, NULL);
        va_start(ap, r);
        while ((s = va_arg(ap, const char *)))
                th_args_add(&a, s);
        va_end(ap);
        env = th_asprintf("PATH=%s/bin:%s", st->dir,
                          path ? path : "/usr/bin:/bin");
        th_args_setenv(&a, env);
        a.cwd = th_strdup(st->dir);
        th_run_args(&a, (timeout_s + 30) * 1000, r);
        th_args_free(&a);
        free(env);
        free(secs);
}

/* Whether pid is still a `callstream broker` (and not a process that took
 * its number since). */
static int is_broker(long pid)
{
        char *proc = th_asprintf("/proc/%ld/cmdline", pid);
        struct th_buf b = {0};
        int yes = 0;

        if (th_read_file(proc, &b) == 0 && b.p) {
                /* argv[0] NUL argv[1] NUL ...: is argv[1] "broker"? */
                size_t n = strlen(b.p);

                yes = strstr(b.p, "callstream") && n + 1 < b.len &&
                      !strcmp(b.p + n + 1, "broker");
        }
        th_buf_free(&b);
        free(proc);
        return yes;
}

/* Kills the brokers the recipes started and left running (the script's
 * own trap did not run: it was killed), by the pids their pid files
 * gave. */
static void kill_recipe_brokers(const struct st *st)
{
        char *pids = in_dir(st, ".readme-pids");
        struct th_buf b = {0};
        char *p, *end;

        if (th_read_file(pids, &b) == 0 && b.p) {
                for (p = b.p; *p; p = end) {
                        long pid = strtol(p, &end, 10);

                        if (end == p) {
                                end = p + 1;
                                continue;
                        }
                        if (pid > 1 && is_broker(pid))
                                kill((pid_t)pid, SIGTERM);
                }
        }
        th_buf_free(&b);
        free(pids);
}

/*
 * The sh blocks, in order, in one shell.
 */

static void test_sh_blocks(void **state)
{
        struct st *st = *state;
        struct th_buf script = {0};
        char *script_path = in_dir(st, ".readme.sh");
        struct th_run r;
        size_t i;
        int ran = 0, skipped = 0;

        /* The brokers started are killed on the way out, failed or not:
         * broker.pid as each block leaves it. */
        th_buf_addf(&script,
                    "collect() { [ ! -f broker.pid ] || cat broker.pid "
                    ">>.readme-pids; }\n"
                    "trap 'collect; for p in $(cat .readme-pids 2>/dev/null); "
                    "do kill \"$p\" 2>/dev/null || :; done' EXIT\n");
        for (i = 0; i < st->n; i++) {
                const struct block *b = &st->blocks[i];

                if (strcmp(b->lang, "sh"))
                        continue;
                if (b->norun) {
                        skipped++;
                        continue;
                }
                ran++;
                th_buf_addf(&script,
                            "echo %zu >.readme-block\n"
                            "{\n%s} >.readme-out.%zu 2>&1 </dev/null\n"
                            "collect\n",
                            i, b->text, i);
        }
        assert_int_equal(th_write_file(script_path, script.p, 0), 0);
        th_buf_free(&script);

        run_in_dir(st, SCRIPT_TIMEOUT_S, &r, "sh", "-e", script_path, NULL);
        kill_recipe_brokers(st);
        fprintf(stderr, "# README: %d sh blocks run, %d skipped (norun)\n", ran,
                skipped);
        if (r.status != 0) {
                char *which = in_dir(st, ".readme-block");
                struct th_buf n = {0};
                size_t k;

                if (th_read_file(which, &n) < 0 || !n.p)
                        fail_msg("the README script failed (status %d) "
                                 "before its first block: %s",
                                 r.status, r.err.p ? r.err.p : "");
                k = strtoul(n.p, NULL, 10);
                assert_true(k < st->n);
                {
                        char *out =
                                th_asprintf("%s/.readme-out.%zu", st->dir, k);

                        fprintf(stderr,
                                "# the sh block at README line %d "
                                "failed (status %d):\n",
                                st->blocks[k].line, r.status);
                        th_show_tail("block", st->blocks[k].text,
                                     strlen(st->blocks[k].text));
                        th_show_file_tail("its output", out);
                        free(out);
                }
                th_buf_free(&n);
                free(which);
                th_run_free(&r);
                fail_msg("README sh block at line %d failed",
                         st->blocks[k].line);
        }
        th_run_free(&r);
        free(script_path);
}

/*
 * The sql blocks, against the demo's database.
 */

static void test_sql_blocks(void **state)
{
        struct st *st = *state;
        char *demo = th_asprintf("%s/scripts/demo.sh", st->repo);
        char *dbdir = in_dir(st, "build");
        struct th_run r;
        size_t i;
        int ran = 0, skipped = 0, bad = 0;

        /* make demo's database: scripts/demo.sh writes build/callstream.db
         * under the folder it runs in. */
        if (mkdir(dbdir, 0700) < 0 && errno != EEXIST)
                fail_msg("mkdir %s: %s", dbdir, strerror(errno));
        run_in_dir(st, DEMO_TIMEOUT_S, &r, "sh", demo, "callstream", NULL);
        if (r.status != 0) {
                th_show_tail("demo stdout", r.out.p, r.out.len);
                th_show_tail("demo stderr", r.err.p, r.err.len);
                fail_msg("scripts/demo.sh failed with status %d", r.status);
        }
        th_run_free(&r);

        for (i = 0; i < st->n; i++) {
                const struct block *b = &st->blocks[i];
                char *file, *read;

                if (strcmp(b->lang, "sql"))
                        continue;
                if (b->norun) {
                        skipped++;
                        continue;
                }
                ran++;
                file = th_asprintf("%s/.readme-%zu.sql", st->dir, i);
                read = th_asprintf(".read %s", file);
                assert_int_equal(th_write_file(file, b->text, 0), 0);
                run_in_dir(st, 60, &r, "sqlite3", "-bail", "-batch",
                           "build/callstream.db", read, NULL);
                /* An error, or queries that find nothing to show. */
                if (r.status != 0 || r.err.len ||
                    (strstr(b->text, "SELECT") && !r.out.len)) {
                        fprintf(stderr,
                                "# the sql block at README line %d %s "
                                "(status %d)\n",
                                b->line,
                                r.status || r.err.len ? "failed"
                                                      : "returned no rows",
                                r.status);
                        th_show_tail("block", b->text, strlen(b->text));
                        th_show_tail("stderr", r.err.p, r.err.len);
                        bad++;
                }
                th_run_free(&r);
                free(read);
                free(file);
        }
        fprintf(stderr, "# README: %d sql blocks run, %d skipped (norun)\n",
                ran, skipped);
        free(demo);
        free(dbdir);
        if (bad)
                fail_msg("%d README sql block(s) failed (see above)", bad);
}

/* Every block is sh, sql or plain text, and the norun tags mark blocks: a
 * tag before anything else would skip nothing. */
static void test_blocks_known(void **state)
{
        struct st *st = *state;
        size_t i;
        int sh = 0;

        for (i = 0; i < st->n; i++) {
                const char *l = st->blocks[i].lang;

                if (strcmp(l, "sh") && strcmp(l, "sql") && strcmp(l, "") &&
                    strcmp(l, "text"))
                        fail_msg("README line %d: block of unknown kind '%s'",
                                 st->blocks[i].line, l);
                sh += !strcmp(l, "sh") && !st->blocks[i].norun;
        }
        assert_true(sh > 0);
}

/*
 * Fixture.
 */

static int group_setup(void **state)
{
        struct st *st = calloc(1, sizeof(*st));
        const char *readme = getenv("CALLSTREAM_README");
        char *link = NULL, *slash;

        if (!st)
                return -1;
        *state = st;
        th_fatal_handlers("test_readme", WATCHDOG_S);
        if (th_find_bin_data(&st->bin, &st->data))
                return -1;
        st->readme = realpath(readme ? readme : "README.md", NULL);
        if (!st->readme) {
                fprintf(stderr, "# no README at %s\n",
                        readme ? readme : "README.md");
                return -1;
        }
        st->repo = th_strdup(st->readme);
        slash = strrchr(st->repo, '/');
        *slash = '\0';
        if (read_blocks(st) < 0 ||
            th_tmpdir_make("cs_test_readme", st->dir, sizeof(st->dir)))
                return -1;
        th_fatal_dir(st->dir);
        link = in_dir(st, "tests");
        if (mkdir(link, 0700) < 0)
                goto fail;
        free(link);
        link = in_dir(st, "tests/data");
        if (symlink(st->data, link) < 0)
                goto fail;
        free(link);
        return make_bin(st);
fail:
        fprintf(stderr, "# cannot make %s: %s\n", link, strerror(errno));
        free(link);
        return -1;
}

static int group_teardown(void **state)
{
        struct st *st = *state;
        size_t i;

        if (!st)
                return 0;
        alarm(0);
        th_children_kill_all();
        if (st->dir[0]) {
                kill_recipe_brokers(st);
                th_tmpdir_remove(st->dir);
        }
        th_fatal_dir(NULL);
        for (i = 0; i < st->n; i++)
                free(st->blocks[i].text);
        free(st->blocks);
        free(st->bin);
        free(st->data);
        free(st->readme);
        free(st->repo);
        free(st);
        return 0;
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_blocks_known),
                cmocka_unit_test_teardown(test_sh_blocks, th_test_teardown),
                cmocka_unit_test_teardown(test_sql_blocks, th_test_teardown),
        };

        return cmocka_run_group_tests_name("readme", tests, group_setup,
                                           group_teardown);
}
