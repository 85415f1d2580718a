#pragma once
// JPEG through libjpeg(-turbo), as PIL 9.4's Image.open(f).convert("RGB")
// decodes it (JpegImagePlugin.py, libImaging/JpegDecode.c, Convert.c):
//  - libjpeg's defaults: ISLOW integer IDCT, fancy upsampling, colour space
//    guessed from the JFIF / Adobe markers (YCbCr, RGB, CMYK, YCCK);
//  - 1 component → gray, replicated; 3 → RGB from libjpeg; 4 → CMYK from
//    libjpeg, taken as Adobe's inverted CMYK and converted by PIL's formula;
//    other component counts are refused, as PIL refuses them;
//  - warnings about corrupt data libjpeg decodes around are ignored, as PIL
//    ignores them; errors refuse the file; so does data that ends before the
//    last scanline (PIL: "image file is truncated").
// Used by resnet/image.hpp when RESNET_WITH_LIBJPEG is defined (CMake target
// resnet::image); link libjpeg (JPEG::JPEG).
#include <algorithm>
#include <csetjmp>
#include <cstddef>
#include <cstdint>
#include <cstdio>  // jpeglib.h uses FILE and size_t without including their headers
#include <string>
#include <vector>

#include <jpeglib.h>

#include "../error.hpp"
#include "../preprocess.hpp"

namespace resnet::detail {

/// One libjpeg decompression of a file held in memory. libjpeg's errors
/// longjmp back into guard(), which throws; its messages are printed nowhere.
class JpegDecompressor {
public:
    jpeg_decompress_struct cinfo{};

    JpegDecompressor(const uint8_t* data, size_t size, const std::string& name) : name_(name) {
        cinfo.err = jpeg_std_error(&error_.manager);
        error_.manager.error_exit = [](j_common_ptr c) { std::longjmp(reinterpret_cast<ErrorJump*>(c->err)->jump, 1); };
        error_.manager.output_message = [](j_common_ptr) {};
        guard([&] { jpeg_create_decompress(&cinfo); });
        // The whole file is in the buffer, so libjpeg asks for more only at its
        // end: fill_input_buffer then suspends decoding, which the caller
        // reports as truncation (PIL's decoder suspends there too).
        source_.next_input_byte = data;
        source_.bytes_in_buffer = size;
        source_.init_source = source_.term_source = [](j_decompress_ptr) {};
        source_.fill_input_buffer = [](j_decompress_ptr) -> boolean { return FALSE; };
        source_.skip_input_data = [](j_decompress_ptr c, long bytes) {
            const size_t skip = std::min(size_t(std::max(bytes, 0L)), c->src->bytes_in_buffer);
            c->src->next_input_byte += skip, c->src->bytes_in_buffer -= skip;
        };
        source_.resync_to_restart = jpeg_resync_to_restart;
        cinfo.src = &source_;
    }
    ~JpegDecompressor() { jpeg_destroy_decompress(&cinfo); }
    JpegDecompressor(const JpegDecompressor&) = delete;
    JpegDecompressor& operator=(const JpegDecompressor&) = delete;

    /// Runs `calls` (libjpeg calls on cinfo); a libjpeg error throws "<name>:
    /// corrupt or unsupported JPEG (libjpeg: <message>)". longjmp skips
    /// destructors, so no object created inside `calls` may have one.
    template <class Calls>
    void guard(Calls calls) {
        if (setjmp(error_.jump) == 0) {
            calls();
            return;
        }
        char message[JMSG_LENGTH_MAX];
        (*cinfo.err->format_message)(reinterpret_cast<j_common_ptr>(&cinfo), message);
        fail(name_, ": corrupt or unsupported JPEG (libjpeg: ", message, ")");
    }

    [[noreturn]] void truncated(const char* where) const {
        fail(name_, ": truncated JPEG (the data ends ", where, ")");
    }

private:
    struct ErrorJump {
        jpeg_error_mgr manager;  // first: libjpeg passes &manager as cinfo->err
        std::jmp_buf jump;
    };
    ErrorJump error_{};
    jpeg_source_mgr source_{};
    std::string name_;
};

/// One row of libjpeg's gray (1 channel) or CMYK (4) samples as RGB, as PIL
/// converts it: gray is replicated; CMYK, which PIL reads as Adobe's inverted
/// CMYK ("CMYK;I": C = 255 − sample), becomes (255 − K) − (255 − K)·C/255
/// rounded as PIL's MULDIV255.
inline void rgb_from_row(const uint8_t* in, int channels, size_t width, uint8_t* out) {
    const auto muldiv255 = [](unsigned a, unsigned b) {  // a·b/255, rounded
        const unsigned t = a * b + 128;
        return ((t >> 8) + t) >> 8;
    };
    for (size_t x = 0; x < width; ++x, in += channels, out += 3)
        for (int i = 0; i < 3; ++i) out[i] = channels == 1 ? in[0] : uint8_t(in[3] - muldiv255(255u - in[i], in[3]));
}

/// Decodes a JPEG as PIL does (see the top of this header). check_size(w, h)
/// runs after the header is read and before anything is decompressed; it
/// throws for images that must not be decoded.
template <class CheckSize>
Image decode_jpeg(const uint8_t* data, size_t size, const std::string& name, CheckSize check_size) {
    JpegDecompressor jpeg(data, size, name);
    jpeg_decompress_struct& c = jpeg.cinfo;
    int header = JPEG_SUSPENDED;
    jpeg.guard([&] { header = jpeg_read_header(&c, TRUE); });
    if (header == JPEG_SUSPENDED) jpeg.truncated("inside its header");
    check_size(int64_t(c.image_width), int64_t(c.image_height));
    const int channels = c.num_components;
    if (channels != 1 && channels != 3 && channels != 4)
        fail(name, ": JPEG with ", channels, " components (PIL opens 1: gray, 3: colour, 4: CMYK)");
    c.out_color_space = channels == 1 ? JCS_GRAYSCALE : channels == 3 ? JCS_RGB : JCS_CMYK;

    Image img = Image::blank(int(c.image_width), int(c.image_height));
    std::vector<uint8_t> row(channels == 3 ? 0 : size_t(img.width) * size_t(channels));
    jpeg.guard([&] {
        if (!jpeg_start_decompress(&c)) return;
        while (c.output_scanline < c.output_height) {
            uint8_t* out = img.pixel(int(c.output_scanline), 0);
            JSAMPROW in = channels == 3 ? out : row.data();
            if (jpeg_read_scanlines(&c, &in, 1) != 1) return;
            if (channels != 3) rgb_from_row(row.data(), channels, size_t(img.width), out);
        }
        jpeg_finish_decompress(&c);  // reads up to the end marker; PIL too accepts data that ends here
    });
    if (c.output_scanline < unsigned(img.height)) jpeg.truncated("before the last row of pixels");
    return img;
}

}  // namespace resnet::detail
