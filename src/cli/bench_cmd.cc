#include "cli/bench_cmd.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace jarvis::cli {

namespace fs = std::filesystem;

constexpr const char* kScript = "capture_live.py";

CLI::App* AddBenchCommand(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "bench",
      "Live capture benchmark on a veth pair: every backend against tcpdump and netsniff-ng "
      "(runs bench/capture_live.py; `bench --help` lists its options)");
  // Everything after `bench` is the script's, --help included.
  cmd->prefix_command();
  cmd->set_help_flag();
  return cmd;
}

std::vector<std::string> BenchScriptCandidates(const std::string& exe) {
  std::vector<std::string> out;
  if (const char* env = std::getenv("JARVIS_BENCH_SCRIPT"); env != nullptr && *env != '\0') {
    out.emplace_back(env);
    return out;  // an explicit choice is never second-guessed
  }
  const fs::path dir = fs::path(exe).parent_path();
  out.push_back((dir.parent_path() / "bench" / kScript).lexically_normal().string());
  out.push_back((dir.parent_path() / "share" / "jarvis-capture" / "bench" / kScript)
                    .lexically_normal()
                    .string());
  return out;
}

int RunBench(const CLI::App& cmd) {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) {
    fmt::print(stderr, "jarvis-capture: cannot find this binary's path: {}\n", ec.message());
    return 1;
  }
  std::string script;
  std::string tried;
  for (const std::string& c : BenchScriptCandidates(exe.string())) {
    if (::access(c.c_str(), R_OK) == 0) {
      script = c;
      break;
    }
    tried += (tried.empty() ? "" : ", ") + c;
  }
  if (script.empty()) {
    fmt::print(stderr,
               "jarvis-capture: the benchmark script {} was not found (looked for {}); set "
               "JARVIS_BENCH_SCRIPT to its path (it is bench/{} in the source tree)\n",
               kScript, tried, kScript);
    return 1;
  }
  std::vector<std::string> args = {"python3", script, exe.string()};
  for (const std::string& a : cmd.remaining()) args.push_back(a);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::fflush(stdout);
  ::execvp("python3", argv.data());
  fmt::print(stderr, "jarvis-capture: cannot run python3 {}: {}\n", script, std::strerror(errno));
  return 1;
}

}  // namespace jarvis::cli
