// `jarvis-capture flows`: meter packets from a file or an interface into flows and print the
// finished flows as a table, CSV or JSON lines, and/or export them to NetFlow/IPFIX collectors
// (`--export ipfix://127.0.0.1:4739`, repeatable).
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace jarvis::cli {

struct FlowsArgs {
  std::string interface;
  std::string read_file;
  std::string backend;
  std::string dpdk_args;  // --dpdk-args: EAL arguments for the dpdk backend
  std::string format = "table";
  uint32_t idle_timeout = 300;
  uint32_t active_timeout = 60;
  uint32_t table_size = 100000;
  uint32_t workers = 1;
  uint32_t snaplen = 0;
  uint32_t buffer_kib = 0;
  uint64_t count = 0;
  double speed = 0;
  bool pipeline = false;
  bool no_progress = false;
  bool stats = false;
  std::vector<std::string> exports;  // export URLs (export/export_config.h)
  std::vector<std::string> filter_words;
};

CLI::App* AddFlowsCommand(CLI::App& app, FlowsArgs& args);
int RunFlows(const FlowsArgs& args);

}  // namespace jarvis::cli
