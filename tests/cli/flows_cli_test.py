#!/usr/bin/python3
"""How `jarvis-capture flows` behaves on the command line.

Usage: flows_cli_test.py JARVIS_CAPTURE PCAP_DIR GEN_FLOWS

* Output formats: every JSON line parses and has exactly the documented fields, in order; the
  CSV header is those names and every row has that many columns; CSV and JSON describe the
  same flows; the table has its header and one row per flow. Invariants every record keeps
  (packets = fwd + rev, bytes = fwd + rev, duration = last - first, known state and end reason)
  are checked on every corpus file.
* -c N meters exactly N packets (batch boundaries included), and all of a shorter file.
* `-r -` reads standard input: the same flows as from the file, filter included.
* A BPF filter restricts the flows: `udp` gives only protocol 17, the same UDP flows, counted
  the same, as an unfiltered run.
* Errors (missing file, bad filter, bad --format, both -i and -r, bad number): non-zero exit,
  nothing on stdout, exactly one line on stderr. A file cut short still prints the flows of
  its complete packets, then fails with one line.
* A closed output: when the reader of standard output goes away (`flows ... | head -1`), the
  meter stops reading at once (--stats shows fewer packets than the file has), prints nothing
  more and exits 141, as a process killed by SIGPIPE would; a full disk (/dev/full) is an
  error: exit 1 and one line that says why.
* The progress line: absent when stderr is not a terminal, with --no-progress, or when the
  flows go to the same terminal (their lines would land in the middle of it); present,
  with a percent and "Mpps", when stderr is a terminal (a pty) and the run lasts longer than
  the line's half-second refresh. A 300000-packet file from gen_flows.py is metered in a few
  tens of milliseconds, so the run is made to last by reading its standard output slowly
  (as `flows ... | less` does): the meter blocks writing its first megabyte of finished flows.

Exit 0 when every check passed, 1 otherwise; 77 when the corpus is missing.
"""
import csv
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

FIELDS = ["flow_id", "src_ip", "dst_ip", "src_port", "dst_port", "protocol", "packets",
          "bytes", "bytes_fwd", "bytes_rev", "first_seen", "last_seen", "state",
          "duration_sec", "tcp_flags", "packets_fwd", "packets_rev", "vlan", "end_reason"]
STATES = {"ACTIVE", "CLOSING", "CLOSED"}
END_REASONS = {"idle_timeout", "active_timeout", "end_of_flow", "forced_end",
               "lack_of_resources"}
TCP_FLAGS = re.compile(r"^((SYN|ACK|FIN|RST|PSH|URG|ECE|CWR)(\|(SYN|ACK|FIN|RST|PSH|URG|ECE|CWR))*)?$")
PROGRESS = re.compile(r"\d+\.\d% \d+ packets, \d+\.\d\d Mpps")
TIMEOUT = 60

failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
        print("  FAIL", what)
    return ok


def run(binary, args, **kw):
    return subprocess.run([binary, "flows"] + args, capture_output=True, text=True,
                          timeout=TIMEOUT, **kw)


def json_flows(binary, args):
    p = run(binary, args + ["--format", "json", "--no-progress"])
    if not check(p.returncode == 0, f"flows {args} --format json exited {p.returncode}: "
                                    f"{p.stderr.strip()}"):
        return []
    out = []
    for line in p.stdout.splitlines():
        try:
            pairs = json.loads(line, object_pairs_hook=lambda kv: kv)
        except json.JSONDecodeError as e:
            check(False, f"flows {args}: a JSON line does not parse ({e}): {line[:120]}")
            continue
        check([k for k, _ in pairs] == FIELDS,
              f"flows {args}: JSON fields {[k for k, _ in pairs]} are not {FIELDS}")
        out.append(dict(pairs))
    return out


def check_record(f, where):
    ok = check(f["packets"] == f["packets_fwd"] + f["packets_rev"],
               f"{where}: packets != fwd + rev in {f}")
    ok &= check(f["bytes"] == f["bytes_fwd"] + f["bytes_rev"], f"{where}: bytes != fwd + rev")
    ok &= check(f["packets"] > 0 and f["bytes"] >= 20 * f["packets"],
                f"{where}: a record without packets, or with fewer than 20 IP octets each: {f}")
    ok &= check(f["state"] in STATES, f"{where}: state {f['state']!r}")
    ok &= check(f["end_reason"] in END_REASONS, f"{where}: end_reason {f['end_reason']!r}")
    ok &= check(TCP_FLAGS.match(f["tcp_flags"]) is not None, f"{where}: tcp_flags {f['tcp_flags']!r}")
    ok &= check(f["protocol"] == 6 or f["tcp_flags"] == "",
                f"{where}: TCP flags on protocol {f['protocol']}")
    ok &= check(f["first_seen"] <= f["last_seen"], f"{where}: first_seen after last_seen")
    ok &= check(abs(f["last_seen"] - f["first_seen"] - f["duration_sec"]) < 2e-6,
                f"{where}: duration_sec is not last_seen - first_seen in {f}")
    if f["protocol"] in (1, 58):
        ok &= check(f["src_port"] == 0, f"{where}: ICMP flow with source port {f['src_port']}")
    return ok


def test_formats(binary, pcap_dir, corpus):
    print("formats: json fields, csv columns, table header, same flows")
    for name in corpus:
        path = os.path.join(pcap_dir, name)
        js = json_flows(binary, ["-r", path])
        for f in js:
            check_record(f, name)
        p = run(binary, ["-r", path, "--format", "csv", "--no-progress"])
        check(p.returncode == 0, f"{name}: --format csv exited {p.returncode}")
        rows = list(csv.reader(io.StringIO(p.stdout)))
        if not check(rows and rows[0] == FIELDS, f"{name}: CSV header {rows[:1]}"):
            continue
        for r in rows[1:]:
            check(len(r) == len(FIELDS), f"{name}: CSV row with {len(r)} columns: {r}")
        # Records come out in the order they finish, the same in every format. (A flow split by
        # the active timeout keeps its flow_id across its records.)
        check(len(rows) - 1 == len(js), f"{name}: {len(rows) - 1} CSV rows, {len(js)} JSON lines")
        for r, j in zip(rows[1:], js):
            c = dict(zip(FIELDS, r))
            for k in FIELDS:
                want = j[k]
                same = (abs(float(c[k]) - want) < 1e-6 if isinstance(want, float)
                        else c[k] == str(want))
                if not check(same, f"{name}: flow {c['flow_id']} {k}: CSV {c[k]!r}, JSON {want!r}"):
                    break
        p = run(binary, ["-r", path, "--format", "table", "--no-progress"])
        lines = p.stdout.splitlines()
        check(p.returncode == 0, f"{name}: --format table exited {p.returncode}")
        if check(lines and lines[0].split()[:2] == ["first_seen", "(UTC)"] and
                 all(w in lines[0] for w in ("proto", "source", "destination", "packets", "bytes")),
                 f"{name}: table header {lines[:1]}"):
            check(len(lines) - 1 == len(js), f"{name}: {len(lines) - 1} table rows for "
                                             f"{len(js)} flows")
            # The packets column: the 6th field after the two of the date and time.
            check(sum(int(l.split()[5]) for l in lines[1:]) == sum(f["packets"] for f in js),
                  f"{name}: table packets column does not add up to the JSON packets")
    # Default format is the table; the default (no --format) equals --format table.
    path = os.path.join(pcap_dir, corpus[0])
    check(run(binary, ["-r", path, "--no-progress"]).stdout ==
          run(binary, ["-r", path, "--no-progress", "--format", "table"]).stdout,
          "the default format is not the table")


def test_count(binary, pcap_dir):
    print("-c N: exactly N packets metered")
    path = os.path.join(pcap_dir, "ndpi_bittorrent.pcap")  # 299 packets, every one IP
    whole = sum(f["packets"] for f in json_flows(binary, ["-r", path]))
    check(whole == 299, f"ndpi_bittorrent.pcap: {whole} packets metered, expected 299")
    for n in (1, 2, 255, 256, 257, 298, 299, 1000):
        got = sum(f["packets"] for f in json_flows(binary, ["-r", path, "-c", str(n)]))
        check(got == min(n, 299), f"-c {n}: {got} packets metered, expected {min(n, 299)}")
    # With a filter, -c counts the packets that pass it.
    path = os.path.join(pcap_dir, "tcpreplay_test.pcap")
    flows = json_flows(binary, ["-r", path, "-c", "5", "udp"])
    check(sum(f["packets"] for f in flows) == 5 and all(f["protocol"] == 17 for f in flows),
          f"-c 5 udp: {[(f['protocol'], f['packets']) for f in flows]}")


def test_filter(binary, pcap_dir):
    print("BPF filter restricts the flows")
    path = os.path.join(pcap_dir, "tcpreplay_test.pcap")
    every = json_flows(binary, ["-r", path])
    udp = json_flows(binary, ["-r", path, "udp"])
    tcp = json_flows(binary, ["-r", path, "tcp", "and", "port", "80"])
    check(udp and all(f["protocol"] == 17 for f in udp),
          f"udp: protocols {sorted({f['protocol'] for f in udp})}")
    check(tcp and all(f["protocol"] == 6 and 80 in (f["src_port"], f["dst_port"]) for f in tcp),
          "tcp and port 80: flows that are not TCP port 80")
    key = lambda f: (f["src_ip"], f["dst_ip"], f["src_port"], f["dst_port"], f["protocol"])
    counters = lambda f: (f["packets_fwd"], f["packets_rev"], f["bytes_fwd"], f["bytes_rev"])
    # The file's UDP flows are all untagged and unencapsulated, so `udp` matches every packet
    # of them: the filtered run must meter them exactly as the unfiltered one.
    want = {key(f): counters(f) for f in every if f["protocol"] == 17}
    check({key(f): counters(f) for f in udp} == want,
          f"udp: {len(udp)} flows differ from the {len(want)} UDP flows of an unfiltered run")
    check(len(udp) < len(every), "udp: filtered as many flows as unfiltered")


def test_stdin(binary, pcap_dir):
    print("-r -: standard input, the same flows as the file")
    for name, filt in (("tcpreplay_test.pcap", []), ("ndpi_bittorrent.pcap", ["tcp"])):
        path = os.path.join(pcap_dir, name)
        from_file = run(binary, ["-r", path, "--format", "json"] + filt)
        with open(path, "rb") as f:
            from_stdin = subprocess.run([binary, "flows", "-r", "-", "--format", "json"] + filt,
                                        stdin=f, capture_output=True, text=True,
                                        timeout=TIMEOUT)
        check(from_stdin.returncode == 0 and from_stdin.stderr == "",
              f"{name} on stdin: exit {from_stdin.returncode}, stderr {from_stdin.stderr!r}")
        want = sorted(from_file.stdout.splitlines())
        check(len(want) > 0 and sorted(from_stdin.stdout.splitlines()) == want,
              f"{name} on stdin {filt}: other flows than from the file")


def test_errors(binary, pcap_dir, tmp):
    print("errors: one line on stderr, non-zero exit")
    good = os.path.join(pcap_dir, "zeek_http_get.pcap")
    cases = [
        ("missing file", ["-r", os.path.join(tmp, "nosuch.pcap")], 1, ["nosuch.pcap"]),
        ("bad filter", ["-r", good, "tcp", "port"], 1, ["filter", "tcp port"]),
        ("bad --format", ["-r", good, "--format", "xml"], 2, ["--format", "xml"]),
        ("both -i and -r", ["-i", "lo", "-r", good], 2, ["-i", "-r"]),
        ("neither -i nor -r", [], 2, ["-i", "-r"]),
        ("idle timeout 0", ["-r", good, "--idle-timeout", "0"], 2, ["--idle-timeout"]),
        ("non-numeric count", ["-r", good, "-c", "ten"], 2, ["ten"]),
        ("not a capture file", ["-r", __file__], 1, [os.path.basename(__file__)]),
    ]
    for name, args, code, fragments in cases:
        p = run(binary, args + ["--format", "json"])
        lines = p.stderr.splitlines()
        check(p.returncode == code, f"{name}: exit {p.returncode}, expected {code}")
        check(p.stdout == "", f"{name}: stdout is not empty: {p.stdout[:200]!r}")
        if check(len(lines) == 1, f"{name}: {len(lines)} lines on stderr: {p.stderr!r}"):
            check(lines[0].startswith("jarvis-capture: ") and
                  all(fr in lines[0] for fr in fragments),
                  f"{name}: error line {lines[0]!r} lacks jarvis-capture: or {fragments}")
    # A file cut short: the flows of its complete packet still go out, then one error line.
    cut = os.path.join(pcap_dir, "ndpi_fuzz-2021-10-13.pcap")
    p = run(binary, ["-r", cut, "--format", "json", "--no-progress"])
    flows = [json.loads(l) for l in p.stdout.splitlines()]
    check(p.returncode == 1, f"cut-short file: exit {p.returncode}, expected 1")
    check(sum(f["packets"] for f in flows) == 1, f"cut-short file: flows {flows}")
    check(len(p.stderr.splitlines()) == 1 and "truncated" in p.stderr,
          f"cut-short file: stderr {p.stderr!r}")


def read_pty(master):
    """Everything the other side of a pty writes, until it is closed by the last holder of the
    slave (Linux then fails the read with EIO)."""
    data = bytearray()
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        data.extend(chunk)
    return bytes(data)


def run_slow_reader(binary, args, stderr_tty):
    """Runs flows with stdout read only after 1.5 s, stderr on a pty or a pipe; returns
    (exit status, stdout bytes, stderr bytes, seconds)."""
    if stderr_tty:
        master, slave = os.openpty()
        err_target = slave
    else:
        err_target = subprocess.PIPE
    start = time.monotonic()
    p = subprocess.Popen([binary, "flows"] + args, stdout=subprocess.PIPE, stderr=err_target,
                         stdin=subprocess.DEVNULL)
    err = bytearray()
    if stderr_tty:
        os.close(slave)
        reader = threading.Thread(target=lambda: err.extend(read_pty(master)), daemon=True)
    else:
        reader = threading.Thread(target=lambda: err.extend(p.stderr.read()), daemon=True)
    reader.start()
    time.sleep(1.5)  # the child fills the stdout pipe and blocks
    out = p.stdout.read()
    code = p.wait(timeout=TIMEOUT)
    reader.join(timeout=10)
    if stderr_tty:
        os.close(master)
    return code, out, bytes(err), time.monotonic() - start


def test_progress(binary, pcap_dir, gen, tmp):
    print("progress line: only on a terminal")
    small = os.path.join(pcap_dir, "zeek_http_get.pcap")
    p = run(binary, ["-r", small, "--format", "json"])
    check(p.returncode == 0 and p.stderr == "",
          f"stderr not a terminal: something on stderr: {p.stderr!r}")

    big = os.path.join(tmp, "progress-300k.pcap")
    g = subprocess.run(["/usr/bin/python3", gen, "--packets", "300000", "--seed", "5",
                        "--out", big, "--truth", "-"], capture_output=True, text=True,
                       timeout=300)
    if not check(g.returncode == 0, f"gen_flows.py failed: {g.stderr[-500:]}"):
        return
    args = ["-r", big, "--format", "json", "--idle-timeout", "5"]

    code, out, err, secs = run_slow_reader(binary, args, stderr_tty=True)
    text = err.decode(errors="replace")
    records = out.count(b"\n")
    check(code == 0, f"pty: exit {code}, stderr {text[-300:]!r}")
    check(secs >= 1.5 and records > 10000, f"pty: {records} flows in {secs:.2f} s")
    check(PROGRESS.search(text) is not None,
          f"stderr on a pty: no progress line with a percent and Mpps in {text[:300]!r}")
    check("\r" in text and text.rstrip(" ").endswith("\r"),
          f"stderr on a pty: the progress line is not rewritten in place and cleared: "
          f"{text[-100:]!r}")

    code, out, err, _ = run_slow_reader(binary, args, stderr_tty=False)
    check(code == 0 and err == b"", f"stderr a pipe: exit {code}, stderr {err[:300]!r}")
    check(out.count(b"\n") == records, "stderr a pipe: a different number of flows")

    code, out, err, _ = run_slow_reader(binary, args + ["--no-progress"], stderr_tty=True)
    check(code == 0 and b"Mpps" not in err, f"--no-progress on a pty: stderr {err[:300]!r}")

    # The flows and stderr on one terminal: no progress line in the middle of their lines.
    master, slave = os.openpty()
    p = subprocess.Popen([binary, "flows"] + args, stdout=slave, stderr=slave,
                         stdin=subprocess.DEVNULL)
    os.close(slave)
    time.sleep(1.5)  # the child fills the terminal and blocks, as before a slow reader
    both = read_pty(master)
    code = p.wait(timeout=TIMEOUT)
    os.close(master)
    lines = both.count(b"\n")
    has_progress = b"Mpps" in both
    check(code == 0 and lines >= records and not has_progress,
          f"flows and stderr on one pty: exit {code}, {lines} lines, "
          f"a progress line: {has_progress}")
    return big


def test_output_closed(binary, pcap_dir, big):
    print("a closed output: `| head -1` stops the meter quietly; a full disk is an error")
    total = 300000  # packets in `big`
    for extra in ([], ["--stats"], ["--stats", "--workers", "2"]):
        p = subprocess.Popen([binary, "flows", "-r", big, "--format", "json",
                              "--no-progress"] + extra,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL)
        first = p.stdout.readline()
        p.stdout.close()  # as head does once it has its line
        err = p.stderr.read().decode(errors="replace")
        code = p.wait(timeout=TIMEOUT)
        what = f"| head -1 {' '.join(extra)}".strip()
        check(code == 141, f"{what}: exit {code}, expected 141; stderr {err[-300:]!r}")
        try:
            check(list(json.loads(first)) == FIELDS, f"{what}: first line {first[:200]!r}")
        except ValueError:
            check(False, f"{what}: first line is not JSON: {first[:200]!r}")
        check("jarvis-capture:" not in err, f"{what}: an error line: {err[-300:]!r}")
        if not extra:
            check(err == "", f"{what}: stderr {err[-300:]!r}")
        else:
            m = re.match(r"(\d+) packets, ", err)
            if check(m is not None, f"{what}: no statistics line: {err[:300]!r}"):
                check(int(m.group(1)) < total,
                      f"{what}: read all {m.group(1)} packets after its reader had gone")
    good = os.path.join(pcap_dir, "zeek_http_get.pcap")
    with open("/dev/full", "w") as full:
        p = subprocess.run([binary, "flows", "-r", good, "--format", "json"], stdout=full,
                           stderr=subprocess.PIPE, text=True, timeout=TIMEOUT)
    lines = p.stderr.splitlines()
    check(p.returncode == 1 and len(lines) == 1 and lines[0].startswith("jarvis-capture: ") and
          "standard output" in lines[0] and "No space left on device" in lines[0],
          f"/dev/full: exit {p.returncode}, stderr {p.stderr!r}")


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: flows_cli_test.py JARVIS_CAPTURE PCAP_DIR GEN_FLOWS")
    binary, pcap_dir, gen = sys.argv[1:]
    need = ["ndpi_bittorrent.pcap", "tcpreplay_test.pcap", "zeek_http_get.pcap",
            "ndpi_fuzz-2021-10-13.pcap"]
    if not all(os.path.exists(os.path.join(pcap_dir, n)) for n in need):
        print(f"skipped: the capture corpus is not at {pcap_dir}")
        sys.exit(77)
    corpus = sorted(n for n in os.listdir(pcap_dir)
                    if n.endswith((".pcap", ".pcapng", ".cap")) and
                    run(binary, ["-r", os.path.join(pcap_dir, n), "--no-progress"]).returncode == 0)
    corpus.remove("zeek_http_get.pcap")
    corpus.insert(0, "zeek_http_get.pcap")
    with tempfile.TemporaryDirectory(prefix="jarvis-flows-cli-") as tmp:
        test_formats(binary, pcap_dir, corpus)
        test_count(binary, pcap_dir)
        test_filter(binary, pcap_dir)
        test_stdin(binary, pcap_dir)
        test_errors(binary, pcap_dir, tmp)
        big = test_progress(binary, pcap_dir, gen, tmp)
        if big is not None:
            test_output_closed(binary, pcap_dir, big)
    print(f"{len(failures)} failures" if failures else "PASS")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
