#pragma once
// NumPy .npy files of float32 tensors: read_npy() and write_npy().
//   Tensor<float> x = resnet::read_npy("batch.npy");   // '<f4', C order, any rank
//   resnet::write_npy("logits.npy", logits);           // written as '<f4'
// Format: "\x93NUMPY", version byte pair, header length (2 bytes LE in v1.0,
// 4 in v2.0/3.0), a Python dict literal {'descr', 'fortran_order', 'shape'}
// padded with spaces and '\n', then the raw little-endian data.
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <system_error>
#include <vector>

#include "error.hpp"
#include "tensor.hpp"

namespace resnet {

namespace detail {

/// The whole content of a regular file. Throws "<path>: <reason>" for a missing
/// file, a directory, an empty file, or one above `max_bytes`.
inline std::vector<uint8_t> read_file_bytes(const std::string& path,
                                            uint64_t max_bytes = std::numeric_limits<uint64_t>::max()) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::file_status st = fs::status(path, ec);
    if (ec || !fs::exists(st)) fail(path, ": cannot open: ", ec ? ec.message() : "no such file or directory");
    if (fs::is_directory(st)) fail(path, ": is a directory, not a file");
    const uint64_t size = fs::file_size(path, ec);
    if (ec) fail(path, ": cannot read: ", ec.message());
    if (size == 0) fail(path, ": empty file (0 bytes)");
    if (size > max_bytes) fail(path, ": file is ", size, " bytes, above the limit of ", max_bytes);
    std::vector<uint8_t> bytes(size_t(size), 0);
    std::ifstream in(path, std::ios::binary);
    if (!in.read(reinterpret_cast<char*>(bytes.data()), std::streamsize(size)))
        fail(path, ": cannot read: ", std::strerror(errno));
    return bytes;
}

constexpr char kNpyMagic[] = "\x93NUMPY";  // 6 bytes

inline bool is_npy(const std::vector<uint8_t>& bytes) {
    return bytes.size() >= 6 && std::memcmp(bytes.data(), kNpyMagic, 6) == 0;
}

/// Value of `key` in an .npy header dict: the text after "'key':" up to the
/// next top-level ',' or '}' (a shape tuple's commas are inside parentheses).
inline std::string npy_field(const std::string& header, const std::string& key, const std::string& name) {
    const std::string tag = "'" + key + "':";
    const size_t at = header.find(tag);
    if (at == std::string::npos) fail(name, ": .npy header has no '", key, "' entry: ", header);
    size_t i = at + tag.size(), depth = 0;
    const size_t begin = i;
    for (; i < header.size(); ++i) {
        const char c = header[i];
        if (c == '(') ++depth;
        if (c == ')' && depth) --depth;
        if (depth == 0 && (c == ',' || c == '}')) break;
    }
    const std::string value = header.substr(begin, i - begin);
    const size_t first = value.find_first_not_of(' ');
    return first == std::string::npos ? std::string() : value.substr(first, value.find_last_not_of(' ') - first + 1);
}

/// "(2, 3, 4)" / "(5,)" / "()" → the dimensions.
inline Shape parse_npy_shape(const std::string& text, const std::string& name) {
    if (text.size() < 2 || text.front() != '(' || text.back() != ')')
        fail(name, ": .npy shape ", text, " is not a tuple");
    Shape shape;
    std::string item;
    for (size_t i = 1; i < text.size(); ++i) {
        const char c = text[i];
        if (c != ',' && c != ')') {
            if (c != ' ') item += c;
            continue;
        }
        if (item.empty()) continue;  // "(5,)" and "()"
        if (item.find_first_not_of("0123456789") != std::string::npos || item.size() > 12)
            fail(name, ": .npy shape ", text, " has an invalid dimension '", item, "'");
        shape.push_back(std::stoll(item));
        item.clear();
    }
    return shape;
}

/// The unsigned integer in `bytes` (≤ 4) bytes at p, little-endian
/// (read_le) or big-endian (read_be); the file parsers share them.
inline uint32_t read_le(const uint8_t* p, int bytes) {
    uint32_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = v << 8 | p[i];
    return v;
}

inline uint32_t read_be(const uint8_t* p, int bytes) {
    uint32_t v = 0;
    for (int i = 0; i < bytes; ++i) v = v << 8 | p[i];
    return v;
}

}  // namespace detail

/// Parses an in-memory .npy file holding little-endian float32 ('<f4') in C
/// order; returns a tensor of the file's shape, converted to T. `name` labels
/// errors: "<name>: .npy dtype '<f8' is not supported (expected float32 '<f4')",
/// wrong order, or a data size that disagrees with the shape.
template <class T = float>
Tensor<T> parse_npy(const std::vector<uint8_t>& bytes, const std::string& name) {
    if (!detail::is_npy(bytes) || bytes.size() < 10) detail::fail(name, ": not a .npy file (no \\x93NUMPY magic)");
    const int major = bytes[6], len_bytes = major == 1 ? 2 : 4;
    if (major < 1 || major > 3) detail::fail(name, ": .npy version ", major, " is not supported (expected 1, 2 or 3)");
    if (bytes.size() < size_t(8 + len_bytes)) detail::fail(name, ": truncated .npy header");
    const size_t header_len = detail::read_le(&bytes[8], len_bytes), data_at = 8 + size_t(len_bytes) + header_len;
    if (data_at > bytes.size()) detail::fail(name, ": .npy header of ", header_len, " bytes runs past the end of the file");
    const std::string header(bytes.begin() + 8 + len_bytes, bytes.begin() + ptrdiff_t(data_at));
    const std::string descr = detail::npy_field(header, "descr", name);
    if (descr != "'<f4'")
        detail::fail(name, ": .npy dtype ", descr, " is not supported (expected float32 '<f4')");
    if (detail::npy_field(header, "fortran_order", name) != "False")
        detail::fail(name, ": .npy array is in Fortran order (expected C order; use numpy.ascontiguousarray)");
    const Shape shape = detail::parse_npy_shape(detail::npy_field(header, "shape", name), name);
    const int64_t numel = detail::checked_numel(shape);
    const uint64_t data_bytes = bytes.size() - data_at;
    if (numel > int64_t(data_bytes / 4) || data_bytes != uint64_t(numel) * 4)
        detail::fail(name, ": .npy shape ", shape_str(shape), " needs ", uint64_t(numel) * 4, " bytes of float32 data, the file has ",
             data_bytes);
    Tensor<T> out(shape);
    for (int64_t i = 0; i < numel; ++i) {
        const uint32_t bits = detail::read_le(&bytes[data_at + size_t(i) * 4], 4);
        float v;
        std::memcpy(&v, &bits, 4);
        out[i] = T(v);
    }
    return out;
}

/// Reads a float32 C-order .npy file (see parse_npy) → tensor of its shape.
template <class T = float>
Tensor<T> read_npy(const std::string& path) {
    return parse_npy<T>(detail::read_file_bytes(path), path);
}

/// Writes `t` as a version 1.0 .npy file of little-endian float32 ('<f4'),
/// C order, shape t.shape(). Throws "<path>: cannot write: <reason>".
template <class T>
void write_npy(const std::string& path, const Tensor<T>& t) {
    std::string shape;  // Python tuple syntax: "(2, 3)", "(5,)", "()"
    for (int64_t d : t.shape()) shape += (shape.empty() ? "" : ", ") + std::to_string(d);
    shape = "(" + shape + (t.rank() == 1 ? ",)" : ")");
    std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
    const size_t total = (10 + header.size() + 1 + 63) / 64 * 64;  // magic..header+'\n', 64-byte aligned
    header.append(total - 10 - header.size() - 1, ' ').push_back('\n');
    std::string out(detail::kNpyMagic, 6);
    out += '\x01', out += '\x00';
    out += char(header.size() & 0xff), out += char(header.size() >> 8);
    out += header;
    for (T v : t) {
        const float f = float(v);
        uint32_t bits;
        std::memcpy(&bits, &f, 4);
        for (int i = 0; i < 4; ++i) out += char((bits >> (8 * i)) & 0xff);
    }
    std::ofstream file(path, std::ios::binary | std::ios::trunc);
    if (!file.write(out.data(), std::streamsize(out.size())) || !file.flush())
        detail::fail(path, ": cannot write: ", std::strerror(errno));
}

}  // namespace resnet
