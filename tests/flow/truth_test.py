#!/usr/bin/python3
"""Flow metering against ground truth: gen_flows.py writes a pcap and the exact truth of every
bidirectional flow; `jarvis-capture flows -r` must reproduce it flow for flow.

Checked for every flow: the initiator (src) and responder, ports, VLAN, per-direction packets
and IP-layer bytes, first and last packet time (to the microsecond), and how TCP ended: FIN or
RST must show as state CLOSED with end reason end_of_flow, an open flow must not.

Runs twice: with the active timeout out of the way (one record per flow), and with a 10 s
active timeout, where long flows are split into several records whose sums must still match
and where every record but the last of a flow carries end reason active_timeout.

usage: truth_test.py JARVIS_CAPTURE GEN_FLOWS OUTDIR [--workers N]
"""
import collections
import csv
import ipaddress
import json
import os
import subprocess
import sys

PACKETS, FLOWS, SEED = 200000, 8000, 11


def norm(a):
    return str(ipaddress.ip_address(a))


def generate(gen, outdir):
    os.makedirs(outdir, exist_ok=True)
    pcap = os.path.join(outdir, f"truth-{PACKETS}-{FLOWS}-{SEED}.pcap")
    if not os.path.exists(pcap + ".truth.csv"):
        subprocess.run(["/usr/bin/python3", gen, "--packets", str(PACKETS), "--flows", str(FLOWS),
                        "--seed", str(SEED), "--out", pcap], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    truth = {}
    for r in csv.DictReader(open(pcap + ".truth.csv")):
        key = (norm(r["client"]), norm(r["server"]), int(r["cport"]), int(r["sport"]),
               int(r["proto"]), int(r["vlan"]))
        assert key not in truth, f"truth has a duplicate key {key}"
        truth[key] = r
    return pcap, truth


def run_flows(binary, pcap, extra):
    proc = subprocess.run([binary, "flows", "-r", pcap, "--format", "json", "--no-progress",
                           "--table-size", str(FLOWS * 2)] + extra,
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        sys.exit(f"FAIL: flows exited {proc.returncode}: {proc.stderr}")
    return [json.loads(line) for line in proc.stdout.splitlines()]


def key_of(f):
    icmp = f["protocol"] in (1, 58)
    return (f["src_ip"], f["dst_ip"], 0 if icmp else f["src_port"], 0 if icmp else f["dst_port"],
            f["protocol"], f["vlan"])


def check(truth, records, split_expected):
    errors = []
    by_key = collections.defaultdict(list)
    for f in records:
        by_key[key_of(f)].append(f)
    missing = [k for k in truth if k not in by_key]
    extra = [k for k in by_key if k not in truth]
    if missing:
        errors.append(f"{len(missing)} truth flows not found (or initiator wrong), e.g. {missing[:3]}")
    if extra:
        errors.append(f"{len(extra)} flows not in the truth, e.g. {extra[:3]}")
    splits = 0
    for k, t in truth.items():
        recs = sorted(by_key.get(k, []), key=lambda f: f["first_seen"])
        if not recs:
            continue
        if not split_expected and len(recs) != 1:
            errors.append(f"{k}: {len(recs)} records, expected 1")
            continue
        splits += len(recs) - 1
        got = (sum(f["packets_fwd"] for f in recs), sum(f["packets_rev"] for f in recs),
               sum(f["bytes_fwd"] for f in recs), sum(f["bytes_rev"] for f in recs))
        want = (int(t["pkts_c2s"]), int(t["pkts_s2c"]), int(t["ipbytes_c2s"]), int(t["ipbytes_s2c"]))
        if got != want:
            errors.append(f"{k}: packets/bytes fwd,rev {got}, truth {want}")
        first_us, last_us = round(recs[0]["first_seen"] * 1e6), round(recs[-1]["last_seen"] * 1e6)
        if (first_us, last_us) != (int(t["first_us"]), int(t["last_us"])):
            errors.append(f"{k}: first/last {first_us}/{last_us}, truth {t['first_us']}/{t['last_us']}")
        for f in recs[:-1]:
            if f["end_reason"] != "active_timeout":
                errors.append(f"{k}: a record before the last ends with {f['end_reason']}")
        last = recs[-1]
        end = t["tcp_end"]
        if end in ("fin", "rst"):
            if last["state"] != "CLOSED" or last["end_reason"] != "end_of_flow":
                errors.append(f"{k}: TCP {end} but state {last['state']}, end {last['end_reason']}")
        elif end == "open":
            if last["state"] == "CLOSED" or last["end_reason"] != "forced_end":
                errors.append(f"{k}: open TCP flow but state {last['state']}, end {last['end_reason']}")
        elif last["end_reason"] != "forced_end":
            errors.append(f"{k}: non-TCP flow ends with {last['end_reason']}, expected forced_end")
    return errors, splits


def main():
    binary, gen, outdir = sys.argv[1], sys.argv[2], sys.argv[3]
    extra = sys.argv[4:]
    pcap, truth = generate(gen, outdir)
    ok = True
    for name, args, split in (("one record per flow", ["--active-timeout", "86400"], False),
                              ("10 s active timeout", ["--active-timeout", "10"], True)):
        records = run_flows(binary, pcap, args + extra)
        errors, splits = check(truth, records, split)
        if split and splits == 0:
            errors.append("no flow was split by the active timeout: the check proves nothing")
        print(f"{name}: {len(records)} records for {len(truth)} truth flows, "
              f"{splits} active-timeout splits, {len(errors)} errors")
        for e in errors[:20]:
            print("  ", e)
        ok = ok and not errors
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
