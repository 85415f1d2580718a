#pragma once
// Winograd F(4×4, 3×3) for 3×3, stride-1, pad-1, dilation-1 convolutions.
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
// ---------------------------------------------------------------------------
// Contract
//   * transform_weights() runs once, when the Conv2d is built: U = G g Gᵀ in
//     long double, rounded to T, stored as 36 Cout × Cin matrices, each cut
//     into panels of kPanelRows output channels (Cin × kPanelRows, the last
//     one zero-padded) — the layout the GEMM micro-kernel streams.
//   * Plan::make(cin, cout, h, w) fixes the partition of one image's work
//     from the layer shape alone. The ⌈h/4⌉·⌈w/4⌉ tiles (row-major) are cut
//     into `chunks` runs of ≤ kMaxChunkTiles consecutive tiles (equal sizes).
//   * forward(): per image, two parallel_for passes —
//       1. input transform, one item per (chunk, kCinBlock input channels):
//          gather 6×6 patches (zero padding) L tiles at a time, Bᵀ d B, into
//          V[chunk][ξ][c][tile];
//       2. one item per (chunk, kItemPanels panels of output channels): the
//          36 GEMMs into the item's own M slice, then the output transform
//          Aᵀ M A with the epilogue fused (+ bias, + residual, ReLU), written
//          straight into the NCHW output, partial border tiles clipped.
//     Every item owns a fixed slice of the caller's scratch (offset from its
//     index); no sum is split across items and each dot product runs over
//     the input channels in order, so the output bits do not depend on the
//     thread count.
//   * Memory: U is 4× the layer's 3×3 weights (36 vs 9 values per channel
//     pair), kept for every eligible layer since the input size is known only
//     at forward(): +133 MB for ResNet-50 in float (its weights: 102 MB), of
//     which layer4's 76 MB sit idle at 224² (7×7 stays on im2col in float).
//   * workspace_size(): V of all chunks + the pass-2 item slices
//     ≈ 2.25·(Cin + Cout rounded up to 66)·h·w elements — about half of
//     im2col's 9·Cin·h·w at ResNet shapes; only Plan and the layer shape
//     decide it.
//   * Accuracy (ResNet-50 3×3 shapes, post-ReLU inputs, He weights, bias +
//     residual + ReLU; max|Δ| / max|y| vs the long-double oracle):
//                      64ch 56²   128ch 28²  256ch 14²  512ch 7²
//       float  im2col  3.1e-7     2.2e-7     2.0e-7     1.9e-7
//       float  wino    1.4e-6     1.9e-6     2.5e-6     2.7e-6   (RMS 4–10× im2col's)
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
// so Auto leaves 7×7 (2×2 tiles) on im2col in float: see profitable().
// Single-thread phase split at 64ch 56²: input transform ~0.3 ms, GEMMs
// ~0.8 ms (~70 GFLOP/s), output transform + epilogue ~0.25 ms. The
// micro-kernel beat Eigen's GEMM on the 36 products by 1.2× (128ch, N = 49)
// to 2.2× (256ch, N = 16). Double: 2.7–3.3× on the first three layers, 1.6×
// at 7×7. Whole ResNet-50 at 224², float, 1 thread: 180 → 141 ms (1.27×).
// ---------------------------------------------------------------------------

constexpr int kTiles = 36;           // points of the 6×6 transformed domain
constexpr int kMaxChunkTiles = 112;  // tiles per chunk (the GEMM's N); bounds scratch
constexpr int kCinBlock = 16;        // input channels per input-transform item
using resnet::detail::kPanelRows;     // output channels per micro-kernel panel
constexpr int kItemPanels = 11;      // panels per GEMM/output item (66 channels)

/// 3×3, stride 1, pad 1, dilation 1: the convolutions this file handles.
inline bool eligible(int kernel, int stride, int pad, int dilation) {
    return kernel == 3 && stride == 1 && pad == 1 && dilation == 1;
}

/// Auto mode: whether Winograd beats im2col + GEMM for this layer shape:
/// enough 4×4 tiles per image that the 36 GEMMs (N = tiles) amortize
/// streaming the 36·Cin·Cout transformed weights. Measured speedups over
/// im2col (batch 1, medians of 11–21 runs, 1 thread):
///   float   7×7 (4 tiles): 64ch 1.20×, 128ch 1.07×, 256ch 1.01×, 512ch 0.83–0.92×
///          10×10 (9 tiles): 64ch 1.70×, 256ch 1.89×, 512ch 1.99×
///           (2 threads: 7×7 0.92–1.13×, 10×10 1.6–2.0×)
///   double  4×4 (1 tile): 64ch 1.16×, 512ch 0.72×
///           6×6 / 7×7 (4 tiles): 1.31× … 2.43× (64–512ch)
/// so float needs ≥ 9 tiles and double ≥ 4 (double im2col is ~2× slower
/// than float, double Winograd only ~1.6×).
template <class T>
inline bool profitable(int /*cin*/, int /*cout*/, int h, int w) {
    const int64_t tiles = int64_t((h + 3) / 4) * ((w + 3) / 4);
    return tiles >= (sizeof(T) <= 4 ? 9 : 4);
}

inline int panels(int cout) { return int(resnet::detail::panel_count(cout)); }

/// U[ξ][panel][c][r] = (G g[panel·kPanelRows + r][c] Gᵀ)[ξ] (0 past Cout),
/// for w = [Cout, Cin, 3, 3] row-major.
template <class T>
Tensor<T> transform_weights(const T* w, int cout, int cin) {
    using L = long double;
    const L G[6][3] = {{1, 0, 0},
                       {-1 / L(3), 1 / L(3), -1 / L(3)},
                       {1 / L(3), 1 / L(3), 1 / L(3)},
                       {-16 / L(15), -8 / L(15), -4 / L(15)},
                       {1 / L(15), -2 / L(15), 4 / L(15)},
                       {0, 0, 1}};
    const int np = panels(cout);
    Tensor<T> u({kTiles, np, cin, kPanelRows});
    for (int o = 0; o < cout; ++o)
        for (int c = 0; c < cin; ++c) {
            const T* g = w + (int64_t(o) * cin + c) * 9;
            L gg[6][3];  // G·g
            for (int a = 0; a < 6; ++a)
                for (int j = 0; j < 3; ++j) gg[a][j] = G[a][0] * g[j] + G[a][1] * g[3 + j] + G[a][2] * g[6 + j];
            for (int a = 0; a < 6; ++a)
                for (int b = 0; b < 6; ++b) {
                    const int64_t xi = a * 6 + b, panel = o / kPanelRows;
                    u[((xi * np + panel) * cin + c) * kPanelRows + o % kPanelRows] =
                        T(gg[a][0] * G[b][0] + gg[a][1] * G[b][1] + gg[a][2] * G[b][2]);
                }
        }
    return u;
}

/// The fixed work partition of one image (see the contract above). Sizes in
/// elements of T.
struct Plan {
    int cin = 0, cout = 0, h = 0, w = 0;
    int tiles_y = 0, tiles_x = 0, tiles = 0;
    int chunks = 0, chunk_tiles = 0, ld = 0;  // ld: row length, chunk_tiles rounded up to 16
    int cin_blocks = 0, panels = 0, out_blocks = 0;
    int64_t v_stride = 0;  // between the ξ matrices of V (Cin·ld + a cache line: no 4K aliasing)
    int64_t v_chunk = 0, out_item = 0, total = 0;

    static Plan make(int cin, int cout, int h, int w) {
        Plan p;
        p.cin = cin, p.cout = cout, p.h = h, p.w = w;
        p.tiles_y = (h + 3) / 4, p.tiles_x = (w + 3) / 4, p.tiles = p.tiles_y * p.tiles_x;
        p.chunks = (p.tiles + kMaxChunkTiles - 1) / kMaxChunkTiles;
        p.chunk_tiles = (p.tiles + p.chunks - 1) / p.chunks;
        p.ld = (p.chunk_tiles + 15) / 16 * 16;
        p.cin_blocks = (cin + kCinBlock - 1) / kCinBlock;
        p.panels = winograd::panels(cout);
        p.out_blocks = (p.panels + kItemPanels - 1) / kItemPanels;
        p.v_stride = int64_t(cin) * p.ld + 16;
        p.v_chunk = kTiles * p.v_stride;
        // M[o][ξ][tile] for the item's channels, then 16 output rows of ld.
        p.out_item = int64_t(kItemPanels) * kPanelRows * kTiles * p.ld + 16 * int64_t(p.ld) + 4 * p.ld + 16;
        p.total = p.v_chunk * p.chunks + p.out_item * p.chunks * p.out_blocks + 16;  // + alignment slack
        return p;
    }
};

namespace detail {

using resnet::detail::kLanes;  // tiles handled side by side
using resnet::detail::Lanes;

/// L 1-D input transforms o = Bᵀ d: d_j at s[j·ss + l], o_i to o[i·os + l].
template <class T>
inline void input_1d(const T* s, int64_t ss, T* o, int64_t os) {
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

/// L 1-D output transforms y = Aᵀ m + add: m_j at s[j·ss + l], y_i to y[i·ys + l].
template <class T>
inline void output_1d(const T* s, int64_t ss, T* y, int64_t ys, T add = T(0)) {
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
template <class T>
void input_transform(const Plan& p, const T* x, int chunk, int c0, int c1, T* v) {
    constexpr int L = kLanes<T>;
    const int first = chunk * p.chunk_tiles, nt = chunk_size(p, chunk), nv = padded_size<T>(nt);
    int y0s[kMaxChunkTiles], x0s[kMaxChunkTiles];  // top-left input pixel of each tile
    for (int k = 0; k < nt; ++k) y0s[k] = 4 * ((first + k) / p.tiles_x) - 1, x0s[k] = 4 * ((first + k) % p.tiles_x) - 1;
    for (int c = c0; c < c1; ++c) {
        const T* xc = x + int64_t(c) * p.h * p.w;
        T* vc = v + int64_t(c) * p.ld;
        for (int k0 = 0; k0 < nv; k0 += L) {
            alignas(64) T d[36 * L];  // d[(r·6 + s)·L + l]: patch element (r, s) of tile k0 + l
            for (int l = 0; l < L; ++l) {
                T* dl = d + l;
                if (k0 + l >= nt) {
                    for (int e = 0; e < 36; ++e) dl[e * L] = T(0);
                    continue;
                }
                const int y0 = y0s[k0 + l], x0 = x0s[k0 + l];
                const bool full_row = x0 >= 0 && x0 + 6 <= p.w;
                for (int r = 0; r < 6; ++r, dl += 6 * L) {
                    const int y = y0 + r;
                    if (y < 0 || y >= p.h) {
                        for (int s = 0; s < 6; ++s) dl[s * L] = T(0);
                        continue;
                    }
                    const T* row = xc + int64_t(y) * p.w;
                    if (full_row)
                        for (int s = 0; s < 6; ++s) dl[s * L] = row[x0 + s];
                    else
                        for (int s = 0; s < 6; ++s) dl[s * L] = x0 + s >= 0 && x0 + s < p.w ? row[x0 + s] : T(0);
                }
            }
            alignas(64) T h[36 * L];  // rows transformed: h[(r·6 + b)·L + l]
            for (int r = 0; r < 6; ++r) input_1d(d + r * 6 * L, L, h + r * 6 * L, L);
            for (int b = 0; b < 6; ++b) input_1d(h + b * L, 6 * L, vc + b * p.v_stride + k0, 6 * p.v_stride);
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

/// The 36 products of one item: for every ξ, channels of panels
/// [p0, p0 + np) × the chunk's tiles, into m[(o − o0)·36·ld + ξ·ld + k].
template <class T>
void gemms(const Plan& p, const T* u, const T* v, int p0, int np, int nv, T* m) {
    constexpr int L = kLanes<T>;
    const int64_t ms = int64_t(kTiles) * p.ld;
    for (int xi = 0; xi < kTiles; ++xi) {
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
template <class T>
void output_transform(const Plan& p, const T* m, int chunk, int o0, int nr, const T* bias, T* out,
                      const T* residual, bool relu, T* stage) {
    constexpr int L = kLanes<T>;
    T* __restrict yb = stage;               // yb[(i·4 + j)·ld + k]: output (i, j) of tile k
    T* __restrict row = stage + 16 * p.ld;  // one output row of a run of tiles, ≤ 4·ld
    const int first = chunk * p.chunk_tiles, nt = chunk_size(p, chunk), nv = padded_size<T>(nt);
    const int64_t plane = int64_t(p.h) * p.w;
    for (int o = o0; o < o0 + nr; ++o) {
        const T* mo = m + int64_t(o - o0) * kTiles * p.ld;
        const T bo = bias[o];
        for (int k0 = 0; k0 < nv; k0 += L) {
            alignas(64) T t[24 * L];  // columns transformed: t[(b·4 + i)·L + l]
            for (int b = 0; b < 6; ++b) output_1d(mo + b * p.ld + k0, 6 * p.ld, t + b * 4 * L, L);
            for (int i = 0; i < 4; ++i) output_1d(t + i * L, 4 * L, yb + i * 4 * p.ld + k0, p.ld, bo);
        }
        T* oc = out + int64_t(o) * plane;
        const T* rc = residual ? residual + int64_t(o) * plane : nullptr;
        // Runs of tiles within one tile row: interleave the 4 columns of each
        // tile into an output row, then add the residual, ReLU and store.
        for (int k = 0; k < nt;) {
            const int t = first + k, ty = t / p.tiles_x, tx = t % p.tiles_x, n = std::min(p.tiles_x - tx, nt - k);
            const int x0 = 4 * tx, wn = std::min(4 * n, p.w - x0);
            for (int i = 0; i < 4 && 4 * ty + i < p.h; ++i) {
                const T *y0 = yb + (i * 4) * p.ld + k, *y1 = y0 + p.ld, *y2 = y1 + p.ld, *y3 = y2 + p.ld;
                for (int q = 0; q < n; ++q) {
                    row[4 * q] = y0[q];
                    row[4 * q + 1] = y1[q];
                    row[4 * q + 2] = y2[q];
                    row[4 * q + 3] = y3[q];
                }
                const int64_t off = int64_t(4 * ty + i) * p.w + x0;
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

}  // namespace detail

/// in: n×Cin×h×w, out: n×Cout×h×w (+ residual of that shape, may be null),
/// u: transform_weights() of the layer, ws: p.total elements.
template <class T>
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
            detail::input_transform(p, x, chunk, c0, std::min(p.cin, c0 + kCinBlock), v + chunk * p.v_chunk);
        });
        T* y = out + img * out_plane;
        const T* res = residual ? residual + img * out_plane : nullptr;
        pool.parallel_for(int64_t(p.chunks) * p.out_blocks, [&](int64_t item) {
            const int chunk = int(item / p.out_blocks), p0 = int(item % p.out_blocks) * kItemPanels;
            const int np = std::min(kItemPanels, p.panels - p0), o0 = p0 * kPanelRows;
            const int nr = std::min(np * kPanelRows, p.cout - o0);
            T* m = items + item * p.out_item;
            detail::gemms(p, u, v + chunk * p.v_chunk, p0, np, detail::padded_size<T>(detail::chunk_size(p, chunk)), m);
            detail::output_transform(p, m, chunk, o0, nr, bias, y, res, relu,
                                     m + int64_t(kItemPanels) * kPanelRows * kTiles * p.ld);
        });
    }
}

}  // namespace resnet::winograd
