// Uses the installed resnet::image target: decodes the JPEG named on the
// command line through libjpeg and preprocesses it.
#include <resnet/image.hpp>

#include <cstdio>

#ifndef RESNET_WITH_LIBJPEG
#error "resnet::image must define RESNET_WITH_LIBJPEG"
#endif

int main(int argc, char** argv) {
    if (argc != 2) return 2;
    const resnet::Image img = resnet::read_image(argv[1]);
    resnet::Preprocess small;
    small.resize = 8, small.crop = 8;
    const auto x = resnet::preprocess<float>(img, small);
    std::printf("consumer_image: %s %dx%d -> %s\n", argv[1], img.width, img.height, resnet::shape_str(x.shape()).c_str());
    return 0;
}
