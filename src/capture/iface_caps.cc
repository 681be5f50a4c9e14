#include "capture/iface_caps.h"

#include <libmnl/libmnl.h>
#include <linux/ethtool.h>
#include <linux/genetlink.h>
#include <linux/if_link.h>
#include <linux/net_tstamp.h>
#include <linux/rtnetlink.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>

#include "core/fd.h"

// The "netdev" generic netlink family (Linux 6.3+). Debian 12's kernel headers (6.1) predate
// it, so the few values used are spelled out here, as include/uapi/linux/netdev.h defines them.
#if __has_include(<linux/netdev.h>)
#include <linux/netdev.h>
#else
#define NETDEV_FAMILY_NAME "netdev"
#define NETDEV_FAMILY_VERSION 1
enum {
  NETDEV_XDP_ACT_BASIC = 1,
  NETDEV_XDP_ACT_REDIRECT = 2,
  NETDEV_XDP_ACT_NDO_XMIT = 4,
  NETDEV_XDP_ACT_XSK_ZEROCOPY = 8,
  NETDEV_XDP_ACT_HW_OFFLOAD = 16,
  NETDEV_XDP_ACT_RX_SG = 32,
  NETDEV_XDP_ACT_NDO_XMIT_SG = 64,
};
enum { NETDEV_A_DEV_IFINDEX = 1, NETDEV_A_DEV_PAD, NETDEV_A_DEV_XDP_FEATURES };
enum { NETDEV_CMD_DEV_GET = 1 };
#endif

namespace jarvis {
namespace {

// One ethtool ioctl on `name`; false (errno set) when the driver does not answer it.
bool Ethtool(const std::string& name, void* data) {
  UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) return false;
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  ifr.ifr_data = static_cast<char*>(data);
  return ::ioctl(sock.get(), SIOCETHTOOL, &ifr) == 0;
}

// A netlink socket (libmnl) that answers one request. Thread safety: one per call.
class Netlink {
 public:
  explicit Netlink(int bus) : nl_(mnl_socket_open2(bus, SOCK_CLOEXEC)) {
    if (nl_ == nullptr) return;
    timeval tv{.tv_sec = 2, .tv_usec = 0};  // the kernel answers at once; never hang on it
    ::setsockopt(mnl_socket_get_fd(nl_.get()), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (mnl_socket_bind(nl_.get(), 0, MNL_SOCKET_AUTOPID) != 0) nl_.reset();
  }
  bool ok() const { return nl_ != nullptr; }

  // Sends `nlh` (NLM_F_ACK is added) and runs `cb` on each reply until the kernel's ack.
  // Returns 0, or the errno of the failure (the kernel's error reply included).
  int Request(nlmsghdr* nlh, mnl_cb_t cb, void* data) {
    if (!ok()) return errno ? errno : EIO;
    nlh->nlmsg_flags |= NLM_F_ACK;
    nlh->nlmsg_seq = ++seq_;
    if (mnl_socket_sendto(nl_.get(), nlh, nlh->nlmsg_len) < 0) return errno;
    const unsigned portid = mnl_socket_get_portid(nl_.get());
    for (;;) {
      const ssize_t n = mnl_socket_recvfrom(nl_.get(), buf_.data(), buf_.size());
      if (n < 0) return errno;
      const int rc = mnl_cb_run(buf_.data(), static_cast<size_t>(n), seq_, portid, cb, data);
      if (rc == MNL_CB_ERROR) return errno ? errno : EIO;
      if (rc == MNL_CB_STOP) return 0;
    }
  }

  char* buffer() { return buf_.data(); }

 private:
  struct Closer {
    void operator()(mnl_socket* s) const { mnl_socket_close(s); }
  };
  std::unique_ptr<mnl_socket, Closer> nl_;
  std::vector<char> buf_ = std::vector<char>(MNL_SOCKET_BUFFER_SIZE);
  unsigned seq_ = 0;
};

// The id of a generic netlink family, or the errno (ENOENT: the kernel has no such family).
int GenlFamilyId(Netlink& nl, const char* family, uint16_t* id) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(nl.buffer());
  nlh->nlmsg_type = GENL_ID_CTRL;
  nlh->nlmsg_flags = NLM_F_REQUEST;
  auto* g = static_cast<genlmsghdr*>(mnl_nlmsg_put_extra_header(nlh, sizeof(genlmsghdr)));
  g->cmd = CTRL_CMD_GETFAMILY;
  g->version = 1;
  mnl_attr_put_strz(nlh, CTRL_ATTR_FAMILY_NAME, family);
  *id = 0;
  const int rc = nl.Request(
      nlh,
      [](const nlmsghdr* m, void* data) -> int {
        return mnl_attr_parse(
            m, sizeof(genlmsghdr),
            [](const nlattr* a, void* id) -> int {
              if (mnl_attr_get_type(a) == CTRL_ATTR_FAMILY_ID &&
                  mnl_attr_validate(a, MNL_TYPE_U16) == 0) {
                *static_cast<uint16_t*>(id) = mnl_attr_get_u16(a);
              }
              return MNL_CB_OK;
            },
            data);
      },
      id);
  if (rc == 0 && *id == 0) return ENOENT;
  return rc;
}

struct DevFeatures {
  bool found = false;
  uint64_t xdp = 0;
};

// The kernel's XDP feature flags of `ifindex` (netdev family, NETDEV_CMD_DEV_GET).
int QueryXdpFeatures(Netlink& nl, uint16_t family, uint32_t ifindex, DevFeatures* out) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(nl.buffer());
  nlh->nlmsg_type = family;
  nlh->nlmsg_flags = NLM_F_REQUEST;
  auto* g = static_cast<genlmsghdr*>(mnl_nlmsg_put_extra_header(nlh, sizeof(genlmsghdr)));
  g->cmd = NETDEV_CMD_DEV_GET;
  g->version = NETDEV_FAMILY_VERSION;
  mnl_attr_put_u32(nlh, NETDEV_A_DEV_IFINDEX, ifindex);
  return nl.Request(
      nlh,
      [](const nlmsghdr* m, void* data) -> int {
        return mnl_attr_parse(
            m, sizeof(genlmsghdr),
            [](const nlattr* a, void* d) -> int {
              auto* f = static_cast<DevFeatures*>(d);
              if (mnl_attr_get_type(a) == NETDEV_A_DEV_XDP_FEATURES &&
                  mnl_attr_validate(a, MNL_TYPE_U64) == 0) {
                f->xdp = mnl_attr_get_u64(a);
                f->found = true;
              }
              return MNL_CB_OK;
            },
            data);
      },
      out);
}

struct LinkInfo {
  uint32_t flags = 0;
  uint32_t mtu = 0;
  uint8_t xdp_attached = XDP_ATTACHED_NONE;
  uint32_t xdp_prog_id = 0;
};

int XdpAttr(const nlattr* a, void* data) {
  auto* l = static_cast<LinkInfo*>(data);
  if (mnl_attr_get_type(a) == IFLA_XDP_ATTACHED && mnl_attr_validate(a, MNL_TYPE_U8) == 0) {
    l->xdp_attached = mnl_attr_get_u8(a);
  } else if (mnl_attr_get_type(a) == IFLA_XDP_PROG_ID && mnl_attr_validate(a, MNL_TYPE_U32) == 0) {
    l->xdp_prog_id = mnl_attr_get_u32(a);
  }
  return MNL_CB_OK;
}

int LinkAttr(const nlattr* a, void* data) {
  auto* l = static_cast<LinkInfo*>(data);
  const uint16_t type = mnl_attr_get_type(a);
  if (type == IFLA_MTU && mnl_attr_validate(a, MNL_TYPE_U32) == 0) {
    l->mtu = mnl_attr_get_u32(a);
  } else if (type == IFLA_XDP && mnl_attr_validate(a, MNL_TYPE_NESTED) == 0) {
    return mnl_attr_parse_nested(a, &XdpAttr, data);
  }
  return MNL_CB_OK;
}

// RTM_GETLINK for one interface: flags, MTU and the XDP program attached (IFLA_XDP).
int QueryLink(uint32_t ifindex, LinkInfo* out) {
  Netlink nl(NETLINK_ROUTE);
  nlmsghdr* nlh = mnl_nlmsg_put_header(nl.buffer());
  nlh->nlmsg_type = RTM_GETLINK;
  nlh->nlmsg_flags = NLM_F_REQUEST;
  auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = static_cast<int>(ifindex);
  return nl.Request(
      nlh,
      [](const nlmsghdr* m, void* data) -> int {
        auto* l = static_cast<LinkInfo*>(data);
        if (m->nlmsg_type != RTM_NEWLINK) return MNL_CB_OK;
        l->flags = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(m))->ifi_flags;
        return mnl_attr_parse(m, sizeof(ifinfomsg), &LinkAttr, data);
      },
      out);
}

std::string AttachedModeName(uint8_t attached) {
  switch (attached) {
    case XDP_ATTACHED_DRV:
      return "native";
    case XDP_ATTACHED_SKB:
      return "generic";
    case XDP_ATTACHED_HW:
      return "offload";
    case XDP_ATTACHED_MULTI:
      return "several";
    default:
      return "";
  }
}

XdpCaps ProbeXdp(uint32_t ifindex, const std::string& driver) {
  XdpCaps caps;
  Netlink nl(NETLINK_GENERIC);
  uint16_t family = 0;
  int rc = GenlFamilyId(nl, NETDEV_FAMILY_NAME, &family);
  if (rc == 0) {
    DevFeatures f;
    rc = QueryXdpFeatures(nl, family, ifindex, &f);
    if (rc == 0 && f.found) {
      caps.source = XdpCapsSource::kKernelFeatures;
      caps.source_note = "probed: the kernel's xdp-features of the device (netdev netlink)";
      ApplyXdpFeatures(f.xdp, caps);
      return caps;
    }
    caps.source_note =
        rc != 0 ? std::string("the kernel's xdp-features query failed: ") + std::strerror(rc)
                : "the kernel's reply has no xdp-features";
  } else if (rc == ENOENT) {
    caps.source_note = "the kernel has no xdp-features query (netdev netlink family, Linux 6.3)";
  } else {
    caps.source_note = std::string("generic netlink: ") + std::strerror(rc);
  }
  const DriverXdpSupport t = DriverXdpTable(driver);
  if (t.listed) {
    caps.source = XdpCapsSource::kDriverTable;
    caps.native = t.native;
    caps.zero_copy = t.zero_copy;
    caps.source_note = "from the driver table (" + caps.source_note + ")";
  } else {
    caps.source_note =
        "unknown: driver '" + driver + "' is not in the driver table (" + caps.source_note + ")";
  }
  return caps;
}

}  // namespace

bool TimestampCaps::software_rx() const {
  return (so_timestamping & SOF_TIMESTAMPING_RX_SOFTWARE) != 0;
}

bool TimestampCaps::hardware_rx() const {
  constexpr uint32_t kNeed = SOF_TIMESTAMPING_RX_HARDWARE | SOF_TIMESTAMPING_RAW_HARDWARE;
  return (so_timestamping & kNeed) == kNeed;
}

uint32_t RxQueueCount(const std::string& name, std::string* from) {
  ethtool_channels ch{};
  ch.cmd = ETHTOOL_GCHANNELS;
  if (Ethtool(name, &ch) && ch.rx_count + ch.combined_count > 0) {
    if (from != nullptr) *from = "ethtool channels";
    return std::min(ch.rx_count + ch.combined_count, kMaxRxQueues);
  }
  uint32_t n = 0;
  std::error_code ec;
  for (const auto& e :
       std::filesystem::directory_iterator("/sys/class/net/" + name + "/queues", ec)) {
    if (e.path().filename().string().starts_with("rx-")) ++n;
  }
  if (from != nullptr) *from = n > 0 ? "sysfs" : "none reported (1 assumed)";
  return std::clamp<uint32_t>(n, 1, kMaxRxQueues);
}

TimestampCaps ProbeTimestamps(const std::string& name) {
  TimestampCaps t;
  ethtool_ts_info ts{};
  ts.cmd = ETHTOOL_GET_TS_INFO;
  if (Ethtool(name, &ts)) {
    t.queried = true;
    t.so_timestamping = ts.so_timestamping;
    t.phc_index = ts.phc_index;
    t.rx_filters = ts.rx_filters;
  } else {
    t.query_error = std::string("ETHTOOL_GET_TS_INFO: ") + std::strerror(errno);
  }
  return t;
}

Result<InterfaceCaps> ProbeInterface(std::string_view name_view) {
  const std::string name(name_view);
  if (name.empty()) return MakeError(ErrorCode::kInvalidArgument, "no interface given");
  if (name.size() >= IFNAMSIZ) {
    return MakeError(ErrorCode::kInvalidArgument, "interface name too long: " + name);
  }
  InterfaceCaps c;
  c.name = name;
  c.ifindex = ::if_nametoindex(name.c_str());
  if (c.ifindex == 0) return MakeError(ErrorCode::kNotFound, "no such interface: " + name);

  ethtool_drvinfo drv{};
  drv.cmd = ETHTOOL_GDRVINFO;
  if (Ethtool(name, &drv)) {
    c.driver = drv.driver;
    c.driver_version = drv.version;
    c.bus_info = drv.bus_info;
  }

  c.rx_queues = RxQueueCount(name, &c.queues_from);
  ethtool_channels ch{};
  ch.cmd = ETHTOOL_GCHANNELS;
  if (Ethtool(name, &ch)) c.max_rx_queues = ch.max_rx + ch.max_combined;

  c.timestamps = ProbeTimestamps(name);
  c.xdp = ProbeXdp(c.ifindex, c.driver);
  LinkInfo link;
  if (QueryLink(c.ifindex, &link) == 0) {
    c.up = (link.flags & IFF_UP) != 0;
    c.mtu = link.mtu;
    c.xdp.attached_prog_id = link.xdp_prog_id;
    c.xdp.attached_mode = AttachedModeName(link.xdp_attached);
  } else {
    c.xdp.attached_mode = "unknown";
  }
  return c;
}

Result<XdpAttachment> AttachedXdp(uint32_t ifindex) {
  LinkInfo link;
  if (int rc = QueryLink(ifindex, &link); rc != 0) return ErrnoError(rc, "RTM_GETLINK");
  return XdpAttachment{.prog_id = link.xdp_prog_id, .mode = AttachedModeName(link.xdp_attached)};
}

Result<uint32_t> LinkMtu(uint32_t ifindex) {
  LinkInfo link;
  if (int rc = QueryLink(ifindex, &link); rc != 0) return ErrnoError(rc, "RTM_GETLINK");
  return link.mtu;
}

std::vector<std::string> XdpFeatureNames(uint64_t features) {
  // The kernel's names (Documentation/netlink/specs/netdev.yaml), in bit order.
  constexpr std::array<std::string_view, 7> kNames = {
      "basic", "redirect", "ndo-xmit", "xsk-zerocopy", "hw-offload", "rx-sg", "ndo-xmit-sg"};
  std::vector<std::string> out;
  for (unsigned bit = 0; bit < 64; ++bit) {
    if ((features >> bit & 1) == 0) continue;
    out.push_back(bit < kNames.size() ? std::string(kNames[bit]) : "bit-" + std::to_string(bit));
  }
  return out;
}

void ApplyXdpFeatures(uint64_t features, XdpCaps& caps) {
  caps.features = features;
  const uint64_t native = NETDEV_XDP_ACT_BASIC | NETDEV_XDP_ACT_REDIRECT;
  caps.native = (features & native) == native;
  caps.zero_copy = caps.native && (features & NETDEV_XDP_ACT_XSK_ZEROCOPY) != 0;
}

DriverXdpSupport DriverXdpTable(std::string_view driver) {
  // Drivers with an ndo_bpf (native XDP with XDP_REDIRECT) in Linux 6.1, named as
  // ETHTOOL_GDRVINFO reports them; `true` where they also have ndo_xsk_wakeup (AF_XDP
  // zero-copy). Used only on kernels that cannot be asked (before 6.3).
  struct Row {
    std::string_view driver;
    bool zero_copy;
  };
  static constexpr Row kTable[] = {
      {"veth", false},      {"virtio_net", false}, {"tun", false},    {"i40e", true},
      {"ice", true},        {"ixgbe", true},       {"igc", true},     {"mlx5_core", true},
      {"st_gmac", true},    {"ixgbevf", false},    {"igb", false},    {"mlx4_en", false},
      {"bnxt_en", false},   {"nfp", false},        {"qede", false},   {"ena", false},
      {"hv_netvsc", false}, {"sfc", false},        {"mvneta", false}, {"mvpp2", false},
      {"fec", false},       {"mana", false},       {"nicvf", false},  {"atlantic", false},
  };
  for (const Row& r : kTable) {
    if (r.driver == driver) return {.listed = true, .native = true, .zero_copy = r.zero_copy};
  }
  return {};
}

std::vector<std::string> RxFilterNames(uint32_t rx_filters) {
  // HWTSTAMP_FILTER_* (linux/net_tstamp.h), as ethtool -T names them.
  constexpr std::array<std::string_view, 16> kNames = {
      "none",           "all",           "some",
      "ptpv1-l4-event", "ptpv1-l4-sync", "ptpv1-l4-delay-req",
      "ptpv2-l4-event", "ptpv2-l4-sync", "ptpv2-l4-delay-req",
      "ptpv2-l2-event", "ptpv2-l2-sync", "ptpv2-l2-delay-req",
      "ptpv2-event",    "ptpv2-sync",    "ptpv2-delay-req",
      "ntp-all"};
  std::vector<std::string> out;
  for (unsigned bit = 0; bit < 32; ++bit) {
    if ((rx_filters >> bit & 1) == 0) continue;
    out.push_back(bit < kNames.size() ? std::string(kNames[bit]) : "bit-" + std::to_string(bit));
  }
  return out;
}

Status CheckTimestampSource(TimestampSource source, const std::string& iface,
                            const TimestampCaps& caps, std::string_view host_clock_only) {
  if (source == TimestampSource::kKernel || source == TimestampSource::kNtp) return {};
  auto refuse = [](std::string why) {
    return std::unexpected(
        Error(ErrorCode::kUnavailable, std::move(why)).WithField("timestamp_source"));
  };
  if (!host_clock_only.empty()) return refuse(std::string(host_clock_only));
  if (!caps.hardware_rx()) {
    return refuse("interface " + iface + " has no hardware timestamping of received packets (" +
                  (caps.queried ? "ETHTOOL_GET_TS_INFO lists no rx-hardware and raw-hardware"
                                : caps.query_error) +
                  ")");
  }
  if (source == TimestampSource::kPtp && caps.phc_index < 0) {
    return refuse("interface " + iface +
                  " has no PTP hardware clock (ETHTOOL_GET_TS_INFO phc_index -1)");
  }
  return {};
}

Status CheckTimestampSource(TimestampSource source, const std::string& iface,
                            std::string_view host_clock_only) {
  if (source == TimestampSource::kKernel || source == TimestampSource::kNtp ||
      !host_clock_only.empty()) {
    return CheckTimestampSource(source, iface, TimestampCaps{}, host_clock_only);
  }
  return CheckTimestampSource(source, iface, ProbeTimestamps(iface), host_clock_only);
}

}  // namespace jarvis
