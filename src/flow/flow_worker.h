// A flow worker: decodes batches and meters them into its own FlowTable shard.
//
// One worker per receive thread. Besides the data path (ProcessBatch, Tick), a worker answers
// snapshot requests from other threads at its next batch boundary or tick, so queries never
// lock the data path: the request is one relaxed atomic load per batch when none is pending.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <vector>

#include "core/packet.h"
#include "decode/batch_decoder.h"
#include "decode/decoder.h"
#include "flow/flow_table.h"

namespace jarvis {

class FlowWorker {
 public:
  // `shard` of `shards`: flow ids are numbered so they never collide across shards.
  FlowWorker(const FlowConfig& config, uint32_t capacity, FlowSink* sink, uint32_t shard = 0,
             uint32_t shards = 1);

  // Decodes and meters the first `limit` packets of `batch` (all by default), then expires
  // flows due at the batch's time. Packets decoded as they were appended (batch_decoder() set
  // as the batch's visitor) are not decoded again.
  // Thread safety: the owning thread only (as for every method below but the snapshot ones).
  void ProcessBatch(const PacketBatch& batch, uint32_t limit = PacketBatch::kMaxBurst);

  // Meters `n` packets a dispatcher has already decoded, then expires flows due and serves a
  // pending snapshot, as ProcessBatch does.
  void ProcessDecoded(const PacketMeta* metas, const TimestampNs* ts, uint32_t n);

  // Advances time without packets (housekeeping on a quiet link) and serves snapshots.
  void Tick(TimestampNs now);

  // Changes the meter's active timeout from the next packet on (FlowTable::SetActiveTimeout).
  void SetActiveTimeout(uint32_t seconds) { table_.SetActiveTimeout(seconds); }

  // Ends every flow (kForcedEnd, or kEndOfFlow for finished TCP) and flushes the sink.
  void Finish() { table_.FlushAll(EndReason::kForcedEnd); }

  // Runs a pending snapshot request, if any. Called by ProcessBatch and Tick.
  void ServeSnapshot();

  // Copies the shard's active flows. Thread safety: any thread; waits for the worker to reach
  // a batch boundary or tick, up to `timeout`. nullopt when the worker did not answer in time.
  std::optional<std::vector<FlowRecord>> RequestSnapshot(std::chrono::milliseconds timeout);

  // Set it as a batch's visitor (PacketBatch::set_visitor) to decode packets as the source
  // appends them.
  BatchDecoder* batch_decoder() { return &decoder_; }

  const FlowTable& table() const { return table_; }
  const DecodeCounters& decode_counters() const { return decoder_.counters(); }
  TimestampNs now() const { return now_; }

 private:
  FlowTable table_;
  BatchDecoder decoder_;
  TimestampNs now_ = 0;

  std::atomic<bool> snapshot_wanted_{false};
  std::mutex snapshot_mu_;
  std::condition_variable snapshot_cv_;
  uint64_t snapshot_request_ = 0;  // guarded by snapshot_mu_
  uint64_t snapshot_served_ = 0;   // guarded by snapshot_mu_
  std::vector<FlowRecord> snapshot_;  // guarded by snapshot_mu_
};

}  // namespace jarvis
