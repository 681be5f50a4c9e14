#!/usr/bin/python3
"""NetFlow v5 / v9 / IPFIX export checked by independent decoders (nfcapd/nfdump and tshark).

Every case runs `jarvis-capture flows -r FILE --format json --export URL` through
../shared/tools/verify_netflow.sh (nfcapd + tcpdump on loopback), then compares what nfdump
decoded with the flows the same run printed: the same unidirectional records (a biflow gives one
per direction with packets), the same packets and IP bytes, the same VLAN, and the same first and
last times to the millisecond. tshark must decode every datagram without a malformed packet or
an expert warning. Only 127.0.0.1 is ever sent to.

usage: netflow_test.py JARVIS_CAPTURE TOOLS_DIR WORK_DIR CASE [args]
  gen OUT PACKETS FLOWS [gen_flows options]   make a gen_flows.py input (test fixture)
  compare VERSION PORT FILE...                our flows vs nfdump's, tshark clean, per file
  biflow PORT FILE                            IPFIX RFC 5103 biflow records: tshark and nfdump
  late VERSION PORT FILE                      a collector started after the exporter decodes
  sequence VERSION PORT FILE MIN_RECORDS      no sequence gap at nfcapd nor in the capture
  cli PORT FILE                               errors of --export, and a closed collector port
Exit status 77 when a peer tool is missing (the test is then skipped).
"""
import collections
import datetime
import decimal
import ipaddress
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time

from udp_drain import wait_drained

JC, TOOLS, WORK = os.path.abspath(sys.argv[1]), sys.argv[2], sys.argv[3]
VERIFY = os.path.join(TOOLS, "verify_netflow.sh")
SCHEME = {"5": "netflow5", "9": "netflow9", "10": "ipfix"}


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def need(*tools):
    for t in tools:
        if shutil.which(t) is None:
            print(f"skipped: {t} is not installed")
            sys.exit(77)


def norm(a):
    return str(ipaddress.ip_address(a))


def ms_of_seconds(d):
    """Milliseconds, floored, of a decimal number of seconds (as our JSON writes times)."""
    return int((decimal.Decimal(d) * 1000).to_integral_value(rounding=decimal.ROUND_FLOOR))


def ms_of_nfdump(s):
    t = datetime.datetime.strptime(s.strip(), "%Y-%m-%d %H:%M:%S.%f")
    t = t.replace(tzinfo=datetime.timezone.utc)
    return int(t.timestamp() * 1000 + 0.5)


def run_verify(version, port, cmd, workdir, env_extra=None):
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    env = dict(os.environ, WORKDIR=workdir, SETTLE="1")
    env.update(env_extra or {})
    p = subprocess.run([VERIFY, str(version), str(port), "--"] + cmd, env=env,
                       capture_output=True, text=True, timeout=600)
    return p


def our_flows(log):
    flows = []
    for line in open(log):
        if line.startswith("{"):
            flows.append(json.loads(line, parse_float=decimal.Decimal))
    return flows


def expected_records(flows, v5):
    """Unidirectional records our flows should become, with ICMP ports left out."""
    want = collections.Counter()
    for f in flows:
        if v5 and ":" in f["src_ip"]:
            continue
        icmp = f["protocol"] in (1, 58)
        first, last = ms_of_seconds(f["first_seen"]), ms_of_seconds(f["last_seen"])
        for src, dst, sp, dp, pk, by in (
                (f["src_ip"], f["dst_ip"], f["src_port"], f["dst_port"], f["packets_fwd"],
                 f["bytes_fwd"]),
                (f["dst_ip"], f["src_ip"], f["dst_port"], f["src_port"], f["packets_rev"],
                 f["bytes_rev"])):
            if pk == 0:
                continue
            ports = (None, None) if icmp else (sp, dp)
            want[(norm(src), norm(dst)) + ports + (f["protocol"], pk, by, f["vlan"], first,
                                                   last)] += 1
    return want


def nfdump_records(workdir, with_vlan=True):
    fmt = "fmt:%ts,%te,%sa,%da,%sp,%dp,%pr,%pkt,%byt,%svln,%opkt,%obyt"
    p = subprocess.run(["nfdump", "-R", os.path.join(workdir, "flows"), "-q", "-N", "-6", "-o",
                        fmt], capture_output=True, text=True, env=dict(os.environ, TZ="UTC"))
    got = collections.Counter()
    rows = []
    for line in p.stdout.splitlines():
        c = [x.strip() for x in line.split(",")]
        if len(c) < 12:
            continue
        proto = int(c[6])
        ports = (None, None) if proto in (1, 58) else (int(c[4]), int(c[5]))
        got[(norm(c[2]), norm(c[3])) + ports + (proto, int(c[7]), int(c[8]),
                                                 int(c[9]) if with_vlan else 0,
                                                 ms_of_nfdump(c[0]), ms_of_nfdump(c[1]))] += 1
        rows.append(c)
    return got, rows


def tshark_clean(workdir, port, want_text=()):
    """tshark decodes every datagram: no malformed packet, no expert warning or error."""
    pcap = os.path.join(workdir, "export.pcap")
    p = subprocess.run(["tshark", "-r", pcap, "-d", f"udp.port=={port},cflow", "-V"],
                       capture_output=True, text=True)
    text = p.stdout
    if "Malformed" in text:
        i = text.index("Malformed")
        fail("tshark: malformed packet: ..." + text[max(0, i - 1500):i + 200])
    for marker in ("[Expert Info (Error", "[Expert Info (Warning"):
        if marker in text:
            i = text.index(marker)
            fail("tshark expert info: ..." + text[max(0, i - 1500):i + 300])
    for w in want_text:
        if w not in text:
            fail(f"tshark's decode lacks '{w}'")
    frames = text.count("\nFrame ") + text.startswith("Frame ")
    if frames == 0:
        fail("tshark decoded no frame")
    return frames


def stat_value(log, name):
    for line in open(log):
        line = line.strip()
        if line.startswith(name + ":"):
            return int(line.split(":")[1])
    return None


def case_gen(out, packets, flows, *extra):
    if os.path.exists(out) and os.path.exists(out + ".truth.csv"):
        return 0
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    subprocess.run(["/usr/bin/python3", os.path.join(TOOLS, "gen_flows.py"), "--packets",
                    packets, "--flows", flows, "--seed", "7", "--out", out + ".tmp", *extra],
                   check=True, stdout=subprocess.DEVNULL)
    os.rename(out + ".tmp.truth.csv", out + ".truth.csv")
    os.rename(out + ".tmp", out)
    print(f"generated {out}")
    return 0


def compare_one(version, port, pcap, workdir, extra_url="", extra_args=()):
    v5 = version == "5"
    url = f"{SCHEME[version]}://127.0.0.1:{port}{extra_url}"
    cmd = [JC, "flows", "-r", pcap, "--format", "json", "--stats", "--no-progress",
           "--export", url, *extra_args]
    p = run_verify(version, port, cmd, workdir)
    log = os.path.join(workdir, "exporter.log")
    flows = our_flows(log) if os.path.exists(log) else []
    want = expected_records(flows, v5)
    if not want:
        # Nothing to export (v5 and a file of IPv6 flows): the run must still succeed, and
        # count what it skipped.
        if "exporter rc=0" not in p.stderr:
            fail(f"{pcap}: exporter failed:\n{p.stderr}\n{open(log).read()[-2000:]}")
        skipped = stat_value(log, "flows_skipped_ipv6")
        if skipped != len(flows):
            fail(f"{pcap}: {skipped} flows skipped, the file has {len(flows)} (all IPv6)")
        print(f"ok   {os.path.basename(pcap)} v{version}: no IPv4 flow; {skipped} IPv6 flows "
              f"skipped and counted")
        return
    if p.returncode != 0:
        fail(f"{pcap} v{version}: verify_netflow.sh exit {p.returncode}:\n{p.stderr}\n"
             f"{open(log).read()[-3000:] if os.path.exists(log) else ''}")
    got, _ = nfdump_records(workdir, with_vlan=not v5)
    if v5:  # v5 has no VLAN field
        want = collections.Counter({k[:7] + (0,) + k[8:]: n for k, n in want.items()})
    if got != want:
        missing = want - got
        extra = got - want
        fail(f"{pcap} v{version}: nfdump decoded {sum(got.values())} records, we printed "
             f"{sum(want.values())}\n  missing (first 5): {list(missing.items())[:5]}\n"
             f"  unexpected (first 5): {list(extra.items())[:5]}")
    frames = tshark_clean(workdir, port)
    skipped = stat_value(log, "flows_skipped_ipv6")
    v6 = sum(1 for f in flows if ":" in f["src_ip"])
    if v5 and skipped != v6:
        fail(f"{pcap}: v5 skipped {skipped} IPv6 flows, the file has {v6}")
    if not v5 and skipped != 0:
        fail(f"{pcap}: v{version} skipped {skipped} flows")
    sent = stat_value(log, "records_sent")
    if sent != sum(want.values()):
        fail(f"{pcap}: exporter says {sent} records sent, expected {sum(want.values())}")
    reasons = collections.Counter(f["end_reason"] for f in flows)
    print(f"ok   {os.path.basename(pcap)} v{version}: {sum(got.values())} records match "
          f"(times to the ms), {frames} datagrams clean in tshark, end reasons {dict(reasons)}"
          + (f", {skipped} IPv6 flows skipped" if v5 else ""))
    return flows


def case_compare(version, port, *files):
    need("nfcapd", "nfdump", "tshark", "tcpdump")
    for i, f in enumerate(files):
        extra = ("--active-timeout", "10") if "gen" in os.path.basename(f) else ()
        flows = compare_one(version, port, f, os.path.join(WORK, f"cmp-v{version}-{i}"),
                            extra_args=extra)
        if extra and flows and not any(x["end_reason"] == "active_timeout" for x in flows):
            fail(f"{f}: expected active-timeout records in this run")
    return 0


def case_biflow(port, pcap):
    need("nfcapd", "nfdump", "tshark", "tcpdump")
    workdir = os.path.join(WORK, "biflow")
    url = f"ipfix://127.0.0.1:{port}?biflow=1"
    cmd = [JC, "flows", "-r", pcap, "--format", "json", "--stats", "--no-progress",
           "--export", url]
    p = run_verify(10, port, cmd, workdir)
    if p.returncode != 0:
        fail(f"verify_netflow.sh exit {p.returncode}:\n{p.stderr}")
    flows = our_flows(os.path.join(workdir, "exporter.log"))
    # tshark names the RFC 5103 reverse elements (PEN 29305).
    tshark_clean(workdir, port, want_text=("(Reverse Type 1 BYTES)", "(Reverse Type 2 PKTS)",
                                           "(Reverse Type 6 TCP_FLAGS)",
                                           "Reverse Information Element Private Enterprise "
                                           "(29305)", "Biflow Direction: Initiator"))
    # nfdump reads reverse counters as the "out" counters of one bidirectional record.
    got, rows = nfdump_records(workdir)
    want = collections.Counter()
    for f in flows:
        want[(norm(f["src_ip"]), norm(f["dst_ip"]), f["packets_fwd"], f["bytes_fwd"],
              f["packets_rev"], f["bytes_rev"], ms_of_seconds(f["first_seen"]),
              ms_of_seconds(f["last_seen"]))] += 1
    have = collections.Counter()
    for c in rows:
        have[(norm(c[2]), norm(c[3]), int(c[7]), int(c[8]), int(c[10]), int(c[11]),
              ms_of_nfdump(c[0]), ms_of_nfdump(c[1]))] += 1
    if have != want:
        fail(f"biflow: nfdump has {sum(have.values())} records, we have {len(flows)}:\n"
             f"  missing {list((want - have).items())[:5]}\n"
             f"  unexpected {list((have - want).items())[:5]}")
    print(f"ok   biflow {os.path.basename(pcap)}: {len(flows)} biflow records, forward and "
          f"reverse counters match in nfdump; reverse elements decoded by tshark")
    return 0


def start_collector(port, workdir):
    os.makedirs(os.path.join(workdir, "flows"), exist_ok=True)
    nfc = subprocess.Popen(["nfcapd", "-b", "127.0.0.1", "-p", str(port), "-w",
                            os.path.join(workdir, "flows"), "-t", "3600", "-B", "4194304"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tcd = subprocess.Popen(["tcpdump", "-i", "lo", "-U", "-n", "-s", "0", "-B", "131072", "-w",
                            os.path.join(workdir, "export.pcap"), f"udp and port {port}"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # Wait for tcpdump's "listening on" and for nfcapd's socket.
    deadline = time.time() + 10
    line = tcd.stderr.readline()
    while "listening on" not in line and time.time() < deadline:
        line = tcd.stderr.readline()
    while time.time() < deadline:
        ss = subprocess.run(["ss", "-lun", f"sport = :{port}"], capture_output=True, text=True)
        if f":{port}" in ss.stdout:
            break
        time.sleep(0.05)
    return nfc, tcd


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def parse_capture(pcap, port):
    """UDP payloads to/from `port` in a classic pcap written by tcpdump on lo (Ethernet)."""
    data = open(pcap, "rb").read()
    magic = struct.unpack("<I", data[:4])[0]
    e = "<" if magic in (0xa1b2c3d4, 0xa1b23c4d) else ">"
    link = struct.unpack(e + "I", data[20:24])[0]
    off, out = 24, []
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(e + "IIII", data[off:off + 16])
        frame = data[off + 16:off + 16 + incl]
        off += 16 + incl
        l2 = 14 if link == 1 else 0
        ver = frame[l2] >> 4
        if ver == 4:
            ihl = (frame[l2] & 15) * 4
            l4 = l2 + ihl
        else:
            l4 = l2 + 40
        dport = struct.unpack("!H", frame[l4 + 2:l4 + 4])[0]
        if dport == port:
            out.append(frame[l4 + 8:])
    return out


def parse_messages(payloads, version):
    """Header fields and data record counts of v9/IPFIX messages, learning templates."""
    templates = {}
    msgs = []
    for m in payloads:
        v = struct.unpack("!H", m[:2])[0]
        if v != int(version):
            fail(f"datagram of version {v} in a v{version} export")
        if version == "5":
            count, = struct.unpack("!H", m[2:4])
            seq, = struct.unpack("!I", m[16:20])
            msgs.append({"seq": seq, "records": count, "domain": 0, "templates": False})
            continue
        hlen = 20 if version == "9" else 16
        if version == "9":
            seq, domain = struct.unpack("!II", m[12:20])
        else:
            seq, domain = struct.unpack("!II", m[8:16])
        at, records, has_templates = hlen, 0, False
        while at + 4 <= len(m):
            sid, slen = struct.unpack("!HH", m[at:at + 4])
            if slen < 4:
                break
            body = m[at + 4:at + slen]
            if sid in (0, 2):  # template set
                has_templates = True
                b = 0
                while b + 4 <= len(body):
                    tid, n = struct.unpack("!HH", body[b:b + 4])
                    b += 4
                    size = 0
                    for _ in range(n):
                        ie, ln = struct.unpack("!HH", body[b:b + 4])
                        b += 4 + (4 if ie & 0x8000 and version == "10" else 0)
                        size += ln
                    templates[(domain, tid)] = size
            elif sid >= 256 and (domain, sid) in templates:
                records += len(body) // templates[(domain, sid)]
            at += slen
        msgs.append({"seq": seq, "records": records, "domain": domain,
                     "templates": has_templates})
    return msgs


def check_sequence(msgs, version):
    """Sequence numbers as each version defines them: gaps are failures."""
    last = {}
    for i, m in enumerate(msgs):
        d = m["domain"]
        if version == "10" and d == 0:
            continue  # the exporter's statistics: their own counter
        if d in last:
            prev = last[d]
            expect = prev["seq"] + (1 if version == "9" else prev["records"])
            if m["seq"] != expect & 0xFFFFFFFF:
                fail(f"sequence gap at datagram {i}: {m['seq']} after {prev['seq']} "
                     f"(expected {expect})")
        last[d] = m


def case_sequence(version, port, pcap, min_records):
    need("nfcapd", "nfdump", "tshark", "tcpdump")
    workdir = os.path.join(WORK, f"seq-v{version}")
    url = f"{SCHEME[version]}://127.0.0.1:{port}"
    cmd = [JC, "flows", "-r", pcap, "--format", "none", "--stats", "--no-progress",
           "--table-size", "400000", "--export", url]
    p = run_verify(version, port, cmd, workdir)
    print(p.stderr.strip())
    if p.returncode != 0:
        fail(f"verify_netflow.sh exit {p.returncode} (sequence failures are failures)")
    log = os.path.join(workdir, "exporter.log")
    sent = stat_value(log, "records_sent")
    if sent is None or sent < int(min_records):
        fail(f"only {sent} records sent, the test wants at least {min_records}")
    stats = subprocess.run(["nfdump", "-R", os.path.join(workdir, "flows"), "-I"],
                           capture_output=True, text=True).stdout
    nf_flows = int(next(l.split(":")[1] for l in stats.splitlines() if l.startswith("Flows:")))
    if nf_flows != sent:
        fail(f"nfdump stored {nf_flows} records, we sent {sent}")
    msgs = parse_messages(parse_capture(os.path.join(workdir, "export.pcap"), int(port)),
                          version)
    check_sequence(msgs, version)
    captured = sum(m["records"] for m in msgs)
    if captured != sent:
        fail(f"the capture holds {captured} data records, we sent {sent}")
    print(f"ok   v{version}: {sent} records in {len(msgs)} datagrams, no sequence gap "
          f"(nfdump: 0 failures; our own check of the capture agrees)")
    return 0


def case_late(version, port, pcap):
    need("nfcapd", "nfdump", "tshark", "tcpdump")
    workdir = os.path.join(WORK, f"late-v{version}")
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    # The file replays at 20x its pace for about 6 s; templates are re-sent every second.
    url = f"{SCHEME[version]}://127.0.0.1:{port}?template_refresh=1&template_packets=0"
    log = open(os.path.join(workdir, "exporter.log"), "w")
    exp = subprocess.Popen([JC, "flows", "-r", pcap, "--speed", "20", "--format", "none",
                            "--stats", "--no-progress", "--idle-timeout", "5",
                            "--export", url], stdout=log, stderr=log)
    time.sleep(2.0)  # the exporter's first templates and data go to a closed port
    nfc, tcd = start_collector(port, workdir)
    rc = exp.wait(timeout=120)
    wait_drained(int(port), nfc)
    stop(nfc)
    stop(tcd)
    log.close()
    if rc != 0:
        fail(f"exporter exit {rc}: {open(os.path.join(workdir, 'exporter.log')).read()}")
    refused = stat_value(os.path.join(workdir, "exporter.log"), "refused")
    msgs = parse_messages(parse_capture(os.path.join(workdir, "export.pcap"), int(port)),
                          version)
    first_t = next((i for i, m in enumerate(msgs) if m["templates"]), None)
    if first_t is None:
        fail("no template reached the late collector")
    decodable = sum(m["records"] for m in msgs[first_t:] if m["domain"] != 0)
    stats = subprocess.run(["nfdump", "-R", os.path.join(workdir, "flows"), "-I"],
                           capture_output=True, text=True).stdout
    nf_flows = int(next(l.split(":")[1] for l in stats.splitlines() if l.startswith("Flows:")))
    seqf = int(next(l.split(":")[1] for l in stats.splitlines()
                    if l.startswith("Sequence failures:")))
    if nf_flows == 0 or nf_flows < decodable:
        fail(f"the late collector decoded {nf_flows} records; {decodable} arrived after the "
             f"first template")
    if seqf != 0:
        fail(f"{seqf} sequence failures at the late collector")
    print(f"ok   v{version} late collector: {len(msgs)} datagrams seen, templates again at "
          f"datagram {first_t}, {nf_flows} records decoded ({decodable} after the templates), "
          f"{refused} sends refused before it started")
    return 0


def case_cli(port, pcap):
    """Bad export URLs: one line on stderr, nothing on stdout, exit 2 (1 for an unknown host).
    A closed collector port: exit 0, every record sent, the refusals counted."""
    cases = [
        ("sflow://127.0.0.1", 2, ["unknown scheme 'sflow'"]),
        ("ipfix://127.0.0.1:99999", 2, ["port '99999'"]),
        ("ipfix://::1:4739", 2, ["in brackets"]),
        ("netflow9://127.0.0.1?biflow=1", 2, ["biflow records need IPFIX"]),
        ("ipfix://127.0.0.1?mtu=200", 2, ["mtu 200"]),
        ("ipfix://127.0.0.1?colour=red", 2, ["unknown parameter 'colour'"]),
        ("ipfix://no-such-host.invalid:4739", 1, ["no-such-host.invalid"]),
    ]
    for url, status, says in cases:
        p = subprocess.run([JC, "flows", "-r", pcap, "--export", url], capture_output=True,
                           text=True, timeout=60)
        lines = p.stderr.strip().splitlines()
        if p.returncode != status or p.stdout or len(lines) != 1 or \
                not lines[0].startswith("jarvis-capture:") or \
                not all(x in lines[0] for x in says):
            fail(f"--export {url}: exit {p.returncode}, stdout {p.stdout[:200]!r}, "
                 f"stderr {p.stderr!r}")
        print(f"ok   --export {url}: exit {status}: {lines[0]}")
    # Nothing listens on this port: ICMP port unreachable comes back, the run goes on.
    p = subprocess.run([JC, "flows", "-r", pcap, "--format", "none", "--stats", "--export",
                        f"ipfix://127.0.0.1:{port}?template_packets=1&hold=0", "--export",
                        f"netflow5://127.0.0.1:{port}"], capture_output=True, text=True,
                       timeout=60)
    if p.returncode != 0:
        fail(f"closed port: exit {p.returncode}: {p.stderr}")
    refused = [int(l.split(":")[1]) for l in p.stderr.splitlines()
               if l.strip().startswith("refused:")]
    sent = [int(l.split(":")[1]) for l in p.stderr.splitlines()
            if l.strip().startswith("records_sent:")]
    if len(refused) != 2 or refused[0] == 0 or min(sent) == 0:
        fail(f"closed port: expected refusals counted and records sent:\n{p.stderr}")
    print(f"ok   closed collector port: exit 0, records sent {sent}, refused {refused}")
    return 0


def main():
    case, args = sys.argv[4], sys.argv[5:]
    os.makedirs(WORK, exist_ok=True)
    fn = {"gen": case_gen, "compare": case_compare, "biflow": case_biflow, "late": case_late,
          "sequence": case_sequence, "cli": case_cli}.get(case)
    if fn is None:
        print(__doc__)
        return 2
    return fn(*args)


if __name__ == "__main__":
    sys.exit(main())
