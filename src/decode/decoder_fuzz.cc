// libFuzzer target for Decode. Built only with -DJARVIS_FUZZ=ON and clang; by hand:
//   clang++ -std=c++2b -g -O1 -fsanitize=fuzzer,address,undefined -Isrc \
//     src/decode/decoder_fuzz.cc src/decode/decoder.cc -o /tmp/decoder_fuzz
//
// Input: octet 0 picks the link type, octets 1..2 how many octets the wire had beyond the
// capture, the rest is the frame. Beyond crashes and out-of-bounds reads, the target traps
// when the meta breaks its contract (fields present whose octets were not captured).
#include <pcap/dlt.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "decode/decoder.h"

namespace {

constexpr int kLinkTypes[] = {DLT_EN10MB,     DLT_LINUX_SLL, DLT_LINUX_SLL2, DLT_RAW,  101,
                              DLT_IPV4,       DLT_IPV6,      DLT_NULL,       DLT_LOOP, DLT_PPP,
                              DLT_PPP_SERIAL, DLT_C_HDLC,    DLT_USER0};

void Check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const int link_type = kLinkTypes[data[0] % (sizeof(kLinkTypes) / sizeof(kLinkTypes[0]))];
  const uint32_t extra = static_cast<uint32_t>(data[1] << 8 | data[2]);
  jarvis::PacketView pkt;
  pkt.data = data + 3;  // libFuzzer's buffer ends exactly at data + size
  pkt.caplen = static_cast<uint32_t>(size - 3);
  pkt.wirelen = pkt.caplen + extra;

  jarvis::PacketMeta m;
  jarvis::DecodeCounters counters;
  const jarvis::DecodeResult r = jarvis::Decode(link_type, pkt, m, counters);

  using jarvis::DecodeResult;
  const uint32_t caplen = pkt.caplen;
  const bool ip_found = r == DecodeResult::kOk || r == DecodeResult::kPartial;
  Check(m.has(jarvis::kMetaL3) == ip_found);
  Check(m.has(jarvis::kMetaTruncated) == (r == DecodeResult::kPartial));
  if (m.has(jarvis::kMetaL3)) {
    Check(m.ip_version == 4 || m.ip_version == 6);
    Check(m.l3_offset + (m.ip_version == 4 ? 20u : 40u) <= caplen);
    Check(m.l3_len <= pkt.wirelen - m.l3_offset);
  } else {
    Check(m.ip_version == 0 && m.l4_offset == 0 && m.payload_offset == 0 && m.l3_len == 0);
  }
  if (m.has(jarvis::kMetaPorts)) Check(m.l4_offset != 0 && m.l4_offset + 4u <= caplen);
  if (m.has(jarvis::kMetaTcpFlags)) Check(m.l4_offset + 14u <= caplen);
  if (m.payload_offset != 0) Check(m.payload_offset > m.l4_offset && m.payload_offset <= caplen);
  uint64_t reasons = 0;
  counters.ForEach([&](std::string_view name, std::string_view, uint64_t v) {
    if (name != "ip_fragments") reasons += v;
  });
  Check(r == DecodeResult::kOk || reasons >= 1);
  return 0;
}
