#!/usr/bin/python3
"""Fault-injection stand-ins for mmtrustd's query socket, for
test_bindings.sh: NOT the daemon, only the failures a binding must turn
into a fail-closed answer (pai "strip").  Usage:

    bindings_fault.py DIR READY_FILE

serves, until killed, one Unix socket per fault under DIR:
  silent.sock   reads requests and never answers (a hung daemon)
  garbage.sock  answers every request with a line that is not JSON
  noresult.sock answers {"ok": true, "id": <the request's>} without a result
  hangup.sock   reads one request and closes the connection unanswered
  late.sock     answers every request with pai "keep", but only LATE
                seconds after it came (after the client's timeout)
and then creates READY_FILE."""
import json
import os
import socket
import sys
import threading
import time

LATE = 1.0
KEEP = b'{"ok":true,"result":{"pai":"keep","reason":"seg-trusted","partner":"late.example"}}\n'


def serve(conn, mode):
    buf = b""
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
                if mode == "silent":
                    continue
                if mode == "hangup":
                    return
                if mode == "late":
                    time.sleep(LATE)
                    reply = KEEP
                elif mode == "garbage":
                    reply = b"this is not json\n"
                else:  # noresult, with the request's id: an answer to it
                    try:
                        rid = json.loads(line).get("id")
                    except ValueError:
                        rid = None
                    reply = json.dumps({"ok": True, "id": rid}).encode() + b"\n"
                try:
                    conn.sendall(reply)
                except OSError:
                    return


def listen(path, mode):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(64)

    def loop():
        while True:
            conn, _ = s.accept()
            threading.Thread(target=serve, args=(conn, mode), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()


def main():
    d, ready = sys.argv[1], sys.argv[2]
    for mode in ("silent", "garbage", "noresult", "hangup", "late"):
        listen(os.path.join(d, mode + ".sock"), mode)
    open(ready, "w").close()
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
