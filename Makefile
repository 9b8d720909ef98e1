# SPDX-License-Identifier: Apache-2.0
# sluice: build, run, test and bench from one place.
#
#   make            build sluiced, mockllm and the unit tests
#   make run        install missing packages, build, start mockllm + sluiced
#   make test       unit + integration tests (SAN=1: under ASan and UBSan)
#   make bench      wrk against mockllm, nginx, haproxy and sluiced
#   make CC=clang   the same with clang

CC       ?= cc
SAN      ?=
BUILD    ?= build$(if $(SAN),-san)
PREFIX   ?= /usr/local
VERSION  := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

WARN     := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes \
            -Wmissing-prototypes -Wvla -Wformat=2
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all
OPT      := $(if $(SAN),-O1 -fno-omit-frame-pointer $(SANFLAGS),-O2)
CFLAGS   ?=
CFLAGS   += -std=c17 -D_GNU_SOURCE -g -pthread -MMD -MP $(WARN) $(OPT) \
            -Iuserspace -DSLUICE_VERSION='"$(VERSION)"'
LDFLAGS  += -pthread $(if $(SAN),$(SANFLAGS))
LDLIBS   := -luring -lyaml -lssl -lcrypto -lm

# Every userspace module is one folder; the daemon's entry point is apart
# so tools and tests can link the modules without it.
LIB_SRC  := $(sort $(wildcard userspace/*/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
LIB      := $(BUILD)/libsluice.a
SLUICED  := $(BUILD)/sluiced
MOCKLLM  := $(BUILD)/mockllm
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps run test unit integration bench clean install
all: $(SLUICED) $(MOCKLLM) $(UNIT_BIN)

deps:
	@tools/deps.sh build

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(SLUICED): $(BUILD)/userspace/sluiced.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(MOCKLLM): $(patsubst %.c,$(BUILD)/%.o,$(wildcard tools/mockllm/*.c)) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

run:
	@tools/deps.sh build
	@$(MAKE) --no-print-directory $(SLUICED) $(MOCKLLM)
	@tools/run.sh $(BUILD)

test:
	@tools/deps.sh test
	@$(MAKE) --no-print-directory all
	@tests/run.sh $(BUILD)

unit:
	@$(MAKE) --no-print-directory $(UNIT_BIN)
	@tests/run.sh $(BUILD) unit

integration:
	@$(MAKE) --no-print-directory $(SLUICED) $(MOCKLLM)
	@tests/run.sh $(BUILD) integration

bench:
	@tools/deps.sh bench
	@$(MAKE) --no-print-directory $(SLUICED) $(MOCKLLM)
	@tools/bench/run.sh $(BUILD)

install: $(SLUICED)
	install -D -m 0755 $(SLUICED) $(DESTDIR)$(PREFIX)/sbin/sluiced
	install -D -m 0644 config/sluice.example.yaml $(DESTDIR)/etc/sluice/sluice.yaml.example

clean:
	rm -rf build build-san build-clang

.SECONDARY:

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
