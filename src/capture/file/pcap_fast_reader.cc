#include "capture/file/pcap_fast_reader.h"

#include <fcntl.h>
#include <pcap/dlt.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace jarvis {
namespace {

constexpr uint32_t kMagicMicros = 0xA1B2C3D4;
constexpr uint32_t kMagicNanos = 0xA1B23C4D;
constexpr size_t kHeaderBytes = 24;
constexpr size_t kRecordHeaderBytes = 16;
// libpcap's MAXIMUM_SNAPLEN: the largest record it accepts for every link type we take here.
constexpr uint32_t kMaxRecord = 262144;
constexpr size_t kReadChunk = 512 << 10;  // fits in L2, so parsed headers are still cached
constexpr size_t kCopyAlign = 64;         // a cache line

inline uint32_t Get32(const uint8_t* p, bool swapped) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return swapped ? __builtin_bswap32(v) : v;
}
inline uint16_t Get16(const uint8_t* p, bool swapped) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return swapped ? __builtin_bswap16(v) : v;
}

// The DLT libpcap reports for a file's LINKTYPE, for the link types the decoder knows;
// -1 for the rest, which go to libpcap.
int FastPathDlt(uint32_t linktype) {
  switch (linktype) {
    case 101:  // LINKTYPE_RAW
      return DLT_RAW;
    case DLT_NULL:
    case DLT_EN10MB:
    case DLT_PPP:
    case DLT_PPP_SERIAL:
    case DLT_C_HDLC:
    case DLT_LOOP:
    case DLT_LINUX_SLL:
    case DLT_IPV4:
    case DLT_IPV6:
    case DLT_LINUX_SLL2:
      return static_cast<int>(linktype);
    default:
      return -1;
  }
}

// A record's time in nanoseconds, as libpcap (1.10) computes it: the seconds and fraction
// fields read as signed 32-bit values in a file of the host's byte order (its record header
// struct has bpf_int32 fields) and as unsigned ones in a byte-swapped file (its SWAPLONG yields
// an unsigned value). The pcap format says unsigned; what matters here is that both readers of
// the file backend hand out the same time for the same record.
inline TimestampNs RecordTime(const uint8_t* h, bool swapped, int64_t frac_scale) {
  const uint32_t sec = Get32(h, swapped);
  const uint32_t frac = Get32(h + 4, swapped);
  if (swapped) {
    return static_cast<int64_t>(sec) * kNanosPerSecond + static_cast<int64_t>(frac) * frac_scale;
  }
  return static_cast<int64_t>(static_cast<int32_t>(sec)) * kNanosPerSecond +
         static_cast<int64_t>(static_cast<int32_t>(frac)) * frac_scale;
}

struct FileHeader {
  bool swapped;
  bool nanos;
  int dlt;
  uint32_t snapshot;
};

bool ParseHeader(const uint8_t* h, size_t len, FileHeader& out) {
  if (len < kHeaderBytes) return false;
  uint32_t magic;
  std::memcpy(&magic, h, 4);
  bool swapped = false;
  if (magic != kMagicMicros && magic != kMagicNanos) {
    magic = __builtin_bswap32(magic);
    if (magic != kMagicMicros && magic != kMagicNanos) return false;
    swapped = true;
  }
  if (Get16(h + 4, swapped) != 2 || Get16(h + 6, swapped) != 4) return false;
  const uint32_t linktype = Get32(h + 20, swapped);
  if ((linktype & 0xF0000000u) != 0) return false;  // FCS length bits: libpcap's business
  const int dlt = FastPathDlt(linktype & 0x0FFFFFFFu);
  if (dlt < 0) return false;
  // As libpcap adjusts it (pcap_adjust_snapshot): only 0 and values above INT_MAX are replaced.
  // A snapshot above kMaxRecord is kept and reported; records above kMaxRecord are errors all
  // the same.
  uint32_t snaplen = Get32(h + 16, swapped);
  if (snaplen == 0 || snaplen > static_cast<uint32_t>(INT32_MAX)) snaplen = kMaxRecord;
  out = {swapped, magic == kMagicNanos, dlt, snaplen};
  return true;
}

}  // namespace

bool PcapFastReader::CanRead(const uint8_t* header, size_t len) {
  FileHeader h;
  return ParseHeader(header, len, h);
}

Result<std::unique_ptr<PcapFastReader>> PcapFastReader::Open(const std::string& path) {
  std::unique_ptr<PcapFastReader> r(new PcapFastReader());
  r->path_ = path;
  r->fd_.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!r->fd_) return ErrnoError(errno, path);
  struct stat st;
  if (::fstat(r->fd_.get(), &st) != 0) return ErrnoError(errno, path);
  r->file_size_ = st.st_size;
  uint8_t header[kHeaderBytes];
  ssize_t n = ::pread(r->fd_.get(), header, sizeof header, 0);
  FileHeader h;
  if (n != static_cast<ssize_t>(sizeof header) || !ParseHeader(header, sizeof header, h)) {
    return MakeError(ErrorCode::kCorruptData, path + ": not a pcap file the fast reader takes");
  }
  r->swapped_ = h.swapped;
  r->nanos_ = h.nanos;
  r->dlt_ = h.dlt;
  r->snapshot_ = h.snapshot;
  if (::lseek(r->fd_.get(), kHeaderBytes, SEEK_SET) < 0) return ErrnoError(errno, path);
  ::posix_fadvise(r->fd_.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  r->cap_ = kReadChunk + kRecordHeaderBytes + kMaxRecord + kCopyAlign;
  r->buf_.reset(new uint8_t[r->cap_ + kCopyAlign]);
  // Line-aligned, so that Refill can put each read at the file offset's place in a line.
  const auto at = reinterpret_cast<uintptr_t>(r->buf_.get());
  r->data_ = r->buf_.get() + ((kCopyAlign - at % kCopyAlign) % kCopyAlign);
  return r;
}

Status PcapFastReader::Refill() {
  // The unparsed tail moves to the front, at the place that puts the next read's first byte at
  // the same offset within a cache line as its offset in the file. The kernel copies the file
  // out of the page cache line by line; with the two offsets apart, every store straddles two
  // lines and the copy, half of `flows -r`'s time, took 8% longer (measured with 512 KiB reads
  // of a page-cached file: 0.118 s in step, 0.128 s 24 bytes apart).
  // The tail's first byte is at file offset consumed_, so the read lands in step with the file
  // when the tail starts at consumed_'s offset within a line.
  const size_t tail = end_ - begin_;
  const size_t pad = static_cast<uint64_t>(consumed_) % kCopyAlign;
  if (begin_ != pad) {
    std::memmove(data_ + pad, data_ + begin_, tail);
    begin_ = pad;
    end_ = pad + tail;
  }
  while (!eof_ && end_ < cap_) {
    const ssize_t n = ::read(fd_.get(), data_ + end_, cap_ - end_);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "error reading " + path_);
    }
    if (n == 0) {
      eof_ = true;
      break;
    }
    end_ += static_cast<size_t>(n);
    if (end_ - begin_ >= kReadChunk) break;
  }
  return {};
}

uint32_t PcapFastReader::FillFromBuffer(PacketBatch& batch) {
  // Members are copied to locals: the compiler cannot prove the batch does not alias them.
  PacketView* out = batch.free_space();
  const uint32_t room = batch.free_count();
  const uint8_t* p = data_ + begin_;
  const uint8_t* const end = data_ + end_;
  const bool swapped = swapped_;
  const int64_t frac_scale = nanos_ ? 1 : 1000;
  const uint32_t snapshot = snapshot_;
  PacketVisitor* const visitor = batch.visited() == batch.size() ? batch.visitor() : nullptr;
  const int link_type = batch.link_type();
  const uint32_t base = batch.size();
  uint32_t n = 0;
  while (n < room && end - p >= static_cast<ptrdiff_t>(kRecordHeaderBytes)) {
    const uint32_t caplen = Get32(p + 8, swapped);
    if (caplen > kMaxRecord || end - p < static_cast<ptrdiff_t>(kRecordHeaderBytes + caplen)) {
      break;
    }
    PacketView& v = out[n++];
    v.data = p + kRecordHeaderBytes;
    v.caplen = caplen > snapshot ? snapshot : caplen;
    v.wirelen = Get32(p + 12, swapped);
    v.ts_ns = RecordTime(p, swapped, frac_scale);
    v.ifindex = 0;
    p += kRecordHeaderBytes + caplen;
    if (visitor != nullptr) {
      // Each header says where the next one starts, so this walk waits for memory at every
      // step; fetch the next header now and let the visitor's work overlap the wait.
      __builtin_prefetch(p + 8);
      visitor->Visit(link_type, v, base + n - 1);
    }
  }
  batch.Commit(n);
  if (visitor != nullptr) batch.set_visited(base + n);
  const size_t used = static_cast<size_t>(p - (data_ + begin_));
  begin_ += used;
  consumed_ += static_cast<off_t>(used);
  return n;
}

Result<const PacketView*> PcapFastReader::Peek(bool may_refill) {
  for (;;) {
    const size_t avail = end_ - begin_;
    if (avail >= kRecordHeaderBytes) {
      const uint8_t* h = data_ + begin_;
      const uint32_t caplen = Get32(h + 8, swapped_);
      if (caplen > kMaxRecord) {
        return MakeError(ErrorCode::kCorruptData,
                         "invalid packet capture length " + std::to_string(caplen) +
                             ", bigger than maximum of " + std::to_string(kMaxRecord));
      }
      if (avail >= kRecordHeaderBytes + caplen) {
        view_.data = h + kRecordHeaderBytes;
        // A record longer than the file's snapshot length is cut to it, as libpcap does.
        view_.caplen = caplen > snapshot_ ? snapshot_ : caplen;
        view_.wirelen = Get32(h + 12, swapped_);
        view_.ts_ns = RecordTime(h, swapped_, nanos_ ? 1 : 1000);
        view_.ifindex = 0;
        next_size_ = kRecordHeaderBytes + caplen;
        return &view_;
      }
      if (eof_) {
        return MakeError(ErrorCode::kCorruptData,
                         "truncated dump file; tried to read " + std::to_string(caplen) +
                             " captured bytes, only got " +
                             std::to_string(avail - kRecordHeaderBytes));
      }
    } else if (eof_) {
      if (avail == 0) {
        at_end_ = true;
        return nullptr;
      }
      return MakeError(ErrorCode::kCorruptData,
                       "truncated dump file; tried to read 16 header bytes, only got " +
                           std::to_string(avail));
    }
    if (!may_refill) return nullptr;
    if (auto st = Refill(); !st) return std::unexpected(st.error());
  }
}

}  // namespace jarvis
