#include "cli/signals.h"

#include <signal.h>

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

}  // namespace jarvis::cli
