#!/usr/bin/python3
"""The integration guide's workflows against the real daemon, capturing on a veth pair.

Usage: workflows_test.py JARVIS_CAPTURE [--caps]

Needs root. Creates network namespaces A and B (names carry this process's pid) joined by a
veth pair, va in A and vb in B, with IPv6 off before the links go up, so nothing but the test's
frames crosses the pair. Frames use documentation addresses and are sent by tcpreplay from vb
at a low rate; traffic never leaves the pair, and the namespaces are removed afterwards.
The daemon listens on 127.0.0.1 inside A and this script's client part runs inside A too
(re-executed with `ip netns exec A`).

Default mode:
  Workflow 1 (start libpcap on va, traffic, metrics, stop graceful): exact packet and byte
    counts, no drops, running true then false; packet rate and throughput > 0 while a slower
    send goes on, 0 once it stopped (they cover the last second).
  Workflow 2 (start with filter "tcp", enable flow metering, traffic, GET flows?limit=10&
    sort_by=bytes): exactly the three TCP conversations sent (the filter drops the UDP), with
    the initiator as src, per-direction packets and IP bytes, state, flags, sorted by bytes,
    limit and the other filters honoured.
  The veth deleted during a capture: status goes to state "error" with a reason, running
    false, and the API keeps serving. SIGTERM: exit 0.
--caps: the binary copied to a temp folder with `setcap cap_net_raw,cap_net_admin+ep`, run as
  user nobody (setpriv) inside A, captures on va over HTTP and counts the packets; a copy
  without the capabilities is refused with 400 naming CAP_NET_RAW. Skipped (77) when setcap is
  missing or the filesystem refuses file capabilities.

Exit 0 pass, 1 fail, 77 skipped.
"""

import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from apitest import Daemon, check, finish, is_detail_string, log, skip  # noqa: E402

NS_PREFIX = "jcapi"
MAC_A = bytes.fromhex("02000000000a")  # locally administered, never leave the pair
MAC_B = bytes.fromhex("02000000000b")
FAST_PPS = 200
SLOW_PPS = 40


def run(cmd, timeout=20, check_rc=True):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check_rc and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr.strip()}")
    return p


# ---------------------------------------------------------------- frames

def csum16(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ip_addr(text):
    return bytes(int(x) for x in text.split("."))


def ipv4(proto, src, dst, l4, ident):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), ident & 0xFFFF, 0x4000, 64, proto,
                      0, ip_addr(src), ip_addr(dst))
    hdr = hdr[:10] + struct.pack("!H", csum16(hdr)) + hdr[12:]
    return hdr + l4


def l4_checksum(proto, src, dst, seg):
    return csum16(ip_addr(src) + ip_addr(dst) + struct.pack("!BBH", 0, proto, len(seg)) + seg)


def tcp_packet(src, dst, sport, dport, seq, ack, flags, payload, ident):
    seg = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4,
                      flags, 65535, 0, 0) + payload
    seg = seg[:16] + struct.pack("!H", l4_checksum(6, src, dst, seg)) + seg[18:]
    return ipv4(6, src, dst, seg, ident)


def udp_packet(src, dst, sport, dport, payload, ident):
    seg = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    c = l4_checksum(17, src, dst, seg) or 0xFFFF
    return ipv4(17, src, dst, seg[:6] + struct.pack("!H", c) + seg[8:], ident)


FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


class Conversation:
    """A TCP conversation, packet by packet, with what the flow meter must report."""

    def __init__(self, client, server, cport, sport, state):
        self.client, self.server, self.cport, self.sport = client, server, cport, sport
        self.state = state
        self.packets = []  # IP packets in order
        self.pkts = [0, 0]  # client->server, server->client
        self.ip_bytes = [0, 0]
        self.flags = [0, 0]
        self.seq = [1000, 50000]
        self.ident = 0

    def add(self, side, flags, payload_len=0):
        src, dst = (self.client, self.server) if side == 0 else (self.server, self.client)
        sp, dp = (self.cport, self.sport) if side == 0 else (self.sport, self.cport)
        payload = bytes((self.ident * 7 + i) & 0xFF for i in range(payload_len))
        ack = self.seq[1 - side] if flags & ACK else 0
        p = tcp_packet(src, dst, sp, dp, self.seq[side], ack, flags, payload, self.ident)
        self.seq[side] += payload_len + (1 if flags & (SYN | FIN) else 0)
        self.ident += 1
        self.packets.append(p)
        self.pkts[side] += 1
        self.ip_bytes[side] += len(p)
        self.flags[side] |= flags
        return self

    def handshake(self):
        return self.add(0, SYN).add(1, SYN | ACK).add(0, ACK)

    def flag_names(self):
        f = self.flags[0] | self.flags[1]
        return {n for bit, n in [(SYN, "SYN"), (ACK, "ACK"), (FIN, "FIN"), (RST, "RST"),
                                 (PSH, "PSH")] if f & bit}


def conversations():
    # A: few large packets (most bytes); both sides FIN, no last ACK: CLOSED, stays listed.
    a = Conversation("192.0.2.10", "198.51.100.20", 40001, 80, "CLOSED").handshake()
    for _ in range(2):
        a.add(0, PSH | ACK, 300)
        for _ in range(3):
            a.add(1, PSH | ACK, 1400)
        a.add(0, ACK)
    a.add(0, ACK).add(0, FIN | ACK).add(1, FIN | ACK)
    # B: the fewest bytes and packets; only the client closes: CLOSING.
    b = Conversation("192.0.2.11", "198.51.100.21", 40002, 443, "CLOSING").handshake()
    for _ in range(4):
        b.add(0, PSH | ACK, 500)
    b.add(1, PSH | ACK, 200).add(1, ACK).add(0, FIN | ACK).add(1, ACK)
    # C: many small packets (most packets, middle bytes); never closed: ACTIVE.
    c = Conversation("192.0.2.12", "198.51.100.22", 40003, 22, "ACTIVE").handshake()
    for _ in range(30):
        c.add(0, PSH | ACK, 48).add(1, PSH | ACK, 64)
    return [a, b, c]


def udp_packets():
    out = []
    for i in range(6):
        out.append(udp_packet("192.0.2.30", "198.51.100.40", 5353 + i % 2, 53, b"q" * (30 + i), i))
        out.append(udp_packet("198.51.100.40", "192.0.2.30", 53, 5353 + i % 2, b"r" * (90 + i), i))
    return out


def interleave(lists):
    """Round robin over the lists, each kept in its own order."""
    out, idx = [], [0] * len(lists)
    while any(i < len(l) for i, l in zip(idx, lists)):
        for k, l in enumerate(lists):
            if idx[k] < len(l):
                out.append(l[idx[k]])
                idx[k] += 1
    return out


def frame(ip_packet):
    return MAC_A + MAC_B + b"\x08\x00" + ip_packet


def write_pcap(path, frames):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, data in enumerate(frames):
            f.write(struct.pack("<IIII", 1700000000, i * 1000, len(data), len(data)))
            f.write(data)
    os.chmod(path, 0o644)


def traffic():
    convs = conversations()
    tcp = interleave([c.packets for c in convs])
    mixed = interleave([tcp, udp_packets()])
    return convs, [frame(p) for p in tcp], [frame(p) for p in mixed]


# ---------------------------------------------------------------- namespaces (outer)

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


def kill_ns_processes(ns):
    """Ends the processes this test left in its namespace `ns` (daemon, tcpreplay)."""
    p = run(["ip", "netns", "pids", ns], check_rc=False)
    for pid in p.stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def remove_stale_namespaces():
    for name in list_netns():
        m = re.fullmatch(NS_PREFIX + r"[ab](\d+)", name)
        if m and (int(m.group(1)) == os.getpid() or not pid_alive(int(m.group(1)))):
            log(f"removing stale namespace {name} from an earlier run")
            kill_ns_processes(name)
            run(["ip", "netns", "del", name], check_rc=False)


def setup_namespaces(ns_a, ns_b):
    run(["ip", "netns", "add", ns_a])
    run(["ip", "netns", "add", ns_b])
    ipv6 = os.path.isdir("/proc/sys/net/ipv6")
    for ns in (ns_a, ns_b):
        if ipv6:
            for key in ("all", "default"):
                run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w",
                     f"net.ipv6.conf.{key}.disable_ipv6=1"])
        run(["ip", "-n", ns, "link", "set", "lo", "up"])
    run(["ip", "link", "add", "va", "netns", ns_a, "type", "veth", "peer", "name", "vb",
         "netns", ns_b])
    for ns, dev in ((ns_a, "va"), (ns_b, "vb")):
        if ipv6:
            run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w",
                 f"net.ipv6.conf.{dev}.disable_ipv6=1"])
        run(["ip", "-n", ns, "link", "set", dev, "up"])
    deadline = time.monotonic() + 5
    out = ""
    while time.monotonic() < deadline:
        out = run(["ip", "-n", ns_a, "-br", "link", "show", "va"]).stdout
        if "LOWER_UP" in out:
            return
        time.sleep(0.05)
    raise RuntimeError(f"va in {ns_a} did not come up: {out.strip()}")


def make_cap_copies(jc, work):
    """Copies of the binary for --caps: one with file capabilities, one without. Skips (77) when
    setcap is missing or refused."""
    for tool in ("setcap", "getcap", "setpriv"):
        if shutil.which(tool) is None:
            skip(f"{tool} is not installed")
    os.chmod(work, 0o755)
    capped = os.path.join(work, "jarvis-capture-cap")
    plain = os.path.join(work, "jarvis-capture-plain")
    for path in (capped, plain):
        shutil.copyfile(jc, path)
        os.chmod(path, 0o755)
    # The daemon's HTTP server is a plugin found beside the binary, as in an installed tree.
    plugin = os.path.join(work, "jarvis-capture-http.so")
    shutil.copyfile(os.path.join(os.path.dirname(jc), "jarvis-capture-http.so"), plugin)
    os.chmod(plugin, 0o755)
    p = run(["setcap", "cap_net_raw,cap_net_admin+ep", capped], check_rc=False)
    if p.returncode != 0:
        skip(f"setcap refused on {work}: {p.stderr.strip()}")
    got = run(["getcap", capped], check_rc=False).stdout
    if "cap_net_raw" not in got:
        skip(f"the filesystem of {work} does not keep file capabilities (getcap: {got!r})")
    return capped, plain


def outer(jc, mode):
    if os.geteuid() != 0:
        skip("needs root to create network namespaces")
    for tool in ("ip", "tcpreplay"):
        if shutil.which(tool) is None:
            skip(f"{tool} is not installed")
    if run(["ip", "netns", "list"], check_rc=False).returncode != 0:
        skip("`ip netns` does not work here")
    remove_stale_namespaces()
    pid = os.getpid()
    ns_a, ns_b = f"{NS_PREFIX}a{pid}", f"{NS_PREFIX}b{pid}"
    work = tempfile.mkdtemp(prefix="jarvis-api-workflows-")
    extra = []
    rc = 1
    try:
        if mode == "caps":
            extra = list(make_cap_copies(jc, work))
        convs, tcp_frames, mixed_frames = traffic()
        write_pcap(os.path.join(work, "tcp.pcap"), tcp_frames)
        write_pcap(os.path.join(work, "mixed.pcap"), mixed_frames)
        try:
            setup_namespaces(ns_a, ns_b)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            skip(f"cannot create namespaces and a veth pair: {e}")
        log(f"namespaces {ns_a} (va) and {ns_b} (vb) ready")
        cmd = ["ip", "netns", "exec", ns_a, sys.executable, os.path.abspath(__file__),
               "--inner", mode, jc, ns_a, ns_b, work] + extra
        inner_proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
        try:
            rc = inner_proc.wait(timeout=150)
        except subprocess.TimeoutExpired:
            inner_proc.kill()
            inner_proc.wait()
            log("FAIL: the test did not finish within 150 s")
            rc = 1
    finally:
        for ns in (ns_a, ns_b):
            if ns in list_netns():
                kill_ns_processes(ns)
                run(["ip", "netns", "del", ns], check_rc=False)
        left = [ns for ns in (ns_a, ns_b) if ns in list_netns()]
        check(not left, "namespaces removed", f"still present: {left}")
        shutil.rmtree(work, ignore_errors=True)
    if left and rc == 0:
        rc = 1
    return rc


# ---------------------------------------------------------------- inner helpers (in A)

def send(ns_b, pcap, pps, count, background=False):
    cmd = ["ip", "netns", "exec", ns_b, "tcpreplay", "-i", "vb", "--pps", str(pps), pcap]
    if background:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    p = run(cmd, timeout=60, check_rc=False)
    sent_check(p.returncode, p.stdout + p.stderr, count)


def sent_check(rc, text, count):
    ok = re.search(r"Successful packets:\s+(\d+)", text)
    failed = re.search(r"Failed packets:\s+(\d+)", text)
    if rc != 0 or not ok or int(ok.group(1)) != count or (failed and int(failed.group(1))):
        raise RuntimeError(f"tcpreplay did not send {count} packets (rc={rc}): {text.strip()}")


def metrics(d):
    r = d.api("GET", "/metrics")
    if r.status != 200:
        raise RuntimeError(f"GET metrics: {r.status} {r.body[:200]!r}")
    return r.json()


def wait_packets(d, want, timeout=6):
    """Polls metrics until packets_captured reaches `want`; then waits a little for extras."""
    deadline = time.monotonic() + timeout
    m = metrics(d)
    while m["packets_captured"] < want and time.monotonic() < deadline:
        time.sleep(0.05)
        m = metrics(d)
    time.sleep(0.3)
    return metrics(d)


def status(d):
    return d.api("GET", "/status").json()


# ---------------------------------------------------------------- workflow 1

def workflow1(d, ns_b, work, mixed):
    log("-- workflow 1: start libpcap on va, traffic, metrics, stop graceful")
    n, nbytes = len(mixed), sum(len(f) for f in mixed)
    pcap = os.path.join(work, "mixed.pcap")
    st = status(d)
    check(st["running"] is False and st["state"] == "idle", "status before start: not running",
          str(st)[:200])
    r = d.api("POST", "/start", {"interface": "va", "backend": "libpcap", "buffer_size_mb": 64,
                                 "timestamp_source": "kernel"})
    j = r.json_or_none() or {}
    if not check(r.status == 200 and j.get("status") == "started" and j.get("interface") == "va"
                 and j.get("backend") == "libpcap" and j.get("buffer_size_mb") == 64 and
                 j.get("timestamp_source") == "kernel" and j.get("session_id"),
                 "start: 200 started, echoing interface, backend, buffer, timestamp source, "
                 "with a session_id", f"{r.status} {r.body[:300]!r}"):
        return False
    st = status(d)
    check(st["running"] is True and st["state"] == "running" and st["interface"] == "va" and
          st["backend"] == "libpcap" and st["buffer_size_mb"] == 64 and
          st["session_id"] == j["session_id"] and st["flow_metering_enabled"] is False,
          "status while capturing: running true, the session's settings", str(st)[:300])

    time.sleep(0.3)
    send(ns_b, pcap, FAST_PPS, n)
    m = wait_packets(d, n)
    check(m["packets_captured"] == n, f"metrics: packets_captured {n}, exactly what was sent",
          f"{m['packets_captured']}")
    check(m["bytes_captured"] == nbytes, f"metrics: bytes_captured {nbytes}, the frames' lengths",
          f"{m['bytes_captured']}")
    check(m["packets_dropped"] == 0 and m["drop_rate"] == 0, "metrics: nothing dropped",
          f"dropped {m['packets_dropped']} rate {m['drop_rate']}")
    check(m["buffer_usage_pct"] is None and m.get("buffer_usage_note"),
          "metrics: buffer_usage_pct null for libpcap, with a note", str(m.get("buffer_usage_pct")))
    check(m["active_flows"] == 0 and m["total_flows"] == 0, "metrics: no flows without metering",
          f"{m['active_flows']} {m['total_flows']}")
    check(m["capture_duration_sec"] > 0 and abs(m["timestamp"] - time.time()) < 5,
          "metrics: capture_duration_sec > 0, timestamp is now",
          f"{m['capture_duration_sec']} {m['timestamp']}")

    log(f"   a slower send ({n} frames at {SLOW_PPS} pps) while sampling the rates")
    t0 = time.monotonic()
    proc = send(ns_b, pcap, SLOW_PPS, n, background=True)
    samples = []
    try:
        while proc.poll() is None and time.monotonic() - t0 < 30:
            m = metrics(d)
            samples.append((time.monotonic() - t0, m["packet_rate_pps"], m["throughput_mbps"],
                            m["throughput_gbps"]))
            time.sleep(0.2)
        out = proc.communicate(timeout=30)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    t_end = time.monotonic() - t0
    sent_check(proc.returncode, out, n)
    mid = [s for s in samples if 1.0 <= s[0] <= t_end - 0.3]
    check(len(mid) >= 3 and all(s[1] > 0 and s[2] > 0 and s[3] > 0 for s in mid),
          "packet_rate_pps, throughput_mbps and throughput_gbps > 0 while traffic flows",
          f"samples {mid}")
    avg_frame = nbytes / n
    want_mbps = SLOW_PPS * avg_frame * 8 / 1e6
    if mid:
        pps = sorted(s[1] for s in mid)[len(mid) // 2]
        mbps = sorted(s[2] for s in mid)[len(mid) // 2]
        check(0.5 * SLOW_PPS <= pps <= 1.5 * SLOW_PPS,
              f"packet_rate_pps is about the send rate ({SLOW_PPS})", f"median {pps}")
        check(0.5 * want_mbps <= mbps <= 1.5 * want_mbps,
              f"throughput_mbps is about the send rate ({want_mbps:.3f})", f"median {mbps}")
        gbps = [s for s in mid if abs(s[3] * 1000 - s[2]) > 0.001 + 0.01 * s[2]]
        check(not gbps, "throughput_gbps is throughput_mbps / 1000", str(gbps[:3]))

    # Rates cover the last second: they fall to 0 once traffic stops.
    deadline = time.monotonic() + 4
    m = metrics(d)
    while (m["packet_rate_pps"] != 0 or m["throughput_mbps"] != 0) and \
            time.monotonic() < deadline:
        time.sleep(0.1)
        m = metrics(d)
    waited = 4 - (deadline - time.monotonic())
    check(m["packet_rate_pps"] == 0 and m["throughput_mbps"] == 0 and m["throughput_gbps"] == 0,
          f"the rates are 0 after the traffic stopped (after {waited:.1f} s)",
          f"{m['packet_rate_pps']} pps {m['throughput_mbps']} Mbps")
    check(waited < 2.5, "the rates fall to 0 within about a second", f"took {waited:.1f} s")
    check(m["packets_captured"] == 2 * n and m["bytes_captured"] == 2 * nbytes,
          f"metrics after both sends: {2 * n} packets, {2 * nbytes} bytes",
          f"{m['packets_captured']} {m['bytes_captured']}")

    r = d.api("POST", "/stop", {"graceful": True})
    j = r.json_or_none() or {}
    check(r.status == 200 and j.get("status") == "stopped", "stop graceful: 200 stopped",
          f"{r.status} {r.body[:200]!r}")
    check(j.get("packets_captured") == 2 * n and j.get("bytes_captured") == 2 * nbytes and
          j.get("packets_dropped") == 0 and j.get("drop_rate") == 0,
          f"stop: final counters {2 * n} packets, {2 * nbytes} bytes, 0 dropped, drop_rate 0",
          str(j)[:300])
    check(isinstance(j.get("duration_sec"), (int, float)) and j["duration_sec"] >= t_end,
          "stop: duration_sec covers the capture", f"{j.get('duration_sec')} >= {t_end:.1f}")
    st = status(d)
    check(st["running"] is False and st["state"] == "stopped", "status after stop: running false",
          str(st)[:200])
    m = metrics(d)
    check(m["packets_captured"] == 2 * n and m["packet_rate_pps"] == 0,
          "metrics after stop: the final counters, rate 0", str(m)[:200])
    return True


# ---------------------------------------------------------------- workflow 2

def flow_view(f):
    return (f["src_ip"], f["src_port"], f["dst_ip"], f["dst_port"], f["protocol"])


def workflow2(d, ns_b, work, convs, mixed):
    log("-- workflow 2: start with filter tcp, enable flow metering, traffic, flows")
    n_tcp = sum(len(c.packets) for c in convs)
    tcp_bytes = sum(14 + len(p) for c in convs for p in c.packets)
    r = d.api("POST", "/start", {"interface": "va", "filter_expr": "tcp"})
    if not check(r.status == 200 and (r.json_or_none() or {}).get("filter_expr") == "tcp",
                 "start with filter_expr tcp: 200", f"{r.status} {r.body[:200]!r}"):
        return
    r = d.api("POST", "/flow/meter/enable",
              {"table_size": 100000, "idle_timeout_sec": 300, "export_interval_sec": 60})
    check(r.status == 200 and r.json_or_none() == {"status": "enabled", "table_size": 100000,
                                                   "idle_timeout_sec": 300,
                                                   "export_interval_sec": 60},
          "flow/meter/enable: 200 enabled", f"{r.status} {r.body[:200]!r}")
    # Metering starts at the capture thread's next batch; a first query waits for it.
    r = d.api("GET", "/flows")
    check(r.status == 200 and r.json_or_none() == [], "flows before traffic: an empty list",
          f"{r.status} {r.body[:200]!r}")
    st = status(d)
    check(st["flow_metering_enabled"] is True and st.get("filter_expr") == "tcp",
          "status: flow_metering_enabled, filter tcp", str(st)[:200])

    send(ns_b, os.path.join(work, "mixed.pcap"), FAST_PPS, len(mixed))
    m = wait_packets(d, n_tcp)
    check(m["packets_captured"] == n_tcp and m["bytes_captured"] == tcp_bytes,
          f"metrics: {n_tcp} packets, {tcp_bytes} bytes: the TCP frames only",
          f"{m['packets_captured']} {m['bytes_captured']}")
    check(m["active_flows"] == 3 and m["total_flows"] == 3, "metrics: 3 active flows, 3 in all",
          f"{m['active_flows']} {m['total_flows']}")

    r = d.api("GET", "/flows?limit=10&sort_by=bytes")
    flows = r.json_or_none()
    if not check(r.status == 200 and isinstance(flows, list), "flows?limit=10&sort_by=bytes: "
                 "200, a JSON list", f"{r.status} {r.body[:200]!r}"):
        return
    keys = {"flow_id", "src_ip", "dst_ip", "src_port", "dst_port", "protocol", "packets", "bytes",
            "bytes_fwd", "bytes_rev", "first_seen", "last_seen", "state", "duration_sec",
            "tcp_flags", "packets_fwd", "packets_rev", "vlan", "end_reason"}
    check(all(keys <= f.keys() for f in flows), "every flow object has the guide's fields",
          str([sorted(keys - f.keys()) for f in flows]))
    want = {(c.client, c.cport, c.server, c.sport, 6): c for c in convs}
    got = {flow_view(f): f for f in flows}
    check(len(flows) == 3 and set(got) == set(want),
          "flows: exactly the three TCP conversations sent (client as src), no UDP",
          f"got {sorted(got)}")
    for key, c in want.items():
        f = got.get(key)
        if f is None:
            continue
        name = f"flow {c.client}:{c.cport} -> {c.server}:{c.sport}"
        check(f["packets_fwd"] == c.pkts[0] and f["packets_rev"] == c.pkts[1] and
              f["packets"] == sum(c.pkts),
              f"{name}: packets {c.pkts[0]} forward, {c.pkts[1]} reverse",
              f"{f['packets_fwd']}/{f['packets_rev']}/{f['packets']}")
        check(f["bytes_fwd"] == c.ip_bytes[0] and f["bytes_rev"] == c.ip_bytes[1] and
              f["bytes"] == sum(c.ip_bytes),
              f"{name}: IP bytes {c.ip_bytes[0]} forward, {c.ip_bytes[1]} reverse",
              f"{f['bytes_fwd']}/{f['bytes_rev']}/{f['bytes']}")
        check(f["state"] == c.state and f["end_reason"] in (None, ""),
              f"{name}: state {c.state}, no end reason yet", f"{f['state']} {f['end_reason']}")
        check(set(f["tcp_flags"].split("|")) == c.flag_names(),
              f"{name}: tcp_flags {sorted(c.flag_names())}", f["tcp_flags"])
        now = time.time()
        check(now - 30 < f["first_seen"] <= f["last_seen"] <= now + 1 and
              abs(f["duration_sec"] - (f["last_seen"] - f["first_seen"])) < 0.01,
              f"{name}: first_seen, last_seen and duration_sec agree and are recent",
              f"{f['first_seen']} {f['last_seen']} {f['duration_sec']}")
    by_bytes = [f["bytes"] for f in flows]
    check(by_bytes == sorted(by_bytes, reverse=True) and len(set(by_bytes)) == 3,
          "sort_by=bytes: descending", str(by_bytes))
    check(len({f["flow_id"] for f in flows}) == 3, "flow_id is unique per flow",
          str([f["flow_id"] for f in flows]))

    def q(query):
        r = d.api("GET", "/flows?" + query)
        return r.json() if r.status == 200 else f"{r.status} {r.body[:200]!r}"

    top2 = q("limit=2&sort_by=bytes")
    check(isinstance(top2, list) and [flow_view(f) for f in top2] ==
          [flow_view(f) for f in flows[:2]], "limit=2: the first two by bytes", str(top2)[:200])
    by_pk = q("sort_by=packets")
    want_pk = sorted(convs, key=lambda c: -sum(c.pkts))
    check(isinstance(by_pk, list) and [f["src_port"] for f in by_pk] ==
          [c.cport for c in want_pk] and [f["src_port"] for f in by_pk] !=
          [f["src_port"] for f in flows],
          "sort_by=packets: descending by packets (another order than by bytes)",
          str([(f["src_port"], f["packets"]) for f in by_pk] if isinstance(by_pk, list) else
              by_pk))
    cut = sorted(sum(c.pkts) for c in convs)[1]
    many = q(f"min_packets={cut}")
    check(isinstance(many, list) and sorted(f["packets"] for f in many) ==
          sorted(sum(c.pkts) for c in convs if sum(c.pkts) >= cut),
          f"min_packets={cut}: only the flows with at least that many", str(many)[:200])
    b = convs[1]
    check([flow_view(f) for f in q(f"port={b.sport}")] == [(b.client, b.cport, b.server,
                                                             b.sport, 6)],
          f"port={b.sport}: that conversation only")
    c = convs[2]
    check([flow_view(f) for f in q(f"address={c.client}")] == [(c.client, c.cport, c.server,
                                                                 c.sport, 6)],
          f"address={c.client}: that conversation only")
    check(q("protocol=17") == [], "protocol=17: no UDP flow (the capture filter dropped it)")

    r = d.api("POST", "/stop", {"graceful": True})
    j = r.json_or_none() or {}
    check(r.status == 200 and j.get("packets_captured") == n_tcp and
          j.get("bytes_captured") == tcp_bytes and j.get("packets_dropped") == 0,
          f"stop: final counters {n_tcp} packets, {tcp_bytes} bytes, 0 dropped",
          f"{r.status} {r.body[:300]!r}")


# ---------------------------------------------------------------- the veth goes away

def veth_removal(d):
    log("-- the veth deleted during a capture")
    r = d.api("POST", "/start", {"interface": "va"})
    if not check(r.status == 200, "start on va: 200", f"{r.status} {r.body[:200]!r}"):
        return
    time.sleep(0.3)
    run(["ip", "link", "del", "va"])
    deadline = time.monotonic() + 8
    st = status(d)
    while st["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.1)
        st = status(d)
    log(f"   status: state {st['state']!r}, error {st.get('error')!r}")
    check(st["state"] == "error" and st["running"] is False and
          isinstance(st.get("error"), str) and st["error"],
          "status: state error, running false, with a reason", str(st)[:300])
    check(d.healthy(), "the API keeps serving: /healthz 200")
    r = d.api("POST", "/start", {"interface": "va"})
    check(r.status == 400 and is_detail_string(r) and "va" in r.json()["detail"],
          "a new start on the missing interface: 400 naming it", f"{r.status} {r.body[:200]!r}")
    r = d.api("POST", "/stop", {"graceful": True})
    check(r.status == 409 and is_detail_string(r) and "failed" in r.json()["detail"],
          "stop after the failure: 409 saying the last session failed",
          f"{r.status} {r.body[:200]!r}")
    r = d.api("GET", "/metrics")
    check(r.status == 200 and (r.json_or_none() or {}).get("packet_rate_pps") == 0,
          "metrics of the failed session: 200", f"{r.status} {r.body[:200]!r}")
    r = d.get("/metrics")
    check(r.status == 200 and b"jarvis_capture_failed 1" in r.body,
          "Prometheus: jarvis_capture_failed 1", r.body[:100])


def inner_workflows(jc, ns_b, work):
    convs, _, mixed = traffic()
    d = Daemon.listen(jc)
    try:
        d.wait_ready()
        log(f"daemon in the namespace on 127.0.0.1:{d.port}")
        if workflow1(d, ns_b, work, mixed):
            workflow2(d, ns_b, work, convs, mixed)
        veth_removal(d)
        check(d.proc.poll() is None, "the daemon is still running")
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        check(False, "test run", str(e))
    finally:
        rc = d.stop()
    check(rc == 0, "SIGTERM: exit 0", f"exit {rc}; stderr tail {d.lines[-3:]}")
    return finish()


# ---------------------------------------------------------------- capabilities

AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def proc_ids(pid):
    uid = caps = None
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                uid = int(line.split()[2])  # effective
            elif line.startswith("CapEff:"):
                caps = int(line.split()[1], 16)
    return uid, caps


def inner_caps(ns_b, work, capped, plain):
    _, tcp_frames, _ = traffic()
    n = len(tcp_frames)
    pcap = os.path.join(work, "tcp.pcap")
    log("-- the binary with cap_net_raw,cap_net_admin+ep, run as nobody")
    d = Daemon.listen(capped, prefix=AS_NOBODY)
    try:
        d.wait_ready()
        uid, caps = proc_ids(d.proc.pid)
        check(uid == 65534 and caps == (1 << 12) | (1 << 13),
              "the daemon runs as uid 65534 with exactly CAP_NET_ADMIN and CAP_NET_RAW",
              f"uid {uid}, CapEff {caps:#x}" if caps is not None else f"uid {uid}")
        bl = d.api("GET", "/backends").json()["available_backends"]
        lp = next(b for b in bl if b["name"] == "libpcap")
        check(lp["status"] == "available", "backends: libpcap available", str(lp))
        r = d.api("POST", "/start", {"interface": "va"})
        if check(r.status == 200, "start on va as nobody with the capabilities: 200",
                 f"{r.status} {r.body[:300]!r}"):
            time.sleep(0.3)
            send(ns_b, pcap, FAST_PPS, n)
            m = wait_packets(d, n)
            check(m["packets_captured"] == n and m["packets_dropped"] == 0,
                  f"metrics: {n} packets counted, none dropped", str(m)[:200])
            r = d.api("POST", "/stop", {"graceful": True})
            check(r.status == 200 and r.json().get("packets_captured") == n,
                  f"stop: {n} packets", f"{r.status} {r.body[:200]!r}")
    finally:
        rc = d.stop()
    check(rc == 0, "capped daemon: SIGTERM exits 0", f"exit {rc}")

    log("-- the same binary without capabilities, run as nobody")
    d = Daemon.listen(plain, prefix=AS_NOBODY)
    try:
        d.wait_ready()
        uid, caps = proc_ids(d.proc.pid)
        check(uid == 65534 and caps == 0, "the daemon runs as uid 65534 with no capability",
              f"uid {uid}, CapEff {caps}")
        bl = d.api("GET", "/backends").json()["available_backends"]
        lp = next(b for b in bl if b["name"] == "libpcap")
        check(lp["status"] == "unavailable" and "CAP_NET_RAW" in (lp.get("reason") or ""),
              "backends: libpcap unavailable, the reason names CAP_NET_RAW", str(lp))
        r = d.api("POST", "/start", {"interface": "va"})
        check(r.status == 400 and is_detail_string(r) and "CAP_NET_RAW" in r.json()["detail"],
              "start without the capability: 400 naming CAP_NET_RAW",
              f"{r.status} {r.body[:300]!r}")
        check(d.healthy(), "the daemon keeps serving")
    finally:
        rc = d.stop()
    check(rc == 0, "plain daemon: SIGTERM exits 0", f"exit {rc}")
    return finish()


# ---------------------------------------------------------------- main

def main():
    args = sys.argv[1:]
    if args[:1] == ["--inner"]:
        mode, jc, _ns_a, ns_b, work = args[1:6]
        try:
            if mode == "caps":
                return inner_caps(ns_b, work, *args[6:8])
            return inner_workflows(jc, ns_b, work)
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
            check(False, "test run", str(e))
            return finish()
    if len(args) not in (1, 2) or (len(args) == 2 and args[1] != "--caps"):
        print(f"usage: {sys.argv[0]} JARVIS_CAPTURE [--caps]", file=sys.stderr)
        return 2
    jc = os.path.abspath(args[0])
    if not os.access(jc, os.X_OK):
        log(f"FAIL: {jc} is not an executable")
        return 1
    return outer(jc, "caps" if len(args) == 2 else "workflows")


if __name__ == "__main__":
    sys.exit(main())
