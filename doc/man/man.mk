# Manual pages: mmtrustd(8), mmtrustctl(8), mmtrustd.conf(5),
# mmtrust-protocol(7), built into $(BUILD)/man.
#
# The sources are scdoc (doc/man/*.scd, Debian package scdoc): plain text
# that reads well in a diff and in review, from which Debian's packaging
# builds the pages too, so no roff is kept by hand.  `make man` builds
# them; they are not part of `all`.  MAN_PAGES names the built pages for
# the install rules (each page's section is the last part of its name).
# tests/integration/test_manpages.sh renders every page with groff and man
# and checks them against the programs (config keys, commands, options).

MAN_SRC   := $(wildcard doc/man/*.scd)
MAN_PAGES := $(patsubst doc/man/%.scd,$(BUILD)/man/%,$(MAN_SRC))

.PHONY: man
man: $(MAN_PAGES)

# scdoc dates a page from SOURCE_DATE_EPOCH when set (reproducible builds).
$(BUILD)/man/%: doc/man/%.scd | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  SCDOC   $@")
	$(Q)scdoc <$< >$@.tmp && mv $@.tmp $@
