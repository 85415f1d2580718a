#pragma once
// Hand-built PNGs for the decoders' refusals, shared by tests/test_image.cpp
// and the stb_image-only consumer (tests/consumer/image.cpp).
#include <cstddef>
#include <cstdint>
#include <vector>

namespace testpng {

/// A PNG holding only a signature and an IHDR chunk declaring w×h 8-bit RGB
/// (CRCs are zero: no decoder here checks them).
inline std::vector<uint8_t> header_only(uint32_t w, uint32_t h) {
    std::vector<uint8_t> b = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R'};
    for (uint32_t v : {w, h})
        for (int s = 24; s >= 0; s -= 8) b.push_back(uint8_t(v >> s));
    for (int v : {8, 2, 0, 0, 0, 0, 0, 0, 0}) b.push_back(uint8_t(v));  // depth, RGB, methods, CRC
    return b;
}

/// A w×h 8-bit RGB PNG whose IDAT inflates to `inflated` bytes of zeros, far
/// past the h·(3w + 1) its header allows: one fixed-Huffman deflate block of
/// a literal 0 and then copies of 258 bytes at distance 1, 13 bits each.
inline std::vector<uint8_t> zlib_bomb(uint32_t w, uint32_t h, size_t inflated) {
    std::vector<uint8_t> z = {0x78, 0x01};
    int used = 8;  // bits of z.back() taken
    const auto put = [&](uint32_t code, int bits, bool huffman) {  // Huffman codes go MSB first
        for (int i = 0; i < bits; ++i) {
            if (used == 8) z.push_back(0), used = 0;
            const uint32_t bit = huffman ? code >> (bits - 1 - i) & 1 : code >> i & 1;
            z.back() = uint8_t(z.back() | bit << used++);
        }
    };
    put(1, 1, false);             // BFINAL
    put(1, 2, false);             // BTYPE 01: fixed Huffman codes
    put(0x30, 8, true);           // literal 0
    size_t n = 1;
    for (; n + 258 <= inflated; n += 258) {
        put(0xC5, 8, true);       // length symbol 285: 258
        put(0, 5, true);          // distance code 0: 1
    }
    put(0, 7, true);              // end of block
    const uint32_t adler = uint32_t(n % 65521) << 16 | 1;  // of n zeros
    for (int s = 24; s >= 0; s -= 8) z.push_back(uint8_t(adler >> s));
    auto png = header_only(w, h);
    const auto chunk = [&](const char* type, const std::vector<uint8_t>& data) {
        for (int s = 24; s >= 0; s -= 8) png.push_back(uint8_t(data.size() >> s));
        png.insert(png.end(), type, type + 4);
        png.insert(png.end(), data.begin(), data.end());
        png.insert(png.end(), 4, 0);  // CRC, ignored
    };
    chunk("IDAT", z);
    chunk("IEND", {});
    return png;
}

}  // namespace testpng
