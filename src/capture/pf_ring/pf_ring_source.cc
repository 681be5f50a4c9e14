#include "capture/pf_ring/pf_ring_source.h"

#include <dlfcn.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "capture/iface_caps.h"
#include "capture/pcap_common.h"

namespace jarvis {
namespace pf_ring {
namespace {

// The parts of pfring.h the backend uses. PF_RING's ABI: flags and the leading members of
// struct pfring_pkthdr (a timeval, caplen, len; the extended header that follows is left
// alone, with room for it) and struct pfring_stat.
constexpr uint32_t kPfRingPromisc = 1u << 3;
constexpr uint32_t kPfRingTimestamp = 1u << 4;

struct PfRingPkthdr {
  timeval ts;
  uint32_t caplen;
  uint32_t len;
  uint8_t extended[512];  // struct pfring_extended_pkthdr and padding: never read
};

struct PfRingStat {
  uint64_t recv;
  uint64_t drop;
  uint64_t shunt;
};

struct Api {
  void* (*open)(const char* device, uint32_t caplen, uint32_t flags);
  void (*close)(void* ring);
  int (*enable_ring)(void* ring);
  int (*set_bpf_filter)(void* ring, char* filter);
  int (*recv)(void* ring, unsigned char** buffer, unsigned buffer_len, PfRingPkthdr* hdr,
              uint8_t wait);
  int (*poll)(void* ring, unsigned wait_ms);
  int (*stats)(void* ring, PfRingStat* stats);
  void (*breakloop)(void* ring);
};

// Loads the library and resolves every function, or says what is missing.
Result<Api> LoadApi(const std::vector<std::string>& libraries) {
  void* h = nullptr;
  std::string tried, errors;
  for (const std::string& lib : libraries) {
    h = ::dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);  // never closed once loaded
    if (h != nullptr) break;
    tried += (tried.empty() ? "" : ", ") + lib;
    // "cannot open shared object file" means absent; anything else is worth quoting.
    const char* e = ::dlerror();
    if (e != nullptr && std::strstr(e, "cannot open shared object file") == nullptr) {
      errors += std::string(errors.empty() ? "" : "; ") + e;
    }
  }
  if (h == nullptr) {
    return MakeError(ErrorCode::kUnavailable,
                     errors.empty() ? "libpfring is not installed (tried " + tried + ")"
                                    : "libpfring cannot be loaded: " + errors);
  }
  Api api{};
  std::string missing;
  const auto get = [&](auto& fn, const char* name) {
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(::dlsym(h, name));
    if (fn == nullptr) missing += std::string(missing.empty() ? "" : ", ") + name;
  };
  get(api.open, "pfring_open");
  get(api.close, "pfring_close");
  get(api.enable_ring, "pfring_enable_ring");
  get(api.set_bpf_filter, "pfring_set_bpf_filter");
  get(api.recv, "pfring_recv");
  get(api.poll, "pfring_poll");
  get(api.stats, "pfring_stats");
  get(api.breakloop, "pfring_breakloop");
  if (!missing.empty()) {
    return MakeError(ErrorCode::kUnavailable, "libpfring lacks " + missing);
  }
  return api;
}

const Result<Api>& DefaultApi() {
  static const Result<Api> api = LoadApi(Probe{}.libraries);
  return api;
}

std::string Reason(const Result<Api>& api, const std::string& module_proc) {
  std::string why;
  if (!api) why = api.error().message();
  std::error_code ec;
  if (!std::filesystem::exists(module_proc, ec)) {
    if (!why.empty()) why += "; ";
    why += "the pf_ring kernel module is not loaded (no " + module_proc + ")";
  }
  return why;
}

// One ring; packets are copied out of PF_RING's slot (which the next pfring_recv reuses) into a
// per-batch arena.
class PfRingSource final : public CaptureSource {
 public:
  PfRingSource(const Api& api, void* ring, std::string device, uint32_t snaplen)
      : api_(api),
        ring_(ring),
        device_(std::move(device)),
        snaplen_(snaplen),
        arena_(PacketBatch::kMaxBurst * static_cast<size_t>(snaplen)) {}
  ~PfRingSource() override { api_.close(ring_); }

  Result<uint32_t> Receive(PacketBatch& batch, std::chrono::milliseconds timeout) override {
    batch.Reset();
    arena_.Clear();
    batch.set_link_type(DLT_EN10MB);
    if (interrupted_.exchange(false)) return 0u;
    if (api_.poll(ring_, static_cast<unsigned>(std::max<int64_t>(timeout.count(), 0))) <= 0) {
      return 0u;
    }
    while (!batch.full()) {
      unsigned char* data = nullptr;
      PfRingPkthdr h{};
      const int rc = api_.recv(ring_, &data, 0, &h, 0);
      if (rc < 0) {
        return MakeError(ErrorCode::kIoError,
                         "pfring_recv on " + device_ + " failed (" + std::to_string(rc) + ")");
      }
      if (rc == 0) break;
      const uint32_t caplen = std::min(h.caplen, snaplen_);
      PacketView& v = batch.Append();
      v.data = arena_.Copy(data, caplen);
      v.caplen = caplen;
      v.wirelen = h.len;
      v.ts_ns = static_cast<TimestampNs>(h.ts.tv_sec) * kNanosPerSecond + h.ts.tv_usec * 1000;
      packets_.fetch_add(1, std::memory_order_relaxed);
      bytes_.fetch_add(caplen, std::memory_order_relaxed);
      wire_bytes_.fetch_add(h.len, std::memory_order_relaxed);
    }
    return batch.size();
  }

  Result<SourceStats> Stats() override {
    SourceStats s;
    s.packets = packets_.load(std::memory_order_relaxed);
    s.bytes = bytes_.load(std::memory_order_relaxed);
    s.wire_bytes = wire_bytes_.load(std::memory_order_relaxed);
    PfRingStat st{};
    if (api_.stats(ring_, &st) < 0) {
      return MakeError(ErrorCode::kIoError, "pfring_stats on " + device_ + " failed");
    }
    s.received_by_filter = st.recv;
    s.dropped_kernel = st.drop;
    s.has_kernel_counters = true;
    return s;
  }

  void Interrupt() override {
    // pfring_breakloop only sets a flag in the ring; poll() returns within its timeout.
    interrupted_.store(true);
    api_.breakloop(ring_);
  }

  int link_type() const override { return DLT_EN10MB; }
  uint32_t snaplen() const override { return snaplen_; }
  std::string_view backend_name() const override { return "pf_ring"; }

 private:
  Api api_;
  void* ring_;
  std::string device_;
  uint32_t snaplen_;
  CopyArena arena_;
  std::atomic<bool> interrupted_{false};
  std::atomic<uint64_t> packets_{0}, bytes_{0}, wire_bytes_{0};
};

}  // namespace

std::string UnavailableReason(const Probe& probe) {
  return Reason(LoadApi(probe.libraries), probe.module_proc);
}

}  // namespace pf_ring

std::string PfRingUnavailableReason() {
  return pf_ring::Reason(pf_ring::DefaultApi(), pf_ring::Probe{}.module_proc);
}

Result<std::unique_ptr<CaptureSource>> OpenPfRingSource(const SourceOptions& o) {
  if (std::string why = PfRingUnavailableReason(); !why.empty()) {
    return MakeError(ErrorCode::kUnavailable, "pf_ring: " + why);
  }
  if (o.target.empty()) return MakeError(ErrorCode::kInvalidArgument, "no interface given");
  if (auto st = CheckTimestampSource(o.timestamp_source, o.target, kPfRingHostClockOnly); !st) {
    return std::unexpected(st.error());
  }
  if (auto st = ValidateFilter(o.filter); !st) return std::unexpected(st.error());
  const pf_ring::Api& api = *pf_ring::DefaultApi();
  const uint32_t snaplen = o.snaplen == 0 ? 65535 : std::min<uint32_t>(o.snaplen, 65535);
  uint32_t flags = pf_ring::kPfRingTimestamp;
  if (o.promiscuous) flags |= pf_ring::kPfRingPromisc;
  void* ring = api.open(o.target.c_str(), snaplen, flags);
  if (ring == nullptr) {
    return ErrnoError(errno, "pfring_open on " + o.target);
  }
  if (!o.filter.empty()) {
    std::string f = o.filter;
    if (api.set_bpf_filter(ring, f.data()) != 0) {
      api.close(ring);
      return std::unexpected(
          Error(ErrorCode::kInvalidArgument, "pfring_set_bpf_filter refused '" + o.filter + "'")
              .WithField("filter"));
    }
  }
  if (api.enable_ring(ring) != 0) {
    api.close(ring);
    return MakeError(ErrorCode::kIoError, "pfring_enable_ring on " + o.target + " failed");
  }
  return std::unique_ptr<CaptureSource>(
      std::make_unique<pf_ring::PfRingSource>(api, ring, o.target, snaplen));
}

}  // namespace jarvis
