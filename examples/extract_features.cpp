// extract_features: a ResNet's features of images (or .npy tensors) → one .npy.
#include <algorithm>
#include <cstdio>

#include "cli.hpp"

namespace {

const char* const kUsage = R"(usage: extract_features --weights FILE [--layer avgpool|layer1|layer2|layer3|layer4]
                        [--threads N] [--resize S] [--crop C] [--interpolation bilinear|nearest]
                        --out FEATURES.npy INPUT...

INPUT is an image, preprocessed as the weights' framework does with the preset
in their metadata (--resize/--crop/--interpolation override it), or a .npy
float32 tensor 3xHxW or Nx3xHxW that is already normalized. --layer also takes
Keras names (conv4_block6_out, avg_pool, ...).

Writes the features of every image read, in input order, as one float32 .npy:
N x C for avgpool (the default; C = 2048 for resnet50), N x C x h x w for
layer1..layer4 (all inputs must then give the same h x w). An input that cannot
be read gets one line on stderr, the others are still written, and the exit
status is 1. --threads defaults to the CPUs this process may use (affinity mask,
cgroup quota); the first stderr line says how many threads run.
)";

int extract(const cli::Args& args) {
    const std::string layer = args.text("--layer", "avgpool"), out = args.text("--out", "");
    if (out.empty()) resnet::detail::fail("--out FEATURES.npy is required");
    const auto model = cli::load_model(args);
    std::cerr << "extract_features: " << model.threads() << (model.threads() == 1 ? " thread\n" : " threads\n");
    const int index = model.output_index(layer);
    if (index == 5) resnet::detail::fail("--layer ", layer, ": expected avgpool, layer1, layer2, layer3 or layer4");
    const auto pre = cli::preprocessing(model, args);
    resnet::Shape shape;  // of all features so far: N × (one image's feature shape)
    std::vector<float> features;
    const int failed = cli::for_each_input("extract_features", args.inputs, [&](const std::string& input) {
        resnet::Tensor<float> f = model.features(resnet::load_input<float>(input, pre), layer);
        if (index == 4) f = std::move(f).reshaped({f.dim(0), f.dim(1)});
        if (!shape.empty() && !std::equal(shape.begin() + 1, shape.end(), f.shape().begin() + 1, f.shape().end()))
            resnet::detail::fail(layer, " features ", resnet::shape_str(f.shape()), " differ in size from the earlier inputs' ",
                                 resnet::shape_str(shape), " (use .npy inputs of one size)");
        if (shape.empty()) shape = f.shape(), shape[0] = 0;
        shape[0] += f.dim(0);
        features.insert(features.end(), f.begin(), f.end());
    });
    if (!shape.empty()) {
        resnet::write_npy(out, resnet::Tensor<float>(shape, features.data()));
        std::printf("wrote %s: %s float32 (%s)\n", out.c_str(), resnet::shape_str(shape).c_str(), layer.c_str());
    }
    return failed ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
    return cli::run("extract_features", kUsage, argc, argv,
                    {"--weights", "--layer", "--threads", "--out", "--resize", "--crop", "--interpolation"}, {"--help"}, extract);
}
