// The capture source contract, shared by every backend (src/capture/<backend>/).
//
// Two surfaces, as in DPDK's ethdev: the control path (Open through the backend table, Stats,
// Interrupt) and the data path (Receive), which costs one virtual call per batch and never
// one per packet. Packet memory belongs to the source: see core/packet.h.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "core/error.h"
#include "core/packet.h"

namespace jarvis {

enum class TimestampSource { kKernel, kHardware, kPtp, kNtp };

std::string_view TimestampSourceName(TimestampSource s);
Result<TimestampSource> ParseTimestampSource(std::string_view name);

// What a caller asks of a source. Fields a backend cannot honour are refused by Open with
// kInvalidArgument or kUnavailable, never silently ignored.
struct SourceOptions {
  std::string target;                 // interface name (live) or file path (file backend)
  uint32_t snaplen = 0;               // 0 means the whole packet (kMaxSnaplen)
  uint32_t buffer_size_kib = 0;       // kernel buffer; 0 means the backend's default
  bool immediate = false;             // deliver each packet at once instead of per block
  bool promiscuous = true;
  std::string filter;                 // BPF filter expression (pcap-filter(7)); empty = all
  TimestampSource timestamp_source = TimestampSource::kKernel;
  double replay_speed = 0;            // file only: 0 as fast as possible, 1.0 recorded pace
  bool force_libpcap_reader = false;  // file only: skip the fast classic-pcap reader
  // dpdk only: EAL arguments (`--vdev` values are attached per source); empty means the
  // JARVIS_DPDK_ARGS environment variable, else the backend's defaults. The CLI and the
  // engine refuse it for other backends.
  std::string dpdk_args;
};

constexpr uint32_t kMaxSnaplen = 262144;

// Counters since the source was opened. Every field is a measurement from the kernel, the
// NIC, the file reader or the source's own loop; a field the backend cannot measure is left
// at zero and its `has_*` flag false, so callers never mistake "unknown" for "none".
struct SourceStats {
  uint64_t packets = 0;           // packets handed out by Receive()
  uint64_t bytes = 0;             // captured bytes handed out (sum of caplen)
  uint64_t wire_bytes = 0;        // wire bytes of those packets (sum of wirelen)
  uint64_t received_by_filter = 0;  // packets that passed the filter, as the kernel counts them
  uint64_t dropped_kernel = 0;    // lost for lack of buffer space in the kernel
  uint64_t dropped_interface = 0; // lost by the interface or its driver
  uint64_t filtered_out = 0;      // packets the filter excluded, where the backend sees them
  uint64_t truncated_records = 0; // file records cut short or unreadable at the end
  double buffer_usage_pct = 0;    // how full the kernel ring is (0..100), where visible
  bool has_kernel_counters = false;
  bool has_filtered_out = false;
  bool has_buffer_usage = false;
};

class CaptureSource {
 public:
  virtual ~CaptureSource() = default;

  // Fills `batch` with up to PacketBatch::kMaxBurst packets, waiting up to `timeout` for the
  // first one. Returns the count; 0 means the timeout passed. A finite source that is done
  // returns an Error with ErrorCode::kEndOfStream. Packets of the previous batch are released
  // first. Thread safety: one thread calls Receive().
  virtual Result<uint32_t> Receive(PacketBatch& batch, std::chrono::milliseconds timeout) = 0;

  // Thread safety: callable from any thread while Receive() runs.
  virtual Result<SourceStats> Stats() = 0;

  // Makes a blocked Receive() return soon. Thread safety: any thread; async-signal-safe.
  virtual void Interrupt() = 0;

  // For a finite source, the fraction of its input consumed so far (0..1); nullopt for live
  // sources. Thread safety: the thread that calls Receive().
  virtual std::optional<double> Progress() const { return std::nullopt; }

  // libpcap DLT_* value of the packets this source delivers.
  virtual int link_type() const = 0;
  // The snapshot length in effect.
  virtual uint32_t snaplen() const = 0;
  virtual std::string_view backend_name() const = 0;
  // What reads the packets inside the backend, where the backend chooses among several (the
  // file backend: "pcap-fast" or "libpcap"); the backend name otherwise. For diagnostics and
  // tests.
  virtual std::string_view reader_name() const { return backend_name(); }
  // How the backend runs where it picks among ways the host offers at open time: the xdp
  // backend's attach and copy mode ("native/copy", "skb/copy", "native/zerocopy"), possibly
  // followed by a parenthesised note on what opening did. Empty where there is no such choice.
  // For status and diagnostics.
  virtual std::string mode() const { return {}; }
};

enum class BackendKind { kLive, kFile };

// The backend table: one row per backend, data rather than code (see registry.cc).
struct BackendInfo {
  std::string_view name;
  BackendKind kind;
  std::string_view description;
  Result<std::unique_ptr<CaptureSource>> (*open)(const SourceOptions& options);
  // Empty when usable on this host, otherwise why not.
  std::string (*unavailable_reason)();
  // Why the backend stamps with the host clock only, whatever the interface offers (refusing
  // `hardware` and `ptp`); empty for a backend that can read the NIC's clock. The one input,
  // with the interface's own capabilities, of CheckTimestampSource (capture/iface_caps.h).
  std::string_view host_clock_only = {};
};

std::span<const BackendInfo> Backends();
const BackendInfo* FindBackend(std::string_view name);

// How long a graceful stop goes on receiving what the kernel already holds.
inline constexpr std::chrono::milliseconds kDrainAfterStopLimit{2000};

// After a stop was asked for, receives what `source` already holds (a graceful stop: packets
// the kernel took in are not left behind), handing each batch to `take`, which returns false to
// end early. Ends when Receive() comes back empty twice in a row (the first empty return may be
// the stop's own Interrupt() wake-up, left pending when it came while Receive() was not
// waiting), fails, or kDrainAfterStopLimit has passed. Thread safety: the thread that calls Receive().
template <typename Take>
void DrainAfterStop(CaptureSource& source, PacketBatch& batch, Take&& take) {
  const auto deadline = std::chrono::steady_clock::now() + kDrainAfterStopLimit;
  for (int empty = 0; empty < 2 && std::chrono::steady_clock::now() < deadline;) {
    auto n = source.Receive(batch, std::chrono::milliseconds(50));
    if (!n) return;
    empty = *n == 0 ? empty + 1 : 0;
    if (!take()) return;
  }
}

// Opens `options.target` with the named backend. Errors name the backend and target.
Result<std::unique_ptr<CaptureSource>> OpenSource(std::string_view backend,
                                                  const SourceOptions& options);

}  // namespace jarvis
