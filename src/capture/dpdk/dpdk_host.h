// What the `dpdk` backend decides from the host before DPDK runs: which device it makes on a
// kernel interface and whether the EAL gets hugepages. No DPDK here: the plugin follows these
// decisions when it opens a source, and the backends report (`backends -i IFACE`) shows them
// without loading DPDK, so the two cannot disagree.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace jarvis::dpdk {

constexpr unsigned kDefaultEalMemoryMb = 256;
constexpr uint16_t kMaxRxQueues = 16;  // queues of one port the backend polls

// Whether this process can open AF_XDP sockets (the net_af_xdp driver needs them).
bool AfXdpSocketsWork();

// Whether hugepages can hold `memory_mb`: a hugetlbfs mount and enough free pages.
bool HugepagesFor(unsigned memory_mb);

// The RX queues of kernel interface `iface` that a vdev on it binds (1..kMaxRxQueues).
unsigned KernelRxQueues(const std::string& iface);

// The EAL memory the default arguments ask for on capture target `target`: the default plus
// room for a pool per queue of net_af_xdp (about 20 MiB each).
unsigned DefaultEalMemoryMb(const std::string& target);

// The device made on a kernel interface when the user names no DPDK port or vdev.
struct KernelDeviceChoice {
  std::string driver;          // "net_af_xdp" or "net_af_packet"; empty when refused
  std::string refusal;         // why the backend will not capture on the interface
  std::string why_not_af_xdp;  // when driver is net_af_packet
};

// Refused while an XDP program is attached to the interface (the packets it redirects would
// never reach the capture); net_af_xdp where AF_XDP sockets work (it takes the interface's
// packets from the kernel while it runs); net_af_packet otherwise. Opening falls back to
// net_af_packet, too, when net_af_xdp then fails to start.
KernelDeviceChoice ChooseKernelDevice(std::string_view iface, bool xdp_attached,
                                      bool af_xdp_sockets);

}  // namespace jarvis::dpdk
