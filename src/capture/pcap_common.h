// Pieces shared by the backends built on libpcap (libpcap live and file).
#pragma once

#include <pcap/pcap.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/packet.h"

namespace jarvis {

struct PcapCloser {
  void operator()(pcap_t* p) const {
    if (p != nullptr) pcap_close(p);
  }
};
using PcapHandle = std::unique_ptr<pcap_t, PcapCloser>;

// A compiled BPF program that frees itself.
class BpfProgram {
 public:
  BpfProgram() = default;
  BpfProgram(const BpfProgram&) = delete;
  BpfProgram& operator=(const BpfProgram&) = delete;
  ~BpfProgram() {
    if (compiled_) pcap_freecode(&prog_);
  }

  // Compiles `expr` for the link type and snaplen of `p`. An empty expression compiles to
  // nothing and Matches() accepts every packet.
  Status Compile(pcap_t* p, const std::string& expr);
  bool empty() const { return !compiled_; }
  const bpf_program* get() const { return &prog_; }
  bool Matches(const pcap_pkthdr& hdr, const uint8_t* data) const {
    return !compiled_ || pcap_offline_filter(&prog_, &hdr, data) != 0;
  }

 private:
  bpf_program prog_{};
  bool compiled_ = false;
};

// Compiles `expr` against a dead handle of the given link type: validates a filter without
// opening anything. Used by the API and CLI to reject a bad filter before capture starts.
Status ValidateFilter(const std::string& expr, int link_type = DLT_EN10MB,
                      uint32_t snaplen = 262144);

// Bytes that hold copies of packets for one batch, for sources whose library reuses its own
// buffer per packet. Reset when the batch is reset.
class CopyArena {
 public:
  explicit CopyArena(size_t capacity) : buf_(capacity) {}
  size_t free() const { return buf_.size() - used_; }
  void Clear() { used_ = 0; }
  // REQUIRES: len <= free().
  const uint8_t* Copy(const uint8_t* data, size_t len);

 private:
  std::vector<uint8_t> buf_;
  size_t used_ = 0;
};

// Converts a pcap_pkthdr timestamp to nanoseconds. REQUIRES: the handle was opened with
// nanosecond precision, so tv_usec holds nanoseconds.
inline TimestampNs PcapNanos(const pcap_pkthdr& h) {
  return static_cast<TimestampNs>(h.ts.tv_sec) * kNanosPerSecond + h.ts.tv_usec;
}

}  // namespace jarvis
