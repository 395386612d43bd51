# bindings/bindings.mk: the Lua and Python modules over libmmtrust
# (docs/bindings.md), included from the top-level Makefile.
#
#   make bindings           $(BUILD)/bindings/lua/mmtrust.so and
#                           $(BUILD)/bindings/python/mmtrust<EXT_SUFFIX>
#   make install-bindings   (part of make install)
#
# Both modules link libmmtrust statically (its objects are -fPIC) with the
# archive's symbols made local (--exclude-libs): a Kamailio that also loads
# libmmtrust.so, of whatever soname, for another module cannot interpose its
# functions or struct layout on ours, and no library path is needed at run
# time.  jansson is linked dynamically (pkg-config).  The modules export only
# luaopen_mmtrust / PyInit_mmtrust (-fvisibility=hidden), and link neither
# liblua nor libpython: the interpreter that loads them provides those.

# Debian 12's kamailio-lua-modules (app_lua) is built on liblua5.1-0.
BINDINGS_LUA_VERSION := 5.1
BINDINGS_LUA_PC      := lua$(BINDINGS_LUA_VERSION)
# Debian's interpreter, the one Kamailio's app_python3 embeds (not
# whichever python3 comes first on PATH).
BINDINGS_PYTHON      ?= /usr/bin/python3
# The extension suffix (".cpython-311-x86_64-linux-gnu.so"); ".so", which
# every CPython 3 loads too, when that python is not there yet.
BINDINGS_PY_SUFFIX := $(or $(shell $(BINDINGS_PYTHON) -c \
	'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX") or "")' 2>/dev/null),.so)
bindings_py_include = $(shell $(BINDINGS_PYTHON) -c \
	'import sysconfig; print(sysconfig.get_paths()["include"])')
bindings_py_version = $(shell $(BINDINGS_PYTHON) -c \
	'import sys; print("python%d.%d" % sys.version_info[:2])')

BINDINGS_LUA := $(BUILD)/bindings/lua/mmtrust.so
BINDINGS_PY  := $(BUILD)/bindings/python/mmtrust$(BINDINGS_PY_SUFFIX)
BINDINGS_COMMON_OBJ := $(call obj,bindings/session.c)
BINDINGS_LUA_OBJ := $(call obj,bindings/lua/mmtrust_lua.c)
BINDINGS_PY_OBJ  := $(call obj,bindings/python/mmtrust_py.c)

# Debian's paths, on the default search paths of lua5.1 (and so of
# Kamailio's app_lua) and of Debian's python3: with PREFIX=/usr the
# packaged ones (dist-packages is shared by Debian's python3 versions: the
# ABI tag in the file name keeps another one from loading it); otherwise
# the local ones under PREFIX (/usr/local: lib/lua/5.1 and
# lib/python3.11/dist-packages, both searched by Debian's interpreters).
ifeq ($(PREFIX),/usr)
BINDINGS_LUA_DIR ?= /usr/lib/x86_64-linux-gnu/lua/$(BINDINGS_LUA_VERSION)
BINDINGS_PY_DIR  ?= /usr/lib/python3/dist-packages
else
BINDINGS_LUA_DIR ?= $(PREFIX)/lib/lua/$(BINDINGS_LUA_VERSION)
BINDINGS_PY_DIR  ?= $(PREFIX)/lib/$(bindings_py_version)/dist-packages
endif

.PHONY: bindings install-bindings
bindings: $(BINDINGS_LUA) $(BINDINGS_PY)

$(BINDINGS_COMMON_OBJ) $(BINDINGS_LUA_OBJ) $(BINDINGS_PY_OBJ): ALL_CFLAGS += -fvisibility=hidden
$(BINDINGS_LUA_OBJ): ALL_CFLAGS += $(call pc_cflags,$(BINDINGS_LUA_PC))
$(BINDINGS_PY_OBJ): ALL_CFLAGS += -I$(bindings_py_include)

$(BINDINGS_LUA): $(BINDINGS_LUA_OBJ) $(BINDINGS_COMMON_OBJ) $(LIBCLIENT_A)
$(BINDINGS_PY): $(BINDINGS_PY_OBJ) $(BINDINGS_COMMON_OBJ) $(LIBCLIENT_A)
$(BINDINGS_LUA) $(BINDINGS_PY):
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) -shared -Wl,--exclude-libs,ALL -o $@ $^ $(call pc_libs,jansson)

install-bindings: bindings
	install -D -m 0644 $(BINDINGS_LUA) $(DESTDIR)$(BINDINGS_LUA_DIR)/mmtrust.so
	install -D -m 0644 $(BINDINGS_PY) $(DESTDIR)$(BINDINGS_PY_DIR)/$(notdir $(BINDINGS_PY))
