#!/usr/bin/python3
"""NetFlow/IPFIX export from the running daemon, driven over HTTP and decoded by nfcapd/nfdump.

Usage: netflow_export_test.py JARVIS_CAPTURE GEN_FLOWS

Needs root, ip, tcpreplay, nfcapd, nfdump and Debian's python3-numpy (for gen_flows.py).
Creates network namespaces A and B (names carry this process's pid) joined by a veth pair, va in
A and vb in B, IPv6 off, no address and no route on either end: frames sent by tcpreplay from vb
reach va and nothing else. The daemon, nfcapd and this script's client part run inside A
(re-executed with `ip netns exec A`); the collector is 127.0.0.1 of A. Host names are resolved
inside A only: "localhost" comes from /etc/hosts, and a name that must not resolve is looked up
in a namespace with no route to any resolver. The namespaces are removed afterwards.

Checks:
  - 422 for every invalid field, all at once (FastAPI shape), before any state check: a
    missing, mistyped or out-of-range field, a host name that does not resolve, a collector
    with no route, biflow without IPFIX; 409 without a capture and with a capture that does not
    meter flows, each saying which; nothing is stored or enabled by a refused request.
  - One session per round, traffic from gen_flows.py files replayed on the veth:
      v9 to "localhost": every flow of the ground truth arrives as its unidirectional records
        (5-tuple, VLAN, packets, bytes); flows that finished while the capture ran are exported
        before the stop; every flow still in the daemon's flow table just before the stop (its
        own /flows) arrives with the same counters (the stop ends them into the exporter);
      IPFIX with export_interval_sec 1, at the recorded pace: the active timeout splits long
        flows (more records than directions) and the sums equal the truth;
      IPFIX biflow: one record per flow, reverse counters as nfdump's "out" counters;
      v5: only the IPv4 flows, the IPv6 ones counted as skipped;
      IPFIX from an af_packet capture with two fanout workers: both shards feed one exporter;
      export enabled again mid-session: with the same collector and version the exporter stays
        (same source port, one unbroken sequence); then IPFIX to a second collector replaces
        it: the old exporter sent what it held, the new one the rest, the counters are summed
        over both.
    In every round nfcapd reports 0 sequence failures, and the exporter's records_sent in the
    stop reply, in GET .../metrics and in Prometheus equals the records nfdump decoded; nothing
    was dropped or failed; flows_received equals the records the meter handed out.

Exit 0 pass, 1 fail, 77 skipped.
"""

import collections
import csv
import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from apitest import PREFIX, Daemon, check, detail_locs, finish, is_detail_string, log, skip  # noqa: E402,E501
from contract_test import prometheus_case  # noqa: E402
from workflows_test import (kill_ns_processes, list_netns, pid_alive, run, sent_check,  # noqa: E402
                            setup_namespaces)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "export"))
from udp_drain import wait_drained  # noqa: E402

NS_PREFIX = "jcnf"
NF = "/netflow/export/enable"
PPS = 2000
# gen_flows.py inputs: name -> (packets, flows, seed, duration in seconds)
INPUTS = {
    "main": (3000, 200, 7, 2),
    "paced": (900, 24, 8, 4),
    "first": (1000, 80, 9, 1),
    "second": (1000, 80, 10, 1),
}


def norm(a):
    return str(ipaddress.ip_address(a))


# ---------------------------------------------------------------- outer (root namespace)

def remove_stale_namespaces():
    for name in list_netns():
        m = re.fullmatch(NS_PREFIX + r"[ab](\d+)", name)
        if m and (int(m.group(1)) == os.getpid() or not pid_alive(int(m.group(1)))):
            log(f"removing stale namespace {name} from an earlier run")
            kill_ns_processes(name)
            run(["ip", "netns", "del", name], check_rc=False)


def generate(gen, work):
    for name, (packets, flows, seed, duration) in INPUTS.items():
        out = os.path.join(work, name + ".pcap")
        p = subprocess.run(["/usr/bin/python3", gen, "--packets", str(packets), "--flows",
                            str(flows), "--seed", str(seed), "--duration", str(duration),
                            "--out", out], capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            skip(f"gen_flows.py failed (python3-numpy missing?): {p.stderr.strip()[-300:]}")
        os.chmod(out, 0o644)


def outer(jc, gen):
    if os.geteuid() != 0:
        skip("needs root to create network namespaces")
    for tool in ("ip", "tcpreplay", "nfcapd", "nfdump"):
        if shutil.which(tool) is None:
            skip(f"{tool} is not installed")
    if not os.path.exists(gen):
        skip(f"no gen_flows.py at {gen}")
    if run(["ip", "netns", "list"], check_rc=False).returncode != 0:
        skip("`ip netns` does not work here")
    remove_stale_namespaces()
    pid = os.getpid()
    ns_a, ns_b = f"{NS_PREFIX}a{pid}", f"{NS_PREFIX}b{pid}"
    work = tempfile.mkdtemp(prefix="jarvis-api-netflow-")
    os.chmod(work, 0o755)
    rc = 1
    left = []
    try:
        generate(gen, work)
        try:
            setup_namespaces(ns_a, ns_b)
            # gen_flows.py writes full-size frames, VLAN-tagged ones among them: room for them.
            for ns, dev in ((ns_a, "va"), (ns_b, "vb")):
                run(["ip", "-n", ns, "link", "set", dev, "mtu", "9000"])
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            skip(f"cannot create namespaces and a veth pair: {e}")
        log(f"namespaces {ns_a} (va) and {ns_b} (vb) ready")
        cmd = ["ip", "netns", "exec", ns_a, sys.executable, os.path.abspath(__file__),
               "--inner", jc, ns_b, work]
        inner_proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
        try:
            rc = inner_proc.wait(timeout=240)
        except subprocess.TimeoutExpired:
            inner_proc.kill()
            inner_proc.wait()
            log("FAIL: the test did not finish within 240 s")
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


# ---------------------------------------------------------------- ground truth and nfdump

def truth(work, name):
    """{(client, server, cport, sport, proto, vlan): (pkts c2s, pkts s2c, bytes c2s, bytes s2c)}
    with the ports of ICMP flows as None."""
    out = {}
    for r in csv.DictReader(open(os.path.join(work, name + ".pcap.truth.csv"))):
        proto = int(r["proto"])
        icmp = proto in (1, 58)
        key = (norm(r["client"]), norm(r["server"]), None if icmp else int(r["cport"]),
               None if icmp else int(r["sport"]), proto, int(r["vlan"]))
        out[key] = (int(r["pkts_c2s"]), int(r["pkts_s2c"]), int(r["ipbytes_c2s"]),
                    int(r["ipbytes_s2c"]))
    return out


def uniflow(flows, v5=False):
    """The unidirectional records bidirectional flows become: {(src, dst, sp, dp, proto, vlan):
    [packets, bytes]}; v5 carries neither VLAN nor IPv6."""
    want = {}
    for (c, s, cp, sp, proto, vlan), (pc, ps, bc, bs) in flows.items():
        if v5 and ":" in c:
            continue
        for key, pk, by in (((c, s, cp, sp, proto, 0 if v5 else vlan), pc, bc),
                            ((s, c, sp, cp, proto, 0 if v5 else vlan), ps, bs)):
            if pk:
                want[key] = [pk, by]
    return want


def snapshot_flows(flows):
    """The daemon's /flows objects in the shape of truth()."""
    out = {}
    for f in flows:
        icmp = f["protocol"] in (1, 58)
        key = (norm(f["src_ip"]), norm(f["dst_ip"]), None if icmp else f["src_port"],
               None if icmp else f["dst_port"], f["protocol"], f["vlan"])
        out[key] = (f["packets_fwd"], f["packets_rev"], f["bytes_fwd"], f["bytes_rev"])
    return out


class Collector:
    """nfcapd on 127.0.0.1:PORT of this namespace, writing into its own folder."""

    started = []  # every collector this run started, stopped at the end whatever happened

    def __init__(self, work, name, port):
        self.port = port
        self.dir = os.path.join(work, "nf-" + name)
        os.makedirs(self.dir)
        self.proc = subprocess.Popen(
            ["nfcapd", "-b", "127.0.0.1", "-p", str(port), "-w", self.dir, "-t", "3600",
             "-B", "4194304", "-P", os.path.join(self.dir, "nfcapd.pid")],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        Collector.started.append(self)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.proc.poll() is None:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    return  # nfcapd holds the port
            time.sleep(0.05)
        raise RuntimeError(f"nfcapd did not come up on port {port}: "
                           f"{self.proc.stdout.read() if self.proc.poll() is not None else ''}")

    def stop(self):
        """Stops nfcapd once it has read every datagram sent to it (udp_drain.py says why)."""
        if self.proc.poll() is None:
            wait_drained(self.port, self.proc, log=log)
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def stats(self):
        """(flows, sequence failures) as nfdump -I reports them."""
        p = subprocess.run(["nfdump", "-R", self.dir, "-I"], capture_output=True, text=True)
        flows = re.search(r"^Flows:\s*(\d+)", p.stdout, re.M)
        seq = re.search(r"^Sequence failures:\s*(\d+)", p.stdout, re.M)
        if not flows or not seq:
            raise RuntimeError(f"nfdump -I on {self.dir}: {p.stdout.strip()} {p.stderr.strip()}")
        return int(flows.group(1)), int(seq.group(1))

    def records(self):
        """Every record nfdump decoded: [(src, dst, sp, dp, proto, vlan, pkts, bytes, out pkts,
        out bytes)], ICMP ports as None."""
        fmt = "fmt:%sa,%da,%sp,%dp,%pr,%svln,%pkt,%byt,%opkt,%obyt"
        p = subprocess.run(["nfdump", "-R", self.dir, "-q", "-N", "-6", "-o", fmt],
                           capture_output=True, text=True)
        out = []
        for line in p.stdout.splitlines():
            c = [x.strip() for x in line.split(",")]
            if len(c) < 10:
                continue
            proto = int(c[4])
            icmp = proto in (1, 58)
            out.append((norm(c[0]), norm(c[1]), None if icmp else int(c[2]),
                        None if icmp else int(c[3]), proto, int(c[5]), int(c[6]), int(c[7]),
                        int(c[8]), int(c[9])))
        return out


def summed(records, v5=False):
    """nfdump's unidirectional records summed per key (active-timeout records add up)."""
    got = collections.defaultdict(lambda: [0, 0])
    for src, dst, sp, dp, proto, vlan, pk, by, _, _ in records:
        k = (src, dst, sp, dp, proto, 0 if v5 else vlan)
        got[k][0] += pk
        got[k][1] += by
    return dict(got)


def diff(want, got, limit=5):
    missing = [k for k in want if k not in got]
    extra = [k for k in got if k not in want]
    wrong = [(k, want[k], got[k]) for k in want if k in got and want[k] != got[k]]
    return (f"{len(missing)} missing {missing[:limit]}, {len(extra)} extra {extra[:limit]}, "
            f"{len(wrong)} with other counters {wrong[:limit]}")


# ---------------------------------------------------------------- inner helpers (in A)

def replay(ns_b, work, name, pps=PPS):
    """Sends a gen_flows.py file from vb (at `pps`, or at its recorded pace when None)."""
    pcap = os.path.join(work, name + ".pcap")
    cmd = ["ip", "netns", "exec", ns_b, "tcpreplay", "-i", "vb"]
    cmd += ["--pps", str(pps)] if pps else []
    p = run(cmd + [pcap], timeout=120, check_rc=False)
    sent_check(p.returncode, p.stdout + p.stderr, INPUTS[name][0])
    return INPUTS[name][0]


def metrics(d):
    r = d.api("GET", "/metrics")
    if r.status != 200:
        raise RuntimeError(f"GET metrics: {r.status} {r.body[:200]!r}")
    return r.json()


def wait_for(d, what, cond, timeout=15):
    """Polls GET .../metrics until cond(metrics) holds; returns the last metrics."""
    deadline = time.monotonic() + timeout
    m = metrics(d)
    while not cond(m) and time.monotonic() < deadline:
        time.sleep(0.1)
        m = metrics(d)
    check(cond(m), what, str(m)[:400])
    return m


def exported(m):
    return (m.get("netflow_export") or {}).get("records_sent", 0)


def start_session(d, **extra):
    """A capture on va that meters flows. Metering stays on from one session to the next once
    enabled (the earlier sessions of this run enabled it with the defaults: table 100000, idle
    300 s, active 60 s)."""
    r = d.api("POST", "/start", dict({"interface": "va", "buffer_size_mb": 64}, **extra))
    if r.status != 200:
        raise RuntimeError(f"start on va: {r.status} {r.body[:300]!r}")
    st = d.api("GET", "/status").json()
    if not st.get("flow_metering_enabled"):
        r = d.api("POST", "/flow/meter/enable", {})
        if r.status != 200:
            raise RuntimeError(f"flow/meter/enable: {r.status} {r.body[:300]!r}")
    st = d.api("GET", "/status").json()
    if (st.get("flow_meter") or {}).get("export_interval_sec") != 60:
        raise RuntimeError(f"the meter's active timeout is not 60 s: {st.get('flow_meter')}")


def enable(d, name, body):
    r = d.api("POST", NF, body)
    j = r.json_or_none() or {}
    want = {"status": "enabled", "collector_ip": body["collector_ip"],
            "collector_port": body.get("collector_port", 2055),
            "export_interval_sec": body.get("export_interval_sec", 60),
            "netflow_version": body.get("netflow_version", 5)}
    ok = check(r.status == 200 and {k: j.get(k) for k in want} == want and
               j.get("biflow") == body.get("biflow", False) and
               isinstance(j.get("source_port"), int) and j["source_port"] > 0,
               f"{name}: 200 with status enabled, the contract's fields echoed, the source port",
               f"{r.status} {r.body[:400]!r}")
    return j if ok else None


def stop_and_compare(d, name, collectors, want, v5=False, biflow=False, snapshot=None):
    """Stops the session (graceful), then checks what the collectors decoded against `want`
    (truth-shaped flows) and the exporter's own counters. Returns the stop reply."""
    r = d.api("POST", "/stop", {"graceful": True})
    j = r.json_or_none() or {}
    check(r.status == 200 and j.get("status") == "stopped", f"{name}: stop 200",
          f"{r.status} {r.body[:300]!r}")
    ne = j.get("netflow_export") or {}
    check(ne.get("enabled") is False and ne.get("flows_queued") == 0,
          f"{name}: stop reply has netflow_export, no longer enabled, nothing queued", str(ne))
    for c in collectors:
        c.stop()
    records, nf_flows, seq = [], 0, 0
    for c in collectors:
        records += c.records()
        n, s = c.stats()
        nf_flows += n
        seq += s
    check(seq == 0, f"{name}: nfcapd reports 0 sequence failures", f"{seq}")
    check(len(records) == nf_flows, f"{name}: nfdump lists the {nf_flows} records it counted",
          f"{len(records)}")
    if biflow:
        got = {r[:6]: (r[6], r[8], r[7], r[9]) for r in records}
        expect = dict(want)
        check(len(got) == len(records) and got == expect,
              f"{name}: one biflow record per flow of the truth ({len(expect)}), forward and "
              f"reverse packets and bytes equal", diff(expect, got))
    else:
        expect = uniflow(want, v5)
        got = summed(records, v5)
        check(got == expect,
              f"{name}: nfdump's records, summed per direction, equal the truth's "
              f"{len(expect)} directions (5-tuple, VLAN, packets, bytes)", diff(expect, got))
        if snapshot:
            own = uniflow(snapshot, v5)
            check(all(got.get(k) == v for k, v in own.items()),
                  f"{name}: the {len(snapshot)} flows in the daemon's table before the stop "
                  f"arrived with the daemon's own counters",
                  diff(own, {k: got[k] for k in own if k in got}))
    check(ne.get("records_sent") == nf_flows,
          f"{name}: records_sent in the stop reply ({ne.get('records_sent')}) equals the "
          f"records nfdump decoded ({nf_flows})")
    check(ne.get("flows_dropped_queue_full") == 0 and ne.get("send_errors") == 0 and
          ne.get("records_send_failed") == 0 and ne.get("refused") == 0,
          f"{name}: nothing dropped, refused or failed", str(ne))
    m = metrics(d)
    check(m.get("netflow_export") == ne,
          f"{name}: GET .../metrics after the stop has the same netflow_export",
          str(m.get("netflow_export")))
    samples = prometheus_case(d, name, need=("jarvis_netflow_records_sent_total",
                                             "jarvis_netflow_enabled"))
    check(samples.get("jarvis_netflow_records_sent_total") == nf_flows and
          samples.get("jarvis_netflow_enabled") == 0 and
          samples.get("jarvis_netflow_flows_received_total") ==
          samples.get("jarvis_flow_records_total"),
          f"{name}: Prometheus: records sent {nf_flows}, export disabled, flows_received equal "
          f"to the meter's records",
          str({k: v for k, v in samples.items() if "netflow" in k or "flow_records" in k}))
    st = d.api("GET", "/status").json()
    check(st.get("netflow_enabled") is False, f"{name}: status after stop: netflow_enabled false")
    return j, records


# ---------------------------------------------------------------- 422 and 409

def refused_cases(d):
    log("-- 422 for invalid bodies, 409 without a capture or without metering")
    B = "body"
    good = {"collector_ip": "127.0.0.1", "collector_port": 9995, "netflow_version": 9}
    r = d.api("POST", NF, good)
    check(r.status == 409 and is_detail_string(r) and
          "no capture is running" in r.json()["detail"],
          "no capture: 409 saying no capture is running", f"{r.status} {r.body[:300]!r}")
    bad_and_idle = {"collector_ip": "127.0.0.1", "netflow_version": 8}
    r = d.api("POST", NF, bad_and_idle)
    check(r.status == 422 and detail_locs(r) == [((B, "netflow_version"), "literal_error")],
          "no capture and an invalid version: 422 first, as FastAPI validates before the "
          "handler runs", f"{r.status} {r.body[:300]!r}")

    start = d.api("POST", "/start", {"interface": "va", "buffer_size_mb": 64})
    if not check(start.status == 200, "start on va: 200", f"{start.status} {start.body[:200]!r}"):
        return
    r = d.api("POST", NF, good)
    check(r.status == 409 and is_detail_string(r) and
          "flow metering is off" in r.json()["detail"],
          "capture without metering: 409 saying flow metering is off",
          f"{r.status} {r.body[:300]!r}")
    r = d.api("POST", NF, {"collector_ip": "no-such-host.invalid"})
    check(r.status == 422 and detail_locs(r) == [((B, "collector_ip"), "value_error")],
          "capture without metering, an unresolvable collector: 422, not 409",
          f"{r.status} {r.body[:300]!r}")
    r = d.api("POST", "/flow/meter/enable", {})
    check(r.status == 200, "flow/meter/enable: 200", f"{r.status} {r.body[:200]!r}")

    ip = {"collector_ip": "127.0.0.1"}
    cases = [
        ("no collector_ip", {}, [((B, "collector_ip"), "missing")]),
        ("collector_ip 5", {"collector_ip": 5}, [((B, "collector_ip"), "string_type")]),
        ("collector_ip \"\"", {"collector_ip": ""}, [((B, "collector_ip"), "value_error")]),
        ("a host name that does not resolve", {"collector_ip": "no-such-host.invalid"},
         [((B, "collector_ip"), "value_error")]),
        ("a collector with no route (192.0.2.1 from a namespace without routes)",
         {"collector_ip": "192.0.2.1"}, [((B, "collector_ip"), "value_error")]),
        ("collector_port 0", dict(ip, collector_port=0),
         [((B, "collector_port"), "greater_than_equal")]),
        ("collector_port 65536", dict(ip, collector_port=65536),
         [((B, "collector_port"), "less_than_equal")]),
        ("collector_port \"2055\"", dict(ip, collector_port="2055"),
         [((B, "collector_port"), "int_type")]),
        ("collector_port true", dict(ip, collector_port=True),
         [((B, "collector_port"), "int_type")]),
        ("collector_port 2055.5", dict(ip, collector_port=2055.5),
         [((B, "collector_port"), "int_from_float")]),
        ("export_interval_sec 0", dict(ip, export_interval_sec=0),
         [((B, "export_interval_sec"), "greater_than_equal")]),
        ("export_interval_sec 86401", dict(ip, export_interval_sec=86401),
         [((B, "export_interval_sec"), "less_than_equal")]),
        ("export_interval_sec \"60\"", dict(ip, export_interval_sec="60"),
         [((B, "export_interval_sec"), "int_type")]),
        ("netflow_version 7", dict(ip, netflow_version=7),
         [((B, "netflow_version"), "literal_error")]),
        ("netflow_version 11", dict(ip, netflow_version=11),
         [((B, "netflow_version"), "literal_error")]),
        ("netflow_version \"9\"", dict(ip, netflow_version="9"),
         [((B, "netflow_version"), "int_type")]),
        ("biflow with version 9", dict(ip, netflow_version=9, biflow=True),
         [((B, "biflow"), "value_error")]),
        ("biflow with the default version (5)", dict(ip, biflow=True),
         [((B, "biflow"), "value_error")]),
        ("biflow \"yes\"", dict(ip, netflow_version=10, biflow="yes"),
         [((B, "biflow"), "bool_type")]),
        ("every field wrong at once",
         {"collector_ip": "", "collector_port": 0, "export_interval_sec": 0,
          "netflow_version": 8, "biflow": "x"},
         [((B, "collector_ip"), "value_error"), ((B, "collector_port"), "greater_than_equal"),
          ((B, "export_interval_sec"), "greater_than_equal"),
          ((B, "netflow_version"), "literal_error"), ((B, "biflow"), "bool_type")]),
    ]
    for name, body, entries in cases:
        r = d.api("POST", NF, body)
        got = detail_locs(r) if r.status == 422 else None
        check(r.status == 422 and got is not None and
              sorted(got, key=repr) == sorted(entries, key=repr),
              f"{name}: 422 with exactly {entries}", f"got {r.status} {r.body[:400]!r}")
    for name, raw, entries in [("a body that is not JSON", "{collector_ip:", [((B, 0),
                                                                               "json_invalid")]),
                               ("a JSON array", "[]", [((B,), "model_attributes_type")]),
                               ("no body", "", [((B,), "missing")])]:
        r = d.api("POST", NF, raw=raw)
        check(r.status == 422 and detail_locs(r) == entries, f"{name}: 422 {entries}",
              f"{r.status} {r.body[:300]!r}")
    r = d.api("POST", NF, {"collector_ip": "192.0.2.1"})
    msg = ((r.json_or_none() or {}).get("detail") or [{}])[0].get("msg", "")
    check("cannot be reached" in msg, "no route: the message says the collector cannot be "
          "reached", msg)
    st = d.api("GET", "/status").json()
    check(st.get("netflow_enabled") is False and st.get("netflow_configured") is None,
          "after the refused requests: netflow_enabled false, nothing configured", str(st)[:300])
    m = metrics(d)
    check(m.get("netflow_export") is None, "metrics: netflow_export null while not exporting",
          str(m.get("netflow_export")))
    r = d.api("POST", "/stop", {"graceful": True})
    check(r.status == 200 and (r.json_or_none() or {}).get("netflow_export", 0) is None,
          "stop of a session that never exported: netflow_export null",
          f"{r.status} {r.body[:300]!r}")


# ---------------------------------------------------------------- rounds

def round_v9(d, ns_b, work):
    name = "v9 to localhost"
    log(f"-- {name}: main.pcap at {PPS} pps")
    col = Collector(work, "v9", 9901)
    start_session(d)
    j = enable(d, name, {"collector_ip": "localhost", "collector_port": 9901,
                         "netflow_version": 9})
    if j is not None:
        check(j.get("collector_address") == "127.0.0.1" and j.get("exporters") == 1,
              f"{name}: localhost resolved to 127.0.0.1", str(j))
    st = d.api("GET", "/status").json()
    check(st.get("netflow_enabled") is True and
          (st.get("netflow_configured") or {}).get("collector_ip") == "localhost" and
          (st.get("netflow_configured") or {}).get("netflow_version") == 9,
          f"{name}: status: netflow_enabled, the configuration echoed", str(st)[:400])
    samples = prometheus_case(d, name + " (running)", need=("jarvis_netflow_enabled",))
    check(samples.get("jarvis_netflow_enabled") == 1, f"{name}: Prometheus: enabled 1")
    n = replay(ns_b, work, "main")
    wait_for(d, f"{name}: the {n} packets captured",
             lambda m: m["packets_captured"] >= n)
    # TCP flows that finished linger 2 s, then end; the exporter sends them while the capture
    # still runs.
    m = wait_for(d, f"{name}: records reach the collector while the capture runs",
                 lambda m: exported(m) > 0)
    check(m["packets_captured"] == n and m["packets_dropped"] == 0,
          f"{name}: exactly {n} packets captured, none dropped",
          f"{m['packets_captured']} {m['packets_dropped']}")
    r = d.api("GET", "/flows?limit=100000")
    snap = snapshot_flows(r.json()) if r.status == 200 else {}
    check(len(snap) > 0, f"{name}: flows still in the table before the stop", str(len(snap)))
    stop_and_compare(d, name, [col], truth(work, "main"), snapshot=snap)


def round_ipfix_active_timeout(d, ns_b, work):
    name = "IPFIX, export_interval_sec 1"
    log(f"-- {name}: paced.pcap at its recorded pace")
    col = Collector(work, "ipfix", 9902)
    start_session(d)
    enable(d, name, {"collector_ip": "127.0.0.1", "collector_port": 9902,
                     "netflow_version": 10, "export_interval_sec": 1})
    st = d.api("GET", "/status").json()
    check((st.get("flow_meter") or {}).get("export_interval_sec") == 1,
          f"{name}: status: the meter's active timeout (flow_meter.export_interval_sec) is now "
          f"1", str(st.get("flow_meter")))
    n = replay(ns_b, work, "paced", pps=None)
    wait_for(d, f"{name}: the {n} packets captured", lambda m: m["packets_captured"] >= n)
    want = truth(work, "paced")
    _, records = stop_and_compare(d, name, [col], want)
    directions = len(uniflow(want))
    long_flows = sum(1 for r in csv.DictReader(open(os.path.join(work, "paced.pcap.truth.csv")))
                     if int(r["last_us"]) - int(r["first_us"]) >= 2_000_000)
    if long_flows:
        check(len(records) > directions,
              f"{name}: the 1 s active timeout split long flows: {len(records)} records for "
              f"{directions} directions ({long_flows} flows last 2 s or more)")


def round_biflow(d, ns_b, work):
    name = "IPFIX biflow"
    log(f"-- {name}: main.pcap at {PPS} pps")
    col = Collector(work, "biflow", 9903)
    start_session(d)
    enable(d, name, {"collector_ip": "127.0.0.1", "collector_port": 9903,
                     "netflow_version": 10, "biflow": True})
    n = replay(ns_b, work, "main")
    wait_for(d, f"{name}: the {n} packets captured", lambda m: m["packets_captured"] >= n)
    stop_and_compare(d, name, [col], truth(work, "main"), biflow=True)


def round_v5(d, ns_b, work):
    name = "v5"
    log(f"-- {name}: main.pcap at {PPS} pps")
    col = Collector(work, "v5", 9904)
    start_session(d)
    enable(d, name, {"collector_ip": "127.0.0.1", "collector_port": 9904})
    n = replay(ns_b, work, "main")
    wait_for(d, f"{name}: the {n} packets captured", lambda m: m["packets_captured"] >= n)
    want = truth(work, "main")
    j, _ = stop_and_compare(d, name, [col], want, v5=True)
    ipv6 = sum(1 for k in want if ":" in k[0])
    got = (j.get("netflow_export") or {}).get("flows_skipped_ipv6")
    check(ipv6 > 0 and got == ipv6, f"{name}: the {ipv6} IPv6 flows counted as skipped",
          str(got))


def round_fanout(d, ns_b, work):
    name = "IPFIX from two af_packet workers"
    log(f"-- {name}: main.pcap at {PPS} pps, PACKET_FANOUT over two receive threads")
    backends = d.api("GET", "/backends").json()["available_backends"]
    af = next((b for b in backends if b["name"] == "af_packet"), {})
    if af.get("status") != "available":
        log(f"   {name}: not tried (af_packet unavailable: {af.get('reason')})")
        return
    col = Collector(work, "fanout", 9907)
    start_session(d, backend="af_packet", workers=2)
    st = d.api("GET", "/status").json()
    check(st.get("workers") == 2, f"{name}: the session has two workers", str(st)[:300])
    j = enable(d, name, {"collector_ip": "127.0.0.1", "collector_port": 9907,
                         "netflow_version": 10})
    check(j is not None and j.get("exporters") == 1,
          f"{name}: one exporter for both workers", str(j))
    n = replay(ns_b, work, "main")
    wait_for(d, f"{name}: the {n} packets captured", lambda m: m["packets_captured"] >= n)
    # Shard i of 2 numbers its flows i + 1, i + 3, ...: both parities mean both workers metered.
    r = d.api("GET", "/flows?limit=100000")
    ids = {f["flow_id"] % 2 for f in r.json()} if r.status == 200 else set()
    check(ids == {0, 1}, f"{name}: both workers metered flows (flow ids of both shards)",
          str(ids))
    stop_and_compare(d, name, [col], truth(work, "main"))


def round_replace(d, ns_b, work):
    name = "export enabled again"
    log(f"-- {name}: v9 for first.pcap, then IPFIX to another collector for second.pcap")
    first = truth(work, "first")
    second = truth(work, "second")
    if set(first) & set(second):
        check(False, f"{name}: the two inputs share flows", str(set(first) & set(second)))
        return
    c9 = Collector(work, "replace-v9", 9905)
    c10 = Collector(work, "replace-ipfix", 9906)
    start_session(d)
    v9 = {"collector_ip": "127.0.0.1", "collector_port": 9905, "netflow_version": 9}
    j1 = enable(d, name + " (v9)", v9)
    n = replay(ns_b, work, "first")
    wait_for(d, f"{name}: first.pcap captured", lambda m: m["packets_captured"] >= n)
    wait_for(d, f"{name}: the v9 exporter sent records", lambda m: exported(m) > 0)
    # The same collector and version with another interval: the running exporter stays (one
    # unbroken sequence at nfcapd), only the meter's active timeout changes.
    j2 = enable(d, name + " (v9 again, export_interval_sec 30)",
                dict(v9, export_interval_sec=30))
    check(j1 is not None and j2 is not None and j2.get("exporters") == 1 and
          j2.get("source_port") == j1.get("source_port"),
          f"{name}: the same collector and version again keeps the exporter (its source port)",
          f"{j1} {j2}")
    st = d.api("GET", "/status").json()
    check((st.get("flow_meter") or {}).get("export_interval_sec") == 30,
          f"{name}: the meter's active timeout is now 30", str(st.get("flow_meter")))
    j = enable(d, name + " (IPFIX)", {"collector_ip": "127.0.0.1", "collector_port": 9906,
                                      "netflow_version": 10})
    check(j is not None and j.get("exporters") == 2, f"{name}: the session's second exporter",
          str(j))
    n2 = replay(ns_b, work, "second")
    wait_for(d, f"{name}: second.pcap captured", lambda m: m["packets_captured"] >= n + n2)
    reply, _ = stop_and_compare(d, name, [c9, c10], {**first, **second})
    check((reply.get("netflow_export") or {}).get("exporters") == 2 and
          (reply.get("netflow_export") or {}).get("netflow_version") == 10,
          f"{name}: the stop reply sums two exporters, the last one IPFIX",
          str(reply.get("netflow_export")))
    n9, s9 = c9.stats()
    n10, s10 = c10.stats()
    check(n9 > 0 and n10 > 0 and s9 == 0 and s10 == 0,
          f"{name}: both collectors got records ({n9} v9, {n10} IPFIX), no sequence failure")


def inner(jc, ns_b, work):
    d = Daemon.listen(jc)
    try:
        d.wait_ready()
        log(f"daemon in the namespace on 127.0.0.1:{d.port}")
        refused_cases(d)
        for step in (round_v9, round_ipfix_active_timeout, round_biflow, round_v5,
                     round_fanout, round_replace):
            try:
                step(d, ns_b, work)
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
                check(False, f"{step.__name__}", str(e))
                d.api("POST", "/stop", {"graceful": False})
        check(d.proc.poll() is None, "the daemon is still running")
    finally:
        rc = d.stop()
        for c in Collector.started:
            c.stop()
    check(rc == 0, "SIGTERM: exit 0", f"exit {rc}; stderr tail {d.lines[-3:]}")
    return finish()


def main():
    args = sys.argv[1:]
    if args[:1] == ["--inner"]:
        jc, ns_b, work = args[1:4]
        try:
            return inner(jc, ns_b, work)
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
            check(False, "test run", str(e))
            return finish()
    if len(args) != 2:
        print(f"usage: {sys.argv[0]} JARVIS_CAPTURE GEN_FLOWS", file=sys.stderr)
        return 2
    jc = os.path.abspath(args[0])
    if not os.access(jc, os.X_OK):
        log(f"FAIL: {jc} is not an executable")
        return 1
    return outer(jc, os.path.abspath(args[1]))


if __name__ == "__main__":
    sys.exit(main())
