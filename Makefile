# callstream: one non-recursive Makefile. `make` builds build/callstream.
#   make test    unit and end-to-end tests, closing with "N passed, N failed"
#   make demo    local broker -> generated calls -> callstream.db, top rows
#   make check   format check, -Werror build, sanitized test run
#   SAN=address,undefined make ...  builds a sanitized tree under build/san

PKGS     := rdkafka sqlite3 yajl libpq
CC       ?= cc
# CFLAGS is the caller's (optimisation, -Werror...); CS_CFLAGS always applies.
CFLAGS   ?= -O2 -g
CS_CFLAGS := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wstrict-prototypes \
            -Iinclude -Ibuild/gen
LDLIBS   += -lpthread -lm
PREFIX   ?= /usr/local

ifdef SAN
B        := build/san
CS_CFLAGS += -fsanitize=$(SAN) -fno-omit-frame-pointer
LDFLAGS  += -fsanitize=$(SAN)
else
B        := build
endif

# Dependencies are checked when building, not when cleaning.
ifneq ($(filter-out clean deps,$(MAKECMDGOALS)),)
NEED_DEPS := 1
endif
ifeq ($(MAKECMDGOALS),)
NEED_DEPS := 1
endif
ifdef NEED_DEPS
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
endif
CS_CFLAGS += $(PKG_CFLAGS)

MODULES  := $(wildcard ingest/*.c)
TOOLS    := $(wildcard tools/*.c)
SQL      := $(sort $(wildcard migrations/*/*.sql sql/*/*.sql))
GEN_SQL  := $(B)/gen/sql_embed.c

OBJ      := $(MODULES:%.c=$(B)/%.o) $(TOOLS:%.c=$(B)/%.o) $(GEN_SQL:.c=.o)
BIN      := $(B)/callstream

.PHONY: all test demo bench check fuzz format install clean deps
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

# Unit tests link only the modules they test.
TEST_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)
$(B)/tests/test_parse:  $(B)/tests/test_parse.o $(B)/ingest/parse.o $(B)/ingest/log.o
$(B)/tests/test_window: $(B)/tests/test_window.o $(B)/ingest/window.o \
	$(B)/ingest/arena.o
$(B)/tests/test_dedup:  $(B)/tests/test_dedup.o $(B)/ingest/dedup.o \
	$(B)/ingest/window.o $(B)/ingest/arena.o
$(B)/tests/test_migrate: $(B)/tests/test_migrate.o $(B)/ingest/migrate.o \
	$(B)/ingest/sink.o $(B)/ingest/sink_sqlite.o $(B)/ingest/sink_pg.o \
	$(B)/ingest/log.o \
	$(B)/ingest/parse.o $(B)/ingest/window.o $(B)/ingest/batch.o \
	$(B)/ingest/dedup.o $(B)/ingest/arena.o $(GEN_SQL:.c=.o)
$(B)/tests/test_generate: $(B)/tests/test_generate.o $(B)/tools/generate.o \
	$(B)/tools/cli.o $(B)/ingest/parse.o $(B)/ingest/log.o \
	$(B)/ingest/window.o $(B)/ingest/arena.o
$(B)/tests/test_jsonsplit: $(B)/tests/test_jsonsplit.o $(B)/ingest/jsonsplit.o
$(B)/tests/test_e2e:    $(B)/tests/test_e2e.o $(B)/tests/harness.o $(B)/tests/model.o
$(B)/tests/test_e2e: TEST_LIBS += $(shell pkg-config --libs jansson sqlite3 2>/dev/null)
$(B)/tests/test_pg:     $(B)/tests/test_pg.o $(B)/tests/harness.o $(B)/tests/pgutil.o
$(B)/tests/test_pg: TEST_LIBS += $(shell pkg-config --libs sqlite3 libpq 2>/dev/null)
$(B)/tests/test_eventtime: $(B)/tests/test_eventtime.o $(B)/tests/harness.o $(B)/tests/model.o $(B)/tests/pgutil.o
$(B)/tests/test_eventtime: TEST_LIBS += $(shell pkg-config --libs jansson sqlite3 libpq 2>/dev/null)
$(B)/tests/test_views: $(B)/tests/test_views.o $(B)/tests/harness.o $(B)/tests/model.o $(B)/tests/pgutil.o
$(B)/tests/test_views: TEST_LIBS += $(shell pkg-config --libs jansson sqlite3 libpq 2>/dev/null)
$(B)/tests/test_features: $(B)/tests/test_features.o $(B)/tests/harness.o $(B)/tests/model.o $(B)/tests/pgutil.o
$(B)/tests/test_features: TEST_LIBS += $(shell pkg-config --libs jansson sqlite3 libpq 2>/dev/null)

UNIT_TESTS := $(patsubst tests/%.c,$(B)/tests/%,$(wildcard tests/test_*.c))
$(B)/tests/test_parse: TEST_LIBS += $(shell pkg-config --libs jansson 2>/dev/null)
$(UNIT_TESTS):
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(TEST_LIBS) $(LDLIBS)

test: deps $(BIN) $(UNIT_TESTS)
	@sh tests/run.sh $(B) $(UNIT_TESTS)

demo: deps $(BIN)
	@sh scripts/demo.sh $(BIN)

bench: deps $(BIN)
	@sh scripts/bench.sh $(BIN)

deps:
	@sh scripts/install-deps.sh

# The parser under libFuzzer, differential against jansson (clang needed):
#   make fuzz FUZZ_SECONDS=300
FUZZ_SECONDS ?= 60
fuzz: deps $(GEN_SQL)
	@mkdir -p build/fuzz/corpus
	clang -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 -D_GNU_SOURCE \
		-Iinclude $(PKG_CFLAGS) tests/fuzz/fuzz_parse.c ingest/parse.c \
		ingest/log.c -o build/fuzz/fuzz_parse \
		$(shell pkg-config --libs yajl jansson 2>/dev/null)
	build/fuzz/fuzz_parse build/fuzz/corpus -max_total_time=$(FUZZ_SECONDS) \
		-max_len=4096

format:
	clang-format -i include/*.h ingest/*.c tools/*.c tests/*.c tests/*.h tests/fuzz/*.c

check: deps
	@clang-format --dry-run --Werror include/*.h ingest/*.c tools/*.c tests/*.c tests/*.h tests/fuzz/*.c
	$(MAKE) clean-objs
	$(MAKE) CFLAGS="-O1 -g -Werror" all
	SAN=address,undefined $(MAKE) CFLAGS="-O1 -g" test

clean-objs:
	rm -rf build/ingest build/tools build/tests build/gen

install: $(BIN)
	install -D -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/callstream

clean:
	rm -rf build

-include $(wildcard $(B)/*/*.d)
