#!/usr/bin/python3
"""bench/capture_file: read a pcap and write it back, jarvis-capture against tcpdump.

Both tools read the same page-cached file in the same run:
  read+write:  jarvis-capture capture -r F -w OUT.pcapng   vs  tcpdump -r F -w OUT.pcap
  read only:   jarvis-capture capture -r F -q              vs  tcpdump -r F -w /dev/null
Prints the median wall time of RUNS runs, packets per second, and our ratio to tcpdump.
(tcpdump writes classic pcap, we write pcapng with nanosecond stamps: 12 more bytes a packet.)

usage: capture_file.py JARVIS_CAPTURE [--packets N] [--runs R] [--cache DIR]
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

import hostinfo

HERE = os.path.dirname(os.path.abspath(__file__))
GEN = os.path.join(HERE, "..", "..", "shared", "tools", "gen_flows.py")


def make_input(cache, packets):
    os.makedirs(cache, exist_ok=True)
    path = os.path.join(cache, f"flows-{packets}.pcap")
    if not os.path.exists(path):
        print(f"generating {path} with gen_flows.py ({packets} packets) ...", flush=True)
        subprocess.run(["/usr/bin/python3", GEN, "--packets", str(packets),
                        "--flows", str(max(packets // 20, 1)), "--seed", "1", "--out", path + ".tmp"],
                       check=True, stdout=subprocess.DEVNULL)
        os.rename(path + ".tmp", path)
        if os.path.exists(path + ".tmp.truth.csv"):
            os.rename(path + ".tmp.truth.csv", path + ".truth.csv")
    return path


def timed(cmd, runs):
    walls = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        walls.append(time.perf_counter() - t0)
    return statistics.median(walls)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--packets", type=int, default=500000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cache", default=os.path.join(HERE, "..", "build", "bench-cache"))
    args = ap.parse_args()

    src = make_input(args.cache, args.packets)
    size = os.path.getsize(src)
    subprocess.run(["cat", src], stdout=subprocess.DEVNULL, check=True)  # warm the page cache
    out_dir = os.path.join(args.cache, "out")
    os.makedirs(out_dir, exist_ok=True)
    ours_out = os.path.join(out_dir, "ours.pcapng")
    peer_out = os.path.join(out_dir, "tcpdump.pcap")

    cases = [
        ("read+write", [args.binary, "capture", "-r", src, "-w", ours_out],
         ["tcpdump", "-r", src, "-w", peer_out]),
        ("read only", [args.binary, "capture", "-r", src, "-q"],
         ["tcpdump", "-r", src, "-w", "/dev/null"]),
    ]
    print(f"input: {src}: {args.packets} packets, {size / 1e6:.0f} MB, page-cached; "
          f"median of {args.runs} runs\nmachine: {hostinfo.describe()}")
    print(f"{'case':<12} {'jarvis-capture':>16} {'tcpdump':>16} {'ratio':>7}")
    for name, ours, peer in cases:
        t_ours = timed(ours, args.runs)
        t_peer = timed(peer, args.runs)
        mpps = lambda t: args.packets / t / 1e6
        print(f"{name:<12} {mpps(t_ours):>10.2f} Mpps {mpps(t_peer):>10.2f} Mpps "
              f"{t_peer / t_ours:>6.2f}x")
    for p in (ours_out, peer_out):
        if os.path.exists(p):
            os.unlink(p)


if __name__ == "__main__":
    sys.exit(main())
