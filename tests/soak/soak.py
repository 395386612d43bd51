#!/usr/bin/env python3
"""Soak: mmtrustd with 10,000 partners for a stated time under a mixed load,
in a network namespace of its own, with tests/integration/fake_charon.py
as charon (this kernel has no ESP: every connection the daemon loads comes
up at once, authenticated as the partner).

Load, all at once:
  queries   several clients on the query socket ask `inbound` (dst in a
            [local] cscf prefix, outside them, or none; the partner's SPI or
            another) and `outbound` (by domain, in odd spellings, or by
            address) for partner and non-partner addresses in every
            spelling, and malformed ones; every answer is checked against
            a reference computed here from the table the soak provisioned;
  admin     partner add/set/del with mmtrustctl, a few a second;
  foreign   `ip xfrm policy add/delete` of other programs' policies
            (selectors outside every partner range), and now and then a
            delete of one of ours (by index), whose repair is checked;
  sighup    SIGHUP every ~30 s;
  charon    the fake charon killed and restarted every ~150 s (the daemon
            reconnects and loads every connection again).  A real charon
            restart (the VM tier) is not covered.
Sampled every 2 s: the daemon's VmRSS, its open fds, the log's size.

The reference (docs/privacy.md, docs/protocol.md): the partner is the one
whose range holds the address (ranges never overlap; each partner lives in
its own /24 "slot" and its own IPv6 /64); an answer names the partner and
its kind/agreement/path/enabled as one table state current during the
request, and reason/pai/protected follow the decision table.  The tunnel
facts: at rest, every enabled tunnel partner's SA is up (the fake charon)
with the SPIs the fake charon derives from the reqid, and the kernel
enforces its policies.  While that partner is in flux -- an admin change
of it in flight or acked less than SETTLE s ago, a delete of one of its
policies less than REPAIR + 1 s ago, a charon restart until every tunnel
is back and SETTLE s more -- the SA may be down and the policies not
enforced (any combination), but the rest of the table still holds.  A
SIGHUP (same configuration, same table) puts nothing in flux: it must not
change an answer.  So an answer is wrong only if no table state in flight
allows it.

Bounds (a violation fails the run):
  rss       after warm-up (WARMUP s of load), VmRSS never above the
            warm-up maximum + max(10 %, RSS_SLACK MiB);
  fds       after warm-up, the open fds within +-FD_SLACK of the warm-up
            range;
  log       under load, apart from the charon restarts: at most
            LOG_PER_CHANGE bytes per admin change, LOG_PER_EVENT per SIGHUP
            or delete of ours, and LOG_IDLE a minute besides, and at most
            LOG_BURST bytes in any 10 s; each charon restart at most
            LOG_PER_TUNNEL bytes per tunnel partner (every tunnel goes down
            and comes back);
  answers   no wrong answer, no error answer to a valid request, every
            malformed request refused with field src;
  repair    every deleted policy of ours back within REPAIR s;
  end       the daemon's table equals the soak's, `status` in sync for
            every partner, the kernel's SPD exactly the reference set of
            our policies, the foreign policies exactly the soak's, and a
            sweep over every partner answers at rest.

Usage: soak.py [--seconds S] [--seed N] [--partners N] [--tunnel-share F]
               [--keep] BUILD
SOAK_SECONDS (600), SOAK_SEED, SOAK_PARTNERS (10000) and SOAK_TUNNEL_SHARE
(0.8: the share of tunnel partners, the others are IMS partners behind the
SEG) stand in for absent options; SOAK_SIGHUP_EVERY (30) and
SOAK_CHARON_EVERY (150) set the mean seconds between SIGHUPs and between
charon restarts.  --keep keeps the directory (log, store).  Python 3 standard library only; run as root."""

import argparse
import ipaddress
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "model"))
import model  # noqa: E402  (the model test's kernel parser and SPD reference)

TUN4 = "198.51.100.1"
CSCF = ["10.10.0.0/24", "2001:db8:10::/64"]
# The soak's [local] cscf: model.reference_spd() reads it from there.
model.CSCF = CSCF

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE = os.path.join(HERE, "..", "integration", "fake_charon.py")

CSCF_HOST = {4: ["10.10.0.7", "10.10.0.200"], 6: ["2001:db8:10::7"]}
NOT_CSCF = {4: ["10.30.0.1", TUN4], 6: ["2001:db8:30::1"]}
REQID_MIN, REQID_MAX = 100000, 165535   # 65536 values: the fake SPIs never collide
SLOTS = 12288                           # 100.64.0.0 .. 100.111.255.255
V4_BASE = int(ipaddress.ip_address("100.64.0.0"))
V6_BASE = int(ipaddress.ip_address("2001:db8:1::"))
FOREIGN4 = "100.120.0.0/13"             # no partner range is ever here
SETTLE = 10.0
WARMUP = 60.0
RSS_SLACK = 8 * 1024                    # KiB
FD_SLACK = 4
LOG_PER_CHANGE = 1024
LOG_PER_EVENT = 2048
LOG_IDLE = 16 * 1024
LOG_BURST = 64 * 1024
LOG_PER_TUNNEL = 512
REPAIR = 5.0
SIGHUP_EVERY = float(os.environ.get("SOAK_SIGHUP_EVERY", 30))
CHARON_EVERY = float(os.environ.get("SOAK_CHARON_EVERY", 150))
INF = float("inf")


def now():
    return time.monotonic()


def utc(t):
    """Wall-clock time as the daemon's log writes it."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


# ------------------------------------------------------------------ the table

def slot_v4(i):
    return ipaddress.ip_address(V4_BASE + i * 256)


def slot_v6(i):
    return ipaddress.ip_address(V6_BASE + (i << 64))


def gen_ranges(rng, i):
    """Ranges inside slot i: one or two IPv4 prefixes, sometimes an IPv6 one."""
    b4 = slot_v4(i)
    if rng.random() < 0.2:
        out = [f"{b4}/{rng.choice((26, 27))}", f"{b4 + 128}/{rng.choice((28, 30, 32))}"]
    else:
        out = [f"{b4}/{rng.choice((24, 25, 26, 28, 30, 32))}"]
    if rng.random() < 0.25:
        out.append(f"{slot_v6(i)}/{rng.choice((64, 96, 120, 128))}")
    return out


def gen_partner(rng, i, tunnel_share):
    """Partner i: a tunnel partner with probability tunnel_share, else an
    IMS partner behind the SEG."""
    tunnel = rng.random() < tunnel_share
    kind = "ims" if not tunnel or rng.random() < 0.5 else "non-ims"
    return {"domain": f"p{i}.soak.example", "kind": kind,
            "agreement": rng.random() < 0.7,
            "path": "tunnel" if tunnel else "seg",
            "enabled": rng.random() < 0.9,
            "ranges": gen_ranges(rng, i),
            "gateways": [f"203.0.113.{1 + i % 250}"] if rng.random() < 0.5 else
                        [f"198.18.{i // 256}.{1 + i % 254}", f"203.0.113.{1 + i % 250}"],
            "reqid": None}


def slot_of(addr):
    """The slot an address belongs to, or None."""
    a = model.norm_addr(addr)
    x = int(a)
    if a.version == 4:
        i = (x - V4_BASE) >> 8
    else:
        i = (x - V6_BASE) >> 64 if x >= V6_BASE else -1
    return i if 0 <= i < SLOTS else None


def holds(state, addr):
    a = model.norm_addr(addr)
    return any(a in model.norm_range(r) for r in state["ranges"])


class History:
    """Per slot, the table states with the interval each was current:
    [from, to) in monotonic time.  A change in flight makes the new state
    current from its send and the old one until its answer."""

    def __init__(self):
        self.lock = threading.Lock()
        self.states = {}        # slot -> [[from, to, state or None]]
        self.quiet = {}         # slot -> time before which tunnel facts may be in flux
        self.global_quiet = 0.0

    def current(self, i):
        h = self.states.get(i)
        return h[-1][2] if h else None

    def begin(self, i, new):
        with self.lock:
            t = now()
            h = self.states.setdefault(i, [[0.0, INF, None]])
            h.append([t, INF, new])
            self.quiet[i] = INF
            return h[-2], h[-1]

    def end(self, i, old_rec, new_rec, ok):
        with self.lock:
            t = now()
            h = self.states[i]
            if ok:
                old_rec[1] = t
            else:
                h.remove(new_rec)           # refused: the old state stays current
            self.quiet[i] = t + SETTLE
            # Old states are needed only as long as a query may overlap them.
            while len(h) > 4 and h[0][1] < t - 60:
                h.pop(0)

    def disturb(self, i, until):
        with self.lock:
            if self.quiet.get(i, 0) < until:
                self.quiet[i] = until

    def candidates(self, i, t0, t1):
        """The states current at some time in [t0, t1], and whether the
        tunnel facts may be in flux then."""
        with self.lock:
            h = self.states.get(i) or [[0.0, INF, None]]
            c = [r[2] for r in h if r[0] <= t1 and r[1] >= t0 and r[0] < r[1]]
            flux = self.quiet.get(i, 0) > t0 or self.global_quiet > t0
            return c, flux


# -------------------------------------------------------- reference answers

def spi_in(reqid):
    return "0x%08x" % (0xc1000000 + reqid % 0x10000)


def spi_out(reqid):
    return "0x%08x" % (0xc2000000 + reqid % 0x10000)


def in_cscf(dst, version):
    if dst is None:
        return None
    a = model.norm_addr(dst)
    return any(a.version == version and a in ipaddress.ip_network(c) for c in CSCF)


def ref_inbound(p, sa_up, enforced, dst_in, spi):
    """(protected, pai, reason) by docs/privacy.md's inbound table."""
    if p is None:
        return False, "strip", "unknown-source"
    if not p["enabled"]:
        return False, "strip", "partner-disabled"
    prot = p["path"] == "tunnel" and sa_up
    if prot:
        if dst_in is None:
            why = "dst-not-given"
        elif not dst_in:
            why = "dst-not-cscf"
        elif spi is not None and spi != spi_in(p["reqid"]):
            why = "spi-mismatch"
        elif not enforced:
            why = "not-enforced"
        else:
            why = None
    if not p["agreement"]:
        return prot and why is None, "strip", "no-agreement"
    if p["path"] == "seg":
        return False, "keep", "seg-trusted"
    if not sa_up:
        return False, "strip", "unprotected"
    if why:
        return False, "strip", why
    return True, "keep", "protected"


def ref_outbound(p, sa_up, enforced):
    """(trusted, tunnel, pai, reason) by the outbound table (strip-always)."""
    if p is None:
        return False, None, "strip", "not-a-partner"
    tun = "none" if p["path"] == "seg" else ("up" if sa_up else "down")
    if not p["enabled"]:
        return False, None, "strip", "partner-disabled"
    if not p["agreement"]:
        return False, tun, "strip", "no-agreement"
    if p["path"] == "seg":
        return True, tun, "keep", "seg-trusted"
    if not sa_up:
        return False, tun, "strip", "unprotected"
    if not enforced:
        return False, tun, "strip", "not-enforced"
    return True, tun, "keep", "protected"


def tunnel_facts(p, flux):
    """The (sa_up, enforced) the answer may rest on."""
    if p is None or not p["enabled"] or p["path"] != "tunnel":
        return [(False, False)]     # the answer does not depend on them
    if flux:
        return [(s, e) for s in (False, True) for e in (False, True)]
    return [(True, True)]


IDENT = ("kind", "agreement", "path", "enabled")


def unsafe(r, cands):
    """A wrong answer that trusts (keep, protected, trusted) or names
    another partner; the others are fail-safe (strip where keep was due)."""
    names = {p["domain"] if p else None for p in cands}
    return r.get("pai") == "keep" or r.get("protected") or r.get("trusted") or \
        (r.get("partner") not in names and r.get("partner") is not None)


def check_inbound(req, ans, cands, flux):
    """None if the answer is one a state in flight allows, else why not."""
    if not ans.get("ok"):
        return f"error {ans.get('error')}"
    r = ans["result"]
    src = model.norm_addr(req["src"])
    if r.get("src") != str(src):
        return f"src {r.get('src')}, want {src}"
    dst_in = in_cscf(req.get("dst"), src.version)
    for p in cands:
        if p is not None and not holds(p, src):
            p = None
        if (p["domain"] if p else None) != r.get("partner"):
            continue
        if p and any(r.get(k) != p[k] for k in IDENT):
            continue
        for sa_up, enf in tunnel_facts(p, flux):
            if (r.get("protected"), r.get("pai"), r.get("reason")) == \
                    ref_inbound(p, sa_up, enf, dst_in, req.get("spi")):
                if flux or not r.get("protected") or p is None or not r.get("sa"):
                    return None
                sa = r["sa"]
                if sa.get("spi_in") == spi_in(p["reqid"]) and \
                        sa.get("spi_out") == spi_out(p["reqid"]) and \
                        sa.get("remote_id") == p["domain"]:
                    return None
    return "no state in flight allows it: " + "; ".join(
        f"{p['domain']} {[p[k] for k in IDENT]} ranges {p['ranges']}" if p else "none"
        for p in cands) + (" (in flux)" if flux else "")


def check_outbound(req, ans, cands, flux):
    if not ans.get("ok"):
        return f"error {ans.get('error')}"
    r = ans["result"]
    for p in cands:
        if p is not None and "dst" in req and not holds(p, req["dst"]):
            p = None
        if (p["domain"] if p else None) != r.get("partner"):
            continue
        if p and any(r.get(k) != p[k] for k in ("kind", "agreement", "path")):
            continue
        for sa_up, enf in tunnel_facts(p, flux):
            t, tun, pai, why = ref_outbound(p, sa_up, enf)
            if (r.get("trusted"), r.get("pai"), r.get("reason")) == (t, pai, why) and \
                    (tun is None or r.get("tunnel") == tun):
                return None
    return "no state in flight allows it: " + "; ".join(
        f"{p['domain']} {[p[k] for k in IDENT]}" if p else "none" for p in cands) + \
        (" (in flux)" if flux else "")


# ------------------------------------------------------------------ the run

class Soak:
    def __init__(self, build, seed, seconds, partners, tunnel_share):
        self.build = os.path.abspath(build)
        self.tunnel_share = tunnel_share
        self.seed, self.seconds, self.n = seed, seconds, partners
        self.rng = random.Random(seed)
        self.dir = tempfile.mkdtemp(prefix="mmtrust-soak-")
        self.ns = f"mmtrust-soak-{os.getpid()}"
        self.hist = History()
        self.stop = threading.Event()
        self.violations = []
        self.vlock = threading.Lock()
        self.stats = {"queries": 0, "wrong": 0, "unsafe": 0, "fail_safe": 0, "errors": 0, "in_flux": 0, "malformed": 0,
                      "changes": 0, "refused": 0, "sighups": 0, "charon_restarts": 0,
                      "foreign_add": 0, "foreign_del": 0, "ours_deleted": 0, "repaired": 0}
        self.slock = threading.Lock()
        self.samples = []           # (t, rss KiB, fds, log bytes)
        self.foreign = {}           # (dir, src, dst) -> priority
        self.daemon = self.charon = None
        self.t_load = None
        self.keep = False
        self.charon_windows = []    # (t0, t1, log size at t0, at t1, tunnels, s until back)
        self.wrong_at = []          # (wall-clock time, "unsafe" or "fail_safe")
        self.admin_secs = []        # how long each mmtrustctl change took
        self.events = []            # (wall-clock time, what)

    # -- plumbing
    def path(self, name):
        return os.path.join(self.dir, name)

    def ip(self, *args, check=True):
        r = subprocess.run(["ip", "-n", self.ns] + list(args), capture_output=True, text=True)
        if check and r.returncode:
            raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")
        return r

    def ctl(self, *args):
        env = dict(os.environ, MMTRUST_ADMIN_SOCKET=self.path("admin.sock"),
                   MMTRUST_QUERY_SOCKET=self.path("query.sock"))
        return subprocess.run([os.path.join(self.build, "mmtrustctl")] + list(args),
                              capture_output=True, text=True, env=env, cwd=self.dir)

    def violation(self, kind, text):
        with self.vlock:
            self.violations.append((kind, text))
            if sum(1 for k, _ in self.violations if k == kind) <= 5:
                print(f"VIOLATION [{kind}] {text}", flush=True)

    def count(self, k, n=1):
        with self.slock:
            self.stats[k] += n

    # -- set-up
    def setup(self):
        subprocess.run(["ip", "netns", "add", self.ns], check=True)
        # Our tunnel address on a link that is up: mmtrustd counts a tunnel
        # up only while its local end is a usable address of the host.
        for args in (["link", "set", "lo", "up"],
                     ["link", "add", "mmtun0", "type", "veth", "peer", "name", "mmtun1"],
                     ["addr", "add", f"{TUN4}/24", "dev", "mmtun0"],
                     ["link", "set", "mmtun0", "up"], ["link", "set", "mmtun1", "up"]):
            subprocess.run(["ip", "-n", self.ns] + args, check=True)
        for name, args in (("ca", ["-addext", "basicConstraints=critical,CA:TRUE",
                                   "-addext", "keyUsage=critical,keyCertSign,cRLSign"]),
                           ("home", ["-addext", "basicConstraints=critical,CA:FALSE"])):
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:P-256", "-nodes", "-keyout", self.path(name + ".key"),
                            "-out", self.path(name + ".pem"), "-days", "30", "-subj",
                            f"/CN=soak-{name}"] + args, check=True, capture_output=True)
        with open(self.path("mmtrustd.conf"), "w") as f:
            f.write(f"""[daemon]
store = {self.path('store.db')}
admin_socket = {self.path('admin.sock')}
query_socket = {self.path('query.sock')}
[reqid]
min = {REQID_MIN}
max = {REQID_MAX}
[local]
cscf = {', '.join(CSCF)}
tunnel = {TUN4}
[spd]
priority_base = {model.PRIO_BASE}
verify_interval = 20
[ike]
enabled = yes
vici_socket = {self.path('charon.vici')}
certificate = {self.path('home.pem')}
private_key = {self.path('home.key')}
""")
        # Foreign policies present from the start.
        for _ in range(20):
            self.foreign_add()
        self.start_charon()
        log = open(self.path("daemon.log"), "ab")
        # `ip netns exec` execs the daemon: the PID is mmtrustd's.
        self.daemon = subprocess.Popen(["ip", "netns", "exec", self.ns,
                                        os.path.join(self.build, "mmtrustd"), "--foreground",
                                        "--config", self.path("mmtrustd.conf")],
                                       stdout=log, stderr=log)
        log.close()
        deadline = now() + 20
        while self.ctl("status").returncode != 0:
            if now() > deadline or self.daemon.poll() is not None:
                raise RuntimeError("the daemon did not start:\n" + self.log_tail())
            time.sleep(0.1)

    def start_charon(self):
        ready = self.path("charon.ready")
        if os.path.exists(ready):
            os.unlink(ready)
        self.charon = subprocess.Popen([sys.executable, FAKE, self.path("charon.vici"), ready])
        deadline = now() + 10
        while not os.path.exists(ready):
            if now() > deadline:
                raise RuntimeError("the fake charon did not start")
            time.sleep(0.02)

    def provision(self):
        """The table: N partners in random slots, one `mmtrustctl apply`."""
        slots = self.rng.sample(range(SLOTS), self.n)
        table = {i: gen_partner(self.rng, i, self.tunnel_share) for i in slots}
        with open(self.path("table.yaml"), "w") as f:
            f.write("partners:\n")
            for i in sorted(table):
                p = table[i]
                f.write(f"  - domain: {p['domain']}\n    kind: {p['kind']}\n"
                        f"    agreement: {str(p['agreement']).lower()}\n"
                        f"    path: {p['path']}\n    enabled: {str(p['enabled']).lower()}\n"
                        f"    ranges: [{', '.join(json.dumps(r) for r in p['ranges'])}]\n"
                        f"    gateways: [{', '.join(p['gateways'])}]\n    ca_file: ca.pem\n")
        t = now()
        r = self.ctl("apply", "table.yaml")
        if r.returncode:
            raise RuntimeError(f"apply: {r.stderr.strip()}")
        t_apply = now() - t
        listing = self.partner_list()
        for i, p in table.items():
            p["reqid"] = listing[p["domain"]]["reqid"]
            self.hist.states[i] = [[0.0, INF, p]]
        print(f"soak: {self.n} partners applied in {t_apply:.1f} s", flush=True)
        return t_apply

    def partner_list(self):
        r = self.ctl("--json", "partner", "list")
        return {p["domain"]: p for p in json.loads(r.stdout)["partners"]}

    def status(self):
        r = self.ctl("--json", "status")
        return json.loads(r.stdout) if r.returncode == 0 else None

    def table(self):
        """The soak's table now: domain -> partner."""
        with self.hist.lock:
            return {h[-1][2]["domain"]: h[-1][2] for h in self.hist.states.values()
                    if h[-1][2] is not None}

    def settled(self, timeout):
        """Wait until `status` is in sync for every partner; the last problems."""
        deadline = now() + timeout
        while True:
            probs = self.status_problems()
            if not probs or now() > deadline:
                return probs
            time.sleep(0.5)

    def status_problems(self):
        st = self.status()
        if st is None:
            return ["status: no answer"]
        table = self.table()
        _, per = model.reference_spd(table, {"tunnel6": False, "forward": False})
        got = {p["domain"]: p for p in st.get("partners", [])}
        out, total = [], 0
        for d, p in table.items():
            s = got.get(d)
            want = "disabled" if not p["enabled"] else "seg" if p["path"] == "seg" else "in-sync"
            if s is None:
                out.append(f"{d}: not in status")
            elif s.get("state") != want:
                out.append(f"{d}: state {s.get('state')}, want {want}")
            elif want == "in-sync":
                pol = s.get("policies", {})
                if not pol.get("expected") == pol.get("in_sync") == per[d]:
                    out.append(f"{d}: policies {pol}, want {per[d]} in sync")
                tun = s.get("tunnel") or {}
                if (tun.get("state"), tun.get("spi_in"), tun.get("spi_out")) != \
                        ("up", spi_in(p["reqid"]), spi_out(p["reqid"])):
                    out.append(f"{d}: tunnel {tun}, want up with the fake charon's SPIs")
            elif (s.get("tunnel") or {}).get("state") != "down":
                out.append(f"{d}: tunnel {s.get('tunnel')}, want down ({want})")
            total += per[d] or 0
        if len(got) != len(table):
            out.append(f"status lists {len(got)} partners, the table has {len(table)}")
        k = st.get("kernel", {})
        if k.get("expected") != total or k.get("in_sync") != total:
            out.append(f"kernel totals {k}, want {total} expected and in sync")
        return out

    def log_tail(self, n=20):
        try:
            with open(self.path("daemon.log"), errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    # -- load: queries
    def random_source(self, rng):
        """(request src spelling, slot or None), sometimes malformed (slot -1)."""
        x = rng.random()
        if x < 0.02:
            return rng.choice(["100.064.0.1", "100.64.1", " 100.64.0.1", "100.64.0.1 ",
                               "::ffff:100.64.0.1%eth0", "2001:db8:1::/64", "100.64.0.256",
                               "", "2001:db8:1:::1", "x"]), -1
        if x < 0.12:
            a = ipaddress.ip_address(int(ipaddress.ip_address("100.120.0.0")) +
                                     rng.randrange(1 << 19))
            return str(a), None
        if x < 0.15:
            return f"2001:db8:ffff::{rng.randrange(1, 65535):x}", None
        i = rng.randrange(SLOTS)
        if rng.random() < 0.8:
            a = slot_v4(i) + rng.choice((0, 1, 63, 64, 127, 128, 129, 255, rng.randrange(256)))
        else:
            a = slot_v6(i) + rng.choice((0, 1, 255, 256, 1 << 32, rng.randrange(1 << 64)))
        s = str(a)
        y = rng.random()
        if a.version == 4 and y < 0.15:
            s = "::ffff:" + s
        elif a.version == 4 and y < 0.25:
            s = f"::ffff:{int(a) >> 16:x}:{int(a) & 0xffff:x}"
        elif a.version == 6 and y < 0.2:
            s = a.exploded
        elif a.version == 6 and y < 0.4:
            s = s.upper()
        return s, i

    def make_query(self, rng):
        src, i = self.random_source(rng)
        if rng.random() < 0.25 and i != -1:
            # outbound: by domain (odd spellings too) or by address
            if i is not None and rng.random() < 0.6:
                d = f"p{i}.soak.example"
                v = rng.random()
                if v < 0.2:
                    d = d.upper()
                elif v < 0.3:
                    d += "."
                elif v < 0.4:
                    return {"op": "outbound", "domain": "sbc." + d}, ("out", None)
                return {"op": "outbound", "domain": d}, ("out", i)
            return {"op": "outbound", "dst": src}, ("out", i)
        req = {"op": "inbound", "src": src}
        if i == -1:
            return req, ("bad", None)
        ver = model.norm_addr(src).version
        y = rng.random()
        if y < 0.7:
            req["dst"] = rng.choice(CSCF_HOST[ver])
        elif y < 0.85:
            req["dst"] = rng.choice(NOT_CSCF[ver])
        if i is not None and rng.random() < 0.1:
            p = self.hist.current(i)
            if p and p["reqid"]:
                req["spi"] = spi_in(p["reqid"]) if rng.random() < 0.5 else "0x%x" % (
                    0xc1000000 + (p["reqid"] + 1) % 0x10000)
        return req, ("in", i)

    def query_client(self, k):
        rng = random.Random(self.seed * 1000 + k)
        conn = None
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = model.Conn(self.path("query.sock"))
                batch = [self.make_query(rng) for _ in range(32)]
                wall0 = time.time()
                t0 = now()
                answers = conn.call_many([q for q, _ in batch])
                t1 = now()
            except (OSError, ValueError) as e:
                self.violation("query", f"client {k}: {e}")
                conn = None
                time.sleep(1)
                continue
            n_flux = 0
            for (req, (kind, i)), ans in zip(batch, answers):
                if kind == "bad":
                    self.count("malformed")
                    e = ans.get("error") or {}
                    if ans.get("ok") or e.get("code") != "invalid" or e.get("field") != "src":
                        self.count("wrong")
                        self.violation("answer", f"{json.dumps(req)} -> {json.dumps(ans)}: "
                                       "want invalid, field src")
                    continue
                cands, flux = self.hist.candidates(i, t0, t1) if i is not None else ([None], False)
                n_flux += flux
                if kind == "in":
                    why = check_inbound(req, ans, cands, flux)
                else:
                    if "domain" in req and i is None:
                        cands = [None]
                    why = check_outbound(req, ans, cands, flux)
                if why:
                    self.count("errors" if not ans.get("ok") else "wrong")
                    if ans.get("ok"):
                        k = "unsafe" if unsafe(ans["result"], cands) else "fail_safe"
                        self.count(k)
                        with self.slock:
                            self.wrong_at.append((wall0, k, ans["result"].get("partner")))
                    self.violation("answer", f"at {utc(wall0)}: {json.dumps(req)} -> "
                                   f"{json.dumps(ans.get('result') or ans.get('error'))}: {why}")
            self.count("queries", len(batch))
            self.count("in_flux", n_flux)
        if conn:
            conn.close()

    # -- load: admin changes
    def admin_loop(self):
        rng = random.Random(self.seed + 1)
        while not self.stop.wait(rng.uniform(0.05, 0.3)):
            self.admin_change(rng)

    def admin_change(self, rng):
        i = rng.randrange(SLOTS)
        old = self.hist.current(i)
        args = None
        if old is None:
            new = gen_partner(rng, i, self.tunnel_share)
            args = ["partner", "add", new["domain"], "--kind", new["kind"], "--agreement",
                    "yes" if new["agreement"] else "no", "--path", new["path"],
                    "--enable" if new["enabled"] else "--disable", "--ca", "ca.pem"]
            for r in new["ranges"]:
                args += ["--range", r]
            for g in new["gateways"]:
                args += ["--gateway", g]
        elif rng.random() < 0.2:
            new = None
            args = ["partner", "del", old["domain"]]
        else:
            new = dict(old)
            args = ["partner", "set", old["domain"]]
            what = rng.choice(("enabled", "agreement", "kind", "ranges", "gateways", "esp"))
            if what == "enabled":
                new["enabled"] = not old["enabled"]
                args.append("--enable" if new["enabled"] else "--disable")
            elif what == "agreement":
                new["agreement"] = not old["agreement"]
                args += ["--agreement", "yes" if new["agreement"] else "no"]
            elif what == "kind":
                # seg needs ims: ims/tunnel <-> ims/seg <-> non-ims/tunnel
                if old["path"] == "seg":
                    new["path"] = "tunnel"
                    args += ["--path", "tunnel"]
                elif old["kind"] == "ims" and rng.random() < 0.5:
                    new["path"] = "seg"
                    args += ["--path", "seg"]
                else:
                    new["kind"] = "non-ims" if old["kind"] == "ims" else "ims"
                    args += ["--kind", new["kind"]]
            elif what == "ranges":
                new["ranges"] = gen_ranges(rng, i)
                for r in new["ranges"]:
                    args += ["--range", r]
            elif what == "gateways":
                new["gateways"] = [f"203.0.113.{rng.randrange(1, 251)}"]
                args += ["--gateway", new["gateways"][0]]
            else:
                args += ["--esp", rng.choice(("encrypt", "integrity-only"))]
        old_rec, new_rec = self.hist.begin(i, new)
        t = now()
        r = self.ctl("--json", *args)
        self.admin_secs.append(now() - t)
        ok = r.returncode == 0
        if ok and new is not None and new["reqid"] is None:
            try:
                new["reqid"] = json.loads(r.stdout)["changes"][0]["after"]["reqid"]
            except (ValueError, KeyError, IndexError, TypeError):
                new["reqid"] = self.partner_list()[new["domain"]]["reqid"]
        self.hist.end(i, old_rec, new_rec, ok)
        self.count("changes" if ok else "refused")
        if not ok:
            self.violation("admin", f"mmtrustctl {' '.join(args)}: exit {r.returncode}: "
                           f"{r.stderr.strip()}")

    # -- load: foreign policies, deletes of ours
    def foreign_add(self):
        rng = self.rng
        net = ipaddress.ip_network(FOREIGN4)
        a = net.network_address + rng.randrange(net.num_addresses >> 8) * 256
        plen = rng.choice((24, 28, 32))
        sel = f"{a}/{plen}"
        d = rng.choice(("in", "out", "fwd"))
        local = rng.choice(("10.10.0.0/24", "10.30.0.0/24", "10.10.0.7/32"))
        src, dst = (sel, local) if d != "out" else (local, sel)
        if (d, src, dst) in self.foreign:
            return
        prio = rng.randrange(1, 400000)
        args = ["xfrm", "policy", "add", "src", src, "dst", dst, "dir", d, "priority", str(prio)]
        if rng.random() < 0.5:
            args += ["tmpl", "src", "192.0.2.1", "dst", "192.0.2.2", "proto", "esp",
                     "reqid", str(rng.randrange(1, 1000)), "mode", "tunnel"]
        else:
            args += ["action", rng.choice(("allow", "block"))]
        self.ip(*args)
        self.foreign[(d, src, dst)] = prio
        self.count("foreign_add")

    def foreign_del(self):
        k = self.rng.choice(sorted(self.foreign))
        self.ip("xfrm", "policy", "delete", "dir", k[0], "src", k[1], "dst", k[2])
        del self.foreign[k]
        self.count("foreign_del")

    def delete_ours(self, rng):
        """Delete one in- or out-policy of an enabled tunnel partner at rest."""
        table = [(i, h[-1][2]) for i, h in list(self.hist.states.items())
                 if h[-1][2] and h[-1][2]["enabled"] and h[-1][2]["path"] == "tunnel"]
        i, p = rng.choice(table)
        r4 = [r for r in p["ranges"] if model.norm_range(r).version == 4]
        if not r4:
            return
        rng_ = str(model.norm_range(rng.choice(r4)))
        d = rng.choice(("in", "out"))
        src, dst = (rng_, CSCF[0]) if d == "in" else (CSCF[0], rng_)
        pols = model.parse_policies(self.ip("-s", "xfrm", "policy", "list", "dir", d, "src", src,
                                            "dst", dst).stdout)
        ours = [x for x in pols if x["uid"] == model.TAG]
        if not ours:
            return              # an admin change just took it away
        # Not enforced from the delete until the repair.
        self.hist.disturb(i, now() + REPAIR + 1)
        self.events.append((time.time(), f"delete of {p['domain']}'s {d} policy"))
        self.ip("xfrm", "policy", "delete", "index", str(ours[0]["index"]), "dir", d, check=False)
        self.count("ours_deleted")
        deadline = now() + REPAIR
        while now() < deadline and not self.stop.is_set():
            time.sleep(0.2)
            cur = self.hist.current(i)
            if cur is not p:
                self.count("repaired")      # changed meanwhile: no longer ours to judge
                return
            pols = model.parse_policies(self.ip("-s", "xfrm", "policy", "list", "dir", d, "src",
                                                src, "dst", dst).stdout)
            if any(x["uid"] == model.TAG for x in pols):
                self.count("repaired")
                return
        if not self.stop.is_set():
            self.violation("repair", f"{p['domain']}: {d} {src} -> {dst} not back within "
                           f"{REPAIR:.0f} s")

    def foreign_loop(self):
        rng = random.Random(self.seed + 2)
        next_ours = now() + rng.uniform(10, 30)
        while not self.stop.wait(rng.uniform(0.2, 0.8)):
            try:
                if now() >= next_ours:
                    self.delete_ours(rng)
                    next_ours = now() + rng.uniform(10, 30)
                elif len(self.foreign) > 100 or (self.foreign and rng.random() < 0.45):
                    self.foreign_del()
                else:
                    self.foreign_add()
            except RuntimeError as e:
                self.violation("foreign", str(e))

    # -- load: SIGHUP, charon restarts
    def signal_loop(self):
        rng = random.Random(self.seed + 3)
        next_hup = now() + SIGHUP_EVERY * rng.uniform(0.7, 1.3)
        next_charon = now() + CHARON_EVERY * rng.uniform(0.8, 1.2)
        while not self.stop.wait(0.5):
            if self.daemon.poll() is not None:
                self.violation("daemon", f"mmtrustd exited with {self.daemon.returncode}")
                self.stop.set()
                return
            if now() >= next_hup:
                # A reload with the same configuration and table changes no
                # answer: no flux.
                self.events.append((time.time(), "SIGHUP"))
                self.daemon.send_signal(signal.SIGHUP)
                self.count("sighups")
                next_hup = now() + SIGHUP_EVERY * rng.uniform(0.8, 1.2)
            if now() >= next_charon:
                with self.hist.lock:
                    self.hist.global_quiet = INF
                t = now()
                size0 = os.path.getsize(self.path("daemon.log"))
                n_tun = sum(1 for p in self.table().values()
                            if p["enabled"] and p["path"] == "tunnel")
                self.events.append((time.time(), "charon restart"))
                self.charon.terminate()
                self.charon.wait()
                time.sleep(rng.uniform(0.1, 2))
                self.start_charon()
                self.count("charon_restarts")
                # Until every tunnel is back (or 60 s): then SETTLE more.
                while now() - t < 60 and not self.stop.is_set():
                    st = self.status()
                    if st and all(p["tunnel"]["state"] == "up" for p in st["partners"]
                                  if p["state"] == "in-sync"):
                        break
                    time.sleep(1)
                with self.hist.lock:
                    self.hist.global_quiet = now() + SETTLE
                back = now() - t
                time.sleep(SETTLE)
                self.charon_windows.append((t, now(), size0, os.path.getsize(
                    self.path("daemon.log")), n_tun, back))
                self.sample()
                print(f"soak: charon restarted, {n_tun} tunnels back after {back:.1f} s; "
                      f"{self.charon_windows[-1][3] - size0} B of log; rss "
                      f"{self.samples[-1][1]} KiB", flush=True)
                next_charon = now() + CHARON_EVERY * rng.uniform(0.8, 1.2)

    # -- sampling
    def sample(self):
        pid = self.daemon.pid
        try:
            with open(f"/proc/{pid}/status") as f:
                rss = next(int(x.split()[1]) for x in f if x.startswith("VmRSS:"))
            fds = len(os.listdir(f"/proc/{pid}/fd"))
        except (OSError, StopIteration):
            return
        self.samples.append((now(), rss, fds, os.path.getsize(self.path("daemon.log"))))

    def sample_loop(self):
        while not self.stop.wait(2):
            self.sample()

    # -- the end
    def final_checks(self):
        probs = self.settled(60)
        for p in probs[:10]:
            self.violation("status", p)
        if len(probs) > 10:
            self.violation("status", f"... {len(probs) - 10} more")
        table = self.table()
        listing = self.partner_list()
        for d in sorted(set(table) | set(listing)):
            a, b = table.get(d), listing.get(d)
            if a is None or b is None:
                self.violation("table", f"{d}: soak {'has' if a else 'lacks'} it, daemon "
                               f"{'has' if b else 'lacks'} it")
                continue
            for k in IDENT + ("reqid",):
                if a[k] != b[k]:
                    self.violation("table", f"{d}: {k} {b[k]}, want {a[k]}")
            for k, norm in (("ranges", model.norm_range), ("gateways", model.norm_addr)):
                if sorted(map(str, map(norm, a[k]))) != sorted(map(str, map(norm, b[k]))):
                    self.violation("table", f"{d}: {k} {b[k]}, want {a[k]}")
        want, _ = model.reference_spd(table, {"tunnel6": False, "forward": False})
        pols = model.parse_policies(self.ip("-s", "xfrm", "policy").stdout)
        ours, bad = model.kernel_ours(pols)
        for k in sorted(want - set(ours))[:10]:
            self.violation("spd", "missing: " + model.fmt_pol(k, table))
        for k in sorted(set(ours) - want)[:10]:
            self.violation("spd", "extra: " + model.fmt_pol(k, table))
        for p in bad[:10]:
            self.violation("spd", f"malformed or duplicate policy of ours: {p}")
        foreign = {(p["dir"], p["src"], p["dst"]): p.get("priority")
                   for p in pols if p["uid"] != model.TAG}
        if foreign != self.foreign:
            self.violation("foreign", f"kernel's foreign policies differ: missing "
                           f"{sorted(set(self.foreign.items()) - set(foreign.items()))[:5]}, "
                           f"unexpected {sorted(set(foreign.items()) - set(self.foreign.items()))[:5]}")
        self.n_policies = len(ours)
        self.sweep()

    def sweep(self):
        """Every partner at rest: one inbound per range (dst in cscf), one
        outbound by domain; no state in flux."""
        reqs = []
        for i, h in sorted(self.hist.states.items()):
            p = h[-1][2]
            if p is None:
                continue
            for r in p["ranges"]:
                n = model.norm_range(r)
                reqs.append(({"op": "inbound", "src": str(n.network_address),
                              "dst": CSCF_HOST[n.version][0]}, "in", p))
            reqs.append(({"op": "outbound", "domain": p["domain"]}, "out", p))
        conn = model.Conn(self.path("query.sock"))
        bad = 0
        for k in range(0, len(reqs), 256):
            chunk = reqs[k:k + 256]
            for (req, kind, p), ans in zip(chunk, conn.call_many([q for q, _, _ in chunk])):
                why = check_inbound(req, ans, [p], False) if kind == "in" else \
                    check_outbound(req, ans, [p], False)
                if why:
                    bad += 1
                    if bad <= 10:
                        self.violation("sweep", f"{json.dumps(req)} -> "
                                       f"{json.dumps(ans.get('result'))}: {why}")
        conn.close()
        self.sweep_n = len(reqs)
        if bad:
            self.violation("sweep", f"{bad} of {len(reqs)} answers at rest wrong")

    def bounds(self):
        s = [x for x in self.samples if x[0] >= self.t_load]
        w = min(WARMUP, self.seconds / 5)
        warm = [x for x in s if x[0] < self.t_load + w]
        after = [x for x in s if x[0] >= self.t_load + w]
        self.bound_text = []
        if not warm or not after:
            self.violation("samples", "too few samples for the bounds (run longer than "
                           f"{WARMUP:.0f} s)")
            return
        rss_w = max(x[1] for x in warm)
        rss_bound = rss_w + max(rss_w // 10, RSS_SLACK)
        rss_max = max(x[1] for x in after)
        self.bound_text.append(f"rss after warm-up <= {rss_bound} KiB (warm-up max {rss_w} "
                               f"+ max(10%, {RSS_SLACK} KiB)): max {rss_max} KiB")
        if rss_max > rss_bound:
            self.violation("rss", self.bound_text[-1])
        fd_lo, fd_hi = min(x[2] for x in warm), max(x[2] for x in warm)
        f_lo, f_hi = min(x[2] for x in after), max(x[2] for x in after)
        self.bound_text.append(f"fds after warm-up in [{fd_lo - FD_SLACK}, {fd_hi + FD_SLACK}]"
                               f": {f_lo}..{f_hi}")
        if f_lo < fd_lo - FD_SLACK or f_hi > fd_hi + FD_SLACK:
            self.violation("fds", self.bound_text[-1])
        # The log, apart from the charon restarts (which log each tunnel
        # going down and coming back: bounded per restart instead).
        def in_window(a, b):
            return any(a < w[1] and b > w[0] for w in self.charon_windows)
        minutes = (s[-1][0] - s[0][0]) / 60
        logged = s[-1][3] - s[0][3] - sum(w[3] - w[2] for w in self.charon_windows)
        rate = logged / minutes if minutes > 0 else 0
        burst = 0
        for k, x in enumerate(s):
            for y in s[k + 1:]:
                if y[0] - x[0] > 10 or in_window(x[0], y[0]):
                    break
                burst = max(burst, y[3] - x[3])
        st = self.stats
        budget = int(LOG_PER_CHANGE * (st["changes"] + st["refused"]) + LOG_PER_EVENT *
                     (st["sighups"] + st["ours_deleted"]) + LOG_IDLE * minutes)
        self.bound_text.append(
            f"log under load (charon restarts apart) <= {LOG_PER_CHANGE} B x "
            f"{st['changes'] + st['refused']} changes + {LOG_PER_EVENT} B x "
            f"{st['sighups'] + st['ours_deleted']} SIGHUPs and deletes + {LOG_IDLE} B/min = "
            f"{budget} B: {logged} B ({rate:.0f} B/min over {minutes:.1f} min)")
        if logged > budget:
            self.violation("log", self.bound_text[-1])
        self.bound_text.append(f"log in any 10 s (charon restarts apart) <= {LOG_BURST} B: "
                               f"max {burst} B")
        if burst > LOG_BURST:
            self.violation("log", self.bound_text[-1])
        for t0, t1, a, b, n_tun, back in self.charon_windows:
            self.bound_text.append(f"log of a charon restart <= {LOG_PER_TUNNEL} B per tunnel "
                                   f"({n_tun} tunnels): {b - a} B; tunnels back after {back:.1f} s")
            if b - a > LOG_PER_TUNNEL * max(n_tun, 1):
                self.violation("log", self.bound_text[-1])

    # -- driving
    def run(self):
        t_start = now()
        self.setup()
        self.sample()
        self.t_apply = self.provision()
        probs = self.settled(120)
        if probs:
            down = sum("want up" in p for p in probs)
            with open(self.path("daemon.log"), errors="replace") as f:
                errs = [x.rstrip() for x in f if " error: " in x]
            raise RuntimeError(f"not in sync 120 s after provisioning: {len(probs)} problems "
                               f"({down} tunnels not up), e.g. " + "; ".join(probs[:3]) +
                               f"\nthe daemon logged {len(errs)} errors" +
                               (f", e.g.\n  {errs[0]}\n  {errs[-1]}" if errs else ""))
        self.t_ready = now() - t_start
        print(f"soak: in sync {self.t_ready:.1f} s after start; load for {self.seconds} s",
              flush=True)
        self.t_load = now()
        self.sample()
        threads = [threading.Thread(target=self.query_client, args=(k,)) for k in range(4)]
        threads += [threading.Thread(target=f) for f in (self.admin_loop, self.foreign_loop,
                                                         self.signal_loop, self.sample_loop)]
        for t in threads:
            t.start()
        next_report = now() + 60
        while now() - self.t_load < self.seconds and not self.stop.is_set():
            time.sleep(1)
            if now() >= next_report:
                x = self.samples[-1]
                print(f"soak: {now() - self.t_load:.0f} s: {self.stats['queries']} queries, "
                      f"{self.stats['wrong']} wrong, {self.stats['changes']} changes, "
                      f"rss {x[1]} KiB, fds {x[2]}, log {x[3]} B", flush=True)
                next_report += 60
        self.stop.set()
        for t in threads:
            t.join()
        self.sample()
        self.t_end = now()
        if self.daemon.poll() is None:
            self.final_checks()
        self.bounds()

    def close(self):
        for p in (self.daemon, self.charon):
            if p and p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
        if self.keep:
            print(f"soak: kept {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def wrong_clusters(self):
        """Wrong answers grouped by time (gaps under 2 s): (first, last,
        count, kinds)."""
        out = []
        for t, k, p in sorted(self.wrong_at, key=lambda x: x[0]):
            if out and t - out[-1][1] < 2:
                out[-1][1] = t
                out[-1][2] += 1
                out[-1][3].add(k)
                out[-1][4].add(p)
            else:
                out.append([t, t, 1, {k}, {p}])
        return out

    def summary(self):
        st, s = self.stats, self.samples
        load = [x for x in s if self.t_load and x[0] >= self.t_load]
        print(f"\nsoak summary (seed {self.seed})")
        print(f"  partners {self.n}, applied in {self.t_apply:.1f} s, in sync after "
              f"{self.t_ready:.1f} s; load {self.t_end - self.t_load:.0f} s")
        print(f"  queries answered {st['queries']} ({st['malformed']} malformed, refused as "
              f"they must be; {st['in_flux']} while their partner was in flux), wrong "
              f"{st['wrong']} ({st['unsafe']} unsafe: trust where none was due or another "
              f"partner; {st['fail_safe']} fail-safe: strip where keep was due), error answers "
              f"{st['errors']}")
        a = sorted(self.admin_secs) or [0]
        print(f"  admin changes {st['changes']} (refused {st['refused']}; mmtrustctl took "
              f"{a[len(a) // 2]:.2f} s median, {a[-1]:.2f} s max), SIGHUPs "
              f"{st['sighups']}, charon restarts {st['charon_restarts']}")
        print(f"  foreign policies added {st['foreign_add']}, deleted {st['foreign_del']}; "
              f"ours deleted {st['ours_deleted']}, repaired {st['repaired']}")
        if load:
            print(f"  rss {min(x[1] for x in load)}..{max(x[1] for x in load)} KiB, fds "
                  f"{min(x[2] for x in load)}..{max(x[2] for x in load)}, log "
                  f"{load[-1][3] - load[0][3]} B under load ({s[-1][3]} B in all)")
        for b in getattr(self, "bound_text", []):
            print("  bound: " + b)
        if hasattr(self, "n_policies"):
            print(f"  end: {self.n_policies} policies of ours, {len(self.foreign)} foreign, "
                  f"sweep of {getattr(self, 'sweep_n', 0)} answers at rest")
        for t0, t1, n, ks, ps in self.wrong_clusters():
            ev = [f"{e[0] - t0:+.2f} s {e[1]}" for e in self.events if t0 - 3 <= e[0] <= t1]
            print(f"  wrong answers {utc(t0)} .. +{t1 - t0:.2f} s: {n} about {len(ps)} "
                  f"partners ({', '.join(sorted(ks))}); events from 3 s before: "
                  f"{', '.join(ev) or 'none'}")
        kinds = {}
        for k, _ in self.violations:
            kinds[k] = kinds.get(k, 0) + 1
        print(f"  violations: {kinds or 'none'}")
        print(f"soak: {'FAIL' if self.violations else 'PASS'} (seed {self.seed}; repeat with "
              f"SOAK_SEED={self.seed})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", 600)))
    ap.add_argument("--seed", type=int, default=os.environ.get("SOAK_SEED"))
    ap.add_argument("--partners", type=int, default=int(os.environ.get("SOAK_PARTNERS", 10000)))
    ap.add_argument("--tunnel-share", type=float,
                    default=float(os.environ.get("SOAK_TUNNEL_SHARE", 0.8)))
    ap.add_argument("--keep", action="store_true", help="keep the directory (log, store)")
    ap.add_argument("build")
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else random.randrange(1 << 31)
    print(f"soak: seed {seed}, {a.partners} partners ({a.tunnel_share:.0%} tunnel partners), "
          f"{a.seconds:.0f} s", flush=True)
    s = Soak(a.build, seed, a.seconds, a.partners, a.tunnel_share)
    s.keep = a.keep
    try:
        s.run()
    except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
        s.violation("run", str(e))
        print(s.log_tail(), file=sys.stderr)
    finally:
        s.close()
    if s.t_load:
        s.summary()
    else:
        print(f"soak: FAIL before the load (seed {seed})")
    sys.exit(1 if s.violations else 0)


if __name__ == "__main__":
    main()
