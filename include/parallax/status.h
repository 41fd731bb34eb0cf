// Status and Result<T>: how every fallible Parallax call reports failure.
//
// Errors are values. A Status is OK or carries a code plus a message that names
// what is wrong (file, node, op, input...). Result<T> holds either a T or a
// non-OK Status. Neither type throws; the library never aborts on bad input.
#ifndef PARALLAX_STATUS_H_
#define PARALLAX_STATUS_H_

#include <cassert>
#include <optional>
#include <string>
#include <utility>

namespace parallax {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,    // Caller passed something wrong (input name/shape/dtype).
  kInvalidModel,       // The model file is malformed or inconsistent.
  kUnsupported,        // Valid input that Parallax does not implement.
  kNotFound,           // A named file, input or output does not exist.
  kIoError,            // Reading or writing a file failed.
  kResourceExhausted,  // Out of memory or over the memory budget.
  kInternal,           // A Parallax bug.
};

const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "InvalidArgument: message", or "OK".
  std::string ToString() const;

  // Returns a copy whose message is "context: message". OK stays OK.
  Status WithContext(const std::string& context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

Status InvalidArgument(std::string message);
Status InvalidModel(std::string message);
Status Unsupported(std::string message);
Status NotFound(std::string message);
Status IoError(std::string message);
Status ResourceExhausted(std::string message);
Status Internal(std::string message);

// Holds a T or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}         // NOLINT: implicit by design.
  Result(Status status) : status_(std::move(status)) {  // NOLINT
    assert(!status_.ok() && "Result constructed from an OK status");
    if (status_.ok()) status_ = Internal("Result built from OK status");
  }

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace parallax

#define PX_CONCAT_INNER_(a, b) a##b
#define PX_CONCAT_(a, b) PX_CONCAT_INNER_(a, b)

// Returns from the enclosing function if `expr` yields a non-OK Status.
#define PX_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::parallax::Status px_status_ = (expr);  \
    if (!px_status_.ok()) return px_status_; \
  } while (0)

// `lhs = value of expr`, or returns its Status. lhs may declare a variable.
#define PX_ASSIGN_OR_RETURN(lhs, expr) \
  PX_ASSIGN_OR_RETURN_IMPL_(PX_CONCAT_(px_result_, __LINE__), lhs, expr)
#define PX_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()

#endif  // PARALLAX_STATUS_H_
