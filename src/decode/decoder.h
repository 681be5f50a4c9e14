// L2..L4 decoding into a PacketMeta: the flow key fields and what the flow meter needs.
//
// The decoder allocates nothing, keeps no state between packets and never reads outside
// [data, data + caplen). A packet that is cut short or malformed bumps one named counter in
// DecodeCounters and yields whatever was complete before the damage (a TCP header cut after
// its ports still gives the ports): bad packets are counters, not errors.
#pragma once

#include <cstdint>
#include <string_view>

#include "core/packet.h"

namespace jarvis {

// TCP flag bits as they appear in the TCP header's flags byte.
enum TcpFlag : uint8_t {
  kTcpFin = 0x01,
  kTcpSyn = 0x02,
  kTcpRst = 0x04,
  kTcpPsh = 0x08,
  kTcpAck = 0x10,
  kTcpUrg = 0x20,
  kTcpEce = 0x40,
  kTcpCwr = 0x80,
};

enum IpProto : uint8_t {
  kProtoHopOpts = 0,
  kProtoIcmp = 1,
  kProtoTcp = 6,
  kProtoUdp = 17,
  kProtoIpv6Route = 43,
  kProtoIpv6Frag = 44,
  kProtoEsp = 50,
  kProtoAh = 51,
  kProtoIcmpv6 = 58,
  kProtoIpv6NoNext = 59,
  kProtoIpv6DstOpts = 60,
  kProtoSctp = 132,
};

// Which parts of PacketMeta are valid.
enum MetaFlag : uint16_t {
  kMetaL3 = 1 << 0,         // ip_version, addresses, protocol, l3_len are set
  kMetaPorts = 1 << 1,      // src_port/dst_port are set (ICMP: type/code, see below)
  kMetaTcpFlags = 1 << 2,   // tcp_flags is set
  kMetaFragment = 1 << 3,   // the packet is an IP fragment (first or later)
  kMetaTruncated = 1 << 4,  // cut short by the snaplen or damaged; some fields may be missing
};

struct PacketMeta {
  // Addresses in network byte order; IPv4 uses the first 4 bytes, the rest are zero.
  alignas(8) uint8_t src_addr[16];
  alignas(8) uint8_t dst_addr[16];
  uint16_t src_port;  // host byte order. ICMP/ICMPv6: 0
  uint16_t dst_port;  // host byte order. ICMP/ICMPv6: type << 8 | code (NetFlow convention)
  uint16_t vlan;      // outermost 802.1Q VLAN id, 0 when untagged
  uint16_t inner_vlan;  // second tag of QinQ, 0 when absent
  uint8_t ip_version;   // 4 or 6, 0 when no IP layer was found
  uint8_t protocol;     // IP protocol of the transport header (after IPv6 extension headers)
  uint8_t tcp_flags;    // TcpFlag bits
  uint8_t mpls_labels;  // MPLS labels popped on the way to IP
  uint16_t flags;       // MetaFlag bits
  uint16_t l3_offset;   // offset of the IP header in the packet
  uint16_t l4_offset;   // offset of the transport header; 0 when there is none
  uint16_t payload_offset;  // offset of the transport payload; 0 when unknown
  uint32_t l3_len;      // IP-layer octets as the header states them (IPv4 total length,
                        // IPv6 40 + payload length): the NetFlow/IPFIX octet count. The
                        // octets on the wire from the IP header on when the header says 0
                        // (offload, jumbogram) or claims more than the wire carried.
  uint32_t frag_id;     // IPv4 identification or IPv6 fragment identification
  uint16_t frag_offset; // fragment offset in 8-octet units; 0 for a first fragment
  bool more_fragments;

  bool has(MetaFlag f) const { return (flags & f) != 0; }
  // A fragment that carries no transport header (offset > 0).
  bool is_later_fragment() const { return has(kMetaFragment) && frag_offset != 0; }
};

// One counter per reason a packet could not be decoded in full. Names are stable: they show up
// in metrics and summaries.
#define JARVIS_DECODE_COUNTERS(X)                                                    \
  X(non_ip, "frames with no IP layer (ARP, STP, LLDP, ...)")                         \
  X(unsupported_link_type, "frames of a link type the decoder does not know")        \
  X(truncated_l2, "frames cut short inside the link-layer header")                   \
  X(truncated_vlan, "frames cut short inside an 802.1Q tag")                         \
  X(too_many_vlan_tags, "frames with more VLAN tags than the decoder follows")      \
  X(truncated_mpls, "frames cut short inside an MPLS label stack")                   \
  X(too_many_mpls_labels, "frames whose MPLS label stack is deeper than followed")   \
  X(truncated_ipv4, "IPv4 headers cut short")                                        \
  X(bad_ipv4_header, "IPv4 headers with a bad version, IHL or total length")         \
  X(truncated_ipv6, "IPv6 headers cut short")                                        \
  X(bad_ipv6_header, "IPv6 headers with a bad version or payload length")            \
  X(truncated_ipv6_ext, "IPv6 extension headers cut short")                          \
  X(too_many_ipv6_ext, "IPv6 extension header chains longer than followed")          \
  X(truncated_tcp, "TCP headers cut short")                                          \
  X(bad_tcp_header, "TCP headers with a data offset below 5")                        \
  X(truncated_udp, "UDP headers cut short")                                          \
  X(truncated_icmp, "ICMP/ICMPv6 headers cut short")                                 \
  X(truncated_sctp, "SCTP common headers cut short")                                 \
  X(ip_fragments, "IP fragments (first and later); not an error")

struct DecodeCounters {
#define JARVIS_DECODE_FIELD(name, help) uint64_t name = 0;
  JARVIS_DECODE_COUNTERS(JARVIS_DECODE_FIELD)
#undef JARVIS_DECODE_FIELD

  DecodeCounters& operator+=(const DecodeCounters& o);
  DecodeCounters& operator-=(const DecodeCounters& o);
  // Calls fn(name, help, value) for every counter, in declaration order.
  template <class Fn>
  void ForEach(Fn&& fn) const {
#define JARVIS_DECODE_VISIT(name, help) fn(std::string_view(#name), std::string_view(help), name);
    JARVIS_DECODE_COUNTERS(JARVIS_DECODE_VISIT)
#undef JARVIS_DECODE_VISIT
  }
};

enum class DecodeResult : uint8_t {
  kOk,         // IP found; every header up to the transport header decoded
  kPartial,    // IP found but something after it was cut short or damaged (see counters)
  kNotIp,      // no IP layer (counted in non_ip or in a truncated_l2-style counter)
  kMalformed,  // an IP header was found but cannot be trusted (bad_ipv4_header/bad_ipv6_header)
};

// Decodes `pkt` whose link layer is the libpcap DLT `link_type`. Always writes `meta`.
// Thread safety: pure function; `counters` belongs to the calling worker.
DecodeResult Decode(int link_type, const PacketView& pkt, PacketMeta& meta,
                    DecodeCounters& counters);

// True when Decode knows the link type.
bool IsSupportedLinkType(int link_type);

}  // namespace jarvis
