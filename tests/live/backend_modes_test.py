#!/usr/bin/python3
"""`backends -i IFACE` and `GET .../backends?interface=IFACE` against what the kernel offers.

Usage: backend_modes_test.py JARVIS_CAPTURE

Creates namespaces A and B (names carry this process's pid) joined by a veth pair va/vb, and
an ifb device in A; removes them afterwards. Nothing is sent anywhere but over that pair and
loopback inside A. The ground truth is found without jarvis-capture where that can be done:

  1. ethtool -i / -T / -l on va: driver, timestamping capabilities, PHC, RX queues, as the CLI
     and REST reports give them; no hardware receive stamps, so `hardware` and `ptp` are refused
     for every backend and POST /start with them is a 422 with the same reason.
  2. Native XDP: a trivial XDP program (compiled here with clang -target bpf) attached with
     `ip link set dev D xdpdrv` succeeds on va and fails on the ifb device; the reports must say
     native on va and generic-only on ifb. While it is attached, the reports name its id (as
     `ip link` shows it) and the dpdk backend reports the refusal it would give.
  3. Zero-copy: a real xdp capture on va (which tries a zero-copy bind first) must run in the
     mode the report predicted, and through the REST API /status must carry it as backend_mode.
  4. RX queues follow `ethtool -L va rx 2`.
  5. An unknown interface: CLI exit 1 with a one-line error; REST 400 with the reason; a name
     longer than IFNAMSIZ - 1: 422 at ["query", "interface"].

Exit 0 pass, 1 fail, 77 skipped (not root, no netns, ethtool/curl/clang missing).
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
import libpcap_veth_test as veth  # noqa: E402  (namespaces, run, check)

log, check, run = veth.log, veth.check, veth.run
PORT = 18031
BASE = f"http://127.0.0.1:{PORT}/packet_capture/capture"
XDP_PASS_C = """
__attribute__((section("xdp"), used)) int jc_modes_pass(void *ctx) { return 2; /* XDP_PASS */ }
char _license[] __attribute__((section("license"), used)) = "GPL";
"""


def cli_modes(ns, jc, iface):
    """rc, stdout, stderr of `backends -i IFACE` in namespace ns."""
    p = run(["ip", "netns", "exec", ns, jc, "backends", "-i", iface], check_rc=False)
    return p.returncode, p.stdout, p.stderr


def cli_summary(out):
    """{backend: summary} and the interface lines of the CLI's report."""
    lines = out.splitlines()
    start = next((i for i, l in enumerate(lines) if l.startswith("interface ")), None)
    if start is None:
        return {}, []
    modes, iface = {}, []
    in_modes = False
    for l in lines[start:]:
        if l.startswith("modes on "):
            in_modes = True
        elif in_modes and l.startswith("  "):
            name, _, rest = l.strip().partition(" ")
            modes[name] = rest.strip()
        elif not in_modes:
            iface.append(l)
    return modes, iface


def http(ns, method, path, body=None):
    """(status, parsed JSON) of a request to the daemon in namespace ns."""
    cmd = ["ip", "netns", "exec", ns, "curl", "-s", "-o", "-", "-w", "\n%{http_code}", "-X",
           method, BASE + path]
    if body is not None:
        cmd += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
    out = run(cmd, check_rc=False).stdout
    text, _, code = out.rpartition("\n")
    try:
        return int(code), json.loads(text)
    except ValueError:
        return int(code or 0), {"unparsed": text}


def ethtool_facts(ns, dev):
    """Driver, timestamping capabilities, PHC and current RX queues, from ethtool itself."""
    drv = run(["ip", "netns", "exec", ns, "ethtool", "-i", dev]).stdout
    driver = re.search(r"^driver:\s*(\S+)", drv, re.M).group(1)
    ts = run(["ip", "netns", "exec", ns, "ethtool", "-T", dev]).stdout
    caps_block = ts.split("Capabilities:")[1].split("PTP Hardware Clock")[0]
    caps = [w.strip().split()[0] for w in caps_block.strip().splitlines() if w.strip()]
    phc = re.search(r"PTP Hardware Clock:\s*(\S+)", ts).group(1)
    ch = run(["ip", "netns", "exec", ns, "ethtool", "-l", dev]).stdout
    cur = ch.split("Current hardware settings:")[-1]
    rx = int(re.search(r"RX:\s+(\d+)", cur).group(1))
    comb = re.search(r"Combined:\s+(\d+)", cur)
    return {"driver": driver, "ts_caps": caps,
            "phc_index": -1 if phc == "none" else int(phc),
            "rx_queues": rx + (int(comb.group(1)) if comb else 0)}


def xdp_prog_id(ns, dev):
    """(mode word, id) of the XDP program `ip link` shows on dev, or (None, None)."""
    out = run(["ip", "-n", ns, "-d", "link", "show", "dev", dev]).stdout
    m = re.search(r"\b(xdp|xdpgeneric|xdpdrv|xdpoffload)\b.*?prog/xdp\S* id (\d+)", out, re.S)
    if not m:
        m2 = re.search(r"prog/xdp\S* id (\d+)", out)
        return (None, int(m2.group(1))) if m2 else (None, None)
    return m.group(1), int(m.group(2))


def native_attach(ns, dev, obj):
    """Whether the kernel takes a trivial program on dev in native (driver) mode; detaches it."""
    p = run(["ip", "-n", ns, "link", "set", "dev", dev, "xdpdrv", "obj", obj, "sec", "xdp"],
            check_rc=False)
    ok = p.returncode == 0
    if ok:
        run(["ip", "-n", ns, "link", "set", "dev", dev, "xdpdrv", "off"], check_rc=False)
    return ok, p.stderr.strip()


def part_facts(ns_a, jc, rest):
    log("-- 1: interface facts against ethtool")
    truth = ethtool_facts(ns_a, "va")
    log(f"   ethtool: {truth}")
    rc, out, err = cli_modes(ns_a, jc, "va")
    check(rc == 0 and err == "", "cli: backends -i va exits 0, nothing on stderr", err)
    modes, iface_lines = cli_summary(out)
    for l in iface_lines:
        log(f"   {l}")
    for name, s in modes.items():
        log(f"   {name:<10} {s}")
    check(bool(iface_lines) and f"driver {truth['driver']}," in iface_lines[0],
          f"cli: driver {truth['driver']} as ethtool -i says", iface_lines[:1])
    check(bool(iface_lines) and f"{truth['rx_queues']} RX queue" in iface_lines[0],
          f"cli: {truth['rx_queues']} RX queue(s) as ethtool -l says", iface_lines[:1])

    i = rest["interface"]
    check(i["driver"] == truth["driver"], "rest: interface.driver as ethtool -i", i["driver"])
    t = i["timestamping"]
    check(sorted(t["capabilities"]) == sorted(truth["ts_caps"]),
          "rest: timestamping capabilities as ethtool -T lists them",
          f"{t['capabilities']} vs {truth['ts_caps']}")
    check(t["phc_index"] == truth["phc_index"], "rest: phc_index as ethtool -T",
          f"{t['phc_index']} vs {truth['phc_index']}")
    hw_rx = "hardware-receive" in truth["ts_caps"] and "hardware-raw-clock" in truth["ts_caps"]
    want = ["kernel", "ntp"] + (["hardware"] if hw_rx else []) + (
        ["ptp"] if hw_rx and truth["phc_index"] >= 0 else [])
    check(sorted(t["timestamp_sources"]) == sorted(want),
          f"rest: the interface gives {want} (ethtool -T)", t["timestamp_sources"])
    check(i["rx_queues"] == truth["rx_queues"], "rest: rx_queues as ethtool -l", i["rx_queues"])

    by = {b["name"]: b for b in rest["available_backends"]}
    for name, b in by.items():
        m = b.get("modes")
        if not check(isinstance(m, dict) and "summary" in m, f"rest: {name} has modes", str(m)):
            continue
        check(modes.get(name) == m["summary"], f"cli and rest agree on {name}",
              f"{modes.get(name)!r} vs {m['summary']!r}")
        if name == "pf_ring" and b["status"] == "unavailable":
            continue
        if not hw_rx:
            check(m["timestamp_sources"] == ["kernel", "ntp"] and
                  set(m["timestamp_refused"]) == {"hardware", "ptp"},
                  f"rest: {name} accepts kernel and ntp only on va", str(m["timestamp_sources"]))
    return by


def part_timestamp_refusal(ns_a, by):
    log("-- 1b: POST /start with timestamp_source hardware is refused with the report's reason")
    for backend in ("libpcap", "af_packet", "xdp"):
        if by.get(backend, {}).get("status") != "available":
            continue
        refused = by[backend]["modes"]["timestamp_refused"].get("hardware")
        if refused is None:
            continue
        code, j = http(ns_a, "POST", "/start", {"interface": "va", "backend": backend,
                                                  "timestamp_source": "hardware"})
        detail = j.get("detail") if isinstance(j, dict) else None
        msg = detail[0].get("msg", "") if isinstance(detail, list) and detail else ""
        loc = detail[0].get("loc") if isinstance(detail, list) and detail else None
        check(code == 422 and loc == ["body", "timestamp_source"] and refused in msg,
              f"{backend}: start with hardware timestamps is 422 with the report's reason",
              f"{code} {j}")
        if code == 200:  # never expected; leave nothing running
            http(ns_a, "POST", "/stop", {"graceful": False})


def part_native(ns_a, jc, obj, rest_va):
    log("-- 2: native XDP, checked by attaching a trivial program with ip link")
    ok_va, why_va = native_attach(ns_a, "va", obj)
    log(f"   ip link xdpdrv on va: {'taken' if ok_va else 'refused: ' + why_va}")
    x = rest_va["interface"]["xdp"]
    check(x["native"] == ok_va, f"va: native {ok_va} as the kernel answered", str(x))
    log(f"   how the report knew: {x['determined_by']} ({x['note']})")
    check(x["determined_by"] in ("probed", "from driver table"),
          "va: the report says how it knew (probed or driver table)", x["determined_by"])

    if run(["ip", "-n", ns_a, "link", "add", "jcifb", "type", "ifb"],
           check_rc=False).returncode != 0:
        log("   no ifb devices in this kernel: the ifb half is skipped")
    else:
        run(["ip", "-n", ns_a, "link", "set", "jcifb", "up"])
        ok_ifb, why_ifb = native_attach(ns_a, "jcifb", obj)
        log(f"   ip link xdpdrv on jcifb: {'taken' if ok_ifb else 'refused: ' + why_ifb}")
        rc, out, _ = cli_modes(ns_a, jc, "jcifb")
        modes, lines = cli_summary(out)
        code, j = http(ns_a, "GET", "/backends?interface=jcifb")
        xi = j.get("interface", {}).get("xdp", {}) if code == 200 else {}
        check(code == 200 and xi.get("native") == ok_ifb,
              f"ifb: native {ok_ifb} as the kernel answered", str(xi))
        xm = next((b["modes"] for b in j.get("available_backends", []) if b["name"] == "xdp"), {})
        if not ok_ifb and os.environ.get("JARVIS_XDP_ATTACH") is None:
            check(xm.get("mode") == "skb/copy", "ifb: the xdp backend would run skb/copy",
                  str(xm.get("mode")))
            check(modes.get("xdp", "").startswith("skb/copy"), "ifb: cli says skb/copy",
                  modes.get("xdp"))
        run(["ip", "-n", ns_a, "link", "del", "jcifb"], check_rc=False)

    if ok_va:
        log("-- 2b: a program attached to va is reported, and dpdk says it would refuse")
        run(["ip", "-n", ns_a, "link", "set", "dev", "va", "xdpdrv", "obj", obj, "sec", "xdp"])
        try:
            _, pid = xdp_prog_id(ns_a, "va")
            code, j = http(ns_a, "GET", "/backends?interface=va")
            att = j.get("interface", {}).get("xdp", {}).get("attached_program")
            check(isinstance(att, dict) and att.get("id") == pid and att.get("mode") == "native",
                  f"va: attached program id {pid} in native mode as ip link shows", str(att))
            dm = next((b["modes"] for b in j.get("available_backends", [])
                       if b["name"] == "dpdk"), {})
            if next((b for b in j.get("available_backends", []) if b["name"] == "dpdk"),
                    {}).get("status") == "available":
                check(dm.get("device") is None and "already has an XDP program attached" in
                      str(dm.get("refusal")), "dpdk: would refuse while a program is attached",
                      str(dm))
        finally:
            run(["ip", "-n", ns_a, "link", "set", "dev", "va", "xdpdrv", "off"], check_rc=False)
    return ok_va


def part_capture_mode(ns_a, jc, rest_va):
    log("-- 3: zero-copy or copy: a real xdp capture and /status against the prediction")
    by = {b["name"]: b for b in rest_va["available_backends"]}
    if by.get("xdp", {}).get("status") != "available":
        log(f"   xdp unavailable here: {by.get('xdp', {}).get('reason')}: part skipped")
        return
    predicted = by["xdp"]["modes"]["mode"]
    p = subprocess.Popen(["ip", "netns", "exec", ns_a, jc, "capture", "-i", "va", "--backend",
                          "xdp", "-q", "-w", "/dev/null"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        first = p.stderr.readline()
        mode_line = p.stderr.readline().strip()
        p.send_signal(signal.SIGTERM)
        p.wait(10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stderr.close()
    log(f"   capture: {mode_line}; predicted {predicted}")
    check(first.startswith("listening on va"), "capture started", first)
    check(mode_line.split(" (")[0] == f"xdp mode: {predicted}",
          f"capture runs in the predicted mode {predicted} (it tried zero-copy first)", mode_line)
    check("zerocopy" not in mode_line, "veth: zero-copy is not possible (copy mode)", mode_line)

    if by.get("dpdk", {}).get("status") == "available" and by["dpdk"]["modes"].get("device"):
        device = by["dpdk"]["modes"]["device"]
        p = subprocess.Popen(["ip", "netns", "exec", ns_a, jc, "capture", "-i", "va",
                              "--backend", "dpdk", "-q", "-w", "/dev/null"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
        try:
            first = p.stderr.readline()
            dpdk_line = p.stderr.readline().strip()
            p.send_signal(signal.SIGTERM)
            p.wait(20)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stderr.close()
        log(f"   dpdk capture: {dpdk_line}; predicted {device}")
        check(first.startswith("listening on va") and
              dpdk_line.startswith(f"dpdk mode: {device},"),
              f"dpdk: a capture makes the predicted {device} vdev", f"{first!r} {dpdk_line!r}")

    code, j = http(ns_a, "POST", "/start", {"interface": "va", "backend": "xdp",
                                              "buffer_size_mb": 64})
    if not check(code == 200, "rest: start an xdp session on va", f"{code} {j}"):
        return
    try:
        code, st = http(ns_a, "GET", "/status")
        check(code == 200 and st.get("backend_mode", "").split(" (")[0] == predicted,
              f"/status backend_mode is {predicted} while running", str(st.get("backend_mode")))
    finally:
        http(ns_a, "POST", "/stop", {"graceful": True})
    code, st = http(ns_a, "GET", "/status")
    check(st.get("backend_mode", "").split(" (")[0] == predicted,
          "/status keeps backend_mode after stop", str(st.get("backend_mode")))
    code, _ = http(ns_a, "POST", "/start", {"interface": "va", "backend": "af_packet"})
    if code == 200:
        _, st = http(ns_a, "GET", "/status")
        check(st.get("backend_mode") is None, "/status backend_mode is null for af_packet",
              str(st.get("backend_mode")))
        http(ns_a, "POST", "/stop", {"graceful": False})


def part_queues(ns_a, ns_b, jc):
    log("-- 4: RX queues follow ethtool -L")
    for ns, dev in ((ns_a, "va"), (ns_b, "vb")):
        if run(["ip", "netns", "exec", ns, "ethtool", "-L", dev, "rx", "2", "tx", "2"],
               check_rc=False).returncode != 0:
            log("   ethtool -L refused (one CPU?): part skipped")
            return
    truth = ethtool_facts(ns_a, "va")["rx_queues"]
    code, j = http(ns_a, "GET", "/backends?interface=va")
    i = j.get("interface", {})
    check(i.get("rx_queues") == truth == 2, "rx_queues 2 after ethtool -L rx 2",
          f"{i.get('rx_queues')} vs ethtool {truth}")
    xm = next((b["modes"] for b in j.get("available_backends", []) if b["name"] == "xdp"), {})
    if "sockets" in xm:
        check(xm["sockets"] == truth, "xdp: one socket per RX queue", str(xm.get("sockets")))


def part_unknown(ns_a, jc):
    log("-- 5: unknown interface")
    rc, out, err = cli_modes(ns_a, jc, "jcnosuch0")
    check(rc == 1 and out == "" and err.strip() == "jarvis-capture: no such interface: jcnosuch0"
          and err.count("\n") == 1, "cli: one-line error, exit 1, nothing listed",
          f"rc={rc} out={out!r} err={err!r}")
    code, j = http(ns_a, "GET", "/backends?interface=jcnosuch0")
    check(code == 400 and j == {"detail": "no such interface: jcnosuch0"},
          "rest: 400 {detail: no such interface}", f"{code} {j}")
    code, j2 = http(ns_a, "POST", "/start", {"interface": "jcnosuch0"})
    check(code == 400 and j2.get("detail", "").startswith("no such interface"),
          "rest: /start answers the same interface with the same 400", f"{code} {j2}")
    code, j = http(ns_a, "GET", "/backends?interface=" + "x" * 16)
    d = j.get("detail") if isinstance(j, dict) else None
    check(code == 422 and isinstance(d, list) and d[0]["loc"] == ["query", "interface"] and
          d[0]["type"] == "string_too_long", "rest: a 16-character name is 422 string_too_long",
          f"{code} {j}")
    code, j = http(ns_a, "GET", "/backends")
    check(code == 200 and "interface" not in j and
          all("modes" not in b for b in j.get("available_backends", [])),
          "rest: without ?interface= nothing interface-specific", str(j)[:200])


def main():
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} JARVIS_CAPTURE", file=sys.stderr)
        return 2
    jc = os.path.abspath(sys.argv[1])
    if os.geteuid() != 0:
        veth.skip("needs root to create network namespaces")
    for tool in ("ip", "ethtool", "curl", "clang"):
        if shutil.which(tool) is None:
            veth.skip(f"{tool} is not installed")
    if run(["ip", "netns", "list"], check_rc=False).returncode != 0:
        veth.skip("`ip netns` does not work here")

    veth.NS_PREFIX = "jcmodes"
    veth.remove_stale_namespaces()
    pid = os.getpid()
    ns_a, ns_b = f"jcmodesa{pid}", f"jcmodesb{pid}"
    work = tempfile.mkdtemp(prefix="jarvis-modes-")
    obj = os.path.join(work, "pass.bpf.o")
    src = os.path.join(work, "pass.bpf.c")
    with open(src, "w") as f:
        f.write(XDP_PASS_C)
    if run(["clang", "-O2", "-target", "bpf", "-c", src, "-o", obj],
           check_rc=False).returncode != 0:
        veth.skip("clang cannot build a BPF object here")
    skip_reason = None
    srv = None
    try:
        try:
            veth.setup_namespaces(ns_a, ns_b)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            skip_reason = f"cannot create namespaces and a veth pair: {e}"
        if skip_reason is None:
            srv = subprocess.Popen(["ip", "netns", "exec", ns_a, jc, "serve", "--listen",
                                    f"127.0.0.1:{PORT}"], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if run(["ip", "netns", "exec", ns_a, "curl", "-s", "-o", "/dev/null",
                        f"http://127.0.0.1:{PORT}/healthz"], check_rc=False).returncode == 0:
                    break
                time.sleep(0.1)
            code, rest_va = http(ns_a, "GET", "/backends?interface=va")
            check(code == 200 and "interface" in rest_va, "rest: backends?interface=va is 200",
                  f"{code} {str(rest_va)[:300]}")
            if code == 200:
                by = part_facts(ns_a, jc, rest_va)
                part_timestamp_refusal(ns_a, by)
                part_native(ns_a, jc, obj, rest_va)
                part_capture_mode(ns_a, jc, rest_va)
                part_queues(ns_a, ns_b, jc)
            part_unknown(ns_a, jc)
    except (RuntimeError, subprocess.TimeoutExpired, KeyError, AttributeError) as e:
        check(False, "test run", repr(e))
    finally:
        if srv is not None:
            srv.terminate()
            try:
                srv.wait(10)
            except subprocess.TimeoutExpired:
                srv.kill()
                srv.wait()
        for ns in (ns_a, ns_b):
            if ns in veth.list_netns():
                run(["ip", "netns", "del", ns], check_rc=False)
        left = [ns for ns in (ns_a, ns_b) if ns in veth.list_netns()]
        check(not left, "namespaces removed", f"still present: {left}")
    if veth.failures:
        log(f"FAILED: {len(veth.failures)} check(s); files kept in {work}")
        return 1
    shutil.rmtree(work, ignore_errors=True)
    if skip_reason is not None:
        veth.skip(skip_reason)
    log("PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
