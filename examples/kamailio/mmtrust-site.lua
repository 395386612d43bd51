-- mmtrust-site.lua: this edge's settings, read by mmtrust-edge.lua
-- (kamailio.cfg loads this file first; docs/kamailio.md).
--
-- Only data here: the routing and the trust check are in mmtrust-edge.lua,
-- which refuses to start when a setting is missing or of the wrong type.
MMTRUST_SITE = {
	-- mmtrustd's query socket ([daemon] query_socket).  Kamailio's user
	-- must be allowed on it: [daemon] query_group = kamailio.
	query_socket = "/run/mmtrust/query.sock",

	-- How long a worker waits for mmtrustd's answer when it has to ask over
	-- the socket (the in-process answer from the snapshot does not wait).
	-- No answer in time: P-Asserted-Identity is removed.
	timeout_ms = 200,

	-- Where requests from partners go: our I-CSCF (or S-CSCF), a SIP URI.
	core_next_hop = "sip:10.20.0.2:5060",

	-- Next hops of partner domains, by the domain of the Request-URI.
	-- A domain not listed is routed by DNS (RFC 3263).  Write an address
	-- (not a name) where you can: mmtrustd is then asked about the address
	-- the request is sent to, not only about the domain.
	partners = {
		-- ["ims.partner-a.example"] = "sip:192.0.2.10:5060",
	},

	-- Where the mmtrust Lua module is, when not on Lua's default path
	-- (make install puts it on it); nil for the default.
	lua_cpath = nil,
}
