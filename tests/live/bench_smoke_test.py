#!/usr/bin/python3
"""Smoke test of the live benchmark's machinery (bench/capture_live.py --smoke); no timings.

Usage: bench_smoke_test.py JARVIS_CAPTURE BENCH_SCRIPT

Runs the benchmark with a few thousand frames (libpcap, af_packet and tcpdump, one unlimited
trial each at 64 B, unconstrained and then under the CPU budget) and checks what does not depend
on the machine's speed: it exits 0, its namespaces and its cgroup are gone, every frame trafgen
sent arrived, each of our backends captured + reported dropped == arrived (in both runs), the
results file has the schema the daemon reads, with the budgeted run and the targets beside it,
and `jarvis-capture backends --bench-results FILE` reports those backends as measured.

Exit 0 pass, 1 fail, 77 skipped (what the benchmark skips for: not root, no trafgen, one CPU).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

failures = []


def check(ok, what, detail=""):
    print(f"{'PASS' if ok else 'FAIL'}: {what}" + ("" if ok or not detail else f": {detail}"),
          flush=True)
    if not ok:
        failures.append(what)


def bench_pid(out):
    """The benchmark's PID, from the namespace names it prints (jcb-gen<PID>)."""
    m = re.search(r"jcb-gen(\d+)", out)
    return m.group(1) if m else "?"


def main():
    jc, script = sys.argv[1], sys.argv[2]
    work = tempfile.mkdtemp(prefix="jarvis-bench-smoke-")
    results = os.path.join(work, "bench.json")
    try:
        p = subprocess.run(["/usr/bin/python3", script, jc, "--smoke", "--results", results],
                           capture_output=True, text=True, timeout=180)
        print(p.stdout, end="")
        if p.returncode == 77:
            print(p.stdout.strip().splitlines()[-1] if p.stdout.strip() else "skipped")
            return 77
        check(p.returncode == 0, "benchmark exits 0", p.stderr[-500:])
        left = [l for l in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                          text=True).stdout.splitlines()
                if l.startswith(("jcb-gen", "jcb-cap"))]
        check(not left, "no benchmark namespace left", str(left))
        groups = [g for root in ("/sys/fs/cgroup/cpu", "/sys/fs/cgroup/unified", "/sys/fs/cgroup")
                  if os.path.isdir(root)
                  for g in os.listdir(root) if g == f"jcb-{bench_pid(p.stdout)}"]
        check(not groups, "the CPU budget's cgroup is gone", str(groups))
        if not os.path.exists(results):
            check(False, "results file written")
            return 1
        doc = json.load(open(results))
        check(doc.get("schema") == "jarvis-capture-bench/1" and doc.get("date", "").endswith("Z"),
              "results: schema and a UTC date", str(doc.get("schema")))
        budget = doc.get("cpu_budget")
        if "no budgeted run:" in p.stdout:
            print("budgeted run left out: " + p.stdout.split("no budgeted run:", 1)[1]
                  .splitlines()[0].strip())
        else:
            check(budget is not None and budget.get("quota_us", 0) >= 1000
                  and budget.get("period_us", 0) > budget.get("quota_us", 0),
                  "results: the budgeted run with its quota and period", str(budget)[:300])
            check(set(doc.get("targets", {})) == {"unconstrained", "cpu_budget"},
                  "results: the targets of both runs", str(doc.get("targets"))[:300])
        runs = [("", doc)] + ([("budgeted ", budget)] if budget else [])
        for label, run in runs:
            t = run.get("peers", {}).get("tcpdump", {})
            check(t.get("status") == "measured", f"{label}tcpdump measured in the same run")
        for (label, run), name in [(r, n) for r in runs for n in ("libpcap", "af_packet")]:
            b = run["backends"].get(name, {})
            if b.get("status") == "skipped":
                print(f"{name}: skipped by the benchmark: {b.get('reason')}")
                continue
            name = label + name
            check(b.get("status") == "measured", f"{name} measured", json.dumps(b)[:300])
            if b.get("status") != "measured":
                continue
            t = b["sizes"]["64"]["trials"][0]
            check(t["sent"] == 3000 and t["arrived"] == 3000, f"{name}: 3000 sent, 3000 arrived",
                  json.dumps(t))
            check(t["dropped_reported"] is not None
                  and t["captured"] + t["dropped_reported"] == t["arrived"],
                  f"{name}: captured + reported dropped == arrived", json.dumps(t))
        out = subprocess.run([jc, "backends", "--bench-results", results], capture_output=True,
                             text=True, timeout=30).stdout
        check(f"figures: measured {doc['date']}" in out,
              "backends --bench-results shows the run as measured", out[-600:])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if failures:
        print(f"FAILED: {len(failures)} check(s)")
        return 1
    print("PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
