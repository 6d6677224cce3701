# dicomvault build. `make` builds an optimised binary in build/release;
# `make check` installs what is missing, builds with ASan+UBSan in build/check
# and runs every test; `make fuzz` builds and runs the libFuzzer targets;
# `make bench` measures against pydicom and DCMTK.

MODE ?= release
B := build/$(MODE)
GEN := build/gen
STD ?= $(firstword $(wildcard ../shared/standard shared/standard))

CC ?= cc
WARN := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wvla -Wstrict-prototypes -Wmissing-prototypes
# OpenJPEG's header lives in a versioned directory
OPJ_CFLAGS := $(shell pkg-config --cflags libopenjp2 2>/dev/null || echo -I/usr/include/openjpeg-2.5)
BASEFLAGS := -std=c11 -D_GNU_SOURCE -Iinclude -I$(GEN) $(OPJ_CFLAGS) $(WARN) -MMD -MP
ifeq ($(MODE),check)
OPT := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
LDOPT := -fsanitize=address,undefined
else ifeq ($(MODE),debug)
OPT := -O0 -g
LDOPT :=
else
OPT := -O2 -g -DNDEBUG
LDOPT :=
endif
CFLAGS_ALL := $(BASEFLAGS) $(OPT) $(CFLAGS)
PNG_LIBS := $(shell pkg-config --libs libpng 2>/dev/null || echo -lpng)
LIBS := -lz -ljansson -lmicrohttpd -lsodium -lgnutls -lcrypto -lsqlite3 -lqrencode $(PNG_LIBS) -ljpeg -lopenjp2 -lcharls \
	-lpthread -lm

LIB_SRC := $(wildcard src/base/*.c src/crypto/*.c src/dicom/*.c src/proto/*.c src/backend/*.c src/core/*.c src/daemon/*.c)
GEN_SRC := $(GEN)/dict_data.c $(GEN)/deid_table.c $(GEN)/access_table.c $(GEN)/sop_storage.c
CMD_SRC := $(wildcard src/cmd/*.c)
LIB_OBJ := $(LIB_SRC:%.c=$(B)/%.o) $(B)/gen/dict_data.o $(if $(wildcard tools/gen_deid.awk),$(B)/gen/deid_table.o) \
	$(B)/gen/access_table.o $(B)/gen/sop_storage.o
CMD_OBJ := $(CMD_SRC:%.c=$(B)/%.o)
UNIT_SRC := $(wildcard tests/unit/*/*.c)
UNIT_BIN := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRC))
TOOL_SRC := $(wildcard tests/tools/*.c)
TOOL_BIN := $(patsubst tests/tools/%.c,$(B)/tools/%,$(TOOL_SRC))

.PHONY: all deps build check test fuzz fuzz-build bench clean lint demo

all: build

BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(patsubst bench/%.c,$(B)/bench/%,$(BENCH_SRC))
REPLAY_SRC := $(wildcard fuzz/*_fuzz.c)
REPLAY_BIN := $(patsubst fuzz/%.c,$(B)/replay/%,$(REPLAY_SRC))

build: $(B)/dicomvault $(UNIT_BIN) $(TOOL_BIN) $(REPLAY_BIN) $(BENCH_BIN) $(B)/shim/fault_sync.so

deps:
	@bash scripts/install-deps.sh

$(GEN)/dict_data.c: tools/gen_dict.awk $(STD)/data_dictionary.tsv $(STD)/safe_private_e3_10_1.tsv $(STD)/transfer_syntaxes.tsv $(STD)/uids.tsv
	@mkdir -p $(GEN)
	(head -n 1 $(STD)/data_dictionary.tsv; tail -n +2 $(STD)/data_dictionary.tsv | LC_ALL=C sort) > $(GEN)/dict_sorted.tsv
	awk -f tools/gen_dict.awk $(GEN)/dict_sorted.tsv $(STD)/safe_private_e3_10_1.tsv $(STD)/transfer_syntaxes.tsv $(STD)/uids.tsv > $@.tmp && mv $@.tmp $@

$(GEN)/deid_table.c: tools/gen_deid.awk $(STD)/deid_profile_e1_1.tsv $(STD)/safe_private_e3_10_1.tsv
	@mkdir -p $(GEN)
	awk -f tools/gen_deid.awk $(STD)/deid_profile_e1_1.tsv $(STD)/safe_private_e3_10_1.tsv > $@.tmp && mv $@.tmp $@

$(GEN)/access_table.c: tools/gen_access.awk docs/ACCESS.md
	@mkdir -p $(GEN)
	awk -f tools/gen_access.awk docs/ACCESS.md > $@.tmp && mv $@.tmp $@

$(GEN)/sop_storage.c: tools/gen_storage.awk $(STD)/sop_classes.tsv
	@mkdir -p $(GEN)
	awk -f tools/gen_storage.awk $(STD)/sop_classes.tsv > $@.tmp && mv $@.tmp $@

$(B)/gen/%.o: $(GEN)/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Wno-missing-prototypes -c $< -o $@

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(B)/libdicomvault.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/dicomvault: $(CMD_OBJ) $(B)/libdicomvault.a
	$(CC) $(LDOPT) -o $@ $(CMD_OBJ) $(B)/libdicomvault.a $(LIBS)

$(B)/tests/%: tests/unit/%.c $(B)/libdicomvault.a tests/unit/test.h $(wildcard tests/unit/*/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Itests/unit -o $@ $< $(B)/libdicomvault.a $(LDOPT) $(LIBS)

$(B)/tools/%: tests/tools/%.c $(B)/libdicomvault.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(B)/libdicomvault.a $(LDOPT) $(LIBS)

# LD_PRELOAD shims for tests: plain (no sanitizer), loaded into any build
$(B)/shim/%.so: tests/shim/%.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -Wall -Wextra -Werror -O1 -fPIC -shared -o $@ $< -ldl

$(B)/bench/%: bench/%.c $(B)/libdicomvault.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(B)/libdicomvault.a $(LDOPT) $(LIBS)

# Fuzz targets linked with a plain main() that replays their corpus.
$(B)/replay/%: fuzz/%.c fuzz/replay_main.c $(B)/libdicomvault.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Wno-missing-prototypes -o $@ $< fuzz/replay_main.c $(B)/libdicomvault.a $(LDOPT) $(LIBS)

# The test command of the README: installs, builds with sanitizers, runs all.
check: deps
	@$(MAKE) --no-print-directory MODE=check build lint
	@bash tests/run.sh build/check

test:
	@$(MAKE) --no-print-directory MODE=check build
	@bash tests/run.sh build/check

lint:
	@bash scripts/check-banned.sh

# libFuzzer targets (clang). FUZZ_SECONDS per target.
FUZZ_SECONDS ?= 60
FUZZ_B := build/fuzz
FUZZ_SRC := $(wildcard fuzz/*_fuzz.c)
FUZZ_BIN := $(patsubst fuzz/%.c,$(FUZZ_B)/%,$(FUZZ_SRC))
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -Iinclude -I$(GEN) $(OPJ_CFLAGS) -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
fuzz-build: $(GEN)/dict_data.c $(if $(wildcard tools/gen_deid.awk),$(GEN)/deid_table.c) $(GEN)/access_table.c \
	$(GEN)/sop_storage.c
	@mkdir -p $(FUZZ_B)
	@for f in $(FUZZ_SRC); do n=$$(basename $$f .c); \
	  clang $(FUZZ_CFLAGS) -o $(FUZZ_B)/$$n $$f $(LIB_SRC) $(wildcard $(GEN_SRC)) $(LIBS) || exit 1; done

fuzz: deps fuzz-build
	@bash scripts/fuzz.sh $(FUZZ_SECONDS)

# Installs, builds, creates a demo vault with sample studies, serves it.
demo:
	@bash scripts/demo.sh

bench: deps
	@$(MAKE) --no-print-directory MODE=release build
	@bash bench/run.sh

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
