#pragma once
// The register-blocked GEMM both convolution paths run on: im2col / 1×1
// (conv2d.hpp) and the 36 Winograd products (winograd.hpp).
//
// A (the weights) is packed once, at load, into panels of kPanelRows rows
// stored k-major, so the micro-kernel reads it as one contiguous stream;
// B (activations) is read in place, row-major. Each micro-tile is
// kPanelRows × 2 vectors of outputs accumulated in registers over the whole
// k range in order, so an output's bits depend only on the layer shape.
//
// Why not Eigen's GEMM (used here before): Eigen repacks the weights for
// every call and every tile, and applies the epilogue in a second pass. On
// ResNet-50 at 224² (AMD EPYC Zen 3, AVX2 + FMA, 1 thread) the whole network
// went from 142 ms with Eigen's products to the figure in README's benchmark
// table with this kernel; the same micro-kernel had already measured 1.2–2.2×
// Eigen on the Winograd products.
#include <Eigen/Core>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "../tensor.hpp"
#include "thread_pool.hpp"

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
inline void panel_product(int64_t k, const T* __restrict a, const T* __restrict b, int64_t ldb,
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

/// Stores rows [0, nrows) × columns [0, ncols) of one micro-tile to c (row
/// stride ldc) through the output ops; `row0` indexes bias and residual
/// (residual shares c's layout).
template <class T>
inline void store_tile(const Lanes<T> (&acc)[kPanelRows][2], int nrows, int ncols, T* c, int64_t ldc,
                       const OutputOps<T>& ops, int64_t row0, int64_t col0) {
    using V = Lanes<T>;
    constexpr int L = kLanes<T>;
    for (int r = 0; r < nrows; ++r) {
        const T bias = ops.bias[row0 + r];
        const T* res = ops.residual ? ops.residual + (row0 + r) * ldc + col0 : nullptr;
        T* dst = c + (row0 + r) * ldc + col0;
        if (ncols == 2 * L) {
            for (int v = 0; v < 2; ++v) {
                V y = acc[r][v] + bias;
                if (res) y += Eigen::Map<const V>(res + v * L);
                if (ops.relu) y = y.max(T(0));
                Eigen::Map<V>{dst + v * L} = y;
            }
            continue;
        }
        alignas(64) T row[2 * L];
        Eigen::Map<V>{row} = acc[r][0];
        Eigen::Map<V>{row + L} = acc[r][1];
        for (int j = 0; j < ncols; ++j) {
            T y = row[j] + bias;
            if (res) y += res[j];
            dst[j] = ops.relu ? std::max(y, T(0)) : y;
        }
    }
}

/// Scratch (elements) gemm() needs for k-row B operands.
template <class T>
int64_t gemm_scratch(int64_t k) {
    return k * kStrip<T>;
}

/// c[rows × cols] = A · B through the output ops, with A packed by
/// pack_panels (rows × k) and B row-major k × cols with row stride ldb.
/// `scratch` holds gemm_scratch(k) elements: the last, partial column strip
/// of B copied and zero-padded, so the kernel never reads past a row.
///
/// Work items are (block of panels) × (block of column strips), sized from
/// the shape alone: a block of A stays in L2 (kABlockBytes) while the item
/// walks its strips, and each strip of B is reused from L1/L2 by every panel
/// of the block.
template <class T>
void gemm(const T* a, int64_t rows, int64_t k, const T* b, int64_t ldb, int64_t cols, T* c,
          const OutputOps<T>& ops, T* scratch, ThreadPool& pool) {
    constexpr int S = kStrip<T>;
    constexpr int64_t kABlockBytes = 160 << 10, kBlockStrips = 8;
    const int64_t full = cols / S, tail = cols % S, strips = full + (tail > 0);
    if (tail)
        for (int64_t j = 0; j < k; ++j) {
            std::memcpy(scratch + j * S, b + j * ldb + full * S, size_t(tail) * sizeof(T));
            std::fill(scratch + j * S + tail, scratch + (j + 1) * S, T(0));
        }
    const int64_t np = panel_count(rows);
    const int64_t block_panels = std::clamp<int64_t>(kABlockBytes / (k * kPanelRows * int64_t(sizeof(T))), 1, np);
    const int64_t row_blocks = (np + block_panels - 1) / block_panels;
    const int64_t col_blocks = (strips + kBlockStrips - 1) / kBlockStrips;
    pool.parallel_for(row_blocks * col_blocks, [&](int64_t item) {
        const int64_t q0 = item / col_blocks * block_panels, q1 = std::min(np, q0 + block_panels);
        const int64_t s0 = item % col_blocks * kBlockStrips, s1 = std::min(strips, s0 + kBlockStrips);
        for (int64_t s = s0; s < s1; ++s) {
            const bool partial = s == full;
            const T* bs = partial ? scratch : b + s * S;
            for (int64_t q = q0; q < q1; ++q) {
                Lanes<T> acc[kPanelRows][2];
                panel_product<T, 2>(k, a + q * k * kPanelRows, bs, partial ? S : ldb, acc);
                const int nrows = int(std::min<int64_t>(kPanelRows, rows - q * kPanelRows));
                store_tile(acc, nrows, partial ? int(tail) : S, c, cols, ops, q * kPanelRows, s * S);
            }
        }
    });
}

}  // namespace resnet::detail
