#include "export/export_config.h"

#include <fmt/format.h>

#include <charconv>
#include <limits>

namespace jarvis {

namespace {

Error Invalid(std::string_view url, std::string_view why) {
  return Error(ErrorCode::kInvalidArgument, fmt::format("export URL '{}': {}", url, why));
}

template <class T>
bool ParseUint(std::string_view s, T& out, uint64_t max = std::numeric_limits<T>::max()) {
  uint64_t v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || s.empty() || v > max) return false;
  out = static_cast<T>(v);
  return true;
}

std::string_view SchemeOf(ExportVersion v) {
  switch (v) {
    case ExportVersion::kNetflow5:
      return "netflow5";
    case ExportVersion::kNetflow9:
      return "netflow9";
    case ExportVersion::kIpfix:
      return "ipfix";
  }
  return "?";
}

}  // namespace

uint16_t DefaultPort(ExportVersion version) {
  return version == ExportVersion::kIpfix ? 4739 : 2055;
}

std::string ExportConfig::Url() const {
  const bool v6 = collector_host.find(':') != std::string::npos;
  std::string url = fmt::format("{}://{}{}{}:{}", SchemeOf(version), v6 ? "[" : "", collector_host,
                                v6 ? "]" : "", collector_port);
  if (biflow) url += "?biflow=1";
  return url;
}

Result<ExportConfig> ParseExportUrl(std::string_view url) {
  ExportConfig c;
  const size_t sep = url.find("://");
  if (sep == std::string_view::npos) {
    return std::unexpected(
        Invalid(url, "expected SCHEME://HOST[:PORT] with scheme ipfix, netflow9 or netflow5"));
  }
  const std::string_view scheme = url.substr(0, sep);
  if (scheme == "ipfix" || scheme == "netflow10") {
    c.version = ExportVersion::kIpfix;
  } else if (scheme == "netflow9") {
    c.version = ExportVersion::kNetflow9;
  } else if (scheme == "netflow5") {
    c.version = ExportVersion::kNetflow5;
  } else {
    return std::unexpected(
        Invalid(url, fmt::format("unknown scheme '{}' (ipfix, netflow9 or netflow5)", scheme)));
  }
  c.collector_port = DefaultPort(c.version);
  std::string_view rest = url.substr(sep + 3);
  std::string_view query;
  if (const size_t q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  std::string_view host, port;
  if (!rest.empty() && rest.front() == '[') {
    const size_t close = rest.find(']');
    if (close == std::string_view::npos) {
      return std::unexpected(Invalid(url, "IPv6 address without its closing ']'"));
    }
    host = rest.substr(1, close - 1);
    const std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return std::unexpected(Invalid(url, "expected ':PORT' after ']'"));
      port = after.substr(1);
      if (port.empty()) return std::unexpected(Invalid(url, "empty port"));
    }
  } else {
    const size_t colon = rest.rfind(':');
    if (colon != std::string_view::npos) {
      if (rest.find(':') != colon) {
        return std::unexpected(Invalid(url, "an IPv6 address must be in brackets: [::1]:4739"));
      }
      host = rest.substr(0, colon);
      port = rest.substr(colon + 1);
      if (port.empty()) return std::unexpected(Invalid(url, "empty port"));
    } else {
      host = rest;
    }
  }
  if (host.empty()) return std::unexpected(Invalid(url, "no collector host"));
  c.collector_host = std::string(host);
  if (!port.empty() && (!ParseUint(port, c.collector_port) || c.collector_port == 0)) {
    return std::unexpected(Invalid(url, fmt::format("port '{}' is not 1..65535", port)));
  }
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view kv = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (kv.empty()) continue;
    const size_t eq = kv.find('=');
    const std::string_view key = kv.substr(0, eq);
    const std::string_view val = eq == std::string_view::npos ? "1" : kv.substr(eq + 1);
    bool ok = true;
    if (key == "biflow") {
      ok = val == "1" || val == "true" || val == "0" || val == "false";
      c.biflow = val == "1" || val == "true";
    } else if (key == "mtu") {
      ok = ParseUint(val, c.mtu, 65535);
    } else if (key == "rate") {
      ok = ParseUint(val, c.max_datagrams_per_sec);
    } else if (key == "domain") {
      ok = ParseUint(val, c.observation_domain);
    } else if (key == "template_refresh") {
      ok = ParseUint(val, c.template_refresh_sec, 86400);
    } else if (key == "template_packets") {
      ok = ParseUint(val, c.template_refresh_packets);
    } else if (key == "queue") {
      ok = ParseUint(val, c.queue_capacity);
    } else if (key == "hold") {
      ok = ParseUint(val, c.max_hold_ms, 60000);
    } else if (key == "source_port") {
      ok = ParseUint(val, c.source_port);
    } else {
      return std::unexpected(
          Invalid(url, fmt::format("unknown parameter '{}' (biflow, mtu, rate, domain, "
                                   "template_refresh, template_packets, queue, hold, source_port)",
                                   key)));
    }
    if (!ok) {
      return std::unexpected(Invalid(url, fmt::format("bad value '{}' for {}", val, key)));
    }
  }
  if (Status s = ValidateExportConfig(c); !s) {
    return std::unexpected(Invalid(url, s.error().message()));
  }
  return c;
}

Status ValidateExportConfig(const ExportConfig& c) {
  auto bad = [](std::string field, std::string msg) -> Status {
    return std::unexpected(Error(ErrorCode::kInvalidArgument, std::move(msg)).WithField(field));
  };
  switch (c.version) {
    case ExportVersion::kNetflow5:
    case ExportVersion::kNetflow9:
    case ExportVersion::kIpfix:
      break;
    default:
      return bad("netflow_version",
                 fmt::format("netflow_version {} is not 5, 9 or 10", static_cast<int>(c.version)));
  }
  if (c.collector_host.empty()) return bad("collector_ip", "no collector address");
  if (c.collector_port == 0) return bad("collector_port", "collector port 0");
  if (c.biflow && c.version != ExportVersion::kIpfix) {
    return bad("biflow", "biflow records need IPFIX (version 10)");
  }
  if (c.mtu < 576 || c.mtu > 65535) {
    return bad("mtu", fmt::format("mtu {} is outside 576..65535", c.mtu));
  }
  if (c.version == ExportVersion::kIpfix && c.observation_domain == 0) {
    return bad("observation_domain",
               "IPFIX observation domain 0 is reserved for the exporter's own statistics");
  }
  if (c.queue_capacity == 0) return bad("queue_capacity", "queue capacity 0");
  return {};
}

}  // namespace jarvis
