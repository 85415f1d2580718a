#pragma once
// Eval-mode BatchNorm2d (+ ReLU) where it cannot fold into a convolution:
// the pre-activation BN of ResNetV2 blocks and its final BN, which feed both
// a convolution and, through a ReLU, nothing that could absorb them.
#include <cmath>

#include "../detail/thread_pool.hpp"
#include "../tensor.hpp"

namespace resnet {

/// y = x·s[c] + t[c] (then max(0, ·) when `relu`), with s = γ/√(σ²+ε) and
/// t = β − μ·s computed in double at load. Shape in = shape out (N×C×H×W).
template <class T>
class BatchNorm2d {
public:
    BatchNorm2d(const Tensor<T>& gamma, const Tensor<T>& beta, const Tensor<T>& mean, const Tensor<T>& var,
                double eps, bool relu)
        : scale_({gamma.size()}), shift_({gamma.size()}), relu_(relu) {
        for (int64_t c = 0; c < gamma.size(); ++c) {
            const double s = double(gamma[c]) / std::sqrt(double(var[c]) + eps);
            scale_[c] = T(s);
            shift_[c] = T(double(beta[c]) - double(mean[c]) * s);
        }
    }

    int channels() const { return int(scale_.size()); }

    /// in, out: channels() planes of plane_size elements each (one image).
    void forward(const T* in, int64_t plane_size, T* out, detail::ThreadPool& pool) const {
        pool.parallel_ranges(channels(), [&](int64_t begin, int64_t end) {
            for (int64_t c = begin; c < end; ++c) {
                const T s = scale_[c], t = shift_[c];
                const T* x = in + c * plane_size;
                T* y = out + c * plane_size;
                for (int64_t i = 0; i < plane_size; ++i) {
                    const T v = x[i] * s + t;
                    y[i] = relu_ && v < T(0) ? T(0) : v;
                }
            }
        });
    }

private:
    Tensor<T> scale_, shift_;
    bool relu_;
};

}  // namespace resnet
