#pragma once
// Winograd F(m×m, 3×3), m = 4 or 2, for 3×3, stride-1, pad-1, dilation-1
// convolutions.
#include <Eigen/Core>

#include <algorithm>
#include <cstdint>

#include "../detail/gemm.hpp"
#include "../detail/thread_pool.hpp"
#include "../tensor.hpp"

namespace resnet::winograd {

// ---------------------------------------------------------------------------
// Math (Lavin & Gray 2016, "Fast Algorithms for Convolutional Neural
// Networks"; Toom–Cook construction). Each 4×4 output tile Y of one output
// channel is
//     Y = Aᵀ [ Σ_c (G g_c Gᵀ) ⊙ (Bᵀ d_c B) ] A
// with d_c the 6×6 input patch of channel c (rows/cols 4·t−1 … 4·t+4, zero
// outside the image) and g_c its 3×3 kernel. The 36 points ξ = (a, b) of the
// 6×6 transformed domain are independent, so the channel sum is 36 GEMMs
//     M[ξ] (Cout × tiles) = U[ξ] (Cout × Cin) · V[ξ] (Cin × tiles),
// 2·36·Cout·Cin per 16 outputs instead of 2·9·16·Cout·Cin: 4× fewer flops.
//
// Interpolation points: 0, −1, 1, 1/2, −2 and ∞. Measured against a
// long-double direct convolution (post-ReLU-like inputs, He-scaled weights,
// Cin = 64 / 256 / 512), the max float error relative to max|ref| was
//     0, ±1, ±2        4.8e-6 / 6.7e-6 / 9.2e-6   (the textbook points)
//     0, ±1, ±1/2      5.9e-6 / 1.1e-5 / 9.3e-6
//     0, ±1, 1/2, −2   1.7e-6 / 2.8e-6 / 3.2e-6   ← used here
//     direct (float)   0.7e-6 / 1.3e-6 / 1.4e-6
// (RMS 2.9e-7 … 5.5e-7 vs 4.4e-7 … 8.1e-7 for the textbook points): the
// mixed set costs ~2–3× the direct float error instead of ~6×. In double
// every set stays ~1e-14 relative. Power-of-two row scalings of Bᵀ/G are
// exact and change nothing, so none is applied.
//
// With p = (0, −1, 1, 1/2, −2) and ∞ last:
//   Bᵀ = [ 1  −3/2  −2   3/2   1    0 ]     G = [   1      0      0   ]
//        [ 0    1  −5/2  1/2   1    0 ]         [ −1/3   1/3   −1/3  ]
//        [ 0   −1   1/2  5/2   1    0 ]         [  1/3   1/3    1/3  ]
//        [ 0   −2   −1    2    1    0 ]         [−16/15 −8/15  −4/15 ]
//        [ 0   1/2  −1  −1/2   1    0 ]         [ 1/15  −2/15   4/15 ]
//        [ 0    1  −3/2  −2   3/2   1 ]         [   0      0      1   ]
//   Aᵀ = [ 1   1   1    1     1    0 ]
//        [ 0  −1   1   1/2   −2    0 ]
//        [ 0   1   1   1/4    4    0 ]
//        [ 0  −1   1   1/8   −8    1 ]
// Row i of Bᵀ holds the coefficients of Π_{j≠i}(x − p_j) (row ∞: Π_j(x − p_j)),
// row i of G is (1, p_i, p_i²) / Π_{j≠i}(p_i − p_j), column i of Aᵀ is
// (1, p_i, p_i², p_i³) (column ∞: e₄).
//
// F(2×2, 3×3), points 0, 1, −1, ∞ (4×4 patches at rows 2·t−1 … 2·t+2):
//   Bᵀ = [ 1  0 −1  0 ]     G = [  1    0    0  ]     Aᵀ = [ 1  1  1  0 ]
//        [ 0  1  1  0 ]         [ 1/2  1/2  1/2 ]          [ 0  1 −1 −1 ]
//        [ 0 −1  1  0 ]         [ 1/2 −1/2  1/2 ]
//        [ 0  1  0 −1 ]         [  0    0    1  ]
// 16 points per 4 outputs: 2.25× fewer flops than direct (F(4×4): 4×), for
// 16/9 of the 3×3 weights instead of 36/9 — Conv2d picks it where the
// F(4×4) transforms would cost too much memory (see conv2d.hpp).
//
// ---------------------------------------------------------------------------
// Contract
//   * transform_weights() runs once, when the Conv2d is built: U = G g Gᵀ in
//     double, rounded to T, stored as α² Cout × Cin matrices (α = m + 2:
//     36 for m = 4, 16 for m = 2), each cut
//     into panels of kPanelRows output channels (Cin × kPanelRows, the last
//     one zero-padded) — the layout the GEMM micro-kernel streams.
//   * Plan::make(m, cin, cout, h, w) fixes the partition of one image's work
//     from the layer shape alone. The ⌈h/m⌉·⌈w/m⌉ tiles (row-major) are cut
//     into `chunks` runs of ≤ kMaxChunkTiles consecutive tiles (equal sizes).
//   * forward(): per image, two parallel_for passes —
//       1. input transform, one item per (chunk, kCinBlock input channels):
//          gather α×α patches (zero padding) L tiles at a time, Bᵀ d B, into
//          V[chunk][ξ][c][tile];
//       2. one item per (chunk, kItemPanels panels of output channels): the
//          α² GEMMs into the item's own M slice, then the output transform
//          Aᵀ M A with the epilogue fused (+ bias, + residual, ReLU), written
//          straight into the NCHW output, partial border tiles clipped.
//     Every item owns a fixed slice of the caller's scratch (offset from its
//     index); no sum is split across items and each dot product runs over
//     the input channels in order, so the output bits do not depend on the
//     thread count.
//   * Memory: U is α²/9 × the layer's 3×3 weights (4× for m = 4, 1.8× for
//     m = 2); a layer keeps U instead of its im2col weights.
//   * workspace_size(): V of all chunks + the pass-2 item slices
//     ≈ (α/m)²·(Cin + Cout rounded up to 66)·h·w elements; only Plan and the
//     layer shape decide it.
//   * Accuracy (ResNet-50 3×3 shapes, post-ReLU inputs, He weights, bias +
//     residual + ReLU; max|Δ| / max|y| vs the long-double oracle):
//                      64ch 56²   128ch 28²  256ch 14²  512ch 7²
//       float  im2col  3.1e-7     2.2e-7     2.0e-7     1.9e-7
//       float  wino    1.4e-6     1.9e-6     2.5e-6     2.7e-6   (m = 4; RMS 4–10× im2col's)
//       double im2col  4.3e-16    3.4e-16    3.1e-16    3.1e-16
//       double wino    2.6e-15    3.2e-15    6.0e-15    7.5e-15
//     Whole networks (tests "[models]", 78 checked outputs): the float error
//     vs torchvision is unchanged (median ratio to the im2col-only build
//     1.00, worst 1.33×; worst output at 2% of the 1e-4 tolerance).
//
// Measurements (AMD EPYC Zen 3 VM, 2 cores, AVX2 + FMA, g++ 12 -O3
// -march=native; shared machine, so each figure is the median over 3 runs of
// the median of 41 interleaved im2col/Winograd calls; batch 1, float, fused
// bias + residual + ReLU). ResNet-50's stride-1 3×3 layers at 224²:
//                      1 thread                      2 threads
//                  im2col   Winograd  speedup    im2col   Winograd  speedup
//   64ch  56×56    6.05 ms  2.44 ms   2.5×       3.07 ms  1.30 ms   2.4×
//   128ch 28×28    4.34 ms  1.47 ms   3.0×       2.91 ms  1.00 ms   2.9×
//   256ch 14×14    4.21 ms  1.28 ms   3.3×       2.72 ms  0.86 ms   3.1×
//   512ch  7×7     6.05 ms  6.31 ms   0.92×      3.29 ms  3.35 ms   0.99×
// (these figures predate the packed GEMM of detail/gemm.hpp, which sped up
// both paths). Auto leaves layers wider than 256 channels, which run at 7×7
// in ResNets at 224², on im2col: see conv2d.hpp.
// Single-thread phase split at 64ch 56²: input transform ~0.3 ms, GEMMs
// ~0.8 ms (~70 GFLOP/s), output transform + epilogue ~0.25 ms. The
// micro-kernel beat Eigen's GEMM on the 36 products by 1.2× (128ch, N = 49)
// to 2.2× (256ch, N = 16). Double: 2.7–3.3× on the first three layers, 1.6×
// at 7×7. Whole ResNet-50 at 224², float, 1 thread: 180 → 141 ms (1.27×).
// ---------------------------------------------------------------------------

constexpr int kMaxChunkTiles = 112;  // tiles per chunk (the GEMM's N); bounds scratch
constexpr int kCinBlock = 16;        // input channels per input-transform item
using resnet::detail::kPanelRows;     // output channels per micro-kernel panel
constexpr int kItemPanels = 11;      // panels per GEMM/output item (66 channels)

/// 3×3, stride 1, pad 1, dilation 1: the convolutions this file handles.
inline bool eligible(int kernel, int stride, int pad, int dilation) {
    return kernel == 3 && stride == 1 && pad == 1 && dilation == 1;
}

inline int panels(int cout) { return int(resnet::detail::panel_count(cout)); }

using resnet::detail::kLanes;  // tiles handled side by side
using resnet::detail::Lanes;

/// F(m×m, 3×3): α = m + 2 points per axis, G (α × 3), and
/// the 1-D transforms on L tiles side by side (see the matrices above).
/// The weight transform runs in double: in long double it took a quarter
/// of ResNet-50's load time, and rounding to float hides the difference.
template <int M>
struct Transform;

template <>
struct Transform<4> {
    static constexpr int alpha = 6;
    static constexpr double G[6][3] = {{1, 0, 0},
                                       {-1 / 3.0, 1 / 3.0, -1 / 3.0},
                                       {1 / 3.0, 1 / 3.0, 1 / 3.0},
                                       {-16 / 15.0, -8 / 15.0, -4 / 15.0},
                                       {1 / 15.0, -2 / 15.0, 4 / 15.0},
                                       {0, 0, 1}};
    /// o_i = (Bᵀ d)_i: d_j at s[j·ss + l], o_i to o[i·os + l].
    template <class T>
    static void input(const T* s, int64_t ss, T* o, int64_t os) {
        using A = Lanes<T>;
        using In = Eigen::Map<const A>;
        using Out = Eigen::Map<A>;
        const A d0 = In(s), d1 = In(s + ss), d2 = In(s + 2 * ss), d3 = In(s + 3 * ss), d4 = In(s + 4 * ss),
                d5 = In(s + 5 * ss);
        const A t1 = d3 - d1, t2 = d4 - d2;
        Out{o} = (d0 - d2) + t2 + T(1.5) * t1;
        Out{o + os} = (d4 + d1) + T(0.5) * d3 - T(2.5) * d2;
        Out{o + 2 * os} = (d4 - d1) + T(0.5) * d2 + T(2.5) * d3;
        Out{o + 3 * os} = t2 + T(2) * t1;
        Out{o + 4 * os} = t2 - T(0.5) * t1;
        Out{o + 5 * os} = (d5 - d3) - t1 + T(1.5) * t2;
    }
    /// y_i = (Aᵀ m)_i + add: m_j at s[j·ss + l], y_i to y[i·ys + l].
    template <class T>
    static void output(const T* s, int64_t ss, T* y, int64_t ys, T add) {
        using A = Lanes<T>;
        using In = Eigen::Map<const A>;
        using Out = Eigen::Map<A>;
        const A m0 = In(s), m1 = In(s + ss), m2 = In(s + 2 * ss), m3 = In(s + 3 * ss), m4 = In(s + 4 * ss),
                m5 = In(s + 5 * ss);
        const A sum = m1 + m2, dif = m2 - m1;
        Out{y} = ((m0 + sum) + (m3 + m4)) + add;
        Out{y + ys} = (dif + T(0.5) * m3 - T(2) * m4) + add;
        Out{y + 2 * ys} = (sum + T(0.25) * m3 + T(4) * m4) + add;
        Out{y + 3 * ys} = ((dif + m5) + T(0.125) * m3 - T(8) * m4) + add;
    }
};

template <>
struct Transform<2> {
    static constexpr int alpha = 4;
    static constexpr double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
    template <class T>
    static void input(const T* s, int64_t ss, T* o, int64_t os) {
        using A = Lanes<T>;
        using In = Eigen::Map<const A>;
        using Out = Eigen::Map<A>;
        const A d0 = In(s), d1 = In(s + ss), d2 = In(s + 2 * ss), d3 = In(s + 3 * ss);
        Out{o} = d0 - d2;
        Out{o + os} = d1 + d2;
        Out{o + 2 * os} = d2 - d1;
        Out{o + 3 * os} = d1 - d3;
    }
    template <class T>
    static void output(const T* s, int64_t ss, T* y, int64_t ys, T add) {
        using A = Lanes<T>;
        using In = Eigen::Map<const A>;
        using Out = Eigen::Map<A>;
        const A m0 = In(s), m1 = In(s + ss), m2 = In(s + 2 * ss), m3 = In(s + 3 * ss);
        Out{y} = ((m0 + m1) + m2) + add;
        Out{y + ys} = ((m1 - m2) - m3) + add;
    }
};

inline int alpha(int m) { return m + 2; }

/// U[ξ][panel][c][r] = (G g[panel·kPanelRows + r][c] Gᵀ)[ξ] (0 past Cout),
/// for w = [Cout, Cin, 3, 3] row-major.
template <class T, int M>
Tensor<T> transform_weights(const T* w, int cout, int cin) {
    using L = double;
    constexpr int a = Transform<M>::alpha;
    const auto& G = Transform<M>::G;
    const int np = panels(cout);
    Tensor<T> u({a * a, np, cin, kPanelRows});
    for (int o = 0; o < cout; ++o)
        for (int c = 0; c < cin; ++c) {
            const T* g = w + (int64_t(o) * cin + c) * 9;
            L gg[a][3];  // G·g
            for (int i = 0; i < a; ++i)
                for (int j = 0; j < 3; ++j) gg[i][j] = G[i][0] * g[j] + G[i][1] * g[3 + j] + G[i][2] * g[6 + j];
            for (int i = 0; i < a; ++i)
                for (int j = 0; j < a; ++j) {
                    const int64_t xi = i * a + j, panel = o / kPanelRows;
                    u[((xi * np + panel) * cin + c) * kPanelRows + o % kPanelRows] =
                        T(gg[i][0] * G[j][0] + gg[i][1] * G[j][1] + gg[i][2] * G[j][2]);
                }
        }
    return u;
}

/// transform_weights for a runtime m (4 or 2).
template <class T>
Tensor<T> transform_weights(int m, const T* w, int cout, int cin) {
    return m == 4 ? transform_weights<T, 4>(w, cout, cin) : transform_weights<T, 2>(w, cout, cin);
}

/// The fixed work partition of one image (see the contract above). Sizes in
/// elements of T.
struct Plan {
    int m = 4, alpha = 6, points = 36;  // output tile m×m, patch α×α, α² GEMMs
    int cin = 0, cout = 0, h = 0, w = 0;
    int tiles_y = 0, tiles_x = 0, tiles = 0;
    int chunks = 0, chunk_tiles = 0, ld = 0;  // ld: row length, chunk_tiles rounded up to 16
    int cin_blocks = 0, panels = 0, out_blocks = 0;
    int64_t v_stride = 0;  // between the ξ matrices of V (Cin·ld + a cache line: no 4K aliasing)
    int64_t v_chunk = 0, m_item = 0, out_item = 0, total = 0;

    static Plan make(int m, int cin, int cout, int h, int w) {
        Plan p;
        p.m = m, p.alpha = winograd::alpha(m), p.points = p.alpha * p.alpha;
        p.cin = cin, p.cout = cout, p.h = h, p.w = w;
        p.tiles_y = (h + m - 1) / m, p.tiles_x = (w + m - 1) / m, p.tiles = p.tiles_y * p.tiles_x;
        p.chunks = (p.tiles + kMaxChunkTiles - 1) / kMaxChunkTiles;
        p.chunk_tiles = (p.tiles + p.chunks - 1) / p.chunks;
        p.ld = (p.chunk_tiles + 15) / 16 * 16;
        p.cin_blocks = (cin + kCinBlock - 1) / kCinBlock;
        p.panels = winograd::panels(cout);
        p.out_blocks = (p.panels + kItemPanels - 1) / kItemPanels;
        p.v_stride = int64_t(cin) * p.ld + 16;
        p.v_chunk = p.points * p.v_stride;
        // M[o][ξ][tile] for the item's channels, then m² output rows of ld and
        // one interleaved output row (≤ m·ld).
        p.m_item = int64_t(kItemPanels) * kPanelRows * p.points * p.ld;
        p.out_item = p.m_item + int64_t(m) * m * p.ld + int64_t(m) * p.ld + 16;
        p.total = p.v_chunk * p.chunks + p.out_item * p.chunks * p.out_blocks + 16;  // + alignment slack
        return p;
    }
};

namespace detail {

inline int chunk_size(const Plan& p, int chunk) {
    return std::min(p.tiles, (chunk + 1) * p.chunk_tiles) - chunk * p.chunk_tiles;
}

/// Tiles processed by the vector code: the chunk's, rounded up to whole
/// vectors (the extra lanes carry zeros and are never stored).
template <class T>
inline int padded_size(int nt) {
    return (nt + kLanes<T> - 1) / kLanes<T> * kLanes<T>;
}

/// Input transform of channels [c0, c1) of one chunk into its V:
/// v[ξ·v_stride + c·ld + k] = (Bᵀ d B)[ξ] of tile k, channel c.
template <class T, int M>
void input_transform(const Plan& p, const T* x, int chunk, int c0, int c1, T* v) {
    constexpr int L = kLanes<T>, A = Transform<M>::alpha;
    const int first = chunk * p.chunk_tiles, nt = chunk_size(p, chunk), nv = padded_size<T>(nt);
    int y0s[kMaxChunkTiles], x0s[kMaxChunkTiles];  // top-left input pixel of each tile
    for (int k = 0; k < nt; ++k) y0s[k] = M * ((first + k) / p.tiles_x) - 1, x0s[k] = M * ((first + k) % p.tiles_x) - 1;
    for (int c = c0; c < c1; ++c) {
        const T* xc = x + int64_t(c) * p.h * p.w;
        T* vc = v + int64_t(c) * p.ld;
        for (int k0 = 0; k0 < nv; k0 += L) {
            alignas(64) T d[A * A * L];  // d[(r·α + s)·L + l]: patch element (r, s) of tile k0 + l
            for (int l = 0; l < L; ++l) {
                T* dl = d + l;
                if (k0 + l >= nt) {
                    for (int e = 0; e < A * A; ++e) dl[e * L] = T(0);
                    continue;
                }
                const int y0 = y0s[k0 + l], x0 = x0s[k0 + l];
                const bool full_row = x0 >= 0 && x0 + A <= p.w;
                for (int r = 0; r < A; ++r, dl += A * L) {
                    const int y = y0 + r;
                    if (y < 0 || y >= p.h) {
                        for (int s = 0; s < A; ++s) dl[s * L] = T(0);
                        continue;
                    }
                    const T* row = xc + int64_t(y) * p.w;
                    if (full_row)
                        for (int s = 0; s < A; ++s) dl[s * L] = row[x0 + s];
                    else
                        for (int s = 0; s < A; ++s) dl[s * L] = x0 + s >= 0 && x0 + s < p.w ? row[x0 + s] : T(0);
                }
            }
            alignas(64) T h[A * A * L];  // rows transformed: h[(r·α + b)·L + l]
            for (int r = 0; r < A; ++r) Transform<M>::input(d + r * A * L, L, h + r * A * L, L);
            for (int b = 0; b < A; ++b)
                Transform<M>::input(h + b * L, A * L, vc + b * p.v_stride + k0, A * p.v_stride);
        }
    }
}

/// m[r][j] = Σ_c u[c][r] · v[c·vs + j] for r < kPanelRows, j < NV·L; rows
/// r < rows are stored to m[r·ms + j].
template <class T, int NV>
inline void micro_kernel(int cin, const T* u, const T* v, int64_t vs, T* __restrict m, int64_t ms, int rows) {
    Lanes<T> acc[kPanelRows][NV];
    resnet::detail::panel_product<T, NV>(cin, u, v, vs, acc);
    for (int r = 0; r < rows; ++r)
        for (int j = 0; j < NV; ++j) Eigen::Map<Lanes<T>>(m + r * ms + j * kLanes<T>) = acc[r][j];
}

/// The α² products of one item: for every ξ, channels of panels
/// [p0, p0 + np) × the chunk's tiles, into m[(o − o0)·α²·ld + ξ·ld + k].
template <class T>
void gemms(const Plan& p, const T* u, const T* v, int p0, int np, int nv, T* m) {
    constexpr int L = kLanes<T>;
    const int64_t ms = int64_t(p.points) * p.ld;
    for (int xi = 0; xi < p.points; ++xi) {
        const T* vx = v + xi * p.v_stride;
        T* mx = m + xi * p.ld;
        for (int k0 = 0; k0 < nv;) {
            const int width = nv - k0 >= 2 * L ? 2 * L : L;
            for (int q = 0; q < np; ++q) {
                const int panel = p0 + q, rows = std::min(kPanelRows, p.cout - panel * kPanelRows);
                const T* up = u + (int64_t(xi) * p.panels + panel) * p.cin * kPanelRows;
                T* mo = mx + q * kPanelRows * ms + k0;
                if (width == 2 * L)
                    micro_kernel<T, 2>(p.cin, up, vx + k0, p.ld, mo, ms, rows);
                else
                    micro_kernel<T, 1>(p.cin, up, vx + k0, p.ld, mo, ms, rows);
            }
            k0 += width;
        }
    }
}

/// Output transform of channels [o0, o0 + nr) of one chunk from m (as
/// written by gemms) with the fused epilogue, into the image's output `out`
/// (Cout × h × w) with `residual` of the same shape (or null).
template <class T, int M>
void output_transform(const Plan& p, const T* m, int chunk, int o0, int nr, const T* bias, T* out,
                      const T* residual, bool relu, T* stage) {
    constexpr int L = kLanes<T>, A = Transform<M>::alpha;
    T* __restrict yb = stage;                  // yb[(i·m + j)·ld + k]: output (i, j) of tile k
    T* __restrict row = stage + M * M * p.ld;  // one output row of a run of tiles, ≤ m·ld
    const int first = chunk * p.chunk_tiles, nt = chunk_size(p, chunk), nv = padded_size<T>(nt);
    const int64_t plane = int64_t(p.h) * p.w;
    for (int o = o0; o < o0 + nr; ++o) {
        const T* mo = m + int64_t(o - o0) * p.points * p.ld;
        const T bo = bias[o];
        for (int k0 = 0; k0 < nv; k0 += L) {
            alignas(64) T t[A * M * L];  // columns transformed: t[(b·m + i)·L + l]
            for (int b = 0; b < A; ++b) Transform<M>::output(mo + b * p.ld + k0, A * p.ld, t + b * M * L, L, T(0));
            for (int i = 0; i < M; ++i) Transform<M>::output(t + i * L, M * L, yb + i * M * p.ld + k0, p.ld, bo);
        }
        T* oc = out + int64_t(o) * plane;
        const T* rc = residual ? residual + int64_t(o) * plane : nullptr;
        // Runs of tiles within one tile row: interleave the m columns of each
        // tile into an output row, then add the residual, ReLU and store.
        for (int k = 0; k < nt;) {
            const int t = first + k, ty = t / p.tiles_x, tx = t % p.tiles_x, n = std::min(p.tiles_x - tx, nt - k);
            const int x0 = M * tx, wn = std::min(M * n, p.w - x0);
            for (int i = 0; i < M && M * ty + i < p.h; ++i) {
                const T* yi = yb + i * M * p.ld + k;  // yi[j·ld + q]: output (i, j) of tile k + q
                for (int q = 0; q < n; ++q)
                    for (int j = 0; j < M; ++j) row[M * q + j] = yi[j * p.ld + q];
                const int64_t off = int64_t(M * ty + i) * p.w + x0;
                T* __restrict dst = oc + off;
                if (rc) {
                    const T* __restrict res = rc + off;
                    for (int q = 0; q < wn; ++q) row[q] += res[q];
                }
                if (relu)
                    for (int q = 0; q < wn; ++q) dst[q] = std::max(row[q], T(0));
                else
                    std::copy(row, row + wn, dst);
            }
            k += n;
        }
    }
}

template <class T, int M>
void forward(const Plan& p, const T* u, const T* bias, const T* in, int n, T* out, const T* residual, bool relu,
             T* ws, resnet::detail::ThreadPool& pool) {
    // 64-byte align the scratch (the caller's pointer may be anywhere).
    T* base = reinterpret_cast<T*>((reinterpret_cast<uintptr_t>(ws) + 63) & ~uintptr_t(63));
    T* v = base;
    T* items = base + p.v_chunk * p.chunks;
    const int64_t in_plane = int64_t(p.cin) * p.h * p.w, out_plane = int64_t(p.cout) * p.h * p.w;
    for (int img = 0; img < n; ++img) {
        const T* x = in + img * in_plane;
        pool.parallel_for(int64_t(p.chunks) * p.cin_blocks, [&](int64_t item) {
            const int chunk = int(item / p.cin_blocks), c0 = int(item % p.cin_blocks) * kCinBlock;
            input_transform<T, M>(p, x, chunk, c0, std::min(p.cin, c0 + kCinBlock), v + chunk * p.v_chunk);
        });
        T* y = out + img * out_plane;
        const T* res = residual ? residual + img * out_plane : nullptr;
        pool.parallel_for(int64_t(p.chunks) * p.out_blocks, [&](int64_t item) {
            const int chunk = int(item / p.out_blocks), p0 = int(item % p.out_blocks) * kItemPanels;
            const int np = std::min(kItemPanels, p.panels - p0), o0 = p0 * kPanelRows;
            const int nr = std::min(np * kPanelRows, p.cout - o0);
            T* m = items + item * p.out_item;
            gemms(p, u, v + chunk * p.v_chunk, p0, np, padded_size<T>(chunk_size(p, chunk)), m);
            output_transform<T, M>(p, m, chunk, o0, nr, bias, y, res, relu, m + p.m_item);
        });
    }
}

}  // namespace detail

/// in: n×Cin×h×w, out: n×Cout×h×w (+ residual of that shape, may be null),
/// u: transform_weights(p.m, …) of the layer, ws: p.total elements.
template <class T>
void forward(const Plan& p, const T* u, const T* bias, const T* in, int n, T* out, const T* residual, bool relu,
             T* ws, resnet::detail::ThreadPool& pool) {
    if (p.m == 4)
        detail::forward<T, 4>(p, u, bias, in, n, out, residual, relu, ws, pool);
    else
        detail::forward<T, 2>(p, u, bias, in, n, out, residual, relu, ws, pool);
}

}  // namespace resnet::winograd
