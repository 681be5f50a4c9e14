#!/usr/bin/python3
"""bench/flows_offline: offline flow metering, jarvis-capture against its peers, one run.

Input: a 2,000,000-packet gen_flows.py file, generated once and cached under build/.
Every tool reads the same page-cached file (it is re-read with cat before each run, since the
kernel may reclaim cold page cache between runs). Printed per tool: median wall time over RUNS
runs, packets per second, peak RSS, flows reported, and our single-worker rate's ratio to it.
Also printed: the rate of a bare libpcap pcap_next_ex() loop (the floor of any libpcap-based
tool) and of `cat FILE > /dev/null` from the page cache (the ceiling for anything that must
look at every byte), with our distance to it.

A second part meters a file with 1,000,000 concurrent flows in a 1,000,000-flow table and
reports the table's memory and the process's peak RSS.

usage: flows_offline.py JARVIS_CAPTURE [--runs R] [--packets N] [--skip-pmacct] [--skip-1m]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GEN = os.path.join(ROOT, "..", "shared", "tools", "gen_flows.py")


def generate(cache, packets, flows, extra=(), tag=""):
    os.makedirs(cache, exist_ok=True)
    path = os.path.join(cache, f"flows-{packets}{tag}.pcap")
    if not os.path.exists(path):
        print(f"generating {path} ({packets} packets, {flows} flows) ...", flush=True)
        tmp = path + ".tmp"
        subprocess.run(["/usr/bin/python3", GEN, "--packets", str(packets), "--flows", str(flows),
                        "--seed", "1", "--out", tmp, *extra], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.rename(tmp, path)
        if os.path.exists(tmp + ".truth.csv"):
            os.rename(tmp + ".truth.csv", path + ".truth.csv")
    return path


def warm(path):
    subprocess.run(["cat", path], stdout=subprocess.DEVNULL, check=True)


def timed(cmd, path, prep=None):
    """Runs cmd once under /usr/bin/time; returns (wall seconds, peak RSS KiB, stdout)."""
    if prep:
        prep()
    warm(path)
    # Output goes to a file, as a user's would: reading a pipe in this script costs the
    # measured tool time on 2 cores (about 0.04 s per run here), which skews fast runs.
    with tempfile.NamedTemporaryFile("r") as tf, tempfile.TemporaryFile("w+") as out:
        t0 = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", tf.name] + cmd,
                              stdout=out, stderr=subprocess.STDOUT)
        wall = time.perf_counter() - t0
        out.seek(0)
        text = out.read()
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {text[-400:]}")
        rss = int(tf.read().strip().splitlines()[-1])
    return wall, rss, text


def measure(name, cmd, path, runs, prep=None, count_flows=None):
    walls, rss, out = [], 0, ""
    for _ in range(runs):
        w, r, out = timed(cmd, path, prep)
        walls.append(w)
        rss = max(rss, r)
    flows = count_flows(out) if count_flows else ""
    return {"name": name, "wall": statistics.median(walls), "rss": rss, "flows": flows,
            "walls": walls}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--packets", type=int, default=2_000_000)
    ap.add_argument("--cache", default=os.path.join(ROOT, "build", "bench-cache"))
    ap.add_argument("--skip-pmacct", action="store_true", help="pmacctd takes ~40 s on 2M packets")
    ap.add_argument("--skip-1m", action="store_true")
    args = ap.parse_args()
    binary = os.path.abspath(args.binary)
    loop = os.path.join(os.path.dirname(binary), "jarvis-bench-pcap-loop")
    src = generate(args.cache, args.packets, args.packets // 20)
    npkt = args.packets
    size = os.path.getsize(src)
    work = tempfile.mkdtemp(prefix="jarvis-bench-")
    results = []
    try:
        ours_cmd = [binary, "flows", "-r", src, "--format", "csv", "--no-progress",
                    "--table-size", str(npkt // 10)]
        count_ours = lambda out: str(sum(1 for l in out.splitlines() if l[:1].isdigit()))
        results.append(measure("jarvis-capture (1 worker)", ours_cmd, src, args.runs,
                               count_flows=count_ours))
        results.append(measure("jarvis-capture --workers 2", ours_cmd + ["--workers", "2"], src,
                               args.runs, count_flows=count_ours))

        sf = ["softflowd", "-r", src, "-n", "127.0.0.1:9", "-v", "9", "-m", "2000000", "-d",
              "-p", os.path.join(work, "sf.pid")]
        count_sf = lambda out: next((l.split(":", 1)[1].split()[0] for l in out.splitlines()
                                     if "Flows exported" in l), "?")
        results.append(measure("softflowd -m 2000000", sf, src, args.runs, count_flows=count_sf))

        nfp_dir = os.path.join(work, "nfp")
        def nfp_prep():
            shutil.rmtree(nfp_dir, ignore_errors=True)
            os.makedirs(nfp_dir)
        def count_nfp(_):
            out = subprocess.run(["nfdump", "-R", nfp_dir, "-I"], capture_output=True, text=True)
            return next((l.split(":", 1)[1].strip() for l in out.stdout.splitlines()
                         if l.startswith("Flows:")), "?")
        results.append(measure("nfpcapd", ["nfpcapd", "-r", src, "-w", nfp_dir], src, args.runs,
                               prep=nfp_prep, count_flows=count_nfp))

        if not args.skip_pmacct:
            conf = os.path.join(work, "pmacctd.conf")
            pm_out = os.path.join(work, "pm_out.csv")
            with open(conf, "w") as f:
                f.write(f"""daemonize: false
pcap_savefile_wait: false
aggregate: src_host, dst_host, src_port, dst_port, proto
plugins: print
print_output: csv
print_output_file: {pm_out}
print_cache_entries: 65537
print_refresh_time: 3600
plugin_pipe_size: 268435456
plugin_buffer_size: 65536
print_output_file_append: true
pcap_savefile_delay: 0
""")
            def pm_prep():
                if os.path.exists(pm_out):
                    os.unlink(pm_out)
            def count_pm(_):
                try:
                    return str(sum(1 for l in open(pm_out) if l[:1].isdigit()))
                except OSError:
                    return "?"
            results.append(measure("pmacctd", ["pmacctd", "-f", conf, "-I", src, "-u"], src, 1,
                                   prep=pm_prep, count_flows=count_pm))

        # Floors and ceilings.
        loops = []
        for _ in range(args.runs):
            warm(src)
            out = subprocess.run([loop, src], capture_output=True, text=True, check=True).stdout
            loops.append(float(out.split()[1]))
        pcap_loop = statistics.median(loops)
        cats = []
        for _ in range(args.runs):
            warm(src)
            t0 = time.perf_counter()
            subprocess.run(f"cat '{src}' > /dev/null", shell=True, check=True)
            cats.append(time.perf_counter() - t0)
        cat = statistics.median(cats)

        ours = results[0]["wall"]
        print(f"\ninput: {src}\n       {npkt} packets, {size / 1e9:.2f} GB, page-cached; "
              f"median of {args.runs} runs (pmacctd: 1); {os.cpu_count()} cores")
        print(f"{'tool':<28} {'wall s':>8} {'Mpps':>7} {'peak RSS':>10} {'flows':>10} "
              f"{'ours (1 worker) vs it':>22}")
        for r in results:
            ratio = r["wall"] / ours
            print(f"{r['name']:<28} {r['wall']:>8.3f} {npkt / r['wall'] / 1e6:>7.2f} "
                  f"{r['rss'] / 1024:>8.0f} MB {r['flows']:>10} {ratio:>21.2f}x")
        peers = [r for r in results if not r["name"].startswith("jarvis")]
        fastest = min(peers, key=lambda r: r["wall"])
        print(f"\nfastest peer: {fastest['name']} at {npkt / fastest['wall'] / 1e6:.2f} Mpps; "
              f"ours (one core) is {fastest['wall'] / ours:.2f}x that (target: 5x)")
        print(f"bare libpcap pcap_next_ex loop: {npkt / pcap_loop / 1e6:.2f} Mpps "
              f"({pcap_loop:.3f} s); ours is {pcap_loop / ours:.2f}x it")
        print(f"cat FILE > /dev/null: {size / cat / 1e9:.1f} GB/s = {npkt / cat / 1e6:.1f} Mpps "
              f"({cat:.3f} s); ours takes {ours / cat:.2f}x as long (target: within 3x)")
        print(f"peak RSS of ours: {results[0]['rss'] / 1024:.0f} MB")

        if not args.skip_1m:
            # 1M UDP flows of about 2 packets each over 30 s, metered with a one-hour idle
            # timeout: UDP has no end, so every flow stays in the table until the file ends.
            big = generate(args.cache, 2_000_000, 1_000_000,
                           extra=("--duration", "30", "--udp-frac", "1.0"), tag="-1m-concurrent")
            r = subprocess.run(["/usr/bin/time", "-f", "%M", binary, "flows", "-r", big,
                                "--format", "csv", "--no-progress", "--stats",
                                "--table-size", "1000000", "--idle-timeout", "3600"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            lines = r.stderr.strip().splitlines()
            stats = [l for l in lines if "at most" in l or "flow table" in l]
            print(f"\n1M-flow table: {'; '.join(stats)}; peak RSS {int(lines[-1]) / 1024:.0f} MB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
