# tiermem: top-level build.
#   make            build/libtiermem.{a,so} and build/tiermem
#   make kmod       kmod/tiermem.ko against the installed kernel headers (KDIR=...)
#   make check      every test (unit tests under ASan+UBSan, VM kernel tests, peers)
#   make deps       install what is missing (apt, npm)
# Sources are found by directory, so a new file needs no Makefile edit.
# Files named *_avx2.c / *_avx512.c / *_amx.c get those instruction sets; the rest of the
# code must run on any x86-64 and reach them only through run-time dispatch.

CC      ?= cc
NVCC    ?= $(firstword $(wildcard /usr/local/cuda/bin/nvcc) nvcc)
BUILD   ?= build
KDIR    ?= $(firstword $(wildcard /lib/modules/*/build))

# V=1 shows the full commands.
ifeq ($(V),1)
Q :=
msg = @true
else
Q := @
msg = @printf '  %-6s %s\n' $(1) $(2)
endif

WARN     := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
CPPFLAGS := -D_GNU_SOURCE -Iinclude -I.
CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 $(WARN) -fPIC -pthread -fno-strict-aliasing
LDLIBS   := -lm -lpthread

AVX2_FLAGS   := -mavx2 -mfma -mf16c
AVX512_FLAGS := -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx2 -mfma -mf16c

# lib/cuda/ is the host side of libtiermem-cuda.so (below), never in libtiermem.
LIB_SRCS := $(filter-out lib/cuda/% lib/mpi/%,$(wildcard lib/*.c lib/*/*.c)) $(wildcard kernels/cpu/*.c)
CLI_SRCS := $(wildcard cli/*.c)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
BENCH_SRCS := $(wildcard bench/*.c)

# Required libraries, installed by scripts/deps: jansson (JSON: plans,
# manifests, the server's API), libnuma (node:N tiers), libmicrohttpd (serve),
# xxhash (the store's content hashes: XXH3, fast enough to check every run).
# DEPLIBS can be given on the command line where pkg-config or the .pc files
# are missing (the GPU machine: scripts/gpu-device-run).
DEPLIBS ?= $(shell pkg-config --libs jansson libmicrohttpd libxxhash) -lnuma
LDLIBS += $(DEPLIBS) -ldl

# Optional libraries: found with pkg-config, compiled in only when present.
HAVE_PMEM2 := $(shell pkg-config --exists libpmem2 2>/dev/null && echo 1)
ifeq ($(HAVE_PMEM2),1)
CPPFLAGS += -DTM_HAVE_PMEM2
LDLIBS   += $(shell pkg-config --libs libpmem2)
endif

# Two flavours of every object: release and sanitized (tests).
REL  := $(BUILD)/obj
SAN  := $(BUILD)/san
SAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

lib_objs = $(patsubst %.c,$(1)/%.o,$(LIB_SRCS))
cli_objs = $(patsubst %.c,$(1)/%.o,$(CLI_SRCS))

# nvcc present: `make` also builds the GPU path (libtiermem-cuda.so, below).
NVCC_PATH := $(firstword $(wildcard $(NVCC)) $(shell command -v $(NVCC) 2>/dev/null))
HAVE_NVCC := $(if $(NVCC_PATH),1)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(realpath $(NVCC_PATH)))
CUDA_ALL := $(if $(HAVE_NVCC),$(BUILD)/libtiermem-cuda.so)

# mpicc present (scripts/deps installs Open MPI for make check): `make` also
# builds build/tiermem-mpi, the CLI with lib/mpi/ (expert-parallel decode under
# mpirun). The default build never needs MPI.
MPICC ?= mpicc
HAVE_MPI := $(if $(shell command -v $(MPICC) 2>/dev/null),1)
MPI_ALL := $(if $(HAVE_MPI),$(BUILD)/tiermem-mpi)
MPI_OBJS := $(patsubst %.c,$(BUILD)/mpi/%.o,$(CLI_SRCS) $(wildcard lib/mpi/*.c))

.PHONY: all kmod check check-gpu unit deps run clean cuda san modules_install
BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRCS))
all: $(BUILD)/libtiermem.a $(BUILD)/libtiermem.so $(BUILD)/tiermem $(BENCH_BINS) $(CUDA_ALL) $(MPI_ALL)

$(REL)/%.o: %.c
	@mkdir -p $(@D)
	$(call msg,CC,$<)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(ISA_FLAGS) -MMD -MP -c $< -o $@

$(SAN)/%.o: %.c
	@mkdir -p $(@D)
	$(call msg,CC-SAN,$<)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(SAN_FLAGS) $(ISA_FLAGS) -MMD -MP -c $< -o $@

%_avx2.o:   ISA_FLAGS = $(AVX2_FLAGS)
%_avx512.o: ISA_FLAGS = $(AVX512_FLAGS)
%_amx.o:    ISA_FLAGS = $(AVX512_FLAGS) -mamx-tile -mamx-int8

$(BUILD)/libtiermem.a: $(call lib_objs,$(REL))
	@rm -f $@
	$(call msg,AR,$@)
	$(Q)$(AR) rcs $@ $^

$(BUILD)/libtiermem.so: $(call lib_objs,$(REL))
	$(call msg,LD,$@)
	$(Q)$(CC) -shared -o $@ $^ $(LDLIBS)

$(BUILD)/tiermem: $(call cli_objs,$(REL)) $(BUILD)/libtiermem.a
	$(call msg,LD,$@)
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# Stand-alone benchmark programs: bench/NAME.c -> build/bench/NAME
$(BUILD)/bench/%: $(REL)/bench/%.o $(BUILD)/libtiermem.a
	@mkdir -p $(@D)
	$(call msg,LD,$@)
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# The MPI variant: the CLI and lib/mpi/ through mpicc, against the release library.
$(BUILD)/mpi/%.o: %.c
	@mkdir -p $(@D)
	$(call msg,MPICC,$<)
	$(Q)$(MPICC) $(CPPFLAGS) -DTM_HAVE_MPI $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/tiermem-mpi: $(MPI_OBJS) $(BUILD)/libtiermem.a
	$(call msg,LD,$@)
	$(Q)$(MPICC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# Sanitized library, CLI and unit tests: what `make check` runs.
$(BUILD)/san/libtiermem.a: $(call lib_objs,$(SAN))
	@rm -f $@
	$(call msg,AR,$@)
	$(Q)$(AR) rcs $@ $^

$(BUILD)/san/tiermem: $(call cli_objs,$(SAN)) $(BUILD)/san/libtiermem.a
	$(call msg,LD,$@)
	$(Q)$(CC) $(CFLAGS) $(SAN_FLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/san/tests/%: $(SAN)/tests/unit/%.o $(BUILD)/san/libtiermem.a
	@mkdir -p $(@D)
	$(call msg,LD,$@)
	$(Q)$(CC) $(CFLAGS) $(SAN_FLAGS) -o $@ $^ $(LDLIBS)

UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/san/tests/%,$(UNIT_SRCS))
san: $(BUILD)/san/tiermem $(UNIT_BINS)

unit: san
	@tests/run unit

# Installs what is missing first, so a fresh clone passes with this one command.
check:
	@scripts/deps
	@$(MAKE) --no-print-directory all san
	@tests/run

# The main job on a built-in default: generate text with a model synthesized
# on first use (build/default-model.gguf), then print the speed summary.
run:
	@scripts/deps run
	@$(MAKE) --no-print-directory all
	$(BUILD)/tiermem run -n 48 --seed 1

deps:
	@scripts/deps

# The module goes through the top-level Kbuild; the .ko lands in kmod/.
kmod:
	@test -n "$(KDIR)" || { echo "make kmod: no kernel headers in /lib/modules/*/build; run make deps or set KDIR" >&2; exit 2; }
	$(MAKE) -C $(KDIR) M=$(CURDIR) TM_WERROR=y modules

modules_install:
	$(MAKE) -C $(KDIR) M=$(CURDIR) modules_install

# The GPU path (include/tiermem/gpu.h): kernels/cuda/*.cu and lib/cuda/*.c
# make libtiermem-cuda.so, which tiermem loads with dlopen only for --gpu, so
# nothing else needs CUDA at build or run time. Built by `make` when nvcc
# exists, for sm_80 (A100) and sm_90 (H100/H200), warnings as errors; the
# CUDA runtime is linked statically (the object needs only libcuda.so.1).
CUDA_GENCODE := -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90
NVCCFLAGS := -std=c++17 -O3 $(CUDA_GENCODE) -Iinclude -I. -Werror all-warnings \
	-Xcompiler -fPIC,-Wall,-Wextra,-Werror,-Wno-unused-parameter
CUDA_SRCS := $(wildcard kernels/cuda/*.cu)
CUDA_OBJS := $(patsubst %.cu,$(BUILD)/cuda/%.o,$(CUDA_SRCS)) \
	$(patsubst %.c,$(BUILD)/cuda/%.o,$(wildcard lib/cuda/*.c))
cuda: $(BUILD)/libtiermem-cuda.so
$(BUILD)/cuda/%.o: %.cu kernels/quant_decode.h $(wildcard kernels/cuda/*.h kernels/cuda/*.cuh)
	@mkdir -p $(@D)
	$(call msg,NVCC,$<)
	$(Q)$(NVCC) $(NVCCFLAGS) -c $< -o $@
$(BUILD)/cuda/lib/cuda/%.o: lib/cuda/%.c
	@mkdir -p $(@D)
	$(call msg,CC,$<)
	$(Q)$(CC) $(CPPFLAGS) -I$(CUDA_HOME)/include $(CFLAGS) -MMD -MP -c $< -o $@
$(BUILD)/libtiermem-cuda.so: $(CUDA_OBJS) $(BUILD)/libtiermem.a
	$(call msg,LD,$@)
	$(Q)$(NVCC) -shared $(CUDA_GENCODE) -o $@ $(CUDA_OBJS) $(BUILD)/libtiermem.a -Xlinker -z,defs $(LDLIBS)

# The GPU checks (tests/gpu/): each kernel against the CPU on random data,
# whole-model logits against the CPU path, the VRAM counters. Without a GPU
# they report SKIP with the reason and pass nothing.
$(BUILD)/cuda/check-gpu: $(BUILD)/cuda/tests/gpu/check_gpu.o $(CUDA_OBJS) $(BUILD)/libtiermem.a
	$(call msg,LD,$@)
	$(Q)$(NVCC) $(CUDA_GENCODE) -o $@ $^ $(LDLIBS)
$(BUILD)/cuda/tests/gpu/%.o: tests/gpu/%.c
	@mkdir -p $(@D)
	$(call msg,CC,$<)
	$(Q)$(CC) $(CPPFLAGS) -I$(CUDA_HOME)/include $(CFLAGS) -MMD -MP -c $< -o $@
ifeq ($(HAVE_NVCC),1)
check-gpu: $(BUILD)/tiermem $(BUILD)/cuda/check-gpu $(BUILD)/libtiermem-cuda.so
	@BUILD=$(BUILD) tests/gpu/run
else
check-gpu:
	@echo "check-gpu: SKIP (nothing passed): no nvcc, so no CUDA code was built"
endif

clean:
	rm -rf $(BUILD)/obj $(BUILD)/san $(BUILD)/cuda $(BUILD)/bench $(BUILD)/libtiermem.* $(BUILD)/libtiermem-cuda.so $(BUILD)/tiermem
	-$(MAKE) -C $(KDIR) M=$(CURDIR) clean 2>/dev/null

.SECONDARY:

-include $(shell find $(BUILD)/obj $(BUILD)/san $(BUILD)/cuda $(BUILD)/mpi -name '*.d' 2>/dev/null)
