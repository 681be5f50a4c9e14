#include "capture/backend_modes.h"

#include <fmt/format.h>
#include <linux/net_tstamp.h>
#include <pcap/pcap.h>

#include <array>
#include <cstdlib>

#include "capture/af_packet/af_packet_source.h"
#include "capture/dpdk/dpdk_args.h"
#include "capture/dpdk/dpdk_host.h"
#include "capture/xdp/xdp_plan.h"

namespace jarvis {
namespace {

using Json = nlohmann::json;

constexpr std::array kAllSources = {TimestampSource::kKernel, TimestampSource::kHardware,
                                    TimestampSource::kPtp, TimestampSource::kNtp};

// The API's default buffer (buffer_size_mb 256), which sizes the vdev the dpdk report shows.
constexpr unsigned kReportBufferKib = 256 * 1024;

std::string Join(const std::vector<std::string>& words, std::string_view sep = ", ") {
  std::string out;
  for (const std::string& w : words) {
    if (!out.empty()) out += sep;
    out += w;
  }
  return out;
}

std::string XdpHow(XdpCapsSource s) {
  switch (s) {
    case XdpCapsSource::kKernelFeatures:
      return "probed";
    case XdpCapsSource::kDriverTable:
      return "from driver table";
    case XdpCapsSource::kUnknown:
      break;
  }
  return "unknown";
}

// Adds `timestamp_sources` (accepted) and `timestamp_refused` ({source: reason}) to `out`, by
// the rule every backend's open applies (CheckTimestampSource).
std::vector<std::string> AddTimestampSources(Json& out, const InterfaceCaps& caps,
                                             std::string_view host_clock_only) {
  std::vector<std::string> accepted;
  Json refused = Json::object();
  for (TimestampSource s : kAllSources) {
    auto st = CheckTimestampSource(s, caps.name, caps.timestamps, host_clock_only);
    if (st) {
      accepted.emplace_back(TimestampSourceName(s));
    } else {
      refused[std::string(TimestampSourceName(s))] = st.error().message();
    }
  }
  out["timestamp_sources"] = accepted;
  out["timestamp_refused"] = refused;
  return accepted;
}

std::string QueuesText(uint32_t n) { return fmt::format("{} RX queue{}", n, n == 1 ? "" : "s"); }

void LibpcapModes(Json& m, const InterfaceCaps& caps, std::vector<std::string>& summary) {
  const std::string version = pcap_lib_version();
  const bool v3 = version.find("TPACKET_V3") != std::string::npos;
  m["library"] = version;
  // libpcap 1.10 (pcap-linux.c) reads a TPACKET_V3 ring where it was built with it, except in
  // immediate mode, where it takes TPACKET_V2 because a V3 block may wait to fill.
  m["ring"] = v3 ? "TPACKET_V3" : "TPACKET_V2";
  m["ring_note"] = v3 ? "what libpcap reports it was built with (pcap_lib_version); "
                        "TPACKET_V2 with --immediate"
                      : "libpcap was built without TPACKET_V3 (pcap_lib_version)";
  // The timestamp types libpcap itself lists for the interface (pcap_create reads them with
  // the same ETHTOOL_GET_TS_INFO; nothing is opened on the interface).
  Json types = Json::array();
  char errbuf[PCAP_ERRBUF_SIZE] = {};
  if (pcap_t* p = pcap_create(caps.name.c_str(), errbuf); p != nullptr) {
    int* list = nullptr;
    const int n = pcap_list_tstamp_types(p, &list);
    for (int i = 0; i < n; ++i) types.push_back(pcap_tstamp_type_val_to_name(list[i]));
    if (list != nullptr) pcap_free_tstamp_types(list);
    pcap_close(p);
  }
  if (types.empty()) types.push_back("host");  // libpcap's answer when it lists none
  m["libpcap_tstamp_types"] = types;
  summary.push_back(std::string(v3 ? "TPACKET_V3" : "TPACKET_V2") + " ring (" + version + ")");
}

void AfPacketModes(Json& m, const InterfaceCaps& caps, std::vector<std::string>& summary) {
  const AfPacketProbe p = ProbeAfPacket(caps.ifindex);
  m["probed"] = p.probed;
  m["ring"] = p.probed ? Json(p.tpacket_v3 ? "TPACKET_V3" : "none") : Json(nullptr);
  m["fanout"] = p.probed ? Json(p.fanout) : Json(nullptr);
  m["fanout_mode"] = kAfPacketFanoutMode;
  m["rx_queues"] = caps.rx_queues;
  m["probe_error"] = p.error.empty() ? Json(nullptr) : Json(p.error);
  if (!p.probed) {
    summary.push_back("not probed (" + p.error + ")");
    return;
  }
  summary.push_back(std::string(p.tpacket_v3 ? "TPACKET_V3 ring" : "no TPACKET_V3") + ", " +
                    (p.fanout ? "fanout " + std::string(kAfPacketFanoutMode) : "no fanout") +
                    " (probed), " + QueuesText(caps.rx_queues));
}

void XdpModes(Json& m, const InterfaceCaps& caps, std::vector<std::string>& summary) {
  const XdpCaps& x = caps.xdp;
  m["native_xdp"] = x.native;
  m["zero_copy"] = x.zero_copy;
  m["determined_by"] = XdpHow(x.source);
  m["rx_queues"] = caps.rx_queues;
  m["sockets"] = caps.rx_queues;  // one AF_XDP socket per RX queue
  auto prefs = xdp::ParseAttachPrefs(std::getenv("JARVIS_XDP_ATTACH"));
  if (!prefs) {
    m["mode"] = nullptr;
    m["note"] = prefs.error().message();
    summary.push_back(prefs.error().message());
    return;
  }
  const auto expect = xdp::ExpectMode(x.native, x.zero_copy, *prefs);
  if (!expect) {
    m["mode"] = nullptr;
    m["attach"] = nullptr;
    m["bind"] = nullptr;
    m["note"] = "JARVIS_XDP_ATTACH asks for native mode only, which the driver does not have";
    summary.push_back("refused: " + m["note"].get<std::string>());
    return;
  }
  const std::string mode = xdp::ModeName(expect->attach, expect->zero_copy);
  m["mode"] = mode;  // as CaptureSource::mode() and /status will say it
  m["attach"] = expect->attach == xdp::AttachMode::kNative ? "native" : "generic";
  m["bind"] = expect->zero_copy ? "zerocopy" : "copy";
  std::string note;
  if (x.source == XdpCapsSource::kUnknown) {
    note = "native support unknown; a capture tries native mode first and falls back to generic";
  }
  if (x.attached_prog_id != 0 || (!x.attached_mode.empty() && x.attached_mode != "unknown")) {
    if (!note.empty()) note += "; ";
    note += "an XDP program is attached (" + x.attached_mode +
            (x.attached_prog_id ? ", id " + std::to_string(x.attached_prog_id) : "") +
            "): a capture is refused unless it is a jarvis_xsk program an earlier run left";
  }
  m["note"] = note.empty() ? Json(nullptr) : Json(note);
  summary.push_back(mode + " (" + XdpHow(x.source) + "), " + QueuesText(caps.rx_queues) +
                    ", one socket each");
  if (!note.empty()) summary.push_back(note);
}

void DpdkModes(Json& m, const InterfaceCaps& caps, std::vector<std::string>& summary) {
  // EAL arguments as the backend takes them when the request gives none: JARVIS_DPDK_ARGS,
  // else the defaults (a daemon that already ran a dpdk session keeps that session's).
  dpdk::EalPlan plan;
  bool explicit_args = false;
  if (const char* env = std::getenv("JARVIS_DPDK_ARGS"); env != nullptr && *env != '\0') {
    auto parsed = dpdk::ParseDpdkArgs(env);
    if (!parsed) {
      m["note"] = "JARVIS_DPDK_ARGS: " + parsed.error().message();
      summary.push_back(m["note"].get<std::string>());
      return;
    }
    plan = std::move(*parsed);
    explicit_args = true;
  }
  m["eal_args_from"] = explicit_args ? "JARVIS_DPDK_ARGS" : "defaults";
  if (const int i = dpdk::FindVdevForTarget(plan.vdevs, caps.name); i >= 0) {
    const std::string& devargs = plan.vdevs[static_cast<size_t>(i)];
    m["device"] = std::string(dpdk::DevargsName(devargs));
    m["vdev"] = devargs;
    summary.push_back("vdev " + devargs + " (from JARVIS_DPDK_ARGS)");
  } else {
    auto attached = AttachedXdp(caps.ifindex);
    const dpdk::KernelDeviceChoice choice = dpdk::ChooseKernelDevice(
        caps.name, attached && attached->attached(), dpdk::AfXdpSocketsWork());
    if (!choice.refusal.empty()) {
      m["device"] = nullptr;
      m["refusal"] = choice.refusal;
      summary.push_back("refused: " + choice.refusal);
      return;
    }
    const unsigned queues = dpdk::KernelRxQueues(caps.name);
    m["device"] = choice.driver;
    m["vdev"] = dpdk::DefaultVdev(choice.driver, 0, caps.name, kReportBufferKib, queues);
    m["vdev_note"] =
        "for buffer_size_mb 256; the number in the name counts the process's "
        "sessions";
    m["rx_queues"] = queues;
    if (!choice.why_not_af_xdp.empty()) m["why_not_net_af_xdp"] = choice.why_not_af_xdp;
    summary.push_back("vdev " + choice.driver +
                      (choice.driver == "net_af_xdp" ? " (net_af_packet if it fails to start)"
                                                     : " (" + choice.why_not_af_xdp + ")") +
                      ", " + QueuesText(queues));
  }
  if (explicit_args) {
    bool no_huge = false;
    for (const std::string& a : plan.eal_args) no_huge = no_huge || a == "--no-huge";
    m["hugepages"] = !no_huge;
    m["memory"] = no_huge ? "--no-huge" : "as the EAL arguments say";
  } else {
    const unsigned mb = dpdk::DefaultEalMemoryMb(caps.name);
    const bool huge = dpdk::HugepagesFor(mb);
    m["hugepages"] = huge;
    m["memory_mb"] = mb;
    m["memory"] = huge ? "hugepages (--in-memory)" : "--no-huge";
    summary.push_back(huge ? fmt::format("{} MiB of hugepages", mb)
                           : fmt::format("--no-huge ({} MiB of free hugepages not found)", mb));
  }
}

}  // namespace

std::vector<std::string> TimestampingNames(uint32_t so_timestamping) {
  // linux/net_tstamp.h bit order; the names ethtool -T prints.
  constexpr std::array<std::string_view, 7> kNames = {
      "hardware-transmit",     "software-transmit",     "hardware-receive",  "software-receive",
      "software-system-clock", "hardware-legacy-clock", "hardware-raw-clock"};
  std::vector<std::string> out;
  for (unsigned bit = 0; bit < kNames.size(); ++bit) {
    if ((so_timestamping >> bit & 1) != 0) out.emplace_back(kNames[bit]);
  }
  return out;
}

Json InterfaceCapsJson(const InterfaceCaps& c) {
  const TimestampCaps& t = c.timestamps;
  Json ts{{"queried", t.queried},
          {"capabilities", TimestampingNames(t.so_timestamping)},
          {"software_rx", t.software_rx()},
          {"hardware_rx", t.hardware_rx()},
          {"phc_index", t.phc_index},
          {"hardware_rx_filters", RxFilterNames(t.rx_filters)},
          {"error", t.query_error.empty() ? Json(nullptr) : Json(t.query_error)}};
  // What the interface itself can give, before any backend's limit.
  AddTimestampSources(ts, c, "");
  Json attached = nullptr;
  if (c.xdp.attached_mode == "unknown") {
    attached = "unknown";
  } else if (!c.xdp.attached_mode.empty()) {
    attached = Json{{"mode", c.xdp.attached_mode},
                    {"id", c.xdp.attached_prog_id ? Json(c.xdp.attached_prog_id) : Json(nullptr)}};
  }
  Json xdp{{"native", c.xdp.native},
           {"zero_copy", c.xdp.zero_copy},
           {"generic", true},  // generic (SKB) mode works on every interface
           {"features", c.xdp.source == XdpCapsSource::kKernelFeatures
                            ? Json(XdpFeatureNames(c.xdp.features))
                            : Json(nullptr)},
           {"determined_by", XdpHow(c.xdp.source)},
           {"note", c.xdp.source_note},
           {"attached_program", attached}};
  return Json{{"name", c.name},
              {"ifindex", c.ifindex},
              {"driver", c.driver.empty() ? Json(nullptr) : Json(c.driver)},
              {"driver_version", c.driver_version.empty() ? Json(nullptr) : Json(c.driver_version)},
              {"bus_info", c.bus_info.empty() ? Json(nullptr) : Json(c.bus_info)},
              {"up", c.up},
              {"mtu", c.mtu},
              {"rx_queues", c.rx_queues},
              {"max_rx_queues", c.max_rx_queues ? Json(c.max_rx_queues) : Json(nullptr)},
              {"rx_queues_from", c.queues_from},
              {"xdp", xdp},
              {"timestamping", ts}};
}

Json BackendModesJson(std::string_view name, const BackendInfo* info, const InterfaceCaps& caps) {
  Json m = Json::object();
  std::vector<std::string> summary;
  if (info == nullptr) {
    m["summary"] = "not available in this build";
    return m;
  }
  const std::string why = info->unavailable_reason();
  if (name == "pf_ring" && !why.empty()) {
    // Nothing to tell about the interface while the library or module is missing.
    m["summary"] = "unavailable: " + why;
    m["reason"] = why;
    return m;
  }
  // An unavailable backend (no privilege, say) is still described, and says so first.
  m["usable"] = why.empty();
  if (name == "libpcap") LibpcapModes(m, caps, summary);
  if (name == "af_packet") AfPacketModes(m, caps, summary);
  if (name == "xdp") XdpModes(m, caps, summary);
  if (name == "dpdk") DpdkModes(m, caps, summary);
  const auto accepted = AddTimestampSources(m, caps, info->host_clock_only);
  summary.push_back("timestamps: " + Join(accepted));
  m["summary"] =
      (why.empty() ? "" : "unavailable here (see its reason); if it were: ") + Join(summary, "; ");
  return m;
}

std::vector<std::string> InterfaceCapsLines(const InterfaceCaps& c) {
  std::vector<std::string> out;
  out.push_back(
      fmt::format("interface {}: ifindex {}, driver {}, {}, mtu {}, {} ({}{})", c.name, c.ifindex,
                  c.driver.empty() ? "(not reported)" : c.driver, c.up ? "up" : "down", c.mtu,
                  QueuesText(c.rx_queues), c.queues_from,
                  c.max_rx_queues ? fmt::format(", at most {}", c.max_rx_queues) : std::string()));
  std::string xdp = fmt::format("  xdp: native {}, zero-copy {}", c.xdp.native ? "yes" : "no",
                                c.xdp.zero_copy ? "yes" : "no");
  if (c.xdp.source == XdpCapsSource::kKernelFeatures) {
    const auto names = XdpFeatureNames(c.xdp.features);
    xdp += " (probed: kernel xdp-features " + (names.empty() ? "none" : Join(names, ",")) + ")";
  } else {
    xdp += " (" + c.xdp.source_note + ")";
  }
  if (c.xdp.attached_mode == "unknown") {
    xdp += "; attached program unknown";
  } else if (!c.xdp.attached_mode.empty()) {
    xdp += "; program attached (" + c.xdp.attached_mode +
           (c.xdp.attached_prog_id ? fmt::format(", id {}", c.xdp.attached_prog_id) : "") + ")";
  } else {
    xdp += "; no program attached";
  }
  out.push_back(xdp);
  const TimestampCaps& t = c.timestamps;
  std::vector<std::string> accepted;
  for (TimestampSource s : kAllSources) {
    if (CheckTimestampSource(s, c.name, t, "")) accepted.emplace_back(TimestampSourceName(s));
  }
  out.push_back(
      fmt::format("  timestamping: {}; phc {}; timestamp sources the interface gives: {}",
                  t.queried ? (t.so_timestamping ? Join(TimestampingNames(t.so_timestamping), ",")
                                                 : std::string("none listed"))
                            : t.query_error,
                  t.phc_index < 0 ? std::string("none") : fmt::format("/dev/ptp{}", t.phc_index),
                  Join(accepted)));
  return out;
}

}  // namespace jarvis
