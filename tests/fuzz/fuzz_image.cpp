// libFuzzer target: arbitrary bytes as an image file, decoded (JPEG through
// libjpeg when linked with resnet::image, as here) and run through the
// torchvision eval preprocessing, and as a .npy input. Every outcome must be
// a tensor or a resnet::Error.
#include <resnet/image.hpp>
#include <resnet/resnet.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    resnet::DecodeOptions options;
    options.max_pixels = 1 << 22;  // keeps each execution fast; the limit logic is what is fuzzed
    try {
        const resnet::Image img = resnet::decode_image(data, size, "fuzz", options);
        resnet::Preprocess small;
        small.resize = 40;
        small.crop = 32;
        (void)resnet::preprocess<float>(img, small);
    } catch (const resnet::Error&) {
    }
    try {
        (void)resnet::parse_npy<float>(std::vector<uint8_t>(data, data + size), "fuzz.npy");
    } catch (const resnet::Error&) {
    }
    return 0;
}
