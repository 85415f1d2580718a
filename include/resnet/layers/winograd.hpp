#pragma once
// Winograd F(m×m, 3×3), m = 4 or 2, for 3×3, stride-1, pad-1, dilation-1
// convolutions.
#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "../detail/gemm.hpp"
#include "../detail/weight_arena.hpp"
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
//     36 for m = 4, 16 for m = 2), each cut into panels of R output
//     channels (Cin × R, the last one zero-padded; R = the micro-kernel's
//     panel rows, detail/kernels.hpp) — the layout the GEMM micro-kernel streams.
//   * Plan::make<T>(m, cin, cout, h, w) fixes the partition of one image's
//     work from the layer shape and the kernels' R alone. The ⌈h/m⌉·⌈w/m⌉ tiles (row-major) are cut
//     into `chunks` runs of ≤ kMaxChunkTiles consecutive tiles (equal sizes).
//   * forward(): per image, two parallel_for passes —
//       1. input transform, one item per (chunk, kCinBlock input channels):
//          take α×α patches (zero padding) L tiles (one vector) at a time, Bᵀ d B, into
//          V[chunk][ξ][c][tile];
//       2. one item per (chunk, ⌈kItemRows / R⌉ panels of output channels): the
//          α² GEMMs into the item's own M slice, then the output transform
//          Aᵀ M A with the epilogue fused (+ bias, + residual, ReLU), written
//          straight into the output (NCHW, or the GEMM's strip layout:
//          Conv2d's Layout::Strips), partial border tiles clipped.
//     Every item owns a fixed slice of the caller's scratch (offset from its
//     index); no sum is split across items and each dot product runs over
//     the input channels in order, so the output bits do not depend on the
//     thread count.
//   * Memory: U is α²/9 × the layer's 3×3 weights (4× for m = 4, 1.8× for
//     m = 2); a layer keeps U instead of its im2col weights. Keeping the
//     3×3 weights instead and expanding each item's panels of U for F(2×2)
//     in pass 2 (vector adds and halvings, into a per-thread buffer) would
//     save ResNet-50 30 MiB, but took it 1.05× the time at 1 and 2 threads
//     (forward() calls alternating with the stored-U build in one process,
//     medians of 40 pairs' ratios, AMD EPYC family 26 model 2): layer4's
//     expansion alone took ~0.3 ms per layer, more than the 7.4 MB less it
//     streams from DRAM saved.
//   * workspace_size(): V of all chunks (of the one chunk twice, below) +
//     the pass-2 item slices ≈ (α/m)²·(Cin + Cout rounded up to kItemRows)·h·w
//     elements; only Plan and the layer shape decide it.
//   * With one chunk, V has a second place, after the item slices, and at
//     more than one thread the layer's side (Conv2d::set_winograd_side; 0:
//     the first place) picks one; ResNet gives consecutive Winograd layers
//     alternate sides. Pass 2's items all read the whole of V, so at 2
//     threads each line of V ends up cached on both cores, and the next
//     input transform to write it waited for the other core to drop its
//     copy: pass 1 took longer at 2 threads than at 1 (alone, 256ch 14²: 74
//     against 51 µs; 128ch 28²: 87 against 58). So pass 2 also fetches for
//     ownership, spread over its micro-tile calls, the lines of the other
//     side that the same thread will write in the next layer's pass 1 if
//     that layer is alike (item i of k: channels [i·Cin/k, (i+1)·Cin/k),
//     as the shares line up). Alone, pass 1 then took 42 instead of 74 µs
//     (37 with those lines written beforehand). In ResNet-50 at 2 threads
//     (instrumented, 8 alternating processes): pass 1 of layer2.2–2.3 103 →
//     48–52 µs, of layer3.2–3.5 66 → 36–40, of layer4.2 45 → 28; pass 2
//     0–30 µs slower. The first layer of each stage, unlike the one before,
//     gains nothing. Whole forward, 2 threads, forward() calls alternating
//     with the build before in one process (medians of 40–100 pairs' ratios,
//     AMD EPYC family 26 model 2): ResNet-50 0.991–0.999× the time (eight
//     runs, host state changing), ResNet-18 0.983–0.992× (two), ResNet-101
//     0.986–0.991× (three); 1 thread, where the layout is as before,
//     0.9995× (30 pairs). Peak RSS unchanged: ResNet-50's largest scratch is
//     layer1's, two chunks at 56². A one-chunk layer run alone at 1 thread
//     still reserves the second place (workspace_size() takes no thread
//     count). Each of 2 threads transforming the whole input into a place
//     of its own instead (pass 1 done twice, one parallel step instead of
//     two, no line of V read by both cores): ResNet-50 at 2 threads
//     0.9945× and 0.9985× the old build's time, where the same A/B without
//     it gave 0.9949× and 0.9991× (40 pairs each): nothing.
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
// both paths). Auto now runs F(2×2) above 64 channels, up to 512, and im2col
// above that: see conv2d.hpp.
// Single-thread phase split at 64ch 56²: input transform ~0.3 ms, GEMMs
// ~0.8 ms (~70 GFLOP/s), output transform + epilogue ~0.25 ms. The
// micro-kernel beat Eigen's GEMM on the 36 products by 1.2× (128ch, N = 49)
// to 2.2× (256ch, N = 16). Double: 2.7–3.3× on the first three layers, 1.6×
// at 7×7. Whole ResNet-50 at 224², float, 1 thread: 180 → 141 ms (1.27×).
// ---------------------------------------------------------------------------

// Tiles per chunk (the GEMM's N); bounds scratch. 56 (four chunks of 49 at
// 56², half the V and M slices per item): ResNet-50 0.99–1.01× the time.
constexpr int kMaxChunkTiles = 112;
constexpr int kCinBlock = 16;  // input channels per input-transform item
// Output channels per GEMM/output item, rounded up to whole panels: 64
// splits every ResNet width into equal items under AVX-512's 8-row panels
// (66 took 9 panels, so 256 channels made items of 9, 9, 9 and 5 and 2
// threads split them 18 to 14: ResNet-50 0.985–0.987× the time at 2
// threads, 0.998× at 1; forward() calls alternating in one process, medians
// of 40 pairs' ratios, AMD EPYC family 26 model 2). 6-row panels: 11 either way.
// 32 (twice the items: layer1's and layer2's layers had 2 per step, and at 2
// threads the caller waited ~0.3 ms in each for the worker's), same A/B on
// AMD EPYC family 25 model 1 (AVX2, 6-row panels), both builds in both
// places: 1.001× the time at 2 threads, 1.008× at 1 (each item reads its
// chunk's V whole).
constexpr int kItemRows = 64;

/// 3×3, stride 1, pad 1, dilation 1: the convolutions this file handles.
inline bool eligible(int kernel, int stride, int pad, int dilation) {
    return kernel == 3 && stride == 1 && pad == 1 && dilation == 1;
}

/// F(m×m, 3×3): α = m + 2 points per axis and G (α × 3); the input and
/// output transforms (Bᵀ, Aᵀ) are in detail/kernel_body.hpp, per instruction set.
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
};

template <>
struct Transform<2> {
    static constexpr int alpha = 4;  // G: see transform_kernel
};

inline int alpha(int m) { return m + 2; }

/// x[ξ·stride] = (G g Gᵀ)[ξ] for one 3×3 kernel g (row-major), computed in
/// double and rounded to T. F(2×2)'s G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1] takes
/// no products: rows 0 and 3 pick a row, rows 1 and 2 halve g₀ + g₂ ± g₁.
/// Written so, instead of as the product by the table F(4×4) uses, it gave
/// the same bits (U of 256- and 512-channel layers) and the loads at 1
/// thread 0.91–0.93× the time for ResNet-50 (81 → 74 ms), 0.87–0.89× for
/// ResNet-101 (125–129 → 110–113), 0.89× for ResNet-18 (65 → 57): loads
/// after the first in one process, alternating with the table's build,
/// medians of 12–20 pairs, AMD EPYC family 26 model 2.
template <int M, class T>
RESNET_ALWAYS_INLINE void transform_kernel(const T* g, T* x, int stride) {
    constexpr int a = Transform<M>::alpha;
    double gg[a][3];  // G·g
    if constexpr (M == 2) {
        for (int j = 0; j < 3; ++j) {
            const double s = double(g[j]) + g[6 + j];
            gg[0][j] = g[j], gg[1][j] = (s + g[3 + j]) * 0.5, gg[2][j] = (s - g[3 + j]) * 0.5, gg[3][j] = g[6 + j];
        }
        for (int i = 0; i < a; ++i, x += a * stride) {
            const double s = gg[i][0] + gg[i][2];
            x[0] = T(gg[i][0]), x[stride] = T((s + gg[i][1]) * 0.5), x[2 * stride] = T((s - gg[i][1]) * 0.5),
            x[3 * stride] = T(gg[i][2]);
        }
    } else {
        const auto& G = Transform<M>::G;
        for (int i = 0; i < a; ++i)
            for (int j = 0; j < 3; ++j) gg[i][j] = G[i][0] * g[j] + G[i][1] * g[3 + j] + G[i][2] * g[6 + j];
        for (int i = 0; i < a; ++i)
            for (int j = 0; j < a; ++j)
                x[(i * a + j) * stride] = T(gg[i][0] * G[j][0] + gg[i][1] * G[j][1] + gg[i][2] * G[j][2]);
    }
}

/// U[ξ][panel][c][r] = (G g[panel·R + r][c] Gᵀ)[ξ] (0 past Cout), for
/// w = [Cout, Cin, 3, 3] row-major and R = kernels<T>().rows; in `arena`
/// (may be null: detail::layout_tensor), one item of its pool per panel.
template <class T, int M>
Tensor<T> transform_weights(const T* w, int cout, int cin, resnet::detail::WeightArena* arena) {
    constexpr int a = Transform<M>::alpha;
    const int R = resnet::detail::kernels<T>().rows, np = int(resnet::detail::panel_count(cout, R));
    Tensor<T> u = resnet::detail::layout_tensor<T>(arena, {a * a, np, cin, R});
    // One (panel, channel) at a time, its R rows gathered per ξ and stored as
    // one run: storing each row's α² values as computed wrote α² scattered
    // floats, and the transforms took 26% of ResNet-50's load (perf); 193
    // instead of 230 ms (medians of 8 interleaved runs). U is written once,
    // zero rows past Cout included: filling it with zeros first (fresh pages,
    // each trapping to a VM's hypervisor on first touch) took the load from
    // 245 to 254 ms (medians of 9 interleaved runs). AMD EPYC family 26
    // model 2.
    resnet::detail::run_items(resnet::detail::layout_pool(arena), np, [&](int64_t panel) {
        std::vector<T> run(size_t(a) * a * R);
        for (int c = 0; c < cin; ++c) {
            for (int r = 0; r < R; ++r) {
                const int o = int(panel) * R + r;
                if (o >= cout) {
                    for (int xi = 0; xi < a * a; ++xi) run[size_t(xi) * R + r] = T(0);
                    continue;
                }
                transform_kernel<M>(w + (int64_t(o) * cin + c) * 9, &run[size_t(r)], R);
            }
            for (int64_t xi = 0; xi < a * a; ++xi)
                std::copy_n(&run[size_t(xi) * R], R, &u[((xi * np + panel) * cin + c) * R]);
        }
    });
    return u;
}

/// transform_weights for a runtime m (4 or 2).
template <class T>
Tensor<T> transform_weights(int m, const T* w, int cout, int cin, resnet::detail::WeightArena* arena = nullptr) {
    return m == 4 ? transform_weights<T, 4>(w, cout, cin, arena) : transform_weights<T, 2>(w, cout, cin, arena);
}

/// The fixed work partition of one image (see the contract above). Sizes in
/// elements of T.
struct Plan {
    static constexpr int kMaxChunkTiles = winograd::kMaxChunkTiles;
    int m = 4, alpha = 6, points = 36;  // output tile m×m, patch α×α, α² GEMMs
    int cin = 0, cout = 0, h = 0, w = 0;
    int tiles_y = 0, tiles_x = 0, tiles = 0;
    int chunks = 0, chunk_tiles = 0, ld = 0;  // ld: row length, chunk_tiles rounded up to 16
    int rows = 6, lanes = 8;                  // the micro-kernel's panel rows and vector lanes
    int cin_blocks = 0, panels = 0, item_panels = 0, out_blocks = 0;
    int64_t v_stride = 0;  // between the ξ matrices of V (Cin·ld + a cache line: no 4K aliasing)
    int64_t v_chunk = 0, m_item = 0, out_item = 0, total = 0;
    int64_t side1 = 0;  // with one chunk, where V's second place starts (after the items), else 0

    template <class T>
    static Plan make(int m, int cin, int cout, int h, int w) {
        Plan p;
        p.m = m, p.alpha = winograd::alpha(m), p.points = p.alpha * p.alpha;
        p.cin = cin, p.cout = cout, p.h = h, p.w = w;
        p.tiles_y = (h + m - 1) / m, p.tiles_x = (w + m - 1) / m, p.tiles = p.tiles_y * p.tiles_x;
        p.chunks = (p.tiles + kMaxChunkTiles - 1) / kMaxChunkTiles;
        p.chunk_tiles = (p.tiles + p.chunks - 1) / p.chunks;
        p.ld = (p.chunk_tiles + 15) / 16 * 16;
        p.rows = resnet::detail::kernels<T>().rows, p.lanes = resnet::detail::kernels<T>().lanes;
        p.cin_blocks = (cin + kCinBlock - 1) / kCinBlock;
        p.panels = int(resnet::detail::panel_count(cout, p.rows));
        p.item_panels = (kItemRows + p.rows - 1) / p.rows;
        p.out_blocks = (p.panels + p.item_panels - 1) / p.item_panels;
        p.v_stride = int64_t(cin) * p.ld + 16;
        p.v_chunk = p.points * p.v_stride;
        // M[o][ξ][tile] for the item's channels, then m² output rows of ld and
        // one interleaved output row (≤ m·ld).
        p.m_item = int64_t(p.item_panels) * p.rows * p.points * p.ld;
        p.out_item = p.m_item + int64_t(m) * m * p.ld + int64_t(m) * p.ld + 16;
        p.total = p.v_chunk * p.chunks + p.out_item * p.chunks * p.out_blocks;
        if (p.chunks == 1) p.side1 = p.total, p.total += p.v_chunk;
        p.total += 16;  // alignment slack
        return p;
    }

    int chunk_size(int chunk) const { return std::min(tiles, (chunk + 1) * chunk_tiles) - chunk * chunk_tiles; }
    /// Tiles processed by the vector code: nt rounded up to whole vectors
    /// (≤ ld): V's extra lanes carry zeros, M's are never written (the
    /// output transform loads them as zeros) and no output is stored from them.
    int padded(int nt) const { return (nt + lanes - 1) / lanes * lanes; }
};

namespace detail {

/// The transforms of kernel_body.hpp for one instruction set, [0]: F(2×2), [1]: F(4×4).
template <class T>
struct Transforms {
    void (*input[2])(const Plan&, const T*, int, int, int, T*);
    void (*output[2])(const Plan&, const T*, int, int, int, const T*, T*, const T*, bool, T*, int64_t, int64_t, int);
};

#define RESNET_WINOGRAD_TRANSFORMS(ns, V)                                                 \
    Transforms<typename V::Scalar> {                                                      \
        {ns::wino_input<V, 2, Plan>, ns::wino_input<V, 4, Plan>},                         \
        { ns::wino_output<V, 2, Plan>, ns::wino_output<V, 4, Plan> }                      \
    }

/// The transforms of the process's instruction set (kernels<T>().isa).
template <class T>
const Transforms<T>& transforms() {
    using namespace resnet::detail;
    static const Transforms<T> t = [] {
#if RESNET_X86_DISPATCH
        if constexpr (std::is_same<T, float>::value) {
            switch (kernels<T>().isa) {
                case Isa::Sse2: return RESNET_WINOGRAD_TRANSFORMS(sse2, Sse2Vec);
                case Isa::Avx2: return RESNET_WINOGRAD_TRANSFORMS(avx2, Avx2Vec);
                case Isa::Avx512: return RESNET_WINOGRAD_TRANSFORMS(avx512, Avx512Vec);
                default: break;
            }
        }
#endif
        return RESNET_WINOGRAD_TRANSFORMS(portable, EigenVec<T>);
    }();
    return t;
}
#undef RESNET_WINOGRAD_TRANSFORMS

/// The α² products of one item: for every ξ, channels of panels
/// [p0, p0 + np) × the chunk's nt tiles, into m[(o − o0)·α²·ld + ξ·ld + k]
/// (columns k of the last vector past nt are left as they were: the output
/// transform computes them but stores nothing of them). If `next` is set,
/// its first `next_size` elements at each ξ (next + ξ·v_stride) are fetched
/// for ownership along the way, a share after each micro-tile call.
/// At 7×7 (16 tiles, one vector) the tiles are R rows × 1 vector. Standalone
/// (AVX-512, the 16 products (512 × 512) · (512 × 16), AMD EPYC family 26
/// model 2) such a tile ran at 164–180 GFLOP/s whether U came from L2, L3
/// or DRAM; neither a tile vectorized over output channels (3 vectors × 8
/// tiles, 11 loads per 24 FMAs instead of 9 per 8: 205–223 with up to 4 MB
/// of A cached, but 137–160 with all 16.8 MB and 104–121 from DRAM) nor
/// one of two panels (16 rows, 16 FMA chains: 132–181) did better.
template <class T>
void gemms(const Plan& p, const T* u, const T* v, int p0, int np, int nt, T* m, const T* next, int64_t next_size) {
    const auto& kern = resnet::detail::kernels<T>();
    const int S = kern.strip(), R = kern.rows;
    const int64_t ms = int64_t(p.points) * p.ld;
    constexpr int64_t kLine = 64 / int64_t(sizeof(T));
    const int64_t lines = next ? (next_size + kLine - 1) / kLine : 0;
    const int64_t strips = resnet::detail::strip_count(nt, S, kern.columns_past);
    const int64_t calls = np * strips, share = (lines + calls - 1) / calls;
    for (int xi = 0; xi < p.points; ++xi) {
        const T* vx = v + xi * p.v_stride;
        T* mx = m + xi * p.ld;
        int64_t fetched = 0;
        for (int64_t s = 0; s < strips; ++s)
            for (int q = 0; q < np; ++q) {
                for (const int64_t end = std::min(lines, fetched + share); fetched < end; ++fetched)
                    RESNET_PREFETCH_WRITE(next + xi * p.v_stride, fetched * kLine);
                const int panel = p0 + q, rows = std::min(R, p.cout - panel * R);
                resnet::detail::strip_tiles(kern, R,
                                            {p.cin, u + (int64_t(xi) * p.panels + panel) * p.cin * R, vx + s * S, p.ld,
                                             0, mx + q * R * ms + s * S, ms, rows,
                                             resnet::detail::strip_width(s, strips, nt, S), false, nullptr, nullptr,
                                             false});
            }
    }
}

template <class T>
void forward(const Plan& p, const T* u, const T* bias, const T* in, int n, T* out, resnet::detail::MatrixLayout ol,
             const T* residual, bool relu, T* ws, int side, resnet::detail::ThreadPool& pool) {
    const Transforms<T>& tr = transforms<T>();
    const int S = resnet::detail::kernels<T>().strip();
    const int which = p.m == 4;
    // 64-byte align the scratch (the caller's pointer may be anywhere).
    T* base = reinterpret_cast<T*>((reinterpret_cast<uintptr_t>(ws) + 63) & ~uintptr_t(63));
    const bool sides = p.side1 > 0 && pool.threads() > 1;
    T* v = base + (sides && side % 2 ? p.side1 : 0);
    const T* next_v = sides ? base + (side % 2 ? 0 : p.side1) : nullptr;
    T* items = base + p.v_chunk * p.chunks;
    // Images lie NCHW apart: a batch comes in planes only (Layout::Strips
    // takes one image). Not ol.span(): for planes narrower than a strip
    // that rounds up to one, and the next image's output started past the
    // end of this one's (cout·h·w < S, e.g. 5 × 2×3 under AVX-512's 48).
    const int64_t in_plane = int64_t(p.cin) * p.h * p.w, out_plane = int64_t(p.cout) * p.h * p.w;
    for (int img = 0; img < n; ++img) {
        const T* x = in + img * in_plane;
        pool.parallel_for(int64_t(p.chunks) * p.cin_blocks, [&](int64_t item) {
            const int chunk = int(item / p.cin_blocks), c0 = int(item % p.cin_blocks) * kCinBlock;
            tr.input[which](p, x, chunk, c0, std::min(p.cin, c0 + kCinBlock), v + chunk * p.v_chunk);
        });
        T* y = out + img * out_plane;
        const T* res = residual ? residual + img * out_plane : nullptr;
        pool.parallel_for(int64_t(p.chunks) * p.out_blocks, [&](int64_t item) {
            const int chunk = int(item / p.out_blocks), p0 = int(item % p.out_blocks) * p.item_panels;
            const int np = std::min(p.item_panels, p.panels - p0), o0 = p0 * p.rows;
            const int nr = std::min(np * p.rows, p.cout - o0);
            T* m = items + item * p.out_item;
            // The item's fraction of the other side's channels: with the
            // items in order, what this thread's share of the next
            // layer's input transform writes there, if that layer is alike.
            const int64_t c0 = item * p.cin / p.out_blocks, c1 = (item + 1) * p.cin / p.out_blocks;
            gemms(p, u, v + chunk * p.v_chunk, p0, np, p.chunk_size(chunk), m, next_v ? next_v + c0 * p.ld : nullptr,
                  (c1 - c0) * p.ld);
            tr.output[which](p, m, chunk, o0, nr, bias, y, res, relu, m + p.m_item, ol.row, ol.strip, S);
        });
    }
}

}  // namespace detail

/// in: n×Cin×h×w, out: n images of Cout × h·w in layout `ol` (planes:
/// NCHW; + residual in the same layout, may be null), u:
/// transform_weights(p.m, …) of the layer, ws: p.total elements, side:
/// where V goes when it has two places (0 or 1; see the contract).
template <class T>
void forward(const Plan& p, const T* u, const T* bias, const T* in, int n, T* out, resnet::detail::MatrixLayout ol,
             const T* residual, bool relu, T* ws, int side, resnet::detail::ThreadPool& pool) {
    detail::forward(p, u, bias, in, n, out, ol, residual, relu, ws, side, pool);
}

}  // namespace resnet::winograd
