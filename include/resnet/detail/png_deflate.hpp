#pragma once
// The common PNG, 8-bit and not interlaced (gray, RGB, palette, gray+alpha,
// RGBA: nearly every PNG photo and screenshot), decoded here: its IDAT data
// inflated at once by libdeflate, its rows unfiltered (PNG spec §9) and
// converted to RGB as PIL converts them (image.hpp). Any other PNG, and any
// this path finds malformed or unusual (an unknown filter, a palette index
// past the palette, data that inflates short of or past its rows, a bad
// checksum, IDAT chunks split by another chunk), is left to the general
// decoder, which decodes or refuses it as before; so are images whose
// filtered rows exceed kMaxInflated.
// Why: on bench/collection.py's 100 PNG photos (500² to 2000×1500, filtered
// by PIL's encoder; Intel Xeon family 6 model 207) this path takes 19 ms per
// file, libpng 37 and stb_image 55: zlib's inflate alone took 17 ms and
// libdeflate's 6.7, and Debian's libpng unfilters Paeth rows a byte at a time.
// Used by resnet/image.hpp when RESNET_WITH_LIBDEFLATE is defined (CMake
// target resnet::image); link libdeflate.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include <libdeflate.h>
#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#define RESNET_PNG_SSE2 1
#endif

#include "../npy.hpp"
#include "../preprocess.hpp"

namespace resnet::detail {

/// Filtered rows larger than this go to the general decoder, which streams
/// them: this path holds all of them at once beside the RGB image.
constexpr size_t kMaxInflated = size_t(64) << 20;

/// The Paeth predictor (PNG spec §9.4) of a byte from its left (a), upper (b)
/// and upper-left (c) neighbours.
inline uint8_t paeth(int a, int b, int c) {
    const int pa = std::abs(b - c), pb = std::abs(a - c), pc = std::abs(a + b - 2 * c);
    return uint8_t(pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
}

#ifdef RESNET_PNG_SSE2
/// Paeth-unfilters bytes [bpp, n) of `row` (bpp 3 or 4) a pixel at a time,
/// the channels in 16-bit lanes: a byte at a time, as libpng does it here,
/// Paeth rows cost ~4× as much. Reads 4 bytes past the row, and rewrites
/// one for bpp 3 (its predictor lane is 0, so the byte is stored unchanged).
inline void paeth_row_sse2(uint8_t* row, const uint8_t* prior, size_t n, int bpp) {
    const __m128i zero = _mm_setzero_si128(), low = _mm_set1_epi16(0xFF);
    const __m128i lanes =  // the pixel's channels
        bpp == 3 ? _mm_set_epi16(0, 0, 0, 0, 0, -1, -1, -1) : _mm_set_epi16(0, 0, 0, 0, -1, -1, -1, -1);
    const auto load = [&](const uint8_t* p) {
        int32_t v;
        std::memcpy(&v, p, 4);
        return _mm_unpacklo_epi8(_mm_cvtsi32_si128(v), zero);
    };
    const auto abs16 = [&](__m128i v) { return _mm_max_epi16(v, _mm_sub_epi16(zero, v)); };
    const auto select = [](__m128i mask, __m128i if_set, __m128i if_clear) {
        return _mm_or_si128(_mm_and_si128(mask, if_set), _mm_andnot_si128(mask, if_clear));
    };
    __m128i a = load(row), c = load(prior), next = load(row + bpp);
    for (size_t i = size_t(bpp); i < n; i += size_t(bpp)) {
        // The next pixel's bytes are loaded before this one's store, which
        // overlaps them by a byte for bpp 3: loaded after it, each load
        // waited for the store (a failed store-to-load forward), and Paeth
        // rows took 2× as long.
        const __m128i b = load(prior + i), x = next;
        next = load(row + i + bpp);
        const __m128i bc = _mm_sub_epi16(b, c), ac = _mm_sub_epi16(a, c);
        const __m128i pa = abs16(bc), pb = abs16(ac), pc = abs16(_mm_add_epi16(bc, ac));
        const __m128i not_a = _mm_or_si128(_mm_cmpgt_epi16(pa, pb), _mm_cmpgt_epi16(pa, pc));
        const __m128i predictor = _mm_and_si128(select(not_a, select(_mm_cmpgt_epi16(pb, pc), c, b), a), lanes);
        a = _mm_and_si128(_mm_add_epi16(x, predictor), low);
        const int32_t out = _mm_cvtsi128_si32(_mm_packus_epi16(a, zero));
        std::memcpy(row + i, &out, 4);
        c = b;
    }
}
#endif

/// Undoes one row's filter (PNG spec §9) in place: `row` holds its n
/// filtered bytes, `prior` the previous row unfiltered (zeros above the
/// first), bpp bytes per pixel; both have 4 readable bytes past n. False
/// for an unknown filter type.
inline bool unfilter_row(uint8_t filter, uint8_t* row, const uint8_t* prior, size_t n, int bpp) {
    const size_t b = size_t(bpp);
    switch (filter) {
        case 0:
            return true;
        case 1:
            for (size_t i = b; i < n; ++i) row[i] = uint8_t(row[i] + row[i - b]);
            return true;
        case 2:
            for (size_t i = 0; i < n; ++i) row[i] = uint8_t(row[i] + prior[i]);
            return true;
        case 3:
            for (size_t i = 0; i < b; ++i) row[i] = uint8_t(row[i] + (prior[i] >> 1));
            for (size_t i = b; i < n; ++i) row[i] = uint8_t(row[i] + ((row[i - b] + prior[i]) >> 1));
            return true;
        case 4:
            for (size_t i = 0; i < b; ++i) row[i] = uint8_t(row[i] + prior[i]);  // paeth(0, b, 0) = b
#ifdef RESNET_PNG_SSE2
            if (bpp >= 3) return paeth_row_sse2(row, prior, n, bpp), true;
#endif
            for (size_t i = b; i < n; ++i) row[i] = uint8_t(row[i] + paeth(row[i - b], prior[i], prior[i - b]));
            return true;
        default:
            return false;
    }
}

/// The chunks this path reads, found by walking the file; `ok` false when
/// a chunk runs past the end or IHDR asks for what this path does not do.
struct PngChunks {
    bool ok = false;
    int channels = 0;                // 1 gray / palette, 2 gray+alpha, 3 RGB, 4 RGBA
    bool palette = false;
    const uint8_t* plte = nullptr;   // PLTE's data, plte_size bytes
    size_t plte_size = 0;
    std::vector<uint8_t> idat;       // the IDAT chunks' data, concatenated
};

inline PngChunks png_chunks(const uint8_t* d, size_t n) {
    PngChunks c;
    const uint8_t depth = d[24], color = d[25];
    if (depth != 8 || d[26] != 0 || d[27] != 0 || d[28] != 0) return c;  // compression, filter, interlace
    static const int channels_of[7] = {1, 0, 3, 1, 2, 0, 4};
    if (color > 6 || channels_of[color] == 0) return c;
    c.channels = channels_of[color];
    c.palette = color == 3;
    bool idat_ended = false;  // IDAT chunks must be consecutive (libpng and PIL stop at the first other chunk)
    for (size_t p = 8; p + 12 <= n;) {
        const size_t length = read_be(d + p, 4);
        if (length > n - p - 12) return c;
        const uint8_t* type = d + p + 4;
        const bool idat = std::memcmp(type, "IDAT", 4) == 0;
        if (idat && idat_ended) return c;
        if (idat) c.idat.insert(c.idat.end(), d + p + 8, d + p + 8 + length);
        idat_ended = !idat && !c.idat.empty();
        if (std::memcmp(type, "PLTE", 4) == 0 && c.idat.empty()) c.plte = d + p + 8, c.plte_size = length;
        if (std::memcmp(type, "IEND", 4) == 0) break;
        p += length + 12;
    }
    c.ok = !c.idat.empty() && (!c.palette || (c.plte && c.plte_size % 3 == 0 && c.plte_size <= 768));
    return c;
}

/// Row y of the unfiltered image (w pixels of `channels` bytes) as RGB into
/// `out`, as PIL converts it; false if a palette index lies past the palette.
inline bool png_row_to_rgb(const uint8_t* in, const PngChunks& c, size_t w, uint8_t* out) {
    if (c.palette) {
        const size_t entries = c.plte_size / 3;
        for (size_t x = 0; x < w; ++x, out += 3) {
            if (in[x] >= entries) return false;
            std::memcpy(out, c.plte + 3 * size_t(in[x]), 3);
        }
        return true;
    }
    if (c.channels == 3) return std::memcpy(out, in, 3 * w), true;
    for (size_t x = 0; x < w; ++x, in += c.channels, out += 3) {
        const bool gray = c.channels <= 2;
        out[0] = in[0], out[1] = in[gray ? 0 : 1], out[2] = in[gray ? 0 : 2];
    }
    return true;
}

/// The PNG at d (n bytes, its IHDR declaring width × height, checked by
/// the caller) decoded to RGB by this path, or nothing if the general
/// decoder must take it (see the top of this header).
inline std::optional<Image> decode_png_deflate(const uint8_t* d, size_t n, int64_t width, int64_t height) {
    const PngChunks c = png_chunks(d, n);
    if (!c.ok) return std::nullopt;
    const size_t w = size_t(width), h = size_t(height), row_bytes = w * size_t(c.channels);
    const size_t raw_size = h * (row_bytes + 1);  // each row: its filter byte, then its bytes
    if (raw_size > kMaxInflated) return std::nullopt;
    const std::unique_ptr<uint8_t[]> raw(new uint8_t[raw_size + 4]);  // not zeroed: libdeflate fills it
    std::memset(raw.get() + raw_size, 0, 4);
    const std::vector<uint8_t> zeros(row_bytes + 4);
    const std::unique_ptr<libdeflate_decompressor, void (*)(libdeflate_decompressor*)> inflater(
        libdeflate_alloc_decompressor(), libdeflate_free_decompressor);
    size_t inflated = 0;
    if (!inflater ||
        libdeflate_zlib_decompress(inflater.get(), c.idat.data(), c.idat.size(), raw.get(), raw_size, &inflated) !=
            LIBDEFLATE_SUCCESS ||
        inflated != raw_size)
        return std::nullopt;
    Image img = Image::blank(int(width), int(height));
    const uint8_t* prior = zeros.data();
    for (size_t y = 0; y < h; ++y) {
        uint8_t* row = raw.get() + y * (row_bytes + 1);
        if (!unfilter_row(row[0], row + 1, prior, row_bytes, c.channels) ||
            !png_row_to_rgb(row + 1, c, w, img.pixel(int(y), 0)))
            return std::nullopt;
        prior = row + 1;
    }
    return img;
}

}  // namespace resnet::detail
