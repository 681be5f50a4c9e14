#include "capture/xdp/xdp_plan.h"

#include <algorithm>
#include <bit>

namespace jarvis::xdp {

uint32_t FrameSizeForMtu(uint32_t mtu) {
  if (mtu != 0 && mtu + kLinkOverhead <= kSmallFrameSize - kXdpHeadroom) return kSmallFrameSize;
  return kLargeFrameSize;
}

UmemPlan PlanUmem(uint32_t buffer_kib, uint32_t queues, uint32_t frame_size) {
  queues = std::max<uint32_t>(queues, 1);
  uint64_t frames = kDefaultFramesPerQueue;
  if (buffer_kib != 0) {
    frames = static_cast<uint64_t>(buffer_kib) * 1024 / frame_size / queues;
  }
  frames = std::clamp<uint64_t>(frames, kMinFramesPerQueue, kMaxFramesPerQueue);
  UmemPlan p;
  p.frame_size = frame_size;
  p.frames = static_cast<uint32_t>(std::bit_floor(frames));
  p.fill_size = p.frames;
  p.rx_size = p.frames;
  return p;
}

std::string ModeName(AttachMode attach, bool zero_copy) {
  std::string s = attach == AttachMode::kNative ? "native" : "skb";
  s += zero_copy ? "/zerocopy" : "/copy";
  return s;
}

Result<AttachPrefs> ParseAttachPrefs(const char* env) {
  AttachPrefs p;
  if (env == nullptr || *env == '\0') return p;
  bool only_native = false, only_skb = false;
  std::string_view rest(env);
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string_view word = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    if (word == "native") {
      only_native = true;
    } else if (word == "skb") {
      only_skb = true;
    } else if (word == "netlink") {
      p.netlink = true;
    } else if (word != "link") {
      return MakeError(ErrorCode::kInvalidArgument, "JARVIS_XDP_ATTACH: unknown word '" +
                                                        std::string(word) +
                                                        "' (known: native, skb, link, netlink)");
    }
  }
  if (only_native != only_skb) {
    p.native = only_native;
    p.skb = only_skb;
  }
  return p;
}

std::optional<ExpectedMode> ExpectMode(bool native_xdp, bool zero_copy_xdp,
                                       const AttachPrefs& prefs) {
  if (prefs.native && native_xdp) {
    return ExpectedMode{.attach = AttachMode::kNative, .zero_copy = zero_copy_xdp};
  }
  if (prefs.skb) return ExpectedMode{.attach = AttachMode::kGeneric, .zero_copy = false};
  return std::nullopt;
}

XskCounters& XskCounters::operator+=(const XskCounters& o) {
  rx_dropped += o.rx_dropped;
  rx_invalid_descs += o.rx_invalid_descs;
  rx_ring_full += o.rx_ring_full;
  rx_fill_ring_empty_descs += o.rx_fill_ring_empty_descs;
  return *this;
}

uint64_t DroppedPackets(const XskCounters& c) { return c.rx_dropped + c.rx_ring_full; }

int FrameLedger::Acquire() {
  for (uint32_t i = 0; i < kSlots; ++i) {
    if (!slots_[i].busy) {
      slots_[i].busy = true;
      slots_[i].count = 0;
      return static_cast<int>(i);
    }
  }
  return -1;
}

void FrameLedger::Free(int slot) {
  slots_[slot].busy = false;
  slots_[slot].count = 0;
}

uint32_t FrameLedger::held_frames() const {
  uint32_t n = 0;
  for (const Slot& s : slots_) n += s.busy ? s.count : 0;
  return n;
}

void MergeRunsByTime(std::span<PacketView> views, std::span<FrameRef> refs,
                     std::span<const uint32_t> run_ends) {
  if (run_ends.size() < 2) return;
  // At most kMaxBurst entries: merge into stack buffers, then copy back.
  std::array<PacketView, PacketBatch::kMaxBurst> out_views;
  std::array<FrameRef, PacketBatch::kMaxBurst> out_refs;
  std::array<uint32_t, PacketBatch::kMaxBurst> pos{};  // next index of each run
  const size_t runs = std::min<size_t>(run_ends.size(), pos.size());
  for (size_t r = 0; r < runs; ++r) pos[r] = r == 0 ? 0 : run_ends[r - 1];
  const uint32_t total = run_ends[runs - 1];
  for (uint32_t k = 0; k < total; ++k) {
    size_t best = runs;
    for (size_t r = 0; r < runs; ++r) {
      if (pos[r] == run_ends[r]) continue;
      if (best == runs || views[pos[r]].ts_ns < views[pos[best]].ts_ns) best = r;
    }
    out_views[k] = views[pos[best]];
    out_refs[k] = refs[pos[best]];
    ++pos[best];
  }
  std::copy_n(out_views.begin(), total, views.begin());
  std::copy_n(out_refs.begin(), total, refs.begin());
}

}  // namespace jarvis::xdp
