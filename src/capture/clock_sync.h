// Whether the host clock is disciplined (NTP, PTP to the system clock, chrony), as the kernel
// reports it through adjtimex(2). The `ntp` timestamp source stamps packets with this clock.
#pragma once

#include <cstdint>
#include <string>

namespace jarvis {

struct ClockSync {
  bool synchronized = false;  // the kernel does not flag the clock unsynchronised
  int64_t max_error_us = 0;   // the kernel's maximum error estimate
  int64_t est_error_us = 0;   // the kernel's estimated error
  std::string note;           // why not, or how the answer was obtained
};

ClockSync HostClockSync();

}  // namespace jarvis
