// Text forms of flow records: JSON lines, CSV and an aligned table.
//
// The JSON object has exactly the fields of the REST contract's flow object (DESIGN.md §7) plus
// packets_fwd, packets_rev, vlan and end_reason; CSV has the same columns in the same order.
#pragma once

#include <string>
#include <string_view>

#include "flow/flow_record.h"

namespace jarvis {

enum class FlowFormat { kTable, kCsv, kJson };

// The field names, in output order.
std::string_view FlowFieldNames();  // comma separated

// Appends one JSON object (no newline).
void AppendFlowJson(const FlowRecord& r, std::string& out);
// Appends one CSV row (no newline).
void AppendFlowCsv(const FlowRecord& r, std::string& out);
// The table header and one row (no newline).
std::string FlowTableHeader();
void AppendFlowTableRow(const FlowRecord& r, std::string& out);

// Seconds since the epoch with microsecond precision, as the flow object carries times.
double EpochSeconds(TimestampNs ts);

}  // namespace jarvis
