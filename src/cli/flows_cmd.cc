#include "cli/flows_cmd.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>
#include <vector>

#include "capture/source.h"
#include "cli/capture_cmd.h"
#include "cli/signals.h"
#include "export/flow_exporter.h"
#include "flow/flow_format.h"
#include "flow/flow_pipeline.h"
#include "flow/flow_worker.h"

namespace jarvis::cli {

CLI::App* AddFlowsCommand(CLI::App& app, FlowsArgs& a) {
  CLI::App* cmd = app.add_subcommand(
      "flows", "Meter packets into bidirectional flows and print the finished flows");
  cmd->add_option("-i,--interface", a.interface, "Interface to capture on");
  cmd->add_option("-r,--read", a.read_file, "Read packets from a pcap or pcapng file");
  // Nothing to bind: there are no names to resolve.
  cmd->add_flag("-n")->description(
      "Accepted as tcpdump's -n/-nn (-nr FILE, -ni IFACE): addresses and ports are always "
      "printed as numbers");
  cmd->add_option("--backend", a.backend,
                  "Capture backend (default: libpcap for -i, file for -r)");
  cmd->add_option("--format", a.format,
                  "Output: table, csv, json (one object per line) or none (export only)")
      ->check(CLI::IsMember({"table", "csv", "json", "none"}));
  cmd->add_option("--export", a.exports,
                  "Export finished flows to a collector over UDP: ipfix://HOST[:PORT], "
                  "netflow9://HOST[:PORT] or netflow5://HOST[:PORT], with ?biflow=1, mtu=, "
                  "rate= (datagrams/s) and more (docs/EXPORT.md); repeatable")
      ->allow_extra_args(false);  // one URL per --export: the filter words stay positional
  cmd->add_option("--idle-timeout", a.idle_timeout, "Seconds without packets that end a flow")
      ->check(CLI::Range(1u, 86400u));
  cmd->add_option("--active-timeout", a.active_timeout,
                  "Seconds after which a long flow is exported and goes on")
      ->check(CLI::Range(1u, 86400u));
  cmd->add_option("--table-size", a.table_size, "Concurrent flows the table holds")
      ->check(CLI::Range(1u, 100000000u));
  cmd->add_option("--dpdk-args", a.dpdk_args,
                  "With --backend dpdk: EAL arguments, e.g. \"--no-huge --no-pci --vdev "
                  "net_pcap0,rx_pcap=in.pcap\" (default: JARVIS_DPDK_ARGS, else built-in)");
  cmd->add_option("--workers", a.workers,
                  "Flow workers; with more than one, each meters its own shard on its own "
                  "thread while this one reads and decodes (N+1 busy threads: keep N below the "
                  "number of cores; on two, --pipeline is the faster layout)")
      ->check(CLI::Range(1u, 64u));
  cmd->add_option("-s,--snaplen", a.snaplen, "Bytes to keep of each packet (0: all)");
  cmd->add_option("-B,--buffer-size", a.buffer_kib, "Kernel buffer size in KiB");
  cmd->add_option("-c,--count", a.count, "Stop after this many packets");
  cmd->add_option("--speed", a.speed,
                  "With -r: replay at this multiple of the recorded pace (0, the default: as "
                  "fast as possible)")
      ->check(CLI::Range(0.0, 1e6));
  cmd->add_flag("--pipeline", a.pipeline,
                "Meter on a worker thread even with one worker (reader and meter in parallel)");
  cmd->add_flag("--no-progress", a.no_progress, "No progress line on a terminal");
  cmd->add_flag("--stats", a.stats, "Print meter and decoder counters to stderr at the end");
  cmd->add_option("filter", a.filter_words, "BPF filter expression (pcap-filter(7))");
  return cmd;
}

namespace {

// Formats records as they finish and writes them to standard output: from a file in large
// chunks, live as they come (each batch of finished flows is written at once, so that a
// terminal, `| jq` or a log shipper sees a flow when it ends, not a megabyte later).
class PrintSink final : public FlowSink {
 public:
  // `print` false: records are only counted (--format none). `prompt`: write every batch.
  PrintSink(FlowFormat format, bool print, bool prompt)
      : format_(format), print_(print), prompt_(prompt) {
    if (!print_) return;
    out_.reserve(kChunk + 4096);
    if (format_ == FlowFormat::kCsv) {
      out_ += FlowFieldNames();
      out_ += '\n';
    } else if (format_ == FlowFormat::kTable) {
      out_ += FlowTableHeader();
      out_ += '\n';
    }
    if (prompt_) Flush();  // the header, before the first flow ends
  }
  ~PrintSink() override { Flush(); }

  void OnFlows(std::span<const FlowRecord> records) override {
    // One writer at a time (the printing thread, or the pipeline's lock): load and store.
    flows_.store(flows_.load(std::memory_order_relaxed) + records.size(),
                 std::memory_order_relaxed);
    if (!print_ || !ok_) return;  // --format none, or the output failed: counted, not printed
    for (const FlowRecord& r : records) {
      switch (format_) {
        case FlowFormat::kJson:
          AppendFlowJson(r, out_);
          break;
        case FlowFormat::kCsv:
          AppendFlowCsv(r, out_);
          break;
        case FlowFormat::kTable:
          AppendFlowTableRow(r, out_);
          break;
      }
      out_ += '\n';
    }
    if (prompt_ || out_.size() >= kChunk) Flush();
  }

  // False once writing failed; error() says why.
  bool Flush() {
    if (!print_ || !ok_) return ok_;
    if ((!out_.empty() && std::fwrite(out_.data(), 1, out_.size(), stdout) != out_.size()) ||
        std::fflush(stdout) != 0) {
      ok_ = false;
      error_ = errno;
      reader_gone_.store(StdoutReaderGone(), std::memory_order_relaxed);
    }
    out_.clear();
    return ok_;
  }
  // These two may be read on another thread than the one that prints (--workers, --pipeline:
  // the metering threads print, under the pipeline's lock).
  uint64_t flows() const { return flows_.load(std::memory_order_relaxed); }
  // The reader of standard output has gone (see StdoutReaderGone).
  bool reader_gone() const { return reader_gone_.load(std::memory_order_relaxed); }
  int error() const { return error_; }

 private:
  static constexpr size_t kChunk = 1 << 20;
  FlowFormat format_;
  bool print_;
  bool prompt_;
  std::string out_;
  std::atomic<uint64_t> flows_{0};
  bool ok_ = true;
  std::atomic<bool> reader_gone_{false};
  int error_ = 0;
};

// Hands each batch to every sink in turn (the printer, then each exporter).
class TeeSink final : public FlowSink {
 public:
  void Add(FlowSink* sink) { sinks_.push_back(sink); }
  void OnFlows(std::span<const FlowRecord> records) override {
    for (FlowSink* s : sinks_) s->OnFlows(records);
  }

 private:
  std::vector<FlowSink*> sinks_;
};

std::string Join(const std::vector<std::string>& words) {
  std::string out;
  for (const std::string& w : words) {
    if (!out.empty()) out += ' ';
    out += w;
  }
  return out;
}

TimestampNs WallClockNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<TimestampNs>(ts.tv_sec) * kNanosPerSecond + ts.tv_nsec;
}

// One line on a terminal, rewritten in place: percent of the file, rate, flows.
class ProgressLine {
 public:
  explicit ProgressLine(bool enabled) : enabled_(enabled) {}
  void Update(const CaptureSource& src, uint64_t packets, uint32_t active_flows,
              uint64_t finished) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::milliseconds(500)) return;
    const double secs = std::chrono::duration<double>(now - start_).count();
    std::string pct;
    if (auto p = src.Progress()) pct = fmt::format("{:5.1f}% ", *p * 100);
    fmt::print(stderr, "\r{}{} packets, {:.2f} Mpps, {} active flows, {} finished   ", pct,
               packets, secs > 0 ? static_cast<double>(packets) / secs / 1e6 : 0.0,
               active_flows, finished);
    last_ = now;
    shown_ = true;
  }
  void Clear() {
    if (shown_) fmt::print(stderr, "\r{:79}\r", "");
  }

 private:
  bool enabled_;
  bool shown_ = false;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_ = start_;
};

}  // namespace

int RunFlows(const FlowsArgs& a) {
  const bool from_file = !a.read_file.empty();
  if (from_file == !a.interface.empty()) {
    fmt::print(stderr, "jarvis-capture: flows needs exactly one of -i INTERFACE or -r FILE\n");
    return 2;
  }
  const std::string backend = !a.backend.empty() ? a.backend : from_file ? "file" : "libpcap";
  if (!a.dpdk_args.empty() && backend != "dpdk") {
    fmt::print(stderr, "jarvis-capture: --dpdk-args needs --backend dpdk\n");
    return 2;
  }
  SourceOptions opts;
  opts.dpdk_args = a.dpdk_args;
  opts.target = from_file ? a.read_file : a.interface;
  opts.snaplen = a.snaplen;
  opts.buffer_size_kib = a.buffer_kib;
  opts.filter = Join(a.filter_words);
  opts.replay_speed = a.speed;
  auto opened = OpenSource(backend, opts);
  if (!opened) {
    fmt::print(stderr, "jarvis-capture: {}\n", opened.error().message());
    return 1;
  }
  CaptureSource& src = **opened;

  FlowConfig config;
  config.table_size = a.table_size;
  config.idle_timeout_sec = a.idle_timeout;
  config.active_timeout_sec = a.active_timeout;
  const FlowFormat format = a.format == "json"  ? FlowFormat::kJson
                            : a.format == "csv" ? FlowFormat::kCsv
                                                : FlowFormat::kTable;
  // Exporters: a file waits for the exporter (nothing is dropped), live capture never does.
  std::vector<std::unique_ptr<FlowExporter>> exporters;
  for (const std::string& url : a.exports) {
    auto config = ParseExportUrl(url);
    if (!config) {
      fmt::print(stderr, "jarvis-capture: {}\n", config.error().message());
      return 2;
    }
    config->queue_full = from_file ? QueueFullPolicy::kWait : QueueFullPolicy::kDrop;
    auto exporter = FlowExporter::Create(*config);
    if (!exporter) {
      fmt::print(stderr, "jarvis-capture: export to {}: {}\n", url, exporter.error().message());
      return 1;
    }
    exporters.push_back(std::move(*exporter));
  }
  // The printer is made after the exporters, so a bad URL prints no table header first.
  PrintSink sink(format, a.format != "none", /*prompt=*/!from_file);
  TeeSink tee;
  tee.Add(&sink);
  for (auto& e : exporters) tee.Add(e.get());
  FlowSink* out = exporters.empty() ? static_cast<FlowSink*>(&sink) : &tee;
  // One thread meters inline; more workers get a reader thread that decodes and shards.
  std::optional<FlowWorker> inline_worker;
  std::optional<FlowPipeline> pipeline;
  if (a.workers <= 1 && !a.pipeline) {
    inline_worker.emplace(config, config.table_size, out);
  } else {
    pipeline.emplace(config, a.workers, out);
  }
  const auto active_flows = [&] {
    return inline_worker ? inline_worker->table().active_flows() : pipeline->active_flows();
  };
  // Not when the flows themselves go to a terminal: their lines would land in the middle of
  // the progress line, and they show the progress anyway.
  ProgressLine progress(!a.no_progress && ::isatty(STDERR_FILENO) &&
                        (a.format == "none" || !::isatty(STDOUT_FILENO)));

  StopOnSignals(&src);
  if (!from_file) PrintListening(src, a.interface);
  PacketBatch batch;
  // Packets are decoded as the source appends them (PacketVisitor), by the inline worker or
  // by the pipeline's reader.
  batch.set_visitor(inline_worker ? inline_worker->batch_decoder() : pipeline->batch_decoder());
  uint64_t packets = 0;
  std::optional<Error> failure;
  while (!StopRequested()) {
    auto n = src.Receive(batch, std::chrono::milliseconds(200));
    if (!n) {
      if (n.error().code() != ErrorCode::kEndOfStream) failure = n.error();
      break;
    }
    if (*n == 0) {
      if (!from_file) {
        const TimestampNs now = WallClockNs();
        if (inline_worker) inline_worker->Tick(now);
        if (pipeline) pipeline->Tick(now);
        for (auto& e : exporters) e->AdvanceClock(now);
      }
      continue;
    }
    const uint64_t room = a.count != 0 ? a.count - packets : *n;
    const uint32_t take = static_cast<uint32_t>(std::min<uint64_t>(room, *n));
    if (inline_worker) inline_worker->ProcessBatch(batch, take);
    if (pipeline) pipeline->Dispatch(batch, take);
    // The export clock follows packet time (header times agree with the flows' times).
    if (take > 0) {
      for (auto& e : exporters) e->AdvanceClock(batch[take - 1].ts_ns);
    }
    packets += take;
    progress.Update(src, packets, active_flows(), sink.flows());
    if (a.count != 0 && packets >= a.count) break;
    if (sink.reader_gone()) break;  // `| head` has its lines: stop reading
  }
  StopOnSignals(nullptr);
  if (inline_worker) inline_worker->Finish();
  if (pipeline) pipeline->Finish();
  progress.Clear();
  const bool written = sink.Flush();
  // Everything metered is sent before the command exits.
  bool exported = true;
  for (auto& e : exporters) {
    if (Status st = e->Stop(std::chrono::seconds(120)); !st) {
      fmt::print(stderr, "jarvis-capture: {}\n", st.error().message());
      exported = false;
    }
  }

  if (a.stats) {
    const FlowCounters c =
        inline_worker ? inline_worker->table().counters() : pipeline->counters();
    const DecodeCounters d =
        inline_worker ? inline_worker->decode_counters() : pipeline->decode_counters();
    const size_t table_bytes =
        inline_worker ? inline_worker->table().memory_bytes() : pipeline->memory_bytes();
    fmt::print(stderr,
               "{} packets, {} metered ({} IP octets), {} not metered; {} flows, {} records, "
               "{} evicted, at most {} at once; fragments: {} attributed, {} unattributed\n"
               "flow table: {:.1f} MiB for {} flows\n",
               packets, c.packets, c.octets, c.not_metered, c.flows_created, c.flows_exported,
               c.evicted, c.peak_active, c.fragments_attributed, c.fragments_unattributed,
               static_cast<double>(table_bytes) / (1 << 20), config.table_size);
    d.ForEach([](std::string_view name, std::string_view, uint64_t v) {
      if (v != 0) fmt::print(stderr, "  {}: {}\n", name, v);
    });
    for (const auto& e : exporters) {
      fmt::print(stderr, "export {} (from port {}):\n", e->config().Url(), e->source_port());
      e->Stats().ForEach([](std::string_view name, std::string_view, uint64_t v) {
        fmt::print(stderr, "  {}: {}\n", name, v);
      });
    }
  }
  if (sink.reader_gone()) return kExitOutputClosed;
  if (!written) {
    fmt::print(stderr, "jarvis-capture: writing flows to standard output: {}\n",
               std::strerror(sink.error()));
    return 1;
  }
  if (failure) {
    fmt::print(stderr, "jarvis-capture: {}\n", failure->message());
    return 1;
  }
  return exported ? 0 : 1;
}

}  // namespace jarvis::cli
