#include "engine/engine.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <random>
#include <utility>

#include "capture/af_packet/af_packet_source.h"
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

void AddExportStats(ExportStats& sum, const ExportStats& more) {
#define JARVIS_EXPORT_ADD(name, help) sum.name += more.name;
  JARVIS_EXPORT_COUNTERS(JARVIS_EXPORT_ADD)
#undef JARVIS_EXPORT_ADD
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

// The flow worker's sink: hands finished records to the exporter the member has taken up, or
// drops them when the session does not export. Thread safety: the member's thread only.
class ExportTap final : public FlowSink {
 public:
  void OnFlows(std::span<const FlowRecord> records) override {
    if (target != nullptr) target->OnFlows(records);
  }
  FlowExporter* target = nullptr;
};

// One receive thread with its source and, when metering, its flow shard.
struct Engine::Member {
  std::unique_ptr<CaptureSource> source;
  std::thread thread;
  ExportTap tap;                                 // the worker's sink; the member's thread only
  std::unique_ptr<FlowWorker> worker;            // owned by the member's thread while it runs
  std::atomic<FlowWorker*> worker_ptr{nullptr};  // published once by the member's thread
  uint64_t export_seen = 0;                      // export generation taken up; ditto
  std::atomic<uint64_t> export_taken{0};         // ... published for EnableExport
  std::atomic<uint64_t> packets{0}, bytes{0}, bytes_stored{0};
  std::atomic<uint64_t> active_flows{0}, total_flows{0};
  mutable std::mutex stats_mu;
  SourceStats source_stats;      // guarded by stats_mu
  FlowCounters flow_counters;    // guarded by stats_mu
  DecodeCounters decode_counters;  // guarded by stats_mu
  std::atomic<bool> done{false};
};

struct Engine::Session {
  CaptureRequest request;
  std::string id;
  // Each member's source is closed once the session's threads are done (Stop, or the next
  // Start after a failure): a backend that changes the interface while it captures (xdp attaches
  // a program that takes the packets) gives it back at once, not when the next session begins.
  std::vector<std::unique_ptr<Member>> members;
  std::string backend_mode;  // the first source's mode(), kept after the sources are closed
  Clock::time_point started;
  double started_wall = 0;

  std::atomic<SessionState> state{SessionState::kRunning};
  std::atomic<bool> stop{false};
  std::atomic<bool> graceful{true};

  // Metering: requested by the control path, taken up by every member at its next batch.
  std::atomic<bool> meter_pending{false};
  MeterRequest meter;  // written under Engine::mu_ before meter_pending is set

  // NetFlow/IPFIX export. The control path (under Engine::mu_) creates and stops exporters;
  // every member takes up export_target at its next batch boundary or tick, when
  // export_generation has changed, and publishes the generation it took in export_taken. An
  // exporter is destroyed only once no member can still hand it records.
  std::atomic<FlowExporter*> export_target{nullptr};
  std::atomic<uint64_t> export_generation{0};
  std::atomic<uint32_t> active_timeout_sec{0};  // set by the export request; 0: the meter's
  std::unique_ptr<FlowExporter> exporter;       // guarded by Engine::mu_: the current one
  // Replaced exporters that a member may still hold (it had not taken up the new one in time):
  // stopped, kept until the threads are done. Guarded by Engine::mu_.
  std::vector<std::unique_ptr<FlowExporter>> retired_exporters;
  ExportStats export_folded;                    // guarded by Engine::mu_: destroyed exporters'
  std::optional<ExportSummary> export_summary;  // guarded by Engine::mu_; stats not kept here

  // Rate samples of the session's totals and the end of the session; guarded by stats_mu.
  struct RateSample {
    Clock::time_point at;
    uint64_t packets;
    uint64_t bytes;
  };
  mutable std::mutex stats_mu;
  std::deque<RateSample> samples;
  Clock::time_point last_sample{};
  std::string error;
  double ended_after_sec = -1;
  std::atomic<uint32_t> running_members{0};

  uint64_t packets() const {
    uint64_t n = 0;
    for (const auto& m : members) n += m->packets.load(std::memory_order_relaxed);
    return n;
  }
  uint64_t bytes() const {
    uint64_t n = 0;
    for (const auto& m : members) n += m->bytes.load(std::memory_order_relaxed);
    return n;
  }
};

Engine::Engine() = default;

Engine::~Engine() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!session_) return;
  session_->graceful.store(false);
  session_->stop.store(true);
  for (auto& m : session_->members) {
    if (m->source) m->source->Interrupt();
  }
  for (auto& m : session_->members) {
    if (m->thread.joinable()) m->thread.join();
  }
  EndExportLocked(*session_, /*graceful=*/false);
}

Result<std::string> Engine::Start(const CaptureRequest& req) {
  std::lock_guard<std::mutex> lock(mu_);
  if (session_ && session_->state.load() == SessionState::kRunning) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     "a capture is already running on " + session_->request.interface +
                         " (session " + session_->id + "); stop it first");
  }
  if (session_) {
    for (auto& m : session_->members) {
      if (m->thread.joinable()) m->thread.join();  // a failed session's threads
      m->source.reset();
    }
    EndExportLocked(*session_, /*graceful=*/true);  // a failed session's exporter
  }

  SourceOptions opts;
  opts.target = req.interface;
  opts.snaplen = req.snaplen;
  opts.buffer_size_kib = req.buffer_size_mb * 1024;
  opts.timestamp_source = req.timestamp_source;
  opts.filter = req.filter_expr;
  opts.dpdk_args = req.dpdk_args;
  const BackendInfo* info = FindBackend(req.backend);
  if (info != nullptr && info->kind != BackendKind::kLive) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "backend '" + req.backend + "' reads files; the API captures live");
  }
  if (!req.dpdk_args.empty() && req.backend != "dpdk") {
    return std::unexpected(
        Error(ErrorCode::kInvalidArgument, "dpdk_args applies to the dpdk backend only")
            .WithField("dpdk_args"));
  }
  const uint32_t workers = std::max<uint32_t>(req.workers, 1);
  if (workers > 1 && req.backend != "af_packet") {
    return std::unexpected(Error(ErrorCode::kInvalidArgument,
                                 "more than one worker needs kernel fanout: use the af_packet "
                                 "backend")
                               .WithField("workers"));
  }

  auto s = std::make_unique<Session>();
  s->request = req;
  s->id = NewSessionId();
  if (workers == 1) {
    auto src = OpenSource(req.backend, opts);
    if (!src) return std::unexpected(src.error());
    s->members.push_back(std::make_unique<Member>());
    s->members.back()->source = std::move(*src);
  } else {
    if (std::string why = info->unavailable_reason(); !why.empty()) {
      return MakeError(ErrorCode::kUnavailable, "backend 'af_packet' is unavailable: " + why);
    }
    // The group id only has to be unique among groups on this host: derive it from the pid
    // and a counter.
    static std::atomic<uint32_t> groups{0};
    const uint32_t group = ((static_cast<uint32_t>(::getpid()) << 4) + ++groups) & 0xFFFF;
    opts.buffer_size_kib = std::max<uint32_t>(opts.buffer_size_kib / workers, 4096);
    for (uint32_t i = 0; i < workers; ++i) {
      auto src = OpenAfPacketFanoutMember(opts, group == 0 ? 1 : group);
      if (!src) return std::unexpected(src.error());
      s->members.push_back(std::make_unique<Member>());
      s->members.back()->source = std::move(*src);
    }
  }
  s->backend_mode = s->members.front()->source->mode();
  s->started = Clock::now();
  s->started_wall = WallSeconds();
  if (next_meter_) {
    s->meter = *next_meter_;
    s->meter_pending.store(true);
  }
  Session* raw = s.get();
  session_ = std::move(s);
  raw->running_members.store(static_cast<uint32_t>(raw->members.size()));
  for (size_t i = 0; i < raw->members.size(); ++i) {
    Member* m = raw->members[i].get();
    m->thread = std::thread([this, raw, m, i] { Run(*raw, *m, i); });
  }
  return raw->id;
}

void Engine::Sample(Session& s, bool force) {
  const Clock::time_point now = Clock::now();
  std::lock_guard<std::mutex> lock(s.stats_mu);
  if (!force && now - s.last_sample < kSampleEvery) return;
  s.last_sample = now;
  s.samples.push_back({now, s.packets(), s.bytes()});
  while (s.samples.size() > 2 && now - s.samples[1].at >= kRateWindow) s.samples.pop_front();
}

void Engine::Run(Session& s, Member& m, size_t index) {
  PacketBatch batch;
  Clock::time_point last_stats{};
  const auto refresh_stats = [&](bool force) {
    const Clock::time_point now = Clock::now();
    if (!force && now - last_stats < kSampleEvery) return;
    last_stats = now;
    auto st = m.source->Stats();
    std::lock_guard<std::mutex> lock(m.stats_mu);
    if (st) m.source_stats = *st;
    if (m.worker) {
      m.flow_counters = m.worker->table().counters();
      m.decode_counters = m.worker->decode_counters();
    }
  };
  const auto take_meter = [&] {
    if (m.worker || !s.meter_pending.load(std::memory_order_acquire)) return;
    // The control path wrote `meter` before setting meter_pending (release).
    FlowConfig config;
    config.table_size = s.meter.table_size;
    config.idle_timeout_sec = s.meter.idle_timeout_sec;
    config.active_timeout_sec = s.meter.export_interval_sec;
    // An export request sets the active timeout; published before the export generation that
    // take_export acquires, so a worker made after that take-up sees it.
    if (uint32_t t = s.active_timeout_sec.load(std::memory_order_relaxed); t != 0) {
      config.active_timeout_sec = t;
    }
    const uint32_t shards = static_cast<uint32_t>(s.members.size());
    const uint32_t capacity = (config.table_size + shards - 1) / shards;
    m.worker = std::make_unique<FlowWorker>(config, capacity, &m.tap, static_cast<uint32_t>(index),
                                            shards);
    m.worker_ptr.store(m.worker.get(), std::memory_order_release);
    // Sources that walk their input (files) decode each packet as they append it.
    batch.set_visitor(m.worker->batch_decoder());
  };
  const auto take_export = [&] {
    const uint64_t generation = s.export_generation.load(std::memory_order_acquire);
    if (generation == m.export_seen) return;
    m.tap.target = s.export_target.load(std::memory_order_acquire);
    if (m.worker) {
      if (uint32_t t = s.active_timeout_sec.load(std::memory_order_relaxed); t != 0) {
        m.worker->SetActiveTimeout(t);
      }
    }
    m.export_seen = generation;
    m.export_taken.store(generation, std::memory_order_release);
  };
  const auto process = [&](uint32_t n) {
    uint64_t bytes = 0, stored = 0;
    for (const PacketView& p : batch.packets()) {
      bytes += p.wirelen;
      stored += p.caplen;
    }
    m.packets.fetch_add(n, std::memory_order_relaxed);
    m.bytes.fetch_add(bytes, std::memory_order_relaxed);
    m.bytes_stored.fetch_add(stored, std::memory_order_relaxed);
    if (m.worker) {
      m.worker->ProcessBatch(batch);
      m.active_flows.store(m.worker->table().active_flows(), std::memory_order_relaxed);
      m.total_flows.store(m.worker->table().counters().flows_created, std::memory_order_relaxed);
    }
    // The export clock follows packet time, as for a file (flow_exporter.h).
    if (m.tap.target != nullptr && n > 0) m.tap.target->AdvanceClock(batch[n - 1].ts_ns);
  };

  refresh_stats(true);
  if (index == 0) Sample(s, true);
  std::string failure;
  while (!s.stop.load(std::memory_order_acquire)) {
    take_meter();
    take_export();
    auto n = m.source->Receive(batch, kTick);
    if (!n) {
      if (n.error().code() != ErrorCode::kEndOfStream) failure = n.error().message();
      break;
    }
    if (*n > 0) {
      process(*n);
    } else {
      // Housekeeping on a quiet link: flows due end, and the export clock moves on (the
      // exporter sends a partly filled message after its hold time, and templates on time).
      const TimestampNs now = WallNanos();
      if (m.worker) m.worker->Tick(now);
      if (m.tap.target != nullptr) m.tap.target->AdvanceClock(now);
    }
    refresh_stats(false);
    if (index == 0) Sample(s, false);
  }
  if (failure.empty() && s.graceful.load()) {
    // Drain what the kernel already holds.
    DrainAfterStop(*m.source, batch, [&] {
      if (!batch.empty()) process(batch.size());
      return true;
    });
  }
  batch.Reset();  // hand ring memory back before the source goes
  take_export();  // an exporter enabled just before the stop gets the last records
  if (m.worker) {
    m.worker->Finish();
    m.active_flows.store(0, std::memory_order_relaxed);
  }
  refresh_stats(true);
  if (!failure.empty()) {
    // One member failing ends the session: stop the others too.
    std::lock_guard<std::mutex> lock(s.stats_mu);
    if (s.error.empty()) s.error = failure;
    s.stop.store(true, std::memory_order_release);
    for (auto& other : s.members) {
      if (other.get() != &m) other->source->Interrupt();
    }
  }
  m.done.store(true, std::memory_order_release);
  if (s.running_members.fetch_sub(1) == 1) {
    // The last member out closes the session.
    Sample(s, true);
    std::lock_guard<std::mutex> lock(s.stats_mu);
    s.ended_after_sec = std::chrono::duration<double>(Clock::now() - s.started).count();
    s.state.store(s.error.empty() ? SessionState::kStopped : SessionState::kFailed,
                  std::memory_order_release);
  }
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
  for (auto& m : s.members) m->source->Interrupt();
  for (auto& m : s.members) m->thread.join();
  // The threads took their final counters; the state is no longer kRunning, so nothing reads
  // the sources again.
  for (auto& m : s.members) m->source.reset();
  // Every flow has ended into the exporter (FlowWorker::Finish); send what it holds.
  EndExportLocked(s, graceful);
  return MeasureLocked().totals;
}

Result<ExportSummary> Engine::EnableExport(const ExportConfig& request,
                                           uint32_t active_timeout_sec) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!session_ || session_->state.load() != SessionState::kRunning) {
    std::string why =
        "no capture is running: start one (POST /packet_capture/capture/start), enable flow "
        "metering (POST /packet_capture/capture/flow/meter/enable), then enable export";
    if (session_ && session_->state.load() == SessionState::kFailed) {
      std::lock_guard<std::mutex> slock(session_->stats_mu);
      why += " (the last capture failed: " + session_->error + ")";
    }
    return MakeError(ErrorCode::kFailedPrecondition, why);
  }
  Session& s = *session_;
  if (!s.meter_pending.load()) {
    return MakeError(ErrorCode::kFailedPrecondition,
                     "flow metering is off for session " + s.id +
                         ": enable it with POST /packet_capture/capture/flow/meter/enable, "
                         "then enable export");
  }
  const uint32_t timeout = std::max<uint32_t>(active_timeout_sec, 1);
  ExportConfig config = request;
  config.queue_full = QueueFullPolicy::kDrop;  // live capture is never stalled by a collector
  if (s.exporter && s.exporter->config().collector_host == config.collector_host &&
      s.exporter->config().collector_port == config.collector_port &&
      s.exporter->config().version == config.version &&
      s.exporter->config().biflow == config.biflow) {
    // The same collector and format: keep the running exporter, so the collector sees one
    // unbroken sequence (a new exporter would start its own, which nfcapd, telling exporters
    // apart by address, version and domain but not by source port, counts as a failure). Only
    // the active timeout changes, taken up by the members with the next generation.
    s.active_timeout_sec.store(timeout, std::memory_order_relaxed);
    s.export_generation.fetch_add(1, std::memory_order_acq_rel);
    s.export_summary->active_timeout_sec = timeout;
    s.export_summary->config = request;
    return *ExportSummaryLocked(s, /*running=*/true);
  }
  auto created = FlowExporter::Create(config);
  if (!created) return std::unexpected(created.error());

  // Attach the new exporter, then wait until every member has taken it up: from then on no
  // member hands the old one records, so it can be stopped (sending what it holds) and freed.
  s.active_timeout_sec.store(timeout, std::memory_order_relaxed);
  s.export_target.store(created->get(), std::memory_order_release);
  const uint64_t generation = s.export_generation.fetch_add(1, std::memory_order_acq_rel) + 1;
  const Clock::time_point deadline = Clock::now() + 20 * kTick;
  const auto all_taken = [&] {
    return std::ranges::all_of(s.members, [&](const auto& m) {
      return m->done.load(std::memory_order_acquire) ||
             m->export_taken.load(std::memory_order_acquire) >= generation;
    });
  };
  bool taken = all_taken();
  while (!taken && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    taken = all_taken();
  }
  std::unique_ptr<FlowExporter> old = std::exchange(s.exporter, std::move(*created));
  ExportSummary& sum = s.export_summary ? *s.export_summary : s.export_summary.emplace();
  if (old) {
    if (Status st = old->Stop(kExportStopLimit); !st) sum.error = st.error().message();
    if (taken) {
      AddExportStats(s.export_folded, old->Stats());
    } else {
      s.retired_exporters.push_back(std::move(old));  // a member may still hold it
    }
  }
  sum.config = request;
  sum.collector = s.exporter->collector();
  sum.source_port = s.exporter->source_port();
  sum.active_timeout_sec = timeout;
  ++sum.exporters;
  return *ExportSummaryLocked(s, /*running=*/true);
}

std::optional<ExportSummary> Engine::ExportSummaryLocked(const Session& s, bool running) {
  if (!s.export_summary) return std::nullopt;
  ExportSummary sum = *s.export_summary;
  sum.stats = s.export_folded;
  for (const auto& e : s.retired_exporters) AddExportStats(sum.stats, e->Stats());
  if (s.exporter) AddExportStats(sum.stats, s.exporter->Stats());
  sum.active = running && s.exporter != nullptr;
  return sum;
}

void Engine::EndExportLocked(Session& s, bool graceful) {
  if (s.exporter) {
    const auto limit = graceful ? kExportStopLimit : std::chrono::milliseconds(0);
    if (Status st = s.exporter->Stop(limit); !st && s.export_summary) {
      s.export_summary->error = st.error().message();
    }
    s.retired_exporters.push_back(std::move(s.exporter));
  }
  // The threads are done: nothing holds an exporter any more.
  for (auto& e : s.retired_exporters) {
    (void)e->Stop(std::chrono::milliseconds(0));  // already stopped: returns at once
    AddExportStats(s.export_folded, e->Stats());
  }
  s.retired_exporters.clear();
  s.export_target.store(nullptr, std::memory_order_release);
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
    for (auto& m : session_->members) {
      // A member creates its worker at its next batch or tick.
      FlowWorker* w = nullptr;
      const Clock::time_point deadline = Clock::now() + 4 * kTick;
      while ((w = m->worker_ptr.load(std::memory_order_acquire)) == nullptr &&
             !m->done.load() && Clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      if (w == nullptr || m->done.load()) continue;
      auto snap = w->RequestSnapshot(20 * kTick);
      if (snap) {
        flows.insert(flows.end(), snap->begin(), snap->end());
      } else if (!m->done.load()) {
        return MakeError(ErrorCode::kInternal, "a capture thread did not answer in time");
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
  st.backend_mode = s.backend_mode;
  st.buffer_size_mb = s.request.buffer_size_mb;
  st.timestamp_source = std::string(TimestampSourceName(s.request.timestamp_source));
  st.filter_expr = s.request.filter_expr;
  st.snaplen = s.request.snaplen;
  st.workers = static_cast<uint32_t>(s.members.size());
  if (st.state == SessionState::kRunning) {
    st.flow_metering_enabled = s.meter_pending.load();
    if (st.flow_metering_enabled) {
      st.meter = s.meter;
      if (uint32_t t = s.active_timeout_sec.load(std::memory_order_relaxed); t != 0) {
        st.meter->export_interval_sec = t;  // set by the export request
      }
    }
    st.netflow_enabled = s.exporter != nullptr;
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
  const bool running = s.state.load() == SessionState::kRunning;
  bool usage_seen = false;
  for (const auto& mem : s.members) {
    m.totals.packets += mem->packets.load(std::memory_order_relaxed);
    m.totals.bytes += mem->bytes.load(std::memory_order_relaxed);
    m.totals.bytes_stored += mem->bytes_stored.load(std::memory_order_relaxed);
    m.active_flows += mem->active_flows.load(std::memory_order_relaxed);
    m.total_flows += mem->total_flows.load(std::memory_order_relaxed);
    // While running, read the kernel's counters now rather than the last 250 ms sample, so
    // drops and ring occupancy are as fresh as the packet counts beside them.
    std::optional<SourceStats> fresh;
    if (running && !mem->done.load()) {
      if (auto st = mem->source->Stats()) fresh = *st;
    }
    std::lock_guard<std::mutex> lock(mem->stats_mu);
    if (fresh) mem->source_stats = *fresh;
    const SourceStats& st = mem->source_stats;
    m.totals.dropped_kernel += st.dropped_kernel;
    m.totals.dropped_interface += st.dropped_interface;
    m.totals.received_by_filter += st.received_by_filter;
    m.totals.has_kernel_counters = st.has_kernel_counters;
    if (running && st.has_buffer_usage) {
      // The fullest ring is the one that drops first.
      m.buffer_usage_pct = std::max(m.buffer_usage_pct.value_or(0.0), st.buffer_usage_pct);
      usage_seen = true;
    }
    m.flow_counters += mem->flow_counters;
    m.decode_counters += mem->decode_counters;
  }
  std::lock_guard<std::mutex> lock(s.stats_mu);
  m.totals.duration_sec = s.ended_after_sec >= 0
                              ? s.ended_after_sec
                              : std::chrono::duration<double>(now - s.started).count();
  if (running && !s.samples.empty()) {
    // The oldest sample within (or just beyond) the last second, against the live counters.
    const auto& base = s.samples.front();
    const double dt = std::chrono::duration<double>(now - base.at).count();
    if (dt > 0) {
      m.window_sec = dt;
      m.packet_rate_pps = static_cast<double>(m.totals.packets - base.packets) / dt;
      m.throughput_mbps = static_cast<double>(m.totals.bytes - base.bytes) * 8 / dt / 1e6;
    }
  }
  m.totals.netflow = ExportSummaryLocked(s, running);
  if (!usage_seen) {
    m.buffer_usage_note =
        running ? "the " + s.request.backend + " backend does not expose how full its kernel ring is"
                : "no ring: the session has ended";
  }
  return m;
}

}  // namespace jarvis
