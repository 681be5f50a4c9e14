#include "core/companion.h"

#include <dlfcn.h>
#include <sys/stat.h>

#include <filesystem>
#include <system_error>

namespace jarvis {

std::vector<std::string> CompanionCandidates(std::string_view exe_path, std::string_view file,
                                             const char* env_override) {
  if (env_override != nullptr && *env_override != '\0') return {env_override};
  std::vector<std::string> out;
  const size_t slash = exe_path.rfind('/');
  if (slash == std::string_view::npos) return out;
  const std::string dir(exe_path.substr(0, slash));
  out.push_back(dir + "/" + std::string(file));
  out.push_back(dir + "/../lib/jarvis-capture/" + std::string(file));
  return out;
}

std::optional<std::string> FirstRegularFile(const std::vector<std::string>& candidates,
                                            std::string& looked) {
  looked.clear();
  for (const std::string& c : candidates) {
    struct stat st {};
    if (::stat(c.c_str(), &st) == 0 && S_ISREG(st.st_mode)) return c;
    looked += (looked.empty() ? "" : ", ") + c;
  }
  return std::nullopt;
}

std::string ExecutablePath() {
  std::error_code ec;
  const std::filesystem::path p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : p.string();
}

Result<void*> OpenPlugin(const std::string& path, const char* symbol, std::string_view what) {
  void* h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (h == nullptr) {
    const char* why = ::dlerror();
    return MakeError(ErrorCode::kUnavailable,
                     "cannot load " + std::string(what) + ": " + (why ? why : path));
  }
  void* entry = ::dlsym(h, symbol);
  if (entry == nullptr) {
    return MakeError(ErrorCode::kUnavailable, path + " is not " + std::string(what) + " (no " +
                                                  symbol + ")");
  }
  return entry;
}

}  // namespace jarvis
