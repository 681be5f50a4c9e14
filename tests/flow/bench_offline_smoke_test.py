#!/usr/bin/python3
"""Smoke test of the offline flow benchmark's machinery (bench/flows_offline.py); no timings.

Usage: bench_offline_smoke_test.py JARVIS_CAPTURE BENCH_SCRIPT

Runs the benchmark on a 20,000-packet file, one round, without pmacctd and the 1M-flow part,
in a cache directory of its own beside the binary (the file system the benchmark normally
uses), and checks what does not depend on the machine's speed: it exits 0; it measures in its
three page-cache states, each with a row for every tool; our three layouts report the same
number of flows, in every state (the bytes are the same); the page-cache profile of the copy
written 4 KiB per write() is at least 90% 4 KiB folios and that of the copy written 64 MiB per
write() at most 10% (when the profile is unknown, e.g. without root, the test says why and does
not check it); the copies are gone afterwards.

Exit 0 pass, 1 fail.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

# The PASS/FAIL bookkeeping every scripted test here shares (standard library only).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "api"))
from apitest import check, finish  # noqa: E402


OURS = ("jarvis-capture (1 worker)", "jarvis-capture --pipeline", "jarvis-capture --workers 2")
PEERS = ("softflowd -m 2000000", "nfpcapd")
STATES = {"as generated", "read from disk", "as written"}


def sections(out):
    """{state: text} for each '== page cache: STATE' section."""
    parts = re.split(r"^== page cache: ", out, flags=re.M)[1:]
    return {p.splitlines()[0].split(" (")[0]: p for p in parts}


def flows_of(text, tool):
    """The flows column of the tool's row: name (28 wide), wall s, Mpps, RSS, "MB", flows."""
    for line in text.splitlines():
        if line[:28].rstrip() == tool:
            fields = line[28:].split()
            return fields[4] if len(fields) > 4 else None
    return None


def main():
    jc, script = sys.argv[1], sys.argv[2]
    cache = tempfile.mkdtemp(prefix="bench-offline-smoke-", dir=os.path.dirname(os.path.abspath(jc)))
    try:
        p = subprocess.run(["/usr/bin/python3", script, jc, "--packets", "20000", "--runs", "1",
                            "--skip-pmacct", "--skip-1m", "--cache", cache],
                           capture_output=True, text=True, timeout=300)
        print(p.stdout, end="")
        check(p.returncode == 0, "benchmark exits 0", p.stderr[-800:])
        secs = sections(p.stdout)
        check(set(secs) == STATES, "the three page-cache states measured", str(sorted(secs)))
        counts = {}
        for state, text in secs.items():
            for tool in OURS + PEERS:
                n = flows_of(text, tool)
                check(n is not None and n.isdigit() and int(n) > 0,
                      f"{state}: a row for {tool} with its flows", str(n))
                counts[(state, tool)] = n
            ours = {counts[(state, t)] for t in OURS}
            check(len(ours) == 1, f"{state}: our three layouts report the same flows", str(ours))
            check("fastest peer:" in text and "cat FILE > /dev/null:" in text,
                  f"{state}: the ratio lines are printed")
            m = re.search(r"^machine: (\d+) cores, (.+) \(family \S+ model \S+\)", text, re.M)
            check(m is not None and int(m.group(1)) == os.cpu_count() and
                  m.group(2) not in ("", "unknown CPU"), f"{state}: the machine is named",
                  m.group(0) if m else "no machine line")
        if set(secs) == STATES:
            ours = {counts[(state, "jarvis-capture (1 worker)")] for state in STATES}
            check(len(ours) == 1, "the same flows from the file and its two copies", str(ours))
        # Each copy is in the folios it was written for: 4 KiB writes, 4 KiB folios; 64 MiB
        # writes, large ones (2 MiB where the file system gives them; a 20,000-packet file is
        # 13.6 MB, so "large" is checked as not 4 KiB).
        for state, what in (("as written", "4 KiB"), ("as generated", "large")):
            m = re.search(r"page cache before the rounds: (.*?); after:", secs.get(state, ""))
            profile = m.group(1) if m else ""
            if profile.startswith("unknown"):
                print(f"skipped: the {state} copy's folio sizes: profile {profile}")
                continue
            share = re.search(r"(\d+)% in 4 KiB", profile)
            small = int(share.group(1)) if share else 0
            check(small >= 90 if what == "4 KiB" else small <= 10,
                  f"the {state} copy is cached in {what} folios", profile)
        left = [f for f in os.listdir(cache) if "as-written" in f or "as-generated" in f]
        check(not left, "the copies are removed", str(left))
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return finish()


if __name__ == "__main__":
    sys.exit(main())
