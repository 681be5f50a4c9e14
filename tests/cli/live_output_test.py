#!/usr/bin/python3
"""Live output reaches its reader while the capture runs, not when it stops.

Usage: live_output_test.py JARVIS_CAPTURE

On loopback only: the traffic is 20 UDP datagrams this test sends to 127.0.0.1, on ports of
its own that the capture filter selects.

* `flows -i lo --format json --idle-timeout 1 FILTER` into a pipe: a finished flow's JSON
  object arrives while the meter is still running (its flows end after the one-second idle
  timeout). It used to be held back until a megabyte of text had gathered or the meter
  stopped.
* The same on a terminal (a pty) with `--format csv`: the header, then a record.
* `capture -i lo -l FILTER` into a pipe: a packet's line arrives while it runs (tcpdump's
  -l). Without -l a pipe gets lines a few KiB at a time, as from tcpdump: not asserted.
* `capture -i lo -U -w - FILTER` into a pipe: a pcapng section with an Enhanced Packet Block
  holding one of our datagrams arrives while it runs (tcpdump's -U); without -U the writer's
  256 KiB buffer would hold it.
* Each run then stops cleanly on SIGINT (exit 0).

"While running" is checked by the order of events, not by a duration: the line must be read
before the test sends SIGINT; the test waits up to 30 s for it.

Exit 0 when every check passed, 1 otherwise; 77 without the privilege to capture.
"""
import os
import pty
import random
import select
import signal
import socket
import subprocess
import sys
import threading
import time

from errors_test import has_cap_net_raw  # tests/cli/errors_test.py, beside this file

WAIT = 30.0

failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
        print("  FAIL", what, flush=True)
    else:
        print("  ok", what, flush=True)
    return ok


def send_datagrams(port0, count=20):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for i in range(count):
            s.sendto(b"jarvis-live-output-test", ("127.0.0.1", port0 + i))
            time.sleep(0.02)
    finally:
        s.close()


def epb_payloads(data):
    """The packet data of each Enhanced Packet Block in a little-endian pcapng byte string
    (complete blocks only)."""
    out, off = [], 0
    while off + 12 <= len(data):
        btype = int.from_bytes(data[off:off + 4], "little")
        blen = int.from_bytes(data[off + 4:off + 8], "little")
        if blen < 12 or off + blen > len(data):
            break
        if btype == 6 and blen >= 32:
            caplen = int.from_bytes(data[off + 20:off + 24], "little")
            out.append(data[off + 28:off + 28 + caplen])
        off += blen
    return out


def run_live(binary, args, on_pty, wanted_lines, port0, done=None):
    """Starts `binary args`, sends the datagrams once it listens, reads its standard output
    until `wanted_lines` lines came (or `done(data)` holds) or WAIT passed, then sends SIGINT.
    Returns (lines read before SIGINT, exit status, stderr); with `done`, the bytes instead of
    the lines."""
    if on_pty:
        master, slave = pty.openpty()
        p = subprocess.Popen([binary] + args, stdout=slave, stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL)
        os.close(slave)
        out_fd = master
    else:
        p = subprocess.Popen([binary] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL)
        out_fd = p.stdout.fileno()
    err = bytearray()
    listening = threading.Event()

    def drain_stderr():
        for line in p.stderr:
            err.extend(line)
            if line.startswith(b"listening on"):
                listening.set()
        listening.set()  # EOF: the process ended; the sender need not wait any longer

    t = threading.Thread(target=drain_stderr, daemon=True)
    t.start()
    # Both commands say "listening on" once the capture is up; the datagrams go out after it,
    # twice, a second apart (a flow idles out in a second, and a second batch ends it too).
    sender = threading.Thread(
        target=lambda: (listening.wait(WAIT), send_datagrams(port0), time.sleep(1.0),
                        send_datagrams(port0)), daemon=True)
    sender.start()
    data = b""
    deadline = time.monotonic() + WAIT
    finished = done if done is not None else (lambda d: d.count(b"\n") >= wanted_lines)
    while not finished(data) and time.monotonic() < deadline:
        ready, _, _ = select.select([out_fd], [], [], 0.2)
        if not ready:
            if p.poll() is not None:
                break
            continue
        try:
            chunk = os.read(out_fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    lines = data if done is not None else data.decode(errors="replace").splitlines()
    p.send_signal(signal.SIGINT)
    try:
        code = p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        code = None
    t.join(timeout=5)
    sender.join(timeout=5)
    if on_pty:
        os.close(master)
    return lines, code, err.decode(errors="replace")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: live_output_test.py JARVIS_CAPTURE")
    binary = sys.argv[1]
    if os.geteuid() != 0 and not has_cap_net_raw():
        print("skipped: live capture on lo needs root or CAP_NET_RAW")
        sys.exit(77)
    port0 = random.randrange(40000, 60000, 100)
    filt = ["udp", "and", "dst", "portrange", f"{port0}-{port0 + 19}", "and", "dst", "host",
            "127.0.0.1"]

    print("flows -i lo, JSON into a pipe: a record while it runs")
    lines, code, err = run_live(binary, ["flows", "-i", "lo", "--format", "json",
                                         "--idle-timeout", "1", "--no-progress"] + filt,
                                on_pty=False, wanted_lines=1, port0=port0)
    if check(len(lines) >= 1, f"a record before SIGINT (stderr {err[-300:]!r})"):
        check(lines[0].startswith('{"flow_id":') and '"dst_ip":"127.0.0.1"' in lines[0],
              f"the record is a flow to 127.0.0.1: {lines[0][:200]!r}")
    check(code == 0, f"exit {code} after SIGINT")
    check(err.startswith("listening on lo, link-type EN10MB (Ethernet), snapshot length "),
          f"flows -i says on stderr that it listens, as capture does: {err[:120]!r}")

    print("flows -i lo, CSV on a terminal: the header, then a record, while it runs")
    lines, code, err = run_live(binary, ["flows", "-i", "lo", "--format", "csv",
                                         "--idle-timeout", "1", "--no-progress"] + filt,
                                on_pty=True, wanted_lines=2, port0=port0)
    if check(len(lines) >= 2, f"header and a record before SIGINT: {lines[:2]} "
                              f"(stderr {err[-300:]!r})"):
        check(lines[0].startswith("flow_id,src_ip,"), f"the CSV header: {lines[0][:100]!r}")
        check(",127.0.0.1," in lines[1], f"a record to 127.0.0.1: {lines[1][:200]!r}")
    check(code == 0, f"exit {code} after SIGINT")

    print("capture -i lo -l into a pipe: a packet line while it runs")
    lines, code, err = run_live(binary, ["capture", "-i", "lo", "-l"] + filt, on_pty=False,
                                wanted_lines=1, port0=port0)
    if check(len(lines) >= 1, f"a line before SIGINT (stderr {err[-300:]!r})"):
        dst_port = lines[0].split("> 127.0.0.1.", 1)[-1].split(":", 1)[0]
        check(dst_port.isdigit() and port0 <= int(dst_port) < port0 + 20 and "UDP" in lines[0],
              f"the line is one of our datagrams: {lines[0][:200]!r}")
    check(code == 0, f"exit {code} after SIGINT")

    print("capture -i lo -U -w - into a pipe: a packet block while it runs")
    marker = b"jarvis-live-output-test"
    data, code, err = run_live(binary, ["capture", "-i", "lo", "-U", "-w", "-"] + filt,
                               on_pty=False, wanted_lines=0, port0=port0,
                               done=lambda d: any(marker in b for b in epb_payloads(d)))
    check(data[:4] == bytes.fromhex("0a0d0d0a"), f"a pcapng section header first: {data[:8]!r}")
    check(any(marker in b for b in epb_payloads(data)),
          f"an Enhanced Packet Block with our datagram before SIGINT ({len(data)} bytes, "
          f"stderr {err[-300:]!r})")
    check(code == 0, f"exit {code} after SIGINT")

    print(f"{len(failures)} failures" if failures else "PASS")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
