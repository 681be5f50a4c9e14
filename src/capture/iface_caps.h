// What a network interface offers the capture backends, read without disturbing it: the driver
// (ETHTOOL_GDRVINFO), RX queues (ETHTOOL_GCHANNELS, else sysfs), timestamping
// (ETHTOOL_GET_TS_INFO), XDP support (the kernel's XDP feature flags over the "netdev" generic
// netlink family, Linux 6.3 and later; a table of drivers otherwise) and any XDP program already
// attached (rtnetlink IFLA_XDP). Nothing here attaches, binds or configures anything.
//
// One probe serves both the backends report (`GET .../backends?interface=`, `jarvis-capture
// backends -i`) and the refusals at open time, so what the report says a backend accepts on an
// interface is what opening it accepts.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "capture/source.h"
#include "core/error.h"

namespace jarvis {

// ETHTOOL_GET_TS_INFO, decoded.
struct TimestampCaps {
  bool queried = false;          // the ioctl answered; false leaves the rest at "none"
  std::string query_error;       // why it did not answer
  uint32_t so_timestamping = 0;  // SOF_TIMESTAMPING_* the interface can give
  int phc_index = -1;            // the PTP hardware clock (/dev/ptpN), -1 for none
  uint32_t rx_filters = 0;       // 1 << HWTSTAMP_FILTER_*
  bool software_rx() const;      // SOF_TIMESTAMPING_RX_SOFTWARE
  bool hardware_rx() const;      // SOF_TIMESTAMPING_RX_HARDWARE and RAW_HARDWARE: the NIC stamps
                                 // received packets with its own clock
};

// How the XDP facts were learnt.
enum class XdpCapsSource {
  kKernelFeatures,  // probed: the kernel's xdp-features of the device (netdev netlink family)
  kDriverTable,     // the kernel has no such query: from the driver name and kDriverXdpTable
  kUnknown,         // neither: the query failed and the driver is not in the table
};

struct XdpCaps {
  XdpCapsSource source = XdpCapsSource::kUnknown;
  std::string source_note;  // e.g. why the kernel query was not used
  uint64_t features = 0;    // NETDEV_XDP_ACT_* as the kernel reported them (kKernelFeatures)
  bool native = false;      // native (driver) mode with XDP_REDIRECT, which AF_XDP needs
  bool zero_copy = false;   // AF_XDP sockets can bind zero-copy
  // An XDP program attached to the interface now (rtnetlink IFLA_XDP), 0 for none.
  uint32_t attached_prog_id = 0;
  std::string attached_mode;  // "native", "generic", "offload" or "several"
};

struct InterfaceCaps {
  std::string name;
  uint32_t ifindex = 0;
  std::string driver;  // "veth", "ixgbe", ...; empty when the driver does not say
  std::string driver_version;
  std::string bus_info;  // a PCI address for PCI NICs
  bool up = false;       // IFF_UP
  uint32_t mtu = 0;
  uint32_t rx_queues = 1;      // RX queues in use
  uint32_t max_rx_queues = 0;  // what the driver could be set to (0: not reported)
  std::string queues_from;     // "ethtool channels" or "sysfs"
  TimestampCaps timestamps;
  XdpCaps xdp;
};

// Probes `name`. kNotFound when there is no such interface, kInvalidArgument for an empty name
// or one longer than IFNAMSIZ - 1. Parts that cannot be read (an ioctl the driver lacks) are
// left at their "none" values with the reason in the part's note; they are not errors.
Result<InterfaceCaps> ProbeInterface(std::string_view name);

// The XDP program attached to interface `ifindex` now (rtnetlink IFLA_XDP).
struct XdpAttachment {
  uint32_t prog_id = 0;  // 0 when several are attached (their ids are per mode) or none
  std::string mode;      // "native", "generic", "offload", "several"; empty for none
  bool attached() const { return !mode.empty(); }
};
Result<XdpAttachment> AttachedXdp(uint32_t ifindex);

// The MTU of interface `ifindex` now (rtnetlink IFLA_MTU).
Result<uint32_t> LinkMtu(uint32_t ifindex);

// ETHTOOL_GET_TS_INFO of `name` alone (what CheckTimestampSource needs at open time).
TimestampCaps ProbeTimestamps(const std::string& name);

// The most RX queues RxQueueCount reports.
constexpr uint32_t kMaxRxQueues = 64;

// RX queues in use: ETHTOOL_GCHANNELS (rx + combined), else the rx-N entries of
// /sys/class/net/NAME/queues, else 1. `from` (optional) says which answered.
uint32_t RxQueueCount(const std::string& name, std::string* from = nullptr);

// Decoding, kept apart from the system calls for tests.

// Names of the NETDEV_XDP_ACT_* bits set in `features` ("basic", "redirect", "xsk-zerocopy", ...,
// the kernel's own names), unknown bits as "bit-N".
std::vector<std::string> XdpFeatureNames(uint64_t features);
// What the backends need from those bits: native mode is BASIC + REDIRECT (the program
// redirects into an XSKMAP); zero-copy is XSK_ZEROCOPY.
void ApplyXdpFeatures(uint64_t features, XdpCaps& caps);
// The driver table used where the kernel cannot be asked: drivers that have native XDP, and of
// those the ones with AF_XDP zero-copy, as of Linux 6.1 (the kernel of Debian 12). False/false
// for a driver it does not list; `listed` says whether it did.
struct DriverXdpSupport {
  bool listed = false;
  bool native = false;
  bool zero_copy = false;
};
DriverXdpSupport DriverXdpTable(std::string_view driver);
// Names of the HWTSTAMP_FILTER_* bits of `rx_filters` ("none", "all", "ptp-v2-event", ...).
std::vector<std::string> RxFilterNames(uint32_t rx_filters);

// The rule for timestamp sources, shared by every backend's open and the backends report.
// `kernel` and `ntp` are always possible (software stamps by the kernel, host clock).
// `hardware` needs the interface to stamp received packets with its own clock
// (TimestampCaps::hardware_rx); `ptp` also needs a PTP hardware clock (phc_index >= 0).
// `host_clock_only` is the backend's reason when it can only stamp with the host clock whatever
// the interface offers (empty for a backend that reads the NIC's clock). Refusals are
// kUnavailable with field "timestamp_source" (a 422 through the API).
Status CheckTimestampSource(TimestampSource source, const std::string& iface,
                            const TimestampCaps& caps, std::string_view host_clock_only);
// The same, probing `iface` first (only when `source` is hardware or ptp and the backend could
// honour it).
Status CheckTimestampSource(TimestampSource source, const std::string& iface,
                            std::string_view host_clock_only);

}  // namespace jarvis
