# uvcore developer tasks.
#
#   make / make build   virtualenv + build tools + libuv fetch + in-place build
#   make test           the above + test requirements, then pytest ($(PYTEST_ARGS))
#   make stress         the above + test requirements, then the long soak and load
#                       tests (pytest -m stress; short versions run in make test)
#   make bench          the above + bench requirements, then benchmarks/run.py ($(BENCH_ARGS))
#   make asan           build uvcore + libuv with AddressSanitizer and UBSan into
#                       build/asan/ (the in-place build is untouched) and run the
#                       whole suite on it (pytest tests, $(ASAN_PYTEST_ARGS)); any
#                       sanitizer report fails (tests/tools/asan.py)
#   make refleak        run each test module $(REFLEAK_RUNS) times in one process
#                       and fail on growth of live uvcore/asyncio objects, traced
#                       memory or open fds ($(REFLEAK_MODULES), $(REFLEAK_ARGS);
#                       tests/tools/refleak.py)
#   make valgrind       memcheck over the libuv-heavy modules ($(VALGRIND_MODULES),
#                       $(VALGRIND_ARGS); tests/tools/valgrind.py)
#   make wheel / sdist  distributions into dist/
#   make fetch          fetch and verify vendor/libuv only
#   make clean          build artefacts (keeps .venv and vendor/libuv)
#   make distclean      clean + .venv + vendor/libuv
#
# Everything runs in a private virtualenv ($(VENV)) made with $(PYTHON).
# Each set-up step leaves a stamp in $(VENV)/.stamps so repeated runs redo
# only what changed.  Requirements are read from pyproject.toml.

PYTHON ?= python3
VENV ?= .venv
PYTEST_ARGS ?=
BENCH_ARGS ?=
# Extra arguments for "python -m build" (e.g. --no-isolation).
BUILD_ARGS ?=

# Debian packages needed to build or test, installed with apt-get when missing.
DEBIAN_PACKAGES := postgresql redis-server

VPY := $(VENV)/bin/python
PIP := $(VPY) -m pip --quiet --disable-pip-version-check --no-input
STAMPS := $(VENV)/.stamps
LIBUV_STAMP := vendor/libuv/.uvcore-source.json

.DEFAULT_GOAL := build
.PHONY: all build test stress bench wheel sdist fetch clean distclean debian-packages bench-debian-packages
.PHONY: asan refleak valgrind valgrind-debian-packages

# Prints one requirement per line: build-system requires ("build") or an
# optional-dependencies extra ("test", "bench").
define READ_REQUIREMENTS
import sys
try:
    import tomllib
except ImportError:  # Python 3.10
    from pip._vendor import tomli as tomllib
with open("pyproject.toml", "rb") as f:
    data = tomllib.load(f)
what = sys.argv[1]
if what == "build":
    reqs = data["build-system"]["requires"]
else:
    reqs = data["project"]["optional-dependencies"][what]
print("\n".join(reqs))
endef
export READ_REQUIREMENTS

all: build

$(VPY):
	$(PYTHON) -m venv $(VENV)
	@mkdir -p $(STAMPS)

# Checked on every run (cheap: one dpkg-query per package); apt-get runs only
# when something is missing, with a single "apt-get update" first.
# Debian packages the side-by-side benchmark needs on top (wrk: the HTTP load).
BENCH_DEBIAN_PACKAGES := wrk gcc libssl-dev openssl

bench-debian-packages:
	@$(MAKE) --no-print-directory debian-packages DEBIAN_PACKAGES="$(DEBIAN_PACKAGES) $(BENCH_DEBIAN_PACKAGES)"

debian-packages:
	@missing=""; \
	for pkg in $(DEBIAN_PACKAGES); do \
	  dpkg-query -W -f='$${Status}\n' "$$pkg" 2>/dev/null | grep -q 'install ok installed' \
	    || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(STAMPS)/%-reqs: pyproject.toml | $(VPY)
	@mkdir -p $(STAMPS)
	@$(VPY) -c "$$READ_REQUIREMENTS" $* > $@.txt
	@echo "Installing $* requirements: $$(tr '\n' ' ' < $@.txt)"
	$(PIP) install -r $@.txt
	@touch $@

$(STAMPS)/build-tool: | $(VPY)
	@mkdir -p $(STAMPS)
	$(PIP) install build
	@touch $@

$(LIBUV_STAMP): vendor/libuv.pin vendor/fetch_libuv.py | $(VPY)
	$(VPY) vendor/fetch_libuv.py
	@touch $@

fetch: $(LIBUV_STAMP)

build: debian-packages $(STAMPS)/build-reqs $(LIBUV_STAMP)
	$(VPY) setup.py build_ext --inplace

# pytest writes its JUnit report only when its session finishes: a missing
# report means the process was ended early (e.g. by a test that exits the
# interpreter), which must not pass for success even with exit status 0.
PYTEST_REPORT := $(STAMPS)/pytest-report.xml

test: debian-packages $(STAMPS)/build-reqs $(STAMPS)/test-reqs build
	@rm -f $(PYTEST_REPORT)
	$(VPY) -m pytest --junit-xml=$(PYTEST_REPORT) $(PYTEST_ARGS)
	@test -s $(PYTEST_REPORT) || { printf '\n%s\n' "make test: pytest ended before finishing its session\
	  (no $(PYTEST_REPORT)): a test probably ended the process; failing." >&2; exit 1; }

bench: bench-debian-packages $(STAMPS)/build-reqs $(STAMPS)/bench-reqs build
	$(VPY) benchmarks/run.py $(BENCH_ARGS)

stress: debian-packages $(STAMPS)/build-reqs $(STAMPS)/test-reqs build
	$(VPY) -m pytest -m stress -s -p no:cacheprovider $(PYTEST_ARGS)

# --- memory safety checks ------------------------------------------------------

# make asan: the ASAN + UBSan build goes to build/asan/lib (its libuv objects
# and the build-mode stamp to build/asan/tmp), never into uvcore/.
ASAN_DIR := build/asan
ASAN_PYTEST_ARGS ?=

asan: debian-packages $(STAMPS)/build-reqs $(STAMPS)/test-reqs $(LIBUV_STAMP)
	UVCORE_ASAN=1 UVCORE_USE_SYSTEM_LIBUV= $(VPY) setup.py build_ext \
	  --build-lib $(ASAN_DIR)/lib --build-temp $(ASAN_DIR)/tmp
	$(VPY) tests/tools/asan.py --lib $(ASAN_DIR)/lib --work $(ASAN_DIR) -- $(ASAN_PYTEST_ARGS)

# make refleak: modules by name (e.g. REFLEAK_MODULES="test_tcp test_udp");
# empty = every tests/test_*.py but test_stress.  REFLEAK_ARGS go to the
# runner (e.g. --jobs 2, --all-impls; "-- -k name" for pytest).
REFLEAK_RUNS ?= 5
REFLEAK_MODULES ?=
REFLEAK_ARGS ?=

refleak: debian-packages $(STAMPS)/build-reqs $(STAMPS)/test-reqs build
	$(VPY) tests/tools/refleak.py --runs $(REFLEAK_RUNS) --warmup 2 \
	  --modules "$(REFLEAK_MODULES)" $(REFLEAK_ARGS)

# make valgrind: valgrind itself comes from Debian (for this target only).
VALGRIND_DEBIAN_PACKAGES := valgrind
VALGRIND_MODULES ?= test_call_soon test_timers test_tcp test_udp test_pipes test_unix \
  test_stream_transport test_readers_writers test_sock_methods test_server test_dns \
  test_sendfile test_subprocess test_signals test_threadsafe test_faults test_tls
VALGRIND_ARGS ?=

valgrind-debian-packages:
	@$(MAKE) --no-print-directory debian-packages DEBIAN_PACKAGES="$(DEBIAN_PACKAGES) $(VALGRIND_DEBIAN_PACKAGES)"

valgrind: valgrind-debian-packages $(STAMPS)/build-reqs $(STAMPS)/test-reqs build
	$(VPY) tests/tools/valgrind.py --modules "$(VALGRIND_MODULES)" $(VALGRIND_ARGS)

wheel: debian-packages $(STAMPS)/build-tool $(LIBUV_STAMP)
	$(VPY) -m build --wheel --outdir dist $(BUILD_ARGS)

sdist: $(STAMPS)/build-tool $(LIBUV_STAMP)
	$(VPY) -m build --sdist --outdir dist $(BUILD_ARGS)

clean:
	rm -rf build dist *.egg-info .pytest_cache
	find uvcore -name '*.so' -delete
	@for pyx in $$(find uvcore -name '*.pyx'); do \
	  base=$${pyx%.pyx}; rm -f "$$base.c" "$$base.h" "$${base}_api.h" "$$base.html"; \
	done
	find . -name __pycache__ -type d -not -path './$(VENV)/*' -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) vendor/libuv
