// What the flow meter hands out: a finished (or snapshotted) bidirectional flow.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/packet.h"

namespace jarvis {

enum class FlowState : uint8_t { kActive, kClosing, kClosed };

// IPFIX information element 136, flowEndReason.
enum class EndReason : uint8_t {
  kNone = 0,             // still active (a snapshot)
  kIdleTimeout = 1,
  kActiveTimeout = 2,
  kEndOfFlow = 3,        // TCP FIN both ways or RST
  kForcedEnd = 4,        // the meter stopped (end of file, capture stopped)
  kLackOfResources = 5,  // evicted to make room in a full table
};

std::string_view FlowStateName(FlowState s);     // "ACTIVE", "CLOSING", "CLOSED"
std::string_view EndReasonName(EndReason r);     // "idle_timeout", ...; "" for kNone

// One bidirectional flow. `src` is the initiator: the sender of the first packet seen, or the
// receiver of a first-seen TCP SYN+ACK. fwd is initiator to responder, rev the other way.
// Octets are IP-layer octets (IPv4 total length, IPv6 40 + payload length).
struct FlowRecord {
  uint64_t flow_id = 0;
  uint8_t src_addr[16] = {};  // network byte order; IPv4 in the first 4 bytes
  uint8_t dst_addr[16] = {};
  uint16_t src_port = 0;  // ICMP/ICMPv6: 0
  uint16_t dst_port = 0;  // ICMP/ICMPv6: type << 8 | code of the initiator's first message
  uint16_t vlan = 0;
  uint16_t inner_vlan = 0;
  uint8_t ip_version = 0;
  uint8_t protocol = 0;
  uint8_t tcp_flags_fwd = 0;
  uint8_t tcp_flags_rev = 0;
  FlowState state = FlowState::kActive;
  EndReason end_reason = EndReason::kNone;
  uint16_t icmp_type_code_rev = 0;  // ICMP: type << 8 | code of the responder's first message
  uint64_t packets_fwd = 0, packets_rev = 0;
  uint64_t bytes_fwd = 0, bytes_rev = 0;
  TimestampNs first_ns = 0;  // first packet of this record (after an active-timeout export:
  TimestampNs last_ns = 0;   // the first packet after it)

  uint64_t packets() const { return packets_fwd + packets_rev; }
  uint64_t bytes() const { return bytes_fwd + bytes_rev; }
  double duration_sec() const { return static_cast<double>(last_ns - first_ns) / 1e9; }
};

// "SYN|ACK|FIN" style names, in the order SYN, ACK, FIN, RST, PSH, URG, ECE, CWR.
std::string TcpFlagsString(uint8_t flags);
// The same, from a table built once; valid for the life of the program.
std::string_view TcpFlagsName(uint8_t flags);

// Textual address of a record side ("192.0.2.1", "2001:db8::1").
std::string AddressString(const uint8_t* addr, uint8_t ip_version);

}  // namespace jarvis
