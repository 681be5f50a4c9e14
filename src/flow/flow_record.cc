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

namespace {

// All 256 flag combinations, named once: records are formatted by the million.
struct TcpFlagNames {
  std::string names[256];
  TcpFlagNames() {
    static constexpr struct {
      uint8_t bit;
      const char* name;
    } kOrder[] = {{0x02, "SYN"}, {0x10, "ACK"}, {0x01, "FIN"}, {0x04, "RST"},
                  {0x08, "PSH"}, {0x20, "URG"}, {0x40, "ECE"}, {0x80, "CWR"}};
    for (int f = 0; f < 256; ++f) {
      for (const auto& o : kOrder) {
        if (f & o.bit) {
          if (!names[f].empty()) names[f] += '|';
          names[f] += o.name;
        }
      }
    }
  }
};

const TcpFlagNames& FlagNames() {
  static const TcpFlagNames names;
  return names;
}

}  // namespace

std::string_view TcpFlagsName(uint8_t flags) { return FlagNames().names[flags]; }

std::string TcpFlagsString(uint8_t flags) { return std::string(TcpFlagsName(flags)); }

std::string AddressString(const uint8_t* addr, uint8_t ip_version) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(ip_version == 6 ? AF_INET6 : AF_INET, addr, buf, sizeof buf);
  return buf;
}

}  // namespace jarvis
