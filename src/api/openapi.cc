#include "api/openapi.h"

#include <string>

namespace jarvis::api {
namespace {

using Json = nlohmann::json;

Json Int(int64_t def, std::optional<int64_t> min = std::nullopt,
         std::optional<int64_t> max = std::nullopt) {
  Json j{{"type", "integer"}, {"default", def}};
  if (min) j["minimum"] = *min;
  if (max) j["maximum"] = *max;
  return j;
}

Json Enum(std::initializer_list<const char*> values, const char* def) {
  Json j{{"type", "string"}, {"enum", Json::array()}};
  for (const char* v : values) j["enum"].push_back(v);
  if (def != nullptr) j["default"] = def;
  return j;
}

Json Str(const char* def = nullptr) {
  Json j{{"type", "string"}};
  if (def != nullptr) j["default"] = def;
  return j;
}

Json Body(Json properties, std::initializer_list<const char*> required) {
  Json schema{{"type", "object"}, {"properties", std::move(properties)}};
  if (required.size() > 0) {
    schema["required"] = Json::array();
    for (const char* r : required) schema["required"].push_back(r);
  }
  return Json{{"required", required.size() > 0},
              {"content", {{"application/json", {{"schema", schema}}}}}};
}

Json Responses(std::initializer_list<std::pair<const char*, const char*>> codes) {
  Json r = Json::object();
  for (const auto& [code, what] : codes) {
    r[code] = Json{{"description", what}};
    if (std::string(code) == "422") {
      r[code]["content"]["application/json"]["schema"]["$ref"] =
          "#/components/schemas/HTTPValidationError";
    } else if (code[0] != '2') {
      r[code]["content"]["application/json"]["schema"]["$ref"] = "#/components/schemas/Detail";
    }
  }
  return r;
}

Json Op(const char* summary, Json responses, Json body = nullptr, Json params = nullptr) {
  Json op{{"summary", summary}, {"responses", std::move(responses)}};
  if (!body.is_null()) op["requestBody"] = std::move(body);
  if (!params.is_null()) op["parameters"] = std::move(params);
  return op;
}

Json QueryParam(const char* name, Json schema, const char* description) {
  return Json{{"name", name},
              {"in", "query"},
              {"required", false},
              {"schema", std::move(schema)},
              {"description", description}};
}

}  // namespace

Json OpenApiDocument() {
  const std::string p = "/packet_capture/capture";
  Json paths = Json::object();
  paths[p + "/backends"]["get"] =
      Op("Capture backends, whether each can run here and why not",
         Responses({{"200",
                     "available_backends: name, status, reason, max_throughput_gbps, "
                     "cpu_overhead_pct, figures (nominal or measured); with "
                     "?interface=, modes per backend (the modes it would use there: xdp "
                     "native/generic and zero-copy/copy, dpdk vdev and memory, accepted "
                     "timestamp_sources, ...) and a top-level interface object (driver, "
                     "rx_queues, xdp, timestamping)"},
                    {"400", "no such interface"},
                    {"422", "interface name empty or longer than 15 characters"}}),
         nullptr,
         Json::array({QueryParam("interface", Str(),
                                 "also report each backend's modes on this interface, and "
                                 "what the interface offers (read-only probe)")}));
  paths[p + "/start"]["post"] =
      Op("Start capturing on an interface",
         Responses({{"200", "status, interface, backend, buffer_size_mb, timestamp_source, "
                            "session_id"},
                    {"400", "no such interface, backend unavailable, or no privilege"},
                    {"409", "a capture is already running"},
                    {"422", "invalid field"}}),
         Body({{"interface", Str()},
               {"backend", Enum({"libpcap", "af_packet", "xdp", "dpdk", "pf_ring"}, "libpcap")},
               {"buffer_size_mb", Int(256, 64, 2048)},
               {"timestamp_source", Enum({"kernel", "hardware", "ptp", "ntp"}, "kernel")},
               {"filter_expr", Str("")},
               {"snaplen", Int(0, 0, 262144)},
               {"workers", Int(1, 1, 64)}},
              {"interface"}));
  paths[p + "/stop"]["post"] =
      Op("Stop the capture; graceful drains the kernel ring and ends every flow first",
         Responses({{"200",
                     "status, packets_captured, packets_dropped, bytes_captured, "
                     "duration_sec, drop_rate (percent), final_metrics, netflow_export "
                     "(the exporter's final counters, or null)"},
                    {"409", "no capture is running"},
                    {"422", "invalid field"}}),
         Body({{"graceful", {{"type", "boolean"}, {"default", true}}}}, {}));
  paths[p + "/status"]["get"] =
      Op("Session state and configuration",
         Responses({{"200",
                     "running, interface, backend, buffer_size_mb, uptime_sec, "
                     "flow_metering_enabled, encryption_enabled, netflow_enabled, state, "
                     "session_id, error, backend_mode (what the backend chose at open: "
                     "xdp native/copy ..., dpdk device; null where it has no choice)"}}));
  paths[p + "/metrics"]["get"] =
      Op("Measurements of the current or last session",
         Responses({{"200",
                     "packets_captured, packets_dropped (kernel counters), bytes_captured, "
                     "drop_rate (percent), active_flows, total_flows, throughput_mbps, "
                     "throughput_gbps, buffer_usage_pct (null where the backend cannot "
                     "see its ring), packet_rate_pps, timestamp, capture_duration_sec, "
                     "netflow_export (exporter counters, or null)"},
                    {"409", "no session yet"}}));
  paths[p + "/flow/meter/enable"]["post"] =
      Op("Meter packets into bidirectional flows",
         Responses({{"200", "status, table_size, idle_timeout_sec, export_interval_sec"},
                    {"409", "metering already on for the running session"},
                    {"422", "invalid field"}}),
         Body({{"table_size", Int(100000, 1, 16777216)},
               {"idle_timeout_sec", Int(300, 1, 86400)},
               {"export_interval_sec", Int(60, 1, 86400)}},
              {}));
  paths[p + "/flows"]["get"] = Op(
      "Active flows, sorted and filtered",
      Responses({{"200", "a list of flow objects"},
                 {"409", "flow metering is off"},
                 {"422", "invalid parameter"}}),
      nullptr,
      Json::array({QueryParam("limit", Int(100, 1, 100000), "most flows to return"),
                   QueryParam("min_packets", Int(0, 0), "only flows with at least this many"),
                   QueryParam("sort_by", Enum({"packets", "bytes", "duration"}, "packets"),
                              "descending order by"),
                   QueryParam("address", Str(), "only flows with this address on either side"),
                   QueryParam("port", Int(0, 0, 65535), "only flows with this port on either side"),
                   QueryParam("protocol", Int(0, 0, 255), "only flows of this IP protocol")}));
  paths[p + "/netflow/export/enable"]["post"] =
      Op("Export the running session's finished and active-timeout flows to a NetFlow v5/v9 "
         "or IPFIX collector over UDP; export_interval_sec becomes the meter's active timeout; "
         "enabling again replaces the exporter; the export ends with the session",
         Responses({{"200",
                     "status (enabled), collector_ip, collector_port, export_interval_sec, "
                     "netflow_version, biflow, collector_address (as resolved), "
                     "source_port, exporters (this session's, replacements included)"},
                    {"409", "no capture is running, or flow metering is off"},
                    {"422",
                     "invalid field, a collector that does not resolve or cannot be "
                     "reached, or biflow without netflow_version 10"}}),
         Body({{"collector_ip", Str()},
               {"collector_port", Int(2055, 1, 65535)},
               {"export_interval_sec", Int(60, 1, 86400)},
               {"netflow_version", {{"type", "integer"}, {"enum", {5, 9, 10}}, {"default", 5}}},
               {"biflow", {{"type", "boolean"}, {"default", false}}}},
              {"collector_ip"}));
  paths[p + "/encryption/enable"]["post"] =
      Op("Record packets sealed with an AEAD",
         Responses({{"501", "validated and stored; recording is not wired into this build yet"},
                    {"422", "invalid field, missing key file or bad permissions"}}),
         Body({{"cipher_suite", Enum({"AES-256-GCM", "AES-128-GCM", "ChaCha20-Poly1305"}, nullptr)},
               {"key_file", Str()}},
              {"cipher_suite", "key_file"}));
  paths[p + "/firmware/verify"]["get"] =
      Op("Verify the signatures of what is loaded into the kernel or NIC",
         Responses({{"501", "not wired into this build yet"}}));
  paths["/metrics"]["get"] =
      Op("Prometheus text exposition", Responses({{"200", "text/plain; version=0.0.4"}}));
  paths["/openapi.json"]["get"] = Op("This document", Responses({{"200", "OpenAPI 3.0"}}));
  paths["/healthz"]["get"] =
      Op("Liveness; never needs the bearer token", Responses({{"200", "{\"status\":\"ok\"}"}}));
  paths["/healthz"]["get"]["security"] = Json::array();  // exempt from the global bearer

  Json doc{{"openapi", "3.0.3"},
           {"info",
            {{"title", "jarvis-capture"},
             {"version", "0.1.0"},
             {"description", "Packet capture, flow metering and export for J.A.R.V.I.S."}}},
           {"paths", paths}};
  doc["components"]["securitySchemes"]["bearer"] = {{"type", "http"}, {"scheme", "bearer"}};
  doc["components"]["schemas"]["Detail"] = {
      {"type", "object"}, {"properties", {{"detail", {{"type", "string"}}}}}};
  doc["components"]["schemas"]["HTTPValidationError"] = {
      {"type", "object"},
      {"properties",
       {{"detail",
         {{"type", "array"},
          {"items",
           {{"type", "object"},
            {"properties",
             {{"loc", {{"type", "array"}, {"items", {{"type", "string"}}}}},
              {"msg", {{"type", "string"}}},
              {"type", {{"type", "string"}}}}}}}}}}}};
  doc["security"] = Json::array({Json{{"bearer", Json::array()}}});
  return doc;
}

}  // namespace jarvis::api
