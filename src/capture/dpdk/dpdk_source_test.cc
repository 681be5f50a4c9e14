#include "capture/dpdk/dpdk_source.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

namespace jarvis {
namespace {

TEST(DpdkSourceTest, TheBackendTableHasDpdkAndPfRing) {
  const BackendInfo* dpdk = FindBackend("dpdk");
  ASSERT_NE(dpdk, nullptr);
  EXPECT_EQ(dpdk->kind, BackendKind::kLive);
  const BackendInfo* pf = FindBackend("pf_ring");
  ASSERT_NE(pf, nullptr);
  EXPECT_EQ(pf->kind, BackendKind::kLive);
}

TEST(DpdkSourceTest, AMissingPluginIsAClearReason) {
  auto api = dpdk::LoadPlugin("/nonexistent/jarvis-capture-dpdk.so");
  ASSERT_FALSE(api);
  EXPECT_EQ(api.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(api.error().message().find("cannot load the DPDK plugin"), std::string::npos)
      << api.error().message();
  // A library that is not the plugin.
  auto other = dpdk::LoadPlugin("libc.so.6");
  ASSERT_FALSE(other);
  EXPECT_NE(other.error().message().find("libc.so.6 is not the DPDK plugin"), std::string::npos)
      << other.error().message();
}

TEST(DpdkSourceTest, PluginSearchHonoursTheEnvironment) {
  ::setenv("JARVIS_DPDK_PLUGIN", "/opt/x/plugin.so", 1);
  EXPECT_EQ(dpdk::PluginCandidates(), std::vector<std::string>{"/opt/x/plugin.so"});
  ::unsetenv("JARVIS_DPDK_PLUGIN");
  const auto c = dpdk::PluginCandidates();
  ASSERT_EQ(c.size(), 2u);
  EXPECT_TRUE(c[0].ends_with("/jarvis-capture-dpdk.so")) << c[0];
  EXPECT_TRUE(c[1].ends_with("/lib/jarvis-capture/jarvis-capture-dpdk.so")) << c[1];
}

#ifdef JARVIS_WITH_DPDK

// Packets of `backend` over `opts` until `want` arrived or 10 s passed: (caplen, bytes).
std::vector<std::string> Drain(const std::string& backend, const SourceOptions& opts, size_t want,
                               SourceStats* stats = nullptr) {
  std::vector<std::string> out;
  auto src = OpenSource(backend, opts);
  EXPECT_TRUE(src) << src.error().message();
  if (!src) return out;
  PacketBatch batch;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (out.size() < want && std::chrono::steady_clock::now() < deadline) {
    auto n = (*src)->Receive(batch, std::chrono::milliseconds(100));
    if (!n) break;  // the file backend's end
    for (const PacketView& p : batch.packets()) {
      out.emplace_back(reinterpret_cast<const char*>(p.data), p.caplen);
    }
  }
  batch.Reset();
  if (stats != nullptr) *stats = *(*src)->Stats();
  return out;
}

// net_pcap reads a file through DPDK: the same packets as the file backend, twice in one process
// (the EAL is reused, the vdev attached and detached), and the filter excludes the same ones.
TEST(DpdkSourceTest, NetPcapVdevMatchesTheFileBackendAcrossSessions) {
  if (::geteuid() != 0) GTEST_SKIP() << "the dpdk backend needs root here";
  if (std::string why = DpdkUnavailableReason(); !why.empty()) GTEST_SKIP() << why;
  const std::string file = std::string(JARVIS_PCAP_DIR) + "/ndpi_ssh.pcap";
  if (::access(file.c_str(), R_OK) != 0) GTEST_SKIP() << "no " << file;
  const std::string eal = "--no-huge --no-pci --no-shconf -m 128 --file-prefix jarvis-unit" +
                          std::to_string(::getpid());

  for (const std::string filter : {"", "tcp port 22 and greater 100"}) {
    SourceOptions f;
    f.target = file;
    f.filter = filter;
    const std::vector<std::string> want = Drain("file", f, SIZE_MAX);
    ASSERT_FALSE(want.empty());

    SourceOptions d;
    d.target = "net_pcap_unit0";
    d.filter = filter;
    d.dpdk_args = eal + " --vdev net_pcap_unit0,rx_pcap=" + file;
    SourceStats st;
    const std::vector<std::string> got = Drain("dpdk", d, want.size(), &st);
    EXPECT_EQ(got.size(), want.size()) << "filter '" << filter << "'";
    EXPECT_TRUE(got == want) << "filter '" << filter << "': packets differ";
    EXPECT_EQ(st.packets, want.size());
    EXPECT_TRUE(st.has_filtered_out);
    if (filter.empty()) {
      EXPECT_EQ(st.filtered_out, 0u);
    } else {
      EXPECT_GT(st.filtered_out, 0u);
    }
  }

  // Other EAL arguments cannot apply in this process any more.
  SourceOptions d;
  d.target = "net_pcap_unit0";
  d.dpdk_args = "--no-huge --no-pci -m 64 --vdev net_pcap_unit0,rx_pcap=" + file;
  auto again = OpenSource("dpdk", d);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(again.error().message().find("cannot initialise it again"), std::string::npos)
      << again.error().message();

  // A target that is nothing DPDK or the kernel knows.
  d.dpdk_args = eal;
  d.target = "no-such-port";
  auto none = OpenSource("dpdk", d);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code(), ErrorCode::kNotFound) << none.error().message();

  // Hardware timestamps are refused, pointing at the field.
  d.target = "net_pcap_unit0";
  d.timestamp_source = TimestampSource::kHardware;
  auto hw = OpenSource("dpdk", d);
  ASSERT_FALSE(hw);
  EXPECT_EQ(hw.error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(hw.error().field(), "timestamp_source");
}

#endif  // JARVIS_WITH_DPDK

}  // namespace
}  // namespace jarvis
