// The DPDK plugin (jarvis-capture-dpdk.so): the EAL, ports and the `dpdk` capture source.
//
// Loaded at run time by capture/dpdk/dpdk_source.cc; it exports one symbol, the PluginApi table.
//
// EAL: initialised once per process, by the first open (DPDK 22.11 cannot run rte_eal_init
// twice, nor again after rte_eal_cleanup). Later opens must ask for the same EAL arguments;
// devices are attached per source with rte_dev_probe() and detached when the source closes, so
// a daemon can run one session after another. DPDK's log (and libbpf's and libxdp's, which the
// net_af_xdp driver uses) goes to an in-memory ring of recent lines, quoted in error messages;
// JARVIS_DPDK_LOG=stderr mirrors it to standard error.
//
// Data path: rte_eth_rx_burst() into an array of mbufs; packets are handed out as views of mbuf
// data and the mbufs go back to the mempool (rte_pktmbuf_free_bulk) when the batch is reset
// (a Lease): no copies. The BPF filter runs here, per packet, through pcap_offline_filter.
// Timestamps are the host clock (CLOCK_REALTIME) read once per burst.
//
// Drops: net_af_packet and net_af_xdp in DPDK 22.11 do not report the kernel's drops (the
// first reports no imissed at all, the second only XDP's rx_dropped, not rx_ring_full), so
// the source reads the kernel's own counters (PACKET_STATISTICS, XDP_STATISTICS) from
// duplicates of the sockets those drivers opened, found as the sockets of that family that
// appeared in this process while the port was set up. Other ports report rte_eth_stats
// imissed + rx_nombuf.
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <linux/if_xdp.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <rte_bus.h>
#include <rte_dev.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_log.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_pause.h>
#include <rte_version.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "capture/dpdk/dpdk_args.h"
#include "capture/dpdk/dpdk_host.h"
#include "capture/dpdk/dpdk_source.h"
#include "capture/iface_caps.h"
#include "capture/pcap_common.h"
#include "core/fd.h"

#ifndef AF_XDP
#define AF_XDP 44
#endif
#ifndef SOL_XDP
#define SOL_XDP 283
#endif

namespace jarvis::dpdk {
namespace {

constexpr unsigned kDefaultBufferKib = 64 * 1024;
constexpr uint32_t kSpinPolls = 64;
constexpr uint32_t kAfXdpFillMbufs = 2048;  // ETH_AF_XDP_DFLT_NUM_DESCS in DPDK 22.11  // empty
                                            // polls before the receive loop starts to sleep

// ----------------------------------------------------------------------------- log ring

// The last lines DPDK, libbpf and libxdp logged. Thread safety: any thread.
class LogRing {
 public:
  static LogRing& Get() {
    static LogRing* ring = new LogRing();  // never destroyed: DPDK may log at exit
    return *ring;
  }

  void Write(const char* buf, size_t n) {
    std::lock_guard<std::mutex> lock(mu_);
    if (mirror_) {
      [[maybe_unused]] ssize_t r = ::write(STDERR_FILENO, buf, n);
    }
    for (size_t i = 0; i < n; ++i) {
      if (buf[i] == '\n') {
        if (!partial_.empty()) Push(std::move(partial_));
        partial_.clear();
      } else {
        partial_ += buf[i];
      }
    }
  }

  uint64_t Mark() {
    std::lock_guard<std::mutex> lock(mu_);
    return seq_;
  }

  // Lines logged since `mark`, the last `max` of them, joined with " | ".
  std::string Since(uint64_t mark, size_t max = 4) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!partial_.empty()) {
      Push(std::move(partial_));
      partial_.clear();
    }
    const uint64_t first_kept = seq_ - lines_.size();
    uint64_t from = std::max(mark, first_kept);
    if (seq_ - from > max) from = seq_ - max;
    std::string out;
    for (uint64_t i = from; i < seq_; ++i) {
      if (!out.empty()) out += " | ";
      out += lines_[i - first_kept];
    }
    return out;
  }

  FILE* stream() { return stream_; }

 private:
  LogRing() {
    const char* env = std::getenv("JARVIS_DPDK_LOG");
    mirror_ = env != nullptr && std::string_view(env) == "stderr";
    cookie_io_functions_t io{};
    io.write = [](void* self, const char* buf, size_t n) -> ssize_t {
      static_cast<LogRing*>(self)->Write(buf, n);
      return static_cast<ssize_t>(n);
    };
    stream_ = ::fopencookie(this, "w", io);
    if (stream_ != nullptr) std::setvbuf(stream_, nullptr, _IOLBF, 0);
  }
  void Push(std::string line) {  // REQUIRES: mu_ held
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (line.empty()) return;
    lines_.push_back(std::move(line));
    ++seq_;
    if (lines_.size() > 64) lines_.pop_front();
  }

  std::mutex mu_;
  std::deque<std::string> lines_;  // guarded by mu_
  std::string partial_;            // guarded by mu_
  uint64_t seq_ = 0;               // lines pushed ever; guarded by mu_
  bool mirror_ = false;
  FILE* stream_ = nullptr;
};

// libbpf's and libxdp's print callbacks share this shape (level, format, arguments).
int LibraryPrint(int level, const char* format, va_list args) {
  if (level >= 2) return 0;  // LIBBPF_DEBUG / LIBXDP_DEBUG
  char buf[1024];
  const int n = std::vsnprintf(buf, sizeof buf, format, args);
  if (n > 0) LogRing::Get().Write(buf, std::min<size_t>(static_cast<size_t>(n), sizeof buf - 1));
  return n;
}

// Points libbpf's and libxdp's output at the ring, where the net_af_xdp driver has loaded them
// (they print to stderr by default, which would break the CLI's first line). A callback that
// another part of the process installed (the xdp backend's) is left in place: it keeps the
// output off stderr too.
void RedirectLibraryPrints() {
  using PrintFn = int (*)(int, const char*, va_list);
  for (auto [lib, sym] : {std::pair{"libbpf.so.1", "libbpf_set_print"},
                          std::pair{"libxdp.so.1", "libxdp_set_print"}}) {
    void* h = ::dlopen(lib, RTLD_NOW | RTLD_NOLOAD);
    if (h == nullptr) continue;
    if (auto set = reinterpret_cast<PrintFn (*)(PrintFn)>(::dlsym(h, sym)); set != nullptr) {
      const PrintFn old = set(&LibraryPrint);
      // The library's own default lives inside the library; anything else is someone's.
      Dl_info info{};
      if (old != nullptr && old != &LibraryPrint &&
          (::dladdr(reinterpret_cast<void*>(old), &info) == 0 || info.dli_fname == nullptr ||
           std::strstr(info.dli_fname, lib) == nullptr)) {
        set(old);
      }
    }
    ::dlclose(h);  // drops only the reference NOLOAD took
  }
}

std::string WithLog(std::string msg, uint64_t mark) {
  std::string log = LogRing::Get().Since(mark);
  if (!log.empty()) msg += " (DPDK log: " + log + ")";
  return msg;
}

// ----------------------------------------------------------------------------- the EAL

// The process's one EAL. Thread safety: every member under mu_.
class Eal {
 public:
  static Eal& Get() {
    static Eal* eal = new Eal();  // never destroyed: the EAL outlives every source
    return *eal;
  }

  // Initialises the EAL with `args` unless done already; then `args` must equal the arguments
  // of that first initialisation.
  Status Ensure(const std::vector<std::string>& args) {
    std::lock_guard<std::mutex> lock(mu_);
    if (ready_) {
      if (args != args_) {
        return MakeError(ErrorCode::kFailedPrecondition,
                         "the DPDK EAL of this process was initialised with '" + JoinArgs(args_) +
                             "' and DPDK 22.11 cannot initialise it again; "
                             "restart the process to use '" +
                             JoinArgs(args) + "'");
      }
      return {};
    }
    if (!failure_.empty()) return MakeError(ErrorCode::kUnavailable, failure_);
    rte_openlog_stream(LogRing::Get().stream());
    // Registered before rte_eal_init, so that it runs after the exit handlers DPDK registers
    // (telemetry unlinks its socket from the runtime directory in one).
    static const bool at_exit = std::atexit(&RemoveRuntimeDir) == 0;
    (void)at_exit;
    const uint64_t mark = LogRing::Get().Mark();

    // rte_eal_init keeps pointers into argv: the strings live as long as the process.
    static std::vector<std::string> kept;
    kept.clear();
    kept.push_back("jarvis-capture");
    kept.insert(kept.end(), args.begin(), args.end());
    static std::vector<char*> argv;
    argv.clear();
    for (std::string& s : kept) argv.push_back(s.data());
    argv.push_back(nullptr);

    // rte_eal_init pins the calling thread to the main lcore, and threads it starts later
    // would inherit that: keep this thread's CPU set. Its usage text goes to stdout, which
    // may be a capture file: send stdout to a memory file meanwhile and log what it got.
    cpu_set_t cpus;
    const bool have_cpus = pthread_getaffinity_np(pthread_self(), sizeof cpus, &cpus) == 0;
    std::fflush(stdout);
    UniqueFd saved(::dup(STDOUT_FILENO));
    UniqueFd sink(::memfd_create("jarvis-eal-stdout", MFD_CLOEXEC));
    if (saved && sink) ::dup2(sink.get(), STDOUT_FILENO);
    const int rc = rte_eal_init(static_cast<int>(kept.size()), argv.data());
    const int err = rte_errno;
    std::fflush(stdout);
    if (saved && sink) {
      ::dup2(saved.get(), STDOUT_FILENO);
      char buf[4096];
      const ssize_t n = ::pread(sink.get(), buf, sizeof buf, 0);
      if (n > 0) LogRing::Get().Write(buf, static_cast<size_t>(n));
    }
    if (have_cpus) pthread_setaffinity_np(pthread_self(), sizeof cpus, &cpus);
    if (rc < 0) {
      std::string msg = WithLog(
          "DPDK EAL initialisation with '" + JoinArgs(args) + "' failed: " + rte_strerror(err),
          mark);
      // A bad argument leaves the EAL able to try again; anything later does not.
      if (err != EINVAL) failure_ = msg;
      return MakeError(
          err == EACCES || err == EPERM ? ErrorCode::kPermissionDenied : ErrorCode::kUnavailable,
          msg);
    }
    ready_ = true;
    args_ = args;
    RedirectLibraryPrints();
    // With --no-shconf and no telemetry the runtime directory stays empty: remove it now, so
    // that not even a crash leaves it behind (DPDK never removes it).
    RemoveRuntimeDir();
    return {};
  }

  // Removes the EAL's runtime directory (/var/run/dpdk/PREFIX) and its parent where empty.
  static void RemoveRuntimeDir() {
    const char* dir = rte_eal_get_runtime_dir();
    if (dir == nullptr || *dir == '\0') return;
    if (::rmdir(dir) == 0) ::rmdir(std::filesystem::path(dir).parent_path().c_str());
  }

  // The arguments the EAL was initialised with; nullopt before.
  std::optional<std::vector<std::string>> Args() {
    std::lock_guard<std::mutex> lock(mu_);
    if (!ready_) return std::nullopt;
    return args_;
  }

  unsigned NextSerial() {
    std::lock_guard<std::mutex> lock(mu_);
    return ++serial_;
  }

  Status ClaimPort(uint16_t port, const std::string& name) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!ports_in_use_.insert(port).second) {
      return MakeError(ErrorCode::kFailedPrecondition,
                       "DPDK port " + name + " is already in use by another capture");
    }
    return {};
  }
  void ReleasePort(uint16_t port) {
    std::lock_guard<std::mutex> lock(mu_);
    ports_in_use_.erase(port);
  }

 private:
  std::mutex mu_;
  bool ready_ = false;
  std::vector<std::string> args_;
  std::string failure_;
  unsigned serial_ = 0;
  std::set<uint16_t> ports_in_use_;
};

// ----------------------------------------------------------------------------- kernel helpers

bool HasNetRaw() {
  UniqueFd fd(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0));
  return fd.valid();
}

// Inodes of this process's sockets, by family.
std::set<ino_t> SocketInodes() {
  std::set<ino_t> out;
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) {
    struct stat st;
    if (e->d_name[0] == '.' || ::fstatat(dirfd(d), e->d_name, &st, 0) != 0) continue;
    if (S_ISSOCK(st.st_mode)) out.insert(st.st_ino);
  }
  ::closedir(d);
  return out;
}

// Duplicates of the sockets of `family` that are not in `before`; for AF_PACKET only those
// bound to `ifindex`.
std::vector<UniqueFd> NewSockets(const std::set<ino_t>& before, int family, uint32_t ifindex) {
  std::vector<UniqueFd> out;
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    const int fd = std::atoi(e->d_name);
    if (fd == dirfd(d)) continue;
    struct stat st;
    if (::fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode) || before.count(st.st_ino)) continue;
    int domain = 0;
    socklen_t len = sizeof domain;
    if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 || domain != family) {
      continue;
    }
    if (family == AF_PACKET) {
      sockaddr_ll sll{};
      socklen_t sl = sizeof sll;
      if (::getsockname(fd, reinterpret_cast<sockaddr*>(&sll), &sl) != 0 ||
          static_cast<uint32_t>(sll.sll_ifindex) != ifindex) {
        continue;
      }
    }
    UniqueFd dup(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
    if (dup) out.push_back(std::move(dup));
  }
  ::closedir(d);
  return out;
}

// ----------------------------------------------------------------------------- the source

enum class DropSource { kEthdev, kPacketStatistics, kXdpStatistics, kNone };

struct PortSetup {
  uint16_t port = 0;
  std::string name;        // ethdev name
  std::string devargs;     // what it was attached with ("" when it was there already)
  std::string driver;      // "net_af_packet", "net_ice", ...
  std::string bus_device;  // what we attached ("" when the port was there already)
  std::string bus;         // "vdev" or "pci"
  rte_mempool* pool = nullptr;
  uint16_t rx_queues = 1;
  uint32_t kernel_ifindex = 0;  // the interface under a net_af_xdp/net_af_packet vdev, else 0
  bool promisc_enabled_here = false;
};

// Stops and closes a port we set up and detaches what we attached. Safe on partial setups.
void TearDown(PortSetup& p, bool started) {
  if (started) rte_eth_dev_stop(p.port);
  if (p.promisc_enabled_here) rte_eth_promiscuous_disable(p.port);
  if (rte_eth_dev_is_valid_port(p.port)) rte_eth_dev_close(p.port);
  if (!p.bus_device.empty()) rte_eal_hotplug_remove(p.bus.c_str(), p.bus_device.c_str());
  if (p.pool != nullptr) rte_mempool_free(p.pool);
  p.pool = nullptr;
}

class DpdkSource final : public CaptureSource {
 public:
  DpdkSource(PortSetup port, UniqueFd wake, std::unique_ptr<BpfProgram> filter, uint32_t snaplen,
             DropSource drops, std::vector<UniqueFd> drop_fds, std::string reader, std::string mode)
      : port_(std::move(port)),
        wake_(std::move(wake)),
        filter_(std::move(filter)),
        snaplen_(snaplen),
        drops_(drops),
        drop_fds_(std::move(drop_fds)),
        reader_(std::move(reader)),
        mode_(std::move(mode)) {}

  ~DpdkSource() override {
    FreeHeld();
    drop_fds_.clear();
    TearDown(port_, true);
    Eal::Get().ReleasePort(port_.port);
  }

  Result<uint32_t> Receive(PacketBatch& batch, std::chrono::milliseconds timeout) override {
    batch.Reset();  // gives the previous burst's mbufs back
    batch.set_link_type(DLT_EN10MB);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    uint32_t idle = 0;
    while (true) {
      if (Poll(batch) > 0) break;
      if (timeout.count() <= 0) return 0u;
      if (++idle < kSpinPolls) {
        rte_pause();
        continue;
      }
      // Quiet link: sleep in short steps, waking for Interrupt(); the kernel ring or the NIC's
      // descriptors hold what arrives meanwhile.
      const auto left = deadline - std::chrono::steady_clock::now();
      if (left <= std::chrono::nanoseconds(0)) return 0u;
      const auto step = std::min<std::chrono::nanoseconds>(
          left, std::chrono::microseconds(idle < 4 * kSpinPolls ? 100 : 1000));
      timespec ts{0, static_cast<long>(step.count())};
      pollfd pfd{wake_.get(), POLLIN, 0};
      const int rc = ::ppoll(&pfd, 1, &ts, nullptr);
      if (rc > 0 && (pfd.revents & POLLIN)) {
        uint64_t v;
        [[maybe_unused]] ssize_t r = ::read(wake_.get(), &v, sizeof v);
        return 0u;
      }
    }
    if (held_ > 0) batch.set_lease(Lease{&DpdkSource::ReleaseHeld, this, 0});
    return batch.size();
  }

  Result<SourceStats> Stats() override {
    SourceStats s;
    s.packets = packets_.load(std::memory_order_relaxed);
    s.bytes = bytes_.load(std::memory_order_relaxed);
    s.wire_bytes = wire_bytes_.load(std::memory_order_relaxed);
    s.filtered_out = filtered_.load(std::memory_order_relaxed);
    s.has_filtered_out = true;
    s.received_by_filter = s.packets;
    std::lock_guard<std::mutex> lock(stats_mu_);
    switch (drops_) {
      case DropSource::kPacketStatistics:
        for (const UniqueFd& fd : drop_fds_) {
          // Reading resets the kernel's counters: keep the running sum.
          tpacket_stats st{};
          socklen_t len = sizeof st;
          if (::getsockopt(fd.get(), SOL_PACKET, PACKET_STATISTICS, &st, &len) != 0) {
            return ErrnoError(errno, "PACKET_STATISTICS of " + port_.name);
          }
          kernel_drops_ += st.tp_drops;
        }
        s.dropped_kernel = kernel_drops_;
        s.has_kernel_counters = true;
        break;
      case DropSource::kXdpStatistics:
        for (const UniqueFd& fd : drop_fds_) {
          xdp_statistics st{};
          socklen_t len = sizeof st;
          if (::getsockopt(fd.get(), SOL_XDP, XDP_STATISTICS, &st, &len) != 0) {
            return ErrnoError(errno, "XDP_STATISTICS of " + port_.name);
          }
          // Not resetting: the sum over the sockets is the total.
          s.dropped_kernel += st.rx_dropped + st.rx_ring_full;
        }
        s.has_kernel_counters = true;
        break;
      case DropSource::kEthdev: {
        rte_eth_stats st{};
        if (const int rc = rte_eth_stats_get(port_.port, &st); rc != 0) {
          return MakeError(ErrorCode::kIoError,
                           "rte_eth_stats_get on " + port_.name + ": " + rte_strerror(-rc));
        }
        s.dropped_interface = st.imissed + st.rx_nombuf;
        s.has_kernel_counters = true;
        break;
      }
      case DropSource::kNone:
        break;  // not measured: has_kernel_counters stays false
    }
    return s;
  }

  void Interrupt() override {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t r = ::write(wake_.get(), &one, sizeof one);
  }

  int link_type() const override { return DLT_EN10MB; }
  uint32_t snaplen() const override { return snaplen_; }
  std::string_view backend_name() const override { return "dpdk"; }
  std::string_view reader_name() const override { return reader_; }
  std::string mode() const override { return mode_; }

 private:
  // One rx burst from each queue until the batch has packets; returns how many were added.
  uint32_t Poll(PacketBatch& batch) {
    uint32_t added = 0;
    for (uint16_t tries = 0; tries < port_.rx_queues && added == 0; ++tries) {
      const uint16_t q = next_queue_;
      next_queue_ = static_cast<uint16_t>((next_queue_ + 1) % port_.rx_queues);
      const uint16_t want = static_cast<uint16_t>(
          std::min<uint32_t>(batch.free_count(), PacketBatch::kMaxBurst - held_));
      if (want == 0) break;
      rte_mbuf** got = burst_.data();
      const uint16_t n = rte_eth_rx_burst(port_.port, q, got, want);
      if (n == 0) continue;
      timespec now;
      clock_gettime(CLOCK_REALTIME, &now);
      const TimestampNs ts = static_cast<TimestampNs>(now.tv_sec) * kNanosPerSecond + now.tv_nsec;
      uint64_t bytes = 0, wire = 0;
      uint16_t rejected = 0;
      for (uint16_t i = 0; i < n; ++i) {
        rte_mbuf* m = got[i];
        const uint8_t* data = rte_pktmbuf_mtod(m, const uint8_t*);
        // A chained mbuf is delivered as its first segment, cut short like a snaplen would
        // (scatter is never enabled, so only a driver that chains on its own produces one).
        const uint32_t seg_len = rte_pktmbuf_data_len(m);
        const uint32_t wirelen = rte_pktmbuf_pkt_len(m);
        if (!filter_->empty()) {
          pcap_pkthdr h{};
          h.caplen = seg_len;
          h.len = wirelen;
          if (!filter_->Matches(h, data)) {
            got[rejected++] = m;  // reuses slots already read
            continue;
          }
        }
        PacketView& v = batch.Append();
        v.data = data;
        v.caplen = std::min(seg_len, snaplen_);
        v.wirelen = wirelen;
        v.ts_ns = ts;
        v.ifindex = port_.kernel_ifindex;
        held_mbufs_[held_++] = m;
        bytes += v.caplen;
        wire += wirelen;
        ++added;
      }
      if (rejected > 0) {
        rte_pktmbuf_free_bulk(got, rejected);
        filtered_.fetch_add(rejected, std::memory_order_relaxed);
      }
      packets_.fetch_add(n - rejected, std::memory_order_relaxed);
      bytes_.fetch_add(bytes, std::memory_order_relaxed);
      wire_bytes_.fetch_add(wire, std::memory_order_relaxed);
    }
    return added;
  }

  void FreeHeld() {
    if (held_ > 0) rte_pktmbuf_free_bulk(held_mbufs_.data(), held_);
    held_ = 0;
  }
  static void ReleaseHeld(void* owner, uint64_t) { static_cast<DpdkSource*>(owner)->FreeHeld(); }

  PortSetup port_;
  UniqueFd wake_;
  std::unique_ptr<BpfProgram> filter_;
  uint32_t snaplen_;
  DropSource drops_;
  std::vector<UniqueFd> drop_fds_;
  std::string reader_;
  std::string mode_;

  // Receive() state. Thread safety: the receiving thread only.
  std::array<rte_mbuf*, PacketBatch::kMaxBurst> burst_{};
  std::array<rte_mbuf*, PacketBatch::kMaxBurst> held_mbufs_{};
  uint32_t held_ = 0;
  uint16_t next_queue_ = 0;

  std::atomic<uint64_t> packets_{0}, bytes_{0}, wire_bytes_{0}, filtered_{0};
  std::mutex stats_mu_;
  uint64_t kernel_drops_ = 0;  // guarded by stats_mu_
};

// ----------------------------------------------------------------------------- opening

uint32_t NextPow2(uint32_t v) {
  uint32_t p = 1;
  while (p < v) p <<= 1;
  return p;
}

// Configures and starts the port `p.port`: rx queues, a mempool, promiscuous mode.
Status StartPort(PortSetup& p, const SourceOptions& o, unsigned buffer_kib) {
  rte_eth_dev_info info{};
  if (const int rc = rte_eth_dev_info_get(p.port, &info); rc != 0) {
    return MakeError(ErrorCode::kIoError,
                     "rte_eth_dev_info_get: " + std::string(rte_strerror(-rc)));
  }
  p.driver = info.driver_name ? info.driver_name : "";
  // net_af_xdp has one socket per interface queue; elsewhere one queue gets everything
  // (no RSS is configured).
  p.rx_queues =
      p.driver == "net_af_xdp"
          ? static_cast<uint16_t>(std::clamp<uint16_t>(info.max_rx_queues, 1, kMaxRxQueues))
          : 1;
  uint16_t nb_rxd =
      static_cast<uint16_t>(std::clamp<uint32_t>(NextPow2(buffer_kib / 2), 512, 4096));
  uint16_t nb_txd = 64;
  rte_eth_conf conf{};
  if (const int rc = rte_eth_dev_configure(p.port, p.rx_queues, p.rx_queues, &conf); rc != 0) {
    return MakeError(ErrorCode::kIoError,
                     "rte_eth_dev_configure: " + std::string(rte_strerror(-rc)));
  }
  rte_eth_dev_adjust_nb_rx_tx_desc(p.port, &nb_rxd, &nb_txd);
  // The pool feeds the rx descriptors, net_af_xdp's fill ring (the driver puts 2048 mbufs
  // there per queue) and the burst the consumer holds; the capture buffer proper is the kernel
  // ring or the NIC's descriptors.
  const uint32_t mbufs =
      NextPow2(p.rx_queues * (2u * nb_rxd + kAfXdpFillMbufs) + 2 * PacketBatch::kMaxBurst) - 1;
  const std::string pool_name = "jc_pool" + std::to_string(Eal::Get().NextSerial());
  const int socket = rte_eth_dev_socket_id(p.port);
  p.pool = rte_pktmbuf_pool_create(pool_name.c_str(), mbufs, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                   socket < 0 ? static_cast<int>(SOCKET_ID_ANY) : socket);
  if (p.pool == nullptr) {
    return MakeError(ErrorCode::kUnavailable, "mempool of " + std::to_string(mbufs) +
                                                  " mbufs: " + rte_strerror(rte_errno) +
                                                  " (give the EAL more memory with -m)");
  }
  for (uint16_t q = 0; q < p.rx_queues; ++q) {
    if (const int rc = rte_eth_rx_queue_setup(p.port, q, nb_rxd, socket, nullptr, p.pool);
        rc != 0) {
      return MakeError(ErrorCode::kIoError,
                       "rx queue " + std::to_string(q) + " setup: " + rte_strerror(-rc));
    }
    if (const int rc = rte_eth_tx_queue_setup(p.port, q, nb_txd, socket, nullptr); rc != 0) {
      return MakeError(ErrorCode::kIoError,
                       "tx queue " + std::to_string(q) + " setup: " + rte_strerror(-rc));
    }
  }
  if (o.promiscuous && rte_eth_promiscuous_get(p.port) == 0) {
    p.promisc_enabled_here = rte_eth_promiscuous_enable(p.port) == 0;
  }
  if (const int rc = rte_eth_dev_start(p.port); rc != 0) {
    return MakeError(ErrorCode::kIoError, "rte_eth_dev_start: " + std::string(rte_strerror(-rc)));
  }
  return {};
}

// Attaches `devargs` on `bus` ("vdev" or "pci") and returns the ethdev port it made.
Result<uint16_t> Attach(const std::string& bus, const std::string& devargs, PortSetup& p) {
  const std::string name(DevargsName(devargs));
  if (const int rc = rte_dev_probe(devargs.c_str()); rc != 0) {
    return MakeError(
        rc == -ENOENT || rc == -ENODEV ? ErrorCode::kNotFound : ErrorCode::kUnavailable,
        "attaching DPDK device '" + devargs + "' failed: " + rte_strerror(-rc));
  }
  p.bus = bus;
  p.bus_device = name;
  uint16_t port = 0;
  if (rte_eth_dev_get_port_by_name(name.c_str(), &port) != 0) {
    rte_eal_hotplug_remove(bus.c_str(), name.c_str());
    p.bus_device.clear();
    return MakeError(ErrorCode::kNotFound, "DPDK device '" + name + "' made no ethdev port");
  }
  return port;
}

// Sets up one port for `o` from `devargs` (attached here) or the existing port `existing`.
Result<PortSetup> SetUp(const SourceOptions& o, const std::string& bus, const std::string& devargs,
                        unsigned buffer_kib) {
  PortSetup p;
  const uint64_t mark = LogRing::Get().Mark();
  auto port = Attach(bus, devargs, p);
  if (!port) return MakeError(port.error().code(), WithLog(port.error().message(), mark));
  p.port = *port;
  p.name = std::string(DevargsName(devargs));
  p.devargs = devargs;
  if (auto st = StartPort(p, o, buffer_kib); !st) {
    TearDown(p, false);
    return MakeError(st.error().code(),
                     WithLog("DPDK port " + p.name + ": " + st.error().message(), mark));
  }
  return p;
}

Result<std::unique_ptr<CaptureSource>> Open(const SourceOptions& o) {
  const std::string& target = o.target;
  if (target.empty())
    return MakeError(ErrorCode::kInvalidArgument, "no interface or DPDK port given");
  const uint32_t snaplen = o.snaplen == 0 ? kMaxSnaplen : o.snaplen;
  auto filter = std::make_unique<BpfProgram>();
  {
    PcapHandle dead(pcap_open_dead(DLT_EN10MB, static_cast<int>(snaplen)));
    if (auto st = filter->Compile(dead.get(), o.filter); !st) return std::unexpected(st.error());
  }
  const unsigned buffer_kib = o.buffer_size_kib ? o.buffer_size_kib : kDefaultBufferKib;

  // The EAL arguments: given, or from the environment, or the defaults.
  std::string given = o.dpdk_args;
  if (given.empty()) {
    if (const char* env = std::getenv("JARVIS_DPDK_ARGS"); env != nullptr) given = env;
  }
  EalPlan plan;
  if (!given.empty()) {
    auto parsed = ParseDpdkArgs(given);
    if (!parsed) return std::unexpected(parsed.error());
    plan = std::move(*parsed);
  } else if (auto running = Eal::Get().Args()) {
    // Defaults after the first open are whatever the EAL took then (the hugepages it holds
    // would otherwise turn the next default into --no-huge).
    plan.eal_args = std::move(*running);
  } else {
    cpu_set_t cpus;
    int main_cpu = 0;
    if (pthread_getaffinity_np(pthread_self(), sizeof cpus, &cpus) == 0) {
      for (int c = 0; c < CPU_SETSIZE; ++c) {
        if (CPU_ISSET(c, &cpus)) {
          main_cpu = c;
          break;
        }
      }
    }
    const unsigned memory_mb = DefaultEalMemoryMb(target);
    plan.eal_args =
        DefaultEalArgs(::getpid(), main_cpu, memory_mb, LooksLikePciAddress(target) ? target : "",
                       HugepagesFor(memory_mb));
  }
  if (auto st = Eal::Get().Ensure(plan.eal_args); !st) return std::unexpected(st.error());

  const std::set<ino_t> sockets_before = SocketInodes();
  PortSetup port;
  std::string reader;
  std::string fallback;  // why the default device is not net_af_xdp
  uint32_t ifindex = 0;
  uint16_t existing = 0;
  if (rte_eth_dev_get_port_by_name(target.c_str(), &existing) == 0) {
    // A port the EAL made at initialisation (a PCI device it was allowed to probe).
    port.port = existing;
    port.name = target;
    if (auto st = Eal::Get().ClaimPort(existing, target); !st) return std::unexpected(st.error());
    if (auto st = StartPort(port, o, buffer_kib); !st) {
      TearDown(port, false);
      Eal::Get().ReleasePort(existing);
      return std::unexpected(std::move(st.error()).WithContext("DPDK port " + target));
    }
    reader = "dpdk/" + port.driver;
  } else {
    Result<PortSetup> made = MakeError(ErrorCode::kInternal, "no device chosen");
    if (const int i = FindVdevForTarget(plan.vdevs, target); i >= 0) {
      made = SetUp(o, "vdev", plan.vdevs[static_cast<size_t>(i)], buffer_kib);
    } else if (LooksLikePciAddress(target)) {
      made = SetUp(o, "pci", target, buffer_kib);
    } else if ((ifindex = ::if_nametoindex(target.c_str())) != 0) {
      // A kernel interface: a vdev on it, as ChooseKernelDevice (dpdk_host.h) decides.
      auto xdp = AttachedXdp(ifindex);
      const KernelDeviceChoice choice =
          ChooseKernelDevice(target, xdp && xdp->attached(), AfXdpSocketsWork());
      if (!choice.refusal.empty()) {
        return MakeError(ErrorCode::kFailedPrecondition, choice.refusal);
      }
      std::string xdp_failure = choice.why_not_af_xdp;
      if (choice.driver == "net_af_xdp") {
        made = SetUp(o, "vdev",
                     DefaultVdev("net_af_xdp", Eal::Get().NextSerial(), target, buffer_kib,
                                 KernelRxQueues(target)),
                     buffer_kib);
        if (!made) xdp_failure = made.error().message();
      }
      if (!made) {
        auto still = AttachedXdp(ifindex);
        if (still && still->attached()) {
          return MakeError(ErrorCode::kInternal, "net_af_xdp failed on " + target +
                                                     " and left an XDP program "
                                                     "attached: " +
                                                     xdp_failure);
        }
        made = SetUp(o, "vdev",
                     DefaultVdev("net_af_packet", Eal::Get().NextSerial(), target, buffer_kib, 1),
                     buffer_kib);
        if (!made) {
          return std::unexpected(
              std::move(made.error()).WithContext("net_af_xdp: " + xdp_failure + "; then"));
        }
        fallback = "net_af_xdp not used: " + xdp_failure;
      }
    } else {
      return MakeError(ErrorCode::kNotFound,
                       "'" + target +
                           "' is neither a DPDK port, a --vdev of the DPDK "
                           "arguments, a PCI address nor a network interface");
    }
    if (!made) return std::unexpected(made.error());
    port = std::move(*made);
    if (auto st = Eal::Get().ClaimPort(port.port, port.name); !st) {
      TearDown(port, true);
      return std::unexpected(st.error());
    }
    reader = "dpdk/" + port.driver;
  }

  if (port.kernel_ifindex == 0) {
    const std::string iface = ifindex ? target : DevargsValue(port.devargs, "iface");
    if (!iface.empty()) port.kernel_ifindex = ::if_nametoindex(iface.c_str());
  }

  // Where drops are read from (see the top of this file).
  DropSource drops = DropSource::kEthdev;
  std::vector<UniqueFd> drop_fds;
  if (port.driver == "net_af_packet") {
    drop_fds = NewSockets(sockets_before, AF_PACKET, port.kernel_ifindex);
    drops = drop_fds.empty() ? DropSource::kNone : DropSource::kPacketStatistics;
  } else if (port.driver == "net_af_xdp") {
    drop_fds = NewSockets(sockets_before, AF_XDP, 0);
    drops = drop_fds.size() == port.rx_queues ? DropSource::kXdpStatistics : DropSource::kEthdev;
    if (drops == DropSource::kEthdev) drop_fds.clear();
  }

  // For status: the driver, how drops are measured, and why net_af_xdp was not used.
  std::string mode = port.driver;
  switch (drops) {
    case DropSource::kPacketStatistics:
      mode += ", drops from PACKET_STATISTICS";
      break;
    case DropSource::kXdpStatistics:
      mode += ", drops from XDP_STATISTICS";
      break;
    case DropSource::kEthdev:
      mode += ", drops from rte_eth_stats";
      break;
    case DropSource::kNone:
      mode += ", drops not measured (the driver's socket was not found)";
      break;
  }
  if (!fallback.empty()) mode += " (" + fallback + ")";

  UniqueFd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake) {
    TearDown(port, true);
    Eal::Get().ReleasePort(port.port);
    return ErrnoError(errno, "eventfd");
  }
  return std::unique_ptr<CaptureSource>(
      std::make_unique<DpdkSource>(std::move(port), std::move(wake), std::move(filter), snaplen,
                                   drops, std::move(drop_fds), std::move(reader), std::move(mode)));
}

std::string UnavailableReason() {
  // The EAL is not started for this: listing backends must not initialise DPDK.
  if (!HasNetRaw()) {
    return "needs root: the net_af_packet and net_af_xdp devices open raw sockets "
           "(CAP_NET_RAW), which this process cannot";
  }
  return {};
}

const char* Version() { return rte_version(); }

const PluginApi kApi = {kPluginAbi, sizeof(SourceOptions), sizeof(SourceStats), &Version,
                        &Open,      &UnavailableReason};

}  // namespace
}  // namespace jarvis::dpdk

extern "C" __attribute__((visibility("default"))) const jarvis::dpdk::PluginApi*
jarvis_dpdk_plugin_v1() {
  return &jarvis::dpdk::kApi;
}
