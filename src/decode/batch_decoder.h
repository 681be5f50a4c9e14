// Decodes the packets of a batch into PacketMeta, either as the source appends them (set as the
// batch's PacketVisitor) or afterwards, with the same result.
//
// Decoding while the source appends is faster where the source walks its input one packet at a
// time: the file reader's walk waits for memory at every record header, and the decoding of the
// packet just found overlaps that wait (core/packet.h, PacketVisitor).
//
// Thread safety: used by the thread that fills and then consumes the batch.
#pragma once

#include <algorithm>
#include <cstdint>

#include "core/packet.h"
#include "decode/decoder.h"

namespace jarvis {

class BatchDecoder final : public PacketVisitor {
 public:
  // PacketVisitor: decodes the packet appended at `index`.
  void Visit(int link_type, const PacketView& pkt, uint32_t index) override {
    Decode(link_type, pkt, metas_[index], counters_);
    times_[index] = pkt.ts_ns;
  }

  // Makes metas() and times() hold the first min(n, batch.size()) packets of `batch`, decoding
  // those this decoder did not visit. Packets it visited beyond them are dropped, and their
  // decode counts with them, so counters() count exactly the packets returned. Returns how
  // many that is.
  uint32_t Complete(const PacketBatch& batch, uint32_t n) {
    n = std::min(n, batch.size());
    const uint32_t visited = batch.visitor() == this ? batch.visited() : 0;
    const int link_type = batch.link_type();
    if (visited > n) {
      DecodeCounters dropped;
      PacketMeta scratch;
      for (uint32_t i = n; i < visited; ++i) Decode(link_type, batch[i], scratch, dropped);
      counters_ -= dropped;
    }
    constexpr uint32_t kAhead = 4;  // packets whose headers are fetched ahead of decoding
    for (uint32_t i = visited; i < n && i < visited + kAhead; ++i) {
      __builtin_prefetch(batch[i].data);
    }
    for (uint32_t i = visited; i < n; ++i) {
      if (i + kAhead < n) __builtin_prefetch(batch[i + kAhead].data);
      Visit(link_type, batch[i], i);
    }
    return n;
  }

  const PacketMeta* metas() const { return metas_; }
  const TimestampNs* times() const { return times_; }
  const DecodeCounters& counters() const { return counters_; }

 private:
  DecodeCounters counters_;
  PacketMeta metas_[PacketBatch::kMaxBurst];
  TimestampNs times_[PacketBatch::kMaxBurst];
};

}  // namespace jarvis
