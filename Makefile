# mmtrust: one non-recursive Makefile for the whole tree.
#
#   make            build mmtrustd, mmtrustctl, libmmtrust, the Lua and Python
#                   modules (bindings/bindings.mk, docs/bindings.md)
#   make check      every test that runs on this machine (unit, integration,
#                   netns, and the VM tier: a real kernel with ESP under qemu)
#   make check-vm   only the VM tier
#   make lib-check  libmmtrust as a CSCF builds against it (header, pkg-config, links)
#   make install    PREFIX (/usr/local), DESTDIR, SYSCONFDIR, UNITDIR ... (docs/install.md)
#   make deb-check  the Debian packages: built, lintian, installed, checked, purged
#   make demo       the main job on embedded defaults, in a throw-away namespace
#   make bench      the benchmarks under bench/
#   make soak       10k partners under mixed load for ten minutes (tests/soak/soak.py;
#                   SOAK_SECONDS, SOAK_SEED, SOAK_PARTNERS, SOAK_TUNNEL_SHARE)
#   make model-soak the model test for ten minutes (MODEL_SECONDS, MODEL_SEED)
#   make asan       unit, integration and netns tiers under ASan, LSan, UBSan
#   make fuzz       every libFuzzer target for FUZZ_SECONDS (60) each
#   make V=1        show the full commands
#
# The first build installs missing Debian packages (scripts/deps.sh), so a
# clean clone on a fresh Debian 12 machine needs nothing but make and root.

BUILD   ?= build
CC      ?= cc
CFLAGS  ?= -O2 -g
WARN     = -std=gnu11 -Wall -Wextra -Wshadow -Wmissing-prototypes -Wformat=2 -Werror
CPPFLAGS += -D_GNU_SOURCE -MMD -MP
PREFIX  ?= /usr/local
LIBDIR  ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR  ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
DATAROOTDIR ?= $(PREFIX)/share
MANDIR  ?= $(DATAROOTDIR)/man
DOCDIR  ?= $(DATAROOTDIR)/doc/mmtrust
# PREFIX=/usr: the system's places; otherwise under PREFIX, where systemd
# looks as well (/usr/local/lib/systemd/system, .../sysusers.d, .../tmpfiles.d).
ifeq ($(PREFIX),/usr)
SYSCONFDIR  ?= /etc
systemd_var  = $(or $(shell pkg-config --variable=$(1) systemd 2>/dev/null),$(2))
UNITDIR     ?= $(call systemd_var,systemdsystemunitdir,/lib/systemd/system)
SYSUSERSDIR ?= $(call systemd_var,sysusersdir,/usr/lib/sysusers.d)
TMPFILESDIR ?= $(call systemd_var,tmpfilesdir,/usr/lib/tmpfiles.d)
BASHCOMPDIR ?= /usr/share/bash-completion/completions
else
SYSCONFDIR  ?= $(PREFIX)/etc
UNITDIR     ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
BASHCOMPDIR ?= $(DATAROOTDIR)/bash-completion/completions
endif
# dist/ names the packaged paths (/usr/sbin/mmtrustd, /etc/mmtrust):
# installed, they name where this install puts them.
DIST_SED = sed -e 's|/usr/sbin/mmtrustd|$(SBINDIR)/mmtrustd|g' -e 's|/etc/mmtrust|$(SYSCONFDIR)/mmtrust|g'
DOC_FILES = $(wildcard docs/*.md)

ifeq ($(V),1)
Q :=
else
Q := @
endif

# pkg-config runs lazily (recursive '=' variables), after deps.sh has
# installed the -dev packages.
PKGS_POLICY  = jansson sqlite3 libcrypto libpq
PKGS_NETLINK = libmnl
PKGS_DAEMON  = libsystemd inih libnl-route-3.0
PKGS_CLI     = yaml-0.1 jansson
pc_cflags = $(shell pkg-config --cflags $(1))
pc_libs   = $(shell pkg-config --libs $(1))

DEPS_STAMP := $(BUILD)/.deps-ok

POLICY_SRC  := $(wildcard policy/*.c)
NETLINK_SRC := $(wildcard netlink/*.c)
VICI_SRC    := $(wildcard vici-plugins/*.c)
DAEMON_SRC  := $(wildcard daemon/*.c)
CLI_SRC     := $(wildcard cli/*.c)
CLIENT_SRC  := $(wildcard client/*.c)
# libmmtrust answers from the snapshot with the daemon's own code: the
# format, the decision and what they need (no CA, store or JSON parser).
CLIENT_POLICY := policy/snapshot.c policy/privacy.c policy/addr.c policy/names.c \
	policy/jsonfmt.c policy/spi.c policy/err.c
UNIT_SRC    := $(wildcard tests/unit/test_*.c)
UNIT_HELP   := $(filter-out $(UNIT_SRC),$(wildcard tests/unit/*.c))
BENCH_SRC   := $(wildcard bench/*.c)
NETNS_SRC   := $(wildcard tests/netns/*.c)

obj = $(patsubst %.c,$(BUILD)/%.o,$(1))

LIBPOLICY  := $(BUILD)/libmmpolicy.a
LIBNETLINK := $(BUILD)/libmmnetlink.a
LIBVICI    := $(BUILD)/libmmvici.a
LIBCLIENT_A  := $(BUILD)/libmmtrust.a
# The soname's number changes whenever struct mmtrust_answer or a call's
# contract does (1: the answer names its subject and source).
LIBCLIENT_SONAME := libmmtrust.so.1
LIBCLIENT_SO := $(BUILD)/$(LIBCLIENT_SONAME)
LIBCLIENT_LINK := $(BUILD)/libmmtrust.so
LIBCLIENT_PC := $(BUILD)/mmtrust.pc
FAILCLIENT := $(BUILD)/tests/client/failclient
MMTRUSTD   := $(BUILD)/mmtrustd
MMTRUSTCTL := $(BUILD)/mmtrustctl
UNIT_BINS  := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(UNIT_SRC))
BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))
NETNS_BINS := $(patsubst tests/netns/%.c,$(BUILD)/tests/netns/%,$(NETNS_SRC))

ALL_CFLAGS = $(WARN) $(CFLAGS) -I. \
	$(call pc_cflags,$(PKGS_POLICY) $(PKGS_NETLINK) $(PKGS_DAEMON) $(PKGS_CLI) check)

.PHONY: all check check-vm unit integration netns demo bench asan asan-tiers clean deps install soak \
	model-soak fuzz lib-check FORCE install-man deb-check
.DEFAULT_GOAL := all

all: $(MMTRUSTD) $(MMTRUSTCTL) $(LIBCLIENT_A) $(LIBCLIENT_SO) $(LIBCLIENT_LINK) $(LIBCLIENT_PC) bindings

deps: $(DEPS_STAMP)
# NO_DEPS=1: no package installs (the Debian package build: Build-Depends
# brings them, without network).
$(DEPS_STAMP): scripts/deps.sh
	$(Q)$(if $(filter 1 yes,$(NO_DEPS)),:,bash scripts/deps.sh)
	$(Q)mkdir -p $(@D) && touch $@

$(BUILD)/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -fPIC -c -o $@ $<

$(LIBPOLICY): $(call obj,$(POLICY_SRC))
$(LIBNETLINK): $(call obj,$(NETLINK_SRC))
$(LIBVICI): $(call obj,$(VICI_SRC))
$(LIBCLIENT_A): $(call obj,$(CLIENT_SRC) $(CLIENT_POLICY))
$(LIBPOLICY) $(LIBNETLINK) $(LIBVICI) $(LIBCLIENT_A):
	@mkdir -p $(@D)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && $(AR) rcs $@ $^

# Only the calls of mmtrust.h are exported (client/libmmtrust.map).  -z defs:
# every symbol the library needs comes from a library it names (jansson,
# libc), so Requires.private in mmtrust.pc stays complete; not under the
# sanitizers, whose runtime the program brings.
CLIENT_ZDEFS = $(if $(findstring -fsanitize,$(CFLAGS)),,-Wl,-z,defs)
$(LIBCLIENT_SO): $(call obj,$(CLIENT_SRC) $(CLIENT_POLICY)) client/libmmtrust.map
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) -shared -Wl,-soname,$(LIBCLIENT_SONAME) \
		-Wl,--version-script=client/libmmtrust.map $(CLIENT_ZDEFS) \
		-o $@ $(filter %.o,$^) $(call pc_libs,jansson)

# The development link, next to the library as an installed copy has it.
$(LIBCLIENT_LINK): $(LIBCLIENT_SO)
	$(Q)ln -sfn $(LIBCLIENT_SONAME) $@

# mmtrust.pc holds PREFIX, LIBDIR and INCLUDEDIR: the stamp changes (and
# the .pc is made again) whenever one of them differs from the last make.
PC_DIRS = $(PREFIX) $(LIBDIR) $(INCLUDEDIR)
$(BUILD)/.pc-dirs: FORCE
	@mkdir -p $(@D)
	$(Q)echo '$(PC_DIRS)' | cmp -s - $@ || echo '$(PC_DIRS)' > $@
FORCE:

$(LIBCLIENT_PC): client/mmtrust.pc.in $(BUILD)/.pc-dirs
	@mkdir -p $(@D)
	$(Q)sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
		-e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' $< > $@

DAEMON_LIBS = $(LIBVICI) $(LIBNETLINK) $(LIBPOLICY)
$(MMTRUSTD): $(call obj,$(DAEMON_SRC)) $(DAEMON_LIBS)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(call pc_libs,$(PKGS_DAEMON) $(PKGS_NETLINK) $(PKGS_POLICY))

# libmmpolicy only for what cli/ may use of it (policy/grow.h).
$(MMTRUSTCTL): $(call obj,$(CLI_SRC)) $(LIBCLIENT_A) $(LIBPOLICY)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(call pc_libs,$(PKGS_CLI))

# Unit tests: one binary per tests/unit/test_*.c, linked with the policy
# library, the shared test helpers and, where a test names them in
# EXTRA_<test>, objects of other folders.
.SECONDEXPANSION:
CLI_LIBOBJ    = $(call obj,$(filter-out cli/mmtrustctl.c,$(CLI_SRC)))
DAEMON_LIBOBJ = $(call obj,$(filter-out daemon/mmtrustd.c,$(DAEMON_SRC)))
EXTRA_test_tablefile = $(call obj,cli/tablefile.c)
EXTRA_test_vici = $(LIBVICI)
EXTRA_test_vici_charon = $(LIBVICI)
EXTRA_test_spd_desired = $(call obj,daemon/spd_desired.c) $(LIBNETLINK)
# kernel_audit over scripted XFRM dumps (replaced at link time).
EXTRA_test_kernel_audit = $(DAEMON_LIBOBJ) $(LIBVICI) $(LIBNETLINK)
EXTRA_test_host_plan = $(call obj,daemon/host_plan.c)
$(BUILD)/tests/unit/test_kernel_audit: TEST_LIBS += -Wl,--wrap=mm_xfrm_policy_dump \
	-Wl,--wrap=mm_xfrm_sa_dump
EXTRA_test_jsonl_peer = $(call obj,daemon/jsonl.c daemon/log.c daemon/backoff.c)
EXTRA_test_jsonl_poll = $(call obj,daemon/jsonl.c daemon/log.c daemon/backoff.c)
EXTRA_test_ike_tunnels = $(call obj,daemon/ike_tunnels.c)
EXTRA_test_backoff = $(call obj,daemon/backoff.c)
EXTRA_test_event = $(call obj,daemon/event.c daemon/log.c daemon/backoff.c)
TEST_LIBS = $(call pc_libs,check $(PKGS_DAEMON) $(PKGS_NETLINK) $(PKGS_POLICY) $(PKGS_CLI)) -lm
$(BUILD)/tests/unit/%: $(BUILD)/tests/unit/%.o $(call obj,$(UNIT_HELP)) $$(EXTRA_$$*) $(LIBPOLICY)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(TEST_LIBS)

# Benchmarks and netns test drivers: EXTRA_<name> names what else they link.
SPD_OBJ = $(call obj,$(wildcard daemon/spd*.c) daemon/backoff.c)
EXTRA_reconcile = $(SPD_OBJ) $(LIBNETLINK)
# the in-process answers of libmmtrust
EXTRA_query = $(LIBCLIENT_A)
EXTRA_test_spd = $(SPD_OBJ) $(call obj,tests/unit/mkpartner.c)
$(BUILD)/bench/%: $(BUILD)/bench/%.o $$(EXTRA_$$*) $(LIBPOLICY)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(TEST_LIBS)

$(BUILD)/tests/netns/%: $(BUILD)/tests/netns/%.o $$(EXTRA_$$*) $(LIBNETLINK) $(LIBPOLICY)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(TEST_LIBS)

# The unit and integration tiers run MM_JOBS tests at once (default the
# number of cores, at most 4; tests/lib/parallel.sh), each one's output
# printed whole when it ends.  The integration tests that measure the
# machine run after the others, alone (tests/integration/run.sh).
unit: $(UNIT_BINS)
	$(Q)bash tests/unit/run.sh $(UNIT_BINS)

# vici-plugins against a real charon (root, strongswan-charon): an
# integration test, run by tests/integration/test_vici_charon.sh.
VICI_CHARON := $(BUILD)/tests/integration/vici_charon
$(VICI_CHARON): $(call obj,tests/integration/vici_charon.c) $(call obj,$(UNIT_HELP)) $(LIBVICI) $(LIBPOLICY)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(TEST_LIBS)

# libmmtrust's in-process answers against the daemon's, for
# tests/integration/test_snapshot.sh.
SNAPCLIENT := $(BUILD)/tests/integration/snapclient
$(SNAPCLIENT): $(call obj,tests/integration/snapclient.c) $(LIBCLIENT_A)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(call pc_libs,jansson)


# The client library's failure test driver (tests/integration/test_client_failure.sh).
$(FAILCLIENT): $(call obj,tests/client/failclient.c) $(LIBCLIENT_A)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) -o $@ $^ $(call pc_libs,jansson)

# libmmtrust as a CSCF builds against it: the header under C99 and C++
# with every warning, make install into a scratch DESTDIR, a shared and a
# static link through pkg-config, the exported symbols, the soname and
# link, mmtrust.pc following PREFIX (tests/client/test_package.sh).
lib-check: all
	$(Q)bash tests/client/test_package.sh $(BUILD)

integration: all $(VICI_CHARON) $(SNAPCLIENT) $(FAILCLIENT)
	$(Q)bash tests/integration/run.sh $(BUILD)

netns: all $(NETNS_BINS)
	$(Q)bash tests/netns/run.sh $(BUILD)

# The VM tier: Debian's kernel under qemu, where ESP, charon and real
# traffic work (this machine's kernel has no ESP).  One boot runs every
# tests/vm/test_*.sh; see tests/vm/README.md.
check-vm: all
	$(Q)bash tests/vm/run.sh

check: unit lib-check deb-check integration netns check-vm
	@echo "make check: all tests passed"

# The soak (tests/soak/soak.py): mmtrustd with SOAK_PARTNERS (10000)
# partners for SOAK_SECONDS (600) under queries checked against a
# reference, admin changes, foreign policy churn, SIGHUPs and charon
# restarts (the fake charon); RSS, fds and log volume bounded, everything in
# sync at the end.  The seed is printed, SOAK_SEED repeats a run.
soak: all
	$(Q)/usr/bin/python3 tests/soak/soak.py $(BUILD)

# The model test for long (tests/model/model.py): random table changes
# against the real daemon for MODEL_SECONDS (600); the seed is printed,
# MODEL_SEED repeats a run.
model-soak: all
	$(Q)/usr/bin/python3 tests/model/model.py --seconds $${MODEL_SECONDS:-600} $(BUILD)

bench: all $(BENCH_BINS)
	$(Q)set -e; for b in $(BENCH_BINS); do echo "== $$b"; $$b; done; \
	for b in bench/*.sh; do echo "== $$b"; bash $$b $(BUILD); done

demo: all
	$(Q)bash scripts/demo.sh $(BUILD)

# make asan: the whole tree built into build-asan with AddressSanitizer
# (LeakSanitizer included) and UBSan, where undefined behaviour is fatal, then
# the unit, integration and netns tiers on that build.  Reports go to files
# (log_path), not to stderr: a report from a daemon a test started in the
# background, or from a program whose failure the test expected, still fails
# the run, because after each tier any file in $(SAN_LOGS) is printed and the
# run stops.  The directory is world-writable for the tests that run a program
# as nobody.  clang, because GCC 12's UBSan runtime (a library apart from
# ASan's) ignores log_path and writes to stderr only.  Time bounds are scaled
# (CK_TIMEOUT_MULTIPLIER; MM_SLOW in tests/lib/common.sh): the sanitized code
# runs two to three times slower.
ASAN_BUILD  := build-asan
ASAN_CFLAGS := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined \
	-fno-omit-frame-pointer
SAN_LOGS     = $(abspath $(BUILD))/sanitizer
SAN_OPTIONS  = halt_on_error=1:log_path=$(SAN_LOGS)/report
# LeakSanitizer stops the process's threads with ptrace: SAN_LEAKS=0 where
# that is forbidden (it then reports a fatal error of its own).
SAN_LEAKS   ?= 1
# The integration tests that measure the machine (tests/integration/run.sh
# names them, ALONE: thousands of tunnels, policy storms, answer-latency
# windows, the fleet's three daemons and 200 concurrent changes) run in the
# plain tier only (MM_INTEGRATION_ALONE=skip here): under the sanitizers
# they took about four minutes of the CI's thirty.  Their code paths are
# walked by other tests at smaller sizes, except the VICI queue's overflow
# pacing (more than 4096 loads), which only test_ike_many reaches: that path
# runs unsanitized; the fleet's daemon code (daemon/fleet.c,
# policy/store_pg.c) runs under the sanitizers in test_store_pg and the unit
# tests.  The manual pages and the shell completion test documents and bash,
# not the daemon's C code; test_pglib tests the PostgreSQL cluster helper of
# the tests.
SAN_SKIP     = test_manpages.sh test_completion.sh test_pglib.sh
SAN_ENV      = ASAN_OPTIONS=$(SAN_OPTIONS):detect_leaks=$(SAN_LEAKS) \
	UBSAN_OPTIONS=$(SAN_OPTIONS):print_stacktrace=1 CK_TIMEOUT_MULTIPLIER=10 MM_SLOW=3 \
	MM_INTEGRATION_SKIP="$(SAN_SKIP)" MM_INTEGRATION_ALONE=skip

# A build-asan of other flags (or of GCC) is built again from scratch.
asan:
	$(Q)flags="clang $(ASAN_CFLAGS)"; \
	[ "$$(cat $(ASAN_BUILD)/.flags 2>/dev/null)" = "$$flags" ] || \
		{ rm -rf $(ASAN_BUILD) && mkdir -p $(ASAN_BUILD) && echo "$$flags" >$(ASAN_BUILD)/.flags; }
	$(Q)$(MAKE) --no-print-directory BUILD=$(ASAN_BUILD) CC=clang CFLAGS="$(ASAN_CFLAGS)" \
		asan-tiers

# Only through make asan, which gives it the build directory and flags.
asan-tiers: all $(UNIT_BINS) $(VICI_CHARON) $(SNAPCLIENT) $(FAILCLIENT) $(NETNS_BINS)
	$(Q)for tier in unit integration netns; do \
		rm -rf $(SAN_LOGS) && mkdir -p -m 1777 $(SAN_LOGS) || exit 1; \
		echo "== asan: $$tier"; t0=$$(date +%s); \
		env $(SAN_ENV) $(MAKE) --no-print-directory $$tier; rc=$$?; \
		echo "== asan: $$tier tier took $$(($$(date +%s) - t0)) s"; \
		if [ -n "$$(ls -A $(SAN_LOGS))" ]; then \
			for f in $(SAN_LOGS)/*; do echo "== sanitizer report $$f"; cat "$$f"; done; \
			echo "make asan: sanitizer report(s) in the $$tier tier" >&2; exit 1; \
		fi; \
		[ $$rc -eq 0 ] || { echo "make asan: the $$tier tier failed" >&2; exit 1; }; \
	done; \
	echo "make asan: unit, integration and netns passed, no sanitizer report"

# make install [PREFIX=/usr/local] [DESTDIR=] [SYSCONFDIR=...] [UNITDIR=...]:
# the programs, libmmtrust (shared, static, header, mmtrust.pc), the Lua and
# Python modules, the sample configuration (never over an existing one),
# the systemd unit with the paths it names made ours, the sysusers.d and
# tmpfiles.d files, the manual pages (when doc/man has sources), the bash
# completion and the documentation.  PREFIX=/usr is the distribution's
# layout (/etc, the unit directory systemd's pkg-config names); any other
# prefix keeps everything under it, on paths systemd searches too
# (PREFIX/lib/systemd/system, PREFIX/lib/sysusers.d, PREFIX/lib/tmpfiles.d).
# Without DESTDIR and as root, the user and the directories are made at
# once (systemd-sysusers, systemd-tmpfiles), as the Debian package does.
# docs/install.md.
install: all install-bindings install-man
	install -D -m 0755 $(MMTRUSTD) $(DESTDIR)$(SBINDIR)/mmtrustd
	install -D -m 0755 $(MMTRUSTCTL) $(DESTDIR)$(BINDIR)/mmtrustctl
	install -D -m 0644 $(LIBCLIENT_A) $(DESTDIR)$(LIBDIR)/libmmtrust.a
	install -D -m 0755 $(LIBCLIENT_SO) $(DESTDIR)$(LIBDIR)/$(LIBCLIENT_SONAME)
	ln -sfn $(LIBCLIENT_SONAME) $(DESTDIR)$(LIBDIR)/libmmtrust.so
	install -D -m 0644 client/mmtrust.h $(DESTDIR)$(INCLUDEDIR)/mmtrust.h
	install -D -m 0644 $(LIBCLIENT_PC) $(DESTDIR)$(LIBDIR)/pkgconfig/mmtrust.pc
	$(Q)if [ -e $(DESTDIR)$(SYSCONFDIR)/mmtrust/mmtrustd.conf ]; then \
		echo "install: $(DESTDIR)$(SYSCONFDIR)/mmtrust/mmtrustd.conf exists, kept"; \
	else \
		echo "install -D -m 0640 examples/mmtrustd.conf $(DESTDIR)$(SYSCONFDIR)/mmtrust/mmtrustd.conf"; \
		install -D -m 0640 examples/mmtrustd.conf $(DESTDIR)$(SYSCONFDIR)/mmtrust/mmtrustd.conf; \
	fi
	install -d -m 0755 $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(TMPFILESDIR)
	$(DIST_SED) dist/systemd/mmtrustd.service > $(DESTDIR)$(UNITDIR)/mmtrustd.service
	$(DIST_SED) dist/sysusers.d/mmtrust.conf > $(DESTDIR)$(SYSUSERSDIR)/mmtrust.conf
	$(DIST_SED) dist/tmpfiles.d/mmtrust.conf > $(DESTDIR)$(TMPFILESDIR)/mmtrust.conf
	chmod 0644 $(DESTDIR)$(UNITDIR)/mmtrustd.service $(DESTDIR)$(SYSUSERSDIR)/mmtrust.conf \
		$(DESTDIR)$(TMPFILESDIR)/mmtrust.conf
	$(Q)if [ -f dist/bash-completion/mmtrustctl ]; then \
		echo "install -D -m 0644 dist/bash-completion/mmtrustctl $(DESTDIR)$(BASHCOMPDIR)/mmtrustctl"; \
		install -D -m 0644 dist/bash-completion/mmtrustctl $(DESTDIR)$(BASHCOMPDIR)/mmtrustctl; \
	fi
	install -d -m 0755 $(DESTDIR)$(DOCDIR)/examples/kamailio/sipp
	install -m 0644 README.md $(DOC_FILES) $(DESTDIR)$(DOCDIR)/
	install -m 0644 examples/mmtrustd.conf examples/partners.yaml $(DESTDIR)$(DOCDIR)/examples/
	install -m 0644 $(wildcard examples/kamailio/*.cfg examples/kamailio/*.lua) \
		$(DESTDIR)$(DOCDIR)/examples/kamailio/
	install -m 0644 $(wildcard examples/kamailio/sipp/*) $(DESTDIR)$(DOCDIR)/examples/kamailio/sipp/
	$(Q)if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && command -v systemd-sysusers >/dev/null; then \
		echo "systemd-sysusers $(SYSUSERSDIR)/mmtrust.conf"; \
		systemd-sysusers $(SYSUSERSDIR)/mmtrust.conf && \
		echo "systemd-tmpfiles --create $(TMPFILESDIR)/mmtrust.conf" && \
		systemd-tmpfiles --create $(TMPFILESDIR)/mmtrust.conf; \
		if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi; \
	fi

# The manual pages: whatever $(BUILD)/man/*.[1-8] the `man` target made
# (scdoc sources in doc/man); none, and no `man` target, without sources.
MAN_TARGET ?= $(if $(wildcard doc/man/*.scd),man)
MAN_PAGES  ?= $(BUILD)/man/*.[1-8]
install-man: $(MAN_TARGET)
	$(Q)for p in $(MAN_PAGES); do \
		[ -f "$$p" ] || continue; \
		echo "install -D -m 0644 $$p $(DESTDIR)$(MANDIR)/man$${p##*.}/$${p##*/}"; \
		install -D -m 0644 "$$p" "$(DESTDIR)$(MANDIR)/man$${p##*.}/$${p##*/}" || exit 1; \
	done

# The Debian packages (debian/, dpkg-buildpackage in a scratch copy of the
# tree), lintian, installed on this machine and checked, then purged; and
# make install's file list (tests/package/test_deb.sh).
deb-check:
	$(Q)bash tests/package/test_deb.sh

clean:
	rm -rf build build-asan

include tests/fuzz/fuzz.mk
include bindings/bindings.mk
include doc/man/man.mk

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
