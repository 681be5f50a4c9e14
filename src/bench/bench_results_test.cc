#include "bench/bench_results.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace jarvis::bench {
namespace {

namespace fs = std::filesystem;

// A file as bench/capture_live.py writes it: af_packet measured (generator-bound at 1500 B,
// a real limit at 64 B), xdp measured at 1500 B only, pf_ring skipped.
constexpr const char* kValid = R"({
 "schema": "jarvis-capture-bench/1",
 "date": "2030-01-02T03:04:05Z",
 "host": {"kernel": "6.18.0-test", "cpus": 2},
 "backends": {
  "af_packet": {
   "kind": "ours", "status": "measured", "mode": "",
   "max_throughput_gbps": 5.688, "cpu_overhead_pct": 6.5, "max_throughput_frame_bytes": 1500,
   "sizes": {
    "64": {"frame_bytes": 64,
           "zero_drop": {"pps": 412000, "mpps": 0.412, "gbps": 0.211, "cpu_pct": 1.6,
                         "lower_bound": false},
           "max_rate": {"pps": 466000, "drop_pct": 3.25, "cpu_pct": 2.0},
           "drop_counter": {"trials": 6, "agree": 6, "disagreements": []}},
    "1500": {"frame_bytes": 1500,
             "zero_drop": {"pps": 474000, "mpps": 0.474, "gbps": 5.688, "cpu_pct": 6.5,
                           "lower_bound": true},
             "max_rate": {"pps": 474000, "drop_pct": 0.0},
             "drop_counter": {"trials": 1, "agree": 1, "disagreements": []}}
   }
  },
  "xdp": {
   "kind": "ours", "status": "measured", "mode": "native/copy",
   "max_throughput_gbps": 3.9, "cpu_overhead_pct": 38.4,
   "sizes": {"1500": {"zero_drop": {"pps": 325000, "cpu_pct": 38.4, "lower_bound": true},
                      "max_rate": {"pps": 325000, "drop_pct": 0}}}
  },
  "pf_ring": {"kind": "ours", "status": "skipped", "reason": "libpfring is not installed"}
 },
 "peers": {"tcpdump": {"kind": "peer", "status": "measured"}}
})";

class BenchResultsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/jarvis-bench-results-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = (fs::path(dir_) / name).string();
    std::ofstream(path) << text;
    return path;
  }

  std::string dir_;
};

TEST_F(BenchResultsTest, ValidFileGivesEveryFigure) {
  auto r = LoadBenchResults(Write("bench.json", kValid));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->date, "2030-01-02T03:04:05Z");
  EXPECT_EQ(r->kernel, "6.18.0-test");
  ASSERT_EQ(r->measured.size(), 2u);
  const MeasuredBackend& a = r->measured.at("af_packet");
  EXPECT_DOUBLE_EQ(a.max_throughput_gbps, 5.688);
  ASSERT_TRUE(a.cpu_overhead_pct);
  EXPECT_DOUBLE_EQ(*a.cpu_overhead_pct, 6.5);
  EXPECT_TRUE(a.generator_bound);  // from the 1500-byte figures
  ASSERT_EQ(a.sizes.size(), 2u);
  EXPECT_DOUBLE_EQ(a.sizes.at(64).zero_drop_pps, 412000);
  EXPECT_FALSE(a.sizes.at(64).zero_drop_lower_bound);
  EXPECT_DOUBLE_EQ(a.sizes.at(64).drop_pct_at_max, 3.25);
  EXPECT_DOUBLE_EQ(a.sizes.at(64).max_rate_pps, 466000);
  EXPECT_EQ(a.drop_counter_trials, 7u);
  EXPECT_EQ(a.drop_counter_agreed, 7u);
  EXPECT_EQ(r->measured.at("xdp").mode, "native/copy");
  EXPECT_EQ(r->not_measured.at("pf_ring"), "skipped: libpfring is not installed");
}

TEST_F(BenchResultsTest, MeasuredBackendReportsFileFiguresAndDate) {
  auto r = LoadBenchResults(Write("bench.json", kValid));
  ASSERT_TRUE(r) << r.error().message();
  const nlohmann::json j = BackendFiguresJson("af_packet", r);
  EXPECT_EQ(j["figures"], "measured");
  EXPECT_EQ(j["measured_at"], "2030-01-02T03:04:05Z");
  EXPECT_DOUBLE_EQ(j["max_throughput_gbps"].get<double>(), 5.688);
  EXPECT_DOUBLE_EQ(j["cpu_overhead_pct"].get<double>(), 6.5);
  EXPECT_EQ(j["measured"]["zero_drop_pps"]["64"], 412000);
  EXPECT_EQ(j["measured"]["zero_drop_pps"]["1500"], 474000);
  EXPECT_EQ(j["measured"]["drop_pct_at_max_rate"]["64"], 3.25);
  EXPECT_EQ(j["measured"]["generator_bound"], true);
  EXPECT_NE(j["figures_note"].get<std::string>().find("lower bound"), std::string::npos);

  const std::string text = BackendFiguresText("af_packet", r);
  EXPECT_NE(text.find("measured 2030-01-02T03:04:05Z"), std::string::npos) << text;
  EXPECT_NE(text.find(">= 5.69 Gbit/s"), std::string::npos) << text;
  EXPECT_NE(text.find("64 B: 0.412 Mpps zero-drop, 3.25% dropped"), std::string::npos) << text;
}

TEST_F(BenchResultsTest, BackendTheBenchmarkSkippedStaysNominalWithItsReason) {
  auto r = LoadBenchResults(Write("bench.json", kValid));
  ASSERT_TRUE(r) << r.error().message();
  const nlohmann::json j = BackendFiguresJson("pf_ring", r);
  EXPECT_EQ(j["figures"], "nominal");
  EXPECT_EQ(j["max_throughput_gbps"], 50);
  EXPECT_EQ(j["cpu_overhead_pct"], 10);
  EXPECT_FALSE(j.contains("measured_at"));
  EXPECT_NE(j["figures_note"].get<std::string>().find("libpfring is not installed"),
            std::string::npos);
  // Not in the file at all: nominal, saying the benchmark did not run it.
  const nlohmann::json d = BackendFiguresJson("dpdk", r);
  EXPECT_EQ(d["figures"], "nominal");
  EXPECT_EQ(d["max_throughput_gbps"], 400);
  EXPECT_NE(d["figures_note"].get<std::string>().find("did not run it"), std::string::npos);
}

TEST_F(BenchResultsTest, MissingFileIsNotFoundAndNominal) {
  auto r = LoadBenchResults((fs::path(dir_) / "none.json").string());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kNotFound);
  for (const char* name : {"libpcap", "af_packet", "xdp", "dpdk", "pf_ring"}) {
    const nlohmann::json j = BackendFiguresJson(name, r);
    EXPECT_EQ(j["figures"], "nominal") << name;
    EXPECT_EQ(j["max_throughput_gbps"], Nominal(name)->gbps) << name;
    EXPECT_EQ(j["cpu_overhead_pct"], Nominal(name)->cpu_pct) << name;
    EXPECT_NE(j["figures_note"].get<std::string>().find("no benchmark results"), std::string::npos);
  }
  EXPECT_EQ(BackendFiguresText("xdp", r), "nominal: 100 Gbit/s, CPU 5% (no benchmark results)");
  EXPECT_EQ(BackendFiguresText("file", r), "");
}

TEST_F(BenchResultsTest, MalformedFilesAreCorruptAndNominalWithANote) {
  std::string valid = kValid;
  auto replace = [&](const std::string& from, const std::string& to) {
    std::string s = valid;
    const size_t at = s.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return s.replace(at, from.size(), to);
  };
  const std::pair<std::string, std::string> cases[] = {
      {"not json", "{\"schema\": \"jarvis-capture-bench/1\", "},
      {"not an object", "[1, 2, 3]"},
      {"empty", ""},
      {"other schema", replace("jarvis-capture-bench/1", "jarvis-capture-bench/0")},
      {"no date", replace("\"date\": \"2030-01-02T03:04:05Z\",", "")},
      {"string figure",
       replace("\"max_throughput_gbps\": 5.688", "\"max_throughput_gbps\": \"5\"")},
      {"negative figure", replace("\"max_throughput_gbps\": 5.688", "\"max_throughput_gbps\": -1")},
      {"bad size key", replace("\"64\": {\"frame_bytes\"", "\"big\": {\"frame_bytes\"")},
      {"no zero_drop", replace("\"zero_drop\": {\"pps\": 412000", "\"zero\": {\"pps\": 412000")},
      {"drop over 100", replace("\"drop_pct\": 3.25", "\"drop_pct\": 325")},
      {"no 1500 figures",
       replace("\"max_throughput_frame_bytes\": 1500", "\"max_throughput_frame_bytes\": 9000")},
      {"backends missing", replace("\"backends\"", "\"backendz\"")},
  };
  for (const auto& [what, text] : cases) {
    auto r = LoadBenchResults(Write("bad.json", text));
    ASSERT_FALSE(r) << what;
    EXPECT_EQ(r.error().code(), ErrorCode::kCorruptData) << what << ": " << r.error().message();
    const nlohmann::json j = BackendFiguresJson("af_packet", r);
    EXPECT_EQ(j["figures"], "nominal") << what;
    EXPECT_EQ(j["max_throughput_gbps"], 40) << what;
    const std::string note = j["figures_note"];
    EXPECT_NE(note.find("could not be used"), std::string::npos) << what << ": " << note;
    EXPECT_NE(note.find("bad.json"), std::string::npos) << what << ": " << note;
  }
}

TEST_F(BenchResultsTest, DirectoryAndHugeFileAreRefused) {
  auto r = LoadBenchResults(dir_);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kCorruptData);
  const std::string big = Write("big.json", std::string(kMaxResultsBytes + 1, ' '));
  r = LoadBenchResults(big);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kCorruptData);
  EXPECT_NE(r.error().message().find("larger than"), std::string::npos);
}

TEST_F(BenchResultsTest, CpuOfABackendThatLostFramesAtEveryRateIsNull) {
  std::string s = kValid;
  const std::string from = "\"cpu_overhead_pct\": 6.5";
  s.replace(s.find(from), from.size(), "\"cpu_overhead_pct\": null");
  auto r = LoadBenchResults(Write("bench.json", s));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_FALSE(r->measured.at("af_packet").cpu_overhead_pct);
  const nlohmann::json j = BackendFiguresJson("af_packet", r);
  EXPECT_TRUE(j["cpu_overhead_pct"].is_null());
  EXPECT_EQ(j["figures"], "measured");
}

}  // namespace
}  // namespace jarvis::bench
