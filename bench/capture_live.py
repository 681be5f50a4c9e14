#!/usr/bin/python3
"""bench/capture_live: live capture on a veth pair, every backend of ours against tcpdump and
netsniff-ng, in one run.

Setup (all of it created here and removed at the end, also on failure, Ctrl-C or SIGTERM):
  two network namespaces, jcb-gen<PID> and jcb-cap<PID>, joined by a veth pair: jcbg in the
  generator's namespace (198.18.0.1/30), jcbc in the capture namespace (198.18.0.2/30; RFC 2544's
  benchmarking range). IPv6 and ARP are off on both ends, so the only frames on the pair are the
  generator's. Traffic never leaves the pair.

Generator: trafgen (netsniff-ng), one process pinned to CPU 0 (taskset, and trafgen -P 1), sending
  one UDP/IPv4 frame 198.18.0.1:40000 -> 198.18.0.2:9 over and over, 64 or 1500 bytes long
  (Ethernet header through payload; no FCS on veth). Its destination MAC is not jcbc's own
  (02:6a:63:62:00:02), so after the capture taps the capture namespace's stack drops each frame
  at once as "other host" traffic: no ICMP, no ARP, no reply of any kind.
Capturer: pinned to CPU 1 (taskset), one at a time:
  ours:  jarvis-capture capture -i jcbc --backend B -w /dev/null     (defaults otherwise)
  peers: tcpdump -i jcbc -n -w /dev/null                              (defaults otherwise)
         netsniff-ng --in jcbc --out /dev/null -s -A -Q -b 1
On veth the receive side of the kernel (the capture socket's copy into its ring, the XDP program
and its copy into the UMEM) runs in the *sender's* context, on CPU 0: a capture path with more
kernel work slows the generator. Pinning separates the user-space halves only.

A trial: start the capturer and wait until it says it is listening; read jcbc's rx_packets in the
capture namespace (the ground truth of what arrived); run trafgen for N frames (-n), unlimited or
at a rate R. The rate is set by a token bucket (tc tbf, bursts of at most 32 frames) on jcbg that
trafgen's per-frame path feeds (-t 0ns -q), not by trafgen's -b: that one sends each second's
quota at full speed and sleeps out the rest of the second, so the frames would still arrive at
the generator's maximum rate; wait until the capturer has drained its ring (at least 1.2 s, as tcpdump's
ring blocks are handed over after up to 1 s, then until it uses under 10% of a core); read
rx_packets again; stop the capturer with SIGINT and parse its closing summary (captured,
dropped). Its CPU time (user+sys, from /proc/PID/task/*/schedstat) over the sending interval,
as % of one core, is its CPU cost at that rate.

The search, per tool and frame size (a rate passes when one of REPEATS trials there loses
nothing: other work on the two shared CPUs makes every tool lose frames now and then, so one
trial that lost some is tried again; every trial is kept in the JSON):
  1. unlimited trial: the highest rate the generator reaches with this capturer attached; the
     drop rate there is (arrived - captured) / arrived. If nothing was lost there, the zero-drop
     rate is that rate and is marked generator-bound: a lower bound, not the capturer's limit.
  2. otherwise bisection over the paced rate between 0 and the unlimited rate (STEPS trials);
     the zero-drop rate is the rate achieved (frames sent / trafgen's send time) in the fastest
     trial with no loss. The paced path (a system call a frame, through the qdisc) tops out
     below unlimited trafgen (about 0.44 Mpps at 1500 B here): a passing trial that fell more
     than 3% short of the rate asked is generator-bound too, and ends the search.
Every trial of our backends checks that the backend's drop counter equals arrived - captured.

The CPU budget (the budgeted run, after the unconstrained one unless --cpu-budget 0; only it with
  --budget-only): unconstrained, every tool here captures all the generator can send, so every
  zero-drop rate is the generator's and no two capturers can be compared. The budgeted run gives
  every capturer, ours and the peers alike, the same small share of its CPU: once it says it is
  listening (setting up is not per-frame work) the capturer and all its threads are moved into
  a cgroup made for the run (jcb-<PID>; cgroup v1's cpu controller, cpu.cfs_quota_us and
  cpu.cfs_period_us, else cgroup v2's cpu.max) whose CFS quota is PCT % of one core: by default
  1 ms of CPU every 200 ms (0.5%; the kernel's smallest quota is 1 ms). Still pinned to CPU 1.
  With 1% (1 ms every 100 ms) af_packet, xdp, libpcap and netsniff-ng captured everything the
  generator could send, so their ratios to tcpdump were only lower bounds; at 0.5% every one of
  them loses frames below the generator's maximum, and the ratios are measured.
  The group is removed at the end, also on failure, Ctrl-C or SIGTERM, and a group an earlier
  run left behind is removed first. Then the same search as above finds a zero-drop rate set by
  the capturer's own cost per frame: it is capture-bound when frames were lost at a faster rate
  that the generator did reach (printed and in the JSON as lost_above, capture_bound).
  Rings: the kernel enforces the quota at its tick (4 ms here), so a capturer may overrun 1 ms and
  then wait several periods; the ring must hold the traffic of such a gap, or the zero-drop rate
  measures the ring, not the capturer (an 8 MiB ring gave tcpdump and af_packet the same 0.19
  Mpps). So every ring reader gets the same 32 MiB kernel ring (ours -B 32768, tcpdump
  -B 32768, netsniff-ng -S 32768KiB: about 210,000 64-byte frames at 160 bytes a slot), xdp a
  UMEM of 512 MiB (262,144 frames of 2 KiB at the veth's MTU of 1500: one slot a frame whatever
  its length), dpdk its
  defaults (its buffering is the vdev's, with at most 4096 rx descriptors). A trial is 2,000,000
  frames (a paced trial at most 10 s of them, and at least 100,000), so what a ring can hide is
  about a tenth of a trial, alike for every ring reader; and 64-byte frames only by default
  (--budget-sizes), the size where per-frame cost decides. dpdk (and its net_af_packet variant)
  is left out unless named in --budget-backends: it busy-polls, so it spends any budget on
  polling at every rate (in a trial it captured 1-2% of 0.53 Mpps with 1% of a core), and the
  search would measure its polling loop, slowly, down to rates where each trial takes minutes.

Printed: per tool, zero-drop rate (Mpps and Gbit/s of frame bytes) at 64 and 1500 bytes, drop %
at the generator's maximum, CPU % at the zero-drop rate (64 B), ratio to tcpdump's zero-drop rate;
the targets (af_packet and xdp >= 2x tcpdump) with whether they were met or could not be measured.
Both runs are printed, each with its table, targets and drop-counter checks.
Written: the same as JSON to --results (default /var/lib/jarvis-capture/bench.json; the budgeted
run under "cpu_budget", the targets of both under "targets"), which
`jarvis-capture serve` and `jarvis-capture backends` read for their "measured" figures (those of
the unconstrained run):
max_throughput_gbps = the zero-drop rate at 1500-byte frames in Gbit/s of frame bytes
(pps * 1500 * 8 / 1e9); cpu_overhead_pct = the capturer's CPU % of one core at that rate.

Runtime: the unconstrained run about 1-6 minutes with the defaults (300,000 frames a trial, 5
bisection steps, 2 trials a rate; the longer when tools lose frames and must be searched), about
0.5-2 minutes with --quick (100,000 frames, 3 steps, 1 trial a rate); the budgeted run about 5-10
minutes more (2,000,000 frames a trial, 300,000 with --quick). --smoke runs both briefly. Needs
root, trafgen, taskset and 2 CPUs; the budgeted run a cgroup cpu controller (without one it is
left out and says why).

usage: capture_live.py JARVIS_CAPTURE [--quick] [--results FILE] [--frames N] [--steps S] [--repeats R]
           [--sizes 64,1500] [--backends libpcap,af_packet,xdp,dpdk] [--peers tcpdump,netsniff-ng]
           [--cpu-budget PCT] [--cpu-period-ms MS] [--budget-only] [--budget-frames N]
           [--budget-sizes 64] [--budget-ring-kib KIB] [--budget-umem-kib KIB]
           [--max-load L --wait-quiet SEC] [--smoke] [--no-results]
Exit: 0 done, 1 failed, 77 cannot run here (not root, trafgen missing, one CPU).
"""
import argparse
import datetime
import glob
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

import hostinfo

OUR_BACKENDS = ["libpcap", "af_packet", "xdp", "dpdk", "pf_ring"]
# Other ways to run one of them: the dpdk backend on a net_af_packet vdev (its default on a veth
# is net_af_xdp), whose DPDK driver reports no drops (imissed stays 0): the backend reads the
# kernel socket's PACKET_STATISTICS instead, which this checks against arrived - captured.
VARIANTS = {"dpdk-af_packet": ("dpdk", ["--dpdk-args", "--no-huge --no-pci --no-shconf -m 256 "
                                        "--vdev net_af_packet0,iface=jcbc"])}
PEERS = ["tcpdump", "netsniff-ng"]
GEN_CPU, CAP_CPU = 0, 1
DEV_GEN, DEV_CAP = "jcbg", "jcbc"
ADDR_GEN, ADDR_CAP = "198.18.0.1", "198.18.0.2"
# Locally administered, and never jcbc's own address: the capture namespace drops the frames as
# "other host" traffic right after the taps, without a reply.
DST_MAC = "02:6a:63:62:00:02"
NS_RE = re.compile(r"jcb-(?:gen|cap)(\d+)")
MIN_DRAIN_S = 1.2
MAX_DRAIN_S = 6.0
MAX_DRAIN_S_BUDGET = 10.0  # a full ring drains at the budget's pace
READY_TIMEOUT_S = 20.0
SCHEMA = "jarvis-capture-bench/1"
DEFAULT_RESULTS = "/var/lib/jarvis-capture/bench.json"
# The budgeted run (see the module docstring).
DEFAULT_BUDGET_PCT = 0.5
DEFAULT_PERIOD_MS = 200.0
BUDGET_FRAMES, BUDGET_FRAMES_QUICK = 2_000_000, 300_000
BUDGET_SIZES = [64]
BUDGET_RING_KIB = 32 * 1024
BUDGET_UMEM_KIB = 512 * 1024  # 262,144 frames of 2 KiB (xdp's frame size at MTU 1500)
BUDGET_TRIAL_S, MIN_CAPPED_FRAMES = 10.0, 100_000  # slow paced trials are cut to ~10 s
# Left out of the budgeted run unless named in --budget-backends: a busy-polling backend spends
# whatever CPU it is given on polling, at any rate, so a budget measures its polling loop, not
# what a frame costs it (unconstrained it uses a whole core at every rate).
BUDGET_SKIP = {"dpdk": "busy-polls (rte_eth_rx_burst in a loop): a CPU budget measures its "
                       "polling, not its cost per frame; measured unconstrained only"}


class Interrupted(Exception):
    pass


def log(msg=""):
    print(msg, flush=True)


def run(cmd, timeout=30, check=True):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr.strip()}")
    return p


def gbps(pps, size):
    return pps * size * 8 / 1e9


# ------------------------------------------------------------------------------ namespaces


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_netns():
    p = run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in p.stdout.splitlines() if line.strip()]


def remove_stale_namespaces():
    for name in list_netns():
        m = NS_RE.fullmatch(name)
        if m and (int(m.group(1)) == os.getpid() or not pid_alive(int(m.group(1)))):
            log(f"removing namespace {name} left by an earlier run")
            run(["ip", "netns", "del", name], check=False)


class Pair:
    """The two namespaces and the veth pair between them."""

    def __init__(self):
        pid = os.getpid()
        self.gen, self.cap = f"jcb-gen{pid}", f"jcb-cap{pid}"
        self.created = []

    def up(self):
        for ns in (self.gen, self.cap):
            run(["ip", "netns", "add", ns])
            self.created.append(ns)
            if os.path.isdir("/proc/sys/net/ipv6"):
                run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w",
                     "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"])
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
        # Made inside the namespaces: the names never exist in the host's namespace.
        run(["ip", "link", "add", DEV_CAP, "netns", self.cap, "type", "veth", "peer", "name",
             DEV_GEN, "netns", self.gen])
        for ns, dev, addr in ((self.cap, DEV_CAP, ADDR_CAP), (self.gen, DEV_GEN, ADDR_GEN)):
            run(["ip", "-n", ns, "link", "set", dev, "arp", "off"])
            run(["ip", "-n", ns, "addr", "add", addr + "/30", "dev", dev])
            run(["ip", "-n", ns, "link", "set", dev, "up"])
        deadline = time.monotonic() + 5
        while "LOWER_UP" not in run(["ip", "-n", self.cap, "-br", "link", "show", DEV_CAP]).stdout:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{DEV_CAP} did not come up")
            time.sleep(0.05)
        self.gen_mac = self.mac(self.gen, DEV_GEN)

    def mac(self, ns, dev):
        return json.loads(run(["ip", "-n", ns, "-j", "link", "show", dev]).stdout)[0]["address"]

    def pace(self, pps, size):
        """A token bucket on the generator's side releasing `pps` frames of `size` bytes a
        second (tbf counts frame bytes), at most 32 frames back to back."""
        run(["ip", "netns", "exec", self.gen, "tc", "qdisc", "replace", "dev", DEV_GEN, "root",
             "tbf", "rate", f"{int(pps * size * 8)}bit", "burst", str(max(32 * size, 3000)),
             "limit", "16000000"])

    def unpace(self):
        run(["ip", "netns", "exec", self.gen, "tc", "qdisc", "del", "dev", DEV_GEN, "root"],
            check=False)

    def rx_packets(self):
        """Frames that arrived on jcbc (the kernel's counter in the capture namespace)."""
        out = run(["ip", "-n", self.cap, "-j", "-s", "link", "show", DEV_CAP]).stdout
        return int(json.loads(out)[0]["stats64"]["rx"]["packets"])

    def down(self):
        for ns in self.created:
            if ns in list_netns():
                run(["ip", "netns", "del", ns], check=False)
        left = [ns for ns in self.created if ns in list_netns()]
        if left:
            log(f"WARNING: namespaces still present: {left}")
        return not left


# ------------------------------------------------------------------------------ CPU budget


CG_RE = re.compile(r"jcb-(\d+)")
MIN_QUOTA_US = 1000  # the kernel's smallest CFS quota (1 ms), cgroup v1 and v2 alike


class CpuBudget:
    """A cgroup whose CPU quota is `pct` % of one core, given as a quota of pct * period every
    period (CFS bandwidth control), that each capturer of the budgeted run is moved into once it
    listens. The
    cgroup v1 cpu controller (cpu.cfs_quota_us, cpu.cfs_period_us) where it is mounted, else
    cgroup v2's cpu.max where the cpu controller is enabled. Made once for the budgeted run and
    removed at its end, also on failure, Ctrl-C or SIGTERM; groups an earlier run left behind
    (its PID gone) are removed first."""

    V1 = "/sys/fs/cgroup/cpu"
    V2 = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]

    def __init__(self, pct, period_ms):
        self.pct, self.period_us = pct, int(round(period_ms * 1000))
        self.quota_us = int(round(self.period_us * pct / 100))
        self.path, self.version = None, None

    @staticmethod
    def hierarchy():
        """(version, root) of a usable cpu controller, or (None, reason)."""
        if os.path.exists(os.path.join(CpuBudget.V1, "cpu.cfs_quota_us")):
            return 1, CpuBudget.V1
        for root in CpuBudget.V2:
            try:
                with open(os.path.join(root, "cgroup.controllers")) as f:
                    if "cpu" in f.read().split():
                        return 2, root
            except OSError:
                pass
        return None, ("no cgroup cpu controller: neither cgroup v1's cpu hierarchy nor cgroup "
                      "v2 with the cpu controller is mounted")

    @staticmethod
    def remove_stale():
        version, root = CpuBudget.hierarchy()
        if version is None:
            return
        for path in glob.glob(os.path.join(root, "jcb-*")):
            m = CG_RE.fullmatch(os.path.basename(path))
            if m and not pid_alive(int(m.group(1))):
                log(f"removing cgroup {path} left by an earlier run")
                CpuBudget.rmdir(path)

    @staticmethod
    def rmdir(path):
        for _ in range(50):
            try:
                os.rmdir(path)
                return True
            except FileNotFoundError:
                return True
            except OSError:
                time.sleep(0.1)  # tasks still leaving (a killed capturer's last moments)
        return False

    def create(self):
        if self.quota_us < MIN_QUOTA_US:
            raise RuntimeError(f"a budget of {self.pct}% of {self.period_us} us is a quota of "
                               f"{self.quota_us} us, below the kernel's minimum of "
                               f"{MIN_QUOTA_US} us: use a longer --cpu-period-ms")
        version, root = self.hierarchy()
        if version is None:
            raise RuntimeError(root)
        path = os.path.join(root, f"jcb-{os.getpid()}")
        os.mkdir(path)
        self.path, self.version = path, version
        if version == 1:
            self.write("cpu.cfs_period_us", self.period_us)
            self.write("cpu.cfs_quota_us", self.quota_us)
        else:
            self.write("cpu.max", f"{self.quota_us} {self.period_us}")

    def write(self, name, value):
        with open(os.path.join(self.path, name), "w") as f:
            f.write(str(value))

    def enter_session(self, sid):
        """Moves every process of session `sid` (a capturer and whatever it started), all their
        threads with them, into the group."""
        pids = []
        for stat in glob.glob("/proc/[0-9]*/stat"):
            try:
                with open(stat) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[3]) == sid:  # field 6 of stat: the session id
                pids.append(int(stat.split("/")[2]))
        if sid not in pids:
            raise RuntimeError(f"process {sid} is gone: cannot put it into the CPU budget")
        for pid in pids:
            try:
                with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
                    f.write(str(pid))
            except ProcessLookupError:
                pass

    def throttled(self):
        """How many periods the group was throttled in so far."""
        try:
            with open(os.path.join(self.path, "cpu.stat")) as f:
                for line in f:
                    k, v = line.split()
                    if k == "nr_throttled":
                        return int(v)
        except (OSError, ValueError):
            pass
        return 0

    def describe(self):
        return (f"{self.pct:g}% of one core: {self.quota_us} us of CPU every {self.period_us} us "
                f"(cgroup v{self.version} cpu controller, {self.path})")

    def remove(self):
        if self.path is None:
            return True
        ok = self.rmdir(self.path)
        if ok:
            self.path = None
        return ok


# ------------------------------------------------------------------------------ frames


def csum16(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def udp_frame(size, src_mac):
    """One Ethernet/IPv4/UDP frame of exactly `size` bytes, checksums filled in."""
    src = bytes(int(x) for x in ADDR_GEN.split("."))
    dst = bytes(int(x) for x in ADDR_CAP.split("."))
    payload = bytes(i & 0xFF for i in range(size - 14 - 20 - 8))
    udp = struct.pack("!HHHH", 40000, 9, 8 + len(payload), 0) + payload
    c = csum16(src + dst + struct.pack("!BBH", 0, 17, len(udp)) + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", c) + udp[8:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum16(ip)) + ip[12:]
    frame = (bytes.fromhex(DST_MAC.replace(":", "")) + bytes.fromhex(src_mac.replace(":", ""))
             + b"\x08\x00" + ip + udp)
    assert len(frame) == size
    return frame


def write_trafgen_config(path, frame):
    rows = [", ".join(f"0x{b:02x}" for b in frame[i:i + 16]) for i in range(0, len(frame), 16)]
    with open(path, "w") as f:
        f.write("/* jarvis-capture bench/capture_live: UDP/IPv4 %d bytes */\n{\n  " % len(frame))
        f.write(",\n  ".join(rows))
        f.write("\n}\n")


# ------------------------------------------------------------------------------ processes


def cpu_seconds(pid):
    """User+system CPU time of every thread of pid, from schedstat (ns resolution)."""
    total = 0
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(path) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total / 1e9


class Tool:
    def __init__(self, name, kind, cmd, ready, parse):
        self.name, self.kind, self.cmd, self.ready, self.parse = name, kind, cmd, ready, parse
        self.mode = ""


def parse_ours(text):
    m = re.search(r"^(\d+) packets? captured$", text, re.M)
    if not m:
        return None
    captured = int(m.group(1))
    if "drops not measured" in text:
        dropped = None
    else:
        dropped = sum(int(x) for x in
                      re.findall(r"^(\d+) packets? dropped by (?:kernel|interface)$", text, re.M))
    return captured, dropped


def parse_tcpdump(text):
    m = re.search(r"^(\d+) packets? captured$", text, re.M)
    if not m:
        return None
    dropped = sum(int(x) for x in
                  re.findall(r"^(\d+) packets? dropped by (?:kernel|interface)$", text, re.M))
    return int(m.group(1)), dropped


def parse_netsniff(text):
    m = re.search(r"(\d+)\s+packets incoming \((\d+) unread on exit\)", text)
    d = re.search(r"(\d+)\s+packets failed filter \(out of space\)", text)
    if not m or not d:
        return None
    return int(m.group(1)), int(d.group(1))


def make_tools(binary, backends, peers, ring_kib=None, umem_kib=None):
    """The capturers. With ring_kib, every ring reader gets a kernel ring of that many KiB
    (ours -B, tcpdump -B, netsniff-ng -S) and xdp a UMEM of umem_kib (one fixed 2 KiB slot a
    frame at MTU 1500, whatever its length); dpdk keeps its defaults (its buffering is the
    vdev's, with at most 4096 rx descriptors). Without ring_kib, each tool's defaults."""
    tools = []
    for b in backends:
        base, extra = VARIANTS.get(b, (b, []))
        buf = []
        if ring_kib:
            if base == "xdp":
                buf = ["-B", str(umem_kib)]
            elif base != "dpdk":  # dpdk's buffering is the vdev's, at most 4096 descriptors
                buf = ["-B", str(ring_kib)]
        tools.append(Tool(b, "ours", [binary, "capture", "-i", DEV_CAP, "--backend", base] + extra
                          + buf + ["-w", "/dev/null"], re.compile(r"^listening on ", re.M),
                          parse_ours))
    if "tcpdump" in peers:
        buf = ["-B", str(ring_kib)] if ring_kib else []
        tools.append(Tool("tcpdump", "peer", ["tcpdump", "-i", DEV_CAP, "-n"] + buf +
                          ["-w", "/dev/null"], re.compile(r"listening on "), parse_tcpdump))
    if "netsniff-ng" in peers:
        buf = ["-S", f"{ring_kib}KiB"] if ring_kib else []
        tools.append(Tool("netsniff-ng", "peer",
                          ["netsniff-ng", "--in", DEV_CAP, "--out", "/dev/null", "-s", "-A", "-Q",
                           "-b", str(CAP_CPU)] + buf, re.compile(r"Running!"), parse_netsniff))
    return tools


class Bench:
    def __init__(self, pair, work):
        self.pair, self.work = pair, work
        self.children = []
        self.configs = {}
        self.budget = None  # a CpuBudget the capturers start in, for the budgeted run

    def kill_children(self):
        for p in self.children:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
        self.children = []

    def trafgen(self, size, frames, rate):
        cmd = ["taskset", "-c", str(GEN_CPU), "ip", "netns", "exec", self.pair.gen, "trafgen",
               "-o", DEV_GEN, "-i", self.configs[size], "-n", str(frames), "-P", "1",
               "--no-sock-mem", "-Q"]
        if rate:
            # Paced by the kernel, not by trafgen: its -b sends the second's quota at full
            # speed and then sleeps out the second (bursts at the maximum rate, whatever the
            # average). Instead trafgen's per-frame path (-t 0ns) goes through the qdisc (-q),
            # where a token bucket releases frames at the rate in bursts of at most 32; a full
            # bucket blocks trafgen's sendto (socket buffer backpressure), so nothing is dropped
            # before the veth.
            cmd += ["-t", "0ns", "-q"]
            self.pair.pace(rate, size)
        out_path = os.path.join(self.work, "trafgen.out")
        try:
            with open(out_path, "w") as out:
                p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
                self.children.append(p)
                rc = p.wait(timeout=max(60, 3 * frames / max(rate or 1e5, 1e4)))
                self.children.remove(p)
        finally:
            if rate:
                self.pair.unpace()
        text = open(out_path).read()
        sent = re.search(r"(\d+) packets outgoing", text)
        t = re.search(r"(\d+) sec, (\d+) usec on CPU", text)
        if rc != 0 or not sent or not t:
            raise RuntimeError(f"trafgen failed (exit {rc}): {text.strip()[-300:]}")
        return int(sent.group(1)), int(t.group(1)) + int(t.group(2)) / 1e6

    def generator_alone(self, size, frames):
        """The generator's unlimited rate with no capturer attached (the reference)."""
        rx0 = self.pair.rx_packets()
        sent, send_s = self.trafgen(size, frames, None)
        arrived = self.pair.rx_packets() - rx0
        return {"pps": round(sent / send_s), "sent": sent, "arrived": arrived}

    def trial(self, tool, size, frames, rate):
        """One trial; returns a dict of what was measured."""
        out_path = os.path.join(self.work, f"{tool.name}.out")
        out = open(out_path, "w+")
        cmd = ["taskset", "-c", str(CAP_CPU), "ip", "netns", "exec", self.pair.cap] + tool.cmd
        budget = self.budget
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.children.append(p)
        try:
            deadline = time.monotonic() + READY_TIMEOUT_S
            while True:
                out.seek(0)
                text = out.read()
                if tool.ready.search(text):
                    break
                if p.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{tool.name} did not start: {text.strip()[-300:]}")
                time.sleep(0.02)
            m = re.search(r"^\S+ mode: (.*)$", text, re.M)
            if m:
                tool.mode = m.group(1)
            if budget:
                # Into the budget once it listens: setting up (rings, a UMEM, DPDK's EAL) is not
                # per-frame work, and under a budget of a few ms a second it could take minutes.
                budget.enter_session(p.pid)
            rx0 = self.pair.rx_packets()
            c0 = cpu_seconds(p.pid)
            sent, send_s = self.trafgen(size, frames, rate)
            c1 = cpu_seconds(p.pid)
            # Drain: the capturer must have had the chance to read what its ring holds. Idle
            # means under 10% of a core over 0.1 s; under a CPU budget, a window of at least
            # two periods without throttling and under a quarter of the budget used, and more
            # time, as the ring drains at the budget's pace.
            t_end = time.monotonic()
            last = c1
            window, busy, max_drain = 0.1, 0.010, MAX_DRAIN_S
            if budget:
                window = max(0.1, 2 * budget.period_us / 1e6)
                busy = 0.25 * window * budget.pct / 100
                max_drain = MAX_DRAIN_S_BUDGET
            throttled = budget.throttled() if budget else 0
            while time.monotonic() - t_end < max_drain:
                time.sleep(window)
                now = cpu_seconds(p.pid)
                idle = now - last < busy
                last = now
                if budget:
                    t = budget.throttled()
                    idle = idle and t == throttled
                    throttled = t
                if idle and time.monotonic() - t_end >= MIN_DRAIN_S:
                    break
            rx1 = self.pair.rx_packets()
            c2 = cpu_seconds(p.pid)
            os.killpg(p.pid, signal.SIGINT)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                raise RuntimeError(f"{tool.name} did not stop on SIGINT")
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            self.children.remove(p)
        out.seek(0)
        text = out.read()
        out.close()
        parsed = tool.parse(text)
        if parsed is None:
            raise RuntimeError(f"{tool.name}: no closing summary (exit {p.returncode}): "
                               f"{text.strip()[-300:]}")
        captured, dropped = parsed
        arrived = rx1 - rx0
        lost = arrived - captured
        r = {"requested_pps": int(rate) if rate else None, "sent": sent, "send_s": round(send_s, 6),
             "pps": round(sent / send_s), "arrived": arrived, "captured": captured,
             "dropped_reported": dropped, "lost": lost,
             "drop_pct": round(100.0 * lost / arrived, 3) if arrived else 0.0,
             "cpu_pct": round(100.0 * (c1 - c0) / send_s, 1) if send_s > 0 else None,
             "cpu_ns_per_frame": round(1e9 * (c1 - c0) / sent, 1) if sent else None,
             "counter_agrees": dropped is not None and dropped == lost,
             # All the CPU the capturer spent on this trial's frames, the drain included.
             "cpu_total_s": round(c2 - c0, 6),
             "cpu_ns_per_captured": round(1e9 * (c2 - c0) / captured, 1) if captured else None}
        r["zero_drop"] = lost == 0 and (dropped or 0) == 0 and arrived == sent
        # The paced generator could not reach the rate asked of it: what passed here says
        # nothing of higher rates.
        r["generator_bound"] = rate is None or r["pps"] < 0.97 * rate
        return r

    def trial_retry(self, tool, size, frames, rate):
        for attempt in range(3):
            try:
                return self.trial(tool, size, frames, rate)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                if attempt == 2:
                    raise
                log(f"    retrying after: {e}")
                self.kill_children()
                time.sleep(0.5)


def describe(r):
    rate = f"at {r['requested_pps'] / 1e6:.3f}M" if r["requested_pps"] else "unlimited"
    d = "n/m" if r["dropped_reported"] is None else r["dropped_reported"]
    return (f"{rate:>12}: sent {r['sent']} at {r['pps'] / 1e6:.3f} Mpps, arrived {r['arrived']}, "
            f"captured {r['captured']}, reported dropped {d}, lost {r['lost']} "
            f"({r['drop_pct']:.2f}%), cpu {r['cpu_pct']}%")


def search(bench, tool, size, frames, steps, repeats, max_trial_s=None):
    """Zero-drop search for one tool and frame size (see the module docstring). With
    max_trial_s, a paced trial sends at most that many seconds of frames (at least
    MIN_CAPPED_FRAMES)."""
    trials = []

    def point(rate):
        """Up to `repeats` trials at one rate, until one loses nothing; returns them all (and
        keeps every one in `trials`)."""
        got = []
        n = frames
        if max_trial_s and rate:
            n = min(frames, max(int(rate * max_trial_s), MIN_CAPPED_FRAMES))
        for _ in range(repeats):
            r = bench.trial_retry(tool, size, n, rate)
            trials.append(r)
            got.append(r)
            log(f"  {tool.name} {size} B {describe(r)}")
            if r["zero_drop"]:
                break
        return got

    def least_lost(got):
        return min(got, key=lambda r: (not r["zero_drop"], r["drop_pct"]))

    at_max = point(None)
    top = least_lost(at_max)
    # The drop rate at the generator's maximum is the worst of the trials there, so a loss seen
    # once is never hidden by a retry that lost nothing.
    worst = max(at_max, key=lambda r: r["drop_pct"])
    best = top if top["zero_drop"] else None
    if best is None:
        lo, hi = 0.0, float(top["pps"])
        for _ in range(steps):
            mid = (lo + hi) / 2
            r = least_lost(point(mid))
            if r["zero_drop"]:
                lo = mid
                if best is None or r["pps"] > best["pps"]:
                    best = r
                if r["generator_bound"]:
                    break  # the paced generator is at its limit: nothing faster to try
            else:
                hi = mid
    generator_bound = best is not None and best["generator_bound"]
    res = {"frame_bytes": size, "trials": trials,
           "max_rate": dict({k: worst[k] for k in ("pps", "sent", "arrived", "captured",
                                                   "dropped_reported", "lost", "drop_pct",
                                                   "cpu_pct", "cpu_ns_per_frame")},
                            trials=len(at_max),
                            drop_pct_each=[r["drop_pct"] for r in at_max]),
           "generator_bound": generator_bound}
    if best is not None:
        res["zero_drop"] = {"pps": best["pps"], "mpps": round(best["pps"] / 1e6, 4),
                            "gbps": round(gbps(best["pps"], size), 3), "cpu_pct": best["cpu_pct"],
                            "cpu_ns_per_frame": best["cpu_ns_per_frame"],
                            "lower_bound": generator_bound}
    else:
        res["zero_drop"] = {"pps": 0, "mpps": 0.0, "gbps": 0.0, "cpu_pct": None,
                            "cpu_ns_per_frame": None, "lower_bound": False,
                            "note": f"lost frames even at {lo / 1e6:.3f}-{hi / 1e6:.3f} Mpps"}
    # Whether the capturer, not the generator, set the zero-drop rate: frames were lost at a
    # faster rate that the generator did reach.
    if best is not None and not generator_bound:
        lossy = [t for t in trials if not t["zero_drop"] and t["pps"] > best["pps"]]
        if lossy:
            first = min(lossy, key=lambda t: t["pps"])
            res["lost_above"] = {"pps": first["pps"], "drop_pct": first["drop_pct"],
                                 "unlimited_pps": top["pps"]}
        res["capture_bound"] = bool(lossy)
    else:
        res["capture_bound"] = False
    agree = [t["counter_agrees"] for t in trials]
    res["drop_counter"] = {"trials": len(agree), "agree": sum(agree),
                           "disagreements": [{k: t[k] for k in ("pps", "arrived", "captured",
                                                                 "dropped_reported", "lost")}
                                             for t in trials if not t["counter_agrees"]]}
    return res


# ------------------------------------------------------------------------------ report


def fmt_rate(z):
    if not z or z["pps"] == 0:
        return "0"
    return f"{'>=' if z['lower_bound'] else ''}{z['mpps']:.3f}"


def ratio_text(ours, ref):
    """Our zero-drop rate over tcpdump's, saying when a ratio was not measured."""
    if not ours or not ref or not ref["pps"]:
        return "n/a", None
    r = ours["pps"] / ref["pps"]
    if ours["lower_bound"] and ref["lower_bound"]:
        return f"n/a ({r:.2f} gen-bound)", None
    if ref["lower_bound"]:
        return f"<={r:.2f}", None  # tcpdump's true limit is higher than measured
    if ours["lower_bound"]:
        return f">={r:.2f}", r
    return f"{r:.2f}", r


def print_table(results, sizes, alone, ref_name="tcpdump"):
    ref = results.get(ref_name, {}).get("sizes", {})
    s0 = str(sizes[0])
    head = f"{'tool':<14} {'mode':<14}"
    for s in sizes:
        head += f" {'0-drop Mpps ' + str(s) + 'B':>17} {'Gbit/s':>7}"
    for s in sizes:
        head += f" {'drop% @max ' + str(s) + 'B':>19}"
    head += f" {'CPU% ' + s0 + 'B':>8} {'ns/frame':>8} {'0-drop vs tcpdump':>20}"
    log(head)
    for name, r in results.items():
        if r.get("status") != "measured":
            log(f"{name:<14} {r.get('status', '')}: {r.get('reason', '')}")
            continue
        row = f"{name:<14} {r.get('mode', '').split(',')[0][:14]:<14}"
        for s in sizes:
            z = r["sizes"][str(s)]["zero_drop"]
            row += f" {fmt_rate(z):>17} {z['gbps']:>7.2f}"
        for s in sizes:
            m = r["sizes"][str(s)]["max_rate"]
            each = "/".join(f"{d:.2f}" for d in m.get("drop_pct_each", [m["drop_pct"]]))
            row += f" {each:>9} @{m['pps'] / 1e6:.3f}M"
        z0 = r["sizes"][s0]["zero_drop"]
        cpu = "-" if z0.get("cpu_pct") is None else f"{z0['cpu_pct']:.1f}"
        ns = "-" if z0.get("cpu_ns_per_frame") is None else f"{z0['cpu_ns_per_frame']:.0f}"
        row += f" {cpu:>8} {ns:>8}"
        if name == ref_name:
            row += f" {'1.00':>20}"
        else:
            row += f" {ratio_text(z0, ref.get(s0, {}).get('zero_drop'))[0]:>20}"
        log(row)
    if alone:
        log("generator alone (no capture): " + ", ".join(
            f"{a['pps'] / 1e6:.3f} Mpps at {s} B" for s, a in alone.items()))


def print_bounds(results, sizes):
    """Per tool and size: what set the zero-drop rate, and the evidence."""
    for name, r in results.items():
        if r.get("status") != "measured":
            continue
        parts = []
        for s in sizes:
            v = r["sizes"][str(s)]
            z = v["zero_drop"]
            if v.get("capture_bound"):
                la = v["lost_above"]
                parts.append(f"{s} B capture-bound: lost {la['drop_pct']:.2f}% at "
                             f"{la['pps'] / 1e6:.3f} Mpps, the generator reached "
                             f"{la['unlimited_pps'] / 1e6:.3f} unlimited")
            elif z["lower_bound"]:
                parts.append(f"{s} B generator-bound")
            elif z["pps"] == 0:
                parts.append(f"{s} B {z.get('note', 'no loss-free rate found')}")
            else:
                parts.append(f"{s} B not shown capture-bound (no loss seen above it)")
        log(f"  {name}: " + "; ".join(parts))


def targets(results, sizes):
    """The issue's targets (af_packet, xdp >= 2x tcpdump's zero-drop rate), one verdict each
    per frame size."""
    ref = results.get("tcpdump", {})
    out = []
    for b in ("af_packet", "xdp"):
        r = results.get(b, {})
        if r.get("status") != "measured" or ref.get("status") != "measured":
            out.append({"backend": b, "frame_bytes": None, "ratio": None,
                        "verdict": "not measured", "text": "n/a"})
            continue
        for s in sizes:
            z, zr = r["sizes"][str(s)]["zero_drop"], ref["sizes"][str(s)]["zero_drop"]
            text, val = ratio_text(z, zr)
            if z["lower_bound"] and zr["lower_bound"]:
                verdict = ("not measurable: both capture everything the generator sends "
                           "(generator-bound)")
            elif val is None:
                verdict = "not measurable (tcpdump generator-bound)"
            elif val >= 2:
                verdict = "met"
            elif z["lower_bound"]:
                verdict = "not shown: ours is generator-bound below 2x"
            else:
                verdict = "NOT met"
            out.append({"backend": b, "frame_bytes": s,
                        "ratio": None if val is None else round(val, 3), "verdict": verdict,
                        "text": text})
    for t in out:
        where = f" at {t['frame_bytes']} B" if t["frame_bytes"] else ""
        log(f"target {t['backend']} >= 2x tcpdump{where}: {t['text']} -> {t['verdict']}")
    return out


def print_counters(results):
    for name, r in results.items():
        if r.get("kind") != "ours" or r.get("status") != "measured":
            continue
        tot = sum(v["drop_counter"]["trials"] for v in r["sizes"].values())
        agree = sum(v["drop_counter"]["agree"] for v in r["sizes"].values())
        bad = [d for v in r["sizes"].values() for d in v["drop_counter"]["disagreements"]]
        log(f"drop counter == arrived - captured: {name}: {agree} of {tot} trials"
            + ("" if not bad else f"; DISAGREES: {bad[:3]}"))


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def tool_version(cmd):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (p.stdout + p.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return ""


def available_backends(binary):
    """name -> reason ('' when available) from `jarvis-capture backends`."""
    out = run([binary, "backends"], check=False).stdout
    avail = {}
    for line in out.splitlines():
        parts = line.split(None, 2)
        if len(parts) >= 2 and parts[1] in ("available", "unavailable"):
            avail[parts[0]] = "" if parts[1] == "available" else (parts[2] if len(parts) > 2
                                                                  else "unavailable")
    return avail


def write_results(path, doc):
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)


def measure(bench, tools, sizes, frames, steps, repeats, results, max_trial_s=None):
    """Searches every tool at every size into `results`; False when one failed."""
    ok = True
    for tool in tools:
        entry = {"kind": tool.kind, "status": "measured",
                 "command": " ".join(["taskset", "-c", str(CAP_CPU)] + tool.cmd),
                 "sizes": {}}
        try:
            for s in sizes:
                entry["sizes"][str(s)] = search(bench, tool, s, frames, steps, repeats,
                                                max_trial_s)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            log(f"{tool.name}: failed: {e}")
            entry = {"kind": tool.kind, "status": "failed", "reason": str(e)}
            ok = False
        if tool.mode:
            entry["mode"] = tool.mode
        if entry["status"] == "measured":
            big = entry["sizes"].get("1500") or entry["sizes"][str(max(sizes))]
            entry["max_throughput_gbps"] = big["zero_drop"]["gbps"]
            entry["cpu_overhead_pct"] = big["zero_drop"]["cpu_pct"]
            entry["max_throughput_frame_bytes"] = big["frame_bytes"]
        results[tool.name] = entry
    return ok


def main():
    ap = argparse.ArgumentParser(description="Live capture benchmark on a veth pair (see the "
                                 "module docstring of bench/capture_live.py)")
    ap.add_argument("binary", help="the jarvis-capture binary (`jarvis-capture bench` passes "
                                   "its own)")
    ap.add_argument("--quick", action="store_true", help="100,000 frames a trial, 3 steps")
    ap.add_argument("--smoke", action="store_true",
                    help="a few thousand frames, one trial per tool, 64 B, libpcap/af_packet and "
                         "tcpdump unless told otherwise (for tests: checks the machinery), "
                         "unconstrained and budgeted")
    ap.add_argument("--frames", type=int, help="frames per trial (default 300,000)")
    ap.add_argument("--steps", type=int, help="bisection steps (default 5)")
    ap.add_argument("--repeats", type=int,
                    help="trials per rate until one loses nothing (default 2, --quick 1)")
    ap.add_argument("--sizes", default="64,1500", help="frame sizes in bytes")
    ap.add_argument("--backends", help="our backends, comma-separated (default: all)")
    ap.add_argument("--peers", help="peers, comma-separated (default: tcpdump,netsniff-ng)")
    ap.add_argument("--cpu-budget", type=float, default=DEFAULT_BUDGET_PCT, metavar="PCT",
                    help="after the unconstrained run, a budgeted run with every capturer in a "
                         "cgroup limited to PCT %% of one core (default %(default)s; 0: no "
                         "budgeted run)")
    ap.add_argument("--cpu-period-ms", type=float, default=DEFAULT_PERIOD_MS,
                    help="the budget's CFS period (default %(default)s ms; the quota, PCT %% of "
                         "it, must be at least 1 ms)")
    ap.add_argument("--budget-only", action="store_true", help="only the budgeted run")
    ap.add_argument("--budget-backends",
                    help="our backends in the budgeted run (default: those of --backends but "
                         "dpdk's, which busy-poll)")
    ap.add_argument("--budget-frames", type=int,
                    help=f"frames per budgeted trial (default {BUDGET_FRAMES:,}, --quick "
                         f"{BUDGET_FRAMES_QUICK:,})")
    ap.add_argument("--budget-sizes", default=",".join(map(str, BUDGET_SIZES)),
                    help="frame sizes of the budgeted run (default %(default)s)")
    ap.add_argument("--budget-ring-kib", type=int, default=BUDGET_RING_KIB,
                    help="kernel ring of every ring reader in the budgeted run (ours -B, tcpdump "
                         "-B, netsniff-ng -S; default %(default)s KiB)")
    ap.add_argument("--budget-umem-kib", type=int, default=BUDGET_UMEM_KIB,
                    help="xdp's UMEM in the budgeted run (2 KiB a frame at MTU 1500; default "
                         "%(default)s KiB)")
    ap.add_argument("--results", help=f"where to write the JSON results (default "
                    f"{DEFAULT_RESULTS}; with --budget-only, only when given)")
    ap.add_argument("--no-results", action="store_true", help="write no results file")
    ap.add_argument("--max-load", type=float, default=0,
                    help="wait (up to --wait-quiet s) until the 1-minute load is below this")
    ap.add_argument("--wait-quiet", type=float, default=0)
    args = ap.parse_args()

    if args.smoke:
        frames, steps, repeats = args.frames or 3000, 0, 1
        sizes = [64]
        backends = (args.backends or "libpcap,af_packet").split(",")
        peers = (args.peers if args.peers is not None else "tcpdump").split(",")
        budget_frames, budget_sizes = args.budget_frames or 3000, [64]
    else:
        frames = args.frames or (100_000 if args.quick else 300_000)
        steps = args.steps if args.steps is not None else (3 if args.quick else 5)
        repeats = args.repeats or (1 if args.quick else 2)
        sizes = [int(s) for s in args.sizes.split(",")]
        backends = (args.backends or ",".join(OUR_BACKENDS + list(VARIANTS))).split(",")
        peers = (args.peers if args.peers is not None else ",".join(PEERS)).split(",")
        budget_frames = args.budget_frames or (BUDGET_FRAMES_QUICK if args.quick
                                               else BUDGET_FRAMES)
        budget_sizes = [int(s) for s in args.budget_sizes.split(",") if s]
    backends = [b for b in backends if b]
    peers = [p for p in peers if p]
    for s in sizes + budget_sizes:
        if not 60 <= s <= 1514:
            ap.error(f"frame size {s} out of 60..1514")
    for b in backends:
        if b not in OUR_BACKENDS and b not in VARIANTS:
            ap.error(f"unknown backend {b}")
    for p in peers:
        if p not in PEERS:
            ap.error(f"unknown peer {p}")
    if args.cpu_budget < 0 or args.cpu_budget > 100:
        ap.error("--cpu-budget is a % of one core, 0..100")
    if args.budget_only and not args.cpu_budget:
        ap.error("--budget-only needs a --cpu-budget above 0")
    budget = CpuBudget(args.cpu_budget, args.cpu_period_ms) if args.cpu_budget else None
    if budget and budget.quota_us < MIN_QUOTA_US:
        ap.error(f"{args.cpu_budget}% of {args.cpu_period_ms} ms is under the kernel's 1 ms "
                 f"minimum quota: use a longer --cpu-period-ms")
    unconstrained = not args.budget_only

    binary = os.path.abspath(args.binary)
    if os.geteuid() != 0:
        log("capture_live: skipped: needs root (network namespaces, raw sockets)")
        return 77
    for tool in ["ip", "tc", "taskset", "trafgen"] + [p for p in peers]:
        if shutil.which(tool) is None:
            log(f"capture_live: skipped: {tool} is not installed (Debian: "
                f"{'netsniff-ng' if tool in ('trafgen', 'netsniff-ng') else tool})")
            return 77
    if (os.cpu_count() or 1) < 2 or len(os.sched_getaffinity(0)) < 2:
        log("capture_live: skipped: needs 2 CPUs (generator and capturer each pinned to one)")
        return 77
    if not os.access(binary, os.X_OK):
        log(f"capture_live: {binary} is not executable")
        return 1
    if budget:
        version, why = CpuBudget.hierarchy()
        if version is None:
            if args.budget_only:
                log(f"capture_live: skipped: {why}")
                return 77
            log(f"no budgeted run: {why}")
            budget = None

    load0 = loadavg()
    if args.max_load and load0[0] > args.max_load and args.wait_quiet > 0:
        log(f"load {load0[0]:.2f} > {args.max_load}: waiting up to {args.wait_quiet:.0f} s")
        deadline = time.monotonic() + args.wait_quiet
        while loadavg()[0] > args.max_load and time.monotonic() < deadline:
            time.sleep(5)
        load0 = loadavg()

    def on_signal(sig, frame):
        raise Interrupted(signal.Signals(sig).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    avail = available_backends(binary)
    remove_stale_namespaces()
    CpuBudget.remove_stale()
    pair = Pair()
    work = tempfile.mkdtemp(prefix="jarvis-bench-live-")
    bench = None
    results, budgeted = {}, {}
    alone = {}
    t0 = time.monotonic()
    started = datetime.datetime.now(datetime.timezone.utc)
    ok = True
    cleaned = True
    try:
        pair.up()
        bench = Bench(pair, work)
        for s in sorted(set(sizes + budget_sizes)):
            path = os.path.join(work, f"udp{s}.cfg")
            write_trafgen_config(path, udp_frame(s, pair.gen_mac))
            bench.configs[s] = path
        log(f"jarvis-capture bench/capture_live: veth {DEV_GEN} ({pair.gen}) -> {DEV_CAP} "
            f"({pair.cap}), UDP {ADDR_GEN} -> {ADDR_CAP}")
        log(f"pinning: generator (trafgen -P 1) on CPU {GEN_CPU}, capturer on CPU {CAP_CPU} "
            f"(taskset); the kernel's receive work for veth runs on the sender's CPU {GEN_CPU}")
        log(f"trials: {frames} frames each, {steps} bisection steps, up to {repeats} trials a "
            f"rate, sizes {sizes}; load "
            f"{load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}")
        def base(b):
            return VARIANTS.get(b, (b,))[0]

        runnable = [b for b in backends if b != "pf_ring" and not avail.get(base(b), "not listed")]
        for b in backends:
            why = "pf_ring is loaded at run time and needs libpfring and its kernel module" \
                if b == "pf_ring" else ""
            reason = avail.get(base(b), f"{base(b)} is not listed by `jarvis-capture backends`")
            if b == "pf_ring" or reason:
                skipped = {"kind": "ours", "status": "skipped", "reason": reason or why}
                results[b] = dict(skipped)
                budgeted[b] = dict(skipped)
                log(f"{b}: skipped: {skipped['reason']}")
        for s in sorted(set(sizes + budget_sizes)):
            alone[str(s)] = bench.generator_alone(s, frames)
            log(f"  generator alone {s} B: {alone[str(s)]['pps'] / 1e6:.3f} Mpps, "
                f"{alone[str(s)]['arrived']} of {alone[str(s)]['sent']} arrived")
        if unconstrained:
            ok = measure(bench, make_tools(binary, runnable, peers), sizes, frames, steps,
                         repeats, results) and ok
        if budget:
            wanted = (args.budget_backends.split(",") if args.budget_backends is not None
                      else [b for b in backends if base(b) not in BUDGET_SKIP])
            for b in backends:
                if b not in wanted and b not in budgeted:
                    budgeted[b] = {"kind": "ours", "status": "skipped",
                                   "reason": BUDGET_SKIP.get(base(b), "not asked for")}
                    log(f"{b}: left out of the budgeted run: {budgeted[b]['reason']}")
            budget.create()
            bench.budget = budget
            log(f"\nbudgeted run: every capturer limited to {budget.describe()}; kernel ring "
                f"{args.budget_ring_kib} KiB for every ring reader, xdp UMEM "
                f"{args.budget_umem_kib} KiB; {budget_frames} frames a trial, sizes "
                f"{budget_sizes}")
            ok = measure(bench, make_tools(binary, [b for b in runnable if b in wanted], peers,
                                           args.budget_ring_kib, args.budget_umem_kib),
                         budget_sizes, budget_frames, steps, repeats, budgeted,
                         BUDGET_TRIAL_S) and ok
    except Interrupted as e:
        log(f"\ninterrupted ({e}): cleaning up")
        ok = False
        return 130
    except (RuntimeError, OSError) as e:
        log(f"capture_live: failed: {e}")
        ok = False
        return 1
    finally:
        if bench:
            bench.kill_children()
        if budget and not budget.remove():
            log(f"WARNING: cgroup {budget.path} left behind")
            cleaned = False
        elif budget and budget.version:
            log(f"cgroup jcb-{os.getpid()} removed")
        removed = pair.down()
        shutil.rmtree(work, ignore_errors=True)
        log(f"namespaces {pair.gen} and {pair.cap} removed" if removed else
            "WARNING: namespaces left behind")
    elapsed = time.monotonic() - t0
    load1 = loadavg()

    doc_targets = {}
    if unconstrained:
        log()
        log(f"Live capture on veth, unconstrained, {frames} frames a trial, generator on CPU "
            f"{GEN_CPU}, capturer on CPU {CAP_CPU}; load {load0[0]:.2f} at start, "
            f"{load1[0]:.2f} at end; {elapsed:.0f} s")
        log("0-drop: highest rate with nothing lost ('>=': the generator's own maximum, so a "
            "lower bound); Gbit/s of frame bytes; drop% at the generator's maximum, each trial "
            "there (rate reached by the worst); CPU% of one core and its CPU ns per frame at the "
            "0-drop rate")
        print_table(results, sizes, alone)
        log()
        doc_targets["unconstrained"] = targets(results, sizes)
        print_counters(results)
    if budget and budget.version:
        log()
        log(f"Live capture on veth, CPU budget: every capturer (ours and the peers) in a cgroup "
            f"limited to {args.cpu_budget:g}% of one core ({budget.quota_us} us every "
            f"{budget.period_us} us), still pinned to CPU {CAP_CPU}; {budget_frames} frames a "
            f"trial; kernel ring {args.budget_ring_kib} KiB for libpcap, af_packet, tcpdump "
            f"(-B) and netsniff-ng (-S), xdp UMEM {args.budget_umem_kib} KiB, dpdk its defaults")
        log("The budget makes the capturer, not the generator, the limit: a 0-drop rate without "
            "'>=' is capture-bound when frames were lost at a faster rate the generator reached")
        print_table(budgeted, budget_sizes, {})
        print_bounds(budgeted, budget_sizes)
        log()
        doc_targets["cpu_budget"] = targets(budgeted, budget_sizes)
        print_counters(budgeted)

    doc = {"schema": SCHEMA, "date": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
           "elapsed_s": round(elapsed, 1),
           "host": {"kernel": os.uname().release, "machine": os.uname().machine,
                    "cpus": os.cpu_count(), "cpu": hostinfo.describe(), "load_start": load0,
                    "load_end": load1},
           "pinning": {"generator_cpu": GEN_CPU, "capturer_cpu": CAP_CPU, "how": "taskset",
                       "note": "veth's receive path runs in the sender's context (CPU "
                               f"{GEN_CPU})"},
           "setup": {"link": "veth between two network namespaces",
                     "frame": f"UDP/IPv4 {ADDR_GEN} -> {ADDR_CAP}, destination MAC {DST_MAC}",
                     "frame_bytes": sizes, "frames_per_trial": frames, "bisection_steps": steps,
                     "trials_per_rate": repeats, "unconstrained_run": unconstrained,
                     "smoke": args.smoke},
           "definitions": {
               "max_throughput_gbps": "zero-drop rate at 1500-byte frames in Gbit/s of frame "
                                      "bytes (Ethernet header to payload, no FCS): "
                                      "pps * 1500 * 8 / 1e9; a lower bound when generator_bound",
               "cpu_overhead_pct": "user+system CPU of the capture process at that rate, % of "
                                   "one core",
               "drop_pct": "(arrived - captured) / arrived, arrived = rx_packets of the capture "
                           "side of the veth",
               "capture_bound": "frames were lost at a rate above the zero-drop rate that the "
                                "generator reached: the capturer set the zero-drop rate"},
           "generator": {"tool": "trafgen", "version": tool_version(["trafgen", "-v"]),
                         "cpu": GEN_CPU, "alone": alone},
           "versions": {"jarvis-capture": tool_version([binary, "--version"]),
                        "tcpdump": tool_version(["tcpdump", "--version"]),
                        "netsniff-ng": tool_version(["netsniff-ng", "-v"])},
           "targets": doc_targets,
           "backends": {k: v for k, v in results.items() if v.get("kind") == "ours"},
           "peers": {k: v for k, v in results.items() if v.get("kind") == "peer"}}
    if budget and budget.version:
        doc["cpu_budget"] = {
            "method": "each capturer (ours and the peers alike) runs in a cgroup with a CFS "
                      "bandwidth quota (quota_us of CPU every period_us), pinned to the "
                      "capturer CPU as in the unconstrained run; the same zero-drop search",
            "pct_of_one_core": args.cpu_budget, "quota_us": budget.quota_us,
            "period_us": budget.period_us, "cgroup": f"v{budget.version}",
            "ring_kib": args.budget_ring_kib, "xdp_umem_kib": args.budget_umem_kib,
            "dpdk": "its defaults", "frames_per_trial": budget_frames,
            "paced_trial_max_s": BUDGET_TRIAL_S, "paced_trial_min_frames": MIN_CAPPED_FRAMES,
            "frame_bytes": budget_sizes,
            "backends": {k: v for k, v in budgeted.items() if v.get("kind") == "ours"},
            "peers": {k: v for k, v in budgeted.items() if v.get("kind") == "peer"}}
    if args.budget_only and not args.results:
        # The daemon's measured figures come from the unconstrained run: not overwritten.
        log(f"\n--budget-only: results not written (give --results FILE to write them)")
    elif not args.no_results:
        path = args.results or DEFAULT_RESULTS
        write_results(path, doc)
        log(f"\nresults written to {path}")
    return 0 if ok and cleaned else 1


if __name__ == "__main__":
    sys.exit(main())
