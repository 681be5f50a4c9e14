// The fast path of the `file` backend: classic pcap files read with large sequential read()s
// into one reusable buffer, records parsed in place and packets handed out as views into it.
//
// libpcap's offline reader copies every packet out of a stdio buffer, one call per packet; for
// flow metering that copy and call are most of the cost. This reader keeps libpcap's meaning
// exactly (the tests compare both on every file of the corpus) but covers only the common case:
// version 2.4 files with microsecond or nanosecond magic, either byte order, and a link type
// the decoder knows. Anything else (pcapng, old versions, the Kuznetzov format, FCS bits in
// the link type) is left to libpcap: CanRead() says which.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "core/error.h"
#include "core/fd.h"
#include "core/packet.h"

namespace jarvis {

class PcapFastReader {
 public:
  // True when `header` (the first 24 bytes of a file) is a classic pcap this reader handles.
  static bool CanRead(const uint8_t* header, size_t len);

  // Opens `path`. REQUIRES: CanRead() on its first 24 bytes.
  static Result<std::unique_ptr<PcapFastReader>> Open(const std::string& path);

  // The next record, without consuming it. nullptr means either the end of the file
  // (at_end()) or, when `may_refill` is false, that the record is not wholly in the buffer and
  // a refill is needed, which would move bytes that earlier views still point at. A record
  // that is cut short or impossible is a kCorruptData error (libpcap's wording).
  // The view stays valid until Peek() is next called with `may_refill` true.
  Result<const PacketView*> Peek(bool may_refill);
  // Appends records that are wholly in the buffer to `batch` until it is full or one is not:
  // the common case in a tight loop, without refills, errors or the end of the file, which
  // are Peek()'s to report. Hands each record to the batch's visitor as it is appended (if it
  // has one and has visited every packet before). Returns how many were appended.
  uint32_t FillFromBuffer(PacketBatch& batch);

  // Moves past the record Peek() returned.
  void Consume() {
    begin_ += next_size_;
    consumed_ += static_cast<off_t>(next_size_);
    next_size_ = 0;
  }

  bool at_end() const { return at_end_; }
  int link_type() const { return dlt_; }          // libpcap DLT_* value
  uint32_t snaplen() const { return snapshot_; }  // as libpcap adjusts it
  off_t file_size() const { return file_size_; }
  off_t position() const { return consumed_; }    // bytes of the file parsed so far

 private:
  PcapFastReader() = default;
  Status Refill();

  UniqueFd fd_;
  std::string path_;
  std::unique_ptr<uint8_t[]> buf_;
  uint8_t* data_ = nullptr;  // buf_ rounded up to a cache line; begin_ and end_ count from it
  size_t cap_ = 0;    // bytes usable from data_
  size_t begin_ = 0;  // first unparsed byte
  size_t end_ = 0;    // one past the last byte read
  bool eof_ = false;  // read() returned 0
  bool at_end_ = false;
  bool swapped_ = false;
  bool nanos_ = false;
  int dlt_ = 0;
  uint32_t snapshot_ = 0;
  off_t file_size_ = 0;
  off_t consumed_ = 24;
  size_t next_size_ = 0;  // bytes of the record Peek() returned, header included
  PacketView view_;
};

}  // namespace jarvis
