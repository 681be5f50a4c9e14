// What a flow exporter sends where: the collector, the format and the knobs of the exporter
// thread; and the export URL syntax of the command line.
//
//   ipfix://HOST[:PORT][?biflow=1&mtu=1400&rate=50000&domain=1&template_refresh=10
//                        &template_packets=100&queue=65536&hold=200&source_port=0]
//   netflow9://HOST[:PORT][?...]     netflow5://HOST[:PORT][?...]
//
// HOST is an IPv4 address, an IPv6 address in brackets ([::1]) or a host name (resolved when the
// exporter is created). PORT defaults to 4739 for IPFIX and 2055 for NetFlow.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.h"
#include "export/flow_encoder.h"

namespace jarvis {

// What OnFlows does when the exporter's queue is full.
enum class QueueFullPolicy : uint8_t {
  kDrop,  // drop the batch's records and count them: live capture is never stalled
  kWait,  // wait for room: a file is read no faster than it is exported
};

struct ExportConfig {
  std::string collector_host;  // address or host name
  uint16_t collector_port = 2055;
  ExportVersion version = ExportVersion::kIpfix;
  bool biflow = false;                 // IPFIX only: one RFC 5103 biflow record per flow
  uint32_t mtu = 1400;                 // path MTU: messages fit in it with their IP and UDP headers
  uint32_t template_refresh_sec = 10;  // v9/IPFIX: templates re-sent this often (0: never)
  uint32_t template_refresh_packets = 100;  // ... and after this many messages (0: never)
  uint32_t observation_domain = 1;          // IPFIX domain, v9 source id, v5 engine id (8 bits)
  uint32_t queue_capacity = 65536;          // flow records waiting for the exporter thread
  QueueFullPolicy queue_full = QueueFullPolicy::kDrop;
  // Datagrams per second at most (0: as fast as the socket takes them). A local collector
  // with a 4 MiB receive buffer loses datagrams to unpaced bursts; see docs/EXPORT.md.
  uint32_t max_datagrams_per_sec = 50000;
  uint32_t max_hold_ms = 200;  // a partly filled message waits at most this long for records
  uint16_t source_port = 0;    // 0: an ephemeral port, kept for the lifetime

  // "ipfix://127.0.0.1:4739?biflow=1": the URL that gives this configuration.
  std::string Url() const;
};

// The scheme's default port: 4739 for IPFIX, 2055 for NetFlow.
uint16_t DefaultPort(ExportVersion version);

// Parses an export URL (syntax above). kInvalidArgument with the reason for anything else.
Result<ExportConfig> ParseExportUrl(std::string_view url);

// Checks a configuration as the REST API and Create() need it: version 5, 9 or 10, a
// collector, biflow only with IPFIX, an MTU between 576 and 65535, a non-zero queue. The error
// names the offending field (Error::field(): "netflow_version", "collector_ip", ...).
Status ValidateExportConfig(const ExportConfig& config);

}  // namespace jarvis
