#include "bench/bench_results.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <fstream>
#include <sstream>

namespace jarvis::bench {
namespace {

using Json = nlohmann::json;

// The integration guide's figures, reported as nominal (never as measurements).
constexpr struct {
  std::string_view name;
  NominalFigures figures;
} kNominal[] = {{"libpcap", {10, 15}},
                {"af_packet", {40, 10}},
                {"xdp", {100, 5}},
                {"dpdk", {400, 3}},
                {"pf_ring", {50, 10}}};

constexpr const char* kNominalNote =
    "integration guide's nominal figures; not measured on this host";

std::unexpected<Error> Corrupt(const std::string& path, const std::string& what) {
  return MakeError(ErrorCode::kCorruptData, "benchmark results " + path + ": " + what);
}

// A finite, non-negative number at obj[key]; `where` names it in errors.
Result<double> Number(const Json& obj, const char* key, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_number()) {
    return MakeError(ErrorCode::kCorruptData, where + "." + key + " is not a number");
  }
  const double v = it->get<double>();
  if (!std::isfinite(v) || v < 0) {
    return MakeError(ErrorCode::kCorruptData, where + "." + key + " is out of range");
  }
  return v;
}

Result<std::optional<double>> NumberOrNull(const Json& obj, const char* key,
                                           const std::string& where) {
  auto it = obj.find(key);
  if (it != obj.end() && it->is_null()) return std::optional<double>();
  auto v = Number(obj, key, where);
  if (!v) return std::unexpected(v.error());
  return std::optional<double>(*v);
}

const Json* Object(const Json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_object() ? &*it : nullptr;
}

Result<MeasuredBackend> ParseMeasured(const Json& b, const std::string& where) {
  MeasuredBackend m;
  auto gbps = Number(b, "max_throughput_gbps", where);
  if (!gbps) return std::unexpected(gbps.error());
  m.max_throughput_gbps = *gbps;
  auto cpu = NumberOrNull(b, "cpu_overhead_pct", where);
  if (!cpu) return std::unexpected(cpu.error());
  m.cpu_overhead_pct = *cpu;
  if (auto it = b.find("mode"); it != b.end() && it->is_string()) m.mode = it->get<std::string>();

  const Json* sizes = Object(b, "sizes");
  if (sizes == nullptr || sizes->empty()) {
    return MakeError(ErrorCode::kCorruptData, where + ".sizes is missing or empty");
  }
  for (const auto& [key, s] : sizes->items()) {
    const std::string w = where + ".sizes." + key;
    uint32_t bytes = 0;
    try {
      size_t used = 0;
      const unsigned long v = std::stoul(key, &used);
      if (used != key.size() || v == 0 || v > 65535) throw std::invalid_argument(key);
      bytes = static_cast<uint32_t>(v);
    } catch (const std::exception&) {
      return MakeError(ErrorCode::kCorruptData, w + ": the key is not a frame size");
    }
    if (!s.is_object()) return MakeError(ErrorCode::kCorruptData, w + " is not an object");
    const Json* zero = Object(s, "zero_drop");
    const Json* max = Object(s, "max_rate");
    if (zero == nullptr || max == nullptr) {
      return MakeError(ErrorCode::kCorruptData, w + " lacks zero_drop or max_rate");
    }
    SizeFigures f;
    f.frame_bytes = bytes;
    auto pps = Number(*zero, "pps", w + ".zero_drop");
    if (!pps) return std::unexpected(pps.error());
    f.zero_drop_pps = *pps;
    auto lb = zero->find("lower_bound");
    if (lb == zero->end() || !lb->is_boolean()) {
      return MakeError(ErrorCode::kCorruptData, w + ".zero_drop.lower_bound is not a boolean");
    }
    f.zero_drop_lower_bound = lb->get<bool>();
    auto zcpu = NumberOrNull(*zero, "cpu_pct", w + ".zero_drop");
    if (!zcpu) return std::unexpected(zcpu.error());
    f.zero_drop_cpu_pct = *zcpu;
    auto mpps = Number(*max, "pps", w + ".max_rate");
    if (!mpps) return std::unexpected(mpps.error());
    f.max_rate_pps = *mpps;
    auto drop = Number(*max, "drop_pct", w + ".max_rate");
    if (!drop) return std::unexpected(drop.error());
    if (*drop > 100) return MakeError(ErrorCode::kCorruptData, w + ".max_rate.drop_pct > 100");
    f.drop_pct_at_max = *drop;
    if (const Json* dc = Object(s, "drop_counter")) {
      auto trials = Number(*dc, "trials", w + ".drop_counter");
      auto agree = Number(*dc, "agree", w + ".drop_counter");
      if (!trials || !agree) {
        return std::unexpected(trials ? agree.error() : trials.error());
      }
      m.drop_counter_trials += static_cast<uint32_t>(*trials);
      m.drop_counter_agreed += static_cast<uint32_t>(*agree);
    }
    m.sizes[bytes] = f;
  }
  // The frame size max_throughput_gbps was taken at (1500 unless the file says otherwise).
  uint32_t at = 1500;
  if (auto it = b.find("max_throughput_frame_bytes"); it != b.end()) {
    if (!it->is_number_unsigned()) {
      return MakeError(ErrorCode::kCorruptData,
                       where + ".max_throughput_frame_bytes is not a size");
    }
    at = it->get<uint32_t>();
  }
  auto used = m.sizes.find(at);
  if (used == m.sizes.end()) {
    return MakeError(ErrorCode::kCorruptData,
                     where + ": no figures for " + std::to_string(at) + "-byte frames");
  }
  m.generator_bound = used->second.zero_drop_lower_bound;
  return m;
}

std::string Trim(double v, int decimals) {
  std::string s = fmt::format("{:.{}f}", v, decimals);
  if (s.find('.') != std::string::npos) {
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
  }
  return s;
}

}  // namespace

std::optional<NominalFigures> Nominal(std::string_view backend) {
  for (const auto& n : kNominal) {
    if (n.name == backend) return n.figures;
  }
  return std::nullopt;
}

Result<BenchResults> LoadBenchResults(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return ErrnoError(errno, "benchmark results " + path);
  }
  if (!S_ISREG(st.st_mode)) return Corrupt(path, "not a regular file");
  if (static_cast<uint64_t>(st.st_size) > kMaxResultsBytes) {
    return Corrupt(path, fmt::format("larger than {} bytes", kMaxResultsBytes));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return ErrnoError(errno, "benchmark results " + path);
  std::ostringstream text;
  text << in.rdbuf();
  const Json doc = Json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Corrupt(path, "not valid JSON");
  if (!doc.is_object()) return Corrupt(path, "not a JSON object");
  auto schema = doc.find("schema");
  if (schema == doc.end() || !schema->is_string() || *schema != kResultsSchema) {
    return Corrupt(path, fmt::format("schema is not \"{}\"", kResultsSchema));
  }
  BenchResults r;
  r.path = path;
  auto date = doc.find("date");
  if (date == doc.end() || !date->is_string() || date->get<std::string>().empty()) {
    return Corrupt(path, "date is missing");
  }
  r.date = date->get<std::string>();
  if (const Json* host = Object(doc, "host")) {
    if (auto k = host->find("kernel"); k != host->end() && k->is_string()) r.kernel = *k;
  }
  const Json* backends = Object(doc, "backends");
  if (backends == nullptr) return Corrupt(path, "backends is missing");
  for (const auto& [name, b] : backends->items()) {
    const std::string where = "backends." + name;
    if (!b.is_object()) return Corrupt(path, where + " is not an object");
    auto status = b.find("status");
    if (status == b.end() || !status->is_string())
      return Corrupt(path, where + ".status is missing");
    if (*status == "measured") {
      auto m = ParseMeasured(b, where);
      if (!m) return Corrupt(path, m.error().message());
      r.measured.emplace(name, std::move(*m));
    } else {
      auto reason = b.find("reason");
      r.not_measured.emplace(name, fmt::format("{}{}", status->get<std::string>(),
                                               reason != b.end() && reason->is_string()
                                                   ? ": " + reason->get<std::string>()
                                                   : std::string()));
    }
  }
  return r;
}

nlohmann::json BackendFiguresJson(std::string_view backend, const Result<BenchResults>& results) {
  Json out = Json::object();
  if (results) {
    if (auto it = results->measured.find(backend); it != results->measured.end()) {
      const MeasuredBackend& m = it->second;
      out["max_throughput_gbps"] = m.max_throughput_gbps;
      out["cpu_overhead_pct"] = m.cpu_overhead_pct ? Json(*m.cpu_overhead_pct) : Json(nullptr);
      out["figures"] = "measured";
      out["measured_at"] = results->date;
      std::string note =
          "measured by `jarvis-capture bench` on this host: the highest rate of 1500-byte frames "
          "captured with zero drops on a veth pair, in Gbit/s of frame bytes, and the capture "
          "process's CPU at that rate in % of one core";
      if (m.generator_bound) {
        note += "; a lower bound: nothing was lost at the generator's maximum rate";
      }
      out["figures_note"] = note;
      Json zero = Json::object(), lower = Json::object(), cpu = Json::object(),
           max_pps = Json::object(), drop = Json::object();
      for (const auto& [bytes, f] : m.sizes) {
        const std::string k = std::to_string(bytes);
        zero[k] = std::llround(f.zero_drop_pps);  // frames a second: whole numbers
        lower[k] = f.zero_drop_lower_bound;
        cpu[k] = f.zero_drop_cpu_pct ? Json(*f.zero_drop_cpu_pct) : Json(nullptr);
        max_pps[k] = std::llround(f.max_rate_pps);
        drop[k] = f.drop_pct_at_max;
      }
      out["measured"] = Json{{"results_file", results->path},
                             {"kernel", results->kernel},
                             {"mode", m.mode},
                             {"generator_bound", m.generator_bound},
                             {"zero_drop_pps", zero},
                             {"zero_drop_is_lower_bound", lower},
                             {"cpu_pct_at_zero_drop", cpu},
                             {"max_rate_pps", max_pps},
                             {"drop_pct_at_max_rate", drop},
                             {"drop_counter_checked_trials", m.drop_counter_trials},
                             {"drop_counter_agreed_trials", m.drop_counter_agreed}};
      return out;
    }
  }
  const auto nominal = Nominal(backend);
  out["max_throughput_gbps"] = nominal ? Json(nominal->gbps) : Json(nullptr);
  out["cpu_overhead_pct"] = nominal ? Json(nominal->cpu_pct) : Json(nullptr);
  out["figures"] = "nominal";
  if (results) {
    auto why = results->not_measured.find(backend);
    out["figures_note"] =
        fmt::format("{}: the benchmark of {} ({}) {}", kNominalNote, results->date, results->path,
                    why != results->not_measured.end() ? "did not measure it: " + why->second
                                                       : std::string("did not run it"));
  } else if (results.error().code() == ErrorCode::kNotFound) {
    out["figures_note"] = fmt::format(
        "{} (no benchmark results: {}; `jarvis-capture bench` "
        "writes them)",
        kNominalNote, results.error().message());
  } else {
    out["figures_note"] = fmt::format("{}: the benchmark results could not be used ({})",
                                      kNominalNote, results.error().message());
  }
  return out;
}

std::string BackendFiguresText(std::string_view backend, const Result<BenchResults>& results) {
  if (results) {
    if (auto it = results->measured.find(backend); it != results->measured.end()) {
      const MeasuredBackend& m = it->second;
      std::string per_size;
      for (const auto& [bytes, f] : m.sizes) {
        per_size += fmt::format(
            "{}{} B: {}{} Mpps zero-drop, {}% dropped at {} Mpps", per_size.empty() ? "" : "; ",
            bytes, f.zero_drop_lower_bound ? ">= " : "", Trim(f.zero_drop_pps / 1e6, 3),
            Trim(f.drop_pct_at_max, 2), Trim(f.max_rate_pps / 1e6, 3));
      }
      return fmt::format("measured {}: {}{} Gbit/s, CPU {}{} ({})", results->date,
                         m.generator_bound ? ">= " : "", Trim(m.max_throughput_gbps, 2),
                         m.cpu_overhead_pct ? Trim(*m.cpu_overhead_pct, 1) : "?",
                         m.cpu_overhead_pct ? "%" : "", per_size);
    }
  }
  const auto nominal = Nominal(backend);
  if (!nominal) return {};
  std::string why;
  if (results) {
    auto it = results->not_measured.find(backend);
    why = it != results->not_measured.end() ? "not measured: " + it->second
                                            : "not in the benchmark of " + results->date;
  } else if (results.error().code() == ErrorCode::kNotFound) {
    why = "no benchmark results";
  } else {
    why = results.error().message();
  }
  return fmt::format("nominal: {} Gbit/s, CPU {}% ({})", Trim(nominal->gbps, 2),
                     Trim(nominal->cpu_pct, 1), why);
}

}  // namespace jarvis::bench
