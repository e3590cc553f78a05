# The two commands of the README, and the steps they share.
#
#   make bench   set up, build, and benchmark visionops against torchvision
#   make test    set up, build (Python extension and CMake library), run every test, then ruff
#   make sanitize  the CPU kernels with AddressSanitizer and UBSan, and the CPU tests on them
#
# Set-up is idempotent: the virtual environment, the requirements and the
# build are reused when nothing changed (the build is incremental, ninja).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEPS_STAMP := $(VENV)/.visionops-deps
BUILD_STAMP := build/.visionops-ext
CMAKE_DIR := build/cmake
SOURCES := $(shell find csrc -type f) setup.py
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
BENCH_ARGS ?=
PYTEST_ARGS ?=

# ccache, where installed, makes repeat builds fast, also from another clone
# of the repo (paths are hashed relative to the checkout).
ifneq ($(wildcard /usr/lib/ccache/c++),)
export PATH := /usr/lib/ccache:$(PATH)
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_NOHASHDIR := true
NVCC := $(firstword $(wildcard $(CUDA_HOME)/bin/nvcc) $(wildcard /usr/local/cuda/bin/nvcc))
ifneq ($(NVCC),)
export PYTORCH_NVCC := ccache $(NVCC)
endif
endif

.PHONY: bench test test-lower-isas build cmake lint clean sanitize cross-aarch64

bench: build
	$(PY) -m visionops.bench --json results/bench.json $(BENCH_ARGS)

test: build cmake
	ctest --test-dir $(CMAKE_DIR) --output-on-failure
	$(PY) -m pytest tests $(PYTEST_ARGS)
	$(MAKE) --no-print-directory test-lower-isas
	$(MAKE) --no-print-directory lint

# The op tests again on each CPU instruction-set path below this CPU's best
# (VISIONOPS_CPU_ISA: AVX2 and baseline x86-64 on an AVX-512 machine), each
# against torchvision and the float64 references, as a CPU without the
# higher set runs them (about 30 s a path).
ISA_ORDER := avx512 avx2 portable
test-lower-isas: build
	@best=$$($(PY) -c "from visionops._extension import _C; print(_C.cpu_isa_supported())" 2>/dev/null); \
	lower=$$(echo $(ISA_ORDER) | tr ' ' '\n' | sed -n "/^$$best$$/,\$$p" | tail -n +2); \
	[ -n "$$lower" ] || echo "test-lower-isas: this CPU's best path is $$best; no lower path to run"; \
	for isa in $$lower; do \
		echo "tests/ops on the $$isa path (VISIONOPS_CPU_ISA=$$isa)"; \
		VISIONOPS_CPU_ISA=$$isa $(PY) -m pytest tests/ops -q -p no:cacheprovider $(PYTEST_ARGS) || exit 1; \
	done

$(DEPS_STAMP): requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -r requirements-dev.txt
	touch $@

# The extension is built in place (incremental); a .pth file puts the
# checkout on the environment's path, as an editable install would, without
# pip's from-scratch rebuild.
build: $(BUILD_STAMP)
$(BUILD_STAMP): $(DEPS_STAMP) $(SOURCES)
	MAX_JOBS=$(JOBS) $(PY) setup.py build_ext --inplace
	$(PY) -c "import site, os; open(os.path.join(site.getsitepackages()[0], 'visionops-dev.pth'), 'w').write(os.getcwd() + '\n')"
	mkdir -p build && touch $@

# The CMake library for C++ (libtorch) users and the C++ tests. CMAKE_CUDA
# (auto, 0, 1) says whether its CUDA kernels are compiled; auto: where
# setup.py would compile them (nvcc found, torch a CUDA build, VISIONOPS_CUDA
# not 0).
CMAKE_NVCC := $(firstword $(wildcard $(CUDA_HOME)/bin/nvcc) $(wildcard /usr/local/cuda/bin/nvcc))
CMAKE_CUDA ?= auto
cmake: $(DEPS_STAMP)
	mkdir -p build
	cuda=$$($(PY) -c "import torch; auto = bool(torch.version.cuda and '$(CMAKE_NVCC)' and '$(VISIONOPS_CUDA)' != '0'); \
		print({'0': 'OFF', '1': 'ON'}.get('$(CMAKE_CUDA)', 'ON' if auto else 'OFF'))"); \
	echo "visionops cmake: VISIONOPS_CUDA=$$cuda"; \
	cmake -S . -B $(CMAKE_DIR) -DPython3_EXECUTABLE=$(abspath $(PY)) -DCMAKE_BUILD_TYPE=Release \
		-DVISIONOPS_CUDA=$$cuda $(if $(CMAKE_NVCC),-DCMAKE_CUDA_COMPILER=$(CMAKE_NVCC)) > $(CMAKE_DIR).log 2>&1 \
		|| (cat $(CMAKE_DIR).log; exit 1)
	cmake --build $(CMAKE_DIR) -j $(JOBS)

# The CPU extension built with AddressSanitizer and UndefinedBehaviorSanitizer
# (out of place, in build/sanitize: the in-place build is untouched), then the
# CPU test suite run against it. Any report fails the run. Python itself is
# not instrumented: the sanitizer runtimes are preloaded, and leak checking
# is off (the interpreter's own allocations at exit would drown real leaks).
# pytest's append import mode (and no `python -m`, which puts the checkout
# first on the path) makes `import visionops` find the sanitized build, which
# tests/conftest.py checks; --capture=sys lets a report reach the terminal
# before the sanitizer aborts the process. SANITIZE_TESTS picks tests.
SANITIZE_DIR := build/sanitize
SANITIZERS ?= address,undefined
CXX ?= c++
sanitize: $(DEPS_STAMP)
	mkdir -p $(SANITIZE_DIR)
	VISIONOPS_CUDA=0 VISIONOPS_SANITIZE=$(SANITIZERS) MAX_JOBS=$(JOBS) $(PY) setup.py build \
		--build-base $(SANITIZE_DIR) > $(SANITIZE_DIR)/build.log 2>&1 || (tail -40 $(SANITIZE_DIR)/build.log; exit 1)
	lib=$$(realpath $$(ls -d $(SANITIZE_DIR)/lib.*)); \
	LD_PRELOAD="$$($(CXX) -print-file-name=libasan.so) $$($(CXX) -print-file-name=libubsan.so)" \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:allocator_may_return_null=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	VISIONOPS_SANITIZED=$$lib PYTHONPATH=$$lib $(VENV)/bin/pytest --import-mode=append --capture=sys -q \
		-p no:cacheprovider $(or $(SANITIZE_TESTS),tests) $(PYTEST_ARGS)

# Every C++ source (the CPU kernels, registration, the C++ tests) compiled,
# not linked, for ARM64 with Debian's cross compiler: the x86 dispatch and
# core/simd.h drop out there (no __x86_64__), and the portable loops compile
# as the compiler vectorizes them for NEON. Against this environment's torch
# headers (the same C++ headers as torch's aarch64 wheel; nothing to
# download). Linking would need an aarch64 libtorch, which is left out.
CROSS_CXX ?= aarch64-linux-gnu-g++
CROSS_DIR := build/aarch64
cross-aarch64: $(DEPS_STAMP)
	mkdir -p $(CROSS_DIR)
	inc=$$($(PY) -c "import sysconfig, torch.utils.cpp_extension as e; \
		print(' '.join('-I' + p for p in e.include_paths() + [sysconfig.get_paths()['include']]))"); \
	cc="$$(command -v ccache || true) $(CROSS_CXX)"; \
	find csrc -name '*.cpp' | sort | xargs -P $(JOBS) -I{} sh -c \
		"$$cc -std=c++20 -O2 -Wall -Werror -fPIC -fopenmp -ffp-contract=off -fno-trapping-math -DNDEBUG \
		-DVISIONOPS_WITH_CUDA=0 -DVISIONOPS_TORCH_VERSION='\"cross\"' -DTORCH_API_INCLUDE_EXTENSION_H \
		-DTORCH_EXTENSION_NAME=_C -Icsrc $$inc -c {} -o $(CROSS_DIR)/\$$(echo {} | tr / _).o \
		|| { echo 'cross-aarch64: {} failed'; exit 255; }"
	@echo "cross-aarch64: $$(ls $(CROSS_DIR)/*.o | wc -l) sources compiled for $$(file -b $$(ls $(CROSS_DIR)/*.o | head -1) | cut -d, -f2)"

lint: $(DEPS_STAMP)
	$(VENV)/bin/ruff check visionops tests benchmarks

clean:
	rm -rf build visionops/_C*.so results
