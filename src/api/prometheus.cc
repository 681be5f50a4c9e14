#include "api/prometheus.h"

#include <fmt/format.h>

#include <iterator>
#include <string>
#include <string_view>

namespace jarvis::api {

void PrometheusText::CountRequest(int status) {
  const int cls = status / 100;
  if (cls >= 1 && cls <= 5) requests_[cls].fetch_add(1, std::memory_order_relaxed);
}

std::string PrometheusText::Render(const EngineStatus& status,
                                   const EngineMetrics* m) const {
  std::string out;
  auto it = std::back_inserter(out);
  const auto metric = [&](const char* name, const char* type, const char* help) {
    fmt::format_to(it, "# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  };
  metric("jarvis_capture_running", "gauge", "1 while a capture session runs");
  fmt::format_to(it, "jarvis_capture_running {}\n",
                 status.state == SessionState::kRunning ? 1 : 0);
  metric("jarvis_capture_failed", "gauge", "1 when the last session ended with an error");
  fmt::format_to(it, "jarvis_capture_failed {}\n", status.state == SessionState::kFailed ? 1 : 0);
  if (m != nullptr) {
    const CaptureTotals& t = m->totals;
    metric("jarvis_capture_packets_total", "counter",
           "Packets captured in the current or last session");
    fmt::format_to(it, "jarvis_capture_packets_total {}\n", t.packets);
    metric("jarvis_capture_bytes_total", "counter",
           "Wire bytes of the packets captured in the current or last session");
    fmt::format_to(it, "jarvis_capture_bytes_total {}\n", t.bytes);
    if (t.has_kernel_counters) {
      metric("jarvis_capture_dropped_packets_total", "counter",
             "Packets lost before capture, by cause, as the kernel counts them");
      fmt::format_to(it, "jarvis_capture_dropped_packets_total{{cause=\"kernel\"}} {}\n",
                     t.dropped_kernel);
      fmt::format_to(it, "jarvis_capture_dropped_packets_total{{cause=\"interface\"}} {}\n",
                     t.dropped_interface);
    }
    metric("jarvis_capture_duration_seconds", "gauge", "Age of the current or last session");
    fmt::format_to(it, "jarvis_capture_duration_seconds {:.3f}\n", t.duration_sec);
    metric("jarvis_flows_active", "gauge", "Flows in the flow table");
    fmt::format_to(it, "jarvis_flows_active {}\n", m->active_flows);
    metric("jarvis_flows_created_total", "counter", "Flows created since the session started");
    fmt::format_to(it, "jarvis_flows_created_total {}\n", m->total_flows);
    const FlowCounters& f = m->flow_counters;
    metric("jarvis_flow_records_total", "counter", "Flow records ended or exported");
    fmt::format_to(it, "jarvis_flow_records_total {}\n", f.flows_exported);
    metric("jarvis_flow_evictions_total", "counter",
           "Flows ended early because the table was full (end reason lack_of_resources)");
    fmt::format_to(it, "jarvis_flow_evictions_total {}\n", f.evicted);
    metric("jarvis_flow_unmetered_packets_total", "counter",
           "Packets without a usable IP header, not metered into flows");
    fmt::format_to(it, "jarvis_flow_unmetered_packets_total {}\n", f.not_metered);
    metric("jarvis_decode_anomalies_total", "counter",
           "Packets the decoder could not read in full, by reason");
    m->decode_counters.ForEach([&](std::string_view name, std::string_view, uint64_t v) {
      fmt::format_to(it, "jarvis_decode_anomalies_total{{reason=\"{}\"}} {}\n", name, v);
    });
  }
  metric("jarvis_netflow_enabled", "gauge", "1 while the running session exports flows");
  fmt::format_to(it, "jarvis_netflow_enabled {}\n", status.netflow_enabled ? 1 : 0);
  if (m != nullptr && m->totals.netflow) {
    // The exporter's own counters, summed over the session's exporters: counters get _total,
    // the queue length is a gauge, and the byte count keeps its unit before _total.
    m->totals.netflow->stats.ForEach([&](std::string_view name, std::string_view help, uint64_t v) {
      std::string prom;
      const char* type = "counter";
      if (name == "flows_queued") {
        prom = "jarvis_netflow_flows_queued";
        type = "gauge";
      } else if (name == "bytes_sent") {
        prom = "jarvis_netflow_sent_bytes_total";
      } else {
        prom = fmt::format("jarvis_netflow_{}_total", name);
      }
      fmt::format_to(it, "# HELP {} NetFlow/IPFIX export: {}\n# TYPE {} {}\n{} {}\n", prom, help,
                     prom, type, prom, v);
    });
  }
  metric("jarvis_http_requests_total", "counter", "API requests answered, by status class");
  for (int cls = 1; cls <= 5; ++cls) {
    fmt::format_to(it, "jarvis_http_requests_total{{code=\"{}xx\"}} {}\n", cls,
                   requests_[cls].load(std::memory_order_relaxed));
  }
  return out;
}

}  // namespace jarvis::api
