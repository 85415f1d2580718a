#pragma once
// Image files → 8-bit RGB, as PIL's Image.open(f).convert("RGB") gives them,
// and load_input(): an image or .npy file → a normalized model input.
//   resnet::Image img = resnet::read_image("cat.jpg");
//   resnet::Tensor<float> x = resnet::load_input("cat.jpg", resnet::Preprocess::from_metadata(model.metadata()));
//
// Formats: JPEG (baseline, progressive, arithmetic-coded with libjpeg), PNG
// (1-16 bit gray, gray+alpha, RGB, RGBA, palette), BMP, GIF (first frame),
// TGA, binary PNM (P5/P6). JPEG is decoded by libjpeg-turbo, the library PIL
// uses, when the including program defines RESNET_WITH_LIBJPEG and links
// libjpeg; 8-bit non-interlaced PNG with libdeflate when it defines
// RESNET_WITH_LIBDEFLATE and links libdeflate; other PNG (and any that path
// passes on) by libpng when it defines RESNET_WITH_LIBPNG and links libpng
// (CMake: link resnet::image, which does all six); see detail/jpeg.hpp,
// detail/png_deflate.hpp and detail/png.hpp. Every translation unit of a
// program must agree on the switches. Otherwise JPEG and PNG, and always
// BMP, GIF and TGA, are decoded by stb_image (Debian: libstb-dev); PNM here.
// Conversion to RGB follows PIL 9.4:
//  - alpha is dropped, not composited; gray is replicated; palettes expanded;
//    CMYK JPEGs are converted with PIL's formula (detail/jpeg.hpp);
//  - 16-bit PNG RGB, RGBA and gray+alpha keep each sample's high byte (PIL opens
//    them as 8-bit modes); 16-bit gray opens as mode "I" and convert("RGB")
//    clips it: min(v, 255);
//  - PNM with maxval m: PIL rescales v to min(out, round(v/m·out)), out = 65535
//    for 16-bit P5 (mode "I", then clipped to 255 as above), 255 otherwise;
//  - EXIF orientation is not applied (PIL's open() does not apply it either).
// Known differences from PIL: without RESNET_WITH_LIBJPEG, JPEG pixels differ
// by a few levels (stb_image's IDCT, chroma upsampling and colour conversion
// round differently from libjpeg's); transparent GIF pixels come out black
// (PIL: their palette colour); BMP and TGA files cut short decode with the
// missing pixels black where PIL raises (JPEG, PNG and PNM files cut short are
// refused).
//
// Dimensions are read from the header first, and an image above
// DecodeOptions::max_pixels is refused before any pixel memory is allocated.
// Every failure is a resnet::Error "<file>: <reason>". Decoding keeps no
// shared state, so several threads may decode at once.
//
// This header compiles a private (static) copy of stb_image into each
// translation unit that includes it, so several TUs may include it. In a TU
// that includes it, do not include <stb/stb_image.h> yourself before it, nor
// define STB_IMAGE_IMPLEMENTATION after it.
#ifdef STBI_INCLUDE_STB_IMAGE_H
#error "resnet/image.hpp compiles its own private copy of stb_image: include it before <stb/stb_image.h>"
#endif
#include <cstdint>
#include <cstdlib>

namespace resnet::detail {
/// The largest block stb_image may grow by realloc in this thread; SIZE_MAX
/// outside stb_decode. stb_image's zlib decoder grows its output until the
/// data ends (up to 4 GB), and only then compares it with the header's size,
/// so a PNG whose IDAT inflates far past its declared pixels (a zlib bomb,
/// ~1000× its file size) would allocate all of it. Its mallocs are sized
/// from the header, which check_dimensions has bounded.
inline size_t& stb_realloc_limit() {
    thread_local size_t limit = SIZE_MAX;
    return limit;
}
inline bool& stb_realloc_refused() {
    thread_local bool refused = false;
    return refused;
}
inline void* stb_realloc(void* p, size_t size) {
    if (size <= stb_realloc_limit()) return std::realloc(p, size);
    stb_realloc_refused() = true;
    return nullptr;
}
}  // namespace resnet::detail

#define STBI_MALLOC(size) std::malloc(size)
#define STBI_REALLOC(p, size) resnet::detail::stb_realloc(p, size)
#define STBI_FREE(p) std::free(p)
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#ifndef RESNET_WITH_LIBJPEG
#define STBI_ONLY_JPEG
#endif
#ifndef RESNET_WITH_LIBPNG
#define STBI_ONLY_PNG
#endif
#define STBI_ONLY_BMP
#define STBI_ONLY_GIF
#define STBI_ONLY_TGA
#define STBI_NO_STDIO
#define STBI_NO_LINEAR
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include <stb/stb_image.h>
#pragma GCC diagnostic pop
#undef STB_IMAGE_IMPLEMENTATION
#undef STBI_MALLOC
#undef STBI_REALLOC
#undef STBI_FREE

#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "error.hpp"
#include "npy.hpp"
#include "preprocess.hpp"
#include "tensor.hpp"
#ifdef RESNET_WITH_LIBJPEG
#include "detail/jpeg.hpp"
#endif
#ifdef RESNET_WITH_LIBPNG
#include "detail/png.hpp"
#endif
#ifdef RESNET_WITH_LIBDEFLATE
#include "detail/png_deflate.hpp"
#endif

namespace resnet {

struct DecodeOptions {
    /// Images whose header declares more pixels than this are refused before
    /// decoding (decompression bombs). 100 megapixels ≈ 300 MB of RGB.
    int64_t max_pixels = 100'000'000;
};

namespace detail {

/// Format and size an image file declares, read without decoding it.
struct ImageHeader {
    std::string format;  ///< "JPEG", "PNG", …
    int64_t width = 0, height = 0;
};

/// A header reader of one format: what the header of the `size`-byte file at
/// `data` declares; throws "<name>: …" when the header is cut short or malformed.
using HeaderReader = ImageHeader (*)(const uint8_t* data, size_t size, const std::string& name);

/// Refuses a PNG that stb_image would mishandle before finding it corrupt
/// (both found by fuzz_image):
///  - an empty first IDAT chunk: stb_image memcpy()s zero bytes to a null
///    pointer, which UBSan reports;
///  - an IDAT chunk declaring more bytes than the file has left: stb_image
///    first grows its buffer to fit (up to 2 GiB for a 200-byte file), then
///    finds the data missing. PIL refuses such a file as truncated too.
inline void check_idat_chunks(const uint8_t* d, size_t n, const std::string& name) {
    bool first = true;
    for (size_t p = 8; p + 8 <= n;) {
        const uint32_t length = read_be(d + p, 4);
        const size_t left = n - p - 8;
        if (std::memcmp(d + p + 4, "IDAT", 4) == 0) {
            if (first && length == 0) fail(name, ": corrupt PNG (its first IDAT chunk is empty)");
            if (length > left)
                fail(name, ": truncated or corrupt PNG (an IDAT chunk at byte ", p, " declares ", length,
                     " bytes, the file has ", left, " left)");
            first = false;
        }
        if (length > left) return;  // another chunk cut short: stb_image reports it
        p += size_t(length) + 12;
    }
}

inline ImageHeader png_header(const uint8_t* d, size_t n, const std::string& name) {
    if (n < 33 || std::memcmp(d + 12, "IHDR", 4) != 0)
        fail(name, ": truncated or corrupt PNG (no IHDR chunk after the signature)");
    check_idat_chunks(d, n, name);
    return {"PNG", read_be(d + 16, 4), read_be(d + 20, 4)};
}

inline ImageHeader gif_header(const uint8_t* d, size_t n, const std::string& name) {
    if (n < 13) fail(name, ": truncated GIF (", n, " bytes, the header alone is 13)");
    return {"GIF", read_le(d + 6, 2), read_le(d + 8, 2)};  // the logical screen, which the first frame fills
}

inline ImageHeader bmp_header(const uint8_t* d, size_t n, const std::string& name) {
    if (n < 26) fail(name, ": truncated BMP (", n, " bytes, shorter than its headers)");
    if (read_le(d + 14, 4) == 12) return {"BMP", read_le(d + 18, 2), read_le(d + 20, 2)};  // OS/2 core header
    const auto height = int64_t(int32_t(read_le(d + 22, 4)));                             // < 0: rows top-down
    return {"BMP", int64_t(int32_t(read_le(d + 18, 4))), height < 0 ? -height : height};
}

/// Refuses a DHT segment whose payload (`length` bytes from offset p) holds a
/// Huffman table of more than 256 codes. stb_image 2.27 (Debian 12) does not
/// check this and writes past its tables; the walk mirrors its table loop.
/// Sets bit class·4 + id of `defined` for each table the segment defines.
inline void check_huffman_tables(const uint8_t* d, size_t n, size_t p, int64_t length, const std::string& name,
                                 unsigned& defined) {
    while (length > 0) {
        if (p < n && (d[p] >> 4) <= 1 && (d[p] & 15) <= 3) defined |= 1u << ((d[p] >> 4) * 4 + (d[p] & 15));
        int64_t codes = 0;
        for (size_t i = 1; i <= 16; ++i) codes += p + i < n ? d[p + i] : 0;
        if (codes > 256)
            fail(name, ": corrupt JPEG (a Huffman table declares ", codes, " codes, at most 256 exist)");
        p += size_t(17 + codes), length -= 17 + codes;
    }
}

/// Offset of the marker ending a scan's entropy-coded data at or after p, n
/// if none. As stb_image reads it: 0xFF, any 0xFF fill bytes, then a byte
/// other than 0x00 (a stuffed 0xFF) or RST0-7; the result points at the
/// 0xFF just before that byte.
inline size_t next_jpeg_marker(const uint8_t* d, size_t n, size_t p) {
    for (; p + 1 < n; ++p) {
        if (d[p] != 0xFF) continue;
        size_t q = p + 1;
        while (q < n && d[q] == 0xFF) ++q;
        if (q == n) return n;
        if (d[q] != 0 && (d[q] < 0xD0 || d[q] > 0xD7)) return q - 1;
        p = q;
    }
    return n;
}

/// Refuses a scan (SOS segment at p) that decodes with a Huffman table no
/// DHT has defined: stb_image 2.27 then reads its never-initialized table
/// and indexes out of bounds (found by fuzz_image). The tables a scan uses
/// are those stb reads: DC and AC for baseline; in progressive mode the DC
/// table for a first DC scan, none for a DC refinement, the AC table for AC
/// scans.
inline void check_scan_tables(const uint8_t* d, size_t n, size_t p, bool progressive, unsigned defined,
                              const std::string& name) {
    const size_t ns = p + 4 < n ? d[p + 4] : 0, spectral = p + 5 + 2 * ns;
    if (spectral + 2 >= n) return;  // truncated: stb_image refuses it itself
    const bool dc_scan = d[spectral] == 0, refinement = (d[spectral + 2] >> 4) != 0;
    for (size_t i = 0; i < ns; ++i) {
        const unsigned dc = d[p + 6 + 2 * i] >> 4, ac = d[p + 6 + 2 * i] & 15;
        const bool uses_dc = !progressive || (dc_scan && !refinement), uses_ac = !progressive || !dc_scan;
        const auto missing = [&](unsigned cls, unsigned id) { return id <= 3 && !(defined >> (cls * 4 + id) & 1u); };
        if ((uses_dc && missing(0, dc)) || (uses_ac && missing(1, ac)))
            fail(name, ": corrupt JPEG (a scan uses ", uses_dc && missing(0, dc) ? "DC" : "AC",
                 " Huffman table ", uses_dc && missing(0, dc) ? dc : ac, ", which no DHT segment defines)");
    }
}

/// The frame size from the first SOFn, found by walking every marker segment
/// (skipping scan data); Huffman tables and the scans' use of them are
/// checked on the way.
inline ImageHeader jpeg_header(const uint8_t* d, size_t n, const std::string& name) {
    ImageHeader h{"JPEG", 0, 0};
    bool found = false, progressive = false;
    unsigned defined = 0;  // bit class·4 + id: Huffman tables seen so far
    size_t p = 2;
    while (p + 4 <= n && d[p] == 0xFF) {
        const uint8_t m = d[p + 1];
        if (m == 0xFF || m == 0x01 || (m >= 0xD0 && m <= 0xD7)) {  // fill byte, markers without a segment
            p += m == 0xFF ? 1 : 2;
            continue;
        }
        if (m == 0xD9) break;  // end of image
        const size_t length = read_be(d + p + 2, 2);
        const bool sof = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
        if (sof && !found && p + 9 <= n) {
            h.height = read_be(d + p + 5, 2), h.width = read_be(d + p + 7, 2), found = true;
            progressive = m == 0xC2;
        }
        if (m == 0xC4) check_huffman_tables(d, n, p + 4, int64_t(length) - 2, name, defined);
        if (m == 0xDA) check_scan_tables(d, n, p, progressive, defined, name);
        p += 2 + length;
        if (m == 0xDA) p = next_jpeg_marker(d, n, p);
    }
    if (!found) fail(name, ": truncated or corrupt JPEG (no frame header found)");
    return h;
}

/// TGA has no signature. Its header's colour-map type (0 or 1) and image
/// type are checked here first: stb_image's probe alone would also accept a
/// JPEG behind 0xFF fill bytes, which would then skip jpeg_header's checks
/// (found by fuzz_image).
inline ImageHeader tga_header(const uint8_t* d, size_t n, const std::string& name) {
    const auto tga_type = [](uint8_t t) { return (t >= 1 && t <= 3) || (t >= 9 && t <= 11); };
    int w = 0, h = 0, channels = 0;
    if (n < 18 || d[1] > 1 || !tga_type(d[2]) || !stbi_info_from_memory(d, int(n), &w, &h, &channels))
        fail(name, ": not an image in a known format (supported: JPEG, PNG, BMP, GIF, TGA, binary PNM)");
    return {"TGA", w, h};
}

/// A binary PNM header: "P5"/"P6", width, height, maxval, each token ended by
/// one whitespace byte, '#' comments running to the end of the line.
struct PnmHeader {
    int64_t width = 0, height = 0;
    int channels = 0, maxval = 0;
    size_t data = 0;  ///< offset of the raster
};

inline PnmHeader pnm_header(const uint8_t* d, size_t n, const std::string& name) {
    const auto space = [](uint8_t c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
    int64_t v[3] = {};
    size_t p = 2;
    for (int64_t& token : v) {
        while (p < n && (space(d[p]) || d[p] == '#')) {
            if (d[p] == '#') {
                while (p < n && d[p] != '\n' && d[p] != '\r') ++p;
            } else {
                ++p;
            }
        }
        const size_t start = p;
        while (p < n && p - start < 10 && d[p] >= '0' && d[p] <= '9') token = token * 10 + (d[p++] - '0');
        if (p == start || p >= n || !space(d[p]))
            fail(name, ": truncated or corrupt PNM header (expected width, height and maxval)");
        ++p;
    }
    if (v[2] < 1 || v[2] > 65535) fail(name, ": PNM maxval ", v[2], " is outside [1, 65535]");
    return {v[0], v[1], d[1] == '6' ? 3 : 1, int(v[2]), p};
}

inline ImageHeader pnm_image_header(const uint8_t* d, size_t n, const std::string& name) {
    const PnmHeader h = pnm_header(d, n, name);
    return {"PNM", h.width, h.height};
}

/// A file signature: `magic` at byte `offset`. Formats without a header
/// reader are recognized only to be refused by name.
struct Signature {
    const char* format;
    size_t offset;
    std::string_view magic;
    HeaderReader header;
};

inline const Signature* sniff(const uint8_t* d, size_t n) {
    using namespace std::string_view_literals;
    static const Signature table[] = {
        {"JPEG", 0, "\xFF\xD8\xFF"sv, jpeg_header},
        {"PNG", 0, "\x89PNG\r\n\x1A\n"sv, png_header},
        {"GIF", 0, "GIF87a"sv, gif_header},
        {"GIF", 0, "GIF89a"sv, gif_header},
        {"BMP", 0, "BM"sv, bmp_header},
        {"PNM", 0, "P5"sv, pnm_image_header},
        {"PNM", 0, "P6"sv, pnm_image_header},
        {"TIFF", 0, "II*\0"sv, nullptr},
        {"TIFF", 0, "MM\0*"sv, nullptr},
        {"WebP", 8, "WEBP"sv, nullptr},
        {"HEIF/AVIF (ISO media)", 4, "ftyp"sv, nullptr},
        {"JPEG 2000", 0, "\0\0\0\x0CjP  "sv, nullptr},
        {"JPEG 2000", 0, "\xFF\x4F\xFF\x51"sv, nullptr},
        {"JPEG XL", 0, "\xFF\x0A"sv, nullptr},
        {"JPEG XL", 0, "\0\0\0\x0CJXL "sv, nullptr},
        {"PSD", 0, "8BPS"sv, nullptr},
        {"OpenEXR", 0, "v/1\x01"sv, nullptr},
        {"Radiance HDR", 0, "#?RADIANCE"sv, nullptr},
        {"PNM P1-P4 (text or 1-bit)", 0, "P1"sv, nullptr},
        {"PNM P1-P4 (text or 1-bit)", 0, "P2"sv, nullptr},
        {"PNM P1-P4 (text or 1-bit)", 0, "P3"sv, nullptr},
        {"PNM P1-P4 (text or 1-bit)", 0, "P4"sv, nullptr},
    };
    for (const Signature& s : table)
        if (n >= s.offset + s.magic.size() && std::memcmp(d + s.offset, s.magic.data(), s.magic.size()) == 0) return &s;
    return nullptr;
}

/// Refuses headers declaring no pixels, a side beyond stb_image's 2^24, or
/// more than options.max_pixels pixels.
inline void check_dimensions(const ImageHeader& h, const DecodeOptions& options, const std::string& name) {
    constexpr int64_t kMaxSide = int64_t(1) << 24;
    if (h.width < 1 || h.height < 1)
        fail(name, ": ", h.format, " header declares a ", h.width, "x", h.height, " image, which has no pixels");
    if (h.width > kMaxSide || h.height > kMaxSide || h.width > options.max_pixels / h.height)
        fail(name, ": ", h.format, " image is ", h.width, "x", h.height, " pixels, above the limit of ",
             options.max_pixels, " pixels (DecodeOptions::max_pixels) or ", kMaxSide, " per side");
}

/// PIL's sample → uint8 map for a source of `bits` (8 or 16) bits with maximum
/// `maxval`: min(255, round(v / maxval · out_max)), round half to even, for
/// every possible v (malformed files may exceed maxval).
inline std::vector<uint8_t> rescale_table(int bits, int maxval, int out_max) {
    std::vector<uint8_t> table(size_t(1) << bits);
    for (size_t v = 0; v < table.size(); ++v)
        table[v] = uint8_t(std::min(255.0, std::nearbyint(double(v) / maxval * out_max)));
    return table;
}

/// w×h RGB image from `channels` (1 or 3) samples per pixel, sample i being
/// table[sample_at(i)]; one channel is replicated into R, G and B.
template <class SampleAt>
Image rgb_from_samples(int64_t w, int64_t h, int channels, const std::vector<uint8_t>& table, SampleAt sample_at) {
    Image img = Image::blank(int(w), int(h));
    for (size_t i = 0; i < img.rgb.size(); ++i) img.rgb[i] = table[sample_at(channels == 3 ? i : i / 3)];
    return img;
}

/// A binary PNM as PIL decodes it: the raster (big-endian 16-bit samples when
/// maxval > 255) rescaled by rescale_table; throws if the raster is cut short.
inline Image decode_pnm(const uint8_t* d, size_t n, const std::string& name) {
    const PnmHeader h = pnm_header(d, n, name);
    const int bytes = h.maxval > 255 ? 2 : 1;
    const uint64_t need = uint64_t(h.width * h.height) * uint64_t(h.channels * bytes);
    if (n - h.data < need)
        fail(name, ": truncated PNM (", n - h.data, " bytes of pixels, ", h.width, "x", h.height, "x", h.channels,
             " samples need ", need, ")");
    const int out_max = h.channels == 1 && h.maxval > 255 ? 65535 : 255;
    return rgb_from_samples(h.width, h.height, h.channels, rescale_table(8 * bytes, h.maxval, out_max),
                            [&](size_t i) { return read_be(d + h.data + i * size_t(bytes), bytes); });
}

/// stb_image's reason for the last failure, or "" when all it holds is the
/// leftover of the PNG probe stb_image runs before its other decoders (some of
/// which fail without setting a reason of their own).
inline std::string stb_reason(const std::string& format) {
    const char* reason = stbi_failure_reason();
    return !reason || (format != "PNG" && std::strcmp(reason, "bad png sig") == 0) ? "" : reason;
}

struct StbFree {
    void operator()(void* p) const { stbi_image_free(p); }
};

/// stb_image's decode to `channels` samples per pixel, 8-bit (Sample = uint8_t)
/// or 16-bit (uint16_t), checked against the header's size.
template <class Sample>
std::unique_ptr<Sample, StbFree> stb_decode(const uint8_t* d, size_t n, int channels, const ImageHeader& h,
                                            const std::string& name) {
    int w = 0, ht = 0, file_channels = 0;
    std::unique_ptr<Sample, StbFree> pixels;
    // What a valid file can need: its compressed data gathered (< 2n) or its
    // pixels inflated, 16-bit RGBA with a filter byte per row and Adam7's
    // extra rows (< 16 bytes per pixel and row), doubled by the growth.
    const size_t limit = 2 * n + 16 * size_t(h.width + 1) * size_t(h.height) + (size_t(1) << 20);
    stb_realloc_limit() = limit;
    stb_realloc_refused() = false;
    if constexpr (sizeof(Sample) == 1)
        pixels.reset(stbi_load_from_memory(d, int(n), &w, &ht, &file_channels, channels));
    else
        pixels.reset(stbi_load_16_from_memory(d, int(n), &w, &ht, &file_channels, channels));
    stb_realloc_limit() = SIZE_MAX;
    if (!pixels && stb_realloc_refused())
        fail(name, ": ", h.format, " data inflates past ", limit, " bytes, more than its ", h.width, "x", h.height,
             " header allows (a decompression bomb?)");
    if (!pixels) {
        const std::string reason = stb_reason(h.format);
        fail(name, ": truncated or corrupt ", h.format, reason.empty() ? "" : " (stb_image: " + reason + ")");
    }
    if (w != h.width || ht != h.height)
        fail(name, ": ", h.format, " decoded to ", w, "x", ht, " pixels, its header says ", h.width, "x", h.height);
    return pixels;
}

}  // namespace detail

/// Decodes an image held in memory (`name` labels errors) to RGB as PIL's
/// convert("RGB") would (see the top of this header). Throws resnet::Error
/// "<name>: <reason>" for an empty buffer, an unsupported format (TIFF, WebP,
/// … named from the magic bytes), a header declaring no pixels or more than
/// options.max_pixels (checked before decoding), or truncated/corrupt data.
inline Image decode_image(const uint8_t* data, size_t size, const std::string& name, const DecodeOptions& options = {}) {
    if (size == 0) detail::fail(name, ": empty file (0 bytes)");
    if (size > size_t(INT_MAX)) detail::fail(name, ": file is ", size, " bytes, above stb_image's limit of ", INT_MAX);
    const detail::Signature* sig = detail::sniff(data, size);
    if (sig && !sig->header)
        detail::fail(name, ": unsupported image format ", sig->format,
                     " (supported: JPEG, PNG, BMP, GIF, TGA, binary PNM)");
#ifdef RESNET_WITH_LIBJPEG
    if (sig && sig->header == detail::jpeg_header)
        return detail::decode_jpeg(data, size, name, [&](int64_t width, int64_t height) {
            detail::check_dimensions({"JPEG", width, height}, options, name);
        });
#endif
    const detail::ImageHeader header = (sig ? sig->header : detail::tga_header)(data, size, name);
    detail::check_dimensions(header, options, name);
    if (header.format == "PNM") return detail::decode_pnm(data, size, name);
#ifdef RESNET_WITH_LIBDEFLATE
    if (header.format == "PNG")
        if (std::optional<Image> img = detail::decode_png_deflate(data, size, header.width, header.height))
            return std::move(*img);
#endif
#ifdef RESNET_WITH_LIBPNG
    if (header.format == "PNG") return detail::decode_png(data, size, name, header.width, header.height);
#endif
    if (header.format == "PNG" && data[24] == 16 && data[25] == 0) {  // 16-bit gray: PIL's mode "I", clipped
        const auto px = detail::stb_decode<uint16_t>(data, size, 1, header, name);
        return detail::rgb_from_samples(header.width, header.height, 1, detail::rescale_table(16, 65535, 65535),
                                        [&](size_t i) { return px.get()[i]; });
    }
    const auto px = detail::stb_decode<uint8_t>(data, size, 3, header, name);
    return Image{int(header.width), int(header.height),
                 std::vector<uint8_t>(px.get(), px.get() + size_t(header.width * header.height) * 3)};
}

/// Reads and decodes an image file (see decode_image); errors name the path.
inline Image read_image(const std::string& path, const DecodeOptions& options = {}) {
    const std::vector<uint8_t> bytes = detail::read_file_bytes(path);
    return decode_image(bytes.data(), bytes.size(), path, options);
}

/// A normalized model input from a file, told apart by its first bytes:
///  - a .npy float32 tensor, taken as already normalized: 3×H×W becomes
///    1×3×H×W, N×3×H×W is kept;
///  - anything else is an image: read_image, then preprocess(…, pre) → 1×3×crop×crop.
/// Throws resnet::Error "<path>: <reason>".
template <class T = float>
Tensor<T> load_input(const std::string& path, const Preprocess& pre = {}, const DecodeOptions& options = {}) {
    const std::vector<uint8_t> bytes = detail::read_file_bytes(path);
    if (!detail::is_npy(bytes)) return preprocess<T>(decode_image(bytes.data(), bytes.size(), path, options), pre);
    Tensor<T> t = parse_npy<T>(bytes, path);
    const Shape found = t.shape();
    if (t.rank() == 3) t = std::move(t).reshaped({1, found[0], found[1], found[2]});
    if (t.rank() != 4 || t.dim(1) != 3 || t.empty())
        detail::fail(path, ": .npy shape ", shape_str(found), " is not a model input (expected 3xHxW or Nx3xHxW)");
    return t;
}

}  // namespace resnet
