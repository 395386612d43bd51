#!/usr/bin/python3
"""The Python module "mmtrust" against the real mmtrustd, for
test_bindings.sh (which runs it with PYTHONPATH at the built module).

    bindings_check.py SOCKET REFERENCE FAULT_DIR SYNC_DIR

Prints "PASS what" / "FAIL what" lines.  Phases as bindings_check.lua's
(files py.up / go-dead / py.dead / go-back in SYNC_DIR), plus the GIL
being released during a question and one handle shared by threads."""
import os
import sys
import threading
import time

import mmtrust

SOCK, REF, FAULT, SYNC = sys.argv[1:5]
KEYS = {"pai", "reason", "partner", "kind", "path", "agreement", "enabled", "protected", "trusted",
        "tunnel", "reqid", "spi_in", "spi_out", "remote_id", "direction", "dst", "src", "domain",
        "source", "error", "errno"}


def out(s):
    print(s, flush=True)


def passed(what):
    out("PASS python: " + what)


def failed(what):
    out("FAIL python: " + what)


def check(ok, what, detail=""):
    if ok:
        passed(what)
    else:
        failed(what + (": " + str(detail) if detail else ""))


def show(v):
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def expect(a, want, what):
    if not isinstance(a, dict):
        failed("%s: not a dict: %r" % (what, a))
        return
    for k, v in want.items():
        if a.get(k, "MISSING") != v:
            failed("%s: %s is %r, want %r in %r" % (what, k, a.get(k, "MISSING"), v, a))
            return
    if set(a) != KEYS:
        failed("%s: keys %s" % (what, sorted(set(a) ^ KEYS)))
        return
    passed(what)


def raises(what, exc, text, f, *args, **kw):
    try:
        r = f(*args, **kw)
    except exc as e:
        check(text in str(e), "raises %s on %s" % (exc.__name__, what), str(e))
        return
    except Exception as e:  # noqa: BLE001 - any other exception is the failure
        failed("raises %s on %s: raised %r" % (exc.__name__, what, e))
        return
    failed("raises %s on %s: returned %r" % (exc.__name__, what, r))


def wait_file(name):
    while not os.path.exists(os.path.join(SYNC, name)):
        time.sleep(0.05)


def touch(name):
    open(os.path.join(SYNC, name), "w").close()


def nfds():
    return len(os.listdir("/proc/self/fd"))


# --- connect ---------------------------------------------------------------
try:
    h = mmtrust.connect(SOCK, timeout_ms=2000)
except OSError as e:
    failed("connect to the daemon: %s" % e)
    sys.exit(1)
passed("connect to the daemon")
check(SOCK in repr(h) and h.closed is False, "repr names the socket, not closed", repr(h))
try:
    mmtrust.connect(path=os.path.join(FAULT, "no-such.sock"))
    failed("connect to no socket raises FileNotFoundError: it returned")
except FileNotFoundError as e:
    check(e.errno == 2 and "no-such.sock" in str(e), "connect to no socket raises FileNotFoundError", e)
check(mmtrust.QUERY_SOCKET == "/run/mmtrust/query.sock" and mmtrust.DEFAULT_TIMEOUT_MS == 500,
      "QUERY_SOCKET and DEFAULT_TIMEOUT_MS")

# --- answers ---------------------------------------------------------------
expect(h.inbound("198.18.0.7"), {"pai": "keep", "reason": "seg-trusted", "partner": "ims.partner-s.example",
       "kind": "ims", "path": "seg", "agreement": True, "enabled": True, "protected": False,
       "error": None, "errno": None}, "inbound from the seg partner with agreement: keep")
# The script gets the in-process answer (the snapshot) once the handle
# has found it: the same answer, without a round trip.
expect(h.inbound("198.18.0.7"), {"pai": "keep", "reason": "seg-trusted", "source": "snapshot",
       "src": "198.18.0.7"}, "the next answer comes in-process (source snapshot)")
expect(h.outbound(domain="IMS.partner-s.example."), {"pai": "keep", "source": "snapshot",
       "domain": "ims.partner-s.example"}, "outbound in-process, the domain canonical")
expect(h.inbound("10.1.2.3"), {"pai": "strip", "reason": "unknown-source", "partner": None, "kind": None,
       "agreement": False, "error": None}, "inbound from an unknown address: strip, unknown-source")
expect(h.inbound("192.0.2.10", dst="10.0.0.5"), {"pai": "strip", "reason": "unprotected",
       "partner": "ims.partner-a.example", "path": "tunnel", "dst": "10.0.0.5"},
       "inbound from the tunnel partner, no SA, dst not ours: strip")
expect(h.inbound("192.0.2.10"), {"pai": "strip", "reason": "unprotected", "partner": "ims.partner-a.example"},
       "inbound from the tunnel partner without SA: strip, unprotected")
expect(h.inbound("2001:DB8:5::9", spi=0xc1a2b3c4), {"pai": "keep", "reason": "seg-trusted"},
       "inbound IPv6 with an SPI from the seg partner: keep")
expect(h.inbound("203.0.113.5"), {"pai": "strip", "reason": "no-agreement", "partner": "sip.provider-n.example",
       "kind": "non-ims", "agreement": False}, "inbound from the partner without agreement: strip")
expect(h.inbound("203.0.113.200"), {"pai": "strip", "reason": "partner-disabled", "enabled": False},
       "inbound from the disabled partner: strip")
expect(h.outbound(domain="ims.partner-s.example"), {"pai": "keep", "reason": "seg-trusted", "trusted": True,
       "tunnel": "none"}, "outbound(domain=) to the agreed seg partner: keep")
expect(h.outbound("ims.partner-s.example", privacy_id=True), {"pai": "keep"},
       "outbound with privacy_id to the trusted partner: keep")
expect(h.outbound("sip.provider-n.example"), {"pai": "strip", "reason": "no-agreement", "trusted": False},
       "outbound(domain) to the partner without agreement: strip")
expect(h.outbound(domain="ims.partner-a.example"), {"pai": "strip", "reason": "unprotected", "tunnel": "down"},
       "outbound to the tunnel partner, tunnel down: strip")
expect(h.outbound("other.example", None, False), {"pai": "strip", "reason": "not-a-partner", "partner": None},
       "outbound to a non-partner: strip, not-a-partner")
expect(h.outbound(dst="198.18.0.9"), {"pai": "keep", "dst": "198.18.0.9", "partner": "ims.partner-s.example"},
       "outbound(dst=) in the seg partner's range: keep")
expect(h.spi(0xc1a2b3c4), {"pai": "strip", "partner": None, "error": None}, "spi of no SA: no partner")

# --- refusals: fail closed, the connection stays usable -----------------
a = h.inbound("300.1.1.1")
expect(a, {"pai": "strip", "reason": "query-refused", "errno": 71}, "inbound of a non-address: strip, query-refused")
check("invalid: src" in (a["error"] or ""), "the refusal's error names the field", a["error"])
expect(h.outbound(), {"pai": "strip", "reason": "query-refused"}, "outbound with neither domain nor dst: refused")
expect(h.outbound("a.example", "192.0.2.1"), {"pai": "strip", "reason": "query-refused"},
       "outbound with domain and dst: refused")
expect(h.spi(0), {"pai": "strip", "reason": "query-refused"}, "spi 0: refused")
expect(h.inbound("198.18.0.7\x0010.1.2.3"), {"pai": "strip", "reason": "query-invalid-argument"},
       "a src with a NUL byte is not cut to the keep address: strip, query-invalid-argument")
expect(h.inbound("198.18.0.7\ud800"), {"pai": "strip", "reason": "query-invalid-argument"},
       "a src that is not encodable (lone surrogate): strip, no exception")
expect(h.inbound("198.18.0.7"), {"pai": "keep", "error": None}, "after the refusals the handle still answers")

# --- the seeded comparison with the socket's answers ---------------------
n = bad = 0
with open(REF) as f:
    for line in f:
        c = line.rstrip("\n").split("\t")
        opt = (lambda s: None if s == "-" else s)
        if c[0] == "inbound":
            ans = h.inbound(c[1], opt(c[2]), int(c[3]))
        else:
            ans = h.outbound(domain=opt(c[1]), dst=opt(c[2]), privacy_id=c[3] == "1")
        n += 1
        for kv in c[4:]:
            k, v = kv.split("=", 1)
            if show(ans.get(k)) != v:
                bad += 1
                if bad <= 10:
                    failed("comparison: %s: %s is %s, the socket says %s" % (" ".join(c[:4]), k,
                                                                           show(ans.get(k)), v))
                break
check(n >= 100 and bad == 0, "%d seeded questions answered as the socket answers them" % n, "%d differ" % bad)

# --- programming errors raise --------------------------------------------
raises("inbound src an int", TypeError, "src must be a str", h.inbound, 5)
raises("inbound src None", TypeError, "src must be a str", h.inbound, None)
raises("inbound src bytes", TypeError, "src must be a str", h.inbound, b"192.0.2.1")
raises("inbound dst an int", TypeError, "dst must be a str", h.inbound, "192.0.2.1", 5)
raises("inbound spi a str", TypeError, "spi must be an int", h.inbound, "192.0.2.1", spi="0x1")
raises("inbound spi a bool", TypeError, "spi must be an int", h.inbound, "192.0.2.1", spi=True)
raises("inbound spi negative", ValueError, "spi must be from 0", h.inbound, "192.0.2.1", spi=-1)
raises("inbound spi over 32 bits", ValueError, "spi must be from 0", h.inbound, "192.0.2.1", spi=1 << 32)
raises("outbound privacy=True (unknown keyword)", TypeError, "privacy", h.outbound, "a.example", privacy=True)
raises("outbound privacy_id a str", TypeError, "privacy_id must be a bool", h.outbound, "a.example",
       privacy_id="id")
raises("outbound domain an int", TypeError, "domain must be a str", h.outbound, 5)
raises("spi without an int", TypeError, "spi must be an int", h.spi, "0x1")
raises("connect path an int", TypeError, "path must be a str", mmtrust.connect, 5)
raises("connect timeout a float", TypeError, "timeout_ms must be an int", mmtrust.connect, SOCK, 1.5)
raises("connect timeout negative", ValueError, "timeout_ms must be from 0", mmtrust.connect, SOCK, -1)


# --- fault injection: each failure is a strip ------------------------------
def fault(name, timeout, want, what):
    with mmtrust.connect(os.path.join(FAULT, name + ".sock"), timeout) as f:
        t0 = time.monotonic()
        r = f.inbound("198.18.0.7")
        dt = (time.monotonic() - t0) * 1000
    expect(r, {"pai": "strip", "reason": want}, what)
    check(isinstance(r["error"], str) and r["error"] and isinstance(r["errno"], int),
          what + ": error and errno set", r)
    return dt


dt = fault("silent", 300, "query-timeout", "a daemon that never answers: strip, query-timeout")
check(290 <= dt < 1500, "the timeout is kept (%d ms for 300)" % dt)
fault("garbage", 300, "query-bad-answer", "an answer that is not JSON: strip, query-bad-answer")
fault("noresult", 300, "query-bad-answer", "an answer without result: strip, query-bad-answer")
fault("hangup", 300, "query-disconnected", "the connection closed unanswered: strip, query-disconnected")
with mmtrust.connect(os.path.join(FAULT, "late.sock"), 300) as late:
    expect(late.inbound("10.9.9.9"), {"pai": "strip", "reason": "query-timeout"},
           "late answer: the first question times out")
    time.sleep(1.3)
    expect(late.inbound("10.9.9.8"), {"pai": "strip", "reason": "query-timeout"},
           "the late keep of the first question is not the next question's answer")

# The GIL is released while a question waits: this thread keeps running.
with mmtrust.connect(os.path.join(FAULT, "silent.sock"), 600) as slow:
    t = threading.Thread(target=slow.inbound, args=("198.18.0.7",))
    spins = 0
    t.start()
    while t.is_alive():
        spins += 1
    t.join()
check(spins > 10000, "the GIL is released during a question (%d loops ran meanwhile)" % spins)

# One handle, four threads: every answer is its own question's.
wrong = []


def worker(addr, want):
    for _ in range(100):
        r = h.inbound(addr)
        if r["pai"] != want[0] or r["reason"] != want[1]:
            wrong.append((addr, r))


ts = [threading.Thread(target=worker, args=a) for a in
      [("198.18.0.7", ("keep", "seg-trusted")), ("10.1.2.3", ("strip", "unknown-source")),
       ("203.0.113.5", ("strip", "no-agreement")), ("192.0.2.10", ("strip", "unprotected"))]]
for t in ts:
    t.start()
for t in ts:
    t.join()
check(not wrong, "one handle shared by 4 threads: 400 answers, each its own", wrong[:3])

# fork(): parent and child ask at once on the handle made before the fork;
# each must get its own answers (the child connects anew).
rd, wr = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(rd)
    bad_child = sum(1 for _ in range(200) if h.inbound("10.1.2.3")["reason"] != "unknown-source")
    os.write(wr, str(bad_child).encode())
    os._exit(0)
os.close(wr)
bad_parent = sum(1 for _ in range(200) if h.inbound("198.18.0.7")["pai"] != "keep")
bad_child = os.read(rd, 64).decode()
os.close(rd)
_, status = os.waitpid(pid, 0)
check(bad_parent == 0 and bad_child == "0" and status == 0,
      "a handle used on both sides of fork(): 200 + 200 answers, each its own",
      "parent %d wrong, child %s wrong, status %d" % (bad_parent, bad_child, status))

# --- dealloc and close() ------------------------------------------------------
before = nfds()
for _ in range(40):
    mmtrust.connect(SOCK, 1000).inbound("198.18.0.7")
check(nfds() <= before, "40 handles dropped: their sockets are closed", "%d fds before, %d after" % (before, nfds()))
with mmtrust.connect(SOCK, 1000) as c:
    expect(c.inbound("198.18.0.7"), {"pai": "keep"}, "a handle in a with block answers")
check(c.closed, "leaving the with block closes the handle")
c.close()
expect(c.inbound("198.18.0.7"), {"pai": "strip", "reason": "query-closed"}, "a closed handle: strip, query-closed")
expect(c.spi(1), {"pai": "strip", "reason": "query-closed"}, "a closed handle's spi: strip")
check(repr(c) == "<mmtrust.Handle closed>", "repr of a closed handle", repr(c))

# --- the daemon stops: the same handle fails closed --------------------------
touch("py.up")
wait_file("go-dead")
calls = [
    ("inbound", lambda: h.inbound("198.18.0.7")),
    ("inbound with dst and spi", lambda: h.inbound("2001:db8:5::9", "2001:db8:1::1", 7)),
    ("outbound(domain=)", lambda: h.outbound(domain="ims.partner-s.example")),
    ("outbound(dst=)", lambda: h.outbound(dst="198.18.0.9", privacy_id=True)),
    ("spi", lambda: h.spi(1)),
]
ok_n = 0
for rnd in (1, 2):
    for name, call in calls:
        try:
            r = call()
        except Exception as e:  # noqa: BLE001 - an exception here is the failure
            failed("daemon stopped: %s (round %d) raised %r" % (name, rnd, e))
            continue
        if (r["pai"] == "strip" and r["error"] and
                r["reason"] in ("query-disconnected", "query-no-daemon")):
            ok_n += 1
        else:
            failed("daemon stopped: %s (round %d): %r" % (name, rnd, r))
check(ok_n == 2 * len(calls), "daemon stopped: all %d questions answer strip with an error, none raises"
      % (2 * len(calls)))
try:
    mmtrust.connect(SOCK)
    failed("daemon stopped: connect raises OSError: it returned")
except OSError as e:
    passed("daemon stopped: connect raises OSError (%s)" % type(e).__name__)
touch("py.dead")
wait_file("go-back")
expect(h.inbound("198.18.0.7"), {"pai": "keep", "error": None}, "daemon back: the same handle answers again")
h.close()
out("DONE python")
