// Uses the installed package to decode the JPEG named on the command line
// and preprocess it, printing its size and per-channel sums. Built twice:
// on resnet::image (libjpeg, RESNET_WITH_LIBJPEG) and on the core target
// with stb_image's own JPEG decoder; run.cmake compares the two.
#include <resnet/image.hpp>

#include <cstdio>

#if defined(EXPECT_LIBJPEG) != defined(RESNET_WITH_LIBJPEG)
#error "resnet::image must define RESNET_WITH_LIBJPEG, and only it"
#endif

int main(int argc, char** argv) {
    if (argc != 2) return 2;
    const resnet::Image img = resnet::read_image(argv[1]);
    resnet::Preprocess small;
    small.resize = 8, small.crop = 8;
    const auto x = resnet::preprocess<float>(img, small);
    long long sum[3] = {};
    for (size_t i = 0; i < img.rgb.size(); ++i) sum[i % 3] += img.rgb[i];
    std::printf("consumer_image: %s %dx%d -> %s, channel sums %lld %lld %lld\n", argv[1], img.width, img.height,
                resnet::shape_str(x.shape()).c_str(), sum[0], sum[1], sum[2]);
    return 0;
}
