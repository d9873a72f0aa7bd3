# esfold - event sourcing and CQRS persistence for C.
#
#   make            the library, the esfold command and the samples
#   make demo       the bank sample end to end on SQLite
#   make test       the whole test suite (SANITIZE=1: under ASan + UBSan)
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
	core/repo.c

ADAPTER_SRCS := \
	adapters/log_open.c \
	adapters/sqlite/schema.c adapters/sqlite/log.c

CLI_SRCS := \
	cli/cli.c cli/util.c cli/history.c cli/append.c cli/verify.c

LIB_SRCS := $(CORE_SRCS) $(ADAPTER_SRCS) $(CLI_SRCS)
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
LIB_A    := $(BUILD)/libesfold.a
LIB_SO   := $(BUILD)/libesfold.so

ESFOLD   := $(BUILD)/esfold
BANK     := $(BUILD)/bank

BANK_SRCS := samples/bank/account.c samples/bank/main.c

TESTS := test_error test_time test_partition test_event test_codec test_accept test_log \
         test_aggregate test_upcast test_repo test_cli
TEST_BINS := $(TESTS:%=$(BUILD)/tests/%)

BENCHES := bench_sqlite
BENCH_BINS := $(BENCHES:%=$(BUILD)/bench/%)

HEADERS := $(wildcard include/esfold/*.h)

.PHONY: all deps demo test bench install uninstall clean headers-check
all: deps $(LIB_A) $(LIB_SO) $(ESFOLD) $(BANK)

deps:
	@sh scripts/deps.sh

$(BUILD)/%.o: %.c $(HEADERS) $(wildcard core/*.h adapters/*/*.h cli/*.h samples/*/*.h tests/*.h) | deps
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

test: all $(TEST_BINS) $(ESFOLD)
	@$(MAKE) --no-print-directory headers-check
	@sh tests/run.sh $(BUILD) $(TESTS)

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
