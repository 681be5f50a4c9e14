#include "export/flow_exporter.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <vector>

namespace jarvis {
namespace {

using std::chrono::milliseconds;

// A UDP socket on 127.0.0.1 with an ephemeral port: a stand-in collector.
class LoopbackCollector {
 public:
  LoopbackCollector() {
    fd_.reset(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    const int buf = 4 << 20;
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
  uint16_t port() const { return port_; }
  void Close() { fd_.reset(); }

  // Receives datagrams until none arrives for `quiet`, for at most `limit`; records each
  // one's source port.
  std::vector<std::vector<uint8_t>> Receive(milliseconds quiet, std::vector<uint16_t>* ports,
                                            milliseconds limit = milliseconds(10000)) {
    std::vector<std::vector<uint8_t>> out;
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      pollfd p{fd_.get(), POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(quiet.count())) <= 0) break;
      std::vector<uint8_t> buf(65536);
      sockaddr_in from{};
      socklen_t len = sizeof from;
      const ssize_t n = ::recvfrom(fd_.get(), buf.data(), buf.size(), 0,
                                   reinterpret_cast<sockaddr*>(&from), &len);
      if (n <= 0) break;
      buf.resize(static_cast<size_t>(n));
      out.push_back(std::move(buf));
      if (ports) ports->push_back(ntohs(from.sin_port));
    }
    return out;
  }

 private:
  UniqueFd fd_;
  uint16_t port_ = 0;
};

uint16_t Get16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t Get32(const uint8_t* p) { return uint32_t{Get16(p)} << 16 | Get16(p + 2); }

std::vector<FlowRecord> Flows(size_t n, TimestampNs t0 = 1700000000000000000) {
  std::vector<FlowRecord> rs(n);
  for (size_t i = 0; i < n; ++i) {
    FlowRecord& r = rs[i];
    r.flow_id = i + 1;
    r.ip_version = 4;
    r.src_addr[0] = 10;
    r.src_addr[3] = static_cast<uint8_t>(i);
    r.dst_addr[0] = 192;
    r.dst_addr[3] = 1;
    r.src_port = static_cast<uint16_t>(1024 + i);
    r.dst_port = 443;
    r.protocol = 6;
    r.packets_fwd = 10;
    r.bytes_fwd = 1000;
    r.packets_rev = 8;
    r.bytes_rev = 9000;
    r.first_ns = t0 + static_cast<TimestampNs>(i) * 1000;
    r.last_ns = r.first_ns + 5'000'000;
    r.end_reason = EndReason::kIdleTimeout;
  }
  return rs;
}

ExportConfig Config(ExportVersion v, uint16_t port) {
  ExportConfig c;
  c.collector_host = "127.0.0.1";
  c.collector_port = port;
  c.version = v;
  c.max_datagrams_per_sec = 0;
  return c;
}

TEST(FlowExporter, SendsEverySequencedRecordFromOneSourcePort) {
  for (ExportVersion v :
       {ExportVersion::kNetflow5, ExportVersion::kNetflow9, ExportVersion::kIpfix}) {
    LoopbackCollector col;
    ExportConfig c = Config(v, col.port());
    c.queue_full = QueueFullPolicy::kWait;
    c.max_datagrams_per_sec = 20000;
    auto e = FlowExporter::Create(c);
    ASSERT_TRUE(e.has_value()) << e.error().message();
    const auto flows = Flows(2000);
    for (size_t i = 0; i < flows.size(); i += 100) {
      (*e)->OnFlows(std::span<const FlowRecord>(flows).subspan(i, 100));
    }
    ASSERT_TRUE((*e)->Stop(std::chrono::seconds(20)).has_value());
    std::vector<uint16_t> ports;
    const auto got = col.Receive(milliseconds(200), &ports);
    const ExportStats s = (*e)->Stats();
    EXPECT_EQ(s.records_sent, 4000u);
    EXPECT_EQ(s.datagrams_sent, got.size());
    EXPECT_EQ(s.flows_dropped_queue_full, 0u);
    EXPECT_EQ(s.send_errors, 0u);
    for (uint16_t p : ports) EXPECT_EQ(p, (*e)->source_port());
    // Sequence numbers without gaps, as each version defines them.
    uint64_t records = 0;
    uint32_t next = 0;
    for (const auto& d : got) {
      ASSERT_GE(d.size(), 16u);
      EXPECT_EQ(Get16(d.data()), static_cast<uint16_t>(v));
      if (v == ExportVersion::kNetflow5) {
        EXPECT_EQ(Get32(&d[16]), next);
        next += Get16(&d[2]);
        records += Get16(&d[2]);
      } else if (v == ExportVersion::kNetflow9) {
        EXPECT_EQ(Get32(&d[12]), next);
        ++next;
      } else {
        if (Get32(&d[12]) == 0) continue;  // exporter options, domain 0
        EXPECT_EQ(Get32(&d[8]), next);
        uint32_t n = 0;
        for (size_t at = 16; at < d.size(); at += Get16(&d[at + 2])) {
          if (Get16(&d[at]) >= 256) n += (Get16(&d[at + 2]) - 4) / 50;
        }
        next += n;
        records += n;
      }
    }
    if (v != ExportVersion::kNetflow9) {
      EXPECT_EQ(records, 4000u);
    }
  }
}

TEST(FlowExporter, ClosedCollectorPortIsCountedNeverFatal) {
  LoopbackCollector col;
  const uint16_t port = col.port();
  col.Close();  // nobody listens there now: the kernel answers ICMP port unreachable
  auto e = FlowExporter::Create(Config(ExportVersion::kIpfix, port));
  ASSERT_TRUE(e.has_value()) << e.error().message();
  const auto flows = Flows(100);
  for (int round = 0; round < 20; ++round) {
    (*e)->OnFlows(flows);
    ASSERT_TRUE((*e)->Flush(std::chrono::seconds(5)).has_value());
  }
  ASSERT_TRUE((*e)->Stop(std::chrono::seconds(5)).has_value());
  const ExportStats s = (*e)->Stats();
  EXPECT_GT(s.refused, 0u);
  EXPECT_EQ(s.flows_received, 2000u);
  EXPECT_GT(s.datagrams_sent, 0u);
}

TEST(FlowExporter, FullQueueDropsAndCountsWithoutBlocking) {
  LoopbackCollector col;
  ExportConfig c = Config(ExportVersion::kIpfix, col.port());
  c.queue_capacity = 40000;     // about 1,600 datagrams: more than the pacer's burst (512)
  c.max_datagrams_per_sec = 1;  // a very slow collector link
  auto e = FlowExporter::Create(c);
  ASSERT_TRUE(e.has_value());
  const auto big = Flows(40001);
  (*e)->OnFlows(big);  // larger than the whole queue: dropped at once
  EXPECT_EQ((*e)->Stats().flows_dropped_queue_full, 40001u);

  const auto flows = Flows(100);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 1000; ++i) (*e)->OnFlows(flows);
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(took, std::chrono::seconds(1));  // never waits for the collector
  const ExportStats s = (*e)->Stats();
  EXPECT_EQ(s.flows_received, 40001u + 100000u);
  // The queue holds 40,000; the thread takes what a burst of 512 datagrams carries.
  EXPECT_GE(s.flows_dropped_queue_full, 40001u + 100000u - 40000u - 512u * 27u);
  EXPECT_LE(s.flows_queued, 40000u);
  // Stopping with a short timeout drops what is left, and says so.
  auto st = (*e)->Stop(milliseconds(100));
  EXPECT_FALSE(st.has_value());
  const ExportStats end = (*e)->Stats();
  EXPECT_EQ(end.flows_queued, 0u);
  EXPECT_GT(end.flows_dropped_queue_full, s.flows_dropped_queue_full);
  // After Stop, records are counted as dropped.
  (*e)->OnFlows(flows);
  EXPECT_EQ((*e)->Stats().flows_dropped_queue_full, end.flows_dropped_queue_full + 100);
}

TEST(FlowExporter, TemplatesAreResentOnTheTimer) {
  LoopbackCollector col;
  ExportConfig c = Config(ExportVersion::kNetflow9, col.port());
  c.template_refresh_sec = 1;
  c.template_refresh_packets = 0;
  auto e = FlowExporter::Create(c);
  ASSERT_TRUE(e.has_value());
  const auto flows = Flows(10);
  (*e)->OnFlows(flows);
  // The data, then a refresh every second.
  const auto got = col.Receive(milliseconds(2500), nullptr, milliseconds(2500));
  ASSERT_GE(got.size(), 2u);
  size_t template_only = 0;
  for (size_t i = 1; i < got.size(); ++i) {
    if (Get16(&got[i][20]) == 0 && Get16(&got[i][2]) == 4) ++template_only;
  }
  EXPECT_GE(template_only, 1u);
  EXPECT_GE((*e)->Stats().template_sends, 2u);
}

TEST(FlowExporter, ResolvesHostNamesAndRejectsBadConfigs) {
  LoopbackCollector col;
  ExportConfig c = Config(ExportVersion::kIpfix, col.port());
  c.collector_host = "localhost";
  auto e = FlowExporter::Create(c);
  ASSERT_TRUE(e.has_value()) << e.error().message();
  EXPECT_TRUE((*e)->collector() == "127.0.0.1:" + std::to_string(col.port()) ||
              (*e)->collector() == "[::1]:" + std::to_string(col.port()))
      << (*e)->collector();
  c.collector_host = "no-such-host.invalid";
  auto bad = FlowExporter::Create(c);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().field(), "collector_ip");
  c.collector_host = "127.0.0.1";
  c.version = static_cast<ExportVersion>(6);
  bad = FlowExporter::Create(c);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().field(), "netflow_version");
}

TEST(FlowExporter, StatsNamesForMetrics) {
  ExportStats s;
  s.records_sent = 3;
  std::vector<std::string> names;
  uint64_t sent = 0;
  s.ForEach([&](std::string_view name, std::string_view help, uint64_t v) {
    names.emplace_back(name);
    EXPECT_FALSE(help.empty());
    if (name == "records_sent") sent = v;
  });
  EXPECT_EQ(sent, 3u);
  EXPECT_EQ(names.front(), "flows_received");
  EXPECT_EQ(names.back(), "refused");
}

}  // namespace
}  // namespace jarvis
