#!/usr/bin/env python3
"""Model test: random, seeded, reproducible table changes against the real
mmtrustd in a network namespace, checked after every step against a
reference the test computes itself (never the daemon's own audit).

Steps: partner add/set/del over the admin socket and mmtrustctl, enable and
disable, path/esp/kind/ca changes, ranges and gateways added, removed and
replaced, ranges moved and swapped between partners inside one `apply`,
whole-table applys, IPv4, IPv6 and IPv4-mapped spellings, inputs the rules
refuse, policies deleted by hand (by index, deleteall), SIGHUP, restarts.

After every step (and once before the first), within SETTLE seconds:
  table   the daemon's table (partner.list) equals the test's model of it
          (mapped IPv6 spellings of IPv4 are IPv4);
  spd     our kernel policies (ip -s xfrm policy, parsed here) equal the
          set computed from that table and [local] by the rules of
          daemon/spd.h, written again here; a foreign policy is untouched;
  churn   a policy whose content did not change kept its kernel index (so
          a restart or SIGHUP with an unchanged table changes nothing);
  query   `inbound` (with dst when the daemon takes it) and `lookup` for
          every range's edges, inside and neighbours, in every spelling,
          equal a longest-prefix match over the table;
  status  every active partner in sync, with the expected count.
The model classifies each input: "invalid" must be refused and then
change nothing (table and kernel, to the index); "valid" must be accepted;
"either" (no rule decided yet) is followed whichever way the daemon goes.

Usage: model.py [--seed N] [--steps N | --seconds S] [--replay FILE]
                [--without LIST] [-v] BUILD
LIST (comma-separated) leaves kinds of steps out, to explore past a known
failure: mapped, spelling, move, move2, swap, invalid, tamper, sighup, restart,
cli, add, set, ranges, gateways, del, enable, apply.  MODEL_SEED,
MODEL_STEPS, MODEL_SECONDS, MODEL_WITHOUT, MODEL_SHRINK_SECONDS stand in
for absent options.  A failure prints the seed, the step and the diff, then
shrinks (delta debugging over the steps, then over list elements inside
each step, a fresh daemon per attempt, bounded time) and prints the
shortest failing sequence, also written as JSON lines for --replay.
Python 3 standard library only; run as root."""

import argparse
import copy
import ipaddress
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zlib

TAG = 1835889778
PRIO_BASE = 200000
REQID_MIN, REQID_MAX = 2000, 2999
CSCF = ["10.10.0.0/24", "10.20.0.0/24", "2001:db8:10::/64"]
CSCF_HOST = {4: "10.10.0.7", 6: "2001:db8:10::7"}
# With cfg["split"] (drawn per seed) the prefixes face kinds of peer:
# [local] cscf (both), cscf_ims, cscf_non_ims; else all are [local] cscf.
CSCF_SPLIT = {"10.10.0.0/24": ("ims", "non-ims"), "10.20.0.0/24": ("ims",),
              "2001:db8:10::/64": ("non-ims",)}
CSCF_HOSTS = {4: ["10.10.0.7", "10.20.0.7"], 6: ["2001:db8:10::7"]}


def cscf_kinds(cfg, c):
    """The kinds of peer our prefix c faces."""
    return CSCF_SPLIT[c] if cfg.get("split") else ("ims", "non-ims")


def cscf_settings(cfg):
    """The [local] lines giving CSCF."""
    if not cfg.get("split"):
        return f"cscf = {', '.join(CSCF)}"
    keys = {("ims", "non-ims"): "cscf", ("ims",): "cscf_ims", ("non-ims",): "cscf_non_ims"}
    return "\n".join(f"{keys[CSCF_SPLIT[c]]} = {c}" for c in CSCF)
TUN = {4: "198.51.100.1", 6: "2001:db8:ff::1"}
MAPPED = ipaddress.ip_network("::ffff:0:0/96")
SETTLE = 2.0          # seconds a step may take to show in kernel and status
DOMAINS = [f"p{i}.model.example" for i in range(8)]
V4_BASES = [("192.0.2.0", 24), ("203.0.113.0", 24), ("198.18.0.0", 15), ("100.64.0.0", 16)]
V6_BASES = [("2001:db8:a::", 48), ("2001:db8:b::", 48), ("2001:db8:c0::", 44)]
BAD_RANGES = ["0.0.0.0/0", "::/0", "::/64", "::/80", "::ffff:0:0/96", "10.10.0.0/24",
              "10.10.0.128/25", "10.0.0.0/8", "10.20.0.5/32", "::ffff:10.10.0.0/120",
              "2001:db8:10::/64", "2001:db8:10::/96", "2001:db8::/32", "198.51.100.0/24",
              "198.51.100.1/32", "::ffff:198.51.100.0/120", "2001:db8:ff::/64",
              "192.0.2.1/24", "192.0.2.0/33", "2001:db8:a::1/48", "not-a-range"]
BAD_GATEWAYS = ["0.0.0.0", "::", "224.0.0.5", "ff02::1", "127.0.0.1", "::1", "169.254.1.1",
                "fe80::1", "255.255.255.255", "198.51.100.1", "::ffff:198.51.100.1",
                "::ffff:127.0.0.1", "::ffff:0.0.0.0", "2001:db8:ff::1", "300.1.1.1", "gw"]
BAD_DOMAINS = ["bad_name.example", "single", "a..example", "-x.example", "x.123", ""]


class Failure(Exception):
    def __init__(self, category, text):
        super().__init__(f"{category}: {text}")
        self.category = category
        self.text = text


# ---------------------------------------------------------------- addresses

def norm_addr(s):
    """The one meaning of an address: a mapped IPv6 spelling is IPv4."""
    a = ipaddress.ip_address(s)
    if a.version == 6 and a.ipv4_mapped is not None:
        return a.ipv4_mapped
    return a


def norm_range(s):
    """A range's meaning: host bits must be zero; inside ::ffff:0:0/96 it is
    the IPv4 prefix (len - 96).  Raises ValueError for malformed input."""
    if not isinstance(s, str) or "/" not in s:
        raise ValueError("not a CIDR")
    n = ipaddress.ip_network(s, strict=True)
    if n.version == 6 and n.prefixlen >= 96 and n.subnet_of(MAPPED):
        n = ipaddress.IPv4Network((int(n.network_address) & 0xffffffff, n.prefixlen - 96))
    return n


def overlaps(a, b):
    return a.version == b.version and (a.subnet_of(b) or b.subnet_of(a))


def canon_domain(s):
    if not isinstance(s, str):
        return None
    d = s.lower()
    if d.endswith("."):
        d = d[:-1]
    labels = d.split(".")
    if len(d) > 253 or len(labels) < 2 or labels[-1].isdigit():
        return None
    for lab in labels:
        if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", lab):
            return None
    return d


# ---------------------------------------------------------------- the model

FIELDS = {"kind": ("ims", "non-ims"), "esp": ("encrypt", "integrity-only"),
          "path": ("tunnel", "seg")}
DEFAULTS = {"esp": "encrypt", "path": "tunnel", "enabled": True}


class Model:
    """The table as the test believes it is: domain -> partner (as given,
    spellings kept; ca as "@caN")."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.table = {}

    def tunnels(self):
        return {4: TUN[4], 6: TUN[6]} if self.cfg["tunnel6"] else {4: TUN[4]}

    # -- what an operation does: (verdict, new table); verdict is "valid",
    # "invalid" (the daemon must refuse) or "either" (rules undecided).
    def bad(self, why):
        self.why = why
        return "invalid"

    def predict(self, req):
        op = req.get("op")
        t = copy.deepcopy(self.table)
        if op == "partner.add":
            p = req.get("partner")
            v, d, q = self.partner_in(p)
            if v == "invalid":
                return v, None
            if d in t:
                return self.bad(f"{d} exists already"), None
            t[d] = q
        elif op in ("partner.set", "partner.del"):
            d = canon_domain(req.get("domain"))
            if d not in t:
                return self.bad(f"no partner {req.get('domain')!r}"), None
            if op == "partner.del":
                del t[d]
            else:
                v = self.set_in(t[d], req)
                if v == "invalid":
                    return v, None
        elif op == "apply":
            t = {}
            ps = req.get("partners")
            if not isinstance(ps, list):
                return self.bad("partners is not a list"), None
            for p in ps:
                v, d, q = self.partner_in(p)
                if v == "invalid" or d in t:
                    return self.bad(self.why if v == "invalid" else f"{d} twice"), None
                t[d] = q
        else:
            return "either", None
        return self.check_table(t), t

    def partner_in(self, p):
        if not isinstance(p, dict):
            return self.bad("a partner is not an object"), None, None
        d = canon_domain(p.get("domain"))
        need = ("kind", "agreement", "ranges", "gateways", "ca")
        if d is None or any(k not in p for k in need):
            return self.bad(f"bad domain or a member missing: {p.get('domain')!r}"), None, None
        q = {k: p[k] for k in ("kind", "agreement", "ranges", "gateways", "ca")}
        for k, dv in DEFAULTS.items():
            q[k] = p.get(k, dv)
        if not self.fields_ok(q):
            return self.bad("a member has a bad value"), None, None
        return "valid", d, q

    def set_in(self, q, req):
        s = req.get("set", {})
        for k, val in s.items():
            if k == "domain":
                if canon_domain(val) != canon_domain(req.get("domain")):
                    return self.bad("the domain cannot change")
                continue
            q[k] = val
        if not self.fields_ok(q):
            return self.bad("a member has a bad value")
        # add/remove go by value: any spelling of an element names it, and
        # adding one that is there changes nothing.
        for k in ("ranges", "gateways"):
            norm = norm_range if k == "ranges" else norm_addr
            for x in req.get("add", {}).get(k, []):
                try:
                    same = [y for y in q[k] if norm(x) == norm(y)]
                except ValueError:
                    same = []
                if same:
                    continue
                q[k] = q[k] + [x]
            for x in req.get("remove", {}).get(k, []):
                try:
                    nx = norm(x)
                    keep = [y for y in q[k] if norm(y) != nx]
                except ValueError:
                    return self.bad(f"{x!r} does not parse")
                if len(keep) == len(q[k]):
                    return self.bad(f"{x} is not in {k}")
                q[k] = keep
        return "valid"

    @staticmethod
    def fields_ok(q):
        for k, vals in FIELDS.items():
            if q.get(k) not in vals:
                return False
        for k in ("agreement", "enabled"):
            if not isinstance(q.get(k), bool):
                return False
        if q.get("ca") not in ("@ca0", "@ca1"):
            return False
        return all(isinstance(q.get(k), list) and all(isinstance(x, str) for x in q[k])
                   for k in ("ranges", "gateways"))

    def check_table(self, t):
        """The rules of the decided semantics, over a whole table."""
        verdict = "valid"
        cscf = [ipaddress.ip_network(c) for c in CSCF]
        tun = [ipaddress.ip_address(a) for a in self.tunnels().values()]
        allr = []
        for d, p in t.items():
            if not p["ranges"] or not p["gateways"]:
                return self.bad(f"{d}: no ranges or no gateways")
            if p["path"] == "seg" and p["kind"] != "ims":
                return self.bad(f"{d}: path seg needs kind ims")
            for r in p["ranges"]:
                try:
                    n = norm_range(r)
                except ValueError:
                    return self.bad(f"{d}: range {r!r} is not a CIDR with host bits zero")
                if n.prefixlen == 0:
                    return self.bad(f"{d}: range {r} is /0")
                if n.version == 6 and n.prefixlen < 96 and MAPPED.subnet_of(n):
                    return self.bad(f"{d}: range {r} holds the mapped block ::ffff:0:0/96")
                if any(overlaps(n, c) for c in cscf):
                    return self.bad(f"{d}: range {r} overlaps a [local] cscf prefix")
                if any(a in n for a in tun):
                    return self.bad(f"{d}: range {r} holds our tunnel address")
                if not self.cfg["tunnel6"] and ipaddress.ip_address(TUN[6]) in n:
                    verdict = "either"
                allr.append((n, d))
        for i, (a, da) in enumerate(allr):
            for b, db in allr[i + 1:]:
                if overlaps(a, b):
                    return self.bad(f"{a} ({da}) overlaps {b} ({db})")
        for d, p in t.items():
            seen = set()
            for g in p["gateways"]:
                try:
                    a = norm_addr(g)
                except ValueError:
                    return self.bad(f"{d}: gateway {g!r} does not parse")
                if (a.is_unspecified or a.is_multicast or a.is_loopback or a.is_link_local
                        or a == ipaddress.ip_address("255.255.255.255") or a in tun):
                    return self.bad(f"{d}: gateway {g} is unspecified, multicast, loopback, "
                                    "link-local, broadcast or our tunnel address")
                for n, dn in allr:
                    if a in n:
                        if dn != d:
                            return self.bad(f"{d}: gateway {g} is inside {dn}'s range {n}")
                        verdict = "either"
                if a in seen or any(a in c for c in cscf) or str(a) == TUN[6]:
                    verdict = "either"
                seen.add(a)
        return verdict

    def ranges(self):
        return [(norm_range(r), d) for d, p in self.table.items() for r in p["ranges"]]


# ------------------------------------------------------- reference answers

def table_from_daemon(listing):
    """partner.list's partners -> domain -> partner with the members the
    reference needs."""
    out = {}
    for p in listing:
        out[p["domain"]] = p
    return out


def reference_spd(table, cfg):
    """Our policies as daemon/spd.h says they must be: a set of
    (dir, src, dst, priority, tmpl src, tmpl dst, reqid)."""
    tunnels = {4: TUN[4], 6: TUN[6]} if cfg["tunnel6"] else {4: TUN[4]}
    want, per = set(), {}
    for d, p in table.items():
        per[d] = None
        if not p["enabled"] or p["path"] != "tunnel":
            continue
        gw = None
        for g in p["gateways"]:
            a = norm_addr(g)
            if a.version in tunnels:
                gw = (str(a), tunnels[a.version])
                break
        if gw is None:
            continue
        mine = set()
        for r in p["ranges"]:
            n = norm_range(r)
            for c in CSCF:
                loc = ipaddress.ip_network(c)
                # a partner's policies use our prefixes of its kind only
                if loc.version != n.version or p["kind"] not in cscf_kinds(cfg, c):
                    continue
                prio = PRIO_BASE + 256 - (loc.prefixlen + n.prefixlen)
                mine.add(("out", str(loc), str(n), prio, gw[1], gw[0], p["reqid"]))
                mine.add(("in", str(n), str(loc), prio, gw[0], gw[1], p["reqid"]))
                if cfg["forward"]:
                    mine.add(("fwd", str(n), str(loc), prio, gw[0], gw[1], p["reqid"]))
        # none: no range shares a family with a prefix facing its kind, a
        # partner error (daemon/spd_desired.h), as with no usable gateway
        per[d] = len(mine) or None
        want |= mine
    return want, per


def table_nets(table):
    """(range, domain) of every range of the table, normalized."""
    return [(norm_range(r), d) for d, p in table.items() for r in p["ranges"]]


def lpm(nets, src):
    """Longest prefix match of an address over table_nets(): (range, domain)."""
    a = norm_addr(src)
    best = None
    for n, d in nets:
        if a.version == n.version and a in n and (best is None or n.prefixlen > best[0].prefixlen):
            best = (n, d)
    return best


# The IP versions of [local] tunnel present on the test's host: none (the
# namespace never holds TUN), so every tunnel partner with agreement is
# answered tunnel-address-missing (docs/privacy.md).
HOST_TUNNEL_FAMILIES = set()


def reference_inbound(table, nets, src, dst=None, cfg=None):
    """What `inbound` must answer (docs/privacy.md; no tunnels here)."""
    best = lpm(nets, src)
    if best is None:
        return {"partner": None, "reason": "unknown-source", "pai": "strip"}, None
    p = table[best[1]]
    d = norm_addr(dst) if dst else None
    if d is not None and any(d in ipaddress.ip_network(c) and p["kind"] not in cscf_kinds(cfg, c)
                             for c in CSCF):
        # the other kind's address: strip, whoever the partner is
        reason = "dst-other-kind"
    elif not p["enabled"]:
        reason = "partner-disabled"
    elif not p["agreement"]:
        reason = "no-agreement"
    elif p["path"] == "seg":
        reason = "seg-trusted"
    elif not {norm_addr(g).version for g in p["gateways"]} & HOST_TUNNEL_FAMILIES:
        # no SA can come up: none of our tunnel addresses of its
        # gateways' families is on the host
        reason = "tunnel-address-missing"
    else:
        reason = "unprotected"
    return ({"partner": best[1], "reason": reason,
             "pai": "keep" if reason == "seg-trusted" else "strip"}, str(best[0]))


# ------------------------------------------------------------ the kernel

def parse_policies(text):
    """ip -s xfrm policy -> list of dicts (dir, src, dst, uid, priority,
    index, action, tmpl: [(src, dst, proto, reqid, mode, level)])."""
    pols, cur, tmpl = [], None, None
    for line in text.splitlines():
        w = line.split()
        if not w:
            continue
        if line.startswith("src "):
            cur = {"src": w[1], "dst": w[3], "uid": None, "tmpl": []}
            if "uid" in w:
                cur["uid"] = int(w[w.index("uid") + 1])
            pols.append(cur)
        elif cur is None:
            continue
        elif w[0] == "dir":
            cur["dir"] = w[1]
            for k in ("action", "index", "priority"):
                if k in w:
                    v = w[w.index(k) + 1]
                    cur[k] = v if k == "action" else int(v)
        elif w[0] == "tmpl":
            tmpl = {"src": w[2], "dst": w[4]}
            cur["tmpl"].append(tmpl)
        elif w[0] == "proto" and tmpl is not None:
            tmpl["proto"] = w[1]
            tmpl["reqid"] = int(w[w.index("reqid") + 1].split("(")[0])
            tmpl["mode"] = w[w.index("mode") + 1]
        elif w[0] == "level" and tmpl is not None:
            tmpl["level"] = w[1]
    return pols


def kernel_ours(pols):
    """Our policies: {tuple: index}, and a list of malformed ones."""
    ours, bad = {}, []
    for p in pols:
        if p["uid"] != TAG:
            continue
        t = p["tmpl"]
        if (len(t) != 1 or p.get("action") != "allow" or t[0].get("proto") != "esp"
                or t[0].get("mode") != "tunnel" or t[0].get("level") != "required"):
            bad.append(p)
            continue
        key = (p["dir"], str(ipaddress.ip_network(p["src"])), str(ipaddress.ip_network(p["dst"])),
               p["priority"], str(ipaddress.ip_address(t[0]["src"])),
               str(ipaddress.ip_address(t[0]["dst"])), t[0]["reqid"])
        if key in ours:
            bad.append(p)
        ours[key] = p["index"]
    return ours, bad


# ------------------------------------------------------------ environment

class Env:
    """A namespace, a store and a daemon of our own."""
    counter = 0

    def __init__(self, build, cfg, cas):
        Env.counter += 1
        self.build, self.cfg, self.cas = build, cfg, cas
        self.dir = tempfile.mkdtemp(prefix="mmtrust-model-")
        self.ns = f"mmtrust-model-{os.getpid()}-{Env.counter}"
        self.proc = None
        self.admin = None
        self.query = None
        subprocess.run(["ip", "netns", "add", self.ns], check=True)
        # A foreign policy that must never be touched.
        self.ip("xfrm", "policy", "add", "src", "10.10.0.0/24", "dst", "100.127.0.0/16",
                "dir", "out", "priority", "10", "tmpl", "src", TUN[4], "dst", "100.127.0.1",
                "proto", "esp", "reqid", "7", "mode", "tunnel")
        tunnel = TUN[4] + (", " + TUN[6] if cfg["tunnel6"] else "")
        with open(self.path("mmtrustd.conf"), "w") as f:
            f.write(f"""[daemon]
store = {self.path('store.db')}
admin_socket = {self.path('admin.sock')}
query_socket = {self.path('query.sock')}
[reqid]
min = {REQID_MIN}
max = {REQID_MAX}
[local]
{cscf_settings(cfg)}
tunnel = {tunnel}
forward = {'yes' if cfg['forward'] else 'no'}
[spd]
priority_base = {PRIO_BASE}
verify_interval = 3
""")
        self.start()

    def path(self, name):
        return os.path.join(self.dir, name)

    def ip(self, *args, check=True):
        r = subprocess.run(["ip", "-n", self.ns] + list(args), capture_output=True, text=True)
        if check and r.returncode:
            raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def start(self):
        for s in ("admin.sock", "query.sock"):
            if os.path.exists(self.path(s)):
                os.unlink(self.path(s))
        log = open(self.path("daemon.log"), "a")
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.ns,
                                      os.path.join(self.build, "mmtrustd"), "--foreground",
                                      "--config", self.path("mmtrustd.conf")],
                                     stdout=log, stderr=log)
        log.close()
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                self.admin = Conn(self.path("admin.sock"))
                self.admin.call({"op": "ping"})
                self.query = Conn(self.path("query.sock"))
                return
            except OSError:
                time.sleep(0.02)
        raise Failure("start", "the daemon did not answer within 10 s:\n" + self.log_tail())

    def stop(self):
        for c in (self.admin, self.query):
            if c:
                c.close()
        self.admin = self.query = None
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def close(self):
        self.stop()
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, n=15):
        try:
            with open(self.path("daemon.log")) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def ctl(self, *args):
        env = dict(os.environ, MMTRUST_ADMIN_SOCKET=self.path("admin.sock"),
                   MMTRUST_QUERY_SOCKET=self.path("query.sock"))
        return subprocess.run([os.path.join(self.build, "mmtrustctl")] + list(args),
                              capture_output=True, text=True, env=env, cwd=self.dir)

    def policies(self):
        return parse_policies(self.ip("-s", "xfrm", "policy"))


class Conn:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(10)
        self.s.connect(path)
        self.f = self.s.makefile("rwb")

    def call_many(self, reqs):
        self.f.write(b"".join(json.dumps(r).encode() + b"\n" for r in reqs))
        self.f.flush()
        out = []
        for _ in reqs:
            line = self.f.readline()
            if not line:
                raise OSError("connection closed")
            out.append(json.loads(line))
        return out

    def call(self, req):
        return self.call_many([req])[0]

    def close(self):
        try:
            self.f.close()
            self.s.close()
        except OSError:
            pass


# ------------------------------------------------------------ generation

class Gen:
    def __init__(self, rng, model, without):
        self.rng, self.m, self.without = rng, model, without
        self.pending = []   # the second half of a move done in two steps
        keep = (lambda v: "::ffff:" not in v) if "mapped" in without else (lambda v: True)
        self.bad_ranges = [v for v in BAD_RANGES if keep(v)]
        self.bad_gateways = [v for v in BAD_GATEWAYS if keep(v)]

    def spell_range(self, n):
        r = self.rng
        if n.version == 4 and "mapped" not in self.without and r.random() < 0.2:
            return f"::ffff:{n.network_address}/{n.prefixlen + 96}"
        if n.version == 6 and "spelling" not in self.without and r.random() < 0.2:
            return f"{n.network_address.exploded}/{n.prefixlen}"
        return str(n)

    def rand_net(self):
        r = self.rng
        if r.random() < 0.6:
            base, blen = r.choice(V4_BASES)
            plen = min(32, blen + r.choice([0, 1, 2, 3, 4, 6, 8, 16]))
        else:
            base, blen = r.choice(V6_BASES)
            plen = min(128, blen + r.choice([0, 1, 2, 4, 8, 16, 80]))
        b = ipaddress.ip_network(f"{base}/{blen}")
        k = r.randrange(1 << (plen - blen))
        return ipaddress.ip_network((int(b.network_address) + (k << (b.max_prefixlen - plen)), plen))

    def free_range(self, extra=()):
        taken = [n for n, _ in self.m.ranges()] + list(extra)
        for _ in range(30):
            n = self.rand_net()
            if not any(overlaps(n, t) for t in taken):
                return n
        return None

    def gateway(self):
        r = self.rng
        if r.random() < 0.65:
            g = f"198.51.100.{r.randrange(10, 250)}"
            if "mapped" not in self.without and r.random() < 0.15:
                g = "::ffff:" + g
            return g
        return f"2001:db8:ffa::{r.randrange(1, 0xfff):x}"

    def gateways(self):
        gs = []
        for _ in range(self.rng.choice([1, 1, 1, 2, 3])):
            g = self.gateway()
            if norm_addr(g) not in [norm_addr(x) for x in gs]:
                gs.append(g)
        return gs

    def new_partner(self, domain, extra=()):
        r = self.rng
        ranges, nets = [], list(extra)
        for _ in range(r.choice([1, 1, 2, 2, 3])):
            n = self.free_range(nets)
            if n:
                nets.append(n)
                ranges.append(self.spell_range(n))
        kind = r.choice(["ims", "non-ims"])
        p = {"domain": domain, "kind": kind, "agreement": r.random() < 0.6,
             "ranges": ranges, "gateways": self.gateways(), "ca": r.choice(["@ca0", "@ca1"])}
        if r.random() < 0.4:
            p["esp"] = r.choice(FIELDS["esp"])
        if kind == "ims" and r.random() < 0.2:
            p["path"] = "seg"
        if r.random() < 0.15:
            p["enabled"] = False
        return p

    def spell_domain(self, d):
        r = 1 if "spelling" in self.without else self.rng.random()
        return d.upper() + "." if r < 0.05 else d.capitalize() if r < 0.1 else d

    def table_list(self, t=None):
        t = self.m.table if t is None else t
        out = []
        for d, p in t.items():
            q = dict(p, domain=d)
            out.append(q)
        self.rng.shuffle(out)
        return out

    def op(self):
        """One operation: a dict with "do" (what to run) and "note"."""
        if self.pending:
            return self.pending.pop(0)
        r, m = self.rng, self.m
        names = list(m.table)
        choices = [("add", 14), ("set", 16), ("ranges", 14), ("gateways", 6), ("del", 5),
                   ("enable", 8), ("move", 8), ("move2", 4), ("swap", 5), ("apply", 7), ("invalid", 10),
                   ("cli", 5), ("tamper", 4), ("sighup", 2), ("restart", 1)]
        choices = [(k, w) for k, w in choices if k not in self.without]
        if len(names) < 2:
            choices = [(k, w) for k, w in choices if k not in ("move", "move2", "swap")]
        if not names:
            choices = [(k, w * (k in ("add", "apply", "invalid"))) for k, w in choices]
        k = r.choices([c[0] for c in choices], [c[1] for c in choices])[0]
        return getattr(self, "op_" + k)(names)

    def admin(self, req, note):
        # Whole-table applys confirm the shrink guard: the model's random
        # tables shrink on purpose (tests/integration/test_shrink.sh tests
        # the guard itself).
        if req.get("op") == "apply":
            req["allow_shrink"] = True
        return {"do": "admin", "req": req, "note": note}

    def op_add(self, names):
        free = [d for d in DOMAINS if d not in self.m.table]
        if not free:
            return self.op_del(list(self.m.table))
        d = self.rng.choice(free)
        p = self.new_partner(self.spell_domain(d))
        return self.admin({"op": "partner.add", "partner": p}, f"add {d}")

    def op_del(self, names):
        d = self.rng.choice(names)
        return self.admin({"op": "partner.del", "domain": self.spell_domain(d)}, f"del {d}")

    def op_set(self, names):
        r, d = self.rng, self.rng.choice(names)
        s = {}
        for k in r.sample(["kind", "agreement", "esp", "path", "ca", "enabled"], r.randint(1, 3)):
            if k in FIELDS:
                s[k] = r.choice(FIELDS[k])
            elif k == "ca":
                s[k] = r.choice(["@ca0", "@ca1"])
            else:
                s[k] = r.random() < 0.5
        if s.get("path") == "seg" and "kind" not in s:
            s["kind"] = "ims"
        return self.admin({"op": "partner.set", "domain": d, "set": s}, f"set {d} {s}")

    def op_enable(self, names):
        d = self.rng.choice(names)
        en = not self.m.table[d]["enabled"]
        return self.admin({"op": "partner.set", "domain": d, "set": {"enabled": en}},
                          f"{'enable' if en else 'disable'} {d}")

    def op_ranges(self, names):
        r, d = self.rng, self.rng.choice(names)
        cur = self.m.table[d]["ranges"]
        x = r.random()
        if x < 0.4 or len(cur) < 2:
            n = self.free_range()
            if n is None:
                return self.op_set(names)
            return self.admin({"op": "partner.set", "domain": d,
                               "add": {"ranges": [self.spell_range(n)]}}, f"add range {n} to {d}")
        if x < 0.7:
            v = r.choice(cur)
            if r.random() < 0.3 and "mapped" not in self.without:
                v = self.spell_range(norm_range(v))
            return self.admin({"op": "partner.set", "domain": d, "remove": {"ranges": [v]}},
                              f"remove range {v} from {d}")
        keep = r.sample(cur, r.randint(1, len(cur)))
        nets = [norm_range(x) for x in keep]
        others = [n for n, o in self.m.ranges() if o != d]
        for _ in range(r.randint(0, 2)):
            n = self.free_range(nets)
            if n and not any(overlaps(n, o) for o in others):
                nets.append(n)
                keep.append(self.spell_range(n))
        return self.admin({"op": "partner.set", "domain": d, "set": {"ranges": keep}},
                          f"replace ranges of {d}: {keep}")

    def op_gateways(self, names):
        r, d = self.rng, self.rng.choice(names)
        cur = self.m.table[d]["gateways"]
        x = r.random()
        if x < 0.4:
            return self.admin({"op": "partner.set", "domain": d, "set": {"gateways": self.gateways()}},
                              f"replace gateways of {d}")
        if x < 0.7 or len(cur) < 2:
            g = self.gateway()
            return self.admin({"op": "partner.set", "domain": d, "add": {"gateways": [g]}},
                              f"add gateway {g} to {d}")
        g = r.choice(cur)
        return self.admin({"op": "partner.set", "domain": d, "remove": {"gateways": [g]}},
                          f"remove gateway {g} from {d}")

    def op_move(self, names):
        """A range changes owner inside one apply (defect 2 of issue 8)."""
        r = self.rng
        a, b = r.sample(names, 2)
        t = copy.deepcopy(self.m.table)
        v = r.choice(t[a]["ranges"])
        t[a]["ranges"].remove(v)
        if not t[a]["ranges"]:
            n = self.free_range()
            if n is None:
                return self.op_set(names)
            t[a]["ranges"].append(self.spell_range(n))
        w = self.spell_range(norm_range(v))
        t[b]["ranges"].append(w)
        return self.admin({"op": "apply", "partners": self.table_list(t)},
                          f"apply: move range {v} from {a} to {b} (as {w})")

    def op_move2(self, names):
        """A range changes owner in two steps: removed, then added."""
        r = self.rng
        a, b = r.sample(names, 2)
        if len(self.m.table[a]["ranges"]) < 2:
            return self.op_ranges(names)
        v = r.choice(self.m.table[a]["ranges"])
        w = self.spell_range(norm_range(v))
        self.pending.append(self.admin({"op": "partner.set", "domain": b, "add": {"ranges": [w]}},
                                       f"move, second step: add {w} to {b}"))
        return self.admin({"op": "partner.set", "domain": a, "remove": {"ranges": [v]}},
                          f"move, first step: remove {v} from {a}")

    def op_swap(self, names):
        r = self.rng
        a, b = r.sample(names, 2)
        t = copy.deepcopy(self.m.table)
        if r.random() < 0.5:
            t[a]["ranges"], t[b]["ranges"] = t[b]["ranges"], t[a]["ranges"]
            note = f"apply: swap all ranges of {a} and {b}"
        else:
            va, vb = r.choice(t[a]["ranges"]), r.choice(t[b]["ranges"])
            t[a]["ranges"][t[a]["ranges"].index(va)] = vb
            t[b]["ranges"][t[b]["ranges"].index(vb)] = va
            note = f"apply: swap {va} ({a}) and {vb} ({b})"
        return self.admin({"op": "apply", "partners": self.table_list(t)}, note)

    def op_apply(self, names):
        r = self.rng
        t = copy.deepcopy(self.m.table)
        notes = []
        for _ in range(r.randint(1, 4)):
            x = r.random()
            if x < 0.25 and t:
                d = r.choice(list(t))
                del t[d]
                notes.append(f"del {d}")
            elif x < 0.5:
                free = [d for d in DOMAINS if d not in t]
                if free:
                    d = r.choice(free)
                    extra = [norm_range(v) for q in t.values() for v in q["ranges"]]
                    p = self.new_partner(d, extra)
                    del p["domain"]
                    t[d] = dict(DEFAULTS, **p)
                    notes.append(f"add {d}")
            elif t:
                d = r.choice(list(t))
                k = r.choice(["kind", "agreement", "esp", "enabled", "gateways"])
                if k in FIELDS:
                    t[d][k] = r.choice(FIELDS[k])
                elif k == "gateways":
                    t[d][k] = self.gateways()
                else:
                    t[d][k] = not t[d][k]
                notes.append(f"{k} of {d}")
        return self.admin({"op": "apply", "partners": self.table_list(t)},
                          "apply: " + ", ".join(notes))

    def op_invalid(self, names):
        r = self.rng
        x = r.random()
        d = r.choice(names) if names else DOMAINS[0]
        taken = [(n, o) for n, o in self.m.ranges()]
        if x < 0.25 or not names:
            p = self.new_partner(r.choice(DOMAINS))
            what = r.random()
            if what < 0.5 or not taken:
                bad = r.choice(self.bad_ranges)
            else:   # overlaps someone's range: equal, inside, containing, or mapped
                n, _ = r.choice(taken)
                sub = n.subnets(prefixlen_diff=min(2, n.max_prefixlen - n.prefixlen))
                bad = str(r.choice([n, next(sub), n.supernet(min(4, n.prefixlen))]))
                if n.version == 4 and "mapped" not in self.without and r.random() < 0.5:
                    bad = f"::ffff:{n.network_address}/{n.prefixlen + 96}"
            p["ranges"] = p["ranges"] + [bad]
            return self.admin({"op": "partner.add", "partner": p}, f"add with range {bad}")
        if x < 0.45:
            if r.random() < 0.6 or not taken:
                g = r.choice(self.bad_gateways)
            else:
                n, _ = r.choice(taken)
                g = str(n.network_address + min(n.num_addresses - 1, 1))
            return self.admin({"op": "partner.set", "domain": d, "add": {"gateways": [g]}},
                              f"add gateway {g} to {d}")
        if x < 0.6:
            if taken:
                n, owner = r.choice(taken)
                others = [o for o in names if o != owner] or names
                return self.admin({"op": "partner.set", "domain": r.choice(others),
                                   "add": {"ranges": [self.spell_range(n)]}},
                                  f"add {owner}'s range {n} to another")
            return self.op_add(names)
        if x < 0.7:
            k = r.choice(["kind", "esp", "path", "agreement", "enabled", "ranges", "gateways", "domain"])
            v = {"kind": "sip", "esp": "none", "path": "ipsec", "agreement": "yes",
                 "enabled": 1, "ranges": [], "gateways": [], "domain": "other.example"}[k]
            return self.admin({"op": "partner.set", "domain": d, "set": {k: v}}, f"set {d} {k}={v!r}")
        if x < 0.8:
            if names and r.random() < 0.5:
                return self.admin({"op": "partner.add", "partner": self.new_partner(d)},
                                  f"add existing {d}")
            bad = r.choice(BAD_DOMAINS + [f"absent{r.randrange(9)}.example"])
            return self.admin({"op": r.choice(["partner.set", "partner.del"]), "domain": bad,
                               "set": {"agreement": True}}, f"change absent/bad domain {bad!r}")
        if x < 0.9:
            return self.admin({"op": "partner.set", "domain": d,
                               "set": {"kind": "non-ims", "path": "seg"}}, f"seg non-ims {d}")
        t = self.table_list()
        extra = self.new_partner(r.choice(DOMAINS))
        extra["ranges"].append(r.choice(self.bad_ranges))
        return self.admin({"op": "apply", "partners": t + [extra]}, "apply with one bad partner")

    def op_cli(self, names):
        r = self.rng
        x = r.random()
        if x < 0.3 or not names:
            return {"do": "export-apply", "note": "mmtrustctl export; mmtrustctl apply (no change)"}
        d = r.choice(names)
        if x < 0.6:
            en = not self.m.table[d]["enabled"]
            return {"do": "cli", "args": ["partner", "set", d, "--enable" if en else "--disable"],
                    "req": {"op": "partner.set", "domain": d, "set": {"enabled": en}},
                    "note": f"mmtrustctl {'enable' if en else 'disable'} {d}"}
        if x < 0.8:
            ag = r.random() < 0.5
            esp = r.choice(FIELDS["esp"])
            return {"do": "cli", "args": ["partner", "set", d, "--agreement", "yes" if ag else "no",
                                          "--esp", esp],
                    "req": {"op": "partner.set", "domain": d, "set": {"agreement": ag, "esp": esp}},
                    "note": f"mmtrustctl set {d} agreement/esp"}
        free = [x for x in DOMAINS if x not in self.m.table]
        if not free:
            return {"do": "cli", "args": ["partner", "del", d],
                    "req": {"op": "partner.del", "domain": d}, "note": f"mmtrustctl del {d}"}
        p = self.new_partner(r.choice(free))
        args = ["partner", "add", p["domain"], "--kind", p["kind"], "--agreement",
                "yes" if p["agreement"] else "no", "--ca", p["ca"][1:] + ".pem"]
        for v in p["ranges"]:
            args += ["--range", v]
        for g in p["gateways"]:
            args += ["--gateway", g]
        for k in ("esp", "path"):
            if k in p:
                args += ["--" + k, p[k]]
        if not p.get("enabled", True):
            args.append("--disable")
        return {"do": "cli", "args": args, "req": {"op": "partner.add", "partner": p},
                "note": f"mmtrustctl add {p['domain']}"}

    def op_tamper(self, names):
        """Delete one of our policies by hand; the daemon must restore it.
        Replayable: named by selector, the index is looked up at run time."""
        r = self.rng
        # The reqid does not matter for the choice of a selector.
        view = {d: dict(p, reqid=REQID_MIN) for d, p in self.m.table.items()}
        want, _ = reference_spd(view, self.m.cfg)
        if not want:
            return {"do": "sighup", "note": "SIGHUP"}
        pol = r.choice(sorted(want))
        if r.random() < 0.5:
            return {"do": "del-index", "dir": pol[0], "src": pol[1], "dst": pol[2],
                    "note": f"ip xfrm policy del index (dir {pol[0]} {pol[1]} -> {pol[2]})"}
        return {"do": "deleteall", "src": pol[1], "dst": pol[2],
                "note": f"ip xfrm policy deleteall src {pol[1]} dst {pol[2]}"}

    def op_sighup(self, names):
        return {"do": "sighup", "note": "SIGHUP"}

    def op_restart(self, names):
        return {"do": "restart", "note": "restart the daemon (unchanged table: no change requests)"}


# ------------------------------------------------------------- the runner

class Runner:
    def __init__(self, build, cfg, cas):
        self.build, self.cfg, self.cas = build, cfg, cas
        self.env = Env(build, cfg, cas)
        self.model = Model(cfg)
        self.kernel = {}        # our policies -> index, after the last step
        self.daemon_table = {}
        self.use_dst = self.probe_dst()

    def close(self):
        self.env.close()

    def probe_dst(self):
        a = self.env.query.call({"op": "inbound", "src": "192.0.2.1", "dst": CSCF_HOST[4]})
        return bool(a.get("ok"))

    def ca(self, v):
        return self.cas[v] if isinstance(v, str) and v in self.cas else v

    def wire(self, req):
        """The request as sent: "@caN" replaced by the PEM."""
        req = copy.deepcopy(req)
        for p in ([req.get("partner")] + list(req.get("partners") or []) +
                  [req.get("set")]):
            if isinstance(p, dict) and "ca" in p:
                p["ca"] = self.ca(p["ca"])
        return req

    def step(self, i, op):
        before_kernel = dict(self.kernel)
        do = op["do"]
        verdict, new_table, accepted = "valid", None, None
        if do in ("admin", "cli"):
            verdict, new_table = self.model.predict(op["req"])
            if do == "admin":
                ans = self.env.admin.call(self.wire(op["req"]))
                accepted = bool(ans.get("ok"))
                detail = json.dumps(ans.get("error")) if not accepted else ""
            else:
                r = self.env.ctl(*op["args"])
                if r.returncode not in (0, 1):
                    raise Failure("cli", f"mmtrustctl {' '.join(op['args'])}: exit "
                                  f"{r.returncode}: {r.stderr.strip()}")
                accepted = r.returncode == 0
                detail = r.stderr.strip()
            if verdict == "invalid" and accepted:
                raise Failure("accepted-invalid", f"the daemon accepted an input the rules refuse "
                              f"({self.model.why}): {op['note']}")
            if verdict == "valid" and not accepted:
                raise Failure("refused-valid", f"the daemon refused a valid input: {op['note']}: "
                              f"{detail}")
            if accepted:
                self.model.table = new_table
        elif do == "export-apply":
            f = self.env.path("export.yaml")
            r = self.env.ctl("export", "-o", f)
            r2 = self.env.ctl("--json", "apply", f) if r.returncode == 0 else r
            if r.returncode or r2.returncode:
                raise Failure("cli", f"export/apply: {r.stderr.strip()} {r2.stderr.strip()}")
            ch = json.loads(r2.stdout).get("changes")
            if ch:
                raise Failure("table", f"applying an export changed something: {ch}")
        elif do in ("del-index", "deleteall"):
            self.tamper(op)
            before_kernel = None
        elif do == "sighup":
            self.env.proc.send_signal(signal.SIGHUP)
        elif do == "restart":
            self.env.stop()
            self.env.start()
            self.use_dst = self.probe_dst()
        self.settle(before_kernel, accepted is False)

    def tamper(self, op):
        """Delete our policies on a selector by hand (nothing when a replay
        has none there); ip(8) must succeed."""
        for key, idx in self.kernel.items():
            if key[1:3] != (op["src"], op["dst"]) or key[0] != op.get("dir", key[0]):
                continue
            if op["do"] == "deleteall":
                args = ["deleteall", "src", op["src"], "dst", op["dst"]]
            else:
                args = ["del", "index", str(idx), "dir", op["dir"]]
            try:
                self.env.ip("xfrm", "policy", *args)
            except RuntimeError as e:
                raise Failure("tamper", str(e))
            return

    def observe(self):
        ans = self.env.admin.call_many([{"op": "partner.list"}, {"op": "status"}])
        table = table_from_daemon(ans[0]["result"]["partners"])
        return table, ans[1]["result"], self.env.policies()

    def settle(self, before_kernel, refused):
        deadline = time.time() + SETTLE
        while True:
            problems = []
            table, status, pols = self.observe()
            problems += self.check_table(table)
            ours, bad = kernel_ours(pols)
            problems += self.check_spd(table, ours, bad, pols)
            problems += self.check_status(table, status)
            problems += self.check_queries(table)
            if before_kernel is not None:
                problems += self.check_churn(before_kernel, ours, refused)
            if not problems or time.time() >= deadline:
                break
            time.sleep(0.03)
        self.kernel = ours
        self.daemon_table = table
        if problems:
            lines, shown = [], {}
            for c, t in problems:
                shown[c] = shown.get(c, 0) + 1
                if shown[c] <= 8:
                    lines.append(f"  [{c}] {t}")
            for c, k in shown.items():
                if k > 8:
                    lines.append(f"  [{c}] ... {k - 8} more")
            raise Failure(problems[0][0], f"after {SETTLE:.0f} s:\n" + "\n".join(lines))

    def check_table(self, table):
        out = []
        want = self.model.table
        for d in sorted(set(want) | set(table)):
            if d not in table:
                out.append(("table", f"{d}: in the model, not in the daemon's table"))
                continue
            if d not in want:
                out.append(("table", f"{d}: in the daemon's table, not in the model"))
                continue
            w, g = want[d], table[d]
            for k in ("kind", "agreement", "esp", "path", "enabled"):
                if w[k] != g.get(k):
                    out.append(("table", f"{d}: {k} is {g.get(k)!r}, want {w[k]!r}"))
            wr = sorted(str(norm_range(x)) for x in w["ranges"])
            gr = sorted(str(ipaddress.ip_network(x)) for x in g["ranges"])
            if wr != gr:
                out.append(("table", f"{d}: ranges {gr}, want {wr} (mapped spellings are IPv4)"))
            wg = [str(norm_addr(x)) for x in w["gateways"]]
            gg = [str(ipaddress.ip_address(x)) for x in g["gateways"]]
            if wg != gg:
                out.append(("table", f"{d}: gateways {gg}, want {wg}"))
            if g.get("ca", "").strip() != self.ca(w["ca"]).strip():
                out.append(("table", f"{d}: ca is not {w['ca']}"))
            if not REQID_MIN <= g.get("reqid", 0) <= REQID_MAX:
                out.append(("table", f"{d}: reqid {g.get('reqid')} outside the range"))
        return out

    def check_spd(self, table, ours, bad, pols):
        out = []
        want, _ = reference_spd(table, self.cfg)
        for k in sorted(want - set(ours)):
            out.append(("spd", "missing: " + fmt_pol(k, table)))
        for k in sorted(set(ours) - want):
            out.append(("spd", "extra:   " + fmt_pol(k, table)))
        for p in bad:
            out.append(("spd", f"malformed or duplicate policy of ours: {p}"))
        if not any(p["dst"] == "100.127.0.0/16" and p["uid"] != TAG for p in pols):
            out.append(("spd", "the foreign policy (dst 100.127.0.0/16) is gone"))
        return out

    def check_status(self, table, status):
        out = []
        _, per = reference_spd(table, self.cfg)
        got = {p["domain"]: p for p in status.get("partners", [])}
        total = 0
        for d, p in table.items():
            s = got.get(d)
            if s is None:
                out.append(("status", f"{d}: not in status"))
                continue
            if not p["enabled"]:
                want = "disabled"
            elif p["path"] == "seg":
                want = "seg"
            elif per[d] is None:
                want = "error"
            else:
                want = "in-sync"
            pol = s.get("policies", {})
            if s.get("state") != want:
                out.append(("status", f"{d}: state {s.get('state')} {pol}, want {want}"))
            elif want == "in-sync" and not (pol.get("expected") == pol.get("in_sync") == per[d]):
                out.append(("status", f"{d}: policies {pol}, want {per[d]} in sync"))
            total += per[d] or 0
        k = status.get("kernel", {})
        if k.get("expected") != total or k.get("in_sync") != total:
            out.append(("status", f"kernel totals {k}, want {total} expected and in sync"))
        return out

    def addresses(self, table):
        """Every range's edges, an inside point and the neighbours outside,
        in every spelling (mapped dotted and hex for IPv4, exploded IPv6),
        plus a few points of the pools: deterministic for a table, so that
        a replay asks the same questions."""
        nets = sorted({norm_range(x) for p in table.values() for x in p["ranges"]},
                      key=lambda n: (n.version, n))
        r = random.Random(zlib.crc32(repr(nets).encode()))
        addrs = []
        for n in nets:
            first, last = n.network_address, n.broadcast_address
            addrs += [first, last, first + r.randrange(n.num_addresses)]
            if int(first) > 0:
                addrs.append(first - 1)
            if int(last) < (1 << n.max_prefixlen) - 1:
                addrs.append(last + 1)
        for base, blen in V4_BASES + V6_BASES:
            b = ipaddress.ip_network(f"{base}/{blen}")
            addrs.append(b.network_address + r.randrange(b.num_addresses))
        addrs += [ipaddress.ip_address(a) for a in TUN.values()]
        out = []
        for a in dict.fromkeys(addrs):
            out.append(str(a))
            if a.version == 4 and "mapped" not in self.without:
                out += ["::ffff:" + str(a), f"::ffff:{int(a) >> 16:x}:{int(a) & 0xffff:x}"]
            elif a.version == 6 and "spelling" not in self.without and r.random() < 0.3:
                out.append(a.exploded)
        return out

    without = ()

    def check_queries(self, table):
        srcs = self.addresses(table)
        nets = table_nets(table)
        reqs = []
        for x in srcs:
            q = {"op": "inbound", "src": x}
            if self.use_dst:
                hosts = CSCF_HOSTS[norm_addr(x).version]
                q["dst"] = hosts[zlib.crc32(x.encode()) % len(hosts)]
            reqs.append(q)
        refs = [reference_inbound(table, nets, q["src"], q.get("dst"), self.cfg) for q in reqs]
        out = []
        lookups = self.env.admin.call_many([{"op": "lookup", "address": x} for x in srcs])
        for x, (ref, rng), a in zip(srcs, refs, lookups):
            res = a.get("result") or {}
            if not a.get("ok") or res.get("partner") != ref["partner"] or \
                    (rng and res.get("range") != rng):
                out.append(("lookup", f"lookup {x}: got {a.get('result') or a.get('error')}, "
                            f"want partner={ref['partner']} range={rng}"))
        for x, (ref, _), a in zip(srcs, refs, self.env.query.call_many(reqs)):
            if not a.get("ok"):
                out.append(("query", f"inbound {x}: error {a.get('error')}"))
                continue
            res = a["result"]
            got = {k: res.get(k) for k in ref}
            if got != ref or res.get("protected") is not False or \
                    res.get("src") != str(norm_addr(x)):
                out.append(("query", f"inbound {x}: got partner={res.get('partner')} "
                            f"reason={res.get('reason')} pai={res.get('pai')} src={res.get('src')}"
                            f", want partner={ref['partner']} reason={ref['reason']} "
                            f"pai={ref['pai']} src={norm_addr(x)}"))
        return out

    def check_churn(self, before, ours, refused):
        out = []
        if refused:
            if before != ours:
                gone = sorted(set(before.items()) - set(ours.items()))
                new = sorted(set(ours.items()) - set(before.items()))
                out.append(("refused-changed", f"a refused input changed the kernel: "
                            f"{len(gone)} policies gone, {len(new)} new; e.g. {(gone + new)[:2]}"))
            return out
        for k, idx in before.items():
            if k in ours and ours[k] != idx:
                out.append(("churn", f"policy re-added without a change of content "
                            f"(index {idx} -> {ours[k]}): {fmt_pol(k, self.daemon_table)}"))
        return out


def fmt_pol(k, table):
    owner = {p["reqid"]: d for d, p in table.items()}.get(k[6], "?")
    return f"{k[0]} {k[1]} -> {k[2]} prio {k[3]} tmpl {k[4]} -> {k[5]} reqid {k[6]} ({owner})"


# -------------------------------------------------------------- driving it

def make_cas(d):
    cas = {}
    for i in range(2):
        key, pem = os.path.join(d, f"ca{i}.key"), os.path.join(d, f"ca{i}.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", pem,
                        "-days", "30", "-subj", f"/CN=model-ca{i}", "-addext",
                        "basicConstraints=critical,CA:TRUE", "-addext",
                        "keyUsage=critical,keyCertSign,cRLSign"],
                       check=True, capture_output=True)
        with open(pem) as f:
            cas[f"@ca{i}"] = f.read()
    return cas


def drive(build, cfg, cas, without, ops=None, seed=0, steps=0, seconds=0, log=None):
    """Run on a fresh daemon: the given ops, or generated ones (seed; steps,
    or seconds when steps is 0).  The daemon's answers are checked once
    before the first step too.  Returns (ops run, (index, Failure) or None,
    seconds taken); index -1: before any step."""
    run = Runner(build, cfg, cas)
    run.without = without
    for c in ("ca0.pem", "ca1.pem"):
        shutil.copy(os.path.join(cas["dir"], c), run.env.path(c))
    gen = Gen(random.Random(seed), run.model, without) if ops is None else None
    done, i, t0 = [], -1, time.time()
    try:
        op = {"do": "start", "note": "before any step (empty table)"}
        while True:
            try:
                try:
                    run.step(i, op)
                except (OSError, ValueError, KeyError, TypeError) as e:
                    # The daemon died, hung or answered nonsense.
                    rc = run.env.proc.poll() if run.env.proc else None
                    raise Failure("daemon", f"{type(e).__name__}: {e}; the daemon "
                                  + ("is still running" if rc is None else f"exited with {rc}"))
            except Failure as f:
                f.log = run.env.log_tail()
                return done, (i, f), time.time() - t0
            i += 1
            if ops is not None:
                if i >= len(ops):
                    break
                op = ops[i]
            else:
                if (steps and i >= steps) or (not steps and time.time() - t0 >= seconds):
                    break
                op = gen.op()
            done.append(op)
            if log:
                log(i, op)
        return done, None, time.time() - t0
    finally:
        run.close()


def run_ops(build, cfg, cas, ops, without, log=None):
    return drive(build, cfg, cas, without, ops=ops, log=log)[1]


def shrink(build, cfg, cas, ops, fail, without, budget):
    """Delta debugging over the steps (ddmin): the shortest subsequence that
    still fails with the same kind of failure, within budget seconds."""
    cat = fail.category
    t_end = time.time() + budget
    tries = [0]

    def fails(sub):
        tries[0] += 1
        r = run_ops(build, cfg, cas, sub, without)
        return r is not None and r[1].category == cat, r

    best, n = list(ops), 2
    while len(best) >= 2 and time.time() < t_end:
        chunk = max(1, len(best) // n)
        parts = [best[j:j + chunk] for j in range(0, len(best), chunk)]
        reduced = False
        for j in range(len(parts)):
            if time.time() >= t_end:
                break
            cand = [op for k, p in enumerate(parts) if k != j for op in p]
            ok, r = fails(cand)
            if ok:
                best = cand[:r[0] + 1]     # what follows the failing step is not needed
                n = max(n - 1, 2)
                reduced = True
                break
        if not reduced:
            if n >= len(best):
                break
            n = min(len(best), n * 2)
    # Then each step on its own: drop one element of a list in its request
    # (a partner of an apply, a range, a gateway) while it still fails.
    for j in range(len(best)):
        progress = True
        while progress and time.time() < t_end:
            progress = False
            for cand in smaller(best[j]):
                if time.time() >= t_end:
                    break
                trial = best[:j] + [cand] + best[j + 1:]
                ok, r = fails(trial)
                if ok and r[0] >= j:
                    best = trial[:r[0] + 1]
                    progress = True
                    break
        if j >= len(best) - 1:
            break
    ok, r = fails(best)
    return best, (r if ok else None), tries[0], time.time() < t_end


def describe(op):
    """One readable line for a step (members at their default not shown;
    the replay file has the step exactly as sent)."""
    if op.get("do") not in ("admin", "cli"):
        return op["note"]
    req = op["req"]

    def partner(p):
        if not isinstance(p, dict):
            return repr(p)
        d = p.get("domain", "?")
        rest = " ".join(f"{k}={json.dumps(v) if isinstance(v, (list, dict)) else v}"
                        for k, v in p.items() if k != "domain" and DEFAULTS.get(k) != v)
        return f"{d} {rest}"
    via = "mmtrustctl " + " ".join(op["args"]) + "  ==  " if op["do"] == "cli" else ""
    if req.get("op") == "partner.add":
        return f"{via}partner.add {partner(req.get('partner'))}"
    if req.get("op") == "apply":
        return f"{via}apply [" + "; ".join(partner(p) for p in req.get("partners", [])) + "]"
    rest = " ".join(f"{k}={json.dumps(v)}" for k, v in req.items() if k not in ("op", "domain"))
    return f"{via}{req.get('op')} {req.get('domain')} {rest}".rstrip()


def smaller(op):
    """Versions of an admin step with one list element less, bigger cuts
    (shorter paths: whole partners) first."""
    if op.get("do") != "admin":
        return []
    paths = []

    def walk(x, path):
        if isinstance(x, list):
            paths.extend(path + [i] for i in range(len(x)))
        items = enumerate(x) if isinstance(x, list) else x.items() if isinstance(x, dict) else ()
        for k, y in items:
            walk(y, path + [k])
    walk(op["req"], [])
    out = []
    for p in sorted(paths, key=len):
        c = copy.deepcopy(op)
        t = c["req"]
        for k in p[:-1]:
            t = t[k]
        del t[p[-1]]
        c["note"] = op["note"].split(" [reduced]")[0] + " [reduced]"
        out.append(c)
    return out


def write_replay(path, cfg, without, ops):
    with open(path, "w") as f:
        f.write(json.dumps({"config": cfg, "without": list(without)}) + "\n")
        for op in ops:
            f.write(json.dumps(op) + "\n")


def read_replay(path):
    with open(path) as f:
        lines = [json.loads(x) for x in f if x.strip()]
    return lines[0]["config"], tuple(lines[0].get("without", ())), lines[1:]


def report(title, cfg, seed, ops, fail):
    i, f = fail
    where = f"step {i} of {len(ops)}: {describe(ops[i])}" if i >= 0 else "before any step"
    print(f"FAIL: {title}: seed {seed}, {where}")
    print(f"  config: {cfg}")
    print(f"  [{f.category}] {f.text}")
    if getattr(f, "log", ""):
        print("  daemon log (tail):\n    " + f.log.rstrip().replace("\n", "\n    "))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build")
    ap.add_argument("--seed", type=int, default=os.environ.get("MODEL_SEED"))
    ap.add_argument("--steps", type=int, default=os.environ.get("MODEL_STEPS"))
    ap.add_argument("--seconds", type=float, default=os.environ.get("MODEL_SECONDS"))
    ap.add_argument("--replay")
    ap.add_argument("--without", default=os.environ.get("MODEL_WITHOUT", ""),
                    help="kinds of steps to leave out (see the top of this file)")
    ap.add_argument("--shrink-seconds", type=float,
                    default=float(os.environ.get("MODEL_SHRINK_SECONDS", 120)))
    ap.add_argument("--out", default=None, help="where to write the shrunk sequence")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    # Cleanup (daemon, namespace) runs in finally blocks: make SIGTERM reach them.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    build = os.path.realpath(a.build)
    without = tuple(x for x in a.without.split(",") if x)
    tmp = tempfile.mkdtemp(prefix="mmtrust-model-ca-")
    cas = make_cas(tmp)
    cas["dir"] = tmp
    try:
        if a.replay:
            cfg, recorded, ops = read_replay(a.replay)
            without = without or recorded
            print(f"model: replaying {len(ops)} steps from {a.replay}, config {cfg}, "
                  f"without {list(without) or 'nothing'}")
            r = run_ops(build, cfg, cas, ops, without,
                        log=(lambda i, op: print(f"  step {i}: {describe(op)}")) if a.verbose else None)
            if r:
                report("replay", cfg, "-", ops, r)
                return 1
            print("model: replay passed")
            return 0
        seed = a.seed if a.seed is not None else random.SystemRandom().randrange(1 << 32)
        steps = a.steps if a.steps is not None else (0 if a.seconds else 300)
        crng = random.Random(seed)
        cfg = {"forward": crng.random() < 0.5, "tunnel6": crng.random() < 0.8}
        cfg["split"] = crng.random() < 0.5  # CSCF prefixes per kind of peer
        print(f"model: seed {seed}, {'%d steps' % steps if steps else '%.0f s' % a.seconds}, "
              f"config {cfg}, without {list(without) or 'nothing'}", flush=True)
        log = (lambda i, op: print(f"  step {i}: {op['note']}", flush=True)) if a.verbose else None
        ops, fail, took = drive(build, cfg, cas, without, seed=seed, steps=steps,
                                seconds=a.seconds, log=log)
        if not fail:
            print(f"model: seed {seed}: {len(ops)} steps passed in {took:.1f} s")
            return 0
        report("model", cfg, seed, ops, fail)
        if fail[0] < 0:
            return 1
        print(f"model: shrinking {fail[0] + 1} steps (up to {a.shrink_seconds:.0f} s) ...", flush=True)
        t0 = time.time()
        best, r, tries, finished = shrink(build, cfg, cas, ops[:fail[0] + 1], fail[1], without,
                                          a.shrink_seconds)
        if r is None:
            print(f"model: shrinking did not reproduce the failure ({tries} runs); "
                  f"full sequence kept")
            best, r = ops[:fail[0] + 1], fail
        out = a.out or os.path.join(tempfile.gettempdir(), f"mmtrust-model-{seed}.jsonl")
        write_replay(out, cfg, without, best)
        print(f"model: shortest failing sequence ({len(best)} steps, {tries} runs, "
              f"{time.time() - t0:.0f} s{'' if finished else ', budget used up'}); "
              f"replay with --replay {out}:")
        for j, op in enumerate(best):
            print(f"  {j}. {describe(op)}")
        report("shrunk", cfg, seed, best, r)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
