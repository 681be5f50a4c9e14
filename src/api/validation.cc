#include "api/validation.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

namespace jarvis::api {

void Validator::Fail(const std::string& field, const std::string& type, const std::string& msg,
                     const Json& input, const Json& ctx) {
  Json e{{"type", type}, {"loc", Json::array({where_, field})}, {"msg", msg}, {"input", input}};
  if (!ctx.is_null()) e["ctx"] = ctx;
  errors_.push_back(std::move(e));
}

Json Validator::ParseBody(const std::string& body, bool empty_ok) {
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) {
    if (empty_ok) return Json::object();
    body_invalid_ = true;  // FastAPI reports the missing body alone, not each field
    errors_.push_back(Json{{"type", "missing"},
                           {"loc", Json::array({where_})},
                           {"msg", "Field required"},
                           {"input", nullptr}});
    return Json::object();
  }
  Json parsed = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    body_invalid_ = true;
    errors_.push_back(Json{{"type", "json_invalid"},
                           {"loc", Json::array({where_, 0})},
                           {"msg", "JSON decode error"},
                           {"input", Json::object()},
                           {"ctx", {{"error", "Expecting value"}}}});
    return Json::object();
  }
  if (!parsed.is_object()) {
    body_invalid_ = true;
    errors_.push_back(Json{{"type", "model_attributes_type"},
                           {"loc", Json::array({where_})},
                           {"msg", "Input should be a valid dictionary or object to extract "
                                   "fields from"},
                           {"input", parsed}});
    return Json::object();
  }
  return parsed;
}

std::optional<std::string> Validator::String(const Json& obj, const std::string& name,
                                             std::optional<std::string> fallback) {
  auto it = obj.find(name);
  if (it == obj.end() || (it->is_null() && fallback)) {
    if (!fallback) Fail(name, "missing", "Field required", obj);
    return fallback;
  }
  if (!it->is_string()) {
    Fail(name, "string_type", "Input should be a valid string", *it);
    return std::nullopt;
  }
  return it->get<std::string>();
}

std::optional<int64_t> Validator::Int(const Json& obj, const std::string& name,
                                      std::optional<int64_t> fallback, std::optional<int64_t> ge,
                                      std::optional<int64_t> le) {
  auto it = obj.find(name);
  if (it == obj.end()) {
    if (!fallback) Fail(name, "missing", "Field required", obj);
    return fallback;
  }
  int64_t v;
  if (it->is_number_integer()) {
    if (it->is_number_unsigned() && it->get<uint64_t>() > INT64_MAX) {
      Fail(name, "int_type", "Input should be a valid integer", *it);
      return std::nullopt;
    }
    v = it->get<int64_t>();
  } else if (it->is_number_float()) {
    const double d = it->get<double>();
    if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9e18) {
      Fail(name, "int_from_float", "Input should be a valid integer, got a number with a "
                                   "fractional part", *it);
      return std::nullopt;
    }
    v = static_cast<int64_t>(d);
  } else {
    Fail(name, "int_type", "Input should be a valid integer", *it);
    return std::nullopt;
  }
  if (ge && v < *ge) {
    Json e{{"type", "greater_than_equal"},
           {"loc", Json::array({where_, name})},
           {"msg", "Input should be greater than or equal to " + std::to_string(*ge)},
           {"input", *it},
           {"ctx", {{"ge", *ge}}}};
    errors_.push_back(std::move(e));
    return std::nullopt;
  }
  if (le && v > *le) {
    Json e{{"type", "less_than_equal"},
           {"loc", Json::array({where_, name})},
           {"msg", "Input should be less than or equal to " + std::to_string(*le)},
           {"input", *it},
           {"ctx", {{"le", *le}}}};
    errors_.push_back(std::move(e));
    return std::nullopt;
  }
  return v;
}

std::optional<bool> Validator::Bool(const Json& obj, const std::string& name,
                                    std::optional<bool> fallback) {
  auto it = obj.find(name);
  if (it == obj.end()) {
    if (!fallback) Fail(name, "missing", "Field required", obj);
    return fallback;
  }
  if (!it->is_boolean()) {
    Fail(name, "bool_type", "Input should be a valid boolean", *it);
    return std::nullopt;
  }
  return it->get<bool>();
}

std::optional<std::string> Validator::Choice(const Json& obj, const std::string& name,
                                             std::optional<std::string> fallback,
                                             std::span<const std::string_view> allowed) {
  auto v = String(obj, name, std::move(fallback));
  if (!v) return std::nullopt;
  for (std::string_view a : allowed) {
    if (*v == a) return v;
  }
  std::string list;
  size_t i = 0;
  for (std::string_view a : allowed) {
    if (i > 0) list += (i + 1 == allowed.size()) ? " or " : ", ";
    list += "'" + std::string(a) + "'";
    ++i;
  }
  Fail(name, "literal_error", "Input should be " + list, *v);
  return std::nullopt;
}

std::optional<int64_t> Validator::QueryInt(const std::optional<std::string>& raw,
                                           const std::string& name, int64_t fallback,
                                           std::optional<int64_t> ge, std::optional<int64_t> le) {
  if (!raw) return fallback;
  const std::string& s = *raw;
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (s.empty() || end == s.c_str() || *end != '\0' || errno == ERANGE) {
    Fail(name, "int_parsing", "Input should be a valid integer, unable to parse string as an "
                              "integer", s);
    return std::nullopt;
  }
  Json wrapper{{name, v}};
  return Int(wrapper, name, std::nullopt, ge, le);
}

}  // namespace jarvis::api
