#!/usr/bin/python3
"""Flow metering against the tshark oracles of the shared corpus (../shared/pcaps/oracle).

For every corpus file whose oracle CSV has rows, runs
    jarvis-capture flows -r F --format json --no-progress --active-timeout 86400 --idle-timeout 86400
and compares our flows with tshark's conversation rows, direction by direction: our fwd/rev are
mapped to tshark's a_to_b/b_to_a by addresses and ports (tshark's A is simply the first sender,
ours the initiator).

How the oracle is turned into what we must count
* tests/flow/oracle_frames.lua is a tshark listener on the taps the oracle was built from
  (tcp, udp, sctp, ip, ipv6: see ../shared/pcaps/tools/conv_exact.lua). For every tap call it
  reports the frame, its length and the length and offset of its outermost IP header. Its calls
  are first summed back into rows, which must reproduce the oracle CSV exactly (packets and
  frame bytes), or the test fails: the per-frame adjustment below is only trusted where it
  demonstrably describes the oracle.
* Frame bytes become IP-layer octets frame by frame, never with an assumed header size: each
  counted frame contributes the octets its outermost IP header states, or, as the decoder does
  (decode/decoder.h, PacketMeta::l3_len), the octets the wire carried from that header on when
  the header says 0 or claims more than the frame had (ndpi_badpackets, tcpreplay_test).
* Packets must be equal exactly, and IP octets exactly.

What is compared
* tcp/udp/sctp rows, against our flows with the same protocol and endpoints;
* ip/ipv6 rows (address pairs), against the sum of all our flows of that pair, any protocol:
  this covers what the transport tables cannot (ICMP/ICMPv6, IGMP, GRE, PIM, ...);
* our own flows: each must belong to a compared or excluded row.
Rows with the same endpoints (tshark's tcp.stream/udp.stream split a reused 5-tuple into
several rows; we split by VLAN, or start a new flow after a close) are compared as one sum.

Adjusted, not excluded
* IP fragments. tshark counts a datagram once, in the frame that completes its reassembly,
  and skips the fragments it held for it (in the transport rows, and in the ipv6 rows); we
  count every fragment frame, a later one in the flow of its first fragment's ports. The held
  fragment frames of a datagram whose ports tshark saw are added to that conversation (and to
  the ipv6 pair), with their own IP octets; so attribution of later fragments is checked.
* A pair that is also carried inside a tunnel in some frames (GRE inside GRE between the same
  routers): only the tap calls on the outermost IP layer are expected from us.

Excluded by design, each with the reason printed
* files whose oracle has no rows: tshark could not open them, they are empty, or cut short;
* conversations carried only inside a tunnel (an IP layer that is not the outermost: GRE,
  VXLAN, IP-in-IP, Teredo...): we do not decapsulate and meter the outer headers, so these
  inner tcp/udp/ip rows have no flow of ours; their frames are checked through the outer rows;
* transport rows with fragment frames that tshark neither counted nor reassembled while the
  datagram's first fragment is in the file: which of the pair's conversations they belong to
  is unknown to the oracle;
* transport rows with frames whose TCP/UDP/SCTP header is cut short by the snaplen: tshark's
  transport tap does not run for them (the dissector stops before it), we meter them by the
  ports that were captured; the frames are checked in the ip row;
* transport rows with frames of more than 8 IPv6 extension headers: the decoder follows at
  most 8 (kMaxIpv6ExtHeaders) and meters such a frame by the header it stopped at; checked in
  the ipv6 row;
* transport rows keyed on an IPv6 routing header's final destination: tshark's TCP/UDP taps
  take the pseudo-header's addresses, we the IPv6 header's destination (the IPFIX meaning);
  checked in the ipv6 row;
* our flow for a fragment whose first fragment is not in the file (ports 0, counted as
  unattributed by the meter): tshark has no transport row for such a frame; it is checked in
  the ip row.

usage: oracle_test.py JARVIS_CAPTURE PCAP_DIR
"""
import collections
import csv
import glob
import ipaddress
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
LUA = os.path.join(HERE, "oracle_frames.lua")
TRANSPORT = {"tcp": 6, "udp": 17, "sctp": 132}
PROTO_NAME = {v: k for k, v in TRANSPORT.items()}
MAX_IPV6_EXT_HEADERS = 8  # kMaxIpv6ExtHeaders in src/decode/decoder.cc

Frag = collections.namedtuple("Frag", "src dst proto ident offset stated hdr_offset")


def norm(addr):
    return str(ipaddress.ip_address(addr))


def pair(a, b):
    return tuple(sorted([a, b]))


def conv_key(kind, a, b):
    """kind is tcp/udp/sctp with (addr, port) endpoints, or ip with (addr,) endpoints."""
    return (kind,) + pair(a, b)


def ip_octets(stated, hdr_offset, frame_len):
    """IP-layer octets as the decoder counts them (PacketMeta::l3_len): what the header states,
    or what the wire carried from the header on when it says 0 or claims more than that."""
    wire_left = max(frame_len - hdr_offset, 0)
    return wire_left if stated == 0 or stated > wire_left else stated


class Frames:
    """What tshark's taps saw, frame by frame, from oracle_frames.lua."""

    def __init__(self, path):
        proc = subprocess.run(["tshark", "-n", "-r", path, "-q", "-X", "lua_script:" + LUA],
                              capture_output=True, text=True, timeout=300)
        self.frame_len = {}
        self.protocols = {}  # frame -> frame.protocols, split
        self.fragments = {}  # frame -> Frag, for frames that hold an IP fragment
        self.ext_headers = {}  # frame -> IPv6 extension headers in it
        self.ip_layers = collections.defaultdict(list)  # frame -> [(ver, src, dst, len, off)]
        self.transports = []  # (frame, proto, src, sport, dst, dport, stream, depth)
        for line in proc.stdout.splitlines():
            f = line.split("\t")
            if f[0] == "F":
                frame = int(f[1])
                self.frame_len[frame] = int(f[2])
                if f[3] != "-":
                    self.fragments[frame] = Frag(norm(f[3]), norm(f[4]), int(f[5]), int(f[6]),
                                                 int(f[7]), int(f[8]), int(f[9]))
                self.ext_headers[frame] = int(f[10])
                self.protocols[frame] = f[11].split(":")
            elif f[0] == "I":
                self.ip_layers[int(f[1])].append((int(f[2]), norm(f[3]), norm(f[4]), int(f[5]),
                                                  int(f[6])))
            elif f[0] == "T":
                frame = int(f[1])
                depth = len(self.ip_layers[frame]) - 1  # 0: carried by the outermost IP layer
                self.transports.append((frame, f[2], norm(f[3]), int(f[4]), norm(f[5]),
                                        int(f[6]), f[7], depth))
        if not self.frame_len:
            raise RuntimeError(f"the tshark listener gave nothing for {path}: {proc.stderr}")
        self.tapped = {t[0]: t for t in self.transports if t[7] == 0}

    def octets(self, frame):
        """The IP octets we count for the frame (its outermost IP layer)."""
        if self.ip_layers[frame]:
            _, _, _, stated, hdr_offset = self.ip_layers[frame][0]
        else:  # a fragment held for reassembly: no tap ran, the frame tap described it
            stated, hdr_offset = self.fragments[frame].stated, self.fragments[frame].hdr_offset
        return ip_octets(stated, hdr_offset, self.frame_len[frame])

    def outer_pair(self, frame):
        _, src, dst, _, _ = self.ip_layers[frame][0]
        return pair(src, dst)

    def cut_transport(self):
        """(proto, address pair) -> frames whose outermost IP layer carries a TCP/UDP/SCTP
        header that tshark's transport tap did not count (not fragments): the header is cut
        short and the dissector stopped before its tap."""
        out = collections.Counter()
        for frame, protos in self.protocols.items():
            if frame in self.tapped or frame in self.fragments or not self.ip_layers[frame]:
                continue
            rest = protos[next(i for i, p in enumerate(protos) if p in ("ip", "ipv6")) + 1:]
            rest = [p for p in rest if not p.startswith("ipv6.")]  # extension headers
            if rest and rest[0] in TRANSPORT:
                out[(rest[0],) + self.outer_pair(frame)] += 1
        return out

    def long_chains(self):
        """Address pair -> frames with more IPv6 extension headers than the decoder follows."""
        return collections.Counter(self.outer_pair(f) for f, n in self.ext_headers.items()
                                   if n > MAX_IPV6_EXT_HEADERS and self.ip_layers[f])

    def rerouted(self):
        """Transport taps whose addresses are not those of the IP header that carries them: an
        IPv6 routing header with segments left, where tshark keys TCP/UDP on the final
        destination (the pseudo-header's) and we on the header's destination. Returns
        tshark's conversation keys and ours."""
        theirs, ours = set(), set()
        for frame, proto, src, sport, dst, dport, _, depth in self.transports:
            _, isrc, idst, _, _ = self.ip_layers[frame][depth]
            if (src, dst) != (isrc, idst):
                theirs.add(conv_key(proto, (src, sport), (dst, dport)))
                ours.add(conv_key(proto, (isrc, sport), (idst, dport)))
        return theirs, ours

    def held_fragments(self):
        """Fragment frames tshark held for reassembly, which no transport tap counted.

        Returns conversation key -> [frame] for datagrams whose ports tshark saw (in the frame
        that completed them); (proto, address pair) -> count for datagrams with a first
        fragment in the file but no frame tshark dissected: their conversation is unknown;
        and ("ip", pair) -> [frame] for IPv6 fragments that its ipv6 tap skipped too. A
        datagram without a first fragment in the file is in no conversation, ours or
        tshark's, except the ip rows."""
        ports, has_first = {}, set()
        for frame, g in self.fragments.items():
            d = (g.src, g.dst, g.proto, g.ident)
            if g.offset == 0:
                has_first.add(d)
            if frame in self.tapped:
                _, name, tsrc, sport, tdst, dport, _, _ = self.tapped[frame]
                ports[d] = conv_key(name, (tsrc, sport), (tdst, dport))
        by_conv, ipv6_pairs = collections.defaultdict(list), collections.defaultdict(list)
        unknown = collections.Counter()
        for frame, g in self.fragments.items():
            d = (g.src, g.dst, g.proto, g.ident)
            if ":" in g.src and not self.ip_layers[frame]:
                ipv6_pairs[conv_key("ip", (g.src,), (g.dst,))].append(frame)
            if frame in self.tapped:
                continue
            if d in ports:
                by_conv[ports[d]].append(frame)
            elif d in has_first:
                unknown[(PROTO_NAME.get(g.proto, str(g.proto)),) + pair(g.src, g.dst)] += 1
        return by_conv, unknown, ipv6_pairs


class Expect:
    """One conversation (or the sum of rows with the same endpoints), in tshark's terms."""

    def __init__(self, kind, a, b):
        self.kind, self.a, self.b = kind, a, b  # endpoints: (addr, port), or (addr,) for ip
        self.rows = 0
        self.oracle = [0, 0, 0, 0]  # packets a->b, frame bytes a->b, packets b->a, bytes b->a
        self.rebuilt = [0, 0, 0, 0]  # the same, summed from the listener's tap calls
        self.want = [0, 0, 0, 0]  # packets and IP octets we must have, a->b then b->a
        self.inner = 0  # tap calls on an inner IP layer (inside a tunnel)
        self.outer = 0
        self.held = 0  # fragment frames tshark held for reassembly, added to want

    def add_tap(self, forward, frame_len, octets, depth):
        i = 0 if forward else 2
        self.rebuilt[i] += 1
        self.rebuilt[i + 1] += frame_len
        if depth > 0:
            self.inner += 1
            return
        self.outer += 1
        self.want[i] += 1
        self.want[i + 1] += octets

    def add_held(self, forward, octets):
        i = 0 if forward else 2
        self.want[i] += 1
        self.want[i + 1] += octets
        self.held += 1

    def name(self):
        ep = lambda e: e[0] if len(e) == 1 else f"{e[0]}:{e[1]}"
        return f"{self.kind} {ep(self.a)} <-> {ep(self.b)}"


def build_expectations(oracle_path, frames):
    exp = {}
    for r in csv.DictReader(open(oracle_path)):
        kind, addr_a, addr_b = r["proto"], norm(r["addr_a"]), norm(r["addr_b"])
        if kind in TRANSPORT:
            a, b = (addr_a, int(r["port_a"])), (addr_b, int(r["port_b"]))
        else:
            kind, a, b = "ip", (addr_a,), (addr_b,)  # IPv4 and IPv6 pairs cannot collide
        e = exp.setdefault(conv_key(kind, a, b), Expect(kind, a, b))
        vals = [int(r["packets_a_to_b"]), int(r["bytes_a_to_b"]), int(r["packets_b_to_a"]),
                int(r["bytes_b_to_a"])]
        if (a, b) != (e.a, e.b):
            vals = vals[2:] + vals[:2]
        e.oracle = [x + y for x, y in zip(e.oracle, vals)]
        e.rows += 1
    for frame, layers in frames.ip_layers.items():
        for depth, (_, src, dst, _, _) in enumerate(layers):
            e = exp.get(conv_key("ip", (src,), (dst,)))
            if e is not None:
                e.add_tap((src,) == e.a, frames.frame_len[frame], frames.octets(frame), depth)
    for frame, proto, src, sport, dst, dport, _, depth in frames.transports:
        e = exp.get(conv_key(proto, (src, sport), (dst, dport)))
        if e is not None:
            e.add_tap((src, sport) == e.a, frames.frame_len[frame], frames.octets(frame), depth)
    return exp


def run_flows(binary, path):
    proc = subprocess.run([binary, "flows", "-r", path, "--format", "json", "--no-progress",
                           "--active-timeout", "86400", "--idle-timeout", "86400"],
                          capture_output=True, text=True, timeout=120)
    return proc.returncode, [json.loads(l) for l in proc.stdout.splitlines()], proc.stderr.strip()


def add_ours(got, key, initiator, f):
    """Adds flow f, whose initiator endpoint is `initiator`, to the sum for `key`."""
    g = got.setdefault(key, {"a": initiator, "v": [0, 0, 0, 0], "flows": 0})
    v = [f["packets_fwd"], f["bytes_fwd"], f["packets_rev"], f["bytes_rev"]]
    if initiator != g["a"]:
        v = v[2:] + v[:2]
    g["v"] = [x + y for x, y in zip(g["v"], v)]
    g["flows"] += 1


def exclusion(k, e, unknown, cut, long_chains, rerouted):
    """Why conversation e cannot match by design, or None."""
    if e.inner and not e.outer:
        return "carried inside a tunnel only; we meter the outer headers"
    if e.kind not in TRANSPORT:
        return None
    proto_pair = (e.kind,) + pair(e.a[0], e.b[0])
    if unknown[proto_pair]:
        return (f"{unknown[proto_pair]} fragment frames between these addresses that tshark "
                f"neither counted nor reassembled: their conversation is unknown")
    if cut[proto_pair]:
        return (f"{cut[proto_pair]} frames between these addresses whose {e.kind} header is cut "
                f"short: tshark's {e.kind} tap skips them, we meter them (see the ip row)")
    if long_chains[proto_pair[1:]]:
        return (f"{long_chains[proto_pair[1:]]} frames with more than {MAX_IPV6_EXT_HEADERS} "
                f"IPv6 extension headers: the decoder stops there (see the ipv6 row)")
    if k in rerouted:
        return ("an IPv6 routing header: tshark keys the transport on the final destination, "
                "we on the header's destination (see the ipv6 row)")
    return None


def check_file(binary, path, oracle_path):
    """Returns (errors, notes, compared, excluded) for one capture."""
    errors, notes = [], []
    frames = Frames(path)
    exp = build_expectations(oracle_path, frames)
    held_by_conv, unknown, held_ipv6 = frames.held_fragments()
    for k, held in list(held_by_conv.items()) + list(held_ipv6.items()):
        if k in exp:
            for frame in held:
                exp[k].add_held(frames.fragments[frame].src == exp[k].a[0], frames.octets(frame))
    cut, long_chains = frames.cut_transport(), frames.long_chains()
    rerouted_theirs, rerouted_ours = frames.rerouted()
    fragment_pairs = {(g.proto,) + pair(g.src, g.dst) for g in frames.fragments.values()}

    rc, flows, stderr = run_flows(binary, path)
    if rc != 0:
        errors.append(f"flows exited {rc}: {stderr}")
    got, unattributed = {}, []
    for f in flows:
        src, dst = norm(f["src_ip"]), norm(f["dst_ip"])
        add_ours(got, conv_key("ip", (src,), (dst,)), (src,), f)
        name = PROTO_NAME.get(f["protocol"])
        if name is None:
            continue  # ICMP, GRE, ...: no tshark transport table; checked in the ip rows
        if f["src_port"] == 0 and f["dst_port"] == 0 and \
                (f["protocol"],) + pair(src, dst) in fragment_pairs:
            unattributed.append(f)
            continue
        add_ours(got, conv_key(name, (src, f["src_port"]), (dst, f["dst_port"])),
                 (src, f["src_port"]), f)

    compared = excluded = 0
    for k, e in exp.items():
        if e.rebuilt != e.oracle:
            errors.append(f"{e.name()}: the tshark listener rebuilds {e.rebuilt}, the oracle "
                          f"says {e.oracle}: its frame bytes cannot be adjusted")
            continue
        why = exclusion(k, e, unknown, cut, long_chains, rerouted_theirs)
        if why:
            excluded += 1
            notes.append(f"excluded {e.name()}: {why}")
            got.pop(k, None)
            continue
        compared += 1
        g = got.pop(k, None)
        want = e.want
        if g is None:
            errors.append(f"{e.name()}: no flow of ours; expected packets/IP octets a->b "
                          f"{want[0]}/{want[1]}, b->a {want[2]}/{want[3]}")
            continue
        have = g["v"] if g["a"] == e.a else g["v"][2:] + g["v"][:2]
        if e.a == e.b:  # an address talking to itself: tshark puts every frame in a->b
            have = [have[0] + have[2], have[1] + have[3], 0, 0]
        if have != want:
            errors.append(f"{e.name()}: ours a->b {have[0]} packets/{have[1]} octets, b->a "
                          f"{have[2]}/{have[3]}; expected {want[0]}/{want[1]}, {want[2]}/"
                          f"{want[3]} (oracle frame bytes {e.oracle[1]}/{e.oracle[3]})")
            continue
        how = []
        if e.rows > 1 or g["flows"] > 1:
            how.append(f"{e.rows} tshark rows and {g['flows']} flows of ours summed")
        if e.held:
            how.append(f"plus {e.held} fragment frames tshark held for reassembly")
        if e.inner:
            how.append(f"{e.inner} of {e.inner + e.outer} tap calls inside a tunnel left out")
        if how:
            notes.append(f"{e.name()}: match, {'; '.join(how)}")
    for k, g in got.items():
        if k in rerouted_ours:
            notes.append(f"our {k[0]} flow {k[1]} <-> {k[2]}: keyed on the IPv6 header's "
                         f"destination; tshark keys it on the routing header's final one")
        else:
            errors.append(f"our {k[0]} flow(s) {k[1]} <-> {k[2]} match no oracle row: "
                          f"{g['v']}")
    for f in unattributed:
        notes.append(f"our {PROTO_NAME[f['protocol']]} flow {f['src_ip']} -> {f['dst_ip']} with "
                     f"ports 0: {f['packets']} fragment(s) whose first fragment is not in the "
                     f"file; no tshark transport row has them")
    return errors, notes, compared, excluded


def oracle_rows(path):
    with open(path) as fh:
        return sum(1 for _ in fh) - 1


def why_empty(oracle_dir, name):
    conv = os.path.join(oracle_dir, name + ".conv.txt")
    err = [l[2:].strip() for l in open(conv) if l.startswith("# ")] if os.path.exists(conv) else []
    return err[-1] if err else "tshark found no conversations"


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[-1])
    binary, pcap_dir = sys.argv[1], sys.argv[2]
    oracle_dir = os.path.join(pcap_dir, "oracle")
    files = sorted(p for ext in ("pcap", "pcapng", "cap")
                   for p in glob.glob(os.path.join(pcap_dir, "*." + ext)))
    if not files:
        print(f"skipped: no capture corpus at {pcap_dir}")
        sys.exit(77)
    if shutil.which("tshark") is None:
        print("skipped: tshark is not installed (./x deps installs it)")
        sys.exit(77)
    failed, total_compared, total_excluded, files_compared = [], 0, 0, 0
    for path in files:
        name = os.path.basename(path)
        oracle = os.path.join(oracle_dir, name + ".csv")
        if not os.path.exists(oracle):
            print(f"{name}: FAIL, no oracle at {oracle}")
            failed.append(name)
            continue
        if oracle_rows(oracle) == 0:
            print(f"{name}: excluded, its oracle has no rows ({why_empty(oracle_dir, name)})")
            continue
        errors, notes, compared, excluded = check_file(binary, path, oracle)
        files_compared += 1
        total_compared += compared
        total_excluded += excluded
        verdict = "FAIL" if errors else "ok"
        print(f"{name}: {verdict}, {compared} conversations compared, {excluded} excluded")
        for n in notes:
            print("   ", n)
        for e in errors:
            print("    MISMATCH", e)
        if errors:
            failed.append(name)
    print(f"{files_compared} files, {total_compared} conversations compared, {total_excluded} "
          f"excluded by design; {len(failed)} files failed{': ' if failed else ''}"
          f"{', '.join(failed)}")
    if files_compared == 0 or total_compared == 0:
        print("FAIL: nothing was compared")
        sys.exit(1)
    print("FAIL" if failed else "PASS")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
