// The engine: one capture session at a time, driven by the REST API, the C ABI and Python.
//
// Control path: Start, Stop, EnableFlowMetering, Flows, Status, Metrics; any thread, serialised
// by the engine's mutex. Data path: one capture thread per session that receives batches,
// meters them into flows and publishes counters as atomics; it never takes the control mutex.
// Flow queries are answered by the capture thread at its next batch boundary or tick (at most
// kTick later), so a query never stops capture.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "capture/source.h"
#include "core/error.h"
#include "export/flow_exporter.h"
#include "flow/flow_query.h"
#include "flow/flow_record.h"
#include "flow/flow_table.h"

namespace jarvis {

struct CaptureRequest {
  std::string interface;
  std::string backend = "libpcap";
  uint32_t buffer_size_mb = 256;
  TimestampSource timestamp_source = TimestampSource::kKernel;
  std::string filter_expr;
  uint32_t snaplen = 0;  // 0: whole packets
  // Receive threads. More than one needs kernel fanout (af_packet): each thread has its own
  // socket in one PACKET_FANOUT group and meters its own flow shard.
  uint32_t workers = 1;
  // dpdk backend only: EAL arguments (see SourceOptions::dpdk_args).
  std::string dpdk_args;
};

struct MeterRequest {
  uint32_t table_size = 100000;
  uint32_t idle_timeout_sec = 300;
  uint32_t export_interval_sec = 60;  // the active timeout
};

enum class SessionState { kIdle, kRunning, kStopped, kFailed };
std::string_view SessionStateName(SessionState s);  // "idle", "running", "stopped", "error"

// NetFlow/IPFIX export of a session: what was asked, and what its exporters counted (never an
// estimate). A session may replace its exporter; the counters are then summed over every
// exporter it had, the replaced ones with their final figures.
struct ExportSummary {
  ExportConfig config;              // the latest exporter's; collector_host as it was given
  std::string collector;            // the collector as resolved: "127.0.0.1:2055", "[::1]:4739"
  uint16_t source_port = 0;         // the latest exporter's UDP source port
  uint32_t active_timeout_sec = 0;  // the meter's active timeout the export request set
  bool active = false;              // an exporter runs now
  uint32_t exporters = 0;           // exporters the session had: 1 + replacements
  ExportStats stats;                // summed over them; flows_queued is what waits now
  std::string error;                // why a stopped exporter left records unsent, if it did
};

// Counters of a session, as measured: by the source (packets and bytes it delivered) and by
// the kernel (drops). bytes are wire bytes of the captured packets.
struct CaptureTotals {
  uint64_t packets = 0;
  uint64_t bytes = 0;
  uint64_t bytes_stored = 0;  // captured bytes (after snaplen)
  uint64_t dropped_kernel = 0;
  uint64_t dropped_interface = 0;
  uint64_t received_by_filter = 0;
  bool has_kernel_counters = false;
  double duration_sec = 0;
  std::optional<ExportSummary> netflow;  // when the session exported flows

  uint64_t dropped() const { return dropped_kernel + dropped_interface; }
  // Percent of the packets that reached the capture point and were lost (0..100).
  double drop_rate_pct() const;
};

struct EngineStatus {
  SessionState state = SessionState::kIdle;
  std::string session_id;
  std::string interface;
  std::string backend;
  // What the backend chose at open time where it has a choice (CaptureSource::mode(): the xdp
  // backend's "native/copy", "skb/copy", ...); empty otherwise. Not yet in the REST reply.
  std::string backend_mode;
  uint32_t buffer_size_mb = 0;
  std::string timestamp_source;
  std::string filter_expr;
  uint32_t snaplen = 0;
  uint32_t workers = 0;
  double uptime_sec = 0;
  bool flow_metering_enabled = false;
  std::optional<MeterRequest> meter;  // export_interval_sec: the active timeout in effect
  bool netflow_enabled = false;       // the running session exports flows now
  std::string error;  // why the session failed (kFailed)
};

struct EngineMetrics {
  CaptureTotals totals;
  double packet_rate_pps = 0;     // over the last second
  double throughput_mbps = 0;     // wire bits over the last second
  double window_sec = 0;          // the window the rates cover (shorter right after start)
  std::optional<double> buffer_usage_pct;  // nullopt where the backend cannot see its ring
  std::string buffer_usage_note;           // why it is missing
  uint64_t active_flows = 0;
  uint64_t total_flows = 0;       // flows created since start
  FlowCounters flow_counters;
  DecodeCounters decode_counters;
  double timestamp = 0;           // Unix seconds when measured
};

class Engine {
 public:
  Engine();
  ~Engine();  // stops a running session (not gracefully)
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Opens the interface and starts the capture thread. Returns the session id.
  // kFailedPrecondition while a session runs; kNotFound, kUnavailable, kPermissionDenied or
  // kInvalidArgument (e.g. a filter libpcap rejects) from the source.
  Result<std::string> Start(const CaptureRequest& request);

  // Stops the session. Graceful: first drains what the kernel still holds (DrainAfterStop in
  // capture/source.h: until receives come back empty twice, at most 2 s), then ends every
  // flow and, when the session exports, waits until the exporter has sent every record (at
  // most kExportStopLimit). Not graceful:
  // flows still end into the exporter, but what it has not sent is dropped and counted.
  // Returns the final totals.
  // kFailedPrecondition when no session runs.
  Result<CaptureTotals> Stop(bool graceful);

  // Turns flow metering on, for the running session (from its next batch) or the next one.
  // kFailedPrecondition when the running session already meters (stop it to change settings).
  Status EnableFlowMetering(const MeterRequest& request);

  // Exports the running session's flows to a NetFlow v5/v9 or IPFIX collector: creates a
  // FlowExporter (queue policy kDrop: a slow collector never stalls capture) and attaches it as
  // the FlowSink of every member's flow worker, which take it up at their next batch or tick
  // (this call waits for them), so finished and active-timeout records go to the collector.
  // `active_timeout_sec` becomes the meter's active timeout (the REST body's
  // export_interval_sec). Enabling again with the same collector (address and port), version
  // and biflow keeps the running exporter and changes only the active timeout; anything else
  // replaces it: the new one is attached first, then the old one is stopped (what it holds is
  // sent) and its final counters are folded into the session's. The export ends with the
  // session: Stop() ends every flow into it and waits for it to send them (graceful), up to
  // kExportStopLimit.
  // kFailedPrecondition when no session runs or it does not meter flows; otherwise the
  // exporter's own errors, whose Error::field() names the request field at fault.
  Result<ExportSummary> EnableExport(const ExportConfig& config, uint32_t active_timeout_sec);

  // The running session's active flows, filtered, sorted and cut by `query`.
  // kFailedPrecondition when flow metering is off.
  Result<std::vector<FlowRecord>> Flows(const FlowQuery& query);

  EngineStatus GetStatus() const;
  // The running session's metrics, or the last session's final ones after it stopped.
  // kFailedPrecondition before any session.
  Result<EngineMetrics> GetMetrics() const;

  static constexpr std::chrono::milliseconds kTick{100};
  static constexpr std::chrono::milliseconds kExportStopLimit{5000};

 private:
  struct Session;
  struct Member;
  void Run(Session& s, Member& m, size_t index);
  static void Sample(Session& s, bool force);
  EngineMetrics MeasureLocked() const;
  // Stops the session's exporters once its threads are done, sending what they hold (up to
  // kExportStopLimit, or not at all when not graceful). REQUIRES: mu_ held, threads joined.
  static void EndExportLocked(Session& s, bool graceful);
  // The session's export counters summed over its exporters; nullopt when it never exported.
  // REQUIRES: mu_ held.
  static std::optional<ExportSummary> ExportSummaryLocked(const Session& s, bool running);

  mutable std::mutex mu_;
  std::unique_ptr<Session> session_;         // guarded by mu_; the current or last session
  std::optional<MeterRequest> next_meter_;   // guarded by mu_; metering for the next session
};

}  // namespace jarvis
