/* bindings/lua/mmtrust_lua.c: the Lua module "mmtrust" over libmmtrust,
 * for Kamailio's app_lua (KEMI) and any Lua 5.1 to 5.4 program.
 *
 *   local mmtrust = require "mmtrust"
 *   local h, err = mmtrust.connect([path [, timeout_ms]])
 *   local ans = h:inbound(src [, dst [, spi]])
 *   local ans = h:outbound{domain = d | dst = a, privacy_id = bool}
 *             or h:outbound(domain, dst, privacy_id)
 *   local ans = h:spi(spi)
 *   h:close()
 *
 * Fail closed: every question returns a table; on any error its pai is
 * "strip", reason a "query-*" text and error the message (never a Lua
 * error).  Lua errors are raised only for programming errors: a wrong
 * argument type, an SPI outside 0..2^32-1, an unknown key in outbound's
 * table.  docs/bindings.md. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "bindings/answer.h"
#include "bindings/session.h"

#define HANDLE_MT "mmtrust.handle"

/* A handle is a userdata holding the session (NULL once collected). */
struct handle {
	struct session *s;
};

static struct handle *check_handle(lua_State *L)
{
	return luaL_checkudata(L, 1, HANDLE_MT);
}

/* An optional string argument: nil/none or a string, nothing else (a
 * number would be converted by luaL_optstring: a script passing one has a
 * bug). */
static const char *opt_string(lua_State *L, int i, const char *what, size_t *len)
{
	if (lua_isnoneornil(L, i)) {
		*len = 0;
		return NULL;
	}
	if (lua_type(L, i) != LUA_TSTRING)
		luaL_error(L, "mmtrust: %s must be a string, not %s", what, luaL_typename(L, i));
	return lua_tolstring(L, i, len);
}

/* An optional SPI: nil/none (0) or an integer 0 .. 2^32-1. */
static uint32_t opt_spi(lua_State *L, int i)
{
	lua_Number n;

	if (lua_isnoneornil(L, i))
		return 0;
	if (lua_type(L, i) != LUA_TNUMBER)
		luaL_error(L, "mmtrust: spi must be a number, not %s", luaL_typename(L, i));
	n = lua_tonumber(L, i);
	if (!(n >= 0 && n <= 4294967295.0) || floor(n) != n)
		luaL_error(L, "mmtrust: spi must be an integer from 0 to 4294967295");
	return (uint32_t)n;
}

static int opt_bool(lua_State *L, int i, const char *what)
{
	if (lua_isnoneornil(L, i))
		return 0;
	if (lua_type(L, i) != LUA_TBOOLEAN)
		luaL_error(L, "mmtrust: %s must be a boolean, not %s", what, luaL_typename(L, i));
	return lua_toboolean(L, i);
}

/* The one conversion of an answer into a Lua table (bindings/answer.h);
 * error: NULL for the daemon's answer, else the failure's text. */
static void answer_push(lua_State *L, const struct mmtrust_answer *a, int r, const char *error)
{
	lua_createtable(L, 0, ANSWER_N_FIELDS + 3);
	lua_pushstring(L, r == 0 && a->pai == MMTRUST_PAI_KEEP ? "keep" : "strip");
	lua_setfield(L, -2, "pai");
	for (size_t i = 0; i < ANSWER_N_FIELDS; i++) {
		const struct answer_field *f = &answer_fields[i];

		switch (f->kind) {
		case ANSWER_TEXT:
			if (!answer_text_len(a, f))
				continue;
			lua_pushlstring(L, answer_text(a, f), answer_text_len(a, f));
			break;
		case ANSWER_FLAG:
			lua_pushboolean(L, answer_flag(a, f));
			break;
		case ANSWER_U32:
			if (!answer_u32(a, f))
				continue;
			lua_pushinteger(L, answer_u32(a, f));
			break;
		}
		lua_setfield(L, -2, f->name);
	}
	if (r < 0) {
		lua_pushstring(L, error);
		lua_setfield(L, -2, "error");
		lua_pushinteger(L, -r);
		lua_setfield(L, -2, "errno");
	}
}

static int ask(lua_State *L, struct handle *h, const struct session_query *q)
{
	struct mmtrust_answer a;
	int r;

	if (!h->s) {
		memset(&a, 0, sizeof(a));
		snprintf(a.reason, sizeof(a.reason), "query-closed");
		answer_push(L, &a, -EBADF, "the handle is closed");
		return 1;
	}
	r = session_ask(h->s, q, &a);
	answer_push(L, &a, r, session_error(h->s));
	return 1;
}

/* mmtrust.connect([path [, timeout_ms]]) -> handle | nil, message, errno */
static int l_connect(lua_State *L)
{
	size_t len;
	const char *path = opt_string(L, 1, "path", &len);
	int timeout_ms = SESSION_DEFAULT_TIMEOUT_MS, r;
	struct handle *h;

	if (!lua_isnoneornil(L, 2)) {
		lua_Number n;

		if (lua_type(L, 2) != LUA_TNUMBER)
			return luaL_error(L, "mmtrust: timeout_ms must be a number, not %s",
					  luaL_typename(L, 2));
		n = lua_tonumber(L, 2);
		if (!(n >= 0 && n <= 2147483647.0) || floor(n) != n)
			return luaL_error(L, "mmtrust: timeout_ms must be an integer from 0 to 2147483647");
		timeout_ms = (int)n;
	}
	if (path && strlen(path) != len)
		return luaL_error(L, "mmtrust: path contains a NUL byte");
	h = lua_newuserdata(L, sizeof(*h));
	h->s = NULL;
	luaL_getmetatable(L, HANDLE_MT);
	lua_setmetatable(L, -2);
	r = session_new(path, timeout_ms, &h->s);
	if (r < 0) {
		lua_pushnil(L);
		lua_pushfstring(L, "mmtrust: cannot connect to %s: %s",
				path ? path : MMTRUST_QUERY_SOCKET, strerror(-r));
		lua_pushinteger(L, -r);
		return 3;
	}
	return 1;
}

/* h:inbound(src [, dst [, spi]]) */
static int l_inbound(lua_State *L)
{
	struct handle *h = check_handle(L);
	struct session_query q = { .op = SESSION_INBOUND };

	if (lua_type(L, 2) != LUA_TSTRING)
		return luaL_error(L, "mmtrust: inbound: src must be a string, not %s",
				  luaL_typename(L, 2));
	q.src = lua_tolstring(L, 2, &q.src_len);
	q.dst = opt_string(L, 3, "inbound: dst", &q.dst_len);
	q.spi = opt_spi(L, 4);
	return ask(L, h, &q);
}

/* h:outbound{domain=, dst=, privacy_id=} or h:outbound(domain, dst, privacy_id) */
static int l_outbound(lua_State *L)
{
	struct handle *h = check_handle(L);
	struct session_query q = { .op = SESSION_OUTBOUND };

	if (lua_type(L, 2) == LUA_TTABLE) {
		if (!lua_isnone(L, 3))
			return luaL_error(L, "mmtrust: outbound: a table or positional arguments, not both");
		/* Every key must be known: outbound{privacy = true} is a typo
		 * that would otherwise ask without Privacy: id. */
		lua_pushnil(L);
		while (lua_next(L, 2)) {
			const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;

			if (!k || (strcmp(k, "domain") && strcmp(k, "dst") && strcmp(k, "privacy_id")))
				return luaL_error(L, "mmtrust: outbound: unknown key %s (domain, dst, privacy_id)",
						  k ? k : luaL_typename(L, -2));
			lua_pop(L, 1);
		}
		lua_getfield(L, 2, "domain");
		lua_getfield(L, 2, "dst");
		lua_getfield(L, 2, "privacy_id");
		lua_remove(L, 2);  /* now positional: 2 domain, 3 dst, 4 privacy_id */
	}
	q.domain = opt_string(L, 2, "outbound: domain", &q.domain_len);
	q.dst = opt_string(L, 3, "outbound: dst", &q.dst_len);
	q.privacy_id = opt_bool(L, 4, "outbound: privacy_id");
	return ask(L, h, &q);
}

/* h:spi(spi) */
static int l_spi(lua_State *L)
{
	struct handle *h = check_handle(L);
	struct session_query q = { .op = SESSION_SPI };

	if (lua_type(L, 2) != LUA_TNUMBER)
		return luaL_error(L, "mmtrust: spi: spi must be a number, not %s", luaL_typename(L, 2));
	q.spi = opt_spi(L, 2);
	return ask(L, h, &q);
}

/* h:close(): later questions answer reason "query-closed". */
static int l_close(lua_State *L)
{
	struct handle *h = check_handle(L);

	if (h->s)
		session_close(h->s);
	return 0;
}

static int l_gc(lua_State *L)
{
	struct handle *h = check_handle(L);

	session_free(h->s);
	h->s = NULL;
	return 0;
}

static int l_tostring(lua_State *L)
{
	struct handle *h = check_handle(L);

	if (!h->s || session_is_closed(h->s))
		lua_pushstring(L, "mmtrust handle (closed)");
	else
		lua_pushfstring(L, "mmtrust handle (%s)", session_path(h->s));
	return 1;
}

static const luaL_Reg handle_methods[] = {
	{ "inbound", l_inbound },
	{ "outbound", l_outbound },
	{ "spi", l_spi },
	{ "close", l_close },
	{ NULL, NULL },
};

static const luaL_Reg module_functions[] = {
	{ "connect", l_connect },
	{ NULL, NULL },
};

/* luaL_register (5.1) and luaL_setfuncs (5.2 on) into the table on top. */
static void set_functions(lua_State *L, const luaL_Reg *l)
{
#if LUA_VERSION_NUM < 502
	luaL_register(L, NULL, l);
#else
	luaL_setfuncs(L, l, 0);
#endif
}

int luaopen_mmtrust(lua_State *L);
__attribute__((visibility("default"))) int luaopen_mmtrust(lua_State *L)
{
	luaL_newmetatable(L, HANDLE_MT);
	lua_pushcfunction(L, l_gc);
	lua_setfield(L, -2, "__gc");
	lua_pushcfunction(L, l_tostring);
	lua_setfield(L, -2, "__tostring");
	lua_newtable(L);
	set_functions(L, handle_methods);
	lua_setfield(L, -2, "__index");
	lua_pop(L, 1);

	lua_newtable(L);
	set_functions(L, module_functions);
	lua_pushstring(L, MMTRUST_QUERY_SOCKET);
	lua_setfield(L, -2, "QUERY_SOCKET");
	lua_pushinteger(L, SESSION_DEFAULT_TIMEOUT_MS);
	lua_setfield(L, -2, "DEFAULT_TIMEOUT_MS");
	return 1;
}
