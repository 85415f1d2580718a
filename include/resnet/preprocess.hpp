#pragma once
// Eval-time preprocessing equal, bit for bit, to what the weights' framework
// does to a PIL RGB image:
//  - torchvision: Resize(resize) → CenterCrop(crop) → ToTensor() → Normalize(mean, std);
//  - Keras: keras.utils.load_img(path, target_size=(crop, crop)) (PIL resize to
//    exactly crop×crop, NEAREST by default, no crop) → preprocess_input in
//    "caffe" mode (RGB→BGR, minus the ImageNet mean in 0..255) or "tf" mode
//    (x/127.5 − 1).
// Bilinear resizing reproduces Pillow 9.4's ImagingResample (triangle filter
// widened by the downscale factor, i.e. antialiased; weights in 22-bit fixed
// point; horizontal pass first, rounded to uint8 before the vertical pass);
// nearest reproduces its ImagingScaleAffine (source pixel int((x + ½)·in/out)
// with the position accumulated in double as Pillow does). Normalization runs
// in T, as torch and numpy do in float32.
//   resnet::Tensor<float> x = resnet::preprocess<float>(image, resnet::Preprocess::from_metadata(model.metadata()));
#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "error.hpp"
#include "tensor.hpp"

namespace resnet {

/// An 8-bit RGB image: `height` rows of `width` pixels, top row first, each
/// pixel R,G,B — what PIL holds after Image.convert("RGB").
struct Image {
    int width = 0, height = 0;
    std::vector<uint8_t> rgb;  ///< width·height·3 bytes

    const uint8_t* pixel(int y, int x) const { return rgb.data() + (size_t(y) * size_t(width) + size_t(x)) * 3; }
    uint8_t* pixel(int y, int x) { return rgb.data() + (size_t(y) * size_t(width) + size_t(x)) * 3; }

    /// A black w×h image.
    static Image blank(int w, int h) { return {w, h, std::vector<uint8_t>(size_t(w) * size_t(h) * 3)}; }
};

enum class Interpolation { Bilinear, Nearest };

/// ShorterSide: torchvision's Resize(resize) then CenterCrop(crop).
/// Stretch: Keras' load_img(target_size=(crop, crop)): crop×crop, aspect ratio not kept.
enum class ResizeMode { ShorterSide, Stretch };

/// The eval transform's parameters. Output channel c is
///   (v / scale − mean[c]) / std[c]
/// where v is the R, G or B value (B, G, R when `bgr`). Defaults are
/// torchvision's ResNet IMAGENET1K_V1 preset (256 → 224); imagenet_v2() is
/// IMAGENET1K_V2's (232 → 224); keras_caffe() and keras_tf() are Keras'.
struct Preprocess {
    ResizeMode mode = ResizeMode::ShorterSide;
    int resize = 256;  ///< ShorterSide: the shorter side becomes this many pixels
    int crop = 224;    ///< ShorterSide: side of the square taken from the middle; Stretch: output side
    Interpolation interpolation = Interpolation::Bilinear;
    double scale = 255;                                 ///< divides the 8-bit values first
    bool bgr = false;                                   ///< output channels in B, G, R order
    std::array<double, 3> mean{{0.485, 0.456, 0.406}};  ///< Normalize, per output channel
    std::array<double, 3> std{{0.229, 0.224, 0.225}};

    static constexpr int kMaxSide = 1 << 15;  ///< bound on resize and crop (the model's input bound)

    static Preprocess imagenet_v1() { return {}; }
    static Preprocess imagenet_v2() {
        Preprocess p;
        p.resize = 232;
        return p;
    }
    /// keras.applications ResNet50/101/152: load_img(target_size=(size, size))
    /// and preprocess_input's "caffe" mode.
    static Preprocess keras_caffe(int size = 224) {
        return {ResizeMode::Stretch, size, size, Interpolation::Nearest, 1, true, {{103.939, 116.779, 123.68}}, {{1, 1, 1}}};
    }
    /// keras.applications ResNet50V2/101V2/152V2: preprocess_input's "tf" mode.
    static Preprocess keras_tf(int size = 224) {
        return {ResizeMode::Stretch, size, size, Interpolation::Nearest, 127.5, false, {{1, 1, 1}}, {{1, 1, 1}}};
    }

    /// The preset stored in a weights file by weights/convert_torchvision.py
    /// or convert_keras.py: keys resize_mode (shorter_side or stretch),
    /// resize, crop, interpolation (bilinear or nearest), scale,
    /// channel_order (rgb or bgr), mean and std ("a,b,c", per output
    /// channel). Missing keys keep the torchvision V1 defaults; malformed ones
    /// throw naming the key and the value.
    static Preprocess from_metadata(const std::map<std::string, std::string>& metadata);

    /// Throws unless 1 ≤ resize, crop ≤ kMaxSide, scale is finite and
    /// nonzero, and so is every std.
    void validate() const {
        if (resize < 1 || resize > kMaxSide || crop < 1 || crop > kMaxSide)
            detail::fail("preprocess: resize ", resize, " and crop ", crop, " must be within [1, ", kMaxSide, "]");
        if (!std::isfinite(scale) || scale == 0) detail::fail("preprocess: scale ", scale, " must be finite and nonzero");
        for (int c = 0; c < 3; ++c)
            if (!std::isfinite(mean[size_t(c)]) || !std::isfinite(std[size_t(c)]) || std[size_t(c)] == 0)
                detail::fail("preprocess: mean ", mean[size_t(c)], " / std ", std[size_t(c)], " of channel ", c,
                             " must be finite with std != 0");
    }
};

namespace detail {

constexpr int kResampleBits = 22;  // Pillow's PRECISION_BITS: 32 - 8 bits of pixel - 2 bits of headroom

/// Fixed-point bilinear taps for outputs [begin, end) of resampling an axis of
/// in_size pixels to out_size (Pillow's precompute_coeffs with box [0, in_size],
/// then normalize_coeffs_8bpc). Output begin+i blends inputs first[i] ..
/// first[i]+count[i]-1 with weights weight[i·stride ...] summing to ≈ 2^22.
struct Taps {
    std::vector<int> first, count;
    std::vector<int32_t> weight;
    int stride = 0;

    int inputs_begin() const { return first.front(); }                ///< first input any output reads
    int inputs_end() const { return first.back() + count.back(); }    ///< one past the last
};

inline Taps bilinear_taps(int in_size, int out_size, int begin, int end) {
    const double scale = double(in_size) / out_size;
    const double filterscale = std::max(scale, 1.0);  // widen the triangle when shrinking: antialiasing
    const double support = 1.0 * filterscale, inv = 1.0 / filterscale;
    Taps t;
    t.stride = int(std::ceil(support)) * 2 + 1;
    t.weight.assign(size_t(end - begin) * size_t(t.stride), 0);
    std::vector<double> w(size_t(t.stride));
    for (int o = begin; o < end; ++o) {
        const double center = (o + 0.5) * scale;
        const int lo = std::max(0, int(center - support + 0.5));  // int(): truncation, as Pillow's C cast
        const int hi = std::min(in_size, int(center + support + 0.5));
        double sum = 0;
        for (int x = lo; x < hi; ++x) {
            const double d = std::abs((double(x) - center + 0.5) * inv);
            sum += w[size_t(x - lo)] = d < 1.0 ? 1.0 - d : 0.0;
        }
        int32_t* k = &t.weight[size_t(o - begin) * size_t(t.stride)];
        for (int x = lo; x < hi; ++x)  // weights are >= 0, which Pillow rounds as int(0.5 + w * 2^22)
            k[x - lo] = int32_t(0.5 + (sum != 0.0 ? w[size_t(x - lo)] / sum : w[size_t(x - lo)]) * (1 << kResampleBits));
        t.first.push_back(lo);
        t.count.push_back(hi - lo);
    }
    return t;
}

/// One output pixel of a pass: dst[c] = clip8((2^21 + Σ_k weight[k]·src[k·step + c]) >> 22), c = R,G,B.
/// The channels are spelled out, not looped over: GCC 12 unrolls a loop of
/// three only at -O3, and at -O2 this pass took 1.4–1.9× as long (bench/stages).
inline void blend(const uint8_t* src, ptrdiff_t step, const int32_t* weight, int taps, uint8_t* dst) {
    int32_t r = 1 << (kResampleBits - 1), g = r, b = r;
    for (int k = 0; k < taps; ++k, src += step) {
        r += int32_t(src[0]) * weight[k];
        g += int32_t(src[1]) * weight[k];
        b += int32_t(src[2]) * weight[k];
    }
    const auto clip8 = [](int32_t v) { return uint8_t(std::clamp(v >> kResampleBits, 0, 255)); };
    dst[0] = clip8(r);
    dst[1] = clip8(g);
    dst[2] = clip8(b);
}

/// Horizontal pass over rows [row_begin, row_end) of `in`: a (row_end - row_begin)-row
/// image whose pixel (y, i) blends row row_begin+y at the taps of output i.
inline Image resample_x(const Image& in, int row_begin, int row_end, const Taps& t) {
    Image out = Image::blank(int(t.first.size()), row_end - row_begin);
    for (int y = 0; y < out.height; ++y)
        for (int i = 0; i < out.width; ++i)
            blend(in.pixel(row_begin + y, t.first[size_t(i)]), 3, &t.weight[size_t(i) * size_t(t.stride)],
                  t.count[size_t(i)], out.pixel(y, i));
    return out;
}

/// Vertical pass: pixel (i, x) blends column x of `in` at the taps of output i,
/// where row r of `in` is input row r + row_offset.
inline Image resample_y(const Image& in, const Taps& t, int row_offset) {
    Image out = Image::blank(in.width, int(t.first.size()));
    for (int i = 0; i < out.height; ++i)
        for (int x = 0; x < out.width; ++x)
            blend(in.pixel(t.first[size_t(i)] - row_offset, x), ptrdiff_t(in.width) * 3,
                  &t.weight[size_t(i) * size_t(t.stride)], t.count[size_t(i)], out.pixel(i, x));
    return out;
}

/// The w×h block of `in` whose top-left pixel is (y0, x0); the block lies inside `in`.
inline Image copy_block(const Image& in, int x0, int y0, int w, int h) {
    Image out = Image::blank(w, h);
    for (int y = 0; y < h; ++y) std::copy_n(in.pixel(y0 + y, x0), size_t(w) * 3, out.pixel(y, 0));
    return out;
}

/// Offset of torchvision's CenterCrop window along an axis of `size` pixels:
/// int(round((size - crop) / 2.0)) with Python's round-half-to-even, or, when
/// the crop is larger, minus the left/top zero padding (crop - size) // 2.
inline int center_crop_offset(int size, int crop) {
    if (crop > size) return -((crop - size) / 2);
    const int d = size - crop, half = d / 2;
    return half + ((d % 2 == 1 && half % 2 == 1) ? 1 : 0);  // x.5 goes to the even neighbour
}

/// `text` as a base-10 number of type V, or false if it is not exactly one.
template <class V>
bool parse_number(const std::string& text, V& value) {
    const char *begin = text.data(), *end = begin + text.size();
    while (begin != end && *begin == ' ') ++begin;
    const auto r = std::from_chars(begin, end, value);
    return r.ec == std::errc() && r.ptr == end && begin != end;
}

inline int parse_metadata_int(const std::map<std::string, std::string>& m, const std::string& key, int fallback) {
    const auto it = m.find(key);
    int v = fallback;
    if (it != m.end() && !parse_number(it->second, v))
        fail("weights metadata '", key, "': expected an integer, got '", it->second, "'");
    return v;
}

/// "a,b,c" → `count` (3, or 1: "a") comma-separated numbers (spaces after
/// the commas allowed).
inline std::array<double, 3> parse_metadata_rgb(const std::map<std::string, std::string>& m, const std::string& key,
                                                const std::array<double, 3>& fallback, size_t count = 3) {
    const auto it = m.find(key);
    if (it == m.end()) return fallback;
    const std::string& s = it->second;
    std::array<double, 3> v{};
    size_t at = 0;
    for (size_t c = 0; c < count; ++c) {
        const size_t comma = c + 1 < count ? s.find(',', at) : s.size();
        if (comma == std::string::npos || !parse_number(s.substr(at, comma - at), v[c]))
            fail("weights metadata '", key, "': expected ", count == 3 ? "three comma-separated numbers" : "a number",
                 ", got '", s, "'");
        at = comma + 1;
    }
    return v;
}

}  // namespace detail

inline Preprocess Preprocess::from_metadata(const std::map<std::string, std::string>& metadata) {
    Preprocess p;
    const auto choice = [&](const char* key, const char* a, const char* b, bool fallback) {
        const auto it = metadata.find(key);
        if (it == metadata.end()) return fallback;
        if (it->second != a && it->second != b)
            detail::fail("weights metadata '", key, "': expected ", a, " or ", b, ", got '", it->second, "'");
        return it->second == b;
    };
    p.mode = choice("resize_mode", "shorter_side", "stretch", false) ? ResizeMode::Stretch : ResizeMode::ShorterSide;
    p.interpolation = choice("interpolation", "bilinear", "nearest", false) ? Interpolation::Nearest
                                                                             : Interpolation::Bilinear;
    p.bgr = choice("channel_order", "rgb", "bgr", false);
    p.resize = detail::parse_metadata_int(metadata, "resize", p.resize);
    p.crop = detail::parse_metadata_int(metadata, "crop", p.crop);
    p.scale = detail::parse_metadata_rgb(metadata, "scale", {p.scale, 0, 0}, 1)[0];
    p.mean = detail::parse_metadata_rgb(metadata, "mean", p.mean);
    p.std = detail::parse_metadata_rgb(metadata, "std", p.std);
    p.validate();
    return p;
}

/// (width, height) after torchvision 0.14's Resize(size) of a w×h image: the
/// shorter side becomes `size`, the longer int(size·long/short) (truncated, as
/// _compute_resized_output_size does). Throws if the longer side would exceed 2^30.
inline std::pair<int, int> resized_size(int w, int h, int size) {
    if (w < 1 || h < 1 || size < 1) detail::fail("resize: cannot scale a ", w, "x", h, " image to shorter side ", size);
    const int64_t shorter = std::min(w, h), longer = std::max(w, h);
    const double scaled = double(int64_t(size) * longer) / double(shorter);  // Python's int * int / int
    if (scaled >= double(1 << 30))
        detail::fail("resize: a ", w, "x", h, " image scaled to shorter side ", size, " would be ", scaled,
                     " pixels long, above the limit of 2^30");
    return w <= h ? std::make_pair(size, int(scaled)) : std::make_pair(int(scaled), size);
}

namespace detail {

/// Source index of outputs [begin, end) of Pillow's NEAREST resize of an axis
/// of in_size pixels to out_size (ImagingScaleAffine): position
/// (½ + o)·in/out, accumulated in double from o = 0 as Pillow does,
/// truncated; -1 where rounding carries it past the last pixel (Pillow then
/// leaves the output pixel black).
inline std::vector<int> nearest_taps(int in_size, int out_size, int begin, int end) {
    const double step = double(in_size) / out_size;
    double pos = step * 0.5;
    std::vector<int> index;
    for (int o = 0; o < end; ++o, pos += step)
        if (o >= begin) index.push_back(int(pos) < in_size ? int(pos) : -1);
    return index;
}

inline Image nearest_window(const Image& img, int out_w, int out_h, int x0, int y0, int w, int h) {
    const std::vector<int> xs = nearest_taps(img.width, out_w, x0, x0 + w), ys = nearest_taps(img.height, out_h, y0, y0 + h);
    Image out = Image::blank(w, h);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
            if (ys[size_t(y)] >= 0 && xs[size_t(x)] >= 0)
                std::copy_n(img.pixel(ys[size_t(y)], xs[size_t(x)]), 3, out.pixel(y, x));
    return out;
}

}  // namespace detail

/// The w×h window at (x0, y0) of PIL's img.resize((out_w, out_h), filter)
/// for filter BILINEAR or NEAREST, bit for bit, computing only what the
/// window needs. An axis whose size does not change is copied, not
/// filtered, as Pillow does. Throws unless the window lies inside
/// out_w×out_h and the image is non-empty.
inline Image resize_window(const Image& img, int out_w, int out_h, int x0, int y0, int w, int h,
                           Interpolation filter = Interpolation::Bilinear) {
    if (img.width < 1 || img.height < 1 || img.rgb.size() != size_t(img.width) * size_t(img.height) * 3)
        detail::fail("resize: image ", img.width, "x", img.height, " has ", img.rgb.size(), " bytes, expected ",
                     int64_t(img.width) * img.height * 3);
    if (w < 1 || h < 1 || x0 < 0 || y0 < 0 || int64_t(x0) + w > out_w || int64_t(y0) + h > out_h)
        detail::fail("resize: window ", w, "x", h, " at (", x0, ",", y0, ") is not inside the ", out_w, "x", out_h,
                     " output");
    if (filter == Interpolation::Nearest) return detail::nearest_window(img, out_w, out_h, x0, y0, w, h);
    const bool scale_x = out_w != img.width, scale_y = out_h != img.height;
    detail::Taps ty;
    int rows_begin = y0, rows_end = y0 + h;  // input rows the vertical pass reads
    if (scale_y) {
        ty = detail::bilinear_taps(img.height, out_h, y0, y0 + h);
        rows_begin = ty.inputs_begin(), rows_end = ty.inputs_end();
    }
    Image rows = scale_x ? detail::resample_x(img, rows_begin, rows_end, detail::bilinear_taps(img.width, out_w, x0, x0 + w))
                         : detail::copy_block(img, x0, rows_begin, w, rows_end - rows_begin);
    return scale_y ? detail::resample_y(rows, ty, rows_begin) : rows;
}

/// PIL's img.resize((w, h), filter), bit for bit: a w×h image.
inline Image resize(const Image& img, int w, int h, Interpolation filter = Interpolation::Bilinear) {
    return resize_window(img, w, h, 0, 0, w, h, filter);
}

/// The framework's eval transform (see Preprocess) on an RGB image: a
/// 1×3×crop×crop tensor. ShorterSide: torchvision's Resize → CenterCrop,
/// where a crop larger than the resized image is zero-padded (v = 0) as
/// torchvision pads, and only the cropped part is ever resized. Stretch:
/// the whole image resized to crop×crop.
template <class T = float>
Tensor<T> preprocess(const Image& img, const Preprocess& p = {}) {
    p.validate();
    const bool stretch = p.mode == ResizeMode::Stretch;
    const auto [rw, rh] = stretch ? std::make_pair(p.crop, p.crop) : resized_size(img.width, img.height, p.resize);
    const int left = detail::center_crop_offset(rw, p.crop), top = detail::center_crop_offset(rh, p.crop);
    const int x0 = std::max(left, 0), y0 = std::max(top, 0);
    const Image win = resize_window(img, rw, rh, x0, y0, std::min(rw, left + p.crop) - x0,
                                    std::min(rh, top + p.crop) - y0, p.interpolation);
    Tensor<T> out({1, 3, p.crop, p.crop});
    for (int c = 0; c < 3; ++c) {
        const T mu = T(p.mean[size_t(c)]), sigma = T(p.std[size_t(c)]), scale = T(p.scale);
        const int src = p.bgr ? 2 - c : c;
        const auto normalize = [=](uint8_t v) { return (T(v) / scale - mu) / sigma; };
        T* plane = out.data() + int64_t(c) * p.crop * p.crop;
        std::fill_n(plane, int64_t(p.crop) * p.crop, normalize(0));
        for (int y = 0; y < win.height; ++y)
            for (int x = 0; x < win.width; ++x)
                plane[int64_t(y + y0 - top) * p.crop + (x + x0 - left)] = normalize(win.pixel(y, x)[src]);
    }
    return out;
}

}  // namespace resnet
