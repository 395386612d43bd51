-- mmtrust-edge.lua: the KEMI routing of the Mm-facing edge (kamailio.cfg,
-- docs/kamailio.md).  Every request relayed between a partner and our
-- core is asked about with the mmtrust Lua binding, and every
-- P-Asserted-Identity header is removed unless the answer is "keep":
--
--   arrives on socket "mm"   (inbound):  inbound($si, $Ri)
--   arrives on socket "core" (outbound): outbound(next hop, Privacy: id)
--   a reply that arrives on "mm":       inbound($si, $Ri)
--
-- Fail closed: no handle, no answer, an error of any kind -> the answer is
-- "strip" (the binding's rule, docs/bindings.md) and one log line says why.
-- The routing goes on either way: a call is never refused for want of an
-- answer, it only loses its asserted identity.

-- The site's settings: mmtrust-site.lua in this script's directory, which
-- sets the global table MMTRUST_SITE.  (Read here, at load time, so that a
-- wrong setting stops Kamailio at start with the reason; KSR functions
-- cannot be called yet, so the path cannot come from kamailio.cfg.)
local SITE_FILE = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
SITE_FILE = SITE_FILE .. "mmtrust-site.lua"
dofile(SITE_FILE)
local site = MMTRUST_SITE
if type(site) ~= "table" then
	error("mmtrust-edge: " .. SITE_FILE .. " did not set the table MMTRUST_SITE")
end
local function setting(name, kind, optional)
	local v = site[name]
	if v == nil and optional then return nil end
	if type(v) ~= kind then
		error(string.format("mmtrust-edge: MMTRUST_SITE.%s: want a %s, got %s", name, kind, type(v)))
	end
	return v
end
local QUERY_SOCKET = setting("query_socket", "string")
local TIMEOUT_MS = setting("timeout_ms", "number")
local CORE_NEXT_HOP = setting("core_next_hop", "string")
local PARTNERS = setting("partners", "table")
local LUA_CPATH = setting("lua_cpath", "string", true)
for domain, hop in pairs(PARTNERS) do
	if type(domain) ~= "string" or type(hop) ~= "string" or not hop:match("^sips?:") then
		error(string.format("mmtrust-edge: MMTRUST_SITE.partners[%s]: want a SIP URI, got %s",
			tostring(domain), tostring(hop)))
	end
end
if TIMEOUT_MS < 1 or TIMEOUT_MS ~= math.floor(TIMEOUT_MS) then
	error("mmtrust-edge: MMTRUST_SITE.timeout_ms: want a whole number of milliseconds >= 1")
end
if LUA_CPATH then package.cpath = LUA_CPATH .. ";" .. package.cpath end

-- Loaded once in Kamailio's main process, before it forks the workers;
-- a module that cannot be loaded stops Kamailio here, with the reason.
local mmtrust = require "mmtrust"

local PAI = "P-Asserted-Identity"

-- The worker's handle, made at its first question (connections are per
-- process: the binding reconnects by itself after any error, and in a
-- child after fork()).  nil while mmtrustd cannot be reached; tried again
-- at the next question.
local handle

-- What an answer looks like when there is no handle (the binding's own
-- error answers have the same shape).
local function no_answer(message)
	return { pai = "strip", reason = "query-no-daemon", error = message }
end

local function ask(question)
	if not handle then
		local h, err = mmtrust.connect(QUERY_SOCKET, TIMEOUT_MS)
		if not h then return no_answer(err) end
		handle = h
	end
	return question(handle)
end

-- apply(direction, subject, ans): remove every P-Asserted-Identity unless
-- the answer is keep; log why when one was there (or when there was no
-- answer at all).  Returns true when PAI was kept.
local function apply(direction, subject, ans)
	if ans.pai == "keep" then
		KSR.dbg(string.format("mmtrust: %s %s: keep (%s, partner %s)\n",
			direction, subject, ans.reason, tostring(ans.partner)))
		return true
	end
	local present = KSR.hdr.is_present(PAI) > 0
	-- Removed whether or not it was seen: remove() takes every header of
	-- that name in any case, however many there are.
	KSR.hdr.remove(PAI)
	if ans.error then
		KSR.err(string.format("mmtrust: %s %s: no answer (%s: %s): P-Asserted-Identity removed\n",
			direction, subject, ans.reason, ans.error))
	elseif present then
		KSR.info(string.format("mmtrust: %s %s: P-Asserted-Identity removed (%s%s)\n",
			direction, subject, ans.reason,
			ans.partner and (", partner " .. ans.partner) or ""))
	end
	return false
end

-- The request came from a partner (socket "mm"): the previous hop is $si,
-- and $Ri is the address it reached, the one the kernel's in-policies
-- cover (mmtrustd's "dst").
local function check_inbound()
	local src, dst = KSR.pv.get("$si"), KSR.pv.get("$Ri")
	return apply("inbound", "from " .. src .. " to " .. dst,
		ask(function(h) return h:inbound(src, dst) end))
end

-- Privacy: id anywhere in the request's Privacy headers (RFC 3323
-- priv-values, separated by ";", in one or more headers).
local function privacy_id()
	if KSR.hdr.is_present("Privacy") < 0 then return false end
	local all = KSR.pv.get("$(hdr(Privacy)[*])") or ""
	for v in all:gmatch("[^;,%s]+") do
		if v:lower() == "id" then return true end
	end
	return false
end

-- host of a SIP URI: "192.0.2.10", "2001:db8::1" (without brackets),
-- "ims.partner-a.example".
local function uri_host(uri)
	local rest = uri:match("^sips?:(.*)$")
	if not rest then return nil end
	rest = rest:gsub("^[^@;]*@", "")
	local v6 = rest:match("^%[([%x:%.]+)%]")
	if v6 then return v6, true end
	local host = rest:match("^([^:;>?]+)")
	if host and host:match("^%d+%.%d+%.%d+%.%d+$") then return host, true end
	return host, false
end

-- The request goes to a partner (it came from our core): ask about the
-- next hop's address when the next hop is an address (the address it is
-- sent to), else about its domain.
local function check_outbound()
	local hop = KSR.pv.get("$du") or KSR.pv.get("$ru")
	local host, is_addr = uri_host(hop or "")
	local pid = privacy_id()
	if not host then
		return apply("outbound", "to " .. tostring(hop), no_answer("no next hop"))
	end
	local q = { privacy_id = pid }
	if is_addr then q.dst = host else q.domain = host end
	return apply("outbound", "to " .. host, ask(function(h) return h:outbound(q) end))
end

-- The two checks, by name: the routing below calls them through this
-- table, nothing else does.
MMTRUST_EDGE = { check_inbound = check_inbound, check_outbound = check_outbound }

local function relay()
	if KSR.tm.t_relay() < 0 then KSR.sl.sl_reply_error() end
	KSR.x.exit()
end

function ksr_request_route()
	if KSR.maxfwd.process_maxfwd(10) < 0 then
		KSR.sl.sl_send_reply(483, "Too Many Hops")
		KSR.x.exit()
	end
	local side = KSR.pv.get("$Rn")
	if side ~= "mm" and side ~= "core" then
		KSR.err("mmtrust-edge: request on an unnamed socket; kamailio.cfg names them mm and core\n")
		KSR.sl.sl_send_reply(500, "Server Misconfigured")
		KSR.x.exit()
	end
	if KSR.is_CANCEL() then
		if KSR.tm.t_check_trans() > 0 then relay() end
		KSR.x.exit()
	end

	local in_dialog = KSR.siputils.has_totag() > 0
	if in_dialog then
		if KSR.rr.loose_route() < 0 then
			-- the ACK of a negative reply is tm's; anything else is not ours
			if KSR.is_ACK() then
				if KSR.tm.t_check_trans() > 0 then relay() end
				KSR.x.exit()
			end
			KSR.sl.sl_send_reply(404, "Not here")
			KSR.x.exit()
		end
	else
		KSR.rr.record_route()
	end

	-- Sent from the other side's socket: a request to a partner leaves
	-- from the "mm" address, the one our out-policies cover.
	if side == "mm" then
		MMTRUST_EDGE.check_inbound()
		if not in_dialog then KSR.setdsturi(CORE_NEXT_HOP) end
		KSR.pv.sets("$fsn", "core")
	else
		if not in_dialog then
			local hop = PARTNERS[KSR.pv.get("$rd") or ""]
			if hop then KSR.setdsturi(hop) end
		end
		MMTRUST_EDGE.check_outbound()
		KSR.pv.sets("$fsn", "mm")
		KSR.tm.t_on_reply("ksr_reply_from_partner")
	end
	relay()
end

-- Replies from a partner (to a request we sent it) carry its
-- P-Asserted-Identity too: the same inbound question.
function ksr_reply_from_partner()
	if KSR.pv.get("$Rn") == "mm" then MMTRUST_EDGE.check_inbound() end
end
