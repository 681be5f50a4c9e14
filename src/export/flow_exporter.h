// A NetFlow v5/v9 or IPFIX exporter: a FlowSink that queues finished flow records and sends
// them to one collector over UDP from its own thread.
//
//   capture/meter thread ── OnFlows(batch) ──► bounded queue ──► exporter thread:
//                                                                encode ─► pace ─► sendmmsg
//
// - OnFlows copies the batch into a bounded queue and returns; with QueueFullPolicy::kDrop (the
//   default, for live capture) a full queue drops the batch and counts its records, so a slow
//   or absent collector never stalls capture. kWait makes a file replay wait for room instead.
// - One UDP socket, connected to the collector, for the exporter's lifetime: a stable source
//   port, and ICMP port-unreachable from a closed collector port surfaces as ECONNREFUSED on a
//   later send (or as the socket's pending error), which is counted (`refused`) and never
//   fatal.
// - Sends are paced by a token bucket (ExportConfig::max_datagrams_per_sec, bursts of at most
//   512 datagrams), so a collector's receive buffer is not overrun by bursts; sequence numbers
//   reveal any loss.
// - A partly filled message waits at most ExportConfig::max_hold_ms for more records, so
//   datagrams stay full when flows end one by one (live capture, paced replays).
// - Templates (v9, IPFIX) are re-sent every template_refresh_sec of wall time and every
//   template_refresh_packets messages; never withdrawn.
// - Time comes from the flows (see flow_encoder.h) and from AdvanceClock(): offline runs use
//   packet time throughout; a live engine may call AdvanceClock(now) on its housekeeping tick.
//
// Thread safety: every public method may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/fd.h"
#include "export/export_config.h"
#include "export/flow_encoder.h"
#include "flow/flow_table.h"

namespace jarvis {

// name, help: the exporter's counters, in the order Stats().ForEach visits them.
#define JARVIS_EXPORT_COUNTERS(X)                                                          \
  X(flows_received, "flow records handed to the exporter")                                 \
  X(flows_queued, "flow records waiting in the exporter queue now")                        \
  X(flows_dropped_queue_full, "flow records dropped because the exporter queue was full")  \
  X(flows_skipped_ipv6, "IPv6 flow records left out because NetFlow v5 carries only IPv4") \
  X(records_sent, "flow data records in datagrams the kernel accepted")                    \
  X(records_send_failed, "flow data records in datagrams that could not be sent")          \
  X(records_split, "extra NetFlow v5 records made so that 32-bit counters do not wrap")    \
  X(datagrams_sent, "export datagrams sent")                                               \
  X(bytes_sent, "UDP payload bytes sent")                                                  \
  X(template_sends, "messages that carried the templates")                                 \
  X(send_errors, "datagrams that could not be sent")                                       \
  X(refused, "ICMP port unreachable reports from the collector (ECONNREFUSED)")

struct ExportStats {
#define JARVIS_EXPORT_FIELD(name, help) uint64_t name = 0;
  JARVIS_EXPORT_COUNTERS(JARVIS_EXPORT_FIELD)
#undef JARVIS_EXPORT_FIELD

  // Calls fn(name, help, value) for every counter, in declaration order.
  template <class Fn>
  void ForEach(Fn&& fn) const {
#define JARVIS_EXPORT_VISIT(name, help) fn(std::string_view(#name), std::string_view(help), name);
    JARVIS_EXPORT_COUNTERS(JARVIS_EXPORT_VISIT)
#undef JARVIS_EXPORT_VISIT
  }
};

class FlowExporter final : public FlowSink {
 public:
  // Validates the configuration, resolves the collector (an address or a host name), opens and
  // connects the socket, and starts the exporter thread. Errors name the offending field.
  static Result<std::unique_ptr<FlowExporter>> Create(const ExportConfig& config);
  // Stops as Stop(5 s) does.
  ~FlowExporter() override;
  FlowExporter(const FlowExporter&) = delete;
  FlowExporter& operator=(const FlowExporter&) = delete;

  // Queues a copy of `records` (see the queue policy above). After Stop(), records are counted
  // as dropped.
  void OnFlows(std::span<const FlowRecord> records) override;

  // Moves the export clock forward to `now` (packet time); never back.
  void AdvanceClock(TimestampNs now);

  // Waits until every record handed over before the call has been encoded and sent, the last
  // partly filled message included. kUnavailable on timeout (the records stay queued).
  Status Flush(std::chrono::milliseconds timeout);

  // Sends what is queued, then ends the thread. On timeout, what is still queued is dropped
  // and counted, and the error says how many. Idempotent.
  Status Stop(std::chrono::milliseconds timeout);

  ExportStats Stats() const;
  const ExportConfig& config() const { return config_; }
  // The collector as resolved ("127.0.0.1:4739", "[::1]:4739") and our source port.
  const std::string& collector() const { return collector_; }
  uint16_t source_port() const { return source_port_; }

 private:
  explicit FlowExporter(const ExportConfig& config);
  Status Open();
  void Run();
  void Send(const MessageBuffer& out);
  void Pace(uint32_t datagrams);

  ExportConfig config_;
  std::unique_ptr<FlowEncoder> encoder_;  // exporter thread only
  UniqueFd fd_;
  std::string collector_;
  uint16_t source_port_ = 0;
  bool ipv6_ = false;

  mutable std::mutex mu_;
  std::condition_variable work_cv_;             // the exporter thread waits for work
  std::condition_variable room_cv_;             // kWait producers wait for room
  std::condition_variable done_cv_;             // Flush and Stop wait for progress
  std::deque<std::vector<FlowRecord>> queue_;   // guarded by mu_
  std::vector<std::vector<FlowRecord>> spare_;  // emptied batches for reuse; guarded by mu_
  size_t queued_records_ = 0;                   // guarded by mu_
  int room_waiters_ = 0;                        // producers waiting for room; guarded by mu_
  bool consumer_waiting_ = false;               // the exporter thread waits; guarded by mu_
  bool consumer_deep_sleep_ = true;             // ... without a poll deadline; guarded by mu_
  uint64_t batches_in_ = 0;                     // batches queued so far; guarded by mu_
  uint64_t batches_done_ = 0;                   // ... encoded and sent; guarded by mu_
  bool stopping_ = false;                       // guarded by mu_
  bool flush_requested_ = false;                // guarded by mu_
  bool exited_ = false;                         // guarded by mu_
  std::atomic<bool> abort_{false};
  std::atomic<TimestampNs> clock_{0};
  std::chrono::steady_clock::time_point pace_next_{};  // exporter thread only
  std::mutex pace_mu_;  // with pace_cv_: a pacing wait that Stop can cut short
  std::condition_variable pace_cv_;

#define JARVIS_EXPORT_ATOMIC(name, help) std::atomic<uint64_t> name##_{0};
  JARVIS_EXPORT_COUNTERS(JARVIS_EXPORT_ATOMIC)
#undef JARVIS_EXPORT_ATOMIC

  std::thread thread_;
};

}  // namespace jarvis
