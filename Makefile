# dm-stash: top-level Makefile.
#
#   make               the module (kmod/dm-stash.ko) and stashctl
#   make deps          install the Debian 12 packages everything here needs
#   make check         build, unit tests, then the test suite in a QEMU VM
#                      (TEST="name ..." runs only those tests; KERNEL=6.12,
#                      6.12-rt or 6.1-rt boots that kernel instead of 6.1)
#   make check-kernels the suite on 6.1, then on 6.12 (KERNELS=...)
#   make check-core    the data-path, persistence and crash tests (KERNEL=...)
#   make check-native  the test suite on this machine (root, module loading)
#   make check-debug   the test suite on a debug kernel (KASAN, lockdep,
#                      kmemleak, fault injection) built once from
#                      linux-source-6.1 into build/debug-kernel (TEST=...;
#                      KERNEL=6.12: from linux-source-6.12)
#   make check-rt      make check KERNEL=6.1-rt (Debian's PREEMPT_RT kernel)
#   make check-fstests fstests (xfstests), built once into build/fstests, on
#                      stash volumes in each mode and on dm-linear, ext4 and
#                      xfs, in the VM; results in docs/fstests.md
#                      (FSTESTS="generic/013 ...", FSTESTS_CONFIGS=...,
#                      FSTESTS_FS=...; STASH_LONG=1 for the long list)
#   make check-fstests-ci  CI's share of it: seven tests on ext4 over a
#                      write-back volume, in at most 6 minutes of VM time
#   make demo          a stash volume on a slow disk, in the VM, with a report
#   make bench         dm-stash against the peers (docs/bench; bench-long,
#                      bench-real: two vCPUs on the real clock, bench-scale:
#                      large caches and many volumes; make -C bench/sim
#                      policy: the policy against OPT, LRU and ARC)
#   make lint          checkpatch, sparse, strict userspace build, the
#                      tunables' documentation against their table, no
#                      file but kmod/stash-map.[ch] inside the map, none
#                      but writeback's inside writeback, none but
#                      kmod/stash-metadata.[ch] inside the metadata
#   make check-build   dkms build, and W=1 builds for the generic, cloud and
#                      rt headers of 6.1 and 6.12 (no VM; 6.12 trees not
#                      installed are unpacked into build/k612)
#   make deb           Debian packages dm-stash-dkms and stashctl (build/deb)
#   make install       module, stashctl, man page, completion, udev rule
#                      (DESTDIR, PREFIX, KVER); make uninstall removes them
#   make unit          userspace unit tests (tests/unit)
#   make clean
#
# KDIR is the kernel build tree: the running kernel's if it has one, else
# the one of the kernel the test VM boots (VM_KVER, below), else the newest
# generic 6.1 /usr/src/linux-headers-*-amd64, else the newest generic one
# (not -rt, not -cloud).  So 6.12 headers installed beside 6.1 do not
# become the default.  Give KDIR=... to override.

KDIR ?= $(shell if [ -d /lib/modules/$$(uname -r)/build ]; then echo /lib/modules/$$(uname -r)/build; \
	elif [ -n "$(VM_KVER)" ] && [ -d /lib/modules/$(VM_KVER)/build ]; then echo /lib/modules/$(VM_KVER)/build; \
	else h=$$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | grep -Ev -- '-(rt|cloud)-amd64$$' | sort -V); \
	{ grep -- '/linux-headers-6\.1\.' <<<"$$h" || echo "$$h"; } | tail -n1; fi)

# The kernel the test VM boots (newest generic Debian 6.1 image: not a 6.12
# image installed beside it) and, unless KDIR was given, the build tree
# that matches it, so that the VM can load the module.
VM_KVER ?= $(shell ls /boot/vmlinuz-6.1.*-amd64 2>/dev/null | sed 's|^/boot/vmlinuz-||' | grep -Ev -- '-(rt|cloud)-amd64$$' | sort -V | tail -n1)
ifeq ($(origin KDIR),file)
VM_KDIR = $(or $(realpath /lib/modules/$(VM_KVER)/build),$(KDIR))
else
VM_KDIR = $(KDIR)
endif

TEST     ?=
VM_ARGS  ?=
# make check: the whole suite runs in one VM: 26 to 36 minutes of test time
# here, and CI's machines have been up to 1.3 times slower (one run was
# stopped at 45 minutes two tests before the end); the limit allows for that.
VM_TIMEOUT ?= 3600
SHELL    := /bin/bash

# check-debug: the debug kernel's build folder (also the KDIR the module is
# built against), the per-test and whole-run timeouts (the debug kernel is
# several times slower under emulation).
DEBUG_SERIES        = $(if $(filter 6.12%,$(KERNEL)),6.12,6.1)
DEBUG_KDIR         ?= $(CURDIR)/build/debug-kernel$(if $(filter 6.12,$(DEBUG_SERIES)),-6.12)
DEBUG_TEST_TIMEOUT ?= 3600
DEBUG_VM_TIMEOUT   ?= 21600
# Unmerged slab caches (the module's own kmem_cache keeps its name in
# /sys/kernel/slab and its objects count); failslab may fail it and the
# kmalloc caches (6.1 sets that only at boot: /sys/kernel/slab/*/failslab
# is read-only).
DEBUG_VM_APPEND    ?= slab_nomerge slub_debug=A,stash_job,kmalloc-*
# KERNEL: the kernel make check and make demo boot (tests/vm/get-kernel.sh):
# 6.1 (Debian's generic 6.1, installed by make deps; the module is built
# against KDIR, see above), 6.1-rt, 6.12 or 6.12-rt (downloaded and
# unpacked into build/kernels, the module built against their headers).
# The rt kernels run slower: their whole-run limit is RT_VM_TIMEOUT.
KERNEL             ?= 6.1
KERNELS            ?= 6.1 6.12
RT_VM_TIMEOUT      ?= 7200
KERNEL_VM_TIMEOUT   = $(if $(filter %-rt,$(KERNEL)),$(RT_VM_TIMEOUT),$(VM_TIMEOUT))

# make check-build's 6.12 trees are downloaded and unpacked into build/k612
# by tests/build/get-612-headers.sh, not installed: each 6.12 headers package
# pulls its kernel image in, three kernels and initramfs builds for CI.
DEPS := build-essential perl qemu-system-x86 linux-image-amd64 \
	linux-headers-amd64 fio busybox-static cpio dmsetup libdevmapper-dev \
	e2fsprogs xfsprogs sparse kmod linux-source-6.1 gnuplot-nox jq \
	xz-utils zstd util-linux procps dkms linux-headers-cloud-amd64 \
	linux-headers-rt-amd64 nbd-server nbd-client mdadm
# What building the debug kernel needs on top.
DEBUG_DEPS := bc bison flex libelf-dev libssl-dev dwarves
# What building and running fstests needs on top (its README's list, less
# what only other filesystems, other tests or an install need).
FSTESTS_DEPS := autoconf automake libtool gawk make gcc xfslibs-dev libaio-dev \
	liburing-dev libattr1-dev libacl1-dev libgdbm-dev libcap-dev uuid-dev \
	libinih-dev attr acl quota dbench xfsdump bc psmisc fio python3

LINUX_SRC        := /usr/src/linux-source-6.1
LINUX_SRC_TARBALL := /usr/src/linux-source-6.1.tar.xz
CHECKPATCH_DIR   := build/checkpatch
CHECKPATCH_FILES := checkpatch.pl spelling.txt const_structs.checkpatch
LINT_SOURCES = $(filter-out %.mod.c,$(wildcard kmod/*.c)) $(wildcard kmod/*.h) \
	       $(wildcard kmod/uapi/linux/*.h)

all: module tools

module: have-kdir
	$(MAKE) -C $(KDIR) M=$(CURDIR) W=1 modules

tools:
	$(MAKE) -C userspace-tools

have-kdir:
	@if [ -z "$(KDIR)" ] || [ ! -d "$(KDIR)" ]; then \
		echo "No kernel build tree (KDIR='$(KDIR)'): run 'make deps' or give KDIR=..." >&2; \
		exit 1; \
	fi

# Install what is missing; quick when nothing is.
deps:
	@missing=$$(for p in $(DEPS); do \
		dpkg-query -W -f='$${Status}\n' "$$p" 2>/dev/null | \
			grep -q '^install ok installed$$' || echo "$$p"; \
	done); \
	if [ -z "$$missing" ]; then \
		echo "deps: all installed"; \
	else \
		echo "deps: installing" $$missing; \
		if [ "$$(id -u)" != 0 ]; then echo "deps: need root to install packages" >&2; exit 1; fi; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -q && \
		apt-get install -y -q --no-install-recommends $$missing; \
	fi

unit:
	$(MAKE) -C tests/unit
	$(MAKE) -C bench/sim

# Userspace helpers the crash and metadata tests run (tests/tools).
tests-tools:
	$(MAKE) -C tests/tools

# Each step is a sub-make so that the variables above are evaluated after
# "deps" has installed the kernel and its headers on a fresh machine.  The VM
# suite runs even when a unit test failed; the target fails if either did.
check:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory vm-build
	@$(MAKE) --no-print-directory tests-tools
	@unit=0; $(MAKE) --no-print-directory unit || unit=1; \
	$(MAKE) --no-print-directory vm-check; vm=$$?; \
	[ $$unit = 0 ] || echo "check: unit tests FAILED" >&2; \
	[ $$vm = 0 ] || echo "check: VM test suite FAILED" >&2; \
	[ $$unit = 0 ] && [ $$vm = 0 ]

# KERNEL=6.1 boots the installed 6.1 image (VM_KVER) with the module built
# against VM_KDIR; any other KERNEL boots what tests/vm/get-kernel.sh
# unpacked, with the module built against that kernel's headers.
vm-build:
	@set -e; if [ "$(KERNEL)" = 6.1 ]; then \
		$(MAKE) --no-print-directory all KDIR=$(VM_KDIR); \
	else \
		info=$$(tests/vm/get-kernel.sh $(KERNEL)); \
		pahole=$$(sed -n 5p <<<"$$info"); \
		$(MAKE) --no-print-directory all KDIR=$$(sed -n 4p <<<"$$info") \
			$${pahole:+PAHOLE=$$pahole}; \
	fi

# The VM's kernel for KERNEL, as run-vm.sh's STASH_VM_* variables, checked
# against the module vm-build left (a shell prefix: "$(VM_ENV) cmd").
VM_ENV = set -e; if [ "$(KERNEL)" = 6.1 ]; then \
		export STASH_VM_KVER=$(VM_KVER); \
	else \
		info=$$(tests/vm/get-kernel.sh $(KERNEL)); \
		export STASH_VM_KVER=$$(sed -n 1p <<<"$$info") \
			STASH_VM_KERNEL=$$(sed -n 2p <<<"$$info") \
			STASH_VM_MODDIR=$$(sed -n 3p <<<"$$info") \
			BENCH_KDIR=$$(sed -n 4p <<<"$$info") \
			BENCH_PAHOLE=$$(sed -n 5p <<<"$$info"); \
	fi; \
	[ -n "$$BENCH_MODULE_REV" ] || \
	modinfo -F vermagic kmod/dm-stash.ko | grep -q "^$$STASH_VM_KVER " || \
		{ echo "kmod/dm-stash.ko is not built for $$STASH_VM_KVER (make vm-build KERNEL=$(KERNEL))" >&2; exit 1; };
VM_RUN = $(VM_ENV) tests/vm/run-vm.sh

vm-check:
	@$(VM_RUN) --timeout $(KERNEL_VM_TIMEOUT) $(VM_ARGS) -- tests/run $(TEST)

# The data-path, write-back, error, persistence and crash tests: what CI
# runs on its second kernel (make check-core KERNEL=6.12: about 12 minutes
# of test time, which CI's time limit allows beside the whole suite on 6.1).
CORE_TESTS ?= 03-fio-verify 20-engine-fio-verify 21-writearound 22-writethrough \
	26-discard 29-multiblock-runs 33-wb-power-cut 35-wb-flush-fua \
	37-wb-fua-race 38-wb-suspend-remove 40-err-cache-writes 41-err-origin \
	45-err-metadata 46-err-cache-flush 47-wb-flush-parked \
	50-persist-reload 51-persist-power-cut 52-persist-log-writes \
	53-persist-two-logs 55-persist-fsync-writeback 57-persist-multi-commit \
	58-flush-origin-remapped 59-persist-flush-under-load 66-csum-flip

check-core:
	@$(MAKE) --no-print-directory check TEST="$(CORE_TESTS)"

# The whole suite on each of KERNELS in turn; fails if any run did.
check-kernels:
	@fail=; for k in $(KERNELS); do \
		echo "=== check-kernels: KERNEL=$$k"; \
		$(MAKE) --no-print-directory check KERNEL=$$k || fail="$$fail $$k"; \
	done; \
	[ -z "$$fail" ] || { echo "check-kernels: FAILED on$$fail" >&2; exit 1; }

check-native:
	@if [ ! -e /proc/modules ]; then \
		echo "check-native: this kernel cannot load modules (no /proc/modules);" \
		     "use 'make check' to run the tests in a VM" >&2; \
		exit 1; \
	fi
	@if [ "$$(id -u)" != 0 ]; then echo "check-native: must run as root" >&2; exit 1; fi
	@$(MAKE) --no-print-directory all tests-tools
	tests/run $(TEST)

# The debug lane: the kernel is built once (tests/vm/build-debug-kernel.sh
# keeps it until its config fragment changes), the module is built against
# it, and the suite runs with longer timeouts.  The runner fails a test on a
# KASAN/lockdep/kmemleak report in its kernel log and ends with a kmemleak
# scan (see tests/run).
check-debug:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory deps DEPS="$(DEBUG_DEPS)"
	tests/vm/build-debug-kernel.sh $(DEBUG_SERIES) $(DEBUG_KDIR)
	@$(MAKE) --no-print-directory all KDIR=$(DEBUG_KDIR)
	@$(MAKE) --no-print-directory tests-tools
	kver=$$(cat $(DEBUG_KDIR)/kernelrelease) && \
	STASH_VM_KERNEL=$(DEBUG_KDIR)/arch/x86/boot/bzImage STASH_VM_KVER=$$kver \
	STASH_VM_MODDIR=$(DEBUG_KDIR)/modroot/lib/modules/$$kver \
	STASH_TEST_TIMEOUT=$(DEBUG_TEST_TIMEOUT) STASH_VM_APPEND="$(DEBUG_VM_APPEND)" \
	tests/vm/run-vm.sh --timeout $(DEBUG_VM_TIMEOUT) $(VM_ARGS) -- tests/run $(TEST)

# The PREEMPT_RT lane: Debian's rt kernel (see tests/vm/get-kernel.sh).
check-rt:
	@$(MAKE) --no-print-directory check KERNEL=6.1-rt

demo:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory vm-build
	@$(VM_RUN) $(VM_ARGS) -- tests/demo.sh

# checkpatch.pl with spelling.txt and const_structs.checkpatch beside it,
# from the extracted kernel source or else straight from its tarball.
$(CHECKPATCH_DIR)/checkpatch.pl:
	@mkdir -p $(CHECKPATCH_DIR)
	@if [ -f $(LINUX_SRC)/scripts/checkpatch.pl ]; then \
		for f in $(CHECKPATCH_FILES); do cp $(LINUX_SRC)/scripts/$$f $(CHECKPATCH_DIR)/ || exit; done; \
	elif [ -f $(LINUX_SRC_TARBALL) ]; then \
		echo "lint: extracting checkpatch from $(LINUX_SRC_TARBALL)"; \
		tar -xJf $(LINUX_SRC_TARBALL) -C $(CHECKPATCH_DIR) --strip-components=2 \
			$(addprefix linux-source-6.1/scripts/,$(CHECKPATCH_FILES)); \
	else \
		echo "lint: no linux-source-6.1 (make deps)" >&2; exit 1; \
	fi
	@chmod +x $@

# All three parts run; the target fails at the end if any of them failed.
lint: have-kdir $(CHECKPATCH_DIR)/checkpatch.pl
	@mkdir -p build/lint; fail=; \
	echo "== checkpatch --strict"; \
	perl $(CHECKPATCH_DIR)/checkpatch.pl --no-tree --strict --terse -f \
		$(LINT_SOURCES) || fail+=" checkpatch"; \
	echo "== sparse (C=2 W=1)"; \
	$(MAKE) --no-print-directory -C $(KDIR) M=$(CURDIR) C=2 W=1 modules \
		>build/lint/sparse.log 2>&1 || fail+=" kbuild"; \
	grep -v -e '^make\[[0-9]*\]: ' -e '^  [A-Z]' build/lint/sparse.log; \
	if grep -qE '(^|/)kmod/[^: ]+:[0-9]+(:[0-9]+)?: (warning|error)' build/lint/sparse.log; then \
		fail+=" sparse"; \
	fi; \
	echo "== userspace (-Wall -Wextra -Werror)"; \
	$(MAKE) --no-print-directory -C userspace-tools -B stashctl || fail+=" stashctl"; \
	$(MAKE) --no-print-directory -C userspace-tools lint || fail+=" stashctl-lint"; \
	echo "== tunables documented (stashctl.8, docs/table.md)"; \
	tests/build/check-tunables-docs.sh || fail+=" tunables-docs"; \
	echo "== the map's fields only in kmod/stash-map.[ch]"; \
	tests/build/check-map-private.sh || fail+=" map-private"; \
	echo "== writeback's fields only in kmod/stash-writeback.[ch], stash-throttle.c"; \
	tests/build/check-wb-private.sh || fail+=" wb-private"; \
	echo "== the metadata's fields only in kmod/stash-metadata.[ch]"; \
	tests/build/check-md-private.sh || fail+=" md-private"; \
	echo "== bash -n (completion, scripts)"; \
	for f in userspace-tools/stashctl.bash-completion tests/run tests/*.sh \
		tests/cases/*.sh tests/build/*.sh tests/fstests/*.sh tests/vm/*.sh bench/*.sh bench/scale/*.sh bench/contention/*.sh .ci/run; do \
		bash -n "$$f" || fail+=" bash:$$f"; \
	done; \
	if [ -n "$$fail" ]; then echo "lint: FAILED:$$fail" >&2; exit 1; fi; \
	echo "lint: clean"

clean:
	-[ -z "$(KDIR)" ] || $(MAKE) -C $(KDIR) M=$(CURDIR) clean
	$(MAKE) -C userspace-tools clean
	$(MAKE) -C tests/unit clean
	$(MAKE) -C tests/tools clean
	$(MAKE) -C bench/sim clean
	find build -mindepth 1 -maxdepth 1 ! -name 'debug-kernel*' ! -name src ! -name kernels ! -name k612 -exec rm -rf {} + 2>/dev/null || true

# The debug kernel (a 30-minute build), the unpacked rt kernel and the
# unpacked 6.12 headers survive "make clean"; this removes them.
clean-kernels:
	rm -rf build/debug-kernel build/debug-kernel-6.12 build/src build/kernels build/k612

.PHONY: check-debug check-rt check-kernels check-core all module tools have-kdir deps unit tests-tools check vm-build vm-check \
	check-native demo lint clean clean-kernels

# DKMS build of a copy of the tree and W=1 builds against each Debian 6.1
# and 6.12 header flavour (tests/build/check-build.sh); the 6.12 trees that
# are not installed are unpacked into build/k612 without installing
# (tests/build/get-612-headers.sh).
check-build:
	tests/build/check-build.sh

# Installation.  PREFIX for the tool, its man page and completion; the
# module goes to /lib/modules/$(KVER)/updates (KVER: the kernel KDIR was
# built for) and depmod runs unless DESTDIR is set (a staging tree); the
# udev rule goes where udev reads it for that PREFIX.  "make uninstall"
# with the same variables removes exactly these files.
PREFIX       ?= /usr/local
KVER         ?= $(shell sed -n 's/^\#define UTS_RELEASE "\(.*\)"/\1/p' \
			$(KDIR)/include/generated/utsrelease.h 2>/dev/null)
SBINDIR      ?= $(PREFIX)/sbin
MAN8DIR      ?= $(PREFIX)/share/man/man8
BASHCOMPDIR  ?= $(PREFIX)/share/bash-completion/completions
UDEVRULESDIR ?= $(if $(filter /usr,$(PREFIX)),/lib/udev/rules.d,/etc/udev/rules.d)
MODDIR        = /lib/modules/$(KVER)/updates
UDEV_RULE    := 69-dm-stash.rules
INSTALLED     = $(MODDIR)/dm-stash.ko $(SBINDIR)/stashctl $(MAN8DIR)/stashctl.8 \
		$(BASHCOMPDIR)/stashctl $(UDEVRULESDIR)/$(UDEV_RULE)

install: all
	@[ -n "$(KVER)" ] || { echo "install: no kernel release for KDIR='$(KDIR)'; give KVER=..." >&2; exit 1; }
	install -D -m 0644 kmod/dm-stash.ko $(DESTDIR)$(MODDIR)/dm-stash.ko
	install -D -m 0755 userspace-tools/stashctl $(DESTDIR)$(SBINDIR)/stashctl
	install -D -m 0644 userspace-tools/stashctl.8 $(DESTDIR)$(MAN8DIR)/stashctl.8
	install -D -m 0644 userspace-tools/stashctl.bash-completion \
		$(DESTDIR)$(BASHCOMPDIR)/stashctl
	mkdir -p $(DESTDIR)$(UDEVRULESDIR)
	sed 's|@SBINDIR@|$(SBINDIR)|g' userspace-tools/$(UDEV_RULE).in \
		>$(DESTDIR)$(UDEVRULESDIR)/$(UDEV_RULE)
	chmod 0644 $(DESTDIR)$(UDEVRULESDIR)/$(UDEV_RULE)
	@if [ -z "$(DESTDIR)" ]; then echo "depmod -a $(KVER)"; depmod -a $(KVER); fi

uninstall:
	@[ -n "$(KVER)" ] || { echo "uninstall: no kernel release for KDIR='$(KDIR)'; give KVER=..." >&2; exit 1; }
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	@if [ -z "$(DESTDIR)" ]; then echo "depmod -a $(KVER)"; depmod -a $(KVER); fi

.PHONY: check-build install uninstall

# Debian packages dm-stash-dkms and stashctl (debian/), built from a copy of
# the tracked files in build/deb; the .debs land in build/deb.
deb:
	rm -rf build/deb && mkdir -p build/deb/src
	git ls-files -z | xargs -0 cp --parents -t build/deb/src
	cd build/deb/src && dpkg-buildpackage -us -uc -b
	ls -l build/deb/*.deb

.PHONY: deb

# libFuzzer on the metadata validator (tests/fuzz; needs clang and
# libclang-rt-14-dev): FUZZ_RUNS executions, 1000000 by default.
fuzz:
	$(MAKE) -C tests/fuzz run

.PHONY: fuzz

# QEMU killed in the middle of writes, then recovery (tests/host/hard-kill.sh;
# runs on the host and boots the VM itself).  STASH_HK_ITERATIONS=N.
check-crash:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory vm-build
	@$(MAKE) --no-print-directory tests-tools
	STASH_VM_KVER=$(VM_KVER) tests/host/hard-kill.sh

.PHONY: check-crash

# fstests on stash volumes (tests/fstests/): build fstests once from
# FSTESTS_TARBALL into build/fstests, then run tests/fstests/run-guest.sh
# in the VM.  The guest's results (build/vm/out/fstests) are kept in
# build/fstests/results/<date> (build/fstests/results/last) with their page,
# fstests.md; a run of the whole matrix also rewrites docs/fstests.md.
# FSTESTS, FSTESTS_CONFIGS, FSTESTS_FS pick tests, configurations (linear
# wb wb-vol wt wa and each stash one with -cut0) and filesystems;
# STASH_FSTESTS_TIME the matrix's guest seconds (default 1200; STASH_LONG=1:
# the long list and 14400).  The VM gets FSTESTS_VM_MEM MiB: the null_blk
# devices keep what the tests write in RAM.
# The fstests source: the project's shared copy beside the repo.
FSTESTS_TARBALL    ?= $(firstword $(wildcard $(CURDIR)/../shared/fstests-*.tar.xz) \
			$(CURDIR)/../shared/fstests-63a29724.tar.xz)
FSTESTS_VM_MEM     ?= 4096
FSTESTS_VM_TIMEOUT ?= $(if $(filter 1,$(STASH_LONG)),21600,3600)
FSTESTS            ?=
FSTESTS_CONFIGS    ?=
FSTESTS_FS         ?=

check-fstests:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory deps DEPS="$(FSTESTS_DEPS)"
	FSTESTS_TARBALL="$(FSTESTS_TARBALL)" tests/fstests/build.sh
	@$(MAKE) --no-print-directory vm-build
	@rc=0; \
	$(if $(FSTESTS),export STASH_FSTESTS_TESTS="$(FSTESTS)";) \
	$(if $(FSTESTS_CONFIGS),export STASH_FSTESTS_CONFIGS="$(FSTESTS_CONFIGS)";) \
	$(if $(FSTESTS_FS),export STASH_FSTESTS_FS="$(FSTESTS_FS)";) \
	$(VM_RUN) --timeout $(FSTESTS_VM_TIMEOUT) --mem $(FSTESTS_VM_MEM) $(VM_ARGS) \
		-- tests/fstests/run-guest.sh || rc=$$?; \
	out=$${STASH_VM_DIR:-build/vm}/out/fstests; \
	if [ -f "$$out/results.tsv" ]; then \
		d=build/fstests/results/$$(date +%Y%m%d-%H%M%S); \
		mkdir -p "$$d" && cp -r "$$out/." "$$d/" && ln -sfn "$${d##*/}" build/fstests/results/last && \
		tests/fstests/report.py "$$d" -o "$$d/fstests.md" --docs docs/fstests.md && \
		echo "check-fstests: results in $$d (fstests.md)" || rc=1; \
	fi; \
	exit $$rc

# CI's stage: ext4 on write-back without the sequential cutoff (the
# configuration that puts the most through the cache), the quicker tests of
# the default list (fsync and power cuts with dm-flakey, fsx buffered,
# O_DIRECT and AIO, fsstress), at most FSTESTS_CI_TIME seconds of guest
# time.  Without the fstests source (FSTESTS_TARBALL) it says so and passes.
FSTESTS_CI_TESTS ?= generic/321 generic/075 generic/091 generic/198 \
		    generic/335 generic/207 generic/013
FSTESTS_CI_TIME  ?= 360

check-fstests-ci:
	@if [ ! -f "$(FSTESTS_TARBALL)" ]; then \
		echo "check-fstests-ci: skipped: no fstests source at $(FSTESTS_TARBALL)"; \
		exit 0; \
	fi; \
	STASH_FSTESTS_TIME=$(FSTESTS_CI_TIME) $(MAKE) --no-print-directory \
		check-fstests FSTESTS="$(FSTESTS_CI_TESTS)" \
		FSTESTS_CONFIGS=wb-cut0 FSTESTS_FS=ext4

.PHONY: check-fstests check-fstests-ci

# Benchmark: dm-stash against the raw devices, dm-linear, dm-cache,
# dm-writecache and bcache, all in one VM boot (bench/run.sh; report in
# docs/bench/).  bench-long: longer runs, 3 repetitions.
# BENCH_MODULE_REV=<commit> measures that commit's module instead of the
# work tree's (see bench/run.sh for the other BENCH_* settings).  KERNEL
# as for make check.
bench:
	@$(MAKE) --no-print-directory deps
	@[ -n "$$BENCH_MODULE_REV" ] || $(MAKE) --no-print-directory vm-build
	@$(VM_ENV) BENCH_BUILD=0 BENCH_COMMAND="make bench$(if $(filter-out 6.1,$(KERNEL)), KERNEL=$(KERNEL))" bench/run.sh quick

bench-long:
	@$(MAKE) --no-print-directory deps
	@[ -n "$$BENCH_MODULE_REV" ] || $(MAKE) --no-print-directory vm-build
	@$(VM_ENV) BENCH_BUILD=0 BENCH_COMMAND="make bench-long$(if $(filter-out 6.1,$(KERNEL)), KERNEL=$(KERNEL))" bench/run.sh long

.PHONY: bench bench-long

# Lock contention under many CPUs: CONTENTION_CPUS vCPUs (multi-threaded TCG,
# the host's clock), fio jobs of read hits and write-back write hits,
# spinlock contentions in the module's stacks per million I/Os
# (bench/contention/guest.sh).  STASH_CONTENTION_MODULES="label:/path/dm-stash.ko
# ..." compares modules in one boot (default: the work tree's).
CONTENTION_CPUS ?= 8

bench-contention:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory vm-build
	@$(VM_ENV) export STASH_VM_SMP=$(CONTENTION_CPUS); \
	tests/vm/run-vm.sh --timeout 3600 $(VM_ARGS) -- bench/contention/guest.sh

.PHONY: bench-contention

# The real-clock variant of the hit and write-back workloads: two vCPUs on
# the host's clock (what the virtual clock leaves out: I/O submitted and
# completed on more than one CPU), dm-stash beside dm-linear; the report
# in docs/bench/real/ (targets: read hits and write-back 4 KiB writes at
# qd 16 >= 0.95x dm-linear).
BENCH_REAL_SYSTEMS   ?= linear-fast stash-wt stash-wb
BENCH_REAL_WORKLOADS ?= randread-4k-qd16 randread-4k-qd1 randwrite-4k-qd16

bench-real:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory vm-build
	@$(VM_ENV) BENCH_BUILD=0 BENCH_CLOCK=real BENCH_MEMORY=0 \
		BENCH_SYSTEMS="$(BENCH_REAL_SYSTEMS)" BENCH_WORKLOADS="$(BENCH_REAL_WORKLOADS)" \
		BENCH_REPORT_DIR=$${BENCH_REPORT_DIR:-docs/bench/real} \
		BENCH_COMMAND="make bench-real$(if $(filter-out 6.1,$(KERNEL)), KERNEL=$(KERNEL))" bench/run.sh quick

# Scale: large caches (256 MiB and 256 GiB of 4 KiB blocks, 256 GiB of
# 64 KiB blocks) and many volumes, in one VM boot on the bench's virtual
# clock (bench/scale/guest.sh); the page: docs/bench/scale.md (with
# STASH_SCALE_CONFIGS or STASH_SCALE_VOLUMES changed (the guest sees only
# STASH_* variables): build/bench/scale/last/scale.md).
SCALE_VM_MEM     ?= 8192
SCALE_VM_TIMEOUT ?= 7200

bench-scale:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory vm-build
	@$(MAKE) --no-print-directory tests-tools
	@set -e; $(VM_ENV) export STASH_VM_ACCEL=tcg STASH_VM_SMP=1 STASH_VM_ICOUNT=shift=3; \
	tests/vm/run-vm.sh --timeout $(SCALE_VM_TIMEOUT) --mem $(SCALE_VM_MEM) $(VM_ARGS) \
		-- bench/scale/guest.sh; \
	out=$${STASH_VM_DIR:-build/vm}/out/scale; \
	d=build/bench/scale/$$(date +%Y%m%d-%H%M%S); \
	mkdir -p "$$d" && cp -r "$$out/." "$$d/" && ln -sfn "$${d##*/}" build/bench/scale/last; \
	page=$$d/scale.md; \
	if [ -z "$$STASH_SCALE_CONFIGS$$STASH_SCALE_VOLUMES" ]; then page=docs/bench/scale.md; fi; \
	bench/scale/report.py "$$d/results.tsv" -o "$$page" \
		--command "make bench-scale$(if $(filter-out 6.1,$(KERNEL)), KERNEL=$(KERNEL))"

.PHONY: bench-scale bench-real
