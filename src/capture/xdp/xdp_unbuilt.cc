// The `xdp` backend row when the build had no libxdp/libbpf (JARVIS_WITH_XDP=OFF, or the
// packages were missing at configure time): the backend is listed, and says why it cannot run.
#include "capture/xdp/xdp_source.h"

namespace jarvis {

std::string XdpUnavailableReason() {
  return "built without libxdp (install libxdp-dev, libbpf-dev and clang, then reconfigure "
         "with -DJARVIS_WITH_XDP=ON)";
}

Result<std::unique_ptr<CaptureSource>> OpenXdpSource(const SourceOptions&) {
  return MakeError(ErrorCode::kUnavailable, XdpUnavailableReason());
}

}  // namespace jarvis
