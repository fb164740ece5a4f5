# callstream: one non-recursive Makefile. `make` builds build/callstream.
# (demo, test, bench, check and fuzz install their packages, then run make
# again, only so that pkg-config sees them.)
#   make test    unit and end-to-end tests, closing with "N passed, N failed"
#   make demo    local broker -> generated calls -> build/callstream.db
#   make check   format check, -Werror build, sanitized test run
#   SAN=address,undefined make ...  builds a sanitized tree under build/san

PKGS     := rdkafka sqlite3 yajl libpq libmicrohttpd avro-c
CC       ?= cc
# CFLAGS is the caller's (optimisation, -Werror...); CS_CFLAGS always applies.
CFLAGS   ?= -O2 -g
CS_CFLAGS := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wstrict-prototypes \
            -Iinclude -Ibuild/gen
LDLIBS   += -lpthread -lm
PREFIX   ?= /usr/local
BINDIR   ?= $(PREFIX)/bin
MANDIR   ?= $(PREFIX)/share/man
# Debian's layout under /usr: the configuration in /etc/callstream.
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR  ?= $(PREFIX)/lib/systemd/system

ifdef SAN
B        := build/san
CS_CFLAGS += -fsanitize=$(SAN) -fno-omit-frame-pointer
LDFLAGS  += -fsanitize=$(SAN)
else
B        := build
endif

# pkg-config runs when the Makefile is read, so the targets that install
# packages first (demo, test, bench, check, fuzz) re-run make for the build
# once the packages exist.
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CS_CFLAGS += $(PKG_CFLAGS)

MODULES  := $(wildcard ingest/*.c)
TOOLS    := $(wildcard tools/*.c)
SQL      := $(sort $(wildcard migrations/*/*.sql sql/*/*.sql))
GEN_SQL  := $(B)/gen/sql_embed.c

OBJ      := $(MODULES:%.c=$(B)/%.o) $(TOOLS:%.c=$(B)/%.o) $(GEN_SQL:.c=.o)
BIN      := $(B)/callstream

.PHONY: all test run-tests reliability run-reliability demo report-screenshot bench check fuzz fuzz-run format install \
	uninstall man clean clean-objs deps
all: $(BIN)

$(BIN): $(OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(LDLIBS)

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CS_CFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

$(GEN_SQL): scripts/embed-sql.sh $(SQL)
	@mkdir -p $(dir $@)
	sh scripts/embed-sql.sh $(SQL) > $@.tmp && mv $@.tmp $@

$(GEN_SQL:.c=.o): $(GEN_SQL)
	$(CC) $(CS_CFLAGS) $(CFLAGS) -c -o $@ $<

# Every test links one library of the modules, plus the test helpers.
LIB      := $(B)/libcallstream.a
LIB_OBJ  := $(filter-out $(B)/tools/main.o,$(OBJ))
$(LIB): $(LIB_OBJ)
	rm -f $@ && $(AR) rcs $@ $^

TEST_HELPERS := $(B)/tests/harness.o $(B)/tests/model.o $(B)/tests/pgutil.o \
	$(B)/tests/features.o $(B)/tests/eventtime.o $(B)/tests/avroref.o
TEST_LIBS := $(shell pkg-config --libs cmocka jansson 2>/dev/null)
UNIT_TESTS := $(patsubst tests/%.c,$(B)/tests/%,$(wildcard tests/test_*.c))
$(UNIT_TESTS): $(B)/tests/%: $(B)/tests/%.o $(TEST_HELPERS) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(TEST_LIBS) $(LDLIBS)

# Faults injected from outside, compared with an uninterrupted run; minutes,
# not part of `make test` (tests/reliability.c says what it runs).
$(B)/tests/reliability: $(B)/tests/reliability.o $(TEST_HELPERS) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(TEST_LIBS) $(LDLIBS)

reliability:
	@sh scripts/install-deps.sh test
	@$(MAKE) --no-print-directory run-reliability

run-reliability: $(BIN) $(B)/tests/reliability
	@CALLSTREAM_BIN=$(CURDIR)/$(BIN) CALLSTREAM_DATA=$(CURDIR)/tests/data \
		$(B)/tests/reliability

test:
	@sh scripts/install-deps.sh test
	@$(MAKE) --no-print-directory run-tests

run-tests: $(BIN) $(UNIT_TESTS)
	@sh tests/run.sh $(B) $(UNIT_TESTS)

demo:
	@sh scripts/install-deps.sh demo
	@$(MAKE) --no-print-directory $(BIN)
	@sh scripts/demo.sh $(BIN)
	@$(BIN) report --db build/callstream.db --window 1h --last 12h --top 8 \
		--format html --out build/report.html -q
	@echo "== the standard report: open build/report.html in a browser"
	@echo "   (callstream report --help for CSV, JSON, Markdown and the views)"

# docs/report.png, the README's picture of the demo's report page.
report-screenshot:
	@sh scripts/install-deps.sh screenshot
	@$(MAKE) --no-print-directory demo
	@sh scripts/report-screenshot.sh build/report.html docs/report.png

# Throughput, peak memory and freshness against their anchors (kcat,
# sqlite3 .import, COPY); minutes, never part of `make test`. BENCH_RUNS and
# BENCH_COUNT shorten a run (scripts/bench.sh says what it measures). Then
# the table of --max-rate-per-partition and --batch-max-records settings
# (scripts/bench-rates.sh).
bench:
	@sh scripts/install-deps.sh bench
	@$(MAKE) --no-print-directory $(BIN) $(B)/tests/bench_parse
	@sh scripts/bench.sh $(BIN) $(B)/tests/bench_parse $(B)/bench.json
	@sh scripts/bench-rates.sh $(BIN)
	@$(MAKE) --no-print-directory $(B)/tests/bench_avro
	@sh scripts/bench-avro.sh $(BIN) $(B)/tests/bench_avro

# The parser micro-benchmark: links the library only, no test helpers.
$(B)/tests/bench_parse: $(B)/tests/bench_parse.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(LDLIBS)

# The decoders micro-benchmark (JSON, Avro, Avro C's generic reader).
$(B)/tests/bench_avro: $(B)/tests/bench_avro.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(LDLIBS)

deps:
	@sh scripts/install-deps.sh all

# The parser under libFuzzer, its flat reader differential against yajl and
# both against jansson (clang needed):
#   make fuzz FUZZ_SECONDS=300
FUZZ_SECONDS ?= 60
fuzz:
	@sh scripts/install-deps.sh fuzz
	@$(MAKE) --no-print-directory fuzz-run

# Seeded with generated calls, malformed ones among them, so the fuzzer
# starts from the shape the flat reader takes.
fuzz-run: $(BIN)
	@mkdir -p build/fuzz/corpus
	$(BIN) generate --count 64 --seed 9 --malformed 0.3 --int-ids 0.3 | \
		split -l 1 - build/fuzz/corpus/seed-
	$(BIN) generate --count 64 --seed 9 --malformed 0.3 --format avro | \
		python3 -c 'exec("import sys\nd = sys.stdin.buffer.read()\ni = n = 0\nwhile i < len(d):\n k = int.from_bytes(d[i:i + 4], \"big\")\n open(\"build/fuzz/corpus/avro-%d\" % n, \"wb\").write(d[i + 4:i + 4 + k])\n i += 4 + k\n n += 1")'
	clang -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 -D_GNU_SOURCE \
		-Iinclude $(PKG_CFLAGS) tests/fuzz/fuzz_parse.c \
		tests/avroref.c ingest/parse.c ingest/avro.c ingest/time.c \
		ingest/log.c -o build/fuzz/fuzz_parse \
		$(shell pkg-config --libs yajl jansson avro-c 2>/dev/null)
	ASAN_OPTIONS=allocator_may_return_null=1 \
		build/fuzz/fuzz_parse \
		build/fuzz/corpus -max_total_time=$(FUZZ_SECONDS) -max_len=4096

format:
	clang-format -i include/*.h ingest/*.c tools/*.c tests/*.c tests/*.h tests/fuzz/*.c

check:
	@sh scripts/install-deps.sh check
	@clang-format --dry-run --Werror include/*.h ingest/*.c tools/*.c tests/*.c tests/*.h tests/fuzz/*.c
	$(MAKE) clean-objs
	$(MAKE) CFLAGS="-O1 -g -Werror" all
	SAN=address,undefined $(MAKE) CFLAGS="-O1 -g" test

clean-objs:
	rm -rf build/ingest build/tools build/tests build/gen

# callstream(1), from the --help of callstream and of each command
# (help2man: `make deps`), so that the page cannot drift from them.
MAN      := $(B)/callstream.1
man: $(MAN)
$(MAN): $(BIN) scripts/man.sh docs/callstream.h2m
	@command -v help2man >/dev/null || { echo "help2man is missing:" \
		"sh scripts/install-deps.sh build" >&2; exit 1; }
	@mkdir -p $(dir $@)
	sh scripts/man.sh $(BIN) docs/callstream.h2m $@

# The binary, its man page, the example configuration (every key
# commented; only root reads it, as it may hold passwords, and an edited
# one is kept) and the systemd unit, its paths made those of the install.
# The state directory (/var/lib/callstream) is systemd's to make
# (StateDirectory=): with DynamicUser=, it owns and moves it.
CONF     := $(DESTDIR)$(SYSCONFDIR)/callstream/callstream.conf
install: $(BIN) $(MAN)
	install -D -m 755 $(BIN) $(DESTDIR)$(BINDIR)/callstream
	install -D -m 644 $(MAN) $(DESTDIR)$(MANDIR)/man1/callstream.1
	install -d -m 755 $(DESTDIR)$(SYSCONFDIR)/callstream
	@if [ -e $(CONF) ]; then echo "kept $(CONF)"; else \
		echo "install -m 600 contrib/callstream.conf $(CONF)"; \
		install -m 600 contrib/callstream.conf $(CONF); fi
	install -d -m 755 $(DESTDIR)$(UNITDIR)
	sed -e 's|/usr/bin/|$(BINDIR)/|g' \
		-e 's|/etc/callstream/|$(SYSCONFDIR)/callstream/|g' \
		contrib/systemd/callstream.service \
		> $(DESTDIR)$(UNITDIR)/callstream.service.tmp
	chmod 644 $(DESTDIR)$(UNITDIR)/callstream.service.tmp
	mv $(DESTDIR)$(UNITDIR)/callstream.service.tmp \
		$(DESTDIR)$(UNITDIR)/callstream.service

# Removes what install put there; an edited configuration stays.
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/callstream \
		$(DESTDIR)$(MANDIR)/man1/callstream.1 \
		$(DESTDIR)$(UNITDIR)/callstream.service
	@if [ -e $(CONF) ] && ! cmp -s contrib/callstream.conf $(CONF); then \
		echo "kept $(CONF) (edited)"; else rm -f $(CONF); \
		rmdir $(DESTDIR)$(SYSCONFDIR)/callstream 2>/dev/null || :; fi

clean:
	rm -rf build

-include $(wildcard $(B)/*/*.d)
