#!/usr/bin/python3
"""A FAULT-INJECTION FAKE of mmtrustd's query socket, for
tests/integration/test_client_failure.sh only: it answers the way a broken
or hostile daemon would, which the real mmtrustd never does (answers out of
order, with another id, for another subject, garbage, half a line, two
answers to one request, a closed connection, a backlog that stays full).
Everything a real daemon does is tested against the real mmtrustd.

    fault_query_server.py SOCKET MODE LOG

MODE (what the fake does; "right" is the answer a daemon with one seg
partner holding 198.18.0.7 would give):
  out-of-order    each request: first an answer with another id (keep, for
                  198.18.0.7: a late answer), then the right one
  wrong-id-only   each request: only the answer with another id
  no-id           each request: only an answer without id
  garbage         the first connection's requests: a line that is not
                  JSON; later connections: right
  other-subject   the first connection's requests: this id, but the answer
                  for 198.18.0.7 / ims.partner-s.example / spi 0x99 (keep);
                  later connections: right
  no-result       the first connection's requests: ok with no result;
                  later connections: right
  half-line       the first connection: half an answer, then nothing;
                  later connections: right
  close-once      the first connection: reads the request and closes
                  unanswered; later connections: right
  close-always    every connection: reads the request and closes
  double          each request: the right answer twice
  backlog-full    listens with backlog 0, fills the backlog with its own
                  connections and never accepts

LOG gets one line per request: "conn=N id=ID op=OP action=ACTION".
The socket exists (and for backlog-full the backlog is full) once LOG
holds the line "ready".
"""
import ipaddress
import json
import os
import socket
import sys
import threading

SEG = "198.18.0.7"

path, mode, log_path = sys.argv[1], sys.argv[2], sys.argv[3]
log_lock = threading.Lock()
conn_count = 0


def log(text):
    with log_lock, open(log_path, "a") as f:
        f.write(text + "\n")


def canon(addr):
    a = ipaddress.ip_address(addr)
    if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped:
        a = a.ipv4_mapped
    return str(a)


def right(req):
    """What a daemon with one seg partner (198.18.0.0/24) answers."""
    op = req.get("op")
    if op == "inbound":
        try:
            src = canon(req["src"])
            dst = canon(req["dst"]) if req.get("dst") else None
        except (KeyError, ValueError):
            return {"ok": False, "error": {"code": "invalid", "field": "src",
                                           "message": "must be an IPv4 or IPv6 address string"}}
        keep = ipaddress.ip_address(src) in ipaddress.ip_network("198.18.0.0/24")
        return {"ok": True, "result": {
            "src": src, "dst": dst,
            "partner": "ims.partner-s.example" if keep else None,
            "kind": "ims" if keep else None, "agreement": keep,
            "path": "seg" if keep else None, "enabled": keep, "protected": False,
            "sa": None, "pai": "keep" if keep else "strip",
            "reason": "seg-trusted" if keep else "unknown-source"}}
    if op == "outbound":
        res = {"partner": None, "kind": None, "agreement": False, "path": None,
               "trusted": False, "tunnel": "none", "pai": "strip", "reason": "not-a-partner"}
        if req.get("domain"):
            res["domain"] = req["domain"].lower().rstrip(".")
        else:
            res["dst"] = canon(req["dst"])
        return {"ok": True, "result": res}
    if op == "spi":
        spi = req["spi"] if isinstance(req["spi"], int) else int(req["spi"], 16)
        return {"ok": True, "result": {"spi": "0x%08x" % spi, "partner": None,
                                       "direction": None, "reqid": 0, "remote_id": None}}
    if op == "ping":
        return {"ok": True, "result": {"version": "fault-injection", "partners": 1}}
    return {"ok": False, "error": {"code": "unknown-op", "message": "unknown op"}}


def other_subject(req):
    """This request's id, but the answer to another question (keep): another
    src (inbound), domain or next hop (outbound), SPI (spi); with
    other-dst, the src asked but another dst."""
    res = right(req)["result"]
    op = req.get("op")
    if op == "inbound" and mode == "other-dst":
        res["dst"] = "10.99.99.99"
    elif op == "inbound":
        res = right(dict(req, src=SEG if canon(req["src"]) != SEG else "198.18.0.8"))["result"]
    elif op == "outbound" and "domain" in res:
        res["domain"] = "ims.partner-s.example"
    elif op == "outbound":
        res["dst"] = SEG
    elif op == "spi":
        res["spi"] = "0x00000099"
    res.update(pai="keep", reason="seg-trusted")
    return {"ok": True, "result": res}


def send(conn, obj, rid="same"):
    if rid != "none":
        obj = dict(obj, id=rid)
    conn.sendall((json.dumps(obj) + "\n").encode())


def serve(conn, n):
    buf = b""
    first = n == 1
    with conn:
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                try:
                    req = json.loads(line)
                except ValueError:
                    req = {}
                rid = req.get("id")
                action = "right"
                if mode == "out-of-order":
                    action = "late-then-right"
                    send(conn, right({"op": "inbound", "src": SEG}), rid=(rid or 0) + 1000)
                    send(conn, right(req), rid=rid)
                elif mode == "wrong-id-only":
                    action = "wrong-id"
                    send(conn, right(req), rid=(rid or 0) + 1000)
                elif mode == "no-id":
                    action = "no-id"
                    send(conn, right(req), rid="none")
                elif mode == "garbage" and first:
                    action = "garbage"
                    conn.sendall(b"this is not JSON {\n")
                elif mode in ("other-subject", "other-dst") and first:
                    action = "other-subject"
                    send(conn, other_subject(req), rid=rid)
                elif mode == "no-result" and first:
                    action = "no-result"
                    send(conn, {"ok": True}, rid=rid)
                elif mode == "half-line" and first:
                    action = "half-line"
                    conn.sendall(json.dumps(dict(right(req), id=rid)).encode()[:20])
                elif mode == "close-always" or (mode == "close-once" and first):
                    action = "close"
                    log("conn=%d id=%s op=%s action=%s" % (n, rid, req.get("op"), action))
                    conn.shutdown(socket.SHUT_RDWR)
                    return
                elif mode == "double":
                    action = "double"
                    send(conn, right(req), rid=rid)
                    send(conn, right(req), rid=rid)
                else:
                    send(conn, right(req), rid=rid)
                log("conn=%d id=%s op=%s action=%s" % (n, rid, req.get("op"), action))


def main():
    global conn_count
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    if mode == "backlog-full":
        srv.listen(0)
        fillers = []
        while True:
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.setblocking(False)
            try:
                c.connect(path)
            except BlockingIOError:
                c.close()
                break
            fillers.append(c)
        log("ready")
        threading.Event().wait()
    srv.listen(16)
    log("ready")
    while True:
        conn, _ = srv.accept()
        conn_count += 1
        threading.Thread(target=serve, args=(conn, conn_count), daemon=True).start()


main()
