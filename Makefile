# esfold - event sourcing and CQRS persistence for C.
#
#   make            the library, the esfold command and the samples
#   make demo       the bank sample end to end on SQLite
#   make test       the whole test suite (SANITIZE=1: under ASan + UBSan;
#                   VALGRIND=1: the core and CLI tests under valgrind)
#   make fuzz       libFuzzer on the codec, time and append parsers, with
#                   clang from scripts/deps.sh fuzz (FUZZ_SECONDS=60 per
#                   target; docs/testing.md)
#   make bench      the benchmarks, as ratios against raw limits
#   make install    into $(PREFIX) (default /usr/local), with esfold.pc
#   make clean
#
# Every target that builds first runs scripts/deps.sh (flags are read from
# pkg-config lazily, after it), which installs the
# Debian packages esfold needs when they are missing.

PREFIX  ?= /usr/local
CC      ?= cc
VERSION := 0.1.0

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
CFLAGS  = -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) $(SANFLAGS) -fPIC -Iinclude -I. \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDFLAGS = $(SANFLAGS)
LDLIBS  = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm

# --- the library: an explicit list, in the order data flows ---------------
CORE_SRCS := \
	core/error.c core/alloc.c core/time.c core/partition.c core/uuid.c \
	core/event.c core/codec.c core/accept.c core/log.c core/aggregate.c core/upcast.c \
	core/execute.c core/repo.c core/processor.c

SNAPSHOT_SRCS := \
	snapshots/store.c snapshots/select.c snapshots/policy.c snapshots/repo.c

PROJECTION_SRCS := \
	projections/target.c projections/source.c projections/worker.c \
	projections/deadletter.c projections/jsonfile.c \
	projections/rebuild.c projections/status.c

ADAPTER_SRCS := \
	adapters/log_open.c adapters/snapshot_open.c \
	adapters/sqlite/schema.c adapters/sqlite/log.c adapters/sqlite/snapshot.c \
	adapters/postgres/pg.c adapters/postgres/snapshot.c \
	adapters/target_open.c adapters/sqlite/target.c adapters/postgres/target.c \
	adapters/kafka/uri.c adapters/kafka/codec.c adapters/kafka/log.c \
	adapters/kafka/snapshot.c

CLI_SRCS := \
	cli/cli.c cli/util.c cli/history.c cli/append.c cli/verify.c \
	cli/broker.c cli/topics.c cli/snapshot.c cli/project.c \
	cli/rebuild.c cli/status.c

LIB_SRCS := $(CORE_SRCS) $(SNAPSHOT_SRCS) $(PROJECTION_SRCS) $(ADAPTER_SRCS) $(CLI_SRCS)
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
LIB_A    := $(BUILD)/libesfold.a
LIB_SO   := $(BUILD)/libesfold.so

ESFOLD   := $(BUILD)/esfold
BANK     := $(BUILD)/bank

BANK_SRCS := samples/bank/account.c samples/bank/main.c

TESTS := test_error test_time test_partition test_event test_codec test_accept test_log \
         test_aggregate test_upcast test_repo test_cli test_snapshot test_kafka \
         test_processor test_projection test_rebuild
TEST_BINS := $(TESTS:%=$(BUILD)/tests/%)

BENCHES := bench_sqlite bench_snapshot bench_kafka
BENCH_BINS := $(BENCHES:%=$(BUILD)/bench/%)

HEADERS := $(wildcard include/esfold/*.h)

.PHONY: all deps demo test bench install uninstall clean headers-check fuzz fuzz-deps
all: deps $(LIB_A) $(LIB_SO) $(ESFOLD) $(BANK)

deps:
	@sh scripts/deps.sh

$(BUILD)/%.o: %.c $(HEADERS) $(wildcard core/*.h snapshots/*.h projections/*.h adapters/*/*.h cli/*.h samples/*/*.h tests/*.h) | deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(LIB_A): $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(LIB_SO): $(LIB_OBJS)
	$(CC) -shared $(LDFLAGS) -Wl,-soname,libesfold.so.0 -o $@ $^ $(LDLIBS)

$(ESFOLD): $(BUILD)/cli/main.o $(LIB_A)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BANK): $(BANK_SRCS:%.c=$(BUILD)/%.o) $(LIB_A)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Tests link the static library; test_cli also drives the bank sample's
# aggregate through es_cli_main.
$(BUILD)/tests/%: $(BUILD)/tests/%.o $(BUILD)/tests/harness.o $(BUILD)/samples/bank/account.o $(LIB_A)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

# The Kafka tests also start the local broker (tests/kafka_harness.c).
$(BUILD)/tests/test_kafka: $(BUILD)/tests/kafka_harness.o

# test_snapshot also starts a throwaway PostgreSQL server (tests/pg_harness.c)
# and the local Kafka broker (tests/kafka_harness.c).
$(BUILD)/tests/test_snapshot: $(BUILD)/tests/test_snapshot.o $(BUILD)/tests/harness.o \
		$(BUILD)/tests/pg_harness.o $(BUILD)/tests/kafka_harness.o \
		$(BUILD)/samples/bank/account.o $(LIB_A)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

# test_projection starts PostgreSQL and the local Kafka broker too.
$(BUILD)/tests/test_projection: $(BUILD)/tests/test_projection.o $(BUILD)/tests/harness.o \
		$(BUILD)/tests/pg_harness.o $(BUILD)/tests/kafka_harness.o \
		$(BUILD)/samples/bank/account.o $(LIB_A)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

# test_rebuild starts PostgreSQL too.
$(BUILD)/tests/test_rebuild: $(BUILD)/tests/test_rebuild.o $(BUILD)/tests/harness.o \
		$(BUILD)/tests/pg_harness.o $(BUILD)/samples/bank/account.o $(LIB_A)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(BUILD)/bench/benchutil.o $(BUILD)/samples/bank/account.o $(LIB_A)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Each public header must compile alone, strictly.
headers-check:
	@for h in $(HEADERS); do \
	  echo "#include \"$$h\"" | $(CC) -std=c11 -Wall -Wextra -pedantic -Werror -Iinclude \
	    $(shell pkg-config --cflags jansson) -x c -fsyntax-only - || exit 1; \
	done; echo "headers: $(words $(HEADERS)) compile alone with -std=c11 -pedantic -Werror"

demo: all
	@sh samples/bank/demo.sh $(BANK)

# The same on Kafka: a local broker (`esfold broker`, librdkafka's mock
# cluster, in memory), the bank demo and commands against it, then the
# broker is stopped. The output is that of `make demo` but for times and
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
	printf '\nThe demo passed on Kafka (the broker is stopped now: its log was in memory).\n'

test: all $(TEST_BINS) $(ESFOLD)
	@$(MAKE) --no-print-directory headers-check
	@ESFOLD_TEST_WRAPPER='$(TEST_WRAPPER)' sh tests/run.sh $(BUILD) $(RUN_TESTS)

bench: all $(BENCH_BINS)
	@for b in $(BENCH_BINS); do $$b || exit 1; done

install: all
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

# --- fuzzing and valgrind (docs/testing.md) --------------------------------
# Each tests/fuzz/fuzz_*.c is a libFuzzer target. `make test` links it with
# tests/fuzz/driver.c (any compiler, no libFuzzer) and replays its seed
# corpus, tests/fuzz/corpus/<target>/, next to the unit tests. `make fuzz`
# builds it with clang, libFuzzer, ASan and UBSan into build/fuzz and
# mutates for FUZZ_SECONDS per target: new inputs go to
# build/fuzz/corpus/<target>/, a crashing one to build/fuzz/<target>-crash-*
# (copy it into the seed corpus once fixed).
FUZZ_TARGETS     := fuzz_codec fuzz_time fuzz_append
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

$(FUZZ_TARGETS:%=$(BUILD)/tests/fuzz/%.o): tests/fuzz/fuzz.h

$(BUILD)/tests/fuzz/driver.o: tests/fuzz/driver.c tests/fuzz/fuzz.h | deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DFUZZ_CORPUS_DIR='"$(CURDIR)/tests/fuzz/corpus"' -c -o $@ $<

$(FUZZ_REPLAY_BINS): $(BUILD)/tests/fuzz/%: $(BUILD)/tests/fuzz/%.o \
		$(BUILD)/tests/fuzz/driver.o $(BUILD)/samples/bank/account.o $(LIB_A)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

fuzz-deps: deps
	@sh scripts/deps.sh fuzz

$(FUZZ_BUILD)/%.o: %.c $(HEADERS) $(wildcard core/*.h snapshots/*.h projections/*.h adapters/*/*.h cli/*.h samples/*/*.h tests/fuzz/*.h) | fuzz-deps
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_BUILD)/libesfold.a: $(LIB_SRCS:%.c=$(FUZZ_BUILD)/%.o)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_TARGETS:%=$(FUZZ_BUILD)/%): $(FUZZ_BUILD)/%: $(FUZZ_BUILD)/tests/fuzz/%.o \
		$(FUZZ_BUILD)/samples/bank/account.o $(FUZZ_BUILD)/libesfold.a
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

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
# and the Kafka tests (librdkafka's threads) are left to SANITIZE=1.
VALGRIND_TESTS := test_error test_time test_partition test_event test_codec \
                  test_accept test_log test_aggregate test_upcast test_repo test_cli
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
