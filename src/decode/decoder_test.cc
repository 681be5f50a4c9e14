#include "decode/decoder.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <pcap/dlt.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <vector>

namespace jarvis {

// Lets GoogleTest print a DecodeResult by name. Internal linkage, yet found by argument-
// dependent lookup, which an unnamed namespace would hide.
static void PrintTo(DecodeResult r, std::ostream* os) {
  switch (r) {
    case DecodeResult::kOk:
      *os << "kOk";
      return;
    case DecodeResult::kPartial:
      *os << "kPartial";
      return;
    case DecodeResult::kNotIp:
      *os << "kNotIp";
      return;
    case DecodeResult::kMalformed:
      *os << "kMalformed";
      return;
  }
  *os << "DecodeResult(" << static_cast<int>(r) << ")";
}

namespace {

constexpr uint16_t kTypeIpv4 = 0x0800;
constexpr uint16_t kTypeArp = 0x0806;
constexpr uint16_t kTypeIpv6 = 0x86DD;
constexpr uint16_t kTypeVlan = 0x8100;
constexpr uint16_t kTypeQinQ = 0x88A8;
constexpr uint16_t kTypeQinQOld = 0x9100;
constexpr uint16_t kTypeMpls = 0x8847;
constexpr uint16_t kTypeMplsMulticast = 0x8848;
constexpr uint16_t kTypePppoeSession = 0x8864;

constexpr uint16_t kPppIpv4 = 0x0021;
constexpr uint16_t kPppIpv6 = 0x0057;
constexpr uint16_t kPppMpls = 0x0281;
constexpr uint16_t kPppLcp = 0xC021;

// LINKTYPE_RAW as pcap files store it (DLT_RAW is 12 or 14 depending on the platform).
constexpr int kLinktypeRaw = 101;

// Header sizes, to spell offsets out in the expectations.
constexpr uint16_t kEth = 14;
constexpr uint16_t kTag = 4;
constexpr uint16_t kLabel = 4;
constexpr uint16_t kIp4 = 20;
constexpr uint16_t kIp6 = 40;
constexpr uint16_t kTcp = 20;
constexpr uint16_t kUdp = 8;
constexpr uint16_t kIcmp = 8;
constexpr uint16_t kSctp = 12;

using Addr4 = std::array<uint8_t, 4>;
using Addr6 = std::array<uint8_t, 16>;
constexpr Addr4 kSrc4 = {192, 0, 2, 1};
constexpr Addr4 kDst4 = {198, 51, 100, 2};
constexpr Addr6 kSrc6 = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01};
constexpr Addr6 kDst6 = {0x20, 0x01, 0x0d, 0xb8, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02};
constexpr const char* kSrc4Text = "192.0.2.1";
constexpr const char* kDst4Text = "198.51.100.2";
constexpr const char* kSrc6Text = "2001:db8::1";
constexpr const char* kDst6Text = "2001:db8:ff00::2";

// Fields of an IPv4 header the tests vary; the defaults make a plain, valid header.
struct Ipv4Fields {
  uint8_t protocol = kProtoTcp;
  std::vector<uint8_t> options = {};  // a multiple of 4 octets
  uint16_t id = 0x1234;
  uint16_t frag = 0;                                 // flags and fragment offset as on the wire
  std::optional<uint16_t> total_len = std::nullopt;  // default: to the end of the frame
  std::optional<uint8_t> ihl = std::nullopt;         // default: 5 + options in words
  uint8_t version = 4;
};

// Builds a frame front to back. Length fields (IPv4 total length, IPv6 payload length, UDP
// length) that the caller leaves open are filled in by Build() to reach the end of the frame.
class Frame {
 public:
  Frame& U8(uint8_t v) {
    bytes_.push_back(v);
    return *this;
  }
  Frame& U16(uint16_t v) { return U8(static_cast<uint8_t>(v >> 8)).U8(static_cast<uint8_t>(v)); }
  Frame& U32(uint32_t v) {
    return U16(static_cast<uint16_t>(v >> 16)).U16(static_cast<uint16_t>(v));
  }
  Frame& Bytes(std::initializer_list<uint8_t> v) {
    bytes_.insert(bytes_.end(), v);
    return *this;
  }
  template <size_t N>
  Frame& Bytes(const std::array<uint8_t, N>& v) {
    bytes_.insert(bytes_.end(), v.begin(), v.end());
    return *this;
  }
  Frame& Zeros(size_t n) {
    bytes_.insert(bytes_.end(), n, 0);
    return *this;
  }
  // Payload bytes that look like no header at all.
  Frame& Payload(size_t n) {
    for (size_t i = 0; i < n; ++i) U8(static_cast<uint8_t>(0xA0 + i));
    return *this;
  }

  // Link layers.
  Frame& Ethernet(uint16_t type) {
    return Bytes({0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01}).U16(type);
  }
  // An 802.1Q tag whose TCI has PCP 7 and DEI set, so that only the low 12 bits are the VID.
  Frame& Vlan(uint16_t vid, uint16_t next_type) {
    return U16(static_cast<uint16_t>(0xF000 | vid)).U16(next_type);
  }
  Frame& Mpls(uint32_t label, bool bottom) {
    return U32(label << 12 | 5u << 9 | (bottom ? 1u : 0u) << 8 | 64u);
  }
  Frame& PwControlWord() { return U32(0x00000001); }
  Frame& PppoeSession(uint16_t ppp_proto) {
    return U8(0x11).U8(0x00).U16(0x4242).U16(0x0000).U16(ppp_proto);
  }
  Frame& Sll(uint16_t protocol) {
    return U16(0).U16(1).U16(6).Bytes({0x02, 0, 0, 0, 0, 0x01, 0, 0}).U16(protocol);
  }
  Frame& Sll2(uint16_t protocol) {
    return U16(protocol).U16(0).U32(3).U16(1).U8(0).U8(6).Bytes({0x02, 0, 0, 0, 0, 0x01, 0, 0});
  }
  // DLT_NULL: the address family in the byte order of the host that captured.
  Frame& NullHostOrder(uint32_t family) {
    uint8_t b[4];
    std::memcpy(b, &family, 4);
    return Bytes({b[0], b[1], b[2], b[3]});
  }
  Frame& Loop(uint32_t family) { return U32(family); }
  Frame& Ppp(uint16_t proto, bool address_control) {
    if (address_control) U8(0xFF).U8(0x03);
    return U16(proto);
  }
  Frame& CiscoHdlc(uint16_t type) { return U8(0x0F).U8(0x00).U16(type); }

  // IP layers.
  Frame& Ipv4(const Ipv4Fields& f = {}) {
    const size_t start = bytes_.size();
    const uint8_t ihl = f.ihl.value_or(static_cast<uint8_t>(5 + f.options.size() / 4));
    U8(static_cast<uint8_t>(f.version << 4 | ihl)).U8(0);
    if (f.total_len) {
      U16(*f.total_len);
    } else {
      Fixup(start, 0);
    }
    U16(f.id).U16(f.frag).U8(64).U8(f.protocol).U16(0).Bytes(kSrc4).Bytes(kDst4);
    bytes_.insert(bytes_.end(), f.options.begin(), f.options.end());
    return *this;
  }
  Frame& Ipv6(uint8_t next, std::optional<uint16_t> payload_len = std::nullopt,
              uint8_t version = 6) {
    const size_t start = bytes_.size();
    U32(static_cast<uint32_t>(version) << 28 | 0x0ABCDE);
    if (payload_len) {
      U16(*payload_len);
    } else {
      Fixup(start, kIp6);
    }
    return U8(next).U8(64).Bytes(kSrc6).Bytes(kDst6);
  }
  // Hop-by-hop, routing or destination options: (hdr_ext_len + 1) * 8 octets, padded with a
  // PadN option.
  Frame& Ipv6Ext(uint8_t next, uint8_t hdr_ext_len) {
    const size_t len = (hdr_ext_len + 1u) * 8;
    U8(next).U8(hdr_ext_len).U8(1).U8(static_cast<uint8_t>(len - 4));
    return Zeros(len - 4);
  }
  Frame& Ipv6Fragment(uint8_t next, uint16_t offset_units, bool more, uint32_t id) {
    return U8(next).U8(0).U16(static_cast<uint16_t>(offset_units << 3 | (more ? 1 : 0))).U32(id);
  }
  // Authentication header with an ICV of `icv_len` octets (a multiple of 4).
  Frame& Ipv6Ah(uint8_t next, uint8_t icv_len) {
    U8(next).U8(static_cast<uint8_t>((12 + icv_len) / 4 - 2)).U16(0).U32(0x1000).U32(7);
    return Payload(icv_len);
  }

  // Transport layers.
  Frame& Tcp(uint16_t sport, uint16_t dport, uint8_t flags, std::vector<uint8_t> options = {},
             std::optional<uint8_t> data_offset = std::nullopt) {
    const uint8_t doff = data_offset.value_or(static_cast<uint8_t>(5 + options.size() / 4));
    U16(sport).U16(dport).U32(0x01020304).U32(0x05060708);
    U8(static_cast<uint8_t>(doff << 4)).U8(flags).U16(65535).U16(0).U16(0);
    bytes_.insert(bytes_.end(), options.begin(), options.end());
    return *this;
  }
  Frame& Udp(uint16_t sport, uint16_t dport) {
    const size_t start = bytes_.size();
    U16(sport).U16(dport);
    Fixup(start, 0);
    return U16(0);
  }
  Frame& Icmp(uint8_t type, uint8_t code) { return U8(type).U8(code).U16(0).U16(0x77).U16(1); }
  Frame& Sctp(uint16_t sport, uint16_t dport) {
    return U16(sport).U16(dport).U32(0xCAFEF00D).U32(0);
  }

  size_t size() const { return bytes_.size(); }

  std::vector<uint8_t> Build() const {
    std::vector<uint8_t> out = bytes_;
    for (const LengthFixup& f : fixups_) {
      const size_t v = out.size() - f.start - f.minus;
      out[f.pos] = static_cast<uint8_t>(v >> 8);
      out[f.pos + 1] = static_cast<uint8_t>(v);
    }
    return out;
  }

 private:
  struct LengthFixup {
    size_t pos;    // where the 16-bit length goes
    size_t start;  // where what it counts starts
    size_t minus;  // octets after `start` it does not count
  };
  void Fixup(size_t start, size_t minus) {
    fixups_.push_back({bytes_.size(), start, minus});
    U16(0);
  }

  std::vector<uint8_t> bytes_;
  std::vector<LengthFixup> fixups_;
};

// TCP options: NOP, NOP, timestamps (12 octets).
const std::vector<uint8_t> kTcpTimestamps = {1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2};

struct Decoded {
  DecodeResult result;
  PacketMeta meta;
  DecodeCounters counters;
};

// Decodes the first `caplen` octets of `frame` from a heap buffer of exactly that size, so
// that AddressSanitizer reports any read past the capture. `meta` is poisoned first, so that
// fields Decode leaves unwritten show up.
Decoded DecodePrefix(int link_type, const std::vector<uint8_t>& frame, size_t caplen,
                     uint32_t wirelen) {
  std::unique_ptr<uint8_t[]> buf(new uint8_t[caplen]);
  if (caplen > 0) std::memcpy(buf.get(), frame.data(), caplen);
  PacketView view;
  view.data = buf.get();
  view.caplen = static_cast<uint32_t>(caplen);
  view.wirelen = wirelen;
  Decoded d;
  std::memset(&d.meta, 0xA5, sizeof(d.meta));
  d.result = Decode(link_type, view, d.meta, d.counters);
  return d;
}

// Decodes a whole frame; `wirelen` 0 means the frame is all there was on the wire.
Decoded DecodeFrame(int link_type, const std::vector<uint8_t>& frame, uint32_t wirelen = 0) {
  return DecodePrefix(link_type, frame, frame.size(),
                      wirelen != 0 ? wirelen : static_cast<uint32_t>(frame.size()));
}

using Counts = std::map<std::string, uint64_t>;

Counts NonZero(const DecodeCounters& c) {
  Counts out;
  c.ForEach([&](std::string_view name, std::string_view, uint64_t v) {
    if (v != 0) out.emplace(std::string(name), v);
  });
  return out;
}

std::string AddrText(uint8_t ip_version, const uint8_t* a) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ip_version == 4) {
    for (int i = 4; i < 16; ++i) {
      if (a[i] != 0) return "IPv4 address with a non-zero tail";
    }
    return inet_ntop(AF_INET, a, buf, sizeof(buf));
  }
  if (ip_version == 6) return inet_ntop(AF_INET6, a, buf, sizeof(buf));
  for (int i = 0; i < 16; ++i) {
    if (a[i] != 0) return "address bytes without an IP version";
  }
  return "";
}

std::string FlagNames(uint16_t flags) {
  static constexpr std::pair<uint16_t, const char*> kNames[] = {
      {kMetaL3, "L3"},
      {kMetaPorts, "Ports"},
      {kMetaTcpFlags, "TcpFlags"},
      {kMetaFragment, "Fragment"},
      {kMetaTruncated, "Truncated"},
  };
  std::string out;
  for (const auto& [bit, name] : kNames) {
    if ((flags & bit) == 0) continue;
    if (!out.empty()) out += '|';
    out += name;
    flags &= static_cast<uint16_t>(~bit);
  }
  if (flags != 0) out += "|unknown bits " + std::to_string(flags);
  return out.empty() ? "none" : out;
}

// Every field of PacketMeta, as a test expects it.
struct MetaWant {
  uint8_t ip_version = 0;
  std::string src = "";
  std::string dst = "";
  uint8_t protocol = 0;
  uint16_t src_port = 0;
  uint16_t dst_port = 0;
  uint8_t tcp_flags = 0;
  uint16_t vlan = 0;
  uint16_t inner_vlan = 0;
  uint8_t mpls_labels = 0;
  uint16_t flags = 0;
  uint16_t l3_offset = 0;
  uint16_t l4_offset = 0;
  uint16_t payload_offset = 0;
  uint32_t l3_len = 0;
  uint32_t frag_id = 0;
  uint16_t frag_offset = 0;
  bool more_fragments = false;
};

void ExpectMeta(const PacketMeta& m, const MetaWant& w) {
  EXPECT_EQ(m.ip_version, w.ip_version);
  EXPECT_EQ(AddrText(m.ip_version, m.src_addr), w.src);
  EXPECT_EQ(AddrText(m.ip_version, m.dst_addr), w.dst);
  EXPECT_EQ(m.protocol, w.protocol);
  EXPECT_EQ(m.src_port, w.src_port);
  EXPECT_EQ(m.dst_port, w.dst_port);
  EXPECT_EQ(m.tcp_flags, w.tcp_flags);
  EXPECT_EQ(m.vlan, w.vlan);
  EXPECT_EQ(m.inner_vlan, w.inner_vlan);
  EXPECT_EQ(m.mpls_labels, w.mpls_labels);
  EXPECT_EQ(FlagNames(m.flags), FlagNames(w.flags));
  EXPECT_EQ(m.l3_offset, w.l3_offset);
  EXPECT_EQ(m.l4_offset, w.l4_offset);
  EXPECT_EQ(m.payload_offset, w.payload_offset);
  EXPECT_EQ(m.l3_len, w.l3_len);
  EXPECT_EQ(m.frag_id, w.frag_id);
  EXPECT_EQ(m.frag_offset, w.frag_offset);
  EXPECT_EQ(m.more_fragments, w.more_fragments);
}

// A meta with nothing in it, as every non-IP result leaves it.
void ExpectEmptyMeta(const PacketMeta& m) {
  PacketMeta zero;
  std::memset(&zero, 0, sizeof(zero));
  EXPECT_EQ(std::memcmp(&m, &zero, sizeof(zero)), 0) << "flags " << FlagNames(m.flags);
}

// What must hold for any input, whatever the decoder made of it.
void ExpectConsistent(const Decoded& d, size_t caplen) {
  const PacketMeta& m = d.meta;
  const bool ip_found = d.result == DecodeResult::kOk || d.result == DecodeResult::kPartial;
  EXPECT_EQ(m.has(kMetaL3), ip_found);
  EXPECT_EQ(m.has(kMetaTruncated), d.result == DecodeResult::kPartial);
  EXPECT_EQ(m.flags & ~0x1Fu, 0u);
  if (m.has(kMetaL3)) {
    ASSERT_TRUE(m.ip_version == 4 || m.ip_version == 6);
    EXPECT_LE(m.l3_offset + (m.ip_version == 4 ? kIp4 : kIp6), caplen) << "L3 without its header";
  } else {
    EXPECT_EQ(m.ip_version, 0);
    EXPECT_EQ(m.protocol, 0);
    EXPECT_EQ(m.l3_len, 0u);
    EXPECT_EQ(m.l3_offset, 0);
    EXPECT_EQ(m.l4_offset, 0);
    EXPECT_EQ(m.payload_offset, 0);
    EXPECT_EQ(AddrText(0, m.src_addr), "");
    EXPECT_EQ(AddrText(0, m.dst_addr), "");
  }
  if (m.has(kMetaPorts)) {
    EXPECT_NE(m.l4_offset, 0);
    EXPECT_LE(m.l4_offset + 4u, caplen) << "ports without their 4 octets";
  } else {
    EXPECT_EQ(m.src_port, 0);
    EXPECT_EQ(m.dst_port, 0);
  }
  if (m.has(kMetaTcpFlags)) {
    EXPECT_EQ(m.protocol, kProtoTcp);
    EXPECT_LE(m.l4_offset + 14u, caplen) << "TCP flags without 14 TCP octets";
  } else {
    EXPECT_EQ(m.tcp_flags, 0);
  }
  if (m.l4_offset != 0) {
    EXPECT_GE(m.l4_offset, m.l3_offset + (m.ip_version == 4 ? kIp4 : kIp6));
    EXPECT_LE(m.l4_offset, caplen);
  }
  if (m.payload_offset != 0) {
    EXPECT_GT(m.payload_offset, m.l4_offset);
    EXPECT_LE(m.payload_offset, caplen);
  }
  if (!m.has(kMetaFragment)) {
    EXPECT_EQ(m.frag_id, 0u);
    EXPECT_EQ(m.frag_offset, 0);
    EXPECT_FALSE(m.more_fragments);
  }
}

// Truncation sweeps -----------------------------------------------------------------------

// How a frame came to be short.
enum class Cut {
  kSnaplen,    // the capture kept a prefix; wirelen is the whole frame
  kShortWire,  // the frame itself was short on the wire; wirelen == caplen
};

// What a sweep expects for one caplen, before Cut::kShortWire adds its own effects.
struct Want {
  DecodeResult result = DecodeResult::kNotIp;
  Counts counters = {};
  uint16_t flags = 0;
  uint16_t l4_offset = 0;
  uint16_t payload_offset = 0;
};

struct Sweep {
  int link_type;
  std::vector<uint8_t> frame;
  uint8_t ip_version;
  uint16_t l3_offset;
  std::function<Want(uint32_t caplen)> want;
  // Checks the values of whatever fields the meta says it has, for this caplen.
  std::function<void(const PacketMeta& m, uint32_t caplen)> fields;
};

// Decodes every prefix of the frame, from 0 octets to all of them, each from a heap buffer of
// exactly its size, and checks the result, the counters and the fields.
void RunSweep(const Sweep& s, Cut cut) {
  const uint32_t full = static_cast<uint32_t>(s.frame.size());
  for (uint32_t caplen = 0; caplen <= full; ++caplen) {
    SCOPED_TRACE(testing::Message() << "caplen " << caplen << " of " << full
                                    << (cut == Cut::kSnaplen ? " (snaplen)" : " (short wire)"));
    const uint32_t wirelen = cut == Cut::kSnaplen ? full : caplen;
    const Decoded d = DecodePrefix(s.link_type, s.frame, caplen, wirelen);
    Want w = s.want(caplen);
    uint32_t l3_len = full - s.l3_offset;
    if (cut == Cut::kShortWire && (w.flags & kMetaL3) != 0 && caplen < full) {
      // The IP header claims more than the wire carried.
      ++w.counters[s.ip_version == 4 ? "bad_ipv4_header" : "bad_ipv6_header"];
      w.flags |= kMetaTruncated;
      if (w.result == DecodeResult::kOk) w.result = DecodeResult::kPartial;
      l3_len = caplen - s.l3_offset;
    }
    ExpectConsistent(d, caplen);
    EXPECT_EQ(d.result, w.result);
    EXPECT_EQ(NonZero(d.counters), w.counters);
    EXPECT_EQ(FlagNames(d.meta.flags), FlagNames(w.flags));
    EXPECT_EQ(d.meta.l4_offset, w.l4_offset);
    EXPECT_EQ(d.meta.payload_offset, w.payload_offset);
    if (d.meta.has(kMetaL3)) {
      EXPECT_EQ(d.meta.ip_version, s.ip_version);
      EXPECT_EQ(d.meta.l3_offset, s.l3_offset);
      EXPECT_EQ(d.meta.l3_len, l3_len);
    }
    s.fields(d.meta, caplen);
    if (testing::Test::HasFailure()) return;  // one caplen's worth of failures is enough
  }
}

void ExpectIpv4Addrs(const PacketMeta& m) {
  if (!m.has(kMetaL3)) return;
  EXPECT_EQ(AddrText(4, m.src_addr), kSrc4Text);
  EXPECT_EQ(AddrText(4, m.dst_addr), kDst4Text);
}

void ExpectIpv6Addrs(const PacketMeta& m) {
  if (!m.has(kMetaL3)) return;
  EXPECT_EQ(AddrText(6, m.src_addr), kSrc6Text);
  EXPECT_EQ(AddrText(6, m.dst_addr), kDst6Text);
}

constexpr uint16_t kL3 = kMetaL3;
constexpr uint16_t kL3Trunc = kMetaL3 | kMetaTruncated;
constexpr uint16_t kL3Ports = kMetaL3 | kMetaPorts;
constexpr uint16_t kL3PortsTrunc = kMetaL3 | kMetaPorts | kMetaTruncated;

Counts One(const char* name) { return {{name, 1}}; }

TEST(DecodeTruncationTest, EthernetIpv4TcpEveryCaplen) {
  // Ethernet 0..14, IPv4 14..34, TCP with 12 octets of options 34..66, payload 66..70.
  Sweep s{
      .link_type = DLT_EN10MB,
      .frame = Frame()
                   .Ethernet(kTypeIpv4)
                   .Ipv4()
                   .Tcp(40000, 443, kTcpPsh | kTcpAck, kTcpTimestamps)
                   .Payload(4)
                   .Build(),
      .ip_version = 4,
      .l3_offset = kEth,
      .want = [](uint32_t c) -> Want {
        if (c < 14) return {DecodeResult::kNotIp, One("truncated_l2")};
        if (c < 34) return {DecodeResult::kNotIp, One("truncated_ipv4")};
        if (c < 38) return {DecodeResult::kPartial, One("truncated_tcp"), kL3Trunc, 34};
        if (c < 48) return {DecodeResult::kPartial, One("truncated_tcp"), kL3PortsTrunc, 34};
        if (c < 54) {
          return {DecodeResult::kPartial, One("truncated_tcp"), kL3PortsTrunc | kMetaTcpFlags, 34};
        }
        // Options cut by the snaplen are no error; the payload offset is unknown then.
        if (c < 66) return {DecodeResult::kOk, {}, kL3Ports | kMetaTcpFlags, 34, 0};
        return {DecodeResult::kOk, {}, kL3Ports | kMetaTcpFlags, 34, 66};
      },
      .fields =
          [](const PacketMeta& m, uint32_t) {
            ExpectIpv4Addrs(m);
            if (m.has(kMetaL3)) {
              EXPECT_EQ(m.protocol, kProtoTcp);
            }
            if (m.has(kMetaPorts)) {
              EXPECT_EQ(m.src_port, 40000);
              EXPECT_EQ(m.dst_port, 443);
            }
            if (m.has(kMetaTcpFlags)) {
              EXPECT_EQ(m.tcp_flags, kTcpPsh | kTcpAck);
            }
            EXPECT_EQ(m.vlan, 0);
            EXPECT_EQ(m.mpls_labels, 0);
          },
  };
  ASSERT_EQ(s.frame.size(), 70u);
  RunSweep(s, Cut::kSnaplen);
  RunSweep(s, Cut::kShortWire);
}

TEST(DecodeTruncationTest, QinQIpv6ExtensionHeadersUdpEveryCaplen) {
  // Ethernet 0..14, S-tag 14..18, C-tag 18..22, IPv6 22..62, hop-by-hop 62..70,
  // routing 70..94, destination options 94..110, UDP 110..118, payload 118..122.
  Sweep s{
      .link_type = DLT_EN10MB,
      .frame = Frame()
                   .Ethernet(kTypeQinQ)
                   .Vlan(100, kTypeVlan)
                   .Vlan(200, kTypeIpv6)
                   .Ipv6(kProtoHopOpts)
                   .Ipv6Ext(kProtoIpv6Route, 0)
                   .Ipv6Ext(kProtoIpv6DstOpts, 2)
                   .Ipv6Ext(kProtoUdp, 1)
                   .Udp(5353, 53)
                   .Payload(4)
                   .Build(),
      .ip_version = 6,
      .l3_offset = 22,
      .want = [](uint32_t c) -> Want {
        if (c < 14) return {DecodeResult::kNotIp, One("truncated_l2")};
        if (c < 22) return {DecodeResult::kNotIp, One("truncated_vlan")};
        if (c < 62) return {DecodeResult::kNotIp, One("truncated_ipv6")};
        if (c < 110) return {DecodeResult::kPartial, One("truncated_ipv6_ext"), kL3Trunc};
        if (c < 114) return {DecodeResult::kPartial, One("truncated_udp"), kL3Trunc, 110};
        if (c < 118) return {DecodeResult::kPartial, One("truncated_udp"), kL3PortsTrunc, 110};
        return {DecodeResult::kOk, {}, kL3Ports, 110, 118};
      },
      .fields =
          [](const PacketMeta& m, uint32_t c) {
            EXPECT_EQ(m.vlan, c >= 18 ? 100 : 0);
            EXPECT_EQ(m.inner_vlan, c >= 22 ? 200 : 0);
            ExpectIpv6Addrs(m);
            if (m.has(kMetaL3)) {
              // Where the chain is cut, protocol is the last next-header value read.
              uint8_t protocol = kProtoUdp;
              if (c < 70) {
                protocol = kProtoHopOpts;
              } else if (c < 78) {
                protocol = kProtoIpv6Route;
              } else if (c < 102) {
                protocol = kProtoIpv6DstOpts;
              }
              EXPECT_EQ(m.protocol, protocol);
            }
            if (m.has(kMetaPorts)) {
              EXPECT_EQ(m.src_port, 5353);
              EXPECT_EQ(m.dst_port, 53);
            }
          },
  };
  ASSERT_EQ(s.frame.size(), 122u);
  RunSweep(s, Cut::kSnaplen);
  RunSweep(s, Cut::kShortWire);
}

TEST(DecodeTruncationTest, MplsPseudowireEveryCaplen) {
  // Ethernet 0..14, two labels 14..22, control word 22..26, inner Ethernet 26..40,
  // IPv4 40..60, UDP 60..68, payload 68..72.
  Sweep s{
      .link_type = DLT_EN10MB,
      .frame = Frame()
                   .Ethernet(kTypeMpls)
                   .Mpls(1000, false)
                   .Mpls(2000, true)
                   .PwControlWord()
                   .Ethernet(kTypeIpv4)
                   .Ipv4({.protocol = kProtoUdp})
                   .Udp(4789, 4790)
                   .Payload(4)
                   .Build(),
      .ip_version = 4,
      .l3_offset = 40,
      .want = [](uint32_t c) -> Want {
        if (c < 14) return {DecodeResult::kNotIp, One("truncated_l2")};
        if (c < 23) return {DecodeResult::kNotIp, One("truncated_mpls")};
        if (c < 40) return {DecodeResult::kNotIp, One("truncated_l2")};  // inner Ethernet
        if (c < 60) return {DecodeResult::kNotIp, One("truncated_ipv4")};
        if (c < 64) return {DecodeResult::kPartial, One("truncated_udp"), kL3Trunc, 60};
        if (c < 68) return {DecodeResult::kPartial, One("truncated_udp"), kL3PortsTrunc, 60};
        return {DecodeResult::kOk, {}, kL3Ports, 60, 68};
      },
      .fields =
          [](const PacketMeta& m, uint32_t c) {
            EXPECT_EQ(m.mpls_labels, c < 18 ? 0 : c < 22 ? 1 : 2);
            ExpectIpv4Addrs(m);
            if (m.has(kMetaL3)) {
              EXPECT_EQ(m.protocol, kProtoUdp);
            }
            if (m.has(kMetaPorts)) {
              EXPECT_EQ(m.src_port, 4789);
              EXPECT_EQ(m.dst_port, 4790);
            }
          },
  };
  ASSERT_EQ(s.frame.size(), 72u);
  RunSweep(s, Cut::kSnaplen);
  RunSweep(s, Cut::kShortWire);
}

TEST(DecodeTruncationTest, MplsIpv6TcpEveryCaplen) {
  // Ethernet 0..14, three labels 14..26, IPv6 26..66, TCP 66..86.
  Sweep s{
      .link_type = DLT_EN10MB,
      .frame = Frame()
                   .Ethernet(kTypeMpls)
                   .Mpls(16, false)
                   .Mpls(17, false)
                   .Mpls(18, true)
                   .Ipv6(kProtoTcp)
                   .Tcp(179, 50000, kTcpAck)
                   .Build(),
      .ip_version = 6,
      .l3_offset = 26,
      .want = [](uint32_t c) -> Want {
        if (c < 14) return {DecodeResult::kNotIp, One("truncated_l2")};
        if (c < 27) return {DecodeResult::kNotIp, One("truncated_mpls")};
        if (c < 66) return {DecodeResult::kNotIp, One("truncated_ipv6")};
        if (c < 70) return {DecodeResult::kPartial, One("truncated_tcp"), kL3Trunc, 66};
        if (c < 80) return {DecodeResult::kPartial, One("truncated_tcp"), kL3PortsTrunc, 66};
        if (c < 86) {
          return {DecodeResult::kPartial, One("truncated_tcp"), kL3PortsTrunc | kMetaTcpFlags, 66};
        }
        return {DecodeResult::kOk, {}, kL3Ports | kMetaTcpFlags, 66, 86};
      },
      .fields =
          [](const PacketMeta& m, uint32_t c) {
            EXPECT_EQ(m.mpls_labels, c < 18 ? 0 : c < 22 ? 1 : c < 26 ? 2 : 3);
            ExpectIpv6Addrs(m);
            if (m.has(kMetaL3)) {
              EXPECT_EQ(m.protocol, kProtoTcp);
            }
            if (m.has(kMetaPorts)) {
              EXPECT_EQ(m.src_port, 179);
              EXPECT_EQ(m.dst_port, 50000);
            }
            if (m.has(kMetaTcpFlags)) {
              EXPECT_EQ(m.tcp_flags, kTcpAck);
            }
          },
  };
  RunSweep(s, Cut::kSnaplen);
  RunSweep(s, Cut::kShortWire);
}

TEST(DecodeTruncationTest, Sll2Ipv4WithOptionsIcmpEveryCaplen) {
  // SLL2 0..20, IPv4 with a router alert option 20..44, ICMP echo 44..52, payload 52..56.
  Sweep s{
      .link_type = DLT_LINUX_SLL2,
      .frame = Frame()
                   .Sll2(kTypeIpv4)
                   .Ipv4({.protocol = kProtoIcmp, .options = {0x94, 0x04, 0x00, 0x00}})
                   .Icmp(8, 0)
                   .Payload(4)
                   .Build(),
      .ip_version = 4,
      .l3_offset = 20,
      .want = [](uint32_t c) -> Want {
        if (c < 20) return {DecodeResult::kNotIp, One("truncated_l2")};
        if (c < 40) return {DecodeResult::kNotIp, One("truncated_ipv4")};
        // The fixed header is there, its options are not.
        if (c < 44) return {DecodeResult::kPartial, One("truncated_ipv4"), kL3Trunc};
        if (c < 48) return {DecodeResult::kPartial, One("truncated_icmp"), kL3Trunc, 44};
        // The payload starts after type, code and checksum: the rest is type-specific.
        return {DecodeResult::kOk, {}, kL3Ports, 44, 48};
      },
      .fields =
          [](const PacketMeta& m, uint32_t) {
            ExpectIpv4Addrs(m);
            if (m.has(kMetaL3)) {
              EXPECT_EQ(m.protocol, kProtoIcmp);
            }
            if (m.has(kMetaPorts)) {
              EXPECT_EQ(m.src_port, 0);
              EXPECT_EQ(m.dst_port, 8 << 8 | 0);
            }
          },
  };
  ASSERT_EQ(s.frame.size(), 56u);
  RunSweep(s, Cut::kSnaplen);
  RunSweep(s, Cut::kShortWire);
}

TEST(DecodeTruncationTest, EthernetIpv4SctpEveryCaplen) {
  // Ethernet 0..14, IPv4 14..34, SCTP common header 34..46, a chunk 46..62.
  Sweep s{
      .link_type = DLT_EN10MB,
      .frame = Frame()
                   .Ethernet(kTypeIpv4)
                   .Ipv4({.protocol = kProtoSctp})
                   .Sctp(36412, 2905)
                   .Payload(16)
                   .Build(),
      .ip_version = 4,
      .l3_offset = kEth,
      .want = [](uint32_t c) -> Want {
        if (c < 14) return {DecodeResult::kNotIp, One("truncated_l2")};
        if (c < 34) return {DecodeResult::kNotIp, One("truncated_ipv4")};
        if (c < 38) return {DecodeResult::kPartial, One("truncated_sctp"), kL3Trunc, 34};
        if (c < 46) return {DecodeResult::kPartial, One("truncated_sctp"), kL3PortsTrunc, 34};
        return {DecodeResult::kOk, {}, kL3Ports, 34, 46};
      },
      .fields =
          [](const PacketMeta& m, uint32_t) {
            ExpectIpv4Addrs(m);
            if (m.has(kMetaL3)) {
              EXPECT_EQ(m.protocol, kProtoSctp);
            }
            if (m.has(kMetaPorts)) {
              EXPECT_EQ(m.src_port, 36412);
              EXPECT_EQ(m.dst_port, 2905);
            }
          },
  };
  RunSweep(s, Cut::kSnaplen);
  RunSweep(s, Cut::kShortWire);
}

TEST(DecodeTruncationTest, Ipv6FirstFragmentEveryCaplen) {
  // Raw IPv6 0..40, fragment header 40..48, UDP 48..56, payload 56..64.
  Sweep s{
      .link_type = DLT_IPV6,
      .frame = Frame()
                   .Ipv6(kProtoIpv6Frag)
                   .Ipv6Fragment(kProtoUdp, 0, true, 0xDEADBEEF)
                   .Udp(1000, 2000)
                   .Payload(8)
                   .Build(),
      .ip_version = 6,
      .l3_offset = 0,
      .want = [](uint32_t c) -> Want {
        if (c < 40) return {DecodeResult::kNotIp, One("truncated_ipv6")};
        if (c < 48) return {DecodeResult::kPartial, One("truncated_ipv6_ext"), kL3Trunc};
        const uint16_t frag = kMetaFragment;
        if (c < 52) {
          return {DecodeResult::kPartial,
                  {{"ip_fragments", 1}, {"truncated_udp", 1}},
                  static_cast<uint16_t>(kL3Trunc | frag),
                  48};
        }
        if (c < 56) {
          return {DecodeResult::kPartial,
                  {{"ip_fragments", 1}, {"truncated_udp", 1}},
                  static_cast<uint16_t>(kL3PortsTrunc | frag),
                  48};
        }
        return {DecodeResult::kOk, One("ip_fragments"), static_cast<uint16_t>(kL3Ports | frag), 48,
                56};
      },
      .fields =
          [](const PacketMeta& m, uint32_t) {
            ExpectIpv6Addrs(m);
            if (m.has(kMetaFragment)) {
              EXPECT_EQ(m.frag_id, 0xDEADBEEFu);
              EXPECT_EQ(m.frag_offset, 0);
              EXPECT_TRUE(m.more_fragments);
              EXPECT_EQ(m.protocol, kProtoUdp);
            }
            if (m.has(kMetaPorts)) {
              EXPECT_EQ(m.src_port, 1000);
              EXPECT_EQ(m.dst_port, 2000);
            }
          },
  };
  RunSweep(s, Cut::kSnaplen);
  RunSweep(s, Cut::kShortWire);
}

// One frame per link type and encapsulation the decoder knows.
struct NamedFrame {
  const char* name;
  int link_type;
  std::vector<uint8_t> bytes;
};

std::vector<NamedFrame> EveryEncapsulation() {
  const Ipv4Fields udp4{.protocol = kProtoUdp};
  return {
      {"eth/ipv4/tcp", DLT_EN10MB,
       Frame().Ethernet(kTypeIpv4).Ipv4().Tcp(1, 2, kTcpSyn, kTcpTimestamps).Payload(3).Build()},
      {"eth/vlan/ipv6/icmpv6", DLT_EN10MB,
       Frame().Ethernet(kTypeVlan).Vlan(7, kTypeIpv6).Ipv6(kProtoIcmpv6).Icmp(128, 0).Build()},
      {"eth/qinq-old/vlan/ipv4/udp", DLT_EN10MB,
       Frame()
           .Ethernet(kTypeQinQOld)
           .Vlan(1, kTypeVlan)
           .Vlan(2, kTypeIpv4)
           .Ipv4(udp4)
           .Udp(1, 2)
           .Build()},
      {"eth/mpls-mcast/ipv4/udp", DLT_EN10MB,
       Frame().Ethernet(kTypeMplsMulticast).Mpls(5, true).Ipv4(udp4).Udp(1, 2).Build()},
      {"eth/pppoe/ipv6/ah/tcp", DLT_EN10MB,
       Frame()
           .Ethernet(kTypePppoeSession)
           .PppoeSession(kPppIpv6)
           .Ipv6(kProtoAh)
           .Ipv6Ah(kProtoTcp, 12)
           .Tcp(1, 2, kTcpRst)
           .Build()},
      {"eth/ipv4/frag-first/udp", DLT_EN10MB,
       Frame()
           .Ethernet(kTypeIpv4)
           .Ipv4({.protocol = kProtoUdp, .frag = 0x2000})
           .Udp(1, 2)
           .Payload(8)
           .Build()},
      {"sll/ipv4/sctp", DLT_LINUX_SLL,
       Frame().Sll(kTypeIpv4).Ipv4({.protocol = kProtoSctp}).Sctp(1, 2).Build()},
      {"sll2/vlan/ipv6/udp", DLT_LINUX_SLL2,
       Frame().Sll2(kTypeVlan).Vlan(9, kTypeIpv6).Ipv6(kProtoUdp).Udp(1, 2).Build()},
      {"raw/ipv4/icmp", DLT_RAW, Frame().Ipv4({.protocol = kProtoIcmp}).Icmp(0, 0).Build()},
      {"linktype-raw/ipv6/tcp", kLinktypeRaw, Frame().Ipv6(kProtoTcp).Tcp(1, 2, kTcpFin).Build()},
      {"ipv4/udp", DLT_IPV4, Frame().Ipv4(udp4).Udp(1, 2).Build()},
      {"ipv6/frag-later", DLT_IPV6,
       Frame().Ipv6(kProtoIpv6Frag).Ipv6Fragment(kProtoUdp, 3, false, 1).Payload(8).Build()},
      {"null/ipv4/tcp", DLT_NULL, Frame().NullHostOrder(2).Ipv4().Tcp(1, 2, kTcpAck).Build()},
      {"loop/ipv6/udp", DLT_LOOP, Frame().Loop(24).Ipv6(kProtoUdp).Udp(1, 2).Build()},
      {"ppp/ipv4/udp", DLT_PPP, Frame().Ppp(kPppIpv4, true).Ipv4(udp4).Udp(1, 2).Build()},
      {"ppp/mpls/ipv4/udp", DLT_PPP,
       Frame().Ppp(kPppMpls, false).Mpls(3, true).Ipv4(udp4).Udp(1, 2).Build()},
      {"ppp-compressed/ipv4/udp", DLT_PPP_SERIAL, Frame().U8(0x21).Ipv4(udp4).Udp(1, 2).Build()},
      {"c-hdlc/ipv6/tcp", DLT_C_HDLC,
       Frame().CiscoHdlc(kTypeIpv6).Ipv6(kProtoTcp).Tcp(1, 2, kTcpSyn).Build()},
  };
}

TEST(DecodeTruncationTest, EveryEncapsulationEveryCaplenCountsOneReason) {
  for (const NamedFrame& f : EveryEncapsulation()) {
    const uint32_t full = static_cast<uint32_t>(f.bytes.size());
    const Decoded whole = DecodeFrame(f.link_type, f.bytes);
    EXPECT_EQ(whole.result, DecodeResult::kOk) << f.name;
    for (uint32_t caplen = 0; caplen <= full; ++caplen) {
      SCOPED_TRACE(testing::Message() << f.name << " caplen " << caplen << " of " << full);
      const Decoded d = DecodePrefix(f.link_type, f.bytes, caplen, full);
      ExpectConsistent(d, caplen);
      Counts reasons = NonZero(d.counters);
      reasons.erase("ip_fragments");
      if (d.result == DecodeResult::kOk) {
        EXPECT_TRUE(reasons.empty());
      } else {
        EXPECT_EQ(reasons.size(), 1u);
        EXPECT_EQ(reasons.begin()->second, 1u);
        EXPECT_NE(reasons.begin()->first, "non_ip") << "a short frame is not a non-IP frame";
      }
      if (d.meta.has(kMetaL3)) {
        // Cut by the snaplen: the IP length is the header's, the same as for the whole frame.
        EXPECT_EQ(d.meta.l3_len, whole.meta.l3_len);
        EXPECT_EQ(d.meta.l3_offset, whole.meta.l3_offset);
      }
      if (d.meta.has(kMetaPorts)) {
        EXPECT_EQ(d.meta.src_port, whole.meta.src_port);
        EXPECT_EQ(d.meta.dst_port, whole.meta.dst_port);
      }
      if (d.meta.has(kMetaTcpFlags)) {
        EXPECT_EQ(d.meta.tcp_flags, whole.meta.tcp_flags);
      }
      EXPECT_TRUE(d.meta.vlan == 0 || d.meta.vlan == whole.meta.vlan);
      if (testing::Test::HasFailure()) return;
    }
  }
}

// Ethernet and its encapsulations -------------------------------------------------------------

TEST(DecodeEthernetTest, Ipv4Tcp) {
  const auto frame = Frame()
                         .Ethernet(kTypeIpv4)
                         .Ipv4()
                         .Tcp(51000, 80, kTcpSyn, {2, 4, 0x05, 0xB4})  // MSS 1460
                         .Build();
  const Decoded d = DecodeFrame(DLT_EN10MB, frame);
  EXPECT_EQ(d.result, DecodeResult::kOk);
  EXPECT_EQ(NonZero(d.counters), Counts{});
  ExpectMeta(d.meta, {.ip_version = 4,
                      .src = kSrc4Text,
                      .dst = kDst4Text,
                      .protocol = kProtoTcp,
                      .src_port = 51000,
                      .dst_port = 80,
                      .tcp_flags = kTcpSyn,
                      .flags = kL3Ports | kMetaTcpFlags,
                      .l3_offset = kEth,
                      .l4_offset = kEth + kIp4,
                      .payload_offset = kEth + kIp4 + 24,
                      .l3_len = kIp4 + 24});
}

TEST(DecodeEthernetTest, Ipv4Udp) {
  const auto frame =
      Frame().Ethernet(kTypeIpv4).Ipv4({.protocol = kProtoUdp}).Udp(53, 33333).Payload(30).Build();
  const Decoded d = DecodeFrame(DLT_EN10MB, frame);
  EXPECT_EQ(d.result, DecodeResult::kOk);
  EXPECT_EQ(NonZero(d.counters), Counts{});
  ExpectMeta(d.meta, {.ip_version = 4,
                      .src = kSrc4Text,
                      .dst = kDst4Text,
                      .protocol = kProtoUdp,
                      .src_port = 53,
                      .dst_port = 33333,
                      .flags = kL3Ports,
                      .l3_offset = kEth,
                      .l4_offset = kEth + kIp4,
                      .payload_offset = kEth + kIp4 + kUdp,
                      .l3_len = kIp4 + kUdp + 30});
}

TEST(DecodeEthernetTest, Ipv4IcmpPutsTypeAndCodeInDstPort) {
  // Destination unreachable, port unreachable, quoting 28 octets.
  const auto frame =
      Frame().Ethernet(kTypeIpv4).Ipv4({.protocol = kProtoIcmp}).Icmp(3, 3).Payload(28).Build();
  const Decoded d = DecodeFrame(DLT_EN10MB, frame);
  EXPECT_EQ(d.result, DecodeResult::kOk);
  EXPECT_EQ(NonZero(d.counters), Counts{});
  ExpectMeta(d.meta, {.ip_version = 4,
                      .src = kSrc4Text,
                      .dst = kDst4Text,
                      .protocol = kProtoIcmp,
                      .src_port = 0,
                      .dst_port = 0x0303,
                      .flags = kL3Ports,
                      .l3_offset = kEth,
                      .l4_offset = kEth + kIp4,
                      .payload_offset = kEth + kIp4 + 4,
                      .l3_len = kIp4 + kIcmp + 28});
}

TEST(DecodeEthernetTest, Ipv4MaximumOptionsMoveTheTransportHeader) {
  std::vector<uint8_t> options(40, 0x01);  // 40 NOPs: IHL 15
  const auto frame = Frame()
                         .Ethernet(kTypeIpv4)
                         .Ipv4({.protocol = kProtoUdp, .options = options})
                         .Udp(67, 68)
                         .Build();
  const Decoded d = DecodeFrame(DLT_EN10MB, frame);
  EXPECT_EQ(d.result, DecodeResult::kOk);
  EXPECT_EQ(NonZero(d.counters), Counts{});
  ExpectMeta(d.meta, {.ip_version = 4,
                      .src = kSrc4Text,
                      .dst = kDst4Text,
                      .protocol = kProtoUdp,
                      .src_port = 67,
                      .dst_port = 68,
                      .flags = kL3Ports,
                      .l3_offset = kEth,
                      .l4_offset = kEth + 60,
                      .payload_offset = kEth + 60 + kUdp,
                      .l3_len = 60 + kUdp});
}

TEST(DecodeEthernetTest, TcpFlagsEveryBit) {
  for (int bit = 0; bit < 8; ++bit) {
    const uint8_t flags = static_cast<uint8_t>(1 << bit);
    const auto frame = Frame().Ethernet(kTypeIpv4).Ipv4().Tcp(1, 2, flags).Build();
    const Decoded d = DecodeFrame(DLT_EN10MB, frame);
    EXPECT_EQ(d.result, DecodeResult::kOk);
    EXPECT_EQ(d.meta.tcp_flags, flags) << "bit " << bit;
  }
  const auto all = Frame().Ethernet(kTypeIpv4).Ipv4().Tcp(1, 2, 0xFF).Build();
  EXPECT_EQ(DecodeFrame(DLT_EN10MB, all).meta.tcp_flags, 0xFF);
  const auto none = Frame().Ethernet(kTypeIpv4).Ipv4().Tcp(1, 2, 0).Build();
  const Decoded d = DecodeFrame(DLT_EN10MB, none);
  EXPECT_EQ(d.meta.tcp_flags, 0);
  EXPECT_TRUE(d.meta.has(kMetaTcpFlags)) << "a flags byte of 0 is still a flags byte";
}

TEST(DecodeEthernetTest, Ipv6Tcp) {
  const auto frame = Frame()
                         .Ethernet(kTypeIpv6)
                         .Ipv6(kProtoTcp)
                         .Tcp(443, 50123, kTcpSyn | kTcpAck | kTcpEce, kTcpTimestamps)
                         .Payload(10)
                         .Build();
  const Decoded d = DecodeFrame(DLT_EN10MB, frame);
  EXPECT_EQ(d.result, DecodeResult::kOk);
  EXPECT_EQ(NonZero(d.counters), Counts{});
  ExpectMeta(d.meta, {.ip_version = 6,
                      .src = kSrc6Text,
                      .dst = kDst6Text,
                      .protocol = kProtoTcp,
                      .src_port = 443,
                      .dst_port = 50123,
                      .tcp_flags = kTcpSyn | kTcpAck | kTcpEce,
                      .flags = kL3Ports | kMetaTcpFlags,
                      .l3_offset = kEth,
                      .l4_offset = kEth + kIp6,
                      .payload_offset = kEth + kIp6 + 32,
                      .l3_len = kIp6 + 32 + 10});
}

TEST(DecodeEthernetTest, Ipv6Udp) {
  const auto frame = Frame().Ethernet(kTypeIpv6).Ipv6(kProtoUdp).Udp(546, 547).Payload(2).Build();
  const Decoded d = DecodeFrame(DLT_EN10MB, frame);
  EXPECT_EQ(d.result, DecodeResult::kOk);
  EXPECT_EQ(NonZero(d.counters), Counts{});
  ExpectMeta(d.meta, {.ip_version = 6,
                      .src = kSrc6Text,
                      .dst = kDst6Text,
                      .protocol = kProtoUdp,
                      .src_port = 546,
                      .dst_port = 547,
                      .flags = kL3Ports,
                      .l3_offset = kEth,
                      .l4_offset = kEth + kIp6,
                      .payload_offset = kEth + kIp6 + kUdp,
                      .l3_len = kIp6 + kUdp + 2});
}

TEST(DecodeEthernetTest, Icmpv6TypeAndCode) {
  struct Case {
    uint8_t type, code;
  };
  for (const Case c : {Case{128, 0}, Case{135, 0}, Case{1, 4}, Case{3, 1}}) {
    const auto frame =
        Frame().Ethernet(kTypeIpv6).Ipv6(kProtoIcmpv6).Icmp(c.type, c.code).Payload(16).Build();
    const Decoded d = DecodeFrame(DLT_EN10MB, frame);
    SCOPED_TRACE(testing::Message() << "type " << int{c.type} << " code " << int{c.code});
    EXPECT_EQ(d.result, DecodeResult::kOk);
    EXPECT_EQ(NonZero(d.counters), Counts{});
    ExpectMeta(d.meta, {.ip_version = 6,
                        .src = kSrc6Text,
                        .dst = kDst6Text,
                        .protocol = kProtoIcmpv6,
                        .src_port = 0,
                        .dst_port = static_cast<uint16_t>(c.type << 8 | c.code),
                        .flags = kL3Ports,
                        .l3_offset = kEth,
                        .l4_offset = kEth + kIp6,
                        .payload_offset = kEth + kIp6 + 4,
                        .l3_len = kIp6 + kIcmp + 16});
  }
}

TEST(DecodeEthernetTest, Ipv6Sctp) {
  const auto frame =
      Frame().Ethernet(kTypeIpv6).Ipv6(kProtoSctp).Sctp(3868, 3869).Payload(20).Build();
  const Decoded d = DecodeFrame(DLT_EN10MB, frame);
  EXPECT_EQ(d.result, DecodeResult::kOk);
  EXPECT_EQ(NonZero(d.counters), Counts{});
  ExpectMeta(d.meta, {.ip_version = 6,
                      .src = kSrc6Text,
                      .dst = kDst6Text,
                      .protocol = kProtoSctp,
                      .src_port = 3868,
                      .dst_port = 3869,
                      .flags = kL3Ports,
                      .l3_offset = kEth,
                      .l4_offset = kEth + kIp6,
                      .payload_offset = kEth + kIp6 + kSctp,
                      .l3_len = kIp6 + kSctp + 20});
}

TEST(DecodeEthernetTest, Ipv6ExtensionHeadersThenTcp) {
  // Hop-by-hop (8), routing (24), destination options (8), AH with a 12-octet ICV (24).
  const auto frame = Frame()
                         .Ethernet(kTypeIpv6)
                         .Ipv6(kProtoHopOpts)
                         .Ipv6Ext(kProtoIpv6Route, 0)
                         .Ipv6Ext(kProtoIpv6DstOpts, 2)
                         .Ipv6Ext(kProtoAh, 0)
                         .Ipv6Ah(kProtoTcp, 12)
                         .Tcp(22, 60000, kTcpPsh | kTcpAck)
                         .Payload(5)
                         .Build();
  const uint16_t l4 = kEth + kIp6 + 8 + 24 + 8 + 24;
  const Decoded d = DecodeFrame(DLT_EN10MB, frame);
  EXPECT_EQ(d.result, DecodeResult::kOk);
  EXPECT_EQ(NonZero(d.counters), Counts{});
  ExpectMeta(d.meta, {.ip_version = 6,
                      .src = kSrc6Text,
                      .dst = kDst6Text,
                      .protocol = kProtoTcp,
                      .src_port = 22,
                      .dst_port = 60000,
                      .tcp_flags = kTcpPsh | kTcpAck,
                      .flags = kL3Ports | kMetaTcpFlags,
                      .l3_offset = kEth,
                      .l4_offset = l4,
                      .payload_offset = l4 + kTcp,
                      .l3_len = l4 + kTcp + 5 - kEth});
}

TEST(DecodeEthernetTest, Ipv6NoNextHeaderAndEspHaveNoTransport) {
  for (uint8_t next : {kProtoIpv6NoNext, kProtoEsp}) {
    const auto frame =
        Frame().Ethernet(kTypeIpv6).Ipv6(kProtoHopOpts).Ipv6Ext(next, 0).Payload(16).Build();
    const Decoded d = DecodeFrame(DLT_EN10MB, frame);
    SCOPED_TRACE(testing::Message() << "next header " << int{next});
    EXPECT_EQ(d.result, DecodeResult::kOk);
    EXPECT_EQ(NonZero(d.counters), Counts{});
    ExpectMeta(d.meta, {.ip_version = 6,
                        .src = kSrc6Text,
                        .dst = kDst6Text,
                        .protocol = next,
                        .flags = kL3,
                        .l3_offset = kEth,
                        .l3_len = kIp6 + 8 + 16});
  }
}

TEST(DecodeEthernetTest, Ipv4ProtocolWithoutPorts) {
  for (uint8_t proto : {uint8_t{47} /* GRE */, uint8_t{kProtoEsp}, uint8_t{2} /* IGMP */}) {
    const auto frame = Frame().Ethernet(kTypeIpv4).Ipv4({.protocol = proto}).Payload(24).Build();
    const Decoded d = DecodeFrame(DLT_EN10MB, frame);
    SCOPED_TRACE(testing::Message() << "protocol " << int{proto});
    EXPECT_EQ(d.result, DecodeResult::kOk);
    EXPECT_EQ(NonZero(d.counters), Counts{});
    ExpectMeta(d.meta, {.ip_version = 4,
                        .src = kSrc4Text,
                        .dst = kDst4Text,
                        .protocol = proto,
                        .flags = kL3,
                        .l3_offset = kEth,
                        .l3_len = kIp4 + 24});
  }
}

TEST(DecodeEthernetTest, SingleVlanTagKeepsOnlyTheVid) {
  const auto frame = Frame()
                         .Ethernet(kTypeVlan)
                         .Vlan(0x0ABC, kTypeIpv4)
                         .Ipv4({.protocol = kProtoUdp})
                         .Udp(1234, 5678)
                         .Build();
  const Decoded d = DecodeFrame(DLT_EN10MB, frame);
  EXPECT_EQ(d.result, DecodeResult::kOk);
  EXPECT_EQ(NonZero(d.counters), Counts{});
  ExpectMeta(d.meta, {.ip_version = 4,
                      .src = kSrc4Text,
                      .dst = kDst4Text,
                      .protocol = kProtoUdp,
                      .src_port = 1234,
                      .dst_port = 5678,
                      .vlan = 0x0ABC,
                      .inner_vlan = 0,
                      .flags = kL3Ports,
                      .l3_offset = kEth + kTag,
                      .l4_offset = kEth + kTag + kIp4,
                      .payload_offset = kEth + kTag + kIp4 + kUdp,
                      .l3_len = kIp4 + kUdp});
}

TEST(DecodeEthernetTest, QinQEveryOuterTpid) {
  for (uint16_t tpid : {kTypeQinQ, kTypeQinQOld, kTypeVlan}) {
    const auto frame = Frame()
                           .Ethernet(tpid)
                           .Vlan(300, kTypeVlan)
                           .Vlan(4094, kTypeIpv6)
                           .Ipv6(kProtoUdp)
                           .Udp(1, 2)
                           .Build();
    const Decoded d = DecodeFrame(DLT_EN10MB, frame);
    SCOPED_TRACE(testing::Message() << "outer TPID " << std::hex << tpid);
    EXPECT_EQ(d.result, DecodeResult::kOk);
    EXPECT_EQ(NonZero(d.counters), Counts{});
    ExpectMeta(d.meta, {.ip_version = 6,
                        .src = kSrc6Text,
                        .dst = kDst6Text,
                        .protocol = kProtoUdp,
                        .src_port = 1,
                        .dst_port = 2,
                        .vlan = 300,
                        .inner_vlan = 4094,
                        .flags = kL3Ports,
                        .l3_offset = kEth + 2 * kTag,
                        .l4_offset = kEth + 2 * kTag + kIp6,
                        .payload_offset = kEth + 2 * kTag + kIp6 + kUdp,
                        .l3_len = kIp6 + kUdp});
  }
}

Frame Tagged(int tags) {
  Frame f;
  f.Ethernet(kTypeQinQ);
  for (int i = 1; i <= tags; ++i)
    f.Vlan(static_cast<uint16_t>(i), i < tags ? kTypeVlan : kTypeIpv4);
  f.Ipv4({.protocol = kProtoUdp}).Udp(1, 2);
  return f;
}

TEST(DecodeEthernetTest, FourVlanTagsAreFollowedAFifthIsTooMany) {
  const Decoded four = DecodeFrame(DLT_EN10MB, Tagged(4).Build());
  EXPECT_EQ(four.result, DecodeResult::kOk);
  EXPECT_EQ(NonZero(four.counters), Counts{});
  EXPECT_EQ(four.meta.vlan, 1);
  EXPECT_EQ(four.meta.inner_vlan, 2);
  EXPECT_EQ(four.meta.l3_offset, kEth + 4 * kTag);
  EXPECT_EQ(four.meta.dst_port, 2);

  const Decoded five = DecodeFrame(DLT_EN10MB, Tagged(5).Build());
  EXPECT_EQ(five.result, DecodeResult::kNotIp);
  EXPECT_EQ(NonZero(five.counters), One("too_many_vlan_tags"));
  ExpectMeta(five.meta, {.vlan = 1, .inner_vlan = 2});
}

Frame Labelled(int labels) {
  Frame f;
  f.Ethernet(kTypeMpls);
  for (int i = 1; i <= labels; ++i) f.Mpls(static_cast<uint32_t>(100 + i), i == labels);
  f.Ipv4({.protocol = kProtoUdp}).Udp(1, 2);
  return f;
}

TEST(DecodeEthernetTest, MplsStacks) {
  const Decoded one = DecodeFrame(DLT_EN10MB, Labelled(1).Build());
  EXPECT_EQ(one.result, DecodeResult::kOk);
  EXPECT_EQ(NonZero(one.counters), Counts{});
  ExpectMeta(one.meta, {.ip_version = 4,
                        .src = kSrc4Text,
                        .dst = kDst4Text,
                        .protocol = kProtoUdp,
                        .src_port = 1,
                        .dst_port = 2,
                        .mpls_labels = 1,
                        .flags = kL3Ports,
                        .l3_offset = kEth + kLabel,
                        .l4_offset = kEth + kLabel + kIp4,
                        .payload_offset = kEth + kLabel + kIp4 + kUdp,
                        .l3_len = kIp4 + kUdp});

  const Decoded eight = DecodeFrame(DLT_EN10MB, Labelled(8).Build());
  EXPECT_EQ(eight.result, DecodeResult::kOk);
  EXPECT_EQ(NonZero(eight.counters), Counts{});
  EXPECT_EQ(eight.meta.mpls_labels, 8);
  EXPECT_EQ(eight.meta.l3_offset, kEth + 8 * kLabel);
  EXPECT_EQ(eight.meta.dst_port, 2);

  const Decoded nine = DecodeFrame(DLT_EN10MB, Labelled(9).Build());
  EXPECT_EQ(nine.result, DecodeResult::kNotIp);
  EXPECT_EQ(NonZero(nine.counters), One("too_many_mpls_labels"));
  ExpectMeta(nine.meta, {.mpls_labels = 8});
}

TEST(DecodeEthernetTest, MplsPseudowireWithInnerVlan) {
  const auto frame = Frame()
                         .Ethernet(kTypeMpls)
                         .Mpls(299, true)
                         .PwControlWord()
                         .Ethernet(kTypeVlan)
                         .Vlan(42, kTypeIpv6)
                         .Ipv6(kProtoTcp)
                         .Tcp(1, 2, kTcpFin | kTcpAck)
                         .Build();
  const uint16_t l3 = kEth + kLabel + 4 + kEth + kTag;
  const Decoded d = DecodeFrame(DLT_EN10MB, frame);
  EXPECT_EQ(d.result, DecodeResult::kOk);
  EXPECT_EQ(NonZero(d.counters), Counts{});
  ExpectMeta(d.meta, {.ip_version = 6,
                      .src = kSrc6Text,
                      .dst = kDst6Text,
                      .protocol = kProtoTcp,
                      .src_port = 1,
                      .dst_port = 2,
                      .tcp_flags = kTcpFin | kTcpAck,
                      .vlan = 42,
                      .mpls_labels = 1,
                      .flags = kL3Ports | kMetaTcpFlags,
                      .l3_offset = l3,
                      .l4_offset = l3 + kIp6,
                      .payload_offset = l3 + kIp6 + kTcp,
                      .l3_len = kIp6 + kTcp});
}

TEST(DecodeEthernetTest, MplsPayloadThatIsNeitherIpNorPseudowire) {
  const auto frame = Frame().Ethernet(kTypeMpls).Mpls(7, true).U8(0x50).Payload(30).Build();
  const Decoded d = DecodeFrame(DLT_EN10MB, frame);
  EXPECT_EQ(d.result, DecodeResult::kNotIp);
  EXPECT_EQ(NonZero(d.counters), One("non_ip"));
  ExpectMeta(d.meta, {.mpls_labels = 1});
}

TEST(DecodeEthernetTest, PppoeSession) {
  const auto v4 = Frame()
                      .Ethernet(kTypePppoeSession)
                      .PppoeSession(kPppIpv4)
                      .Ipv4({.protocol = kProtoUdp})
                      .Udp(1701, 1701)
                      .Build();
  const Decoded d4 = DecodeFrame(DLT_EN10MB, v4);
  EXPECT_EQ(d4.result, DecodeResult::kOk);
  EXPECT_EQ(NonZero(d4.counters), Counts{});
  ExpectMeta(d4.meta, {.ip_version = 4,
                       .src = kSrc4Text,
                       .dst = kDst4Text,
                       .protocol = kProtoUdp,
                       .src_port = 1701,
                       .dst_port = 1701,
                       .flags = kL3Ports,
                       .l3_offset = kEth + 8,
                       .l4_offset = kEth + 8 + kIp4,
                       .payload_offset = kEth + 8 + kIp4 + kUdp,
                       .l3_len = kIp4 + kUdp});

  const auto v6 = Frame()
                      .Ethernet(kTypePppoeSession)
                      .PppoeSession(kPppIpv6)
                      .Ipv6(kProtoTcp)
                      .Tcp(1, 2, kTcpSyn)
                      .Build();
  const Decoded d6 = DecodeFrame(DLT_EN10MB, v6);
  EXPECT_EQ(d6.result, DecodeResult::kOk);
  EXPECT_EQ(d6.meta.ip_version, 6);
  EXPECT_EQ(d6.meta.l3_offset, kEth + 8);
  EXPECT_EQ(d6.meta.tcp_flags, kTcpSyn);

  const auto lcp = Frame().Ethernet(kTypePppoeSession).PppoeSession(kPppLcp).Payload(10).Build();
  const Decoded dl = DecodeFrame(DLT_EN10MB, lcp);
  EXPECT_EQ(dl.result, DecodeResult::kNotIp);
  EXPECT_EQ(NonZero(dl.counters), One("non_ip"));
  ExpectEmptyMeta(dl.meta);

  const auto cut = Frame().Ethernet(kTypePppoeSession).PppoeSession(kPppIpv4).Build();
  for (size_t caplen = kEth; caplen < kEth + 8; ++caplen) {
    const Decoded dc = DecodePrefix(DLT_EN10MB, cut, caplen, static_cast<uint32_t>(caplen));
    EXPECT_EQ(dc.result, DecodeResult::kNotIp);
    EXPECT_EQ(NonZero(dc.counters), One("truncated_l2")) << "caplen " << caplen;
  }
}

TEST(DecodeEthernetTest, ArpIsNotIp) {
  const auto frame =
      Frame().Ethernet(kTypeArp).U16(1).U16(kTypeIpv4).U8(6).U8(4).U16(1).Payload(20).Build();
  const Decoded d = DecodeFrame(DLT_EN10MB, frame);
  EXPECT_EQ(d.result, DecodeResult::kNotIp);
  EXPECT_EQ(NonZero(d.counters), One("non_ip"));
  ExpectEmptyMeta(d.meta);
}

TEST(DecodeEthernetTest, Ieee8023LengthFieldIsNotIp) {
  // An 802.3 frame with LLC (STP): the type field is a length.
  const auto frame = Frame().Ethernet(38).Bytes({0x42, 0x42, 0x03}).Payload(35).Build();
  const Decoded d = DecodeFrame(DLT_EN10MB, frame);
  EXPECT_EQ(d.result, DecodeResult::kNotIp);
  EXPECT_EQ(NonZero(d.counters), One("non_ip"));
  ExpectEmptyMeta(d.meta);
}

TEST(DecodeEthernetTest, VlanTaggedArpKeepsTheVlan) {
  const auto frame = Frame().Ethernet(kTypeVlan).Vlan(55, kTypeArp).Payload(28).Build();
  const Decoded d = DecodeFrame(DLT_EN10MB, frame);
  EXPECT_EQ(d.result, DecodeResult::kNotIp);
  EXPECT_EQ(NonZero(d.counters), One("non_ip"));
  ExpectMeta(d.meta, {.vlan = 55});
}

// Other link types ----------------------------------------------------------------------------

// An IPv4/UDP meta at `l3`, as the link-type tests below expect it.
MetaWant Ipv4UdpAt(uint16_t l3) {
  return {.ip_version = 4,
          .src = kSrc4Text,
          .dst = kDst4Text,
          .protocol = kProtoUdp,
          .src_port = 5060,
          .dst_port = 5061,
          .flags = kL3Ports,
          .l3_offset = l3,
          .l4_offset = static_cast<uint16_t>(l3 + kIp4),
          .payload_offset = static_cast<uint16_t>(l3 + kIp4 + kUdp),
          .l3_len = kIp4 + kUdp + 4};
}

MetaWant Ipv6TcpAt(uint16_t l3) {
  return {.ip_version = 6,
          .src = kSrc6Text,
          .dst = kDst6Text,
          .protocol = kProtoTcp,
          .src_port = 8080,
          .dst_port = 40001,
          .tcp_flags = kTcpAck,
          .flags = kL3Ports | kMetaTcpFlags,
          .l3_offset = l3,
          .l4_offset = static_cast<uint16_t>(l3 + kIp6),
          .payload_offset = static_cast<uint16_t>(l3 + kIp6 + kTcp),
          .l3_len = kIp6 + kTcp + 4};
}

void AppendIpv4Udp(Frame& f) { f.Ipv4({.protocol = kProtoUdp}).Udp(5060, 5061).Payload(4); }
void AppendIpv6Tcp(Frame& f) { f.Ipv6(kProtoTcp).Tcp(8080, 40001, kTcpAck).Payload(4); }

void ExpectDecodes(int link_type, const Frame& f, const MetaWant& want) {
  const Decoded d = DecodeFrame(link_type, f.Build());
  EXPECT_EQ(d.result, DecodeResult::kOk);
  EXPECT_EQ(NonZero(d.counters), Counts{});
  ExpectMeta(d.meta, want);
}

TEST(DecodeLinkTypeTest, LinuxSll) {
  Frame v4;
  v4.Sll(kTypeIpv4);
  AppendIpv4Udp(v4);
  ExpectDecodes(DLT_LINUX_SLL, v4, Ipv4UdpAt(16));
  Frame v6;
  v6.Sll(kTypeIpv6);
  AppendIpv6Tcp(v6);
  ExpectDecodes(DLT_LINUX_SLL, v6, Ipv6TcpAt(16));
  Frame tagged;
  tagged.Sll(kTypeVlan).Vlan(12, kTypeIpv4);
  AppendIpv4Udp(tagged);
  MetaWant want = Ipv4UdpAt(20);
  want.vlan = 12;
  ExpectDecodes(DLT_LINUX_SLL, tagged, want);
}

TEST(DecodeLinkTypeTest, LinuxSll2) {
  Frame v4;
  v4.Sll2(kTypeIpv4);
  AppendIpv4Udp(v4);
  ExpectDecodes(DLT_LINUX_SLL2, v4, Ipv4UdpAt(20));
  Frame v6;
  v6.Sll2(kTypeIpv6);
  AppendIpv6Tcp(v6);
  ExpectDecodes(DLT_LINUX_SLL2, v6, Ipv6TcpAt(20));
  const Decoded arp = DecodeFrame(DLT_LINUX_SLL2, Frame().Sll2(kTypeArp).Payload(28).Build());
  EXPECT_EQ(arp.result, DecodeResult::kNotIp);
  EXPECT_EQ(NonZero(arp.counters), One("non_ip"));
}

TEST(DecodeLinkTypeTest, RawIpDispatchesOnTheVersion) {
  for (int link_type : {DLT_RAW, kLinktypeRaw}) {
    SCOPED_TRACE(testing::Message() << "link type " << link_type);
    Frame v4;
    AppendIpv4Udp(v4);
    ExpectDecodes(link_type, v4, Ipv4UdpAt(0));
    Frame v6;
    AppendIpv6Tcp(v6);
    ExpectDecodes(link_type, v6, Ipv6TcpAt(0));

    const Decoded other = DecodeFrame(link_type, Frame().U8(0x50).Payload(39).Build());
    EXPECT_EQ(other.result, DecodeResult::kNotIp);
    EXPECT_EQ(NonZero(other.counters), One("non_ip"));
    ExpectEmptyMeta(other.meta);

    const Decoded empty = DecodeFrame(link_type, {});
    EXPECT_EQ(empty.result, DecodeResult::kNotIp);
    EXPECT_EQ(NonZero(empty.counters), One("truncated_l2"));
  }
}

TEST(DecodeLinkTypeTest, Ipv4AndIpv6LinkTypes) {
  Frame v4;
  AppendIpv4Udp(v4);
  ExpectDecodes(DLT_IPV4, v4, Ipv4UdpAt(0));
  Frame v6;
  AppendIpv6Tcp(v6);
  ExpectDecodes(DLT_IPV6, v6, Ipv6TcpAt(0));
  // The link type says which version: the other one is a bad header, not a different protocol.
  const Decoded swapped4 = DecodeFrame(DLT_IPV4, v6.Build());
  EXPECT_EQ(swapped4.result, DecodeResult::kMalformed);
  EXPECT_EQ(NonZero(swapped4.counters), One("bad_ipv4_header"));
  const Decoded swapped6 = DecodeFrame(DLT_IPV6, Frame().Ipv4().Tcp(1, 2, 0).Build());
  EXPECT_EQ(swapped6.result, DecodeResult::kMalformed);
  EXPECT_EQ(NonZero(swapped6.counters), One("bad_ipv6_header"));
}

TEST(DecodeLinkTypeTest, NullAndLoop) {
  Frame null4;
  null4.NullHostOrder(2);  // AF_INET
  AppendIpv4Udp(null4);
  ExpectDecodes(DLT_NULL, null4, Ipv4UdpAt(4));
  for (uint32_t family : {24u, 28u, 30u}) {  // AF_INET6 on NetBSD/OpenBSD, FreeBSD, Darwin
    Frame null6;
    null6.NullHostOrder(family);
    AppendIpv6Tcp(null6);
    ExpectDecodes(DLT_NULL, null6, Ipv6TcpAt(4));
  }
  Frame loop4;
  loop4.Loop(2);
  AppendIpv4Udp(loop4);
  ExpectDecodes(DLT_LOOP, loop4, Ipv4UdpAt(4));
  Frame loop6;
  loop6.Loop(24);
  AppendIpv6Tcp(loop6);
  ExpectDecodes(DLT_LOOP, loop6, Ipv6TcpAt(4));

  for (size_t caplen = 0; caplen <= 4; ++caplen) {
    const Decoded d = DecodePrefix(DLT_NULL, null4.Build(), caplen, 100);
    EXPECT_EQ(d.result, DecodeResult::kNotIp);
    EXPECT_EQ(NonZero(d.counters), One("truncated_l2")) << "caplen " << caplen;
  }
}

TEST(DecodeLinkTypeTest, Ppp) {
  Frame hdlc;
  hdlc.Ppp(kPppIpv4, true);
  AppendIpv4Udp(hdlc);
  ExpectDecodes(DLT_PPP, hdlc, Ipv4UdpAt(4));
  ExpectDecodes(DLT_PPP_SERIAL, hdlc, Ipv4UdpAt(4));

  Frame bare;
  bare.Ppp(kPppIpv6, false);
  AppendIpv6Tcp(bare);
  ExpectDecodes(DLT_PPP, bare, Ipv6TcpAt(2));

  Frame compressed;  // protocol field compression: 0x21 in one octet
  compressed.U8(0xFF).U8(0x03).U8(0x21);
  AppendIpv4Udp(compressed);
  ExpectDecodes(DLT_PPP, compressed, Ipv4UdpAt(3));

  Frame compressed6;
  compressed6.U8(0x57);
  AppendIpv6Tcp(compressed6);
  ExpectDecodes(DLT_PPP, compressed6, Ipv6TcpAt(1));

  Frame mpls;
  mpls.Ppp(kPppMpls, true).Mpls(16, true);
  AppendIpv4Udp(mpls);
  MetaWant want = Ipv4UdpAt(8);
  want.mpls_labels = 1;
  ExpectDecodes(DLT_PPP, mpls, want);

  const Decoded lcp = DecodeFrame(DLT_PPP, Frame().Ppp(kPppLcp, true).Payload(10).Build());
  EXPECT_EQ(lcp.result, DecodeResult::kNotIp);
  EXPECT_EQ(NonZero(lcp.counters), One("non_ip"));
  ExpectEmptyMeta(lcp.meta);

  // Address and control, then nothing or half a protocol field.
  for (const auto& cut :
       {std::vector<uint8_t>{}, std::vector<uint8_t>{0xFF}, std::vector<uint8_t>{0xFF, 0x03},
        std::vector<uint8_t>{0xFF, 0x03, 0x00}, std::vector<uint8_t>{0x00}}) {
    const Decoded d = DecodeFrame(DLT_PPP, cut);
    EXPECT_EQ(d.result, DecodeResult::kNotIp);
    EXPECT_EQ(NonZero(d.counters), One("truncated_l2")) << "length " << cut.size();
  }
}

TEST(DecodeLinkTypeTest, CiscoHdlc) {
  Frame v4;
  v4.CiscoHdlc(kTypeIpv4);
  AppendIpv4Udp(v4);
  ExpectDecodes(DLT_C_HDLC, v4, Ipv4UdpAt(4));
  Frame v6;
  v6.CiscoHdlc(kTypeIpv6);
  AppendIpv6Tcp(v6);
  ExpectDecodes(DLT_C_HDLC, v6, Ipv6TcpAt(4));
  const Decoded slarp = DecodeFrame(DLT_C_HDLC, Frame().CiscoHdlc(0x8035).Payload(20).Build());
  EXPECT_EQ(slarp.result, DecodeResult::kNotIp);
  EXPECT_EQ(NonZero(slarp.counters), One("non_ip"));
}

TEST(DecodeLinkTypeTest, ShortLinkHeadersCountTruncatedL2) {
  struct Case {
    int link_type;
    size_t header;
  };
  for (const Case c : {Case{DLT_EN10MB, 14}, Case{DLT_LINUX_SLL, 16}, Case{DLT_LINUX_SLL2, 20},
                       Case{DLT_C_HDLC, 4}, Case{DLT_NULL, 4}, Case{DLT_LOOP, 4}}) {
    const std::vector<uint8_t> junk(c.header, 0x45);
    for (size_t caplen = 0; caplen < c.header; ++caplen) {
      const Decoded d = DecodePrefix(c.link_type, junk, caplen, 1500);
      EXPECT_EQ(d.result, DecodeResult::kNotIp);
      EXPECT_EQ(NonZero(d.counters), One("truncated_l2"))
          << "link type " << c.link_type << " caplen " << caplen;
      ExpectEmptyMeta(d.meta);
    }
  }
}

TEST(DecodeLinkTypeTest, UnsupportedLinkType) {
  Frame f;
  AppendIpv4Udp(f);
  for (int link_type : {DLT_IEEE802_11, DLT_IEEE802_11_RADIO, DLT_USER0, -1, 65535}) {
    EXPECT_FALSE(IsSupportedLinkType(link_type)) << link_type;
    const Decoded d = DecodeFrame(link_type, f.Build());
    EXPECT_EQ(d.result, DecodeResult::kNotIp);
    EXPECT_EQ(NonZero(d.counters), One("unsupported_link_type"));
    ExpectEmptyMeta(d.meta);
  }
}

TEST(DecodeLinkTypeTest, SupportedLinkTypes) {
  for (int link_type : {DLT_EN10MB, DLT_LINUX_SLL, DLT_LINUX_SLL2, DLT_RAW, kLinktypeRaw, DLT_IPV4,
                        DLT_IPV6, DLT_NULL, DLT_LOOP, DLT_PPP, DLT_PPP_SERIAL, DLT_C_HDLC}) {
    EXPECT_TRUE(IsSupportedLinkType(link_type)) << link_type;
    // Nothing supported reports itself as unsupported.
    DecodeCounters counters;
    PacketMeta meta;
    PacketView empty;
    Decode(link_type, empty, meta, counters);
    EXPECT_EQ(counters.unsupported_link_type, 0u) << link_type;
  }
}

// Malformed headers ----------------------------------------------------------------------------

TEST(DecodeMalformedTest, Ipv4BadVersion) {
  for (uint8_t version : {0, 5, 6, 15}) {
    const auto frame =
        Frame().Ethernet(kTypeIpv4).Ipv4({.version = version}).Tcp(1, 2, kTcpSyn).Build();
    const Decoded d = DecodeFrame(DLT_EN10MB, frame);
    EXPECT_EQ(d.result, DecodeResult::kMalformed) << "version " << int{version};
    EXPECT_EQ(NonZero(d.counters), One("bad_ipv4_header"));
    ExpectEmptyMeta(d.meta);
  }
}

TEST(DecodeMalformedTest, Ipv4IhlBelowFive) {
  for (uint8_t ihl = 0; ihl < 5; ++ihl) {
    const auto frame = Frame().Ethernet(kTypeIpv4).Ipv4({.ihl = ihl}).Tcp(1, 2, kTcpSyn).Build();
    const Decoded d = DecodeFrame(DLT_EN10MB, frame);
    EXPECT_EQ(d.result, DecodeResult::kMalformed) << "IHL " << int{ihl};
    EXPECT_EQ(NonZero(d.counters), One("bad_ipv4_header"));
    ExpectEmptyMeta(d.meta);
  }
}

TEST(DecodeMalformedTest, Ipv4TotalLengthBelowIhl) {
  const auto plain = Frame().Ethernet(kTypeIpv4).Ipv4({.total_len = 19}).Tcp(1, 2, kTcpSyn).Build();
  const Decoded d = DecodeFrame(DLT_EN10MB, plain);
  EXPECT_EQ(d.result, DecodeResult::kMalformed);
  EXPECT_EQ(NonZero(d.counters), One("bad_ipv4_header"));
  ExpectEmptyMeta(d.meta);

  // 24-octet header, total length 22.
  const auto opts = Frame()
                        .Ethernet(kTypeIpv4)
                        .Ipv4({.options = {1, 1, 1, 0}, .total_len = 22})
                        .Tcp(1, 2, kTcpSyn)
                        .Build();
  const Decoded o = DecodeFrame(DLT_EN10MB, opts);
  EXPECT_EQ(o.result, DecodeResult::kMalformed);
  EXPECT_EQ(NonZero(o.counters), One("bad_ipv4_header"));

  // Total length exactly the header: valid, an IP packet with no transport octets.
  const auto exact =
      Frame().Ethernet(kTypeIpv4).Ipv4({.protocol = kProtoUdp, .total_len = 20}).Build();
  const Decoded e = DecodeFrame(DLT_EN10MB, exact);
  EXPECT_EQ(e.result, DecodeResult::kPartial);
  EXPECT_EQ(NonZero(e.counters), One("truncated_udp"));
  EXPECT_EQ(e.meta.l3_len, 20u);
}

TEST(DecodeMalformedTest, Ipv4TotalLengthBeyondTheWireIsClamped) {
  // The header claims 1000 octets; the frame, all there was on the wire, carries 48.
  const auto frame =
      Frame().Ethernet(kTypeIpv4).Ipv4({.total_len = 1000}).Tcp(1, 2, kTcpSyn).Payload(8).Build();
  const Decoded d = DecodeFrame(DLT_EN10MB, frame);
  EXPECT_EQ(d.result, DecodeResult::kPartial);
  EXPECT_EQ(NonZero(d.counters), One("bad_ipv4_header"));
  ExpectMeta(d.meta, {.ip_version = 4,
                      .src = kSrc4Text,
                      .dst = kDst4Text,
                      .protocol = kProtoTcp,
                      .src_port = 1,
                      .dst_port = 2,
                      .tcp_flags = kTcpSyn,
                      .flags = kL3Ports | kMetaTcpFlags | kMetaTruncated,
                      .l3_offset = kEth,
                      .l4_offset = kEth + kIp4,
                      .payload_offset = kEth + kIp4 + kTcp,
                      .l3_len = kIp4 + kTcp + 8});
}

TEST(DecodeMalformedTest, Ipv4TotalLengthZeroTakesTheWireLength) {
  // Segmentation offload: a 9000-octet super-frame captured with a 128-octet snaplen.
  const auto frame = Frame()
                         .Ethernet(kTypeIpv4)
                         .Ipv4({.total_len = 0})
                         .Tcp(1, 2, kTcpAck)
                         .Payload(128 - 54)
                         .Build();
  const Decoded d = DecodeFrame(DLT_EN10MB, frame, 9000);
  EXPECT_EQ(d.result, DecodeResult::kOk);
  EXPECT_EQ(NonZero(d.counters), Counts{});
  ExpectMeta(d.meta, {.ip_version = 4,
                      .src = kSrc4Text,
                      .dst = kDst4Text,
                      .protocol = kProtoTcp,
                      .src_port = 1,
                      .dst_port = 2,
                      .tcp_flags = kTcpAck,
                      .flags = kL3Ports | kMetaTcpFlags,
                      .l3_offset = kEth,
                      .l4_offset = kEth + kIp4,
                      .payload_offset = kEth + kIp4 + kTcp,
                      .l3_len = 9000 - kEth});
}

TEST(DecodeMalformedTest, EthernetPaddingAfterTheDatagramIsIgnored) {
  // A 28-octet IPv4/UDP datagram padded to the 60-octet Ethernet minimum with non-zero bytes.
  const auto frame =
      Frame().Ethernet(kTypeIpv4).Ipv4({.protocol = kProtoUdp}).Udp(123, 123).Build();
  std::vector<uint8_t> padded = frame;
  padded.resize(60, 0xEE);
  const Decoded d = DecodeFrame(DLT_EN10MB, padded);
  EXPECT_EQ(d.result, DecodeResult::kOk);
  EXPECT_EQ(NonZero(d.counters), Counts{});
  EXPECT_EQ(d.meta.l3_len, kIp4 + kUdp);
  EXPECT_EQ(d.meta.payload_offset, kEth + kIp4 + kUdp);
}

TEST(DecodeMalformedTest, TransportHeaderIsNotReadFromPaddingAfterTheDatagram) {
  // The IPv4 header says 24 octets: the header and a TCP header cut after its ports. The
  // Ethernet padding that follows must not be read as the rest of the TCP header.
  const auto datagram =
      Frame().Ethernet(kTypeIpv4).Ipv4({.total_len = kIp4 + 4}).U16(1000).U16(2000).Build();
  std::vector<uint8_t> padded = datagram;
  padded.resize(60, 0xFF);
  const Decoded d = DecodeFrame(DLT_EN10MB, padded);
  EXPECT_EQ(d.result, DecodeResult::kPartial);
  EXPECT_EQ(NonZero(d.counters), One("truncated_tcp"));
  ExpectMeta(d.meta, {.ip_version = 4,
                      .src = kSrc4Text,
                      .dst = kDst4Text,
                      .protocol = kProtoTcp,
                      .src_port = 1000,
                      .dst_port = 2000,
                      .flags = kL3Ports | kMetaTruncated,
                      .l3_offset = kEth,
                      .l4_offset = kEth + kIp4,
                      .l3_len = kIp4 + 4});

  // The same for IPv6: a payload length of 4 leaves the UDP header cut after its ports.
  const auto v6_short = Frame().Ethernet(kTypeIpv6).Ipv6(kProtoUdp, 4).U16(53).U16(54).Build();
  std::vector<uint8_t> v6_short_trailer = v6_short;
  v6_short_trailer.resize(v6_short.size() + 16, 0x22);
  const Decoded s6 = DecodeFrame(DLT_EN10MB, v6_short_trailer);
  EXPECT_EQ(s6.result, DecodeResult::kPartial);
  EXPECT_EQ(NonZero(s6.counters), One("truncated_udp"));
  EXPECT_EQ(s6.meta.src_port, 53);
  EXPECT_EQ(s6.meta.dst_port, 54);
  EXPECT_EQ(s6.meta.l3_len, kIp6 + 4u);
  EXPECT_EQ(s6.meta.payload_offset, 0);
}

TEST(DecodeMalformedTest, TcpDataOffsetBelowFive) {
  for (uint8_t doff = 0; doff < 5; ++doff) {
    const auto frame =
        Frame().Ethernet(kTypeIpv4).Ipv4().Tcp(1, 2, kTcpSyn, {}, doff).Payload(8).Build();
    const Decoded d = DecodeFrame(DLT_EN10MB, frame);
    SCOPED_TRACE(testing::Message() << "data offset " << int{doff});
    EXPECT_EQ(d.result, DecodeResult::kPartial);
    EXPECT_EQ(NonZero(d.counters), One("bad_tcp_header"));
    ExpectMeta(d.meta, {.ip_version = 4,
                        .src = kSrc4Text,
                        .dst = kDst4Text,
                        .protocol = kProtoTcp,
                        .src_port = 1,
                        .dst_port = 2,
                        .tcp_flags = kTcpSyn,
                        .flags = kL3Ports | kMetaTcpFlags | kMetaTruncated,
                        .l3_offset = kEth,
                        .l4_offset = kEth + kIp4,
                        .l3_len = kIp4 + kTcp + 8});
  }
}

TEST(DecodeMalformedTest, TcpDataOffsetBeyondTheCaptureLeavesThePayloadUnknown) {
  // Data offset 15 (60 octets) but only the 20-octet fixed header and 8 octets follow.
  const auto frame =
      Frame().Ethernet(kTypeIpv4).Ipv4().Tcp(1, 2, kTcpAck, {}, 15).Payload(8).Build();
  const Decoded d = DecodeFrame(DLT_EN10MB, frame);
  EXPECT_EQ(d.result, DecodeResult::kOk);
  EXPECT_EQ(NonZero(d.counters), Counts{});
  EXPECT_EQ(d.meta.payload_offset, 0);
  EXPECT_EQ(d.meta.tcp_flags, kTcpAck);
}

TEST(DecodeMalformedTest, Ipv6BadVersion) {
  for (uint8_t version : {0, 4, 7, 15}) {
    const auto frame =
        Frame().Ethernet(kTypeIpv6).Ipv6(kProtoUdp, std::nullopt, version).Udp(1, 2).Build();
    const Decoded d = DecodeFrame(DLT_EN10MB, frame);
    EXPECT_EQ(d.result, DecodeResult::kMalformed) << "version " << int{version};
    EXPECT_EQ(NonZero(d.counters), One("bad_ipv6_header"));
    ExpectEmptyMeta(d.meta);
  }
}

TEST(DecodeMalformedTest, Ipv6PayloadLengthBeyondTheWireIsClamped) {
  const auto frame =
      Frame().Ethernet(kTypeIpv6).Ipv6(kProtoUdp, 1400).Udp(1, 2).Payload(12).Build();
  const Decoded d = DecodeFrame(DLT_EN10MB, frame);
  EXPECT_EQ(d.result, DecodeResult::kPartial);
  EXPECT_EQ(NonZero(d.counters), One("bad_ipv6_header"));
  ExpectMeta(d.meta, {.ip_version = 6,
                      .src = kSrc6Text,
                      .dst = kDst6Text,
                      .protocol = kProtoUdp,
                      .src_port = 1,
                      .dst_port = 2,
                      .flags = kL3Ports | kMetaTruncated,
                      .l3_offset = kEth,
                      .l4_offset = kEth + kIp6,
                      .payload_offset = kEth + kIp6 + kUdp,
                      .l3_len = kIp6 + kUdp + 12});

  // Cut by the snaplen instead: the wire had it all, so the header's length stands.
  const Decoded snap = DecodeFrame(DLT_EN10MB, frame, kEth + kIp6 + 1400);
  EXPECT_EQ(snap.result, DecodeResult::kOk);
  EXPECT_EQ(NonZero(snap.counters), Counts{});
  EXPECT_EQ(snap.meta.l3_len, kIp6 + 1400u);
  EXPECT_FALSE(snap.meta.has(kMetaTruncated));
}

TEST(DecodeMalformedTest, Ipv6PayloadLengthZeroTakesTheWireLength) {
  const auto frame = Frame().Ethernet(kTypeIpv6).Ipv6(kProtoTcp, 0).Tcp(1, 2, kTcpAck).Build();
  const Decoded d = DecodeFrame(DLT_EN10MB, frame, 65000);
  EXPECT_EQ(d.result, DecodeResult::kOk);
  EXPECT_EQ(NonZero(d.counters), Counts{});
  EXPECT_EQ(d.meta.l3_len, 65000u - kEth);
  EXPECT_EQ(d.meta.payload_offset, kEth + kIp6 + kTcp);
}

Frame ExtensionChain(int headers) {
  Frame f;
  f.Ethernet(kTypeIpv6).Ipv6(kProtoHopOpts);
  for (int i = 1; i <= headers; ++i) f.Ipv6Ext(i < headers ? kProtoIpv6DstOpts : kProtoUdp, 0);
  f.Udp(7, 9);
  return f;
}

TEST(DecodeMalformedTest, Ipv6ExtensionChainTooLong) {
  const Decoded eight = DecodeFrame(DLT_EN10MB, ExtensionChain(8).Build());
  EXPECT_EQ(eight.result, DecodeResult::kOk);
  EXPECT_EQ(NonZero(eight.counters), Counts{});
  EXPECT_EQ(eight.meta.protocol, kProtoUdp);
  EXPECT_EQ(eight.meta.l4_offset, kEth + kIp6 + 8 * 8);
  EXPECT_EQ(eight.meta.dst_port, 9);

  const Decoded nine = DecodeFrame(DLT_EN10MB, ExtensionChain(9).Build());
  EXPECT_EQ(nine.result, DecodeResult::kPartial);
  EXPECT_EQ(NonZero(nine.counters), One("too_many_ipv6_ext"));
  ExpectMeta(nine.meta, {.ip_version = 6,
                         .src = kSrc6Text,
                         .dst = kDst6Text,
                         .protocol = kProtoIpv6DstOpts,
                         .flags = kL3Trunc,
                         .l3_offset = kEth,
                         .l3_len = kIp6 + 9 * 8 + kUdp});
}

TEST(DecodeMalformedTest, Ipv6ExtensionLengthBeyondTheCapture) {
  // A hop-by-hop header claiming 2048 octets in a 100-octet frame.
  const auto frame =
      Frame().Ethernet(kTypeIpv6).Ipv6(kProtoHopOpts).U8(kProtoUdp).U8(255).Payload(46).Build();
  const Decoded d = DecodeFrame(DLT_EN10MB, frame);
  EXPECT_EQ(d.result, DecodeResult::kPartial);
  EXPECT_EQ(NonZero(d.counters), One("truncated_ipv6_ext"));
  EXPECT_EQ(d.meta.l4_offset, 0);
  EXPECT_FALSE(d.meta.has(kMetaPorts));
}

// Fragments ---------------------------------------------------------------------------------

TEST(DecodeFragmentTest, Ipv4FirstFragmentHasPorts) {
  const auto frame = Frame()
                         .Ethernet(kTypeIpv4)
                         .Ipv4({.protocol = kProtoUdp, .id = 0xBEEF, .frag = 0x2000})
                         .Udp(5000, 5001)
                         .Payload(1472)
                         .Build();
  const Decoded d = DecodeFrame(DLT_EN10MB, frame);
  EXPECT_EQ(d.result, DecodeResult::kOk);
  EXPECT_EQ(NonZero(d.counters), One("ip_fragments"));
  ExpectMeta(d.meta, {.ip_version = 4,
                      .src = kSrc4Text,
                      .dst = kDst4Text,
                      .protocol = kProtoUdp,
                      .src_port = 5000,
                      .dst_port = 5001,
                      .flags = kL3Ports | kMetaFragment,
                      .l3_offset = kEth,
                      .l4_offset = kEth + kIp4,
                      .payload_offset = kEth + kIp4 + kUdp,
                      .l3_len = 1500,
                      .frag_id = 0xBEEF,
                      .frag_offset = 0,
                      .more_fragments = true});
  EXPECT_FALSE(d.meta.is_later_fragment());
}

TEST(DecodeFragmentTest, Ipv4LaterFragmentsHaveNoPorts) {
  struct Case {
    uint16_t frag;
    uint16_t offset;
    bool more;
  };
  // A middle fragment (more to come) and the last one; DF set on the last must not matter.
  for (const Case c : {Case{0x2000 | 185, 185, true}, Case{0x4000 | 370, 370, false}}) {
    const auto frame = Frame()
                           .Ethernet(kTypeIpv4)
                           .Ipv4({.protocol = kProtoUdp, .id = 0xBEEF, .frag = c.frag})
                           .Payload(100)  // data that happens to follow: not a UDP header
                           .Build();
    const Decoded d = DecodeFrame(DLT_EN10MB, frame);
    SCOPED_TRACE(testing::Message() << "offset " << c.offset);
    EXPECT_EQ(d.result, DecodeResult::kOk);
    EXPECT_EQ(NonZero(d.counters), One("ip_fragments"));
    ExpectMeta(d.meta, {.ip_version = 4,
                        .src = kSrc4Text,
                        .dst = kDst4Text,
                        .protocol = kProtoUdp,
                        .flags = kL3 | kMetaFragment,
                        .l3_offset = kEth,
                        .l3_len = kIp4 + 100,
                        .frag_id = 0xBEEF,
                        .frag_offset = c.offset,
                        .more_fragments = c.more});
    EXPECT_TRUE(d.meta.is_later_fragment());
  }
}

TEST(DecodeFragmentTest, Ipv4DontFragmentAloneIsNoFragment) {
  const auto frame = Frame()
                         .Ethernet(kTypeIpv4)
                         .Ipv4({.protocol = kProtoUdp, .id = 0xBEEF, .frag = 0x4000})
                         .Udp(1, 2)
                         .Build();
  const Decoded d = DecodeFrame(DLT_EN10MB, frame);
  EXPECT_EQ(d.result, DecodeResult::kOk);
  EXPECT_EQ(NonZero(d.counters), Counts{});
  EXPECT_FALSE(d.meta.has(kMetaFragment));
  EXPECT_EQ(d.meta.frag_id, 0u) << "the identification is only kept for fragments";
  EXPECT_EQ(d.meta.dst_port, 2);
}

TEST(DecodeFragmentTest, Ipv4LaterFragmentWithTruncatedOptions) {
  // A later fragment cut inside its options: the fragment fields are known, nothing else.
  const auto frame =
      Frame()
          .Ethernet(kTypeIpv4)
          .Ipv4({.protocol = kProtoTcp, .options = {1, 1, 1, 1, 1, 1, 1, 0}, .frag = 100})
          .Payload(8)
          .Build();
  const Decoded d =
      DecodePrefix(DLT_EN10MB, frame, kEth + kIp4 + 4, static_cast<uint32_t>(frame.size()));
  EXPECT_EQ(d.result, DecodeResult::kPartial);
  EXPECT_EQ(NonZero(d.counters), (Counts{{"ip_fragments", 1}, {"truncated_ipv4", 1}}));
  EXPECT_EQ(d.meta.frag_offset, 100);
  EXPECT_EQ(d.meta.l4_offset, 0);
}

TEST(DecodeFragmentTest, Ipv6FirstFragmentHasPorts) {
  const auto frame = Frame()
                         .Ethernet(kTypeIpv6)
                         .Ipv6(kProtoIpv6Frag)
                         .Ipv6Fragment(kProtoUdp, 0, true, 0xDEADBEEF)
                         .Udp(4500, 4500)
                         .Payload(100)
                         .Build();
  const Decoded d = DecodeFrame(DLT_EN10MB, frame);
  EXPECT_EQ(d.result, DecodeResult::kOk);
  EXPECT_EQ(NonZero(d.counters), One("ip_fragments"));
  ExpectMeta(d.meta, {.ip_version = 6,
                      .src = kSrc6Text,
                      .dst = kDst6Text,
                      .protocol = kProtoUdp,
                      .src_port = 4500,
                      .dst_port = 4500,
                      .flags = kL3Ports | kMetaFragment,
                      .l3_offset = kEth,
                      .l4_offset = kEth + kIp6 + 8,
                      .payload_offset = kEth + kIp6 + 8 + kUdp,
                      .l3_len = kIp6 + 8 + kUdp + 100,
                      .frag_id = 0xDEADBEEF,
                      .frag_offset = 0,
                      .more_fragments = true});
}

TEST(DecodeFragmentTest, Ipv6LaterFragmentHasNoPorts) {
  // Hop-by-hop, then the fragment header of the last fragment at offset 1448 octets.
  const auto frame = Frame()
                         .Ethernet(kTypeIpv6)
                         .Ipv6(kProtoHopOpts)
                         .Ipv6Ext(kProtoIpv6Frag, 0)
                         .Ipv6Fragment(kProtoTcp, 181, false, 0x01020304)
                         .Payload(60)
                         .Build();
  const Decoded d = DecodeFrame(DLT_EN10MB, frame);
  EXPECT_EQ(d.result, DecodeResult::kOk);
  EXPECT_EQ(NonZero(d.counters), One("ip_fragments"));
  ExpectMeta(d.meta, {.ip_version = 6,
                      .src = kSrc6Text,
                      .dst = kDst6Text,
                      .protocol = kProtoTcp,
                      .flags = kL3 | kMetaFragment,
                      .l3_offset = kEth,
                      .l3_len = kIp6 + 8 + 8 + 60,
                      .frag_id = 0x01020304,
                      .frag_offset = 181,
                      .more_fragments = false});
  EXPECT_TRUE(d.meta.is_later_fragment());
}

// Snaplen ------------------------------------------------------------------------------------

TEST(DecodeSnaplenTest, IpLengthComesFromTheHeaderWhenTheSnaplenCuts) {
  // A 1514-octet frame captured with a 64-octet snaplen.
  const auto full =
      Frame().Ethernet(kTypeIpv4).Ipv4().Tcp(49152, 443, kTcpAck | kTcpPsh).Payload(1460).Build();
  ASSERT_EQ(full.size(), 1514u);
  const Decoded d = DecodePrefix(DLT_EN10MB, full, 64, 1514);
  EXPECT_EQ(d.result, DecodeResult::kOk);
  EXPECT_EQ(NonZero(d.counters), Counts{});
  ExpectMeta(d.meta, {.ip_version = 4,
                      .src = kSrc4Text,
                      .dst = kDst4Text,
                      .protocol = kProtoTcp,
                      .src_port = 49152,
                      .dst_port = 443,
                      .tcp_flags = kTcpAck | kTcpPsh,
                      .flags = kL3Ports | kMetaTcpFlags,
                      .l3_offset = kEth,
                      .l4_offset = kEth + kIp4,
                      .payload_offset = kEth + kIp4 + kTcp,
                      .l3_len = 1500});

  const auto full6 = Frame().Ethernet(kTypeIpv6).Ipv6(kProtoUdp).Udp(1, 2).Payload(1452).Build();
  const Decoded d6 = DecodePrefix(DLT_EN10MB, full6, 70, 1514);
  EXPECT_EQ(d6.result, DecodeResult::kOk);
  EXPECT_EQ(NonZero(d6.counters), Counts{});
  EXPECT_EQ(d6.meta.l3_len, 1500u);
}

TEST(DecodeSnaplenTest, WirelenBelowCaplenIsTakenAsCaplen) {
  const auto frame = Frame().Ethernet(kTypeIpv4).Ipv4().Tcp(1, 2, kTcpSyn).Build();
  for (uint32_t wirelen : {0u, 1u, 40u}) {
    const Decoded d = DecodeFrame(DLT_EN10MB, frame, 0);
    const Decoded w = DecodePrefix(DLT_EN10MB, frame, frame.size(), wirelen);
    EXPECT_EQ(w.result, DecodeResult::kOk) << "wirelen " << wirelen;
    EXPECT_EQ(NonZero(w.counters), Counts{});
    EXPECT_EQ(w.meta.l3_len, d.meta.l3_len);
  }
}

// Counters -----------------------------------------------------------------------------------

TEST(DecodeCountersTest, ForEachVisitsEveryCounterOnceInOrder) {
  DecodeCounters c;
  uint64_t v = 1;
#define JARVIS_TEST_SET(name, help) c.name = v++;
  JARVIS_DECODE_COUNTERS(JARVIS_TEST_SET)
#undef JARVIS_TEST_SET
  std::vector<std::string> names;
  std::set<std::string> unique;
  uint64_t expect = 1;
  c.ForEach([&](std::string_view name, std::string_view help, uint64_t value) {
    EXPECT_EQ(value, expect++) << name;
    EXPECT_FALSE(help.empty()) << name;
    names.emplace_back(name);
    unique.emplace(name);
  });
  EXPECT_EQ(names.size(), unique.size());
  EXPECT_EQ(names.size(), sizeof(DecodeCounters) / sizeof(uint64_t));
  for (const char* stable :
       {"non_ip", "unsupported_link_type", "truncated_l2", "truncated_vlan", "too_many_vlan_tags",
        "truncated_mpls", "too_many_mpls_labels", "truncated_ipv4", "bad_ipv4_header",
        "truncated_ipv6", "bad_ipv6_header", "truncated_ipv6_ext", "too_many_ipv6_ext",
        "truncated_tcp", "bad_tcp_header", "truncated_udp", "truncated_icmp", "truncated_sctp",
        "ip_fragments"}) {
    EXPECT_EQ(unique.count(stable), 1u) << stable;
  }
  EXPECT_EQ(names.size(), 19u);
}

TEST(DecodeCountersTest, PlusEqualsAddsEveryCounter) {
  DecodeCounters a;
  DecodeCounters b;
  uint64_t v = 1;
#define JARVIS_TEST_SET(name, help) \
  a.name = v;                       \
  b.name = 100 * v++;
  JARVIS_DECODE_COUNTERS(JARVIS_TEST_SET)
#undef JARVIS_TEST_SET
  a += b;
  uint64_t expect = 1;
  a.ForEach([&](std::string_view name, std::string_view, uint64_t value) {
    EXPECT_EQ(value, 101 * expect++) << name;
  });
}

TEST(DecodeCountersTest, CountersAccumulateAcrossPackets) {
  DecodeCounters counters;
  PacketMeta meta;
  const auto arp = Frame().Ethernet(kTypeArp).Payload(28).Build();
  const auto ok = Frame().Ethernet(kTypeIpv4).Ipv4().Tcp(1, 2, kTcpSyn).Build();
  for (int i = 0; i < 3; ++i) {
    PacketView v{.data = arp.data(),
                 .caplen = static_cast<uint32_t>(arp.size()),
                 .wirelen = static_cast<uint32_t>(arp.size())};
    EXPECT_EQ(Decode(DLT_EN10MB, v, meta, counters), DecodeResult::kNotIp);
    PacketView w{.data = ok.data(),
                 .caplen = static_cast<uint32_t>(ok.size()),
                 .wirelen = static_cast<uint32_t>(ok.size())};
    EXPECT_EQ(Decode(DLT_EN10MB, w, meta, counters), DecodeResult::kOk);
  }
  EXPECT_EQ(NonZero(counters), (Counts{{"non_ip", 3}}));
  EXPECT_EQ(meta.dst_port, 2) << "the last decode wins; nothing is left from the ARP frames";
}

}  // namespace
}  // namespace jarvis
