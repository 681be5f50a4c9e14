// `jarvis-capture bench`: the live capture benchmark. The benchmark itself is
// bench/capture_live.py (it drives trafgen, tcpdump and netsniff-ng, which is a script's job);
// this subcommand finds the script shipped with the project and runs it on this binary.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace jarvis::cli {

CLI::App* AddBenchCommand(CLI::App& app);

// Where the script is looked for, in order: $JARVIS_BENCH_SCRIPT, then beside the binary's
// folder (<exe>/../bench/, a build folder inside the source tree), then the installed place
// (<exe>/../share/jarvis-capture/bench/). `exe` is the binary's path.
std::vector<std::string> BenchScriptCandidates(const std::string& exe);

// Replaces the process with `python3 SCRIPT EXE ARGS...`; returns only on failure, with the
// exit status to use (the message is printed).
int RunBench(const CLI::App& cmd);

}  // namespace jarvis::cli
