// Request validation with the error shapes a FastAPI/pydantic client expects:
//   422 {"detail": [{"type": "...", "loc": ["body", "field"], "msg": "...", "input": ...}]}
// Every field is checked and every problem reported at once, as pydantic does. Unknown fields
// are ignored. Types are pydantic's lax mode, narrowed where lax would surprise: an integer
// field takes a JSON integer (or a float with no fraction), never a string or a boolean.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace jarvis::api {

using Json = nlohmann::json;

class Validator {
 public:
  // `where` is the first element of every loc: "body" or "query".
  explicit Validator(std::string where) : where_(std::move(where)) {}

  // Parses a request body that must be a JSON object. An empty body counts as {} when
  // `empty_ok`. Records json_invalid / model_attributes_type errors; returns the object.
  Json ParseBody(const std::string& body, bool empty_ok);

  // Fields of an object. Each returns the value (the default when absent and not required)
  // or nullopt after recording why not.
  std::optional<std::string> String(const Json& obj, const std::string& name,
                                    std::optional<std::string> fallback);
  std::optional<int64_t> Int(const Json& obj, const std::string& name,
                             std::optional<int64_t> fallback, std::optional<int64_t> ge,
                             std::optional<int64_t> le);
  std::optional<bool> Bool(const Json& obj, const std::string& name, std::optional<bool> fallback);
  // A string that must be one of `allowed`.
  std::optional<std::string> Choice(const Json& obj, const std::string& name,
                                    std::optional<std::string> fallback,
                                    std::span<const std::string_view> allowed);
  std::optional<std::string> Choice(const Json& obj, const std::string& name,
                                    std::optional<std::string> fallback,
                                    std::initializer_list<std::string_view> allowed) {
    return Choice(obj, name, std::move(fallback),
                  std::span<const std::string_view>(allowed.begin(), allowed.size()));
  }

  // Query parameters arrive as strings; these parse them like pydantic does.
  std::optional<int64_t> QueryInt(const std::optional<std::string>& raw, const std::string& name,
                                  int64_t fallback, std::optional<int64_t> ge,
                                  std::optional<int64_t> le);

  // Records an error found outside this class (e.g. libpcap rejecting a filter); `ctx`, when
  // not null, is pydantic's context object (e.g. {"max_length": 15}).
  void Fail(const std::string& field, const std::string& type, const std::string& msg,
            const Json& input, const Json& ctx = nullptr);

  bool ok() const { return errors_.empty(); }
  // True when the body itself was unusable (missing, not JSON, not an object): field errors
  // would only repeat it, so callers answer at once, as FastAPI does.
  bool body_invalid() const { return body_invalid_; }
  // {"detail": [...]}
  Json ErrorBody() const { return Json{{"detail", errors_}}; }

 private:
  std::string where_;
  Json errors_ = Json::array();
  bool body_invalid_ = false;
};

}  // namespace jarvis::api
