// Uses the installed package: a random resnet18 on one 64×64 input. Built
// twice: as is, and with RESNET_NO_DISPATCH (only the portable kernels).
#include <resnet/resnet.hpp>

#include <cmath>
#include <cstdio>

int main() {
    const auto model = resnet::random_model("resnet18", 10);
    resnet::Tensor<float> x({1, 3, 64, 64});
    const auto logits = model.forward(x);
    if (logits.shape() != resnet::Shape{1, 10} || !std::isfinite(logits[0])) return 1;
#ifdef RESNET_NO_DISPATCH
    if (resnet::kernel_info().rfind("portable", 0) != 0) return 1;
#endif
    std::printf("consumer: %s -> logits %s, kernels %s\n", model.architecture().name.c_str(),
                resnet::shape_str(logits.shape()).c_str(), resnet::kernel_info().c_str());
    return 0;
}
