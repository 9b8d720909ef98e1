# SPDX-License-Identifier: Apache-2.0
# sluice: build, run, test and bench from one place.
#
#   make            build sluiced, mockllm and the unit tests
#   make run        install missing packages, build, start mockllm + sluiced
#   make test       unit + integration + vm tests (SAN=1: under ASan and UBSan)
#   make vm-test    kTLS smoke test + BPF unit tests in a QEMU guest on Linux 6.1
#   make bench      wrk against mockllm, nginx, haproxy and sluiced
#   make fuzz       every libFuzzer target for FUZZ_TIME seconds (docs/FUZZING.md)
#   make CC=clang   the same with clang

CC       ?= cc
SAN      ?=
BUILD    ?= build$(if $(SAN),-san)
# libFuzzer targets: every tests/fuzz/fuzz_*.c, built by clang under
# ASan/UBSan in their own build dir (a sub-make with FUZZ=1 builds the
# library there with fuzzer instrumentation).
FUZZ_BUILD := build-fuzz
FUZZ_TIME  ?= 60
FUZZ_SRC   := $(sort $(wildcard tests/fuzz/fuzz_*.c))
PREFIX   ?= /usr/local
VERSION  := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

WARN     := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes \
            -Wmissing-prototypes -Wvla -Wformat=2
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all
OPT      := $(if $(SAN),-O1 -fno-omit-frame-pointer $(SANFLAGS),-O2)
ifeq ($(FUZZ),1)
OPT      := -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined \
            -fno-sanitize-recover=all
endif
CFLAGS   ?=
CFLAGS   += -std=c17 -D_GNU_SOURCE -g -pthread -MMD -MP $(WARN) $(OPT) \
            -Iuserspace -Imaps -I$(BUILD)/bpf -DSLUICE_VERSION='"$(VERSION)"'
LDFLAGS  += -pthread $(if $(SAN),$(SANFLAGS))
LDLIBS   := -luring -lyaml -lhiredis -lssl -lcrypto -lbpf -lhs -lm -lcurl

# BPF programs: CO-RE objects built against this kernel's BTF, each turned
# into a libbpf skeleton that userspace includes (never a hand-written loader).
BPF_CLANG ?= clang
BPFTOOL  ?= bpftool
VMLINUX_BTF ?= /sys/kernel/btf/vmlinux
BPF_SRC  := $(sort $(wildcard bpf/*.bpf.c))
BPF_OBJ  := $(BPF_SRC:bpf/%.bpf.c=$(BUILD)/bpf/%.bpf.o)
BPF_SKEL := $(BPF_SRC:bpf/%.bpf.c=$(BUILD)/bpf/%.skel.h)

# Every userspace module is one folder; the daemon's entry point is apart
# so tools and tests can link the modules without it.
LIB_SRC  := $(sort $(wildcard userspace/*/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
LIB      := $(BUILD)/libsluice.a
SLUICED  := $(BUILD)/sluiced
MOCKLLM  := $(BUILD)/mockllm
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
# Each folder of tools/ with C files is one program (rules below).
TOOLS    := $(notdir $(patsubst %/,%,$(dir $(wildcard tools/*/*.c))))
TOOL_BIN := $(addprefix $(BUILD)/,$(sort $(TOOLS)))

.PHONY: all deps run test unit integration vm-test bench clean install fuzz fuzz-build fuzz-bin image
all: $(SLUICED) $(TOOL_BIN) $(UNIT_BIN)

deps:
	@tools/deps.sh build

$(BUILD)/%.o: %.c | $(BPF_SKEL)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/bpf/vmlinux.h:
	@mkdir -p $(@D)
	$(BPFTOOL) btf dump file $(VMLINUX_BTF) format c > $@.tmp && mv $@.tmp $@

$(BUILD)/bpf/%.bpf.o: bpf/%.bpf.c bpf/sluice.bpf.h maps/sluice_maps.h $(BUILD)/bpf/vmlinux.h
	$(BPF_CLANG) -g -O2 -target bpf -D__TARGET_ARCH_x86 -Wall -Werror \
		-I$(BUILD)/bpf -Imaps -Ibpf -c $< -o $@

$(BUILD)/bpf/%.skel.h: $(BUILD)/bpf/%.bpf.o
	$(BPFTOOL) gen skeleton $< name $(subst -,_,$*)_bpf > $@.tmp && mv $@.tmp $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(SLUICED): $(BUILD)/userspace/sluiced.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Each folder of tools/ with C files is one program linked against the library.
define tool_rule
$(BUILD)/$(1): $$(patsubst %.c,$(BUILD)/%.o,$$(wildcard tools/$(1)/*.c)) $(LIB)
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach t,$(sort $(TOOLS)),$(eval $(call tool_rule,$(t))))
# sluicectl routes and the daemon's health-check thread speak HTTP with
# libcurl (control plane, off the workers): in LDLIBS above.

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

# One fuzz target per tests/fuzz/fuzz_*.c (inside the FUZZ=1 sub-make,
# where BUILD is the fuzz build dir).
$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -fsanitize=fuzzer,address,undefined -include tests/fuzz/fuzz.h \
		-o $@ $< $(LIB) $(LDLIBS) -ldl

fuzz-bin: $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)
	@:

fuzz-build:
	@$(MAKE) --no-print-directory FUZZ=1 CC=clang BUILD=$(FUZZ_BUILD) fuzz-bin

run:
	@tools/deps.sh build
	@$(MAKE) --no-print-directory $(SLUICED) $(MOCKLLM)
	@tools/run.sh $(BUILD)

test:
	@tools/deps.sh test
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory fuzz-build
	@tests/run.sh $(BUILD)

unit:
	@$(MAKE) --no-print-directory $(UNIT_BIN) $(TOOL_BIN)
	@tests/run.sh $(BUILD) unit

integration:
	@$(MAKE) --no-print-directory $(SLUICED) $(MOCKLLM)
	@tests/run.sh $(BUILD) integration

# Debian's 6.1 kernel in QEMU (TCG) with this root shared read-only:
# vm-test/smoke.sh and the BPF unit tests, in one boot (vm-test/README.md).
vm-test:
	@tools/deps.sh test
	@$(MAKE) --no-print-directory all
	@tests/run.sh $(BUILD) vm

# Each target for FUZZ_TIME seconds on a copy of its corpus kept in
# $(FUZZ_BUILD)/corpus (new inputs stay there, not in the tree).
fuzz:
	@tools/deps.sh test
	@$(MAKE) --no-print-directory fuzz-build
	@tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_TIME)

bench:
	@tools/deps.sh bench
	@$(MAKE) --no-print-directory $(SLUICED) $(MOCKLLM) $(BUILD)/xdpbench $(BUILD)/sluicectl \
		$(BUILD)/guardbench
	@tools/bench/run.sh $(BUILD)

# The container image, FROM scratch, tagged localhost/sluice:$(VERSION)
# (deploy/image/build.sh; --save FILE.tar for nodes without a registry).
image:
	@tools/deps.sh deploy
	@$(MAKE) --no-print-directory $(SLUICED) $(BUILD)/sluicectl
	@deploy/image/build.sh --build $(BUILD)

install: $(SLUICED)
	install -D -m 0755 $(SLUICED) $(DESTDIR)$(PREFIX)/sbin/sluiced
	install -D -m 0644 config/sluice.example.yaml $(DESTDIR)/etc/sluice/sluice.yaml.example

clean:
	rm -rf build build-san build-clang $(FUZZ_BUILD)

.SECONDARY:

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
