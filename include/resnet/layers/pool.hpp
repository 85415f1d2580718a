#pragma once
// MaxPool2d and AdaptiveAvgPool2d(1).
#include <algorithm>
#include <limits>

#include "../detail/thread_pool.hpp"

namespace resnet {

/// MaxPool2d(kernel, stride, pad), ceil_mode = false.
/// Output Ho = (H + 2·pad − kernel) / stride + 1 (floor), likewise Wo.
/// Padding behaves as −∞, as in PyTorch: a window's maximum is taken over its
/// in-bounds elements only (zero padding would clip negative inputs to 0).
struct MaxPool2d {
    int kernel = 3, stride = 2, pad = 1;

    int out_size(int in) const { return (in + 2 * pad - kernel) / stride + 1; }

    /// in: planes×h×w (planes = N·C), out: planes×Ho×Wo.
    template <class T>
    void forward(const T* in, int64_t planes, int h, int w, T* out, detail::ThreadPool& pool) const {
        const int ho = out_size(h), wo = out_size(w);
        pool.parallel_for(planes, [&](int64_t p) {
            const T* src = in + p * h * w;
            T* dst = out + p * ho * wo;
            for (int oy = 0; oy < ho; ++oy) {
                const int y0 = std::max(oy * stride - pad, 0), y1 = std::min(oy * stride - pad + kernel, h);
                for (int ox = 0; ox < wo; ++ox) {
                    const int x0 = std::max(ox * stride - pad, 0), x1 = std::min(ox * stride - pad + kernel, w);
                    T m = -std::numeric_limits<T>::infinity();
                    for (int y = y0; y < y1; ++y)
                        for (int x = x0; x < x1; ++x) m = std::max(m, src[y * w + x]);
                    dst[oy * wo + ox] = m;
                }
            }
        });
    }
};

/// AdaptiveAvgPool2d(1): N×C×H×W → N×C×1×1, the mean of each plane.
struct GlobalAvgPool {
    template <class T>
    void forward(const T* in, int64_t planes, int64_t plane_size, T* out, detail::ThreadPool& pool) const {
        pool.parallel_for(planes, [&](int64_t p) {
            const T* src = in + p * plane_size;
            T sum = 0;
            for (int64_t i = 0; i < plane_size; ++i) sum += src[i];
            out[p] = sum / T(plane_size);
        });
    }
};

}  // namespace resnet
