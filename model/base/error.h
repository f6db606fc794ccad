#pragma once
// One error type for everything a user or a file can get wrong (README.md, "Conventions").

#include <sstream>
#include <stdexcept>
#include <string>

namespace ccc {

/// Thrown for bad input (files, configs, arguments). Only main() turns it into an exit code.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
template <typename... Args>
std::string cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace ccc

/// Checks a condition that depends on input; throws ccc::Error with the concatenated message.
#define CCC_CHECK(cond, ...)                                  \
  do {                                                        \
    if (!(cond)) throw ::ccc::Error(::ccc::detail::cat(__VA_ARGS__)); \
  } while (0)

#define CCC_FAIL(...) throw ::ccc::Error(::ccc::detail::cat(__VA_ARGS__))
