#!/usr/bin/python3
"""The reference answers for test_bindings.sh: a seeded set of random
questions (inbound and outbound, IPv4 and IPv6, in the test's partner
ranges and outside them, some the daemon refuses), each asked straight
over the query socket as a JSON line (docs/protocol.md), not through
libmmtrust, and written with the daemon's answer as one tab-separated
line each:

    inbound  SRC  DST|-  SPI            key=value ...
    outbound DOMAIN|-  DST|-  0|1       key=value ...

The values as a binding shows them: null is "nil", booleans "true" and
"false".  A refused question expects pai=strip reason=query-refused.

Usage: bindings_reference.py SOCKET SEED COUNT OUT_FILE"""
import ipaddress
import json
import random
import socket
import sys

INBOUND_KEYS = ("pai", "reason", "partner", "kind", "path", "agreement", "enabled", "protected", "dst")
OUTBOUND_KEYS = ("pai", "reason", "partner", "kind", "path", "agreement", "enabled", "trusted",
                 "tunnel", "dst")
# The test's partner ranges and some outside any.
NETS4 = ["192.0.2.0/24", "198.18.0.0/24", "203.0.113.0/24", "10.0.0.0/8", "198.51.100.0/24"]
NETS6 = ["2001:db8:a::/48", "2001:db8:5::/48", "2001:db8:ffff::/48"]
DOMAINS = ["ims.partner-a.example", "ims.partner-s.example", "sip.provider-n.example",
           "ims.partner-d.example", "IMS.Partner-S.Example.", "other.example",
           "sbc1.ims.partner-s.example"]


def rand_addr(rng, v6=None):
    if v6 is None:
        v6 = rng.random() < 0.3
    net = ipaddress.ip_network(rng.choice(NETS6 if v6 else NETS4))
    return str(net[rng.randrange(net.num_addresses)])


def show(v):
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def main():
    path, seed, count, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    rng = random.Random(seed)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    f = s.makefile("rwb")
    lines = []
    for i in range(count):
        if rng.random() < 0.55:
            v6 = rng.random() < 0.3
            src = rand_addr(rng, v6)
            if rng.random() < 0.05:
                src = "300.1.2.%d" % rng.randrange(256)   # refused: not an address
            dst = rand_addr(rng, v6) if rng.random() < 0.5 else None
            spi = rng.randrange(1, 1 << 32) if rng.random() < 0.3 else 0
            req = {"op": "inbound", "src": src}
            if dst:
                req["dst"] = dst
            if spi:
                req["spi"] = spi
            cols, keys = ["inbound", src, dst or "-", str(spi)], INBOUND_KEYS
        else:
            privacy = rng.random() < 0.3
            if rng.random() < 0.5:
                domain, dst = rng.choice(DOMAINS), None
            else:
                domain, dst = None, rand_addr(rng)
            if rng.random() < 0.04:
                domain = "not a domain"                   # refused
            req = {"op": "outbound"}
            if domain:
                req["domain"] = domain
            if dst:
                req["dst"] = dst
            if privacy:
                req["privacy"] = ["id"]
            cols, keys = ["outbound", domain or "-", dst or "-", "1" if privacy else "0"], OUTBOUND_KEYS
        f.write(json.dumps(req).encode() + b"\n")
        f.flush()
        a = json.loads(f.readline())
        if a.get("ok"):
            r = a["result"]
            want = ["%s=%s" % (k, show(r.get(k))) for k in keys]
        else:
            want = ["pai=strip", "reason=query-refused"]
        lines.append("\t".join(cols + want))
    with open(out, "w") as o:
        o.write("\n".join(lines) + "\n")
    refused = sum(1 for line in lines if "reason=query-refused" in line)
    keep = sum(1 for line in lines if "pai=keep" in line)
    print("reference: %d questions (seed %d), %d keep, %d refused" % (count, seed, keep, refused))


if __name__ == "__main__":
    main()
