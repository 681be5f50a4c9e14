// One flow-table shard: the bidirectional flows of one worker.
//
// Layout: a fixed array of `table_size` 128-byte entries, an array of their 8-byte list links
// (kept apart: moving a flow to the front of its list writes to two other flows' links, and a
// dense array of links stays in cache where 128-byte entries do not), and an open-addressing
// index of 8-byte slots (a 32-bit hash tag and an entry number) with linear probing and
// backward-shift deletion, at most half full. Nothing is allocated per packet; memory is
// 136 + 8 * index_slots / table_size bytes per flow (152 to 168 bytes).
//
// Time is passed in: Process() takes the packet's timestamp and Expire() takes "now", so the
// same code meters files (packet time) and live traffic (packet time plus a housekeeping tick).
// A flow's fate never depends on when housekeeping runs: a packet that arrives for a flow
// whose idle time or linger has already passed ends that flow first and starts a new one.
//
// Thread safety: a shard belongs to one worker thread; nothing here is synchronised.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/fd.h"
#include "core/packet.h"
#include "decode/decoder.h"
#include "flow/flow_record.h"

namespace jarvis {

struct FlowConfig {
  uint32_t table_size = 100000;        // concurrent flows, all shards together
  uint32_t idle_timeout_sec = 300;     // ends a flow that saw no packet for this long
  uint32_t active_timeout_sec = 60;    // exports a long flow this often; it goes on
  uint32_t tcp_linger_ms = 2000;       // a finished TCP flow stays this long for late packets
  uint32_t fragment_timeout_sec = 30;  // how long a first fragment's ports are remembered
};

// Receives finished flow records in batches. Thread safety: called from the shard's thread.
class FlowSink {
 public:
  virtual ~FlowSink() = default;
  virtual void OnFlows(std::span<const FlowRecord> records) = 0;
};

struct FlowCounters {
  uint64_t packets = 0;             // packets metered into a flow
  uint64_t octets = 0;              // their IP-layer octets
  uint64_t not_metered = 0;         // packets with no usable IP header
  uint64_t flows_created = 0;
  uint64_t peak_active = 0;         // most flows in the table at once
  uint64_t flows_exported = 0;      // records handed to the sink (active-timeout ones included)
  uint64_t evicted = 0;             // flows ended for lack of room (end reason 5)
  uint64_t fragments_attributed = 0;    // later fragments given their datagram's ports
  uint64_t fragments_unattributed = 0;  // later fragments whose first fragment was not seen
  uint64_t fragment_slots_reused = 0;   // remembered first fragments overwritten before expiry

  // Sums counters; peak_active adds too, since shards peak side by side (an upper bound).
  FlowCounters& operator+=(const FlowCounters& o);
};

// The symmetric key: the two endpoints in canonical order (a < b), so both directions of a
// flow produce the same key. 48 bytes, compared as six words.
struct FlowKey {
  uint8_t addr_a[16];
  uint8_t addr_b[16];
  uint16_t port_a;
  uint16_t port_b;
  uint16_t vlan;
  uint16_t inner_vlan;
  uint8_t protocol;
  uint8_t ip_version;
  uint8_t pad[6];
};
static_assert(sizeof(FlowKey) == 48);

class FlowTable {
 public:
  // `id_base` and `id_stride` make flow ids unique across shards: shard i of n numbers its
  // flows i, i + n, i + 2n, ... (plus 1, so that 0 is never a flow id).
  FlowTable(const FlowConfig& config, uint32_t capacity, FlowSink* sink, uint64_t id_base = 0,
            uint64_t id_stride = 1);
  ~FlowTable();
  FlowTable(const FlowTable&) = delete;
  FlowTable& operator=(const FlowTable&) = delete;

  // Meters one decoded packet seen at `ts`. Packets without an IP layer are counted only.
  void Process(const PacketMeta& meta, TimestampNs ts);

  // Meters `n` decoded packets in order, as n calls of Process() would, but computes every key
  // first and prefetches index slots and entries ahead of use, so the cache misses of a large
  // table overlap instead of adding up.
  void ProcessBatch(const PacketMeta* metas, const TimestampNs* ts, uint32_t n);

  // Ends flows whose idle timeout or linger has passed at `now`, then hands pending records
  // to the sink. Call after each batch and on a housekeeping tick.
  void Expire(TimestampNs now);

  // Ends every flow with `reason` (normally kForcedEnd) and flushes the sink.
  void FlushAll(EndReason reason);

  // Hands pending records to the sink.
  void Flush();

  // Changes the active timeout from now on (0 is taken as 1 s). A flow's age is checked when
  // its next packet arrives, so a flow already older than the new timeout gives its record at
  // that packet.
  void SetActiveTimeout(uint32_t seconds);

  // Copies the active flows into `out` (appending), as records with end reason kNone.
  void Snapshot(std::vector<FlowRecord>& out) const;

  uint32_t active_flows() const { return used_; }
  uint32_t capacity() const { return capacity_; }
  const FlowCounters& counters() const { return counters_; }
  // Bytes of memory the table holds, entries and index together.
  size_t memory_bytes() const;

  // The shard a key belongs to among `shards`, symmetric by construction of the key.
  static uint32_t ShardOf(const PacketMeta& meta, uint32_t shards);

 private:
  struct Entry;
  struct FragSlot;
  struct Links {
    uint32_t prev;
    uint32_t next;  // also the free list's link
  };
  enum List : uint8_t { kFree = 0, kLru = 1, kClosed = 2 };
  struct ListHead {
    uint32_t head = kNil;  // most recent
    uint32_t tail = kNil;  // least recent
  };
  static constexpr uint32_t kNil = 0xFFFFFFFF;

  // What Process() derives from a packet before it touches the table.
  struct Prepared {
    FlowKey key;
    uint32_t hash;
    int side;  // sender: 0 endpoint a, 1 endpoint b
  };
  // False for packets that are not metered (counted in not_metered). Attributes later
  // fragments and remembers first ones, so it must run in packet order.
  bool Prepare(const PacketMeta& meta, TimestampNs ts, Prepared& p);
  void Apply(const PacketMeta& meta, const Prepared& p, TimestampNs ts);
  template <bool kForWrite>
  void PrefetchEntryLines(uint32_t idx) const;
  void PrefetchEntry(uint32_t hash) const;
  void PrefetchNextVictims(const ListHead& list) const;
  template <class Visit>
  void WalkList(uint32_t first, uint32_t Links::*step, Visit&& visit) const;

  uint32_t Lookup(const FlowKey& key, uint32_t hash) const;
  uint32_t Insert(const FlowKey& key, uint32_t hash, TimestampNs ts);
  void Remove(uint32_t idx);
  void End(uint32_t idx, EndReason reason);
  void Emit(const Entry& e, EndReason reason);
  static void FillRecord(const Entry& e, EndReason reason, FlowRecord& r);
  void ResetCounters(Entry& e, TimestampNs ts);
  void Link(ListHead& list, uint32_t idx);
  void Unlink(ListHead& list, uint32_t idx);
  void MoveToFront(uint32_t idx);
  void ExpireDue(TimestampNs now);
  bool LaterFragmentPorts(const PacketMeta& meta, TimestampNs ts, uint16_t& sport,
                          uint16_t& dport);
  void RememberFirstFragment(const PacketMeta& meta, TimestampNs ts);

  FlowConfig config_;
  int64_t idle_ns_, active_ns_, linger_ns_, frag_ns_;
  uint32_t capacity_;
  FlowSink* sink_;
  uint64_t next_id_, id_stride_;
  uint64_t seed_;  // hash seed, random per table

  MappedRegion entries_mem_;  // anonymous memory, huge pages where the kernel gives them
  MappedRegion index_mem_;
  Entry* entries_;
  MappedRegion links_mem_;
  Links* links_;     // each entry's list links, apart from the entries (see flow_table.cc)
  uint64_t* index_;  // 0 empty, else hash tag << 32 | (entry + 1)
  uint32_t index_mask_;
  uint32_t free_head_;   // recycled entries, linked through links_[i].next
  uint32_t next_fresh_;  // entries at and after this one were never used
  uint32_t used_ = 0;
  ListHead lru_;     // unfinished flows (CLOSED ones await the last ACK), most recent first
  ListHead closed_;  // finished (lingering) flows, most recently seen first

  MappedRegion frags_mem_;
  FragSlot* frags_;
  uint32_t frag_mask_;

  std::vector<FlowRecord> pending_;
  FlowCounters counters_;
};

}  // namespace jarvis
