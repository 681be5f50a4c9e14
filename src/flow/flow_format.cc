#include "flow/flow_format.h"

#include <fmt/compile.h>
#include <fmt/format.h>

#include <array>
#include <cstring>
#include <ctime>
#include <iterator>

namespace jarvis {
namespace {

// Formatting runs once per finished flow, millions of times on a large file. A record is
// written through a plain pointer into room reserved once (kMaxRecordText), not through
// std::string appends (each checks capacity) or printf-style parsing; addresses and times are
// written directly rather than through inet_ntop's sprintf and float formatting (the same
// text: the tests compare with inet_ntop).

// The longest record either format can produce: two 45-character IPv6 addresses (embedded
// IPv4 form), ten 20-digit counters, three 21-character times, the longest flag set, state and
// end reason names, and the JSON field names. Checked against the worst case in the tests.
constexpr size_t kMaxRecordText = 1024;

char* PutText(char* p, std::string_view s) {
  std::memcpy(p, s.data(), s.size());
  return p + s.size();
}

template <size_t N>
char* PutLit(char* p, const char (&s)[N]) {
  std::memcpy(p, s, N - 1);
  return p + N - 1;
}

// Digits straight into the record (fmt counts them, then writes from the last): no
// intermediate buffer and no variable-length memcpy call per field.
char* PutUint(char* p, uint64_t v) { return fmt::format_to(p, FMT_COMPILE("{}"), v); }

// "0." to "255.": each octet's text with the dot after it, in the first bytes of four, and its
// length. An address is four fixed-size copies; the last dot is dropped.
struct OctetText {
  char text[4];
  uint8_t len;
};
constexpr auto kOctets = [] {
  std::array<OctetText, 256> t{};
  for (unsigned v = 0; v < 256; ++v) {
    OctetText& o = t[v];
    unsigned n = 0;
    if (v >= 100) o.text[n++] = static_cast<char>('0' + v / 100);
    if (v >= 10) o.text[n++] = static_cast<char>('0' + v / 10 % 10);
    o.text[n++] = static_cast<char>('0' + v % 10);
    o.text[n++] = '.';
    o.len = static_cast<uint8_t>(n);
  }
  return t;
}();

char* PutIpv4(char* p, const uint8_t* a) {
  for (int i = 0; i < 4; ++i) {
    const OctetText& o = kOctets[a[i]];
    std::memcpy(p, o.text, 4);  // the record has room: see kMaxRecordText
    p += o.len;
  }
  return p - 1;
}

char* PutHex16(char* p, unsigned v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  int shift = 12;
  while (shift > 0 && (v >> shift) == 0) shift -= 4;
  for (; shift >= 0; shift -= 4) *p++ = kDigits[(v >> shift) & 0xF];
  return p;
}

// The text inet_ntop(AF_INET6) gives, character for character (RFC 5952: lowercase hex without
// leading zeros, the first longest run of two or more zero groups as "::"; an IPv4-mapped
// ::ffff:a.b.c.d or IPv4-compatible ::a.b.c.d address with a dotted quad), without its sprintf.
char* PutIpv6(char* p, const uint8_t* a) {
  unsigned w[8];
  for (int i = 0; i < 8; ++i) w[i] = static_cast<unsigned>(a[2 * i]) << 8 | a[2 * i + 1];
  int run = -1, run_len = 0;
  for (int i = 0; i < 8;) {
    if (w[i] != 0) {
      ++i;
      continue;
    }
    int j = i;
    while (j < 8 && w[j] == 0) ++j;
    if (j - i > run_len) {
      run = i;
      run_len = j - i;
    }
    i = j;
  }
  if (run_len < 2) run = -1;
  for (int i = 0; i < 8; ++i) {
    if (run >= 0 && i >= run && i < run + run_len) {
      if (i == run) *p++ = ':';
      continue;
    }
    if (i != 0) *p++ = ':';
    if (i == 6 && run == 0 && (run_len == 6 || (run_len == 5 && w[5] == 0xFFFF))) {
      return PutIpv4(p, a + 12);
    }
    p = PutHex16(p, w[i]);
  }
  if (run >= 0 && run + run_len == 8) *p++ = ':';
  return p;
}

char* PutAddress(char* p, const uint8_t* a, uint8_t ip_version) {
  return ip_version == 4 ? PutIpv4(p, a) : PutIpv6(p, a);
}

// "00" to "99".
constexpr auto kTwoDigits = [] {
  std::array<char, 200> t{};
  for (unsigned v = 0; v < 100; ++v) {
    t[2 * v] = static_cast<char>('0' + v / 10);
    t[2 * v + 1] = static_cast<char>('0' + v % 10);
  }
  return t;
}();

// Seconds with six decimals from nanoseconds, truncated to the microsecond (toward zero, so
// a negative span shorter than a microsecond is "0.000000"). Three times per record: the
// six decimals are three two-digit pairs, not six divisions.
char* PutSeconds(char* p, int64_t ns) {
  const uint64_t magnitude = ns < 0 ? 0 - static_cast<uint64_t>(ns) : static_cast<uint64_t>(ns);
  const uint64_t us = magnitude / 1000;
  *p = '-';
  p += (ns < 0) & (us != 0);
  const uint64_t secs = us / 1'000'000;
  const auto frac = static_cast<uint32_t>(us - secs * 1'000'000);
  p = PutUint(p, secs);
  *p = '.';
  std::memcpy(p + 1, &kTwoDigits[2 * (frac / 10'000)], 2);
  std::memcpy(p + 3, &kTwoDigits[2 * (frac / 100 % 100)], 2);
  std::memcpy(p + 5, &kTwoDigits[2 * (frac % 100)], 2);
  return p + 7;
}

// Appends what `put` writes (at most kMaxRecordText bytes) to `out`.
template <class Put>
void AppendRecord(std::string& out, Put&& put) {
  const size_t old = out.size();
  out.resize_and_overwrite(old + kMaxRecordText, [&](char* buf, size_t) {
    return static_cast<size_t>(put(buf + old) - buf);
  });
}

}  // namespace

std::string_view FlowFieldNames() {
  return "flow_id,src_ip,dst_ip,src_port,dst_port,protocol,packets,bytes,bytes_fwd,bytes_rev,"
         "first_seen,last_seen,state,duration_sec,tcp_flags,packets_fwd,packets_rev,vlan,"
         "end_reason";
}

double EpochSeconds(TimestampNs ts) {
  // Round to the microsecond: a double holds about 16 significant digits.
  return static_cast<double>(ts / 1000) / 1e6;
}

void AppendFlowJson(const FlowRecord& r, std::string& out) {
  AppendRecord(out, [&r](char* p) {
    p = PutLit(p, "{\"flow_id\":");
    p = PutUint(p, r.flow_id);
    p = PutLit(p, ",\"src_ip\":\"");
    p = PutAddress(p, r.src_addr, r.ip_version);
    p = PutLit(p, "\",\"dst_ip\":\"");
    p = PutAddress(p, r.dst_addr, r.ip_version);
    p = PutLit(p, "\",\"src_port\":");
    p = PutUint(p, r.src_port);
    p = PutLit(p, ",\"dst_port\":");
    p = PutUint(p, r.dst_port);
    p = PutLit(p, ",\"protocol\":");
    p = PutUint(p, r.protocol);
    p = PutLit(p, ",\"packets\":");
    p = PutUint(p, r.packets());
    p = PutLit(p, ",\"bytes\":");
    p = PutUint(p, r.bytes());
    p = PutLit(p, ",\"bytes_fwd\":");
    p = PutUint(p, r.bytes_fwd);
    p = PutLit(p, ",\"bytes_rev\":");
    p = PutUint(p, r.bytes_rev);
    p = PutLit(p, ",\"first_seen\":");
    p = PutSeconds(p, r.first_ns);
    p = PutLit(p, ",\"last_seen\":");
    p = PutSeconds(p, r.last_ns);
    p = PutLit(p, ",\"state\":\"");
    p = PutText(p, FlowStateName(r.state));
    p = PutLit(p, "\",\"duration_sec\":");
    p = PutSeconds(p, r.last_ns - r.first_ns);
    p = PutLit(p, ",\"tcp_flags\":\"");
    p = PutText(p, TcpFlagsName(r.tcp_flags_fwd | r.tcp_flags_rev));
    p = PutLit(p, "\",\"packets_fwd\":");
    p = PutUint(p, r.packets_fwd);
    p = PutLit(p, ",\"packets_rev\":");
    p = PutUint(p, r.packets_rev);
    p = PutLit(p, ",\"vlan\":");
    p = PutUint(p, r.vlan);
    p = PutLit(p, ",\"end_reason\":");
    if (r.end_reason == EndReason::kNone) return PutLit(p, "null}");
    *p++ = '"';
    p = PutText(p, EndReasonName(r.end_reason));
    return PutLit(p, "\"}");
  });
}

void AppendFlowCsv(const FlowRecord& r, std::string& out) {
  AppendRecord(out, [&r](char* p) {
    p = PutUint(p, r.flow_id);
    *p++ = ',';
    p = PutAddress(p, r.src_addr, r.ip_version);
    *p++ = ',';
    p = PutAddress(p, r.dst_addr, r.ip_version);
    for (uint64_t v : {uint64_t{r.src_port}, uint64_t{r.dst_port}, uint64_t{r.protocol},
                       r.packets(), r.bytes(), r.bytes_fwd, r.bytes_rev}) {
      *p++ = ',';
      p = PutUint(p, v);
    }
    *p++ = ',';
    p = PutSeconds(p, r.first_ns);
    *p++ = ',';
    p = PutSeconds(p, r.last_ns);
    *p++ = ',';
    p = PutText(p, FlowStateName(r.state));
    *p++ = ',';
    p = PutSeconds(p, r.last_ns - r.first_ns);
    *p++ = ',';
    p = PutText(p, TcpFlagsName(r.tcp_flags_fwd | r.tcp_flags_rev));
    for (uint64_t v : {r.packets_fwd, r.packets_rev, uint64_t{r.vlan}}) {
      *p++ = ',';
      p = PutUint(p, v);
    }
    *p++ = ',';
    return PutText(p, EndReasonName(r.end_reason));
  });
}

std::string FlowTableHeader() {
  return fmt::format("{:<26} {:>5} {:>22} {:>22} {:>9} {:>12} {:>8} {:<15} {}", "first_seen (UTC)",
                     "proto", "source", "destination", "packets", "bytes", "duration",
                     "tcp_flags", "end");
}

void AppendFlowTableRow(const FlowRecord& r, std::string& out) {
  const time_t secs = static_cast<time_t>(r.first_ns / kNanosPerSecond);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  const auto endpoint = [&](const uint8_t* addr, uint16_t port) {
    std::string a = AddressString(addr, r.ip_version);
    return r.ip_version == 6 ? fmt::format("[{}]:{}", a, port) : fmt::format("{}:{}", a, port);
  };
  fmt::format_to(std::back_inserter(out),
                 "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06} {:>5} {:>22} {:>22} {:>9} {:>12} "
                 "{:>8.3f} {:<15} {}",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (r.first_ns % kNanosPerSecond) / 1000, r.protocol,
                 endpoint(r.src_addr, r.src_port), endpoint(r.dst_addr, r.dst_port), r.packets(),
                 r.bytes(), r.duration_sec(), TcpFlagsName(r.tcp_flags_fwd | r.tcp_flags_rev),
                 r.end_reason == EndReason::kNone ? FlowStateName(r.state)
                                                  : EndReasonName(r.end_reason));
}

}  // namespace jarvis
