// Errors as values: Result<T> is std::expected<T, Error>, Status is Result<void>.
//
// An Error carries a code that callers branch on and a message for people. Context is
// prepended as the error travels up ("opening eth9: socket: Operation not permitted"), so the
// message a user finally reads says what was being done, not only what the kernel answered.
#pragma once

#include <cerrno>
#include <expected>
#include <string>
#include <string_view>
#include <utility>

namespace jarvis {

enum class ErrorCode {
  kInvalidArgument,   // the caller asked for something malformed (bad filter, bad flag)
  kNotFound,          // interface, file or entry does not exist
  kPermissionDenied,  // needs a privilege or capability we do not have
  kUnavailable,       // a backend or feature that cannot work on this host
  kIoError,           // a system call failed
  kCorruptData,       // input that is not what it claims (bad file header, cut-short file)
  kEndOfStream,       // a finite source (a file) has no more packets: not a failure
  kFailedPrecondition,  // the request conflicts with the current state (start while running)
  kInternal,          // a broken invariant
};

std::string_view ErrorCodeName(ErrorCode code);

class Error {
 public:
  Error(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  // An error from an errno value: "<what>: <strerror(err)>", with the code derived from err.
  static Error FromErrno(int err, std::string_view what);

  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // Prepends "<context>: " to the message and returns the error, for use while propagating.
  Error WithContext(std::string_view context) &&;

  // The request field the error is about ("filter", "timestamp_source"), when one is to blame:
  // lets an API point at it. Empty otherwise.
  const std::string& field() const { return field_; }
  Error WithField(std::string field) && {
    field_ = std::move(field);
    return std::move(*this);
  }

 private:
  ErrorCode code_;
  std::string message_;
  std::string field_;
};

template <class T>
using Result = std::expected<T, Error>;
using Status = Result<void>;

inline std::unexpected<Error> MakeError(ErrorCode code, std::string message) {
  return std::unexpected<Error>(Error(code, std::move(message)));
}

inline std::unexpected<Error> ErrnoError(int err, std::string_view what) {
  return std::unexpected<Error>(Error::FromErrno(err, what));
}

// For calls that return -errno on failure (libbpf, libxdp and friends): wraps rc once.
inline Status NegErrno(int rc, std::string_view what) {
  if (rc < 0) return ErrnoError(-rc, what);
  return {};
}

// Adds context to the error of a Result, leaving a value untouched.
template <class T>
Result<T> WithContext(Result<T>&& r, std::string_view context) {
  if (r) return std::move(r);
  return std::unexpected<Error>(std::move(r.error()).WithContext(context));
}

}  // namespace jarvis
