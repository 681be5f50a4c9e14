#include "flow/flow_query.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "decode/decoder.h"
#include "flow/flow_record.h"

namespace jarvis {
namespace {

constexpr TimestampNs kT0 = 1'700'000'000LL * kNanosPerSecond;

// A record with the fields the query looks at.
FlowRecord Record(uint64_t id, const char* src, uint16_t sport, const char* dst, uint16_t dport,
                  uint8_t protocol, uint64_t packets, uint64_t bytes, int64_t duration_ms) {
  FlowRecord r;
  r.flow_id = id;
  if (inet_pton(AF_INET, src, r.src_addr) == 1) {
    r.ip_version = 4;
    EXPECT_EQ(inet_pton(AF_INET, dst, r.dst_addr), 1) << dst;
  } else {
    r.ip_version = 6;
    EXPECT_EQ(inet_pton(AF_INET6, src, r.src_addr), 1) << src;
    EXPECT_EQ(inet_pton(AF_INET6, dst, r.dst_addr), 1) << dst;
  }
  r.src_port = sport;
  r.dst_port = dport;
  r.protocol = protocol;
  r.packets_fwd = packets - packets / 2;
  r.packets_rev = packets / 2;
  r.bytes_fwd = bytes / 3;
  r.bytes_rev = bytes - bytes / 3;
  r.first_ns = kT0 + static_cast<int64_t>(id) * kNanosPerSecond;
  r.last_ns = r.first_ns + duration_ms * 1'000'000;
  return r;
}

std::vector<uint64_t> Ids(const std::vector<FlowRecord>& flows) {
  std::vector<uint64_t> ids;
  for (const FlowRecord& r : flows) ids.push_back(r.flow_id);
  return ids;
}

// Six flows with distinct packets, bytes and durations that order differently.
std::vector<FlowRecord> SampleFlows() {
  return {
      Record(1, "192.0.2.1", 40000, "198.51.100.7", 443, kProtoTcp, 10, 9000, 500),
      Record(2, "198.51.100.7", 53, "192.0.2.2", 5353, kProtoUdp, 2, 300, 20),
      Record(3, "192.0.2.1", 40001, "203.0.113.9", 80, kProtoTcp, 50, 2000, 100),
      Record(4, "2001:db8::1", 50000, "2001:db8::2", 443, kProtoTcp, 7, 70000, 9000),
      Record(5, "203.0.113.9", 0, "192.0.2.1", 0x0800, kProtoIcmp, 4, 336, 3000),
      Record(6, "192.0.2.3", 443, "192.0.2.1", 61000, kProtoUdp, 1, 1200, 0),
  };
}

FlowQuery NoLimit() {
  FlowQuery q;
  q.limit = 0;
  return q;
}

TEST(FlowQueryTest, ParseFlowSortKeyAcceptsTheThreeNames) {
  ASSERT_TRUE(ParseFlowSortKey("packets").has_value());
  EXPECT_EQ(*ParseFlowSortKey("packets"), FlowSortKey::kPackets);
  ASSERT_TRUE(ParseFlowSortKey("bytes").has_value());
  EXPECT_EQ(*ParseFlowSortKey("bytes"), FlowSortKey::kBytes);
  ASSERT_TRUE(ParseFlowSortKey("duration").has_value());
  EXPECT_EQ(*ParseFlowSortKey("duration"), FlowSortKey::kDuration);
}

TEST(FlowQueryTest, ParseFlowSortKeyRejectsOtherNames) {
  for (const char* name : {"", "Packets", "packet", "pkts", "bytes ", "octets", "first_seen"}) {
    SCOPED_TRACE(std::string("'") + name + "'");
    const Result<FlowSortKey> key = ParseFlowSortKey(name);
    ASSERT_FALSE(key.has_value());
    EXPECT_EQ(key.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(key.error().message().find(std::string("'") + name + "'"), std::string::npos)
        << key.error().message();
  }
}

TEST(FlowQueryTest, DefaultQuerySortsByPacketsDescending) {
  std::vector<FlowRecord> flows = SampleFlows();
  ASSERT_TRUE(ApplyFlowQuery(FlowQuery{}, flows).has_value());
  EXPECT_EQ(Ids(flows), (std::vector<uint64_t>{3, 1, 4, 5, 2, 6}));
}

TEST(FlowQueryTest, SortsByBytesDescending) {
  std::vector<FlowRecord> flows = SampleFlows();
  FlowQuery q = NoLimit();
  q.sort_by = FlowSortKey::kBytes;
  ASSERT_TRUE(ApplyFlowQuery(q, flows).has_value());
  EXPECT_EQ(Ids(flows), (std::vector<uint64_t>{4, 1, 3, 6, 5, 2}));
}

TEST(FlowQueryTest, SortsByDurationDescending) {
  std::vector<FlowRecord> flows = SampleFlows();
  FlowQuery q = NoLimit();
  q.sort_by = FlowSortKey::kDuration;
  ASSERT_TRUE(ApplyFlowQuery(q, flows).has_value());
  EXPECT_EQ(Ids(flows), (std::vector<uint64_t>{4, 5, 1, 3, 2, 6}));
}

TEST(FlowQueryTest, TiesAreBrokenByFlowId) {
  // Equal metrics, given out of id order; with and without a limit (partial sort).
  for (const uint32_t limit : {0u, 3u}) {
    SCOPED_TRACE("limit " + std::to_string(limit));
    std::vector<FlowRecord> flows;
    for (const uint64_t id : {9, 4, 7, 1, 8, 2}) {
      flows.push_back(
          Record(id, "192.0.2.1", 1, "192.0.2.2", 2, kProtoUdp, id % 2 ? 5 : 3, 100, 10));
    }
    FlowQuery q;
    q.limit = limit;
    ASSERT_TRUE(ApplyFlowQuery(q, flows).has_value());
    const std::vector<uint64_t> all = {1, 7, 9, 2, 4, 8};
    EXPECT_EQ(Ids(flows),
              limit == 0 ? all : std::vector<uint64_t>(all.begin(), all.begin() + limit));
  }
}

TEST(FlowQueryTest, LimitKeepsTheTopFlows) {
  std::vector<FlowRecord> flows = SampleFlows();
  FlowQuery q;
  q.limit = 2;
  q.sort_by = FlowSortKey::kBytes;
  ASSERT_TRUE(ApplyFlowQuery(q, flows).has_value());
  EXPECT_EQ(Ids(flows), (std::vector<uint64_t>{4, 1}));

  flows = SampleFlows();
  q.limit = 6;  // exactly the size
  ASSERT_TRUE(ApplyFlowQuery(q, flows).has_value());
  EXPECT_EQ(flows.size(), 6u);

  flows = SampleFlows();
  q.limit = 1000;  // more than there are
  ASSERT_TRUE(ApplyFlowQuery(q, flows).has_value());
  EXPECT_EQ(Ids(flows), (std::vector<uint64_t>{4, 1, 3, 6, 5, 2}));
}

TEST(FlowQueryTest, DefaultLimitIsAHundred) {
  std::vector<FlowRecord> flows;
  for (uint64_t id = 1; id <= 150; ++id) {
    flows.push_back(Record(id, "192.0.2.1", 1, "192.0.2.2", 2, kProtoUdp, id, 100, 1));
  }
  ASSERT_TRUE(ApplyFlowQuery(FlowQuery{}, flows).has_value());
  ASSERT_EQ(flows.size(), 100u);
  EXPECT_EQ(flows.front().flow_id, 150u);
  EXPECT_EQ(flows.back().flow_id, 51u);
}

TEST(FlowQueryTest, MinPacketsKeepsFlowsAtOrAboveIt) {
  std::vector<FlowRecord> flows = SampleFlows();
  FlowQuery q = NoLimit();
  q.min_packets = 7;
  ASSERT_TRUE(ApplyFlowQuery(q, flows).has_value());
  EXPECT_EQ(Ids(flows), (std::vector<uint64_t>{3, 1, 4}));
}

TEST(FlowQueryTest, ProtocolFilter) {
  std::vector<FlowRecord> flows = SampleFlows();
  FlowQuery q = NoLimit();
  q.protocol = kProtoUdp;
  ASSERT_TRUE(ApplyFlowQuery(q, flows).has_value());
  EXPECT_EQ(Ids(flows), (std::vector<uint64_t>{2, 6}));
}

TEST(FlowQueryTest, PortMatchesEitherSide) {
  std::vector<FlowRecord> flows = SampleFlows();
  FlowQuery q = NoLimit();
  q.port = 443;  // destination of 1 and 4, source of 6
  ASSERT_TRUE(ApplyFlowQuery(q, flows).has_value());
  EXPECT_EQ(Ids(flows), (std::vector<uint64_t>{1, 4, 6}));

  flows = SampleFlows();
  q.port = 53;  // source only
  ASSERT_TRUE(ApplyFlowQuery(q, flows).has_value());
  EXPECT_EQ(Ids(flows), (std::vector<uint64_t>{2}));

  flows = SampleFlows();
  q.port = 9;
  ASSERT_TRUE(ApplyFlowQuery(q, flows).has_value());
  EXPECT_TRUE(flows.empty());
}

TEST(FlowQueryTest, AddressMatchesEitherSide) {
  std::vector<FlowRecord> flows = SampleFlows();
  FlowQuery q = NoLimit();
  q.address = "192.0.2.1";  // source of 1 and 3, destination of 5 and 6
  ASSERT_TRUE(ApplyFlowQuery(q, flows).has_value());
  EXPECT_EQ(Ids(flows), (std::vector<uint64_t>{3, 1, 5, 6}));

  flows = SampleFlows();
  q.address = "192.0.2.2";  // destination only
  ASSERT_TRUE(ApplyFlowQuery(q, flows).has_value());
  EXPECT_EQ(Ids(flows), (std::vector<uint64_t>{2}));

  flows = SampleFlows();
  q.address = "2001:db8::2";
  ASSERT_TRUE(ApplyFlowQuery(q, flows).has_value());
  EXPECT_EQ(Ids(flows), (std::vector<uint64_t>{4}));

  flows = SampleFlows();
  q.address = "2001:DB8:0::1";  // another spelling of 2001:db8::1
  ASSERT_TRUE(ApplyFlowQuery(q, flows).has_value());
  EXPECT_EQ(Ids(flows), (std::vector<uint64_t>{4}));
}

TEST(FlowQueryTest, AnIpv4AddressDoesNotMatchAnIpv6FlowWithTheSameLeadingBytes) {
  // c000:201:: is the 16 bytes of 192.0.2.1 as the filter stores it: 4 bytes, then zeros.
  std::vector<FlowRecord> flows = {
      Record(1, "c000:201::", 1, "2001:db8::99", 2, kProtoUdp, 1, 1, 1),
  };
  FlowQuery q = NoLimit();
  q.address = "192.0.2.1";
  ASSERT_TRUE(ApplyFlowQuery(q, flows).has_value());
  EXPECT_TRUE(flows.empty());
}

TEST(FlowQueryTest, MalformedAddressIsAnInvalidArgument) {
  for (const char* bad :
       {"", "192.0.2", "192.0.2.256", "host.example", "2001:db8:::1", "192.0.2.1/24"}) {
    SCOPED_TRACE(bad);
    std::vector<FlowRecord> flows = SampleFlows();
    FlowQuery q;
    q.address = bad;
    const Status s = ApplyFlowQuery(q, flows);
    ASSERT_FALSE(s.has_value());
    EXPECT_EQ(s.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(s.error().message().find(bad), std::string::npos) << s.error().message();
    EXPECT_EQ(Ids(flows), (std::vector<uint64_t>{1, 2, 3, 4, 5, 6})) << "flows were changed";
  }
}

TEST(FlowQueryTest, FiltersCombine) {
  std::vector<FlowRecord> flows = SampleFlows();
  FlowQuery q;
  q.address = "192.0.2.1";
  q.protocol = kProtoTcp;
  q.min_packets = 20;
  ASSERT_TRUE(ApplyFlowQuery(q, flows).has_value());
  EXPECT_EQ(Ids(flows), (std::vector<uint64_t>{3}));

  flows = SampleFlows();
  q = FlowQuery{};
  q.port = 443;
  q.protocol = kProtoTcp;
  q.sort_by = FlowSortKey::kDuration;
  q.limit = 1;
  ASSERT_TRUE(ApplyFlowQuery(q, flows).has_value());
  EXPECT_EQ(Ids(flows), (std::vector<uint64_t>{4}));
}

TEST(FlowQueryTest, EmptyInputIsFine) {
  std::vector<FlowRecord> flows;
  FlowQuery q;
  q.address = "192.0.2.1";
  EXPECT_TRUE(ApplyFlowQuery(q, flows).has_value());
  EXPECT_TRUE(flows.empty());
}

}  // namespace
}  // namespace jarvis
