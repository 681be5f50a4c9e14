// The results of `jarvis-capture bench` (bench/capture_live.py) on this host, read back for the
// backends reply of the REST API and the CLI.
//
// The file is JSON written by the benchmark (schema "jarvis-capture-bench/1"). What a measured
// backend's figures mean:
//   max_throughput_gbps: the highest rate at which it captured 1500-byte frames with zero drops,
//     in Gbit/s of frame bytes (Ethernet header through payload, no FCS): pps * 1500 * 8 / 1e9.
//     When the generator itself was the limit (`generator_bound`), a lower bound.
//   cpu_overhead_pct: the capture process's user+system CPU time at that rate, as % of one core.
// A backend the benchmark did not measure, a missing file and a malformed file all leave the
// integration guide's nominal figures in place, marked "nominal" with a note saying why.
//
// Thread safety: the functions are pure apart from reading the file; call from any thread.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.h"

namespace jarvis::bench {

inline constexpr std::string_view kDefaultResultsPath = "/var/lib/jarvis-capture/bench.json";
inline constexpr std::string_view kResultsSchema = "jarvis-capture-bench/1";
// Larger files are refused unread: the benchmark writes a few tens of KiB.
inline constexpr uint64_t kMaxResultsBytes = 4 * 1024 * 1024;

// One frame size of one backend.
struct SizeFigures {
  uint32_t frame_bytes = 0;
  double zero_drop_pps = 0;  // highest rate with nothing lost (0: lost frames at any rate)
  bool zero_drop_lower_bound = false;  // the generator's own maximum: nothing was lost there
  std::optional<double> zero_drop_cpu_pct;
  double max_rate_pps = 0;     // the rate the generator reached, unlimited, with it attached
  double drop_pct_at_max = 0;  // (arrived - captured) / arrived at that rate, in %
};

struct MeasuredBackend {
  double max_throughput_gbps = 0;
  std::optional<double> cpu_overhead_pct;
  bool generator_bound = false;  // max_throughput_gbps is a lower bound
  std::string mode;              // e.g. xdp's "native/copy"; may be empty
  std::map<uint32_t, SizeFigures> sizes;
  uint32_t drop_counter_trials = 0;  // trials whose drop counter was checked
  uint32_t drop_counter_agreed = 0;  // ... and equalled arrived - captured
};

struct BenchResults {
  std::string path;
  std::string date;    // ISO 8601 UTC, as the benchmark wrote it
  std::string kernel;  // uname -r of the host it ran on
  std::map<std::string, MeasuredBackend, std::less<>> measured;
  // Backends the benchmark listed without figures (skipped or failed), with its reason.
  std::map<std::string, std::string, std::less<>> not_measured;
};

// Reads and checks the results file. kNotFound when there is none; kCorruptData (with what is
// wrong) when it is not JSON, has another schema, or lacks a field the figures need;
// kIoError or kPermissionDenied when it cannot be read.
Result<BenchResults> LoadBenchResults(const std::string& path);

// The integration guide's nominal figures for a backend, or nullopt for one it does not name.
struct NominalFigures {
  double gbps;
  double cpu_pct;
};
std::optional<NominalFigures> Nominal(std::string_view backend);

// The figure fields of one entry of the backends reply: max_throughput_gbps, cpu_overhead_pct,
// figures ("measured" or "nominal"), figures_note, and for measured figures measured_at and
// measured (the details). `results` is what LoadBenchResults returned for the configured path.
nlohmann::json BackendFiguresJson(std::string_view backend, const Result<BenchResults>& results);

// One line for people: "measured 2025-01-01T00:00:00Z: >= 5.69 Gbit/s at 1500 B zero-drop, ...".
std::string BackendFiguresText(std::string_view backend, const Result<BenchResults>& results);

}  // namespace jarvis::bench
