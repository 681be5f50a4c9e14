// The modes each backend would use on one interface, for the backends report
// (`GET .../backends?interface=IFACE`, `jarvis-capture backends -i IFACE`).
//
// Everything comes from the interface probe (iface_caps.h) and the backends' own decision
// functions (xdp::ExpectMode, dpdk::ChooseKernelDevice, CheckTimestampSource, ...), the same ones
// their open paths follow, so the report and a capture cannot disagree. Each fact says how it
// was learnt where that is not plain ("probed", "from driver table"). Nothing is attached to or
// configured on the interface.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "capture/iface_caps.h"
#include "capture/source.h"

namespace jarvis {

// The interface's own facts: driver, queues, XDP support and timestamping, with the
// timestamp sources the interface itself can give (before any backend's limit).
nlohmann::json InterfaceCapsJson(const InterfaceCaps& caps);

// What backend `name` would do on the interface: its mode fields, the timestamp sources it
// accepts there (and why the others are refused), and a one-line `summary`. `info` is the
// backend's table row, or null when this build does not have the backend.
nlohmann::json BackendModesJson(std::string_view name, const BackendInfo* info,
                                const InterfaceCaps& caps);

// The interface facts as lines of text for the CLI.
std::vector<std::string> InterfaceCapsLines(const InterfaceCaps& caps);

// SOF_TIMESTAMPING_* capability bits as `ethtool -T` names them ("software-receive", ...).
std::vector<std::string> TimestampingNames(uint32_t so_timestamping);

}  // namespace jarvis
