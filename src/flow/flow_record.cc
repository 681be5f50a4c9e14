#include "flow/flow_record.h"

#include <arpa/inet.h>

namespace jarvis {

std::string_view FlowStateName(FlowState s) {
  switch (s) {
    case FlowState::kActive:
      return "ACTIVE";
    case FlowState::kClosing:
      return "CLOSING";
    case FlowState::kClosed:
      return "CLOSED";
  }
  return "ACTIVE";
}

std::string_view EndReasonName(EndReason r) {
  switch (r) {
    case EndReason::kNone:
      return "";
    case EndReason::kIdleTimeout:
      return "idle_timeout";
    case EndReason::kActiveTimeout:
      return "active_timeout";
    case EndReason::kEndOfFlow:
      return "end_of_flow";
    case EndReason::kForcedEnd:
      return "forced_end";
    case EndReason::kLackOfResources:
      return "lack_of_resources";
  }
  return "";
}

std::string TcpFlagsString(uint8_t flags) {
  static constexpr struct {
    uint8_t bit;
    const char* name;
  } kOrder[] = {{0x02, "SYN"}, {0x10, "ACK"}, {0x01, "FIN"}, {0x04, "RST"},
                {0x08, "PSH"}, {0x20, "URG"}, {0x40, "ECE"}, {0x80, "CWR"}};
  std::string out;
  for (const auto& f : kOrder) {
    if (flags & f.bit) {
      if (!out.empty()) out += '|';
      out += f.name;
    }
  }
  return out;
}

std::string AddressString(const uint8_t* addr, uint8_t ip_version) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(ip_version == 6 ? AF_INET6 : AF_INET, addr, buf, sizeof buf);
  return buf;
}

}  // namespace jarvis
