#!/usr/bin/env python3
"""Verdict probes of the VM Kamailio test (test_kamailio_e2e.sh).

Kamailio (examples/kamailio/) answers every INVITE it relays with
"100 Trying" (tm), and its mmtrust check logs the removal of a
P-Asserted-Identity before that, in the same worker, with the Call-ID in
the line's prefix.  So once the 100 has come back, Kamailio's log says
the verdict of that request: a "P-Asserted-Identity removed" line (or a
"no answer" one) with its Call-ID is a strip; none is a keep (logged at
debug level only).

  sip_probe.py watch SRC DST DOMAIN KAMLOG OUT INTERVAL_MS

One INVITE (with P-Asserted-Identity) every INTERVAL_MS from SRC (an
address of this namespace) to DST:5060, Request-URI sip:probe@DOMAIN,
until terminated; a line per probe appended to OUT:
"SENT_US CALL_ID VERDICT" with VERDICT kept, stripped or none (no 100
within 2 s); SENT_US is the sending time, microseconds since the epoch
(the same clock as bash's EPOCHREALTIME).
"""
import os
import re
import signal
import socket
import sys
import time


def invite(src, port, dst, domain, call_id, n):
    return (
        f"INVITE sip:probe@{domain} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {src}:{port};branch=z9hG4bK-{call_id};rport\r\n"
        f"From: <sip:prober@{src}>;tag=p{n}\r\n"
        f"To: <sip:probe@{domain}>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: 1 INVITE\r\n"
        f"Contact: <sip:prober@{src}:{port}>\r\n"
        f"Max-Forwards: 70\r\n"
        f"P-Asserted-Identity: <sip:prober@{src}>\r\n"
        f"Content-Length: 0\r\n\r\n"
    ).encode()


class Log:
    """Kamailio's log, read as it grows: the Call-IDs of the strips."""

    def __init__(self, path):
        self.path, self.pos, self.stripped = path, 0, set()

    def update(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                chunk = f.read()
        except OSError:
            return
        end = chunk.rfind(b"\n") + 1
        self.pos += end
        for line in chunk[:end].decode("utf-8", "replace").splitlines():
            if "P-Asserted-Identity removed" in line:
                m = re.search(r" (probe-\d+-\d+)\}", line)
                if m:
                    self.stripped.add(m.group(1))


def watch(src, dst, domain, logpath, out, interval_ms):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, 0))
    port = s.getsockname()[1]
    log = Log(logpath)
    tag = f"{os.getpid()}"
    n = 0
    with open(out, "a", buffering=1) as o:
        while not stop:
            n += 1
            cid = f"probe-{tag}-{n}"
            t_sent = time.time_ns() // 1000
            s.sendto(invite(src, port, dst, domain, cid, n), (dst, 5060))
            deadline = time.monotonic() + 2.0
            answered = False
            while not stop and time.monotonic() < deadline:
                s.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    data = s.recv(65535)
                except socket.timeout:
                    break
                except InterruptedError:
                    continue
                if data.startswith(b"SIP/2.0 ") and f"Call-ID: {cid}\r".encode() in data:
                    answered = True
                    break
            if stop:
                break
            if answered:
                log.update()
                verdict = "stripped" if cid in log.stripped else "kept"
            else:
                verdict = "none"
            o.write(f"{t_sent} {cid} {verdict}\n")
            rest = interval_ms / 1000 - (time.time_ns() // 1000 - t_sent) / 1e6
            if rest > 0 and not stop:
                time.sleep(rest)


if __name__ == "__main__":
    if len(sys.argv) != 8 or sys.argv[1] != "watch":
        sys.exit(__doc__)
    watch(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], int(sys.argv[7]))
