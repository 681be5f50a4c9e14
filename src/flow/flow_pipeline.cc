#include "flow/flow_pipeline.h"

#include <array>

namespace jarvis {
namespace {

// A bounded single-producer, single-consumer ring of pointers. The producer and the consumer
// each own one index; a side with nothing to do spins briefly, then sleeps on the other's
// index (std::atomic wait), so an idle worker costs no CPU.
template <class T, uint32_t N>
class SpscRing {
  static_assert((N & (N - 1)) == 0, "N is a power of two");

 public:
  // Producer only.
  void Push(T v) {
    const uint32_t t = tail_.load(std::memory_order_relaxed);
    WaitWhile(head_, [&](uint32_t h) { return t - h == N; });
    slots_[t & (N - 1)] = v;
    tail_.store(t + 1, std::memory_order_release);
    tail_.notify_one();
  }
  // Consumer only.
  T Pop() {
    const uint32_t h = head_.load(std::memory_order_relaxed);
    WaitWhile(tail_, [&](uint32_t t) { return t == h; });
    T v = slots_[h & (N - 1)];
    head_.store(h + 1, std::memory_order_release);
    head_.notify_one();
    return v;
  }

 private:
  template <class Busy>
  static void WaitWhile(std::atomic<uint32_t>& other, Busy busy) {
    for (int spin = 0; spin < 256; ++spin) {
      if (!busy(other.load(std::memory_order_acquire))) return;
      __builtin_ia32_pause();
    }
    for (;;) {
      const uint32_t seen = other.load(std::memory_order_acquire);
      if (!busy(seen)) return;
      other.wait(seen, std::memory_order_acquire);
    }
  }

  alignas(64) std::atomic<uint32_t> head_{0};
  alignas(64) std::atomic<uint32_t> tail_{0};
  alignas(64) std::array<T, N> slots_{};
};

constexpr uint32_t kRingChunks = 32;

}  // namespace

struct FlowPipeline::Chunk {
  enum Kind : uint8_t { kPackets, kTick, kFinish };
  Kind kind = kPackets;
  uint32_t n = 0;
  TimestampNs now = 0;
  PacketMeta metas[PacketBatch::kMaxBurst];
  TimestampNs ts[PacketBatch::kMaxBurst];
};

struct FlowPipeline::Shard {
  Shard(const FlowConfig& config, uint32_t capacity, FlowSink* sink, uint32_t index,
        uint32_t count)
      : worker(config, capacity, sink, index, count) {}

  FlowWorker worker;  // Thread safety: the shard's thread only, once started.
  SpscRing<Chunk*, kRingChunks> full;   // reader to worker
  SpscRing<Chunk*, kRingChunks> empty;  // worker back to reader
  std::vector<std::unique_ptr<Chunk>> chunks;
  Chunk* filling = nullptr;  // Thread safety: the reader thread only.
  std::atomic<uint32_t> active_flows{0};
  std::thread thread;
};

class FlowPipeline::LockedSink final : public FlowSink {
 public:
  explicit LockedSink(FlowSink* sink) : sink_(sink) {}
  void OnFlows(std::span<const FlowRecord> records) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (sink_ != nullptr) sink_->OnFlows(records);
  }

 private:
  std::mutex mu_;
  FlowSink* sink_;  // guarded by mu_
};

FlowPipeline::FlowPipeline(const FlowConfig& config, uint32_t workers, FlowSink* sink)
    : sink_(std::make_unique<LockedSink>(sink)) {
  workers = std::max<uint32_t>(workers, 1);
  // The table size bounds all shards together.
  const uint32_t per_shard = (config.table_size + workers - 1) / workers;
  for (uint32_t i = 0; i < workers; ++i) {
    auto s = std::make_unique<Shard>(config, per_shard, sink_.get(), i, workers);
    for (uint32_t c = 0; c < kRingChunks; ++c) {
      s->chunks.push_back(std::make_unique<Chunk>());
      s->empty.Push(s->chunks.back().get());
    }
    shards_.push_back(std::move(s));
  }
  for (auto& s : shards_) {
    Shard* shard = s.get();
    shard->thread = std::thread([this, shard] { Run(*shard); });
  }
}

FlowPipeline::~FlowPipeline() { Finish(); }

void FlowPipeline::Run(Shard& s) {
  for (;;) {
    Chunk* c = s.full.Pop();
    switch (c->kind) {
      case Chunk::kPackets:
        s.worker.ProcessDecoded(c->metas, c->ts, c->n);
        break;
      case Chunk::kTick:
        s.worker.Tick(c->now);
        break;
      case Chunk::kFinish:
        s.worker.Finish();
        s.active_flows.store(0, std::memory_order_relaxed);
        return;
    }
    s.active_flows.store(s.worker.table().active_flows(), std::memory_order_relaxed);
    s.empty.Push(c);
  }
}

void FlowPipeline::Send(Shard& s) {
  s.full.Push(s.filling);
  s.filling = nullptr;
}

void FlowPipeline::Dispatch(const PacketBatch& batch, uint32_t limit) {
  const uint32_t n = decoder_.Complete(batch, limit);
  const PacketMeta* metas = decoder_.metas();
  const TimestampNs* times = decoder_.times();
  const uint32_t count = workers();
  for (uint32_t i = 0; i < n; ++i) {
    const PacketMeta& meta = metas[i];
    Shard& s = *shards_[FlowTable::ShardOf(meta, count)];
    if (s.filling == nullptr) {
      s.filling = s.empty.Pop();
      s.filling->kind = Chunk::kPackets;
      s.filling->n = 0;
    }
    Chunk& c = *s.filling;
    c.metas[c.n] = meta;
    c.ts[c.n] = times[i];
    if (++c.n == PacketBatch::kMaxBurst) Send(s);
  }
  // Partial chunks go out with the batch, so a quiet link never holds packets back.
  for (auto& s : shards_) {
    if (s->filling != nullptr) Send(*s);
  }
}

void FlowPipeline::Tick(TimestampNs now) {
  for (auto& s : shards_) {
    Chunk* c = s->empty.Pop();
    c->kind = Chunk::kTick;
    c->now = now;
    s->full.Push(c);
  }
}

void FlowPipeline::Finish() {
  if (finished_) return;
  finished_ = true;
  for (auto& s : shards_) {
    if (s->filling != nullptr) Send(*s);
    Chunk* c = s->empty.Pop();
    c->kind = Chunk::kFinish;
    s->full.Push(c);
  }
  for (auto& s : shards_) s->thread.join();
}

FlowCounters FlowPipeline::counters() const {
  FlowCounters total;
  for (const auto& s : shards_) total += s->worker.table().counters();
  return total;
}

size_t FlowPipeline::memory_bytes() const {
  size_t n = 0;
  for (const auto& s : shards_) n += s->worker.table().memory_bytes();
  return n;
}

uint32_t FlowPipeline::active_flows() const {
  uint32_t n = 0;
  for (const auto& s : shards_) n += s->active_flows.load(std::memory_order_relaxed);
  return n;
}

std::optional<std::vector<FlowRecord>> FlowPipeline::Snapshot(std::chrono::milliseconds timeout) {
  std::vector<FlowRecord> all;
  for (auto& s : shards_) {
    auto part = s->worker.RequestSnapshot(timeout);
    if (!part) return std::nullopt;
    all.insert(all.end(), part->begin(), part->end());
  }
  return all;
}

}  // namespace jarvis
