#include "core/error.h"

#include <cstring>

namespace jarvis {

std::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return "invalid argument";
    case ErrorCode::kNotFound:
      return "not found";
    case ErrorCode::kPermissionDenied:
      return "permission denied";
    case ErrorCode::kUnavailable:
      return "unavailable";
    case ErrorCode::kIoError:
      return "I/O error";
    case ErrorCode::kCorruptData:
      return "corrupt data";
    case ErrorCode::kEndOfStream:
      return "end of stream";
    case ErrorCode::kFailedPrecondition:
      return "failed precondition";
    case ErrorCode::kInternal:
      return "internal error";
  }
  return "unknown error";
}

Error Error::FromErrno(int err, std::string_view what) {
  ErrorCode code = ErrorCode::kIoError;
  switch (err) {
    case EPERM:
    case EACCES:
      code = ErrorCode::kPermissionDenied;
      break;
    case ENOENT:
    case ENODEV:
    case ENXIO:
      code = ErrorCode::kNotFound;
      break;
    case EINVAL:
      code = ErrorCode::kInvalidArgument;
      break;
    case EOPNOTSUPP:
    case EAFNOSUPPORT:
    case EPROTONOSUPPORT:
      code = ErrorCode::kUnavailable;
      break;
    default:
      break;
  }
  std::string msg(what);
  msg += ": ";
  msg += std::strerror(err);
  return Error(code, std::move(msg));
}

Error Error::WithContext(std::string_view context) && {
  std::string msg(context);
  msg += ": ";
  msg += message_;
  message_ = std::move(msg);
  return std::move(*this);
}

}  // namespace jarvis
