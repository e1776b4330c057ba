// Errors are values: every operation that depends on input returns Status or Result<T>.
#pragma once
#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace edgeglm {

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status ok() { return Status(); }
  static Status error(std::string message) { return Status(std::move(message), false); }

  bool is_ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const std::string& message() const { return message_; }

  // Prefixes the message with context ("file.gguf: " + message), keeping the status kind.
  Status with_context(const std::string& context) const {
    return ok_ ? *this : Status(context + ": " + message_, false);
  }

 private:
  Status(std::string message, bool ok) : message_(std::move(message)), ok_(ok) {}
  std::string message_;
  bool ok_ = true;
};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    assert(!std::get<Status>(v_).is_ok() && "Result constructed from an ok Status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }
  Status status() const { return ok() ? Status::ok() : std::get<Status>(v_); }

  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace edgeglm

#define EG_CONCAT_INNER(a, b) a##b
#define EG_CONCAT(a, b) EG_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function if `expr` failed.
#define EG_TRY(expr)                           \
  do {                                         \
    ::edgeglm::Status eg_status_ = (expr);     \
    if (!eg_status_.is_ok()) return eg_status_; \
  } while (0)

// `EG_ASSIGN_OR_RETURN(auto x, make_x());` declares x from a Result or returns its Status.
#define EG_ASSIGN_OR_RETURN(lhs, expr)                                  \
  auto EG_CONCAT(eg_result_, __LINE__) = (expr);                        \
  if (!EG_CONCAT(eg_result_, __LINE__).ok())                            \
    return EG_CONCAT(eg_result_, __LINE__).status();                    \
  lhs = std::move(EG_CONCAT(eg_result_, __LINE__)).value()
