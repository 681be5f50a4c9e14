// The OpenAPI 3.0 description of every endpoint the daemon serves (GET /openapi.json).
#pragma once

#include <nlohmann/json.hpp>

namespace jarvis::api {

nlohmann::json OpenApiDocument();

}  // namespace jarvis::api
