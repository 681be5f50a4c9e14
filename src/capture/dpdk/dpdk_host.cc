#include "capture/dpdk/dpdk_host.h"

#include <linux/if_xdp.h>
#include <net/if.h>
#include <sys/socket.h>

#include <algorithm>
#include <fstream>

#include "capture/iface_caps.h"
#include "core/fd.h"

namespace jarvis::dpdk {

bool AfXdpSocketsWork() {
  UniqueFd fd(::socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0));
  return fd.valid();
}

bool HugepagesFor(unsigned memory_mb) {
  std::ifstream mounts("/proc/mounts");
  std::string dev, dir, type;
  bool mounted = false;
  while (!mounted && mounts >> dev >> dir >> type) {
    mounted = type == "hugetlbfs";
    mounts.ignore(4096, '\n');
  }
  if (!mounted) return false;
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  uint64_t value = 0, free_pages = 0, page_kib = 0;
  while (meminfo >> key >> value) {
    if (key == "HugePages_Free:") free_pages = value;
    if (key == "Hugepagesize:") page_kib = value;
    meminfo.ignore(4096, '\n');
  }
  return free_pages * page_kib >= static_cast<uint64_t>(memory_mb) * 1024;
}

unsigned KernelRxQueues(const std::string& iface) {
  return std::clamp<unsigned>(RxQueueCount(iface), 1, kMaxRxQueues);
}

unsigned DefaultEalMemoryMb(const std::string& target) {
  const unsigned queues = ::if_nametoindex(target.c_str()) ? KernelRxQueues(target) : 1;
  return kDefaultEalMemoryMb + 32 * queues;
}

KernelDeviceChoice ChooseKernelDevice(std::string_view iface, bool xdp_attached,
                                      bool af_xdp_sockets) {
  KernelDeviceChoice c;
  if (xdp_attached) {
    c.refusal = "interface " + std::string(iface) +
                " already has an XDP program attached (another capture?): packets it redirects "
                "would never reach the capture; detach it, or name a vdev with --dpdk-args";
    return c;
  }
  if (af_xdp_sockets) {
    c.driver = "net_af_xdp";
  } else {
    c.driver = "net_af_packet";
    c.why_not_af_xdp = "AF_XDP sockets cannot be opened here (no kernel support, or no privilege)";
  }
  return c;
}

}  // namespace jarvis::dpdk
