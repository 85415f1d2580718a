#pragma once
// MaxPool2d, and global average / max pooling.
#include <algorithm>
#include <limits>
#include <vector>

#include "../detail/kernels.hpp"
#include "../detail/thread_pool.hpp"
#include "../error.hpp"

namespace resnet {

/// MaxPool2d(kernel, stride, pad), ceil_mode = false.
/// Output Ho = (H + 2·pad − kernel) / stride + 1 (floor), likewise Wo.
/// Padding behaves as −∞, as in PyTorch: a window's maximum is taken over its
/// in-bounds elements only. With `zero_pad` it is 0 instead, as Keras'
/// ZeroPadding2D followed by MaxPooling2D gives: a border window of negative
/// inputs yields 0 (it matters where no ReLU precedes the pool: ResNetV2).
/// As in PyTorch, pad ≤ kernel / 2 and the padded input holds one window.
struct MaxPool2d {
    int kernel = 3, stride = 2, pad = 1;
    bool zero_pad = false;

    int out_size(int in) const { return (in + 2 * pad - kernel) / stride + 1; }

    /// in: planes×h×w (planes = N·C), out: planes×Ho×Wo.
    template <class T>
    void forward(const T* in, int64_t planes, int h, int w, T* out, detail::ThreadPool& pool) const {
        if (kernel < 1 || stride < 1 || pad < 0 || 2 * pad > kernel || std::min(h, w) + 2 * pad < kernel)
            detail::fail("MaxPool2d: kernel ", kernel, " stride ", stride, " pad ", pad, " on a ", h, "x", w,
                         " input: needs 0 <= pad <= kernel/2 and kernel <= size + 2*pad");
        const int64_t out_plane = int64_t(out_size(h)) * out_size(w);
        pool.parallel_ranges(planes, [&](int64_t begin, int64_t end) {
            thread_local std::vector<T> cmax;  // grown once: a warm forward() does not allocate
            if (cmax.size() < size_t(w)) cmax.resize(size_t(w));
            for (int64_t p = begin; p < end; ++p) forward_plane(in + p * h * w, h, w, out + p * out_plane, cmax.data());
        });
    }

private:
    /// One plane, src h×w → dst Ho×Wo; cmax: w elements of scratch.
    /// Separable: each output row takes the column-wise max of its input rows
    /// (contiguous vectors), then the max along each window of that; max is
    /// exact, so this equals the 2-D window's. ResNet-50's pool (64 × 112² →
    /// 56², 1 thread, best of 30, Intel Xeon family 6 model 207, busy): 0.7
    /// ms vs 1.5–2.8 ms for the direct 2-D loop. Both steps run the kernels
    /// of the process's instruction set (detail/kernel_body.hpp), not loops
    /// left to the auto-vectorizer: median of 60 calls, 1 thread, AMD EPYC
    /// family 26 model 2, 204 µs at -O3 (SSE2 loops) and 485 µs at -O2
    /// (scalar) became 131 and 139 µs (AVX-512; AVX2 123, SSE2 166).
    template <class T>
    void forward_plane(const T* src, int h, int w, T* dst, T* cmax) const {
        const auto& kern = detail::kernels<T>();
        const int ho = out_size(h), wo = out_size(w);
        // Outputs [lo, hi) have their whole window inside the row.
        const int lo = std::min(wo, (pad + stride - 1) / stride);
        const int hi = std::max(lo, std::min(wo, w - kernel + pad < 0 ? 0 : (w - kernel + pad) / stride + 1));
        for (int oy = 0; oy < ho; ++oy, dst += wo) {
            const int y0 = std::max(oy * stride - pad, 0), y1 = std::min(oy * stride - pad + kernel, h);
            kern.rows_max(src + int64_t(y0) * w, w, y1 - y0, w, cmax);
            const bool rows_clipped = y1 - y0 < kernel;
            const auto border = [&](int ox) {
                const int x0 = std::max(ox * stride - pad, 0), x1 = std::min(ox * stride - pad + kernel, w);
                T m = zero_pad && (rows_clipped || x1 - x0 < kernel) ? T(0) : -std::numeric_limits<T>::infinity();
                for (int x = x0; x < x1; ++x) m = std::max(m, cmax[x]);
                dst[ox] = m;
            };
            for (int ox = 0; ox < lo; ++ox) border(ox);
            for (int ox = hi; ox < wo; ++ox) border(ox);
            if (stride == 2)
                kern.windows_max2(cmax, kernel, pad, lo, hi, dst);
            else
                window_max(cmax, lo, hi, dst);
            if (zero_pad && rows_clipped)
                for (int ox = lo; ox < hi; ++ox) dst[ox] = std::max(dst[ox], T(0));
        }
    }

    /// dst[ox] = max of cmax over ox's window, for ox in [lo, hi) (whole
    /// windows), any stride (stride 2, ResNet's: Kernels::windows_max2).
    template <class T>
    void window_max(const T* cmax, int lo, int hi, T* dst) const {
        for (int ox = lo; ox < hi; ++ox) dst[ox] = cmax[int64_t(ox) * stride - pad];
        for (int t = 1; t < kernel; ++t)
            for (int ox = lo; ox < hi; ++ox) dst[ox] = std::max(dst[ox], cmax[int64_t(ox) * stride - pad + t]);
    }
};

/// A model's global pooling; None: a Keras feature extractor built with
/// pooling=None, whose output is the last stage's (asked for its pooled
/// features anyway, it averages).
enum class Pooling { None, Avg, Max };

inline const char* pooling_name(Pooling p) { return p == Pooling::Avg ? "avg" : p == Pooling::Max ? "max" : "none"; }

/// Global pooling: N×C×H×W → N×C×1×1, each plane's mean (AdaptiveAvgPool2d(1),
/// Keras GlobalAveragePooling2D) or maximum (GlobalMaxPooling2D).
struct GlobalPool {
    Pooling kind = Pooling::Avg;

    /// `strips`: the input in Layout::Strips (conv2d.hpp); the same
    /// values in the same order either way.
    template <class T>
    void forward(const T* in, int64_t planes, int64_t plane_size, T* out, detail::ThreadPool& pool,
                 bool strips = false) const {
        const int64_t S = detail::kernels<T>().strip();
        pool.parallel_ranges(planes, [&](int64_t begin, int64_t end) {
            for (int64_t p = begin; p < end; ++p) {
                // runs of the plane: one, or its strips' S values
                const int64_t run = strips ? S : plane_size, stride = strips ? planes * S : 0;
                const T* src = in + (strips ? p * S : p * plane_size);
                T acc = kind == Pooling::Max ? src[0] : T(0);
                for (int64_t i = 0; i < plane_size; i += run) {
                    const T* r = src + i / run * stride;
                    const int64_t n = std::min(run, plane_size - i);
                    if (kind == Pooling::Max)
                        acc = std::max(acc, *std::max_element(r, r + n));
                    else
                        for (int64_t j = 0; j < n; ++j) acc += r[j];
                }
                out[p] = kind == Pooling::Max ? acc : acc / T(plane_size);
            }
        });
    }
};

}  // namespace resnet
