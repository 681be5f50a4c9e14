#include "decode/decoder.h"

#include <pcap/dlt.h>

#include <algorithm>
#include <cstring>

namespace jarvis {
namespace {

constexpr uint16_t kEthIpv4 = 0x0800;
constexpr uint16_t kEthIpv6 = 0x86DD;
constexpr uint16_t kEthVlan = 0x8100;
constexpr uint16_t kEthQinQ = 0x88A8;
constexpr uint16_t kEthQinQOld = 0x9100;
constexpr uint16_t kEthMplsUnicast = 0x8847;
constexpr uint16_t kEthMplsMulticast = 0x8848;
constexpr uint16_t kEthPppoeSession = 0x8864;

constexpr int kMaxVlanTags = 4;
constexpr int kMaxMplsLabels = 8;
constexpr int kMaxIpv6ExtHeaders = 8;

// LINKTYPE_RAW as stored in files; libpcap maps it to DLT_RAW, but keep both for callers
// that pass a link type straight from a file header.
constexpr int kLinktypeRaw = 101;

inline uint16_t Load16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline uint32_t Load32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 |
         static_cast<uint32_t>(p[2]) << 8 | p[3];
}

// The decoder's walk over one packet. `off` only grows, and every read checks it against
// `end` first. `end` starts as the caplen and shrinks to the end of the IP datagram once its
// length is known, so that bytes after it (Ethernet padding, a trailer) are never read as
// headers.
struct Walk {
  const uint8_t* data;
  uint32_t end;
  uint32_t wirelen;  // >= the caplen
  uint32_t off;      // <= end
  PacketMeta& meta;
  DecodeCounters& counters;

  uint32_t left() const { return end - off; }
  // Ends the walk at the IP datagram that starts at `off` and is `l3_len` octets long.
  // REQUIRES: off + l3_len <= wirelen.
  void LimitToDatagram(uint32_t l3_len) { end = std::min(end, off + l3_len); }
  const uint8_t* at() const { return data + off; }
};

DecodeResult DecodeIpv4(Walk& w);
DecodeResult DecodeIpv6(Walk& w);

// Dispatches on the first nibble where a link layer does not say which IP version follows.
DecodeResult DecodeIpByVersion(Walk& w) {
  if (w.left() < 1) {
    ++w.counters.truncated_l2;
    return DecodeResult::kNotIp;
  }
  switch (w.at()[0] >> 4) {
    case 4:
      return DecodeIpv4(w);
    case 6:
      return DecodeIpv6(w);
    default:
      ++w.counters.non_ip;
      return DecodeResult::kNotIp;
  }
}

// Follows an Ethernet-style type field through VLAN tags, MPLS and PPPoE to IP.
// `vlan_tags` tags were already taken off (their ids are in the meta).
DecodeResult DecodeEthertype(Walk& w, uint16_t type, int vlan_tags = 0) {
  for (;;) {
    switch (type) {
      case kEthIpv4:
        return DecodeIpv4(w);
      case kEthIpv6:
        return DecodeIpv6(w);
      case kEthVlan:
      case kEthQinQ:
      case kEthQinQOld: {
        if (w.left() < 4) {
          ++w.counters.truncated_vlan;
          return DecodeResult::kNotIp;
        }
        if (vlan_tags == kMaxVlanTags) {
          ++w.counters.too_many_vlan_tags;
          return DecodeResult::kNotIp;
        }
        uint16_t vid = Load16(w.at()) & 0x0FFF;
        if (vlan_tags == 0) {
          w.meta.vlan = vid;
        } else if (vlan_tags == 1) {
          w.meta.inner_vlan = vid;
        }
        ++vlan_tags;
        type = Load16(w.at() + 2);
        w.off += 4;
        break;
      }
      case kEthMplsUnicast:
      case kEthMplsMulticast: {
        bool bottom = false;
        while (!bottom) {
          if (w.left() < 4) {
            ++w.counters.truncated_mpls;
            return DecodeResult::kNotIp;
          }
          if (w.meta.mpls_labels == kMaxMplsLabels) {
            ++w.counters.too_many_mpls_labels;
            return DecodeResult::kNotIp;
          }
          bottom = (w.at()[2] & 0x01) != 0;
          ++w.meta.mpls_labels;
          w.off += 4;
        }
        // MPLS does not say what it carries: look at the first nibble (RFC 4385). 0 is the
        // pseudowire control word, followed by an Ethernet frame.
        if (w.left() < 1) {
          ++w.counters.truncated_mpls;
          return DecodeResult::kNotIp;
        }
        uint8_t nibble = w.at()[0] >> 4;
        if (nibble == 4 || nibble == 6) return DecodeIpByVersion(w);
        if (nibble != 0) {
          ++w.counters.non_ip;
          return DecodeResult::kNotIp;
        }
        if (w.left() < 4 + 14) {
          ++w.counters.truncated_l2;
          return DecodeResult::kNotIp;
        }
        w.off += 4;
        type = Load16(w.at() + 12);
        w.off += 14;
        break;
      }
      case kEthPppoeSession: {
        // 6-byte PPPoE header, then a 2-byte PPP protocol.
        if (w.left() < 8) {
          ++w.counters.truncated_l2;
          return DecodeResult::kNotIp;
        }
        uint16_t ppp = Load16(w.at() + 6);
        w.off += 8;
        if (ppp == 0x0021) return DecodeIpv4(w);
        if (ppp == 0x0057) return DecodeIpv6(w);
        ++w.counters.non_ip;
        return DecodeResult::kNotIp;
      }
      default:
        ++w.counters.non_ip;
        return DecodeResult::kNotIp;
    }
  }
}

// PPP (RFC 1661) with optional HDLC address/control bytes and protocol field compression.
DecodeResult DecodePpp(Walk& w) {
  if (w.left() >= 2 && w.at()[0] == 0xFF && w.at()[1] == 0x03) w.off += 2;
  // 0xFF alone is the HDLC all-stations address cut before its control byte, not a
  // compressed protocol field.
  if (w.left() < 1 || (w.left() == 1 && w.at()[0] == 0xFF)) {
    ++w.counters.truncated_l2;
    return DecodeResult::kNotIp;
  }
  uint16_t proto;
  if (w.at()[0] & 0x01) {  // compressed one-byte protocol
    proto = w.at()[0];
    w.off += 1;
  } else {
    if (w.left() < 2) {
      ++w.counters.truncated_l2;
      return DecodeResult::kNotIp;
    }
    proto = Load16(w.at());
    w.off += 2;
  }
  switch (proto) {
    case 0x0021:
      return DecodeIpv4(w);
    case 0x0057:
      return DecodeIpv6(w);
    case 0x0281:
      return DecodeEthertype(w, kEthMplsUnicast);
    case 0x0283:
      return DecodeEthertype(w, kEthMplsMulticast);
    default:
      ++w.counters.non_ip;
      return DecodeResult::kNotIp;
  }
}

// BSD loopback: a 4-byte address family in the capturing host's byte order (DLT_NULL) or in
// network byte order (DLT_LOOP).
DecodeResult DecodeNullLoop(Walk& w) {
  if (w.left() < 4) {
    ++w.counters.truncated_l2;
    return DecodeResult::kNotIp;
  }
  w.off += 4;
  // The family is 2 for IPv4 everywhere and 10, 24, 28 or 30 for IPv6; rather than guess the
  // capturing host's byte order, let the IP version nibble decide.
  return DecodeIpByVersion(w);
}

DecodeResult DecodeTransport(Walk& w, bool later_fragment) {
  PacketMeta& m = w.meta;
  if (later_fragment) return DecodeResult::kOk;  // no transport header in this fragment
  m.l4_offset = static_cast<uint16_t>(w.off);
  const uint32_t left = w.left();
  const uint8_t* p = w.at();
  const uint32_t tcp = m.protocol == kProtoTcp;
  if ((tcp | (m.protocol == kProtoUdp)) & (left >= 20)) {
    // TCP and UDP headers that are whole, alike and without a branch on which of the two it is
    // (they come mixed, and a branch on it was mispredicted often). The switch below takes
    // the ones cut short.
    const uint32_t mask = 0 - tcp;
    m.src_port = Load16(p);
    m.dst_port = Load16(p + 2);
    m.tcp_flags = static_cast<uint8_t>(p[13] & mask);
    m.flags |= static_cast<uint16_t>(kMetaPorts | (kMetaTcpFlags & mask));
    const uint32_t tcp_hlen = static_cast<uint32_t>(p[12] >> 4) * 4;
    if (tcp & (tcp_hlen < 20)) {
      ++w.counters.bad_tcp_header;
      m.flags |= kMetaTruncated;
      return DecodeResult::kPartial;
    }
    const uint32_t hlen = 8 ^ ((tcp_hlen ^ 8) & mask);  // UDP: 8
    // TCP options cut by the snaplen are not an error: nothing the meta holds lives there.
    if (hlen <= left) m.payload_offset = static_cast<uint16_t>(w.off + hlen);
    return DecodeResult::kOk;
  }
  switch (m.protocol) {
    case kProtoTcp: {  // cut short inside the 20-byte header (whole ones went above)
      if (left >= 4) {
        m.src_port = Load16(p);
        m.dst_port = Load16(p + 2);
        m.flags |= kMetaPorts;
      }
      if (left >= 14) {
        m.tcp_flags = p[13];
        m.flags |= kMetaTcpFlags;
      }
      ++w.counters.truncated_tcp;
      m.flags |= kMetaTruncated;
      return DecodeResult::kPartial;
    }
    case kProtoUdp: {  // shorter than 20 bytes (longer ones went above)
      if (left >= 4) {
        m.src_port = Load16(p);
        m.dst_port = Load16(p + 2);
        m.flags |= kMetaPorts;
      }
      if (left < 8) {
        ++w.counters.truncated_udp;
        m.flags |= kMetaTruncated;
        return DecodeResult::kPartial;
      }
      m.payload_offset = static_cast<uint16_t>(w.off + 8);
      return DecodeResult::kOk;
    }
    case kProtoIcmp:
    case kProtoIcmpv6: {
      if (left < 4) {
        ++w.counters.truncated_icmp;
        m.flags |= kMetaTruncated;
        return DecodeResult::kPartial;
      }
      m.src_port = 0;
      m.dst_port = static_cast<uint16_t>(p[0] << 8 | p[1]);
      m.flags |= kMetaPorts;
      m.payload_offset = static_cast<uint16_t>(w.off + 4);
      return DecodeResult::kOk;
    }
    case kProtoSctp: {
      if (left >= 4) {
        m.src_port = Load16(p);
        m.dst_port = Load16(p + 2);
        m.flags |= kMetaPorts;
      }
      if (left < 12) {
        ++w.counters.truncated_sctp;
        m.flags |= kMetaTruncated;
        return DecodeResult::kPartial;
      }
      m.payload_offset = static_cast<uint16_t>(w.off + 12);
      return DecodeResult::kOk;
    }
    default:
      m.l4_offset = 0;
      return DecodeResult::kOk;  // a protocol without ports (GRE, ESP, IGMP, ...)
  }
}

DecodeResult DecodeIpv4(Walk& w) {
  PacketMeta& m = w.meta;
  if (w.left() < 20) {
    ++w.counters.truncated_ipv4;
    return DecodeResult::kNotIp;
  }
  const uint8_t* p = w.at();
  const uint32_t ihl = static_cast<uint32_t>(p[0] & 0x0F) * 4;
  const uint32_t total_len = Load16(p + 2);
  const uint32_t wire_left = w.wirelen > w.off ? w.wirelen - w.off : 0;
  if ((p[0] >> 4) != 4 || ihl < 20 || (total_len != 0 && total_len < ihl)) {
    ++w.counters.bad_ipv4_header;
    return DecodeResult::kMalformed;
  }
  m.ip_version = 4;
  m.l3_offset = static_cast<uint16_t>(w.off);
  m.protocol = p[9];
  std::memcpy(m.src_addr, p + 12, 4);
  std::memcpy(m.dst_addr, p + 16, 4);
  m.flags |= kMetaL3;
  DecodeResult partial = DecodeResult::kOk;
  if (total_len == 0) {
    // Segmentation offload on the capturing host leaves 0 here; the wire length is the truth.
    m.l3_len = wire_left;
  } else if (total_len > wire_left) {
    // The header claims more than the frame carried: count it and report what was seen.
    ++w.counters.bad_ipv4_header;
    m.l3_len = wire_left;
    m.flags |= kMetaTruncated;
    partial = DecodeResult::kPartial;
  } else {
    m.l3_len = total_len;
  }
  w.LimitToDatagram(m.l3_len);

  const uint16_t frag = Load16(p + 6);
  m.more_fragments = (frag & 0x2000) != 0;
  m.frag_offset = frag & 0x1FFF;
  if (m.more_fragments || m.frag_offset != 0) {
    m.flags |= kMetaFragment;
    m.frag_id = Load16(p + 4);
    ++w.counters.ip_fragments;
  }
  if (ihl > w.left()) {
    ++w.counters.truncated_ipv4;
    m.flags |= kMetaTruncated;
    return DecodeResult::kPartial;
  }
  w.off += ihl;
  DecodeResult r = DecodeTransport(w, m.frag_offset != 0);
  return r == DecodeResult::kOk ? partial : r;
}

// Walks the IPv6 extension header chain that starts at `w.off` with next header `next`, then
// the transport header.
DecodeResult DecodeIpv6Extensions(Walk& w, uint8_t next) {
  PacketMeta& m = w.meta;
  bool later_fragment = false;
  for (int n = 0;; ++n) {
    switch (next) {
      case kProtoHopOpts:
      case kProtoIpv6Route:
      case kProtoIpv6DstOpts:
      case 135:  // mobility
      case 139:  // HIP
      case 140:  // shim6
      case kProtoAh:
      case kProtoIpv6Frag:
        break;
      default:
        m.protocol = next;
        return DecodeTransport(w, later_fragment);
    }
    if (n == kMaxIpv6ExtHeaders) {
      ++w.counters.too_many_ipv6_ext;
      m.protocol = next;
      m.flags |= kMetaTruncated;
      return DecodeResult::kPartial;
    }
    if (w.left() < 8) {  // every extension header is at least 8 octets
      ++w.counters.truncated_ipv6_ext;
      m.protocol = next;
      m.flags |= kMetaTruncated;
      return DecodeResult::kPartial;
    }
    const uint8_t* h = w.at();
    uint32_t len;
    if (next == kProtoIpv6Frag) {
      len = 8;
      uint16_t off_flags = Load16(h + 2);
      m.frag_offset = off_flags >> 3;
      m.more_fragments = (off_flags & 0x0001) != 0;
      m.frag_id = Load32(h + 4);
      m.flags |= kMetaFragment;
      ++w.counters.ip_fragments;
      later_fragment = m.frag_offset != 0;
    } else if (next == kProtoAh) {
      len = (static_cast<uint32_t>(h[1]) + 2) * 4;
    } else {
      len = (static_cast<uint32_t>(h[1]) + 1) * 8;
    }
    if (len > w.left()) {
      ++w.counters.truncated_ipv6_ext;
      m.protocol = h[0];
      m.flags |= kMetaTruncated;
      return DecodeResult::kPartial;
    }
    next = h[0];
    w.off += len;
    if (later_fragment) {
      m.protocol = next;
      return DecodeResult::kOk;
    }
  }
}

DecodeResult DecodeIpv6(Walk& w) {
  PacketMeta& m = w.meta;
  if (w.left() < 40) {
    ++w.counters.truncated_ipv6;
    return DecodeResult::kNotIp;
  }
  const uint8_t* p = w.at();
  if ((p[0] >> 4) != 6) {
    ++w.counters.bad_ipv6_header;
    return DecodeResult::kMalformed;
  }
  m.ip_version = 6;
  m.l3_offset = static_cast<uint16_t>(w.off);
  std::memcpy(m.src_addr, p + 8, 16);
  std::memcpy(m.dst_addr, p + 24, 16);
  m.flags |= kMetaL3;
  const uint32_t payload_len = Load16(p + 4);
  const uint32_t wire_left = w.wirelen > w.off ? w.wirelen - w.off : 0;
  DecodeResult partial = DecodeResult::kOk;
  if (payload_len == 0) {
    // A jumbogram or segmentation offload: the wire length is the truth then.
    m.l3_len = wire_left;
  } else if (40 + payload_len > wire_left) {
    // The header claims more than the frame carried: count it and report what was seen.
    ++w.counters.bad_ipv6_header;
    m.l3_len = wire_left;
    m.flags |= kMetaTruncated;
    partial = DecodeResult::kPartial;
  } else {
    m.l3_len = 40 + payload_len;
  }
  w.LimitToDatagram(m.l3_len);
  w.off += 40;
  DecodeResult r = DecodeIpv6Extensions(w, p[6]);
  return r == DecodeResult::kOk ? partial : r;
}

}  // namespace

DecodeCounters& DecodeCounters::operator+=(const DecodeCounters& o) {
#define JARVIS_DECODE_ADD(name, help) name += o.name;
  JARVIS_DECODE_COUNTERS(JARVIS_DECODE_ADD)
#undef JARVIS_DECODE_ADD
  return *this;
}

DecodeCounters& DecodeCounters::operator-=(const DecodeCounters& o) {
#define JARVIS_DECODE_SUB(name, help) name -= o.name;
  JARVIS_DECODE_COUNTERS(JARVIS_DECODE_SUB)
#undef JARVIS_DECODE_SUB
  return *this;
}

bool IsSupportedLinkType(int link_type) {
  switch (link_type) {
    case DLT_EN10MB:
    case DLT_LINUX_SLL:
    case DLT_LINUX_SLL2:
    case DLT_RAW:
    case kLinktypeRaw:
    case DLT_IPV4:
    case DLT_IPV6:
    case DLT_NULL:
    case DLT_LOOP:
    case DLT_PPP:
    case DLT_PPP_SERIAL:
    case DLT_C_HDLC:
      return true;
    default:
      return false;
  }
}

// Flattened: the per-layer helpers inline into one body, so the walk state stays in registers.
__attribute__((flatten)) DecodeResult Decode(int link_type, const PacketView& pkt, PacketMeta& meta,
                    DecodeCounters& counters) {
  std::memset(&meta, 0, sizeof(meta));
  Walk w{pkt.data, pkt.caplen, std::max(pkt.wirelen, pkt.caplen), 0, meta, counters};
  switch (link_type) {
    case DLT_EN10MB:
      if (w.left() < 14) {
        ++counters.truncated_l2;
        return DecodeResult::kNotIp;
      }
      if (w.left() >= 18) {
        // One 802.1Q tag is taken without a branch on whether it is there: tagged and untagged
        // frames come mixed, and a branch on it was mispredicted often.
        // (Masks, not conditional expressions, which the compiler turns back into a branch.)
        const uint32_t outer = Load16(pkt.data + 12);
        const uint32_t tagged = outer == kEthVlan;
        const uint32_t mask = 0 - tagged;
        meta.vlan = static_cast<uint16_t>(Load16(pkt.data + 14) & 0x0FFF & mask);
        w.off = 14 + 4 * tagged;
        const uint32_t type = outer ^ ((outer ^ Load16(pkt.data + 16)) & mask);
        return DecodeEthertype(w, static_cast<uint16_t>(type), static_cast<int>(tagged));
      }
      w.off = 14;
      return DecodeEthertype(w, Load16(pkt.data + 12));
    case DLT_LINUX_SLL:
      // pkttype(2) hatype(2) addrlen(2) addr(8) protocol(2)
      if (w.left() < 16) {
        ++counters.truncated_l2;
        return DecodeResult::kNotIp;
      }
      w.off = 16;
      return DecodeEthertype(w, Load16(pkt.data + 14));
    case DLT_LINUX_SLL2:
      // protocol(2) reserved(2) ifindex(4) hatype(2) pkttype(1) addrlen(1) addr(8)
      if (w.left() < 20) {
        ++counters.truncated_l2;
        return DecodeResult::kNotIp;
      }
      w.off = 20;
      return DecodeEthertype(w, Load16(pkt.data));
    case DLT_RAW:
    case kLinktypeRaw:
      return DecodeIpByVersion(w);
    case DLT_IPV4:
      return DecodeIpv4(w);
    case DLT_IPV6:
      return DecodeIpv6(w);
    case DLT_NULL:
    case DLT_LOOP:
      return DecodeNullLoop(w);
    case DLT_PPP:
    case DLT_PPP_SERIAL:
      return DecodePpp(w);
    case DLT_C_HDLC:
      // address(1) control(1) ethertype(2)
      if (w.left() < 4) {
        ++counters.truncated_l2;
        return DecodeResult::kNotIp;
      }
      w.off = 4;
      return DecodeEthertype(w, Load16(pkt.data + 2));
    default:
      ++counters.unsupported_link_type;
      return DecodeResult::kNotIp;
  }
}

}  // namespace jarvis
