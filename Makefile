# hutch: a thin wrapper over meson. The build itself lives in meson.build.
#
#   make                  build (meson setup on first use, then ninja)
#   make demo             install missing packages, build, boot a disposable micro VM
#   make check            install missing packages, build, unit + integration tests
#   make check-unit       cmocka tests (meson test --suite unit)
#   make check-integration  shell TAP against real QEMU, as an unprivileged user
#   make check-sanitize   the same tests built with ASan + UBSan, in build-asan/
#   make check-sanitize-integration  only the integration suite of that (CI runs it after check)
#   make bench            bench/run-all.sh (every benchmark; writes docs/PERFORMANCE.md)
#   make fuzz FUZZ_SECONDS=N [FUZZ_JOBS=2]  fuzz/run.sh
#   make lint             clang-format --dry-run --Werror, cppcheck
#   make format           clang-format -i on the C sources
#   make clean
#
# CI=true builds with -Dwerror=true.

BUILDDIR ?= build
ASANDIR ?= build-asan
MESON ?= meson
NINJA ?= ninja
CLANG_FORMAT ?= clang-format
CPPCHECK ?= cppcheck
FUZZ_SECONDS ?= 60
FUZZ_JOBS ?= 1
MESON_FLAGS ?=

ifeq ($(CI),true)
MESON_FLAGS += -Dwerror=true
endif

ASAN_FLAGS = -Db_sanitize=address,undefined -Db_lundef=false
SAN_ENV = ASAN_OPTIONS=abort_on_error=1:detect_leaks=0:halt_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

FORMAT_DIRS = src agent tests/unit fuzz
LINT_DIRS = src agent

# Steps run in order (deps before build before tests) even under -j.
.NOTPARALLEL:
.PHONY: all build deps demo check check-unit check-integration check-sanitize check-sanitize-unit \
	check-sanitize-integration build-asan \
	bench fuzz lint format clean

all: build

deps:
	@scripts/deps.sh

# setup_dir DIR FLAGS: meson setup on first use; meson configure only when FLAGS changed since.
define setup_dir
	@if [ ! -f $(1)/build.ninja ]; then \
		echo "$(MESON) setup $(1) $(2)"; $(MESON) setup $(1) $(2) && echo "$(strip $(2))" >$(1)/.hutch-flags; \
	elif [ "$$(cat $(1)/.hutch-flags 2>/dev/null)" != "$(strip $(2))" ] && [ -n "$(strip $(2))" ]; then \
		echo "$(MESON) configure $(1) $(2)"; $(MESON) configure $(1) $(2) >/dev/null && echo "$(strip $(2))" >$(1)/.hutch-flags; \
	fi
endef

build:
	$(call setup_dir,$(BUILDDIR),$(MESON_FLAGS))
	$(NINJA) -C $(BUILDDIR)

demo: deps build
	@scripts/demo.sh $(BUILDDIR)/hutch

# Unit and integration tests both run even when one fails; the exit status reports either.
check: deps build
	@rc=0; \
	$(MAKE) --no-print-directory check-unit || rc=1; \
	$(MAKE) --no-print-directory check-integration || rc=1; \
	$(MAKE) --no-print-directory lint || rc=1; \
	$(MAKE) --no-print-directory check-sanitize-unit || rc=1; \
	exit $$rc

# The unit tests under ASan + UBSan (the whole suite under sanitizers is check-sanitize).
check-sanitize-unit: build-asan
	$(SAN_ENV) $(MESON) test -C $(ASANDIR) --suite unit --print-errorlogs

check-unit: build
	$(MESON) test -C $(BUILDDIR) --suite unit --print-errorlogs

check-integration: build
	@BUILDDIR=$(BUILDDIR) tests/integration/run.sh

build-asan:
	$(call setup_dir,$(ASANDIR),$(ASAN_FLAGS) $(MESON_FLAGS))
	$(NINJA) -C $(ASANDIR)

check-sanitize: deps build-asan
	@rc=0; \
	$(SAN_ENV) $(MESON) test -C $(ASANDIR) --suite unit --print-errorlogs || rc=1; \
	$(MAKE) --no-print-directory check-sanitize-integration || rc=1; \
	exit $$rc

# The integration suite against the ASan + UBSan build (CI runs it after make check).
check-sanitize-integration: build-asan
	$(SAN_ENV) BUILDDIR=$(ASANDIR) tests/integration/run.sh

# bench/run-all.sh runs every benchmark and writes docs/PERFORMANCE.md; without it, each script.
bench: build
	@set -e; \
	if [ -f bench/run-all.sh ]; then \
		BUILD_DIR=$(abspath $(BUILDDIR)) bash bench/run-all.sh; \
	else \
		found=; \
		for b in bench/*.sh; do \
			[ -f "$$b" ] && [ "$$b" != bench/lib.sh ] || continue; found=1; \
			echo "== $$b"; bash "$$b"; \
		done; \
		[ -n "$$found" ] || echo "bench: no bench/*.sh yet"; \
	fi

fuzz:
	@if [ -f fuzz/run.sh ]; then \
		FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_JOBS=$(FUZZ_JOBS) bash fuzz/run.sh; \
	else \
		echo "fuzz: no fuzz/run.sh yet"; \
	fi

lint:
	$(CLANG_FORMAT) --dry-run --Werror $$(find $(FORMAT_DIRS) -name '*.[ch]' 2>/dev/null | sort)
	$(CPPCHECK) --error-exitcode=1 --quiet --inline-suppr -D_GNU_SOURCE -I src/lib -I src/proto -I src $(LINT_DIRS)

format:
	$(CLANG_FORMAT) -i $$(find $(FORMAT_DIRS) -name '*.[ch]' 2>/dev/null | sort)

clean:
	rm -rf $(BUILDDIR) $(ASANDIR) build-fuzz
