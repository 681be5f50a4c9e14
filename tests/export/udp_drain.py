"""Waiting for a UDP collector to read what was sent to it, before stopping it.

nfcapd ends its receive loop at once on SIGTERM, so a datagram still queued on its socket then
is never decoded; when it is the last one of an exporter's flush, nothing after it reveals the
gap (no sequence failure, one record short). Seen on a loaded CI machine. Both export tests
stop their nfcapd through wait_drained().
"""

import time


def socket_queue(port, addr_hex="0100007F"):
    """(bytes waiting, datagrams dropped) of the UDP socket bound to 127.0.0.1:PORT (by default)
    in this network namespace, from /proc/net/udp; None when no socket is bound there."""
    local = f"{addr_hex}:{port:04X}"
    with open("/proc/net/udp") as f:
        for line in f.readlines()[1:]:
            c = line.split()
            if len(c) > 12 and c[1] == local:
                return int(c[4].split(":")[1], 16), int(c[12])
    return None


def wait_drained(port, proc, timeout=10.0, log=print):
    """Waits until the socket on 127.0.0.1:PORT has nothing queued (or `proc` exited, or
    `timeout` passed). Logs the socket's drop count if it is not 0 and what was still queued
    at the deadline. Returns the last (queued bytes, drops), or None without a socket."""
    deadline = time.monotonic() + timeout
    q = socket_queue(port)
    while q and q[0] > 0 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
        q = socket_queue(port)
    if q and q[0] > 0 and proc.poll() is None:
        log(f"   collector on port {port}: {q[0]} bytes still queued after {timeout:.0f} s")
    if q and q[1]:
        log(f"   collector on port {port}: its socket dropped {q[1]} datagrams")
    return q
