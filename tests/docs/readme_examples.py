#!/usr/bin/python3
"""Runs every ```sh block of README.md and docs/*.md from the project root; each must exit 0.

Blocks fenced as ```sh are examples a reader can paste; ```console, ```bash and ```text blocks
are illustration and are not run. `build/jarvis-capture` and `./x run` (set-up, then the
binary) in a block are replaced by the binary under test, so the examples run against whatever
build directory ctest uses.

usage: readme_examples.py PROJECT_ROOT JARVIS_CAPTURE
"""
import glob
import os
import re
import subprocess
import sys

root, binary = sys.argv[1], os.path.abspath(sys.argv[2])
docs = [os.path.join(root, "README.md")] + sorted(glob.glob(os.path.join(root, "docs", "*.md")))
failures = 0
ran = 0
for doc in docs:
    text = open(doc, encoding="utf-8").read()
    for m in re.finditer(r"^```sh\n(.*?)^```", text, re.S | re.M):
        block = m.group(1).replace("build/jarvis-capture", binary)
        block = re.sub(r"(^|[;&|(]\s*)\./x run ", lambda g: g.group(1) + binary + " ", block,
                       flags=re.M)
        line = text[: m.start()].count("\n") + 1
        where = f"{os.path.relpath(doc, root)}:{line}"
        proc = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block], cwd=root,
                              capture_output=True, text=True, timeout=120)
        ran += 1
        if proc.returncode != 0:
            failures += 1
            print(f"FAIL {where} (exit {proc.returncode})\n{block}\n--- stderr ---\n{proc.stderr}")
        else:
            print(f"ok   {where}")
if ran == 0:
    print("FAIL: no ```sh examples found")
    sys.exit(1)
print(f"{ran - failures}/{ran} examples ran cleanly")
sys.exit(1 if failures else 0)
