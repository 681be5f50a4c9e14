// SIGINT/SIGTERM handling for commands that run until stopped.
#pragma once

#include "capture/source.h"

namespace jarvis::cli {

// Installs SIGINT and SIGTERM handlers that request a stop and Interrupt() `source` (which may
// be null), and ignores SIGPIPE so a closed output is an error, not a silent death. Passing
// null after the loop detaches the source.
void StopOnSignals(CaptureSource* source);

bool StopRequested();

}  // namespace jarvis::cli
