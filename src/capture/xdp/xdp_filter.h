// The user's BPF filter as the xdp backend runs it: in user space, on each frame before it
// enters a batch. A header of its own because libpcap's <pcap/bpf.h> and the kernel's
// <linux/bpf.h> (through libbpf) both define struct bpf_insn and cannot meet in one file.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/error.h"

namespace jarvis {

class BpfProgram;

namespace xdp {

constexpr int kLinkTypeEthernet = 1;  // DLT_EN10MB: AF_XDP frames start at the Ethernet header

class UserFilter {
 public:
  UserFilter();
  ~UserFilter();
  UserFilter(const UserFilter&) = delete;
  UserFilter& operator=(const UserFilter&) = delete;

  // Compiles `expr` (pcap-filter(7)) for Ethernet; kInvalidArgument, field "filter", when bad.
  // An empty expression matches everything.
  Status Compile(const std::string& expr, uint32_t snaplen);
  bool empty() const { return empty_; }
  // Runs the filter over a whole frame of `len` bytes.
  bool Matches(const uint8_t* data, uint32_t len) const;

 private:
  std::unique_ptr<BpfProgram> prog_;
  bool empty_ = true;
};

}  // namespace xdp
}  // namespace jarvis
