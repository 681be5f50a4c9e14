#include "flow/flow_table.h"

#include <sys/mman.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <new>
#include <random>

namespace jarvis {

// 128 bytes: key and times in the first cache line, counters in the second. The list links
// are in their own array, FlowTable::links_.
struct FlowTable::Entry {
  FlowKey key;
  TimestampNs first_ns;
  TimestampNs last_ns;
  uint64_t packets[2];  // by side: [0] sent by endpoint a, [1] by endpoint b
  uint64_t bytes[2];
  uint64_t flow_id;
  uint64_t unused;
  uint32_t hash;
  uint16_t icmp_tc[2];  // first ICMP type << 8 | code sent by each side
  uint8_t tcp_flags[2];
  uint8_t initiator;  // side of the initiator
  FlowState state;
  uint8_t list;
  uint8_t bits;
  uint8_t pad;
};

// Remembers the ports of a fragmented IPv4/IPv6 datagram from its first fragment, so later
// fragments (which carry no transport header) meter into the same flow.
struct FlowTable::FragSlot {
  uint8_t src[16];
  uint8_t dst[16];
  uint32_t id;
  uint16_t vlan;
  uint8_t protocol;
  uint8_t used;
  uint16_t sport;
  uint16_t dport;
  TimestampNs ts;
};

namespace {

// Entry::bits
constexpr uint8_t kIcmpSeen0 = 1 << 0;  // icmp_tc[0] holds side a's first message
constexpr uint8_t kIcmpSeen1 = 1 << 1;
constexpr uint8_t kFin0 = 1 << 2;       // side a sent a FIN
constexpr uint8_t kFin1 = 1 << 3;
constexpr uint8_t kLastFin1 = 1 << 4;   // the later of the two FINs came from side b
constexpr uint8_t kDone = 1 << 5;       // final ACK or RST seen: lingering in the closed list

constexpr uint32_t kFragSlots = 1 << 14;
constexpr size_t kPendingRecords = 1024;  // records handed to the sink at a time

inline uint64_t Load64(const void* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

inline uint64_t Mix(uint64_t h) {
  h ^= h >> 33;
  h *= 0xFF51AFD7ED558CCDULL;
  h ^= h >> 33;
  h *= 0xC4CEB9FE1A85EC53ULL;
  h ^= h >> 33;
  return h;
}

inline bool KeyEquals(const FlowKey& x, const FlowKey& y) {
  const auto* a = reinterpret_cast<const uint8_t*>(&x);
  const auto* b = reinterpret_cast<const uint8_t*>(&y);
  return ((Load64(a) ^ Load64(b)) | (Load64(a + 8) ^ Load64(b + 8)) |
          (Load64(a + 16) ^ Load64(b + 16)) | (Load64(a + 24) ^ Load64(b + 24)) |
          (Load64(a + 32) ^ Load64(b + 32)) | (Load64(a + 40) ^ Load64(b + 40))) == 0;
}

inline bool IsIcmp(uint8_t proto) { return proto == kProtoIcmp || proto == kProtoIcmpv6; }

// Builds the canonical key and its hash; returns the side (0 = a, 1 = b) of the sender.
// The key is assembled in registers and written with whole-word stores: reading it back
// right after byte-wise writes would stall on store forwarding, and this runs per packet.
inline int MakeKey(const PacketMeta& m, uint16_t sport, uint16_t dport, uint64_t seed,
                   FlowKey& k, uint32_t& hash) {
  // The decoder zeroes the unused 12 bytes of IPv4 addresses.
  const uint64_t s0 = Load64(m.src_addr), s1 = Load64(m.src_addr + 8);
  const uint64_t d0 = Load64(m.dst_addr), d1 = Load64(m.dst_addr + 8);
  // Endpoints in a total order, address words as loaded and then port: any order serves if
  // both directions agree. Without a branch on it: which endpoint comes first is a coin toss
  // per packet, and a branch on it was mispredicted about every other packet. The first words
  // differ in almost every packet (IPv4: the addresses), so testing that is predictable.
  bool src_first;
  if (s0 != d0) [[likely]] {
    src_first = s0 < d0;
  } else {
    src_first = (s1 < d1) | ((s1 == d1) & (sport <= dport));
  }
  const int side = static_cast<int>(!src_first);
  // Masks, not conditional expressions, which the compiler turns back into a branch.
  const uint64_t take_src = 0 - static_cast<uint64_t>(src_first);  // all ones or zero
  const uint64_t swap0 = (s0 ^ d0) & take_src, swap1 = (s1 ^ d1) & take_src;
  const uint64_t w0 = d0 ^ swap0, w2 = s0 ^ swap0;
  const uint64_t w1 = d1 ^ swap1, w3 = s1 ^ swap1;
  const uint64_t swap_ports = static_cast<uint64_t>(sport ^ dport) & take_src;
  const uint64_t pa = dport ^ swap_ports, pb = sport ^ swap_ports;
  const uint64_t w4 = pa | pb << 16 | static_cast<uint64_t>(m.vlan) << 32 |
                      static_cast<uint64_t>(m.inner_vlan) << 48;
  const uint64_t w5 = static_cast<uint64_t>(m.protocol) | static_cast<uint64_t>(m.ip_version) << 8;
  auto* out = reinterpret_cast<uint8_t*>(&k);
  std::memcpy(out, &w0, 8);
  std::memcpy(out + 8, &w1, 8);
  std::memcpy(out + 16, &w2, 8);
  std::memcpy(out + 24, &w3, 8);
  std::memcpy(out + 32, &w4, 8);
  std::memcpy(out + 40, &w5, 8);
  // Six independent multiplies, then a finaliser; the seed is random per table, so crafted
  // keys cannot aim at one chain.
  const uint64_t h = ((w0 ^ seed) * 0x9E3779B97F4A7C15ULL) ^ (w1 * 0xC2B2AE3D27D4EB4FULL) ^
                     ((w2 + seed) * 0x165667B19E3779F9ULL) ^ (w3 * 0xD6E8FEB86659FD93ULL) ^
                     (w4 * 0xFF51AFD7ED558CCDULL) ^ ((w5 ^ (seed >> 7)) * 0xC4CEB9FE1A85EC53ULL);
  hash = static_cast<uint32_t>(Mix(h));
  return side;
}

uint32_t FragHash(const PacketMeta& m) {
  uint64_t h = Load64(m.src_addr) ^ Mix(Load64(m.dst_addr) + m.frag_id);
  if (m.ip_version == 6) h ^= Mix(Load64(m.src_addr + 8) ^ (Load64(m.dst_addr + 8) << 1));
  return static_cast<uint32_t>(Mix(h ^ (static_cast<uint64_t>(m.protocol) << 48) ^ m.vlan));
}

bool FragMatches(const PacketMeta& m, const uint8_t* src, const uint8_t* dst, uint32_t id,
                 uint16_t vlan, uint8_t protocol) {
  return id == m.frag_id && vlan == m.vlan && protocol == m.protocol &&
         std::memcmp(src, m.src_addr, 16) == 0 && std::memcmp(dst, m.dst_addr, 16) == 0;
}

// Zeroed anonymous memory for the table. Random access over megabytes of entries misses the
// TLB on every packet with 4 KiB pages; 2 MiB pages (transparent huge pages, asked for with
// madvise) cut that. Aborts like operator new when memory is exhausted.
MappedRegion AllocateTableMemory(size_t bytes) {
  MappedRegion region = MapHugeAnonymous(bytes);
  if (!region.valid()) throw std::bad_alloc();
  return region;
}

}  // namespace

FlowCounters& FlowCounters::operator+=(const FlowCounters& o) {
  packets += o.packets;
  octets += o.octets;
  not_metered += o.not_metered;
  flows_created += o.flows_created;
  peak_active += o.peak_active;
  flows_exported += o.flows_exported;
  evicted += o.evicted;
  fragments_attributed += o.fragments_attributed;
  fragments_unattributed += o.fragments_unattributed;
  fragment_slots_reused += o.fragment_slots_reused;
  return *this;
}

FlowTable::FlowTable(const FlowConfig& config, uint32_t capacity, FlowSink* sink,
                     uint64_t id_base, uint64_t id_stride)
    : config_(config),
      idle_ns_(static_cast<int64_t>(config.idle_timeout_sec) * kNanosPerSecond),
      active_ns_(static_cast<int64_t>(config.active_timeout_sec) * kNanosPerSecond),
      linger_ns_(static_cast<int64_t>(config.tcp_linger_ms) * 1'000'000),
      frag_ns_(static_cast<int64_t>(config.fragment_timeout_sec) * kNanosPerSecond),
      capacity_(std::max<uint32_t>(capacity, 1)),
      sink_(sink),
      next_id_(id_base + 1),
      id_stride_(std::max<uint64_t>(id_stride, 1)) {
  static_assert(sizeof(Entry) == 128, "a flow entry is two cache lines");
  entries_mem_ = AllocateTableMemory(sizeof(Entry) * static_cast<size_t>(capacity_));
  entries_ = static_cast<Entry*>(entries_mem_.get());
  const uint32_t slots = std::bit_ceil(std::max<uint32_t>(capacity_ * 2, 16));
  index_mem_ = AllocateTableMemory(sizeof(uint64_t) * slots);  // zeroed: all slots empty
  index_ = static_cast<uint64_t*>(index_mem_.get());
  links_mem_ = AllocateTableMemory(sizeof(Links) * static_cast<size_t>(capacity_));
  links_ = static_cast<Links*>(links_mem_.get());
  index_mask_ = slots - 1;
  // Entries are handed out fresh from the front of the array, then recycled through the free
  // list; nothing is written up front, so memory a small flow count never uses is never
  // touched (first touches of fresh pages are slow on virtual machines).
  free_head_ = kNil;
  next_fresh_ = 0;
  frags_mem_ = AllocateTableMemory(sizeof(FragSlot) * kFragSlots);
  frags_ = static_cast<FragSlot*>(frags_mem_.get());
  frag_mask_ = kFragSlots - 1;
  pending_.reserve(kPendingRecords);
  seed_ = (static_cast<uint64_t>(std::random_device{}()) << 32) | std::random_device{}();
}

FlowTable::~FlowTable() = default;

size_t FlowTable::memory_bytes() const {
  return (sizeof(Entry) + sizeof(Links)) * static_cast<size_t>(capacity_) +
         sizeof(uint64_t) * (static_cast<size_t>(index_mask_) + 1) +
         sizeof(FragSlot) * (static_cast<size_t>(frag_mask_) + 1);
}

uint32_t FlowTable::ShardOf(const PacketMeta& meta, uint32_t shards) {
  if (shards <= 1) return 0;
  // Addresses, protocol and VLAN only: later fragments carry no ports but must reach the shard
  // that saw their first fragment. XOR and sum are symmetric in the two addresses.
  const uint64_t s0 = Load64(meta.src_addr), s1 = Load64(meta.src_addr + 8);
  const uint64_t d0 = Load64(meta.dst_addr), d1 = Load64(meta.dst_addr + 8);
  uint64_t h = Mix(s0 ^ d0) + Mix(s1 ^ d1) + (s0 + d0) + (s1 + d1);
  h = Mix(h ^ (static_cast<uint64_t>(meta.protocol) << 32) ^ meta.vlan);
  return static_cast<uint32_t>(((h >> 32) * shards) >> 32);
}

uint32_t FlowTable::Lookup(const FlowKey& key, uint32_t hash) const {
  for (uint32_t s = hash & index_mask_;; s = (s + 1) & index_mask_) {
    const uint64_t v = index_[s];
    if (v == 0) return kNil;
    if (static_cast<uint32_t>(v >> 32) == hash) {
      const uint32_t idx = static_cast<uint32_t>(v) - 1;
      if (KeyEquals(entries_[idx].key, key)) return idx;
    }
  }
}

uint32_t FlowTable::Insert(const FlowKey& key, uint32_t hash, TimestampNs ts) {
  // REQUIRES: used_ < capacity_.
  uint32_t idx;
  if (free_head_ != kNil) {
    idx = free_head_;
    free_head_ = links_[idx].next;
  } else {
    idx = next_fresh_++;
  }
  Entry& e = entries_[idx];
  ++used_;
  std::memset(&e, 0, sizeof e);
  e.key = key;
  e.hash = hash;
  e.first_ns = e.last_ns = ts;
  e.flow_id = next_id_;
  next_id_ += id_stride_;
  e.state = FlowState::kActive;
  uint32_t s = hash & index_mask_;
  while (index_[s] != 0) s = (s + 1) & index_mask_;
  index_[s] = static_cast<uint64_t>(hash) << 32 | (idx + 1);
  Link(lru_, idx);
  ++counters_.flows_created;
  if (used_ > counters_.peak_active) counters_.peak_active = used_;
  return idx;
}

void FlowTable::Remove(uint32_t idx) {
  Entry& e = entries_[idx];
  Unlink(e.list == kClosed ? closed_ : lru_, idx);
  // Find the slot, then close the gap by shifting later members of the cluster back.
  uint32_t i = e.hash & index_mask_;
  while (static_cast<uint32_t>(index_[i]) != idx + 1) i = (i + 1) & index_mask_;
  for (uint32_t j = i;;) {
    j = (j + 1) & index_mask_;
    const uint64_t v = index_[j];
    if (v == 0) break;
    const uint32_t home = static_cast<uint32_t>(v >> 32) & index_mask_;
    // Move v back to i unless its home lies cyclically in (i, j].
    const bool home_in_gap = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (!home_in_gap) {
      index_[i] = v;
      i = j;
    }
  }
  index_[i] = 0;
  e.list = kFree;
  links_[idx].next = free_head_;
  free_head_ = idx;
  --used_;
}

void FlowTable::Link(ListHead& list, uint32_t idx) {
  Links& l = links_[idx];
  l.prev = kNil;
  l.next = list.head;
  if (list.head != kNil) links_[list.head].prev = idx;
  list.head = idx;
  if (list.tail == kNil) list.tail = idx;
  entries_[idx].list = &list == &closed_ ? kClosed : kLru;
}

void FlowTable::Unlink(ListHead& list, uint32_t idx) {
  const Links l = links_[idx];
  if (l.prev != kNil) {
    links_[l.prev].next = l.next;
  } else {
    list.head = l.next;
  }
  if (l.next != kNil) {
    links_[l.next].prev = l.prev;
  } else {
    list.tail = l.prev;
  }
}

inline void FlowTable::MoveToFront(uint32_t idx) {
  ListHead& list = entries_[idx].list == kClosed ? closed_ : lru_;
  if (list.head == idx) return;
  // Not the head, so it has a predecessor; only the tail lacks a successor.
  const Links l = links_[idx];
  links_[l.prev].next = l.next;
  if (l.next != kNil) [[likely]] {
    links_[l.next].prev = l.prev;
  } else {
    list.tail = l.prev;
  }
  links_[list.head].prev = idx;
  links_[idx] = Links{kNil, list.head};
  list.head = idx;
}

void FlowTable::FillRecord(const Entry& e, EndReason reason, FlowRecord& r) {
  const int fwd = e.initiator, rev = 1 - e.initiator;
  r.flow_id = e.flow_id;
  const uint8_t* addr[2] = {e.key.addr_a, e.key.addr_b};
  const uint16_t port[2] = {e.key.port_a, e.key.port_b};
  std::memcpy(r.src_addr, addr[fwd], 16);
  std::memcpy(r.dst_addr, addr[rev], 16);
  if (IsIcmp(e.key.protocol)) {
    r.src_port = 0;
    r.dst_port = e.icmp_tc[fwd];
    r.icmp_type_code_rev = e.icmp_tc[rev];
  } else {
    r.src_port = port[fwd];
    r.dst_port = port[rev];
    r.icmp_type_code_rev = 0;
  }
  r.vlan = e.key.vlan;
  r.inner_vlan = e.key.inner_vlan;
  r.ip_version = e.key.ip_version;
  r.protocol = e.key.protocol;
  r.tcp_flags_fwd = e.tcp_flags[fwd];
  r.tcp_flags_rev = e.tcp_flags[rev];
  r.state = e.state;
  r.end_reason = reason;
  r.packets_fwd = e.packets[fwd];
  r.packets_rev = e.packets[rev];
  r.bytes_fwd = e.bytes[fwd];
  r.bytes_rev = e.bytes[rev];
  r.first_ns = e.first_ns;
  r.last_ns = e.last_ns;
}

void FlowTable::Emit(const Entry& e, EndReason reason) {
  FillRecord(e, reason, pending_.emplace_back());
  ++counters_.flows_exported;
  if (pending_.size() >= kPendingRecords) Flush();
}

void FlowTable::End(uint32_t idx, EndReason reason) {
  Emit(entries_[idx], reason);
  Remove(idx);
}

void FlowTable::ResetCounters(Entry& e, TimestampNs ts) {
  e.first_ns = e.last_ns = ts;
  e.packets[0] = e.packets[1] = 0;
  e.bytes[0] = e.bytes[1] = 0;
  e.tcp_flags[0] = e.tcp_flags[1] = 0;
}

void FlowTable::Flush() {
  if (pending_.empty()) return;
  if (sink_ != nullptr) sink_->OnFlows(pending_);
  pending_.clear();
}

void FlowTable::SetActiveTimeout(uint32_t seconds) {
  config_.active_timeout_sec = std::max<uint32_t>(seconds, 1);
  active_ns_ = static_cast<int64_t>(config_.active_timeout_sec) * kNanosPerSecond;
}

// The prefetch helpers are inlined by force: GCC counts a function that only loads and
// prefetches as pure, and deletes calls to a pure function whose result nobody uses
// (prefetches and all).

// Both cache lines of entry `idx`; kForWrite: the caller will write to it.
template <bool kForWrite>
[[gnu::always_inline]] inline void FlowTable::PrefetchEntryLines(uint32_t idx) const {
  const char* e = reinterpret_cast<const char*>(&entries_[idx]);
  __builtin_prefetch(e, kForWrite);
  __builtin_prefetch(e + 64, kForWrite);
}

[[gnu::always_inline]] inline void FlowTable::PrefetchNextVictims(const ListHead& list) const {
  // Called after a flow ended from the cold end of `list`, when more may follow: a full table
  // under a stream of new flows ends its least recently seen flow for each, and expiry ends
  // every flow whose time is up, oldest first. Such a flow is cold by definition: its entry,
  // then (through the hash kept there) its index slot, each a miss, one after the other.
  // Fetched an ending ahead instead: the index slot of the next victim (whose entry the
  // previous ending fetched) and the entry of the one after it.
  const uint32_t next = list.tail;
  if (next == kNil) return;
  __builtin_prefetch(&index_[entries_[next].hash & index_mask_]);
  const uint32_t after = links_[next].prev;
  if (after != kNil) PrefetchEntryLines<true>(after);
}

// Calls visit(entry) for each flow of a list from `first` on, stepping by `step` (Links::prev
// from the tail, Links::next from the head), with a second cursor eight flows ahead that
// fetches their entries: a list's order is the order its flows were last seen, not their place
// in the array, so each entry would otherwise be a miss of its own (the final flush and a
// snapshot of a large table walk every flow).
template <class Visit>
void FlowTable::WalkList(uint32_t first, uint32_t Links::*step, Visit&& visit) const {
  constexpr int kAhead = 8;
  uint32_t ahead = first;
  for (int k = 0; k < kAhead && ahead != kNil; ++k) {
    PrefetchEntryLines<false>(ahead);
    ahead = links_[ahead].*step;
  }
  for (uint32_t i = first; i != kNil; i = links_[i].*step) {
    if (ahead != kNil) {
      PrefetchEntryLines<false>(ahead);
      ahead = links_[ahead].*step;
    }
    visit(entries_[i]);
  }
}

void FlowTable::ExpireDue(TimestampNs now) {
  while (lru_.tail != kNil) {
    const Entry& e = entries_[lru_.tail];
    if (e.last_ns + idle_ns_ > now) break;
    End(lru_.tail, e.state == FlowState::kClosed ? EndReason::kEndOfFlow : EndReason::kIdleTimeout);
    PrefetchNextVictims(lru_);
  }
  while (closed_.tail != kNil) {
    const Entry& e = entries_[closed_.tail];
    if (e.last_ns + linger_ns_ > now) break;
    End(closed_.tail, EndReason::kEndOfFlow);
    PrefetchNextVictims(closed_);
  }
}

void FlowTable::Expire(TimestampNs now) {
  ExpireDue(now);
  Flush();
}

void FlowTable::FlushAll(EndReason reason) {
  // Every flow ends, in the order expiry would take them (finished ones first, each list from
  // its least recently seen end). When many flows end, they are emitted first and the table is
  // then emptied at once: removing them one by one would probe the index and shift its
  // clusters for each (a cache miss apiece, a tenth of a large file's run time).
  const uint32_t slots = index_mask_ + 1;
  if (static_cast<uint64_t>(used_) * 16 < slots) {  // few flows: the index is mostly empty
    while (closed_.tail != kNil) End(closed_.tail, EndReason::kEndOfFlow);
    while (lru_.tail != kNil) {
      const Entry& e = entries_[lru_.tail];
      End(lru_.tail, e.state == FlowState::kClosed ? EndReason::kEndOfFlow : reason);
    }
    Flush();
    return;
  }
  WalkList(closed_.tail, &Links::prev, [&](const Entry& e) { Emit(e, EndReason::kEndOfFlow); });
  WalkList(lru_.tail, &Links::prev, [&](const Entry& e) {
    Emit(e, e.state == FlowState::kClosed ? EndReason::kEndOfFlow : reason);
  });
  std::memset(index_, 0, sizeof(uint64_t) * slots);
  // Entries are handed out afresh from the front of the array (Insert clears each one).
  free_head_ = kNil;
  next_fresh_ = 0;
  used_ = 0;
  lru_ = {};
  closed_ = {};
  Flush();
}

void FlowTable::RememberFirstFragment(const PacketMeta& m, TimestampNs ts) {
  FragSlot& s = frags_[FragHash(m) & frag_mask_];
  if (s.used && s.ts + frag_ns_ > ts &&
      !FragMatches(m, s.src, s.dst, s.id, s.vlan, s.protocol)) {
    ++counters_.fragment_slots_reused;
  }
  std::memcpy(s.src, m.src_addr, 16);
  std::memcpy(s.dst, m.dst_addr, 16);
  s.id = m.frag_id;
  s.vlan = m.vlan;
  s.protocol = m.protocol;
  s.used = 1;
  s.sport = m.src_port;
  s.dport = m.dst_port;
  s.ts = ts;
}

bool FlowTable::LaterFragmentPorts(const PacketMeta& m, TimestampNs ts, uint16_t& sport,
                                   uint16_t& dport) {
  const FragSlot& s = frags_[FragHash(m) & frag_mask_];
  if (s.used && s.ts + frag_ns_ > ts && FragMatches(m, s.src, s.dst, s.id, s.vlan, s.protocol)) {
    sport = s.sport;
    dport = s.dport;
    ++counters_.fragments_attributed;
    return true;
  }
  ++counters_.fragments_unattributed;
  return false;
}

bool FlowTable::Prepare(const PacketMeta& m, TimestampNs ts, Prepared& p) {
  if (!m.has(kMetaL3)) {
    ++counters_.not_metered;
    return false;
  }
  uint16_t sport = 0, dport = 0;
  const bool icmp = IsIcmp(m.protocol);
  if (m.is_later_fragment()) {
    // Unattributed later fragments still count, in a flow with no ports.
    if (!icmp) LaterFragmentPorts(m, ts, sport, dport);
  } else if (!icmp && m.has(kMetaPorts)) {
    sport = m.src_port;
    dport = m.dst_port;
    if (m.has(kMetaFragment) && m.more_fragments) RememberFirstFragment(m, ts);
  }
  p.side = MakeKey(m, sport, dport, seed_, p.key, p.hash);
  return true;
}

void FlowTable::PrefetchEntry(uint32_t hash) const {
  // Without a branch on whether the slot holds the flow: new flows and known ones come mixed.
  // An empty slot prefetches entry 0, a slot of another flow that flow's entry; both harmless.
  const uint64_t v = index_[hash & index_mask_];
  PrefetchEntryLines<true>((static_cast<uint32_t>(v) - 1) & (0 - static_cast<uint32_t>(v != 0)));
}

void FlowTable::Process(const PacketMeta& m, TimestampNs ts) {
  Prepared p;
  if (Prepare(m, ts, p)) Apply(m, p, ts);
}

void FlowTable::ProcessBatch(const PacketMeta* metas, const TimestampNs* ts, uint32_t n) {
  // The staging arrays below hold one burst; longer runs are metered a burst at a time.
  for (; n > PacketBatch::kMaxBurst; n -= PacketBatch::kMaxBurst) {
    ProcessBatch(metas, ts, PacketBatch::kMaxBurst);
    metas += PacketBatch::kMaxBurst;
    ts += PacketBatch::kMaxBurst;
  }
  constexpr uint32_t kAhead = 6;  // entries prefetched ahead of the one being updated
  Prepared prep[PacketBatch::kMaxBurst];
  uint32_t which[PacketBatch::kMaxBurst];
  uint32_t count = 0;
  for (uint32_t i = 0; i < n; ++i) {
    if (Prepare(metas[i], ts[i], prep[count])) {
      __builtin_prefetch(&index_[prep[count].hash & index_mask_]);
      which[count++] = i;
    }
  }
  for (uint32_t j = 0; j < count && j < kAhead; ++j) PrefetchEntry(prep[j].hash);
  for (uint32_t j = 0; j < count; ++j) {
    if (j + kAhead < count) PrefetchEntry(prep[j + kAhead].hash);
    Apply(metas[which[j]], prep[j], ts[which[j]]);
  }
}

void FlowTable::Apply(const PacketMeta& m, const Prepared& p, TimestampNs ts) {
  const FlowKey& key = p.key;
  const uint32_t hash = p.hash;
  const int side = p.side;
  const bool icmp = IsIcmp(m.protocol);
  const bool tcp = m.protocol == kProtoTcp;
  // TCP flags, 0 for anything else; a mask, not a branch on a packet's protocol.
  const uint8_t flags = static_cast<uint8_t>(
      m.tcp_flags & (0 - static_cast<unsigned>(tcp & ((m.flags & kMetaTcpFlags) != 0))));

  uint32_t idx = Lookup(key, hash);
  if (idx != kNil) {
    Entry& e = entries_[idx];
    // Decide at packet time whether the flow had already ended, whatever housekeeping did.
    const bool syn_only = (flags & (kTcpSyn | kTcpAck)) == kTcpSyn;  // flags: 0 unless TCP
    if (e.list == kClosed) {
      if (ts >= e.last_ns + linger_ns_ || syn_only) {
        End(idx, EndReason::kEndOfFlow);
        idx = kNil;
      }
    } else if (ts >= e.last_ns + idle_ns_) {
      End(idx, e.state == FlowState::kClosed ? EndReason::kEndOfFlow : EndReason::kIdleTimeout);
      idx = kNil;
    } else if (syn_only && e.state == FlowState::kClosed) {
      End(idx, EndReason::kEndOfFlow);  // the 5-tuple is reused by a new connection
      idx = kNil;
    } else if (ts >= e.first_ns + active_ns_) {
      Emit(e, EndReason::kActiveTimeout);
      ResetCounters(e, ts);
    }
  }
  if (idx == kNil) {
    if (used_ == capacity_) {
      ExpireDue(ts);
      if (used_ == capacity_) {
        if (closed_.tail != kNil) {
          End(closed_.tail, EndReason::kEndOfFlow);
          PrefetchNextVictims(closed_);
        } else {
          End(lru_.tail, EndReason::kLackOfResources);
          ++counters_.evicted;
          PrefetchNextVictims(lru_);
        }
      }
    }
    idx = Insert(key, hash, ts);
    Entry& e = entries_[idx];
    // The sender is the initiator, unless it answers a SYN we never saw (flags: 0 unless TCP).
    e.initiator = static_cast<uint8_t>(
        (flags & (kTcpSyn | kTcpAck)) == (kTcpSyn | kTcpAck) ? 1 - side : side);
  }

  Entry& e = entries_[idx];
  ++e.packets[side];
  e.bytes[side] += m.l3_len;
  if (ts > e.last_ns) e.last_ns = ts;
  if (ts < e.first_ns) e.first_ns = ts;
  ++counters_.packets;
  counters_.octets += m.l3_len;

  if (icmp && m.has(kMetaPorts) && !(e.bits & (kIcmpSeen0 << side))) {
    e.icmp_tc[side] = m.dst_port;
    e.bits |= static_cast<uint8_t>(kIcmpSeen0 << side);
  }

  // Lingering flows move too: the closed list stays ordered by last packet, so expiry and the
  // full-table path find every flow whose linger is over at its old end.
  // Only a FIN or RST, or a packet after both FINs, can change a TCP flow's state; other
  // packets, of whatever protocol, only move their flow to the front of its list. Tested as one
  // condition: TCP and UDP packets come mixed, and a branch on the protocol mispredicts.
  e.tcp_flags[side] |= flags;  // lingering flows too: late packets count, the state stays
  const bool may_change = (e.list != kClosed) & (((flags & (kTcpFin | kTcpRst)) != 0) |
                                                 ((e.state == FlowState::kClosed) & (flags != 0)));
  if (!may_change) {
    MoveToFront(idx);
    return;
  }
  if (flags & kTcpRst) {
    e.state = FlowState::kClosed;
    e.bits |= kDone;
  } else {
    if (flags & kTcpFin) {
      const uint8_t fin_bit = static_cast<uint8_t>(kFin0 << side);
      if (!(e.bits & fin_bit)) {
        e.bits |= fin_bit;
        if (side == 1) {
          e.bits |= kLastFin1;
        } else {
          e.bits &= static_cast<uint8_t>(~kLastFin1);
        }
      }
      e.state =
          (e.bits & (kFin0 | kFin1)) == (kFin0 | kFin1) ? FlowState::kClosed : FlowState::kClosing;
    }
    // The ACK of the last FIN: an ACK-bearing packet (a retransmitted FIN too) from the side
    // opposite to the later FIN. The connection is over.
    if (e.state == FlowState::kClosed && (flags & kTcpAck) &&
        side != ((e.bits & kLastFin1) ? 1 : 0)) {
      e.bits |= kDone;
    }
  }
  if (e.bits & kDone) {
    Unlink(lru_, idx);
    Link(closed_, idx);
    return;
  }
  MoveToFront(idx);
}

void FlowTable::Snapshot(std::vector<FlowRecord>& out) const {
  for (const ListHead* list : {&lru_, &closed_}) {
    WalkList(list->head, &Links::next,
             [&out](const Entry& e) { FillRecord(e, EndReason::kNone, out.emplace_back()); });
  }
}

}  // namespace jarvis
