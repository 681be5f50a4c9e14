// The Prometheus text exposition (format 0.0.4) of the engine's measurements.
#pragma once

#include <array>
#include <atomic>
#include <string>

#include "engine/engine.h"

namespace jarvis::api {

class PrometheusText {
 public:
  // Thread safety: any thread.
  void CountRequest(int status);
  // `metrics` is null before the first session.
  std::string Render(const EngineStatus& status, const EngineMetrics* metrics) const;

 private:
  // Requests by status class: 1xx..5xx.
  std::array<std::atomic<uint64_t>, 6> requests_{};
};

}  // namespace jarvis::api
