// jarvis-capture-http.so: the HTTP server of src/api/http.h over cpp-httplib (Debian's build,
// with OpenSSL for TLS). Only jarvis_http_plugin() is exported.
#include <httplib.h>
#include <sys/socket.h>

#include <chrono>
#include <exception>
#include <memory>

#include "api/http.h"

namespace jarvis::http {
namespace {

Request FromHttplib(const httplib::Request& in) {
  Request out;
  out.method = in.method;
  out.path = in.path;
  out.body = in.body;
  out.remote_addr = in.remote_addr;
  out.headers.assign(in.headers.begin(), in.headers.end());
  out.params.assign(in.params.begin(), in.params.end());
  return out;
}

// What httplib's reply holds so far, for a hook that may change it.
Response FromHttplib(const httplib::Response& in) {
  Response out;
  out.status = in.status;
  out.body = in.body;
  return out;
}

void ToHttplib(const Response& in, httplib::Response& out) {
  out.status = in.status;
  if (!in.content_type.empty()) {
    out.set_content(in.body, in.content_type.c_str());
  } else {
    out.body = in.body;
  }
  for (const auto& [k, v] : in.headers) out.set_header(k.c_str(), v);
}

class HttplibServer final : public Server {
 public:
  HttplibServer(std::unique_ptr<httplib::Server> svr, const ServerConfig& config)
      : svr_(std::move(svr)) {
    // httplib's default socket options add SO_REUSEPORT, which lets a second daemon bind the
    // same port and silently take part of the requests. SO_REUSEADDR alone still allows a
    // restart while old connections linger, and a second bind fails with EADDRINUSE.
    svr_->set_socket_options([](socket_t sock) {
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    svr_->set_payload_max_length(config.max_body_bytes);
    svr_->set_read_timeout(config.read_timeout_sec, 0);
    svr_->set_write_timeout(config.write_timeout_sec, 0);
  }

  void Route(const std::string& method, const std::string& path, Handler handler) override {
    auto h = [handler = std::move(handler)](const httplib::Request& req, httplib::Response& res) {
      Response r;
      handler(FromHttplib(req), r);
      ToHttplib(r, res);
    };
    if (method == "GET") svr_->Get(path, std::move(h));
    if (method == "POST") svr_->Post(path, std::move(h));
  }

  void SetHooks(Hooks hooks) override {
    hooks_ = std::move(hooks);
    svr_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      started_ = std::chrono::steady_clock::now();
      // A request with neither Content-Length nor Transfer-Encoding has no body (RFC 9112
      // §6.3), but cpp-httplib 0.11 reads a POST's body until the peer closes: `curl -X POST`
      // without -d would wait out the read timeout and get 400. Say the body is empty. The
      // server's Request is not const; routing reads the body only after this handler.
      if (!req.has_header("Content-Length") && !req.has_header("Transfer-Encoding")) {
        const_cast<httplib::Request&>(req).set_header("Content-Length", "0");
      }
      if (!hooks_.pre_routing) return httplib::Server::HandlerResponse::Unhandled;
      Response r;
      if (!hooks_.pre_routing(FromHttplib(req), r)) {
        return httplib::Server::HandlerResponse::Unhandled;
      }
      ToHttplib(r, res);
      return httplib::Server::HandlerResponse::Handled;
    });
    svr_->set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (!hooks_.on_error) return;
      Response r = FromHttplib(res);
      hooks_.on_error(FromHttplib(req), r);
      if (r.body != res.body || r.status != res.status || !r.headers.empty()) ToHttplib(r, res);
    });
    svr_->set_exception_handler(
        [this](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
          std::string what = "unknown exception";
          try {
            std::rethrow_exception(ep);
          } catch (const std::exception& e) {
            what = e.what();
          } catch (...) {
          }
          Response r;
          r.status = 500;
          if (hooks_.on_exception) hooks_.on_exception(FromHttplib(req), r, what);
          ToHttplib(r, res);
        });
    svr_->set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      if (!hooks_.on_reply) return;
      const double ms = std::chrono::duration<double, std::milli>(
                            std::chrono::steady_clock::now() - started_)
                            .count();
      Request q;  // the log line needs no body or headers
      q.method = req.method;
      q.path = req.path;
      q.remote_addr = req.remote_addr;
      hooks_.on_reply(q, FromHttplib(res), ms);
    });
  }

  int Bind(const std::string& host, int port) override {
    if (port == 0) return svr_->bind_to_any_port(host);
    return svr_->bind_to_port(host, port) ? port : -1;
  }

  bool Listen() override { return svr_->listen_after_bind(); }
  void Stop() override { svr_->stop(); }

 private:
  std::unique_ptr<httplib::Server> svr_;
  Hooks hooks_;
  // A request is read, routed and answered on one worker thread.
  static thread_local std::chrono::steady_clock::time_point started_;
};

thread_local std::chrono::steady_clock::time_point HttplibServer::started_;

Server* Create(const ServerConfig& config, std::string* error) {
  std::unique_ptr<httplib::Server> svr;
  if (!config.tls_cert_file.empty()) {
    svr = std::make_unique<httplib::SSLServer>(config.tls_cert_file.c_str(),
                                               config.tls_key_file.c_str());
  } else {
    svr = std::make_unique<httplib::Server>();
  }
  if (!svr->is_valid()) {
    *error = "cannot set up TLS with certificate " + config.tls_cert_file + " and key " +
             config.tls_key_file;
    return nullptr;
  }
  return new HttplibServer(std::move(svr), config);
}

constexpr PluginApi kApi = {kAbi, sizeof(Request), sizeof(Response), sizeof(Hooks), &Create};

}  // namespace
}  // namespace jarvis::http

extern "C" __attribute__((visibility("default"))) const jarvis::http::PluginApi*
jarvis_http_plugin() {
  return &jarvis::http::kApi;
}
