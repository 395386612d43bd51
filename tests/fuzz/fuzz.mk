# libFuzzer targets, one per parser of outside input (tests/fuzz/README.md).
# Included by the top Makefile.
#
#   make fuzz                  build every target, run each FUZZ_SECONDS (60)
#   make fuzz FUZZ_SECONDS=5   the short run CI does
#   make fuzz-build            build only (build/fuzz/fuzz_<name>)
#
# Everything is compiled again with clang under ASan and UBSan (an
# instrumented copy of each source under build/fuzz/obj/), so the build's
# own objects are never mixed in.  Each target runs on a copy of its seed
# corpus (tests/fuzz/corpus/<name>/ is never written); a finding (crash,
# broken invariant, leak, timeout) fails the run and leaves the input in
# build/fuzz/artifacts/.

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_JOBS    ?= 2
FUZZ_DIR     := $(BUILD)/fuzz
FUZZ_SAN      = -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS   = -std=gnu11 -g -O1 -fno-omit-frame-pointer -Wall -Wextra -Werror \
	-D_GNU_SOURCE -I. $(call pc_cflags,$(PKGS_POLICY) $(PKGS_NETLINK) $(PKGS_DAEMON) $(PKGS_CLI))
FUZZ_LIBS     = $(call pc_libs,$(PKGS_POLICY) $(PKGS_NETLINK) $(PKGS_DAEMON) $(PKGS_CLI))
FUZZ_TARGETS := addr query admin tablefile config xfrm vici snapshot http

fuzz_obj = $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(1))

# What each target links besides its own file.  query and admin include
# daemon/jsonl.c (and query daemon/query.c) to reach the line -> answer
# path (query also daemon/config.c: query.c names the snapshot with
# mm_config_snapshot_path); admin replaces the store and the kernel with
# recording stubs, so policy/store.c and store_pg.c stay out (admin links the real
# daemon/snapshot.c: status reports the snapshot writer, NULL there).
FUZZ_POLICY         = $(POLICY_SRC)
FUZZ_SRC_addr       = $(FUZZ_POLICY)
FUZZ_SRC_query      = daemon/log.c daemon/backoff.c daemon/config.c $(FUZZ_POLICY)
FUZZ_SRC_admin      = daemon/admin.c daemon/log.c daemon/backoff.c daemon/snapshot.c \
	$(filter-out policy/store.c policy/store_pg.c,$(FUZZ_POLICY))
FUZZ_SRC_tablefile  = cli/tablefile.c policy/grow.c
FUZZ_SRC_config     = daemon/config.c $(FUZZ_POLICY)
FUZZ_SRC_xfrm       = $(filter-out netlink/xfrm_monitor.c,$(NETLINK_SRC)) $(FUZZ_POLICY)
FUZZ_SRC_vici       = $(filter-out vici-plugins/vici_client.c,$(VICI_SRC)) policy/grow.c
# snapshot: what libmmtrust links of policy/ (CLIENT_POLICY, the Makefile).
FUZZ_SRC_snapshot   = $(CLIENT_POLICY)
# http: the metrics endpoint's request parser (pure; the server around it
# is linked, never run).
FUZZ_SRC_http       = daemon/metrics_http.c
# ca_file paths in the table file reach open(): confined (fuzz_tablefile.c).
FUZZ_LDFLAGS_tablefile = -Wl,--wrap=open

FUZZ_BINS := $(patsubst %,$(FUZZ_DIR)/fuzz_%,$(FUZZ_TARGETS))
.PRECIOUS: $(FUZZ_DIR)/obj/%.o

.PHONY: fuzz fuzz-build
fuzz-build: $(FUZZ_BINS)

# The build runs FUZZ_JOBS compilers at once whatever make's own -j (the
# instrumented copies are most of the time of a short run).
fuzz:
	$(Q)$(MAKE) --no-print-directory -j$(FUZZ_JOBS) fuzz-build
	$(Q)bash tests/fuzz/run.sh $(FUZZ_DIR) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

$(FUZZ_DIR)/obj/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  FUZZCC  $<")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

$(FUZZ_DIR)/fuzz_%: $(FUZZ_DIR)/obj/tests/fuzz/fuzz_%.o $$(call fuzz_obj,$$(FUZZ_SRC_$$*))
	@$(if $(Q),echo "  FUZZLD  $@")
	$(Q)$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer $(FUZZ_LDFLAGS_$*) -o $@ $^ $(FUZZ_LIBS)
