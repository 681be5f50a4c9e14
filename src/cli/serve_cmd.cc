#include "cli/serve_cmd.h"

#include <fmt/format.h>
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <thread>
#include <toml++/toml.h>

#include "api/server.h"
#include "engine/engine.h"

namespace jarvis::cli {

CLI::App* AddServeCommand(CLI::App& app, ServeArgs& a) {
  CLI::App* cmd = app.add_subcommand("serve", "Run the daemon: the REST API on HOST:PORT");
  cmd->add_option("--config", a.config_file, "TOML configuration file ([server] table)");
  cmd->add_option("--listen", a.listen, "HOST:PORT to listen on (default 127.0.0.1:8000)");
  cmd->add_option("--token-file", a.token_file,
                  "File holding the bearer token every request but /healthz must carry; it "
                  "must not be readable by group or others");
  cmd->add_option("--tls-cert", a.tls_cert, "PEM certificate: serve HTTPS");
  cmd->add_option("--tls-key", a.tls_key, "PEM private key for --tls-cert");
  cmd->add_option("--key-dir", a.key_dir, "Encryption key files must live under this folder");
  cmd->add_option("--max-body-bytes", a.max_body_bytes, "Largest request body accepted");
  cmd->add_option("--bench-results", a.bench_results,
                  "Results of `jarvis-capture bench` that the backends reply takes its measured "
                  "figures from (default /var/lib/jarvis-capture/bench.json)");
  cmd->add_option("--log-level", a.log_level, "trace, debug, info, warn or error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  return cmd;
}

namespace {

int Fail(const std::string& msg) {
  fmt::print(stderr, "jarvis-capture: {}\n", msg);
  return 1;
}

// Fills unset arguments from the [server] table of the configuration file.
Status LoadConfig(ServeArgs& a) {
  if (a.config_file.empty()) return {};
  toml::table t;
  try {
    t = toml::parse_file(a.config_file);
  } catch (const toml::parse_error& e) {
    std::ostringstream where;
    where << e.source().begin;
    return MakeError(ErrorCode::kInvalidArgument, a.config_file + ": " +
                                                      std::string(e.description()) + " at " +
                                                      where.str());
  }
  // Only [server] is known so far: a misspelt table is an error, not a silent no-op.
  for (const auto& [key, value] : t) {
    if (key.str() != "server") {
      return MakeError(ErrorCode::kInvalidArgument,
                       a.config_file + ": unknown key " + std::string(key.str()));
    }
  }
  const auto* server = t["server"].as_table();
  if (server == nullptr) {
    if (t.contains("server")) {
      return MakeError(ErrorCode::kInvalidArgument, a.config_file + ": server must be a table");
    }
    return {};
  }
  static const std::set<std::string> kKnown = {"listen",   "token_file", "tls_cert",
                                               "tls_key",  "key_dir",    "log_level",
                                               "max_body_bytes", "bench_results"};
  for (const auto& [key, value] : *server) {
    if (!kKnown.count(std::string(key.str()))) {
      return MakeError(ErrorCode::kInvalidArgument,
                       a.config_file + ": unknown key server." + std::string(key.str()));
    }
  }
  const auto set = [&](std::string& field, const char* key) -> Status {
    auto node = (*server)[key];
    if (!node) return {};
    auto v = node.value<std::string>();
    if (!v) {
      return MakeError(ErrorCode::kInvalidArgument,
                       a.config_file + ": server." + key + " must be a string");
    }
    if (field.empty()) field = *v;
    return {};
  };
  for (auto [field, key] : {std::pair{&a.listen, "listen"}, {&a.token_file, "token_file"},
                            {&a.tls_cert, "tls_cert"}, {&a.tls_key, "tls_key"},
                            {&a.key_dir, "key_dir"}, {&a.log_level, "log_level"},
                            {&a.bench_results, "bench_results"}}) {
    if (auto st = set(*field, key); !st) return st;
  }
  if (auto node = (*server)["max_body_bytes"]) {
    auto v = node.value<int64_t>();
    if (!v || *v <= 0) {
      return MakeError(ErrorCode::kInvalidArgument,
                       a.config_file + ": server.max_body_bytes must be a positive integer");
    }
    if (a.max_body_bytes == 0) a.max_body_bytes = static_cast<size_t>(*v);
  }
  return {};
}

Result<std::string> ReadToken(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return ErrnoError(errno, "token file " + path);
  if (st.st_mode & 077) {
    return MakeError(ErrorCode::kPermissionDenied,
                     "token file " + path + " is readable by group or others; chmod 600 it");
  }
  std::ifstream in(path);
  std::string token;
  std::getline(in, token);
  while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) token.pop_back();
  if (token.empty()) return MakeError(ErrorCode::kInvalidArgument, "token file " + path + " is empty");
  return token;
}

Result<std::pair<std::string, int>> ParseListen(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) {
    return MakeError(ErrorCode::kInvalidArgument, "--listen wants HOST:PORT, got '" + listen + "'");
  }
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  char* end = nullptr;
  const long port = std::strtol(listen.c_str() + colon + 1, &end, 10);
  if (*end != '\0' || port < 0 || port > 65535 || colon + 1 == listen.size()) {
    return MakeError(ErrorCode::kInvalidArgument, "bad port in --listen '" + listen + "'");
  }
  return std::pair{host, static_cast<int>(port)};
}

}  // namespace

int RunServe(const ServeArgs& args) {
  ServeArgs a = args;
  if (auto st = LoadConfig(a); !st) return Fail(st.error().message());
  if (a.listen.empty()) a.listen = "127.0.0.1:8000";
  // Logs (one line per request among them) go to stderr; stdout stays free.
  spdlog::set_default_logger(spdlog::stderr_color_mt("serve"));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %l %v");
  spdlog::set_level(a.log_level.empty() ? spdlog::level::info
                                        : spdlog::level::from_str(a.log_level));

  auto hp = ParseListen(a.listen);
  if (!hp) return Fail(hp.error().message());
  api::ServerOptions opt;
  opt.host = hp->first;
  opt.port = hp->second;
  opt.key_dir = a.key_dir;
  if (!a.bench_results.empty()) opt.bench_results_path = a.bench_results;
  if (a.max_body_bytes != 0) opt.max_body_bytes = a.max_body_bytes;
  if (!a.token_file.empty()) {
    auto token = ReadToken(a.token_file);
    if (!token) return Fail(token.error().message());
    opt.token = *token;
  }
  if (a.tls_cert.empty() != a.tls_key.empty()) {
    return Fail("--tls-cert and --tls-key go together");
  }
  opt.tls_cert_file = a.tls_cert;
  opt.tls_key_file = a.tls_key;

  // SIGINT and SIGTERM are taken by one thread with sigwait(); every other thread, the
  // server's pool included, inherits the blocked mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  Engine engine;
  api::ApiServer server(engine, opt);
  if (auto st = server.Bind(); !st) return Fail(st.error().message());
  const bool open = opt.host != "127.0.0.1" && opt.host != "::1" && opt.host != "localhost";
  spdlog::info("serving on {}://{}:{}{}{}", opt.tls_cert_file.empty() ? "http" : "https",
               opt.host, server.port(), opt.token.empty() ? "" : " (bearer token required)",
               open ? " - not loopback: reachable from the network" : "");
  if (open && opt.token.empty()) {
    spdlog::warn("listening beyond loopback without --token-file: anyone who can reach {} can "
                 "start and stop captures",
                 opt.host);
  }

  std::thread signals([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    spdlog::info("{}: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    if (engine.GetStatus().state == SessionState::kRunning) {
      auto totals = engine.Stop(/*graceful=*/true);
      if (totals) {
        spdlog::info("capture stopped: {} packets, {} dropped", totals->packets,
                     totals->dropped());
      }
    }
    server.Stop();
  });
  const bool ran = server.Run();
  // If the server ended on its own, wake the signal thread so it can finish.
  if (signals.joinable()) {
    pthread_kill(signals.native_handle(), SIGTERM);
    signals.join();
  }
  if (!ran) return Fail("the HTTP server stopped unexpectedly");
  spdlog::info("stopped");
  return 0;
}

}  // namespace jarvis::cli
