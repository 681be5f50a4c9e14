#include "capture/xdp/xdp_plan.h"

#include <gtest/gtest.h>

#include "capture/xdp/xdp_filter.h"

namespace jarvis::xdp {
namespace {

TEST(XdpPlanUmem, DefaultIs32768FramesPerQueue) {
  for (uint32_t queues : {1u, 2u, 8u}) {
    const UmemPlan p = PlanUmem(0, queues, kSmallFrameSize);
    EXPECT_EQ(p.frames, 32768u);
    EXPECT_EQ(p.frame_size, kSmallFrameSize);
    EXPECT_EQ(p.bytes(), 64ull << 20);
    EXPECT_EQ(p.fill_size, p.frames);
    EXPECT_EQ(p.rx_size, p.frames);
    EXPECT_EQ(PlanUmem(0, queues, kLargeFrameSize).bytes(), 128ull << 20);
  }
}

TEST(XdpPlanUmem, BufferIsSplitOverQueuesAndRoundedDownToAPowerOfTwo) {
  EXPECT_EQ(PlanUmem(256 * 1024, 1, kLargeFrameSize).frames, 65536u);  // the API's 256 MiB
  EXPECT_EQ(PlanUmem(256 * 1024, 2, kLargeFrameSize).frames, 32768u);
  EXPECT_EQ(PlanUmem(100 * 1024, 1, kLargeFrameSize).frames, 16384u);  // 25600 -> 16384
  EXPECT_EQ(PlanUmem(100 * 1024, 0, kLargeFrameSize).frames, 16384u);  // 0 queues counts as 1
}

TEST(XdpPlanUmem, TheBufferIsBytesSoHalfSizeFramesAreTwiceAsMany) {
  EXPECT_EQ(PlanUmem(256 * 1024, 1, kSmallFrameSize).frames, 131072u);
  EXPECT_EQ(PlanUmem(256 * 1024, 1, kSmallFrameSize).bytes(), 256ull << 20);
  // The budgeted benchmark's UMEM: 262144 frames of 2 KiB in 512 MiB.
  EXPECT_EQ(PlanUmem(512 * 1024, 1, kSmallFrameSize).frames, 262144u);
}

TEST(XdpPlanUmem, Clamped) {
  EXPECT_EQ(PlanUmem(64, 1, kSmallFrameSize).frames, kMinFramesPerQueue);
  EXPECT_EQ(PlanUmem(2048u * 1024 * 4, 1, kLargeFrameSize).frames, kMaxFramesPerQueue);
  EXPECT_EQ(PlanUmem(2048u * 1024 * 4, 1, kSmallFrameSize).bytes(), 512ull << 20);
}

TEST(XdpFrameSize, HalfPageFramesWhereTheMtuFitsAfterTheHeadroom) {
  EXPECT_EQ(FrameSizeForMtu(1500), kSmallFrameSize);
  EXPECT_EQ(FrameSizeForMtu(576), kSmallFrameSize);
  // 1770 + 14 + 8 = 1792 = 2048 - 256: the largest MTU a 2 KiB frame holds with two VLAN tags.
  EXPECT_EQ(FrameSizeForMtu(1770), kSmallFrameSize);
  EXPECT_EQ(FrameSizeForMtu(1771), kLargeFrameSize);
  EXPECT_EQ(FrameSizeForMtu(9000), kLargeFrameSize);  // jumbo: still dropped above 3840 bytes
  EXPECT_EQ(FrameSizeForMtu(0), kLargeFrameSize);     // unknown MTU: the larger frame
  EXPECT_EQ(kSmallFrameSize - kXdpHeadroom - kLinkOverhead, 1770u);
}

TEST(XdpMode, Names) {
  EXPECT_EQ(ModeName(AttachMode::kNative, false), "native/copy");
  EXPECT_EQ(ModeName(AttachMode::kNative, true), "native/zerocopy");
  EXPECT_EQ(ModeName(AttachMode::kGeneric, false), "skb/copy");
}

TEST(XdpDrops, RxDroppedPlusRingFullOnly) {
  XskCounters a{
      .rx_dropped = 5, .rx_invalid_descs = 7, .rx_ring_full = 3, .rx_fill_ring_empty_descs = 5};
  XskCounters b{
      .rx_dropped = 1, .rx_invalid_descs = 0, .rx_ring_full = 2, .rx_fill_ring_empty_descs = 9};
  a += b;
  EXPECT_EQ(a.rx_fill_ring_empty_descs, 14u);
  EXPECT_EQ(DroppedPackets(a), 5u + 3u + 1u + 2u);
}

TEST(XdpLedger, SlotsAreLentAndGivenBack) {
  FrameLedger ledger;
  std::vector<int> slots;
  for (uint32_t i = 0; i < FrameLedger::kSlots; ++i) {
    const int s = ledger.Acquire();
    ASSERT_GE(s, 0);
    ledger.Add(s, FrameRef{i % 2, i * 4096ull});
    slots.push_back(s);
  }
  EXPECT_EQ(ledger.Acquire(), -1);  // every slot is held
  EXPECT_EQ(ledger.held_frames(), FrameLedger::kSlots);
  ledger.Free(slots[3]);
  EXPECT_EQ(ledger.held_frames(), FrameLedger::kSlots - 1);
  const int again = ledger.Acquire();
  EXPECT_EQ(again, slots[3]);
  EXPECT_EQ(ledger.count(again), 0u);  // a reused slot starts empty
}

TEST(XdpMerge, TwoQueuesInterleaveByTimeStably) {
  // Queue 0 delivered t=10,30,50; queue 1 t=20,30,60.
  std::vector<PacketView> v(6);
  std::vector<FrameRef> r(6);
  const int64_t ts[] = {10, 30, 50, 20, 30, 60};
  for (uint32_t i = 0; i < 6; ++i) {
    v[i].ts_ns = ts[i];
    r[i] = FrameRef{i < 3 ? 0u : 1u, i};
  }
  const uint32_t ends[] = {3, 6};
  MergeRunsByTime(v, r, ends);
  std::vector<int64_t> got_ts;
  std::vector<uint64_t> got_addr;
  for (uint32_t i = 0; i < 6; ++i) {
    got_ts.push_back(v[i].ts_ns);
    got_addr.push_back(r[i].addr);
  }
  EXPECT_EQ(got_ts, (std::vector<int64_t>{10, 20, 30, 30, 50, 60}));
  // The refs moved with their views; the tie at 30 keeps queue 0 first.
  EXPECT_EQ(got_addr, (std::vector<uint64_t>{0, 3, 1, 4, 2, 5}));
}

TEST(XdpMerge, OneRunIsLeftAlone) {
  std::vector<PacketView> v(2);
  std::vector<FrameRef> r(2);
  v[0].ts_ns = 5;
  v[1].ts_ns = 1;  // not sorted, but a single run is never reordered
  const uint32_t ends[] = {2};
  MergeRunsByTime(v, r, ends);
  EXPECT_EQ(v[0].ts_ns, 5);
}

TEST(XdpUserFilter, MatchesWholeFramesAndRejectsBadExpressions) {
  UserFilter f;
  ASSERT_TRUE(f.Compile("udp port 9999", 96));
  EXPECT_FALSE(f.empty());
  // Ethernet + IPv4 + UDP 40000 -> 9999, longer than the snaplen: the filter sees it all.
  std::vector<uint8_t> pkt(200, 0);
  pkt[12] = 0x08;
  pkt[14] = 0x45;
  pkt[23] = 17;
  pkt[34] = 40000 >> 8;
  pkt[35] = 40000 & 0xFF;
  pkt[36] = 9999 >> 8;
  pkt[37] = 9999 & 0xFF;
  EXPECT_TRUE(f.Matches(pkt.data(), static_cast<uint32_t>(pkt.size())));
  pkt[37] ^= 1;
  EXPECT_FALSE(f.Matches(pkt.data(), static_cast<uint32_t>(pkt.size())));

  UserFilter all;
  ASSERT_TRUE(all.Compile("", 0));
  EXPECT_TRUE(all.empty());

  UserFilter bad;
  auto st = bad.Compile("udp prot 1", 96);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(st.error().field(), "filter");
}

}  // namespace
}  // namespace jarvis::xdp

namespace jarvis::xdp {
namespace {

TEST(XdpAttachPrefs, Parse) {
  auto p = ParseAttachPrefs(nullptr);
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->native && p->skb && !p->netlink);
  p = ParseAttachPrefs("skb");
  ASSERT_TRUE(p);
  EXPECT_TRUE(!p->native && p->skb);
  p = ParseAttachPrefs("native,netlink");
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->native && !p->skb && p->netlink);
  p = ParseAttachPrefs("native,skb");  // both named: both allowed
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->native && p->skb);
  EXPECT_FALSE(ParseAttachPrefs("drv"));
}

TEST(XdpExpectMode, FollowsWhatTheDriverHas) {
  const AttachPrefs any;
  auto m = ExpectMode(true, false, any);  // veth
  ASSERT_TRUE(m);
  EXPECT_EQ(ModeName(m->attach, m->zero_copy), "native/copy");
  m = ExpectMode(true, true, any);  // ice, mlx5
  ASSERT_TRUE(m);
  EXPECT_EQ(ModeName(m->attach, m->zero_copy), "native/zerocopy");
  m = ExpectMode(false, false, any);  // ifb, lo
  ASSERT_TRUE(m);
  EXPECT_EQ(ModeName(m->attach, m->zero_copy), "skb/copy");
  m = ExpectMode(true, true, AttachPrefs{.native = false, .skb = true});  // generic is copy
  ASSERT_TRUE(m);
  EXPECT_EQ(ModeName(m->attach, m->zero_copy), "skb/copy");
  EXPECT_FALSE(ExpectMode(false, false, AttachPrefs{.native = true, .skb = false}));
}

}  // namespace
}  // namespace jarvis::xdp
