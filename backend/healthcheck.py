"""Docker HEALTHCHECK probe: exit 0 when GET /readyz/routing answers 200, else 1.

Runs every second in every replica, so it is kept cheap: stdlib `socket` only, meant for
`python3 -I -S` (no site import), about a third of the CPU of a urllib one-liner.
"""

import os
import socket
import sys


def main() -> int:
    port = int(os.environ.get("HEALTHCHECK_PORT", "8000"))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as conn:
            conn.settimeout(1.0)
            conn.sendall(b"GET /readyz/routing HTTP/1.0\r\nHost: localhost\r\n\r\n")
            status_line = conn.recv(32)
    except OSError:
        return 1
    return 0 if status_line.split(b" ", 2)[1:2] == [b"200"] else 1


if __name__ == "__main__":
    sys.exit(main())
