#include "flow/flow_format.h"

#include <arpa/inet.h>
#include <fmt/compile.h>
#include <fmt/format.h>

#include <ctime>
#include <iterator>

namespace jarvis {
namespace {

// Formatting runs once per finished flow, millions of times on a large file: addresses and
// times are written directly rather than through inet_ntop's sprintf and float formatting.
void AppendAddress(const uint8_t* a, uint8_t ip_version, std::string& out) {
  if (ip_version != 4) {
    char buf[INET6_ADDRSTRLEN];
    out += inet_ntop(AF_INET6, a, buf, sizeof buf);
    return;
  }
  char buf[16];
  char* p = buf;
  for (int i = 0; i < 4; ++i) {
    unsigned v = a[i];
    if (v >= 100) {
      *p++ = static_cast<char>('0' + v / 100);
      v %= 100;
      *p++ = static_cast<char>('0' + v / 10);
    } else if (v >= 10) {
      *p++ = static_cast<char>('0' + v / 10);
    }
    *p++ = static_cast<char>('0' + v % 10);
    *p++ = '.';
  }
  out.append(buf, p - buf - 1);
}

void AppendUint(uint64_t v, std::string& out) {
  const fmt::format_int s(v);
  out.append(s.data(), s.size());
}

// Seconds with six decimals from nanoseconds, truncated to the microsecond.
void AppendSeconds(int64_t ns, std::string& out) {
  int64_t us = ns / 1000;
  if (us < 0) {
    out += '-';
    us = -us;
  }
  AppendUint(static_cast<uint64_t>(us / 1'000'000), out);
  char frac[7];
  int64_t f = us % 1'000'000;
  frac[0] = '.';
  for (int i = 6; i >= 1; --i, f /= 10) frac[i] = static_cast<char>('0' + f % 10);
  out.append(frac, 7);
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
  out += "{\"flow_id\":";
  AppendUint(r.flow_id, out);
  out += ",\"src_ip\":\"";
  AppendAddress(r.src_addr, r.ip_version, out);
  out += "\",\"dst_ip\":\"";
  AppendAddress(r.dst_addr, r.ip_version, out);
  out += "\",\"src_port\":";
  AppendUint(r.src_port, out);
  out += ",\"dst_port\":";
  AppendUint(r.dst_port, out);
  out += ",\"protocol\":";
  AppendUint(r.protocol, out);
  out += ",\"packets\":";
  AppendUint(r.packets(), out);
  out += ",\"bytes\":";
  AppendUint(r.bytes(), out);
  out += ",\"bytes_fwd\":";
  AppendUint(r.bytes_fwd, out);
  out += ",\"bytes_rev\":";
  AppendUint(r.bytes_rev, out);
  out += ",\"first_seen\":";
  AppendSeconds(r.first_ns, out);
  out += ",\"last_seen\":";
  AppendSeconds(r.last_ns, out);
  out += ",\"state\":\"";
  out += FlowStateName(r.state);
  out += "\",\"duration_sec\":";
  AppendSeconds(r.last_ns - r.first_ns, out);
  out += ",\"tcp_flags\":\"";
  out += TcpFlagsName(r.tcp_flags_fwd | r.tcp_flags_rev);
  out += "\",\"packets_fwd\":";
  AppendUint(r.packets_fwd, out);
  out += ",\"packets_rev\":";
  AppendUint(r.packets_rev, out);
  out += ",\"vlan\":";
  AppendUint(r.vlan, out);
  out += ",\"end_reason\":";
  if (r.end_reason == EndReason::kNone) {
    out += "null}";
  } else {
    out += '"';
    out += EndReasonName(r.end_reason);
    out += "\"}";
  }
}

void AppendFlowCsv(const FlowRecord& r, std::string& out) {
  AppendUint(r.flow_id, out);
  out += ',';
  AppendAddress(r.src_addr, r.ip_version, out);
  out += ',';
  AppendAddress(r.dst_addr, r.ip_version, out);
  for (uint64_t v : {uint64_t{r.src_port}, uint64_t{r.dst_port}, uint64_t{r.protocol},
                     r.packets(), r.bytes(), r.bytes_fwd, r.bytes_rev}) {
    out += ',';
    AppendUint(v, out);
  }
  out += ',';
  AppendSeconds(r.first_ns, out);
  out += ',';
  AppendSeconds(r.last_ns, out);
  out += ',';
  out += FlowStateName(r.state);
  out += ',';
  AppendSeconds(r.last_ns - r.first_ns, out);
  out += ',';
  out += TcpFlagsName(r.tcp_flags_fwd | r.tcp_flags_rev);
  for (uint64_t v : {r.packets_fwd, r.packets_rev, uint64_t{r.vlan}}) {
    out += ',';
    AppendUint(v, out);
  }
  out += ',';
  out += EndReasonName(r.end_reason);
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
