// Writes pcapng files (draft-ietf-opsawg-pcapng): one section header, one interface
// description per interface with if_tsresol = 9 (nanoseconds), and an enhanced packet block per
// packet. Output is buffered and written with write(2); Flush() pushes it to the kernel.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/error.h"
#include "core/fd.h"
#include "core/packet.h"

namespace jarvis {

// The LINKTYPE_* value stored in files for a libpcap DLT_* value (they differ for a few, such
// as DLT_RAW 12 which files store as LINKTYPE_RAW 101).
int DltToLinktype(int dlt);

struct PcapngInterface {
  int link_type = 1;        // libpcap DLT_* value
  uint32_t snaplen = 0;     // 0: no limit recorded
  std::string name;         // if_name; empty to leave it out
  std::string description;  // if_description; empty to leave it out
};

class PcapngWriter {
 public:
  // Creates (or truncates) `path`. `application` goes into shb_userappl.
  static Result<PcapngWriter> Create(const std::string& path, const std::string& application);
  // Writes to an already open descriptor (e.g. standard output), which the writer then owns.
  static Result<PcapngWriter> FromFd(UniqueFd fd, const std::string& name,
                                     const std::string& application);

  PcapngWriter(PcapngWriter&&) = default;
  PcapngWriter& operator=(PcapngWriter&&) = default;
  ~PcapngWriter();

  // Adds an interface description block; returns its interface id for WritePacket.
  Result<uint32_t> AddInterface(const PcapngInterface& iface);

  // REQUIRES: interface_id was returned by AddInterface.
  Status WritePacket(const PacketView& pkt, uint32_t interface_id);

  Status Flush();
  // Flushes and closes; further writes fail.
  Status Close();

  uint64_t packets_written() const { return packets_; }
  uint64_t bytes_written() const { return bytes_; }

 private:
  PcapngWriter(UniqueFd fd, std::string name) : fd_(std::move(fd)), name_(std::move(name)) {}
  Status WriteSectionHeader(const std::string& application);
  // Room for `n` more bytes at the end of the buffer (grown when needed); the caller fills it.
  uint8_t* Extend(size_t n) {
    if (cap_ - used_ < n) Grow(n);
    uint8_t* at = buf_.get() + used_;
    used_ += n;
    return at;
  }
  void Grow(size_t n);
  void Append(const void* p, size_t n);
  void Append32(uint32_t v) { Append(&v, 4); }
  void Append16(uint16_t v) { Append(&v, 2); }
  void AppendOption(uint16_t code, const void* value, uint16_t len);
  Status FlushIfFull();

  UniqueFd fd_;
  std::string name_;
  // Output not yet written: used_ bytes at buf_, which holds cap_. A plain array, not a vector:
  // a packet block is laid out in place with no per-field capacity check.
  std::unique_ptr<uint8_t[]> buf_;
  size_t used_ = 0;
  size_t cap_ = 0;
  uint32_t interfaces_ = 0;
  uint64_t packets_ = 0;
  uint64_t bytes_ = 0;
};

}  // namespace jarvis
