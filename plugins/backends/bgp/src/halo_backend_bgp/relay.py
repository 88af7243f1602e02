"""The API process ExaBGP runs (``process { run ... }``): it joins ExaBGP's pipes to halo.

ExaBGP reads commands from its API process's stdout and writes acknowledgements to its
stdin. This relay connects to the Unix socket the halo backend listens on and copies bytes
both ways, so halo writes ``announce route ...`` and reads ``done``. It exits when either
side closes: halo gone (ExaBGP, run with ``exabgp.api.terminate``, then exits too and its
peers drop the routes) or ExaBGP gone (halo sees the socket close and restarts it).

    python -m halo_backend_bgp.relay SOCKET      (a path, or @NAME for an abstract socket)
"""

from __future__ import annotations

import os
import selectors
import socket
import sys


def relay(path: str) -> int:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # "@name": Linux's abstract socket namespace (argv cannot carry the leading NUL)
        sock.connect("\0" + path[1:] if path.startswith("@") else path)
    except OSError as exc:
        print(f"halo relay: cannot connect to {path}: {exc}", file=sys.stderr)
        return 1
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    sel = selectors.DefaultSelector()
    sel.register(stdin, selectors.EVENT_READ, "exabgp")
    sel.register(sock, selectors.EVENT_READ, "halo")
    while True:
        for key, _ in sel.select():
            if key.data == "halo":
                data = sock.recv(65536)
                if not data:
                    return 0
                while data:  # unbuffered: ExaBGP acts on each line at once
                    data = data[os.write(stdout, data) :]
            else:
                data = os.read(stdin, 65536)
                if not data:
                    return 0
                sock.sendall(data)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m halo_backend_bgp.relay SOCKET", file=sys.stderr)
        sys.exit(2)
    try:
        sys.exit(relay(sys.argv[1]))
    except (BrokenPipeError, ConnectionError, KeyboardInterrupt):
        sys.exit(0)
