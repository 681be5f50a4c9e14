// The `af_packet` backend: a TPACKET_V3 memory-mapped ring, read a block at a time.
//
// Packets are handed out as views into the ring; the block they live in goes back to the
// kernel when the batch that holds its last packets is reset (a Lease), so nothing is copied.
// Several sockets can join one PACKET_FANOUT group (hash mode, which the kernel computes over
// the flow symmetrically), one per worker thread, each metering its own flow shard.
//
// The BPF filter is compiled by libpcap and attached with SO_ATTACH_FILTER; without a filter a
// one-instruction program enforces the snaplen. Drops come from PACKET_STATISTICS.
// buffer_usage_pct is the share of ring blocks the kernel has filled that are not yet read.
#pragma once

#include <memory>
#include <string>

#include "capture/source.h"

namespace jarvis {

struct AfPacketOptions {
  uint32_t fanout_group = 0;  // 0: no fanout; else the group id all members share
};

Result<std::unique_ptr<CaptureSource>> OpenAfPacketSource(const SourceOptions& options);
// One member of a fanout group (see AfPacketOptions).
Result<std::unique_ptr<CaptureSource>> OpenAfPacketFanoutMember(const SourceOptions& options,
                                                               uint32_t fanout_group);

std::string AfPacketUnavailableReason();

// What the kernel lets this backend do on an interface, found by asking it, not by version:
// an AF_PACKET socket (bound to nothing) takes PACKET_VERSION TPACKET_V3; a second one, with a
// filter that accepts nothing attached first so that it never holds a packet, is bound to the
// interface and joins a fanout group of its own (PACKET_FANOUT_FLAG_UNIQUEID: never another
// process's group) in the mode the backend uses. Both sockets are closed before returning. The
// interface's traffic is not touched.
struct AfPacketProbe {
  bool probed = false;  // false: no socket could be opened (`error` says why)
  bool tpacket_v3 = false;
  bool fanout = false;
  std::string error;  // the first refusal, if any
};
AfPacketProbe ProbeAfPacket(uint32_t ifindex);
// The fanout mode the backend's workers use ("hash", symmetric over the flow, with defrag).
inline constexpr std::string_view kAfPacketFanoutMode = "hash";

// Why `hardware` and `ptp` timestamps are refused whatever the interface offers.
inline constexpr std::string_view kAfPacketHostClockOnly =
    "the af_packet backend takes kernel timestamps only in this build";

}  // namespace jarvis
