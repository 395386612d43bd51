#!/usr/bin/env python3
"""Clients of mmtrustd's CSCF query socket (docs/protocol.md), well-behaved
and hostile, for tests/integration/test_query.sh.

    query_clients.py SUBCOMMAND SOCKET ARGS...

`ask` prints the answers to the given request lines; the other subcommands
run one scenario and print one line per check, "PASS what" or "FAIL what",
which the shell test turns into pass/fail.  `probe` is the well-behaved
client run alongside the hostile scenarios: it measures how long every
answer takes until told to stop and writes the figures as JSON.

Exit status: 0 (the checks say how it went), 3 cannot connect, 4 the
daemon closed the connection before answering, 1 anything unexpected."""

import json
import os
import resource
import select
import socket
import subprocess
import sys
import threading
import time

MAX_LINE = 4096
MAX_OUT = 1 << 20


def report(ok, what):
    print(("PASS " if ok else "FAIL ") + what, flush=True)
    return ok


def connect(path, timeout=5.0):
    """Connected, or OSError.  A full listen backlog (a burst of
    connections while the daemon is busy) is waited out, not an error."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    deadline = time.monotonic() + timeout
    while True:
        try:
            s.connect(path)
            return s
        except BlockingIOError:
            if time.monotonic() > deadline:
                s.close()
                raise
            time.sleep(0.001)


class Conn:
    """A line-oriented client: send requests, read answer lines."""

    def __init__(self, path, timeout=5.0):
        self.sock = connect(path, timeout)
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def request(self, obj):
        self.send(json.dumps(obj, separators=(",", ":")) + "\n")

    def line(self, timeout=5.0):
        """The next line (bytes, without newline); None on EOF; raises
        socket.timeout when nothing complete arrives in time."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no complete line")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def answer(self, timeout=5.0):
        line = self.line(timeout)
        return None if line is None else json.loads(line)

    def ask(self, obj, timeout=5.0):
        self.request(obj)
        return self.answer(timeout)

    def close(self):
        self.sock.close()


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def wait_until(cond, timeout):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))


def is_error(a, code, field=None):
    return (isinstance(a, dict) and a.get("ok") is False and
            a.get("error", {}).get("code") == code and
            (field is None or a["error"].get("field") == field))


# --- ask: print the answer to each request line ---------------------------
def cmd_ask(path, *lines):
    try:
        c = Conn(path)
    except OSError as e:
        print("cannot connect: %s" % e, file=sys.stderr)
        return 3
    try:
        c.send("".join(l + "\n" for l in lines))
    except (BrokenPipeError, ConnectionResetError):
        pass                                  # closed at once: no answer below
    for _ in lines:
        line = c.line()
        if line is None:
            print("connection closed by the daemon", file=sys.stderr)
            return 4
        print(line.decode())
    return 0


# --- probe: the well-behaved client ---------------------------------------
def cmd_probe(path, out, stop, ready, src, pai):
    lat, errors, first_error = [], 0, None
    c = Conn(path)
    open(ready, "w").close()
    k = 0
    while not os.path.exists(stop):
        k += 1
        t = time.perf_counter()
        try:
            a = c.ask({"op": "inbound", "src": src, "id": k}, timeout=5.0)
        except (OSError, ValueError) as e:
            a = e
        dt = time.perf_counter() - t
        if not (isinstance(a, dict) and a.get("ok") and a.get("id") == k and
                a["result"].get("pai") == pai):
            errors += 1
            first_error = first_error or repr(a)
            if a is None or isinstance(a, Exception):
                break
        lat.append(dt * 1e3)
        time.sleep(0.002)
    lat.sort()
    stats = {
        "n": len(lat),
        "max_ms": round(lat[-1], 2) if lat else None,
        "p50_ms": round(lat[len(lat) // 2], 3) if lat else None,
        "p99_ms": round(lat[int(len(lat) * 0.99)], 2) if lat else None,
        "errors": errors,
        "first_error": first_error,
    }
    with open(out, "w") as f:
        json.dump(stats, f)
    return 0


# --- pipelining -----------------------------------------------------------
def cmd_pipeline(path, n, seg_src):
    n = int(n)
    reqs = []
    for i in range(n):
        kind = i % 5
        if kind == 0:
            r = {"op": "inbound", "src": seg_src}
        elif kind == 1:
            r = {"op": "inbound", "src": "10.99.%d.%d" % (i // 256, i % 256)}
        elif kind == 2:
            r = {"op": "outbound", "domain": "peer%d.example" % i}
        elif kind == 3:
            r = {"op": "ping"}
        else:
            r = {"op": "inbound", "src": i}     # an error answer keeps its id too
        ids = [i, "req-%d" % i, {"n": i, "tag": ["x", None]}, None]
        if i % 4 != 3:
            r["id"] = ids[i % 4]
        elif i % 8 == 7:
            r["id"] = None                      # "id": null is echoed as null
        reqs.append(r)
    c = Conn(path)
    data = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in reqs).encode()
    t = time.perf_counter()
    c.send(data)                                # one write
    answers = []
    for _ in range(n):
        line = c.line()
        if line is None:
            break
        answers.append(json.loads(line))
    dt = time.perf_counter() - t
    report(len(answers) == n, "pipeline: %d requests in one write (%d bytes), %d answers in %.1f ms"
           % (n, len(data), len(answers), dt * 1e3))
    bad_id = bad_answer = 0
    for r, a in zip(reqs, answers):
        if ("id" in r) != ("id" in a) or ("id" in r and a["id"] != r["id"]):
            bad_id += 1
            continue
        op = r["op"]
        ok = False
        if op == "inbound" and isinstance(r["src"], str):
            ok = a.get("ok") and a["result"]["src"] == r["src"]
        elif op == "inbound":
            ok = is_error(a, "invalid", "src")
        elif op == "outbound":
            ok = a.get("ok") and a["result"]["domain"] == r["domain"]
        elif op == "ping":
            ok = a.get("ok") and "partners" in a["result"]
        bad_answer += not ok
    report(bad_id == 0, "pipeline: answers in request order with every id echoed as sent "
           "(numbers, strings, objects, null; none where none was sent): %d wrong" % bad_id)
    report(bad_answer == 0, "pipeline: each answer is the answer to its request: %d wrong" % bad_answer)
    try:
        extra = c.line(timeout=0.2)
    except socket.timeout:
        extra = b""
    report(extra == b"", "pipeline: no answer beyond the %d" % n)
    return 0


# --- invalid JSON ---------------------------------------------------------
def cmd_invalid_json(path, seg_src):
    c = Conn(path)
    garbage = [
        b'{"op": "inbound", "src": }',
        b"not json at all",
        b'{"op":"ping"',
        b"\xff\xfe\x00\x01binary",
        b'{"op":"ping","op":"ping"}',          # duplicate members are refused
        b'{"op":"ping"} trailing',
    ]
    for g in garbage:
        c.send(g + b"\n")
        a = c.answer()
        report(is_error(a, "invalid-json") and "id" not in a,
               "invalid JSON %r: answer invalid-json: %s" % (g[:30], json.dumps(a)[:160]))
    for g, code in ((b"[1,2,3]", "invalid-request"), (b'"a string"', "invalid-request"),
                    (b"42", "invalid-request"), (b"{}", "invalid-request"),
                    (b'{"op":5,"id":9}', "invalid-request")):
        c.send(g + b"\n")
        a = c.answer()
        report(is_error(a, code), "%r: answer %s: %s" % (g, code, json.dumps(a)[:160]))
    # Empty lines and CRLF: no answer for an empty line, CRLF accepted.
    c.send(b"\n\r\n   \n" + b'{"op":"inbound","src":"%s","id":"after"}\r\n' % seg_src.encode())
    a = c.answer()
    report(a and a.get("ok") and a.get("id") == "after" and a["result"]["pai"] == "keep",
           "after all that the connection is usable (empty lines skipped, CRLF accepted): %s"
           % json.dumps(a)[:160])
    return 0


# --- long lines -----------------------------------------------------------
def padded(n, id_):
    """A valid ping request of exactly n bytes (without the newline)."""
    head = '{"op":"ping","id":%s,"pad":"' % json.dumps(id_)
    tail = '"}'
    return (head + "p" * (n - len(head) - len(tail)) + tail).encode()


def cmd_long_line(path, seg_src):
    c = Conn(path)
    req = padded(MAX_LINE, "at-limit")
    c.send(req + b"\n")
    a = c.answer()
    report(a and a.get("ok") and a.get("id") == "at-limit",
           "a request line of exactly %d bytes is answered" % MAX_LINE)
    c.send(padded(MAX_LINE + 1, "over") + b"\n")
    a = c.answer()
    report(is_error(a, "line-too-long"), "%d bytes: line-too-long: %s" % (MAX_LINE + 1, json.dumps(a)[:160]))
    good = b'{"op":"inbound","src":"%s","id":"next"}\n' % seg_src.encode()
    for size in (1 << 20, 3 * (1 << 20)):
        t = time.perf_counter()
        c.send(b"x" * size + b"\n" + good)    # 1 MB of one line, then a request
        a1 = c.answer(timeout=10)
        a2 = c.answer(timeout=10)
        dt = time.perf_counter() - t
        report(is_error(a1, "line-too-long"),
               "a %d MB line: one line-too-long answer (%.0f ms): %s" % (size >> 20, dt * 1e3, json.dumps(a1)[:160]))
        report(a2 and a2.get("ok") and a2.get("id") == "next",
               "after the %d MB line the connection is usable: %s" % (size >> 20, json.dumps(a2)[:120]))
    # The long line arriving in small pieces over time, a request after it.
    for i in range(20):
        c.send(b"y" * 1000)
        time.sleep(0.005)
    c.send(b"\n" + good)
    a1, a2 = c.answer(), c.answer()
    report(is_error(a1, "line-too-long") and a2 and a2.get("id") == "next",
           "a 20 kB line in 1 kB pieces: line-too-long, then the next request answered")
    try:
        extra = c.line(timeout=0.3)
    except socket.timeout:
        extra = b""
    report(extra == b"", "one error answer per long line, nothing else: %r" % extra[:80])
    return 0


# --- half a line then silence ---------------------------------------------
def cmd_half_line(path, seg_src, seconds):
    silent = Conn(path)
    silent.send(b'{"op":"inbound","src":"' + seg_src.encode()[:4])
    quitter = Conn(path)
    quitter.send(b'{"op":"inbou')
    quitter.close()                           # EOF in the middle of a line
    time.sleep(float(seconds))
    silent.send(seg_src.encode()[4:] + b'","id":"late"}\n')
    a = silent.answer()
    report(a and a.get("ok") and a.get("id") == "late" and a["result"]["src"] == seg_src,
           "half a line, %s s of silence, then the rest: answered: %s" % (seconds, json.dumps(a)[:120]))
    return 0


# --- many idle connections ------------------------------------------------
def cmd_idle(path, n, dpid, hold):
    n, dpid = int(n), int(dpid)
    raise_nofile(n + 100)
    base = fd_count(dpid)
    conns = [Conn(path) for _ in range(n)]
    up = wait_until(lambda: fd_count(dpid) >= base + n, 5)
    held = fd_count(dpid)
    report(up and held == base + n,
           "%d idle connections accepted: daemon fds %d -> %d (one per client)" % (n, base, held))
    time.sleep(float(hold))
    # Every idle connection still works.
    for i, c in enumerate(conns):
        c.request({"op": "ping", "id": i})
    bad = 0
    for i, c in enumerate(conns):
        a = c.answer()
        bad += not (a and a.get("ok") and a.get("id") == i)
    report(bad == 0, "after %s s idle all %d connections are answered (%d not)" % (hold, n, bad))
    for c in conns:
        c.close()
    back = wait_until(lambda: fd_count(dpid) <= base, 5)
    report(back, "after they close the daemon is back to %d fds (now %d): no leak"
           % (base, fd_count(dpid)))
    return 0


# --- more clients than max_clients ----------------------------------------
def cmd_max_clients(path, limit, already, extra, dpid):
    limit, already, extra, dpid = int(limit), int(already), int(extra), int(dpid)
    raise_nofile(limit + extra + 100)
    base = fd_count(dpid)
    accepted, refused, refuse_ms, misorder = [], [], [], 0
    for i in range(limit - already + extra):
        c = Conn(path)
        t = time.perf_counter()
        try:
            c.request({"op": "ping", "id": i})
            a = c.answer(timeout=3)
        except (BrokenPipeError, ConnectionResetError):
            a = None
        if a is None:
            refused.append(c)
            refuse_ms.append((time.perf_counter() - t) * 1e3)
        else:
            if refused:
                misorder += 1
            accepted.append(c)
    report(len(accepted) == limit - already and len(refused) == extra and not misorder,
           "max_clients %d (%d connected before): %d of %d new connections served, %d closed"
           % (limit, already, len(accepted), len(accepted) + len(refused), len(refused)))
    if refuse_ms:
        report(max(refuse_ms) < 500, "connections over the limit are closed at once (slowest %.1f ms)"
               % max(refuse_ms))
    report(fd_count(dpid) == base + len(accepted),
           "the daemon holds no fd for a refused connection (%d fds for %d clients, %d before)"
           % (fd_count(dpid), len(accepted), base))
    bad = 0
    for i, c in enumerate(accepted):
        c.request({"op": "ping", "id": i})
    for i, c in enumerate(accepted):
        a = c.answer()
        bad += not (a and a.get("id") == i)
    report(bad == 0, "the %d clients within the limit are still answered (%d not)" % (len(accepted), bad))
    # A slot that frees up can be used again.
    accepted.pop().close()
    wait_until(lambda: fd_count(dpid) < base + len(accepted) + 1, 3)
    c = Conn(path)
    a = c.ask({"op": "ping", "id": "again"}, timeout=3)
    report(a and a.get("id") == "again", "a connection freed below the limit: a new client is served")
    c.close()
    for c in accepted + refused:
        c.close()
    wait_until(lambda: fd_count(dpid) <= base, 5)
    return 0


# --- subscribers ----------------------------------------------------------
def subscribe(path):
    c = Conn(path)
    a = c.ask({"op": "subscribe", "id": "sub"})
    if not (a and a.get("ok") and a["result"] == {"subscribed": True} and a.get("id") == "sub"):
        raise RuntimeError("subscribe answered %r" % a)
    return c


def cmd_events(path, n, command):
    """Subscribe, run command, print the first n events (JSON lines)."""
    c = subscribe(path)
    subprocess.run(["bash", "-c", command], check=True, stdout=subprocess.DEVNULL)
    for _ in range(int(n)):
        try:
            line = c.line(timeout=5)
        except socket.timeout:
            break
        if line is None:
            break
        print(line.decode(), flush=True)
    # Requests still work on a subscribed connection.
    a = c.ask({"op": "ping", "id": "still"})
    print(json.dumps(a), flush=True)
    return 0


class Reader(threading.Thread):
    """A subscriber that reads everything: events and answers."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.c = subscribe(path)
        self.events, self.answers, self.closed = [], [], False
        self.lock = threading.Lock()

    def run(self):
        while True:
            try:
                line = self.c.line(timeout=60)
            except (socket.timeout, OSError):
                line = None
            if line is None:
                self.closed = True
                return
            o = json.loads(line)
            with self.lock:
                (self.events if "event" in o else self.answers).append(o)


def bulk_domain(i):
    # ~250 characters: big events, so 1 MiB of them needs a few thousand.
    return ".".join([("b%04d-" % i).ljust(63, "x"), "y" * 62, "z" * 62, "w" * 44, "bulk.example"])


def bulk_yaml(base, ca, n, agreement):
    out = [open(base).read().rstrip("\n")]
    if out[0].rstrip().endswith("partners: []"):
        out[0] = out[0].rstrip()[: -len(" []")]
    for i in range(n):
        out.append("- domain: %s\n  kind: ims\n  agreement: %s\n  ranges: [10.%d.%d.0/24]\n"
                   "  gateways: [198.51.100.%d]\n  ca_file: %s"
                   % (bulk_domain(i), agreement, 100 + i // 256, i % 256, 1 + i % 200, ca))
    return "\n".join(out) + "\n"


def probe_for(path, seconds, src, pai):
    """Latencies (ms) of a well-behaved client asking for `seconds`."""
    c = Conn(path)
    lat, bad = [], 0
    end = time.monotonic() + seconds
    k = 0
    while time.monotonic() < end:
        k += 1
        t = time.perf_counter()
        a = c.ask({"op": "inbound", "src": src, "id": k})
        lat.append((time.perf_counter() - t) * 1e3)
        bad += not (a and a.get("id") == k and a["result"]["pai"] == pai)
        time.sleep(0.002)
    c.close()
    return lat, bad


def cmd_slow_subscriber(path, ctl, base, ca, workdir, batch, src, pai, limit_ms):
    """A subscriber that never reads while partner changes generate events:
    it must be disconnected once its unread events pass 1 MiB; meanwhile a
    subscriber that reads gets every event.  The events come from applies
    of `batch` long-named partners; an apply holds the daemon's loop for a
    while itself, so the well-behaved client's latency is measured in a
    pause of the applies, when the daemon holds ~0.9 MiB for the stalled
    subscriber (the worst moment before the cut), not across the applies."""
    batch, limit_ms = int(batch), float(limit_ms)
    files = []
    for ag in ("yes", "no"):
        f = os.path.join(workdir, "bulk-%s.yaml" % ag)
        with open(f, "w") as fh:
            fh.write(bulk_yaml(base, ca, batch, ag))
        files.append(f)
    stalled = subscribe(path)
    stalled.sock.setblocking(False)
    reader = Reader(path)
    reader.start()
    generated, applies, hup = 0, 0, False
    ev_bytes, paused = 0, None
    apply_s = []
    t0 = time.perf_counter()
    while applies < 80 and not hup:
        t = time.perf_counter()
        subprocess.run([ctl, "apply", files[applies % 2]], check=True, stdout=subprocess.DEVNULL)
        apply_s.append(time.perf_counter() - t)
        applies += 1
        generated += batch
        ev_bytes += batch * len('{"event":"partner-changed","partner":""}\n' + bulk_domain(0))
        p = select.poll()
        p.register(stalled.sock, select.POLLHUP | select.POLLERR)
        hup = bool(p.poll(0))
        if paused is None and ev_bytes >= 0.9 * MAX_OUT:
            lat, bad = probe_for(path, 1.0, src, pai)
            paused = (ev_bytes, hup, lat, bad)
    gen_s = time.perf_counter() - t0
    if paused:
        held, cut, lat, bad = paused
        lat.sort()
        report(not cut and bad == 0 and lat and lat[-1] < limit_ms,
               "with ~%.2f MB of events unread by the stalled subscriber, a well-behaved client is "
               "answered within %.0f ms (%d queries, p50 %.2f ms, max %.1f ms)"
               % (held / 1e6, limit_ms, len(lat), lat[len(lat) // 2], lat[-1]))
    print("applies of %d partners took %.0f-%.0f ms each (mmtrustctl included)"
          % (batch, min(apply_s) * 1e3, max(apply_s) * 1e3))
    report(hup, "a subscriber that never reads is disconnected: after %d events (~%.2f MB) "
           "in %d applies of %d partners (%.1f s)" % (generated, ev_bytes / 1e6, applies, batch, gen_s))
    report(ev_bytes > MAX_OUT, "... and not before its unread events passed 1 MiB (%.2f MB generated)"
           % (ev_bytes / 1e6))
    # Put the table back: one partner-removed per bulk partner.
    subprocess.run([ctl, "apply", base], check=True, stdout=subprocess.DEVNULL)
    generated += batch
    want = generated
    wait_until(lambda: len(reader.events) >= want or reader.closed, 10)
    with reader.lock:
        evs = list(reader.events)
    names = {"partner-added", "partner-changed", "partner-removed"}
    good = sum(1 for e in evs if e.get("event") in names and e.get("partner", "").endswith(".bulk.example")
               and "id" not in e and "ok" not in e)
    report(not reader.closed and len(evs) == want and good == want,
           "the subscriber that reads got all %d events (%d, %d well-formed) and stays connected"
           % (want, len(evs), good))
    kinds = [e["event"] for e in evs]
    report(kinds[:batch] == ["partner-added"] * batch and kinds[-batch:] == ["partner-removed"] * batch
           and set(kinds[batch:-batch]) == {"partner-changed"},
           "events in order: %d partner-added, partner-changed, %d partner-removed" % (batch, batch))
    reader.c.request({"op": "ping", "id": "reader"})
    wait_until(lambda: reader.answers, 3)
    report(reader.answers and reader.answers[-1].get("id") == "reader",
           "the reading subscriber's requests are answered between events")
    # What the stalled client can still read: what the kernel had buffered, then EOF.
    drained, eof = 0, False
    stalled.sock.setblocking(True)
    stalled.sock.settimeout(3)
    try:
        while True:
            chunk = stalled.sock.recv(1 << 16)
            if not chunk:
                eof = True
                break
            drained += len(chunk)
    except (socket.timeout, ConnectionResetError) as e:
        eof = isinstance(e, ConnectionResetError)
    report(eof, "the stalled subscriber's connection is closed (it held %d kB in its socket buffer, "
           "the daemon held at most 1 MiB)" % (drained // 1024))
    return 0


COMMANDS = {
    "ask": cmd_ask,
    "probe": cmd_probe,
    "pipeline": cmd_pipeline,
    "invalid-json": cmd_invalid_json,
    "long-line": cmd_long_line,
    "half-line": cmd_half_line,
    "idle": cmd_idle,
    "max-clients": cmd_max_clients,
    "events": cmd_events,
    "slow-subscriber": cmd_slow_subscriber,
}

if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(COMMANDS[sys.argv[1]](*sys.argv[2:]))
