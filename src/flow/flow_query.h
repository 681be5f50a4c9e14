// Selecting, ordering and cutting a set of flow records: what GET .../flows and the CLI ask.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "flow/flow_record.h"

namespace jarvis {

enum class FlowSortKey { kPackets, kBytes, kDuration };

Result<FlowSortKey> ParseFlowSortKey(std::string_view name);  // packets, bytes, duration

struct FlowQuery {
  uint32_t limit = 100;      // 0: no limit
  uint64_t min_packets = 0;
  FlowSortKey sort_by = FlowSortKey::kPackets;  // descending
  // Filters; an unset one matches everything. An address or port matches either side.
  std::optional<std::string> address;  // textual IPv4/IPv6 address
  std::optional<uint16_t> port;
  std::optional<uint8_t> protocol;
};

// Applies `q` to `flows` in place: drops what does not match, sorts, keeps the first `limit`.
// Ties are broken by flow id, so the result is deterministic. Errors on a malformed address.
Status ApplyFlowQuery(const FlowQuery& q, std::vector<FlowRecord>& flows);

}  // namespace jarvis
