#!/usr/bin/python3
"""Live capture test for the libpcap backend on a veth pair between two network namespaces.

Usage: libpcap_veth_test.py JARVIS_CAPTURE

Creates namespaces A and B (names carry this process's pid), joined by a veth pair: va in A,
vb in B, IPv6 off so no ND/MLD frames appear. Writes a classic pcap of known frames (UDP to
port 9999, UDP to 8888, TCP SYN to 80; documentation addresses only) and sends it from vb with
tcpreplay. Traffic never leaves the pair; the namespaces are removed afterwards.

Round 1: two concurrent captures on va, one with the filter `udp port 9999`, one without.
  Asserts the exact counts in their summaries, that the filter excluded exactly the UDP 8888 and
  TCP packets, and that the pcapng files hold exactly the generated frames, byte for byte (read
  back by tshark and by a small pcapng parser here).
Round 2: `-c 10` (must exit by itself), `--immediate` (stopped by SIGINT) and `-s 96` (cap_len
  <= 96, frame.len the original length).
Round 3: SIGTERM as soon as "listening on" appears: still a clean exit and a valid file.
Round 4: SIGTERM while every frame sent still waits in the kernel: all of them are written.

Exit 0 pass, 1 fail, 77 skipped (not root, no netns support, no tcpreplay or tshark).
"""

import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time

NS_PREFIX = "jcveth"
N_UDP_9999 = 300
N_UDP_8888 = 150
N_TCP_80 = 50
N_TOTAL = N_UDP_9999 + N_UDP_8888 + N_TCP_80
SNAPLEN = 96
PPS = 5000

MAC_A = bytes.fromhex("02000000000a")  # locally administered, never leave the pair
MAC_B = bytes.fromhex("02000000000b")

failures = []


def log(msg):
    print(msg, flush=True)


def check(ok, what, detail=""):
    if ok:
        log(f"PASS: {what}")
    else:
        log(f"FAIL: {what}" + (f": {detail}" if detail else ""))
        failures.append(what)
    return ok


def skip(reason):
    log(f"skipped: {reason}")
    sys.exit(77)


def run(cmd, timeout=20, check_rc=True):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check_rc and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr.strip()}")
    return p


# ---------------------------------------------------------------- packet generation

def csum16(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ipv4_frame(proto, src, dst, l4, ident):
    total = 20 + len(l4)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, ident & 0xFFFF, 0x4000, 64, proto, 0,
                      bytes(src), bytes(dst))
    hdr = hdr[:10] + struct.pack("!H", csum16(hdr)) + hdr[12:]
    return MAC_A + MAC_B + b"\x08\x00" + hdr + l4


def l4_checksum(proto, src, dst, seg):
    pseudo = bytes(src) + bytes(dst) + struct.pack("!BBH", 0, proto, len(seg))
    return csum16(pseudo + seg)


def udp_frame(src, dst, sport, dport, frame_len, ident):
    payload = bytes((ident + i) & 0xFF for i in range(frame_len - 14 - 20 - 8))
    seg = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    c = l4_checksum(17, src, dst, seg) or 0xFFFF
    seg = seg[:6] + struct.pack("!H", c) + seg[8:]
    return ipv4_frame(17, src, dst, seg, ident)


def tcp_syn_frame(src, dst, sport, dport, frame_len, ident):
    payload = bytes((3 * ident + i) & 0xFF for i in range(frame_len - 14 - 20 - 20))
    seg = struct.pack("!HHIIBBHHH", sport, dport, 1000 + ident, 0, 5 << 4, 0x02, 65535, 0,
                      0) + payload
    c = l4_checksum(6, src, dst, seg)
    seg = seg[:16] + struct.pack("!H", c) + seg[18:]
    return ipv4_frame(6, src, dst, seg, ident)


def generate_frames():
    """Interleaved frames: list of (kind, bytes). Sizes vary over 64..1400."""
    kinds = ["u9999"] * N_UDP_9999 + ["u8888"] * N_UDP_8888 + ["t80"] * N_TCP_80
    # Deterministic interleave: a fixed stride permutation of the kinds list.
    order = [kinds[(i * 7) % N_TOTAL] for i in range(N_TOTAL)]  # 7 is coprime to 500
    assert sorted(order) == sorted(kinds)
    frames = []
    for i, kind in enumerate(order):
        size = 64 + (i * 389) % (1400 - 64 + 1)
        src = [192, 0, 2, 1 + i % 50]
        dst = [198, 51, 100, 1 + i % 20]
        if kind == "u9999":
            f = udp_frame(src, dst, 40000 + i, 9999, size, i)
        elif kind == "u8888":
            f = udp_frame(src, dst, 40000 + i, 8888, size, i)
        else:
            f = tcp_syn_frame(src, dst, 50000 + i, 80, size, i)
        assert len(f) == size, (len(f), size)
        frames.append((kind, f))
    return frames


def write_pcap(path, frames):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, (_, data) in enumerate(frames):
            f.write(struct.pack("<IIII", 1700000000, i * 200, len(data), len(data)))
            f.write(data)


# ---------------------------------------------------------------- pcapng reading

def read_pcapng(path):
    """Returns (idb_snaplens, [(cap_len, orig_len, data)]) from a little-endian pcapng file."""
    with open(path, "rb") as f:
        buf = f.read()
    off = 0
    snaplens = []
    packets = []
    while off + 12 <= len(buf):
        btype, blen = struct.unpack_from("<II", buf, off)
        if blen < 12 or off + blen > len(buf):
            raise ValueError(f"{path}: bad block length {blen} at offset {off}")
        if btype == 0x0A0D0D0A:
            if struct.unpack_from("<I", buf, off + 8)[0] != 0x1A2B3C4D:
                raise ValueError(f"{path}: not little-endian pcapng")
        elif btype == 1:  # IDB
            snaplens.append(struct.unpack_from("<HHI", buf, off + 8)[2])
        elif btype == 6:  # EPB
            _, _, _, cap, orig = struct.unpack_from("<IIIII", buf, off + 8)
            packets.append((cap, orig, buf[off + 28:off + 28 + cap]))
        off += blen
    if off != len(buf):
        raise ValueError(f"{path}: {len(buf) - off} trailing bytes")
    return snaplens, packets


def tshark_rows(path, fields):
    args = ["tshark", "-n", "-r", path, "-T", "fields", "-E", "separator=|"]
    for fl in fields:
        args += ["-e", fl]
    p = run(args, timeout=60, check_rc=False)
    if p.returncode != 0:
        raise RuntimeError(f"tshark could not read {path}: {p.stderr.strip()}")
    return [line.split("|") for line in p.stdout.splitlines()]


# ---------------------------------------------------------------- namespaces

def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_netns():
    p = run(["ip", "netns", "list"], check_rc=False)
    return [line.split()[0] for line in p.stdout.splitlines() if line.strip()]


def remove_stale_namespaces():
    """Namespaces a previous run left behind (its pid is gone) are deleted."""
    for name in list_netns():
        m = re.fullmatch(NS_PREFIX + r"[ab](\d+)", name)
        if m and (int(m.group(1)) == os.getpid() or not pid_alive(int(m.group(1)))):
            log(f"removing stale namespace {name} from an earlier run")
            run(["ip", "netns", "del", name], check_rc=False)


def sysctl_in(ns, key, value):
    run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", f"{key}={value}"])


def setup_namespaces(ns_a, ns_b):
    run(["ip", "netns", "add", ns_a])
    run(["ip", "netns", "add", ns_b])
    ipv6 = os.path.isdir("/proc/sys/net/ipv6")
    for ns in (ns_a, ns_b):
        if ipv6:
            sysctl_in(ns, "net.ipv6.conf.all.disable_ipv6", 1)
            sysctl_in(ns, "net.ipv6.conf.default.disable_ipv6", 1)
        run(["ip", "-n", ns, "link", "set", "lo", "up"])
    # Created directly inside the namespaces: the names never exist in the host namespace.
    run(["ip", "link", "add", "va", "netns", ns_a, "type", "veth", "peer", "name", "vb",
         "netns", ns_b])
    for ns, dev in ((ns_a, "va"), (ns_b, "vb")):
        if ipv6:
            sysctl_in(ns, f"net.ipv6.conf.{dev}.disable_ipv6", 1)
        run(["ip", "-n", ns, "link", "set", dev, "up"])
    # Both ends report carrier once the pair is up; wait for it (bounded).
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        out = run(["ip", "-n", ns_a, "-br", "link", "show", "va"]).stdout
        if "LOWER_UP" in out:
            return
        time.sleep(0.05)
    raise RuntimeError(f"va in {ns_a} did not come up: {out.strip()}")


# ---------------------------------------------------------------- captures

class Capture:
    """One jarvis-capture process in a namespace (`capture -i va`, or `flows -i va` with
    command="flows"); stderr is read by a thread."""

    def __init__(self, name, ns, jc, args, command="capture"):
        self.name = name
        self.cmd = ["ip", "netns", "exec", ns, jc, command, "-i", "va"] + BACKEND_ARGS + args
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.listening = threading.Event()
        self.stdout = ""
        self._err = threading.Thread(target=self._read_err, daemon=True)
        self._out = threading.Thread(target=self._read_out, daemon=True)
        self._err.start()
        self._out.start()

    def _read_err(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("listening on"):
                self.listening.set()
        self.listening.set()  # EOF: wake a waiter, who sees that the process ended

    def _read_out(self):
        self.stdout = self.proc.stdout.read()

    def wait_listening(self, timeout=10):
        self.listening.wait(timeout)
        if not any(l.startswith("listening on") for l in self.lines) or self.proc.poll():
            raise RuntimeError(f"capture '{self.name}' did not start: rc={self.proc.poll()} "
                               f"stderr={self.lines}")

    def finish(self, timeout=10):
        """Waits for exit; returns the exit code or None on a hang (then kills it)."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = None
        self._err.join(5)
        self._out.join(5)
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def summary(self):
        out = {}
        for line in self.lines:
            m = re.fullmatch(r"(\d+) packets? (captured|received by filter|dropped by kernel)",
                             line)
            if m:
                out[m.group(2)] = int(m.group(1))
        return out

    def errors(self):
        return [l for l in self.lines if l.startswith("jarvis-capture:")]


def send(ns_b, pcap_path, pps=PPS):
    p = run(["ip", "netns", "exec", ns_b, "tcpreplay", "-i", "vb", "--pps", str(pps),
             pcap_path], timeout=60, check_rc=False)
    text = p.stdout + p.stderr
    ok = re.search(r"Successful packets:\s+(\d+)", text)
    failed = re.search(r"Failed packets:\s+(\d+)", text)
    sent = int(ok.group(1)) if ok else -1
    if p.returncode != 0 or sent != N_TOTAL or (failed and int(failed.group(1)) != 0):
        raise RuntimeError(f"tcpreplay did not send {N_TOTAL} packets (rc={p.returncode}): "
                           f"{text.strip()}")
    return sent


def check_exit(cap, rc, what):
    check(rc is not None, f"{cap.name}: {what} (no hang)", "still running after 10 s, killed")
    if rc is None:
        return False
    return check(rc == 0, f"{cap.name}: exit code 0 after {what}",
                 f"exit code {rc}, stderr: {cap.lines}")


def check_file_frames(cap, path, expected, snaplen=None):
    """The file holds exactly `expected` frames, in order, byte for byte (cut to snaplen)."""
    try:
        snaplens, pkts = read_pcapng(path)
    except (OSError, ValueError) as e:
        check(False, f"{cap.name}: {path} is a readable pcapng", str(e))
        return
    check(len(pkts) == len(expected), f"{cap.name}: pcapng holds {len(expected)} packets",
          f"found {len(pkts)}")
    if snaplen is not None:
        check(snaplens == [snaplen], f"{cap.name}: interface block snaplen {snaplen}",
              f"found {snaplens}")
    if pkts and expected:
        want = expected[0][:snaplen] if snaplen else expected[0]
        check(pkts[0][2] == want, f"{cap.name}: first packet bytes equal the first sent frame",
              f"got {pkts[0][2][:32].hex()}..., want {want[:32].hex()}...")
    bad = None
    for i, ((cap_len, orig, data), frame) in enumerate(zip(pkts, expected)):
        want = frame[:snaplen] if snaplen else frame
        if orig != len(frame) or cap_len != len(want) or data != want:
            bad = (f"packet {i + 1}: cap_len {cap_len} orig_len {orig}, expected "
                   f"{len(want)}/{len(frame)}, bytes {'equal' if data == want else 'differ'}")
            break
    check(bad is None and len(pkts) == len(expected),
          f"{cap.name}: every packet equals the frame sent, in order", bad or "count differs")


def flow_tuples(text):
    """The flows of `flows --format json` output, sorted: (src, dst, sport, dport, protocol,
    packets, bytes)."""
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            f = json.loads(line)
            out.append((f["src_ip"], f["dst_ip"], f["src_port"], f["dst_port"], f["protocol"],
                        f["packets"], f["bytes"]))
    return sorted(out)


def check_live_flows(jc, ns_a, ns_b, gen, args=(), listen_timeout=10, when_listening=None):
    """`flows -i va` (BACKEND_ARGS + args) over the frames of `gen` sent from vb gives exactly
    the flows `flows -r gen` gives. The frames go out once flows says "listening on" (and
    `when_listening` has run); SIGTERM a second after the last one ends the capture."""
    want = flow_tuples(run([jc, "flows", "-r", gen, "--format", "json"]).stdout)
    cap = Capture("flows", ns_a, jc, list(args) + ["--format", "json", "--no-progress"],
                  command="flows")
    try:
        cap.wait_listening(timeout=listen_timeout)
        if when_listening:
            when_listening()
        send(ns_b, gen)
        time.sleep(1.0)
        cap.proc.send_signal(signal.SIGTERM)
        rc = cap.finish(timeout=20)
    finally:
        cap.kill()
    check(rc == 0, "flows: exit code 0 after SIGTERM", f"rc {rc}: {cap.lines}")
    got = flow_tuples(cap.stdout)
    check(len(want) == N_TOTAL, f"flows -r: {N_TOTAL} flows in the file", f"{len(want)}")
    diff = [t for t in want if t not in got][:3] + [t for t in got if t not in want][:3]
    check(got == want, f"flows: the {len(want)} live flows equal the file's (endpoints, "
          "packets, bytes)", f"{len(got)} live flows; first differences {diff}")


# ---------------------------------------------------------------- rounds

def in_turns(specs):
    """The groups of captures to run together: all at once, or one at a time for a backend that
    owns the interface while it captures (xdp: AF_XDP hands each packet to one socket)."""
    return [[s] for s in specs] if BACKEND_ARGS[1:] == ["xdp"] else [specs]


def round_filter(jc, ns_a, ns_b, work, frames, gen):
    log("-- round 1: filtered and unfiltered capture side by side")
    f_path = os.path.join(work, "filtered.pcapng")
    a_path = os.path.join(work, "all.pcapng")
    specs = [("filtered", ["-q", "-w", f_path, "udp", "port", "9999"]),
             ("unfiltered", ["-q", "-B", "8192", "-w", a_path])]
    caps, rcs, windows = [], [], {}
    for group in in_turns(specs):
        group_caps = [Capture(name, ns_a, jc, args) for name, args in group]
        caps += group_caps
        try:
            for c in group_caps:
                c.wait_listening()
            time.sleep(0.3)
            t_send = time.time()
            send(ns_b, gen)
            time.sleep(1.0)
            t_end = time.time()
            for c in group_caps:
                c.proc.send_signal(signal.SIGTERM)
                windows[c.name] = (t_send, t_end)
            rcs += [c.finish() for c in group_caps]
        finally:
            for c in group_caps:
                c.kill()
    t_send, t_end = windows["unfiltered"]
    filt, unf = caps
    check(unf.lines and unf.lines[0] ==
          "listening on va, link-type EN10MB (Ethernet), snapshot length 262144 bytes",
          "listening line names va, EN10MB and the default snapshot length",
          f"got {unf.lines[:1]}")
    for c, rc in zip(caps, rcs):
        if check_exit(c, rc, "SIGTERM"):
            check(not c.errors(), f"{c.name}: no error line", str(c.errors()))
            check(c.stdout == "", f"{c.name}: -q prints nothing on stdout",
                  repr(c.stdout[:200]))
    fs, us = filt.summary(), unf.summary()
    log(f"   filtered summary {fs}; unfiltered summary {us}")
    check(fs.get("captured") == N_UDP_9999, f"filtered: {N_UDP_9999} packets captured",
          f"summary {fs}")
    check(fs.get("received by filter") == N_UDP_9999,
          f"filtered: {N_UDP_9999} packets received by filter", f"summary {fs}")
    check(fs.get("dropped by kernel") == 0, "filtered: 0 packets dropped by kernel",
          f"summary {fs}")
    check(us.get("captured") == N_TOTAL, f"unfiltered: {N_TOTAL} packets captured",
          f"summary {us} (extra packets mean stray traffic on the veth)")
    check(us.get("received by filter") == N_TOTAL,
          f"unfiltered: {N_TOTAL} packets received by filter", f"summary {us}")
    check(us.get("dropped by kernel") == 0, "unfiltered: 0 packets dropped by kernel",
          f"summary {us}")
    if "captured" in us and "captured" in fs:
        excluded = us["captured"] - fs["captured"]
        check(excluded == N_UDP_8888 + N_TCP_80,
              f"the filter excluded exactly {N_UDP_8888 + N_TCP_80} packets "
              f"(UDP 8888 and TCP 80)", f"excluded {excluded}")

    # tshark's view of the files.
    try:
        rows = tshark_rows(f_path, ["udp.dstport", "frame.time_epoch"])
        check(len(rows) == N_UDP_9999, f"tshark: filtered.pcapng holds {N_UDP_9999} packets",
              f"{len(rows)}")
        check(all(r[0] == "9999" for r in rows),
              "tshark: every packet in filtered.pcapng has udp.dstport 9999",
              str(sorted({r[0] for r in rows})))
        rows = tshark_rows(a_path, ["udp.dstport", "tcp.dstport", "frame.time_epoch"])
        check(len(rows) == N_TOTAL, f"tshark: all.pcapng holds {N_TOTAL} packets",
              f"{len(rows)}")
        counts = {"9999": 0, "8888": 0, "tcp80": 0}
        for u, t, _ in rows:
            key = u if u in counts else ("tcp80" if t == "80" else None)
            if key:
                counts[key] += 1
        check(counts == {"9999": N_UDP_9999, "8888": N_UDP_8888, "tcp80": N_TCP_80},
              "tshark: all.pcapng has the generated mix of UDP 9999, UDP 8888, TCP 80",
              str(counts))
        times = [float(r[2]) for r in rows]
        check(times == sorted(times) and times and t_send - 1 <= times[0]
              and times[-1] <= t_end + 1,
              "timestamps are in order and within the sending window (ns precision intact)",
              f"first {times[:1]} last {times[-1:]} window {t_send:.3f}..{t_end:.3f}")
    except RuntimeError as e:
        check(False, "tshark reads the captured files", str(e))

    check_file_frames(filt, f_path, [f for k, f in frames if k == "u9999"])
    check_file_frames(unf, a_path, [f for _, f in frames])


def round_options(jc, ns_a, ns_b, work, frames, gen):
    log("-- round 2: -c 10, --immediate, -s 96")
    c_path = os.path.join(work, "count.pcapng")
    i_path = os.path.join(work, "immediate.pcapng")
    s_path = os.path.join(work, "snap.pcapng")
    specs = [("count", ["-c", "10", "-q", "-w", c_path]),
             # Immediate mode makes libpcap use a TPACKET_V2 ring, one slot per packet, each
             # sized for the largest packet the interface may hand up: 64 KiB with the veth's
             # offloads, so the default 2 MiB holds 31 packets, 6 ms of this test's 5000 pps,
             # and a loaded CI machine dropped 5 of 500. 64 MiB holds 1022: all 500 fit.
             ("immediate", ["--immediate", "-B", "65536", "-q", "-w", i_path]),
             ("snaplen", ["-s", str(SNAPLEN), "-q", "-w", s_path])]
    caps, rcs = {}, {}
    for group in in_turns(specs):
        group_caps = {name: Capture(name, ns_a, jc, args) for name, args in group}
        caps.update(group_caps)
        count, imm, snap = (group_caps.get(n) for n in ("count", "immediate", "snaplen"))
        try:
            for c in group_caps.values():
                c.wait_listening()
            time.sleep(0.3)
            if count:
                check(count.proc.poll() is None, "count: still running before traffic",
                      f"exited early with {count.proc.poll()}: {count.lines}")
            send(ns_b, gen)
            # -c 10 must end by itself: no signal is sent to it.
            if count:
                rcs["count"] = count.finish(timeout=5)
            if imm or snap:
                time.sleep(1.0)
            if imm:
                imm.proc.send_signal(signal.SIGINT)
            if snap:
                snap.proc.send_signal(signal.SIGTERM)
            if imm:
                rcs["immediate"] = imm.finish()
            if snap:
                rcs["snaplen"] = snap.finish()
        finally:
            for c in group_caps.values():
                c.kill()
    count, imm, snap = caps["count"], caps["immediate"], caps["snaplen"]
    rc_count, rc_imm, rc_snap = rcs.get("count"), rcs.get("immediate"), rcs.get("snaplen")

    if check_exit(count, rc_count, "10 packets (exits without a signal)"):
        s = count.summary()
        check(s.get("captured") == 10, "count: summary says 10 packets captured", str(s))
        check(s.get("received by filter", 0) >= 10,
              "count: received by filter is at least 10", str(s))
        check_file_frames(count, c_path, [f for _, f in frames[:10]])
        try:
            rows = tshark_rows(c_path, ["frame.number"])
            check(len(rows) == 10, "tshark: count.pcapng holds 10 packets", f"{len(rows)}")
        except RuntimeError as e:
            check(False, "tshark reads count.pcapng", str(e))

    if check_exit(imm, rc_imm, "SIGINT"):
        s = imm.summary()
        check(s.get("captured") == N_TOTAL and s.get("dropped by kernel") == 0,
              f"immediate: {N_TOTAL} packets captured, 0 dropped", str(s))
        check_file_frames(imm, i_path, [f for _, f in frames])

    if check_exit(snap, rc_snap, "SIGTERM"):
        check(snap.lines[:1] == [f"listening on va, link-type EN10MB (Ethernet), snapshot "
                                 f"length {SNAPLEN} bytes"],
              f"snaplen: listening line says snapshot length {SNAPLEN}", str(snap.lines[:1]))
        s = snap.summary()
        check(s.get("captured") == N_TOTAL, f"snaplen: {N_TOTAL} packets captured", str(s))
        check_file_frames(snap, s_path, [f for _, f in frames], snaplen=SNAPLEN)
        try:
            rows = tshark_rows(s_path, ["frame.len", "frame.cap_len"])
            want = [len(f) for _, f in frames]
            lens = [int(r[0]) for r in rows]
            caps_ = [int(r[1]) for r in rows]
            check(len(rows) == N_TOTAL and all(c <= SNAPLEN for c in caps_),
                  f"tshark: all {N_TOTAL} packets have cap_len <= {SNAPLEN}",
                  f"{len(rows)} rows, max cap_len {max(caps_, default=None)}")
            diff = next(((i, a, b) for i, (a, b) in enumerate(zip(lens, want)) if a != b), None)
            check(lens == want, "tshark: frame.len is the original length of every frame",
                  f"first differing (index, got, want): {diff}, {len(lens)} rows")
            check(caps_ == [min(n, SNAPLEN) for n in want],
                  f"tshark: cap_len is min(frame.len, {SNAPLEN})", "")
        except RuntimeError as e:
            check(False, "tshark reads snap.pcapng", str(e))


def round_early_signal(jc, ns_a, work, tries=20):
    """SIGTERM the moment "listening on" is read. stderr is read here, without a thread, so the
    signal follows the line within microseconds; a capture that installs its handlers only
    after printing the line dies from the signal in most tries."""
    log(f"-- round 3: SIGTERM right after 'listening on' ({tries} tries)")
    path = os.path.join(work, "early.pcapng")
    bad = None
    for i in range(tries):
        cmd = ["ip", "netns", "exec", ns_a, jc, "capture", "-i", "va", "-q", "-w", path] + BACKEND_ARGS
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
        try:
            first = p.stderr.readline()
            p.send_signal(signal.SIGTERM)
            try:
                rest = p.stderr.read()
                rc = p.wait(10)
            except subprocess.TimeoutExpired:
                rc, rest = None, ""
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stderr.close()
        lines = (first + rest).splitlines()
        if not first.startswith("listening on"):
            bad = f"try {i + 1}: no 'listening on' line: {lines}"
        elif rc != 0:
            bad = (f"try {i + 1}: exit code {rc}"
                   + (" (killed by the signal)" if rc is not None and rc < 0 else "")
                   + f", stderr {lines}")
        elif "0 packets captured" not in lines:
            bad = f"try {i + 1}: no '0 packets captured' in {lines}"
        else:
            try:  # tshark (slow to start) on the last try only
                snaplens, pkts = read_pcapng(path)
                if snaplens != [262144] or pkts:
                    bad = f"try {i + 1}: file has interfaces {snaplens}, {len(pkts)} packets"
                elif i == tries - 1 and tshark_rows(path, ["frame.number"]) != []:
                    bad = f"try {i + 1}: tshark finds packets in the file"
            except (OSError, ValueError, RuntimeError) as e:
                bad = f"try {i + 1}: {e}"
        if bad:
            break
    check(bad is None, f"early-stop: {tries} captures stopped by SIGTERM right after "
          "'listening on' exit 0 with a valid empty pcapng", bad or "")


# ---------------------------------------------------------------- main

# Extra capture flags naming the backend under test (`--backend af_packet`); empty for the
# default, libpcap.
BACKEND_ARGS = []


def round_stop_with_backlog(jc, ns_a, ns_b, work, frames, gen):
    """A stop that finds packets waiting in the kernel still writes them: the capture is
    paused (SIGSTOP) while every frame is sent, then SIGTERM is queued and it resumes, so the
    stop is seen with the whole send unread (a batch at most was read before it)."""
    log("-- round 4: SIGTERM with every frame still waiting in the kernel")
    path = os.path.join(work, "backlog.pcapng")
    # 64 MiB: TPACKET_V3 hands a block over 10 ms after its first packet, so at this send rate
    # each 1 MiB block holds a few dozen packets, and 8 MiB would fill before the send ends.
    c = Capture("backlog", ns_a, jc, ["-q", "-B", "65536", "-w", path])
    try:
        c.wait_listening()
        time.sleep(0.3)
        c.proc.send_signal(signal.SIGSTOP)
        send(ns_b, gen)
        time.sleep(0.3)
        c.proc.send_signal(signal.SIGTERM)
        c.proc.send_signal(signal.SIGCONT)
        rc = c.finish()
    finally:
        c.kill()
    if check_exit(c, rc, "SIGTERM after SIGSTOP"):
        s = c.summary()
        log(f"   summary {s}")
        check(s.get("captured") == N_TOTAL and s.get("dropped by kernel") == 0,
              f"backlog: all {N_TOTAL} waiting packets captured at the stop", f"summary {s}")
        check_file_frames(c, path, [f for _, f in frames])


def main():
    global BACKEND_ARGS
    if len(sys.argv) not in (2, 4) or (len(sys.argv) == 4 and sys.argv[2] != "--backend"):
        print(f"usage: {sys.argv[0]} JARVIS_CAPTURE [--backend NAME]", file=sys.stderr)
        return 2
    BACKEND_ARGS = sys.argv[2:]
    jc = os.path.abspath(sys.argv[1])
    if not os.access(jc, os.X_OK):
        log(f"FAIL: {jc} is not an executable")
        return 1
    if os.geteuid() != 0:
        skip("needs root to create network namespaces")
    for tool in ("ip", "tcpreplay", "tshark"):
        if shutil.which(tool) is None:
            skip(f"{tool} is not installed")
    if run(["ip", "netns", "list"], check_rc=False).returncode != 0:
        skip("`ip netns` does not work here")
    if BACKEND_ARGS:
        # A backend this host or build cannot run (no library, no kernel support) is a skip.
        listed = run([jc, "backends"], check_rc=False).stdout.splitlines()
        row = next((l for l in listed if l.split()[:1] == [BACKEND_ARGS[1]]), "")
        if row.split()[1:2] == ["unavailable"]:
            skip(f"backend {BACKEND_ARGS[1]} is unavailable: {row.split(None, 2)[2]}")

    remove_stale_namespaces()
    pid = os.getpid()
    ns_a, ns_b = f"{NS_PREFIX}a{pid}", f"{NS_PREFIX}b{pid}"
    work = tempfile.mkdtemp(prefix="jarvis-veth-")
    t0 = time.monotonic()
    skip_reason = None
    try:
        try:
            setup_namespaces(ns_a, ns_b)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            skip_reason = f"cannot create namespaces and a veth pair: {e}"
        if skip_reason is None:
            log(f"namespaces {ns_a} (va) and {ns_b} (vb) ready")
            frames = generate_frames()
            gen = os.path.join(work, "gen.pcap")
            write_pcap(gen, frames)
            round_filter(jc, ns_a, ns_b, work, frames, gen)
            round_options(jc, ns_a, ns_b, work, frames, gen)
            round_early_signal(jc, ns_a, work)
            round_stop_with_backlog(jc, ns_a, ns_b, work, frames, gen)
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        check(False, "test run", str(e))
    finally:
        for ns in (ns_a, ns_b):
            if ns in list_netns():
                run(["ip", "netns", "del", ns], check_rc=False)
        left = [ns for ns in (ns_a, ns_b) if ns in list_netns()]
        check(not left, "namespaces removed", f"still present: {left}")
    log(f"elapsed {time.monotonic() - t0:.1f} s")
    if failures:
        log(f"FAILED: {len(failures)} check(s); files kept in {work}")
        return 1
    shutil.rmtree(work, ignore_errors=True)
    if skip_reason is not None:
        skip(skip_reason)
    log("PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
