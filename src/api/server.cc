#include "api/server.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <net/if.h>
#include <netdb.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cmath>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>

#include "api/http.h"
#include "api/openapi.h"
#include "api/prometheus.h"
#include "api/validation.h"
#include "bench/bench_results.h"
#include "capture/backend_modes.h"
#include "capture/clock_sync.h"
#include "capture/pcap_common.h"
#include "export/export_config.h"
#include "flow/flow_format.h"

namespace jarvis::api {
namespace {

constexpr const char* kPrefix = "/packet_capture/capture";
constexpr const char* kJson = "application/json";

// Backends the contract names, whether or not this build has them.
constexpr std::array<std::string_view, 5> kContractBackends = {"libpcap", "af_packet", "xdp",
                                                              "dpdk", "pf_ring"};

void SendJson(http::Response& res, int status, const Json& body) {
  res.status = status;
  res.set_content(body.dump(), kJson);
}

void SendDetail(http::Response& res, int status, const std::string& detail) {
  SendJson(res, status, Json{{"detail", detail}});
}

// HTTP status for an engine error. 409: the request conflicts with the session's state;
// 400: the host cannot do it (no such interface, backend unavailable, no privilege).
int StatusFor(const Error& e) {
  switch (e.code()) {
    case ErrorCode::kFailedPrecondition:
      return 409;
    case ErrorCode::kInvalidArgument:
      return 422;
    case ErrorCode::kNotFound:
    case ErrorCode::kUnavailable:
    case ErrorCode::kPermissionDenied:
      return 400;
    default:
      return 500;
  }
}

std::optional<std::string> QueryParam(const http::Request& req, const char* name) {
  if (!req.has_param(name)) return std::nullopt;
  return req.get_param_value(name);
}

double Round(double v, int digits) {
  const double f = std::pow(10.0, digits);
  return std::round(v * f) / f;
}

std::string ReasonPhrase(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 408:
      return "Request Timeout";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 416:
      return "Range Not Satisfiable";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "HTTP error " + std::to_string(status);
  }
}

// The address of a collector given as an address or a host name: the first of the resolver's
// answers that this host has a route to (a UDP connect sends nothing, it only picks the route),
// so "localhost" gives 127.0.0.1 where IPv6 is off even if the resolver lists ::1 first. The
// error says why none will do.
Result<std::string> ResolveCollector(const std::string& host, int64_t port) {
  if (host.empty()) return MakeError(ErrorCode::kInvalidArgument, "no collector address");
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_protocol = IPPROTO_UDP;
  addrinfo* list = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &list); rc != 0) {
    return MakeError(ErrorCode::kNotFound,
                     "cannot resolve collector '" + host + "': " + gai_strerror(rc));
  }
  std::string tried;
  std::optional<std::string> found;
  for (const addrinfo* ai = list; ai != nullptr && !found; ai = ai->ai_next) {
    char buf[INET6_ADDRSTRLEN] = {};
    const void* a =
        ai->ai_family == AF_INET6
            ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(ai->ai_addr)->sin6_addr)
            : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(ai->ai_addr)->sin_addr);
    if (inet_ntop(ai->ai_family, a, buf, sizeof buf) == nullptr) continue;
    const int fd = ::socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP);
    if (fd >= 0 && ::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
      found = buf;
    } else {
      tried += fmt::format("{}{}: {}", tried.empty() ? "" : ", ", buf, std::strerror(errno));
    }
    if (fd >= 0) ::close(fd);
  }
  freeaddrinfo(list);
  if (found) return *found;
  return MakeError(ErrorCode::kUnavailable,
                   "collector '" + host + "' cannot be reached from this host (" + tried + ")");
}

bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace

class ApiServer::Impl {
 public:
  Impl(Engine& engine, ServerOptions options) : engine_(engine), opt_(std::move(options)) {}

  Status Bind(int& bound_port) {
    http::ServerConfig config;
    config.tls_cert_file = opt_.tls_cert_file;
    config.tls_key_file = opt_.tls_key_file;
    config.max_body_bytes = opt_.max_body_bytes;
    auto svr = http::CreateServer(config);
    if (!svr) return std::unexpected(svr.error());
    svr_ = std::move(*svr);
    Routes();
    const int p = svr_->Bind(opt_.host, opt_.port);
    if (p < 0) {
      return ErrnoError(errno, "cannot listen on " + opt_.host +
                                   (opt_.port == 0 ? "" : ":" + std::to_string(opt_.port)));
    }
    bound_port = p;
    return {};
  }

  bool Run() { return svr_ && svr_->Listen(); }
  void Stop() {
    if (svr_) svr_->Stop();
  }

 private:
  // Registers a route and remembers its method, so a known path with the wrong method gets 405.
  void Route(const std::string& method, const std::string& path, http::Handler h) {
    methods_[path].push_back(method);
    svr_->Route(method, path, std::move(h));
  }

  void Routes() {
    http::Hooks hooks;
    hooks.pre_routing = [this](const http::Request& req, http::Response& res) {
      if (opt_.token.empty() || req.path == "/healthz") return false;
      const std::string auth = req.get_header_value("Authorization");
      const std::string prefix = "Bearer ";
      if (auth.size() > prefix.size() && auth.compare(0, prefix.size(), prefix) == 0 &&
          ConstantTimeEquals(auth.substr(prefix.size()), opt_.token)) {
        return false;
      }
      res.set_header("WWW-Authenticate", "Bearer");
      SendDetail(res, 401, "Not authenticated");
      return true;
    };

    hooks.on_error = [this](const http::Request& req, http::Response& res) {
      if (!res.body.empty()) return;  // a handler already wrote its own error
      if (res.status == 404) {
        auto it = methods_.find(req.path);
        if (it != methods_.end()) {
          std::string allow;
          for (const auto& m : it->second) allow += (allow.empty() ? "" : ", ") + m;
          res.set_header("Allow", allow);
          SendDetail(res, 405, "Method Not Allowed");
          return;
        }
        SendDetail(res, 404, "Not Found");
        return;
      }
      if (res.status == 413) {
        SendDetail(res, 413,
                   "request body larger than " + std::to_string(opt_.max_body_bytes) + " bytes");
        return;
      }
      SendDetail(res, res.status, ReasonPhrase(res.status));
    };

    hooks.on_exception = [](const http::Request&, http::Response& res, const std::string& what) {
      spdlog::error("handler failed: {}", what);
      SendDetail(res, 500, "internal error: " + what);
    };

    hooks.on_reply = [this](const http::Request& req, const http::Response& res, double ms) {
      prom_.CountRequest(res.status);
      spdlog::info("http method={} path={} status={} latency_ms={:.2f} remote={} bytes={}",
                   req.method, req.path, res.status, ms, req.remote_addr, res.body.size());
    };
    svr_->SetHooks(std::move(hooks));

    const std::string p = kPrefix;
    Route("GET", p + "/backends", [this](const auto& q, auto& r) { Backends(q, r); });
    Route("POST", p + "/start", [this](const auto& q, auto& r) { Start(q, r); });
    Route("POST", p + "/stop", [this](const auto& q, auto& r) { StopCapture(q, r); });
    Route("GET", p + "/status", [this](const auto& q, auto& r) { StatusRoute(q, r); });
    Route("GET", p + "/metrics", [this](const auto& q, auto& r) { MetricsRoute(q, r); });
    Route("POST", p + "/flow/meter/enable", [this](const auto& q, auto& r) { Meter(q, r); });
    Route("GET", p + "/flows", [this](const auto& q, auto& r) { FlowsRoute(q, r); });
    Route("POST", p + "/netflow/export/enable", [this](const auto& q, auto& r) { Netflow(q, r); });
    Route("POST", p + "/encryption/enable", [this](const auto& q, auto& r) { Encryption(q, r); });
    Route("GET", p + "/firmware/verify", [this](const auto& q, auto& r) { Firmware(q, r); });
    Route("GET", "/metrics", [this](const auto& q, auto& r) { Prometheus(q, r); });
    Route("GET", "/openapi.json", [](const auto&, auto& r) {
      r.set_content(OpenApiDocument().dump(2), kJson);
    });
    Route("GET", "/healthz", [](const auto&, auto& r) {
      SendJson(r, 200, Json{{"status", "ok"}});
    });
  }

  void Backends(const http::Request& req, http::Response& res) {
    // ?interface=IFACE adds the interface's facts and each backend's modes on it; an unknown
    // interface is a 400, as /start answers it.
    std::optional<InterfaceCaps> caps;
    if (auto iface = QueryParam(req, "interface")) {
      auto probed = ProbeInterfaceQuery(*iface, res);
      if (!probed) return;
      caps = std::move(*probed);
    }
    // Read per request: a benchmark run while the daemon serves shows at once. Missing or
    // malformed results give the nominal figures with a note (src/bench/bench_results.h).
    const auto bench_results = bench::LoadBenchResults(opt_.bench_results_path);
    Json list = Json::array();
    for (std::string_view name : kContractBackends) {
      const BackendInfo* info = FindBackend(name);
      std::string reason = info == nullptr ? "not available in this build"
                                           : info->unavailable_reason();
      Json b{{"name", name},
             {"status", reason.empty() ? "available" : "unavailable"},
             {"reason", reason.empty() ? Json(nullptr) : Json(reason)},
             {"description", info ? Json(std::string(info->description)) : Json(nullptr)}};
      if (caps) b["modes"] = BackendModesJson(name, info, *caps);
      b.update(bench::BackendFiguresJson(name, bench_results));
      list.push_back(std::move(b));
    }
    Json out{{"available_backends", list}};
    if (caps) out["interface"] = InterfaceCapsJson(*caps);
    SendJson(res, 200, out);
  }

  // The probe of a backends query's interface, or the error reply already sent: 422 for a name
  // no interface can have (as /start validates it), 400 for one that does not exist.
  static std::optional<InterfaceCaps> ProbeInterfaceQuery(const std::string& iface,
                                                          http::Response& res) {
    Validator v("query");
    if (iface.empty()) {
      v.Fail("interface", "string_too_short", "String should have at least 1 character", "");
    } else if (iface.size() >= IF_NAMESIZE) {
      v.Fail("interface", "string_too_long",
             "String should have at most " + std::to_string(IF_NAMESIZE - 1) + " characters", iface,
             Json{{"max_length", IF_NAMESIZE - 1}});
    }
    if (!v.ok()) {
      SendJson(res, 422, v.ErrorBody());
      return std::nullopt;
    }
    auto caps = ProbeInterface(iface);
    if (!caps) {
      SendDetail(res, StatusFor(caps.error()) == 422 ? 400 : StatusFor(caps.error()),
                 caps.error().message());
      return std::nullopt;
    }
    return std::move(*caps);
  }

  void Start(const http::Request& req, http::Response& res) {
    Validator v("body");
    Json body = v.ParseBody(req.body, false);
    if (v.body_invalid()) return SendJson(res, 422, v.ErrorBody());
    CaptureRequest c;
    auto iface = v.String(body, "interface", std::nullopt);
    auto backend = v.Choice(body, "backend", "libpcap", kContractBackends);
    auto buffer = v.Int(body, "buffer_size_mb", 256, 64, 2048);
    auto ts = v.Choice(body, "timestamp_source", "kernel", {"kernel", "hardware", "ptp", "ntp"});
    auto filter = v.String(body, "filter_expr", "");
    auto snaplen = v.Int(body, "snaplen", 0, 0, kMaxSnaplen);
    auto workers = v.Int(body, "workers", 1, 1, 64);
    if (filter) {
      if (auto st = ValidateFilter(*filter); !st) {
        v.Fail("filter_expr", "value_error", "Value error, " + st.error().message(), *filter);
      }
    }
    if (iface && iface->empty()) {
      v.Fail("interface", "string_too_short", "String should have at least 1 character", "");
    }
    if (iface && iface->size() >= IF_NAMESIZE) {
      // Longer than any interface name the kernel accepts.
      v.Fail("interface", "string_too_long",
             "String should have at most " + std::to_string(IF_NAMESIZE - 1) + " characters",
             *iface, Json{{"max_length", IF_NAMESIZE - 1}});
    }
    if (!v.ok()) return SendJson(res, 422, v.ErrorBody());
    c.interface = *iface;
    c.backend = *backend;
    c.buffer_size_mb = static_cast<uint32_t>(*buffer);
    c.timestamp_source = *ParseTimestampSource(*ts);
    c.filter_expr = *filter;
    c.snaplen = static_cast<uint32_t>(*snaplen);
    c.workers = static_cast<uint32_t>(*workers);
    auto id = engine_.Start(c);
    if (!id) return SendStartError(res, id.error());
    SendJson(res, 200,
             Json{{"status", "started"},
                  {"interface", c.interface},
                  {"backend", c.backend},
                  {"buffer_size_mb", c.buffer_size_mb},
                  {"timestamp_source", *ts},
                  {"filter_expr", c.filter_expr},
                  {"snaplen", c.snaplen},
                  {"workers", c.workers},
                  {"session_id", *id}});
  }

  void SendStartError(http::Response& res, const Error& e) {
    if (e.field() == "timestamp_source" || e.field() == "filter" || e.field() == "workers") {
      Validator v("body");
      v.Fail(e.field() == "filter" ? "filter_expr" : e.field(), "value_error",
             "Value error, " + e.message(), nullptr);
      return SendJson(res, 422, v.ErrorBody());
    }
    // Anything else is the host's refusal (400) or a conflict (409): a 422 always lists fields.
    const int status = StatusFor(e);
    SendDetail(res, status == 422 ? 400 : status, e.message());
  }

  static Json TotalsJson(const CaptureTotals& t) {
    return Json{{"packets_captured", t.packets},
                {"packets_dropped", t.dropped()},
                {"bytes_captured", t.bytes},
                {"drop_rate", Round(t.drop_rate_pct(), 6)}};
  }

  void StopCapture(const http::Request& req, http::Response& res) {
    Validator v("body");
    Json body = v.ParseBody(req.body, true);
    if (v.body_invalid()) return SendJson(res, 422, v.ErrorBody());
    auto graceful = v.Bool(body, "graceful", true);
    if (!v.ok()) return SendJson(res, 422, v.ErrorBody());
    auto totals = engine_.Stop(*graceful);
    if (!totals) return SendDetail(res, StatusFor(totals.error()), totals.error().message());
    Json out = TotalsJson(*totals);
    out["status"] = "stopped";
    out["duration_sec"] = Round(totals->duration_sec, 6);
    out["packets_dropped_kernel"] = totals->dropped_kernel;
    out["packets_dropped_interface"] = totals->dropped_interface;
    out["final_metrics"] = TotalsJson(*totals);
    out["netflow_export"] = ExportJson(totals->netflow);
    SendJson(res, 200, out);
  }

  void StatusRoute(const http::Request&, http::Response& res) {
    const EngineStatus st = engine_.GetStatus();
    const bool running = st.state == SessionState::kRunning;
    const bool have = st.state != SessionState::kIdle;
    Json out{{"running", running},
             {"interface", have ? Json(st.interface) : Json(nullptr)},
             {"backend", have ? Json(st.backend) : Json(nullptr)},
             {"buffer_size_mb", have ? Json(st.buffer_size_mb) : Json(nullptr)},
             {"uptime_sec", Round(st.uptime_sec, 3)},
             {"flow_metering_enabled", st.flow_metering_enabled},
             {"encryption_enabled", false},
             {"netflow_enabled", st.netflow_enabled},
             {"state", SessionStateName(st.state)},
             {"session_id", have ? Json(st.session_id) : Json(nullptr)},
             {"timestamp_source", have ? Json(st.timestamp_source) : Json(nullptr)},
             {"filter_expr", have ? Json(st.filter_expr) : Json(nullptr)},
             {"snaplen", have ? Json(st.snaplen) : Json(nullptr)},
             {"workers", have ? Json(st.workers) : Json(nullptr)},
             {"error", st.error.empty() ? Json(nullptr) : Json(st.error)}};
    {
      std::lock_guard<std::mutex> lock(config_mu_);
      out["netflow_configured"] = netflow_.is_null() ? Json(nullptr) : netflow_;
      out["encryption_configured"] = encryption_.is_null() ? Json(nullptr) : encryption_;
    }
    if (have && st.timestamp_source == "ntp") {
      // The ntp source stamps with the host clock: say whether that clock is disciplined.
      const ClockSync sync = HostClockSync();
      out["clock_synchronized"] = sync.synchronized;
      out["clock_max_error_us"] = sync.max_error_us;
      out["clock_sync_note"] = sync.note;
    }
    // What the backend chose at open (xdp: native/copy ...; dpdk: the device and where drops
    // come from); null where the backend has no such choice or no session ran.
    out["backend_mode"] = have && !st.backend_mode.empty() ? Json(st.backend_mode) : Json(nullptr);
    if (st.meter) {
      out["flow_meter"] = Json{{"table_size", st.meter->table_size},
                               {"idle_timeout_sec", st.meter->idle_timeout_sec},
                               {"export_interval_sec", st.meter->export_interval_sec}};
    }
    SendJson(res, 200, out);
  }

  void MetricsRoute(const http::Request&, http::Response& res) {
    auto m = engine_.GetMetrics();
    if (!m) return SendDetail(res, StatusFor(m.error()), m.error().message());
    const CaptureTotals& t = m->totals;
    Json out = TotalsJson(t);
    out["active_flows"] = m->active_flows;
    out["total_flows"] = m->total_flows;
    out["throughput_mbps"] = Round(m->throughput_mbps, 3);
    out["throughput_gbps"] = Round(m->throughput_mbps / 1000, 6);
    out["buffer_usage_pct"] =
        m->buffer_usage_pct ? Json(Round(*m->buffer_usage_pct, 2)) : Json(nullptr);
    out["packet_rate_pps"] = Round(m->packet_rate_pps, 1);
    out["timestamp"] = Round(m->timestamp, 3);
    out["capture_duration_sec"] = Round(t.duration_sec, 3);
    out["rate_window_sec"] = Round(m->window_sec, 3);
    out["packets_dropped_kernel"] = t.dropped_kernel;
    out["packets_dropped_interface"] = t.dropped_interface;
    out["packets_received_by_filter"] = t.received_by_filter;
    out["bytes_stored"] = t.bytes_stored;
    if (!m->buffer_usage_pct) out["buffer_usage_note"] = m->buffer_usage_note;
    out["netflow_export"] = ExportJson(t.netflow);
    SendJson(res, 200, out);
  }

  void Meter(const http::Request& req, http::Response& res) {
    Validator v("body");
    Json body = v.ParseBody(req.body, true);
    if (v.body_invalid()) return SendJson(res, 422, v.ErrorBody());
    auto table = v.Int(body, "table_size", 100000, 1, 16777216);
    auto idle = v.Int(body, "idle_timeout_sec", 300, 1, 86400);
    auto interval = v.Int(body, "export_interval_sec", 60, 1, 86400);
    if (!v.ok()) return SendJson(res, 422, v.ErrorBody());
    MeterRequest m{static_cast<uint32_t>(*table), static_cast<uint32_t>(*idle),
                   static_cast<uint32_t>(*interval)};
    if (auto st = engine_.EnableFlowMetering(m); !st) {
      return SendDetail(res, StatusFor(st.error()), st.error().message());
    }
    SendJson(res, 200,
             Json{{"status", "enabled"},
                  {"table_size", m.table_size},
                  {"idle_timeout_sec", m.idle_timeout_sec},
                  {"export_interval_sec", m.export_interval_sec}});
  }

  void FlowsRoute(const http::Request& req, http::Response& res) {
    Validator v("query");
    FlowQuery q;
    auto limit = v.QueryInt(QueryParam(req, "limit"), "limit", 100, 1, 100000);
    auto min_packets = v.QueryInt(QueryParam(req, "min_packets"), "min_packets", 0, 0,
                                  std::nullopt);
    auto port = v.QueryInt(QueryParam(req, "port"), "port", -1, 0, 65535);
    auto protocol = v.QueryInt(QueryParam(req, "protocol"), "protocol", -1, 0, 255);
    Json sort = Json::object();
    if (auto s = QueryParam(req, "sort_by")) sort["sort_by"] = *s;
    auto sort_by = v.Choice(sort, "sort_by", "packets", {"packets", "bytes", "duration"});
    if (auto a = QueryParam(req, "address")) {
      in6_addr tmp;
      if (inet_pton(AF_INET, a->c_str(), &tmp) != 1 && inet_pton(AF_INET6, a->c_str(), &tmp) != 1) {
        v.Fail("address", "value_error", "Value error, not an IP address", *a);
      }
      q.address = *a;
    }
    if (!v.ok()) return SendJson(res, 422, v.ErrorBody());
    q.limit = static_cast<uint32_t>(*limit);
    q.min_packets = static_cast<uint64_t>(*min_packets);
    q.sort_by = *ParseFlowSortKey(*sort_by);
    if (*port >= 0 && QueryParam(req, "port")) q.port = static_cast<uint16_t>(*port);
    if (*protocol >= 0 && QueryParam(req, "protocol")) q.protocol = static_cast<uint8_t>(*protocol);
    auto flows = engine_.Flows(q);
    if (!flows) return SendDetail(res, StatusFor(flows.error()), flows.error().message());
    std::string body = "[";
    for (size_t i = 0; i < flows->size(); ++i) {
      if (i > 0) body += ',';
      AppendFlowJson((*flows)[i], body);
    }
    body += ']';
    res.status = 200;
    res.set_content(body, kJson);
  }

  // NetFlow v5/v9 or IPFIX export of the running session's flows. Order of checks, as FastAPI
  // would: the body (422, every field at once, including a collector that does not resolve and
  // biflow without IPFIX), then the state (409: no capture running, or flow metering off).
  void Netflow(const http::Request& req, http::Response& res) {
    Validator v("body");
    Json body = v.ParseBody(req.body, false);
    if (v.body_invalid()) return SendJson(res, 422, v.ErrorBody());
    auto ip = v.String(body, "collector_ip", std::nullopt);
    auto port = v.Int(body, "collector_port", 2055, 1, 65535);
    auto interval = v.Int(body, "export_interval_sec", 60, 1, 86400);
    int64_t version = 0;  // 0: invalid
    if (auto ver = v.Int(body, "netflow_version", 5, std::nullopt, std::nullopt)) {
      if (*ver == 5 || *ver == 9 || *ver == 10) {
        version = *ver;
      } else {
        v.Fail("netflow_version", "literal_error", "Input should be 5, 9 or 10", Json(*ver));
      }
    }
    auto biflow = v.Bool(body, "biflow", false);
    if (biflow && *biflow && version != 0 && version != 10) {
      v.Fail("biflow", "value_error",
             fmt::format("Value error, biflow records need IPFIX (netflow_version 10), not "
                         "version {}",
                         version),
             true);
    }
    // Resolved once, here: the exporter is given the address, so what was validated is what it
    // sends to.
    std::string resolved;
    if (ip) {
      if (auto addr = ResolveCollector(*ip, port.value_or(2055))) {
        resolved = *addr;
      } else {
        v.Fail("collector_ip", "value_error", "Value error, " + addr.error().message(), *ip);
      }
    }
    if (!v.ok()) return SendJson(res, 422, v.ErrorBody());
    ExportConfig config;
    config.collector_host = resolved;
    config.collector_port = static_cast<uint16_t>(*port);
    config.version = static_cast<ExportVersion>(version);
    config.biflow = *biflow;
    Result<ExportSummary> enabled = std::unexpected(Error(ErrorCode::kInternal, ""));
    if (Status valid = ValidateExportConfig(config); !valid) {
      enabled = std::unexpected(valid.error());
    } else {
      enabled = engine_.EnableExport(config, static_cast<uint32_t>(*interval));
    }
    if (!enabled) {
      const Error& e = enabled.error();
      if (e.code() != ErrorCode::kFailedPrecondition && !e.field().empty()) {
        // The exporter refused a field (a collector it cannot reach, say): 422 at that field.
        const std::string field = e.field() == "collector_host" ? "collector_ip" : e.field();
        v.Fail(field, "value_error", "Value error, " + e.message(), body.value(field, Json()));
        return SendJson(res, 422, v.ErrorBody());
      }
      return SendDetail(res, StatusFor(e), e.message());
    }
    Json stored{{"collector_ip", *ip},        {"collector_address", resolved},
                {"collector_port", *port},    {"export_interval_sec", *interval},
                {"netflow_version", version}, {"biflow", *biflow}};
    {
      std::lock_guard<std::mutex> lock(config_mu_);
      netflow_ = stored;
    }
    SendJson(res, 200,
             Json{{"status", "enabled"},
                  {"collector_ip", *ip},
                  {"collector_port", *port},
                  {"export_interval_sec", *interval},
                  {"netflow_version", version},
                  {"biflow", *biflow},
                  {"collector_address", resolved},
                  {"source_port", enabled->source_port},
                  {"exporters", enabled->exporters}});
  }

  // The session's export: configuration and the exporter's own counters (summed over the
  // exporters it had); null when it never exported.
  static Json ExportJson(const std::optional<ExportSummary>& e) {
    if (!e) return nullptr;
    Json out{{"enabled", e->active},
             {"collector", e->collector},
             {"source_port", e->source_port},
             {"netflow_version", static_cast<int>(e->config.version)},
             {"biflow", e->config.biflow},
             {"active_timeout_sec", e->active_timeout_sec},
             {"exporters", e->exporters},
             {"error", e->error.empty() ? Json(nullptr) : Json(e->error)}};
    e->stats.ForEach([&](std::string_view name, std::string_view, uint64_t value) {
      out[std::string(name)] = value;
    });
    return out;
  }

  void Encryption(const http::Request& req, http::Response& res) {
    Validator v("body");
    Json body = v.ParseBody(req.body, false);
    if (v.body_invalid()) return SendJson(res, 422, v.ErrorBody());
    auto cipher = v.Choice(body, "cipher_suite", std::nullopt,
                           {"AES-256-GCM", "AES-128-GCM", "ChaCha20-Poly1305"});
    auto key_file = v.String(body, "key_file", std::nullopt);
    if (cipher && key_file) {
      if (auto why = CheckKeyFile(*key_file, *cipher); !why.empty()) {
        v.Fail("key_file", "value_error", "Value error, " + why, *key_file);
      }
    }
    if (!v.ok()) return SendJson(res, 422, v.ErrorBody());
    Json config{{"cipher_suite", *cipher}, {"key_file", *key_file}};
    {
      std::lock_guard<std::mutex> lock(config_mu_);
      encryption_ = config;
    }
    SendJson(res, 501,
             Json{{"detail",
                   "encrypted recording is not wired into this build yet; the cipher suite and "
                   "key file were checked and stored"},
                  {"configuration", config}});
  }

  // Empty when the key file is acceptable; otherwise why not.
  std::string CheckKeyFile(const std::string& path, const std::string& cipher) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path canonical = fs::weakly_canonical(path, ec);
    if (!opt_.key_dir.empty()) {
      const fs::path dir = fs::weakly_canonical(opt_.key_dir, ec);
      auto rel = canonical.lexically_relative(dir);
      if (rel.empty() || *rel.begin() == "..") {
        return "key file must be inside the key directory " + dir.string();
      }
    }
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return "key file " + path + ": " + std::strerror(errno);
    if (!S_ISREG(st.st_mode)) return "key file " + path + " is not a regular file";
    if (st.st_mode & 077) {
      return "key file " + path + " is readable or writable by group or others (chmod 600 it)";
    }
    std::ifstream in(path, std::ios::binary);
    std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) return "cannot read key file " + path;
    const size_t want = cipher == "AES-128-GCM" ? 16 : 32;
    std::string trimmed = content;
    while (!trimmed.empty() && (trimmed.back() == '\n' || trimmed.back() == '\r')) {
      trimmed.pop_back();
    }
    const bool hex = trimmed.size() == want * 2 &&
                     trimmed.find_first_not_of("0123456789abcdefABCDEF") == std::string::npos;
    if (!hex && content.size() != want) {
      return "key file " + path + " must hold " + std::to_string(want) + " raw bytes or " +
             std::to_string(want * 2) + " hex digits for " + cipher;
    }
    return {};
  }

  void Firmware(const http::Request&, http::Response& res) {
    SendJson(res, 501,
             Json{{"status", "unavailable"},
                  {"detail",
                   "firmware signature verification is not wired into this build yet: no "
                   "artifact is loaded into the kernel or a NIC by the libpcap backend"}});
  }

  void Prometheus(const http::Request&, http::Response& res) {
    auto m = engine_.GetMetrics();
    const EngineStatus st = engine_.GetStatus();
    res.set_content(prom_.Render(st, m ? &*m : nullptr), "text/plain; version=0.0.4");
  }

  Engine& engine_;
  ServerOptions opt_;
  std::unique_ptr<http::Server> svr_;
  std::map<std::string, std::vector<std::string>> methods_;
  PrometheusText prom_;
  std::mutex config_mu_;
  Json netflow_;     // guarded by config_mu_
  Json encryption_;  // guarded by config_mu_
};

ApiServer::ApiServer(Engine& engine, ServerOptions options)
    : impl_(std::make_unique<Impl>(engine, std::move(options))) {}
ApiServer::~ApiServer() = default;
Status ApiServer::Bind() { return impl_->Bind(bound_port_); }
bool ApiServer::Run() { return impl_->Run(); }
void ApiServer::Stop() { impl_->Stop(); }

}  // namespace jarvis::api
