#!/usr/bin/python3
"""How `jarvis-capture capture` fails: exit status and the one-line error.

Usage: errors_test.py JARVIS_CAPTURE PCAP_DIR

Table-driven. Every error case must end with exit status 1 (runtime) or 2 (usage), not by a
signal, print nothing on stdout, and print exactly one line on stderr: "jarvis-capture: ..."
holding the fragments that make it helpful (the file, interface or value at fault). Besides the
table: a success case, the summary's singular, a file cut short (its complete packet must
still reach the -w file), capture without privilege (run as nobody when we are root), and
standard output closed by its reader (`capture ... | head`: exit 141 and nothing on stderr,
as tcpdump killed by SIGPIPE) or full (/dev/full: exit 1, the error says why), -w naming the
file being read (refused with exit 2, the file left as it was), and `-r -` (standard input:
the same summary as the file; something else than a capture there, or a terminal, is one
error line), and a gzip-compressed file (the error says how to read it).

Exit 0 when every case that could run passed, 1 on any failure. A case that cannot run here
prints "skipped: <case>: <reason>" and the rest still run; 77 only when none could run.
"""

import fcntl
import gzip
import os
import shutil
import subprocess
import sys
import tempfile

TIMEOUT = 30
PREFIX = "jarvis-capture:"
CAP_NET_RAW = 13

# (name, argv after `capture`, expected exit status, fragments the error line must hold,
#  corpus files the case needs). {P} is the corpus directory, {T} a scratch directory.
CASES = [
    ("bad filter", ["-r", "{P}/zeek_http_get.pcap", "tcp port"], 1,
     ["filter", "'tcp port'"], ["zeek_http_get.pcap"]),
    ("missing interface", ["-i", "nosuch0"], 1, ["no such interface", "nosuch0"], []),
    ("missing file", ["-r", "/nonexistent.pcap"], 1,
     ["/nonexistent.pcap", "No such file"], []),
    ("directory as -r", ["-r", "{T}"], 1, ["{T}", "directory"], []),
    ("pcap with an invalid version", ["-r", "{P}/libpcap_pcap-invalid-version-1.pcap"], 1,
     ["libpcap_pcap-invalid-version-1.pcap", "cannot read capture file"],
     ["libpcap_pcap-invalid-version-1.pcap"]),
    ("pcapng with an SHB option too long", ["-r", "{P}/libpcap_shb-option-too-long.pcapng"], 1,
     ["libpcap_shb-option-too-long.pcapng", "cannot read capture file"],
     ["libpcap_shb-option-too-long.pcapng"]),
    ("both -i and -r", ["-i", "lo", "-r", "{P}/zeek_http_get.pcap"], 2,
     ["exactly one of", "-i", "-r"], ["zeek_http_get.pcap"]),
    ("neither -i nor -r", [], 2, ["exactly one of", "-i", "-r"], []),
    ("file backend with -i", ["--backend", "file", "-i", "lo"], 2, ["'file'", "use -r"], []),
    ("libpcap backend with -r", ["--backend", "libpcap", "-r", "{P}/zeek_http_get.pcap"], 2,
     ["'libpcap'", "use -i"], ["zeek_http_get.pcap"]),
    ("unknown backend with -i", ["--backend", "nosuch", "-i", "lo"], 2,
     ["unknown backend", "nosuch", "libpcap", "file"], []),
    ("unknown backend with -r", ["--backend", "nosuch", "-r", "{P}/zeek_http_get.pcap"], 2,
     ["unknown backend", "nosuch"], ["zeek_http_get.pcap"]),
    ("unwritable -w path",
     ["-r", "{P}/zeek_http_get.pcap", "-w", "/nonexistent-dir/x.pcapng"], 1,
     ["/nonexistent-dir/x.pcapng", "No such file"], ["zeek_http_get.pcap"]),
    ("unknown timestamp source", ["-j", "nosuch", "-i", "lo"], 2,
     ["nosuch", "kernel", "hardware"], []),
    ("unknown option", ["--no-such-option", "-r", "{P}/zeek_http_get.pcap"], 2,
     ["--no-such-option"], ["zeek_http_get.pcap"]),
    ("non-numeric count", ["-c", "ten", "-r", "{P}/zeek_http_get.pcap"], 2,
     ["ten"], ["zeek_http_get.pcap"]),
]

# Live cases whose own error only shows with privilege: without it, every live capture
# reports the missing privilege first.
NEEDS_PRIVILEGE = {"missing interface"}

results = {"pass": 0, "fail": 0, "skip": 0}


def report(ok, name, detail=""):
    if ok:
        results["pass"] += 1
        print(f"PASS: {name}", flush=True)
    else:
        results["fail"] += 1
        print(f"FAIL: {name}: {detail}", flush=True)
    return ok


def skip(name, reason):
    results["skip"] += 1
    print(f"skipped: {name}: {reason}", flush=True)


def run(argv, prefix=()):
    """Runs the binary; returns (returncode or None on timeout, stdout, stderr lines)."""
    try:
        p = subprocess.run(list(prefix) + argv, capture_output=True, text=True,
                           timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        return None, "", [f"(timed out after {TIMEOUT} s) {e.stderr!r}"]
    return p.returncode, p.stdout, p.stderr.splitlines()


def judge_error(name, rc, out, err, want_rc, fragments):
    """The checks every error case shares. Returns True when all hold."""
    if rc is None:
        return report(False, name, f"hung: {err}")
    if rc < 0:
        return report(False, name, f"died from signal {-rc}; stderr {err}")
    problems = []
    if rc != want_rc:
        problems.append(f"exit status {rc}, expected {want_rc}")
    if out:
        problems.append(f"stdout not empty: {out[:200]!r}")
    if len(err) != 1:
        problems.append(f"stderr has {len(err)} lines, expected 1: {err}")
    elif not err[0].startswith(PREFIX + " "):
        problems.append(f"stderr line does not start with '{PREFIX} ': {err[0]!r}")
    else:
        missing = [f for f in fragments if f.lower() not in err[0].lower()]
        if missing:
            problems.append(f"error line {err[0]!r} lacks {missing}")
    return report(not problems, f"{name} (exit {rc}: {err[0] if err else ''})",
                  "; ".join(problems))


def has_cap_net_raw():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return (int(line.split()[1], 16) >> CAP_NET_RAW) & 1 == 1
    return False


def unprivileged_prefix(jc, scratch):
    """How to run `jc` without privilege: (prefix, binary path) or (None, reason)."""
    if os.geteuid() != 0:
        if has_cap_net_raw():
            return None, "this process holds CAP_NET_RAW and is not root: cannot drop it"
        try:
            os.getxattr(jc, "security.capability")
            return None, f"{jc} carries file capabilities"
        except OSError:
            return (), jc
    candidates = []
    if shutil.which("setpriv"):
        candidates.append(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           "--inh-caps=-all"])
    if shutil.which("runuser"):
        candidates.append(["runuser", "-u", "nobody", "--"])
    for prefix in candidates:
        probe = subprocess.run(prefix + ["test", "-x", jc], capture_output=True, timeout=10)
        if probe.returncode == 0:
            return prefix, jc
        # nobody cannot reach the binary (e.g. under a 0700 directory): use a copy it can.
        copy_dir = os.path.join(scratch, "bin")
        os.makedirs(copy_dir, exist_ok=True)
        os.chmod(scratch, 0o755)
        os.chmod(copy_dir, 0o755)
        copy = os.path.join(copy_dir, "jarvis-capture")
        if not os.path.exists(copy):
            shutil.copy(jc, copy)
            os.chmod(copy, 0o755)
        probe = subprocess.run(prefix + ["test", "-x", copy], capture_output=True, timeout=10)
        if probe.returncode == 0:
            return prefix, copy
    if not candidates:
        return None, "neither setpriv nor runuser is installed"
    return None, "cannot switch to user nobody here (setpriv/runuser failed)"


def tshark_count(path):
    p = subprocess.run(["tshark", "-n", "-r", path, "-T", "fields", "-e", "frame.number"],
                       capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        return None, p.stderr.strip()
    return len(p.stdout.splitlines()), ""


def main():
    if len(sys.argv) != 3:
        print(f"usage: {sys.argv[0]} JARVIS_CAPTURE PCAP_DIR", file=sys.stderr)
        return 2
    jc = os.path.abspath(sys.argv[1])
    pcaps = os.path.abspath(sys.argv[2])
    if not os.access(jc, os.X_OK):
        print(f"FAIL: {jc} is not an executable")
        return 1
    scratch = tempfile.mkdtemp(prefix="jarvis-cli-errors-")
    try:
        run_all(jc, pcaps, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"{results['pass']} passed, {results['fail']} failed, {results['skip']} skipped")
    if results["fail"]:
        return 1
    if results["pass"] == 0:
        print("skipped: no case could run")
        return 77
    return 0


def run_all(jc, pcaps, scratch):
    def have(files):
        missing = [f for f in files if not os.path.isfile(os.path.join(pcaps, f))]
        return missing

    def subst(s):
        return s.replace("{P}", pcaps).replace("{T}", scratch)

    privileged = os.geteuid() == 0 or has_cap_net_raw()

    # --- the table
    for name, args, want_rc, fragments, needs in CASES:
        if missing := have(needs):
            skip(name, f"corpus file(s) missing in {pcaps}: {missing}")
            continue
        if name in NEEDS_PRIVILEGE and not privileged:
            skip(name, "without privilege the privilege error comes first (tested below)")
            continue
        rc, out, err = run([jc, "capture"] + [subst(a) for a in args])
        judge_error(name, rc, out, err, want_rc, [subst(f) for f in fragments])

    # --- a mistyped command: named, with the commands there are
    rc, out, err = run([jc, "capturee", "-r", "x.pcap"])
    judge_error("unknown command", rc, out, err, 2,
                ["unknown command 'capturee'", "capture", "flows", "serve"])

    # --- hardware timestamps on loopback: refused with the reason, before any capture starts.
    name = "hardware timestamps on lo"
    if not privileged:
        skip(name, "needs privilege to reach the timestamp check (the privilege check is first)")
    else:
        rc, out, err = run([jc, "capture", "-j", "hardware", "-i", "lo", "-c", "1"])
        judge_error(name, rc, out, err, 1, ["lo", "hardware timestamping"])

    # --- no privilege
    name = "live capture without privilege"
    prefix, binary = unprivileged_prefix(jc, scratch)
    if prefix is None:
        skip(name, binary)
    else:
        rc, out, err = run([binary, "capture", "-i", "lo", "-c", "1"], prefix)
        judge_error(name + (" (as nobody)" if prefix else ""), rc, out, err, 1, ["CAP_NET_RAW"])

    # --- success, and the summary's wording
    name = "read zeek_http_get.pcap"
    if missing := have(["zeek_http_get.pcap"]):
        skip(name, f"corpus file missing: {missing}")
    else:
        good = os.path.join(pcaps, "zeek_http_get.pcap")
        rc, out, err = run([jc, "capture", "-r", good, "-q"])
        want = ["14 packets captured", "14 packets read from file",
                "0 packets excluded by filter"]
        report(rc == 0 and err == want and out == "", name + ": exit 0 and the 14-packet summary",
               f"exit {rc}, stderr {err}, stdout {out[:200]!r}")
        # The packet line README.md shows, word for word (times are local: UTC here).
        p = subprocess.run([jc, "capture", "-r", good, "-c", "1"], capture_output=True,
                           text=True, timeout=TIMEOUT, env=dict(os.environ, TZ="UTC"))
        line = ("21:42:06.869344000 IPv4 141.142.228.5.59856 > 192.150.187.43.80: TCP [SYN], "
                "length 64")
        report(p.returncode == 0 and p.stdout.splitlines() == [line],
               "the first packet's line is README's example", f"stdout {p.stdout!r}")
        for habit in (["-nr", good], ["-nn", "-r", good], ["-nnr", good]):
            rc, out, err = run([jc, "capture"] + habit + ["-q"])
            report(rc == 0 and err == want and out == "",
                   f"tcpdump's habit {' '.join(habit[:-1])}: accepted, the same summary",
                   f"exit {rc}, stderr {err}")
        rc, out, err = run([jc, "capture", "-r", good, "-q", "-c", "1"])
        report(rc == 0 and err == ["1 packet captured"], name + " -c 1: '1 packet captured'",
               f"exit {rc}, stderr {err}")
        rc, out, err = run([jc, "capture", "-r", good, "-q", "port", "80"])
        report(rc == 0 and err == ["14 packets captured", "14 packets read from file",
                                   "0 packets excluded by filter"],
               name + " with filter 'port 80': all 14 pass", f"exit {rc}, stderr {err}")
        rc, out, err = run([jc, "capture", "-r", good, "-q", "udp"])
        report(rc == 0 and err == ["0 packets captured", "14 packets read from file",
                                   "14 packets excluded by filter"],
               name + " with filter 'udp': all 14 excluded", f"exit {rc}, stderr {err}")

    # --- -w naming the file -r reads, directly or through a symbolic link: refused
    name = "-w over the file being read"
    if missing := have(["zeek_http_get.pcap"]):
        skip(name, f"corpus file missing: {missing}")
    else:
        copy = os.path.join(scratch, "in.pcap")
        shutil.copy(os.path.join(pcaps, "zeek_http_get.pcap"), copy)
        link = os.path.join(scratch, "link.pcap")
        os.symlink(copy, link)
        with open(copy, "rb") as f:
            before = f.read()
        for target in (copy, link):
            rc, out, err = run([jc, "capture", "-r", copy, "-w", target])
            judge_error(f"{name} ({os.path.basename(target)})", rc, out, err, 2,
                        ["-w " + target, "file being read", "not overwritten"])
            with open(copy, "rb") as f:
                report(f.read() == before, f"{name} ({os.path.basename(target)}): file unchanged",
                       "the input file was changed")

    # --- standard input as the file
    name = "-r - (standard input)"
    if missing := have(["zeek_http_get.pcap"]):
        skip(name, f"corpus file missing: {missing}")
    else:
        with open(os.path.join(pcaps, "zeek_http_get.pcap"), "rb") as f:
            p = subprocess.run([jc, "capture", "-r", "-", "-q"], stdin=f, capture_output=True,
                               text=True, timeout=TIMEOUT)
        want = ["14 packets captured", "14 packets read from file",
                "0 packets excluded by filter"]
        report(p.returncode == 0 and p.stderr.splitlines() == want,
               f"{name}: exit 0 and the 14-packet summary",
               f"exit {p.returncode}, stderr {p.stderr!r}")
        p = subprocess.run([jc, "capture", "-r", "-", "-q"], input="not a capture\n",
                           capture_output=True, text=True, timeout=TIMEOUT)
        judge_error(f"{name}, not a capture", p.returncode, p.stdout, p.stderr.splitlines(), 1,
                    ["standard input", "cannot read capture file"])
        # A compressed capture: the error says so and how to read it.
        gz = os.path.join(scratch, "http.pcap.gz")
        with open(os.path.join(pcaps, "zeek_http_get.pcap"), "rb") as f, \
                gzip.open(gz, "wb") as out:
            out.write(f.read())
        rc, out, err = run([jc, "capture", "-r", gz])
        judge_error(f"{name}: a gzip-compressed file", rc, out, err, 1,
                    [gz, "gzip-compressed", f"gzip -dc {gz} | jarvis-capture ... -r -"])
        # A terminal on standard input: an error at once, not a wait for keyboard input.
        master, slave = os.openpty()
        try:
            p = subprocess.run([jc, "capture", "-r", "-", "-q"], stdin=slave,
                               capture_output=True, text=True, timeout=TIMEOUT)
            judge_error(f"{name}, a terminal", p.returncode, p.stdout, p.stderr.splitlines(), 1,
                        ["-r -", "terminal"])
        except subprocess.TimeoutExpired:
            report(False, f"{name}, a terminal", "waited for input on the terminal")
        finally:
            os.close(slave)
            os.close(master)

    # --- standard output closed by its reader, or full
    name = "standard output closed or full"
    if missing := have(["ndpi_bittorrent.pcap"]):
        skip(name, f"corpus file missing: {missing}")
    else:
        src = os.path.join(pcaps, "ndpi_bittorrent.pcap")
        for args, take in ((["-r", src], "line"), (["-r", src, "-w", "-"], 64)):
            what = f"capture {' '.join(args[2:]) or 'lines'} | head"
            r, w = os.pipe()
            # The smallest pipe (one page): the output (27 KB of lines, 316 KB of pcapng) cannot
            # fit, so the command is still writing when the reader closes.
            fcntl.fcntl(r, 1031, 4096)  # F_SETPIPE_SZ
            p = subprocess.Popen([jc, "capture"] + args, stdout=w, stderr=subprocess.PIPE,
                                 stdin=subprocess.DEVNULL)
            os.close(w)
            with os.fdopen(r, "rb") as reader:
                got = reader.readline() if take == "line" else reader.read(take)
            err = p.stderr.read().decode(errors="replace")
            try:
                rc = p.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                p.kill()
                rc = None
            report(rc == 141 and err == "" and len(got) > 0,
                   f"{what}: exit 141, nothing on stderr",
                   f"exit {rc}, stderr {err!r}, read {got[:80]!r}")
        for args in (["-r", src], ["-r", src, "-w", "-"]):
            what = f"capture {' '.join(args[2:]) or 'lines'} > /dev/full"
            with open("/dev/full", "w") as full:
                p = subprocess.run([jc, "capture"] + args, stdout=full, stderr=subprocess.PIPE,
                                   text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
            lines = p.stderr.splitlines()
            errors = [l for l in lines if l.startswith(PREFIX)]
            report(p.returncode == 1 and len(errors) == 1 and lines[-1] == errors[0] and
                   "standard output" in errors[0] and "No space left on device" in errors[0],
                   f"{what}: exit 1, the last line says why",
                   f"exit {p.returncode}, stderr {lines}")

    # --- a file cut short: one error naming the truncation, the complete packet kept
    name = "file cut short (ndpi_fuzz-2021-10-13.pcap)"
    if missing := have(["ndpi_fuzz-2021-10-13.pcap"]):
        skip(name, f"corpus file missing: {missing}")
    else:
        out_file = os.path.join(scratch, "cut.pcapng")
        rc, out, err = run([jc, "capture", "-r", os.path.join(pcaps, "ndpi_fuzz-2021-10-13.pcap"),
                            "-w", out_file])
        errors = [l for l in err if l.startswith(PREFIX)]
        problems = []
        if rc is None or rc <= 0:
            problems.append(f"exit status {rc}, expected non-zero and no signal")
        if len(errors) != 1 or "truncated" not in errors[0]:
            problems.append(f"expected one '{PREFIX}' line naming the truncation: {err}")
        elif "after 1 complete packet)" not in errors[0]:
            problems.append(f"the error does not say 'after 1 complete packet': {errors[0]!r}")
        elif err[-1] != errors[0]:
            problems.append(f"the error line is not the last line: {err}")
        if "1 packet captured" not in err:
            problems.append(f"no '1 packet captured' in {err}")
        if out:
            problems.append(f"stdout not empty: {out[:200]!r}")
        count, why = tshark_count(out_file) if os.path.exists(out_file) else (None, "no file")
        if count != 1:
            problems.append(f"tshark finds {count} packets in the -w file, expected 1 ({why})")
        report(not problems, f"{name} (exit {rc}: {errors[0] if errors else ''})",
               "; ".join(problems))


if __name__ == "__main__":
    sys.exit(main())
