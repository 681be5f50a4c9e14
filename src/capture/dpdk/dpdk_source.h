// The `dpdk` backend: DPDK's EAL and ethdev rx bursts, from a PCI port or a virtual device
// (net_af_xdp, net_af_packet, net_pcap, ...).
//
// DPDK lives in a plugin, `jarvis-capture-dpdk.so`, that is loaded with dlopen() the first time
// the backend is opened or probed; the main binary has no DPDK dependency, so unrelated
// commands neither load DPDK's libraries nor run their constructors (see docs/BACKENDS.md for
// the measurements). The plugin is found through JARVIS_DPDK_PLUGIN (a path; ignored by a
// binary with file capabilities), else beside the executable, else in ../lib/jarvis-capture/.
//
// The capture target is a DPDK port name or PCI address, a vdev named in the DPDK arguments, or
// a kernel interface, on which the backend creates a vdev (net_af_xdp where AF_XDP works, else
// net_af_packet). EAL arguments come from SourceOptions::dpdk_args, else the JARVIS_DPDK_ARGS
// environment variable, else defaults (no hugepages, no PCI scan, no shared files).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "capture/source.h"

namespace jarvis {

Result<std::unique_ptr<CaptureSource>> OpenDpdkSource(const SourceOptions& options);

// Empty when usable; otherwise "built without DPDK", or why the plugin cannot be loaded, or
// why the host cannot run it.
std::string DpdkUnavailableReason();

// Why `hardware` and `ptp` timestamps are refused whatever the interface offers.
inline constexpr std::string_view kDpdkHostClockOnly =
    "the dpdk backend stamps packets with the host clock at receive; it cannot give hardware "
    "or PTP timestamps";

namespace dpdk {

// The table the plugin exports as `jarvis_dpdk_plugin_v1`. The plugin is built from the same
// tree as the binary; `abi` and the struct sizes catch a stale plugin from another build.
struct PluginApi {
  uint32_t abi;
  uint32_t source_options_size;
  uint32_t source_stats_size;
  const char* (*dpdk_version)();
  Result<std::unique_ptr<CaptureSource>> (*open)(const SourceOptions& options);
  std::string (*unavailable_reason)();
};

constexpr uint32_t kPluginAbi = 1;
constexpr const char* kPluginSymbol = "jarvis_dpdk_plugin_v1";
constexpr const char* kPluginFile = "jarvis-capture-dpdk.so";

// Loads the plugin from `path` (tests point it at a file that does not exist). Returns the
// table or why it could not be loaded.
Result<const PluginApi*> LoadPlugin(const std::string& path);

// Where the plugin is looked for, in order.
std::vector<std::string> PluginCandidates();

}  // namespace dpdk
}  // namespace jarvis
