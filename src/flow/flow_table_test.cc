#include "flow/flow_table.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "decode/decoder.h"
#include "flow/flow_record.h"

namespace jarvis {
namespace {

constexpr TimestampNs kT0 = 1'700'000'000LL * kNanosPerSecond;
constexpr TimestampNs Ms(int64_t ms) { return kT0 + ms * 1'000'000; }
constexpr TimestampNs Sec(int64_t s) { return kT0 + s * kNanosPerSecond; }

constexpr uint8_t kSyn = kTcpSyn;
constexpr uint8_t kSynAck = kTcpSyn | kTcpAck;
constexpr uint8_t kAck = kTcpAck;
constexpr uint8_t kFinAck = kTcpFin | kTcpAck;
constexpr uint8_t kPshAck = kTcpPsh | kTcpAck;

constexpr const char* kA = "10.0.0.1";
constexpr const char* kB = "10.0.0.2";
constexpr const char* kC = "10.0.0.3";

// Short timeouts so the tests can step over them: idle 10 s, active 60 s, linger 2 s.
FlowConfig TestConfig() {
  return FlowConfig{.table_size = 64,
                    .idle_timeout_sec = 10,
                    .active_timeout_sec = 60,
                    .tcp_linger_ms = 2000,
                    .fragment_timeout_sec = 30};
}

class CollectingSink : public FlowSink {
 public:
  void OnFlows(std::span<const FlowRecord> records) override {
    ++calls;
    this->records.insert(this->records.end(), records.begin(), records.end());
  }
  std::vector<FlowRecord> records;
  int calls = 0;
};

// Writes a textual IPv4 or IPv6 address into `out` (16 bytes, zero padded); returns 4 or 6.
uint8_t ParseAddr(const char* text, uint8_t* out) {
  std::memset(out, 0, 16);
  if (inet_pton(AF_INET, text, out) == 1) return 4;
  EXPECT_EQ(inet_pton(AF_INET6, text, out), 1) << text;
  return 6;
}

// A decoded packet as the decoder would produce it: IP layer and ports.
PacketMeta Meta(const char* src, uint16_t sport, const char* dst, uint16_t dport, uint8_t proto,
                uint32_t l3_len) {
  PacketMeta m{};
  m.ip_version = ParseAddr(src, m.src_addr);
  EXPECT_EQ(ParseAddr(dst, m.dst_addr), m.ip_version);
  m.src_port = sport;
  m.dst_port = dport;
  m.protocol = proto;
  m.l3_len = l3_len;
  m.flags = kMetaL3 | kMetaPorts;
  return m;
}

PacketMeta Tcp(const char* src, uint16_t sport, const char* dst, uint16_t dport, uint8_t flags,
               uint32_t l3_len = 40) {
  PacketMeta m = Meta(src, sport, dst, dport, kProtoTcp, l3_len);
  m.flags |= kMetaTcpFlags;
  m.tcp_flags = flags;
  return m;
}

PacketMeta Udp(const char* src, uint16_t sport, const char* dst, uint16_t dport,
               uint32_t l3_len = 100) {
  return Meta(src, sport, dst, dport, kProtoUdp, l3_len);
}

// ICMP as the decoder reports it: source port 0, destination port type << 8 | code.
PacketMeta Icmp(const char* src, const char* dst, uint8_t type, uint8_t code,
                uint8_t proto = kProtoIcmp, uint32_t l3_len = 84) {
  return Meta(src, 0, dst, static_cast<uint16_t>(type << 8 | code), proto, l3_len);
}

// A first fragment (offset 0, more fragments) carrying the transport header.
PacketMeta FirstFragment(PacketMeta m, uint32_t id) {
  m.flags |= kMetaFragment;
  m.frag_id = id;
  m.frag_offset = 0;
  m.more_fragments = true;
  return m;
}

// A later fragment: no transport header, so no ports.
PacketMeta LaterFragment(const char* src, const char* dst, uint8_t proto, uint32_t id,
                         uint16_t offset_units, bool more, uint32_t l3_len = 600) {
  PacketMeta m = Meta(src, 0, dst, 0, proto, l3_len);
  m.flags = kMetaL3 | kMetaFragment;
  m.frag_id = id;
  m.frag_offset = offset_units;
  m.more_fragments = more;
  return m;
}

std::string Src(const FlowRecord& r) { return AddressString(r.src_addr, r.ip_version); }
std::string Dst(const FlowRecord& r) { return AddressString(r.dst_addr, r.ip_version); }

// Every field of a record, for comparing record sets and for readable failures.
std::string Describe(const FlowRecord& r) {
  return "id=" + std::to_string(r.flow_id) + " " + Src(r) + ":" + std::to_string(r.src_port) + ">" +
         Dst(r) + ":" + std::to_string(r.dst_port) + " v" + std::to_string(r.ip_version) + " p" +
         std::to_string(r.protocol) + " vlan=" + std::to_string(r.vlan) + "/" +
         std::to_string(r.inner_vlan) + " flags=" + std::to_string(r.tcp_flags_fwd) + "/" +
         std::to_string(r.tcp_flags_rev) + " state=" + std::string(FlowStateName(r.state)) +
         " end=" + std::to_string(static_cast<int>(r.end_reason)) +
         " icmp_rev=" + std::to_string(r.icmp_type_code_rev) +
         " pkts=" + std::to_string(r.packets_fwd) + "/" + std::to_string(r.packets_rev) +
         " bytes=" + std::to_string(r.bytes_fwd) + "/" + std::to_string(r.bytes_rev) +
         " t=" + std::to_string(r.first_ns) + ".." + std::to_string(r.last_ns);
}

std::vector<std::string> SortedDescriptions(const std::vector<FlowRecord>& records) {
  std::vector<std::string> out;
  for (const FlowRecord& r : records) out.push_back(Describe(r));
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<FlowRecord> SnapshotOf(const FlowTable& table) {
  std::vector<FlowRecord> out;
  table.Snapshot(out);
  return out;
}

// Client A:40000 opens a connection to server B:80: SYN, SYN+ACK, ACK one millisecond apart.
void Handshake(FlowTable& t, TimestampNs ts) {
  t.Process(Tcp(kA, 40000, kB, 80, kSyn), ts);
  t.Process(Tcp(kB, 80, kA, 40000, kSynAck), ts + 1'000'000);
  t.Process(Tcp(kA, 40000, kB, 80, kAck), ts + 2'000'000);
}

// The client closes first: FIN (client), ACK, FIN (server), final ACK (client).
void Close(FlowTable& t, TimestampNs ts) {
  t.Process(Tcp(kA, 40000, kB, 80, kFinAck), ts);
  t.Process(Tcp(kB, 80, kA, 40000, kAck), ts + 1'000'000);
  t.Process(Tcp(kB, 80, kA, 40000, kFinAck), ts + 2'000'000);
  t.Process(Tcp(kA, 40000, kB, 80, kAck), ts + 3'000'000);
}

TEST(FlowTableTest, BothDirectionsMeterIntoOneRecord) {
  CollectingSink sink;
  FlowTable table(TestConfig(), 16, &sink);
  table.Process(Udp(kA, 5000, kB, 53, 100), Ms(0));
  table.Process(Udp(kB, 53, kA, 5000, 300), Ms(10));
  table.Process(Udp(kA, 5000, kB, 53, 120), Ms(20));
  EXPECT_EQ(table.active_flows(), 1u);
  EXPECT_TRUE(sink.records.empty());
  table.FlushAll(EndReason::kForcedEnd);

  ASSERT_EQ(sink.records.size(), 1u);
  const FlowRecord& r = sink.records[0];
  EXPECT_EQ(Src(r), kA);
  EXPECT_EQ(Dst(r), kB);
  EXPECT_EQ(r.src_port, 5000);
  EXPECT_EQ(r.dst_port, 53);
  EXPECT_EQ(r.protocol, kProtoUdp);
  EXPECT_EQ(r.ip_version, 4);
  EXPECT_EQ(r.packets_fwd, 2u);
  EXPECT_EQ(r.packets_rev, 1u);
  EXPECT_EQ(r.bytes_fwd, 220u);
  EXPECT_EQ(r.bytes_rev, 300u);
  EXPECT_EQ(r.packets(), 3u);
  EXPECT_EQ(r.bytes(), 520u);
  EXPECT_EQ(r.first_ns, Ms(0));
  EXPECT_EQ(r.last_ns, Ms(20));
  EXPECT_EQ(r.flow_id, 1u);
  EXPECT_EQ(r.state, FlowState::kActive);
  EXPECT_EQ(r.end_reason, EndReason::kForcedEnd);
  EXPECT_EQ(r.tcp_flags_fwd, 0);
  EXPECT_EQ(r.tcp_flags_rev, 0);
  EXPECT_EQ(table.active_flows(), 0u);
  EXPECT_EQ(table.counters().packets, 3u);
  EXPECT_EQ(table.counters().octets, 520u);
  EXPECT_EQ(table.counters().flows_created, 1u);
  EXPECT_EQ(table.counters().flows_exported, 1u);
}

// The key orders endpoints by address; the initiator must not follow that order.
TEST(FlowTableTest, InitiatorIsTheFirstSenderWhicheverAddressIsLower) {
  for (const bool high_first : {false, true}) {
    SCOPED_TRACE(high_first ? "higher address sends first" : "lower address sends first");
    const char* client = high_first ? "192.168.7.200" : "192.168.7.3";
    const char* server = high_first ? "192.168.7.3" : "192.168.7.200";
    CollectingSink sink;
    FlowTable table(TestConfig(), 16, &sink);
    table.Process(Udp(client, 3333, server, 4444, 60), Ms(0));
    table.Process(Udp(server, 4444, client, 3333, 70), Ms(1));
    table.Process(Udp(server, 4444, client, 3333, 70), Ms(2));
    table.FlushAll(EndReason::kForcedEnd);
    ASSERT_EQ(sink.records.size(), 1u);
    const FlowRecord& r = sink.records[0];
    EXPECT_EQ(Src(r), client);
    EXPECT_EQ(Dst(r), server);
    EXPECT_EQ(r.src_port, 3333);
    EXPECT_EQ(r.dst_port, 4444);
    EXPECT_EQ(r.packets_fwd, 1u);
    EXPECT_EQ(r.packets_rev, 2u);
    EXPECT_EQ(r.bytes_fwd, 60u);
    EXPECT_EQ(r.bytes_rev, 140u);
  }
}

TEST(FlowTableTest, FirstSeenSynAckMakesItsReceiverTheInitiator) {
  for (const bool server_low : {false, true}) {
    SCOPED_TRACE(server_low ? "server has the lower address" : "server has the higher address");
    const char* client = server_low ? kB : kA;
    const char* server = server_low ? kA : kB;
    CollectingSink sink;
    FlowTable table(TestConfig(), 16, &sink);
    table.Process(Tcp(server, 443, client, 51000, kSynAck), Ms(0));
    table.Process(Tcp(client, 51000, server, 443, kAck), Ms(1));
    table.FlushAll(EndReason::kForcedEnd);
    ASSERT_EQ(sink.records.size(), 1u);
    const FlowRecord& r = sink.records[0];
    EXPECT_EQ(Src(r), client);
    EXPECT_EQ(Dst(r), server);
    EXPECT_EQ(r.src_port, 51000);
    EXPECT_EQ(r.dst_port, 443);
    EXPECT_EQ(r.packets_fwd, 1u);
    EXPECT_EQ(r.packets_rev, 1u);
    EXPECT_EQ(r.tcp_flags_fwd, kAck);
    EXPECT_EQ(r.tcp_flags_rev, kSynAck);
  }
}

TEST(FlowTableTest, OnlySynAckRevertsTheInitiator) {
  // A first-seen pure ACK or SYN keeps its sender as the initiator.
  for (const uint8_t first_flags : {kAck, kSyn, kPshAck}) {
    SCOPED_TRACE(TcpFlagsString(first_flags));
    CollectingSink sink;
    FlowTable table(TestConfig(), 16, &sink);
    table.Process(Tcp(kB, 80, kA, 40000, first_flags), Ms(0));
    table.FlushAll(EndReason::kForcedEnd);
    ASSERT_EQ(sink.records.size(), 1u);
    EXPECT_EQ(Src(sink.records[0]), kB);
    EXPECT_EQ(sink.records[0].src_port, 80);
    EXPECT_EQ(sink.records[0].tcp_flags_fwd, first_flags);
  }
}

TEST(FlowTableTest, EveryKeyFieldSeparatesFlows) {
  CollectingSink sink;
  FlowTable table(TestConfig(), 64, &sink);
  const PacketMeta base = Udp(kA, 1000, kB, 2000, 100);
  std::vector<PacketMeta> variants(8, base);
  variants[1].vlan = 10;
  variants[2].vlan = 10;
  variants[2].inner_vlan = 20;
  variants[3].protocol = kProtoSctp;
  variants[4].src_port = 1001;
  variants[5].dst_port = 2001;
  variants[6] = Udp(kA, 1000, kC, 2000, 100);
  // Same leading bytes as the IPv4 addresses, but IPv6.
  variants[7] = Udp("a00:1::", 1000, "a00:2::", 2000, 100);  // 10.0.0.1 and 10.0.0.2, as v6
  for (size_t i = 0; i < variants.size(); ++i) table.Process(variants[i], Ms(i));
  // The reverse direction of each variant finds its flow.
  for (size_t i = 0; i < variants.size(); ++i) {
    PacketMeta rev = variants[i];
    std::swap(rev.src_addr, rev.dst_addr);
    std::swap(rev.src_port, rev.dst_port);
    table.Process(rev, Ms(100 + i));
  }
  EXPECT_EQ(table.active_flows(), variants.size());
  table.FlushAll(EndReason::kForcedEnd);
  ASSERT_EQ(sink.records.size(), variants.size());
  std::set<uint64_t> ids;
  for (const FlowRecord& r : sink.records) {
    SCOPED_TRACE(Describe(r));
    EXPECT_EQ(r.packets_fwd, 1u);
    EXPECT_EQ(r.packets_rev, 1u);
    ids.insert(r.flow_id);
  }
  EXPECT_EQ(ids.size(), variants.size());
  const auto with_vlan = std::count_if(sink.records.begin(), sink.records.end(),
                                       [](const FlowRecord& r) { return r.vlan == 10; });
  EXPECT_EQ(with_vlan, 2);
  EXPECT_EQ(std::count_if(sink.records.begin(), sink.records.end(),
                          [](const FlowRecord& r) { return r.inner_vlan == 20; }),
            1);
  EXPECT_EQ(std::count_if(sink.records.begin(), sink.records.end(),
                          [](const FlowRecord& r) { return r.ip_version == 6; }),
            1);
}

TEST(FlowTableTest, IcmpRequestAndReplyAreOneFlow) {
  CollectingSink sink;
  FlowTable table(TestConfig(), 16, &sink);
  table.Process(Icmp(kA, kB, 8, 0), Ms(0));  // echo request
  table.Process(Icmp(kB, kA, 0, 0), Ms(1));  // echo reply
  table.Process(Icmp(kA, kB, 8, 0), Ms(1000));
  table.Process(Icmp(kB, kA, 0, 0), Ms(1001));
  table.Process(Icmp(kA, kB, 13, 0), Ms(2000));  // timestamp request: not the first message
  EXPECT_EQ(table.active_flows(), 1u);
  table.FlushAll(EndReason::kForcedEnd);
  ASSERT_EQ(sink.records.size(), 1u);
  const FlowRecord& r = sink.records[0];
  EXPECT_EQ(Src(r), kA);
  EXPECT_EQ(r.protocol, kProtoIcmp);
  EXPECT_EQ(r.src_port, 0);
  EXPECT_EQ(r.dst_port, 8 << 8);
  EXPECT_EQ(r.icmp_type_code_rev, 0);
  EXPECT_EQ(r.packets_fwd, 3u);
  EXPECT_EQ(r.packets_rev, 2u);
}

TEST(FlowTableTest, Icmpv6RecordCarriesBothSidesFirstTypeAndCode) {
  CollectingSink sink;
  FlowTable table(TestConfig(), 16, &sink);
  // The responder (higher address) speaks first here: it becomes the initiator.
  table.Process(Icmp("2001:db8::9", "2001:db8::1", 1, 4, kProtoIcmpv6), Ms(0));
  table.Process(Icmp("2001:db8::1", "2001:db8::9", 128, 0, kProtoIcmpv6), Ms(5));
  table.Process(Icmp("2001:db8::9", "2001:db8::1", 129, 0, kProtoIcmpv6), Ms(6));
  table.Process(Icmp("2001:db8::1", "2001:db8::9", 135, 0, kProtoIcmpv6), Ms(7));
  table.FlushAll(EndReason::kForcedEnd);
  ASSERT_EQ(sink.records.size(), 1u);
  const FlowRecord& r = sink.records[0];
  EXPECT_EQ(r.ip_version, 6);
  EXPECT_EQ(Src(r), "2001:db8::9");
  EXPECT_EQ(Dst(r), "2001:db8::1");
  EXPECT_EQ(r.src_port, 0);
  EXPECT_EQ(r.dst_port, 1 << 8 | 4);
  EXPECT_EQ(r.icmp_type_code_rev, 128 << 8);
  EXPECT_EQ(r.packets_fwd, 2u);
  EXPECT_EQ(r.packets_rev, 2u);
}

TEST(FlowTableTest, CountersAre64Bit) {
  CollectingSink sink;
  FlowTable table(TestConfig(), 16, &sink);
  constexpr uint32_t kHuge = 0xFFFFFFFFu;
  for (int i = 0; i < 3; ++i) table.Process(Udp(kA, 1, kB, 2, kHuge), Ms(i));
  table.Process(Udp(kB, 2, kA, 1, kHuge), Ms(3));
  table.FlushAll(EndReason::kForcedEnd);
  ASSERT_EQ(sink.records.size(), 1u);
  EXPECT_EQ(sink.records[0].bytes_fwd, 3ull * kHuge);
  EXPECT_EQ(sink.records[0].bytes_rev, 1ull * kHuge);
  EXPECT_EQ(sink.records[0].bytes(), 4ull * kHuge);
  EXPECT_EQ(table.counters().octets, 4ull * kHuge);
}

TEST(FlowTableTest, PacketsWithoutIpAreCountedNotMetered) {
  CollectingSink sink;
  FlowTable table(TestConfig(), 16, &sink);
  PacketMeta arp{};
  table.Process(arp, Ms(0));
  PacketMeta ports_only = Udp(kA, 1, kB, 2);
  ports_only.flags = kMetaPorts;
  table.Process(ports_only, Ms(1));
  EXPECT_EQ(table.counters().not_metered, 2u);
  EXPECT_EQ(table.counters().packets, 0u);
  EXPECT_EQ(table.active_flows(), 0u);
  table.FlushAll(EndReason::kForcedEnd);
  EXPECT_TRUE(sink.records.empty());
}

TEST(FlowTableTest, FlowIdsFollowBaseAndStride) {
  CollectingSink sink;
  FlowTable table(TestConfig(), 16, &sink, /*id_base=*/2, /*id_stride=*/4);
  table.Process(Udp(kA, 1, kB, 2), Ms(0));
  table.Process(Udp(kA, 1, kB, 3), Ms(1));
  table.Process(Udp(kA, 1, kB, 4), Ms(2));
  table.FlushAll(EndReason::kForcedEnd);
  std::set<uint64_t> ids;
  for (const FlowRecord& r : sink.records) ids.insert(r.flow_id);
  EXPECT_EQ(ids, (std::set<uint64_t>{3, 7, 11}));
}

TEST(FlowTableTest, TcpFlagsAccumulatePerDirection) {
  CollectingSink sink;
  FlowTable table(TestConfig(), 16, &sink);
  Handshake(table, Ms(0));
  table.Process(Tcp(kA, 40000, kB, 80, kPshAck | kTcpUrg, 500), Ms(10));
  table.Process(Tcp(kB, 80, kA, 40000, kTcpAck | kTcpEce, 40), Ms(11));
  table.FlushAll(EndReason::kForcedEnd);
  ASSERT_EQ(sink.records.size(), 1u);
  const FlowRecord& r = sink.records[0];
  EXPECT_EQ(r.tcp_flags_fwd, kSyn | kAck | kTcpPsh | kTcpUrg);
  EXPECT_EQ(r.tcp_flags_rev, kSynAck | kTcpEce);
  EXPECT_EQ(r.packets_fwd, 3u);
  EXPECT_EQ(r.packets_rev, 2u);
  EXPECT_EQ(r.bytes_fwd, 40u + 40u + 500u);
  EXPECT_EQ(r.state, FlowState::kActive);
  EXPECT_EQ(r.end_reason, EndReason::kForcedEnd);
}

TEST(FlowTableTest, TcpCloseGoesThroughClosingAndClosedThenLingers) {
  CollectingSink sink;
  FlowTable table(TestConfig(), 16, &sink);
  Handshake(table, Ms(0));
  table.Process(Tcp(kA, 40000, kB, 80, kFinAck), Ms(100));
  ASSERT_EQ(SnapshotOf(table).size(), 1u);
  EXPECT_EQ(SnapshotOf(table)[0].state, FlowState::kClosing);
  table.Process(Tcp(kB, 80, kA, 40000, kAck), Ms(101));
  EXPECT_EQ(SnapshotOf(table)[0].state, FlowState::kClosing);
  table.Process(Tcp(kB, 80, kA, 40000, kFinAck), Ms(102));
  EXPECT_EQ(SnapshotOf(table)[0].state, FlowState::kClosed);
  table.Process(Tcp(kA, 40000, kB, 80, kAck), Ms(103));  // the ACK of the last FIN
  EXPECT_EQ(SnapshotOf(table)[0].state, FlowState::kClosed);

  // Lingers for 2 s after its last packet, then ends.
  table.Expire(Ms(103) + 2'000'000'000 - 1);
  EXPECT_TRUE(sink.records.empty());
  EXPECT_EQ(table.active_flows(), 1u);
  table.Expire(Ms(103) + 2'000'000'000);
  ASSERT_EQ(sink.records.size(), 1u);
  EXPECT_EQ(table.active_flows(), 0u);
  const FlowRecord& r = sink.records[0];
  EXPECT_EQ(r.end_reason, EndReason::kEndOfFlow);
  EXPECT_EQ(r.state, FlowState::kClosed);
  EXPECT_EQ(Src(r), kA);
  EXPECT_EQ(r.packets_fwd, 4u);
  EXPECT_EQ(r.packets_rev, 3u);
  EXPECT_EQ(r.tcp_flags_fwd, kSyn | kAck | kTcpFin);
  EXPECT_EQ(r.tcp_flags_rev, kSynAck | kTcpFin);
  EXPECT_EQ(r.last_ns, Ms(103));
}

TEST(FlowTableTest, BothFinsWithoutFinalAckWaitForTheIdleTimeout) {
  CollectingSink sink;
  FlowTable table(TestConfig(), 16, &sink);
  Handshake(table, Ms(0));
  table.Process(Tcp(kA, 40000, kB, 80, kFinAck), Ms(100));
  table.Process(Tcp(kB, 80, kA, 40000, kFinAck), Ms(101));
  table.Expire(Ms(101) + 5'000'000'000);  // well past the linger
  EXPECT_TRUE(sink.records.empty());
  table.Expire(Ms(101) + 10'000'000'000);  // the idle timeout
  ASSERT_EQ(sink.records.size(), 1u);
  EXPECT_EQ(sink.records[0].state, FlowState::kClosed);
  EXPECT_EQ(sink.records[0].end_reason, EndReason::kEndOfFlow);
}

TEST(FlowTableTest, AckFromTheLaterFinSenderDoesNotFinishTheFlow) {
  CollectingSink sink;
  FlowTable table(TestConfig(), 16, &sink);
  Handshake(table, Ms(0));
  table.Process(Tcp(kB, 80, kA, 40000, kFinAck), Ms(100));  // the server closes first
  table.Process(Tcp(kA, 40000, kB, 80, kFinAck), Ms(101));  // the later FIN: client
  table.Process(Tcp(kA, 40000, kB, 80, kAck), Ms(102));     // same side as the later FIN
  table.Expire(Ms(102) + 3'000'000'000);
  EXPECT_TRUE(sink.records.empty()) << "ended before the last FIN was acknowledged";
  table.Process(Tcp(kB, 80, kA, 40000, kAck), Ms(3200));  // the server ACKs the last FIN
  table.Expire(Ms(3200) + 2'000'000'000 - 1);
  EXPECT_TRUE(sink.records.empty());
  table.Expire(Ms(3200) + 2'000'000'000);
  ASSERT_EQ(sink.records.size(), 1u);
  EXPECT_EQ(sink.records[0].end_reason, EndReason::kEndOfFlow);
  EXPECT_EQ(sink.records[0].packets(), 7u);
}

TEST(FlowTableTest, RepeatedFinFromTheFirstCloserDoesNotMoveTheLastFin) {
  CollectingSink sink;
  FlowTable table(TestConfig(), 16, &sink);
  Handshake(table, Ms(0));
  table.Process(Tcp(kA, 40000, kB, 80, kFinAck), Ms(100));
  table.Process(Tcp(kA, 40000, kB, 80, kFinAck), Ms(101));  // retransmitted before the reply
  table.Process(Tcp(kB, 80, kA, 40000, kFinAck), Ms(102));  // the later FIN
  table.Process(Tcp(kB, 80, kA, 40000, kAck), Ms(103));     // not the ACK of the last FIN
  table.Expire(Ms(103) + 2'500'000'000);
  EXPECT_TRUE(sink.records.empty());
  table.Process(Tcp(kA, 40000, kB, 80, kAck), Ms(3000));
  table.Expire(Ms(3000) + 2'000'000'000);
  ASSERT_EQ(sink.records.size(), 1u);
  EXPECT_EQ(sink.records[0].end_reason, EndReason::kEndOfFlow);
}

// The final ACK may ride on a retransmitted FIN: any ACK-bearing packet from the side opposite
// to the later FIN finishes the connection.
TEST(FlowTableTest, RetransmittedFinAckFromTheOtherSideFinishesTheFlow) {
  CollectingSink sink;
  FlowTable table(TestConfig(), 16, &sink);
  Handshake(table, Ms(0));
  table.Process(Tcp(kA, 40000, kB, 80, kFinAck), Ms(100));
  table.Process(Tcp(kB, 80, kA, 40000, kFinAck), Ms(101));  // the later FIN
  table.Process(Tcp(kA, 40000, kB, 80, kFinAck), Ms(102));  // FIN again, ACKing the server's
  table.Expire(Ms(102) + 2'000'000'000);
  ASSERT_EQ(sink.records.size(), 1u);
  EXPECT_EQ(sink.records[0].end_reason, EndReason::kEndOfFlow);
  EXPECT_EQ(sink.records[0].packets(), 6u);
}

TEST(FlowTableTest, RstFinishesTheFlowWhichThenLingers) {
  for (const bool from_server : {true, false}) {
    SCOPED_TRACE(from_server ? "RST from the server" : "RST from the client");
    CollectingSink sink;
    FlowTable table(TestConfig(), 16, &sink);
    table.Process(Tcp(kA, 40000, kB, 80, kSyn), Ms(0));
    if (from_server) {
      table.Process(Tcp(kB, 80, kA, 40000, kTcpRst | kTcpAck), Ms(1));
    } else {
      table.Process(Tcp(kA, 40000, kB, 80, kTcpRst), Ms(1));
    }
    EXPECT_EQ(SnapshotOf(table).at(0).state, FlowState::kClosed);
    table.Expire(Ms(1) + 2'000'000'000 - 1);
    EXPECT_TRUE(sink.records.empty());
    table.Expire(Ms(1) + 2'000'000'000);
    ASSERT_EQ(sink.records.size(), 1u);
    const FlowRecord& r = sink.records[0];
    EXPECT_EQ(r.end_reason, EndReason::kEndOfFlow);
    EXPECT_EQ(r.state, FlowState::kClosed);
    if (from_server) {
      EXPECT_EQ(r.tcp_flags_rev, kTcpRst | kTcpAck);
      EXPECT_EQ(r.tcp_flags_fwd, kSyn);
    } else {
      EXPECT_EQ(r.tcp_flags_fwd, kSyn | kTcpRst);
      EXPECT_EQ(r.packets_rev, 0u);
    }
  }
}

TEST(FlowTableTest, LatePacketsDuringLingerAreCountedIntoTheFlow) {
  CollectingSink sink;
  FlowTable table(TestConfig(), 16, &sink);
  Handshake(table, Ms(0));
  Close(table, Ms(100));                                        // done at Ms(103)
  table.Process(Tcp(kB, 80, kA, 40000, kAck, 52), Ms(600));     // late, with flags
  table.Process(Tcp(kA, 40000, kB, 80, kTcpRst, 40), Ms(700));  // late RST
  table.Process(Udp(kA, 9, kB, 9), Ms(800));                    // another flow
  EXPECT_EQ(table.active_flows(), 2u);
  EXPECT_EQ(table.counters().flows_created, 2u);
  table.Expire(Ms(700) + 2'000'000'000);
  ASSERT_EQ(sink.records.size(), 1u);
  const FlowRecord& r = sink.records[0];
  EXPECT_EQ(r.protocol, kProtoTcp);
  EXPECT_EQ(r.end_reason, EndReason::kEndOfFlow);
  EXPECT_EQ(r.packets_fwd, 5u);
  EXPECT_EQ(r.packets_rev, 4u);
  EXPECT_EQ(r.tcp_flags_fwd, kSyn | kAck | kTcpFin | kTcpRst);
  EXPECT_EQ(r.last_ns, Ms(700));
}

TEST(FlowTableTest, PureSynEndsALingeringFlowAndStartsANewOne) {
  CollectingSink sink;
  FlowTable table(TestConfig(), 16, &sink);
  Handshake(table, Ms(0));
  Close(table, Ms(100));
  // The former server reuses the 4-tuple 500 ms later, in the other direction.
  table.Process(Tcp(kB, 80, kA, 40000, kSyn), Ms(600));
  table.Flush();
  ASSERT_EQ(sink.records.size(), 1u);
  const FlowRecord old = sink.records[0];
  EXPECT_EQ(old.end_reason, EndReason::kEndOfFlow);
  EXPECT_EQ(old.packets(), 7u);
  EXPECT_EQ(old.last_ns, Ms(103));
  EXPECT_EQ(table.active_flows(), 1u);
  table.Process(Tcp(kA, 40000, kB, 80, kSynAck), Ms(601));
  table.FlushAll(EndReason::kForcedEnd);
  ASSERT_EQ(sink.records.size(), 2u);
  const FlowRecord& fresh = sink.records[1];
  EXPECT_NE(fresh.flow_id, old.flow_id);
  EXPECT_EQ(Src(fresh), kB);
  EXPECT_EQ(fresh.src_port, 80);
  EXPECT_EQ(fresh.packets_fwd, 1u);
  EXPECT_EQ(fresh.packets_rev, 1u);
  EXPECT_EQ(fresh.first_ns, Ms(600));
  EXPECT_EQ(fresh.state, FlowState::kActive);
  EXPECT_EQ(fresh.end_reason, EndReason::kForcedEnd);
}

TEST(FlowTableTest, PureSynEndsAClosedFlowAwaitingItsFinalAck) {
  CollectingSink sink;
  FlowTable table(TestConfig(), 16, &sink);
  Handshake(table, Ms(0));
  table.Process(Tcp(kA, 40000, kB, 80, kFinAck), Ms(100));
  table.Process(Tcp(kB, 80, kA, 40000, kFinAck), Ms(101));
  table.Process(Tcp(kA, 40000, kB, 80, kSyn), Ms(5000));
  table.Flush();
  ASSERT_EQ(sink.records.size(), 1u);
  EXPECT_EQ(sink.records[0].end_reason, EndReason::kEndOfFlow);
  EXPECT_EQ(sink.records[0].packets(), 5u);
  EXPECT_EQ(table.active_flows(), 1u);
  const std::vector<FlowRecord> snap = SnapshotOf(table);
  ASSERT_EQ(snap.size(), 1u);
  EXPECT_EQ(snap[0].packets(), 1u);
  EXPECT_EQ(snap[0].first_ns, Ms(5000));
  EXPECT_EQ(snap[0].state, FlowState::kActive);
}

TEST(FlowTableTest, SynOnAnOpenFlowOrSynAckDuringLingerStaysInTheFlow) {
  CollectingSink sink;
  FlowTable table(TestConfig(), 16, &sink);
  Handshake(table, Ms(0));
  table.Process(Tcp(kA, 40000, kB, 80, kSyn), Ms(10));  // SYN retransmission, flow open
  Close(table, Ms(100));
  table.Process(Tcp(kB, 80, kA, 40000, kSynAck), Ms(500));  // SYN+ACK is not a new connection
  table.Flush();
  EXPECT_TRUE(sink.records.empty());
  EXPECT_EQ(table.active_flows(), 1u);
  table.FlushAll(EndReason::kForcedEnd);
  ASSERT_EQ(sink.records.size(), 1u);
  EXPECT_EQ(sink.records[0].packets(), 9u);
  EXPECT_EQ(sink.records[0].end_reason, EndReason::kEndOfFlow);
}

TEST(FlowTableTest, PacketAfterTheLingerEndsTheFlowWithoutExpire) {
  CollectingSink sink;
  FlowTable table(TestConfig(), 16, &sink);
  Handshake(table, Ms(0));
  Close(table, Ms(100));
  table.Process(Tcp(kA, 40000, kB, 80, kAck), Ms(103) + 2'000'000'000 - 1);  // still lingering
  table.Process(Tcp(kB, 80, kA, 40000, kAck), Ms(103) + 4'000'000'000);      // linger over
  table.FlushAll(EndReason::kForcedEnd);
  ASSERT_EQ(sink.records.size(), 2u);
  EXPECT_EQ(sink.records[0].end_reason, EndReason::kEndOfFlow);
  EXPECT_EQ(sink.records[0].packets(), 8u);
  EXPECT_EQ(sink.records[1].end_reason, EndReason::kForcedEnd);
  EXPECT_EQ(sink.records[1].packets(), 1u);
  EXPECT_EQ(Src(sink.records[1]), kB);  // a new flow: its first sender is the initiator
  EXPECT_NE(sink.records[1].flow_id, sink.records[0].flow_id);
}

TEST(FlowTableTest, IdleTimeoutEndsAFlowExactlyAtTheTimeout) {
  CollectingSink sink;
  FlowTable table(TestConfig(), 16, &sink);
  table.Process(Udp(kA, 1, kB, 2), Sec(0));
  table.Process(Udp(kA, 1, kB, 2), Sec(4));
  table.Expire(Sec(14) - 1);
  EXPECT_TRUE(sink.records.empty());
  EXPECT_EQ(table.active_flows(), 1u);
  table.Expire(Sec(14));
  ASSERT_EQ(sink.records.size(), 1u);
  EXPECT_EQ(sink.records[0].end_reason, EndReason::kIdleTimeout);
  EXPECT_EQ(sink.records[0].state, FlowState::kActive);
  EXPECT_EQ(sink.records[0].packets(), 2u);
  EXPECT_EQ(table.active_flows(), 0u);
}

TEST(FlowTableTest, PacketAfterTheIdleTimeoutStartsANewFlowWithoutExpire) {
  CollectingSink sink;
  FlowTable table(TestConfig(), 16, &sink);
  table.Process(Udp(kA, 1, kB, 2), Sec(0));
  table.Process(Udp(kB, 2, kA, 1), Sec(10) - 1);  // just in time
  table.Process(Udp(kB, 2, kA, 1), Sec(20) - 1);  // exactly one idle timeout later
  table.Flush();
  ASSERT_EQ(sink.records.size(), 1u);
  EXPECT_EQ(sink.records[0].end_reason, EndReason::kIdleTimeout);
  EXPECT_EQ(sink.records[0].packets(), 2u);
  EXPECT_EQ(sink.records[0].last_ns, Sec(10) - 1);
  table.FlushAll(EndReason::kForcedEnd);
  ASSERT_EQ(sink.records.size(), 2u);
  EXPECT_EQ(sink.records[1].end_reason, EndReason::kForcedEnd);
  EXPECT_EQ(Src(sink.records[1]), kB);
  EXPECT_EQ(sink.records[1].first_ns, Sec(20) - 1);
  EXPECT_NE(sink.records[1].flow_id, sink.records[0].flow_id);
}

TEST(FlowTableTest, IdleExpiryFollowsTheLastPacketNotTheFirst) {
  CollectingSink sink;
  FlowTable table(TestConfig(), 16, &sink);
  table.Process(Udp(kA, 1, kB, 1), Sec(0));  // flow 1
  table.Process(Udp(kA, 2, kB, 2), Sec(1));  // flow 2
  table.Process(Udp(kA, 3, kB, 3), Sec(2));  // flow 3
  table.Process(Udp(kB, 1, kA, 1), Sec(5));  // flow 1 seen again
  table.Expire(Sec(12));                     // flows 2 and 3 are due, flow 1 is not
  ASSERT_EQ(sink.records.size(), 2u);
  EXPECT_EQ(sink.records[0].flow_id, 2u);
  EXPECT_EQ(sink.records[1].flow_id, 3u);
  EXPECT_EQ(table.active_flows(), 1u);
  table.Expire(Sec(15));
  ASSERT_EQ(sink.records.size(), 3u);
  EXPECT_EQ(sink.records[2].flow_id, 1u);
  EXPECT_EQ(sink.records[2].end_reason, EndReason::kIdleTimeout);
}

TEST(FlowTableTest, ActiveTimeoutExportsARecordAndTheFlowGoesOn) {
  CollectingSink sink;
  FlowTable table(TestConfig(), 16, &sink);
  Handshake(table, Sec(0));
  for (int s = 5; s < 60; s += 5) table.Process(Tcp(kA, 40000, kB, 80, kPshAck, 1000), Sec(s));
  table.Flush();
  EXPECT_TRUE(sink.records.empty());
  // The first packet at or after first_ns + 60 s closes the current record.
  table.Process(Tcp(kB, 80, kA, 40000, kAck, 40), Sec(60));
  table.Flush();
  ASSERT_EQ(sink.records.size(), 1u);
  const FlowRecord first = sink.records[0];
  EXPECT_EQ(first.end_reason, EndReason::kActiveTimeout);
  EXPECT_EQ(first.packets_fwd, 2u + 11u);
  EXPECT_EQ(first.packets_rev, 1u);
  EXPECT_EQ(first.bytes_fwd, 80u + 11000u);
  EXPECT_EQ(first.first_ns, Sec(0));
  EXPECT_EQ(first.last_ns, Sec(55));
  EXPECT_EQ(first.tcp_flags_fwd, kSyn | kAck | kTcpPsh);
  EXPECT_EQ(first.state, FlowState::kActive);
  EXPECT_EQ(table.active_flows(), 1u);
  EXPECT_EQ(table.counters().flows_exported, 1u);

  table.Process(Tcp(kA, 40000, kB, 80, kPshAck, 200), Sec(61));
  table.FlushAll(EndReason::kForcedEnd);
  ASSERT_EQ(sink.records.size(), 2u);
  const FlowRecord& second = sink.records[1];
  EXPECT_EQ(second.flow_id, first.flow_id);
  EXPECT_EQ(second.end_reason, EndReason::kForcedEnd);
  EXPECT_EQ(Src(second), kA);  // the initiator stays
  EXPECT_EQ(second.first_ns, Sec(60));
  EXPECT_EQ(second.last_ns, Sec(61));
  EXPECT_EQ(second.packets_fwd, 1u);
  EXPECT_EQ(second.packets_rev, 1u);
  EXPECT_EQ(second.bytes_fwd, 200u);
  EXPECT_EQ(second.bytes_rev, 40u);
  EXPECT_EQ(second.tcp_flags_fwd, kPshAck);  // flags start over with the record
  EXPECT_EQ(second.tcp_flags_rev, kAck);
  EXPECT_EQ(table.counters().flows_exported, 2u);
  EXPECT_EQ(table.counters().flows_created, 1u);
}

TEST(FlowTableTest, SetActiveTimeoutAppliesFromTheNextPacket) {
  CollectingSink sink;
  FlowTable table(TestConfig(), 16, &sink);  // active timeout 60 s
  Handshake(table, Sec(0));
  for (int s = 5; s <= 20; s += 5) table.Process(Tcp(kA, 40000, kB, 80, kPshAck, 500), Sec(s));
  table.Flush();
  EXPECT_TRUE(sink.records.empty());
  // Shortened to 10 s: the flow is already 20 s old, so its next packet closes the record.
  table.SetActiveTimeout(10);
  table.Process(Tcp(kB, 80, kA, 40000, kAck, 40), Sec(25));
  table.Flush();
  ASSERT_EQ(sink.records.size(), 1u);
  EXPECT_EQ(sink.records[0].end_reason, EndReason::kActiveTimeout);
  EXPECT_EQ(sink.records[0].last_ns, Sec(20));
  // The next record starts at 25 s and closes at the first packet 10 s later.
  table.Process(Tcp(kA, 40000, kB, 80, kPshAck, 500), Sec(30));
  table.Process(Tcp(kA, 40000, kB, 80, kPshAck, 500), Sec(34));
  table.Flush();
  EXPECT_EQ(sink.records.size(), 1u);
  table.Process(Tcp(kA, 40000, kB, 80, kPshAck, 500), Sec(35));
  table.Flush();
  ASSERT_EQ(sink.records.size(), 2u);
  EXPECT_EQ(sink.records[1].end_reason, EndReason::kActiveTimeout);
  EXPECT_EQ(sink.records[1].first_ns, Sec(25));
  EXPECT_EQ(sink.records[1].last_ns, Sec(34));
  EXPECT_EQ(table.counters().flows_created, 1u);
}

TEST(FlowTableTest, ActiveTimeoutKeepsIcmpTypes) {
  CollectingSink sink;
  FlowTable table(TestConfig(), 16, &sink);
  for (int s = 0; s < 130; s += 5) {
    table.Process(Icmp(kA, kB, 8, 0), Sec(s));
    table.Process(Icmp(kB, kA, 0, 0), Sec(s) + 1'000'000);
  }
  table.FlushAll(EndReason::kForcedEnd);
  ASSERT_EQ(sink.records.size(), 3u);
  EXPECT_EQ(sink.records[0].end_reason, EndReason::kActiveTimeout);
  EXPECT_EQ(sink.records[1].end_reason, EndReason::kActiveTimeout);
  EXPECT_EQ(sink.records[2].end_reason, EndReason::kForcedEnd);
  uint64_t total = 0;
  for (const FlowRecord& r : sink.records) {
    EXPECT_EQ(r.flow_id, sink.records[0].flow_id);
    EXPECT_EQ(r.dst_port, 8 << 8);
    EXPECT_EQ(Src(r), kA);
    total += r.packets();
  }
  EXPECT_EQ(total, 52u);
  EXPECT_EQ(sink.records[0].packets(), 24u);  // 0 s .. 55 s
  EXPECT_EQ(sink.records[1].first_ns, Sec(60));
}

TEST(FlowTableTest, FullTableEvictsTheLeastRecentlySeenFlow) {
  CollectingSink sink;
  FlowTable table(TestConfig(), 4, &sink);
  // Flows 1..4 created in order, then touched in the order 3, 1, 4, 2 with different kinds
  // of packets (no flags, TCP flags, ICMP) so each kind must refresh recency.
  table.Process(Udp(kA, 1, kB, 1), Ms(0));            // flow 1
  table.Process(Tcp(kA, 2, kB, 2, kSyn), Ms(1));      // flow 2
  table.Process(Icmp(kA, kB, 8, 0), Ms(2));           // flow 3
  table.Process(Tcp(kA, 4, kB, 4, kSyn), Ms(3));      // flow 4
  table.Process(Icmp(kB, kA, 0, 0), Ms(10));          // 3
  table.Process(Udp(kB, 1, kA, 1), Ms(11));           // 1
  table.Process(Tcp(kB, 4, kA, 4, kSynAck), Ms(12));  // 4
  table.Process(Tcp(kA, 2, kB, 2, kAck), Ms(13));     // 2
  EXPECT_EQ(table.active_flows(), 4u);

  const std::vector<uint64_t> expected_victims = {3, 1, 4, 2};
  for (size_t i = 0; i < expected_victims.size(); ++i) {
    table.Process(Udp(kC, static_cast<uint16_t>(100 + i), kB, 9), Ms(20 + i));
    table.Flush();
    ASSERT_EQ(sink.records.size(), i + 1);
    const FlowRecord& r = sink.records[i];
    EXPECT_EQ(r.flow_id, expected_victims[i]) << "eviction " << i;
    EXPECT_EQ(r.end_reason, EndReason::kLackOfResources);
    EXPECT_EQ(r.packets(), 2u);
    EXPECT_EQ(table.active_flows(), 4u);
    EXPECT_EQ(table.counters().evicted, i + 1);
  }
}

TEST(FlowTableTest, FullTableExpiresDueFlowsBeforeEvicting) {
  CollectingSink sink;
  FlowTable table(TestConfig(), 2, &sink);
  table.Process(Udp(kA, 1, kB, 1), Sec(0));
  table.Process(Udp(kA, 2, kB, 2), Sec(5));
  table.Process(Udp(kA, 3, kB, 3), Sec(10));  // flow 1 is idle-due at 10 s: not evicted
  table.Flush();
  ASSERT_EQ(sink.records.size(), 1u);
  EXPECT_EQ(sink.records[0].flow_id, 1u);
  EXPECT_EQ(sink.records[0].end_reason, EndReason::kIdleTimeout);
  EXPECT_EQ(table.counters().evicted, 0u);
  EXPECT_EQ(table.active_flows(), 2u);
}

TEST(FlowTableTest, FullTableEndsALingeringFlowBeforeEvictingAnActiveOne) {
  CollectingSink sink;
  FlowTable table(TestConfig(), 3, &sink);
  table.Process(Udp(kC, 7, kB, 7), Ms(0));  // least recently seen active flow
  Handshake(table, Ms(10));
  Close(table, Ms(20));  // lingering
  table.Process(Udp(kC, 8, kB, 8), Ms(30));
  table.Process(Udp(kC, 9, kB, 9), Ms(40));  // full: the lingering flow goes, not the UDP one
  table.Flush();
  ASSERT_EQ(sink.records.size(), 1u);
  EXPECT_EQ(sink.records[0].protocol, kProtoTcp);
  EXPECT_EQ(sink.records[0].end_reason, EndReason::kEndOfFlow);
  EXPECT_EQ(table.counters().evicted, 0u);
  table.Process(Udp(kC, 10, kB, 10), Ms(50));  // now an active flow must go
  table.Flush();
  ASSERT_EQ(sink.records.size(), 2u);
  EXPECT_EQ(sink.records[1].src_port, 7);
  EXPECT_EQ(sink.records[1].end_reason, EndReason::kLackOfResources);
  EXPECT_EQ(table.counters().evicted, 1u);
}

// A late packet extends a lingering flow; a flow whose linger is over by the time the table
// fills must be ended as due, not make room at the expense of one still lingering.
TEST(FlowTableTest, FullTableEndsTheLingeringFlowThatIsDue) {
  CollectingSink sink;
  FlowTable table(TestConfig(), 2, &sink);
  table.Process(Tcp(kA, 1, kB, 80, kSyn), Ms(0));
  table.Process(Tcp(kB, 80, kA, 1, kTcpRst), Ms(1));  // flow 1 done at 1 ms
  table.Process(Tcp(kA, 2, kB, 80, kSyn), Ms(500));
  table.Process(Tcp(kB, 80, kA, 2, kTcpRst), Ms(501));  // flow 2 done at 501 ms
  table.Process(Tcp(kA, 1, kB, 80, kAck), Ms(1500));    // late packet: flow 1 lingers on
  // At 2.6 s flow 2's linger (501 ms + 2 s) is over, flow 1's (1.5 s + 2 s) is not.
  table.Process(Udp(kC, 5, kB, 5), Ms(2600));
  table.Flush();
  ASSERT_EQ(sink.records.size(), 1u);
  EXPECT_EQ(sink.records[0].flow_id, 2u);
  EXPECT_EQ(sink.records[0].end_reason, EndReason::kEndOfFlow);
  // Flow 1 still lingers: another late packet is counted into it.
  table.Process(Tcp(kB, 80, kA, 1, kAck), Ms(2700));
  table.FlushAll(EndReason::kForcedEnd);
  ASSERT_EQ(sink.records.size(), 3u);
  const auto flow1 = std::find_if(sink.records.begin(), sink.records.end(),
                                  [](const FlowRecord& r) { return r.flow_id == 1; });
  ASSERT_NE(flow1, sink.records.end());
  EXPECT_EQ(flow1->packets(), 4u);
  EXPECT_EQ(flow1->end_reason, EndReason::kEndOfFlow);
  EXPECT_EQ(table.counters().flows_created, 3u);
}

// Expire() walks the closed list from its oldest end: a late packet must not leave a due
// flow behind a lingering one.
TEST(FlowTableTest, ExpireEndsEveryLingeringFlowThatIsDue) {
  CollectingSink sink;
  FlowTable table(TestConfig(), 8, &sink);
  table.Process(Tcp(kA, 1, kB, 80, kTcpRst), Ms(0));    // flow 1 done at 0
  table.Process(Tcp(kA, 2, kB, 80, kTcpRst), Ms(100));  // flow 2 done at 100 ms
  table.Process(Tcp(kB, 80, kA, 1, kAck), Ms(1000));    // flow 1 late: lingers to 3 s
  table.Expire(Ms(2100));
  ASSERT_EQ(sink.records.size(), 1u);
  EXPECT_EQ(sink.records[0].flow_id, 2u);
  table.Expire(Ms(3000));
  ASSERT_EQ(sink.records.size(), 2u);
  EXPECT_EQ(sink.records[1].flow_id, 1u);
  EXPECT_EQ(sink.records[1].packets(), 2u);
}

TEST(FlowTableTest, FlushAllEndsEveryFlowWithTheRightReason) {
  CollectingSink sink;
  FlowTable table(TestConfig(), 16, &sink);
  table.Process(Udp(kC, 1, kB, 1), Ms(0));  // active
  table.Process(Tcp(kA, 10, kB, 80, kSyn), Ms(1));
  table.Process(Tcp(kA, 10, kB, 80, kFinAck), Ms(2));  // closing
  table.Process(Tcp(kA, 11, kB, 80, kFinAck), Ms(3));
  table.Process(Tcp(kB, 80, kA, 11, kFinAck), Ms(4));  // closed, awaiting the final ACK
  table.Process(Tcp(kA, 12, kB, 80, kTcpRst), Ms(5));  // lingering
  EXPECT_EQ(table.active_flows(), 4u);
  table.FlushAll(EndReason::kForcedEnd);
  EXPECT_EQ(table.active_flows(), 0u);
  ASSERT_EQ(sink.records.size(), 4u);
  std::vector<std::pair<uint16_t, EndReason>> got;
  for (const FlowRecord& r : sink.records) got.emplace_back(r.src_port, r.end_reason);
  std::sort(got.begin(), got.end());
  const std::vector<std::pair<uint16_t, EndReason>> want = {{1, EndReason::kForcedEnd},
                                                            {10, EndReason::kForcedEnd},
                                                            {11, EndReason::kEndOfFlow},
                                                            {12, EndReason::kEndOfFlow}};
  EXPECT_EQ(got, want);
  EXPECT_EQ(table.counters().flows_exported, 4u);
  // The table is empty and usable again.
  table.Process(Udp(kC, 1, kB, 1), Ms(10));
  EXPECT_EQ(table.active_flows(), 1u);
}

// FlushAll empties a crowded table at once rather than flow by flow; both ways must give the
// same records in the same order and leave a table that meters correctly afterwards.
TEST(FlowTableTest, FlushAllOfACrowdedTableMatchesOneByOneRemoval) {
  const auto run = [](uint32_t capacity) {
    CollectingSink sink;
    FlowTable table(TestConfig(), capacity, &sink);
    for (int round = 0; round < 3; ++round) {
      for (uint16_t i = 0; i < 300; ++i) {
        const TimestampNs t = Sec(100 * round) + Ms(i);
        if (i % 3 == 0) {
          table.Process(Tcp(kA, 1000 + i, kB, 80, kSyn), t);
          table.Process(Tcp(kB, 80, kA, 1000 + i, kSynAck), t + 1);
          if (i % 2 == 0) table.Process(Tcp(kA, 1000 + i, kB, 80, kTcpRst), t + 2);  // lingers
        } else {
          table.Process(Udp(kA, 1000 + i, kC, 53, 60 + i), t);
          table.Process(Udp(kC, 53, kA, 1000 + i, 100), t + 1);
        }
      }
      // Touch some flows again so the lists' order differs from creation order.
      for (uint16_t i = 1; i < 300; i += 7) {
        if (i % 3 != 0) table.Process(Udp(kA, 1000 + i, kC, 53, 10), Sec(100 * round) + Ms(400));
      }
      EXPECT_EQ(table.active_flows(), 300u);
      table.FlushAll(EndReason::kForcedEnd);
      EXPECT_EQ(table.active_flows(), 0u);
    }
    return sink.records;
  };
  const std::vector<FlowRecord> sparse = run(100000);  // index mostly empty: one by one
  const std::vector<FlowRecord> crowded = run(400);    // emptied at once
  ASSERT_EQ(sparse.size(), 900u);
  ASSERT_EQ(crowded.size(), sparse.size());
  for (size_t i = 0; i < sparse.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(crowded[i].flow_id, sparse[i].flow_id);
    EXPECT_EQ(crowded[i].src_port, sparse[i].src_port);
    EXPECT_EQ(crowded[i].end_reason, sparse[i].end_reason);
    EXPECT_EQ(crowded[i].packets_fwd, sparse[i].packets_fwd);
    EXPECT_EQ(crowded[i].packets_rev, sparse[i].packets_rev);
    EXPECT_EQ(crowded[i].bytes_fwd, sparse[i].bytes_fwd);
    EXPECT_EQ(crowded[i].first_ns, sparse[i].first_ns);
  }
  // Each round's flows are new flows with the round's counts: nothing stale survived a flush.
  for (size_t i = 300; i < crowded.size(); ++i) {
    EXPECT_GE(crowded[i].first_ns, Sec(100)) << i;
  }
  // The lingering (reset) flows come first, as expiry would take them.
  EXPECT_EQ(crowded[0].end_reason, EndReason::kEndOfFlow);
  EXPECT_EQ(crowded[0].src_port, 1000);
  EXPECT_EQ(crowded[299].end_reason, EndReason::kForcedEnd);
}

TEST(FlowTableTest, FlushAllUsesTheGivenReason) {
  CollectingSink sink;
  FlowTable table(TestConfig(), 16, &sink);
  table.Process(Udp(kA, 1, kB, 1), Ms(0));
  table.FlushAll(EndReason::kIdleTimeout);
  ASSERT_EQ(sink.records.size(), 1u);
  EXPECT_EQ(sink.records[0].end_reason, EndReason::kIdleTimeout);
}

TEST(FlowTableTest, SnapshotCopiesActiveFlowsWithoutChangingAnything) {
  CollectingSink sink;
  FlowTable table(TestConfig(), 16, &sink);
  table.Process(Udp(kA, 1, kB, 1, 100), Ms(0));
  table.Process(Udp(kB, 1, kA, 1, 50), Ms(1));
  Handshake(table, Ms(2));
  table.Process(Tcp(kA, 7, kB, 80, kTcpRst), Ms(10));  // lingering: still in the table
  const FlowCounters before = table.counters();

  std::vector<FlowRecord> snap = {FlowRecord{}};  // appends
  table.Snapshot(snap);
  ASSERT_EQ(snap.size(), 4u);
  snap.erase(snap.begin());
  EXPECT_EQ(SortedDescriptions(snap), SortedDescriptions(SnapshotOf(table)));
  for (const FlowRecord& r : snap) EXPECT_EQ(r.end_reason, EndReason::kNone) << Describe(r);
  EXPECT_TRUE(sink.records.empty());
  EXPECT_EQ(table.active_flows(), 3u);
  EXPECT_EQ(table.counters().flows_exported, before.flows_exported);
  EXPECT_EQ(table.counters().packets, before.packets);

  const auto udp = std::find_if(snap.begin(), snap.end(),
                                [](const FlowRecord& r) { return r.protocol == kProtoUdp; });
  ASSERT_NE(udp, snap.end());
  EXPECT_EQ(udp->bytes_fwd, 100u);
  EXPECT_EQ(udp->bytes_rev, 50u);

  // What FlushAll hands out is the snapshot with end reasons.
  table.FlushAll(EndReason::kForcedEnd);
  ASSERT_EQ(sink.records.size(), 3u);
  for (FlowRecord& r : sink.records) r.end_reason = EndReason::kNone;
  EXPECT_EQ(SortedDescriptions(sink.records), SortedDescriptions(snap));
}

TEST(FlowTableTest, Ipv4LaterFragmentsMeterIntoTheirDatagramsFlow) {
  CollectingSink sink;
  FlowTable table(TestConfig(), 16, &sink);
  table.Process(FirstFragment(Udp(kA, 5353, kB, 53, 1500), 0x1234), Ms(0));
  table.Process(LaterFragment(kA, kB, kProtoUdp, 0x1234, 185, true, 1500), Ms(1));
  table.Process(LaterFragment(kA, kB, kProtoUdp, 0x1234, 370, false, 300), Ms(2));
  table.Process(Udp(kB, 53, kA, 5353, 80), Ms(3));
  EXPECT_EQ(table.active_flows(), 1u);
  EXPECT_EQ(table.counters().fragments_attributed, 2u);
  EXPECT_EQ(table.counters().fragments_unattributed, 0u);
  table.FlushAll(EndReason::kForcedEnd);
  ASSERT_EQ(sink.records.size(), 1u);
  const FlowRecord& r = sink.records[0];
  EXPECT_EQ(r.src_port, 5353);
  EXPECT_EQ(r.dst_port, 53);
  EXPECT_EQ(r.packets_fwd, 3u);
  EXPECT_EQ(r.bytes_fwd, 3300u);
  EXPECT_EQ(r.packets_rev, 1u);
}

TEST(FlowTableTest, LaterFragmentsWithoutTheirFirstAreUnattributed) {
  CollectingSink sink;
  FlowTable table(TestConfig(), 16, &sink);
  table.Process(FirstFragment(Udp(kA, 5353, kB, 53, 1500), 7), Sec(0));
  table.Process(LaterFragment(kA, kB, kProtoUdp, 8, 185, false), Sec(1));  // other datagram
  PacketMeta other_vlan = LaterFragment(kA, kB, kProtoUdp, 7, 185, false);
  other_vlan.vlan = 3;
  table.Process(other_vlan, Sec(2));
  table.Process(LaterFragment(kA, kB, kProtoTcp, 7, 185, false), Sec(3));  // other protocol
  table.Process(LaterFragment(kB, kA, kProtoUdp, 7, 185, false), Sec(4));  // other direction
  EXPECT_EQ(table.counters().fragments_attributed, 0u);
  EXPECT_EQ(table.counters().fragments_unattributed, 4u);
  table.FlushAll(EndReason::kForcedEnd);
  // The first fragment's flow; UDP with ports 0 (both directions); VLAN 3; TCP with ports 0.
  ASSERT_EQ(sink.records.size(), 4u);
  for (const FlowRecord& r : sink.records) {
    SCOPED_TRACE(Describe(r));
    if (r.src_port == 5353) {
      EXPECT_EQ(r.packets(), 1u);
      continue;
    }
    EXPECT_EQ(r.src_port, 0);
    EXPECT_EQ(r.dst_port, 0);
    if (r.protocol == kProtoUdp && r.vlan == 0) {
      EXPECT_EQ(r.packets_fwd, 1u);
      EXPECT_EQ(r.packets_rev, 1u);
    } else {
      EXPECT_EQ(r.packets(), 1u);
    }
  }
}

TEST(FlowTableTest, FirstFragmentIsForgottenAfterTheFragmentTimeout) {
  CollectingSink sink;
  FlowTable table(TestConfig(), 16, &sink);
  table.Process(FirstFragment(Udp(kA, 5353, kB, 53, 1500), 7), Sec(0));
  table.Process(LaterFragment(kA, kB, kProtoUdp, 7, 185, true), Sec(30) - 1);
  EXPECT_EQ(table.counters().fragments_attributed, 1u);
  table.Process(LaterFragment(kA, kB, kProtoUdp, 7, 370, false), Sec(30));
  EXPECT_EQ(table.counters().fragments_unattributed, 1u);
  EXPECT_EQ(table.active_flows(), 2u);
}

TEST(FlowTableTest, Ipv6LaterFragmentsMeterIntoTheirDatagramsFlow) {
  CollectingSink sink;
  FlowTable table(TestConfig(), 16, &sink);
  const char* src = "2001:db8::1";
  const char* dst = "2001:db8:1::2";
  table.Process(FirstFragment(Udp(src, 4000, dst, 4001, 1280), 0xDEADBEEF), Ms(0));
  table.Process(LaterFragment(src, dst, kProtoUdp, 0xDEADBEEF, 154, false, 500), Ms(1));
  // Same low 16 bits of the identification, different datagram.
  table.Process(LaterFragment(src, dst, kProtoUdp, 0x0000BEEF, 154, false, 500), Ms(2));
  EXPECT_EQ(table.counters().fragments_attributed, 1u);
  EXPECT_EQ(table.counters().fragments_unattributed, 1u);
  table.FlushAll(EndReason::kForcedEnd);
  ASSERT_EQ(sink.records.size(), 2u);
  const auto first = std::find_if(sink.records.begin(), sink.records.end(),
                                  [](const FlowRecord& r) { return r.src_port == 4000; });
  ASSERT_NE(first, sink.records.end());
  EXPECT_EQ(first->ip_version, 6);
  EXPECT_EQ(Src(*first), src);
  EXPECT_EQ(Dst(*first), dst);
  EXPECT_EQ(first->packets_fwd, 2u);
  EXPECT_EQ(first->bytes_fwd, 1780u);
}

TEST(FlowTableTest, ShardOfIsSymmetricAndKeepsFragmentsWithTheirFirst) {
  std::mt19937 rng(7);
  std::vector<uint32_t> per_shard(4);
  for (int i = 0; i < 2000; ++i) {
    PacketMeta m{};
    const bool v6 = i % 3 == 0;
    m.ip_version = v6 ? 6 : 4;
    for (int b = 0; b < (v6 ? 16 : 4); ++b) {
      m.src_addr[b] = static_cast<uint8_t>(rng());
      m.dst_addr[b] = static_cast<uint8_t>(rng());
    }
    m.protocol = i % 2 ? kProtoTcp : kProtoUdp;
    m.vlan = static_cast<uint16_t>(i % 5);
    m.src_port = static_cast<uint16_t>(rng());
    m.dst_port = static_cast<uint16_t>(rng());
    m.flags = kMetaL3 | kMetaPorts;
    PacketMeta rev = m;
    std::swap(rev.src_addr, rev.dst_addr);
    std::swap(rev.src_port, rev.dst_port);
    PacketMeta later = m;
    later.flags = kMetaL3 | kMetaFragment;
    later.src_port = later.dst_port = 0;
    later.frag_offset = 100;
    for (const uint32_t n : {2u, 3u, 4u, 7u, 16u}) {
      const uint32_t s = FlowTable::ShardOf(m, n);
      ASSERT_LT(s, n);
      ASSERT_EQ(FlowTable::ShardOf(rev, n), s) << "not symmetric, i=" << i << " n=" << n;
      ASSERT_EQ(FlowTable::ShardOf(later, n), s) << "fragment strays, i=" << i << " n=" << n;
    }
    EXPECT_EQ(FlowTable::ShardOf(m, 1), 0u);
    EXPECT_EQ(FlowTable::ShardOf(m, 0), 0u);
    ++per_shard[FlowTable::ShardOf(m, 4)];
  }
  for (const uint32_t count : per_shard) EXPECT_GT(count, 300u);  // 500 each if even
}

TEST(FlowTableTest, AMillionFlowTableStaysUnder256MiB) {
  FlowConfig config = TestConfig();
  config.table_size = 1'000'000;
  FlowTable table(config, config.table_size, nullptr);
  EXPECT_EQ(table.capacity(), 1'000'000u);
  EXPECT_GE(table.memory_bytes(), 128u * 1'000'000u);
  EXPECT_LT(table.memory_bytes(), size_t{256} << 20);
  // And it works: a few flows in a big table, no sink.
  table.Process(Udp(kA, 1, kB, 1), Ms(0));
  table.Process(Udp(kB, 1, kA, 1), Ms(1));
  EXPECT_EQ(table.active_flows(), 1u);
  table.FlushAll(EndReason::kForcedEnd);
  EXPECT_EQ(table.counters().flows_exported, 1u);
}

TEST(FlowTableTest, ManyRecordsReachTheSinkInBatches) {
  CollectingSink sink;
  FlowTable table(TestConfig(), 5000, &sink);
  for (uint32_t i = 0; i < 3000; ++i) {
    table.Process(Udp(kA, static_cast<uint16_t>(i / 100), kB, static_cast<uint16_t>(i % 100)),
                  Ms(i));
  }
  EXPECT_EQ(table.active_flows(), 3000u);
  table.FlushAll(EndReason::kForcedEnd);
  ASSERT_EQ(sink.records.size(), 3000u);
  EXPECT_GE(sink.calls, 3);
  std::set<uint64_t> ids;
  for (const FlowRecord& r : sink.records) ids.insert(r.flow_id);
  EXPECT_EQ(ids.size(), 3000u);
  EXPECT_EQ(*ids.begin(), 1u);
  EXPECT_EQ(*ids.rbegin(), 3000u);
}

TEST(FlowTableTest, RecycledEntriesStartClean) {
  CollectingSink sink;
  FlowTable table(TestConfig(), 2, &sink);
  Handshake(table, Sec(0));
  table.Process(Icmp(kA, kC, 8, 0), Ms(10));
  table.Process(Tcp(kA, 40000, kB, 80, kFinAck), Sec(1));
  table.Expire(Sec(20));  // both idle out: the ICMP flow first, then the closing TCP one
  ASSERT_EQ(sink.records.size(), 2u);
  EXPECT_EQ(sink.records[0].protocol, kProtoIcmp);
  EXPECT_EQ(sink.records[0].end_reason, EndReason::kIdleTimeout);
  EXPECT_EQ(sink.records[1].protocol, kProtoTcp);
  EXPECT_EQ(sink.records[1].state, FlowState::kClosing);
  EXPECT_EQ(sink.records[1].end_reason, EndReason::kIdleTimeout);
  EXPECT_EQ(table.active_flows(), 0u);
  // The freed entries are reused, each by a flow of the other kind.
  table.Process(Icmp(kC, kA, 3, 1), Sec(20));
  table.Process(Tcp(kB, 80, kA, 40000, kAck), Sec(21));
  table.FlushAll(EndReason::kForcedEnd);
  ASSERT_EQ(sink.records.size(), 4u);
  const FlowRecord& icmp = sink.records[2];
  const FlowRecord& tcp = sink.records[3];
  ASSERT_EQ(icmp.protocol, kProtoIcmp);
  EXPECT_EQ(icmp.dst_port, 3 << 8 | 1);
  EXPECT_EQ(icmp.icmp_type_code_rev, 0);
  EXPECT_EQ(Src(icmp), kC);
  EXPECT_EQ(icmp.state, FlowState::kActive);
  EXPECT_EQ(icmp.tcp_flags_fwd | icmp.tcp_flags_rev, 0);
  EXPECT_EQ(icmp.packets(), 1u);
  ASSERT_EQ(tcp.protocol, kProtoTcp);
  EXPECT_EQ(tcp.state, FlowState::kActive);
  EXPECT_EQ(Src(tcp), kB);
  EXPECT_EQ(tcp.tcp_flags_fwd, kAck);
  EXPECT_EQ(tcp.tcp_flags_rev, 0);
  EXPECT_EQ(tcp.packets(), 1u);
  EXPECT_EQ(tcp.first_ns, Sec(21));
  EXPECT_EQ(tcp.end_reason, EndReason::kForcedEnd);
  EXPECT_NE(tcp.flow_id, sink.records[1].flow_id);
}

struct Stamped {
  PacketMeta meta;
  TimestampNs ts;
};

// Scripted traffic that exercises every ending: idle gaps, linger, SYN reuse, active timeout,
// a full table, fragments.
std::vector<Stamped> ScriptedTraffic() {
  std::vector<Stamped> p;
  const auto at = [&](PacketMeta m, TimestampNs ts) { p.push_back({m, ts}); };
  at(Tcp(kA, 40000, kB, 80, kSyn), Ms(0));
  at(Tcp(kB, 80, kA, 40000, kSynAck), Ms(1));
  at(Udp(kC, 1, kB, 1), Ms(2));
  at(Icmp(kA, kC, 8, 0), Ms(3));
  at(Tcp(kA, 40000, kB, 80, kFinAck), Ms(500));
  at(Tcp(kB, 80, kA, 40000, kFinAck), Ms(501));
  at(Tcp(kA, 40000, kB, 80, kAck), Ms(502));
  at(Tcp(kB, 80, kA, 40000, kAck), Ms(1500));  // late, lingering
  at(Tcp(kA, 40000, kB, 80, kSyn), Ms(1600));  // reuse
  at(Tcp(kA, 5, kB, 5, kSyn), Ms(1700));
  at(Tcp(kB, 5, kA, 5, kTcpRst), Ms(1701));
  at(FirstFragment(Udp(kA, 7, kC, 7, 1500), 99), Ms(1800));
  at(LaterFragment(kA, kC, kProtoUdp, 99, 185, false), Ms(1801));
  at(Udp(kC, 2, kB, 2), Ms(4000));  // the sixth flow: the table (capacity 6) is full
  at(Udp(kC, 3, kB, 3), Ms(4001));
  at(Tcp(kB, 5, kA, 5, kAck), Ms(4500));  // after the linger of the RST flow
  for (int s = 5; s < 80; s += 3) at(Udp(kC, 1, kB, 1), Sec(s));  // active timeout, stays
  at(Udp(kC, 2, kB, 2), Sec(20));                                 // idle since 4 s
  at(Icmp(kC, kA, 0, 0), Sec(90));
  std::stable_sort(p.begin(), p.end(),
                   [](const Stamped& x, const Stamped& y) { return x.ts < y.ts; });
  return p;
}

// Random traffic among a few hosts and ports, with gaps longer than the timeouts.
std::vector<Stamped> RandomTraffic(uint32_t seed, int count) {
  std::mt19937 rng(seed);
  const char* hosts[] = {"10.0.0.1", "10.0.0.2", "10.0.0.3", "2001:db8::1", "2001:db8::2"};
  const uint16_t ports[] = {80, 443, 1000, 1001};
  const uint8_t flags[] = {kSyn, kSynAck, kAck, kPshAck, kFinAck, kTcpRst, kTcpRst | kTcpAck, 0};
  std::vector<Stamped> p;
  TimestampNs ts = kT0;
  for (int i = 0; i < count; ++i) {
    const uint32_t r = rng();
    ts += r % 16 == 0 ? static_cast<TimestampNs>(rng() % 15'000) * 1'000'000
                      : static_cast<TimestampNs>(rng() % 700) * 1'000'000;
    const bool v6 = rng() % 4 == 0;
    const int base = v6 ? 3 : 0, span = v6 ? 2 : 3;
    const char* src = hosts[base + rng() % span];
    const char* dst = hosts[base + rng() % span];
    const uint16_t sport = ports[rng() % 4], dport = ports[rng() % 4];
    PacketMeta m{};
    switch (rng() % 6) {
      case 0:
        m = Udp(src, sport, dst, dport, 60 + rng() % 1000);
        break;
      case 1:
        m = Icmp(src, dst, rng() % 2 ? 8 : 0, 0, v6 ? kProtoIcmpv6 : kProtoIcmp);
        break;
      case 2:
        m = FirstFragment(Udp(src, sport, dst, dport, 1500), rng() % 4);
        break;
      case 3:
        m = LaterFragment(src, dst, kProtoUdp, rng() % 4, 185, false);
        break;
      default: {
        const uint8_t f = flags[rng() % 8];
        m = Tcp(src, sport, dst, dport, f, 40 + rng() % 1400);
        break;
      }
    }
    p.push_back({m, ts});
  }
  return p;
}

FlowConfig RandomConfig() {
  FlowConfig c = TestConfig();
  c.idle_timeout_sec = 5;
  c.active_timeout_sec = 20;
  c.tcp_linger_ms = 1500;
  c.fragment_timeout_sec = 3;
  return c;
}

enum class Housekeeping { kAfterEveryPacket, kNever, kBatches };

std::vector<FlowRecord> Meter(const FlowConfig& config, uint32_t capacity,
                              const std::vector<Stamped>& packets, Housekeeping how,
                              FlowCounters* counters = nullptr) {
  CollectingSink sink;
  FlowTable table(config, capacity, &sink);
  if (how == Housekeeping::kBatches) {
    // Uneven batch sizes, some longer than a burst.
    const uint32_t sizes[] = {1, 37, 256, 300, 5, 600};
    std::vector<PacketMeta> metas;
    std::vector<TimestampNs> ts;
    for (const Stamped& s : packets) {
      metas.push_back(s.meta);
      ts.push_back(s.ts);
    }
    size_t i = 0;
    for (int b = 0; i < packets.size(); ++b) {
      const uint32_t n = static_cast<uint32_t>(std::min<size_t>(sizes[b % 6], packets.size() - i));
      table.ProcessBatch(metas.data() + i, ts.data() + i, n);
      i += n;
      table.Expire(ts[i - 1]);
    }
  } else {
    for (const Stamped& s : packets) {
      table.Process(s.meta, s.ts);
      if (how == Housekeeping::kAfterEveryPacket) table.Expire(s.ts);
    }
  }
  table.Expire(packets.back().ts);
  table.FlushAll(EndReason::kForcedEnd);
  if (counters != nullptr) *counters = table.counters();
  return sink.records;
}

TEST(FlowTableTest, ScriptedResultsDoNotDependOnWhenExpireRuns) {
  FlowCounters counters;
  const std::vector<Stamped> packets = ScriptedTraffic();
  const auto eager = Meter(TestConfig(), 6, packets, Housekeeping::kAfterEveryPacket, &counters);
  const auto lazy = Meter(TestConfig(), 6, packets, Housekeeping::kNever);
  const auto batched = Meter(TestConfig(), 6, packets, Housekeeping::kBatches);
  EXPECT_EQ(SortedDescriptions(eager), SortedDescriptions(lazy));
  EXPECT_EQ(SortedDescriptions(eager), SortedDescriptions(batched));
  // The script reaches every kind of ending.
  std::set<EndReason> reasons;
  uint64_t packets_in_records = 0;
  for (const FlowRecord& r : eager) {
    reasons.insert(r.end_reason);
    packets_in_records += r.packets();
  }
  EXPECT_EQ(reasons, (std::set<EndReason>{EndReason::kIdleTimeout, EndReason::kActiveTimeout,
                                          EndReason::kEndOfFlow, EndReason::kForcedEnd,
                                          EndReason::kLackOfResources}));
  EXPECT_EQ(packets_in_records, packets.size());
  EXPECT_EQ(counters.fragments_attributed, 1u);
}

TEST(FlowTableTest, RandomResultsDoNotDependOnWhenExpireRuns) {
  for (const uint32_t capacity : {4u, 1000u}) {
    for (uint32_t seed = 1; seed <= 4; ++seed) {
      SCOPED_TRACE("capacity " + std::to_string(capacity) + " seed " + std::to_string(seed));
      const std::vector<Stamped> packets = RandomTraffic(seed, 3000);
      FlowCounters counters;
      const auto eager =
          Meter(RandomConfig(), capacity, packets, Housekeeping::kAfterEveryPacket, &counters);
      const auto lazy = Meter(RandomConfig(), capacity, packets, Housekeeping::kNever);
      const auto batched = Meter(RandomConfig(), capacity, packets, Housekeeping::kBatches);
      ASSERT_EQ(SortedDescriptions(eager), SortedDescriptions(lazy));
      ASSERT_EQ(SortedDescriptions(eager), SortedDescriptions(batched));
      uint64_t in_records = 0;
      for (const FlowRecord& r : eager) in_records += r.packets();
      EXPECT_EQ(in_records, packets.size());
      EXPECT_EQ(counters.packets, packets.size());
      EXPECT_EQ(counters.flows_exported, eager.size());
      if (capacity == 4) {
        EXPECT_GT(counters.evicted, 0u);
      } else {
        EXPECT_EQ(counters.evicted, 0u);
      }
      EXPECT_GT(counters.fragments_attributed, 0u);
      EXPECT_GT(counters.fragments_unattributed, 0u);
    }
  }
}

}  // namespace
}  // namespace jarvis
