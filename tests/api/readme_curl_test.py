#!/usr/bin/python3
"""Runs the README's curl examples (the ```sh daemon blocks) against a real daemon.

Usage: readme_curl_test.py PROJECT_ROOT JARVIS_CAPTURE

Every block fenced as ```sh daemon in README.md is run, in order, with `bash -e -o pipefail`,
against one daemon on a free loopback port: 127.0.0.1:8000 in a block is rewritten to it (a
block naming any other address is refused, not run). Each block must exit 0. A block that
prints a status code with curl's -w '%{http_code}' must print the code and body that its
`# CODE BODY` comment shows. The examples capture on `lo`, which needs root; as root the test
runs in a private network namespace (`unshare --net`), so the only traffic on that `lo` is the
examples' own requests.

Exit 0 pass, 1 fail, 77 skipped (not root, no curl).
"""

import json
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from apitest import Daemon, check, finish, log, skip  # noqa: E402

ENDPOINTS = ["/backends", "/start", "/status", "/metrics", "/flow/meter/enable", "/flows",
             "/stop", "8000/metrics"]


def blocks(readme):
    text = open(readme, encoding="utf-8").read()
    for m in re.finditer(r"^```sh daemon\n(.*?)^```", text, re.S | re.M):
        yield text[: m.start()].count("\n") + 1, m.group(1)


def json_values(text):
    """The JSON values printed one after another (curl adds no newline)."""
    dec, out, i = json.JSONDecoder(), [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        v, i = dec.raw_decode(text, i)
        out.append(v)
    return out


def session_block(where, stdout):
    """The session example prints backends, start, status, meter, metrics, flows, stop."""
    try:
        vals = json_values(stdout)
    except ValueError as e:
        check(False, f"{where}: prints JSON replies only", f"{e}: {stdout[:300]!r}")
        return
    kinds = ["list" if isinstance(v, list) else v.get("status", "available_backends"
                                                      if "available_backends" in v else
                                                      "running" if "running" in v else
                                                      "metrics" if "packets_captured" in v
                                                      else "?") for v in vals]
    check(kinds == ["available_backends", "started", "running", "enabled", "metrics", "list",
                    "stopped"],
          f"{where}: replies of backends, start, status, meter, metrics, flows, stop in order",
          str(kinds))
    if len(vals) == 7:
        m, flows, stop = vals[4], vals[5], vals[6]
        check(m["buffer_usage_pct"] is None and m["packets_dropped"] == 0,
              f"{where}: metrics of lo: buffer_usage_pct null, nothing dropped", str(m)[:200])
        check(all(f["src_ip"] == "127.0.0.1" for f in flows),
              f"{where}: flows on lo are the examples' own connections", str(flows)[:300])
        check(stop["packets_captured"] >= m["packets_captured"] > 0,
              f"{where}: the API's own requests were captured", str(stop)[:200])


def run_blocks(root, jc):
    readme = os.path.join(root, "README.md")
    found = list(blocks(readme))
    if not check(found, "README.md has ```sh daemon blocks"):
        return
    every = "".join(b for _, b in found)
    for e in ENDPOINTS:
        check(e in every, f"the examples call {e}")
    d = Daemon.listen(jc)
    try:
        d.wait_ready()
        log(f"daemon on 127.0.0.1:{d.port}")
        for line, block in found:
            where = f"README.md:{line}"
            urls = set(re.findall(r"https?://[^/\s'\"]+", block))
            if not check(urls == {"http://127.0.0.1:8000"},
                         f"{where}: the block talks to http://127.0.0.1:8000 only", str(urls)):
                continue
            script = block.replace("127.0.0.1:8000", f"127.0.0.1:{d.port}")
            p = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script],
                               capture_output=True, text=True, timeout=60)
            if not check(p.returncode == 0, f"{where}: every command exits 0",
                         f"exit {p.returncode}\n{script}\n--- stdout ---\n{p.stdout[-2000:]}"
                         f"\n--- stderr ---\n{p.stderr[-2000:]}"):
                continue
            if "%{http_code}" in block:
                want = re.search(r"^# (\d{3}) (.*)$", block, re.M)
                codes = [l for l in p.stdout.splitlines() if re.fullmatch(r"\d{3}", l)]
                if check(want is not None and codes == [want.group(1)],
                         f"{where}: prints the status code its comment shows",
                         f"printed {codes}, comment {want.group(0) if want else None}"):
                    try:
                        same = json.loads(p.stderr) == json.loads(want.group(2))
                    except ValueError:
                        same = False
                    check(same, f"{where}: the body on stderr is the one its comment shows",
                          f"got {p.stderr!r}")
            if "/start" in block and "-sf" in block:
                session_block(where, p.stdout)
        st = d.api("GET", "/status").json()
        check(st["running"] is False, "after the examples no capture is left running",
              str(st)[:200])
    finally:
        rc = d.stop()
    check(rc == 0, "SIGTERM: exit 0", f"exit {rc}")


def main():
    if len(sys.argv) == 4 and sys.argv[3] == "--inner":
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        run_blocks(sys.argv[1], sys.argv[2])
        return finish()
    if len(sys.argv) != 3:
        print(f"usage: {sys.argv[0]} PROJECT_ROOT JARVIS_CAPTURE", file=sys.stderr)
        return 2
    root, jc = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    if os.geteuid() != 0:
        skip("the examples capture on lo, which needs root")
    if shutil.which("curl") is None:
        skip("curl is not installed")
    if shutil.which("unshare") and shutil.which("ip") and \
            subprocess.run(["unshare", "--net", "true"]).returncode == 0:
        log("running in a private network namespace (unshare --net)")
        return subprocess.run(["unshare", "--net", sys.executable, os.path.abspath(__file__),
                               root, jc, "--inner"], timeout=170).returncode
    run_blocks(root, jc)
    return finish()


if __name__ == "__main__":
    sys.exit(main())
