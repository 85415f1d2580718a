// Uses the installed package to decode the image named on the command line
// (or, given --zlib-bomb, testpng::zlib_bomb's 16×16 PNG inflating to 64 MiB)
// and preprocess it, printing its size and per-channel sums. Built twice: on
// resnet::image (libjpeg, libdeflate and libpng: RESNET_WITH_LIBJPEG,
// RESNET_WITH_LIBDEFLATE, RESNET_WITH_LIBPNG)
// and on the core target with stb_image's own decoders; run.cmake compares
// the two.
#include <resnet/image.hpp>

#include <cstdio>
#include <string>

#include "../png_bomb.hpp"

#if defined(EXPECT_LIBRARIES) != defined(RESNET_WITH_LIBJPEG) ||    \
    defined(EXPECT_LIBRARIES) != defined(RESNET_WITH_LIBDEFLATE) || \
    defined(EXPECT_LIBRARIES) != defined(RESNET_WITH_LIBPNG)
#error "resnet::image must define RESNET_WITH_LIBJPEG, RESNET_WITH_LIBDEFLATE and RESNET_WITH_LIBPNG, and only it"
#endif

int main(int argc, char** argv) {
    if (argc != 2) return 2;
    const std::string input = argv[1];
    const std::vector<uint8_t> bomb =
        input == "--zlib-bomb" ? testpng::zlib_bomb(16, 16, 64 << 20) : std::vector<uint8_t>{};
    resnet::Image img;
    try {
        img = bomb.empty() ? resnet::read_image(input) : resnet::decode_image(bomb.data(), bomb.size(), input);
    } catch (const resnet::Error& e) {
        std::printf("consumer_image: error: %s\n", e.what());
        return 1;
    }
    resnet::Preprocess small;
    small.resize = 8, small.crop = 8;
    const auto x = resnet::preprocess<float>(img, small);
    long long sum[3] = {};
    for (size_t i = 0; i < img.rgb.size(); ++i) sum[i % 3] += img.rgb[i];
    std::printf("consumer_image: %s %dx%d -> %s, channel sums %lld %lld %lld\n", argv[1], img.width, img.height,
                resnet::shape_str(x.shape()).c_str(), sum[0], sum[1], sum[2]);
    return 0;
}
