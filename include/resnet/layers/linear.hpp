#pragma once
// Linear (fully connected) layer.
#include <algorithm>

#include "../detail/kernels.hpp"
#include "../detail/thread_pool.hpp"
#include "../tensor.hpp"

namespace resnet {

/// y = x·Wᵀ + b.  Input N×F, output N×K; weight [K, F] as in PyTorch.
template <class T>
class Linear {
public:
    Linear() = default;
    Linear(Tensor<T> weight, Tensor<T> bias) : weight_(std::move(weight)), bias_(std::move(bias)) {
        bias_.require_shape({weight_.dim(0)}, "Linear bias");
    }

    int in_features() const { return int(weight_.dim(1)); }
    int out_features() const { return int(weight_.dim(0)); }

    /// in: n×F (row-major), out: n×K. Outputs in blocks of kBlock spread over
    /// the pool, each output one dot product of the process's kernels
    /// (Kernels::dot_rows), whatever the thread count (so the bits do not
    /// depend on it). At batch 1 this streams the whole weight matrix from
    /// DRAM (8 MB for ResNet-50's fc): with the caches flushed, 1 thread,
    /// AMD EPYC family 26 model 2, 248–266 µs against 310–382 µs for
    /// Eigen's product in a default-flags build (its SSE2 GEMV). Blocks
    /// outer, images inner, so a batch reads each block from DRAM once:
    /// batch 8 0.74 ms, batch 32 2.5 ms, against Eigen's GEMM 1.3 and 4.0.
    void forward(const T* in, int64_t n, T* out, detail::ThreadPool& pool) const {
        constexpr int64_t kBlock = 64;
        const auto& kern = detail::kernels<T>();
        const int64_t k = out_features(), f = in_features();
        pool.parallel_ranges((k + kBlock - 1) / kBlock, [&](int64_t b0, int64_t b1) {
            for (int64_t k0 = b0 * kBlock; k0 < std::min(k, b1 * kBlock); k0 += kBlock) {
                const int64_t rows = std::min(kBlock, k - k0);
                for (int64_t i = 0; i < n; ++i) {  // the block's rows (512 KB for fc) from cache after the first image
                    T* y = out + i * k + k0;
                    kern.dot_rows(weight_.data() + k0 * f, f, in + i * f, int(rows), y);
                    for (int64_t j = 0; j < rows; ++j) y[j] += bias_[k0 + j];
                }
            }
        });
    }

private:
    Tensor<T> weight_, bias_;
};

}  // namespace resnet
