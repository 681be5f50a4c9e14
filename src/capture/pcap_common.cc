#include "capture/pcap_common.h"

#include <cstring>

namespace jarvis {

Status BpfProgram::Compile(pcap_t* p, const std::string& expr) {
  if (compiled_) {
    pcap_freecode(&prog_);
    compiled_ = false;
  }
  if (expr.empty()) return {};
  if (pcap_compile(p, &prog_, expr.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0) {
    return std::unexpected(Error(ErrorCode::kInvalidArgument,
                                 "bad filter expression '" + expr + "': " + pcap_geterr(p))
                               .WithField("filter"));
  }
  compiled_ = true;
  return {};
}

Status ValidateFilter(const std::string& expr, int link_type, uint32_t snaplen) {
  if (expr.empty()) return {};
  PcapHandle dead(pcap_open_dead(link_type, static_cast<int>(snaplen)));
  if (!dead) return MakeError(ErrorCode::kInternal, "pcap_open_dead failed");
  BpfProgram prog;
  return prog.Compile(dead.get(), expr);
}

const uint8_t* CopyArena::Copy(const uint8_t* data, size_t len) {
  uint8_t* dst = buf_.data() + used_;
  std::memcpy(dst, data, len);
  used_ += len;
  return dst;
}

}  // namespace jarvis
