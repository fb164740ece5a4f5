/* config.c: --config files and CALLSTREAM_ environment variables as options
 * under the command line (see cs_config.h). */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cs_config.h"

extern char **environ;

/* Higher wins; within the file, the command's [section] beats the keys
 * above every section. */
enum layer { L_FILE = 1, L_SECTION, L_ENV, L_FLAG };

struct entry {
        char *key;
        char *value; /* NULL for a flag that takes no value */
        int truth;   /* a flag: 1 given (true), 0 turned off (false) */
        enum layer layer;
        char *origin; /* "FILE:LINE", "CALLSTREAM_X" or "command line" */
};

struct cs_config {
        const char *cmd;
        const char *opts;
        const struct option *longopts;
        struct entry *e;
        size_t n, cap;
        char **argv, **origins; /* the options for getopt, and whence */
        int argc;
        char **ignored; /* CALLSTREAM_ names that are no option here */
        size_t nignored;
        char *file;
        int print;
};

/* Commands that read the layers. A command list, not a key list: the keys
 * come from each command's getopt table. */
static const char *const no_config[] = {"broker", "generate"};

/* Options that are no key: they act on this run only. */
static const char *const not_keys[] = {"help", "version", "config",
                                       "print-config"};

static const struct cs_config_cmd *commands;
static size_t ncommands;

static struct {
        int on;
        const char *opts;
        const struct option *longopts;
} probe;

int cs_config_reads(const char *cmd)
{
        size_t i;

        for (i = 0; i < CS_ARRAY_SIZE(no_config); i++)
                if (!strcmp(cmd, no_config[i]))
                        return 0;
        return 1;
}

void cs_config_set_commands(const struct cs_config_cmd *cmds, size_t n)
{
        commands = cmds;
        ncommands = n;
}

int cs_config_probing(const char *shortopts, const struct option *longopts)
{
        if (!probe.on)
                return 0;
        probe.opts = shortopts;
        probe.longopts = longopts;
        probe.on = 0;
        return 1;
}

static int is_not_key(const char *name)
{
        size_t i;

        for (i = 0; i < CS_ARRAY_SIZE(not_keys); i++)
                if (!strcmp(name, not_keys[i]))
                        return 1;
        return 0;
}

/* Whether letter c has a long name in longopts. */
static int has_long_name(const struct option *lo, int c)
{
        for (; lo->name; lo++)
                if (!lo->flag && lo->val == c)
                        return 1;
        return 0;
}

/* Returns key's has_arg among a command's options, or -1 when it is none
 * of them. A key is a long name, or the letter of an option without one. */
static int key_arg(const char *opts, const struct option *lo, const char *key)
{
        const struct option *o;
        const char *p;

        if (is_not_key(key))
                return -1;
        for (o = lo; o->name; o++)
                if (!strcmp(o->name, key))
                        return o->has_arg;
        if (!isalnum((unsigned char)key[0]) || key[1] ||
            !(p = strchr(opts, key[0])) || has_long_name(lo, key[0]))
                return -1;
        return p[1] != ':'   ? no_argument
               : p[2] == ':' ? optional_argument
                             : required_argument;
}

/* key_arg for a probed table, which lacks the options cs_cli_getopt adds
 * to every command's (cli.c): -v/--verbose and -q/--quiet. */
static int probed_key_arg(const char *opts, const struct option *lo,
                          const char *key)
{
        if (!strcmp(key, "verbose") || !strcmp(key, "quiet"))
                return no_argument;
        return key_arg(opts, lo, key);
}

/* Runs command i in probe mode once to learn its options; 0 if it has
 * none we could learn. */
static int probe_command(size_t i, const char **opts,
                         const struct option **longopts)
{
        static struct {
                int done;
                const char *opts;
                const struct option *longopts;
        } seen[32];
        char name[64], action[] = "list";
        char *av[] = {name, action, NULL};
        int save_optind = optind, save_opterr = opterr, save_optopt = optopt;
        char *save_optarg = optarg;

        if (i >= CS_ARRAY_SIZE(seen) || !cs_config_reads(commands[i].name))
                return 0;
        if (!seen[i].done) {
                /* "list": offsets reads its action before its options;
                 * every other command meets cs_cli_getopt first. */
                snprintf(name, sizeof(name), "%s", commands[i].name);
                probe.on = 1;
                probe.opts = NULL;
                probe.longopts = NULL;
                (void)commands[i].run(2, av);
                probe.on = 0;
                optind = save_optind;
                opterr = save_opterr;
                optopt = save_optopt;
                optarg = save_optarg;
                seen[i].done = 1;
                seen[i].opts = probe.opts;
                seen[i].longopts = probe.longopts;
        }
        *opts = seen[i].opts;
        *longopts = seen[i].longopts;
        return *longopts != NULL;
}

static long find_command(const char *name)
{
        size_t i;

        for (i = 0; i < ncommands; i++)
                if (!strcmp(commands[i].name, name) &&
                    cs_config_reads(commands[i].name))
                        return (long)i;
        return -1;
}

/* Whether a command other than cmd has option key. */
static int known_elsewhere(const char *cmd, const char *key)
{
        const struct option *lo;
        const char *opts;
        size_t i;

        for (i = 0; i < ncommands; i++)
                if (strcmp(commands[i].name, cmd) &&
                    probe_command(i, &opts, &lo) && key_arg(opts, lo, key) >= 0)
                        return 1;
        return 0;
}

static int add(struct cs_config *cfg, const char *key, const char *value,
               int truth, enum layer layer, const char *origin)
{
        struct entry *e;

        if (cfg->n == cfg->cap) {
                size_t cap = cfg->cap ? cfg->cap * 2 : 16;

                e = realloc(cfg->e, cap * sizeof(*e));
                if (!e)
                        return -1;
                cfg->e = e;
                cfg->cap = cap;
        }
        e = &cfg->e[cfg->n];
        e->key = strdup(key);
        e->value = value ? strdup(value) : NULL;
        e->origin = strdup(origin);
        e->truth = truth;
        e->layer = layer;
        if (!e->key || (value && !e->value) || !e->origin) {
                free(e->key);
                free(e->value);
                free(e->origin);
                return -1;
        }
        cfg->n++;
        return 0;
}

/* Parses a boolean: 1, 0, or -1 when it is none. */
static int parse_bool(const char *s)
{
        static const char *const t[] = {"true", "yes", "on", "1"};
        static const char *const f[] = {"false", "no", "off", "0"};
        size_t i;

        for (i = 0; i < CS_ARRAY_SIZE(t); i++) {
                if (!strcasecmp(s, t[i]))
                        return 1;
                if (!strcasecmp(s, f[i]))
                        return 0;
        }
        return -1;
}

/* Adds key's value from a file or the environment, checked against its
 * kind; where names the origin for the error. */
static int add_value(struct cs_config *cfg, const char *key, int has_arg,
                     const char *value, enum layer layer, const char *where)
{
        int b;

        if (has_arg == no_argument) {
                if ((b = parse_bool(value)) < 0) {
                        cs_cli_usage_error(cfg->cmd,
                                           "%s: invalid %s '%s': expected "
                                           "true or false",
                                           where, key, value);
                        return -1;
                }
                return add(cfg, key, NULL, b, layer, where);
        }
        if (!*value && has_arg == required_argument) {
                cs_cli_usage_error(cfg->cmd, "%s: %s needs a value", where,
                                   key);
                return -1;
        }
        return add(cfg, key, value, 1, layer, where);
}

static char *trim(char *s)
{
        char *end = s + strlen(s);

        while (isspace((unsigned char)*s))
                s++;
        while (end > s && isspace((unsigned char)end[-1]))
                *--end = '\0';
        return s;
}

/* Checks a key of another command's [section]. */
static int check_other(struct cs_config *cfg, long i, const char *key,
                       const char *where)
{
        const struct option *lo;
        const char *opts;

        if (i < 0 || !probe_command((size_t)i, &opts, &lo) ||
            probed_key_arg(opts, lo, key) >= 0)
                return 0;
        cs_cli_usage_error(cfg->cmd,
                           "%s: unknown key '%s' (callstream %s has no "
                           "such option)",
                           where, key, commands[i].name);
        return -1;
}

static int read_file(struct cs_config *cfg, const char *path)
{
        FILE *f = fopen(path, "r");
        char *line = NULL, *key, *value, *eq, where[1024];
        const char *section = NULL; /* NULL: above every section */
        char section_buf[64];
        long other = -1;
        size_t cap = 0;
        int lineno = 0, arg, rc = -1;

        if (!f) {
                cs_cli_usage_error(cfg->cmd, "cannot read --config %s: %s",
                                   path, strerror(errno));
                return -1;
        }
        while (getline(&line, &cap, f) != -1) {
                lineno++;
                snprintf(where, sizeof(where), "%s:%d", path, lineno);
                key = trim(line);
                /* A # starts a comment only at the start of a line: a
                 * value (a password) may hold one. */
                if (!*key || *key == '#')
                        continue;
                if (*key == '[') {
                        size_t n = strlen(key);

                        if (key[n - 1] != ']' || n < 3 ||
                            n - 2 >= sizeof(section_buf)) {
                                cs_cli_usage_error(cfg->cmd,
                                                   "%s: expected [command]",
                                                   where);
                                goto fail;
                        }
                        memcpy(section_buf, key + 1, n - 2);
                        section_buf[n - 2] = '\0';
                        section = trim(section_buf);
                        other = find_command(section);
                        if (ncommands && other < 0 &&
                            strcmp(section, cfg->cmd)) {
                                cs_cli_usage_error(cfg->cmd,
                                                   "%s: unknown section "
                                                   "[%s]: expected a "
                                                   "command name",
                                                   where, section);
                                goto fail;
                        }
                        continue;
                }
                if (!(eq = strchr(key, '='))) {
                        cs_cli_usage_error(cfg->cmd, "%s: expected key = value",
                                           where);
                        goto fail;
                }
                *eq = '\0';
                value = trim(eq + 1);
                key = trim(key);
                if (section && strcmp(section, cfg->cmd)) {
                        if (check_other(cfg, other, key, where) < 0)
                                goto fail;
                        continue;
                }
                arg = key_arg(cfg->opts, cfg->longopts, key);
                if (arg < 0 && is_not_key(key)) {
                        cs_cli_usage_error(cfg->cmd,
                                           "%s: '%s' cannot be set in a "
                                           "file",
                                           where, key);
                        goto fail;
                }
                if (arg < 0 && !section && known_elsewhere(cfg->cmd, key))
                        continue;
                if (arg < 0) {
                        cs_cli_usage_error(cfg->cmd, "%s: unknown key '%s'",
                                           where, key);
                        goto fail;
                }
                if (add_value(cfg, key, arg, value,
                              section ? L_SECTION : L_FILE, where) < 0)
                        goto fail;
        }
        if (ferror(f)) {
                cs_cli_usage_error(cfg->cmd, "cannot read --config %s: %s",
                                   path, strerror(errno));
                goto fail;
        }
        rc = 0;
fail:
        free(line);
        fclose(f);
        return rc;
}

/* "batch-max-records" -> "CALLSTREAM_BATCH_MAX_RECORDS". */
static void env_name(const char *key, char *out, size_t size)
{
        size_t i, n = (size_t)snprintf(out, size, "CALLSTREAM_%s", key);

        for (i = 11; i < n && i < size; i++)
                out[i] = out[i] == '-' ? '_'
                                       : (char)toupper((unsigned char)out[i]);
}

/* One key from the environment: a value per line, so that a repeatable
 * option can be given more than once. An empty variable is unset. */
static int env_key(struct cs_config *cfg, const char *key, int has_arg)
{
        char name[128], *copy, *line, *save = NULL;
        const char *v;
        int rc = 0;

        env_name(key, name, sizeof(name));
        if (!(v = getenv(name)) || !*v)
                return 0;
        if (!(copy = strdup(v)))
                return -1;
        for (line = strtok_r(copy, "\n", &save); line && rc == 0;
             line = strtok_r(NULL, "\n", &save))
                rc = add_value(cfg, key, has_arg, line, L_ENV, name);
        free(copy);
        return rc;
}

/* The command's keys in table order, then its letters; f returns < 0 to
 * stop. */
static int each_key(const struct cs_config *cfg,
                    int (*f)(const struct cs_config *, const char *, int,
                             void *),
                    void *arg)
{
        const struct option *o;
        const char *p;
        char letter[2] = "";
        int rc;

        for (o = cfg->longopts; o->name; o++)
                if (!is_not_key(o->name) &&
                    (rc = f(cfg, o->name, o->has_arg, arg)) < 0)
                        return rc;
        for (p = cfg->opts; *p; p++) {
                letter[0] = *p;
                if (isalnum((unsigned char)*p) &&
                    key_arg(cfg->opts, cfg->longopts, letter) >= 0 &&
                    (rc = f(cfg, letter,
                            key_arg(cfg->opts, cfg->longopts, letter), arg)) <
                            0)
                        return rc;
        }
        return 0;
}

static int env_each(const struct cs_config *cfg, const char *key, int has_arg,
                    void *arg)
{
        (void)arg;
        return env_key((struct cs_config *)cfg, key, has_arg);
}

static int env_matches(const struct cs_config *cfg, const char *key,
                       int has_arg, void *arg)
{
        char name[128];

        (void)cfg;
        (void)has_arg;
        env_name(key, name, sizeof(name));
        return strcmp(name, arg) ? 0 : -1;
}

/* Notes the CALLSTREAM_ names that are no option of this command (another
 * command's, or the tests' CALLSTREAM_BIN): ignored, listed by
 * --print-config, where a misspelt name shows. */
static int env_ignored(struct cs_config *cfg)
{
        char **env, name[128], **grown;
        size_t n;

        for (env = environ; env && *env; env++) {
                if (strncmp(*env, "CALLSTREAM_", 11))
                        continue;
                n = strcspn(*env, "=");
                if (n >= sizeof(name))
                        n = sizeof(name) - 1;
                memcpy(name, *env, n);
                name[n] = '\0';
                if (!strcmp(name, "CALLSTREAM_CONFIG") ||
                    each_key(cfg, env_matches, name) < 0)
                        continue;
                grown = realloc(cfg->ignored,
                                (cfg->nignored + 1) * sizeof(*grown));
                if (!grown)
                        return -1;
                cfg->ignored = grown;
                if (!(cfg->ignored[cfg->nignored] = strdup(name)))
                        return -1;
                cfg->nignored++;
        }
        return 0;
}

/* The highest layer that sets key. */
static enum layer top_layer(const struct cs_config *cfg, const char *key)
{
        enum layer top = 0;
        size_t i;

        for (i = 0; i < cfg->n; i++)
                if (!strcmp(cfg->e[i].key, key) && cfg->e[i].layer > top)
                        top = cfg->e[i].layer;
        return top;
}

static int push(struct cs_config *cfg, char *arg, const char *origin)
{
        char **argv, **origins;

        argv = realloc(cfg->argv, (size_t)(cfg->argc + 2) * sizeof(*argv));
        if (argv)
                cfg->argv = argv;
        origins = realloc(cfg->origins,
                          (size_t)(cfg->argc + 2) * sizeof(*origins));
        if (origins)
                cfg->origins = origins;
        if (!arg || !argv || !origins) {
                free(arg);
                return -1;
        }
        cfg->argv[cfg->argc] = arg;
        cfg->origins[cfg->argc++] = (char *)origin;
        cfg->argv[cfg->argc] = NULL;
        return 0;
}

/* The environment's and the file's winning entries as options. */
static int build_argv(struct cs_config *cfg)
{
        size_t i;
        char *arg;

        if (push(cfg, strdup(cfg->cmd), "") < 0)
                return -1;
        for (i = 0; i < cfg->n; i++) {
                struct entry *e = &cfg->e[i];
                int letter = !e->key[1];

                if (e->layer == L_FLAG || e->layer != top_layer(cfg, e->key) ||
                    !e->truth)
                        continue;
                if (!e->value) {
                        if (asprintf(&arg, "-%s%s", letter ? "" : "-", e->key) <
                            0)
                                return -1;
                        if (push(cfg, arg, e->origin) < 0)
                                return -1;
                } else if (letter) {
                        if (asprintf(&arg, "-%s", e->key) < 0 ||
                            push(cfg, arg, e->origin) < 0 ||
                            push(cfg, strdup(e->value), e->origin) < 0)
                                return -1;
                } else {
                        if (asprintf(&arg, "--%s=%s", e->key, e->value) < 0)
                                return -1;
                        if (push(cfg, arg, e->origin) < 0)
                                return -1;
                }
        }
        return 0;
}

int cs_config_build(const char *cmd, int argc, char **argv, const char *opts,
                    const struct option *longopts, struct cs_config **cfgp)
{
        struct cs_config *cfg = calloc(1, sizeof(*cfg));
        const char *file = NULL;
        char letter[2] = "";
        int c, idx, skip = 0;

        *cfgp = NULL;
        if (!cfg)
                goto oom;
        cfg->cmd = cmd;
        cfg->opts = opts;
        cfg->longopts = longopts;

        /* The command line first, to know the keys it sets and whether
         * there is a file; its errors are left to the command's own pass. */
        optind = 0;
        opterr = 0;
        for (;;) {
                const char *key;

                idx = -1;
                c = getopt_long(argc, argv, opts, longopts, &idx);
                if (c == -1)
                        break;
                if (c == '?' || c == ':')
                        continue;
                if (c == CS_CONFIG_OPT_FILE) {
                        file = optarg;
                        continue;
                }
                if (c == CS_CONFIG_OPT_PRINT) {
                        cfg->print = 1;
                        continue;
                }
                if (idx >= 0) {
                        key = longopts[idx].name;
                } else {
                        const struct option *o;

                        letter[0] = (char)c;
                        key = letter;
                        for (o = longopts; o->name; o++)
                                if (!o->flag && o->val == c)
                                        key = o->name;
                }
                if (is_not_key(key)) {
                        skip = 1; /* --help, --version: nothing to read */
                        continue;
                }
                if (add(cfg, key, optarg, 1, L_FLAG, "command line") < 0)
                        goto oom;
        }
        optind = 0;

        if (!skip) {
                if (!file && (file = getenv("CALLSTREAM_CONFIG")) && !*file)
                        file = NULL;
                if (file) {
                        if (!(cfg->file = strdup(file)))
                                goto oom;
                        if (read_file(cfg, file) < 0)
                                goto fail;
                }
                if (each_key(cfg, env_each, NULL) < 0)
                        goto fail;
                if (env_ignored(cfg) < 0)
                        goto oom;
        }
        if (build_argv(cfg) < 0)
                goto oom;
        *cfgp = cfg;
        return 0;
oom:
        cs_cli_usage_error(cmd, "out of memory reading the configuration");
fail:
        cs_config_destroy(cfg);
        return -1;
}

int cs_config_argc(const struct cs_config *cfg)
{
        return cfg->argc;
}

char **cs_config_argv(const struct cs_config *cfg)
{
        return cfg->argv;
}

const char *cs_config_origin(const struct cs_config *cfg, int i)
{
        return i > 0 && i < cfg->argc ? cfg->origins[i] : NULL;
}

int cs_config_print_wanted(const struct cs_config *cfg)
{
        return cfg->print;
}

/* Whether s[0..n) contains "password" or "secret", in any case. */
static int names_secret(const char *s, size_t n)
{
        size_t i;

        for (i = 0; i < n; i++)
                if ((n - i >= 8 && !strncasecmp(s + i, "password", 8)) ||
                    (n - i >= 6 && !strncasecmp(s + i, "secret", 6)))
                        return 1;
        return 0;
}

static void put(char *out, size_t size, size_t *len, const char *s, size_t n)
{
        while (n-- > 0 && *len + 1 < size)
                out[(*len)++] = *s++;
        out[*len < size ? *len : size - 1] = '\0';
}

static int name_char(char c)
{
        return isalnum((unsigned char)c) || c == '_' || c == '.' || c == '-';
}

void cs_config_mask(const char *key, const char *value, char *out,
                    size_t out_size)
{
        const char *p = value, *scheme, *name;
        size_t len = 0;

        if (!out_size)
                return;
        out[0] = '\0';
        if (key && names_secret(key, strlen(key))) {
                put(out, out_size, &len, "****", 4);
                return;
        }
        /* scheme://user:PASSWORD@host */
        if ((scheme = strstr(value, "://"))) {
                const char *auth = scheme + 3, *at = NULL, *colon;
                size_t i, n = strcspn(auth, "/?#");

                for (i = 0; i < n; i++)
                        if (auth[i] == '@')
                                at = auth + i;
                colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
                if (colon) {
                        put(out, out_size, &len, value,
                            (size_t)(colon + 1 - value));
                        put(out, out_size, &len, "****", 4);
                        p = at;
                }
        }
        /* name=VALUE pairs whose name says secret. */
        while (*p) {
                const char *q;
                char quote;

                if (!name_char(*p) || (p > value && name_char(p[-1]))) {
                        put(out, out_size, &len, p++, 1);
                        continue;
                }
                name = p;
                while (name_char(*p))
                        p++;
                q = p;
                while (*q == ' ' || *q == '\t')
                        q++;
                if (*q != '=' || !names_secret(name, (size_t)(p - name))) {
                        put(out, out_size, &len, name, (size_t)(p - name));
                        continue;
                }
                q++;
                while (*q == ' ' || *q == '\t')
                        q++;
                put(out, out_size, &len, name, (size_t)(q - name));
                quote = *q == '\'' || *q == '"' ? *q : '\0';
                if (quote) {
                        /* libpq and JAAS quote a value with spaces. */
                        for (q++; *q && *q != quote; q++)
                                if (*q == '\\' && q[1])
                                        q++;
                        put(out, out_size, &len, &quote, 1);
                        put(out, out_size, &len, "****", 4);
                        put(out, out_size, &len, &quote, 1);
                        p = *q ? q + 1 : q;
                } else if (name == value) {
                        /* -X name=value: the rest is the value. */
                        put(out, out_size, &len, "****", 4);
                        p = q + strlen(q);
                } else {
                        put(out, out_size, &len, "****", 4);
                        p = q + strcspn(q, " \t&;");
                }
        }
}

struct print_ctx {
        FILE *out;
};

static int print_key(const struct cs_config *cfg, const char *key, int has_arg,
                     void *arg)
{
        struct print_ctx *pc = arg;
        enum layer top = top_layer(cfg, key);
        char masked[1024], line[1200];
        size_t i;

        (void)has_arg;
        if (!top) {
                fprintf(pc->out, "# %s: not set (default)\n", key);
                return 0;
        }
        for (i = 0; i < cfg->n; i++) {
                const struct entry *e = &cfg->e[i];

                if (strcmp(e->key, key) || e->layer != top)
                        continue;
                if (e->value)
                        cs_config_mask(key, e->value, masked, sizeof(masked));
                snprintf(line, sizeof(line), "%s = %s", key,
                         e->value   ? masked
                         : e->truth ? "true"
                                    : "false");
                fprintf(pc->out, "%-39s # %s\n", line, e->origin);
        }
        return 0;
}

void cs_config_print(const struct cs_config *cfg, FILE *out)
{
        struct print_ctx pc = {out};
        size_t i;

        fprintf(out,
                "# callstream %s: effective configuration\n"
                "# (command line > environment > %s > defaults)\n",
                cfg->cmd, cfg->file ? cfg->file : "no --config file");
        (void)each_key(cfg, print_key, &pc);
        for (i = 0; i < cfg->nignored; i++)
                fprintf(out, "# ignored: %s (no option of callstream %s)\n",
                        cfg->ignored[i], cfg->cmd);
}

void cs_config_destroy(struct cs_config *cfg)
{
        size_t i;
        int j;

        if (!cfg)
                return;
        for (i = 0; i < cfg->n; i++) {
                free(cfg->e[i].key);
                free(cfg->e[i].value);
                free(cfg->e[i].origin);
        }
        for (j = 0; j < cfg->argc; j++)
                free(cfg->argv[j]);
        for (i = 0; i < cfg->nignored; i++)
                free(cfg->ignored[i]);
        free(cfg->e);
        free(cfg->argv);
        free(cfg->origins);
        free(cfg->ignored);
        free(cfg->file);
        free(cfg);
}
