"""Free TCP ports for the servers tests start: test sessions (a developer's, CI's) may run side by side."""

from __future__ import annotations

import socket


def free_ports(count: int) -> list[int]:
    """`count` distinct ports nobody listens on now; all are held while picking, so none repeats."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sockets.append(sock)
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port_run(count: int) -> int:
    """The first of `count` consecutive ports nobody listens on now (Connect workers take a run of them)."""
    while True:
        first = free_ports(1)[0]
        if first + count <= 65536 and not any(_listened(port) for port in range(first + 1, first + count)):
            return first


def _listened(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False
