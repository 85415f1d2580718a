#pragma once
// Shared by the test TUs: fixture access, comparisons and the naive oracles.
#include <resnet/resnet.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace testutil {

inline std::string fixture(const std::string& name) { return std::string(RESNET_FIXTURE_DIR) + "/" + name; }

template <class A, class B>
double max_abs_diff(const resnet::Tensor<A>& a, const resnet::Tensor<B>& b) {
    if (a.shape() != b.shape())
        throw resnet::Error("compare: shape " + resnet::shape_str(a.shape()) + " vs " + resnet::shape_str(b.shape()));
    double m = 0;
    for (int64_t i = 0; i < a.size(); ++i) {
        const double d = std::abs(double(a[i]) - double(b[i]));
        if (std::isnan(d)) return std::numeric_limits<double>::infinity();  // std::max would skip it
        m = std::max(m, d);
    }
    return m;
}

template <class T>
double max_abs(const resnet::Tensor<T>& a) {
    double m = 0;
    for (T v : a) m = std::max(m, std::abs(double(v)));
    return m;
}

/// The project's tolerance: max|Δ| ≤ rel · max(1, max|reference|).
template <class A, class B>
bool close(const resnet::Tensor<A>& got, const resnet::Tensor<B>& ref, double rel) {
    return max_abs_diff(got, ref) <= rel * std::max(1.0, max_abs(ref));
}

/// Direct-loop convolution: the oracle for the GEMM path. No im2col, no
/// tiling; every output is a plain sum over (ci, ky, kx) in long double.
/// w is [Cout, Cin/groups, k, k]: output channel o reads input channels
/// [g·Cin/groups, (g+1)·Cin/groups) with g = o / (Cout/groups).
template <class T>
resnet::Tensor<T> naive_conv2d(const resnet::Tensor<T>& x, const resnet::Tensor<T>& w, const resnet::Tensor<T>& b,
                               int stride, int pad, int dil, int groups = 1) {
    const int64_t n = x.dim(0), h = x.dim(2), wd = x.dim(3), cout = w.dim(0), cin = w.dim(1), k = w.dim(2);
    const int64_t ho = (h + 2 * pad - dil * (k - 1) - 1) / stride + 1, wo = (wd + 2 * pad - dil * (k - 1) - 1) / stride + 1;
    resnet::Tensor<T> y({n, cout, ho, wo});
    for (int64_t i = 0; i < n; ++i)
        for (int64_t o = 0; o < cout; ++o)
            for (int64_t oy = 0; oy < ho; ++oy)
                for (int64_t ox = 0; ox < wo; ++ox) {
                    long double s = b[o];
                    const int64_t c0 = o / (cout / groups) * cin;
                    for (int64_t c = 0; c < cin; ++c)
                        for (int64_t ky = 0; ky < k; ++ky)
                            for (int64_t kx = 0; kx < k; ++kx) {
                                const int64_t iy = oy * stride - pad + ky * dil, ix = ox * stride - pad + kx * dil;
                                if (iy >= 0 && iy < h && ix >= 0 && ix < wd)
                                    s += (long double)x.at(i, c0 + c, iy, ix) * w.at(o, c, ky, kx);
                            }
                    y.at(i, o, oy, ox) = T(s);
                }
    return y;
}

/// Runs one Conv2d layer over a whole tensor with its own pool and scratch.
template <class T>
resnet::Tensor<T> run_conv(const resnet::Conv2d<T>& conv, const resnet::Tensor<T>& x, int threads,
                           const resnet::Tensor<T>* residual = nullptr, bool relu = false) {
    const int n = int(x.dim(0)), h = int(x.dim(2)), w = int(x.dim(3));
    resnet::Tensor<T> y({n, conv.out_channels(), conv.out_size(h), conv.out_size(w)});
    resnet::Tensor<T> col({std::max<int64_t>(1, conv.workspace_size(h, w))});
    resnet::detail::ThreadPool pool(threads);
    conv.forward(x.data(), n, h, w, y.data(), {residual ? residual->data() : nullptr, relu}, col.data(), pool);
    return y;
}

}  // namespace testutil
