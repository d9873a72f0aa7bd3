# esfold - event sourcing and CQRS persistence for C.
#
#   make            the library, the esfold command and the samples
#   make demo       the bank and auction samples end to end on SQLite
#   make test       the whole test suite (SANITIZE=1: under ASan + UBSan;
#                   VALGRIND=1: the core and CLI tests under valgrind)
#   make fuzz       libFuzzer on the codec, time and append parsers, with
#                   clang from scripts/deps.sh fuzz (FUZZ_SECONDS=60 per
#                   target; docs/testing.md)
#   make bench      the benchmarks, as ratios against raw limits
#   make install    into $(PREFIX) (default /usr/local), with esfold.pc
#   make clean
#
# `make demo`, `make test`, `make bench` (and `make soak`, `make demo-kafka`)
# first run scripts/deps.sh, which installs the Debian packages esfold
# needs when they are missing (flags are read from pkg-config lazily, after
# it). A plain `make` or `make install` never runs apt-get: it builds with
# what is installed.
#
# Your CFLAGS, CPPFLAGS, LDFLAGS and LDLIBS are added to esfold's own
# (ESFOLD_CFLAGS, ESFOLD_LDFLAGS, ESFOLD_LIBS), after them, so that yours
# win where they conflict: `make CFLAGS=-O0`, `make LDFLAGS=-Wl,-z,now`.

PREFIX  ?= /usr/local
CC      ?= cc
CXX     ?= c++
# The version: include/esfold/version.h is its only source.
VERSION := $(shell sed -n 's/^\#define ES_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\)$$/\2/p' \
             include/esfold/version.h | paste -sd.)

ifeq ($(SANITIZE),1)
BUILD   ?= build/san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT     ?= -O1 -g
else
BUILD   ?= build/rel
SANFLAGS :=
OPT     ?= -O2 -g
endif

PKGS    := jansson sqlite3 rdkafka libpq
WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wno-unused-parameter
ESFOLD_CFLAGS  = -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) $(SANFLAGS) -fPIC -Iinclude -I. \
                 $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
ESFOLD_LDFLAGS = $(SANFLAGS)
ESFOLD_LIBS    = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm
# What every compile and link line uses: esfold's flags, then the user's.
ALL_CFLAGS  = $(ESFOLD_CFLAGS) $(CPPFLAGS) $(CFLAGS)
ALL_LDFLAGS = $(ESFOLD_LDFLAGS) $(LDFLAGS)
ALL_LIBS    = $(ESFOLD_LIBS) $(LDLIBS)

# --- the library: an explicit list, in the order data flows ---------------
CORE_SRCS := \
	core/version.c core/error.c core/alloc.c core/time.c core/partition.c core/uuid.c \
	core/event.c core/codec.c core/accept.c core/log.c core/aggregate.c core/upcast.c \
	core/execute.c core/repo.c core/processor.c core/map.c \
	core/streams.c

SNAPSHOT_SRCS := \
	snapshots/store.c snapshots/select.c snapshots/policy.c snapshots/repo.c

PROJECTION_SRCS := \
	projections/target.c projections/source.c projections/worker.c \
	projections/deadletter.c projections/jsonfile.c projections/assign.c \
	projections/rebuild.c projections/status.c projections/keyed.c \
	projections/wait.c

ADAPTER_SRCS := \
	adapters/log_open.c adapters/snapshot_open.c \
	adapters/sqlite/schema.c adapters/sqlite/log.c adapters/sqlite/snapshot.c \
	adapters/postgres/pg.c adapters/postgres/snapshot.c \
	adapters/target_open.c adapters/sqlite/target.c adapters/postgres/target.c \
	adapters/kafka/uri.c adapters/kafka/record.c adapters/kafka/fetch.c \
	adapters/kafka/topic.c adapters/kafka/producer.c adapters/kafka/writer.c \
	adapters/kafka/reader.c adapters/kafka/log.c adapters/kafka/group.c \
	adapters/kafka/snapshot.c

CLI_SRCS := \
	cli/cli.c cli/app.c cli/util.c cli/history.c cli/append.c cli/verify.c \
	cli/broker.c cli/topics.c cli/snapshot.c cli/streams.c cli/project.c \
	cli/rebuild.c cli/status.c

LIB_SRCS := $(CORE_SRCS) $(SNAPSHOT_SRCS) $(PROJECTION_SRCS) $(ADAPTER_SRCS) $(CLI_SRCS)
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
LIB_A    := $(BUILD)/libesfold.a
LIB_SO   := $(BUILD)/libesfold.so

ESFOLD   := $(BUILD)/esfold
BANK     := $(BUILD)/bank
AUCTION  := $(BUILD)/auction
MINIMAL  := $(BUILD)/minimal

BANK_SRCS := samples/bank/account.c samples/bank/main.c
AUCTION_SRCS := samples/auction/auction.c samples/auction/main.c
MINIMAL_SRCS := samples/minimal/counter.c samples/minimal/main.c

TESTS := test_error test_time test_partition test_event test_codec test_accept test_map test_log \
         test_aggregate test_upcast test_repo test_cli test_snapshot test_kafka \
         test_processor test_agreement test_sqlite test_auction test_projection \
         test_rebuild test_keyed test_jsonfile
TEST_BINS := $(TESTS:%=$(BUILD)/tests/%)

BENCHES := bench_sqlite bench_snapshot bench_kafka bench_projection
BENCH_BINS := $(BENCHES:%=$(BUILD)/bench/%)

HEADERS := $(wildcard include/esfold/*.h)

.PHONY: all deps demo test bench install uninstall clean headers-check fuzz fuzz-deps \
        symbols-check
all: $(LIB_A) $(LIB_SO) $(ESFOLD) $(BANK) $(AUCTION) $(MINIMAL)

deps:
	@sh scripts/deps.sh

# Only the targets that run things install what they need; with -j the
# packages must be there before the first compile, hence the order-only
# prerequisite, present only when one of those targets is asked for.
DEPS_GOALS := demo demo-kafka demo-pg test bench soak
NEED_DEPS  := $(if $(filter $(DEPS_GOALS),$(MAKECMDGOALS)),deps)

# Each object records the headers it includes (-MMD -MP, in a .d beside
# it), so that a changed header rebuilds just the objects that include it.
$(BUILD)/%.o: %.c | $(NEED_DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

$(LIB_A): $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

# esfold.map exports the public API alone: every es_ name but no es__ one.
$(LIB_SO): $(LIB_OBJS) esfold.map
	$(CC) -shared $(ALL_LDFLAGS) -Wl,-soname,libesfold.so.$(word 1,$(subst ., ,$(VERSION))) \
	  -Wl,--version-script=esfold.map -o $@ $(LIB_OBJS) $(ALL_LIBS)

$(ESFOLD): $(BUILD)/cli/main.o $(LIB_A)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(ALL_LIBS)

$(BANK): $(BANK_SRCS:%.c=$(BUILD)/%.o) $(LIB_A)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(ALL_LIBS)

$(AUCTION): $(AUCTION_SRCS:%.c=$(BUILD)/%.o) $(LIB_A)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(ALL_LIBS)

$(MINIMAL): $(MINIMAL_SRCS:%.c=$(BUILD)/%.o) $(LIB_A)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(ALL_LIBS)

# Tests link the static library; test_cli also drives the bank sample's
# aggregate through es_cli_main.
$(BUILD)/tests/%: $(BUILD)/tests/%.o $(BUILD)/tests/harness.o $(BUILD)/samples/bank/account.o $(LIB_A)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(ALL_LIBS) -lcmocka

# test_auction folds and decides the auction sample's aggregate, and runs
# its projection files into SQLite and PostgreSQL (tests/pg_harness.c).
$(BUILD)/tests/test_auction: $(BUILD)/tests/test_auction.o $(BUILD)/tests/harness.o \
		$(BUILD)/tests/pg_harness.o $(BUILD)/tests/target_harness.o \
		$(BUILD)/samples/auction/auction.o $(LIB_A)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(ALL_LIBS) -lcmocka
$(BUILD)/tests/test_auction.o: ESFOLD_CFLAGS += \
	-DAUCTION_PROJECTIONS_DIR='"$(CURDIR)/samples/auction/projections"'

# test_cli also runs the minimal sample's program (its es_app).
$(BUILD)/tests/test_cli: $(BUILD)/samples/minimal/counter.o

# The Kafka tests also start the local broker (tests/kafka_harness.c).
$(BUILD)/tests/test_kafka $(BUILD)/tests/test_agreement: $(BUILD)/tests/kafka_harness.o

# test_snapshot also starts a throwaway PostgreSQL server (tests/pg_harness.c)
# and the local Kafka broker (tests/kafka_harness.c).
$(BUILD)/tests/test_snapshot: $(BUILD)/tests/test_snapshot.o $(BUILD)/tests/harness.o \
		$(BUILD)/tests/pg_harness.o $(BUILD)/tests/kafka_harness.o \
		$(BUILD)/samples/bank/account.o $(LIB_A)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(ALL_LIBS) -lcmocka

# test_jsonfile starts PostgreSQL (tests/pg_harness.c).
$(BUILD)/tests/test_jsonfile: $(BUILD)/tests/test_jsonfile.o $(BUILD)/tests/harness.o \
		$(BUILD)/tests/pg_harness.o $(BUILD)/tests/target_harness.o $(LIB_A)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(ALL_LIBS) -lcmocka
# test_keyed starts PostgreSQL (tests/pg_harness.c) and the local Kafka
# broker (tests/kafka_harness.c).
$(BUILD)/tests/test_keyed: $(BUILD)/tests/test_keyed.o $(BUILD)/tests/harness.o \
		$(BUILD)/tests/pg_harness.o $(BUILD)/tests/target_harness.o \
		$(BUILD)/tests/kafka_harness.o $(LIB_A)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(ALL_LIBS) -lcmocka

# test_projection starts PostgreSQL and the local Kafka broker too.
$(BUILD)/tests/test_projection: $(BUILD)/tests/test_projection.o $(BUILD)/tests/harness.o \
		$(BUILD)/tests/pg_harness.o $(BUILD)/tests/target_harness.o $(BUILD)/tests/kafka_harness.o \
		$(BUILD)/samples/bank/account.o $(LIB_A)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(ALL_LIBS) -lcmocka

# test_rebuild starts PostgreSQL and the local Kafka broker too.
$(BUILD)/tests/test_rebuild: $(BUILD)/tests/test_rebuild.o $(BUILD)/tests/harness.o \
		$(BUILD)/tests/pg_harness.o $(BUILD)/tests/target_harness.o $(BUILD)/tests/kafka_harness.o \
		$(BUILD)/samples/bank/account.o $(LIB_A)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(ALL_LIBS) -lcmocka

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(BUILD)/bench/benchutil.o $(BUILD)/samples/bank/account.o $(LIB_A)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(ALL_LIBS)

# bench_projection starts its own throwaway PostgreSQL (tests/pg_harness.c)
# and the local Kafka broker (tests/kafka_harness.c: $(ESFOLD) broker).
$(BUILD)/bench/bench_projection: $(BUILD)/bench/bench_projection.o $(BUILD)/bench/benchutil.o \
		$(BUILD)/tests/pg_harness.o $(BUILD)/tests/kafka_harness.o \
		$(BUILD)/samples/bank/account.o $(LIB_A) | $(ESFOLD)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(ALL_LIBS)

# Each public header must compile alone, strictly, as C and as C++; and
# tests/cxx_headers.cpp, which uses every macro of the headers (the _INIT
# and ES_RANGE_* ones), must compile as C++11.
CXX_CHECK := -std=c++11 -Wall -Wextra -pedantic -Werror
headers-check:
	@for h in $(HEADERS); do \
	  echo "#include \"$$h\"" | $(CC) -std=c11 -Wall -Wextra -pedantic -Werror -Iinclude \
	    $(shell pkg-config --cflags jansson) -x c -fsyntax-only - || exit 1; \
	  echo "#include \"$$h\"" | $(CXX) $(CXX_CHECK) -Iinclude \
	    $(shell pkg-config --cflags jansson) -x c++ -fsyntax-only - || exit 1; \
	done; \
	$(CXX) $(CXX_CHECK) -Iinclude $(shell pkg-config --cflags jansson) \
	  -fsyntax-only tests/cxx_headers.cpp || exit 1; \
	echo "headers: $(words $(HEADERS)) compile alone with -std=c11 -pedantic -Werror" \
	  "and with $(CXX) $(CXX_CHECK); tests/cxx_headers.cpp compiles"

# libesfold.so exports the public API and nothing else: no es__ name, and
# nothing that is not es_ (the tests print what leaked); and that API is
# enough: the minimal and bank samples link against the shared library
# alone, and the minimal one runs a command through it.
SHARED_DIR := $(BUILD)/shared
symbols-check: $(LIB_SO) $(MINIMAL_SRCS:%.c=$(BUILD)/%.o) $(BANK_SRCS:%.c=$(BUILD)/%.o)
	@sh tests/symbols.sh $(LIB_SO)
	@mkdir -p $(SHARED_DIR) && ln -sf ../libesfold.so $(SHARED_DIR)/libesfold.so.0
	@$(CC) $(ALL_LDFLAGS) -o $(SHARED_DIR)/minimal $(MINIMAL_SRCS:%.c=$(BUILD)/%.o) \
	  $(LIB_SO) $(ALL_LIBS)
	@$(CC) $(ALL_LDFLAGS) -o $(SHARED_DIR)/bank $(BANK_SRCS:%.c=$(BUILD)/%.o) \
	  $(LIB_SO) $(ALL_LIBS)
	@out=$$(LD_LIBRARY_PATH=$(SHARED_DIR) $(SHARED_DIR)/minimal --log sqlite::memory: \
	  add c1 5) && [ "$$out" = "counter c1: 5 (version 1)" ] || \
	  { echo "symbols: the minimal sample does not run on libesfold.so: $$out" >&2; exit 1; }
	@echo "symbols: the minimal and bank samples link against libesfold.so alone; minimal runs"

demo: all
	@sh samples/bank/demo.sh $(BANK)
	@sh samples/auction/demo.sh $(AUCTION)
	@sh samples/minimal/demo.sh $(MINIMAL)

# The auction demo with its read models in PostgreSQL: a throwaway server
# (scripts/pg-server.sh: Debian's postgresql, initdb into a temporary
# directory, a loopback port), stopped and removed afterwards.
.PHONY: demo-pg
demo-pg: all
	@set -e; dir=$$(mktemp -d /tmp/esfold-demo-pg.XXXXXX); chmod 755 $$dir; \
	trap 'sh scripts/pg-server.sh stop '"$$dir"'' EXIT INT TERM; \
	url=$$(sh scripts/pg-server.sh start $$dir/pg); \
	printf 'PostgreSQL for the read models: %s\n' "$$url"; \
	ESFOLD_DEMO_TARGET=$$url sh samples/auction/demo.sh $(AUCTION); \
	printf '\nThe read models were in PostgreSQL (the server is stopped and removed now).\n'

# The same on Kafka: a local broker (`esfold broker`, librdkafka's mock
# cluster, in memory), the bank and auction demos and commands against it,
# then the broker is stopped. The output is that of `make demo` but for times and
# the log's URI.
.PHONY: demo-kafka
demo-kafka: all
	@set -e; addr=$(BUILD)/demo-kafka.addr; rm -f $$addr; \
	$(ESFOLD) broker > $$addr & pid=$$!; \
	trap 'kill $$pid 2>/dev/null; wait $$pid 2>/dev/null || true' EXIT INT TERM; \
	for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do \
	  [ -s $$addr ] && break; sleep 0.25; done; \
	[ -s $$addr ] || { echo "demo-kafka: the broker did not start" >&2; exit 1; }; \
	log="kafka://$$(cat $$addr)?prefix=bank."; \
	for step in "demo" "history account acct-1" "show acct-2" "verify"; do \
	  printf '\n$$ %s --log %s %s\n' "$(BANK)" "$$log" "$$step"; \
	  $(BANK) --log "$$log" $$step; \
	done; \
	log="kafka://$$(cat $$addr)?prefix=auction."; \
	for step in "demo" "history auction A --as-of 2026-03-01T10:00:00Z" "show A" "verify"; do \
	  printf '\n$$ %s --log %s %s\n' "$(AUCTION)" "$$log" "$$step"; \
	  $(AUCTION) --log "$$log" $$step; \
	done; \
	printf '\nThe demos passed on Kafka (the broker is stopped now: its log was in memory).\n'

test: all $(TEST_BINS) $(ESFOLD)
	@$(MAKE) --no-print-directory headers-check symbols-check
	@ESFOLD_TEST_WRAPPER='$(TEST_WRAPPER)' sh tests/run.sh $(BUILD) $(RUN_TESTS)

bench: all $(BENCH_BINS)
	@for b in $(BENCH_BINS); do $$b || exit 1; done

install: all
	@test -n "$(VERSION)" || { echo "install: no version in include/esfold/version.h" >&2; exit 1; }
	install -d $(DESTDIR)$(PREFIX)/include/esfold $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin
	install -m 644 $(HEADERS) $(DESTDIR)$(PREFIX)/include/esfold/
	install -m 644 $(LIB_A) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(LIB_SO) $(DESTDIR)$(PREFIX)/lib/libesfold.so.$(VERSION)
	ln -sf libesfold.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libesfold.so.0
	ln -sf libesfold.so.0 $(DESTDIR)$(PREFIX)/lib/libesfold.so
	install -m 755 $(ESFOLD) $(DESTDIR)$(PREFIX)/bin/esfold
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' esfold.pc.in \
	  > $(DESTDIR)$(PREFIX)/lib/pkgconfig/esfold.pc

uninstall:
	rm -rf $(DESTDIR)$(PREFIX)/include/esfold $(DESTDIR)$(PREFIX)/lib/libesfold.* \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig/esfold.pc $(DESTDIR)$(PREFIX)/bin/esfold

clean:
	rm -rf build

# --- soak (docs/testing.md) -----------------------------------------------
# Writer processes racing on shared streams of one SQLite file for
# SOAK_SECONDS; .ci/run runs a short form.
SOAK_SECONDS ?= 60
SOAK_WRITERS ?= 6
.PHONY: soak
soak: all $(BUILD)/tests/soak
	$(BUILD)/tests/soak --seconds $(SOAK_SECONDS) --writers $(SOAK_WRITERS)

# --- fuzzing and valgrind (docs/testing.md) --------------------------------
# Each tests/fuzz/fuzz_*.c is a libFuzzer target. `make test` links it with
# tests/fuzz/driver.c (any compiler, no libFuzzer) and replays its seed
# corpus, tests/fuzz/corpus/<target>/, next to the unit tests. `make fuzz`
# builds it with clang, libFuzzer, ASan and UBSan into build/fuzz and
# mutates for FUZZ_SECONDS per target: new inputs go to
# build/fuzz/corpus/<target>/, a crashing one to build/fuzz/<target>-crash-*
# (copy it into the seed corpus once fixed).
FUZZ_TARGETS     := fuzz_codec fuzz_time fuzz_append fuzz_sqlite_rows fuzz_snapshot \
                    fuzz_uri fuzz_cli fuzz_kafka_record
FUZZ_REPLAY_BINS := $(FUZZ_TARGETS:%=$(BUILD)/tests/fuzz/%)
FUZZ_BUILD       := build/fuzz
FUZZ_CC          ?= clang-14
FUZZ_SECONDS     ?= 60
FUZZ_SAN         := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
                    -fno-omit-frame-pointer
FUZZ_CFLAGS       = -std=c11 -D_GNU_SOURCE -O1 -g $(WARN) $(FUZZ_SAN) \
                    -fsanitize=fuzzer-no-link -Iinclude -I. \
                    $(shell pkg-config --cflags $(PKGS) 2>/dev/null)

test: $(FUZZ_REPLAY_BINS)

$(BUILD)/tests/fuzz/driver.o: tests/fuzz/driver.c | $(NEED_DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -DFUZZ_CORPUS_DIR='"$(CURDIR)/tests/fuzz/corpus"' -c -o $@ $<

$(FUZZ_REPLAY_BINS): $(BUILD)/tests/fuzz/%: $(BUILD)/tests/fuzz/%.o \
		$(BUILD)/tests/fuzz/driver.o $(BUILD)/samples/bank/account.o $(LIB_A)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(ALL_LIBS)

fuzz-deps: deps
	@sh scripts/deps.sh fuzz

$(FUZZ_BUILD)/%.o: %.c | fuzz-deps
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

-include $(shell find $(FUZZ_BUILD) -name '*.d' 2>/dev/null)

$(FUZZ_BUILD)/libesfold.a: $(LIB_SRCS:%.c=$(FUZZ_BUILD)/%.o)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_TARGETS:%=$(FUZZ_BUILD)/%): $(FUZZ_BUILD)/%: $(FUZZ_BUILD)/tests/fuzz/%.o \
		$(FUZZ_BUILD)/samples/bank/account.o $(FUZZ_BUILD)/libesfold.a
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer $(LDFLAGS) -o $@ $^ $(ALL_LIBS)

fuzz: $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/%)
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_BUILD)/corpus/$$t; \
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
	  $(FUZZ_BUILD)/$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -artifact_prefix=$(FUZZ_BUILD)/$$t- \
	    $$(test -f tests/fuzz/$$t.dict && echo -dict=tests/fuzz/$$t.dict) \
	    $(FUZZ_BUILD)/corpus/$$t tests/fuzz/corpus/$$t || exit 1; \
	done

# VALGRIND=1: the core and CLI tests on SQLite, and the corpus replays,
# under valgrind (about 25 s in all). test_snapshot (a PostgreSQL server)
# and the Kafka tests (librdkafka's threads) are left to SANITIZE=1;
# test_auction starts PostgreSQL for one case and runs clean under it.
VALGRIND_TESTS := test_error test_time test_partition test_event test_codec \
                  test_accept test_map test_log test_aggregate test_upcast test_repo test_cli \
                  test_auction
ifeq ($(VALGRIND),1)
ifeq ($(SANITIZE),1)
$(error VALGRIND=1 and SANITIZE=1 do not mix: valgrind cannot run ASan binaries)
endif
RUN_TESTS    = $(filter $(VALGRIND_TESTS),$(TESTS)) $(FUZZ_TARGETS:%=fuzz/%)
TEST_WRAPPER := valgrind -q --error-exitcode=1 --leak-check=full \
                --errors-for-leak-kinds=definite
else
RUN_TESTS    = $(TESTS) $(FUZZ_TARGETS:%=fuzz/%)
TEST_WRAPPER :=
endif

# Keep the objects of chained rules (tests/%.o): make would delete them
# as intermediates and print the rm after the test summary.
.SECONDARY:
