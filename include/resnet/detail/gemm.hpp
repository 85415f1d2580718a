#pragma once
// The register-blocked GEMM both convolution paths run on: im2col / 1×1
// (conv2d.hpp) and the 36 Winograd products (winograd.hpp).
//
// A (the weights) is packed once, at load, into panels of kPanelRows rows
// stored k-major, so the micro-kernel reads it as one contiguous stream;
// B (activations) is read row-major, in place or from im2col. Each
// micro-tile is kPanelRows × 2 vectors of outputs accumulated in registers
// over k in order, so an output's bits depend only on the layer shape.
//
// Why not Eigen's GEMM (used here before): Eigen repacks the weights on
// every call and every tile, and the epilogue took a second pass over each
// tile. Measured on ResNet-50 at 224² (AMD EPYC Zen 3, AVX2 + FMA, g++ 12,
// interleaved runs, medians): 1 thread 143 → 114 ms, 2 threads 83 → 71 ms;
// k blocks and whole-strip rows (below, conv2d.hpp) then took the sum of
// the convolutions from 94.5 to 88.6 ms (best of 3, 1 thread).
#include <Eigen/Core>

#include <algorithm>
#include <cstdint>

#include "../tensor.hpp"
#include "thread_pool.hpp"

// The micro-kernel and its store must inline into the loop that owns the
// accumulators, or they live in memory: when GCC stopped inlining the
// store, a 128→512 1×1 layer at 28×28 went from 1.15 to 1.43 ms.
#if defined(__GNUC__)
#define RESNET_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define RESNET_ALWAYS_INLINE inline
#endif

namespace resnet::detail {

/// One 32-byte vector of T (AVX2). Vector code goes through Eigen fixed-size
/// arrays, which compile to the target's packet instructions (AVX2/FMA,
/// AVX-512, SSE, NEON) or scalar code; GCC does not reliably vectorize the
/// equivalent plain loops.
template <class T>
constexpr int kLanes = int(32 / sizeof(T));
template <class T>
using Lanes = Eigen::Array<T, kLanes<T>, 1>;

/// Micro-tile: kPanelRows rows × kStrip<T> columns, 12 accumulators of 16
/// available vector registers on AVX2.
constexpr int kPanelRows = 6;
template <class T>
constexpr int kStrip = 2 * kLanes<T>;

inline int64_t panel_count(int64_t rows) { return (rows + kPanelRows - 1) / kPanelRows; }

/// Packs the row-major rows × k matrix `a`:
///   out[(q·k + j)·kPanelRows + r] = a[(q·kPanelRows + r)·k + j], 0 past `rows`.
template <class T>
void pack_panels(const T* a, int64_t rows, int64_t k, T* out) {
    for (int64_t q = 0; q < panel_count(rows); ++q)
        for (int r = 0; r < kPanelRows; ++r) {
            const int64_t row = q * kPanelRows + r;
            T* dst = out + q * k * kPanelRows + r;
            for (int64_t j = 0; j < k; ++j) dst[j * kPanelRows] = row < rows ? a[row * k + j] : T(0);
        }
}

/// acc[r][v] = Σ_{c<k} a[c·kPanelRows + r] · b[c·ldb + v·L + l], c in order.
template <class T, int NV>
RESNET_ALWAYS_INLINE void panel_product(int64_t k, const T* __restrict a, const T* __restrict b, int64_t ldb,
                                        Lanes<T> (&acc)[kPanelRows][NV]) {
    using V = Lanes<T>;
    for (int r = 0; r < kPanelRows; ++r)
        for (int v = 0; v < NV; ++v) acc[r][v].setZero();
    for (int64_t c = 0; c < k; ++c, a += kPanelRows, b += ldb) {
        V x[NV];
        for (int v = 0; v < NV; ++v) x[v] = Eigen::Map<const V>(b + v * kLanes<T>);
        for (int r = 0; r < kPanelRows; ++r)
            for (int v = 0; v < NV; ++v) acc[r][v] += a[r] * x[v];
    }
}

/// What the output pass applies to each element, in this order:
/// + bias[row], + residual (same layout as the output, may be null), max(0, ·).
template <class T>
struct OutputOps {
    const T* bias = nullptr;
    const T* residual = nullptr;
    bool relu = false;
};

/// Writes rows [0, nrows) × columns [0, ncols) of one micro-tile to c (row
/// stride ldc) at (row0, col0): y = acc, or c + acc when `accumulate`; then,
/// when `ops` is given, the output ops (residual shares c's layout).
template <class T>
RESNET_ALWAYS_INLINE void store_tile(const Lanes<T> (&acc)[kPanelRows][2], int nrows, int ncols, T* c,
                                     int64_t ldc, bool accumulate, const OutputOps<T>* ops, int64_t row0,
                                     int64_t col0) {
    using V = Lanes<T>;
    constexpr int L = kLanes<T>;
    for (int r = 0; r < nrows; ++r) {
        T* dst = c + (row0 + r) * ldc + col0;
        const T bias = ops ? ops->bias[row0 + r] : T(0);
        const T* res = ops && ops->residual ? ops->residual + (row0 + r) * ldc + col0 : nullptr;
        const bool relu = ops && ops->relu;
        if (ncols == 2 * L) {
            for (int v = 0; v < 2; ++v) {
                V y = acc[r][v];
                if (accumulate) y = Eigen::Map<const V>(dst + v * L) + y;
                if (ops) y += bias;
                if (res) y += Eigen::Map<const V>(res + v * L);
                if (relu) y = y.max(T(0));
                Eigen::Map<V>{dst + v * L} = y;
            }
            continue;
        }
        alignas(64) T row[2 * L];
        Eigen::Map<V>{row} = acc[r][0];
        Eigen::Map<V>{row + L} = acc[r][1];
        for (int j = 0; j < ncols; ++j) {
            T y = row[j];
            if (accumulate) y = dst[j] + y;
            if (ops) y += bias;
            if (res) y += res[j];
            dst[j] = relu ? std::max(y, T(0)) : y;
        }
    }
}

/// Independent products of one gemm() call (a grouped convolution's groups):
/// product g reads A at a + g·a_stride and B at b + g·b_stride, and writes
/// rows [g·rows, (g+1)·rows) of c, with the bias and residual rows to match.
struct GemmGroups {
    int64_t count = 1, a_stride = 0, b_stride = 0;
};

/// c[rows × cols] (row stride ldc, as the residual's) = A · B through the
/// output ops, for each of `groups` products (above). A is packed by
/// pack_panels (rows × k). B is k × (strips·kStrip) in strips of kStrip
/// columns: element (r, s·kStrip + q) at b[s·strip_stride + r·row_stride + q].
/// For a row-major B whose row length `ld` is a multiple of kStrip (zero
/// past `cols`): row_stride = ld, strip_stride = kStrip.
///
/// k runs in blocks of kDepth: each micro-tile sums one block in registers
/// and adds it to c, so every output is ((block₀) + block₁) + … whatever the
/// work partition — the bits depend on the layer shape only. Work items are
/// (block of panels) × (block of strips); within an item the block of A
/// (≤ kABlockBytes) stays in L2 while the item walks its strips, and each
/// strip of B (kDepth × kStrip, 16 KB in float) is reused from L1 by every
/// panel of the block. k blocks measured 1.2–1.4× on ResNet-50's large-k
/// layers (3×3 at 14×14 and 7×7, k = 2304 / 4608), where each item had
/// re-streamed its whole B from L3.
///
/// A grouped call runs every group's items in one parallel_for, one barrier
/// instead of one per group. ResNeXt's grouped 3×3 layers (resnext50's five
/// shapes and layer1 of both 101s at 224², batch 1; Intel Xeon family 6
/// model 207, 2 vCPUs, shared; lower quartile of 60 calls, 3 interleaved
/// rounds): 1 thread 18.0 / 19.6 / 25.4 ms in all vs 20.6 / 22.6 / 28.2 ms
/// with a gemm() call per group; 2 threads, with other builds running,
/// 33 vs 47 ms in the least loaded round.
template <class T>
void gemm(const T* a, int64_t rows, int64_t k, const T* b, int64_t row_stride, int64_t strip_stride, int64_t cols,
          T* c, int64_t ldc, const OutputOps<T>& ops, ThreadPool& pool, const GemmGroups& groups = {}) {
    constexpr int S = kStrip<T>;
    constexpr int64_t kDepth = 256, kABlockBytes = 256 << 10, kBlockStrips = 8;
    const int64_t strips = (cols + S - 1) / S, np = panel_count(rows), depth = std::min(k, kDepth);
    const int64_t col_blocks = (strips + kBlockStrips - 1) / kBlockStrips;
    // Panels per item: as many as fit the L2 budget, fewer when that leaves
    // too few items to keep every thread busy (any split gives the same bits).
    const int64_t fit = std::max<int64_t>(1, kABlockBytes / (depth * kPanelRows * int64_t(sizeof(T))));
    const int64_t group_blocks = col_blocks * groups.count;
    const int64_t want_row_blocks = (4 * pool.threads() + group_blocks - 1) / group_blocks;
    const int64_t block_panels = std::clamp<int64_t>((np + want_row_blocks - 1) / want_row_blocks, 1, fit);
    const int64_t row_blocks = (np + block_panels - 1) / block_panels;
    pool.parallel_for(groups.count * row_blocks * col_blocks, [&](int64_t item) {
        const int64_t g = item / (row_blocks * col_blocks), rc = item % (row_blocks * col_blocks);
        const int64_t q0 = rc / col_blocks * block_panels, q1 = std::min(np, q0 + block_panels);
        const int64_t s0 = rc % col_blocks * kBlockStrips, s1 = std::min(strips, s0 + kBlockStrips);
        const T* ag = a + g * groups.a_stride;
        T* cg = c + g * rows * ldc;
        const OutputOps<T> og{ops.bias + g * rows, ops.residual ? ops.residual + g * rows * ldc : nullptr, ops.relu};
        for (int64_t k0 = 0; k0 < k; k0 += depth) {
            const int64_t kn = std::min(depth, k - k0);
            for (int64_t s = s0; s < s1; ++s) {
                const T* bs = b + g * groups.b_stride + s * strip_stride + k0 * row_stride;
                const int ncols = int(std::min<int64_t>(S, cols - s * S));
                for (int64_t q = q0; q < q1; ++q) {
                    Lanes<T> acc[kPanelRows][2];
                    panel_product<T, 2>(kn, ag + (q * k + k0) * kPanelRows, bs, row_stride, acc);
                    const int nrows = int(std::min<int64_t>(kPanelRows, rows - q * kPanelRows));
                    store_tile(acc, nrows, ncols, cg, ldc, k0 > 0, k0 + kn == k ? &og : nullptr, q * kPanelRows,
                               s * S);
                }
            }
        }
    });
}

}  // namespace resnet::detail
