#include "flow/flow_worker.h"

#include <algorithm>

namespace jarvis {

FlowWorker::FlowWorker(const FlowConfig& config, uint32_t capacity, FlowSink* sink,
                       uint32_t shard, uint32_t shards)
    : table_(config, capacity, sink, shard, shards) {}

void FlowWorker::ProcessBatch(const PacketBatch& batch, uint32_t limit) {
  const uint32_t n = decoder_.Complete(batch, limit);
  ProcessDecoded(decoder_.metas(), decoder_.times(), n);
}

void FlowWorker::ProcessDecoded(const PacketMeta* metas, const TimestampNs* ts, uint32_t n) {
  table_.ProcessBatch(metas, ts, n);
  for (uint32_t i = 0; i < n; ++i) {
    if (ts[i] > now_) now_ = ts[i];
  }
  table_.Expire(now_);
  if (snapshot_wanted_.load(std::memory_order_relaxed)) ServeSnapshot();
}

void FlowWorker::Tick(TimestampNs now) {
  if (now > now_) now_ = now;
  table_.Expire(now_);
  if (snapshot_wanted_.load(std::memory_order_relaxed)) ServeSnapshot();
}

void FlowWorker::ServeSnapshot() {
  std::vector<FlowRecord> fresh;
  fresh.reserve(table_.active_flows());
  table_.Snapshot(fresh);
  {
    std::lock_guard<std::mutex> lock(snapshot_mu_);
    snapshot_ = std::move(fresh);
    snapshot_served_ = snapshot_request_;
    snapshot_wanted_.store(false, std::memory_order_relaxed);
  }
  snapshot_cv_.notify_all();
}

std::optional<std::vector<FlowRecord>> FlowWorker::RequestSnapshot(
    std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(snapshot_mu_);
  const uint64_t ticket = ++snapshot_request_;
  snapshot_wanted_.store(true, std::memory_order_relaxed);
  if (!snapshot_cv_.wait_for(lock, timeout, [&] { return snapshot_served_ >= ticket; })) {
    return std::nullopt;
  }
  return snapshot_;
}

}  // namespace jarvis
