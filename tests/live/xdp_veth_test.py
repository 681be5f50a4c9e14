#!/usr/bin/python3
"""Checks of the xdp backend that the shared veth test does not make.

Usage: xdp_veth_test.py JARVIS_CAPTURE

Creates namespaces A and B (names carry this process's pid) joined by a veth pair va/vb with two
RX and two TX queues on each end (ethtool -L), IPv6 off, and sends the shared test's frames
(tests/live/libpcap_veth_test.py) from vb with tcpreplay. Traffic never leaves the pair; the
namespaces are removed afterwards. Checks:

  1. native mode: `xdp mode: native/...` is reported, `ip link` shows our program while the
     capture runs, both RX queues of va carried traffic (veth's per-queue XDP counters) and
     every frame sent was captured, byte for byte; after SIGINT nothing is attached to va.
  2. skb (generic) mode, forced with JARVIS_XDP_ATTACH=skb: `skb/copy`, every frame, and the
     filter excludes exactly the UDP 8888 and TCP 80 frames.
  3. SIGKILL: nothing stays attached (a bpf_link dies with its process); a capture started
     right after works and leaves nothing attached.
  4. SIGKILL of a capture attached the old way (JARVIS_XDP_ATTACH=netlink): the program stays,
     as it must; the next capture removes it, says so in its mode line, and leaves nothing.
  5. A second capture on the interface while one runs is refused with the reason.
  6. Drops: a capture with a small UMEM is stopped (SIGSTOP) while frames arrive, then resumed:
     captured + dropped by kernel == sent, with drops > 0.
  7. Flows: `flows -i va --backend xdp` over both queues gives the flows of `flows -r` on the
     file sent (endpoints, packets, bytes).
  8. Through the REST API (the daemon in namespace A): start, traffic, stop leaves nothing
     attached, and a second start and stop on the same interface work the same.
  9. Fallback: on an ifb device (no native XDP) in namespace A the backend takes generic mode by
     itself and says why (`skb/copy (native mode refused: ...)`); nothing stays attached.
 10. Frame sizes: at MTU 1500 (2 KiB UMEM frames) the longest frames the MTU allows (1514
     bytes) are captured whole; at MTU 3000 on both ends (4 KiB frames) so are 3014-byte
     frames, which a 2 KiB frame could not hold (N_TOTAL frames each time).

Exit 0 pass, 1 fail, 77 skipped (not root, no netns, no tcpreplay/ethtool, xdp unavailable).
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import libpcap_veth_test as veth  # noqa: E402  (frames, namespaces, captures, pcapng reader)

NS_PREFIX = "jcxdp"
DROP_FRAMES = 6000  # frames sent while the capture is stopped, well over its UMEM
DROP_BUFFER_KIB = 4096  # 2 queues x 1024 frames of 2 KiB (MTU 1500)

log, check, run = veth.log, veth.check, veth.run


def xdp_attached(ns):
    """The `prog/xdp ...` line of `ip link show dev va`, or "" when nothing is attached."""
    out = run(["ip", "-n", ns, "-d", "link", "show", "dev", "va"]).stdout
    m = re.search(r"prog/xdp\S* id \d+ name (\S+)", out)
    return m.group(0) if m else ("xdp (unnamed)" if re.search(r"\bxdp(generic|drv)?\b", out)
                                 else "")


def queue_redirects(ns):
    """veth's per-RX-queue count of packets its XDP program redirected: {queue: count}."""
    out = run(["ip", "netns", "exec", ns, "ethtool", "-S", "va"]).stdout
    return {int(q): int(n) for q, n in re.findall(r"rx_queue_(\d+)_xdp_redirect:\s+(\d+)", out)}


def start(ns_a, jc, name, args, env=None):
    """A capture of va with the xdp backend, `env` set for it (ip netns exec passes the
    environment on)."""
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        return veth.Capture(name, ns_a, jc, ["--backend", "xdp"] + list(args))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def mode_line(cap):
    return next((l for l in cap.lines if l.startswith("xdp mode: ")), "")


def capture_all(ns_a, ns_b, jc, work, gen, frames, name, args=(), env=None, expect=None):
    """Runs one capture over one replay of the frames; returns (cap, rc, packets, attached)."""
    path = os.path.join(work, name + ".pcapng")
    cap = start(ns_a, jc, name, ["-q", "-w", path] + list(args), env)
    try:
        cap.wait_listening()
        time.sleep(0.3)
        attached = xdp_attached(ns_a)
        veth.send(ns_b, gen)
        time.sleep(1.0)
        cap.proc.send_signal(signal.SIGINT)
        rc = cap.finish()
    finally:
        cap.kill()
    try:
        _, pkts = veth.read_pcapng(path)
    except (OSError, ValueError) as e:
        check(False, f"{name}: readable pcapng", str(e))
        pkts = []
    return cap, rc, [d for _, _, d in pkts], attached


def check_clean(ns_a, what):
    left = xdp_attached(ns_a)
    check(left == "", f"{what}: nothing attached to va (ip link)", left)


def part_native(ns_a, ns_b, jc, work, gen, frames):
    log("-- 1: native mode on two RX queues")
    before = queue_redirects(ns_a)
    cap, rc, got, attached = capture_all(ns_a, ns_b, jc, work, gen, frames, "native")
    after = queue_redirects(ns_a)
    veth.check_exit(cap, rc, "SIGINT")
    mode = mode_line(cap)
    log(f"   {mode}; while running: {attached}")
    check(re.fullmatch(r"xdp mode: native/(copy|zerocopy)", mode) is not None,
          "native: mode line says native/copy or native/zerocopy", mode or str(cap.lines))
    check("name jarvis_xsk" in attached, "native: ip link shows jarvis_xsk while capturing",
          attached)
    per_queue = {q: after.get(q, 0) - before.get(q, 0) for q in after}
    log(f"   packets redirected per RX queue: {per_queue}")
    check(len(per_queue) >= 2 and all(per_queue.get(q, 0) > 0 for q in (0, 1)),
          "native: both RX queues of va carried packets to the sockets", str(per_queue))
    check(sum(per_queue.values()) == veth.N_TOTAL,
          f"native: the queues redirected {veth.N_TOTAL} packets in all", str(per_queue))
    want = [f for _, f in frames]
    check(sorted(got) == sorted(want),
          f"native: all {veth.N_TOTAL} frames captured byte for byte, from both queues",
          f"{len(got)} captured")
    s = cap.summary()
    check(s.get("captured") == veth.N_TOTAL and s.get("dropped by kernel") == 0,
          f"native: summary {veth.N_TOTAL} captured, 0 dropped", str(s))
    inversions = sum(1 for a, b in zip(got, got[1:]) if want.index(b) < want.index(a))
    log(f"   order: {inversions} frame(s) out of send order across queues")
    check_clean(ns_a, "native: after SIGINT")


def part_skb(ns_a, ns_b, jc, work, gen, frames):
    log("-- 2: generic (skb) mode with a filter")
    cap, rc, got, attached = capture_all(ns_a, ns_b, jc, work, gen, frames, "skb",
                                         ["udp", "port", "9999"], {"JARVIS_XDP_ATTACH": "skb"})
    veth.check_exit(cap, rc, "SIGINT")
    mode = mode_line(cap)
    log(f"   {mode}; while running: {attached}")
    check(mode == "xdp mode: skb/copy", "skb: mode line says skb/copy", mode or str(cap.lines))
    check("name jarvis_xsk" in attached, "skb: ip link shows jarvis_xsk while capturing",
          attached)
    want = [f for k, f in frames if k == "u9999"]
    check(sorted(got) == sorted(want), f"skb: exactly the {len(want)} UDP 9999 frames captured",
          f"{len(got)} captured")
    s = cap.summary()
    check(s.get("captured") == len(want) and s.get("dropped by kernel") == 0,
          f"skb: summary {len(want)} captured, 0 dropped", str(s))
    check_clean(ns_a, "skb: after SIGINT")


def kill_running(ns_a, jc, name, env=None):
    cap = start(ns_a, jc, name, ["-q", "-w", "/dev/null"], env)
    try:
        cap.wait_listening()
        attached = xdp_attached(ns_a)
        # ip netns exec runs the capture as its child: kill the capture itself.
        pids = run(["pgrep", "-P", str(cap.proc.pid)], check_rc=False).stdout.split()
        for pid in pids or [str(cap.proc.pid)]:
            os.kill(int(pid), signal.SIGKILL)
        rc = cap.finish()
    finally:
        cap.kill()
    return cap, rc, attached


def start_stop(ns_a, jc, name):
    cap = start(ns_a, jc, name, ["-q", "-w", "/dev/null"])
    try:
        cap.wait_listening()
        attached = xdp_attached(ns_a)
        cap.proc.send_signal(signal.SIGTERM)
        rc = cap.finish()
    finally:
        cap.kill()
    return cap, rc, attached


def part_sigkill(ns_a, jc):
    log("-- 3: SIGKILL (bpf_link attachment)")
    cap, rc, attached = kill_running(ns_a, jc, "killed")
    check("name jarvis_xsk" in attached, "killed: attached while running", attached)
    check(rc is not None and rc != 0, "killed: died from SIGKILL", f"rc {rc}")
    time.sleep(0.2)
    check_clean(ns_a, "after SIGKILL")
    cap, rc, attached = start_stop(ns_a, jc, "after-kill")
    veth.check_exit(cap, rc, "SIGTERM")
    check("name jarvis_xsk" in attached, "after-kill: a new capture attaches", attached)
    check_clean(ns_a, "after-kill: after its stop")

    log("-- 4: SIGKILL of a netlink attachment, removed by the next start")
    cap, rc, attached = kill_running(ns_a, jc, "killed-netlink", {"JARVIS_XDP_ATTACH": "netlink"})
    check("(netlink attach)" in mode_line(cap), "killed-netlink: mode line says netlink attach",
          mode_line(cap))
    left = xdp_attached(ns_a)
    check("name jarvis_xsk" in left,
          "killed-netlink: the program outlives the process (what netlink attachment does)", left)
    cap, rc, attached = start_stop(ns_a, jc, "cleanup-start")
    veth.check_exit(cap, rc, "SIGTERM")
    mode = mode_line(cap)
    log(f"   {mode}")
    check("removed a stale jarvis_xsk program" in mode,
          "cleanup-start: reports the stale program it removed", mode or str(cap.lines))
    check_clean(ns_a, "cleanup-start: after its stop")


def part_exclusive(ns_a, jc):
    log("-- 5: one capture per interface")
    first = start(ns_a, jc, "first", ["-q", "-w", "/dev/null"])
    try:
        first.wait_listening()
        p = run(["ip", "netns", "exec", ns_a, jc, "capture", "-i", "va", "--backend", "xdp",
                 "-q", "-c", "1", "-w", "/dev/null"], check_rc=False, timeout=20)
        check(p.returncode == 1 and "another xdp capture is running on va" in p.stderr,
              "second: refused with the reason", f"rc {p.returncode}: {p.stderr.strip()}")
        still = xdp_attached(ns_a)
        check("name jarvis_xsk" in still, "second: the first capture's program is untouched",
              still)
        first.proc.send_signal(signal.SIGTERM)
        veth.check_exit(first, first.finish(), "SIGTERM")
    finally:
        first.kill()
    check_clean(ns_a, "after both")


def part_drops(ns_a, ns_b, jc, work, frames):
    log(f"-- 6: drops: {DROP_FRAMES} frames into a stopped capture with a small UMEM")
    many = [frames[i % len(frames)] for i in range(DROP_FRAMES)]
    path = os.path.join(work, "many.pcap")
    veth.write_pcap(path, many)
    cap = start(ns_a, jc, "drops", ["-q", "-B", str(DROP_BUFFER_KIB), "-w", "/dev/null"])
    try:
        cap.wait_listening()
        pids = run(["pgrep", "-P", str(cap.proc.pid)], check_rc=False).stdout.split()
        target = int(pids[0]) if pids else cap.proc.pid
        os.kill(target, signal.SIGSTOP)
        p = run(["ip", "netns", "exec", ns_b, "tcpreplay", "-i", "vb", "--pps", "20000", path],
                timeout=60, check_rc=False)
        ok = re.search(r"Successful packets:\s+(\d+)", p.stdout + p.stderr)
        sent = int(ok.group(1)) if ok else -1
        os.kill(target, signal.SIGCONT)
        time.sleep(1.0)
        cap.proc.send_signal(signal.SIGINT)
        rc = cap.finish()
    finally:
        cap.kill()
    veth.check_exit(cap, rc, "SIGINT")
    s = cap.summary()
    captured, dropped = s.get("captured", -1), s.get("dropped by kernel", -1)
    log(f"   sent {sent}, summary {s}")
    check(sent == DROP_FRAMES, f"drops: tcpreplay sent {DROP_FRAMES}", str(sent))
    check(dropped > 0, "drops: the stopped capture lost packets and counted them", str(s))
    check(captured + dropped == sent,
          "drops: captured + dropped by kernel == sent (every lost packet is counted)",
          f"{captured} + {dropped} != {sent}")
    check_clean(ns_a, "drops: after SIGINT")


def wait_attached(ns_a, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if xdp_attached(ns_a):
            return True
        time.sleep(0.05)
    return False


def part_flows(ns_a, ns_b, jc, gen):
    log("-- 7: flows -i va over both queues equal flows -r of the file")
    veth.check_live_flows(
        jc, ns_a, ns_b, gen, args=["--backend", "xdp"],
        when_listening=lambda: check(wait_attached(ns_a), "flows: the program is attached", ""))
    check_clean(ns_a, "flows: after SIGTERM")


def api(ns_a, method, path, body=None):
    """One request to the daemon listening on 127.0.0.1:18000 in namespace A (curl there)."""
    cmd = ["ip", "netns", "exec", ns_a, "curl", "-s", "-X", method,
           f"http://127.0.0.1:18000/packet_capture/capture/{path}"]
    if body is not None:
        cmd += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
    out = run(cmd, timeout=30).stdout
    try:
        return json.loads(out)
    except ValueError:
        return {"unparsed": out}


def part_api(ns_a, ns_b, jc, gen):
    log("-- 8: the REST API: start, stop, start again")
    srv = subprocess.Popen(["ip", "netns", "exec", ns_a, jc, "serve", "--listen",
                            "127.0.0.1:18000"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if run(["ip", "netns", "exec", ns_a, "curl", "-s", "-o", "/dev/null",
                    "http://127.0.0.1:18000/healthz"], check_rc=False).returncode == 0:
                break
            time.sleep(0.1)
        for turn in (1, 2):
            r = api(ns_a, "POST", "start", {"interface": "va", "backend": "xdp",
                                             "buffer_size_mb": 64})
            check(r.get("status") == "started", f"api {turn}: start with backend xdp", str(r))
            attached = xdp_attached(ns_a)
            check("name jarvis_xsk" in attached, f"api {turn}: attached while running",
                  attached)
            veth.send(ns_b, gen)
            time.sleep(0.5)
            r = api(ns_a, "POST", "stop", {"graceful": True})
            check(r.get("status") == "stopped" and r.get("packets_captured") == veth.N_TOTAL
                  and r.get("packets_dropped") == 0,
                  f"api {turn}: stop reports {veth.N_TOTAL} captured, 0 dropped", str(r))
            check_clean(ns_a, f"api {turn}: after POST /stop (the daemon still runs)")
    finally:
        srv.terminate()
        try:
            srv.wait(10)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()
    check_clean(ns_a, "api: after the daemon ended")


def part_fallback(ns_a, jc):
    log("-- 9: automatic fallback to generic mode on a device without native XDP (ifb)")
    if run(["ip", "-n", ns_a, "link", "add", "xdpifb", "type", "ifb"],
           check_rc=False).returncode != 0:
        log("   no ifb devices in this kernel: part skipped")
        return
    run(["ip", "-n", ns_a, "link", "set", "xdpifb", "up"])
    p = subprocess.Popen(["ip", "netns", "exec", ns_a, jc, "capture", "-i", "xdpifb",
                          "--backend", "xdp", "-q", "-w", "/dev/null"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    try:
        first = p.stderr.readline()
        mode = p.stderr.readline().strip()
        out = run(["ip", "-n", ns_a, "link", "show", "dev", "xdpifb"]).stdout
        p.send_signal(signal.SIGTERM)
        rc = p.wait(10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stderr.close()
    log(f"   {mode}")
    check(first.startswith("listening on xdpifb"), "fallback: capture started", first)
    check(mode.startswith("xdp mode: skb/copy (native mode refused: "),
          "fallback: generic mode taken by itself, with the reason", mode)
    check("prog/xdp" in out and "name jarvis_xsk" in out, "fallback: attached while running",
          out)
    check(rc == 0, "fallback: exit code 0 after SIGTERM", str(rc))
    out = run(["ip", "-n", ns_a, "link", "show", "dev", "xdpifb"]).stdout
    check("prog/xdp" not in out, "fallback: nothing attached after stop", out)
    run(["ip", "-n", ns_a, "link", "del", "xdpifb"], check_rc=False)


def part_frame_sizes(ns_a, ns_b, jc, work):
    for mtu in (1500, 3000):
        log(f"-- 10: frames as long as MTU {mtu} allows")
        for ns, dev in ((ns_a, "va"), (ns_b, "vb")):
            run(["ip", "-n", ns, "link", "set", dev, "mtu", str(mtu)])
        size = mtu + 14
        frames = [("u9999", veth.udp_frame([192, 0, 2, 1], [198, 51, 100, 1], 20000 + i, 9999,
                                          size, i)) for i in range(veth.N_TOTAL)]
        path = os.path.join(work, f"mtu{mtu}.pcap")
        veth.write_pcap(path, frames)
        cap, rc, got, _ = capture_all(ns_a, ns_b, jc, work, path, frames, f"mtu{mtu}")
        veth.check_exit(cap, rc, "SIGINT")
        s = cap.summary()
        check(sorted(got) == sorted(f for _, f in frames) and s.get("dropped by kernel") == 0,
              f"mtu {mtu}: all {veth.N_TOTAL} frames of {size} bytes captured whole, none dropped",
              f"{len(got)} captured ({sorted(set(len(g) for g in got))} bytes), summary {s}")
        check_clean(ns_a, f"mtu {mtu}: after SIGINT")
    for ns, dev in ((ns_a, "va"), (ns_b, "vb")):
        run(["ip", "-n", ns, "link", "set", dev, "mtu", "1500"])


def set_two_queues(ns_a, ns_b):
    for ns, dev in ((ns_a, "va"), (ns_b, "vb")):
        run(["ip", "netns", "exec", ns, "ethtool", "-L", dev, "rx", "2", "tx", "2"])
    out = run(["ip", "netns", "exec", ns_a, "ethtool", "-l", "va"]).stdout
    cur = out.split("Current hardware settings:")[-1]
    if not re.search(r"RX:\s+2", cur):
        raise RuntimeError(f"va did not take 2 RX queues: {out}")


def main():
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} JARVIS_CAPTURE", file=sys.stderr)
        return 2
    jc = os.path.abspath(sys.argv[1])
    if os.geteuid() != 0:
        veth.skip("needs root to create network namespaces")
    for tool in ("ip", "tcpreplay", "ethtool", "pgrep", "curl"):
        if shutil.which(tool) is None:
            veth.skip(f"{tool} is not installed")
    row = next((l for l in run([jc, "backends"]).stdout.splitlines()
                if l.split()[:1] == ["xdp"]), "")
    if row.split()[1:2] != ["available"]:
        veth.skip(f"xdp backend: {row}")

    veth.NS_PREFIX = NS_PREFIX
    veth.remove_stale_namespaces()
    pid = os.getpid()
    ns_a, ns_b = f"{NS_PREFIX}a{pid}", f"{NS_PREFIX}b{pid}"
    work = tempfile.mkdtemp(prefix="jarvis-xdp-")
    t0 = time.monotonic()
    try:
        veth.setup_namespaces(ns_a, ns_b)
        set_two_queues(ns_a, ns_b)
        log(f"namespaces {ns_a} (va) and {ns_b} (vb) ready, 2 RX queues each")
        frames = veth.generate_frames()
        gen = os.path.join(work, "gen.pcap")
        veth.write_pcap(gen, frames)
        part_native(ns_a, ns_b, jc, work, gen, frames)
        part_skb(ns_a, ns_b, jc, work, gen, frames)
        part_sigkill(ns_a, jc)
        part_exclusive(ns_a, jc)
        part_drops(ns_a, ns_b, jc, work, frames)
        part_flows(ns_a, ns_b, jc, gen)
        part_api(ns_a, ns_b, jc, gen)
        part_fallback(ns_a, jc)
        part_frame_sizes(ns_a, ns_b, jc, work)
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        check(False, "test run", str(e))
    finally:
        for ns in (ns_a, ns_b):
            if ns in veth.list_netns():
                run(["ip", "netns", "del", ns], check_rc=False)
        left = [ns for ns in (ns_a, ns_b) if ns in veth.list_netns()]
        check(not left, "namespaces removed", f"still present: {left}")
    log(f"elapsed {time.monotonic() - t0:.1f} s")
    if veth.failures:
        log(f"FAILED: {len(veth.failures)} check(s); files kept in {work}")
        return 1
    shutil.rmtree(work, ignore_errors=True)
    log("PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
