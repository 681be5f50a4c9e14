#include "cli/signals.h"

#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>

namespace jarvis::cli {
namespace {

std::atomic<bool> g_stop{false};
std::atomic<CaptureSource*> g_source{nullptr};

void OnSignal(int) {
  g_stop.store(true);
  // Interrupt() is async-signal-safe by contract (an atomic store and a write to an eventfd).
  if (CaptureSource* s = g_source.load()) s->Interrupt();
}

}  // namespace

void StopOnSignals(CaptureSource* source) {
  g_source.store(source);
  struct sigaction sa {};
  sa.sa_handler = &OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

bool StopRequested() { return g_stop.load(std::memory_order_relaxed); }

bool StdoutReaderGone() {
  // A pipe without readers, or a socket shut down by its peer, polls as an error for writing;
  // a full disk or a terminal does not.
  pollfd p{STDOUT_FILENO, POLLOUT, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLHUP)) != 0;
}

}  // namespace jarvis::cli
