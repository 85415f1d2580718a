#pragma once
// Error type thrown by every part of the library.
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace resnet {

/// Every failure the library reports (bad file, bad shape, bad argument) is a
/// resnet::Error whose what() is one line naming the object, the expectation
/// and what was found.
class Error : public std::runtime_error {
public:
    explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

/// "[2,3,4]" — the form shapes take in every message.
inline std::string shape_str(const std::vector<int64_t>& shape) {
    std::ostringstream s;
    s << '[';
    for (size_t i = 0; i < shape.size(); ++i) s << (i ? "," : "") << shape[i];
    s << ']';
    return s.str();
}

namespace detail {
template <class... Parts>
[[noreturn]] void fail(const Parts&... parts) {
    std::ostringstream s;
    (s << ... << parts);
    throw Error(s.str());
}
}  // namespace detail

}  // namespace resnet
