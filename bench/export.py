#!/usr/bin/python3
"""bench/export: flow records encoded and sent to a local nfcapd, jarvis-capture against softflowd.

Both tools read the same page-cached gen_flows.py file (2,000,000 packets by default, cached
under build/bench-cache), meter it into flows and export every flow to the same nfcapd on
127.0.0.1 (4 MiB receive buffer, the kernel's rmem_max here), in the same run:

  jarvis-capture flows -r F --format none --export ipfix://127.0.0.1:P      (defaults: paced)
  softflowd -r F -n 127.0.0.1:P -v 10 -m 2000000 -d -p PIDFILE

Timed end to end: from the start of the command until it exits, when every datagram has been
handed to the kernel. Records per second = records nfcapd stored / that time. Printed per tool
and version: median wall time over RUNS runs, records stored, records per second, nfdump's
sequence failures, and our ratio. Target: at least 3x softflowd, zero sequence failures.

usage: export.py JARVIS_CAPTURE [--runs R] [--packets N] [--versions 10,9] [--port P]
"""
import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import hostinfo

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GEN = os.path.join(ROOT, "..", "shared", "tools", "gen_flows.py")


def generate(cache, packets, flows):
    os.makedirs(cache, exist_ok=True)
    path = os.path.join(cache, f"flows-{packets}.pcap")
    if not os.path.exists(path):
        print(f"generating {path} ({packets} packets, {flows} flows) ...", flush=True)
        tmp = path + ".tmp"
        subprocess.run(["/usr/bin/python3", GEN, "--packets", str(packets), "--flows", str(flows),
                        "--seed", "1", "--out", tmp], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        os.rename(tmp, path)
        if os.path.exists(tmp + ".truth.csv"):
            os.rename(tmp + ".truth.csv", path + ".truth.csv")
    return path


def wait_port(port):
    for _ in range(200):
        ss = subprocess.run(["ss", "-lun", f"sport = :{port}"], capture_output=True, text=True)
        if f":{port}" in ss.stdout:
            return
        time.sleep(0.025)
    raise RuntimeError(f"nfcapd did not open port {port}")


def run_once(cmd, port, work, src):
    """One export run into a fresh nfcapd: (wall seconds, records stored, sequence failures)."""
    flows_dir = os.path.join(work, "flows")
    shutil.rmtree(flows_dir, ignore_errors=True)
    os.makedirs(flows_dir)
    nfc = subprocess.Popen(["nfcapd", "-b", "127.0.0.1", "-p", str(port), "-w", flows_dir, "-t",
                            "3600", "-B", "4194304"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        subprocess.run(["cat", src], stdout=subprocess.DEVNULL, check=True)  # page cache
        t0 = time.perf_counter()
        p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed ({p.returncode}): {p.stderr[-400:]}")
        time.sleep(1.0)  # let nfcapd drain its socket
    finally:
        nfc.send_signal(signal.SIGTERM)
        nfc.wait(timeout=20)
    stats = subprocess.run(["nfdump", "-R", flows_dir, "-I"], capture_output=True,
                           text=True).stdout
    get = lambda key: int(next((l.split(":", 1)[1] for l in stats.splitlines()
                                if l.startswith(key + ":")), "0"))
    return wall, get("Flows"), get("Sequence failures")


def measure(name, cmd, port, work, src, runs):
    walls, records, seqf = [], [], []
    for _ in range(runs):
        w, r, s = run_once(cmd, port, work, src)
        walls.append(w)
        records.append(r)
        seqf.append(s)
    wall = statistics.median(walls)
    rec = statistics.median(records)
    return {"name": name, "wall": wall, "records": rec, "rate": rec / wall, "seqf": max(seqf),
            "records_all": records}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--packets", type=int, default=2_000_000)
    ap.add_argument("--versions", default="10,9")
    ap.add_argument("--port", type=int, default=47400)
    ap.add_argument("--cache", default=os.path.join(ROOT, "build", "bench-cache"))
    args = ap.parse_args()
    for tool in ("nfcapd", "nfdump", "softflowd"):
        if shutil.which(tool) is None:
            print(f"bench/export: {tool} is not installed (./x deps)")
            return 1
    binary = os.path.abspath(args.binary)
    src = generate(args.cache, args.packets, args.packets // 20)
    work = tempfile.mkdtemp(prefix="jarvis-bench-export-")
    rows = []
    try:
        for v in args.versions.split(","):
            scheme = {"10": "ipfix", "9": "netflow9", "5": "netflow5"}[v]
            ours = measure(f"jarvis-capture v{v}",
                           [binary, "flows", "-r", src, "--format", "none", "--no-progress",
                            "--table-size", str(args.packets // 10), "--export",
                            f"{scheme}://127.0.0.1:{args.port}"],
                           args.port, work, src, args.runs)
            peer = measure(f"softflowd v{v}",
                           ["softflowd", "-r", src, "-n", f"127.0.0.1:{args.port}", "-v", v,
                            "-m", "2000000", "-d", "-p", os.path.join(work, "sf.pid")],
                           args.port, work, src, args.runs)
            rows.append((ours, peer))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\ninput: {src}: {args.packets} packets, {os.path.getsize(src) / 1e9:.2f} GB, "
          f"page-cached; median of {args.runs} runs; collector: nfcapd on 127.0.0.1, 4 MiB "
          f"receive buffer\nmachine: {hostinfo.describe()}")
    print(f"{'exporter':<22} {'wall s':>8} {'records':>9} {'records/s':>11} "
          f"{'seq failures':>13} {'ours vs it':>11}")
    for ours, peer in rows:
        for r in (ours, peer):
            print(f"{r['name']:<22} {r['wall']:>8.3f} {r['records']:>9.0f} "
                  f"{r['rate']:>11,.0f} {r['seqf']:>13} {r['rate'] and ours['rate'] / r['rate']:>10.2f}x")
    for ours, peer in rows:
        print(f"{ours['name']}: {ours['rate']:,.0f} records/s end to end, "
              f"{ours['rate'] / peer['rate']:.2f}x {peer['name']} (target: 3x); sequence "
              f"failures: ours {ours['seqf']}, softflowd {peer['seqf']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
