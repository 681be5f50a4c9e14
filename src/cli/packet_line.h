// One line of text per packet, in the spirit of tcpdump -n:
//   12:00:01.123456789 IPv4 10.0.0.1.51000 > 10.0.0.2.443: TCP [S] length 60
#pragma once

#include <string>

#include "core/packet.h"
#include "decode/decoder.h"

namespace jarvis::cli {

std::string FormatPacketLine(const PacketView& pkt, const PacketMeta& meta, DecodeResult result);

}  // namespace jarvis::cli
