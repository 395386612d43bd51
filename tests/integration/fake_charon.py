#!/usr/bin/env python3
"""A stand-in for strongSwan's charon on a VICI socket, for integration
tests that need a partner's tunnel "up" on a machine whose kernel has no
ESP (the real tunnel is the VM tier's).

    fake_charon.py SOCKET READY_FILE [REMOTE_HOST]

Speaks the VICI wire protocol (strongSwan's src/libcharon/plugins/vici/
README.md): answers every command with success, confirms every event
registration, and behaves like a charon whose peers all answer at once:
every connection loaded (load-conn) comes up between its first local and
remote address (REMOTE_HOST when it names none) -- a child-updown event with
an INSTALLED CHILD_SA under the connection's reqid, authenticated as the
connection's remote id (the partner's domain) -- and list-sas lists it.
unload-conn takes it down again; terminate (by IKE_SA id) takes it down
until an initiate brings it up again.  SPIs are derived from the reqid:
in 0xc1000000 + reqid % 0x10000, out 0xc2000000 + reqid % 0x10000.
Touches READY_FILE once listening; runs until killed.  With
FAKE_CHARON_CONNS set, appends each loaded connection to that file as a
JSON line: {"name", "local_ts", "remote_ts"} (its children's).

With FAKE_CHARON_LOG set, one JSON line per command is appended to that
file: {"cmd": NAME} plus, for load-cert, its type and the SHA-256 of its
data; for load-conn, the connection's name, remote revocation setting and
number of remote CA certificates; for flush-certs, its type; for rekey,
its ike/ike-id and reauth; for initiate, its child; for terminate, its
ike-id.

With FAKE_CHARON_REFUSE_CRL naming a file that exists, load-cert of an
X509_CRL is refused ("parsing CRL failed")."""

import hashlib
import json
import os
import socket
import struct
import sys
import threading

CMD_REQUEST, CMD_RESPONSE, CMD_UNKNOWN = 0, 1, 2
EVENT_REGISTER, EVENT_UNREGISTER, EVENT_CONFIRM, EVENT_UNKNOWN, EVENT = 3, 4, 5, 6, 7
NAMED = {CMD_REQUEST, EVENT_REGISTER, EVENT_UNREGISTER, EVENT}
SECTION_START, SECTION_END, KEY_VALUE, LIST_START, LIST_ITEM, LIST_END = 1, 2, 3, 4, 5, 6

lock = threading.Lock()
conns = {}          # name -> {"reqid": int, "remote_id": str}
clients = []        # [Client]


def spis(reqid):
    return 0xc1000000 + reqid % 0x10000, 0xc2000000 + reqid % 0x10000


def decode(data):
    """Message elements -> nested dicts (sections), lists and str values."""
    root, stack, pos = {}, [], 0
    cur = root
    while pos < len(data):
        t = data[pos]
        pos += 1
        if t in (SECTION_START, KEY_VALUE, LIST_START):
            n = data[pos]
            name = data[pos + 1:pos + 1 + n].decode()
            pos += 1 + n
        if t == SECTION_START:
            sec = {}
            cur[name] = sec
            stack.append(cur)
            cur = sec
        elif t == SECTION_END:
            cur = stack.pop()
        elif t == KEY_VALUE:
            (n,) = struct.unpack(">H", data[pos:pos + 2])
            cur[name] = data[pos + 2:pos + 2 + n].decode(errors="replace")
            pos += 2 + n
        elif t == LIST_START:
            lst = []
            cur[name] = lst
        elif t == LIST_ITEM:
            (n,) = struct.unpack(">H", data[pos:pos + 2])
            lst.append(data[pos + 2:pos + 2 + n].decode(errors="replace"))
            pos += 2 + n
        elif t == LIST_END:
            pass
        else:
            raise ValueError("element type %d" % t)
    return root


def encode(obj):
    out = b""
    for k, v in obj.items():
        kb = k.encode()
        if isinstance(v, dict):
            out += bytes([SECTION_START, len(kb)]) + kb + encode(v) + bytes([SECTION_END])
        elif isinstance(v, list):
            out += bytes([LIST_START, len(kb)]) + kb
            for item in v:
                ib = str(item).encode()
                out += bytes([LIST_ITEM]) + struct.pack(">H", len(ib)) + ib
            out += bytes([LIST_END])
        else:
            vb = str(v).encode()
            out += bytes([KEY_VALUE, len(kb)]) + kb + struct.pack(">H", len(vb)) + vb
    return out


def packet(ptype, name=None, body=None):
    data = bytes([ptype])
    if name is not None:
        data += bytes([len(name)]) + name.encode()
    data += encode(body or {})
    return struct.pack(">I", len(data)) + data


def record(name, msg):
    path = os.environ.get("FAKE_CHARON_LOG")
    if not path:
        return
    entry = {"cmd": name}
    if name == "load-cert":
        entry["type"] = msg.get("type")
        entry["sha256"] = hashlib.sha256(msg.get("data", "").encode()).hexdigest()
    elif name == "load-conn":
        for cname, sec in msg.items():
            if isinstance(sec, dict):
                remote = sec.get("remote") or {}
                entry.update(name=cname, revocation=remote.get("revocation"),
                             cacerts=len(remote.get("cacerts") or []))
    elif name == "flush-certs":
        entry["type"] = msg.get("type")
    elif name == "rekey":
        entry.update({k: msg.get(k) for k in ("ike", "ike-id", "reauth")})
    elif name == "initiate":
        entry["child"] = msg.get("child")
    elif name == "terminate":
        entry["ike-id"] = msg.get("ike-id")
    with open(path, "a") as f:
        f.write(json.dumps(entry) + "\n")


def ike_sa(name, c, remote_host):
    spi_in, spi_out = spis(c["reqid"])
    return {name: {
        "uniqueid": str(c["reqid"] % 100000),
        "state": "ESTABLISHED",
        "local-host": c.get("local_host", ""),
        "remote-host": c.get("remote_host") or remote_host,
        "remote-id": c["remote_id"],
        "established": "5",
        "child-sas": {"%s-1" % name: {
            "name": name,
            "uniqueid": str(c["reqid"] % 100000),
            "reqid": str(c["reqid"]),
            "state": "INSTALLED",
            "mode": "TUNNEL",
            "protocol": "ESP",
            "spi-in": "%08x" % spi_in,
            "spi-out": "%08x" % spi_out,
            "install-time": "5",
        }},
    }}


class Client:
    def __init__(self, sock, remote_host):
        self.sock = sock
        self.events = set()
        self.remote_host = remote_host
        self.wlock = threading.Lock()

    def send(self, data):
        with self.wlock:
            self.sock.sendall(data)

    def event(self, name, body):
        if name in self.events:
            try:
                self.send(packet(EVENT, name, body))
            except OSError:
                pass

    def command(self, name, msg):
        reply = {"success": "yes"}
        up = None
        with lock:
            record(name, msg)
            refuse = os.environ.get("FAKE_CHARON_REFUSE_CRL")
            if (name == "load-cert" and msg.get("type") == "X509_CRL" and refuse
                    and os.path.exists(refuse)):
                reply = {"success": "no", "errmsg": "parsing CRL failed"}
            elif name == "load-conn":
                for cname, sec in msg.items():
                    if not isinstance(sec, dict):
                        continue
                    reqid = 0
                    for child in (sec.get("children") or {}).values():
                        reqid = int(child.get("reqid", "0"))
                    remote = next((v for k, v in sec.items()
                                   if k.startswith("remote") and isinstance(v, dict)), {})
                    # Like charon: the IKE_SA runs between the first
                    # local and remote address of the connection.
                    local_addrs = sec.get("local_addrs") or [""]
                    remote_addrs = sec.get("remote_addrs") or [""]
                    conns[cname] = {"reqid": reqid, "remote_id": remote.get("id", cname),
                                    "local_host": local_addrs[0],
                                    "remote_host": remote_addrs[0]}
                    up = (cname, dict(conns[cname]))
                    if os.environ.get("FAKE_CHARON_CONNS"):
                        ts = {"local_ts": [], "remote_ts": []}
                        for child in (sec.get("children") or {}).values():
                            for k in ts:
                                ts[k] += child.get(k) or []
                        with open(os.environ["FAKE_CHARON_CONNS"], "a") as f:
                            f.write(json.dumps({"name": cname, **ts}) + "\n")
            elif name == "terminate":
                for c in conns.values():
                    if str(c["reqid"] % 100000) == str(msg.get("ike-id", "")):
                        c["down"] = True
            elif name == "initiate":
                c = conns.get(msg.get("child", ""))
                if c is not None and c.get("down"):
                    c["down"] = False
                    up = (msg["child"], dict(c))
            elif name == "unload-conn":
                conns.pop(msg.get("name", ""), None)
            elif name == "get-conns":
                reply = {"conns": sorted(conns)}
            elif name == "list-sas":
                listed = [ike_sa(n, c, self.remote_host) for n, c in sorted(conns.items())
                          if not c.get("down")]
                for sa in listed:
                    self.event("list-sa", sa)
                reply = {}
        self.send(packet(CMD_RESPONSE, None, reply))
        if up:
            body = {"up": "yes"}
            body.update(ike_sa(up[0], up[1], self.remote_host))
            with lock:
                targets = list(clients)
            for c in targets:
                c.event("child-updown", body)

    def run(self):
        buf = b""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
                while len(buf) >= 4:
                    (n,) = struct.unpack(">I", buf[:4])
                    if len(buf) < 4 + n:
                        break
                    data, buf = buf[4:4 + n], buf[4 + n:]
                    ptype, pos, name = data[0], 1, None
                    if ptype in NAMED:
                        name = data[2:2 + data[1]].decode()
                        pos = 2 + data[1]
                    if ptype == CMD_REQUEST:
                        self.command(name, decode(data[pos:]))
                    elif ptype == EVENT_REGISTER:
                        self.events.add(name)
                        self.send(packet(EVENT_CONFIRM))
                    elif ptype == EVENT_UNREGISTER:
                        self.events.discard(name)
                        self.send(packet(EVENT_CONFIRM))
        except OSError:
            pass
        finally:
            with lock:
                clients.remove(self)
            self.sock.close()


def main(path, ready, remote_host="198.51.100.10"):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(8)
    open(ready, "w").close()
    while True:
        s, _ = srv.accept()
        c = Client(s, remote_host)
        with lock:
            clients.append(c)
        threading.Thread(target=c.run, daemon=True).start()


if __name__ == "__main__":
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    main(*sys.argv[1:])
