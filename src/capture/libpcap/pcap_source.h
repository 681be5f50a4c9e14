// The `libpcap` backend: live capture through pcap_create/pcap_activate.
//
// Buffer size, snaplen, immediate mode, promiscuous mode, nanosecond timestamps and a BPF
// filter compiled by libpcap and run in the kernel. Drops come from pcap_stats(): ps_drop
// (kernel buffer full) and ps_ifdrop (interface). The handle is non-blocking and waited on
// with poll(), beside an eventfd that Interrupt() writes, so a stop is never stuck in a read.
#pragma once

#include <memory>
#include <string>

#include "capture/source.h"

namespace jarvis {

Result<std::unique_ptr<CaptureSource>> OpenPcapLiveSource(const SourceOptions& options);

// Empty when live capture can work here; otherwise why not (e.g. no CAP_NET_RAW).
std::string PcapLiveUnavailableReason();

// libpcap asks the NIC for adapter timestamps where the interface has them: no host-clock-only
// limit (see CheckTimestampSource in capture/iface_caps.h).
inline constexpr std::string_view kLibpcapHostClockOnly = "";

}  // namespace jarvis
