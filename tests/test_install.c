/* test_install.c: packaging (issue 11). `make install DESTDIR=... PREFIX=/usr`
 * from the repository (found as $CALLSTREAM_DATA/../..) with the binary
 * under test: the files, their modes and Debian's layout; PREFIX=/usr/local
 * moves the configuration and rewrites the unit's paths; `make uninstall`
 * removes what install put there and keeps an edited configuration. The
 * man page renders without a warning (man --warnings) and names every
 * long option of every command's --help; the systemd unit passes
 * `systemd-analyze verify` where systemd is installed (skipped otherwise);
 * contrib/callstream.conf has every ingest key, and each of its commented
 * settings is a valid one once uncommented. */
#include <errno.h>
#include <setjmp.h>
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

#define WATCHDOG_S 600
/* A hang guard: make install builds the man page, running help2man over
 * every command's --help. */
#define MAKE_TIMEOUT_MS (300 * 1000)

struct st {
        char *bin;
        char *repo;
        char dir[512];
        char *root; /* DESTDIR of the PREFIX=/usr install */
        char *man;  /* the page it built */
};

static struct st *S(void **state)
{
        return *state;
}

static const char *out(const struct th_run *r)
{
        return r->out.p ? r->out.p : "";
}

static const char *err(const struct th_run *r)
{
        return r->err.p ? r->err.p : "";
}

/* make -C REPO TARGET with the binary under test, its man page built at
 * man, and the variables up to NULL, into r; returns its status. */
static int make_v(const struct st *st, struct th_run *r, const char *target,
                  const char *man, va_list ap)
{
        struct th_args a = {0};
        const char *s;
        char *v;

        /* -o: the binary is the one under test, never to be rebuilt. */
        th_args_addv(&a, "make", "--no-print-directory", "-C", st->repo, "-o",
                     st->bin, target, NULL);
        v = th_asprintf("BIN=%s", st->bin);
        th_args_add(&a, v);
        free(v);
        v = th_asprintf("MAN=%s", man);
        th_args_add(&a, v);
        free(v);
        while ((s = va_arg(ap, const char *)))
                th_args_add(&a, s);
        th_run_args(&a, MAKE_TIMEOUT_MS, r);
        th_args_free(&a);
        return r->status;
}

/* make_v, failing the test unless make exits with 0. */
static void make(const struct st *st, struct th_run *r, const char *target,
                 const char *man, ...)
{
        va_list ap;
        int status;

        va_start(ap, man);
        status = make_v(st, r, target, man, ap);
        va_end(ap);
        if (status != 0)
                fail_msg("make %s: status %d\n%s%s", target, status, out(r),
                         err(r));
}

/* make_v for the group setup, which cannot fail a test: says why. */
static int make_setup(const struct st *st, const char *target, const char *man,
                      ...)
{
        struct th_run r = {0};
        va_list ap;
        int status;

        va_start(ap, man);
        status = make_v(st, &r, target, man, ap);
        va_end(ap);
        if (status != 0)
                fprintf(stderr, "# make %s: status %d\n%s%s", target, status,
                        out(&r), err(&r));
        th_run_free(&r);
        return status;
}

/* Fails unless path is a regular file of that mode. */
static void assert_file(const char *root, const char *path, unsigned mode)
{
        char *p = th_asprintf("%s%s", root, path);
        struct stat sb;

        if (stat(p, &sb) < 0)
                fail_msg("%s: %s", p, strerror(errno));
        if (!S_ISREG(sb.st_mode) || (sb.st_mode & 07777) != mode)
                fail_msg("%s: mode %o, want a file of mode %o", p,
                         (unsigned)(sb.st_mode & 07777), mode);
        free(p);
}

static void assert_absent(const char *root, const char *path)
{
        char *p = th_asprintf("%s%s", root, path);

        if (access(p, F_OK) == 0)
                fail_msg("%s is still there", p);
        free(p);
}

static char *slurp(const char *path)
{
        struct th_buf b = {0};

        if (th_read_file(path, &b) < 0)
                fail_msg("cannot read %s", path);
        th_buf_add(&b, "", 0);
        return b.p;
}

static void assert_has(const char *what, const char *text, const char *needle)
{
        if (!strstr(text, needle))
                fail_msg("%s lacks '%s'", what, needle);
}

/* Runs argv (up to NULL) with env ("NAME=value" or NULL) into r. */
static void run(struct th_run *r, const char *env, ...)
{
        struct th_args a = {0};
        const char *s;
        va_list ap;

        va_start(ap, env);
        while ((s = va_arg(ap, const char *)))
                th_args_add(&a, s);
        va_end(ap);
        if (env)
                th_args_setenv(&a, env);
        th_run_args(&a, TH_RUN_TIMEOUT_MS, r);
        th_args_free(&a);
}

static void test_layout(void **state)
{
        struct st *st = S(state);
        struct th_run r = {0};
        char *conf, *installed, *unit, *p;

        assert_file(st->root, "/usr/bin/callstream", 0755);
        assert_file(st->root, "/usr/share/man/man1/callstream.1", 0644);
        assert_file(st->root, "/etc/callstream/callstream.conf", 0600);
        assert_file(st->root, "/usr/lib/systemd/system/callstream.service",
                    0644);

        /* The installed binary is the one under test. */
        p = th_asprintf("%s/usr/bin/callstream", st->root);
        run(&r, NULL, p, "--version", NULL);
        assert_int_equal(r.status, 0);
        assert_true(!strncmp(out(&r), "callstream ", 11));
        th_run_free(&r);
        free(p);

        p = th_asprintf("%s/contrib/callstream.conf", st->repo);
        conf = slurp(p);
        free(p);
        p = th_asprintf("%s/etc/callstream/callstream.conf", st->root);
        installed = slurp(p);
        free(p);
        assert_string_equal(installed, conf);

        p = th_asprintf("%s/usr/lib/systemd/system/callstream.service",
                        st->root);
        unit = slurp(p);
        free(p);
        assert_has("unit", unit,
                   "\nExecStart=/usr/bin/callstream ingest --config "
                   "%d/callstream.conf\n");
        assert_has("unit", unit,
                   "\nLoadCredential=callstream.conf:"
                   "/etc/callstream/callstream.conf\n");
        assert_has("unit", unit, "\nRestart=on-failure\n");
        assert_has("unit", unit, "\nDynamicUser=yes\n");
        assert_has("unit", unit, "\nStateDirectory=callstream\n");
        if (strstr(unit, "\nExecReload="))
                fail_msg("the unit has ExecReload=, but ingest does not "
                         "re-read its configuration");
        free(conf);
        free(installed);
        free(unit);
}

/* Another PREFIX: the configuration under it, the unit's paths too; then
 * uninstall, keeping an edited configuration. */
static void test_prefix_and_uninstall(void **state)
{
        struct st *st = S(state);
        char *root = th_asprintf("%s/local", st->dir);
        char *man = th_asprintf("%s/local.1", st->dir);
        char *destdir = th_asprintf("DESTDIR=%s", root);
        char *p, *unit;
        struct th_run r = {0};

        make(st, &r, "install", man, destdir, "PREFIX=/usr/local", NULL);
        th_run_free(&r);
        assert_file(root, "/usr/local/bin/callstream", 0755);
        assert_file(root, "/usr/local/share/man/man1/callstream.1", 0644);
        assert_file(root, "/usr/local/etc/callstream/callstream.conf", 0600);
        assert_file(root, "/usr/local/lib/systemd/system/callstream.service",
                    0644);
        p = th_asprintf("%s/usr/local/lib/systemd/system/callstream.service",
                        root);
        unit = slurp(p);
        free(p);
        assert_has("unit", unit, "\nExecStart=/usr/local/bin/callstream ");
        assert_has("unit", unit,
                   ":/usr/local/etc/callstream/callstream.conf\n");

        /* Unedited: all gone, the configuration's folder too. */
        make(st, &r, "uninstall", man, destdir, "PREFIX=/usr/local", NULL);
        th_run_free(&r);
        assert_absent(root, "/usr/local/bin/callstream");
        assert_absent(root, "/usr/local/share/man/man1/callstream.1");
        assert_absent(root, "/usr/local/lib/systemd/system/callstream.service");
        assert_absent(root, "/usr/local/etc/callstream");

        /* Edited: the configuration stays, and a new install keeps it. */
        make(st, &r, "install", man, destdir, "PREFIX=/usr/local", NULL);
        th_run_free(&r);
        p = th_asprintf("%s/usr/local/etc/callstream/callstream.conf", root);
        assert_int_equal(th_write_file(p, "db = mine.db\n", 1), 0);
        make(st, &r, "install", man, destdir, "PREFIX=/usr/local", NULL);
        th_run_free(&r);
        make(st, &r, "uninstall", man, destdir, "PREFIX=/usr/local", NULL);
        th_run_free(&r);
        assert_absent(root, "/usr/local/bin/callstream");
        free(unit);
        unit = slurp(p);
        assert_true(strstr(unit, "\ndb = mine.db\n") != NULL);

        free(unit);
        free(p);
        free(root);
        free(man);
        free(destdir);
}

/* Fails unless the page names every long option of text, a --help. */
static void assert_options_in(const char *what, const char *help,
                              const char *page)
{
        const char *p;

        for (p = strstr(help, "--"); p; p = strstr(p + 2, "--")) {
                char opt[64];
                size_t n = strspn(p + 2, "abcdefghijklmnopqrstuvwxyz-");

                if (n == 0 || n > sizeof(opt) - 3)
                        continue;
                snprintf(opt, sizeof(opt), "--%.*s", (int)n, p + 2);
                if (!strstr(page, opt))
                        fail_msg("the man page lacks %s of %s", opt, what);
        }
}

/* The page's roff with its font changes and escaped hyphens undone. */
static char *roff_text(const char *roff)
{
        struct th_buf b = {0};
        const char *p;

        for (p = roff; *p; p++) {
                if (p[0] == '\\' && p[1] == '-') {
                        th_buf_add(&b, "-", 1);
                        p++;
                } else if (p[0] == '\\' && p[1] == 'f' && p[2]) {
                        p += 2;
                } else if (p[0] == '\\' && (p[1] == ',' || p[1] == '/')) {
                        p++;
                } else {
                        th_buf_add(&b, p, 1);
                }
        }
        th_buf_add(&b, "", 0);
        return b.p;
}

static void test_man_page(void **state)
{
        struct st *st = S(state);
        struct th_args a = {0};
        struct th_run r = {0};
        char *page, *roff, *sh, *cmds, *line, *save = NULL;
        const char *c;
        int ncmds = 0;

        /* Rendered: groff says nothing (on stderr; the text is dropped). */
        sh = th_asprintf("MANWIDTH=80 man --warnings -l '%s' 2>&1 >/dev/null",
                         st->man);
        th_args_addv(&a, "sh", "-c", sh, NULL);
        th_run_args(&a, TH_RUN_TIMEOUT_MS, &r);
        th_args_free(&a);
        assert_int_equal(r.status, 0);
        if (r.out.len || r.err.len)
                fail_msg("man --warnings: %s%s", out(&r), err(&r));
        th_run_free(&r);
        free(sh);
        run(&r, "MANWIDTH=80", "man", "-l", st->man, NULL);
        assert_int_equal(r.status, 0);
        assert_has("man page", out(&r), "CONFIGURATION");
        assert_has("man page", out(&r), "callstream ingest");
        th_run_free(&r);

        /* Every command's every option: made from the --help texts. */
        page = slurp(st->man);
        roff = roff_text(page);
        run(&r, NULL, st->bin, "--help", NULL);
        assert_int_equal(r.status, 0);
        c = strstr(out(&r), "\nCommands:\n");
        assert_non_null(c);
        cmds = th_strdup(c + strlen("\nCommands:\n"));
        th_run_free(&r);
        for (line = strtok_r(cmds, "\n", &save);
             line && !strncmp(line, "  ", 2);
             line = strtok_r(NULL, "\n", &save)) {
                char name[32], *ss;

                if (sscanf(line, " %31s", name) != 1)
                        continue;
                ss = th_asprintf(".SS \"callstream %s\"", name);
                assert_has("man page", page, ss);
                free(ss);
                run(&r, NULL, st->bin, name, "--help", NULL);
                assert_int_equal(r.status, 0);
                assert_options_in(name, out(&r), roff);
                th_run_free(&r);
                ncmds++;
        }
        assert_true(ncmds >= 8);
        free(cmds);
        free(page);
        free(roff);
}

static int which(const char *prog)
{
        const char *path = getenv("PATH");
        char *copy, *d, *save = NULL, *p;
        int found = 0;

        copy = th_strdup(path ? path : "/usr/bin:/bin");
        for (d = strtok_r(copy, ":", &save); d && !found;
             d = strtok_r(NULL, ":", &save)) {
                p = th_asprintf("%s/%s", d, prog);
                found = access(p, X_OK) == 0;
                free(p);
        }
        free(copy);
        return found;
}

static void test_unit_verifies(void **state)
{
        struct st *st = S(state);
        struct th_run r = {0};
        char *p, *unit, *text, *manpath, *at;
        struct th_buf b = {0};

        if (!which("systemd-analyze")) {
                print_message("# systemd-analyze not installed: skipped\n");
                skip();
        }
        /* The installed unit, pointed at the DESTDIR copies (verify checks
         * that the binary exists, and man finds Documentation=). */
        p = th_asprintf("%s/usr/lib/systemd/system/callstream.service",
                        st->root);
        text = slurp(p);
        free(p);
        for (p = text; (at = strstr(p, "/usr/bin/callstream"));
             p = at + strlen("/usr/bin/callstream")) {
                th_buf_add(&b, p, (size_t)(at - p));
                th_buf_addf(&b, "%s/usr/bin/callstream", st->root);
        }
        th_buf_add(&b, p, strlen(p));
        unit = th_asprintf("%s/callstream.service", st->dir);
        assert_int_equal(th_write_file(unit, b.p, 0), 0);
        manpath = th_asprintf("MANPATH=%s/usr/share/man", st->root);
        run(&r, manpath, "systemd-analyze", "verify", unit, NULL);
        if (r.status != 0 || r.out.len || r.err.len)
                fail_msg("systemd-analyze verify: status %d\n%s%s", r.status,
                         out(&r), err(&r));
        th_run_free(&r);
        th_buf_free(&b);
        free(manpath);
        free(unit);
        free(text);
}

/* contrib/callstream.conf: every ingest key, and every commented setting
 * valid once uncommented. */
static void test_example_config(void **state)
{
        struct st *st = S(state);
        struct th_run r = {0};
        struct th_buf on = {0};
        char *p, *conf, *line, *save = NULL, *copy, *keys, *k, *ks = NULL;
        char *cfg;
        int n = 0;

        p = th_asprintf("%s/contrib/callstream.conf", st->repo);
        conf = slurp(p);
        free(p);

        /* The keys ingest has, as --print-config lists the unset ones. */
        run(&r, NULL, st->bin, "ingest", "--print-config", NULL);
        assert_int_equal(r.status, 0);
        keys = th_strdup(out(&r));
        th_run_free(&r);
        for (k = strtok_r(keys, "\n", &ks); k; k = strtok_r(NULL, "\n", &ks)) {
                char key[64], *want;

                /* sscanf alone would take "# callstream ingest: ...". */
                if (!strstr(k, ": not set (default)") ||
                    sscanf(k, "# %63[a-zA-Z-]: not set", key) != 1)
                        continue;
                want = th_asprintf("\n# %s = ", key);
                if (!strstr(conf, want))
                        fail_msg("contrib/callstream.conf lacks '# %s = "
                                 "...' (ingest --%s)",
                                 key, key);
                free(want);
                n++;
        }
        assert_true(n >= 20);
        free(keys);

        /* "# key = value" lines uncommented; sections kept. */
        copy = th_strdup(conf);
        for (line = strtok_r(copy, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save)) {
                char key[64];
                int end = 0;

                /* %n: the whole "# key = " matched, not a prefix. */
                if (line[0] == '[') {
                        th_buf_addf(&on, "%s\n", line);
                } else if (sscanf(line, "# %63[a-zA-Z-] = %n", key, &end) ==
                                   1 &&
                           end > 0) {
                        th_buf_addf(&on, "%s\n", line + 2);
                }
        }
        cfg = th_asprintf("%s/on.conf", st->dir);
        assert_int_equal(th_write_file(cfg, on.p, 0), 0);
        run(&r, NULL, st->bin, "ingest", "--config", cfg, "--print-config",
            NULL);
        if (r.status != 0)
                fail_msg("the example's settings, uncommented: %s", err(&r));
        assert_has("print-config", out(&r), "window = 1h/15m");
        th_run_free(&r);
        run(&r, NULL, st->bin, "report", "--config", cfg, "--print-config",
            NULL);
        if (r.status != 0)
                fail_msg("report reads the example: %s", err(&r));
        th_run_free(&r);

        th_buf_free(&on);
        free(cfg);
        free(copy);
        free(conf);
}

static int group_setup(void **state)
{
        struct st *st = calloc(1, sizeof(*st));
        char *data = NULL, *destdir, *mk;
        int status;

        if (!st)
                return -1;
        *state = st;
        th_fatal_handlers("test_install", WATCHDOG_S);
        if (th_find_bin_data(&st->bin, &data) ||
            th_tmpdir_make("cs_test_install", st->dir, sizeof(st->dir))) {
                free(data);
                return -1;
        }
        th_fatal_dir(st->dir);
        st->repo = th_asprintf("%s/../..", data);
        free(data);
        mk = th_asprintf("%s/Makefile", st->repo);
        if (access(mk, R_OK)) {
                fprintf(stderr, "# no %s\n", mk);
                free(mk);
                return -1;
        }
        free(mk);
        /* Not the jobserver of a make that runs the tests. */
        unsetenv("MAKEFLAGS");
        unsetenv("MFLAGS");
        unsetenv("MAKELEVEL");

        st->root = th_asprintf("%s/root", st->dir);
        st->man = th_asprintf("%s/callstream.1", st->dir);
        destdir = th_asprintf("DESTDIR=%s", st->root);
        status = make_setup(st, "install", st->man, destdir, "PREFIX=/usr",
                            NULL);
        free(destdir);
        return status == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
        struct st *st = *state;

        if (!st)
                return 0;
        alarm(0);
        th_children_kill_all();
        if (st->dir[0])
                th_tmpdir_remove(st->dir);
        th_fatal_dir(NULL);
        free(st->bin);
        free(st->repo);
        free(st->root);
        free(st->man);
        free(st);
        return 0;
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_layout, th_test_teardown),
                cmocka_unit_test_teardown(test_man_page, th_test_teardown),
                cmocka_unit_test_teardown(test_unit_verifies, th_test_teardown),
                cmocka_unit_test_teardown(test_example_config,
                                          th_test_teardown),
                cmocka_unit_test_teardown(test_prefix_and_uninstall,
                                          th_test_teardown),
        };

        return cmocka_run_group_tests_name("install", tests, group_setup,
                                           group_teardown);
}
