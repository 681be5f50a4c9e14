// Flow records into NetFlow v5, NetFlow v9 (RFC 3954) and IPFIX (RFC 7011/7012, RFC 5103
// biflows) export messages, without any I/O: the exporter sends what the encoder produces, and
// tests compare the bytes with hand-computed ones.
//
// Records. A FlowRecord is bidirectional. v5, v9 and uniflow IPFIX carry one direction per
// record: the initiator's direction (src -> dst) and, when the responder sent packets, the
// reverse one (dst -> src, ports swapped, its own counters, TCP flags and ICMP type/code). A
// direction with no packets gives no record. Biflow IPFIX sends one record per flow with the
// reverse counters as RFC 5103 reverse elements (enterprise bit, PEN 29305). The meter keeps
// one first/last time per flow, not per direction, so both directions carry the flow's times.
//
// Time. Messages carry the encoder's clock: the latest of the flow end times it has encoded
// and of the times passed to AdvanceClock(); for a file this is packet time, so the header
// times agree with the flows' times and a collector shows the flows at their packet times to
// the millisecond. v5 and v9 time flows relative to sysUptime: "boot" is fixed once, at the
// first clock reading minus kUptimeLead (one day), so flows that began before the first export
// still have a positive uptime; a flow time before boot is clamped to boot. v9 headers carry
// whole seconds only, so sysUptime is computed from the header's unix_secs (floor of the clock)
// and a collector recovers boot exactly (unix_secs * 1000 - sysUptime).
//
// Thread safety: none; one encoder belongs to one exporter thread.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/error.h"
#include "core/packet.h"
#include "flow/flow_record.h"

namespace jarvis {

// Export format, by its version number on the wire.
enum class ExportVersion : uint8_t { kNetflow5 = 5, kNetflow9 = 9, kIpfix = 10 };

// Complete messages, back to back in one buffer.
struct MessageBuffer {
  struct Message {
    uint32_t offset;
    uint32_t size;
    uint32_t records;  // flow data records in it (templates and options records excluded)
  };
  std::vector<uint8_t> bytes;
  std::vector<Message> messages;

  void Clear() {
    bytes.clear();
    messages.clear();
  }
  const uint8_t* data(const Message& m) const { return bytes.data() + m.offset; }
};

struct EncoderOptions {
  ExportVersion version = ExportVersion::kIpfix;
  bool biflow = false;                      // IPFIX only: RFC 5103 biflow records
  uint32_t max_message_bytes = 1372;        // UDP payload limit (path MTU less IP and UDP headers)
  uint32_t observation_domain = 1;          // IPFIX observation domain, v9 source id, v5 engine id
  uint32_t template_refresh_packets = 100;  // v9/IPFIX: templates again after this many
                                            // messages (0: only when asked)
  uint32_t exporting_process_id = 0;        // IPFIX options record scope
};

// What the encoder has produced, for the exporter's counters and the IPFIX options record.
struct EncoderCounters {
  uint64_t flows_encoded = 0;    // flow records taken (skipped ones excluded)
  uint64_t records_encoded = 0;  // flow data records written
  uint64_t messages_encoded = 0;
  uint64_t octets_encoded = 0;     // message bytes
  uint64_t skipped_ipv6 = 0;       // v5: IPv6 flow records left out
  uint64_t split_records = 0;      // v5: extra records made so 32-bit counters do not wrap
  uint64_t template_messages = 0;  // messages that carried the templates
  uint64_t times_clamped = 0;      // v5/v9: flow times before "boot" (see above)
};

class FlowEncoder {
 public:
  // A flow that began this long before the first clock reading still has a positive uptime.
  static constexpr int64_t kUptimeLead = 24 * 3600 * 1000LL;  // ms

  // kInvalidArgument for a version other than 5, 9 or 10, biflow outside IPFIX, or a message
  // size too small for one record with its headers and templates.
  static Result<std::unique_ptr<FlowEncoder>> Create(const EncoderOptions& options);
  virtual ~FlowEncoder() = default;

  // Encodes `records`; each message that fills up is closed and appended to `out`. The last,
  // partly filled message stays open for the next Add (see Flush).
  void Add(std::span<const FlowRecord> records, MessageBuffer& out);

  // Closes the open message, if any, and appends it. When templates are due (RequestTemplates,
  // or none sent yet) and the clock is known, appends a message with only the templates.
  void Flush(MessageBuffer& out);

  // The next message starts with every template (IPFIX: and the exporter options record).
  void RequestTemplates() { templates_due_ = true; }

  // True while a message holds records that Flush would send.
  bool has_open_message() const { return open_; }

  // Moves the clock forward to `now` (never back).
  void AdvanceClock(TimestampNs now) {
    if (now > clock_ns_) clock_ns_ = now;
  }
  TimestampNs clock() const { return clock_ns_; }

  // Flow records the exporter could not send (queue full), reported in the IPFIX options
  // record as notSentFlowTotalCount.
  void SetNotSentFlows(uint64_t n) { not_sent_flows_ = n; }

  const EncoderCounters& counters() const { return counters_; }
  const EncoderOptions& options() const { return options_; }
  // Sequence number the next flow message will carry.
  uint32_t next_sequence() const { return sequence_; }
  // Milliseconds since the epoch of "boot" (v5/v9), 0 until the clock is first read.
  int64_t boot_ms() const { return boot_ms_; }

 protected:
  explicit FlowEncoder(const EncoderOptions& options) : options_(options) {}

  // One data record to write: one direction of a flow (uniflow), or the whole flow with its
  // reverse counters (biflow), or a piece of a direction (v5 counter split).
  struct Unit {
    const FlowRecord* flow;
    const uint8_t* src;
    const uint8_t* dst;
    uint16_t sport, dport;  // ICMP: 0 and type << 8 | code
    uint8_t tcp_flags;
    uint64_t packets, octets;
  };

  // The records one flow becomes (appended to `units`); none for a flow the format cannot
  // carry (v5 and IPv6), counted by the implementation.
  virtual void MakeUnits(const FlowRecord& r, std::vector<Unit>& units);
  // Whether the format has templates (v9, IPFIX) that must precede the data using them.
  virtual bool HasTemplates() const = 0;
  // Writes one data record into the open message; false when it does not fit (the caller then
  // closes the message and writes the record into a new one).
  virtual bool Put(const Unit& u) = 0;
  // Starts `msg_`: reserves the header and, when templates_due_, writes the templates.
  virtual void OpenMessage() = 0;
  // Called before a message that carries the templates is opened: IPFIX appends its exporter
  // options message here.
  virtual void BeforeTemplates(MessageBuffer& out) { (void)out; }
  // Closes the open set and writes the header (count, length, sequence, time) into `msg_`,
  // and advances the sequence number as the format defines it.
  virtual void CloseMessage() = 0;

  // The clock in ms, fixing boot at the first reading.
  int64_t ClockMs();
  // Milliseconds since boot of a flow time, clamped at 0 (and counted).
  uint32_t Uptime(TimestampNs t);
  // Bytes left in the open message.
  size_t Room() const { return options_.max_message_bytes - msg_.size(); }
  // Appends n zero bytes to the open message and returns where they start.
  uint8_t* Grow(size_t n) {
    const size_t at = msg_.size();
    msg_.resize(at + n);
    return msg_.data() + at;
  }

  EncoderOptions options_;
  EncoderCounters counters_;
  std::vector<uint8_t> msg_;  // the open message
  bool open_ = false;
  bool templates_due_ = true;
  uint32_t msg_records_ = 0;      // flow data records in the open message
  uint32_t since_templates_ = 0;  // messages closed since the last one with templates
  uint32_t sequence_ = 0;
  uint64_t not_sent_flows_ = 0;

 private:
  void StartMessage(MessageBuffer& out);
  void CloseInto(MessageBuffer& out);
  std::vector<Unit> units_;
  TimestampNs clock_ns_ = 0;
  int64_t boot_ms_ = 0;
};

// Big-endian writers into a byte vector.
inline void Put8(std::vector<uint8_t>& b, uint8_t v) { b.push_back(v); }
inline void Put16(std::vector<uint8_t>& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}
inline void Put32(std::vector<uint8_t>& b, uint32_t v) {
  Put16(b, static_cast<uint16_t>(v >> 16));
  Put16(b, static_cast<uint16_t>(v));
}
inline void Put64(std::vector<uint8_t>& b, uint64_t v) {
  Put32(b, static_cast<uint32_t>(v >> 32));
  Put32(b, static_cast<uint32_t>(v));
}
inline void Store16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
inline void Store32(uint8_t* p, uint32_t v) {
  Store16(p, static_cast<uint16_t>(v >> 16));
  Store16(p + 2, static_cast<uint16_t>(v));
}
inline void Store64(uint8_t* p, uint64_t v) {
  Store32(p, static_cast<uint32_t>(v >> 32));
  Store32(p + 4, static_cast<uint32_t>(v));
}

}  // namespace jarvis
