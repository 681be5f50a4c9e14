#include "engine/engine.h"

#include <fmt/format.h>

#include <algorithm>
#include <random>

#include "flow/flow_worker.h"

namespace jarvis {
namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kSampleEvery = std::chrono::milliseconds(250);
constexpr auto kRateWindow = std::chrono::seconds(1);

double WallSeconds() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

TimestampNs WallNanos() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<TimestampNs>(ts.tv_sec) * kNanosPerSecond + ts.tv_nsec;
}

std::string NewSessionId() {
  std::random_device rd;
  return fmt::format("sess_{:08x}{:04x}", rd(), rd() & 0xFFFF);
}

}  // namespace

std::string_view SessionStateName(SessionState s) {
  switch (s) {
    case SessionState::kIdle:
      return "idle";
    case SessionState::kRunning:
      return "running";
    case SessionState::kStopped:
      return "stopped";
    case SessionState::kFailed:
      return "error";
  }
  return "idle";
}

double CaptureTotals::drop_rate_pct() const {
  const uint64_t seen = packets + dropped();
  return seen == 0 ? 0.0 : 100.0 * static_cast<double>(dropped()) / static_cast<double>(seen);
}

struct Engine::Session {
  CaptureRequest request;
  std::string id;
  std::unique_ptr<CaptureSource> source;
  Clock::time_point started;
  double started_wall = 0;
  std::thread thread;

  // Written by the capture thread, read by anyone.
  std::atomic<SessionState> state{SessionState::kRunning};
  std::atomic<uint64_t> packets{0}, bytes{0}, bytes_stored{0};
  std::atomic<uint64_t> active_flows{0}, total_flows{0};
  std::atomic<bool> stop{false};
  std::atomic<bool> graceful{true};

  // Metering: requested by the control path, taken up by the capture thread.
  std::atomic<bool> meter_pending{false};
  std::atomic<FlowWorker*> worker_ptr{nullptr};  // set once by the capture thread
  std::unique_ptr<FlowWorker> worker;            // owned by the capture thread while it runs
  MeterRequest meter;                            // guarded by Engine::mu_

  // Samples for rates and the latest kernel counters; guarded by stats_mu.
  struct Sample {
    Clock::time_point at;
    uint64_t packets;
    uint64_t bytes;
  };
  mutable std::mutex stats_mu;
  std::deque<Sample> samples;
  SourceStats source_stats;
  FlowCounters flow_counters;
  DecodeCounters decode_counters;
  std::string error;
  double ended_after_sec = -1;  // duration once the session ended
  CaptureTotals final_totals;
};

Engine::Engine() = default;

Engine::~Engine() {
  std::lock_guard<std::mutex> lock(mu_);
  if (session_ && session_->thread.joinable()) {
    session_->graceful.store(false);
    session_->stop.store(true);
    session_->source->Interrupt();
    session_->thread.join();
  }
}

Result<std::string> Engine::Start(const CaptureRequest& req) {
  std::lock_guard<std::mutex> lock(mu_);
  if (session_ && session_->state.load() == SessionState::kRunning) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     "a capture is already running on " + session_->request.interface +
                         " (session " + session_->id + "); stop it first");
  }
  if (session_ && session_->thread.joinable()) session_->thread.join();  // a failed session

  SourceOptions opts;
  opts.target = req.interface;
  opts.snaplen = req.snaplen;
  opts.buffer_size_kib = req.buffer_size_mb * 1024;
  opts.timestamp_source = req.timestamp_source;
  opts.filter = req.filter_expr;
  const BackendInfo* info = FindBackend(req.backend);
  if (info != nullptr && info->kind != BackendKind::kLive) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "backend '" + req.backend + "' reads files; the API captures live");
  }
  auto src = OpenSource(req.backend, opts);
  if (!src) return std::unexpected(src.error());

  auto s = std::make_unique<Session>();
  s->request = req;
  s->id = NewSessionId();
  s->source = std::move(*src);
  s->started = Clock::now();
  s->started_wall = WallSeconds();
  if (next_meter_) {
    s->meter = *next_meter_;
    s->meter_pending.store(true);
  }
  Session* raw = s.get();
  session_ = std::move(s);
  raw->thread = std::thread([this, raw] { Run(*raw); });
  return raw->id;
}

void Engine::Run(Session& s) {
  PacketBatch batch;
  Clock::time_point last_sample{};
  const auto sample = [&](bool force) {
    const Clock::time_point now = Clock::now();
    if (!force && now - last_sample < kSampleEvery) return;
    last_sample = now;
    auto st = s.source->Stats();
    std::lock_guard<std::mutex> lock(s.stats_mu);
    if (st) s.source_stats = *st;
    if (s.worker) {
      s.flow_counters = s.worker->table().counters();
      s.decode_counters = s.worker->decode_counters();
    }
    s.samples.push_back({now, s.packets.load(std::memory_order_relaxed),
                         s.bytes.load(std::memory_order_relaxed)});
    while (s.samples.size() > 2 && now - s.samples[1].at >= kRateWindow) s.samples.pop_front();
  };
  const auto take_meter = [&] {
    if (!s.meter_pending.load(std::memory_order_acquire) || s.worker) return;
    FlowConfig config;
    {
      // The control path wrote `meter` before setting meter_pending.
      config.table_size = s.meter.table_size;
      config.idle_timeout_sec = s.meter.idle_timeout_sec;
      config.active_timeout_sec = s.meter.export_interval_sec;
    }
    s.worker = std::make_unique<FlowWorker>(config, config.table_size, nullptr);
    s.worker_ptr.store(s.worker.get(), std::memory_order_release);
  };
  const auto process = [&](uint32_t n) {
    uint64_t bytes = 0, stored = 0;
    for (const PacketView& p : batch.packets()) {
      bytes += p.wirelen;
      stored += p.caplen;
    }
    s.packets.fetch_add(n, std::memory_order_relaxed);
    s.bytes.fetch_add(bytes, std::memory_order_relaxed);
    s.bytes_stored.fetch_add(stored, std::memory_order_relaxed);
    if (s.worker) {
      s.worker->ProcessBatch(batch);
      s.active_flows.store(s.worker->table().active_flows(), std::memory_order_relaxed);
      s.total_flows.store(s.worker->table().counters().flows_created, std::memory_order_relaxed);
    }
  };

  sample(true);
  std::string failure;
  while (!s.stop.load(std::memory_order_acquire)) {
    take_meter();
    auto n = s.source->Receive(batch, kTick);
    if (!n) {
      if (n.error().code() != ErrorCode::kEndOfStream) failure = n.error().message();
      break;
    }
    if (*n > 0) {
      process(*n);
    } else if (s.worker) {
      s.worker->Tick(WallNanos());
    }
    sample(false);
  }
  if (failure.empty() && s.graceful.load()) {
    // Drain what the kernel already holds: receive until it comes back empty.
    const Clock::time_point deadline = Clock::now() + kDrainLimit;
    while (Clock::now() < deadline) {
      auto n = s.source->Receive(batch, std::chrono::milliseconds(50));
      if (!n || *n == 0) break;
      process(*n);
    }
  }
  if (s.worker) {
    s.worker->Finish();
    s.active_flows.store(0, std::memory_order_relaxed);
  }
  sample(true);
  {
    std::lock_guard<std::mutex> lock(s.stats_mu);
    s.error = failure;
    s.ended_after_sec = std::chrono::duration<double>(Clock::now() - s.started).count();
  }
  s.state.store(failure.empty() ? SessionState::kStopped : SessionState::kFailed,
                std::memory_order_release);
}

Result<CaptureTotals> Engine::Stop(bool graceful) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!session_ || session_->state.load() != SessionState::kRunning) {
    std::string why = "no capture is running";
    if (session_ && session_->state.load() == SessionState::kFailed) {
      std::lock_guard<std::mutex> slock(session_->stats_mu);
      why += " (the last one failed: " + session_->error + ")";
    }
    return MakeError(ErrorCode::kFailedPrecondition, why);
  }
  Session& s = *session_;
  s.graceful.store(graceful);
  s.stop.store(true, std::memory_order_release);
  s.source->Interrupt();
  s.thread.join();
  return MeasureLocked().totals;
}

Status Engine::EnableFlowMetering(const MeterRequest& req) {
  std::lock_guard<std::mutex> lock(mu_);
  if (session_ && session_->state.load() == SessionState::kRunning) {
    if (session_->meter_pending.load()) {
      return MakeError(ErrorCode::kFailedPrecondition,
                       "flow metering is already on for session " + session_->id +
                           "; stop the capture to change its settings");
    }
    session_->meter = req;
    session_->meter_pending.store(true, std::memory_order_release);
  }
  next_meter_ = req;
  return {};
}

Result<std::vector<FlowRecord>> Engine::Flows(const FlowQuery& query) {
  std::lock_guard<std::mutex> lock(mu_);
  const bool running = session_ && session_->state.load() == SessionState::kRunning;
  const bool metering = running ? session_->meter_pending.load() : next_meter_.has_value();
  if (!metering) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     "flow metering is off; enable it with POST "
                     "/packet_capture/capture/flow/meter/enable");
  }
  std::vector<FlowRecord> flows;
  if (running) {
    // The capture thread creates the worker at its next batch or tick.
    FlowWorker* w = nullptr;
    const Clock::time_point deadline = Clock::now() + 4 * kTick;
    while ((w = session_->worker_ptr.load(std::memory_order_acquire)) == nullptr &&
           session_->state.load() == SessionState::kRunning && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (w != nullptr) {
      auto snap = w->RequestSnapshot(20 * kTick);
      if (snap) {
        flows = std::move(*snap);
      } else if (session_->state.load() == SessionState::kRunning) {
        return MakeError(ErrorCode::kInternal, "the capture thread did not answer in time");
      }
    }
  }
  if (auto st = ApplyFlowQuery(query, flows); !st) return std::unexpected(st.error());
  return flows;
}

EngineStatus Engine::GetStatus() const {
  std::lock_guard<std::mutex> lock(mu_);
  EngineStatus st;
  st.flow_metering_enabled = next_meter_.has_value();
  st.meter = next_meter_;
  if (!session_) return st;
  const Session& s = *session_;
  st.state = s.state.load();
  st.session_id = s.id;
  st.interface = s.request.interface;
  st.backend = s.request.backend;
  st.buffer_size_mb = s.request.buffer_size_mb;
  st.timestamp_source = std::string(TimestampSourceName(s.request.timestamp_source));
  st.filter_expr = s.request.filter_expr;
  st.snaplen = s.request.snaplen;
  if (st.state == SessionState::kRunning) {
    st.flow_metering_enabled = s.meter_pending.load();
    if (st.flow_metering_enabled) st.meter = s.meter;
  }
  std::lock_guard<std::mutex> slock(s.stats_mu);
  st.error = s.error;
  st.uptime_sec = s.ended_after_sec >= 0
                      ? s.ended_after_sec
                      : std::chrono::duration<double>(Clock::now() - s.started).count();
  return st;
}

Result<EngineMetrics> Engine::GetMetrics() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (!session_) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     "no capture session yet; start one with POST /packet_capture/capture/start");
  }
  return MeasureLocked();
}

EngineMetrics Engine::MeasureLocked() const {
  const Session& s = *session_;
  EngineMetrics m;
  m.timestamp = WallSeconds();
  const Clock::time_point now = Clock::now();
  const uint64_t packets = s.packets.load(std::memory_order_relaxed);
  const uint64_t bytes = s.bytes.load(std::memory_order_relaxed);
  m.totals.packets = packets;
  m.totals.bytes = bytes;
  m.totals.bytes_stored = s.bytes_stored.load(std::memory_order_relaxed);
  m.active_flows = s.active_flows.load(std::memory_order_relaxed);
  m.total_flows = s.total_flows.load(std::memory_order_relaxed);
  const bool running = s.state.load() == SessionState::kRunning;
  std::lock_guard<std::mutex> lock(s.stats_mu);
  m.totals.dropped_kernel = s.source_stats.dropped_kernel;
  m.totals.dropped_interface = s.source_stats.dropped_interface;
  m.totals.received_by_filter = s.source_stats.received_by_filter;
  m.totals.has_kernel_counters = s.source_stats.has_kernel_counters;
  m.totals.duration_sec = s.ended_after_sec >= 0
                              ? s.ended_after_sec
                              : std::chrono::duration<double>(now - s.started).count();
  m.flow_counters = s.flow_counters;
  m.decode_counters = s.decode_counters;
  if (running && !s.samples.empty()) {
    // The oldest sample within (or just beyond) the last second, against the live counters.
    const auto& base = s.samples.front();
    const double dt = std::chrono::duration<double>(now - base.at).count();
    if (dt > 0) {
      m.window_sec = dt;
      m.packet_rate_pps = static_cast<double>(packets - base.packets) / dt;
      m.throughput_mbps = static_cast<double>(bytes - base.bytes) * 8 / dt / 1e6;
    }
  }
  m.buffer_usage_note = "the " + s.request.backend +
                        " backend does not expose how full its kernel ring is";
  return m;
}

}  // namespace jarvis
