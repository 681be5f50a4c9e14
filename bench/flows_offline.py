#!/usr/bin/python3
"""bench/flows_offline: offline flow metering, jarvis-capture against its peers, one run.

Input: a 2,000,000-packet gen_flows.py file, generated once and cached under build/.
Every tool reads the same page-cached file (it is re-read with cat before each run, since the
kernel may reclaim cold page cache between runs).

How the file came into the page cache matters as much as the tools: Linux (6.x, ext4 and
others) keeps a file read from disk in large folios (up to 2 MiB), a file written with large
write()s in large folios too, and a file written with small write()s in folios of the writes'
size, and read() copies out of 4 KiB folios markedly slower (`cat` of this file here: 0.05 s
against 0.07-0.09 s on one host, 0.15 s against 0.18-0.22 s on another). The bench therefore
measures three times, on the same bytes: "as generated" (a copy written the way gen_flows.py
writes the benchmark's file, 64 MiB per write(), and still cached from the writing: the state
the file is in when this bench has just generated it, measured at 97-100% in 2 MiB folios),
"read from disk" (the file is evicted and read back, as a capture analysed after the fact is;
92-98% in 2 MiB folios), and "as written" (a copy written 4 KiB at a time, as libpcap's
pcap_dump writes a capture, and still cached from the writing: 4 KiB folios). For each it prints
the share of the file's page cache in folios of each size, read from /proc/self/pagemap and
/proc/kpageflags (root only).
Folio sizes are not the whole story: two copies written the same way, both in 4 KiB folios,
were copied out at different speeds (`cat` 0.085 s and 0.129 s, medians of 11), and half an
hour later the other way round, so the as-written figures move from run to run; compare the
ratios within one run.

The measurement goes in RUNS rounds, each of
which runs every tool once, in turn, so that host load drifting over minutes (a shared VM)
touches every tool alike. Printed per tool: median wall time, packets per second, peak RSS,
flows reported, and our single-worker time's ratio to its time: the median of the rounds'
ratios, with their range.
Also printed: the rate of a bare libpcap pcap_next_ex() loop (the floor of any libpcap-based
tool) and of `cat FILE > /dev/null` from the page cache (the ceiling for anything that must
look at every byte), with our distance to it.

A second part meters a file with 1,000,000 concurrent flows in a 1,000,000-flow table and
reports the table's memory and the process's peak RSS; then it meters the same file through
tables of 100,000 flows, ours against softflowd -m 100000 in FULL_ROUNDS rounds: a stream of new
flows into a full table, as a scan or a flood brings, where each new flow ends the least
recently seen one.

usage: flows_offline.py JARVIS_CAPTURE [--runs R] [--packets N] [--skip-pmacct] [--skip-1m]
                        [--full-rounds K] [--state all|generated|disk|written]
"""
import argparse
import ctypes
import mmap
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import hostinfo

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GEN = os.path.join(ROOT, "..", "shared", "tools", "gen_flows.py")
# The second part's file (1M concurrent flows): packets and flows.
BIG_PACKETS, BIG_FLOWS = 2_000_000, 1_000_000
# ... and the flows a table holds in its full-table part.
FULL_TABLE = 100_000
# gen_flows.py writes its packets 100,000 at a time (tens of MB per write(); strace); the "as
# generated" copy is written in pieces large enough to leave the same 2 MiB folios.
GEN_WRITE = 64 << 20


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


def from_disk(path):
    """Drops the file's pages from the page cache and reads it back from disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # dirty pages cannot be dropped
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    warm(path)


def write_copy(src, dst, chunk=4096):
    """A copy of src written `chunk` bytes per write(), left in the page cache as written
    (fsync'd, so that no write-back runs during the measurement)."""
    with open(src, "rb", buffering=0) as i:
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            while True:
                buf = i.read(max(chunk, 1 << 20))
                if not buf:
                    break
                view = memoryview(buf)
                for off in range(0, len(buf), chunk):
                    os.write(fd, view[off:off + chunk])
            os.fsync(fd)
        finally:
            os.close(fd)


def folio_profile(path):
    """The share of the file's bytes in page-cache folios of each size, as a string, or why it
    is unknown. Maps the file, reads each page's frame number from /proc/self/pagemap and the
    frame's flags from /proc/kpageflags: a folio is a compound head followed by its tails."""
    KPF_COMPOUND_HEAD, KPF_COMPOUND_TAIL = 1 << 15, 1 << 16
    page = os.sysconf("SC_PAGE_SIZE")
    size = os.path.getsize(path)
    npages = (size + page - 1) // page
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    fd = os.open(path, os.O_RDONLY)
    addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
    os.close(fd)
    if addr in (None, ctypes.c_void_p(-1).value):
        return "unknown (mmap failed)"
    try:
        if libc.madvise(addr, size, 22) != 0:  # MADV_POPULATE_READ: map every page
            return "unknown (MADV_POPULATE_READ failed)"
        with open("/proc/self/pagemap", "rb") as pm:
            pm.seek(addr // page * 8)
            entries = memoryview(pm.read(npages * 8)).cast("Q")
        pfns = [e & ((1 << 55) - 1) if e >> 63 else 0 for e in entries]
        if not any(pfns):
            return "unknown (frame numbers need root)"
        sizes = {}  # folio bytes -> file bytes in folios of that size
        with open("/proc/kpageflags", "rb") as kf:
            i = 0
            while i < npages:
                # A run of consecutive frames is read in one go.
                j = i + 1
                while j < npages and pfns[j] == pfns[j - 1] + 1:
                    j += 1
                kf.seek(pfns[i] * 8)
                flags = memoryview(kf.read((j - i) * 8)).cast("Q")
                k = 0
                while k < j - i:
                    n = 1
                    if flags[k] & KPF_COMPOUND_HEAD:
                        while k + n < j - i and flags[k + n] & KPF_COMPOUND_TAIL:
                            n += 1
                    sizes[n * page] = sizes.get(n * page, 0) + n * page
                    k += n
                i = j
    except OSError as e:
        return f"unknown ({e.strerror})"
    except ValueError:  # a short read of either file
        return "unknown (short read of /proc/self/pagemap or /proc/kpageflags)"
    finally:
        libc.munmap(addr, size)
    total = sum(sizes.values())
    buckets = [("4 KiB", 0, 4096), ("8-60 KiB", 4097, 61440), ("64 KiB-1 MiB", 61441, 1 << 20),
               ("2 MiB", (1 << 20) + 1, 1 << 40)]
    parts = []
    for name, lo, hi in buckets:
        share = sum(v for k, v in sizes.items() if lo <= k <= hi) / total
        if share >= 0.005:
            parts.append(f"{share:.0%} in {name}")
    return ", ".join(parts) + " folios"


def timed(cmd, path, prep=None, null_out=False):
    """Runs cmd once under /usr/bin/time; returns (wall seconds, peak RSS KiB, stdout).
    null_out: stdout to /dev/null (for cat), stderr still collected."""
    if prep:
        prep()
    warm(path)
    # Output goes to a file, as a user's would: reading a pipe in this script costs the
    # measured tool time on 2 cores (about 0.04 s per run here), which skews fast runs.
    with tempfile.NamedTemporaryFile("r") as tf, tempfile.TemporaryFile("w+") as out, \
            open(os.devnull, "w") as null:
        t0 = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", tf.name] + cmd,
                              stdout=null if null_out else out,
                              stderr=out if null_out else subprocess.STDOUT)
        wall = time.perf_counter() - t0
        out.seek(0)
        text = out.read()
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {text[-400:]}")
        rss = int(tf.read().strip().splitlines()[-1])
    return wall, rss, text


def tool(name, cmd, prep=None, count_flows=None, once=False, null_out=False):
    """One measured command: run once per round, or with once=True in the first round only."""
    return {"name": name, "cmd": cmd, "prep": prep, "count_flows": count_flows, "once": once,
            "null_out": null_out,
            "walls": [], "rss": 0, "outs": []}


def run_rounds(tools, path, rounds):
    """Runs every tool once per round, in turn, so that each round's figures were taken under
    the same conditions: on a shared VM the host's load drifts over minutes, and timing one
    tool's runs after another's would put that drift into their ratio."""
    for i in range(rounds):
        for t in tools:
            if t["once"] and i > 0:
                continue
            w, r, out = timed(t["cmd"], path, t["prep"], t["null_out"])
            t["walls"].append(w)
            t["rss"] = max(t["rss"], r)
            t["outs"].append(out)
    for t in tools:
        t["wall"] = statistics.median(t["walls"])
        t["flows"] = t["count_flows"](t["outs"][-1]) if t["count_flows"] else ""


def paired(peer, ours):
    """Per-round ratios peer time / our time: (median, lowest, highest)."""
    ratios = [p / o for p, o in zip(peer["walls"], ours["walls"])]
    return statistics.median(ratios), min(ratios), max(ratios)


def count_ours(out):
    """Records in our CSV output: rows start with the flow id (and the --stats summary line,
    which starts with the packet count, is not one)."""
    return str(sum(1 for l in out.splitlines() if l[:1].isdigit() and " packets, " not in l))


def count_softflowd(out):
    """Flows softflowd says it exported (its -d statistics)."""
    return next((l.split(":", 1)[1].split()[0] for l in out.splitlines()
                 if "Flows exported" in l), "?")


def full_table(big, binary, work, rounds):
    """The 1M-flow file through tables of 100,000 flows: new flows keep arriving at a full table,
    as under a scan or a flood, and each ends the least recently seen flow (ours: IPFIX end
    reason 5; softflowd -m: its oldest flows are expired likewise)."""
    if rounds <= 0:
        return
    ours = tool("jarvis-capture (1 worker)",
                [binary, "flows", "-r", big, "--format", "csv", "--no-progress", "--stats",
                 "--table-size", str(FULL_TABLE)],
                count_flows=count_ours)
    sf = tool(f"softflowd -m {FULL_TABLE}",
              ["softflowd", "-r", big, "-n", "127.0.0.1:9", "-v", "9", "-m", str(FULL_TABLE), "-d",
               "-p", os.path.join(work, "sf-full.pid")],
              count_flows=count_softflowd)
    run_rounds([ours, sf], big, rounds)
    evicted = next((l.split(";")[1].split(",")[2].strip() for l in ours["outs"][-1].splitlines()
                    if " evicted," in l), "? evicted")
    median, lo, hi = paired(sf, ours)
    print(f"\nfull table (the 1M-flow file, tables of {FULL_TABLE:,} flows; {rounds} round(s), "
          f"medians):")
    for t in (ours, sf):
        print(f"  {t['name']:<26} {t['wall']:>7.3f} s {BIG_PACKETS / t['wall'] / 1e6:>6.2f} Mpps "
              f"{t['rss'] / 1024:>6.0f} MB {t['flows']:>9} records")
    print(f"  ours: {evicted}; softflowd takes {median:.2f}x our time (range {lo:.2f}-{hi:.2f})")


def make_tools(binary, loop, src, npkt, work, with_pmacct):
    """The measured commands for one input file: ours, the peers, and the floors."""
    results = []
    ours_cmd = [binary, "flows", "-r", src, "--format", "csv", "--no-progress",
                "--table-size", str(npkt // 10)]
    results.append(tool("jarvis-capture (1 worker)", ours_cmd, count_flows=count_ours))
    # Two cores: the reader and decoder on one thread, metering on another (--pipeline), and
    # the reader with two metering shards (--workers 2: three threads on two cores here).
    results.append(tool("jarvis-capture --pipeline", ours_cmd + ["--pipeline"],
                        count_flows=count_ours))
    results.append(tool("jarvis-capture --workers 2", ours_cmd + ["--workers", "2"],
                        count_flows=count_ours))

    sf = ["softflowd", "-r", src, "-n", "127.0.0.1:9", "-v", "9", "-m", "2000000", "-d",
          "-p", os.path.join(work, "sf.pid")]
    results.append(tool("softflowd -m 2000000", sf, count_flows=count_softflowd))

    nfp_dir = os.path.join(work, "nfp")
    def nfp_prep():
        shutil.rmtree(nfp_dir, ignore_errors=True)
        os.makedirs(nfp_dir)
    def count_nfp(_):
        out = subprocess.run(["nfdump", "-R", nfp_dir, "-I"], capture_output=True, text=True)
        return next((l.split(":", 1)[1].strip() for l in out.stdout.splitlines()
                     if l.startswith("Flows:")), "?")
    results.append(tool("nfpcapd", ["nfpcapd", "-r", src, "-w", nfp_dir], prep=nfp_prep,
                        count_flows=count_nfp))
    if with_pmacct:
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
        results.append(tool("pmacctd", ["pmacctd", "-f", conf, "-I", src, "-u"],
                            prep=pm_prep, count_flows=count_pm, once=True))

    # The floors and ceilings run in the rounds too, each under /usr/bin/time like the
    # tools (its fork and exec are in every figure alike).
    cat_tool = tool("cat FILE > /dev/null", ["cat", src], null_out=True)
    loop_tool = tool("pcap_next_ex loop", [loop, src])
    return results, cat_tool, loop_tool


def measure(state, src, args, binary, loop, work, with_pmacct):
    """Runs the rounds on `src` as it now is in the page cache and prints the results."""
    npkt = args.packets
    size = os.path.getsize(src)
    results, cat_tool, loop_tool = make_tools(binary, loop, src, npkt, work, with_pmacct)
    profile = folio_profile(src)
    run_rounds(results + [cat_tool, loop_tool], src, args.runs)
    profile_after = folio_profile(src)
    # The loop times itself (open to close), without its start-up.
    pcap_loop = statistics.median(float(o.split()[1]) for o in loop_tool["outs"])
    cat = cat_tool["wall"]

    ours = results[0]
    print(f"\n== page cache: {state}\ninput: {src}\n       {npkt} packets, {size / 1e9:.2f} GB; "
          f"page cache before the rounds: {profile}; after: {profile_after}\n"
          f"       {args.runs} rounds, each running every tool once in turn (pmacctd: first "
          f"round only); medians\nmachine: {hostinfo.describe()}")
    print(f"{'tool':<28} {'wall s':>8} {'Mpps':>7} {'peak RSS':>10} {'flows':>10} "
          f"{'ours (1 worker) vs it, per round: median (range)':>50}")
    for r in results:
        if r is ours or len(r["walls"]) != len(ours["walls"]):
            vs = f"{r['wall'] / ours['wall']:.2f}x" if r is not ours else "1.00x"
        else:
            med, lo, hi = paired(r, ours)
            vs = f"{med:.2f}x ({lo:.2f}-{hi:.2f})"
        print(f"{r['name']:<28} {r['wall']:>8.3f} {npkt / r['wall'] / 1e6:>7.2f} "
              f"{r['rss'] / 1024:>8.0f} MB {r['flows']:>10} {vs:>50}")
    peers = [r for r in results if not r["name"].startswith("jarvis")]
    fastest = min(peers, key=lambda r: r["wall"])
    med, lo, hi = paired(fastest, ours)
    print(f"\nfastest peer: {fastest['name']} at {npkt / fastest['wall'] / 1e6:.2f} Mpps; "
          f"ours (one core) is {med:.2f}x that, median of the rounds' ratios "
          f"(range {lo:.2f}-{hi:.2f}; ratio of the medians {fastest['wall'] / ours['wall']:.2f}x; "
          f"target: 5x)")
    print(f"bare libpcap pcap_next_ex loop: {npkt / pcap_loop / 1e6:.2f} Mpps "
          f"({pcap_loop:.3f} s, timed inside the loop); ours is {pcap_loop / ours['wall']:.2f}x it")
    med, lo, hi = paired(ours, cat_tool)
    print(f"cat FILE > /dev/null: {size / cat / 1e9:.1f} GB/s = {npkt / cat / 1e6:.1f} Mpps "
          f"({cat:.3f} s); ours takes {med:.2f}x as long (range {lo:.2f}-{hi:.2f}; "
          f"target: within 3x)")
    print(f"peak RSS of ours: {ours['rss'] / 1024:.0f} MB", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--runs", type=int, default=9,
                    help="rounds, each running every tool once (9: the as-written ratio moves "
                         "by about 0.5 from run to run here; more rounds steady its median)")
    ap.add_argument("--packets", type=int, default=2_000_000)
    ap.add_argument("--cache", default=os.path.join(ROOT, "build", "bench-cache"))
    ap.add_argument("--skip-pmacct", action="store_true", help="pmacctd takes ~40 s on 2M packets")
    ap.add_argument("--skip-1m", action="store_true",
                    help="skip the 1M-flow file (its table size, and the full-table rounds)")
    ap.add_argument("--full-rounds", type=int, default=3,
                    help="rounds of the full-table comparison on the 1M-flow file (0: none; "
                         "softflowd takes ~7 s a round)")
    ap.add_argument("--state", choices=("all", "generated", "disk", "written"), default="all",
                    help="page-cache state(s) to measure in (see the top of this file)")
    args = ap.parse_args()
    binary = os.path.abspath(args.binary)
    loop = os.path.join(os.path.dirname(binary), "jarvis-bench-pcap-loop")
    src = generate(args.cache, args.packets, args.packets // 20)
    work = tempfile.mkdtemp(prefix="jarvis-bench-")
    # The copies sit beside the source (same file system), not in /tmp.
    generated = os.path.join(args.cache, f"flows-{args.packets}-as-generated.pcap")
    written = os.path.join(args.cache, f"flows-{args.packets}-as-written.pcap")
    try:
        pmacct = not args.skip_pmacct
        if args.state in ("all", "generated"):
            write_copy(src, generated, chunk=GEN_WRITE)
            measure("as generated (a copy written 64 MiB per write(), as gen_flows.py writes, "
                    "still cached)", generated, args, binary, loop, work, pmacct)
            os.unlink(generated)  # 1.4 GB of page cache the next states do not need
            pmacct = False  # once is enough: it is ~90x slower than us either way
        if args.state in ("all", "disk"):
            from_disk(src)
            measure("read from disk (the file evicted, then read back)", src, args, binary,
                    loop, work, pmacct)
            pmacct = False
        if args.state in ("all", "written"):
            write_copy(src, written)
            measure("as written (a copy written 4 KiB per write(), still cached)", written,
                    args, binary, loop, work, pmacct)

        if not args.skip_1m:
            # 1M UDP flows of about 2 packets each over 30 s, metered with a one-hour idle
            # timeout: UDP has no end, so every flow stays in the table until the file ends.
            big = generate(args.cache, BIG_PACKETS, BIG_FLOWS,
                           extra=("--duration", "30", "--udp-frac", "1.0"), tag="-1m-concurrent")
            r = subprocess.run(["/usr/bin/time", "-f", "%M", binary, "flows", "-r", big,
                                "--format", "csv", "--no-progress", "--stats",
                                "--table-size", str(BIG_FLOWS), "--idle-timeout", "3600"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            lines = r.stderr.strip().splitlines()
            stats = [l for l in lines if "at most" in l or "flow table" in l]
            print(f"\n1M-flow table: {'; '.join(stats)}; peak RSS {int(lines[-1]) / 1024:.0f} MB")
            full_table(big, binary, work, args.full_rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        for copy in (generated, written):
            if os.path.exists(copy):
                os.unlink(copy)


if __name__ == "__main__":
    sys.exit(main())
