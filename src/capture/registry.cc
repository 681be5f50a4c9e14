// The backend table. Adding a backend is one folder under src/capture/, one row here and, when
// it needs a library, one CMake option.
#include <array>
#include <cstring>

#include "capture/af_packet/af_packet_source.h"
#include "capture/dpdk/dpdk_source.h"
#include "capture/file/file_source.h"
#include "capture/libpcap/pcap_source.h"
#include "capture/pf_ring/pf_ring_source.h"
#include "capture/source.h"
#include "capture/xdp/xdp_source.h"

namespace jarvis {
namespace {

std::string AlwaysAvailable() { return {}; }

const std::array kBackends = {
    BackendInfo{"libpcap", BackendKind::kLive,
                "libpcap live capture (TPACKET_V3 inside on Linux), BPF filter, drops from "
                "pcap_stats",
                &OpenPcapLiveSource, &PcapLiveUnavailableReason, kLibpcapHostClockOnly},
    BackendInfo{"af_packet", BackendKind::kLive,
                "TPACKET_V3 memory-mapped ring read a block at a time, PACKET_FANOUT over "
                "workers, drops from PACKET_STATISTICS, ring occupancy",
                &OpenAfPacketSource, &AfPacketUnavailableReason, kAfPacketHostClockOnly},
    BackendInfo{"dpdk", BackendKind::kLive,
                "DPDK 22.11 EAL and ethdev rx bursts from a PCI port or a vdev (net_af_xdp or "
                "net_af_packet on a kernel interface, net_pcap, ...); plugin loaded at run time, "
                "BPF filter in user space, drops from rte_eth_stats or the kernel socket",
                &OpenDpdkSource, &DpdkUnavailableReason, kDpdkHostClockOnly},
    BackendInfo{"pf_ring", BackendKind::kLive,
                "ntop PF_RING through libpfring loaded at run time; needs the pf_ring kernel "
                "module",
                &OpenPfRingSource, &PfRingUnavailableReason, kPfRingHostClockOnly},
    BackendInfo{"xdp", BackendKind::kLive,
                "AF_XDP sockets (libxdp) on every RX queue fed by the project's XDP program, "
                "native or generic mode, zero-copy where the driver has it, filter in user "
                "space, drops from XDP_STATISTICS",
                &OpenXdpSource, &XdpUnavailableReason, kXdpHostClockOnly},
    BackendInfo{"file", BackendKind::kFile,
                "pcap and pcapng files through libpcap's reader, as fast as possible or at "
                "recorded pace",
                &OpenFileSource, &AlwaysAvailable},
};

}  // namespace

std::span<const BackendInfo> Backends() { return kBackends; }

const BackendInfo* FindBackend(std::string_view name) {
  for (const BackendInfo& b : kBackends) {
    if (b.name == name) return &b;
  }
  return nullptr;
}

Result<std::unique_ptr<CaptureSource>> OpenSource(std::string_view backend,
                                                  const SourceOptions& options) {
  const BackendInfo* info = FindBackend(backend);
  if (info == nullptr) {
    std::string names;
    for (const BackendInfo& b : kBackends) {
      if (!names.empty()) names += ", ";
      names += b.name;
    }
    return MakeError(ErrorCode::kInvalidArgument,
                     "unknown backend '" + std::string(backend) + "' (known: " + names + ")");
  }
  if (std::string why = info->unavailable_reason(); !why.empty()) {
    return MakeError(ErrorCode::kUnavailable,
                     "backend '" + std::string(backend) + "' is unavailable: " + why);
  }
  return info->open(options);
}

std::string_view TimestampSourceName(TimestampSource s) {
  switch (s) {
    case TimestampSource::kKernel:
      return "kernel";
    case TimestampSource::kHardware:
      return "hardware";
    case TimestampSource::kPtp:
      return "ptp";
    case TimestampSource::kNtp:
      return "ntp";
  }
  return "kernel";
}

Result<TimestampSource> ParseTimestampSource(std::string_view name) {
  for (TimestampSource s : {TimestampSource::kKernel, TimestampSource::kHardware,
                            TimestampSource::kPtp, TimestampSource::kNtp}) {
    if (TimestampSourceName(s) == name) return s;
  }
  return MakeError(ErrorCode::kInvalidArgument,
                   "unknown timestamp source '" + std::string(name) +
                       "' (known: kernel, hardware, ptp, ntp)");
}

}  // namespace jarvis
