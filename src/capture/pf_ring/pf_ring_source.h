// The `pf_ring` backend: ntop's PF_RING through libpfring, loaded at run time.
//
// There is no build dependency: libpfring is dlopen()ed on first use and its functions looked
// up by name. The backend is available only where both the library loads and the pf_ring
// kernel module is present (/proc/net/pf_ring); otherwise it is listed as unavailable with the
// exact reason. Debian ships neither, so this path is untested on the project's hosts: it is
// written to the library's documented API and must report itself unavailable there.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "capture/source.h"

namespace jarvis {

Result<std::unique_ptr<CaptureSource>> OpenPfRingSource(const SourceOptions& options);

std::string PfRingUnavailableReason();

// Why `hardware` and `ptp` timestamps are refused whatever the interface offers.
inline constexpr std::string_view kPfRingHostClockOnly =
    "the pf_ring backend takes kernel timestamps only in this build";

namespace pf_ring {

// Where the library and the module are looked for; tests point these elsewhere.
struct Probe {
  std::vector<std::string> libraries = {"libpfring.so", "libpfring.so.8", "libpfring.so.1"};
  std::string module_proc = "/proc/net/pf_ring";
};

// Empty when `probe` finds a usable library (with every function the backend calls) and the
// kernel module; otherwise what is missing.
std::string UnavailableReason(const Probe& probe);

}  // namespace pf_ring
}  // namespace jarvis
