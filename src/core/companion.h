// Files installed with the binary (plugins, the XDP object), and where they are looked for.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace jarvis {

// Where companion file `file` of the binary at `exe_path` is looked for, in order:
// `env_override` when set and not empty (and only it), the binary's directory, then
// ../lib/jarvis-capture/ beside it (an installed tree: bin/ and lib/jarvis-capture/).
// Empty when `exe_path` has no directory and there is no override.
std::vector<std::string> CompanionCandidates(std::string_view exe_path, std::string_view file,
                                             const char* env_override);

// The first of `candidates` that is a regular file; nullopt when none is, with every one looked
// at listed in `looked` ("a, b"), for the caller's message.
std::optional<std::string> FirstRegularFile(const std::vector<std::string>& candidates,
                                            std::string& looked);

// The running binary's path (/proc/self/exe), "" when it cannot be read.
std::string ExecutablePath();

// Loads the plugin at `path` for good (never dlclose()d: its code may run until the process
// ends) and returns the address of its entry point `symbol`. kUnavailable when it cannot be
// loaded ("cannot load <what>: <dlerror>") or has no such symbol ("<path> is not <what>").
Result<void*> OpenPlugin(const std::string& path, const char* symbol, std::string_view what);

}  // namespace jarvis
