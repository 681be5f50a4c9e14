#include "export/flow_encoder.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

namespace jarvis {
namespace {

// The expected messages below were computed independently of the encoder (Python's struct.pack
// following RFC 3954, RFC 7011 and Cisco's v5 layout) and pasted here as hex.

std::vector<uint8_t> Hex(std::string_view hex) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<uint8_t>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

std::string ToHex(const std::vector<uint8_t>& v) {
  static const char* kDigits = "0123456789abcdef";
  std::string s;
  for (uint8_t b : v) {
    s += kDigits[b >> 4];
    s += kDigits[b & 15];
  }
  return s;
}

std::vector<uint8_t> Message(const MessageBuffer& b, size_t i) {
  const auto& m = b.messages.at(i);
  return {b.data(m), b.data(m) + m.size};
}

uint16_t Get16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t Get32(const uint8_t* p) { return uint32_t{Get16(p)} << 16 | Get16(p + 2); }

constexpr TimestampNs kFirst = 1700000000123456789;
constexpr TimestampNs kLast = 1700000001987654321;

// 192.0.2.1:40000 -> 198.51.100.2:80 TCP, 3 packets / 180 octets one way, 2 / 1500 back.
FlowRecord TcpFlow() {
  FlowRecord r;
  r.flow_id = 1;
  r.ip_version = 4;
  const uint8_t src[4] = {192, 0, 2, 1}, dst[4] = {198, 51, 100, 2};
  std::memcpy(r.src_addr, src, 4);
  std::memcpy(r.dst_addr, dst, 4);
  r.src_port = 40000;
  r.dst_port = 80;
  r.protocol = 6;
  r.tcp_flags_fwd = 0x13;
  r.tcp_flags_rev = 0x1a;
  r.packets_fwd = 3;
  r.bytes_fwd = 180;
  r.packets_rev = 2;
  r.bytes_rev = 1500;
  r.first_ns = kFirst;
  r.last_ns = kLast;
  r.end_reason = EndReason::kEndOfFlow;
  return r;
}

FlowRecord Ipv6Flow(uint16_t sport) {
  FlowRecord r = TcpFlow();
  r.ip_version = 6;
  std::memset(r.src_addr, 0, 16);
  std::memset(r.dst_addr, 0, 16);
  r.src_addr[0] = 0x20;
  r.src_addr[1] = 0x01;
  r.src_addr[15] = 1;
  r.dst_addr[0] = 0x20;
  r.dst_addr[1] = 0x01;
  r.dst_addr[15] = 2;
  r.src_port = sport;
  return r;
}

std::unique_ptr<FlowEncoder> Make(ExportVersion v, uint32_t max_bytes = 1372, bool biflow = false,
                                  uint32_t refresh = 100) {
  EncoderOptions o;
  o.version = v;
  o.biflow = biflow;
  o.max_message_bytes = max_bytes;
  o.observation_domain = 7;
  o.template_refresh_packets = refresh;
  o.exporting_process_id = 4242;
  auto e = FlowEncoder::Create(o);
  EXPECT_TRUE(e.has_value()) << e.error().message();
  return std::move(*e);
}

TEST(NetflowV5Encoder, HeaderAndTwoDirectionsByteExact) {
  auto enc = Make(ExportVersion::kNetflow5);
  MessageBuffer out;
  const FlowRecord r = TcpFlow();
  enc->Add({&r, 1}, out);
  EXPECT_TRUE(out.messages.empty());  // open until flushed
  enc->Flush(out);
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_EQ(ToHex(Message(out, 0)),
            ToHex(Hex("0005000205265c006553f1013ad46cc00000000000070000c0000201c633640200000000"
                      "0000000000000003000000b4052654b805265c009c400050001306000000000000000000"
                      "c6336402c0000201000000000000000000000002000005dc052654b805265c0000509c40"
                      "001a06000000000000000000")));
  EXPECT_EQ(out.messages[0].records, 2u);
  EXPECT_EQ(enc->boot_ms(), kLast / 1'000'000 - FlowEncoder::kUptimeLead);
}

TEST(NetflowV5Encoder, ThirtyRecordsAtMostAndSequenceCountsFlows) {
  auto enc = Make(ExportVersion::kNetflow5, 1472);  // room for 30 records
  MessageBuffer out;
  std::vector<FlowRecord> rs(40, TcpFlow());  // 80 records
  enc->Add(rs, out);
  enc->Flush(out);
  ASSERT_EQ(out.messages.size(), 3u);
  uint32_t expect_seq = 0;
  const uint32_t counts[] = {30, 30, 20};
  for (size_t i = 0; i < 3; ++i) {
    const auto m = Message(out, i);
    EXPECT_EQ(m.size(), 24 + 48 * counts[i]);
    EXPECT_EQ(Get16(&m[2]), counts[i]);
    EXPECT_EQ(Get32(&m[16]), expect_seq);
    expect_seq += counts[i];
  }
}

TEST(NetflowV5Encoder, MessagesStayWithinTheMtu) {
  auto enc = Make(ExportVersion::kNetflow5, 1372);  // mtu 1400 less 28
  MessageBuffer out;
  std::vector<FlowRecord> rs(20, TcpFlow());
  enc->Add(rs, out);
  enc->Flush(out);
  ASSERT_EQ(out.messages.size(), 2u);
  EXPECT_EQ(out.messages[0].size, 24u + 28 * 48);  // 28 records fit in 1372 bytes
  EXPECT_EQ(out.messages[1].records, 12u);
}

TEST(NetflowV5Encoder, SkipsIpv6AndCountsIt) {
  auto enc = Make(ExportVersion::kNetflow5);
  MessageBuffer out;
  const FlowRecord rs[] = {Ipv6Flow(1), TcpFlow(), Ipv6Flow(2)};
  enc->Add(rs, out);
  enc->Flush(out);
  EXPECT_EQ(enc->counters().skipped_ipv6, 2u);
  EXPECT_EQ(enc->counters().flows_encoded, 1u);
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_EQ(out.messages[0].records, 2u);
}

TEST(NetflowV5Encoder, SplitsCountersBeforeTheyWrap) {
  auto enc = Make(ExportVersion::kNetflow5);
  MessageBuffer out;
  FlowRecord r = TcpFlow();
  r.packets_fwd = 5'000'000'000ull;    // needs 2 pieces
  r.bytes_fwd = 9'000'000'000'001ull;  // needs 2096 pieces: this decides
  r.packets_rev = 0;
  r.bytes_rev = 0;
  enc->Add({&r, 1}, out);
  enc->Flush(out);
  uint64_t packets = 0, bytes = 0, records = 0;
  for (size_t i = 0; i < out.messages.size(); ++i) {
    const auto m = Message(out, i);
    const uint16_t n = Get16(&m[2]);
    for (uint16_t k = 0; k < n; ++k) {
      const uint8_t* rec = &m[24 + 48 * k];
      const uint32_t p = Get32(rec + 16), b = Get32(rec + 20);
      EXPECT_GT(p, 0u);
      packets += p;
      bytes += b;
      ++records;
    }
  }
  const uint64_t pieces = (r.bytes_fwd + 0xFFFFFFFEull) / 0xFFFFFFFFull;
  EXPECT_EQ(records, pieces);
  EXPECT_EQ(packets, r.packets_fwd);
  EXPECT_EQ(bytes, r.bytes_fwd);
  EXPECT_EQ(enc->counters().split_records, pieces - 1);
  // The sequence counts every record sent.
  EXPECT_EQ(enc->next_sequence(), pieces);
}

TEST(NetflowV5Encoder, ClampsTimesBeforeBoot) {
  auto enc = Make(ExportVersion::kNetflow5);
  MessageBuffer out;
  FlowRecord late = TcpFlow();
  FlowRecord early = TcpFlow();
  early.first_ns = kLast - 2 * FlowEncoder::kUptimeLead * 1'000'000;  // two days before
  early.last_ns = kLast - 100;
  const FlowRecord rs[] = {late, early};
  enc->Add(rs, out);
  enc->Flush(out);
  EXPECT_EQ(enc->counters().times_clamped, 2u);  // both directions' First
  const auto m = Message(out, 0);
  EXPECT_EQ(Get32(&m[24 + 2 * 48 + 24]), 0u);
}

TEST(NetflowV9Encoder, TemplatesThenDataByteExact) {
  auto enc = Make(ExportVersion::kNetflow9);
  MessageBuffer out;
  const FlowRecord r = TcpFlow();
  enc->Add({&r, 1}, out);
  enc->Flush(out);
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_EQ(ToHex(Message(out, 0)),
            ToHex(Hex("00090006052658256553f1010000000000000007000000b40100000b00080004000c0004"
                      "00070002000b00020004000100060001003a000200010008000200080016000400150004"
                      "0101000900080004000c00040020000200040001003a0002000100080002000800160004"
                      "001500040102000b001b0010001c001000070002000b00020004000100060001003a0002"
                      "0001000800020008001600040015000401030009001b0010001c00100020000200040001"
                      "003a00020001000800020008001600040015000401000054c0000201c63364029c400050"
                      "0613000000000000000000b40000000000000003052654b805265c00c6336402c0000201"
                      "00509c40061a000000000000000005dc0000000000000002052654b805265c00")));
}

TEST(NetflowV9Encoder, PadsFlowSetsAndCountsPackets) {
  auto enc = Make(ExportVersion::kNetflow9, 1372, false, 0);
  MessageBuffer out;
  FlowRecord r = TcpFlow();
  r.protocol = 1;  // ICMP: no ports, no TCP flags
  r.dst_port = 8 << 8;
  r.packets_rev = 0;  // one 37-byte record: the set needs 3 bytes of padding
  for (int i = 0; i < 3; ++i) {
    enc->Add({&r, 1}, out);
    enc->Flush(out);
  }
  ASSERT_EQ(out.messages.size(), 3u);
  for (uint32_t i = 0; i < 3; ++i) {
    const auto m = Message(out, i);
    EXPECT_EQ(m.size() % 4, 0u);
    EXPECT_EQ(Get32(&m[12]), i);  // sequence counts export packets
    // Header count: every record, the 4 templates of the first packet included.
    EXPECT_EQ(Get16(&m[2]), i == 0 ? 5u : 1u);
  }
  const auto m = Message(out, 1);
  ASSERT_EQ(m.size(), 20u + 4 + 37 + 3);
  EXPECT_EQ(Get16(&m[20]), 257u);
  EXPECT_EQ(Get16(&m[22]), 44u);  // length includes the padding
  EXPECT_EQ(m[61] | m[62] | m[63], 0);
}

TEST(NetflowV9Encoder, TemplatesEveryNPacketsAndOnRequest) {
  auto enc = Make(ExportVersion::kNetflow9, 1372, false, 3);
  MessageBuffer out;
  const FlowRecord r = TcpFlow();
  for (int i = 0; i < 7; ++i) {
    enc->Add({&r, 1}, out);
    enc->Flush(out);
  }
  ASSERT_EQ(out.messages.size(), 7u);
  std::vector<int> with_templates;
  for (size_t i = 0; i < out.messages.size(); ++i) {
    const auto m = Message(out, i);
    if (Get16(&m[20]) == 0) with_templates.push_back(static_cast<int>(i));
  }
  EXPECT_EQ(with_templates, (std::vector<int>{0, 3, 6}));
  // A request with nothing to send gives a message with the templates alone.
  enc->RequestTemplates();
  enc->Flush(out);
  ASSERT_EQ(out.messages.size(), 8u);
  const auto t = Message(out, 7);
  EXPECT_EQ(Get16(&t[2]), 4u);
  EXPECT_EQ(Get16(&t[20]), 0u);
  EXPECT_EQ(Get32(&t[12]), 7u);
}

TEST(NetflowV9Encoder, Ipv6RecordsUseTheIpv6Template) {
  auto enc = Make(ExportVersion::kNetflow9);
  MessageBuffer out;
  const FlowRecord r = Ipv6Flow(5000);
  enc->Add({&r, 1}, out);
  enc->Flush(out);
  const auto m = Message(out, 0);
  const size_t data_at = 20 + Get16(&m[22]);
  EXPECT_EQ(Get16(&m[data_at]), 258u);
  EXPECT_EQ(Get16(&m[data_at + 2]), 4u + 2 * 64);  // two 64-byte records, no padding
  EXPECT_EQ(m[data_at + 4 + 15], 1);               // source address, last byte
}

TEST(IpfixEncoder, OptionsInDomainZeroThenTemplatesAndDataByteExact) {
  auto enc = Make(ExportVersion::kIpfix);
  MessageBuffer out;
  const FlowRecord r = TcpFlow();
  enc->Add({&r, 1}, out);
  enc->Flush(out);
  ASSERT_EQ(out.messages.size(), 2u);
  EXPECT_EQ(ToHex(Message(out, 0)),
            ToHex(Hex("000a00626553f1010000000000000000000300220108000600010090000400290008002a"
                      "00080028000800a6000800a0000801080030000010920000000000000000000000000000"
                      "0000000000000000000000000000000000000000018bcfe56fc3")));
  EXPECT_EQ(out.messages[0].records, 0u);
  EXPECT_EQ(ToHex(Message(out, 1)),
            ToHex(Hex("000a013c6553f1010000000000000007000200c40100000c00080004000c000400070002"
                      "000b00020004000100060002003a00020001000800020008009800080099000800880001"
                      "0101000a00080004000c00040020000200040001003a0002000100080002000800980008"
                      "00990008008800010102000c001b0010001c001000070002000b00020004000100060002"
                      "003a000200010008000200080098000800990008008800010103000a001b0010001c0010"
                      "008b000200040001003a0002000100080002000800980008009900080088000101000068"
                      "c0000201c63364029c400050060013000000000000000000b40000000000000003000001"
                      "8bcfe5687b0000018bcfe56fc303c6336402c000020100509c4006001a00000000000000"
                      "0005dc00000000000000020000018bcfe5687b0000018bcfe56fc303")));
  EXPECT_EQ(out.messages[1].records, 2u);
}

TEST(IpfixEncoder, SequenceCountsDataRecordsBeforeTheMessage) {
  auto enc = Make(ExportVersion::kIpfix, 1372, false, 4);
  MessageBuffer out;
  std::vector<FlowRecord> rs;
  for (int i = 0; i < 500; ++i) {
    rs.push_back(i % 3 == 0 ? Ipv6Flow(static_cast<uint16_t>(i)) : TcpFlow());
  }
  enc->Add(rs, out);
  enc->Flush(out);
  uint32_t expect = 0, total = 0, options_seq = 0;
  for (size_t i = 0; i < out.messages.size(); ++i) {
    const auto m = Message(out, i);
    EXPECT_EQ(Get16(&m[0]), 10u);
    EXPECT_EQ(Get16(&m[2]), m.size());
    EXPECT_LE(m.size(), 1372u);
    if (Get32(&m[12]) == 0) {  // the exporter's options: domain 0, its own counter
      EXPECT_EQ(Get32(&m[8]), options_seq++);
      continue;
    }
    EXPECT_EQ(Get32(&m[12]), 7u);
    EXPECT_EQ(Get32(&m[8]), expect);
    // Count the data records: walk the sets, template ids > 255.
    uint32_t n = 0;
    for (size_t at = 16; at < m.size();) {
      const uint16_t id = Get16(&m[at]), len = Get16(&m[at + 2]);
      if (id >= 256) {
        EXPECT_TRUE(id >= 256 && id <= 259);
        n += (len - 4) / (id == 256 ? 50u : 74u);
      }
      at += len;
    }
    EXPECT_EQ(n, out.messages[i].records);
    expect += n;
    total += n;
  }
  EXPECT_EQ(total, 1000u);
  EXPECT_EQ(enc->next_sequence(), 1000u);
  EXPECT_GE(options_seq, 2u);  // options go out with every template refresh
}

TEST(IpfixEncoder, BiflowRecordCarriesReverseElements) {
  auto enc = Make(ExportVersion::kIpfix, 1372, true);
  MessageBuffer out;
  const FlowRecord r = TcpFlow();
  enc->Add({&r, 1}, out);
  enc->Flush(out);
  ASSERT_EQ(out.messages.size(), 2u);
  const auto m = Message(out, 1);
  // Template 260 (IPv4, ports, biflow): 12 plain fields, 3 reverse ones with PEN 29305, then
  // biflowDirection.
  ASSERT_EQ(Get16(&m[16]), 2u);
  EXPECT_EQ(Get16(&m[20]), 260u);
  EXPECT_EQ(Get16(&m[22]), 16u);
  const uint8_t* rev = &m[24 + 12 * 4];
  EXPECT_EQ(Get16(rev), 0x8001u);  // reverseOctetDeltaCount
  EXPECT_EQ(Get16(rev + 2), 8u);
  EXPECT_EQ(Get32(rev + 4), 29305u);
  const size_t data_at = 16 + Get16(&m[18]);
  EXPECT_EQ(Get16(&m[data_at]), 260u);
  EXPECT_EQ(Get16(&m[data_at + 2]), 4u + 69);
  EXPECT_EQ(std::vector<uint8_t>(m.begin() + data_at + 4, m.end()),
            Hex("c0000201c63364029c400050060013000000000000000000b40000000000000003000001"
                "8bcfe5687b0000018bcfe56fc30300000000000005dc0000000000000002001a01"));
  EXPECT_EQ(out.messages[1].records, 1u);
}

TEST(IpfixEncoder, IcmpUsesTypeCodeAndNoPorts) {
  auto enc = Make(ExportVersion::kIpfix);
  MessageBuffer out;
  FlowRecord r = TcpFlow();
  r.protocol = 1;
  r.src_port = 0;
  r.dst_port = 8 << 8;       // echo request
  r.icmp_type_code_rev = 0;  // echo reply
  r.tcp_flags_fwd = r.tcp_flags_rev = 0;
  enc->Add({&r, 1}, out);
  enc->Flush(out);
  const auto m = Message(out, 1);
  const size_t data_at = 16 + Get16(&m[18]);
  EXPECT_EQ(Get16(&m[data_at]), 257u);
  EXPECT_EQ(Get16(&m[data_at + 2]), 4u + 2 * 46);
  EXPECT_EQ(Get16(&m[data_at + 4 + 8]), 0x0800u);       // request: type 8
  EXPECT_EQ(Get16(&m[data_at + 4 + 46 + 8]), 0x0000u);  // reply: type 0
}

TEST(IpfixEncoder, MessagesStayWithinTheMtuAndUseCompleteRecords) {
  for (uint32_t max : {548u, 1000u, 1372u, 8972u}) {
    auto enc = Make(ExportVersion::kIpfix, max);
    MessageBuffer out;
    std::vector<FlowRecord> rs(300, TcpFlow());
    enc->Add(rs, out);
    enc->Flush(out);
    uint64_t records = 0;
    for (const auto& m : out.messages) {
      EXPECT_LE(m.size, max);
      records += m.records;
    }
    EXPECT_EQ(records, 600u);
  }
}

TEST(FlowEncoder, RejectsBadOptions) {
  EncoderOptions o;
  o.version = ExportVersion::kNetflow9;
  o.biflow = true;
  EXPECT_FALSE(FlowEncoder::Create(o).has_value());
  o.biflow = false;
  o.max_message_bytes = 200;  // the v9 templates alone need more
  auto e = FlowEncoder::Create(o);
  ASSERT_FALSE(e.has_value());
  EXPECT_EQ(e.error().field(), "mtu");
  o.version = static_cast<ExportVersion>(7);
  o.max_message_bytes = 1372;
  e = FlowEncoder::Create(o);
  ASSERT_FALSE(e.has_value());
  EXPECT_EQ(e.error().field(), "netflow_version");
  o.version = ExportVersion::kIpfix;
  o.observation_domain = 0;
  EXPECT_FALSE(FlowEncoder::Create(o).has_value());
}

TEST(FlowEncoder, NoTemplateOnlyMessageBeforeTheClockIsKnown) {
  auto enc = Make(ExportVersion::kIpfix);
  MessageBuffer out;
  enc->Flush(out);
  EXPECT_TRUE(out.messages.empty());
  enc->AdvanceClock(kLast);
  enc->Flush(out);
  ASSERT_EQ(out.messages.size(), 2u);  // options (domain 0) and the templates
  EXPECT_EQ(out.messages[1].records, 0u);
}

}  // namespace
}  // namespace jarvis
