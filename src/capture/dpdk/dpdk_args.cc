#include "capture/dpdk/dpdk_args.h"

#include <algorithm>
#include <cctype>

namespace jarvis::dpdk {
namespace {

constexpr unsigned kAfPacketFrameBytes = 2048;  // holds a 1500-byte MTU frame and its header
constexpr unsigned kAfPacketBlockBytes = 1 << 20;
constexpr unsigned kFramesPerBlock = kAfPacketBlockBytes / kAfPacketFrameBytes;

bool IsHex(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isxdigit(static_cast<unsigned char>(c)) != 0;
  });
}

}  // namespace

Result<EalPlan> ParseDpdkArgs(std::string_view text) {
  std::vector<std::string> words;
  std::string cur;
  bool in_word = false;
  char quote = 0;
  for (char c : text) {
    if (quote != 0) {
      if (c == quote) {
        quote = 0;
      } else {
        cur += c;
      }
    } else if (c == '\'' || c == '"') {
      quote = c;
      in_word = true;
    } else if (std::isspace(static_cast<unsigned char>(c))) {
      if (in_word) words.push_back(std::move(cur));
      cur.clear();
      in_word = false;
    } else {
      cur += c;
      in_word = true;
    }
  }
  if (quote != 0) {
    return std::unexpected(Error(ErrorCode::kInvalidArgument,
                                 std::string("unterminated ") + quote + " in DPDK arguments")
                               .WithField("dpdk_args"));
  }
  if (in_word) words.push_back(std::move(cur));

  EalPlan plan;
  plan.explicit_args = true;
  for (size_t i = 0; i < words.size(); ++i) {
    const std::string& w = words[i];
    if (w == "--vdev") {
      if (i + 1 == words.size()) {
        return std::unexpected(
            Error(ErrorCode::kInvalidArgument, "--vdev needs a value in DPDK arguments")
                .WithField("dpdk_args"));
      }
      plan.vdevs.push_back(words[++i]);
    } else if (w.starts_with("--vdev=")) {
      plan.vdevs.push_back(w.substr(7));
    } else {
      plan.eal_args.push_back(w);
    }
  }
  for (const std::string& v : plan.vdevs) {
    if (DevargsName(v).empty()) {
      return std::unexpected(
          Error(ErrorCode::kInvalidArgument, "empty --vdev name in DPDK arguments")
              .WithField("dpdk_args"));
    }
  }
  return plan;
}

std::vector<std::string> DefaultEalArgs(int pid, int main_cpu, unsigned memory_mb,
                                        std::string_view pci_address, bool hugepages) {
  std::vector<std::string> a;
  if (hugepages) {
    a = {"--in-memory"};  // hugepage files unlinked at once, no shared files
  } else {
    a = {"--no-huge", "--no-shconf"};
  }
  for (std::string w :
       {std::string("-m"), std::to_string(memory_mb), std::string("--no-telemetry"),
        std::string("--file-prefix"), "jarvis" + std::to_string(pid), std::string("-l"),
        std::to_string(main_cpu), std::string("--log-level"), std::string("notice")}) {
    a.push_back(std::move(w));
  }
  if (pci_address.empty()) {
    a.push_back("--no-pci");
  } else {
    a.push_back("-a");
    a.emplace_back(pci_address);
  }
  return a;
}

bool LooksLikePciAddress(std::string_view s) {
  // [domain:]bus:device.function, hex fields of 4, 2, 2 and 1 digits.
  const size_t dot = s.rfind('.');
  if (dot == std::string_view::npos || dot + 2 != s.size() || !IsHex(s.substr(dot + 1))) {
    return false;
  }
  std::string_view head = s.substr(0, dot);
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (size_t i = 0; i <= head.size(); ++i) {
    if (i == head.size() || head[i] == ':') {
      parts.push_back(head.substr(start, i - start));
      start = i + 1;
    }
  }
  if (parts.size() == 2) parts.insert(parts.begin(), "0000");
  return parts.size() == 3 && parts[0].size() == 4 && IsHex(parts[0]) && parts[1].size() == 2 &&
         IsHex(parts[1]) && parts[2].size() == 2 && IsHex(parts[2]);
}

std::string_view DevargsName(std::string_view devargs) {
  return devargs.substr(0, devargs.find(','));
}

std::string DevargsValue(std::string_view devargs, std::string_view key) {
  size_t pos = devargs.find(',');
  while (pos != std::string_view::npos) {
    const size_t start = pos + 1;
    const size_t end = devargs.find(',', start);
    std::string_view kv = devargs.substr(start, end == std::string_view::npos ? end : end - start);
    if (kv.size() > key.size() && kv.starts_with(key) && kv[key.size()] == '=') {
      return std::string(kv.substr(key.size() + 1));
    }
    pos = end;
  }
  return {};
}

int FindVdevForTarget(const std::vector<std::string>& vdevs, std::string_view target) {
  for (size_t i = 0; i < vdevs.size(); ++i) {
    if (DevargsName(vdevs[i]) == target) return static_cast<int>(i);
  }
  for (size_t i = 0; i < vdevs.size(); ++i) {
    if (DevargsValue(vdevs[i], "iface") == target) return static_cast<int>(i);
  }
  return -1;
}

std::string DefaultVdev(std::string_view driver, unsigned serial, std::string_view iface,
                        unsigned buffer_kib, unsigned rx_queues) {
  std::string d =
      std::string(driver) + "_jarvis" + std::to_string(serial) + ",iface=" + std::string(iface);
  if (driver == "net_af_packet") {
    // The kernel ring is the buffer: whole 1 MiB blocks of 2 KiB frames.
    const unsigned blocks = std::max(1u, buffer_kib / (kAfPacketBlockBytes / 1024));
    d += ",blocksz=" + std::to_string(kAfPacketBlockBytes) +
         ",framesz=" + std::to_string(kAfPacketFrameBytes) +
         ",framecnt=" + std::to_string(blocks * kFramesPerBlock);
  } else if (driver == "net_af_xdp" && rx_queues > 1) {
    d += ",start_queue=0,queue_count=" + std::to_string(rx_queues);
  }
  return d;
}

std::string JoinArgs(const std::vector<std::string>& words) {
  std::string out;
  for (const std::string& w : words) {
    if (!out.empty()) out += ' ';
    if (w.find(' ') != std::string::npos) {
      out += '\'' + w + '\'';
    } else {
      out += w;
    }
  }
  return out;
}

}  // namespace jarvis::dpdk
