"""Listening sockets, bound before a server starts so that a taken port fails at once."""

from __future__ import annotations

import errno
import socket


def bind_socket(host: str, port: int) -> socket.socket:
    """Open a listening TCP socket; raises OSError when the address is taken or invalid."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # The protocol must be named: asyncio turns off Nagle's algorithm (TCP_NODELAY) only on
    # sockets whose protocol is IPPROTO_TCP, and without that each response waits about 40 ms.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        # On Linux, binding still fails while another socket listens on the port. SO_REUSEADDR
        # only skips the wait after a previous server on the port stopped.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def describe_bind_error(host: str, port: int, exc: OSError) -> str:
    """Describe in one line why `host:port` cannot be listened on, and what to do."""
    display_host = f"[{host}]" if ":" in host else host
    if exc.errno == errno.EADDRINUSE:
        return f"{display_host}:{port}: address already in use; pick another with --port"
    if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
        reason = exc.strerror or str(exc)
        return (
            f"--host {host!r}: cannot listen on this host ({reason}); expected an address of "
            "this machine such as 127.0.0.1"
        )
    return f"{display_host}:{port}: cannot listen ({exc.strerror or exc})"
