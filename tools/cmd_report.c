/* cmd_report.c: `callstream report`, a view or the standard report as a
 * file, once or every period; the queries and formats are report.c's. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cs_cli.h"
#include "cs_cmd.h"
#include "cs_report.h"
#include "cs_sink.h"
#include "cs_time.h"

static const char report_help[] =
        "Usage: callstream report --db DB [--schema S] [--view NAME]\n"
        "         [--window SPEC]... [--from T] [--to T] [--last D]\n"
        "         [--final-only] [--top N] [--format FORMAT] [--out FILE]\n"
        "         [--every D]\n"
        "\n"
        "Exports one of the views, or the standard report: calls per crime\n"
        "type and per disposition (with the radio codes' meanings) in the\n"
        "chosen windows, and where the ingest stands (watermark, lag,\n"
        "rejected and late calls). Reads through a read-only connection, so\n"
        "it is safe beside a running ingest.\n"
        "\n"
        "Options:\n"
        "  -d, --db DB          SQLite file path (or sqlite:PATH), or a\n"
        "                       PostgreSQL URI or key=value conninfo\n"
        "      --schema NAME    PostgreSQL: the schema callstream uses\n"
        "      --view NAME      one of: call_counts, disposition_counts,\n"
        "                       recent_call_counts, top_crime_types,\n"
        "                       pipeline_progress, watermarks, "
        "final_watermark\n"
        "                       (default: the standard report)\n"
        "  -w, --window SPEC    only this window spec, repeatable (default:\n"
        "                       all; the HTML charts use the first)\n"
        "      --from T         only windows starting at or after T\n"
        "      --to T           only windows starting before T\n"
        "                       (T: YYYY-MM-DD [HH:MM[:SS]], event time)\n"
        "      --last D         only windows ending within D before the\n"
        "                       newest watermark (event time, not the clock)\n"
        "      --final-only     only windows the watermark has passed\n"
        "      --top N          per window, the N crime types with most calls\n"
        "  -f, --format F       csv (default), json, ndjson, markdown, html\n"
        "  -o, --out FILE       write FILE atomically ('-': stdout, default)\n"
        "      --every D        write --out again every D until SIGINT or\n"
        "                       SIGTERM (D: 30s, 15m, 1h...)\n"
        "  -v, --verbose        log more\n"
        "  -q, --quiet          log errors only (not each file written)\n"
        "  -h, --help           show this help\n"
        "      --version        show the versions of callstream and its\n"
        "                       libraries\n"
        "      --config FILE    read options from FILE (key = value\n"
        "                       lines, the long option names as keys)\n"
        "      --print-config   print the options in effect and where\n"
        "                       each comes from (secrets masked), and exit\n";

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
        (void)sig;
        stop_requested = 1;
}

/* Reads --from/--to: a date, or a date and time. */
static int parse_bound(const char *flag, const char *val, int64_t *out)
{
        char buf[32];
        int32_t usec;

        snprintf(buf, sizeof(buf), "%s%s", val,
                 strlen(val) == 10 ? " 00:00" : "");
        if (strlen(val) > 26 || cs_time_parse(buf, strlen(buf), out, &usec)) {
                cs_cli_usage_error("report",
                                   "invalid %s '%s': expected YYYY-MM-DD "
                                   "[HH:MM[:SS]]",
                                   flag, val);
                return -1;
        }
        return 0;
}

/* Writes the report to path through a temporary file in the same folder,
 * synced and renamed over it: a reader sees the old file or the new one,
 * never a part. Returns what cs_report_render() returns. */
static int write_atomic(const struct cs_report_opts *o, const char *path,
                        char *errstr, size_t errstr_size)
{
        char *dup = strdup(path), *tmp = NULL, *dir;
        FILE *f = NULL;
        mode_t mask;
        int fd = -1, dfd, r = -1;

        if (!dup || asprintf(&tmp, "%s.tmp.XXXXXX", path) < 0) {
                tmp = NULL;
                snprintf(errstr, errstr_size, "out of memory");
                goto out;
        }
        if ((fd = mkstemp(tmp)) < 0) {
                snprintf(errstr, errstr_size, "%s: cannot create: %s", tmp,
                         strerror(errno));
                free(tmp);
                tmp = NULL;
                goto out;
        }
        /* mkstemp makes 0600; a report is as readable as any new file. */
        mask = umask(0);
        umask(mask);
        (void)fchmod(fd, 0666 & ~mask);
        if (!(f = fdopen(fd, "w"))) {
                snprintf(errstr, errstr_size, "%s: %s", tmp, strerror(errno));
                close(fd);
                goto out;
        }
        if ((r = cs_report_render(o, f, errstr, errstr_size)) < 0)
                goto out;
        r = -1;
        if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
                snprintf(errstr, errstr_size, "%s: cannot write: %s", tmp,
                         strerror(errno));
                goto out;
        }
        if (fclose(f) != 0) {
                f = NULL;
                snprintf(errstr, errstr_size, "%s: cannot write: %s", tmp,
                         strerror(errno));
                goto out;
        }
        f = NULL;
        if (rename(tmp, path) != 0) {
                snprintf(errstr, errstr_size, "cannot rename %s to %s: %s", tmp,
                         path, strerror(errno));
                goto out;
        }
        free(tmp);
        tmp = NULL;
        /* The rename itself survives a crash once the folder is synced. */
        dir = dirname(dup);
        if ((dfd = open(dir, O_RDONLY | O_DIRECTORY)) >= 0) {
                (void)fsync(dfd);
                close(dfd);
        }
        r = 0;
out:
        if (f)
                fclose(f);
        if (tmp) {
                unlink(tmp);
                free(tmp);
        }
        free(dup);
        return r;
}

/* One export; logs what went wrong. */
static int export_once(const struct cs_report_opts *o, const char *out)
{
        char errstr[512];
        int r;

        if (!out) {
                r = cs_report_render(o, stdout, errstr, sizeof(errstr));
                if (r == 0 && fflush(stdout) != 0) {
                        snprintf(errstr, sizeof(errstr),
                                 "writing to stdout: %s", strerror(errno));
                        r = -1;
                }
        } else {
                r = write_atomic(o, out, errstr, sizeof(errstr));
        }
        if (r < 0)
                cs_log(CS_LOG_ERROR, "report: %s", errstr);
        else if (out)
                cs_log(CS_LOG_INFO, "report: wrote %s", out);
        return r;
}

/* Sleeps until the next period starts, or a stop request. */
static void wait_period(int64_t start_ms, int64_t every_s)
{
        int64_t until = start_ms + every_s * 1000;

        while (!stop_requested) {
                int64_t left = until - cs_now_ms();
                struct timespec ts;

                if (left <= 0)
                        break;
                if (left > 200)
                        left = 200;
                ts.tv_sec = 0;
                ts.tv_nsec = (long)left * 1000000L;
                nanosleep(&ts, NULL);
        }
}

int cs_cmd_report(int argc, char **argv)
{
        static const struct option longopts[] = {
                {"db", required_argument, NULL, 'd'},
                {"schema", required_argument, NULL, 'S'},
                {"view", required_argument, NULL, 'V'},
                {"window", required_argument, NULL, 'w'},
                {"from", required_argument, NULL, 'F'},
                {"to", required_argument, NULL, 'T'},
                {"last", required_argument, NULL, 'L'},
                {"final-only", no_argument, NULL, 'N'},
                {"top", required_argument, NULL, 'K'},
                {"format", required_argument, NULL, 'f'},
                {"out", required_argument, NULL, 'o'},
                {"every", required_argument, NULL, 'E'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        struct cs_window_spec specs[CS_REPORT_MAX_WINDOWS];
        struct cs_report_opts o = {0};
        const char *out = NULL;
        int64_t every = 0;
        long long v;
        int c, i, takes, nspecs = 0;

        while ((c = cs_cli_getopt("report", argc, argv, "d:w:f:o:h",
                                  longopts)) != -1) {
                switch (c) {
                case 'd':
                        o.db = optarg;
                        break;
                case 'S':
                        o.schema = optarg;
                        break;
                case 'V':
                        if (cs_report_view_takes(optarg) < 0) {
                                cs_cli_usage_error(
                                        "report",
                                        "unknown --view '%s': expected one "
                                        "of %s",
                                        optarg, cs_report_views());
                                return CS_EXIT_USAGE;
                        }
                        o.view = optarg;
                        break;
                case 'w':
                        if (cs_cli_window("report", optarg, specs, &nspecs,
                                          CS_REPORT_MAX_WINDOWS) < 0)
                                return CS_EXIT_USAGE;
                        break;
                case 'F':
                        if (parse_bound("--from", optarg, &o.from) < 0)
                                return CS_EXIT_USAGE;
                        o.has_from = 1;
                        break;
                case 'T':
                        if (parse_bound("--to", optarg, &o.to) < 0)
                                return CS_EXIT_USAGE;
                        o.has_to = 1;
                        break;
                case 'L':
                        if (cs_cli_duration("report", "--last", optarg, 1,
                                            CS_CLI_DURATION_MAX, &o.last) < 0)
                                return CS_EXIT_USAGE;
                        break;
                case 'N':
                        o.final_only = 1;
                        break;
                case 'K':
                        if (cs_cli_int("report", "--top", optarg, 1, 1000000,
                                       &v) < 0)
                                return CS_EXIT_USAGE;
                        o.top = (int)v;
                        break;
                case 'f':
                        if (cs_report_format_parse(optarg, &o.format) < 0) {
                                cs_cli_usage_error(
                                        "report",
                                        "unknown --format '%s': expected "
                                        "csv, json, ndjson, markdown or html",
                                        optarg);
                                return CS_EXIT_USAGE;
                        }
                        break;
                case 'o':
                        out = strcmp(optarg, "-") ? optarg : NULL;
                        break;
                case 'E':
                        if (cs_cli_duration("report", "--every", optarg, 1,
                                            CS_CLI_DURATION_MAX, &every) < 0)
                                return CS_EXIT_USAGE;
                        break;
                case 'h':
                        fputs(report_help, stdout);
                        return CS_EXIT_OK;
                case CS_CLI_DONE:
                        return CS_EXIT_OK;
                default:
                        return CS_EXIT_USAGE;
                }
        }
        if (cs_cli_no_operands("report", argc, argv) < 0)
                return CS_EXIT_USAGE;
        if (!o.db || !*o.db) {
                cs_cli_usage_error("report", "missing --db");
                return CS_EXIT_USAGE;
        }
        if (o.schema && !cs_sink_is_postgresql(o.db)) {
                cs_cli_usage_error("report", "--schema is for PostgreSQL "
                                             "databases only");
                return CS_EXIT_USAGE;
        }
        if (o.has_from && o.has_to && o.from >= o.to) {
                cs_cli_usage_error("report", "--from must come before --to");
                return CS_EXIT_USAGE;
        }
        takes = cs_report_view_takes(o.view);
        if (!(takes & CS_REPORT_TAKES_WINDOWS) &&
            (nspecs || o.has_from || o.has_to || o.last)) {
                cs_cli_usage_error("report",
                                   "view %s has no windows: --window, "
                                   "--from, --to and --last do not apply",
                                   o.view);
                return CS_EXIT_USAGE;
        }
        if (!(takes & CS_REPORT_TAKES_FINAL) && o.final_only) {
                cs_cli_usage_error("report",
                                   "--final-only does not apply to view %s",
                                   o.view);
                return CS_EXIT_USAGE;
        }
        if (!(takes & CS_REPORT_TAKES_TOP) && o.top) {
                cs_cli_usage_error("report",
                                   "--top applies to the standard report "
                                   "and to call_counts, recent_call_counts "
                                   "and top_crime_types, not to %s",
                                   o.view);
                return CS_EXIT_USAGE;
        }
        if (every && !out) {
                cs_cli_usage_error("report", "--every needs --out FILE");
                return CS_EXIT_USAGE;
        }
        for (i = 0; i < nspecs; i++)
                o.windows[i] = specs[i].name;
        o.nwindows = nspecs;

        if (!every)
                return export_once(&o, out) < 0 ? CS_EXIT_FAILURE : CS_EXIT_OK;

        /* --every: a failure (the database out of reach, locked, being
         * replaced) is logged and tried again at the next period. */
        {
                struct sigaction sa;

                memset(&sa, 0, sizeof(sa));
                sa.sa_handler = on_stop;
                sigemptyset(&sa.sa_mask);
                sigaction(SIGINT, &sa, NULL);
                sigaction(SIGTERM, &sa, NULL);
        }
        while (!stop_requested) {
                int64_t start = cs_now_ms();

                (void)export_once(&o, out);
                wait_period(start, every);
        }
        cs_log(CS_LOG_INFO, "report: stopped");
        return CS_EXIT_OK;
}
