#include "api/http.h"

#include <strings.h>

#include <cstdlib>

#include "core/companion.h"

namespace jarvis::http {
namespace {

template <class Pairs>
const std::string* Find(const Pairs& pairs, const std::string& name, bool any_case) {
  for (const auto& [k, v] : pairs) {
    if (any_case ? ::strcasecmp(k.c_str(), name.c_str()) == 0 : k == name) return &v;
  }
  return nullptr;
}

Result<const PluginApi*> Load(const std::string& path) {
  // The server's threads run the plugin's code until the process ends: it stays loaded.
  auto entry = OpenPlugin(path, kPluginSymbol, "the HTTP server plugin");
  if (!entry) return std::unexpected(entry.error());
  auto get = reinterpret_cast<const PluginApi* (*)()>(*entry);
  const PluginApi* api = get ? get() : nullptr;
  if (api == nullptr || api->abi != kAbi || api->request_size != sizeof(Request) ||
      api->response_size != sizeof(Response) || api->hooks_size != sizeof(Hooks)) {
    return MakeError(ErrorCode::kUnavailable,
                     path + " is not the HTTP server plugin of this jarvis-capture build; "
                            "install the one built with this binary");
  }
  return api;
}

const Result<const PluginApi*>& Plugin() {
  static const Result<const PluginApi*> plugin = []() -> Result<const PluginApi*> {
    const char* env = secure_getenv("JARVIS_HTTP_PLUGIN");
    std::string looked;
    if (auto path = FirstRegularFile(CompanionCandidates(ExecutablePath(), kPluginFile, env),
                                     looked)) {
      return Load(*path);
    }
    const bool chosen = env != nullptr && *env != '\0';
    return MakeError(ErrorCode::kUnavailable,
                     std::string("the HTTP server plugin ") + kPluginFile +
                         " is not installed (looked for " + looked +
                         (chosen ? ", as JARVIS_HTTP_PLUGIN says)"
                                 : "; JARVIS_HTTP_PLUGIN may name it)"));
  }();
  return plugin;
}

}  // namespace

bool Request::has_header(const std::string& name) const {
  return Find(headers, name, true) != nullptr;
}

std::string Request::get_header_value(const std::string& name) const {
  const std::string* v = Find(headers, name, true);
  return v ? *v : std::string();
}

bool Request::has_param(const std::string& name) const {
  return Find(params, name, false) != nullptr;
}

std::string Request::get_param_value(const std::string& name) const {
  const std::string* v = Find(params, name, false);
  return v ? *v : std::string();
}

Result<std::unique_ptr<Server>> CreateServer(const ServerConfig& config) {
  const auto& plugin = Plugin();
  if (!plugin) return std::unexpected(plugin.error());
  std::string error;
  std::unique_ptr<Server> server((*plugin)->create(config, &error));
  if (!server) return MakeError(ErrorCode::kInvalidArgument, error);
  return server;
}

}  // namespace jarvis::http
