-- edge-nocheck.lua: bench/sip.sh only.  The shipped mmtrust-edge.lua (the
-- copy next to this file) with its two checks replaced by functions that do
-- nothing: the same configuration, routing and modules, without asking
-- mmtrustd.  The baseline the check's cost is measured against; never a
-- deployment (every P-Asserted-Identity would pass untouched).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "mmtrust-edge.lua")
MMTRUST_EDGE.check_inbound = function() return true end
MMTRUST_EDGE.check_outbound = function() return true end
