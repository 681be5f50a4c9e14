// Several flow workers fed by one reader: the calling thread decodes packets and hands each
// worker the packets of its shard, chosen by FlowTable::ShardOf (symmetric, fragment-safe).
//
// Used where one source feeds the meter (a file, a libpcap handle). Sources that fan out in the
// kernel (AF_PACKET fanout, AF_XDP queues) run one FlowWorker per receive thread instead.
//
// Packets travel in chunks of decoded metadata through one bounded single-producer,
// single-consumer ring per worker; a full ring makes the reader wait (a file is read no faster
// than it is metered; a live source's kernel buffer absorbs the wait and counts its drops).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/packet.h"
#include "decode/batch_decoder.h"
#include "decode/decoder.h"
#include "flow/flow_table.h"
#include "flow/flow_worker.h"

namespace jarvis {

class FlowPipeline {
 public:
  // `sink` receives records from every worker thread; it is called under a lock the pipeline
  // holds, so it needs no locking of its own.
  FlowPipeline(const FlowConfig& config, uint32_t workers, FlowSink* sink);
  ~FlowPipeline();
  FlowPipeline(const FlowPipeline&) = delete;
  FlowPipeline& operator=(const FlowPipeline&) = delete;

  // Decodes the first `limit` packets of `batch` and queues them to their workers. Packets
  // decoded as they were appended (batch_decoder() set as the batch's visitor) are not decoded
  // again.
  // Thread safety: one reader thread calls Dispatch, Tick and Finish.
  void Dispatch(const PacketBatch& batch, uint32_t limit = PacketBatch::kMaxBurst);

  // Advances every worker's clock to `now` (housekeeping on a quiet link).
  void Tick(TimestampNs now);

  // Sends what is queued, ends every flow (kForcedEnd) and joins the workers.
  void Finish();

  // Active flows of all shards, each taken at its worker's next chunk or tick.
  std::optional<std::vector<FlowRecord>> Snapshot(std::chrono::milliseconds timeout);

  uint32_t workers() const { return static_cast<uint32_t>(shards_.size()); }
  // Totals over all shards. Exact after Finish(); approximate while running.
  FlowCounters counters() const;
  DecodeCounters decode_counters() const { return decoder_.counters(); }
  // Set it as a batch's visitor (PacketBatch::set_visitor) to decode packets as the source
  // appends them. Reader thread only.
  BatchDecoder* batch_decoder() { return &decoder_; }
  uint32_t active_flows() const;
  size_t memory_bytes() const;  // flow tables of all shards

 private:
  struct Chunk;
  struct Shard;
  class LockedSink;

  void Send(Shard& s);
  void Run(Shard& s);

  std::unique_ptr<LockedSink> sink_;
  std::vector<std::unique_ptr<Shard>> shards_;
  BatchDecoder decoder_;
  bool finished_ = false;
};

}  // namespace jarvis
