#!/usr/bin/python3
"""Live test of the dpdk backend on a veth pair between two network namespaces.

Usage: dpdk_veth_test.py JARVIS_CAPTURE [--one-at-a-time] [--dpdk-args ARGS]

Runs the rounds of libpcap_veth_test.py (exact counts, filter exclusions, byte-for-byte files,
-c/-s/--immediate, SIGTERM right after "listening on") with `--backend dpdk`, then:

- drops: a capture whose standard output is not read for a while (its writes block, so it stops
  receiving) with a small buffer; the drops it reports must equal sent - captured exactly.
- flows: `flows -i va` over the same traffic gives exactly the flows `flows -r` gives for the
  file that was sent.
- net_pcap: `--dpdk-args "... --vdev net_pcap_t0,rx_pcap=FILE"` reads the file through DPDK:
  every frame, byte for byte, and the filter's share (no namespaces needed).
- daemon: `serve` runs three dpdk sessions one after another over REST (the EAL is initialised
  once; each session attaches and detaches its vdev); with --dpdk-args the daemon gets them
  from JARVIS_DPDK_ARGS, the configuration path.
- a clean stop: no XDP program left on va, promiscuous mode as it was, no DPDK runtime
  directory left behind.

--one-at-a-time runs the captures of a round one after another: the default device on an
interface is net_af_xdp, whose XDP program hands each packet to one socket. With
--dpdk-args naming a net_af_packet vdev they run side by side as for the other backends.

Exit 0 pass, 1 fail, 77 skipped (not root, dpdk backend unavailable, no tcpreplay or tshark).
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import libpcap_veth_test as lv  # noqa: E402

log, check, run, skip = lv.log, lv.check, lv.run, lv.skip


class HeldStdout(lv.Capture):
    """A capture whose standard output is read only once `release` is set."""

    def __init__(self, *args, **kwargs):
        self.release = threading.Event()
        super().__init__(*args, **kwargs)

    def _read_out(self):
        self.release.wait(60)
        self.stdout = self.proc.stdout.read()


def send_loops(ns_b, path, pps, loops):
    p = run(["ip", "netns", "exec", ns_b, "tcpreplay", "-i", "vb", "--pps", str(pps), "-l",
             str(loops), path], timeout=120, check_rc=False)
    text = p.stdout + p.stderr
    m = re.search(r"Successful packets:\s+(\d+)", text)
    if p.returncode != 0 or not m:
        raise RuntimeError(f"tcpreplay failed (rc={p.returncode}): {text.strip()}")
    return int(m.group(1))


def drops_of(summary):
    return summary.get("dropped by kernel")


def round_drops(jc, ns_a, ns_b, work, gen):
    log("-- round 4: overload; drops reported must equal sent - captured")
    cap = HeldStdout("drops", ns_a, jc, ["-B", "256"])
    try:
        cap.wait_listening()
        time.sleep(0.3)
        sent = send_loops(ns_b, gen, 20000, 10)
        cap.release.set()
        time.sleep(1.5)
        cap.proc.send_signal(signal.SIGTERM)
        rc = cap.finish(timeout=20)
    finally:
        cap.release.set()
        cap.kill()
    if not lv.check_exit(cap, rc, "SIGTERM after overload"):
        return
    s = cap.summary()
    log(f"   sent {sent}; summary {s}")
    captured, dropped = s.get("captured"), drops_of(s)
    check(dropped is not None, "drops: the summary reports a measured drop count",
          f"lines {cap.lines}")
    if captured is None or dropped is None:
        return
    check(dropped > 0, "drops: the stalled capture lost packets (the case is exercised)",
          f"summary {s}")
    check(captured + dropped == sent,
          f"drops: captured + dropped = sent ({captured} + {dropped} vs {sent})",
          f"difference {sent - captured - dropped}")
    lines = [l for l in cap.stdout.splitlines() if l.strip()]
    check(len(lines) == captured, f"drops: {captured} packet lines printed", f"{len(lines)}")


def round_flows(jc, ns_a, ns_b, gen):
    log("-- round 5: flows -i va match flows -r of the file sent")
    lv.check_live_flows(jc, ns_a, ns_b, gen, listen_timeout=30)  # the EAL's start included


def round_net_pcap(jc, work, frames, gen):
    log("-- round 7: net_pcap vdev reads the file through DPDK")
    base = "--no-huge --no-pci --no-shconf -m 128 --log-level notice"
    for name, filt, expected in (
            ("all", [], [f for _, f in frames]),
            ("udp9999", ["udp", "port", "9999"], [f for k, f in frames if k == "u9999"])):
        out = os.path.join(work, f"net_pcap_{name}.pcapng")
        args = [jc, "capture", "-i", "net_pcap_t0", "--backend", "dpdk", "--dpdk-args",
                f"{base} --vdev net_pcap_t0,rx_pcap={gen}", "-c", str(len(expected)), "-q",
                "-w", out] + filt
        p = run(args, timeout=30, check_rc=False)
        lines = p.stderr.splitlines()
        if not check(p.returncode == 0, f"net_pcap {name}: exits by itself after -c "
                     f"{len(expected)}", f"rc {p.returncode}: {lines}"):
            continue
        cap = type("C", (), {"name": f"net_pcap {name}"})()
        lv.check_file_frames(cap, out, expected)
    # An unknown vdev driver and a bad option are clear one-line errors.
    p = run([jc, "capture", "-i", "net_nosuch0", "--backend", "dpdk", "--dpdk-args",
             f"{base} --vdev net_nosuch0", "-c", "1"], timeout=30, check_rc=False)
    err = p.stderr.strip().splitlines()
    check(p.returncode == 1 and len(err) == 1 and "net_nosuch0" in err[0],
          "net_nosuch0: one error line naming the device", f"rc {p.returncode}: {err}")


def round_daemon(jc, ns_a, ns_b, gen, dpdk_args):
    log("-- round 6: the daemon runs dpdk sessions one after another (one EAL, vdevs attached "
        "and detached)")
    env = dict(os.environ)
    if dpdk_args:
        env["JARVIS_DPDK_ARGS"] = dpdk_args  # the configuration path for EAL arguments
    srv = subprocess.Popen(["ip", "netns", "exec", ns_a, jc, "serve", "--listen",
                            "127.0.0.1:18080"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    base = "http://127.0.0.1:18080/packet_capture/capture"

    def call(method, path, body=None):
        args = ["ip", "netns", "exec", ns_a, "curl", "-s", "-m", "20", "-X", method,
                "-w", "\n%{http_code}", base + path]
        if body is not None:
            args += ["-H", "content-type: application/json", "-d", json.dumps(body)]
        out = run(args, timeout=30, check_rc=False).stdout.rsplit("\n", 1)
        return (int(out[1]) if len(out) == 2 and out[1].isdigit() else 0,
                json.loads(out[0]) if out[0].strip().startswith("{") else {})

    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and call("GET", "/status")[0] != 200:
            time.sleep(0.1)
        for i, filt in enumerate(["", "udp port 9999", ""]):
            want = lv.N_UDP_9999 if filt else lv.N_TOTAL
            code, body = call("POST", "/start", {"interface": "va", "backend": "dpdk",
                                                 "buffer_size_mb": 64, "filter_expr": filt})
            if not check(code == 200, f"daemon session {i + 1}: started", f"{code} {body}"):
                break
            time.sleep(0.3)
            lv.send(ns_b, gen)
            time.sleep(0.5)
            code, m = call("GET", "/metrics")
            check(m.get("packets_captured") == want and m.get("packets_dropped") == 0,
                  f"daemon session {i + 1}: metrics say {want} captured, 0 dropped",
                  f"{code} {m}")
            code, body = call("POST", "/stop", {"graceful": True})
            check(code == 200 and body.get("packets_captured") == want,
                  f"daemon session {i + 1}: stopped with {want} packets", f"{code} {body}")
            check(not xdp_on(ns_a, "va")[0], f"daemon session {i + 1}: no XDP program left "
                  "on va after stop")
    finally:
        srv.send_signal(signal.SIGTERM)
        try:
            _, err = srv.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            srv.kill()
            _, err = srv.communicate()
    check(srv.returncode == 0, "daemon: exit code 0 after SIGTERM",
          f"rc {srv.returncode}: {err[-500:]}")


def xdp_on(ns, dev):
    out = run(["ip", "-n", ns, "link", "show", dev]).stdout
    return "xdp" in out, "PROMISC" in out


def dpdk_runtime_dirs():
    base = "/var/run/dpdk"
    return sorted(d for d in os.listdir(base) if d.startswith("jarvis")) if os.path.isdir(
        base) else []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("jc")
    ap.add_argument("--one-at-a-time", action="store_true")
    ap.add_argument("--dpdk-args", default="")
    a = ap.parse_args()
    jc = os.path.abspath(a.jc)
    lv.BACKEND_ARGS = ["--backend", "dpdk"] + (["--dpdk-args", a.dpdk_args] if a.dpdk_args
                                               else [])
    if a.one_at_a_time:
        if not hasattr(lv, "in_turns"):
            log("FAIL: libpcap_veth_test.py has no in_turns(): cannot run one at a time")
            return 1
        lv.in_turns = lambda specs: [[s] for s in specs]
    lv.NS_PREFIX = "jcdpdk"
    if os.geteuid() != 0:
        skip("needs root to create network namespaces and run DPDK's EAL")
    line = next((l for l in run([jc, "backends"]).stdout.splitlines()
                 if l.split()[:1] == ["dpdk"]), "")
    if "unavailable" in line.split()[1:2]:
        skip("dpdk backend unavailable: " + line.split(None, 2)[2])
    for tool in ("ip", "tcpreplay", "tshark"):
        if shutil.which(tool) is None:
            skip(f"{tool} is not installed")
    if run(["ip", "netns", "list"], check_rc=False).returncode != 0:
        skip("`ip netns` does not work here")

    lv.remove_stale_namespaces()
    pid = os.getpid()
    ns_a, ns_b = f"{lv.NS_PREFIX}a{pid}", f"{lv.NS_PREFIX}b{pid}"
    work = tempfile.mkdtemp(prefix="jarvis-dpdk-veth-")
    dirs_before = dpdk_runtime_dirs()
    t0 = time.monotonic()
    skip_reason = None
    try:
        try:
            lv.setup_namespaces(ns_a, ns_b)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            skip_reason = f"cannot create namespaces and a veth pair: {e}"
        if skip_reason is None:
            log(f"namespaces {ns_a} (va) and {ns_b} (vb) ready; capture args {lv.BACKEND_ARGS}")
            frames = lv.generate_frames()
            gen = os.path.join(work, "gen.pcap")
            lv.write_pcap(gen, frames)
            promisc_before = xdp_on(ns_a, "va")[1]
            lv.round_filter(jc, ns_a, ns_b, work, frames, gen)
            lv.round_options(jc, ns_a, ns_b, work, frames, gen)
            lv.round_early_signal(jc, ns_a, work)
            round_drops(jc, ns_a, ns_b, work, gen)
            round_flows(jc, ns_a, ns_b, gen)
            round_daemon(jc, ns_a, ns_b, gen, a.dpdk_args)
            xdp, promisc = xdp_on(ns_a, "va")
            check(not xdp, "clean stop: no XDP program left on va")
            check(promisc == promisc_before, "clean stop: promiscuous mode of va as before",
                  f"before {promisc_before}, after {promisc}")
            round_net_pcap(jc, work, frames, gen)
            left = [d for d in dpdk_runtime_dirs() if d not in dirs_before]
            check(not left, "clean stop: no DPDK runtime directory left in /var/run/dpdk",
                  str(left))
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        check(False, "test run", str(e))
    finally:
        for ns in (ns_a, ns_b):
            if ns in lv.list_netns():
                run(["ip", "netns", "del", ns], check_rc=False)
        left = [ns for ns in (ns_a, ns_b) if ns in lv.list_netns()]
        check(not left, "namespaces removed", f"still present: {left}")
    log(f"elapsed {time.monotonic() - t0:.1f} s")
    if lv.failures:
        log(f"FAILED: {len(lv.failures)} check(s); files kept in {work}")
        return 1
    shutil.rmtree(work, ignore_errors=True)
    if skip_reason is not None:
        skip(skip_reason)
    log("PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
