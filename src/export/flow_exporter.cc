#include "export/flow_exporter.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace jarvis {

namespace {

constexpr uint32_t kSendBurst = 32;  // datagrams per sendmmsg
// The pacer's bucket: after a quiet spell, this many datagrams may leave back to back before
// the rate applies. A 1372-byte datagram takes 2,304 bytes of a Linux receive buffer on
// loopback (skb overhead included), so 512 take 1.1 MiB; a collector that asks for 4 MiB
// (rmem_max here) gets 8 MiB of room, as the kernel doubles SO_RCVBUF.
constexpr uint32_t kBurstCredit = 512;
constexpr int kSendBuffer = 4 << 20;
// While records keep coming, the exporter thread polls the queue this often instead of being
// woken by every batch; after kDeepSleepAfter without records it sleeps until woken.
constexpr auto kBusyPoll = std::chrono::milliseconds(5);
constexpr auto kDeepSleepAfter = std::chrono::seconds(1);

}  // namespace

FlowExporter::FlowExporter(const ExportConfig& config) : config_(config) {}

Result<std::unique_ptr<FlowExporter>> FlowExporter::Create(const ExportConfig& config) {
  if (Status s = ValidateExportConfig(config); !s) return std::unexpected(s.error());
  std::unique_ptr<FlowExporter> e(new FlowExporter(config));
  if (Status s = e->Open(); !s) return std::unexpected(s.error());
  EncoderOptions eo;
  eo.version = config.version;
  eo.biflow = config.biflow;
  eo.max_message_bytes = config.mtu - (e->ipv6_ ? 48 : 28);  // less IP and UDP headers
  eo.observation_domain = config.observation_domain;
  eo.template_refresh_packets = config.template_refresh_packets;
  eo.exporting_process_id = static_cast<uint32_t>(::getpid());
  auto enc = FlowEncoder::Create(eo);
  if (!enc) return std::unexpected(enc.error());
  e->encoder_ = std::move(*enc);
  e->thread_ = std::thread([p = e.get()] { p->Run(); });
  return e;
}

FlowExporter::~FlowExporter() { (void)Stop(std::chrono::seconds(5)); }

Status FlowExporter::Open() {
  const std::string port = std::to_string(config_.collector_port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_protocol = IPPROTO_UDP;
  addrinfo* res = nullptr;
  if (int rc = ::getaddrinfo(config_.collector_host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    return std::unexpected(
        Error(ErrorCode::kNotFound,
              fmt::format("collector '{}': {}", config_.collector_host, ::gai_strerror(rc)))
            .WithField("collector_ip"));
  }
  const sockaddr_storage addr = [&] {
    sockaddr_storage a{};
    std::memcpy(&a, res->ai_addr, res->ai_addrlen);
    return a;
  }();
  const socklen_t addr_len = res->ai_addrlen;
  ::freeaddrinfo(res);
  ipv6_ = addr.ss_family == AF_INET6;
  char host[INET6_ADDRSTRLEN] = {};
  if (ipv6_) {
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_addr, host,
                sizeof host);
    collector_ = fmt::format("[{}]:{}", host, config_.collector_port);
  } else {
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&addr)->sin_addr, host, sizeof host);
    collector_ = fmt::format("{}:{}", host, config_.collector_port);
  }

  fd_.reset(::socket(addr.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP));
  if (!fd_) return ErrnoError(errno, "export socket");
  // A larger send buffer absorbs a paced burst; the kernel caps it at wmem_max.
  ::setsockopt(fd_.get(), SOL_SOCKET, SO_SNDBUF, &kSendBuffer, sizeof kSendBuffer);
  // A send never blocks the exporter for long (Stop must be able to finish).
  const timeval tv{1, 0};
  ::setsockopt(fd_.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (config_.source_port != 0) {
    sockaddr_storage local{};
    socklen_t local_len;
    if (ipv6_) {
      auto* l6 = reinterpret_cast<sockaddr_in6*>(&local);
      l6->sin6_family = AF_INET6;
      l6->sin6_addr = in6addr_any;
      l6->sin6_port = htons(config_.source_port);
      local_len = sizeof(sockaddr_in6);
    } else {
      auto* l4 = reinterpret_cast<sockaddr_in*>(&local);
      l4->sin_family = AF_INET;
      l4->sin_addr.s_addr = htonl(INADDR_ANY);
      l4->sin_port = htons(config_.source_port);
      local_len = sizeof(sockaddr_in);
    }
    if (::bind(fd_.get(), reinterpret_cast<const sockaddr*>(&local), local_len) != 0) {
      return std::unexpected(
          Error::FromErrno(errno, fmt::format("binding export source port {}", config_.source_port))
              .WithField("source_port"));
    }
  }
  // Connected: the kernel fixes our source port now, and reports ICMP errors to us.
  if (::connect(fd_.get(), reinterpret_cast<const sockaddr*>(&addr), addr_len) != 0) {
    // No route to the collector, say: the collector address is at fault.
    return std::unexpected(
        Error::FromErrno(errno, fmt::format("connecting the export socket to {}", collector_))
            .WithField("collector_ip"));
  }
  sockaddr_storage local{};
  socklen_t local_len = sizeof local;
  if (::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&local), &local_len) == 0) {
    source_port_ = ntohs(ipv6_ ? reinterpret_cast<sockaddr_in6*>(&local)->sin6_port
                               : reinterpret_cast<sockaddr_in*>(&local)->sin_port);
  }
  return {};
}

void FlowExporter::OnFlows(std::span<const FlowRecord> records) {
  if (records.empty()) return;
  const size_t n = records.size();
  flows_received_.fetch_add(n, std::memory_order_relaxed);
  std::unique_lock<std::mutex> lock(mu_);
  if (!stopping_ && queued_records_ + n > config_.queue_capacity &&
      config_.queue_full == QueueFullPolicy::kWait) {
    // A batch larger than the whole queue goes in when the queue is empty.
    ++room_waiters_;
    room_cv_.wait(lock, [&] {
      return stopping_ || queued_records_ == 0 || queued_records_ + n <= config_.queue_capacity;
    });
    --room_waiters_;
  }
  const bool fits = queued_records_ + n <= config_.queue_capacity ||
                    (config_.queue_full == QueueFullPolicy::kWait && queued_records_ == 0);
  if (stopping_ || !fits) {
    flows_dropped_queue_full_.fetch_add(n, std::memory_order_relaxed);
    return;
  }
  std::vector<FlowRecord> batch;
  if (!spare_.empty()) {
    batch = std::move(spare_.back());
    spare_.pop_back();
  }
  batch.assign(records.begin(), records.end());
  queue_.push_back(std::move(batch));
  queued_records_ += n;
  ++batches_in_;
  flows_queued_.store(queued_records_, std::memory_order_relaxed);
  // Waking a thread costs the capture path a system call and, on a VM, an inter-processor
  // interrupt. While records keep coming the exporter polls the queue every kBusyPoll, so it
  // is woken only when it sleeps deeply (after an idle second) or the queue fills up.
  const bool wake =
      consumer_waiting_ && (consumer_deep_sleep_ || queued_records_ >= config_.queue_capacity / 4);
  lock.unlock();
  if (wake) work_cv_.notify_one();
}

void FlowExporter::AdvanceClock(TimestampNs now) {
  TimestampNs cur = clock_.load(std::memory_order_relaxed);
  while (now > cur && !clock_.compare_exchange_weak(cur, now, std::memory_order_relaxed)) {
  }
}

Status FlowExporter::Flush(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  const uint64_t target = batches_in_;
  flush_requested_ = true;
  work_cv_.notify_all();
  if (!done_cv_.wait_for(lock, timeout, [&] { return batches_done_ >= target || exited_; })) {
    return MakeError(ErrorCode::kUnavailable,
                     fmt::format("export to {}: {} flow records still queued after {} ms",
                                 collector_, queued_records_, timeout.count()));
  }
  return {};
}

Status FlowExporter::Stop(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  stopping_ = true;
  if (!thread_.joinable()) return {};  // never started (Create failed) or already stopped
  work_cv_.notify_all();
  room_cv_.notify_all();
  const bool finished = done_cv_.wait_for(lock, timeout, [&] { return exited_; });
  size_t left = 0;
  if (!finished) {
    abort_.store(true);
    left = queued_records_;
    work_cv_.notify_all();
  }
  lock.unlock();
  if (!finished) {
    std::lock_guard<std::mutex> pace_lock(pace_mu_);
    pace_cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  if (!finished) {
    return MakeError(ErrorCode::kUnavailable,
                     fmt::format("export to {}: stopped after {} ms with {} flow records unsent",
                                 collector_, timeout.count(), left));
  }
  return {};
}

ExportStats FlowExporter::Stats() const {
  ExportStats s;
#define JARVIS_EXPORT_LOAD(name, help) s.name = name##_.load(std::memory_order_relaxed);
  JARVIS_EXPORT_COUNTERS(JARVIS_EXPORT_LOAD)
#undef JARVIS_EXPORT_LOAD
  return s;
}

void FlowExporter::Run() {
  using Clock = std::chrono::steady_clock;
  const bool timed_refresh =
      config_.template_refresh_sec != 0 && config_.version != ExportVersion::kNetflow5;
  const auto refresh = std::chrono::seconds(config_.template_refresh_sec);
  const auto max_hold = std::chrono::milliseconds(config_.max_hold_ms);
  Clock::time_point next_refresh = Clock::now() + refresh;
  Clock::time_point open_since{};  // when the open message got its first record
  Clock::time_point last_work{};   // when a batch was last taken from the queue
  MessageBuffer out;
  uint64_t unsent_batches = 0;  // taken from the queue, not yet all sent
  const auto publish = [&] {
    const EncoderCounters& c = encoder_->counters();
    flows_skipped_ipv6_.store(c.skipped_ipv6, std::memory_order_relaxed);
    records_split_.store(c.split_records, std::memory_order_relaxed);
    template_sends_.store(c.template_messages, std::memory_order_relaxed);
  };

  for (;;) {
    std::vector<FlowRecord> batch;
    bool queue_empty = false, stop = false, flush = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      // Wait for records, a stop, a flush request, the template timer, or the moment the
      // open message has waited long enough to fill.
      for (;;) {
        if (!queue_.empty() || stopping_ || flush_requested_ || abort_.load()) break;
        const Clock::time_point now = Clock::now();
        Clock::time_point deadline = Clock::time_point::max();
        if (timed_refresh) deadline = next_refresh;
        if (encoder_->has_open_message()) deadline = std::min(deadline, open_since + max_hold);
        // Busy (records within the last second): poll instead of being woken per batch.
        consumer_deep_sleep_ = now - last_work >= kDeepSleepAfter;
        if (!consumer_deep_sleep_) deadline = std::min(deadline, now + kBusyPoll);
        consumer_waiting_ = true;
        const bool timed_out = deadline == Clock::time_point::max()
                                   ? (work_cv_.wait(lock), false)
                                   : work_cv_.wait_until(lock, deadline) == std::cv_status::timeout;
        consumer_waiting_ = false;
        if (timed_out) break;
      }
      if (abort_.load()) {
        flows_dropped_queue_full_.fetch_add(queued_records_, std::memory_order_relaxed);
        queue_.clear();
        queued_records_ = 0;
        flows_queued_.store(0, std::memory_order_relaxed);
        exited_ = true;
        done_cv_.notify_all();
        return;
      }
      if (!queue_.empty()) {
        batch = std::move(queue_.front());
        queue_.pop_front();
        queued_records_ -= batch.size();
        flows_queued_.store(queued_records_, std::memory_order_relaxed);
        ++unsent_batches;
        last_work = Clock::now();
        // Producers waiting for room are woken once the queue is half empty, not per batch.
        if (room_waiters_ > 0 && queued_records_ <= config_.queue_capacity / 2) {
          room_cv_.notify_all();
        }
      }
      queue_empty = queue_.empty();
      stop = stopping_ && queue_empty;
      flush = (flush_requested_ || stopping_) && queue_empty;
      if (flush) flush_requested_ = false;
    }

    encoder_->AdvanceClock(clock_.load(std::memory_order_relaxed));
    encoder_->SetNotSentFlows(flows_dropped_queue_full_.load(std::memory_order_relaxed));
    const Clock::time_point now = Clock::now();
    if (timed_refresh && now >= next_refresh) {
      encoder_->RequestTemplates();
      next_refresh = now + refresh;
      flush = true;  // the templates go out now, with what is waiting
    }
    if (!batch.empty()) {
      const bool was_open = encoder_->has_open_message();
      encoder_->Add(batch, out);
      if (!out.messages.empty() || !was_open) open_since = now;
    }
    // A partly filled message goes out when it has waited max_hold, or on a flush or stop.
    if (queue_empty && encoder_->has_open_message() && now - open_since >= max_hold) {
      flush = true;
    }
    if (flush) encoder_->Flush(out);
    if (out.messages.size() >= kSendBurst || (queue_empty && !out.messages.empty())) {
      Send(out);
      out.Clear();
    }
    publish();
    const bool all_sent = queue_empty && out.messages.empty() && !encoder_->has_open_message();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!batch.empty()) {
        batch.clear();
        spare_.push_back(std::move(batch));
      }
      if (all_sent) {
        batches_done_ += unsent_batches;
        unsent_batches = 0;
      }
      if (stop) exited_ = true;
    }
    if (all_sent) done_cv_.notify_all();
    if (stop) return;
  }
}

void FlowExporter::Pace(uint32_t datagrams) {
  if (config_.max_datagrams_per_sec == 0) return;
  using Clock = std::chrono::steady_clock;
  const auto per = std::chrono::nanoseconds(1'000'000'000LL / config_.max_datagrams_per_sec);
  const Clock::time_point now = Clock::now();
  // A token bucket: credit for idle time is capped at kBurstCredit datagrams.
  if (pace_next_ < now - per * kBurstCredit) pace_next_ = now - per * kBurstCredit;
  if (pace_next_ > now) {
    std::unique_lock<std::mutex> lock(pace_mu_);
    pace_cv_.wait_until(lock, pace_next_, [&] { return abort_.load(); });
  }
  pace_next_ += per * datagrams;
}

void FlowExporter::Send(const MessageBuffer& out) {
  mmsghdr msgs[kSendBurst];
  iovec iovs[kSendBurst];
  size_t i = 0;
  size_t paced = 0;  // datagrams already charged to the pacer (each is charged once)
  bool retried = false;
  while (i < out.messages.size()) {
    if (abort_.load(std::memory_order_relaxed)) {
      for (; i < out.messages.size(); ++i) {
        records_send_failed_.fetch_add(out.messages[i].records, std::memory_order_relaxed);
      }
      return;
    }
    const uint32_t k = static_cast<uint32_t>(std::min<size_t>(kSendBurst, out.messages.size() - i));
    for (uint32_t j = 0; j < k; ++j) {
      const MessageBuffer::Message& m = out.messages[i + j];
      iovs[j].iov_base = const_cast<uint8_t*>(out.data(m));
      iovs[j].iov_len = m.size;
      msgs[j] = {};
      msgs[j].msg_hdr.msg_iov = &iovs[j];
      msgs[j].msg_hdr.msg_iovlen = 1;
    }
    if (i + k > paced) {
      Pace(static_cast<uint32_t>(i + k - paced));
      paced = i + k;
    }
    const int sent = ::sendmmsg(fd_.get(), msgs, k, 0);
    if (sent > 0) {
      uint64_t records = 0, bytes = 0;
      for (int j = 0; j < sent; ++j) {
        records += out.messages[i + j].records;
        bytes += out.messages[i + j].size;
      }
      records_sent_.fetch_add(records, std::memory_order_relaxed);
      bytes_sent_.fetch_add(bytes, std::memory_order_relaxed);
      datagrams_sent_.fetch_add(sent, std::memory_order_relaxed);
      i += sent;
      retried = false;
      continue;
    }
    const int send_err = errno;
    if (send_err == EINTR) continue;
    if (send_err == ECONNREFUSED) {
      refused_.fetch_add(1, std::memory_order_relaxed);
      // The error is the ICMP answer to an earlier datagram; this one was not sent. Try it
      // once more.
      if (!retried) {
        retried = true;
        continue;
      }
    }
    send_errors_.fetch_add(1, std::memory_order_relaxed);
    records_send_failed_.fetch_add(out.messages[i].records, std::memory_order_relaxed);
    ++i;
    retried = false;
  }
  // An ICMP port unreachable that arrived after the last send waits on the socket as a pending
  // error: collect it now, so refusals are counted even when no later send would report them.
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == ECONNREFUSED) {
    refused_.fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace jarvis
