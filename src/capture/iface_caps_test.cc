#include "capture/iface_caps.h"

#include <gtest/gtest.h>

#include <linux/net_tstamp.h>
#include <cstdlib>

#include "capture/backend_modes.h"
#include "capture/dpdk/dpdk_host.h"

namespace jarvis {
namespace {

TEST(IfaceCapsXdp, NativeNeedsBasicAndRedirect) {
  XdpCaps c;
  ApplyXdpFeatures(1 | 2 | 32, c);  // basic, redirect, rx-sg: what veth reports
  EXPECT_TRUE(c.native);
  EXPECT_FALSE(c.zero_copy);
  EXPECT_EQ(c.features, 35u);

  ApplyXdpFeatures(1, c);  // basic alone: XDP_PASS/DROP/TX but no redirect into an XSKMAP
  EXPECT_FALSE(c.native);

  ApplyXdpFeatures(1 | 2 | 8, c);  // with xsk-zerocopy
  EXPECT_TRUE(c.native);
  EXPECT_TRUE(c.zero_copy);

  ApplyXdpFeatures(8, c);  // zero-copy without native mode is no use to the backend
  EXPECT_FALSE(c.native);
  EXPECT_FALSE(c.zero_copy);

  ApplyXdpFeatures(0, c);  // an ifb device, lo
  EXPECT_FALSE(c.native);
  EXPECT_FALSE(c.zero_copy);
}

TEST(IfaceCapsXdp, FeatureNamesAreTheKernels) {
  EXPECT_EQ(XdpFeatureNames(1 | 2 | 32), (std::vector<std::string>{"basic", "redirect", "rx-sg"}));
  EXPECT_EQ(XdpFeatureNames(8 | 16 | 64 | 4),
            (std::vector<std::string>{"ndo-xmit", "xsk-zerocopy", "hw-offload", "ndo-xmit-sg"}));
  EXPECT_EQ(XdpFeatureNames(1ull << 9), (std::vector<std::string>{"bit-9"}));
  EXPECT_TRUE(XdpFeatureNames(0).empty());
}

TEST(IfaceCapsXdp, DriverTable) {
  const DriverXdpSupport veth = DriverXdpTable("veth");
  EXPECT_TRUE(veth.listed);
  EXPECT_TRUE(veth.native);
  EXPECT_FALSE(veth.zero_copy);
  const DriverXdpSupport ice = DriverXdpTable("ice");
  EXPECT_TRUE(ice.native);
  EXPECT_TRUE(ice.zero_copy);
  const DriverXdpSupport ifb = DriverXdpTable("ifb");
  EXPECT_FALSE(ifb.listed);
  EXPECT_FALSE(ifb.native);
  EXPECT_FALSE(DriverXdpTable("").listed);
}

TEST(IfaceCapsTimestamps, NamesAsEthtoolPrintsThem) {
  // What veth and lo report: software stamps only.
  const uint32_t soft =
      SOF_TIMESTAMPING_TX_SOFTWARE | SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE;
  EXPECT_EQ(
      TimestampingNames(soft),
      (std::vector<std::string>{"software-transmit", "software-receive", "software-system-clock"}));
  EXPECT_EQ(RxFilterNames((1u << HWTSTAMP_FILTER_NONE) | (1u << HWTSTAMP_FILTER_ALL)),
            (std::vector<std::string>{"none", "all"}));
}

TimestampCaps Caps(uint32_t bits, int phc) {
  TimestampCaps t;
  t.queried = true;
  t.so_timestamping = bits;
  t.phc_index = phc;
  return t;
}

TEST(IfaceCapsTimestamps, KernelAndNtpAlways) {
  const TimestampCaps none;  // the ioctl did not even answer
  for (TimestampSource s : {TimestampSource::kKernel, TimestampSource::kNtp}) {
    EXPECT_TRUE(CheckTimestampSource(s, "x", none, ""));
    EXPECT_TRUE(CheckTimestampSource(s, "x", none, "host clock only"));
  }
}

TEST(IfaceCapsTimestamps, HardwareNeedsRxHardwareAndRawClock) {
  const uint32_t soft = SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE;
  auto st = CheckTimestampSource(TimestampSource::kHardware, "veth0", Caps(soft, -1), "");
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(st.error().field(), "timestamp_source");
  EXPECT_NE(st.error().message().find("veth0 has no hardware timestamping"), std::string::npos);

  // RAW_HARDWARE alone (a NIC that stamps only what it sends) is not enough.
  EXPECT_FALSE(CheckTimestampSource(TimestampSource::kHardware, "n",
                                    Caps(SOF_TIMESTAMPING_RAW_HARDWARE, 0), ""));
  const uint32_t hw = SOF_TIMESTAMPING_RX_HARDWARE | SOF_TIMESTAMPING_RAW_HARDWARE;
  EXPECT_TRUE(CheckTimestampSource(TimestampSource::kHardware, "n", Caps(hw, -1), ""));
}

TEST(IfaceCapsTimestamps, PtpAlsoNeedsAPhc) {
  const uint32_t hw = SOF_TIMESTAMPING_RX_HARDWARE | SOF_TIMESTAMPING_RAW_HARDWARE;
  auto st = CheckTimestampSource(TimestampSource::kPtp, "n", Caps(hw, -1), "");
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message().find("no PTP hardware clock"), std::string::npos);
  EXPECT_TRUE(CheckTimestampSource(TimestampSource::kPtp, "n", Caps(hw, 0), ""));
}

TEST(IfaceCapsTimestamps, HostClockOnlyBackendRefusesWhateverTheNicHas) {
  const uint32_t hw = SOF_TIMESTAMPING_RX_HARDWARE | SOF_TIMESTAMPING_RAW_HARDWARE;
  auto st = CheckTimestampSource(TimestampSource::kPtp, "n", Caps(hw, 3), "kernel stamps only");
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().message(), "kernel stamps only");
  EXPECT_EQ(st.error().field(), "timestamp_source");
}

TEST(IfaceCapsProbe, BadNames) {
  auto empty = ProbeInterface("");
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().code(), ErrorCode::kInvalidArgument);
  auto longer = ProbeInterface("abcdefghijklmnop");  // 16 characters: more than IFNAMSIZ - 1
  ASSERT_FALSE(longer);
  EXPECT_EQ(longer.error().code(), ErrorCode::kInvalidArgument);
  auto missing = ProbeInterface("jcnosuchif0");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(missing.error().message(), "no such interface: jcnosuchif0");
}

TEST(IfaceCapsProbe, LoopbackIsAlwaysThere) {
  // Every network namespace has lo, always index 1, with no native XDP and no NIC clock.
  auto lo = ProbeInterface("lo");
  ASSERT_TRUE(lo) << lo.error().message();
  EXPECT_EQ(lo->ifindex, 1u);
  EXPECT_EQ(lo->mtu > 0, true);
  EXPECT_FALSE(lo->xdp.native);
  EXPECT_FALSE(lo->xdp.zero_copy);
  EXPECT_FALSE(lo->timestamps.hardware_rx());
  EXPECT_EQ(lo->timestamps.phc_index, -1);
  EXPECT_GE(lo->rx_queues, 1u);
}

TEST(BackendModes, OnLoopback) {
  auto lo = ProbeInterface("lo");
  ASSERT_TRUE(lo) << lo.error().message();
  // The report says what each backend's own open rule says (CheckTimestampSource).
  const nlohmann::json af = BackendModesJson("af_packet", FindBackend("af_packet"), *lo);
  EXPECT_EQ(af["timestamp_sources"], (nlohmann::json{"kernel", "ntp"}));
  EXPECT_EQ(af["timestamp_refused"]["hardware"],
            std::string(FindBackend("af_packet")->host_clock_only));
  const nlohmann::json pcap = BackendModesJson("libpcap", FindBackend("libpcap"), *lo);
  EXPECT_NE(pcap["timestamp_refused"]["hardware"].get<std::string>().find("lo has no hardware"),
            std::string::npos);
  if (std::getenv("JARVIS_XDP_ATTACH") == nullptr) {
    const nlohmann::json x = BackendModesJson("xdp", FindBackend("xdp"), *lo);
    EXPECT_EQ(x["mode"], "skb/copy");  // lo has no native XDP
    EXPECT_EQ(x["determined_by"], lo->xdp.source == XdpCapsSource::kKernelFeatures ? "probed"
                                  : lo->xdp.source == XdpCapsSource::kDriverTable
                                      ? "from driver table"
                                      : "unknown");
  }
  const nlohmann::json none = BackendModesJson("nosuch", nullptr, *lo);
  EXPECT_EQ(none["summary"], "not available in this build");
  const nlohmann::json iface = InterfaceCapsJson(*lo);
  EXPECT_EQ(iface["name"], "lo");
  EXPECT_EQ(iface["timestamping"]["timestamp_sources"], (nlohmann::json{"kernel", "ntp"}));
}

TEST(DpdkHost, KernelDeviceChoice) {
  auto c = dpdk::ChooseKernelDevice("va", false, true);
  EXPECT_EQ(c.driver, "net_af_xdp");
  EXPECT_TRUE(c.refusal.empty());
  c = dpdk::ChooseKernelDevice("va", false, false);
  EXPECT_EQ(c.driver, "net_af_packet");
  EXPECT_FALSE(c.why_not_af_xdp.empty());
  c = dpdk::ChooseKernelDevice("va", true, true);
  EXPECT_TRUE(c.driver.empty());
  EXPECT_NE(c.refusal.find("va already has an XDP program attached"), std::string::npos);
}

TEST(DpdkHost, EalMemoryGrowsWithQueues) {
  // lo has one queue; a name that is no interface counts as one.
  EXPECT_EQ(dpdk::DefaultEalMemoryMb("jcnosuchif0"), dpdk::kDefaultEalMemoryMb + 32);
  EXPECT_EQ(dpdk::DefaultEalMemoryMb("lo"),
            dpdk::kDefaultEalMemoryMb + 32 * dpdk::KernelRxQueues("lo"));
}

}  // namespace
}  // namespace jarvis
