#include "capture/file/file_source.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "capture/file/pcap_fast_reader.h"
#include "capture/pcap_common.h"

namespace jarvis {
namespace {

using Clock = std::chrono::steady_clock;

// "1 complete packet" / "2 complete packets".
std::string CompletePackets(uint64_t n) {
  return std::to_string(n) + (n == 1 ? " complete packet" : " complete packets");
}

// Reads through libpcap: pcapng, and every pcap variant the fast reader leaves alone.
// libpcap reuses one buffer per packet, so Take() copies into an arena that lives as long as
// the batch.
class LibpcapReader {
 public:
  static constexpr std::string_view kName = "libpcap";
  static constexpr size_t kArenaBytes = 4 << 20;

  LibpcapReader(PcapHandle pcap, std::string path, off_t file_size)
      : pcap_(std::move(pcap)), path_(std::move(path)), file_size_(file_size),
        arena_(kArenaBytes) {}

  pcap_t* handle() const { return pcap_.get(); }
  int link_type() const { return pcap_datalink(pcap_.get()); }
  uint32_t snaplen() const {
    return static_cast<uint32_t>(std::max(pcap_snapshot(pcap_.get()), 0));
  }
  bool at_end() const { return at_end_; }

  // Called at the start of every batch: copies of the previous batch are no longer needed.
  void StartBatch() { arena_.Clear(); }

  Result<const PacketView*> Peek(bool /*may_refill*/) {
    if (have_) return &view_;
    pcap_pkthdr* hdr;
    const u_char* data;
    const int rc = pcap_next_ex(pcap_.get(), &hdr, &data);
    if (rc == PCAP_ERROR_BREAK) {
      at_end_ = true;
      return nullptr;
    }
    if (rc != 1) return MakeError(ErrorCode::kCorruptData, pcap_geterr(pcap_.get()));
    view_ = {data, hdr->caplen, hdr->len, PcapNanos(*hdr), 0};
    have_ = true;
    return &view_;
  }

  // Makes the peeked packet's bytes outlive the next Peek(): copies them into the arena. When
  // the arena is full, the packet can still go out uncopied as the last of its batch, since
  // libpcap's buffer stays valid until the next pcap_next_ex() (after the batch is reset).
  // Returns false when it can do neither and the batch must end first.
  bool Take(PacketView& v, bool batch_empty, bool& last_in_batch) {
    if (v.caplen <= arena_.free()) {
      v.data = arena_.Copy(v.data, v.caplen);
      last_in_batch = false;
      return true;
    }
    last_in_batch = true;
    return batch_empty;
  }
  void Consume() { have_ = false; }
  uint32_t FillFromBuffer(PacketBatch&) { return 0; }  // every packet needs a copy

  std::optional<double> Progress() const {
    const long pos = std::ftell(pcap_file(pcap_.get()));
    if (pos < 0 || file_size_ <= 0) return std::nullopt;
    return std::min(1.0, static_cast<double>(pos) / static_cast<double>(file_size_));
  }

 private:
  PcapHandle pcap_;
  std::string path_;
  off_t file_size_;
  CopyArena arena_;
  PacketView view_;
  bool have_ = false;
  bool at_end_ = false;
};

// The fast reader's views point into its read buffer, which only moves on a refill, and a
// refill is only allowed when the batch is empty: nothing to copy.
//
// The filter is compiled against libpcap's own handle on the same file, of which libpcap has
// read only the header: libpcap compiles a filter for a savefile differently from one for a
// dead handle (DLT_NULL: the address family values of every OS and the file's byte order,
// where a dead handle assumes this host's), and both readers must select the same packets.
class FastReader {
 public:
  static constexpr std::string_view kName = "pcap-fast";

  FastReader(std::unique_ptr<PcapFastReader> r, PcapHandle for_filter)
      : r_(std::move(r)), for_filter_(std::move(for_filter)) {}
  pcap_t* handle() const { return for_filter_.get(); }
  int link_type() const { return r_->link_type(); }
  uint32_t snaplen() const { return r_->snaplen(); }
  bool at_end() const { return r_->at_end(); }
  void StartBatch() {}
  Result<const PacketView*> Peek(bool may_refill) { return r_->Peek(may_refill); }
  bool Take(PacketView&, bool, bool& last_in_batch) {
    last_in_batch = false;
    return true;
  }
  void Consume() { r_->Consume(); }
  uint32_t FillFromBuffer(PacketBatch& batch) { return r_->FillFromBuffer(batch); }
  std::optional<double> Progress() const {
    if (r_->file_size() <= 0) return std::nullopt;
    return static_cast<double>(r_->position()) / static_cast<double>(r_->file_size());
  }

 private:
  std::unique_ptr<PcapFastReader> r_;
  PcapHandle for_filter_;  // libpcap's handle on the same file, for compiling the filter
};

// Filtering, pacing, snaplen and counting, written once over either reader.
template <class Reader>
class FileSource final : public CaptureSource {
 public:
  FileSource(Reader reader, std::string path, const SourceOptions& options)
      : reader_(std::move(reader)),
        path_(std::move(path)),
        replay_speed_(options.replay_speed),
        link_type_(reader_.link_type()),
        snaplen_(reader_.snaplen()) {
    // -s with -r cuts what is handed out, as if the file had been captured with that snaplen.
    if (options.snaplen != 0 && (snaplen_ == 0 || options.snaplen < snaplen_)) {
      snaplen_ = options.snaplen;
      cut_to_snaplen_ = true;
    }
  }

  Status SetFilter(const std::string& expr) { return filter_.Compile(reader_.handle(), expr); }

  Result<uint32_t> Receive(PacketBatch& batch, std::chrono::milliseconds timeout) override {
    batch.Reset();
    batch.set_link_type(link_type_);
    reader_.StartBatch();
    if (pending_error_) {
      Error e = std::move(*pending_error_);
      pending_error_.reset();
      return std::unexpected(std::move(e));
    }
    if (reader_.at_end()) return EndOfFile();
    const Clock::time_point deadline = Clock::now() + timeout;
    uint64_t excluded = 0;

    // With nothing to filter, pace or cut, take whole records straight from the reader.
    const bool straight = filter_.empty() && replay_speed_ <= 0 && !cut_to_snaplen_;
    if (straight) reader_.FillFromBuffer(batch);
    while (!batch.full()) {
      auto peeked = reader_.Peek(batch.empty());
      if (!peeked) {
        // A record cut short or unreadable: everything before it goes out first.
        truncated_records_.store(1, std::memory_order_relaxed);
        pending_error_ = Error(ErrorCode::kCorruptData,
                               path_ + ": " + peeked.error().message() + " (after " +
                                   CompletePackets(packets_.load() + batch.size()) + ")");
        break;
      }
      if (*peeked == nullptr) break;  // end of file, or the buffer needs the batch done
      PacketView v = **peeked;
      if (cut_to_snaplen_ && v.caplen > snaplen_) v.caplen = snaplen_;
      if (!filter_.empty()) {
        pcap_pkthdr h{};
        h.caplen = v.caplen;
        h.len = v.wirelen;
        if (!filter_.Matches(h, v.data)) {
          ++excluded;
          reader_.Consume();
          continue;
        }
      }
      if (replay_speed_ > 0 && !Due(v.ts_ns, deadline, batch.empty())) break;
      bool last = false;
      if (!reader_.Take(v, batch.empty(), last)) break;
      batch.Append() = v;
      batch.VisitAppended();
      reader_.Consume();
      if (last || interrupted_.load(std::memory_order_relaxed)) break;
      // The record above may have needed a refill; the rest of the batch is in the buffer now.
      // Without this, the batch after every refill (a fifth of the packets) went out one Peek()
      // at a time.
      if (straight) reader_.FillFromBuffer(batch);
    }
    uint64_t bytes = 0, wire_bytes = 0;
    for (const PacketView& p : batch.packets()) {
      bytes += p.caplen;
      wire_bytes += p.wirelen;
    }
    packets_.fetch_add(batch.size(), std::memory_order_relaxed);
    bytes_.fetch_add(bytes, std::memory_order_relaxed);
    wire_bytes_.fetch_add(wire_bytes, std::memory_order_relaxed);
    filtered_out_.fetch_add(excluded, std::memory_order_relaxed);
    if (batch.empty()) {
      if (pending_error_) return Receive(batch, timeout);
      if (reader_.at_end()) return EndOfFile();
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
  std::optional<double> Progress() const override {
    if (reader_.at_end()) return 1.0;
    return reader_.Progress();
  }
  int link_type() const override { return link_type_; }
  uint32_t snaplen() const override { return snaplen_; }
  std::string_view backend_name() const override { return "file"; }
  std::string_view reader_name() const override { return Reader::kName; }

 private:
  std::unexpected<Error> EndOfFile() const {
    return MakeError(ErrorCode::kEndOfStream, path_ + ": end of file");
  }

  // Recorded-pace replay: true when a packet stamped `ts` is due. Sleeps for it when the batch
  // is empty and the packet falls due before `deadline`.
  bool Due(TimestampNs ts, Clock::time_point deadline, bool batch_empty) {
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
      std::this_thread::sleep_for(std::min(
          {due - now, deadline - now, Clock::duration(std::chrono::milliseconds(50))}));
    }
  }

  Reader reader_;
  std::string path_;
  double replay_speed_;
  int link_type_;
  uint32_t snaplen_;
  bool cut_to_snaplen_ = false;
  BpfProgram filter_;
  std::optional<Error> pending_error_;

  bool started_ = false;
  TimestampNs first_ts_ = 0;
  Clock::time_point wall_start_;

  std::atomic<bool> interrupted_{false};
  std::atomic<uint64_t> packets_{0}, bytes_{0}, wire_bytes_{0}, filtered_out_{0},
      truncated_records_{0};
};

template <class Reader>
Result<std::unique_ptr<CaptureSource>> Finish(Reader reader, const std::string& path,
                                              const SourceOptions& options) {
  auto src = std::make_unique<FileSource<Reader>>(std::move(reader), path, options);
  if (auto st = src->SetFilter(options.filter); !st) return std::unexpected(st.error());
  return std::unique_ptr<CaptureSource>(std::move(src));
}

// Reads the first `n` bytes of the file at `path` into `out`; false when it has fewer or
// cannot be read.
bool ReadFirstBytes(const std::string& path, uint8_t* out, size_t n) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  return fd && ::pread(fd.get(), out, n, 0) == static_cast<ssize_t>(n);
}

// The compressor whose magic number starts the file, or "": captures are often kept
// compressed, and libpcap only says "unknown file format" about them.
std::string_view Compressor(const std::string& path) {
  uint8_t m[6] = {};
  if (!ReadFirstBytes(path, m, sizeof m)) return "";
  if (m[0] == 0x1F && m[1] == 0x8B) return "gzip";
  if (m[0] == 0x28 && m[1] == 0xB5 && m[2] == 0x2F && m[3] == 0xFD) return "zstd";
  if (m[0] == 0xFD && m[1] == '7' && m[2] == 'z' && m[3] == 'X' && m[4] == 'Z' && m[5] == 0) {
    return "xz";
  }
  if (m[0] == 'B' && m[1] == 'Z' && m[2] == 'h') return "bzip2";
  if (m[0] == 0x04 && m[1] == 0x22 && m[2] == 0x4D && m[3] == 0x18) return "lz4";
  return "";
}

}  // namespace

Result<std::unique_ptr<CaptureSource>> OpenFileSource(const SourceOptions& options) {
  const std::string& path = options.target;
  if (path.empty()) return MakeError(ErrorCode::kInvalidArgument, "no file given");
  if (options.replay_speed < 0) {
    return MakeError(ErrorCode::kInvalidArgument, "replay speed must be 0 or positive");
  }
  // "-" is standard input, as for tcpdump (`zcat old.pcap.gz | jarvis-capture flows -r -`);
  // libpcap reads it, as it reads any file that is not a regular one (a FIFO).
  const bool from_stdin = path == "-";
  const std::string name = from_stdin ? "standard input" : path;
  struct stat st {};
  if (from_stdin && ::isatty(STDIN_FILENO)) {
    // libpcap would wait for a capture typed at the keyboard.
    return MakeError(ErrorCode::kInvalidArgument,
                     "-r -: standard input is a terminal; pipe a capture into it");
  }
  if (!from_stdin) {
    if (::stat(path.c_str(), &st) != 0) return ErrnoError(errno, path);
    if (S_ISDIR(st.st_mode)) {
      return MakeError(ErrorCode::kInvalidArgument, path + ": is a directory");
    }
  }

  char errbuf[PCAP_ERRBUF_SIZE] = {};
  PcapHandle p(
      pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO, errbuf));
  if (!p) {
    // libpcap's messages for unreadable files already name the problem ("unknown file
    // format", "unsupported pcap savefile version 1.0").
    ErrorCode code = ErrorCode::kCorruptData;
    if (!from_stdin && ::access(path.c_str(), R_OK) != 0) code = ErrorCode::kPermissionDenied;
    std::string hint;
    if (!from_stdin) {
      if (std::string_view tool = Compressor(path); !tool.empty()) {
        const std::string t(tool);
        hint = " (it is " + t + "-compressed: " + t + " -dc " + path + " | jarvis-capture ... -r -)";
      }
    }
    return MakeError(code, name + ": cannot read capture file: " + errbuf + hint);
  }

  if (!options.force_libpcap_reader && !from_stdin && S_ISREG(st.st_mode)) {
    uint8_t header[24] = {};
    if (ReadFirstBytes(path, header, sizeof header) &&
        PcapFastReader::CanRead(header, sizeof header)) {
      auto fast = PcapFastReader::Open(path);
      if (!fast) return std::unexpected(fast.error());
      return Finish(FastReader(std::move(*fast), std::move(p)), path, options);
    }
  }
  return Finish(LibpcapReader(std::move(p), name, st.st_size), name, options);
}

}  // namespace jarvis
