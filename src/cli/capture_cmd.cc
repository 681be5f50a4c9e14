#include "cli/capture_cmd.h"

#include <fmt/format.h>
#include <pcap/pcap.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <optional>

#include "capture/source.h"
#include "cli/packet_line.h"
#include "cli/signals.h"
#include "decode/decoder.h"
#include "store/pcapng_writer.h"

namespace jarvis::cli {

CLI::App* AddCaptureCommand(CLI::App& app, CaptureArgs& a) {
  CLI::App* cmd = app.add_subcommand(
      "capture", "Capture packets from an interface or a file, print them or write pcapng");
  cmd->add_option("-i,--interface", a.interface, "Interface to capture on");
  cmd->add_option("-r,--read", a.read_file, "Read packets from a pcap or pcapng file");
  // Nothing to bind: there are no names to resolve.
  cmd->add_flag("-n")->description(
      "Accepted as tcpdump's -n/-nn (-nr FILE, -ni IFACE): addresses and ports are always "
      "printed as numbers");
  cmd->add_option("-w,--write", a.write_file, "Write packets to a pcapng file ('-' for stdout)");
  cmd->add_option("-s,--snaplen", a.snaplen, "Bytes to keep of each packet (0: all)");
  cmd->add_option("-B,--buffer-size", a.buffer_kib, "Kernel buffer size in KiB");
  cmd->add_option("-c,--count", a.count, "Stop after this many packets");
  cmd->add_option("--backend", a.backend,
                  "Capture backend (default: libpcap for -i, file for -r)");
  cmd->add_option("--dpdk-args", a.dpdk_args,
                  "With --backend dpdk: EAL arguments, e.g. \"--no-huge --no-pci --vdev "
                  "net_pcap0,rx_pcap=in.pcap\" (default: JARVIS_DPDK_ARGS, else built-in)");
  cmd->add_option("-j,--timestamp-source", a.timestamp_source,
                  "Timestamp source: kernel, hardware, ptp or ntp")
      ->check(CLI::IsMember({"kernel", "hardware", "ptp", "ntp"}));
  cmd->add_flag("--immediate", a.immediate,
                "Deliver each packet at once (no block batching; the ring then has one slot per "
                "packet, about 31 in the default 2 MiB where offloads are on: raise -B)");
  cmd->add_flag("-p,--no-promiscuous-mode", a.no_promiscuous, "Do not enter promiscuous mode");
  cmd->add_flag("-q,--quiet", a.quiet, "Print no line per packet");
  cmd->add_flag("-U,--packet-buffered", a.packet_buffered,
                "With -w: write each batch of packets out as it is captured, as tcpdump -U "
                "(capture -i eth0 -U -w - | tshark -r -)");
  cmd->add_flag("-l,--line-buffered", a.line_buffered,
                "Line-buffer standard output, as tcpdump -l: each packet's line goes out as it "
                "is printed, also into a pipe (capture -i eth0 -l | grep ...)");
  cmd->add_flag("-v,--verbose", a.verbose, "Print decoder counters in the summary");
  cmd->add_option("--speed", a.speed,
                  "With -r: replay at this multiple of the recorded pace (0: as fast as "
                  "possible)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("filter", a.filter_words, "BPF filter expression (pcap-filter(7))");
  return cmd;
}

namespace {

std::string Join(const std::vector<std::string>& words) {
  std::string out;
  for (const std::string& w : words) {
    if (!out.empty()) out += ' ';
    out += w;
  }
  return out;
}

std::string LinkTypeName(int dlt) {
  const char* name = pcap_datalink_val_to_name(dlt);
  const char* desc = pcap_datalink_val_to_description(dlt);
  return fmt::format("{} ({})", name ? name : std::to_string(dlt).c_str(), desc ? desc : "?");
}

// "1 packet" / "2 packets", as tcpdump prints them.
std::string Packets(uint64_t n) { return fmt::format("{} packet{}", n, n == 1 ? "" : "s"); }

int Fail(const std::string& msg) {
  fmt::print(stderr, "jarvis-capture: {}\n", msg);
  return 1;
}

}  // namespace

void PrintListening(CaptureSource& src, const std::string& interface) {
  fmt::print(stderr, "listening on {}, link-type {}, snapshot length {} bytes\n", interface,
             LinkTypeName(src.link_type()), src.snaplen());
  if (std::string mode = src.mode(); !mode.empty()) {
    fmt::print(stderr, "{} mode: {}\n", src.backend_name(), mode);
  }
}

int RunCapture(const CaptureArgs& a) {
  // Before anything is written to standard output. (Line-buffered on a terminal anyway.)
  if (a.line_buffered) std::setvbuf(stdout, nullptr, _IOLBF, 0);
  const bool from_file = !a.read_file.empty();
  if (from_file == !a.interface.empty()) {
    fmt::print(stderr, "jarvis-capture: capture needs exactly one of -i INTERFACE or -r FILE\n");
    return 2;
  }
  const std::string backend = !a.backend.empty() ? a.backend : from_file ? "file" : "libpcap";
  const BackendInfo* info = FindBackend(backend);
  if (info == nullptr) {  // a bad --backend value is a usage error, like a bad -j value
    std::string known;
    for (const BackendInfo& b : Backends()) {
      if (!known.empty()) known += ", ";
      known += b.name;
    }
    fmt::print(stderr, "jarvis-capture: unknown backend '{}' (known: {})\n", backend, known);
    return 2;
  }
  if ((info->kind == BackendKind::kFile) != from_file) {
    fmt::print(stderr, "jarvis-capture: backend '{}' {}\n", backend,
               from_file ? "captures live; use -i" : "reads files; use -r");
    return 2;
  }

  if (!a.dpdk_args.empty() && backend != "dpdk") {
    fmt::print(stderr, "jarvis-capture: --dpdk-args needs --backend dpdk\n");
    return 2;
  }

  SourceOptions opts;
  opts.target = from_file ? a.read_file : a.interface;
  opts.snaplen = a.snaplen;
  opts.buffer_size_kib = a.buffer_kib;
  opts.immediate = a.immediate;
  opts.promiscuous = !a.no_promiscuous;
  opts.filter = Join(a.filter_words);
  opts.replay_speed = a.speed;
  opts.dpdk_args = a.dpdk_args;
  auto ts = ParseTimestampSource(a.timestamp_source);
  if (!ts) return Fail(ts.error().message());
  opts.timestamp_source = *ts;

  // Writing over the file being read would destroy it before it is read (tcpdump lets it
  // happen): refused, before anything is opened for writing.
  if (from_file && !a.write_file.empty() && a.write_file != "-" && a.read_file != "-") {
    struct stat in {}, out {};
    if (::stat(a.read_file.c_str(), &in) == 0 && ::stat(a.write_file.c_str(), &out) == 0 &&
        in.st_dev == out.st_dev && in.st_ino == out.st_ino) {
      fmt::print(stderr, "jarvis-capture: -w {} is the file being read (-r {}): not overwritten\n",
                 a.write_file, a.read_file);
      return 2;
    }
  }

  auto opened = OpenSource(backend, opts);
  if (!opened) return Fail(opened.error().message());
  CaptureSource& src = **opened;

  std::optional<PcapngWriter> writer;
  uint32_t if_id = 0;
  if (!a.write_file.empty()) {
    auto w = a.write_file == "-"
                 ? PcapngWriter::FromFd(UniqueFd(::dup(STDOUT_FILENO)), "standard output",
                                        "jarvis-capture")
                 : PcapngWriter::Create(a.write_file, "jarvis-capture");
    if (!w) return Fail(w.error().message());
    writer.emplace(std::move(*w));
    PcapngInterface iface{src.link_type(), src.snaplen(), from_file ? "" : a.interface, ""};
    auto id = writer->AddInterface(iface);
    if (!id) return Fail(id.error().message());
    if_id = *id;
  }
  const bool print_lines = a.write_file.empty() && !a.quiet;

  // Handlers go in before "listening on" is printed: a supervisor that waits for that line and
  // then sends SIGTERM must get a clean stop and a complete file, not death by the signal.
  StopOnSignals(&src);
  if (!from_file) PrintListening(src, a.interface);

  PacketBatch batch;
  DecodeCounters counters;
  PacketMeta meta;
  uint64_t taken = 0;
  std::optional<Error> failure;
  bool output_closed = false;  // the reader of standard output has gone (StdoutReaderGone)
  // A write that failed: to standard output whose reader has gone, capture just ends;
  // anything else is an error.
  auto write_failed = [&](bool to_stdout, Error error) {
    output_closed = to_stdout && StdoutReaderGone();
    if (!output_closed) failure = std::move(error);
  };
  const bool writer_on_stdout = a.write_file == "-";
  bool at_end = false;
  // Writes and prints the batch's packets; false when capture should end (the count is
  // reached, or writing failed).
  auto take = [&] {
    for (const PacketView& pkt : batch.packets()) {
      if (a.count != 0 && taken == a.count) break;
      ++taken;
      if (writer) {
        if (auto st = writer->WritePacket(pkt, if_id); !st) {
          write_failed(writer_on_stdout, st.error());
          break;
        }
      }
      if (print_lines || a.verbose) {
        DecodeResult r = Decode(batch.link_type(), pkt, meta, counters);
        // stdio reports a failed write when its buffer is flushed, at some later line.
        if (print_lines && std::puts(FormatPacketLine(pkt, meta, r).c_str()) == EOF) {
          write_failed(true, Error::FromErrno(errno, "writing standard output"));
          break;
        }
      }
    }
    if (a.packet_buffered && writer && !failure && !output_closed) {
      if (auto st = writer->Flush(); !st) write_failed(writer_on_stdout, st.error());
    }
    return !failure && !output_closed && (a.count == 0 || taken < a.count);
  };
  bool more = true;
  while (!StopRequested()) {
    auto n = src.Receive(batch, std::chrono::milliseconds(200));
    if (!n) {
      at_end = n.error().code() == ErrorCode::kEndOfStream;
      if (!at_end) failure = n.error();
      break;
    }
    if (!(more = take())) break;
  }
  // Stopped by a signal: what the kernel already holds was received, so it is written too, as
  // the daemon's graceful stop does.
  if (StopRequested() && more && !from_file && !failure && !at_end) {
    DrainAfterStop(src, batch, take);
  }
  batch.Reset();  // ring memory goes back before the statistics are read
  StopOnSignals(nullptr);

  if (writer) {
    if (auto st = writer->Close(); !st && !failure && !output_closed) {
      write_failed(writer_on_stdout, st.error());
    }
  }
  if (std::fflush(stdout) != 0 && !failure && !output_closed) {
    write_failed(true, Error::FromErrno(errno, "writing standard output"));
  }
  if (output_closed) return kExitOutputClosed;  // as tcpdump's `| head`: nothing more to say

  auto stats = src.Stats();
  fmt::print(stderr, "{} captured\n", Packets(taken));
  if (stats) {
    if (from_file) {
      // Said only when the whole file was read: with -c the reader may be ahead of the count.
      if (at_end) {
        fmt::print(stderr, "{} read from file\n", Packets(stats->packets + stats->filtered_out));
        fmt::print(stderr, "{} excluded by filter\n", Packets(stats->filtered_out));
      }
    } else {
      fmt::print(stderr, "{} received by filter\n", Packets(stats->received_by_filter));
      if (stats->has_kernel_counters) {
        fmt::print(stderr, "{} dropped by kernel\n", Packets(stats->dropped_kernel));
      } else {
        fmt::print(stderr, "drops not measured: this source has no kernel drop counters\n");
      }
      if (stats->dropped_interface != 0) {
        fmt::print(stderr, "{} dropped by interface\n", Packets(stats->dropped_interface));
      }
    }
  } else {
    fmt::print(stderr, "statistics unavailable: {}\n", stats.error().message());
  }
  if (a.verbose) {
    counters.ForEach([](std::string_view name, std::string_view, uint64_t v) {
      if (v != 0) fmt::print(stderr, "  {}: {}\n", name, v);
    });
  }
  if (failure) return Fail(failure->message());
  return 0;
}

}  // namespace jarvis::cli
