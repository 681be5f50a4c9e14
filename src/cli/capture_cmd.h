// `jarvis-capture capture`: tcpdump's habits on top of a capture source and the pcapng writer.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace jarvis {
class CaptureSource;
}

namespace jarvis::cli {

struct CaptureArgs {
  std::string interface;       // -i
  std::string read_file;       // -r
  std::string write_file;      // -w ("-" is standard output)
  uint32_t snaplen = 0;        // -s (0: whole packets)
  uint32_t buffer_kib = 0;     // -B
  uint64_t count = 0;          // -c (0: no limit)
  std::string backend;         // --backend (default: libpcap live, file for -r)
  std::string dpdk_args;       // --dpdk-args: EAL arguments for the dpdk backend
  std::string timestamp_source = "kernel";
  bool immediate = false;
  bool no_promiscuous = false;  // -p
  bool quiet = false;           // -q: no per-packet lines
  bool line_buffered = false;   // -l: standard output line-buffered, as tcpdump -l
  bool packet_buffered = false; // -U: the -w file written out after every batch, as tcpdump -U
  bool verbose = false;         // -v: decode counters in the summary
  double speed = 0;             // --speed: 0 as fast as possible, 1 recorded pace
  std::vector<std::string> filter_words;
};

// Registers the subcommand and its flags, bound to `args`.
CLI::App* AddCaptureCommand(CLI::App& app, CaptureArgs& args);

// Runs the command; returns the process exit code (0 ok, 1 failure, 2 bad usage).
int RunCapture(const CaptureArgs& args);

// tcpdump's "listening on IFACE, link-type ..., snapshot length N bytes" on standard error, then
// the backend's mode line where it has one. Live commands print it once the source is open and
// their signal handlers are in: a supervisor may wait for it, then send traffic or a signal.
void PrintListening(CaptureSource& src, const std::string& interface);

}  // namespace jarvis::cli
