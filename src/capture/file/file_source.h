// The `file` backend: pcap and pcapng files read through libpcap's offline reader.
//
// The format is detected from the first bytes, as libpcap does, whatever the file's extension.
// Timestamps are delivered in nanoseconds whatever the file's resolution. The BPF filter is
// applied here, per packet, so the number of packets it excluded is known.
#pragma once

#include <memory>
#include <string>

#include "capture/source.h"

namespace jarvis {

Result<std::unique_ptr<CaptureSource>> OpenFileSource(const SourceOptions& options);

}  // namespace jarvis
