// The packet as every stage after capture sees it: a view of bytes that some source owns.
//
// Ownership: a PacketView never owns its bytes. The source that filled a PacketBatch owns the
// memory (a kernel ring block, a UMEM frame, a read buffer or a copy arena) and keeps it valid
// until the batch is cleared or refilled, or the source is closed, whichever comes first. A
// stage that must keep bytes longer (a recorder queue) copies them.
#pragma once

#include <array>
#include <cstdint>
#include <span>

namespace jarvis {

// Nanoseconds since the Unix epoch (UTC). Signed 64 bits covers years 1678..2262.
using TimestampNs = int64_t;

constexpr int64_t kNanosPerSecond = 1'000'000'000;

struct PacketView {
  const uint8_t* data = nullptr;
  uint32_t caplen = 0;   // bytes present at data
  uint32_t wirelen = 0;  // bytes the packet had on the wire (>= caplen)
  TimestampNs ts_ns = 0;
  uint32_t ifindex = 0;  // kernel ifindex for live capture, 0 for files

  std::span<const uint8_t> bytes() const { return {data, caplen}; }
};

// Returns ring or buffer memory to its owner when a batch is done with it. The owner decides
// what `token` means (a block index, a frame count). A default Lease releases nothing.
struct Lease {
  void (*release)(void* owner, uint64_t token) = nullptr;
  void* owner = nullptr;
  uint64_t token = 0;
};

// Work that a batch's consumer wants done on each packet as the source appends it. A source
// that walks its input one packet at a time (a file's records, where each header says where
// the next one starts) calls the visitor between steps, so that the work overlaps the walk's
// wait for memory instead of following it in a second pass over the batch (`flows -r`: 4-5%
// faster). Calling it is optional: a source that does not leaves visited() at 0, and the
// consumer does the work itself.
class PacketVisitor {
 public:
  // `pkt` was appended at `index` of a batch whose packets have `link_type`. Called in packet
  // order, on the thread that fills the batch.
  virtual void Visit(int link_type, const PacketView& pkt, uint32_t index) = 0;

 protected:
  ~PacketVisitor() = default;
};

// A burst of packets from one source, sharing one link type.
//
// Thread safety: owned by one worker thread. The batch is reused across Receive() calls: a
// source calls Reset() first, which hands the previous lease back, then appends.
class PacketBatch {
 public:
  static constexpr uint32_t kMaxBurst = 256;

  PacketBatch() = default;
  PacketBatch(const PacketBatch&) = delete;
  PacketBatch& operator=(const PacketBatch&) = delete;
  ~PacketBatch() { Reset(); }

  std::span<const PacketView> packets() const { return {views_.data(), count_}; }
  uint32_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  bool full() const { return count_ == kMaxBurst; }
  const PacketView& operator[](uint32_t i) const { return views_[i]; }

  // libpcap DLT_* value of every packet in the batch.
  int link_type() const { return link_type_; }

  // Consumer side: a visitor for the packets appended from now on (nullptr: none). It stays
  // across Reset().
  void set_visitor(PacketVisitor* visitor) { visitor_ = visitor; }
  PacketVisitor* visitor() const { return visitor_; }
  // The first visited() packets of the batch went through the visitor as they were appended.
  uint32_t visited() const { return visited_; }

  // Producer side, used by sources only.
  void Reset() {
    if (lease_.release != nullptr) lease_.release(lease_.owner, lease_.token);
    lease_ = {};
    count_ = 0;
    visited_ = 0;
  }
  void set_link_type(int dlt) { link_type_ = dlt; }
  void set_lease(Lease lease) { lease_ = lease; }
  // REQUIRES: !full().
  PacketView& Append() { return views_[count_++]; }
  // Bulk filling: write views into free_space(), then Commit() how many were written.
  PacketView* free_space() { return views_.data() + count_; }
  uint32_t free_count() const { return kMaxBurst - count_; }
  // REQUIRES: n <= free_count().
  void Commit(uint32_t n) { count_ += n; }
  // Hands the packets appended since the last call to the visitor, if there is one. A source
  // that visits calls it after each packet it appends (or does the same inline: visit each
  // packet in order, then set_visited()).
  void VisitAppended() {
    if (visitor_ == nullptr) return;
    for (; visited_ < count_; ++visited_) visitor_->Visit(link_type_, views_[visited_], visited_);
  }
  // REQUIRES: the packets before `n` were visited in order.
  void set_visited(uint32_t n) { visited_ = n; }

 private:
  std::array<PacketView, kMaxBurst> views_{};
  uint32_t count_ = 0;
  uint32_t visited_ = 0;
  int link_type_ = 0;
  Lease lease_;
  PacketVisitor* visitor_ = nullptr;
};

}  // namespace jarvis
