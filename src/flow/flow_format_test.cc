#include "flow/flow_format.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <array>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "decode/decoder.h"
#include "flow/flow_record.h"

namespace jarvis {
namespace {

constexpr TimestampNs kT0 = 1'700'000'000LL * kNanosPerSecond;  // 2023-11-14 22:13:20 UTC

std::vector<std::string> Split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    const size_t end = s.find(sep, start);
    out.emplace_back(s.substr(start, end == std::string_view::npos ? s.npos : end - start));
    if (end == std::string_view::npos) return out;
    start = end + 1;
  }
}

// A strict parser for flat JSON objects whose values are strings, numbers, booleans or null:
// what the formatter writes. Returns the members in order; nullopt for anything that is not
// valid JSON (RFC 8259) or repeats a key.
struct JsonMember {
  std::string key;
  std::string value;  // strings unescaped; other values as written
  bool is_string = false;
};

class FlatJsonParser {
 public:
  explicit FlatJsonParser(std::string_view s) : s_(s) {}

  std::optional<std::vector<JsonMember>> Parse() {
    std::vector<JsonMember> members;
    std::set<std::string> keys;
    Space();
    if (!Eat('{')) return std::nullopt;
    Space();
    if (Eat('}')) return Finish(members);
    for (;;) {
      JsonMember m;
      Space();
      if (!String(m.key)) return std::nullopt;
      if (!keys.insert(m.key).second) return std::nullopt;
      Space();
      if (!Eat(':')) return std::nullopt;
      Space();
      if (Peek() == '"') {
        m.is_string = true;
        if (!String(m.value)) return std::nullopt;
      } else if (!Literal(m.value)) {
        return std::nullopt;
      }
      members.push_back(std::move(m));
      Space();
      if (Eat('}')) return Finish(members);
      if (!Eat(',')) return std::nullopt;
    }
  }

 private:
  std::optional<std::vector<JsonMember>> Finish(std::vector<JsonMember>& members) {
    Space();
    if (i_ != s_.size()) return std::nullopt;
    return std::move(members);
  }
  char Peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  bool Eat(char c) {
    if (Peek() != c || i_ >= s_.size()) return false;
    ++i_;
    return true;
  }
  void Space() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r'))
      ++i_;
  }
  bool Digits() {
    const size_t start = i_;
    while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
    return i_ > start;
  }
  bool String(std::string& out) {
    if (!Eat('"')) return false;
    while (i_ < s_.size()) {
      const char c = s_[i_++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return false;
      if (c == '\\') {
        const char e = Peek();
        if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos) return false;
        ++i_;
        out += e;
        continue;
      }
      out += c;
    }
    return false;
  }
  bool Literal(std::string& out) {
    const size_t start = i_;
    for (const std::string_view word : {"null", "true", "false"}) {
      if (s_.substr(i_, word.size()) == word) {
        i_ += word.size();
        out = word;
        return true;
      }
    }
    Eat('-');
    if (Peek() == '0') {
      ++i_;
    } else if (!Digits()) {
      return false;
    }
    if (Eat('.') && !Digits()) return false;
    if (Peek() == 'e' || Peek() == 'E') {
      ++i_;
      if (!Eat('+')) Eat('-');
      if (!Digits()) return false;
    }
    out = s_.substr(start, i_ - start);
    return true;
  }

  std::string_view s_;
  size_t i_ = 0;
};

std::optional<std::vector<JsonMember>> ParseJson(std::string_view s) {
  return FlatJsonParser(s).Parse();
}

const JsonMember* Member(const std::vector<JsonMember>& members, std::string_view key) {
  for (const JsonMember& m : members) {
    if (m.key == key) return &m;
  }
  return nullptr;
}

void SetAddr(const char* text, uint8_t* out, uint8_t& version) {
  std::memset(out, 0, 16);
  if (inet_pton(AF_INET, text, out) == 1) {
    version = 4;
  } else {
    ASSERT_EQ(inet_pton(AF_INET6, text, out), 1) << text;
    version = 6;
  }
}

// A finished TCP flow with every field set to something recognisable.
FlowRecord TcpRecord() {
  FlowRecord r;
  r.flow_id = 42;
  SetAddr("192.0.2.1", r.src_addr, r.ip_version);
  SetAddr("198.51.100.7", r.dst_addr, r.ip_version);
  r.src_port = 40000;
  r.dst_port = 443;
  r.vlan = 100;
  r.inner_vlan = 7;
  r.protocol = kProtoTcp;
  r.tcp_flags_fwd = kTcpSyn | kTcpAck | kTcpFin;
  r.tcp_flags_rev = kTcpSyn | kTcpAck | kTcpRst;
  r.state = FlowState::kClosed;
  r.end_reason = EndReason::kEndOfFlow;
  r.packets_fwd = 10;
  r.packets_rev = 5;
  r.bytes_fwd = 9000;
  r.bytes_rev = 3000;
  r.first_ns = kT0 + 123'456'789;
  r.last_ns = r.first_ns + 1'500'000'999;
  return r;
}

FlowRecord Ipv6Record() {
  FlowRecord r;
  r.flow_id = 7;
  SetAddr("2001:db8::1", r.src_addr, r.ip_version);
  SetAddr("2001:db8:0:1::ff", r.dst_addr, r.ip_version);
  r.src_port = 5353;
  r.dst_port = 53;
  r.protocol = kProtoUdp;
  r.packets_fwd = 1;
  r.bytes_fwd = 80;
  r.first_ns = kT0;
  r.last_ns = kT0;
  return r;  // active, end reason kNone
}

FlowRecord IcmpRecord() {
  FlowRecord r;
  r.flow_id = 3;
  SetAddr("10.0.0.1", r.src_addr, r.ip_version);
  SetAddr("10.0.0.2", r.dst_addr, r.ip_version);
  r.protocol = kProtoIcmp;
  r.dst_port = 8 << 8;
  r.icmp_type_code_rev = 0;
  r.packets_fwd = r.packets_rev = 4;
  r.bytes_fwd = r.bytes_rev = 336;
  r.first_ns = kT0 + 999;  // under a microsecond past the second
  r.last_ns = kT0 + 3'000'001'000;
  r.end_reason = EndReason::kIdleTimeout;
  return r;
}

// Maximal counters and ids: 20-digit numbers must still be valid JSON and one CSV column.
FlowRecord HugeRecord() {
  FlowRecord r = TcpRecord();
  r.flow_id = UINT64_MAX;
  r.packets_fwd = UINT64_MAX / 2;
  r.packets_rev = UINT64_MAX / 2;
  r.bytes_fwd = UINT64_MAX / 2;
  r.bytes_rev = 1;
  r.src_port = 65535;
  r.dst_port = 65535;
  r.vlan = 4095;
  r.tcp_flags_fwd = 0xFF;
  r.end_reason = EndReason::kLackOfResources;
  return r;
}

std::vector<FlowRecord> AllSamples() {
  return {TcpRecord(), Ipv6Record(), IcmpRecord(), HugeRecord(), FlowRecord{}};
}

constexpr std::string_view kExpectedFields =
    "flow_id,src_ip,dst_ip,src_port,dst_port,protocol,packets,bytes,bytes_fwd,bytes_rev,"
    "first_seen,last_seen,state,duration_sec,tcp_flags,packets_fwd,packets_rev,vlan,end_reason";

std::string Json(const FlowRecord& r) {
  std::string out;
  AppendFlowJson(r, out);
  return out;
}

std::string Csv(const FlowRecord& r) {
  std::string out;
  AppendFlowCsv(r, out);
  return out;
}

TEST(FlowFormatTest, TheTestJsonParserIsStrict) {
  EXPECT_TRUE(ParseJson(R"({"a":1,"b":"x","c":null,"d":-0.5e+3})").has_value());
  EXPECT_TRUE(ParseJson(" { } ").has_value());
  for (const char* bad :
       {R"({"a":1,})", R"({"a":01})", R"({"a":1)", R"({"a":1.})", R"({"a":.5})", R"({a:1})",
        R"({"a":"x\q"})", R"({"a":1}x)", R"({"a":1,"a":2})", R"({"a":nul})", R"({"a" 1})", ""}) {
    EXPECT_FALSE(ParseJson(bad).has_value()) << bad;
  }
}

TEST(FlowFormatTest, FieldNamesAreTheContract) {
  EXPECT_EQ(FlowFieldNames(), kExpectedFields);
  EXPECT_EQ(Split(FlowFieldNames(), ',').size(), 19u);
}

TEST(FlowFormatTest, JsonIsValidWithExactlyTheFieldNamesInOrder) {
  const std::vector<std::string> names = Split(FlowFieldNames(), ',');
  for (const FlowRecord& r : AllSamples()) {
    const std::string json = Json(r);
    SCOPED_TRACE(json);
    EXPECT_EQ(json.find('\n'), std::string::npos);
    const auto members = ParseJson(json);
    ASSERT_TRUE(members.has_value()) << "not valid JSON";
    std::vector<std::string> keys;
    for (const JsonMember& m : *members) keys.push_back(m.key);
    EXPECT_EQ(keys, names);
  }
}

TEST(FlowFormatTest, JsonValues) {
  const auto members = ParseJson(Json(TcpRecord()));
  ASSERT_TRUE(members.has_value());
  const auto value = [&](std::string_view key) -> std::string {
    const JsonMember* m = Member(*members, key);
    return m == nullptr ? "<missing>" : (m->is_string ? "\"" + m->value + "\"" : m->value);
  };
  EXPECT_EQ(value("flow_id"), "42");
  EXPECT_EQ(value("src_ip"), "\"192.0.2.1\"");
  EXPECT_EQ(value("dst_ip"), "\"198.51.100.7\"");
  EXPECT_EQ(value("src_port"), "40000");
  EXPECT_EQ(value("dst_port"), "443");
  EXPECT_EQ(value("protocol"), "6");
  EXPECT_EQ(value("packets"), "15");
  EXPECT_EQ(value("bytes"), "12000");
  EXPECT_EQ(value("bytes_fwd"), "9000");
  EXPECT_EQ(value("bytes_rev"), "3000");
  EXPECT_EQ(value("first_seen"), "1700000000.123456");  // truncated to the microsecond
  EXPECT_EQ(value("last_seen"), "1700000001.623457");
  EXPECT_EQ(value("state"), "\"CLOSED\"");
  EXPECT_EQ(value("duration_sec"), "1.500000");
  EXPECT_EQ(value("tcp_flags"), "\"SYN|ACK|FIN|RST\"");  // both directions
  EXPECT_EQ(value("packets_fwd"), "10");
  EXPECT_EQ(value("packets_rev"), "5");
  EXPECT_EQ(value("vlan"), "100");
  EXPECT_EQ(value("end_reason"), "\"end_of_flow\"");
}

TEST(FlowFormatTest, JsonEndReasonIsNullForAnActiveFlowAndANameOtherwise) {
  FlowRecord r = TcpRecord();
  const std::pair<EndReason, const char*> cases[] = {
      {EndReason::kIdleTimeout, "idle_timeout"},
      {EndReason::kActiveTimeout, "active_timeout"},
      {EndReason::kEndOfFlow, "end_of_flow"},
      {EndReason::kForcedEnd, "forced_end"},
      {EndReason::kLackOfResources, "lack_of_resources"},
  };
  for (const auto& [reason, name] : cases) {
    r.end_reason = reason;
    const auto members = ParseJson(Json(r));
    ASSERT_TRUE(members.has_value());
    const JsonMember* m = Member(*members, "end_reason");
    ASSERT_NE(m, nullptr);
    EXPECT_TRUE(m->is_string);
    EXPECT_EQ(m->value, name);
  }
  r.end_reason = EndReason::kNone;
  const auto members = ParseJson(Json(r));
  ASSERT_TRUE(members.has_value());
  const JsonMember* m = Member(*members, "end_reason");
  ASSERT_NE(m, nullptr);
  EXPECT_FALSE(m->is_string);
  EXPECT_EQ(m->value, "null");
}

TEST(FlowFormatTest, Ipv6AndIcmpRecords) {
  const auto v6 = ParseJson(Json(Ipv6Record()));
  ASSERT_TRUE(v6.has_value());
  EXPECT_EQ(Member(*v6, "src_ip")->value, "2001:db8::1");
  EXPECT_EQ(Member(*v6, "dst_ip")->value, "2001:db8:0:1::ff");
  EXPECT_EQ(Member(*v6, "state")->value, "ACTIVE");
  EXPECT_EQ(Member(*v6, "tcp_flags")->value, "");
  EXPECT_EQ(Member(*v6, "duration_sec")->value, "0.000000");

  const auto icmp = ParseJson(Json(IcmpRecord()));
  ASSERT_TRUE(icmp.has_value());
  EXPECT_EQ(Member(*icmp, "protocol")->value, "1");
  EXPECT_EQ(Member(*icmp, "src_port")->value, "0");
  EXPECT_EQ(Member(*icmp, "dst_port")->value, "2048");
  EXPECT_EQ(Member(*icmp, "first_seen")->value, "1700000000.000000");
  EXPECT_EQ(Member(*icmp, "last_seen")->value, "1700000003.000001");
  EXPECT_EQ(Member(*icmp, "duration_sec")->value, "3.000000");
}

TEST(FlowFormatTest, Ipv4AddressesAreWrittenLikeInetNtop) {
  for (const char* addr :
       {"0.0.0.0", "255.255.255.255", "10.100.9.199", "1.20.100.0", "100.10.1.0", "99.199.200.9"}) {
    FlowRecord r = TcpRecord();
    uint8_t version = 0;
    SetAddr(addr, r.src_addr, version);
    SetAddr(addr, r.dst_addr, version);
    const auto members = ParseJson(Json(r));
    ASSERT_TRUE(members.has_value()) << addr;
    EXPECT_EQ(Member(*members, "src_ip")->value, addr);
    EXPECT_EQ(Member(*members, "dst_ip")->value, addr);
    EXPECT_EQ(Split(Csv(r), ',')[1], addr);
  }
}

TEST(FlowFormatTest, EveryIpv4OctetIsWrittenLikeInetNtop) {
  // Each of the 256 values in each of the four places (the text comes from a table).
  for (int place = 0; place < 4; ++place) {
    for (int v = 0; v < 256; ++v) {
      FlowRecord r = TcpRecord();
      const uint8_t others[4] = {7, 100, 0, 255};
      for (int i = 0; i < 4; ++i) r.src_addr[i] = i == place ? static_cast<uint8_t>(v) : others[i];
      char want[INET_ADDRSTRLEN];
      ASSERT_NE(inet_ntop(AF_INET, r.src_addr, want, sizeof want), nullptr);
      EXPECT_EQ(Split(Csv(r), ',')[1], want) << place << " " << v;
    }
  }
}

TEST(FlowFormatTest, Ipv6AddressesAreWrittenLikeInetNtop) {
  // Every pattern of zero and non-zero groups (256), each with several values in the non-zero
  // groups (small, four-digit, 0xffff in group 5 for the IPv4-mapped form, 1 in the last group
  // for ::1), then random addresses.
  std::vector<std::array<uint8_t, 16>> cases;
  const uint16_t fills[] = {0x1, 0xab, 0xffff, 0x1234, 0xf00};
  for (unsigned mask = 0; mask < 256; ++mask) {
    for (uint16_t fill : fills) {
      std::array<uint8_t, 16> a{};
      for (int g = 0; g < 8; ++g) {
        if ((mask >> g) & 1) {
          const uint16_t v = static_cast<uint16_t>(fill + g);
          a[2 * g] = static_cast<uint8_t>(v >> 8);
          a[2 * g + 1] = static_cast<uint8_t>(v);
        }
      }
      cases.push_back(a);
      a[10] = a[11] = 0xFF;  // group 5 = ffff
      cases.push_back(a);
    }
  }
  std::mt19937 rng(7);
  for (int i = 0; i < 5000; ++i) {
    std::array<uint8_t, 16> a{};
    for (auto& b : a) b = (rng() % 3 == 0) ? 0 : static_cast<uint8_t>(rng());
    cases.push_back(a);
  }
  for (const auto& a : cases) {
    char want[INET6_ADDRSTRLEN];
    ASSERT_NE(inet_ntop(AF_INET6, a.data(), want, sizeof want), nullptr);
    FlowRecord r = Ipv6Record();
    std::memcpy(r.src_addr, a.data(), 16);
    EXPECT_EQ(Split(Csv(r), ',')[1], want);
  }
}

TEST(FlowFormatTest, TimesAreSecondsWithSixDecimals) {
  FlowRecord r = TcpRecord();
  const std::pair<TimestampNs, const char*> cases[] = {
      {0, "0.000000"},
      {999, "0.000000"},
      {1000, "0.000001"},
      {kT0, "1700000000.000000"},
      {kT0 + 999'999'999, "1700000000.999999"},
      {kT0 + 10'000, "1700000000.000010"},
  };
  for (const auto& [ts, text] : cases) {
    r.first_ns = r.last_ns = ts;
    const auto members = ParseJson(Json(r));
    ASSERT_TRUE(members.has_value());
    EXPECT_EQ(Member(*members, "first_seen")->value, text);
    EXPECT_EQ(Member(*members, "last_seen")->value, text);
    EXPECT_EQ(Member(*members, "duration_sec")->value, "0.000000");
    EXPECT_EQ(Split(Csv(r), ',')[10], text);
  }
}

TEST(FlowFormatTest, TimesMatchTheirDecimalValue) {
  // Against the arithmetic spelled out: whole seconds, then the microseconds in six digits,
  // truncated toward zero; a negative duration (a record whose last packet came first, after
  // a clock step) keeps its sign unless it is under a microsecond.
  std::mt19937_64 rng(11);
  std::vector<int64_t> spans = {0, 1, 999, 1000, 1001, 999'999, 1'000'000, 9'999'999'999,
                                -1, -999, -1000, -1'234'567, -5'000'000'000};
  for (int i = 0; i < 2000; ++i) {
    spans.push_back(static_cast<int64_t>(rng() % 4'000'000'000'000'000'000ULL) - 2'000'000'000'000'000'000LL);
    spans.push_back(static_cast<int64_t>(rng() % 100'000'000'000ULL));
  }
  for (int64_t d : spans) {
    FlowRecord r = TcpRecord();
    r.first_ns = kT0;
    r.last_ns = kT0 + d;
    const int64_t us = d / 1000;  // toward zero
    const uint64_t mag = us < 0 ? 0 - static_cast<uint64_t>(us) : static_cast<uint64_t>(us);
    char want[48];
    std::snprintf(want, sizeof want, "%s%llu.%06llu", us < 0 ? "-" : "",
                  static_cast<unsigned long long>(mag / 1'000'000),
                  static_cast<unsigned long long>(mag % 1'000'000));
    EXPECT_EQ(Split(Csv(r), ',')[13], want) << d;
  }
}

TEST(FlowFormatTest, JsonAndCsvAppend) {
  std::string out = "head;";
  AppendFlowJson(IcmpRecord(), out);
  EXPECT_EQ(out.rfind("head;{", 0), 0u);
  EXPECT_EQ(out.back(), '}');
  out = "head;";
  AppendFlowCsv(IcmpRecord(), out);
  EXPECT_EQ(out.rfind("head;3,", 0), 0u);
  EXPECT_EQ(out.find('\n'), std::string::npos);
}

TEST(FlowFormatTest, CsvRowsHaveTheHeadersColumns) {
  const std::vector<std::string> header = Split(FlowFieldNames(), ',');
  for (const FlowRecord& r : AllSamples()) {
    const std::string row = Csv(r);
    SCOPED_TRACE(row);
    EXPECT_EQ(row.find('\n'), std::string::npos);
    EXPECT_EQ(Split(row, ',').size(), header.size());
  }
}

TEST(FlowFormatTest, CsvColumnsCarryTheJsonValues) {
  const std::vector<std::string> header = Split(FlowFieldNames(), ',');
  for (const FlowRecord& r : AllSamples()) {
    const std::vector<std::string> cols = Split(Csv(r), ',');
    const auto members = ParseJson(Json(r));
    ASSERT_TRUE(members.has_value());
    ASSERT_EQ(cols.size(), members->size());
    for (size_t i = 0; i < cols.size(); ++i) {
      const JsonMember& m = (*members)[i];
      SCOPED_TRACE(header[i]);
      // null in JSON is an empty CSV column.
      EXPECT_EQ(cols[i], m.value == "null" && !m.is_string ? "" : m.value);
    }
  }
  const std::vector<std::string> cols = Split(Csv(TcpRecord()), ',');
  EXPECT_EQ(cols[0], "42");
  EXPECT_EQ(cols[14], "SYN|ACK|FIN|RST");
  EXPECT_EQ(cols[18], "end_of_flow");
  EXPECT_EQ(Split(Csv(HugeRecord()), ',')[0], "18446744073709551615");
  EXPECT_EQ(Split(Csv(HugeRecord()), ',')[6], "18446744073709551614");
}

// The longest text a record can give: every field at its widest. The formatter writes a record
// into room reserved up front (1024 bytes), so this bounds it with room to spare, and many
// records appended one after another stay intact.
TEST(FlowFormatTest, TheWidestRecordFitsAndAppendsStayIntact) {
  FlowRecord r = HugeRecord();
  r.ip_version = 6;
  std::memset(r.src_addr, 0xFF, 16);
  std::memset(r.dst_addr, 0xFF, 16);
  r.src_addr[15] = 0xFE;
  r.protocol = 255;
  r.packets_fwd = r.packets_rev = r.bytes_fwd = r.bytes_rev = UINT64_MAX / 2;
  r.first_ns = INT64_MIN / 2;
  r.last_ns = INT64_MAX / 2;
  r.vlan = 65535;
  r.tcp_flags_fwd = r.tcp_flags_rev = 0xFF;
  r.state = FlowState::kClosing;
  r.end_reason = EndReason::kLackOfResources;
  const std::string json = Json(r), csv = Csv(r);
  EXPECT_LT(json.size(), 700u) << json;
  EXPECT_LT(csv.size(), 500u) << csv;
  ASSERT_TRUE(ParseJson(json).has_value()) << json;
  EXPECT_EQ(Split(csv, ',')[1], "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe");
  EXPECT_EQ(Split(csv, ',')[10], "-4611686018.427387");

  std::string out_json, out_csv;
  const std::vector<FlowRecord> samples = AllSamples();
  std::string want_json, want_csv;
  for (int i = 0; i < 3000; ++i) {
    const FlowRecord& s = i % 7 == 0 ? r : samples[i % samples.size()];
    AppendFlowJson(s, out_json);
    out_json += '\n';
    AppendFlowCsv(s, out_csv);
    out_csv += '\n';
    want_json += Json(s) + '\n';
    want_csv += Csv(s) + '\n';
  }
  EXPECT_EQ(out_json, want_json);
  EXPECT_EQ(out_csv, want_csv);
}

TEST(FlowFormatTest, TableRow) {
  const std::string header = FlowTableHeader();
  for (const char* column : {"first_seen (UTC)", "proto", "source", "destination", "packets",
                             "bytes", "duration", "tcp_flags", "end"}) {
    EXPECT_NE(header.find(column), std::string::npos) << column;
  }
  std::string row;
  AppendFlowTableRow(TcpRecord(), row);
  EXPECT_EQ(row.rfind("2023-11-14 22:13:20.123456 ", 0), 0u) << row;
  EXPECT_NE(row.find("192.0.2.1:40000"), std::string::npos) << row;
  EXPECT_NE(row.find("198.51.100.7:443"), std::string::npos) << row;
  EXPECT_NE(row.find(" 15 "), std::string::npos) << row;
  EXPECT_NE(row.find(" 12000 "), std::string::npos) << row;
  EXPECT_NE(row.find(" 1.500 "), std::string::npos) << row;
  EXPECT_NE(row.find("SYN|ACK|FIN|RST"), std::string::npos) << row;
  EXPECT_EQ(row.substr(row.size() - 11), "end_of_flow") << row;
  EXPECT_EQ(row.find('\n'), std::string::npos);

  row.clear();
  AppendFlowTableRow(Ipv6Record(), row);  // active: the state stands in for the end reason
  EXPECT_NE(row.find("[2001:db8::1]:5353"), std::string::npos) << row;
  EXPECT_NE(row.find("[2001:db8:0:1::ff]:53"), std::string::npos) << row;
  EXPECT_EQ(row.substr(row.size() - 6), "ACTIVE") << row;
  EXPECT_EQ(row.rfind("2023-11-14 22:13:20.000000 ", 0), 0u) << row;
}

TEST(FlowFormatTest, EpochSeconds) {
  EXPECT_DOUBLE_EQ(EpochSeconds(1'500'000'000), 1.5);
  EXPECT_DOUBLE_EQ(EpochSeconds(0), 0.0);
  EXPECT_NEAR(EpochSeconds(kT0 + 123'456'789), 1700000000.123456, 1e-6);
  EXPECT_DOUBLE_EQ(EpochSeconds(999), 0.0);  // below the microsecond
}

TEST(FlowRecordTest, TcpFlagsStringNamesFlagsInAFixedOrder) {
  EXPECT_EQ(TcpFlagsString(0), "");
  EXPECT_EQ(TcpFlagsString(kTcpFin | kTcpSyn), "SYN|FIN");
  EXPECT_EQ(TcpFlagsString(kTcpAck), "ACK");
  EXPECT_EQ(TcpFlagsString(kTcpRst | kTcpAck), "ACK|RST");
  EXPECT_EQ(TcpFlagsString(0xFF), "SYN|ACK|FIN|RST|PSH|URG|ECE|CWR");
  EXPECT_EQ(TcpFlagsString(kTcpCwr | kTcpEce | kTcpUrg | kTcpPsh), "PSH|URG|ECE|CWR");
}

TEST(FlowRecordTest, Names) {
  EXPECT_EQ(FlowStateName(FlowState::kActive), "ACTIVE");
  EXPECT_EQ(FlowStateName(FlowState::kClosing), "CLOSING");
  EXPECT_EQ(FlowStateName(FlowState::kClosed), "CLOSED");
  EXPECT_EQ(EndReasonName(EndReason::kNone), "");
  EXPECT_EQ(EndReasonName(EndReason::kIdleTimeout), "idle_timeout");
  EXPECT_EQ(EndReasonName(EndReason::kActiveTimeout), "active_timeout");
  EXPECT_EQ(EndReasonName(EndReason::kEndOfFlow), "end_of_flow");
  EXPECT_EQ(EndReasonName(EndReason::kForcedEnd), "forced_end");
  EXPECT_EQ(EndReasonName(EndReason::kLackOfResources), "lack_of_resources");
  // IPFIX flowEndReason values.
  EXPECT_EQ(static_cast<int>(EndReason::kIdleTimeout), 1);
  EXPECT_EQ(static_cast<int>(EndReason::kActiveTimeout), 2);
  EXPECT_EQ(static_cast<int>(EndReason::kEndOfFlow), 3);
  EXPECT_EQ(static_cast<int>(EndReason::kForcedEnd), 4);
  EXPECT_EQ(static_cast<int>(EndReason::kLackOfResources), 5);
}

TEST(FlowRecordTest, TotalsAndAddresses) {
  const FlowRecord r = TcpRecord();
  EXPECT_EQ(r.packets(), 15u);
  EXPECT_EQ(r.bytes(), 12000u);
  EXPECT_DOUBLE_EQ(r.duration_sec(), 1.500000999);
  EXPECT_EQ(AddressString(r.src_addr, 4), "192.0.2.1");
  const FlowRecord v6 = Ipv6Record();
  EXPECT_EQ(AddressString(v6.dst_addr, 6), "2001:db8:0:1::ff");
}

}  // namespace
}  // namespace jarvis
