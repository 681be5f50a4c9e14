#include "capture/af_packet/af_packet_source.h"

#include <arpa/inet.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/net_tstamp.h>
#include <net/if.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>

#include "capture/iface_caps.h"
#include "capture/pcap_common.h"
#include "core/fd.h"

namespace jarvis {
namespace {

constexpr uint32_t kBlockBytes = 1 << 20;  // 1 MiB blocks: a few hundred packets each
constexpr uint32_t kFrameBytes = 2048;     // TPACKET_V3 ignores it, but it must divide blocks
constexpr uint32_t kBlockTimeoutMs = 10;   // a partly filled block is handed over after this
constexpr uint32_t kPrefetchBytes = 1024;  // how far ahead of the packet being read lines are fetched
constexpr uint32_t kDefaultBufferKib = 64 * 1024;

bool HasNetRaw() {
  // The same check libpcap's backend uses: a raw packet socket either opens or it does not.
  UniqueFd fd(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0));
  return fd.valid();
}

class AfPacketSource final : public CaptureSource {
 public:
  AfPacketSource(UniqueFd fd, UniqueFd wake, MappedRegion ring, uint32_t blocks,
                 std::string iface, uint32_t ifindex, uint32_t snaplen)
      : fd_(std::move(fd)),
        wake_(std::move(wake)),
        ring_(std::move(ring)),
        blocks_(blocks),
        iface_(std::move(iface)),
        ifindex_(ifindex),
        snaplen_(snaplen) {}

  ~AfPacketSource() override = default;

  Result<uint32_t> Receive(PacketBatch& batch, std::chrono::milliseconds timeout) override {
    batch.Reset();  // gives back a block the previous batch finished
    batch.set_link_type(DLT_EN10MB);
    if (!in_block_) {
      if (!BlockReady(current_)) {
        if (timeout.count() <= 0) return 0u;
        pollfd fds[2] = {{fd_.get(), POLLIN | POLLERR, 0}, {wake_.get(), POLLIN, 0}};
        const int rc = ::poll(fds, 2, static_cast<int>(timeout.count()));
        if (rc < 0 && errno != EINTR) return ErrnoError(errno, "poll on " + iface_);
        if (rc > 0 && (fds[1].revents & POLLIN)) {
          uint64_t v;
          [[maybe_unused]] ssize_t r = ::read(wake_.get(), &v, sizeof v);
          return 0u;
        }
        if (rc > 0 && (fds[0].revents & (POLLERR | POLLNVAL)) && !BlockReady(current_)) {
          return MakeError(ErrorCode::kIoError,
                           "capture on " + iface_ + " failed: the interface went away or errored");
        }
        if (!BlockReady(current_)) return 0u;
      }
      in_block_ = true;
      const tpacket_block_desc* bd = Block(current_);
      left_in_block_ = bd->hdr.bh1.num_pkts;
      next_pkt_ = reinterpret_cast<const uint8_t*>(bd) + bd->hdr.bh1.offset_to_first_pkt;
      block_end_ = reinterpret_cast<const uint8_t*>(bd) + bd->hdr.bh1.blk_len;
      prefetched_ = next_pkt_;
    }

    uint64_t bytes = 0, wire = 0;
    while (left_in_block_ > 0 && !batch.full()) {
      // The kernel wrote the block from another CPU, so every line of it is a cache miss, and
      // each header's address comes from the one before it. Asking for the lines a fixed
      // distance ahead lets those misses overlap instead of following one another.
      const uint8_t* const want = std::min(next_pkt_ + kPrefetchBytes, block_end_);
      for (; prefetched_ < want; prefetched_ += 64) __builtin_prefetch(prefetched_);
      auto* h = const_cast<tpacket3_hdr*>(reinterpret_cast<const tpacket3_hdr*>(next_pkt_));
      uint8_t* data = reinterpret_cast<uint8_t*>(h) + h->tp_mac;
      uint32_t caplen = h->tp_snaplen;
      uint32_t wirelen = h->tp_len;
      // The kernel strips the 802.1Q tag into the header; put it back in front of the type, as
      // libpcap does, by moving the MAC addresses 4 bytes into the header's room.
      if ((h->tp_status & TP_STATUS_VLAN_VALID) && caplen >= 12 &&
          h->tp_mac >= sizeof(tpacket3_hdr) + 4) {
        const uint16_t tpid = (h->tp_status & TP_STATUS_VLAN_TPID_VALID)
                                  ? h->hv1.tp_vlan_tpid
                                  : static_cast<uint16_t>(ETH_P_8021Q);
        const uint16_t tci = h->hv1.tp_vlan_tci;
        std::memmove(data - 4, data, 12);
        data -= 4;
        const uint16_t be_tpid = htons(tpid), be_tci = htons(tci);
        std::memcpy(data + 12, &be_tpid, 2);
        std::memcpy(data + 14, &be_tci, 2);
        caplen += 4;
        wirelen += 4;
      }
      PacketView& v = batch.Append();
      v.data = data;
      v.caplen = std::min(caplen, snaplen_);
      v.wirelen = wirelen;
      v.ts_ns = static_cast<TimestampNs>(h->tp_sec) * kNanosPerSecond + h->tp_nsec;
      v.ifindex = ifindex_;
      bytes += v.caplen;
      wire += wirelen;
      next_pkt_ += h->tp_next_offset;
      --left_in_block_;
    }
    if (left_in_block_ == 0) {
      // This batch holds the block's last packets: it gives the block back when done.
      batch.set_lease(Lease{&AfPacketSource::ReleaseBlock, this, current_});
      current_ = (current_ + 1) % blocks_;
      in_block_ = false;
    }
    packets_.fetch_add(batch.size(), std::memory_order_relaxed);
    bytes_.fetch_add(bytes, std::memory_order_relaxed);
    wire_bytes_.fetch_add(wire, std::memory_order_relaxed);
    return batch.size();
  }

  Result<SourceStats> Stats() override {
    SourceStats s;
    s.packets = packets_.load(std::memory_order_relaxed);
    s.bytes = bytes_.load(std::memory_order_relaxed);
    s.wire_bytes = wire_bytes_.load(std::memory_order_relaxed);
    {
      // PACKET_STATISTICS resets the kernel's counters on every read: keep the running sums.
      std::lock_guard<std::mutex> lock(stats_mu_);
      tpacket_stats_v3 st{};
      socklen_t len = sizeof st;
      if (::getsockopt(fd_.get(), SOL_PACKET, PACKET_STATISTICS, &st, &len) != 0) {
        return ErrnoError(errno, "PACKET_STATISTICS on " + iface_);
      }
      kernel_packets_ += st.tp_packets;
      kernel_drops_ += st.tp_drops;
      s.received_by_filter = kernel_packets_;
      s.dropped_kernel = kernel_drops_;
    }
    s.has_kernel_counters = true;
    uint32_t full = 0;
    for (uint32_t i = 0; i < blocks_; ++i) full += BlockReady(i) ? 1 : 0;
    s.buffer_usage_pct = 100.0 * full / blocks_;
    s.has_buffer_usage = true;
    return s;
  }

  void Interrupt() override {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t r = ::write(wake_.get(), &one, sizeof one);
  }

  int link_type() const override { return DLT_EN10MB; }
  uint32_t snaplen() const override { return snaplen_; }
  std::string_view backend_name() const override { return "af_packet"; }

 private:
  tpacket_block_desc* Block(uint32_t i) const {
    return reinterpret_cast<tpacket_block_desc*>(static_cast<uint8_t*>(ring_.get()) +
                                                 static_cast<size_t>(i) * kBlockBytes);
  }
  bool BlockReady(uint32_t i) const {
    return (std::atomic_ref<uint32_t>(Block(i)->hdr.bh1.block_status).load(
                std::memory_order_acquire) &
            TP_STATUS_USER) != 0;
  }
  static void ReleaseBlock(void* owner, uint64_t block) {
    auto* self = static_cast<AfPacketSource*>(owner);
    std::atomic_ref<uint32_t>(self->Block(static_cast<uint32_t>(block))->hdr.bh1.block_status)
        .store(TP_STATUS_KERNEL, std::memory_order_release);
  }

  UniqueFd fd_;
  UniqueFd wake_;
  MappedRegion ring_;
  uint32_t blocks_;
  std::string iface_;
  uint32_t ifindex_;
  uint32_t snaplen_;

  // Receive() state. Thread safety: the receiving thread only.
  uint32_t current_ = 0;
  bool in_block_ = false;
  uint32_t left_in_block_ = 0;
  const uint8_t* next_pkt_ = nullptr;
  const uint8_t* block_end_ = nullptr;   // end of the current block's packets
  const uint8_t* prefetched_ = nullptr;  // lines before this one have been prefetched

  std::atomic<uint64_t> packets_{0}, bytes_{0}, wire_bytes_{0};
  std::mutex stats_mu_;
  uint64_t kernel_packets_ = 0;  // guarded by stats_mu_
  uint64_t kernel_drops_ = 0;    // guarded by stats_mu_
};

// A filter program for the kernel: the user's expression compiled by libpcap, or one
// instruction that accepts every packet cut to the snaplen.
Status AttachFilter(int fd, const std::string& expr, uint32_t snaplen) {
  PcapHandle dead(pcap_open_dead(DLT_EN10MB, static_cast<int>(snaplen)));
  BpfProgram prog;
  if (auto st = prog.Compile(dead.get(), expr.empty() ? "" : expr); !st) return st;
  sock_filter accept_all = BPF_STMT(BPF_RET | BPF_K, snaplen);
  sock_fprog fprog{};
  if (prog.empty()) {
    fprog.len = 1;
    fprog.filter = &accept_all;
  } else {
    fprog.len = static_cast<unsigned short>(prog.get()->bf_len);
    fprog.filter = reinterpret_cast<sock_filter*>(prog.get()->bf_insns);
  }
  if (::setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof fprog) != 0) {
    return ErrnoError(errno, "SO_ATTACH_FILTER");
  }
  return {};
}

Result<std::unique_ptr<CaptureSource>> Open(const SourceOptions& o, uint32_t fanout_group) {
  const std::string& iface = o.target;
  if (iface.empty()) return MakeError(ErrorCode::kInvalidArgument, "no interface given");
  if (iface.size() >= IFNAMSIZ) {
    return MakeError(ErrorCode::kInvalidArgument, "interface name too long: " + iface);
  }
  const uint32_t ifindex = ::if_nametoindex(iface.c_str());
  if (ifindex == 0) return MakeError(ErrorCode::kNotFound, "no such interface: " + iface);
  if (auto st = CheckTimestampSource(o.timestamp_source, iface, kAfPacketHostClockOnly); !st) {
    return std::unexpected(st.error());
  }
  const uint32_t snaplen = o.snaplen == 0 ? kMaxSnaplen : o.snaplen;

  UniqueFd fd(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL)));
  if (!fd) {
    if (errno == EPERM || errno == EACCES) {
      return MakeError(ErrorCode::kPermissionDenied,
                       "no permission to capture on " + iface +
                           " (needs root or CAP_NET_RAW and CAP_NET_ADMIN)");
    }
    return ErrnoError(errno, "AF_PACKET socket");
  }
  // Attach the filter before the ring fills, so nothing unfiltered slips in.
  if (auto st = AttachFilter(fd.get(), o.filter, snaplen); !st) {
    return std::unexpected(st.error());
  }
  int version = TPACKET_V3;
  if (::setsockopt(fd.get(), SOL_PACKET, PACKET_VERSION, &version, sizeof version) != 0) {
    return ErrnoError(errno, "PACKET_VERSION TPACKET_V3 on " + iface);
  }
  const uint64_t want = static_cast<uint64_t>(o.buffer_size_kib ? o.buffer_size_kib
                                                                : kDefaultBufferKib) * 1024;
  const uint32_t blocks = static_cast<uint32_t>(std::max<uint64_t>(want / kBlockBytes, 4));
  tpacket_req3 req{};
  req.tp_block_size = kBlockBytes;
  req.tp_block_nr = blocks;
  req.tp_frame_size = kFrameBytes;
  req.tp_frame_nr = static_cast<uint32_t>(static_cast<uint64_t>(kBlockBytes) * blocks / kFrameBytes);
  req.tp_retire_blk_tov = kBlockTimeoutMs;
  // No TP_FT_REQ_FILL_RXHASH: nothing reads the flow hash, and filling it costs the kernel a
  // hash per packet (fanout computes its own).
  req.tp_feature_req_word = 0;
  if (::setsockopt(fd.get(), SOL_PACKET, PACKET_RX_RING, &req, sizeof req) != 0) {
    return ErrnoError(errno, "PACKET_RX_RING of " + std::to_string(blocks) + " MiB on " + iface);
  }
  const size_t ring_bytes = static_cast<size_t>(kBlockBytes) * blocks;
  void* ring = ::mmap(nullptr, ring_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
                      fd.get(), 0);
  if (ring == MAP_FAILED) return ErrnoError(errno, "mapping the ring of " + iface);
  MappedRegion region(ring, ring_bytes);

  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = static_cast<int>(ifindex);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sll), sizeof sll) != 0) {
    return ErrnoError(errno, "binding to " + iface);
  }
  if (o.promiscuous) {
    packet_mreq mr{};
    mr.mr_ifindex = static_cast<int>(ifindex);
    mr.mr_type = PACKET_MR_PROMISC;
    // Membership ends with the socket, so the interface leaves promiscuous mode on close.
    if (::setsockopt(fd.get(), SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) != 0) {
      return ErrnoError(errno, "promiscuous mode on " + iface);
    }
  }
  if (fanout_group != 0) {
    const uint32_t arg = (fanout_group & 0xFFFF) |
                         static_cast<uint32_t>(PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG)
                             << 16;
    if (::setsockopt(fd.get(), SOL_PACKET, PACKET_FANOUT, &arg, sizeof arg) != 0) {
      return ErrnoError(errno, "joining fanout group " + std::to_string(fanout_group));
    }
  }
  UniqueFd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake) return ErrnoError(errno, "eventfd");
  return std::unique_ptr<CaptureSource>(std::make_unique<AfPacketSource>(
      std::move(fd), std::move(wake), std::move(region), blocks, iface, ifindex, snaplen));
}

}  // namespace

AfPacketProbe ProbeAfPacket(uint32_t ifindex) {
  AfPacketProbe p;
  UniqueFd v3(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0));
  if (!v3) {
    p.error = std::string("AF_PACKET socket: ") + std::strerror(errno);
    return p;
  }
  p.probed = true;
  int version = TPACKET_V3;
  p.tpacket_v3 = ::setsockopt(v3.get(), SOL_PACKET, PACKET_VERSION, &version, sizeof version) == 0;
  if (!p.tpacket_v3) p.error = std::string("PACKET_VERSION TPACKET_V3: ") + std::strerror(errno);

  // Fanout needs a socket that is bound and running; it accepts nothing, so it never queues a
  // packet in the moment it exists.
  UniqueFd fd(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0));
  if (!fd) return p;
  sock_filter reject = BPF_STMT(BPF_RET | BPF_K, 0);
  sock_fprog prog{.len = 1, .filter = &reject};
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = static_cast<int>(ifindex);
  const uint32_t arg = static_cast<uint32_t>(PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG |
                                             PACKET_FANOUT_FLAG_UNIQUEID)
                       << 16;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) != 0) {
    if (p.error.empty()) p.error = std::string("SO_ATTACH_FILTER: ") + std::strerror(errno);
  } else if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sll), sizeof sll) != 0) {
    if (p.error.empty()) p.error = std::string("bind: ") + std::strerror(errno);
  } else if (::setsockopt(fd.get(), SOL_PACKET, PACKET_FANOUT, &arg, sizeof arg) != 0) {
    if (p.error.empty()) p.error = std::string("PACKET_FANOUT: ") + std::strerror(errno);
  } else {
    p.fanout = true;
  }
  return p;
}

std::string AfPacketUnavailableReason() {
  if (HasNetRaw()) return {};
  return "AF_PACKET sockets need root or CAP_NET_RAW (setcap cap_net_raw,cap_net_admin+ep on "
         "the binary)";
}

Result<std::unique_ptr<CaptureSource>> OpenAfPacketSource(const SourceOptions& options) {
  return Open(options, 0);
}

Result<std::unique_ptr<CaptureSource>> OpenAfPacketFanoutMember(const SourceOptions& options,
                                                               uint32_t fanout_group) {
  return Open(options, fanout_group);
}

}  // namespace jarvis
