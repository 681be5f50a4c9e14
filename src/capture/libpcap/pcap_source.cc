#include "capture/libpcap/pcap_source.h"

#include <net/if.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>

#include "capture/iface_caps.h"
#include "capture/pcap_common.h"
#include "core/fd.h"

namespace jarvis {
namespace {

constexpr size_t kArenaBytes = 4 << 20;
// How long the kernel may hold packets in a ring block before waking us when not in immediate
// mode. Short enough that a quiet link still shows packets promptly.
constexpr int kBlockTimeoutMs = 50;

class PcapLiveSource final : public CaptureSource {
 public:
  PcapLiveSource(PcapHandle pcap, UniqueFd wake, std::string iface, uint32_t ifindex)
      : pcap_(std::move(pcap)),
        wake_(std::move(wake)),
        iface_(std::move(iface)),
        ifindex_(ifindex),
        link_type_(pcap_datalink(pcap_.get())),
        snaplen_(static_cast<uint32_t>(pcap_snapshot(pcap_.get()))),
        fd_(pcap_get_selectable_fd(pcap_.get())),
        arena_(std::max<size_t>(kArenaBytes, 2 * static_cast<size_t>(snaplen_))) {}

  Result<uint32_t> Receive(PacketBatch& batch, std::chrono::milliseconds timeout) override {
    batch.Reset();
    batch.set_link_type(link_type_);
    arena_.Clear();
    batch_ = &batch;
    batch_bytes_ = batch_wire_bytes_ = 0;
    bool waited = false;
    while (!batch.full()) {
      // Ask only for as many packets as surely fit in the arena.
      const size_t fit = arena_.free() / std::max<uint32_t>(snaplen_, 1);
      const int want = static_cast<int>(
          std::min<size_t>(fit, PacketBatch::kMaxBurst - batch.size()));
      if (want == 0) break;
      const int n = pcap_dispatch(pcap_.get(), want, &PcapLiveSource::OnPacket,
                                  reinterpret_cast<u_char*>(this));
      if (n == PCAP_ERROR) {
        batch_ = nullptr;
        return MakeError(ErrorCode::kIoError,
                         "capture on " + iface_ + " failed: " + pcap_geterr(pcap_.get()));
      }
      if (n > 0) continue;
      // Nothing ready (n == 0 in non-blocking mode, or a breakloop).
      if (!batch.empty() || waited || timeout.count() <= 0) break;
      if (interrupted_.exchange(false)) break;
      waited = true;
      pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_.get(), POLLIN, 0}};
      int rc = ::poll(fds, 2, static_cast<int>(timeout.count()));
      if (rc < 0 && errno != EINTR) {
        batch_ = nullptr;
        return ErrnoError(errno, "poll on " + iface_);
      }
      if (rc > 0 && (fds[1].revents & POLLIN)) {
        uint64_t v;
        [[maybe_unused]] ssize_t r = ::read(wake_.get(), &v, sizeof v);
        break;
      }
      if (rc > 0 && (fds[0].revents & (POLLERR | POLLHUP | POLLNVAL))) {
        batch_ = nullptr;
        return MakeError(ErrorCode::kIoError,
                         "capture on " + iface_ + " failed: the interface went away or errored");
      }
    }
    batch_ = nullptr;
    packets_.fetch_add(batch.size(), std::memory_order_relaxed);
    bytes_.fetch_add(batch_bytes_, std::memory_order_relaxed);
    wire_bytes_.fetch_add(batch_wire_bytes_, std::memory_order_relaxed);
    return batch.size();
  }

  Result<SourceStats> Stats() override {
    SourceStats s;
    s.packets = packets_.load(std::memory_order_relaxed);
    s.bytes = bytes_.load(std::memory_order_relaxed);
    s.wire_bytes = wire_bytes_.load(std::memory_order_relaxed);
    pcap_stat ps{};
    {
      // pcap_stats() folds the kernel's counters into the handle; one caller at a time.
      std::lock_guard<std::mutex> lock(stats_mu_);
      if (pcap_stats(pcap_.get(), &ps) != 0) {
        return MakeError(ErrorCode::kIoError,
                         "pcap_stats on " + iface_ + ": " + pcap_geterr(pcap_.get()));
      }
    }
    s.received_by_filter = ps.ps_recv;
    s.dropped_kernel = ps.ps_drop;
    s.dropped_interface = ps.ps_ifdrop;
    s.has_kernel_counters = true;
    return s;
  }

  void Interrupt() override {
    interrupted_.store(true, std::memory_order_relaxed);
    uint64_t one = 1;
    [[maybe_unused]] ssize_t r = ::write(wake_.get(), &one, sizeof one);
  }

  int link_type() const override { return link_type_; }
  uint32_t snaplen() const override { return snaplen_; }
  std::string_view backend_name() const override { return "libpcap"; }

 private:
  static void OnPacket(u_char* user, const pcap_pkthdr* h, const u_char* bytes) {
    auto* self = reinterpret_cast<PcapLiveSource*>(user);
    PacketView& v = self->batch_->Append();
    v.data = self->arena_.Copy(bytes, h->caplen);
    v.caplen = h->caplen;
    v.wirelen = h->len;
    v.ts_ns = PcapNanos(*h);
    v.ifindex = self->ifindex_;
    self->batch_bytes_ += h->caplen;
    self->batch_wire_bytes_ += h->len;
  }

  PcapHandle pcap_;
  UniqueFd wake_;
  std::string iface_;
  uint32_t ifindex_;
  int link_type_;
  uint32_t snaplen_;
  int fd_;
  CopyArena arena_;
  PacketBatch* batch_ = nullptr;
  uint64_t batch_bytes_ = 0, batch_wire_bytes_ = 0;

  std::mutex stats_mu_;
  std::atomic<bool> interrupted_{false};
  std::atomic<uint64_t> packets_{0}, bytes_{0}, wire_bytes_{0};
};

// True when the effective capability set holds `cap` (read from /proc/self/status).
bool HasCapability(int cap) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("CapEff:", 0) == 0) {
      uint64_t mask = std::stoull(line.substr(7), nullptr, 16);
      return (mask >> cap) & 1;
    }
  }
  return false;
}

// The libpcap timestamp type for `source`, or why the interface cannot give it, by the rule
// every backend shares (iface_caps.h). libpcap lists its types from the same
// ETHTOOL_GET_TS_INFO; pcap_set_tstamp_type refuses one it does not list.
Result<int> ChooseTstampType(const std::string& iface, TimestampSource source) {
  if (auto st = CheckTimestampSource(source, iface, kLibpcapHostClockOnly); !st) {
    return std::unexpected(st.error());
  }
  if (source == TimestampSource::kKernel || source == TimestampSource::kNtp) {
    return PCAP_TSTAMP_HOST;
  }
  return PCAP_TSTAMP_ADAPTER_UNSYNCED;
}

Error ActivateError(pcap_t* p, int rc, const std::string& iface) {
  std::string detail = pcap_geterr(p);
  switch (rc) {
    case PCAP_ERROR_NO_SUCH_DEVICE:
      return Error(ErrorCode::kNotFound, "no such interface: " + iface);
    case PCAP_ERROR_PERM_DENIED:
      return Error(ErrorCode::kPermissionDenied,
                   "no permission to capture on " + iface +
                       " (needs root or CAP_NET_RAW and CAP_NET_ADMIN): " + detail);
    case PCAP_ERROR_PROMISC_PERM_DENIED:
      return Error(ErrorCode::kPermissionDenied,
                   "no permission to put " + iface + " in promiscuous mode");
    case PCAP_ERROR_IFACE_NOT_UP:
      return Error(ErrorCode::kUnavailable, "interface " + iface + " is not up");
    default:
      return Error(ErrorCode::kIoError, "cannot capture on " + iface + ": " +
                                            pcap_statustostr(rc) + ": " + detail);
  }
}

}  // namespace

std::string PcapLiveUnavailableReason() {
  constexpr int kCapNetRaw = 13;
  if (::geteuid() == 0 || HasCapability(kCapNetRaw)) return {};
  return "live capture needs root or CAP_NET_RAW (setcap cap_net_raw,cap_net_admin+ep on the "
         "binary)";
}

Result<std::unique_ptr<CaptureSource>> OpenPcapLiveSource(const SourceOptions& options) {
  const std::string& iface = options.target;
  if (iface.empty()) return MakeError(ErrorCode::kInvalidArgument, "no interface given");
  if (iface.size() >= IFNAMSIZ) {
    return MakeError(ErrorCode::kInvalidArgument, "interface name too long: " + iface);
  }
  const uint32_t ifindex = ::if_nametoindex(iface.c_str());
  if (ifindex == 0 && iface != "any") {
    return MakeError(ErrorCode::kNotFound, "no such interface: " + iface);
  }

  char errbuf[PCAP_ERRBUF_SIZE] = {};
  PcapHandle p(pcap_create(iface.c_str(), errbuf));
  if (!p) return MakeError(ErrorCode::kIoError, "pcap_create " + iface + ": " + errbuf);

  const uint32_t snaplen = options.snaplen == 0 ? kMaxSnaplen : options.snaplen;
  pcap_set_snaplen(p.get(), static_cast<int>(snaplen));
  pcap_set_promisc(p.get(), options.promiscuous ? 1 : 0);
  pcap_set_timeout(p.get(), kBlockTimeoutMs);
  pcap_set_immediate_mode(p.get(), options.immediate ? 1 : 0);
  if (options.buffer_size_kib != 0) {
    pcap_set_buffer_size(p.get(), static_cast<int>(options.buffer_size_kib) * 1024);
  }
  if (pcap_set_tstamp_precision(p.get(), PCAP_TSTAMP_PRECISION_NANO) != 0) {
    return MakeError(ErrorCode::kUnavailable, "libpcap cannot give nanosecond timestamps here");
  }
  auto tstamp = ChooseTstampType(iface, options.timestamp_source);
  if (!tstamp) return std::unexpected(tstamp.error());
  if (*tstamp != PCAP_TSTAMP_HOST && pcap_set_tstamp_type(p.get(), *tstamp) != 0) {
    return std::unexpected(
        Error(ErrorCode::kUnavailable,
              "libpcap cannot use adapter timestamps on " + iface + ": " + pcap_geterr(p.get()))
            .WithField("timestamp_source"));
  }

  const int rc = pcap_activate(p.get());
  if (rc < 0) return std::unexpected(ActivateError(p.get(), rc, iface));
  // rc > 0 is a warning (e.g. promiscuous mode not supported); capture works regardless.

  BpfProgram filter;
  if (auto st = filter.Compile(p.get(), options.filter); !st) return std::unexpected(st.error());
  if (!filter.empty() && pcap_setfilter(p.get(), const_cast<bpf_program*>(filter.get())) != 0) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "cannot attach filter on " + iface + ": " + pcap_geterr(p.get()));
  }
  if (pcap_setnonblock(p.get(), 1, errbuf) != 0) {
    return MakeError(ErrorCode::kIoError, "pcap_setnonblock " + iface + ": " + errbuf);
  }
  if (pcap_get_selectable_fd(p.get()) < 0) {
    return MakeError(ErrorCode::kUnavailable, "no selectable descriptor for " + iface);
  }
  UniqueFd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake) return ErrnoError(errno, "eventfd");
  return std::unique_ptr<CaptureSource>(
      std::make_unique<PcapLiveSource>(std::move(p), std::move(wake), iface, ifindex));
}

}  // namespace jarvis
