# The two commands of the README, and the steps they share.
#
#   make bench   set up, build, and benchmark visionops against torchvision
#   make test    set up, build (Python extension and CMake library), run every test, then ruff
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

.PHONY: bench test build cmake lint clean

bench: build
	$(PY) -m visionops.bench --json results/bench.json $(BENCH_ARGS)

test: build cmake
	ctest --test-dir $(CMAKE_DIR) --output-on-failure
	$(PY) -m pytest tests $(PYTEST_ARGS)
	$(MAKE) --no-print-directory lint

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

lint: $(DEPS_STAMP)
	$(VENV)/bin/ruff check visionops tests benchmarks

clean:
	rm -rf build visionops/_C*.so results
