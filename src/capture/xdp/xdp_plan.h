// The parts of the `xdp` backend that are plain arithmetic and bookkeeping, kept apart from the
// libxdp/libbpf code so they build (and are unit tested) everywhere.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/packet.h"

namespace jarvis::xdp {

// One UMEM frame per packet (aligned mode: a power of two, 2048 at least). The kernel puts each
// packet kXdpHeadroom bytes into its frame (XDP_PACKET_HEADROOM; our metadata sits at its end).
constexpr uint32_t kSmallFrameSize = 2048;
constexpr uint32_t kLargeFrameSize = 4096;
constexpr uint32_t kXdpHeadroom = 256;
// What a frame on the wire may add to the MTU: an Ethernet header and two VLAN tags.
constexpr uint32_t kLinkOverhead = 14 + 2 * 4;
constexpr uint32_t kDefaultFramesPerQueue = 32768;  // 64 MiB per RX queue in 2 KiB frames
constexpr uint32_t kMinFramesPerQueue = 1024;
constexpr uint32_t kMaxFramesPerQueue = 262144;  // 512 MiB per RX queue in 2 KiB frames
constexpr uint32_t kCompRingSize = 64;           // receive only: the completion ring idles

// The frame size for an interface of `mtu` (0: unknown): 2048 where the largest frame the MTU
// allows fits after the headroom (MTU up to 1770), else 4096 (a packet of up to 3840 bytes).
// Half-page frames put two packets in each 4 KiB page instead of one: half the memory, half
// the pages (and TLB misses) and twice the cache sets used for the same number of frames.
uint32_t FrameSizeForMtu(uint32_t mtu);

// The UMEM of one RX queue socket and its rings.
struct UmemPlan {
  uint32_t frame_size = kLargeFrameSize;
  uint32_t frames = 0;     // a power of two
  uint32_t fill_size = 0;  // == frames: every frame fits in the fill ring at once
  uint32_t rx_size = 0;    // == frames: the RX ring can never overflow before the UMEM runs dry
  uint32_t comp_size = kCompRingSize;
  uint64_t bytes() const { return static_cast<uint64_t>(frames) * frame_size; }
};

// Splits `buffer_kib` (the whole capture buffer; 0 = the default of kDefaultFramesPerQueue per
// queue) evenly over `queues` sockets in frames of `frame_size` bytes, rounding each socket's
// count down to a power of two within [kMinFramesPerQueue, kMaxFramesPerQueue].
UmemPlan PlanUmem(uint32_t buffer_kib, uint32_t queues, uint32_t frame_size);

enum class AttachMode { kNative, kGeneric };

// "native/zerocopy", "native/copy", "skb/copy": what status and `capture` report.
std::string ModeName(AttachMode attach, bool zero_copy);

// What JARVIS_XDP_ATTACH asks for: a comma-separated list of "native" or "skb" (only that
// mode) and "netlink" (the pre-bpf_link way, which outlives a crash). Unset: native, then skb,
// through a bpf_link.
struct AttachPrefs {
  bool native = true;
  bool skb = true;
  bool netlink = false;
};
Result<AttachPrefs> ParseAttachPrefs(const char* env);

// The mode a capture takes on an interface, from what the interface offers: native where the
// driver has native XDP and `prefs` allow it, else generic; zero-copy only in native mode where
// the driver supports it. The source finds the same by trying (native first, then skb; a
// zero-copy bind first, then copy); this says beforehand what it will find. nullopt when
// `prefs` allow native only and the driver has no native XDP (the capture would be refused).
struct ExpectedMode {
  AttachMode attach = AttachMode::kGeneric;
  bool zero_copy = false;
};
std::optional<ExpectedMode> ExpectMode(bool native_xdp, bool zero_copy_xdp,
                                       const AttachPrefs& prefs);

// The counters of struct xdp_statistics (linux/if_xdp.h) the backend reads, one socket's worth.
struct XskCounters {
  uint64_t rx_dropped = 0;                // no frame free (fill ring empty) or packet > frame
  uint64_t rx_invalid_descs = 0;          // bad descriptors we gave (a bug, not a lost packet)
  uint64_t rx_ring_full = 0;              // RX ring had no room
  uint64_t rx_fill_ring_empty_descs = 0;  // times the kernel found the fill ring empty
  XskCounters& operator+=(const XskCounters& o);
};

// Packets lost at the socket: rx_dropped + rx_ring_full. rx_fill_ring_empty_descs is not added:
// in copy mode every such event is already one of rx_dropped, and in zero-copy mode it counts
// driver allocation attempts, not packets. rx_invalid_descs counts descriptors, not packets.
uint64_t DroppedPackets(const XskCounters& c);

// The XDP object, a companion file of the binary (core/companion.h): looked for through
// $JARVIS_XDP_OBJECT (read with secure_getenv, so a binary with file capabilities ignores it),
// else beside the running binary, else in ../lib/jarvis-capture/ (an installed tree).
constexpr std::string_view kObjectFile = "xdp_redirect.bpf.o";

// Which socket a handed-out frame belongs to and where it starts in that socket's UMEM.
struct FrameRef {
  uint32_t queue = 0;  // index into the source's sockets
  uint64_t addr = 0;   // UMEM offset of the frame start
};

// Frames lent out in batches and not yet back in a fill ring, one slot per batch in flight.
// Thread safety: the receiving thread only (batches are reset on it).
class FrameLedger {
 public:
  static constexpr uint32_t kSlots = 8;  // batches a caller may hold at once

  // A free slot, or -1 when kSlots batches are still held.
  int Acquire();
  // REQUIRES: slot acquired and not full.
  void Add(int slot, FrameRef ref) { slots_[slot].refs[slots_[slot].count++] = ref; }
  std::span<FrameRef> refs(int slot) { return {slots_[slot].refs.data(), slots_[slot].count}; }
  uint32_t count(int slot) const { return slots_[slot].count; }
  void Free(int slot);
  uint32_t held_frames() const;

 private:
  struct Slot {
    bool busy = false;
    uint32_t count = 0;
    std::array<FrameRef, PacketBatch::kMaxBurst> refs{};
  };
  std::array<Slot, kSlots> slots_{};
};

// Merges `runs` of views that are each in timestamp order (one run per socket, laid out one
// after another in `views`, with `refs` parallel to them) into one run in timestamp order,
// keeping equal stamps in run order. `run_ends` are exclusive end indexes, ascending.
void MergeRunsByTime(std::span<PacketView> views, std::span<FrameRef> refs,
                     std::span<const uint32_t> run_ends);

}  // namespace jarvis::xdp
