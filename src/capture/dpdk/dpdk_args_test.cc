#include "capture/dpdk/dpdk_args.h"

#include <gtest/gtest.h>

namespace jarvis::dpdk {
namespace {

using Words = std::vector<std::string>;

TEST(DpdkArgsTest, SplitsWordsAndTakesVdevsOut) {
  auto plan = ParseDpdkArgs(
      "--no-huge  -m 128 --vdev net_pcap0,rx_pcap=/tmp/a.pcap --vdev=net_af_packet1,iface=veth0 "
      "--file-prefix 'with space' -l \"0\"");
  ASSERT_TRUE(plan) << plan.error().message();
  EXPECT_TRUE(plan->explicit_args);
  EXPECT_EQ(plan->eal_args,
            (Words{"--no-huge", "-m", "128", "--file-prefix", "with space", "-l", "0"}));
  EXPECT_EQ(plan->vdevs, (Words{"net_pcap0,rx_pcap=/tmp/a.pcap", "net_af_packet1,iface=veth0"}));
}

TEST(DpdkArgsTest, RefusesBrokenArguments) {
  for (const char* bad : {"--vdev", "--no-huge 'open", "--vdev ,iface=x", "--vdev="}) {
    auto plan = ParseDpdkArgs(bad);
    ASSERT_FALSE(plan) << bad;
    EXPECT_EQ(plan.error().code(), ErrorCode::kInvalidArgument) << bad;
    EXPECT_EQ(plan.error().field(), "dpdk_args") << bad;
  }
  auto empty = ParseDpdkArgs("   ");
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->eal_args.empty());
  EXPECT_TRUE(empty->vdevs.empty());
}

TEST(DpdkArgsTest, DefaultsNeedNoHugepagesNoPciNoSharedFiles) {
  const Words a = DefaultEalArgs(4242, 1, 256, "");
  EXPECT_EQ(a, (Words{"--no-huge", "--no-shconf", "-m", "256", "--no-telemetry", "--file-prefix",
                      "jarvis4242", "-l", "1", "--log-level", "notice", "--no-pci"}));
  // With hugepages: in memory, no files.
  const Words h = DefaultEalArgs(1, 0, 256, "", true);
  EXPECT_EQ(h[0], "--in-memory");
  EXPECT_EQ(std::count(h.begin(), h.end(), "--no-huge"), 0);
  const Words p = DefaultEalArgs(7, 0, 512, "0000:03:00.0");
  EXPECT_EQ(std::vector<std::string>(p.end() - 2, p.end()), (Words{"-a", "0000:03:00.0"}));
  EXPECT_EQ(std::count(p.begin(), p.end(), "--no-pci"), 0);
}

TEST(DpdkArgsTest, RecognisesPciAddresses) {
  for (const char* yes : {"0000:03:00.0", "03:00.1", "abcd:ef:1f.7"}) {
    EXPECT_TRUE(LooksLikePciAddress(yes)) << yes;
  }
  for (const char* no : {"veth0", "eth0", "03:00", "0000:03:00.", "000:03:00.0", "03:0g.0",
                         "net_pcap0", "0000:03:00.00", ""}) {
    EXPECT_FALSE(LooksLikePciAddress(no)) << no;
  }
}

TEST(DpdkArgsTest, DevargsNameAndValues) {
  EXPECT_EQ(DevargsName("net_pcap0,rx_pcap=x.pcap"), "net_pcap0");
  EXPECT_EQ(DevargsName("0000:03:00.0"), "0000:03:00.0");
  EXPECT_EQ(DevargsValue("net_af_packet0,iface=veth0,qpairs=2", "iface"), "veth0");
  EXPECT_EQ(DevargsValue("net_af_packet0,iface=veth0,qpairs=2", "qpairs"), "2");
  EXPECT_EQ(DevargsValue("net_af_packet0,ifacex=veth0", "iface"), "");
  EXPECT_EQ(DevargsValue("net_af_packet0", "iface"), "");
}

TEST(DpdkArgsTest, TargetMeansAVdevByNameOrByIface) {
  const Words vdevs = {"net_pcap0,rx_pcap=a.pcap", "net_af_packet0,iface=veth0"};
  EXPECT_EQ(FindVdevForTarget(vdevs, "net_pcap0"), 0);
  EXPECT_EQ(FindVdevForTarget(vdevs, "net_af_packet0"), 1);
  EXPECT_EQ(FindVdevForTarget(vdevs, "veth0"), 1);
  EXPECT_EQ(FindVdevForTarget(vdevs, "veth1"), -1);
  EXPECT_EQ(FindVdevForTarget({}, "veth0"), -1);
}

TEST(DpdkArgsTest, DefaultVdevs) {
  // net_af_packet: the kernel ring is the buffer, in whole 1 MiB blocks of 2 KiB frames.
  EXPECT_EQ(DefaultVdev("net_af_packet", 3, "veth0", 64 * 1024, 1),
            "net_af_packet_jarvis3,iface=veth0,blocksz=1048576,framesz=2048,framecnt=32768");
  EXPECT_EQ(DefaultVdev("net_af_packet", 1, "veth0", 100, 1),
            "net_af_packet_jarvis1,iface=veth0,blocksz=1048576,framesz=2048,framecnt=512");
  // net_af_xdp: one socket per interface queue.
  EXPECT_EQ(DefaultVdev("net_af_xdp", 2, "eth1", 0, 1), "net_af_xdp_jarvis2,iface=eth1");
  EXPECT_EQ(DefaultVdev("net_af_xdp", 2, "eth1", 0, 4),
            "net_af_xdp_jarvis2,iface=eth1,start_queue=0,queue_count=4");
}

TEST(DpdkArgsTest, JoinQuotesWordsWithSpaces) {
  EXPECT_EQ(JoinArgs({"--file-prefix", "a b", "-m", "1"}), "--file-prefix 'a b' -m 1");
}

}  // namespace
}  // namespace jarvis::dpdk
