// jarvis-capture: one binary, one subcommand per job.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "bench/bench_results.h"
#include "capture/backend_modes.h"
#include "capture/source.h"
#include "cli/bench_cmd.h"
#include "cli/capture_cmd.h"
#include "cli/flows_cmd.h"
#include "cli/serve_cmd.h"

namespace {

// Where `backends` reads the benchmark's results (--bench-results); at file scope because
// RunBackends takes no arguments.
std::string bench_results_path{jarvis::bench::kDefaultResultsPath};

int RunBackends() {
  const auto results = jarvis::bench::LoadBenchResults(bench_results_path);
  for (const jarvis::BackendInfo& b : jarvis::Backends()) {
    std::string why = b.unavailable_reason();
    fmt::print("{:<10} {:<12} {}\n", b.name, why.empty() ? "available" : "unavailable",
               why.empty() ? std::string(b.description) : why);
    // Measured (with the date) or nominal, as GET .../backends reports them.
    const std::string figures = jarvis::bench::BackendFiguresText(b.name, results);
    if (!figures.empty()) fmt::print("{:<10} figures: {}\n", "", figures);
  }
  return 0;
}

// With -i: the interface's facts, then each backend's modes on it. An unknown interface is a
// one-line error and exit 1, before anything is listed.
int RunBackendModes(const std::string& iface, int (*list)()) {
  auto caps = jarvis::ProbeInterface(iface);
  if (!caps) {
    fmt::print(stderr, "jarvis-capture: {}\n", caps.error().message());
    return 1;
  }
  const int rc = list();
  fmt::print("\n");
  for (const std::string& line : jarvis::InterfaceCapsLines(*caps)) fmt::print("{}\n", line);
  fmt::print("modes on {}:\n", iface);
  for (const jarvis::BackendInfo& b : jarvis::Backends()) {
    if (b.kind != jarvis::BackendKind::kLive) continue;
    const auto modes = jarvis::BackendModesJson(b.name, &b, *caps);
    fmt::print("  {:<10} {}\n", b.name, modes["summary"].get<std::string>());
  }
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"jarvis-capture: packet capture, flow metering and export"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "jarvis-capture 0.1.0");

  jarvis::cli::CaptureArgs capture_args;
  CLI::App* capture = jarvis::cli::AddCaptureCommand(app, capture_args);
  jarvis::cli::FlowsArgs flows_args;
  CLI::App* flows = jarvis::cli::AddFlowsCommand(app, flows_args);
  jarvis::cli::ServeArgs serve_args;
  CLI::App* serve = jarvis::cli::AddServeCommand(app, serve_args);
  CLI::App* backends = app.add_subcommand("backends", "List capture backends and availability");
  backends->add_option("--bench-results", bench_results_path,
                       "Results of `jarvis-capture bench` giving the measured figures (default "
                       "/var/lib/jarvis-capture/bench.json)");
  CLI::App* bench = jarvis::cli::AddBenchCommand(app);
  std::string backends_iface;
  backends->add_option("-i,--interface", backends_iface,
                       "Also show the modes each backend would use on this interface");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // A first word that is no command: say so, rather than CLI11's "A subcommand is required".
    if (argc > 1 && argv[1][0] != '-') {
      std::string names;
      bool known = false;
      for (const CLI::App* sub : app.get_subcommands({})) {
        known = known || sub->check_name(argv[1]);
        names += names.empty() ? "" : ", ";
        names += sub->get_name();
      }
      if (!known) {
        fmt::print(stderr, "jarvis-capture: unknown command '{}' (commands: {})\n", argv[1],
                   names);
        return 2;
      }
    }
    // One line, like every other error (CLI11's own printer adds a second "Run with --help").
    fmt::print(stderr, "jarvis-capture: {} (see --help)\n", e.what());
    return 2;
  }
  if (*capture) return jarvis::cli::RunCapture(capture_args);
  if (*flows) return jarvis::cli::RunFlows(flows_args);
  if (*serve) return jarvis::cli::RunServe(serve_args);
  if (*backends && !backends_iface.empty()) return RunBackendModes(backends_iface, &RunBackends);
  if (*backends) return RunBackends();
  if (*bench) return jarvis::cli::RunBench(*bench);
  return 2;
}
