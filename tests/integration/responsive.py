#!/usr/bin/env python3
"""Drive one long admin request and watch the admin socket meanwhile.

Run inside the daemon's network namespace (it reads `ip xfrm policy count`
for the kernel's own count of policies, independent of the daemon):

  responsive.py table SOCKET COUNT CA_PEM OUT.json [--keep]
                                 write an apply request of COUNT partners
                                 (as tests/lib/common.sh bulk_table)
  responsive.py pings SOCKET COUNT OUT.json   latencies of COUNT pings
  responsive.py run SOCKET REQUEST.json RESULT.json [options]

`run` sends the request on one connection and, until its answer comes,
keeps asking on fresh connections (like mmtrustctl does): `ping`, and
with --status a `status` after every three pings.  Each answer is recorded with the time it came, whether
the long request had been answered by then, and the kernel's policy count
at that moment.  Options:
  --second REQUEST.json  send this request on another connection once the
                         kernel count has moved (a write during the long one)
  --delete-oob SPEC      once the kernel count has moved, run
                         `ip xfrm policy deleteall SPEC` (someone else
                         deleting one of our policies), then ask the query
                         socket (--query SOCKET --inbound SRC,DST) until it
                         says not protected
  --timeout SECONDS      give up (default 120)
"""
import argparse
import json
import socket
import subprocess
import sys
import time


def table(args):
    pem = open(args.ca).read()
    partners = []
    if args.keep:
        # The partners the daemon has now, as a table file would give them.
        c = Conn(args.socket)
        c.send({"op": "partner.list", "config": True})
        partners = c.answer(30)["result"]["partners"]
        c.close()
    for i in range(args.count):
        a, b = divmod(i, 250)
        partners.append({
            "domain": "p%d.bulk.example" % i, "kind": "non-ims", "agreement": False,
            "ranges": ["100.%d.%d.%d/32" % (64 + a // 256, a % 256, b),
                       "100.%d.%d.%d/32" % (96 + a // 256, a % 256, b)],
            "gateways": ["203.0.113.%d" % (1 + i % 250)], "ca": pem})
    with open(args.out, "w") as f:
        json.dump({"op": "apply", "partners": partners}, f)
        f.write("\n")


def kernel_count():
    out = subprocess.run(["ip", "xfrm", "policy", "count"], capture_output=True,
                         text=True).stdout
    # "SPD IN  0 OUT 0 FWD 0 (Sock: IN 0 OUT 0 FWD 0)"
    words = out.split("(")[0].split()
    return sum(int(words[i + 1]) for i, w in enumerate(words) if w in ("IN", "OUT", "FWD"))


class Conn:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.buf = b""

    def send(self, obj_or_text):
        text = obj_or_text if isinstance(obj_or_text, str) else json.dumps(obj_or_text)
        self.s.sendall(text.rstrip("\n").encode() + b"\n")

    def answer(self, timeout=None):
        """The next answer line, or None when none came within timeout."""
        self.s.settimeout(timeout)
        try:
            while b"\n" not in self.buf:
                chunk = self.s.recv(1 << 20)
                if not chunk:
                    raise ConnectionError("closed")
                self.buf += chunk
        except (socket.timeout, BlockingIOError):
            return None
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def close(self):
        self.s.close()


def run(args):
    long_req = open(args.request).read()
    second = json.dumps(json.load(open(args.second))) if args.second else None
    res = {"answers": [], "long_answer_at": None, "long_ok": None, "second_answer_at": None,
           "second_ok": None, "oob_at": None, "not_protected_at": None}
    k0 = kernel_count()
    res["count_before"] = k0
    t0 = time.monotonic()
    a = Conn(args.socket)
    a.send(long_req)
    res["sent_at"] = time.monotonic() - t0
    c = None
    moved = False
    ops = ["status", "ping", "ping", "ping"]
    i = 0
    while time.monotonic() - t0 < args.timeout:
        ans = a.answer(0)
        if ans is not None:
            res["long_answer_at"] = time.monotonic() - t0
            res["long_ok"] = ans.get("ok")
            res["long_error"] = ans.get("error")
            break
        count = kernel_count()
        if not moved and count != k0:
            moved = True
            res["moved_at"] = time.monotonic() - t0
            if second:
                c = Conn(args.socket)
                c.send(second)
                res["second_sent_at"] = time.monotonic() - t0
            if args.delete_oob:
                subprocess.run(["ip", "xfrm", "policy", "deleteall"] + args.delete_oob.split(),
                               check=True)
                res["oob_at"] = time.monotonic() - t0
        if res["oob_at"] is not None and res["not_protected_at"] is None:
            src, dst = args.inbound.split(",")
            q = Conn(args.query)
            q.send({"op": "inbound", "src": src, "dst": dst})
            qa = q.answer(args.timeout)
            q.close()
            if qa and qa.get("ok") and not qa["result"].get("protected"):
                res["not_protected_at"] = time.monotonic() - t0
                res["not_protected_count"] = kernel_count()
        op = ops[i % len(ops)] if args.status else "ping"
        i += 1
        sent_count = kernel_count()
        s0 = time.monotonic()
        b = Conn(args.socket)
        b.send({"op": op})
        ans = None
        # Wait for this answer or for the long one, whichever comes first.
        while ans is None and time.monotonic() - t0 < args.timeout:
            ans = b.answer(0.005)
            if ans is None and res["long_answer_at"] is None:
                la = a.answer(0)
                if la is not None:
                    res["long_answer_at"] = time.monotonic() - t0
                    res["long_ok"] = la.get("ok")
                    res["long_error"] = la.get("error")
        b.close()
        if ans is None:
            break
        now = time.monotonic()
        rec = {"op": op, "at": now - t0, "latency_ms": (now - s0) * 1000,
               "ok": ans.get("ok"), "long_done": res["long_answer_at"] is not None,
               "sent_count": sent_count, "kernel_count": kernel_count()}
        if op == "status" and ans.get("ok"):
            k = ans["result"]["kernel"]
            rec["in_sync"] = k["in_sync"]
            rec["expected"] = k["expected"]
        res["answers"].append(rec)
        if res["long_answer_at"] is not None:
            break
    a.close()
    if c is not None:
        ans = c.answer(args.timeout)
        res["second_answer_at"] = time.monotonic() - t0
        res["second_ok"] = ans.get("ok") if ans else None
        res["second_error"] = ans.get("error") if ans else None
        c.close()
    res["count_after"] = kernel_count()
    with open(args.result, "w") as f:
        json.dump(res, f, indent=1)


def pings(args):
    """Latencies (ms) of COUNT pings, each on a fresh connection."""
    lat = []
    for _ in range(args.count):
        s0 = time.monotonic()
        c = Conn(args.socket)
        c.send({"op": "ping"})
        c.answer(30)
        c.close()
        lat.append((time.monotonic() - s0) * 1000)
    json.dump(lat, open(args.out, "w"))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("table")
    t.add_argument("socket")
    t.add_argument("count", type=int)
    t.add_argument("ca")
    t.add_argument("out")
    t.add_argument("--keep", action="store_true", help="keep the daemon's partners too")
    p = sub.add_parser("pings")
    p.add_argument("socket")
    p.add_argument("count", type=int)
    p.add_argument("out")
    r = sub.add_parser("run")
    r.add_argument("socket")
    r.add_argument("request")
    r.add_argument("result")
    r.add_argument("--second")
    r.add_argument("--status", action="store_true", help="a status after every three pings")
    r.add_argument("--delete-oob")
    r.add_argument("--query")
    r.add_argument("--inbound")
    r.add_argument("--timeout", type=float, default=120)
    args = ap.parse_args()
    if args.cmd == "table":
        table(args)
    elif args.cmd == "pings":
        pings(args)
    else:
        run(args)


if __name__ == "__main__":
    sys.exit(main())
