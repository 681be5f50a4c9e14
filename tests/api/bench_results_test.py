#!/usr/bin/python3
"""The backends reply's figures come from `jarvis-capture bench`'s results file when there is one.

Usage: bench_results_test.py JARVIS_CAPTURE

With a results file (written here, in the benchmark's format, with figures no real run gives,
so they cannot come from anywhere else), `serve --bench-results FILE`:
  - GET .../backends reports af_packet and xdp as "figures": "measured", with the file's date
    in measured_at, the file's max_throughput_gbps and cpu_overhead_pct, and its details (zero-
    drop pps at 64 and 1500 B, drop % at the maximum rate, generator_bound);
  - backends the file skipped (pf_ring) or does not name (libpcap, dpdk) stay "nominal" with the
    guide's figures and a note saying why;
  - the file is read per request: rewriting it changes the next reply;
  - a malformed file gives nominal figures with a note naming it, and the daemon keeps serving.
Without the file: every backend nominal. The TOML key [server] bench_results does the same as
the flag. `jarvis-capture backends --bench-results FILE` prints the same figures.

Exit 0 pass, 1 fail.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from apitest import Daemon, check, finish, log  # noqa: E402

DATE = "2031-02-03T04:05:06Z"
NOMINAL = {"libpcap": (10, 15), "af_packet": (40, 10), "xdp": (100, 5), "dpdk": (400, 3),
           "pf_ring": (50, 10)}


def size(pps, lower, cpu, max_pps, drop_pct):
    return {"zero_drop": {"pps": pps, "mpps": pps / 1e6, "gbps": pps * 1500 * 8 / 1e9,
                          "cpu_pct": cpu, "lower_bound": lower},
            "max_rate": {"pps": max_pps, "drop_pct": drop_pct},
            "drop_counter": {"trials": 3, "agree": 3, "disagreements": []}}


def results(af_gbps=1.234):
    return {
        "schema": "jarvis-capture-bench/1", "date": DATE,
        "host": {"kernel": "test-kernel", "cpus": 2},
        "backends": {
            "af_packet": {"kind": "ours", "status": "measured", "mode": "",
                          "max_throughput_gbps": af_gbps, "cpu_overhead_pct": 12.5,
                          "max_throughput_frame_bytes": 1500,
                          "sizes": {"64": size(111111, False, 7.5, 222222, 4.5),
                                    "1500": size(102833, True, 12.5, 102833, 0.0)}},
            "xdp": {"kind": "ours", "status": "measured", "mode": "native/copy",
                    "max_throughput_gbps": 0.987, "cpu_overhead_pct": 33.3,
                    "max_throughput_frame_bytes": 1500,
                    "sizes": {"64": size(90000, True, 30.0, 90000, 0.0),
                              "1500": size(82250, False, 33.3, 99000, 1.25)}},
            "pf_ring": {"kind": "ours", "status": "skipped", "reason": "no libpfring here"},
        },
        "peers": {}}


def write(path, doc):
    with open(path, "w") as f:
        f.write(doc if isinstance(doc, str) else json.dumps(doc))


def backends(d):
    r = d.api("GET", "/backends")
    check(r.status == 200, "GET backends: 200", f"{r.status} {r.body[:200]}")
    return {b["name"]: b for b in r.json()["available_backends"]}


def check_nominal(bl, names, what, note_has):
    for n in names:
        b = bl[n]
        check(b["figures"] == "nominal" and "measured_at" not in b
              and (b["max_throughput_gbps"], b["cpu_overhead_pct"]) == NOMINAL[n],
              f"{what}: {n} nominal with the guide's figures", json.dumps(b))
        check(note_has in b.get("figures_note", ""), f"{what}: {n}'s note says '{note_has}'",
              b.get("figures_note"))


def main():
    jc = sys.argv[1]
    work = tempfile.mkdtemp(prefix="jarvis-bench-results-test-")
    path = os.path.join(work, "bench.json")
    try:
        write(path, results())
        d = Daemon.listen(jc, ["--bench-results", path]).wait_ready()
        try:
            bl = backends(d)
            a = bl["af_packet"]
            check(a["figures"] == "measured" and a["measured_at"] == DATE,
                  "with the file: af_packet measured, measured_at is the file's date", json.dumps(a))
            check(a["max_throughput_gbps"] == 1.234 and a["cpu_overhead_pct"] == 12.5,
                  "af_packet: max_throughput_gbps and cpu_overhead_pct are the file's", json.dumps(a))
            m = a.get("measured", {})
            check(m.get("zero_drop_pps") == {"64": 111111, "1500": 102833}
                  and m.get("drop_pct_at_max_rate") == {"64": 4.5, "1500": 0.0}
                  and m.get("max_rate_pps") == {"64": 222222, "1500": 102833}
                  and m.get("generator_bound") is True and m.get("results_file") == path,
                  "af_packet: the measured details are the file's", json.dumps(m))
            check("lower bound" in a.get("figures_note", ""),
                  "af_packet: generator-bound figures are called a lower bound", a.get("figures_note"))
            x = bl["xdp"]
            check(x["figures"] == "measured" and x["max_throughput_gbps"] == 0.987
                  and x["cpu_overhead_pct"] == 33.3 and x["measured"]["mode"] == "native/copy"
                  and x["measured"]["generator_bound"] is False
                  and "lower bound" not in x["figures_note"],
                  "xdp: measured, its own figures, not a lower bound", json.dumps(x))
            check_nominal(bl, ["pf_ring"], "skipped in the file", "no libpfring here")
            check_nominal(bl, ["libpcap", "dpdk"], "not in the file", "did not run it")
            check(all(b["status"] in ("available", "unavailable") and "reason" in b
                      for b in bl.values()), "status and reason fields still present")

            write(path, results(af_gbps=2.5))
            a2 = backends(d)["af_packet"]
            check(a2["max_throughput_gbps"] == 2.5, "the file is read per request",
                  json.dumps(a2))

            write(path, '{"schema": "jarvis-capture-bench/1", "date": ')
            bl = backends(d)
            check_nominal(bl, list(NOMINAL), "malformed file", "could not be used")
            check(path in bl["af_packet"]["figures_note"], "malformed file: the note names it",
                  bl["af_packet"]["figures_note"])
            check(d.healthy(), "malformed file: the daemon still serves")
        finally:
            check(d.stop() == 0, "daemon stops cleanly")

        missing = os.path.join(work, "none.json")
        d = Daemon.listen(jc, ["--bench-results", missing]).wait_ready()
        try:
            check_nominal(backends(d), list(NOMINAL), "no results file", "no benchmark results")
        finally:
            d.stop()

        write(path, results())
        cfg = os.path.join(work, "serve.toml")
        write(cfg, f'[server]\nbench_results = "{path}"\n')
        d = Daemon.listen(jc, ["--config", cfg]).wait_ready()
        try:
            a = backends(d)["af_packet"]
            check(a["figures"] == "measured" and a["measured_at"] == DATE,
                  "TOML [server] bench_results: measured figures", json.dumps(a))
        finally:
            d.stop()

        def cli(results_path):
            p = subprocess.run([jc, "backends", "--bench-results", results_path],
                               capture_output=True, text=True, timeout=30)
            check(p.returncode == 0, f"backends --bench-results {results_path}: exit 0", p.stderr)
            rows, current = {}, None
            for line in p.stdout.splitlines():
                if line and not line[0].isspace():
                    current = line.split()[0]
                elif current and line.strip().startswith("figures:"):
                    rows[current] = line.strip()
            return rows

        rows = cli(path)
        check(rows.get("af_packet", "").startswith(f"figures: measured {DATE}: >= 1.23 Gbit/s, "
                                                   "CPU 12.5%"),
              "CLI: af_packet measured with the date and the file's figures", rows.get("af_packet"))
        check("64 B: 0.111 Mpps zero-drop, 4.5% dropped at 0.222 Mpps" in rows.get("af_packet", ""),
              "CLI: af_packet's 64 B details", rows.get("af_packet"))
        check(rows.get("dpdk", "").startswith("figures: nominal: 400 Gbit/s, CPU 3%"),
              "CLI: dpdk nominal", rows.get("dpdk"))
        rows = cli(missing)
        check(all(r.startswith("figures: nominal:") and "no benchmark results" in r
                  for r in rows.values()) and len(rows) == len(NOMINAL),
              "CLI without the file: every backend nominal", json.dumps(rows))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return finish()


if __name__ == "__main__":
    sys.exit(main())
