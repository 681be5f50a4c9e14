// SIGINT/SIGTERM handling for commands that run until stopped, and what they do when the
// reader of their standard output goes away.
#pragma once

#include "capture/source.h"

namespace jarvis::cli {

// Installs SIGINT and SIGTERM handlers that request a stop and Interrupt() `source` (which may
// be null), and ignores SIGPIPE so a closed output is an error, not a silent death. Passing
// null after the loop detaches the source.
void StopOnSignals(CaptureSource* source);

bool StopRequested();

// True when standard output is a pipe or socket whose reading end has closed, as when the
// output goes through `head` and head has what it wanted. Commands that write to standard
// output check it when a write fails: then they stop at once, print nothing more, and exit
// with kExitOutputClosed, the status a shell shows for a process killed by SIGPIPE (128 + 13),
// as tcpdump's would be. Any other write failure (a full disk) is an error, reported.
bool StdoutReaderGone();
inline constexpr int kExitOutputClosed = 141;

}  // namespace jarvis::cli
