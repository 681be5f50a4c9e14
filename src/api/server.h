// The REST API: the fixed contract of DESIGN.md §7, plus /metrics (Prometheus),
// /openapi.json and /healthz, served by the HTTP server plugin (api/http.h: cpp-httplib).
//
// Thread safety: handlers run on the server's thread pool and call the Engine, which
// serialises control operations itself.
#pragma once

#include <memory>
#include <string>

#include "bench/bench_results.h"
#include "core/error.h"
#include "engine/engine.h"

namespace jarvis::api {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;               // 0: any free port (see ApiServer::port())
  std::string token;             // bearer token; empty: no authentication
  std::string tls_cert_file;     // both set: HTTPS
  std::string tls_key_file;
  size_t max_body_bytes = 64 * 1024;
  std::string key_dir;           // encryption key files must live under it ("" = anywhere)
  // Results of `jarvis-capture bench`: the backends reply takes its measured figures from them
  // when the file exists (src/bench/bench_results.h).
  std::string bench_results_path{bench::kDefaultResultsPath};
};

class ApiServer {
 public:
  ApiServer(Engine& engine, ServerOptions options);
  ~ApiServer();

  // Binds the listening socket. Errors name the address.
  Status Bind();
  // The port bound (useful with port 0).
  int port() const { return bound_port_; }
  // Serves until Stop(). Returns false if the server could not run.
  bool Run();
  // Thread safety: any thread.
  void Stop();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
  int bound_port_ = 0;
};

}  // namespace jarvis::api
