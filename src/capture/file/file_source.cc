#include "capture/file/file_source.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <optional>
#include <thread>

#include "capture/pcap_common.h"

namespace jarvis {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kArenaBytes = 4 << 20;

class FileSource final : public CaptureSource {
 public:
  FileSource(PcapHandle pcap, std::string path, const SourceOptions& options)
      : pcap_(std::move(pcap)),
        path_(std::move(path)),
        replay_speed_(options.replay_speed),
        link_type_(pcap_datalink(pcap_.get())),
        snaplen_(static_cast<uint32_t>(std::max(pcap_snapshot(pcap_.get()), 0))),
        arena_(kArenaBytes) {
    // -s with -r cuts what is handed out, as if the file had been captured with that snaplen.
    if (options.snaplen != 0 && (snaplen_ == 0 || options.snaplen < snaplen_)) {
      snaplen_ = options.snaplen;
      cut_to_snaplen_ = true;
    }
  }

  Status SetFilter(const std::string& expr) { return filter_.Compile(pcap_.get(), expr); }

  Result<uint32_t> Receive(PacketBatch& batch, std::chrono::milliseconds timeout) override {
    batch.Reset();
    batch.set_link_type(link_type_);
    arena_.Clear();
    if (pending_error_) {
      Error e = std::move(*pending_error_);
      pending_error_.reset();
      return std::unexpected(std::move(e));
    }
    if (at_end_) return MakeError(ErrorCode::kEndOfStream, path_ + ": end of file");
    const Clock::time_point deadline = Clock::now() + timeout;
    uint64_t bytes = 0, wire_bytes = 0, excluded = 0;

    while (!batch.full()) {
      if (!have_pending_) {
        int rc = pcap_next_ex(pcap_.get(), &hdr_, &data_);
        if (rc == PCAP_ERROR_BREAK) {
          at_end_ = true;
          break;
        }
        if (rc != 1) {
          // A record cut short or unreadable: everything before it has been delivered.
          truncated_records_.store(1, std::memory_order_relaxed);
          pending_error_ = Error(ErrorCode::kCorruptData,
                                 path_ + ": " + pcap_geterr(pcap_.get()) + " (after " +
                                     std::to_string(packets_.load() + batch.size()) +
                                     " complete packets)");
          break;
        }
        if (!filter_.Matches(*hdr_, data_)) {
          ++excluded;
          continue;
        }
        have_pending_ = true;
      }
      if (replay_speed_ > 0 && !Due(deadline, batch.empty())) break;
      const uint32_t caplen = cut_to_snaplen_ ? std::min(hdr_->caplen, snaplen_) : hdr_->caplen;
      const uint8_t* bytes_at = data_;
      if (caplen > arena_.free()) {
        // libpcap's buffer stays valid until the next pcap_next_ex(), which happens only after
        // this batch is reset, so an oversized record can go out uncopied as the batch's last.
        if (!batch.empty()) break;
      } else {
        bytes_at = arena_.Copy(data_, caplen);
      }
      PacketView& v = batch.Append();
      v.data = bytes_at;
      v.caplen = caplen;
      v.wirelen = hdr_->len;
      v.ts_ns = PcapNanos(*hdr_);
      v.ifindex = 0;
      bytes += caplen;
      wire_bytes += hdr_->len;
      have_pending_ = false;
      if (bytes_at == data_) break;
      if (interrupted_.load(std::memory_order_relaxed)) break;
    }
    packets_.fetch_add(batch.size(), std::memory_order_relaxed);
    bytes_.fetch_add(bytes, std::memory_order_relaxed);
    wire_bytes_.fetch_add(wire_bytes, std::memory_order_relaxed);
    filtered_out_.fetch_add(excluded, std::memory_order_relaxed);
    if (batch.empty()) {
      if (pending_error_) return Receive(batch, timeout);
      if (at_end_) return MakeError(ErrorCode::kEndOfStream, path_ + ": end of file");
    }
    return batch.size();
  }

  Result<SourceStats> Stats() override {
    SourceStats s;
    s.packets = packets_.load(std::memory_order_relaxed);
    s.bytes = bytes_.load(std::memory_order_relaxed);
    s.wire_bytes = wire_bytes_.load(std::memory_order_relaxed);
    s.filtered_out = filtered_out_.load(std::memory_order_relaxed);
    s.received_by_filter = s.packets;
    s.truncated_records = truncated_records_.load(std::memory_order_relaxed);
    s.has_filtered_out = true;
    return s;
  }

  void Interrupt() override { interrupted_.store(true, std::memory_order_relaxed); }
  int link_type() const override { return link_type_; }
  uint32_t snaplen() const override { return snaplen_; }
  std::string_view backend_name() const override { return "file"; }

 private:
  // Recorded-pace replay: true when the pending packet is due. Sleeps for it when the batch is
  // empty and the packet falls due before `deadline`.
  bool Due(Clock::time_point deadline, bool batch_empty) {
    const TimestampNs ts = PcapNanos(*hdr_);
    if (!started_) {
      started_ = true;
      first_ts_ = ts;
      wall_start_ = Clock::now();
    }
    const auto offset = std::chrono::nanoseconds(
        static_cast<int64_t>(static_cast<double>(std::max<TimestampNs>(ts - first_ts_, 0)) /
                             replay_speed_));
    const Clock::time_point due = wall_start_ + offset;
    for (;;) {
      const Clock::time_point now = Clock::now();
      if (now >= due) return true;
      if (!batch_empty || now >= deadline || interrupted_.load(std::memory_order_relaxed)) {
        return false;
      }
      // Sleep in short steps so Interrupt() is honoured promptly.
      std::this_thread::sleep_for(
          std::min({due - now, deadline - now,
                    Clock::duration(std::chrono::milliseconds(50))}));
    }
  }

  PcapHandle pcap_;
  std::string path_;
  double replay_speed_;
  int link_type_;
  uint32_t snaplen_;
  bool cut_to_snaplen_ = false;
  BpfProgram filter_;
  CopyArena arena_;

  // The record pcap_next_ex() returned last; valid until the next call.
  pcap_pkthdr* hdr_ = nullptr;
  const u_char* data_ = nullptr;
  bool have_pending_ = false;
  bool at_end_ = false;
  std::optional<Error> pending_error_;

  bool started_ = false;
  TimestampNs first_ts_ = 0;
  Clock::time_point wall_start_;

  std::atomic<bool> interrupted_{false};
  std::atomic<uint64_t> packets_{0}, bytes_{0}, wire_bytes_{0}, filtered_out_{0},
      truncated_records_{0};
};

}  // namespace

Result<std::unique_ptr<CaptureSource>> OpenFileSource(const SourceOptions& options) {
  const std::string& path = options.target;
  if (path.empty()) return MakeError(ErrorCode::kInvalidArgument, "no file given");
  if (options.replay_speed < 0) {
    return MakeError(ErrorCode::kInvalidArgument, "replay speed must be 0 or positive");
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return ErrnoError(errno, path);
  if (S_ISDIR(st.st_mode)) return MakeError(ErrorCode::kInvalidArgument, path + ": is a directory");

  char errbuf[PCAP_ERRBUF_SIZE] = {};
  PcapHandle p(
      pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO, errbuf));
  if (!p) {
    // libpcap's messages for unreadable files already name the problem ("unknown file
    // format", "unsupported pcap savefile version 1.0").
    ErrorCode code = ErrorCode::kCorruptData;
    if (::access(path.c_str(), R_OK) != 0) code = ErrorCode::kPermissionDenied;
    return MakeError(code, path + ": cannot read capture file: " + errbuf);
  }
  auto src = std::make_unique<FileSource>(std::move(p), path, options);
  if (auto st2 = src->SetFilter(options.filter); !st2) return std::unexpected(st2.error());
  return std::unique_ptr<CaptureSource>(std::move(src));
}

}  // namespace jarvis
