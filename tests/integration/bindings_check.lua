-- The Lua module "mmtrust" against the real mmtrustd, for
-- test_bindings.sh (which runs it with LUA_CPATH at the built module).
--
--   lua5.1 bindings_check.lua SOCKET REFERENCE FAULT_DIR SYNC_DIR
--
-- Prints "PASS what" / "FAIL what" lines.  Phases, in step with the shell
-- through files in SYNC_DIR: with the daemon up (answers, the seeded
-- comparison with bindings_reference.py's socket answers, refusals,
-- argument errors, the fault-injection sockets, __gc), then "lua.up" and
-- wait for "go-dead": the daemon is stopped, every question on the same
-- handle must fail closed; then "lua.dead" and wait for "go-back": the
-- daemon is back, the same handle must answer again; then close().
local mmtrust = require "mmtrust"
local SOCK, REF, FAULT, SYNC = arg[1], arg[2], arg[3], arg[4]

local function out(s) io.write(s, "\n"); io.flush() end
local function pass(what) out("PASS lua: " .. what) end
local function fail(what) out("FAIL lua: " .. what) end
local function check(ok, what, detail)
	if ok then pass(what) else fail(what .. (detail and (": " .. detail) or "")) end
end
local function show(v) return v == nil and "nil" or tostring(v) end
local function dump(t)
	local keys = {}
	for k in pairs(t) do keys[#keys + 1] = k end
	table.sort(keys)
	local s = {}
	for _, k in ipairs(keys) do s[#s + 1] = k .. "=" .. show(t[k]) end
	return "{" .. table.concat(s, " ") .. "}"
end
-- expect(answer, {key = value ...}, what): every given key as given
-- (false/nil spelled as the strings "false"/"nil").
local function expect(a, want, what)
	for k, v in pairs(want) do
		if show(a[k]) ~= v then
			fail(what .. ": " .. k .. " is " .. show(a[k]) .. ", want " .. v .. " in " .. dump(a))
			return
		end
	end
	pass(what)
end
local function wait_file(name)
	while not io.open(SYNC .. "/" .. name) do os.execute("sleep 0.05") end
end
local function touch(name) io.open(SYNC .. "/" .. name, "w"):close() end
local function raises(what, pattern, f, ...)
	local ok, err = pcall(f, ...)
	check(not ok and tostring(err):find(pattern, 1, true) ~= nil,
	      "raises on " .. what, "pcall gave " .. tostring(ok) .. ", " .. tostring(err))
end
local function now_ms()
	local p = io.popen("date +%s%3N")
	local t = tonumber(p:read("*l"))
	p:close()
	return t
end
local function nfds()
	-- $PPID of popen's shell is this interpreter.
	local p = io.popen("ls /proc/$PPID/fd | wc -l")
	local n = tonumber(p:read("*l"))
	p:close()
	return n
end

-- --- connect -------------------------------------------------------------
local h, err, en = mmtrust.connect(SOCK, 2000)
if not h then
	fail("connect to the daemon: " .. tostring(err))
	os.exit(1)
end
pass("connect to the daemon")
check(tostring(h):find(SOCK, 1, true) ~= nil, "tostring names the socket", tostring(h))
local nh, nerr, nerrno = mmtrust.connect(FAULT .. "/no-such.sock")
check(nh == nil and type(nerr) == "string" and nerr:find("No such file", 1, true) and nerrno == 2,
      "connect to no socket: nil, message, errno", show(nh) .. " " .. show(nerr) .. " " .. show(nerrno))
check(mmtrust.QUERY_SOCKET == "/run/mmtrust/query.sock", "QUERY_SOCKET", mmtrust.QUERY_SOCKET)

-- --- answers ---------------------------------------------------------------
expect(h:inbound("198.18.0.7"), { pai = "keep", reason = "seg-trusted", partner = "ims.partner-s.example",
	kind = "ims", path = "seg", agreement = "true", enabled = "true", protected = "false",
	error = "nil", errno = "nil" }, "inbound from the seg partner with agreement: keep")
-- The script gets the in-process answer (the snapshot) too.
expect(h:inbound("198.18.0.7"), { pai = "keep", reason = "seg-trusted", source = "snapshot",
	src = "198.18.0.7" }, "the next answer comes in-process (source snapshot)")
expect(h:inbound("10.1.2.3"), { pai = "strip", reason = "unknown-source", partner = "nil",
	kind = "nil", agreement = "false", error = "nil" }, "inbound from an unknown address: strip, unknown-source")
expect(h:inbound("192.0.2.10", "10.0.0.5"), { pai = "strip", reason = "unprotected",
	partner = "ims.partner-a.example", path = "tunnel", dst = "10.0.0.5" },
	"inbound from the tunnel partner, no SA, dst not ours: strip")
expect(h:inbound("192.0.2.10"), { pai = "strip", reason = "unprotected", partner = "ims.partner-a.example" },
	"inbound from the tunnel partner without SA: strip, unprotected")
expect(h:inbound("2001:DB8:5::9", nil, 0xc1a2b3c4), { pai = "keep", reason = "seg-trusted" },
	"inbound IPv6 with an SPI from the seg partner: keep")
expect(h:inbound("203.0.113.5"), { pai = "strip", reason = "no-agreement", partner = "sip.provider-n.example",
	kind = "non-ims", agreement = "false" }, "inbound from the partner without agreement: strip")
expect(h:inbound("203.0.113.200"), { pai = "strip", reason = "partner-disabled", enabled = "false" },
	"inbound from the disabled partner: strip")
expect(h:outbound{ domain = "ims.partner-s.example" }, { pai = "keep", reason = "seg-trusted",
	trusted = "true", tunnel = "none" }, "outbound{domain} to the agreed seg partner: keep")
expect(h:outbound{ domain = "ims.partner-s.example", privacy_id = true }, { pai = "keep" },
	"outbound with privacy_id to the trusted partner: keep")
expect(h:outbound("sip.provider-n.example"), { pai = "strip", reason = "no-agreement", trusted = "false" },
	"outbound(domain) to the partner without agreement: strip")
expect(h:outbound{ domain = "ims.partner-a.example" }, { pai = "strip", reason = "unprotected",
	tunnel = "down" }, "outbound to the tunnel partner, tunnel down: strip")
expect(h:outbound("other.example", nil, false), { pai = "strip", reason = "not-a-partner", partner = "nil" },
	"outbound to a non-partner: strip, not-a-partner")
expect(h:outbound{ dst = "198.18.0.9" }, { pai = "keep", dst = "198.18.0.9",
	partner = "ims.partner-s.example" }, "outbound{dst} in the seg partner's range: keep")
expect(h:outbound(nil, "10.1.2.3"), { pai = "strip", reason = "not-a-partner" },
	"outbound(nil, dst) outside every range: strip")
expect(h:spi(0xc1a2b3c4), { pai = "strip", partner = "nil", error = "nil" }, "spi of no SA: no partner")

-- --- refusals: fail closed, the connection stays usable -----------------
local a = h:inbound("300.1.1.1")
expect(a, { pai = "strip", reason = "query-refused", errno = "71" }, "inbound of a non-address: strip, query-refused")
check(a.error and a.error:find("invalid: src", 1, true), "the refusal's error names the field", show(a.error))
expect(h:outbound{}, { pai = "strip", reason = "query-refused" }, "outbound with neither domain nor dst: refused")
expect(h:outbound("a.example", "192.0.2.1"), { pai = "strip", reason = "query-refused" },
	"outbound with domain and dst: refused")
expect(h:spi(0), { pai = "strip", reason = "query-refused" }, "spi 0: refused")
expect(h:inbound("198.18.0.7\0" .. "10.1.2.3"), { pai = "strip", reason = "query-invalid-argument" },
	"a src with a NUL byte is not cut to the keep address: strip, query-invalid-argument")
expect(h:inbound("198.18.0.7"), { pai = "keep", error = "nil" }, "after the refusals the handle still answers")

-- --- the seeded comparison with the socket's answers ---------------------
local n, bad = 0, 0
for line in io.lines(REF) do
	local c = {}
	for col in line:gmatch("[^\t]+") do c[#c + 1] = col end
	local function opt(s) if s == "-" then return nil end return s end
	local ans
	if c[1] == "inbound" then
		ans = h:inbound(c[2], opt(c[3]), tonumber(c[4]))
	else
		ans = h:outbound{ domain = opt(c[2]), dst = opt(c[3]), privacy_id = c[4] == "1" }
	end
	n = n + 1
	for i = 5, #c do
		local k, v = c[i]:match("^([^=]+)=(.*)$")
		if show(ans[k]) ~= v then
			bad = bad + 1
			if bad <= 10 then
				fail("comparison: " .. table.concat(c, " ", 1, 4) .. ": " .. k .. " is " ..
				     show(ans[k]) .. ", the socket says " .. v)
			end
			break
		end
	end
end
check(n >= 100 and bad == 0, n .. " seeded questions answered as the socket answers them",
      bad .. " differ")

-- --- programming errors raise --------------------------------------------
raises("inbound src a number", "src must be a string", h.inbound, h, 5)
raises("inbound without src", "src must be a string", h.inbound, h)
raises("inbound dst a table", "dst must be a string", h.inbound, h, "192.0.2.1", {})
raises("inbound spi a string", "spi must be a number", h.inbound, h, "192.0.2.1", nil, "0x1")
raises("inbound spi negative", "spi must be an integer", h.inbound, h, "192.0.2.1", nil, -1)
raises("inbound spi over 32 bits", "spi must be an integer", h.inbound, h, "192.0.2.1", nil, 2 ^ 32)
raises("inbound spi not whole", "spi must be an integer", h.inbound, h, "192.0.2.1", nil, 1.5)
raises("outbound{privacy = true} (unknown key)", "unknown key privacy", h.outbound, h, { privacy = true })
raises("outbound privacy_id a string", "privacy_id must be a boolean", h.outbound, h,
       { domain = "a.example", privacy_id = "id" })
raises("outbound domain a number", "domain must be a string", h.outbound, h, 5)
raises("outbound table and positional", "not both", h.outbound, h, { domain = "a.example" }, "192.0.2.1")
raises("spi without a number", "spi must be a number", h.spi, h, "0x1")
raises("a method on something not a handle", "mmtrust.handle", h.inbound, {}, "192.0.2.1")
raises("connect path a number", "path must be a string", mmtrust.connect, 5)
raises("connect timeout a string", "timeout_ms must be a number", mmtrust.connect, SOCK, "100")
raises("connect timeout negative", "timeout_ms must be an integer", mmtrust.connect, SOCK, -1)

-- --- fault injection: each failure is a strip ------------------------------
local function fault(name, timeout, want, what)
	local f = mmtrust.connect(FAULT .. "/" .. name .. ".sock", timeout)
	if not f then fail(what .. ": cannot connect"); return end
	local t0 = now_ms()
	local r = f:inbound("198.18.0.7")
	local dt = now_ms() - t0
	expect(r, { pai = "strip", reason = want }, what)
	check(type(r.error) == "string" and #r.error > 0 and type(r.errno) == "number",
	      what .. ": error and errno set", dump(r))
	f:close()
	return r, dt
end
local _, dt = fault("silent", 300, "query-timeout", "a daemon that never answers: strip, query-timeout")
check(dt >= 290 and dt < 1500, "the timeout is kept (" .. show(dt) .. " ms for 300)")
fault("garbage", 300, "query-bad-answer", "an answer that is not JSON: strip, query-bad-answer")
fault("noresult", 300, "query-bad-answer", "an answer without result: strip, query-bad-answer")
fault("hangup", 300, "query-disconnected", "the connection closed unanswered: strip, query-disconnected")
-- A late "keep" must never be read as the answer to the next question.
local late = mmtrust.connect(FAULT .. "/late.sock", 300)
expect(late:inbound("10.9.9.9"), { pai = "strip", reason = "query-timeout" }, "late answer: the first question times out")
os.execute("sleep 1.3")
expect(late:inbound("10.9.9.8"), { pai = "strip", reason = "query-timeout" },
       "the late keep of the first question is not the next question's answer")
late:close()

-- --- __gc closes, close() is final ------------------------------------------
local before = nfds()
for _ = 1, 40 do
	local t = mmtrust.connect(SOCK, 1000)
	t:inbound("198.18.0.7")
end
collectgarbage("collect")
collectgarbage("collect")
local after = nfds()
check(after <= before, "40 handles left to the collector: their sockets are closed",
      before .. " fds before, " .. after .. " after")
local c = mmtrust.connect(SOCK, 1000)
c:close()
c:close()
expect(c:inbound("198.18.0.7"), { pai = "strip", reason = "query-closed" }, "a closed handle: strip, query-closed")
expect(c:outbound{ domain = "ims.partner-s.example" }, { pai = "strip", reason = "query-closed" },
       "a closed handle's outbound: strip")
check(tostring(c) == "mmtrust handle (closed)", "tostring of a closed handle", tostring(c))

-- --- the daemon stops: the same handle fails closed --------------------------
touch("lua.up")
wait_file("go-dead")
local calls = {
	{ "inbound", function() return h:inbound("198.18.0.7") end },
	{ "inbound with dst and spi", function() return h:inbound("2001:db8:5::9", "2001:db8:1::1", 7) end },
	{ "outbound{domain}", function() return h:outbound{ domain = "ims.partner-s.example" } end },
	{ "outbound{dst}", function() return h:outbound{ dst = "198.18.0.9", privacy_id = true } end },
	{ "spi", function() return h:spi(1) end },
}
local failed_closed = 0
for round = 1, 2 do
	for _, cl in ipairs(calls) do
		local ok, r = pcall(cl[2])
		if ok and r.pai == "strip" and type(r.error) == "string" and #r.error > 0 and
		   (r.reason == "query-disconnected" or r.reason == "query-no-daemon") then
			failed_closed = failed_closed + 1
		else
			fail("daemon stopped: " .. cl[1] .. " (round " .. round .. "): " ..
			     (ok and dump(r) or ("raised " .. tostring(r))))
		end
	end
end
check(failed_closed == 2 * #calls, "daemon stopped: all " .. 2 * #calls ..
      " questions answer strip with an error, none raises")
local dh, derr = mmtrust.connect(SOCK)
check(dh == nil and type(derr) == "string", "daemon stopped: connect returns nil and a message", show(derr))
touch("lua.dead")
wait_file("go-back")
expect(h:inbound("198.18.0.7"), { pai = "keep", error = "nil" }, "daemon back: the same handle answers again")
h:close()
out("DONE lua")
