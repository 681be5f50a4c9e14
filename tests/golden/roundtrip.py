#!/usr/bin/python3
"""Golden round trip: `jarvis-capture capture -r F -w out.pcapng` keeps every packet exactly.

tshark is the judge. It reads F and out.pcapng; both must give the same packets in the same
order with the same captured bytes, original length, link type and timestamp to the
nanosecond. Files tshark cannot open at all must give a one-line error and a non-zero exit;
a file cut short must still yield its complete packets in out.pcapng, with a non-zero exit
and an error naming the truncation. A crash (death by signal) always fails.

usage: roundtrip.py JARVIS_CAPTURE FILE OUTDIR
"""
import json
import os
import subprocess
import sys


def epoch_ns(text):
    """tshark prints frame.time_epoch as seconds '.' nanoseconds with %09d; a record whose
    nanosecond field is out of range (>= 1e9, seen in a fuzzed file) prints more digits.
    Both mean seconds * 1e9 + that field, the instant libpcap and we normalise to."""
    sec, _, frac = text.partition(".")
    if len(frac) < 9:
        raise ValueError(f"unexpected time format {text!r}")
    return int(sec) * 10**9 + int(frac)


def tshark_packets(path):
    """Returns (packets, returncode, stderr) as tshark reads them from `path`."""
    proc = subprocess.run(
        ["tshark", "-n", "-r", path, "-T", "json", "-x", "-J", "frame"],
        capture_output=True, text=True)
    packets = []
    out = proc.stdout.strip()
    if out:
        # tshark leaves the JSON array unterminated when it stops at a cut-short record.
        if not out.endswith("]"):
            out = out.rstrip(",\n ") + "]"
        for p in json.loads(out):
            layers = p["_source"]["layers"]
            frame = layers["frame"]
            packets.append({
                "time": epoch_ns(frame["frame.time_epoch"]),
                "len": frame["frame.len"],
                "cap_len": frame["frame.cap_len"],
                "encap": frame["frame.encap_type"],
                "raw": layers.get("frame_raw", [""])[0],
            })
    stderr = "\n".join(l for l in proc.stderr.splitlines() if "Running as user" not in l)
    return packets, proc.returncode, stderr


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def main():
    binary, src, outdir = sys.argv[1], sys.argv[2], sys.argv[3]
    os.makedirs(outdir, exist_ok=True)
    out = os.path.join(outdir, os.path.basename(src) + ".out.pcapng")
    if os.path.exists(out):
        os.unlink(out)

    want, tshark_rc, tshark_err = tshark_packets(src)
    proc = subprocess.run([binary, "capture", "-r", src, "-w", out],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode < 0:
        fail(f"jarvis-capture died from signal {-proc.returncode}: {proc.stderr}")
    errors = [l for l in proc.stderr.splitlines() if l.startswith("jarvis-capture:")]

    if tshark_rc != 0 and not want:
        # Unreadable: tshark refuses it; so must we, in one clear line.
        print(f"tshark refuses {src}: {tshark_err.strip()}")
        if proc.returncode == 0:
            fail("jarvis-capture accepted a file tshark cannot read")
        if len(errors) != 1:
            fail(f"expected exactly one error line, got: {proc.stderr!r}")
        print("ok: rejected with:", errors[0])
        return

    if tshark_rc != 0:
        # Cut short: the complete packets before the damage must survive.
        print(f"tshark reads {len(want)} packet(s) then stops: {tshark_err.strip()}")
        if proc.returncode == 0 or len(errors) != 1 or "truncated" not in errors[0]:
            fail(f"expected a one-line truncation error and non-zero exit, got "
                 f"rc={proc.returncode} stderr={proc.stderr!r}")
    elif proc.returncode != 0:
        fail(f"jarvis-capture failed on a file tshark reads: {proc.stderr}")

    got, rc, err = tshark_packets(out)
    if rc != 0:
        fail(f"tshark cannot read our output {out}: {err}")
    if len(got) != len(want):
        fail(f"packet count differs: source {len(want)}, output {len(got)}")
    for i, (w, g) in enumerate(zip(want, got), start=1):
        for field in ("time", "len", "cap_len", "encap", "raw"):
            if w[field] != g[field]:
                shown = (str(w[field])[:80], str(g[field])[:80])
                fail(f"packet {i}: {field} differs: source {shown[0]!r}, output {shown[1]!r}")
    summary = f"{len(want)} packet{'' if len(want) == 1 else 's'} captured"
    if summary not in proc.stderr:
        fail(f"summary does not say '{summary}': {proc.stderr!r}")
    print(f"ok: {len(want)} packets identical (bytes, lengths, link type, ns timestamps)")


if __name__ == "__main__":
    main()
