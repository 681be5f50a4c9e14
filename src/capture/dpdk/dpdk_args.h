// The EAL command line of the `dpdk` backend: parsing what a user gives, the defaults, and the
// choice of device for a capture target. Pure functions, no DPDK: unit-tested without it and
// compiled into both the main library and the DPDK plugin.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace jarvis::dpdk {

// What the EAL is initialised with, split from the devices each session attaches.
//
// `--vdev` values are taken out of the EAL arguments: the backend attaches them per session
// with rte_dev_probe() and detaches them when the session ends, because the EAL of DPDK 22.11
// cannot be initialised twice in one process. Everything else goes to rte_eal_init() once.
struct EalPlan {
  std::vector<std::string> eal_args;  // without argv[0]
  std::vector<std::string> vdevs;     // devargs strings: "net_pcap0,rx_pcap=/tmp/x.pcap"
  bool explicit_args = false;         // given by the user (--dpdk-args, JARVIS_DPDK_ARGS)
};

// Splits `text` into words as a shell would for plain words and '...' or "..." quoting (no
// variables, no escapes beyond a quote), then takes `--vdev X` and `--vdev=X` out.
Result<EalPlan> ParseDpdkArgs(std::string_view text);

// The arguments used when the user gives none: `memory_mb` of memory, from hugepages when
// `hugepages` (in memory: --in-memory, no files) else without (--no-huge --no-shconf); no PCI
// scan unless `pci_address` is set (then only that device is allowed); one lcore on
// `main_cpu`; telemetry off; log level notice (the log goes to an in-memory ring, see the
// plugin).
std::vector<std::string> DefaultEalArgs(int pid, int main_cpu, unsigned memory_mb,
                                        std::string_view pci_address, bool hugepages = false);

// "0000:03:00.0" or "03:00.0" (domain:bus:device.function).
bool LooksLikePciAddress(std::string_view s);

// The device name of a devargs string: "net_pcap0,rx_pcap=x" -> "net_pcap0".
std::string_view DevargsName(std::string_view devargs);

// The value of `key` in a devargs string ("iface" of "net_af_packet0,iface=veth0"); empty when
// absent.
std::string DevargsValue(std::string_view devargs, std::string_view key);

// Which of `vdevs` the capture target means: one named `target`, else one whose `iface=` is
// `target`. Returns its index, or -1.
int FindVdevForTarget(const std::vector<std::string>& vdevs, std::string_view target);

// The devargs of the vdev the backend creates on kernel interface `iface` when the user names
// no DPDK port. `driver` is "net_af_xdp" or "net_af_packet"; `serial` makes the name unique in
// the process. `buffer_kib` sizes the net_af_packet ring (frames of 2 KiB); `rx_queues` is the
// interface's receive queue count (net_af_xdp binds one socket per queue).
std::string DefaultVdev(std::string_view driver, unsigned serial, std::string_view iface,
                        unsigned buffer_kib, unsigned rx_queues);

// Joins words with spaces, quoting those that hold a space (for messages).
std::string JoinArgs(const std::vector<std::string>& words);

}  // namespace jarvis::dpdk
