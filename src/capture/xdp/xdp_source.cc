#include "capture/xdp/xdp_source.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/ethtool.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <linux/if_xdp.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <xdp/libxdp.h>
#include <xdp/xsk.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <vector>

#include "capture/iface_caps.h"
#include "capture/xdp/xdp_filter.h"
#include "capture/xdp/xdp_meta.h"
#include "capture/xdp/xdp_plan.h"
#include "core/companion.h"
#include "core/fd.h"

namespace jarvis {
namespace {

using xdp::AttachMode;
using xdp::FrameRef;

constexpr uint32_t kMaxQueues = kMaxRxQueues;  // RxQueueCount never reports more
// Gather touches each frame's metadata and its first bytes (which the writer reads next) this
// many descriptors ahead of the one it handles, so that the cache misses of a run of frames
// overlap instead of coming one after another. The kernel wrote those lines on another CPU,
// usually long enough ago under load that they are out of every cache.
constexpr uint32_t kPrefetchAhead = 16;
// An AF_XDP socket wakes its poller for every packet the kernel puts in the RX ring. When
// wakeups come less than this apart, Receive waits this long after one for more frames to gather
// (a wakeup and a poll() for a burst instead of for every few frames), as a TPACKET_V3 block
// is handed over when full or after its timeout; slower traffic goes out at once, and so does
// everything with SourceOptions::immediate.
constexpr std::chrono::microseconds kCoalesce{1000};

// libbpf and libxdp print warnings to stderr by default; keep the last ones of this thread
// instead, to put in the error a failed call returns.
thread_local std::string t_lib_log;

void KeepLog(const char* fmt, va_list args) {
  char buf[512];
  const int n = std::vsnprintf(buf, sizeof buf, fmt, args);
  if (n <= 0) return;
  t_lib_log.append(buf, std::min<size_t>(static_cast<size_t>(n), sizeof buf - 1));
  if (t_lib_log.size() > 4096) t_lib_log.erase(0, t_lib_log.size() - 4096);
}
int LibbpfPrint(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (level != LIBBPF_DEBUG) KeepLog(fmt, args);
  return 0;
}
int LibxdpPrint(enum libxdp_print_level level, const char* fmt, va_list args) {
  if (level != LIBXDP_DEBUG) KeepLog(fmt, args);
  return 0;
}
void QuietLibraries() {
  static std::once_flag once;
  std::call_once(once, [] {
    libbpf_set_print(&LibbpfPrint);
    libxdp_set_print(&LibxdpPrint);
  });
}
// The last line the libraries logged on this thread, as " (libbpf: ...)", or empty.
std::string LibLogTail() {
  std::string s = t_lib_log;
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  if (s.empty()) return {};
  const size_t nl = s.rfind('\n');
  if (nl != std::string::npos) s.erase(0, nl + 1);
  return " (" + s + ")";
}

Error LibError(int neg_errno, const std::string& what) {
  Error e = Error::FromErrno(-neg_errno, what);
  return Error(e.code(), e.message() + LibLogTail());
}

uint64_t EffectiveCaps() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("CapEff:", 0) == 0) return std::stoull(line.substr(7), nullptr, 16);
  }
  return 0;
}

// The XDP object to load, or why there is none.
Result<std::string> FindObject() {
  std::string looked;
  if (auto found = FirstRegularFile(CompanionCandidates(ExecutablePath(), xdp::kObjectFile,
                                                        secure_getenv("JARVIS_XDP_OBJECT")),
                                    looked)) {
    return *found;
  }
  return MakeError(ErrorCode::kUnavailable,
                   "the XDP program object " + std::string(xdp::kObjectFile) +
                       " was not found (looked in: " + (looked.empty() ? "nowhere" : looked) +
                       "; it is built beside jarvis-capture, or set JARVIS_XDP_OBJECT)");
}

// Held for the whole capture: an abstract unix socket named after the interface. Abstract
// names live in the network namespace, as interface indexes do, and the kernel frees the name
// when the process ends however it ends, so "bound by someone" means "a live capture has it".
Result<UniqueFd> LockInterface(const std::string& iface, uint32_t ifindex) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!fd) return ErrnoError(errno, "unix socket");
  const std::string name = "jarvis-capture/xdp/ifindex/" + std::to_string(ifindex);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::memcpy(sa.sun_path + 1, name.data(), name.size());
  const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), len) != 0) {
    if (errno == EADDRINUSE) {
      return MakeError(ErrorCode::kUnavailable,
                       "another xdp capture is running on " + iface +
                           " (AF_XDP hands each packet to one socket, so captures cannot share "
                           "an interface; use af_packet or libpcap for a second one)");
    }
    return ErrnoError(errno, "locking " + iface);
  }
  return fd;
}

struct AttachedProgram {
  uint32_t id = 0;
  uint32_t flags = 0;  // XDP_FLAGS_DRV_MODE / SKB_MODE / HW_MODE it is attached with
  std::string name;
};

// The XDP program on the interface, if any (a multi-mode attachment reports the first).
std::optional<AttachedProgram> QueryAttached(uint32_t ifindex) {
  bpf_xdp_query_opts q{};
  q.sz = sizeof q;
  if (bpf_xdp_query(static_cast<int>(ifindex), 0, &q) != 0) return std::nullopt;
  AttachedProgram p;
  if (q.drv_prog_id != 0) {
    p.id = q.drv_prog_id;
    p.flags = XDP_FLAGS_DRV_MODE;
  } else if (q.skb_prog_id != 0) {
    p.id = q.skb_prog_id;
    p.flags = XDP_FLAGS_SKB_MODE;
  } else if (q.hw_prog_id != 0) {
    p.id = q.hw_prog_id;
    p.flags = XDP_FLAGS_HW_MODE;
  } else {
    return std::nullopt;
  }
  UniqueFd fd(bpf_prog_get_fd_by_id(p.id));
  if (fd) {
    bpf_prog_info info{};
    uint32_t len = sizeof info;
    if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) == 0) p.name = info.name;
  }
  return p;
}

// Removes a program of ours that an earlier run left attached through netlink (it crashed
// before detaching). REQUIRES: the interface lock is held, so no live capture owns it. Returns
// a note for mode(), or an error when something else is attached.
Result<std::string> RemoveStaleProgram(const std::string& iface, uint32_t ifindex) {
  const auto attached = QueryAttached(ifindex);
  if (!attached) return std::string();
  if (attached->name != JARVIS_XDP_PROG_NAME) {
    return MakeError(ErrorCode::kUnavailable,
                     "interface " + iface + " already has an XDP program ('" + attached->name +
                         "', id " + std::to_string(attached->id) +
                         "); jarvis-capture does not replace programs it did not load");
  }
  UniqueFd old(bpf_prog_get_fd_by_id(attached->id));
  bpf_xdp_attach_opts opts{};
  opts.sz = sizeof opts;
  opts.old_prog_fd = old.get();
  const int rc = bpf_xdp_detach(static_cast<int>(ifindex), attached->flags, old ? &opts : nullptr);
  if (rc != 0) {
    // EBUSY: held by a bpf_link, which a live process (or a pin in bpffs) owns.
    return std::unexpected(
        LibError(rc, "interface " + iface + " has a " JARVIS_XDP_PROG_NAME " program (id " +
                         std::to_string(attached->id) +
                         ") that no xdp capture here owns, and removing it failed"));
  }
  return "removed a stale " JARVIS_XDP_PROG_NAME " program (id " + std::to_string(attached->id) +
         ") an earlier run left on " + iface;
}

// One AF_XDP socket bound to one RX queue, with its own UMEM and rings.
// Thread safety: rings are touched by the receiving thread only; Stats() reads the kernel's
// counters through the socket and the ring indexes with atomic loads.
struct XskQueue {
  uint32_t queue_id = 0;
  uint32_t frames = 0;
  uint64_t frame_mask = 0;  // addr & frame_mask: the start of the frame holding addr
  MappedRegion area;
  xsk_umem* umem = nullptr;
  xsk_socket* xsk = nullptr;
  xsk_ring_prod fill{};
  xsk_ring_cons comp{};
  xsk_ring_cons rx{};
  bool zero_copy = false;

  XskQueue() = default;
  XskQueue(const XskQueue&) = delete;
  XskQueue& operator=(const XskQueue&) = delete;
  ~XskQueue() {
    if (xsk != nullptr) xsk_socket__delete(xsk);
    if (umem != nullptr) xsk_umem__delete(umem);
  }
  uint8_t* base() const { return static_cast<uint8_t*>(area.get()); }
  int fd() const { return xsk_socket__fd(xsk); }
  // Frames the kernel can fill now (those in the fill ring).
  uint32_t FramesWithKernel() const {
    const uint32_t prod = __atomic_load_n(fill.producer, __ATOMIC_ACQUIRE);
    const uint32_t cons = __atomic_load_n(fill.consumer, __ATOMIC_ACQUIRE);
    return prod - cons;
  }
};

// The memory of one UMEM, in transparent huge pages where the kernel has them
// (MapHugeAnonymous), populated before the kernel pins it. With 4 KiB pages each frame read is
// a TLB miss (a page holds one or two frames), and a miss in a VM is a two-level page walk;
// with 2 MiB pages 256 TLB entries cover a UMEM of 512 MiB.
Result<MappedRegion> MapUmem(uint64_t bytes) {
  MappedRegion region = MapHugeAnonymous(static_cast<size_t>(bytes));
  if (!region.valid()) {
    return ErrnoError(errno, "mapping a UMEM of " + std::to_string(bytes >> 20) + " MiB");
  }
  // Best effort (EINVAL before Linux 5.14): registering the UMEM pins its pages, which faults
  // in any that are not there yet, and fails there if memory is short.
  ::madvise(region.get(), region.size(), MADV_POPULATE_WRITE);
  return region;
}

// Starts loading what Gather and the writer read of a frame: the metadata in front of the packet
// (written, too: its magic is cleared) and the packet's first bytes.
inline void PrefetchFrame(const uint8_t* data) {
  __builtin_prefetch(data - sizeof(jarvis_xdp_meta), 1);
  __builtin_prefetch(data, 0);
}

// Gives `n` frames to the kernel. Never short: the fill ring holds every frame of the UMEM.
bool Refill(XskQueue& q, const uint64_t* frames, uint32_t n) {
  if (n == 0) return true;
  uint32_t idx = 0;
  if (xsk_ring_prod__reserve(&q.fill, n, &idx) != n) return false;
  for (uint32_t i = 0; i < n; ++i) *xsk_ring_prod__fill_addr(&q.fill, idx + i) = frames[i];
  xsk_ring_prod__submit(&q.fill, n);
  return true;
}

Result<std::unique_ptr<XskQueue>> OpenQueue(const std::string& iface, uint32_t queue_id,
                                            const xdp::UmemPlan& plan, bool try_zero_copy,
                                            int map_fd) {
  auto q = std::make_unique<XskQueue>();
  q->queue_id = queue_id;
  q->frames = plan.frames;
  q->frame_mask = ~static_cast<uint64_t>(plan.frame_size - 1);
  auto area = MapUmem(plan.bytes());
  if (!area) return std::unexpected(area.error());
  q->area = std::move(*area);
  void* mem = q->area.get();

  std::vector<uint16_t> attempts;
  if (try_zero_copy) attempts.push_back(XDP_ZEROCOPY);
  attempts.push_back(XDP_COPY);
  std::string tried;
  for (uint16_t bind_mode : attempts) {
    xsk_umem_config ucfg{};
    ucfg.fill_size = plan.fill_size;
    ucfg.comp_size = plan.comp_size;
    ucfg.frame_size = plan.frame_size;
    ucfg.frame_headroom = 0;
    ucfg.flags = 0;
    t_lib_log.clear();
    int rc = xsk_umem__create(&q->umem, mem, plan.bytes(), &q->fill, &q->comp, &ucfg);
    if (rc != 0) {
      q->umem = nullptr;
      Error e = LibError(rc, "registering the UMEM for queue " + std::to_string(queue_id));
      if (rc == -ENOBUFS || rc == -ENOMEM || rc == -EPERM) {
        e = Error(e.code(), e.message() +
                                " (locked memory: needs CAP_IPC_LOCK or a higher "
                                "RLIMIT_MEMLOCK, or a smaller buffer)");
      }
      return std::unexpected(std::move(e));
    }
    xsk_socket_config scfg{};
    scfg.rx_size = plan.rx_size;
    scfg.tx_size = 0;
    scfg.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD;  // our program, loaded by us
    scfg.xdp_flags = 0;
    scfg.bind_flags = static_cast<uint16_t>(bind_mode | XDP_USE_NEED_WAKEUP);
    rc = xsk_socket__create(&q->xsk, iface.c_str(), queue_id, q->umem, &q->rx, nullptr, &scfg);
    if (rc == 0) {
      q->zero_copy = bind_mode == XDP_ZEROCOPY;
      break;
    }
    q->xsk = nullptr;
    xsk_umem__delete(q->umem);
    q->umem = nullptr;
    if (!tried.empty()) tried += "; ";
    tried += std::string(bind_mode == XDP_ZEROCOPY ? "zero-copy: " : "copy: ") + std::strerror(-rc);
    if (bind_mode == XDP_COPY) {
      return std::unexpected(LibError(rc, "binding an AF_XDP socket to " + iface + " queue " +
                                              std::to_string(queue_id) + " (" + tried + ")"));
    }
  }
  // What the kernel says is in effect, rather than what was asked for.
  xdp_options opts{};
  socklen_t len = sizeof opts;
  if (::getsockopt(q->fd(), SOL_XDP, XDP_OPTIONS, &opts, &len) == 0) {
    q->zero_copy = (opts.flags & XDP_OPTIONS_ZEROCOPY) != 0;
  }
  std::vector<uint64_t> all(plan.frames);
  for (uint32_t i = 0; i < plan.frames; ++i) all[i] = static_cast<uint64_t>(i) * plan.frame_size;
  if (!Refill(*q, all.data(), plan.frames)) {
    return MakeError(ErrorCode::kInternal, "the fill ring is smaller than the UMEM");
  }
  const int key = static_cast<int>(queue_id);
  const int value = q->fd();
  if (int rc = bpf_map_update_elem(map_fd, &key, &value, BPF_ANY); rc != 0) {
    return std::unexpected(
        LibError(rc, "adding the socket of queue " + std::to_string(queue_id) + " to the XSKMAP"));
  }
  return q;
}

struct BpfObjectCloser {
  void operator()(bpf_object* o) const { bpf_object__close(o); }
};
using BpfObject = std::unique_ptr<bpf_object, BpfObjectCloser>;

// The program's attachment to the interface. Closing a bpf_link fd detaches; a netlink
// attachment (kernels without XDP links, or JARVIS_XDP_ATTACH=netlink) is detached explicitly.
class Attachment {
 public:
  Attachment() = default;
  Attachment(const Attachment&) = delete;
  Attachment& operator=(const Attachment&) = delete;
  ~Attachment() { Detach(); }

  using Prefs = xdp::AttachPrefs;

  Status Attach(int prog_fd, uint32_t ifindex, const std::string& iface, const Prefs& prefs) {
    ifindex_ = ifindex;
    prog_fd_ = prog_fd;
    std::string tried;
    bool links_unsupported = true;
    std::vector<uint32_t> modes;
    if (prefs.native) modes.push_back(XDP_FLAGS_DRV_MODE);
    if (prefs.skb) modes.push_back(XDP_FLAGS_SKB_MODE);
    const bool force_netlink = prefs.netlink;
    if (!force_netlink) {
      for (uint32_t mode : modes) {
        bpf_link_create_opts opts{};
        opts.sz = sizeof opts;
        opts.flags = mode;
        t_lib_log.clear();
        const int fd = bpf_link_create(prog_fd, static_cast<int>(ifindex), BPF_XDP, &opts);
        if (fd >= 0) {
          link_.reset(fd);
          mode_ = mode;
          return {};
        }
        if (fd != -EINVAL) links_unsupported = false;
        if (mode == XDP_FLAGS_DRV_MODE) native_refused_ = std::strerror(-fd);
        Note(tried, mode, "bpf_link", fd);
      }
    }
    if (force_netlink || links_unsupported) {
      for (uint32_t mode : modes) {
        const int rc = bpf_xdp_attach(static_cast<int>(ifindex), prog_fd,
                                      mode | XDP_FLAGS_UPDATE_IF_NOEXIST, nullptr);
        if (rc == 0) {
          netlink_ = true;
          mode_ = mode;
          return {};
        }
        Note(tried, mode, "netlink", rc);
      }
    }
    return MakeError(ErrorCode::kUnavailable,
                     "cannot attach the XDP program to " + iface + ": " + tried);
  }

  void Detach() {
    if (link_) link_.reset();
    if (netlink_) {
      bpf_xdp_attach_opts opts{};
      opts.sz = sizeof opts;
      opts.old_prog_fd = prog_fd_;
      bpf_xdp_detach(static_cast<int>(ifindex_), mode_, &opts);
      netlink_ = false;
    }
  }

  AttachMode mode() const {
    return mode_ == XDP_FLAGS_DRV_MODE ? AttachMode::kNative : AttachMode::kGeneric;
  }
  bool netlink() const { return netlink_; }
  // Why native mode was refused when generic mode was taken instead; empty otherwise.
  std::string native_refused() const {
    return mode_ == XDP_FLAGS_SKB_MODE ? native_refused_ : std::string();
  }

 private:
  static void Note(std::string& tried, uint32_t mode, const char* how, int rc) {
    if (!tried.empty()) tried += "; ";
    tried += std::string(mode == XDP_FLAGS_DRV_MODE ? "native" : "skb") + " (" + how +
             "): " + std::strerror(-rc);
  }

  UniqueFd link_;
  bool netlink_ = false;
  uint32_t ifindex_ = 0;
  int prog_fd_ = -1;
  uint32_t mode_ = 0;
  std::string native_refused_;
};

class XdpSource final : public CaptureSource {
 public:
  XdpSource(std::string iface, uint32_t ifindex, uint32_t snaplen)
      : iface_(std::move(iface)), ifindex_(ifindex), snaplen_(snaplen) {}

  ~XdpSource() override {
    // The program first, so the interface is back to normal before the sockets go.
    attachment_.Detach();
    queues_.clear();
  }

  Status Open(const SourceOptions& o, const std::string& object_path) {
    immediate_ = o.immediate;
    auto lock = LockInterface(iface_, ifindex_);
    if (!lock) return std::unexpected(lock.error());
    lock_ = std::move(*lock);
    auto stale = RemoveStaleProgram(iface_, ifindex_);
    if (!stale) return std::unexpected(stale.error());

    if (auto st = filter_.Compile(o.filter, snaplen_); !st) return st;

    const uint32_t queues = RxQueueCount(iface_);
    t_lib_log.clear();
    obj_.reset(bpf_object__open_file(object_path.c_str(), nullptr));
    if (!obj_) return std::unexpected(LibError(-errno, "opening " + object_path));
    bpf_map* map = bpf_object__find_map_by_name(obj_.get(), JARVIS_XDP_MAP_NAME);
    bpf_program* prog = bpf_object__find_program_by_name(obj_.get(), JARVIS_XDP_PROG_NAME);
    if (map == nullptr || prog == nullptr) {
      return MakeError(ErrorCode::kCorruptData,
                       object_path + " is not jarvis-capture's XDP program (no " +
                           JARVIS_XDP_PROG_NAME + " program or " + JARVIS_XDP_MAP_NAME + " map)");
    }
    if (int rc = bpf_map__set_max_entries(map, queues); rc != 0) {
      return std::unexpected(LibError(rc, "sizing the XSKMAP"));
    }
    if (int rc = bpf_object__load(obj_.get()); rc != 0) {
      Error e = LibError(rc, "loading the XDP program from " + object_path);
      if (rc == -EPERM) {
        return MakeError(ErrorCode::kPermissionDenied,
                         e.message() + " (needs root or CAP_BPF and CAP_NET_ADMIN)");
      }
      return std::unexpected(std::move(e));
    }
    auto prefs = xdp::ParseAttachPrefs(std::getenv("JARVIS_XDP_ATTACH"));
    if (!prefs) return std::unexpected(prefs.error());
    if (auto st = attachment_.Attach(bpf_program__fd(prog), ifindex_, iface_, *prefs); !st) {
      return st;
    }

    const uint32_t frame_size = xdp::FrameSizeForMtu(LinkMtu(ifindex_).value_or(0));
    const xdp::UmemPlan plan = xdp::PlanUmem(o.buffer_size_kib, queues, frame_size);
    const int map_fd = bpf_map__fd(map);
    // Zero-copy is a driver feature of native mode; in generic mode every packet is copied.
    bool try_zero_copy = attachment_.mode() == AttachMode::kNative;
    for (uint32_t qid = 0; qid < queues; ++qid) {
      auto q = OpenQueue(iface_, qid, plan, try_zero_copy, map_fd);
      if (!q) return std::unexpected(q.error());
      try_zero_copy = (*q)->zero_copy;  // the same driver answers the same for every queue
      queues_.push_back(std::move(*q));
    }
    mode_ = xdp::ModeName(attachment_.mode(), queues_.front()->zero_copy);
    if (std::string why = attachment_.native_refused(); !why.empty()) {
      mode_ += " (native mode refused: " + why + ")";
    }
    if (attachment_.netlink()) mode_ += " (netlink attach)";
    if (!stale->empty()) mode_ += " (" + *stale + ")";

    if (o.promiscuous) {
      // A packet socket's membership, dropped by the kernel when the process ends however it
      // ends: the interface never stays promiscuous because of us. The socket has protocol 0,
      // so it receives nothing.
      promisc_.reset(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0));
      packet_mreq mr{};
      mr.mr_ifindex = static_cast<int>(ifindex_);
      mr.mr_type = PACKET_MR_PROMISC;
      if (!promisc_ ||
          ::setsockopt(promisc_.get(), SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) != 0) {
        return ErrnoError(errno, "promiscuous mode on " + iface_);
      }
    }
    wake_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!wake_) return ErrnoError(errno, "eventfd");
    pollfds_.clear();
    for (const auto& q : queues_) pollfds_.push_back({q->fd(), POLLIN, 0});
    pollfds_.push_back({wake_.get(), POLLIN, 0});
    return {};
  }

  Result<uint32_t> Receive(PacketBatch& batch, std::chrono::milliseconds timeout) override {
    batch.Reset();  // gives the previous batch's frames back to the fill rings
    batch.set_link_type(xdp::kLinkTypeEthernet);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      auto n = Gather(batch);
      if (!n || *n > 0) return n;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return 0u;
      // poll() on an AF_XDP socket also kicks the kernel when a ring asks for a wakeup.
      const int rc = ::poll(pollfds_.data(), pollfds_.size(), static_cast<int>(left.count()));
      if (rc < 0 && errno != EINTR) return ErrnoError(errno, "poll on " + iface_);
      if (rc <= 0) continue;
      if (pollfds_.back().revents & POLLIN) {
        uint64_t v;
        [[maybe_unused]] ssize_t r = ::read(wake_.get(), &v, sizeof v);
        return Gather(batch);  // whatever is already there, without waiting
      }
      for (size_t i = 0; i + 1 < pollfds_.size(); ++i) {
        if (pollfds_[i].revents & (POLLERR | POLLNVAL)) {
          return MakeError(ErrorCode::kIoError, "capture on " + iface_ + " queue " +
                                                    std::to_string(i) +
                                                    " failed: the socket reported an error");
        }
      }
      if (!immediate_) Coalesce(deadline);
    }
  }

  // After a wakeup for frames: when the previous one was less than kCoalesce ago, waits up to
  // kCoalesce (never past `deadline`, and no longer once Interrupt() is called) for more.
  void Coalesce(std::chrono::steady_clock::time_point deadline) {
    const auto now = std::chrono::steady_clock::now();
    const bool busy = now - last_wakeup_ < kCoalesce;
    last_wakeup_ = now;
    if (!busy) return;
    const auto wait = std::min<std::chrono::nanoseconds>(kCoalesce, deadline - now);
    if (wait.count() <= 0) return;
    const timespec ts{static_cast<time_t>(wait.count() / 1'000'000'000),
                      static_cast<long>(wait.count() % 1'000'000'000)};
    pollfd wake{wake_.get(), POLLIN, 0};  // the eventfd stays readable: the caller sees it next
    ::ppoll(&wake, 1, &ts, nullptr);
  }

  Result<SourceStats> Stats() override {
    SourceStats s;
    s.packets = packets_.load(std::memory_order_relaxed);
    s.bytes = bytes_.load(std::memory_order_relaxed);
    s.wire_bytes = wire_bytes_.load(std::memory_order_relaxed);
    s.received_by_filter = s.packets;  // the filter runs here: what passed is what we handed out
    s.filtered_out = filtered_.load(std::memory_order_relaxed);
    s.has_filtered_out = true;
    xdp::XskCounters total;
    double usage = 0;
    for (const auto& q : queues_) {
      xdp_statistics st{};
      socklen_t len = sizeof st;
      if (::getsockopt(q->fd(), SOL_XDP, XDP_STATISTICS, &st, &len) != 0) {
        return ErrnoError(errno,
                          "XDP_STATISTICS on " + iface_ + " queue " + std::to_string(q->queue_id));
      }
      total += xdp::XskCounters{st.rx_dropped, st.rx_invalid_descs, st.rx_ring_full,
                                st.rx_fill_ring_empty_descs};
      // Frames not in the fill ring are out of the kernel's reach (unread in the RX ring or
      // held in batches): when none is left, packets drop.
      const uint32_t with_kernel = std::min(q->FramesWithKernel(), q->frames);
      usage = std::max(usage, 100.0 * (q->frames - with_kernel) / q->frames);
    }
    s.dropped_kernel = xdp::DroppedPackets(total);
    s.has_kernel_counters = true;
    s.buffer_usage_pct = usage;
    s.has_buffer_usage = true;
    return s;
  }

  void Interrupt() override {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t r = ::write(wake_.get(), &one, sizeof one);
  }

  int link_type() const override { return xdp::kLinkTypeEthernet; }
  uint32_t snaplen() const override { return snaplen_; }
  std::string_view backend_name() const override { return "xdp"; }
  std::string mode() const override { return mode_; }

 private:
  // Moves what the RX rings hold into `batch` (after the filter), merged across queues by
  // timestamp. Returns the count; frames the filter rejected go straight back to the kernel.
  Result<uint32_t> Gather(PacketBatch& batch) {
    const int slot = ledger_.Acquire();
    if (slot < 0) {
      return MakeError(ErrorCode::kFailedPrecondition,
                       "more than " + std::to_string(xdp::FrameLedger::kSlots) +
                           " batches of the xdp source are held at once");
    }
    timespec rt{}, mono{};
    ::clock_gettime(CLOCK_REALTIME, &rt);
    ::clock_gettime(CLOCK_MONOTONIC, &mono);
    const TimestampNs now = static_cast<TimestampNs>(rt.tv_sec) * kNanosPerSecond + rt.tv_nsec;
    const TimestampNs mono_to_real =
        now - (static_cast<TimestampNs>(mono.tv_sec) * kNanosPerSecond + mono.tv_nsec);

    PacketView* views = batch.free_space();
    const uint32_t capacity = batch.free_count();
    uint32_t count = 0;
    uint64_t bytes = 0, wire = 0, filtered = 0;
    std::array<uint32_t, kMaxQueues> run_ends{};
    uint32_t runs = 0;
    std::array<uint64_t, PacketBatch::kMaxBurst> rejected;  // written before it is read
    const uint32_t nq = static_cast<uint32_t>(queues_.size());
    for (uint32_t k = 0; k < nq && count < capacity; ++k) {
      const uint32_t qi = (next_queue_ + k) % nq;
      XskQueue& q = *queues_[qi];
      uint32_t idx = 0;
      const uint32_t got = xsk_ring_cons__peek(&q.rx, capacity - count, &idx);
      if (got == 0) continue;
      uint32_t nrejected = 0;
      const uint32_t run_start = count;
      uint8_t* const base = q.base();
      for (uint32_t i = 0; i < std::min(got, kPrefetchAhead); ++i) {
        PrefetchFrame(base + xsk_ring_cons__rx_desc(&q.rx, idx + i)->addr);
      }
      for (uint32_t i = 0; i < got; ++i) {
        if (i + kPrefetchAhead < got) {
          PrefetchFrame(base + xsk_ring_cons__rx_desc(&q.rx, idx + i + kPrefetchAhead)->addr);
        }
        const xdp_desc* d = xsk_ring_cons__rx_desc(&q.rx, idx + i);
        const uint64_t frame = d->addr & q.frame_mask;
        uint8_t* data = base + d->addr;
        const uint32_t len = d->len;
        TimestampNs ts = now;
        if (d->addr - frame >= sizeof(jarvis_xdp_meta)) {
          auto* meta = reinterpret_cast<jarvis_xdp_meta*>(data - sizeof(jarvis_xdp_meta));
          if (meta->magic == JARVIS_XDP_META_MAGIC) {
            ts = static_cast<TimestampNs>(meta->mono_ns) + mono_to_real;
            meta->magic = 0;
          }
        }
        if (!filter_.empty() && !filter_.Matches(data, len)) {
          rejected[nrejected++] = frame;
          ++filtered;
          continue;
        }
        PacketView& v = views[count++];
        v.data = data;
        v.caplen = std::min(len, snaplen_);
        v.wirelen = len;
        v.ts_ns = ts;
        v.ifindex = ifindex_;
        bytes += v.caplen;
        wire += len;
        ledger_.Add(slot, FrameRef{qi, frame});
      }
      xsk_ring_cons__release(&q.rx, got);
      if (!Refill(q, rejected.data(), nrejected)) lost_frames_ += nrejected;
      if (count > run_start) run_ends[runs++] = count;
    }
    next_queue_ = nq == 0 ? 0 : (next_queue_ + 1) % nq;
    if (filtered != 0) filtered_.fetch_add(filtered, std::memory_order_relaxed);
    if (count == 0) {
      ledger_.Free(slot);
      return 0u;
    }
    if (runs > 1) {
      xdp::MergeRunsByTime({views, count}, ledger_.refs(slot), {run_ends.data(), runs});
    }
    batch.Commit(count);
    batch.set_lease(Lease{&XdpSource::ReleaseFrames, this, static_cast<uint64_t>(slot)});
    packets_.fetch_add(count, std::memory_order_relaxed);
    bytes_.fetch_add(bytes, std::memory_order_relaxed);
    wire_bytes_.fetch_add(wire, std::memory_order_relaxed);
    return count;
  }

  static void ReleaseFrames(void* owner, uint64_t token) {
    auto* self = static_cast<XdpSource*>(owner);
    const int slot = static_cast<int>(token);
    const auto refs = self->ledger_.refs(slot);
    std::array<uint64_t, PacketBatch::kMaxBurst> frames;
    for (uint32_t qi = 0; qi < self->queues_.size(); ++qi) {
      uint32_t n = 0;
      for (const FrameRef& r : refs) {
        if (r.queue == qi) frames[n++] = r.addr;
      }
      if (!Refill(*self->queues_[qi], frames.data(), n)) self->lost_frames_ += n;
    }
    self->ledger_.Free(slot);
  }

  std::string iface_;
  uint32_t ifindex_;
  uint32_t snaplen_;
  std::string mode_;
  UniqueFd lock_;
  UniqueFd promisc_;
  BpfObject obj_;
  Attachment attachment_;
  std::vector<std::unique_ptr<XskQueue>> queues_;  // declared after obj_: closed before it
  xdp::UserFilter filter_;
  UniqueFd wake_;
  std::vector<pollfd> pollfds_;

  // Receive() state. Thread safety: the receiving thread only.
  xdp::FrameLedger ledger_;
  uint32_t next_queue_ = 0;
  bool immediate_ = false;
  std::chrono::steady_clock::time_point last_wakeup_{};
  uint64_t lost_frames_ = 0;  // frames that found no room in a fill ring (never expected)

  std::atomic<uint64_t> packets_{0}, bytes_{0}, wire_bytes_{0}, filtered_{0};
};

}  // namespace

std::string XdpUnavailableReason() {
  constexpr int kCapNetAdmin = 12, kCapNetRaw = 13, kCapSysAdmin = 21, kCapBpf = 39;
  const uint64_t caps = EffectiveCaps();
  const auto has = [caps](int cap) { return ((caps >> cap) & 1) != 0; };
  std::string missing;
  if (!has(kCapNetAdmin)) missing += " CAP_NET_ADMIN";
  if (!has(kCapNetRaw)) missing += " CAP_NET_RAW";
  if (!has(kCapBpf) && !has(kCapSysAdmin)) missing += " CAP_BPF";
  if (!missing.empty()) {
    return "AF_XDP capture needs root or CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF (missing:" +
           missing + "; setcap cap_net_admin,cap_net_raw,cap_bpf,cap_ipc_lock+ep on the binary)";
  }
  UniqueFd probe(::socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0));
  if (!probe) {
    if (errno == EAFNOSUPPORT) {
      return "the kernel has no AF_XDP sockets (CONFIG_XDP_SOCKETS is off)";
    }
    return std::string("cannot open an AF_XDP socket: ") + std::strerror(errno);
  }
  if (auto obj = FindObject(); !obj) return obj.error().message();
  return {};
}

Result<std::unique_ptr<CaptureSource>> OpenXdpSource(const SourceOptions& o) {
  QuietLibraries();
  const std::string& iface = o.target;
  if (iface.empty()) return MakeError(ErrorCode::kInvalidArgument, "no interface given");
  if (iface.size() >= IFNAMSIZ) {
    return MakeError(ErrorCode::kInvalidArgument, "interface name too long: " + iface);
  }
  const uint32_t ifindex = ::if_nametoindex(iface.c_str());
  if (ifindex == 0) return MakeError(ErrorCode::kNotFound, "no such interface: " + iface);
  if (auto st = CheckTimestampSource(o.timestamp_source, iface, kXdpHostClockOnly); !st) {
    return std::unexpected(st.error());
  }
  auto object = FindObject();
  if (!object) return std::unexpected(object.error());
  const uint32_t snaplen = o.snaplen == 0 ? kMaxSnaplen : o.snaplen;
  auto src = std::make_unique<XdpSource>(iface, ifindex, snaplen);
  if (auto st = src->Open(o, *object); !st) {
    return std::unexpected(std::move(st.error()).WithContext("xdp capture on " + iface));
  }
  return std::unique_ptr<CaptureSource>(std::move(src));
}

}  // namespace jarvis
