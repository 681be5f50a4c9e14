// The `xdp` backend: AF_XDP sockets (libxdp's xsk API) fed by the project's XDP program
// (xdp_redirect.bpf.c, loaded with libbpf).
//
// One socket per RX queue of the interface, each with its own UMEM (2048-byte frames where the
// MTU fits in one, else 4096; 32768 per queue by default, sized from buffer_size otherwise; in
// transparent huge pages where the kernel has them), fill and RX rings; one
// CaptureSource polls them all, so a packet on any queue is captured. Packets are handed out as
// views into the UMEM; their frames go back to the fill ring when the batch is reset (a
// Lease), so nothing is copied in user space.
//
// The program is attached in native (driver) mode where the driver has it, else in generic
// (SKB) mode; sockets bind zero-copy where the driver supports it, else in copy mode. mode()
// says which ("native/copy"). The attachment is a bpf_link owned by this process: it goes away
// when the source is closed and also when the process dies in any way (SIGKILL included), so no
// program is left on the interface. A program of ours that an older run left attached the old
// way (netlink) is removed when the next capture on that interface starts.
//
// The BPF filter runs in user space (pcap_offline_filter on each frame before it enters a
// batch), so the packets it excluded are counted. Drops are XDP_STATISTICS' rx_dropped +
// rx_ring_full summed over the sockets. Timestamps are CLOCK_MONOTONIC taken by the XDP program
// at the hook, converted to wall-clock time: `kernel` and `ntp` only. Everything about the
// choices and what was measured is in docs/BACKENDS.md.
#pragma once

#include <memory>
#include <string>

#include "capture/source.h"

namespace jarvis {

Result<std::unique_ptr<CaptureSource>> OpenXdpSource(const SourceOptions& options);

// Empty when the backend can work here; otherwise why not: built without libxdp, no privilege
// (root or CAP_NET_ADMIN + CAP_NET_RAW + CAP_BPF), or a kernel without AF_XDP.
std::string XdpUnavailableReason();

// Why `hardware` and `ptp` timestamps are refused whatever the interface offers.
inline constexpr std::string_view kXdpHostClockOnly =
    "the xdp backend stamps packets in the kernel's XDP hook (CLOCK_MONOTONIC, converted to "
    "wall-clock time): timestamp sources kernel and ntp only";

}  // namespace jarvis
