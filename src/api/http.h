// The HTTP server under the REST API, as a plugin.
//
// The server itself (cpp-httplib, and through it OpenSSL, zlib and brotli) lives in
// jarvis-capture-http.so, which `serve` loads with dlopen() when it binds. The binary does not
// depend on those libraries, so `capture`, `flows` and every other command start without
// mapping them or running OpenSSL's initialisation (about 2.5 ms of a 5 ms start-up, measured
// in docs/PERFORMANCE.md). The plugin is found through $JARVIS_HTTP_PLUGIN (a path; ignored by a
// binary with file capabilities, which would otherwise load any user's code with its
// privileges), else beside the binary, else in ../lib/jarvis-capture/ (an installed tree).
//
// Both sides are built together, by the same compiler against the same libstdc++, so the
// interface is plain C++; kAbi and the sizes in PluginApi catch a plugin from another build.
//
// Thread safety: handlers and hooks run on the server's worker threads, several at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"

namespace jarvis::http {

// One request as the server parsed it. Header names compare without regard to case.
struct Request {
  std::string method;
  std::string path;  // without the query string
  std::string body;
  std::string remote_addr;
  std::vector<std::pair<std::string, std::string>> headers;
  std::vector<std::pair<std::string, std::string>> params;  // query parameters, decoded

  bool has_header(const std::string& name) const;
  // The first value of header `name`, "" when absent.
  std::string get_header_value(const std::string& name) const;
  bool has_param(const std::string& name) const;
  // The first value of query parameter `name`, "" when absent.
  std::string get_param_value(const std::string& name) const;
};

struct Response {
  int status = 200;
  std::string body;
  std::string content_type;  // sent as Content-Type when not empty
  std::vector<std::pair<std::string, std::string>> headers;

  void set_content(std::string content, std::string type) {
    body = std::move(content);
    content_type = std::move(type);
  }
  void set_header(std::string name, std::string value) {
    headers.emplace_back(std::move(name), std::move(value));
  }
};

using Handler = std::function<void(const Request&, Response&)>;

// What the server calls around the handlers. Every hook is optional.
struct Hooks {
  // Before routing, with headers and no body yet. True: answered here (the handler is skipped).
  std::function<bool(const Request&, Response&)> pre_routing;
  // After a reply with status >= 400: the server's own (404 unknown path, 413 body too long,
  // 400 unreadable request), whose body is empty, or a handler's, which has its body.
  Handler on_error;
  // A handler threw; `what` is the exception's message.
  std::function<void(const Request&, Response&, const std::string& what)> on_exception;
  // After every reply; `ms` is the time from the end of the request headers to the reply.
  std::function<void(const Request&, const Response&, double ms)> on_reply;
};

struct ServerConfig {
  std::string tls_cert_file;  // both set: HTTPS
  std::string tls_key_file;
  size_t max_body_bytes = 64 * 1024;  // longer bodies get 413
  int read_timeout_sec = 10;
  int write_timeout_sec = 10;
};

class Server {
 public:
  virtual ~Server() = default;
  // Registers `handler` for GET or POST on exactly `path`. Call before Listen().
  virtual void Route(const std::string& method, const std::string& path, Handler handler) = 0;
  virtual void SetHooks(Hooks hooks) = 0;
  // Binds host:port (port 0: a free port, see the result). On failure: -1, errno set.
  // SO_REUSEADDR only: a second daemon on the same port fails with EADDRINUSE.
  virtual int Bind(const std::string& host, int port) = 0;
  // Serves until Stop(). False if it could not serve.
  virtual bool Listen() = 0;
  // Thread safety: any thread.
  virtual void Stop() = 0;
};

// The plugin's one exported symbol returns this.
inline constexpr uint32_t kAbi = 1;
inline constexpr const char* kPluginFile = "jarvis-capture-http.so";
inline constexpr const char* kPluginSymbol = "jarvis_http_plugin";

struct PluginApi {
  uint32_t abi;
  uint32_t request_size;   // sizeof(Request) in the plugin's build
  uint32_t response_size;  // sizeof(Response)
  uint32_t hooks_size;     // sizeof(Hooks)
  // A new server, or nullptr with `*error` set (TLS certificate or key unusable).
  Server* (*create)(const ServerConfig& config, std::string* error);
};

// Loads the plugin (once per process) and makes a server. Errors: kUnavailable when the plugin
// is missing or from another build, kInvalidArgument when TLS cannot be set up.
Result<std::unique_ptr<Server>> CreateServer(const ServerConfig& config);

}  // namespace jarvis::http
