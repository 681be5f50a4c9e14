#include "capture/xdp/xdp_filter.h"

#include "capture/pcap_common.h"

namespace jarvis::xdp {

static_assert(kLinkTypeEthernet == DLT_EN10MB);

UserFilter::UserFilter() : prog_(std::make_unique<BpfProgram>()) {}
UserFilter::~UserFilter() = default;

Status UserFilter::Compile(const std::string& expr, uint32_t snaplen) {
  PcapHandle dead(pcap_open_dead(DLT_EN10MB, static_cast<int>(snaplen)));
  if (!dead) return MakeError(ErrorCode::kInternal, "pcap_open_dead failed");
  if (auto st = prog_->Compile(dead.get(), expr); !st) return st;
  empty_ = prog_->empty();
  return {};
}

bool UserFilter::Matches(const uint8_t* data, uint32_t len) const {
  pcap_pkthdr h{};
  h.caplen = len;
  h.len = len;
  return prog_->Matches(h, data);
}

}  // namespace jarvis::xdp
