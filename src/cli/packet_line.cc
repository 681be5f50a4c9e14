#include "cli/packet_line.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <ctime>

#include "flow/flow_record.h"

namespace jarvis::cli {

namespace {

std::string ProtocolName(uint8_t proto) {
  switch (proto) {
    case kProtoTcp:
      return "TCP";
    case kProtoUdp:
      return "UDP";
    case kProtoIcmp:
      return "ICMP";
    case kProtoIcmpv6:
      return "ICMPv6";
    case kProtoSctp:
      return "SCTP";
    case kProtoEsp:
      return "ESP";
    case kProtoAh:
      return "AH";
    case 47:
      return "GRE";
    default:
      return fmt::format("proto-{}", proto);
  }
}

std::string FormatTime(TimestampNs ts) {
  const time_t secs = static_cast<time_t>(ts / kNanosPerSecond);
  const int64_t nanos = ts % kNanosPerSecond;
  struct tm tm {};
  localtime_r(&secs, &tm);
  return fmt::format("{:02}:{:02}:{:02}.{:09}", tm.tm_hour, tm.tm_min, tm.tm_sec, nanos);
}

}  // namespace

std::string FormatPacketLine(const PacketView& pkt, const PacketMeta& meta, DecodeResult result) {
  std::string line = FormatTime(pkt.ts_ns);
  if (meta.vlan != 0) line += fmt::format(" vlan {}", meta.vlan);
  if (!meta.has(kMetaL3)) {
    line += result == DecodeResult::kMalformed ? " malformed IP" : " non-IP";
    line += fmt::format(", length {}", pkt.wirelen);
    return line;
  }
  const std::string src = AddressString(meta.src_addr, meta.ip_version);
  const std::string dst = AddressString(meta.dst_addr, meta.ip_version);
  line += meta.ip_version == 6 ? " IPv6 " : " IPv4 ";
  if (meta.has(kMetaPorts) && meta.protocol != kProtoIcmp && meta.protocol != kProtoIcmpv6) {
    line += fmt::format("{}.{} > {}.{}: {}", src, meta.src_port, dst, meta.dst_port,
                        ProtocolName(meta.protocol));
  } else {
    line += fmt::format("{} > {}: {}", src, dst, ProtocolName(meta.protocol));
    if (meta.has(kMetaPorts)) {
      line += fmt::format(" type {} code {}", meta.dst_port >> 8, meta.dst_port & 0xFF);
    }
  }
  if (meta.has(kMetaTcpFlags)) line += " [" + TcpFlagsString(meta.tcp_flags) + "]";
  if (meta.has(kMetaFragment)) {
    line += fmt::format(" frag id {} offset {}{}", meta.frag_id, meta.frag_offset * 8,
                        meta.more_fragments ? "+" : "");
  }
  line += fmt::format(", length {}", meta.l3_len);
  if (meta.has(kMetaTruncated)) line += " (truncated)";
  return line;
}

}  // namespace jarvis::cli
