#include "capture/clock_sync.h"

#include <sys/timex.h>

#include <cerrno>
#include <cstring>

namespace jarvis {

ClockSync HostClockSync() {
  ClockSync s;
  timex tx{};
  tx.modes = 0;  // read only
  const int state = ::adjtimex(&tx);
  if (state < 0) {
    s.note = std::string("adjtimex: ") + std::strerror(errno);
    return s;
  }
  s.max_error_us = tx.maxerror;
  s.est_error_us = tx.esterror;
  s.synchronized = state != TIME_ERROR && (tx.status & STA_UNSYNC) == 0;
  s.note = s.synchronized ? "adjtimex: clock synchronised"
                          : "adjtimex: clock not synchronised (STA_UNSYNC set or TIME_ERROR)";
  return s;
}

}  // namespace jarvis
