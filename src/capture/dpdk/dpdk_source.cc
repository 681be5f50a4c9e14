#include "capture/dpdk/dpdk_source.h"

#include <unistd.h>

#include <cstdlib>
#include <mutex>

#include "capture/iface_caps.h"
#include "core/companion.h"

namespace jarvis {
namespace dpdk {

Result<const PluginApi*> LoadPlugin(const std::string& path) {
  // Sources the plugin made may live until the process ends: it stays loaded.
  auto entry = OpenPlugin(path, kPluginSymbol, "the DPDK plugin");
  if (!entry) return std::unexpected(entry.error());
  auto get = reinterpret_cast<const PluginApi* (*)()>(*entry);
  const PluginApi* api = get();
  if (api == nullptr || api->abi != kPluginAbi ||
      api->source_options_size != sizeof(SourceOptions) ||
      api->source_stats_size != sizeof(SourceStats)) {
    return MakeError(ErrorCode::kUnavailable,
                     path + " was built from another version of jarvis-capture; rebuild it");
  }
  return api;
}

std::vector<std::string> PluginCandidates() {
  // An explicit choice is the only one.
  return CompanionCandidates(ExecutablePath(), kPluginFile, secure_getenv("JARVIS_DPDK_PLUGIN"));
}

}  // namespace dpdk

namespace {

#ifdef JARVIS_WITH_DPDK
// The plugin, loaded once per process on first use.
const Result<const dpdk::PluginApi*>& Plugin() {
  static const Result<const dpdk::PluginApi*> plugin = []() -> Result<const dpdk::PluginApi*> {
    std::string tried;
    if (auto path = FirstRegularFile(dpdk::PluginCandidates(), tried)) {
      return dpdk::LoadPlugin(*path);
    }
    return MakeError(ErrorCode::kUnavailable, std::string("the DPDK plugin ") + dpdk::kPluginFile +
                                                  " is not installed (looked for " + tried + ")");
  }();
  return plugin;
}
#endif

}  // namespace

std::string DpdkUnavailableReason() {
#ifdef JARVIS_WITH_DPDK
  const auto& p = Plugin();
  if (!p) return p.error().message();
  return (*p)->unavailable_reason();
#else
  return "built without DPDK (configure with libdpdk-dev installed and -DJARVIS_WITH_DPDK=ON)";
#endif
}

Result<std::unique_ptr<CaptureSource>> OpenDpdkSource(const SourceOptions& options) {
#ifdef JARVIS_WITH_DPDK
  const auto& p = Plugin();
  if (!p) return std::unexpected(p.error());
  // Checked here rather than in the plugin, by the rule every backend shares (iface_caps.h).
  if (auto st = CheckTimestampSource(options.timestamp_source, options.target, kDpdkHostClockOnly);
      !st) {
    return std::unexpected(st.error());
  }
  return (*p)->open(options);
#else
  (void)options;
  return MakeError(ErrorCode::kUnavailable, DpdkUnavailableReason());
#endif
}

}  // namespace jarvis
