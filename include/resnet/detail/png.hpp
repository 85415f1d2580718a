#pragma once
// PNG through libpng, as PIL 9.4's Image.open(f).convert("RGB") decodes it
// (the rules at the top of resnet/image.hpp):
//  - palettes and tRNS are expanded, 1/2/4-bit gray scaled to 8 bits
//    (v·255/(2^bits − 1), as PIL's unpackers), alpha dropped, gray replicated;
//  - 16-bit samples keep their high byte, except 16-bit gray, which PIL opens
//    as mode "I" and convert("RGB") clips: min(v, 255);
//  - CRCs are not checked (stb_image, used before, ignores them too) and
//    nothing past the last row is inflated, so data appended to the image (a
//    zlib bomb's) costs neither memory nor time; data that ends before the
//    last row refuses the file.
// It takes the PNGs detail/png_deflate.hpp passes on (16-bit, 1/2/4-bit,
// interlaced, malformed). Why libpng rather than stb_image: on 100 photos
// re-encoded as PNG (bench/collection.py's, 500² to 2000×1500), 37 ms per
// file against stb_image's 55 (PIL 55); zlib's inflate alone takes 17 ms of it.
// Used by resnet/image.hpp when RESNET_WITH_LIBPNG is defined (CMake target
// resnet::image); link libpng (PNG::PNG).
#include <algorithm>
#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <png.h>

#include "../error.hpp"
#include "../preprocess.hpp"

namespace resnet::detail {

/// One libpng decompression of a file held in memory, through libpng's
/// progressive reader: it stops inflating at the image's last row (the
/// sequential reader inflates the rest of the stream to find its end, 1.3 s
/// for a 16×16 PNG followed by 1 GiB of zeros in 1 MB). libpng's errors
/// longjmp back into guard(), which throws; its warnings are dropped (PIL
/// ignores what they report, e.g. an sRGB profile known to be wrong).
class PngDecompressor {
public:
    png_structp png = nullptr;
    png_infop info = nullptr;

    /// Calls owner->on_info() and owner->on_row(row, pass, data) as libpng's
    /// progressive callbacks (png_set_progressive_read_fn).
    template <class Owner>
    PngDecompressor(const std::string& name, Owner* owner) : name_(name) {
        png = png_create_read_struct(PNG_LIBPNG_VER_STRING, this, on_error, [](png_structp, png_const_charp) {});
        if (png) info = png_create_info_struct(png);
        if (!info) {
            png_destroy_read_struct(&png, nullptr, nullptr);
            fail(name, ": libpng could not allocate its decoder");
        }
        png_set_crc_action(png, PNG_CRC_QUIET_USE, PNG_CRC_QUIET_USE);
        png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
        png_set_progressive_read_fn(
            png, owner, [](png_structp p, png_infop) { static_cast<Owner*>(png_get_progressive_ptr(p))->on_info(); },
            [](png_structp p, png_bytep data, png_uint_32 row, int pass) {
                static_cast<Owner*>(png_get_progressive_ptr(p))->on_row(row, pass, data);
            },
            nullptr);
    }
    ~PngDecompressor() { png_destroy_read_struct(&png, info ? &info : nullptr, nullptr); }
    PngDecompressor(const PngDecompressor&) = delete;
    PngDecompressor& operator=(const PngDecompressor&) = delete;

    /// Runs `calls` (libpng calls on png, info); a libpng error throws
    /// "<name>: truncated or corrupt PNG (libpng: <message>)". longjmp skips
    /// destructors, so no object created inside `calls` may have one.
    template <class Calls>
    void guard(Calls calls) {
        if (setjmp(png_jmpbuf(png)) == 0) {
            calls();
            return;
        }
        fail(name_, ": truncated or corrupt PNG (libpng: ", message_, ")");
    }

private:
    static void on_error(png_structp p, png_const_charp message) {
        auto* self = static_cast<PngDecompressor*>(png_get_error_ptr(p));
        std::snprintf(self->message_, sizeof self->message_, "%s", message);
        png_longjmp(p, 1);
    }

    std::string name_;
    char message_[200] = "";
};

/// Rows of pixels a PNG's data holds: its height, or for Adam7 the rows of
/// each of the 7 passes that has pixels.
inline uint64_t png_data_rows(uint32_t width, uint32_t height, bool adam7) {
    if (!adam7) return height;
    static const uint32_t x0[7] = {0, 4, 0, 2, 0, 1, 0}, y0[7] = {0, 0, 4, 0, 2, 0, 1}, dy[7] = {8, 8, 8, 4, 4, 2, 2};
    uint64_t rows = 0;
    for (int p = 0; p < 7; ++p)
        if (width > x0[p] && height > y0[p]) rows += (height - y0[p] + dy[p] - 1) / dy[p];
    return rows;
}

/// One PNG decode as PIL does it (see the top of this header) of a
/// width × height image (the caller has read and checked its header), into
/// RGB or, for 16-bit gray, big-endian samples first. Memory is allocated
/// before libpng runs: an exception must not cross its C frames.
class PngDecode {
public:
    PngDecode(const std::string& name, int64_t width, int64_t height, bool gray16)
        : name_(name), dec_(name, this), img_(Image::blank(int(width), int(height))),
          samples_(gray16 ? size_t(width * height) * 2 : 0), rows_(size_t(height)), gray16_(gray16) {
        const size_t row_bytes = size_t(width) * (gray16 ? 2 : 3);
        for (size_t y = 0; y < rows_.size(); ++y)
            rows_[y] = gray16 ? samples_.data() + y * row_bytes : img_.pixel(int(y), 0);
    }

    Image run(const uint8_t* data, size_t size) {
        dec_.guard([&] { png_process_data(dec_.png, dec_.info, const_cast<uint8_t*>(data), size); });
        if (rows_seen_ < png_data_rows(img_.width, img_.height, adam7_))
            fail(name_, ": truncated PNG (the data ends before the last row of pixels)");
        for (size_t i = 0; i < samples_.size() / 2; ++i)  // 16-bit gray, big-endian, clipped to 255
            std::fill_n(img_.rgb.begin() + ptrdiff_t(3 * i), 3, samples_[2 * i] ? uint8_t(255) : samples_[2 * i + 1]);
        return std::move(img_);
    }

    /// The header has been read: sets the conversions.
    void on_info() {
        png_structp png = dec_.png;
        png_uint_32 width = 0, height = 0;
        int depth = 0, color = 0, interlace = 0;
        png_get_IHDR(png, dec_.info, &width, &height, &depth, &color, &interlace, nullptr, nullptr);
        adam7_ = interlace == PNG_INTERLACE_ADAM7;
        png_set_expand(png);
        png_set_strip_alpha(png);
        if (!gray16_) {
            png_set_strip_16(png);
            png_set_gray_to_rgb(png);
        }
        png_set_interlace_handling(png);
        png_read_update_info(png, dec_.info);
        if (int64_t(width) != img_.width || int64_t(height) != img_.height ||
            gray16_ != (depth == 16 && color == PNG_COLOR_TYPE_GRAY) ||
            png_get_rowbytes(png, dec_.info) != size_t(width) * (gray16_ ? 2 : 3))
            png_error(png, "its rows do not convert to 8-bit RGB or 16-bit gray");
    }

    /// Row `row` of the image has new pixels of Adam7 pass `pass` (data null:
    /// none in this pass).
    void on_row(png_uint_32 row, int, png_bytep data) {
        if (!data || row >= rows_.size()) return;
        png_progressive_combine_row(dec_.png, rows_[row], data);
        ++rows_seen_;
    }

private:
    std::string name_;
    PngDecompressor dec_;
    Image img_;
    std::vector<uint8_t> samples_;
    std::vector<png_bytep> rows_;
    uint64_t rows_seen_ = 0;
    bool gray16_, adam7_ = false;
};

/// Decodes a PNG as PIL does (see the top of this header), whose header
/// (width, height, and bit depth and colour type at bytes 24 and 25) the
/// caller has read and checked (image.hpp: check_dimensions), so libpng's own
/// limit of a million pixels per side is lifted.
inline Image decode_png(const uint8_t* data, size_t size, const std::string& name, int64_t width, int64_t height) {
    return PngDecode(name, width, height, data[24] == 16 && data[25] == 0).run(data, size);
}

}  // namespace resnet::detail
