#pragma once
// Reader for the safetensors format: an 8-byte little-endian header length,
// a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {...}},
// then raw little-endian tensor bytes. Every structural fact is validated
// before any tensor data is read, so a malformed file raises resnet::Error
// naming the file and the offending entry instead of reading out of bounds.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "error.hpp"
#include "tensor.hpp"

namespace resnet {

enum class DType { F32, F16, BF16, F64 };

inline const char* dtype_name(DType d) {
    switch (d) {
        case DType::F32: return "F32";
        case DType::F16: return "F16";
        case DType::BF16: return "BF16";
        case DType::F64: return "F64";
    }
    return "?";
}

namespace detail {

inline size_t dtype_size(DType d) { return d == DType::F64 ? 8 : d == DType::F32 ? 4 : 2; }

inline float half_to_float(uint16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13);  // inf / nan
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    } else if (mant == 0) {
        bits = sign;
    } else {  // subnormal: renormalize
        exp = 113;
        while (!(mant & 0x400)) mant <<= 1, --exp;
        bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
    }
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

inline float bf16_to_float(uint16_t b) {
    const uint32_t bits = uint32_t(b) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

inline bool host_is_little_endian() {
    const uint16_t one = 1;
    unsigned char first;
    std::memcpy(&first, &one, 1);
    return first == 1;
}

}  // namespace detail

/// One open .safetensors file: its validated index and metadata. Tensor data
/// is read on demand, straight into the destination, so loading never holds
/// two copies of the weights.
class SafeTensorsFile {
public:
    struct Entry {
        DType dtype;
        Shape shape;
        uint64_t begin, end;  // byte offsets within the data section
    };

    /// Upper bound on the JSON header; real ResNet headers are ~50 KB.
    static constexpr uint64_t kMaxHeaderBytes = 100u << 20;

    /// Opens and validates the file at `path`.
    explicit SafeTensorsFile(std::string path) : path_(std::move(path)) {
        std::error_code ec;
        if (std::filesystem::is_directory(path_, ec)) fail("is a directory, not a weights file");
        auto file = std::make_unique<std::ifstream>(path_, std::ios::binary);
        if (!*file) fail("cannot open file");
        in_ = std::move(file);
        open();
    }
    /// Validates an in-memory image of a file; `name` stands for the path in messages.
    SafeTensorsFile(std::string name, std::string bytes)
        : path_(std::move(name)), in_(std::make_unique<std::istringstream>(std::move(bytes))) {
        open();
    }

    const std::string& path() const { return path_; }
    const std::map<std::string, Entry>& entries() const { return entries_; }
    const std::map<std::string, std::string>& metadata() const { return metadata_; }
    bool contains(const std::string& name) const { return entries_.count(name) != 0; }

    const Entry& entry(const std::string& name) const {
        auto it = entries_.find(name);
        if (it == entries_.end()) fail("tensor '", name, "' is missing");
        return it->second;
    }

    /// Reads tensor `name`, widening F16/BF16 (or narrowing F64) to T.
    template <class T>
    Tensor<T> read(const std::string& name) {
        Tensor<T> out;
        read_into(name, out);
        return out;
    }

    /// read(), into `out` resized to the tensor's shape (Tensor::resize: its
    /// storage is reused when large enough).
    template <class T>
    void read_into(const std::string& name, Tensor<T>& out) {
        read_into(name, out, [](const T*, int64_t) {});
    }

    /// read_into(), calling visit(p, n) on each run of n elements as soon as
    /// it is in place, while it is still in L2: runs of 256 KiB read, or of
    /// 16Ki elements converted through a small bounce buffer. Reading
    /// ResNet-50's weights (page cache warm) and checking every value
    /// (loader.hpp) took 38 ms tensor by tensor, 26.5 ms run by run; the
    /// reads alone, in runs of 64 KiB 21–24 ms, 256 KiB 16–18, 1 MiB 16–17
    /// (AMD EPYC family 26 model 2).
    template <class T, class Visit>
    void read_into(const std::string& name, Tensor<T>& out, const Visit& visit) {
        const Entry& e = entry(name);
        out.resize(e.shape);
        in_->clear();
        in_->seekg(std::streamoff(data_start_ + e.begin));
        const bool native = this->native<T>(e.dtype);  // straight into place: loading never holds two copies
        const int64_t chunk = native ? (int64_t(1) << 18) / int64_t(sizeof(T)) : int64_t(1) << 14,
                      width = int64_t(detail::dtype_size(e.dtype));
        std::vector<char> raw(native ? 0 : size_t(chunk * width));
        for (int64_t i = 0; i < out.size(); i += chunk) {
            const int64_t n = std::min(chunk, out.size() - i);
            if (native) {
                read_bytes(name, reinterpret_cast<char*>(out.data() + i), uint64_t(n * width));
            } else {
                read_bytes(name, raw.data(), uint64_t(n * width));
                convert(e.dtype, raw.data(), out.data() + i, n);
            }
            visit(out.data() + i, n);
        }
    }

    template <class... Parts>
    [[noreturn]] void fail(const Parts&... parts) const {
        detail::fail(path_, ": ", parts...);
    }

private:
    template <class T>
    static bool native(DType d) {
        return (d == DType::F32 && std::is_same<T, float>::value) || (d == DType::F64 && std::is_same<T, double>::value);
    }

    void read_bytes(const std::string& name, char* dst, uint64_t n) {
        if (!in_->read(dst, std::streamsize(n)))
            fail("tensor '", name, "': data could not be read (file truncated?)");
    }

    template <class Src, class T, class F>
    static void widen(const char* src, T* dst, int64_t n, F to_float) {
        for (int64_t i = 0; i < n; ++i) {
            Src v;
            std::memcpy(&v, src + i * int64_t(sizeof(Src)), sizeof(Src));
            dst[i] = T(to_float(v));
        }
    }

    template <class T>
    static void convert(DType dtype, const char* src, T* dst, int64_t n) {
        switch (dtype) {
            case DType::F32: return widen<float>(src, dst, n, [](float v) { return v; });
            case DType::F64: return widen<double>(src, dst, n, [](double v) { return v; });
            case DType::F16: return widen<uint16_t>(src, dst, n, detail::half_to_float);
            case DType::BF16: return widen<uint16_t>(src, dst, n, detail::bf16_to_float);
        }
    }

    void open() {
        if (!detail::host_is_little_endian()) fail("big-endian hosts are not supported");
        in_->seekg(0, std::ios::end);
        const std::streamoff end = in_->tellg();
        if (end < 0) fail("cannot determine the file size");
        const auto file_size = uint64_t(end);
        in_->seekg(0);
        unsigned char head[8];
        if (file_size < 8 || !in_->read(reinterpret_cast<char*>(head), 8))
            fail("file is ", file_size, " bytes, too short for a safetensors header");
        uint64_t header_len = 0;
        for (int i = 7; i >= 0; --i) header_len = header_len << 8 | head[i];
        if (header_len > file_size - 8 || header_len > kMaxHeaderBytes) {
            reject_other_formats(head);
            fail("header length ", header_len, " exceeds the ", file_size, "-byte file (not a safetensors file?)");
        }
        std::string header(header_len, '\0');
        in_->read(&header[0], std::streamsize(header_len));
        data_start_ = 8 + header_len;
        data_size_ = file_size - data_start_;
        parse_header(header);
    }

    /// Called once the header length proved invalid: PyTorch checkpoints are
    /// zip archives (torch.save) or raw pickles, and deserve a pointer to the converter.
    void reject_other_formats(const unsigned char* head) const {
        const bool zip = head[0] == 'P' && head[1] == 'K' && head[2] == 3 && head[3] == 4;
        const bool pickle = head[0] == 0x80 && head[1] >= 2 && head[1] <= 5;
        if (zip || pickle)
            fail("this is a PyTorch checkpoint (", zip ? "zip" : "pickle",
                 "), not safetensors; convert it first: /usr/bin/python3 weights/convert_torchvision.py --checkpoint ",
                 path_, " -o model.safetensors");
    }

    void parse_header(const std::string& text) {
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(text);
        } catch (const nlohmann::json::exception& e) {
            fail("header is not valid JSON (", e.what(), ")");
        }
        if (!j.is_object()) fail("header is not a JSON object");
        for (auto it = j.begin(); it != j.end(); ++it) {
            if (it.key() == "__metadata__")
                parse_metadata(it.value());
            else
                entries_[it.key()] = parse_entry(it.key(), it.value());
        }
        check_layout();
    }

    void parse_metadata(const nlohmann::json& m) {
        if (!m.is_object()) fail("__metadata__ is not a JSON object");
        for (auto it = m.begin(); it != m.end(); ++it)
            if (it.value().is_string()) metadata_[it.key()] = it.value().get<std::string>();
    }

    Entry parse_entry(const std::string& name, const nlohmann::json& v) const {
        if (!v.is_object()) fail("tensor '", name, "': header entry is not an object");
        const auto dt = v.find("dtype"), shape = v.find("shape"), offs = v.find("data_offsets");
        if (dt == v.end() || shape == v.end() || offs == v.end() || !dt->is_string() ||
            !shape->is_array() || !offs->is_array() || offs->size() != 2)
            fail("tensor '", name, "': header entry needs dtype, shape and data_offsets [begin,end]");
        Entry e{parse_dtype(name, dt->get<std::string>()), {}, 0, 0};
        uint64_t numel = 1;
        for (const auto& d : *shape) {
            if (!d.is_number_unsigned() || d.get<uint64_t>() > (uint64_t(1) << 40))
                fail("tensor '", name, "': shape ", shape->dump(), " has an invalid dimension");
            const uint64_t n = d.get<uint64_t>();
            if (n != 0 && numel > (uint64_t(1) << 50) / n)
                fail("tensor '", name, "': shape ", shape->dump(), " overflows");
            numel *= n;
            e.shape.push_back(int64_t(n));
        }
        for (const auto& o : *offs)
            if (!o.is_number_unsigned()) fail("tensor '", name, "': data_offsets ", offs->dump(), " are not unsigned integers");
        e.begin = (*offs)[0].get<uint64_t>();
        e.end = (*offs)[1].get<uint64_t>();
        if (e.begin > e.end || e.end > data_size_)
            fail("tensor '", name, "': data_offsets [", e.begin, ",", e.end, "] run past the ",
                 data_size_, "-byte data section (file truncated?)");
        const uint64_t expected = numel * detail::dtype_size(e.dtype);
        if (e.end - e.begin != expected)
            fail("tensor '", name, "': ", dtype_name(e.dtype), " ", shape_str(e.shape), " needs ",
                 expected, " bytes, data_offsets give ", e.end - e.begin);
        return e;
    }

    DType parse_dtype(const std::string& name, const std::string& s) const {
        for (DType d : {DType::F32, DType::F16, DType::BF16, DType::F64})
            if (s == dtype_name(d)) return d;
        fail("tensor '", name, "': dtype ", s, " is not supported (expected F32, F16, BF16 or F64)");
    }

    void check_layout() const {
        std::vector<std::pair<const std::string*, const Entry*>> byoff;
        for (const auto& kv : entries_) byoff.push_back({&kv.first, &kv.second});
        std::sort(byoff.begin(), byoff.end(),
                  [](const auto& a, const auto& b) { return a.second->begin < b.second->begin; });
        for (size_t i = 1; i < byoff.size(); ++i)
            if (byoff[i].second->begin < byoff[i - 1].second->end)
                fail("tensors '", *byoff[i - 1].first, "' and '", *byoff[i].first, "' overlap in the data section");
    }

    std::string path_;
    std::unique_ptr<std::istream> in_;
    uint64_t data_start_ = 0, data_size_ = 0;
    std::map<std::string, Entry> entries_;
    std::map<std::string, std::string> metadata_;
};

}  // namespace resnet
