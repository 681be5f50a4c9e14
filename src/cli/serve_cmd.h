// `jarvis-capture serve`: the daemon behind the REST API.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

namespace jarvis::cli {

struct ServeArgs {
  std::string config_file;   // TOML; flags given on the command line win over it
  std::string listen;        // HOST:PORT, default 127.0.0.1:8000
  std::string token_file;
  std::string tls_cert;
  std::string tls_key;
  std::string key_dir;
  std::string log_level;     // trace, debug, info, warn, error
  std::string bench_results;  // results of `jarvis-capture bench` (default in bench_results.h)
  size_t max_body_bytes = 0;
};

CLI::App* AddServeCommand(CLI::App& app, ServeArgs& args);
int RunServe(const ServeArgs& args);

}  // namespace jarvis::cli
