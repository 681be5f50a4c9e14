#include "flow/flow_query.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace jarvis {

Result<FlowSortKey> ParseFlowSortKey(std::string_view name) {
  if (name == "packets") return FlowSortKey::kPackets;
  if (name == "bytes") return FlowSortKey::kBytes;
  if (name == "duration") return FlowSortKey::kDuration;
  return MakeError(ErrorCode::kInvalidArgument,
                   "unknown sort_by '" + std::string(name) + "' (packets, bytes or duration)");
}

Status ApplyFlowQuery(const FlowQuery& q, std::vector<FlowRecord>& flows) {
  uint8_t addr[16] = {};
  uint8_t addr_version = 0;
  if (q.address) {
    if (inet_pton(AF_INET, q.address->c_str(), addr) == 1) {
      addr_version = 4;
    } else if (inet_pton(AF_INET6, q.address->c_str(), addr) == 1) {
      addr_version = 6;
    } else {
      return MakeError(ErrorCode::kInvalidArgument, "not an IP address: '" + *q.address + "'");
    }
  }
  const auto keep = [&](const FlowRecord& r) {
    if (r.packets() < q.min_packets) return false;
    if (q.protocol && r.protocol != *q.protocol) return false;
    if (q.port && r.src_port != *q.port && r.dst_port != *q.port) return false;
    if (addr_version != 0) {
      if (r.ip_version != addr_version) return false;
      if (std::memcmp(r.src_addr, addr, 16) != 0 && std::memcmp(r.dst_addr, addr, 16) != 0) {
        return false;
      }
    }
    return true;
  };
  std::erase_if(flows, [&](const FlowRecord& r) { return !keep(r); });

  const auto metric = [&](const FlowRecord& r) -> uint64_t {
    switch (q.sort_by) {
      case FlowSortKey::kPackets:
        return r.packets();
      case FlowSortKey::kBytes:
        return r.bytes();
      case FlowSortKey::kDuration:
        return static_cast<uint64_t>(r.last_ns - r.first_ns);
    }
    return 0;
  };
  const auto before = [&](const FlowRecord& a, const FlowRecord& b) {
    const uint64_t ma = metric(a), mb = metric(b);
    return ma != mb ? ma > mb : a.flow_id < b.flow_id;
  };
  if (q.limit != 0 && flows.size() > q.limit) {
    std::partial_sort(flows.begin(), flows.begin() + q.limit, flows.end(), before);
    flows.resize(q.limit);
  } else {
    std::sort(flows.begin(), flows.end(), before);
  }
  return {};
}

}  // namespace jarvis
