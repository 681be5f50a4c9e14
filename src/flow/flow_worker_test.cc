#include "flow/flow_worker.h"

#include <gtest/gtest.h>
#include <pcap/dlt.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <thread>
#include <vector>

#include "core/packet.h"
#include "decode/decoder.h"
#include "flow/flow_record.h"

namespace jarvis {
namespace {

using std::chrono::milliseconds;

constexpr TimestampNs kT0 = 1'700'000'000LL * kNanosPerSecond;
constexpr TimestampNs Ms(int64_t ms) { return kT0 + ms * 1'000'000; }

using Ip4 = std::array<uint8_t, 4>;
constexpr Ip4 kClient = {192, 0, 2, 10};
constexpr Ip4 kServer = {198, 51, 100, 20};

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
    this->records.insert(this->records.end(), records.begin(), records.end());
  }
  std::vector<FlowRecord> records;
};

void Put16(std::vector<uint8_t>& f, uint16_t v) {
  f.push_back(static_cast<uint8_t>(v >> 8));
  f.push_back(static_cast<uint8_t>(v));
}

void Put32(std::vector<uint8_t>& f, uint32_t v) {
  Put16(f, static_cast<uint16_t>(v >> 16));
  Put16(f, static_cast<uint16_t>(v));
}

// Ethernet + IPv4 header; the transport header and payload (`l4_len` octets) follow.
std::vector<uint8_t> EthIpv4(const Ip4& src, const Ip4& dst, uint8_t protocol, uint16_t l4_len,
                             uint16_t frag = 0x4000 /* DF */, uint16_t id = 0x1111) {
  std::vector<uint8_t> f = {0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01};
  Put16(f, 0x0800);
  f.push_back(0x45);
  f.push_back(0);
  Put16(f, static_cast<uint16_t>(20 + l4_len));
  Put16(f, id);
  Put16(f, frag);
  f.push_back(64);
  f.push_back(protocol);
  Put16(f, 0);  // checksum: the decoder does not check it
  f.insert(f.end(), src.begin(), src.end());
  f.insert(f.end(), dst.begin(), dst.end());
  return f;
}

std::vector<uint8_t> TcpFrame(const Ip4& src, uint16_t sport, const Ip4& dst, uint16_t dport,
                              uint8_t flags, uint16_t payload = 0) {
  std::vector<uint8_t> f = EthIpv4(src, dst, kProtoTcp, static_cast<uint16_t>(20 + payload));
  Put16(f, sport);
  Put16(f, dport);
  Put32(f, 1000);  // seq
  Put32(f, 2000);  // ack
  f.push_back(0x50);
  f.push_back(flags);
  Put16(f, 65535);
  Put16(f, 0);
  Put16(f, 0);
  f.insert(f.end(), payload, 0xAB);
  return f;
}

std::vector<uint8_t> UdpFrame(const Ip4& src, uint16_t sport, const Ip4& dst, uint16_t dport,
                              uint16_t payload) {
  std::vector<uint8_t> f = EthIpv4(src, dst, kProtoUdp, static_cast<uint16_t>(8 + payload));
  Put16(f, sport);
  Put16(f, dport);
  Put16(f, static_cast<uint16_t>(8 + payload));
  Put16(f, 0);
  f.insert(f.end(), payload, 0xCD);
  return f;
}

std::vector<uint8_t> ArpFrame() {
  std::vector<uint8_t> f = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02, 0, 0, 0, 0, 0x01};
  Put16(f, 0x0806);
  f.insert(f.end(), 28, 0);
  return f;
}

// Frames with their time; owns the bytes the batches point into.
class Traffic {
 public:
  // Appends a frame to `batch`; the bytes live as long as this object.
  void Add(PacketBatch& batch, std::vector<uint8_t> frame, TimestampNs ts) {
    const std::vector<uint8_t>& f = frames_.emplace_back(std::move(frame));
    PacketView& v = batch.Append();
    v.data = f.data();
    v.caplen = v.wirelen = static_cast<uint32_t>(f.size());
    v.ts_ns = ts;
  }

 private:
  std::deque<std::vector<uint8_t>> frames_;
};

PacketBatch& NewBatch(PacketBatch& batch) {
  batch.Reset();
  batch.set_link_type(DLT_EN10MB);
  return batch;
}

// Keeps serving from this (the owning) thread until `done` or a generous deadline.
template <class Serve>
void ServeUntil(const std::atomic<bool>& done, Serve serve) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!done.load() && std::chrono::steady_clock::now() < deadline) {
    serve();
    std::this_thread::sleep_for(milliseconds(1));
  }
}

TEST(FlowWorkerTest, DecodesFramesAndMetersBothDirections) {
  CollectingSink sink;
  FlowWorker worker(TestConfig(), 64, &sink);
  Traffic traffic;
  PacketBatch batch;
  NewBatch(batch);
  traffic.Add(batch, TcpFrame(kClient, 40000, kServer, 443, kTcpSyn), Ms(0));
  traffic.Add(batch, TcpFrame(kServer, 443, kClient, 40000, kTcpSyn | kTcpAck), Ms(1));
  traffic.Add(batch, TcpFrame(kClient, 40000, kServer, 443, kTcpAck), Ms(2));
  traffic.Add(batch, TcpFrame(kClient, 40000, kServer, 443, kTcpPsh | kTcpAck, 100), Ms(3));
  traffic.Add(batch, ArpFrame(), Ms(4));
  worker.ProcessBatch(batch);
  NewBatch(batch);
  traffic.Add(batch, TcpFrame(kServer, 443, kClient, 40000, kTcpPsh | kTcpAck, 1000), Ms(5));
  traffic.Add(batch, UdpFrame(kClient, 5353, kServer, 53, 30), Ms(6));
  worker.ProcessBatch(batch);
  EXPECT_EQ(worker.now(), Ms(6));
  EXPECT_EQ(worker.table().active_flows(), 2u);
  EXPECT_EQ(worker.table().counters().packets, 6u);
  EXPECT_EQ(worker.table().counters().not_metered, 1u);
  EXPECT_EQ(worker.decode_counters().non_ip, 1u);
  EXPECT_TRUE(sink.records.empty());

  worker.Finish();
  ASSERT_EQ(sink.records.size(), 2u);
  EXPECT_EQ(worker.table().active_flows(), 0u);
  const auto tcp = std::find_if(sink.records.begin(), sink.records.end(),
                                [](const FlowRecord& r) { return r.protocol == kProtoTcp; });
  ASSERT_NE(tcp, sink.records.end());
  EXPECT_EQ(AddressString(tcp->src_addr, 4), "192.0.2.10");
  EXPECT_EQ(AddressString(tcp->dst_addr, 4), "198.51.100.20");
  EXPECT_EQ(tcp->src_port, 40000);
  EXPECT_EQ(tcp->dst_port, 443);
  EXPECT_EQ(tcp->packets_fwd, 3u);
  EXPECT_EQ(tcp->packets_rev, 2u);
  EXPECT_EQ(tcp->bytes_fwd, 40u + 40u + 140u);  // IP total lengths
  EXPECT_EQ(tcp->bytes_rev, 40u + 1040u);
  EXPECT_EQ(tcp->tcp_flags_fwd, kTcpSyn | kTcpAck | kTcpPsh);
  EXPECT_EQ(tcp->tcp_flags_rev, kTcpSyn | kTcpAck | kTcpPsh);
  EXPECT_EQ(tcp->first_ns, Ms(0));
  EXPECT_EQ(tcp->last_ns, Ms(5));
  EXPECT_EQ(tcp->end_reason, EndReason::kForcedEnd);
  const auto udp = std::find_if(sink.records.begin(), sink.records.end(),
                                [](const FlowRecord& r) { return r.protocol == kProtoUdp; });
  ASSERT_NE(udp, sink.records.end());
  EXPECT_EQ(udp->bytes_fwd, 58u);
  EXPECT_EQ(udp->src_port, 5353);
}

TEST(FlowWorkerTest, FinishedTcpEndsAsEndOfFlowOnFinish) {
  CollectingSink sink;
  FlowWorker worker(TestConfig(), 64, &sink);
  Traffic traffic;
  PacketBatch batch;
  NewBatch(batch);
  traffic.Add(batch, TcpFrame(kClient, 1, kServer, 80, kTcpSyn), Ms(0));
  traffic.Add(batch, TcpFrame(kServer, 80, kClient, 1, kTcpRst | kTcpAck), Ms(1));
  traffic.Add(batch, UdpFrame(kClient, 2, kServer, 2, 10), Ms(2));
  worker.ProcessBatch(batch);
  worker.Finish();
  ASSERT_EQ(sink.records.size(), 2u);
  for (const FlowRecord& r : sink.records) {
    EXPECT_EQ(r.end_reason,
              r.protocol == kProtoTcp ? EndReason::kEndOfFlow : EndReason::kForcedEnd);
  }
}

TEST(FlowWorkerTest, ProcessBatchMetersOnlyTheFirstLimitPackets) {
  CollectingSink sink;
  FlowWorker worker(TestConfig(), 64, &sink);
  Traffic traffic;
  PacketBatch batch;
  NewBatch(batch);
  for (uint16_t i = 0; i < 5; ++i) {
    traffic.Add(batch, UdpFrame(kClient, static_cast<uint16_t>(1000 + i), kServer, 53, 10), Ms(i));
  }
  worker.ProcessBatch(batch, 3);
  EXPECT_EQ(worker.table().counters().packets, 3u);
  EXPECT_EQ(worker.table().active_flows(), 3u);
  EXPECT_EQ(worker.now(), Ms(2));
  worker.ProcessBatch(batch, 1000);  // more than the batch holds: all of it
  EXPECT_EQ(worker.table().counters().packets, 8u);
  EXPECT_EQ(worker.table().active_flows(), 5u);
}

// A worker's decoder set as a batch's visitor decodes each packet as it is appended (as the
// file source does); metering the batch must come out exactly as when the worker decodes it itself,
// and packets visited beyond ProcessBatch's limit must leave no trace in the decode counters.
TEST(FlowWorkerTest, VisitedBatchesMeterAsUndecodedOnes) {
  const auto fill = [](PacketBatch& batch, Traffic& traffic, int round) {
    NewBatch(batch);
    const uint16_t port = static_cast<uint16_t>(40000 + round);
    const TimestampNs t = Ms(10 * round);
    traffic.Add(batch, TcpFrame(kClient, port, kServer, 443, kTcpSyn), t);
    traffic.Add(batch, ArpFrame(), t + 1);
    traffic.Add(batch, TcpFrame(kServer, 443, kClient, port, kTcpSyn | kTcpAck), t + 2);
    traffic.Add(batch, UdpFrame(kClient, port, kServer, 53, 20), t + 3);
    traffic.Add(batch, ArpFrame(), t + 4);
    traffic.Add(batch, TcpFrame(kClient, port, kServer, 443, kTcpFin | kTcpAck), t + 5);
  };
  for (const uint32_t limit : {PacketBatch::kMaxBurst, 4u, 1u, 0u}) {
    SCOPED_TRACE(testing::Message() << "limit " << limit);
    CollectingSink plain_sink, visited_sink;
    FlowWorker plain(TestConfig(), 64, &plain_sink), visiting(TestConfig(), 64, &visited_sink);
    Traffic traffic;
    PacketBatch plain_batch, visited_batch;
    visited_batch.set_visitor(visiting.batch_decoder());
    for (int round = 0; round < 3; ++round) {
      fill(plain_batch, traffic, round);
      fill(visited_batch, traffic, round);
      visited_batch.VisitAppended();  // as a source does after each packet it appends
      EXPECT_EQ(plain_batch.visited(), 0u);
      EXPECT_EQ(visited_batch.visited(), visited_batch.size());
      plain.ProcessBatch(plain_batch, limit);
      visiting.ProcessBatch(visited_batch, limit);
    }
    plain.Finish();
    visiting.Finish();
    EXPECT_EQ(visiting.decode_counters().non_ip, plain.decode_counters().non_ip);
    EXPECT_EQ(visiting.decode_counters().non_ip, limit >= 5 ? 6u : limit >= 2 ? 3u : 0u);
    EXPECT_EQ(visiting.table().counters().packets, plain.table().counters().packets);
    EXPECT_EQ(visiting.table().counters().not_metered, plain.table().counters().not_metered);
    ASSERT_EQ(visited_sink.records.size(), plain_sink.records.size());
    for (size_t i = 0; i < plain_sink.records.size(); ++i) {
      const FlowRecord &a = plain_sink.records[i], &b = visited_sink.records[i];
      EXPECT_EQ(b.src_port, a.src_port);
      EXPECT_EQ(b.dst_port, a.dst_port);
      EXPECT_EQ(b.protocol, a.protocol);
      EXPECT_EQ(b.packets_fwd, a.packets_fwd);
      EXPECT_EQ(b.packets_rev, a.packets_rev);
      EXPECT_EQ(b.bytes_fwd, a.bytes_fwd);
      EXPECT_EQ(b.bytes_rev, a.bytes_rev);
      EXPECT_EQ(b.tcp_flags_fwd, a.tcp_flags_fwd);
      EXPECT_EQ(b.last_ns, a.last_ns);
      EXPECT_EQ(b.end_reason, a.end_reason);
    }
  }
}

TEST(FlowWorkerTest, ProcessBatchExpiresFlowsDueAtTheBatchTime) {
  CollectingSink sink;
  FlowWorker worker(TestConfig(), 64, &sink);
  Traffic traffic;
  PacketBatch batch;
  NewBatch(batch);
  traffic.Add(batch, UdpFrame(kClient, 1, kServer, 1, 10), Ms(0));
  traffic.Add(batch, TcpFrame(kClient, 2, kServer, 80, kTcpRst), Ms(0));
  worker.ProcessBatch(batch);
  EXPECT_TRUE(sink.records.empty());
  NewBatch(batch);
  traffic.Add(batch, UdpFrame(kClient, 3, kServer, 3, 10), Ms(2000));  // linger over
  worker.ProcessBatch(batch);
  ASSERT_EQ(sink.records.size(), 1u);
  EXPECT_EQ(sink.records[0].protocol, kProtoTcp);
  EXPECT_EQ(sink.records[0].end_reason, EndReason::kEndOfFlow);
  NewBatch(batch);
  traffic.Add(batch, UdpFrame(kClient, 3, kServer, 3, 10), Ms(10'000));  // flow 1 idle
  worker.ProcessBatch(batch);
  ASSERT_EQ(sink.records.size(), 2u);
  EXPECT_EQ(sink.records[1].src_port, 1);
  EXPECT_EQ(sink.records[1].end_reason, EndReason::kIdleTimeout);
  EXPECT_EQ(worker.table().active_flows(), 1u);
}

TEST(FlowWorkerTest, TickAdvancesTimeWithoutPackets) {
  CollectingSink sink;
  FlowWorker worker(TestConfig(), 64, &sink);
  Traffic traffic;
  PacketBatch batch;
  NewBatch(batch);
  traffic.Add(batch, UdpFrame(kClient, 1, kServer, 1, 10), Ms(0));
  worker.ProcessBatch(batch);
  worker.Tick(Ms(9'999));
  EXPECT_TRUE(sink.records.empty());
  EXPECT_EQ(worker.now(), Ms(9'999));
  worker.Tick(Ms(10'000));
  ASSERT_EQ(sink.records.size(), 1u);
  EXPECT_EQ(sink.records[0].end_reason, EndReason::kIdleTimeout);
  EXPECT_EQ(worker.now(), Ms(10'000));
  worker.Tick(Ms(5));  // time never goes back
  EXPECT_EQ(worker.now(), Ms(10'000));
}

TEST(FlowWorkerTest, FlowIdsAreNumberedPerShard) {
  CollectingSink sink;
  FlowWorker worker(TestConfig(), 64, &sink, /*shard=*/2, /*shards=*/3);
  Traffic traffic;
  PacketBatch batch;
  NewBatch(batch);
  for (uint16_t i = 0; i < 3; ++i) {
    traffic.Add(batch, UdpFrame(kClient, static_cast<uint16_t>(100 + i), kServer, 9, 1), Ms(i));
  }
  worker.ProcessBatch(batch);
  worker.Finish();
  std::vector<uint64_t> ids;
  for (const FlowRecord& r : sink.records) ids.push_back(r.flow_id);
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<uint64_t>{3, 6, 9}));
}

TEST(FlowWorkerTest, FragmentedDatagramIsOneFlow) {
  CollectingSink sink;
  FlowWorker worker(TestConfig(), 64, &sink);
  Traffic traffic;
  PacketBatch batch;
  NewBatch(batch);
  // First fragment: UDP header and 1472 octets of a 2000-octet datagram; then the rest.
  std::vector<uint8_t> first = EthIpv4(kClient, kServer, kProtoUdp, 1480, 0x2000, 0x4242);
  Put16(first, 7000);
  Put16(first, 7001);
  Put16(first, 2008);
  Put16(first, 0);
  first.insert(first.end(), 1472, 0x11);
  traffic.Add(batch, std::move(first), Ms(0));
  std::vector<uint8_t> rest = EthIpv4(kClient, kServer, kProtoUdp, 528, 1480 / 8, 0x4242);
  rest.insert(rest.end(), 528, 0x22);
  traffic.Add(batch, std::move(rest), Ms(1));
  traffic.Add(batch, UdpFrame(kServer, 7001, kClient, 7000, 4), Ms(2));
  worker.ProcessBatch(batch);
  EXPECT_EQ(worker.decode_counters().ip_fragments, 2u);
  EXPECT_EQ(worker.table().counters().fragments_attributed, 1u);
  EXPECT_EQ(worker.table().active_flows(), 1u);
  worker.Finish();
  ASSERT_EQ(sink.records.size(), 1u);
  EXPECT_EQ(sink.records[0].src_port, 7000);
  EXPECT_EQ(sink.records[0].dst_port, 7001);
  EXPECT_EQ(sink.records[0].packets_fwd, 2u);
  EXPECT_EQ(sink.records[0].bytes_fwd, 1500u + 548u);
  EXPECT_EQ(sink.records[0].packets_rev, 1u);
}

TEST(FlowWorkerTest, SnapshotIsServedAtATick) {
  CollectingSink sink;
  FlowWorker worker(TestConfig(), 64, &sink);
  Traffic traffic;
  PacketBatch batch;
  NewBatch(batch);
  traffic.Add(batch, TcpFrame(kClient, 40000, kServer, 443, kTcpSyn), Ms(0));
  traffic.Add(batch, TcpFrame(kServer, 443, kClient, 40000, kTcpSyn | kTcpAck), Ms(1));
  traffic.Add(batch, UdpFrame(kClient, 5353, kServer, 53, 30), Ms(2));
  worker.ProcessBatch(batch);

  std::optional<std::vector<FlowRecord>> snapshot;
  std::atomic<bool> done{false};
  std::thread requester([&] {
    snapshot = worker.RequestSnapshot(std::chrono::seconds(20));
    done.store(true);
  });
  ServeUntil(done, [&] { worker.Tick(Ms(3)); });
  requester.join();

  ASSERT_TRUE(snapshot.has_value());
  ASSERT_EQ(snapshot->size(), 2u);
  uint64_t packets = 0;
  for (const FlowRecord& r : *snapshot) {
    EXPECT_EQ(r.end_reason, EndReason::kNone);
    packets += r.packets();
  }
  EXPECT_EQ(packets, 3u);
  // Serving a snapshot changes nothing.
  EXPECT_TRUE(sink.records.empty());
  EXPECT_EQ(worker.table().active_flows(), 2u);
}

TEST(FlowWorkerTest, SnapshotIsServedAtABatchBoundary) {
  CollectingSink sink;
  FlowWorker worker(TestConfig(), 64, &sink);
  Traffic traffic;
  PacketBatch batch;
  NewBatch(batch);
  traffic.Add(batch, UdpFrame(kClient, 1, kServer, 1, 10), Ms(0));
  worker.ProcessBatch(batch);

  std::optional<std::vector<FlowRecord>> snapshot;
  std::atomic<bool> done{false};
  std::thread requester([&] {
    snapshot = worker.RequestSnapshot(std::chrono::seconds(20));
    done.store(true);
  });
  PacketBatch empty;
  NewBatch(empty);
  ServeUntil(done, [&] { worker.ProcessBatch(empty); });
  requester.join();
  ASSERT_TRUE(snapshot.has_value());
  ASSERT_EQ(snapshot->size(), 1u);
  EXPECT_EQ((*snapshot)[0].src_port, 1);
  EXPECT_EQ((*snapshot)[0].bytes_fwd, 38u);
}

TEST(FlowWorkerTest, SeveralRequestersAllGetAnAnswer) {
  CollectingSink sink;
  FlowWorker worker(TestConfig(), 64, &sink);
  Traffic traffic;
  PacketBatch batch;
  NewBatch(batch);
  traffic.Add(batch, UdpFrame(kClient, 1, kServer, 1, 10), Ms(0));
  traffic.Add(batch, UdpFrame(kClient, 2, kServer, 2, 10), Ms(0));
  worker.ProcessBatch(batch);

  constexpr int kRequesters = 4;
  std::vector<std::optional<std::vector<FlowRecord>>> answers(kRequesters);
  std::atomic<int> finished{0};
  std::atomic<bool> done{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < kRequesters; ++i) {
    threads.emplace_back([&, i] {
      answers[i] = worker.RequestSnapshot(std::chrono::seconds(20));
      if (++finished == kRequesters) done.store(true);
    });
  }
  ServeUntil(done, [&] { worker.Tick(Ms(1)); });
  for (std::thread& t : threads) t.join();
  for (const auto& answer : answers) {
    ASSERT_TRUE(answer.has_value());
    EXPECT_EQ(answer->size(), 2u);
  }
}

TEST(FlowWorkerTest, SnapshotTimesOutWhenTheWorkerNeverServes) {
  CollectingSink sink;
  FlowWorker worker(TestConfig(), 64, &sink);
  const auto start = std::chrono::steady_clock::now();
  const auto snapshot = worker.RequestSnapshot(milliseconds(50));
  EXPECT_FALSE(snapshot.has_value());
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(50));

  // The abandoned request is harmless, and the worker still answers the next one.
  worker.Tick(Ms(0));
  std::optional<std::vector<FlowRecord>> next;
  std::atomic<bool> done{false};
  std::thread requester([&] {
    next = worker.RequestSnapshot(std::chrono::seconds(20));
    done.store(true);
  });
  ServeUntil(done, [&] { worker.Tick(Ms(1)); });
  requester.join();
  ASSERT_TRUE(next.has_value());
  EXPECT_TRUE(next->empty());
}

}  // namespace
}  // namespace jarvis
