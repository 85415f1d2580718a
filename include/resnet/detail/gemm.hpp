#pragma once
// The register-blocked GEMM both convolution paths run on: im2col / 1×1
// (conv2d.hpp) and the 36 Winograd products (winograd.hpp).
//
// A (the weights) is packed once, at load, into panels of R rows stored
// k-major, so the micro-kernel reads it as one contiguous stream; B
// (activations) is read row-major, in place or from im2col. Each micro-tile
// is R rows × one strip of S columns accumulated in registers over k in
// order, so an output's bits depend only on the layer shape and the
// instruction set. R, S and the micro-kernel are those of the set chosen at
// run time (kernels.hpp, isa.hpp): the weights are packed for it at load.
//
// Why not Eigen's GEMM (used here before): Eigen repacks the weights on
// every call and every tile, and the epilogue took a second pass over each
// tile. Measured on ResNet-50 at 224² (AMD EPYC Zen 3, AVX2 + FMA, g++ 12,
// interleaved runs, medians): 1 thread 143 → 114 ms, 2 threads 83 → 71 ms;
// k blocks and whole-strip rows (below, conv2d.hpp) then took the sum of
// the convolutions from 94.5 to 88.6 ms (best of 3, 1 thread).
#include <algorithm>
#include <cstdint>

#include "../tensor.hpp"
#include "kernels.hpp"
#include "populate.hpp"
#include "thread_pool.hpp"

namespace resnet::detail {

inline int64_t panel_count(int64_t rows, int panel_rows) { return (rows + panel_rows - 1) / panel_rows; }

/// Packs the row-major rows × k matrix `a` into np = ⌈rows/R⌉ panels of
/// R = panel_rows rows, k block by k block (kernels<T>().depth columns each):
/// column j of block k0 (kn columns) and row q·R + r go to
///   out[k0·np·R + (q·kn + j − k0)·R + r]   (0 past `rows`)
/// so one block's panels, which consecutive micro-tiles read, are one stream.
/// One item of `pool` (may be null) per panel.
template <class T>
void pack_panels(const T* a, int64_t rows, int64_t k, int panel_rows, T* out, ThreadPool* pool = nullptr) {
    const int R = panel_rows;
    const int64_t np = panel_count(rows, R), depth = kernels<T>().depth;
    run_items(pool, np, [&](int64_t q) {
        for (int64_t k0 = 0; k0 < k; k0 += depth) {
            const int64_t kn = std::min(depth, k - k0);
            for (int r = 0; r < R; ++r) {
                const int64_t row = q * R + r;
                T* dst = out + k0 * np * R + q * kn * R + r;
                for (int64_t j = 0; j < kn; ++j) dst[j * R] = row < rows ? a[row * k + k0 + j] : T(0);
            }
        }
    });
}

/// What the output pass applies to each element: + residual (same layout as
/// the output, may be null, may be the output itself) with the first k
/// block's sums, + bias[row] and max(0, ·) after the last (see gemm()).
template <class T>
struct OutputOps {
    const T* bias = nullptr;
    const T* residual = nullptr;
    bool relu = false;
};

/// Independent products of one gemm() call (a grouped convolution's groups):
/// product g reads A at a + g·a_stride and B at b + g·b_stride, and writes
/// rows [g·rows, (g+1)·rows) of c, with the bias and residual rows to match.
struct GemmGroups {
    int64_t count = 1, a_stride = 0, b_stride = 0;
};

/// Whether strip_tiles runs tile_columns on the `rest` columns of a strip
/// past its whole vectors, under panels of R rows.
inline bool takes_columns(int rest, int R) { return rest > 0 && rest <= kColumns && rest < R; }

/// A product's strips of S columns: ⌈cols/S⌉, except that a last one of
/// at most E columns (Kernels::columns_past_for) joins the strip before
/// it, whose tile sums them in its own k loop (tile_n). In a strip of their
/// own, run after the whole strips' tiles by tile_columns, they had every
/// row of B's block read again: the 512 × 2048 × 49 product (ResNet-50's
/// layer4 1×1s) took 552–557 µs against 465–469 µs in one tile and
/// 447–453 µs for 48 columns; 256 × 1024 × 196 (layer3's 1×1s) 478–484
/// against 467–472 (1 thread, lower quartiles of 400 calls, AMD EPYC
/// family 26 model 2).
/// In the network, forward() calls alternating with the previous build
/// (medians of 40–60 pairs' ratios, same CPU): ResNet-50 0.964–0.971× the
/// time at 1 thread and 0.961–0.972× at 2, ResNet-18 0.976× and 0.963×,
/// ResNet-101 0.969× and 0.967× (the 1×1s at 7² and 14², the Winograd
/// products at 14² and 28² (49 tiles) and 56² (chunks of 98)).
inline int64_t strip_count(int64_t cols, int S, int E) {
    const int64_t strips = (cols + S - 1) / S;
    return strips > 1 && cols - (strips - 1) * S <= E ? strips - 1 : strips;
}

/// The columns of strip s of a product's `strips` (strip_count).
inline int strip_width(int64_t s, int64_t strips, int64_t cols, int S) {
    return int(s + 1 == strips ? cols - s * S : S);
}

/// One strip's micro-tiles, t as for Kernels::tile with t.cols ≤ strip(), or
/// up to columns_past_for(R) more (a last strip, strip_count) (t.vectors is
/// set here): one tile of the vectors that cover t.cols, or of all the set's
/// vectors and the columns past them; or, when the columns past the whole
/// vectors are at most kColumns and fewer than the panel's R rows, a tile
/// of the whole vectors (if any) and tile_columns on the rest, whose cost
/// per k is one vector FMA per column instead of R. tile_columns took the
/// 7×7 layers (49 = 3·16 + 1 columns under AVX-512, then a one-vector tile
/// for the last) 5–9% faster (layer4's 3×3s 5.36 → 5.04 ms), the 14²
/// Winograd 3×3s 7.50 → 7.14 ms (ResNet-50, 1 thread, in the network, 8
/// interleaved rounds, medians, Intel Xeon family 6 model 207); since
/// strip_count, it runs on such columns only where no whole strip precedes
/// them or the set's tile takes fewer (16-register sets).
template <class T>
RESNET_ALWAYS_INLINE void strip_tiles(const Kernels<T>& kern, int R, TileArgs<T> t) {
    const int L = kern.lanes, whole = t.cols / L * L, rest = t.cols - whole;
    if (!takes_columns(rest, R) || whole >= kern.strip()) {
        t.vectors = std::min(kern.vectors, (t.cols + L - 1) / L);
        return kern.tile_for(R)(t);
    }
    if (whole > 0) {
        TileArgs<T> w = t;
        w.vectors = whole / L;
        w.cols = whole;
        kern.tile_for(R)(w);
    }
    t.b += whole;
    t.c += whole;
    if (t.residual) t.residual += whole;
    t.cols = rest;
    kern.columns_for(R)(t);
}

/// Where element (r, q) of gemm()'s B (k × cols) or C (rows × cols) lies:
/// at p[(q / S)·strip + r·row + q % S], S = kernels<T>().strip(). Row-major,
/// rows ld apart: planes(ld) = {ld, S}. The strip layout of an n-row
/// matrix: strips(n) = {S, n·S}, each strip's n × S block one contiguous
/// run (the last strip's columns past cols are never read as values).
/// For ResNet's widths n·S floats is a multiple of 4 KB, so one row's
/// lines across strips share an L1 set; strips padded by one line,
/// {S, (n + 1)·S}, left ResNet-50 at 0.954–1.006× the time (median 0.996;
/// 1 thread, two builds alternating in one process, both orders, AMD EPYC
/// family 25 model 1): not kept.
struct MatrixLayout {
    int64_t row, strip;
    template <class T>
    static MatrixLayout planes(int64_t ld) { return {ld, kernels<T>().strip()}; }
    template <class T>
    static MatrixLayout strips(int64_t rows) { return {kernels<T>().strip(), rows * kernels<T>().strip()}; }
    /// Elements a rows × cols matrix may span, in either layout.
    int64_t span(int64_t rows, int64_t cols, int S) const {
        return std::max(rows * row, (cols + S - 1) / S * strip);
    }
};

/// c[rows × cols] (layout cl, as the residual's) = A · B (layout bl)
/// through the output ops, for each of `groups` products (above; grouped
/// products take planes only). A is packed by pack_panels (rows × k, R =
/// kernels<T>().panel_rows_for(rows)). B is k × (strips·S) in strips of S =
/// kernels<T>().strip() columns (MatrixLayout). For a row-major B whose
/// row length `ld` is a multiple of S (zero past `cols`): planes(ld); no
/// tile reads past column `cols` when the columns past the last whole
/// vector are none or go to tile_columns (takes_columns), so ld = cols
/// also serves then. A strip takes the next one's few last columns
/// (strip_count) only where both B's and C's strips lie side by side.
///
/// k runs in blocks of kern.depth: each micro-tile sums one block in registers
/// and adds it to c, so every output is ((block₀ + residual) + block₁) + … +
/// bias whatever the work partition (block₀ + bias + residual with one
/// block) — the bits depend on the layer shape only. The residual enters
/// with block₀, before the tile first writes c, so it may be c itself. Work items are
/// (block of panels) × (block of strips; a product's strips cut into equal
/// blocks, within one strip, of at most kBlockStrips); within an item each panel walks
/// the item's strips: its block of A (depth × R, 16 KB in float for
/// AVX-512's 512 × 8) is reused from L1 and the item's block of B (at
/// most 768 KB under AVX-512's 48-column strips; 4 strips instead of 8 changed nothing
/// measurable, 0.979× at 1 thread but 0.998× at 2 against 8's 0.98× and
/// 0.97–0.99×) from L2, and each of the panel's output rows is written as
/// one run of the block's strips, R streams the hardware prefetcher
/// follows. (Strips outer and panels inner, as before, wrote every row of the block 128
/// bytes at a time: ResNet-50's 1×1 layers at 56² took 7.7 instead of
/// 6.7 ms at 1 thread, 2 threads unchanged; in the network, 6 interleaved
/// rounds, medians, Intel Xeon family 6 model 207.) k blocks measured
/// 1.2–1.4× on ResNet-50's large-k layers (3×3 at 14×14 and 7×7, k = 2304
/// / 4608), where each item had re-streamed its whole B from L3. A last
/// strip runs a tile of only the vectors its columns need, and columns
/// past whole vectors may run tile_columns (strip_tiles): at 28² a layer
/// computes exactly its 784 columns, at 14² 196 and at 7² 49 instead of
/// 208 and 64.
///
/// With several threads, a product wider than it is tall (cols > rows: more
/// activations than weights) cuts its strips into column blocks of a number
/// that the thread count divides and numbers its items column block first,
/// so each thread's share is a run of whole columns: the pixels it reads are
/// those the previous such layer wrote on the same core, and only the
/// weights are read by every core. Items of panels over all columns had
/// each core read every pixel, half of them from the other core, which
/// then had to give up its copy of each line before writing it again.
/// ResNet-50's 1×1s at 56² and 28² run this way; at 14² (layer3), where the
/// weights outweigh the pixels, by columns took the 1×1s 4.82 → 5.08 ms
/// (each core streams all of the weights). 2 threads, forward() calls
/// alternating in one process (medians of 30 pairs' ratios, AMD EPYC family
/// 26 model 2): 0.977–0.985× the time, layer2's 1×1s 3.59 → 3.28 ms; 1
/// thread unchanged (0.998–1.001).
///
/// B is read where it lies: copying each strip's block into a contiguous
/// buffer reused by the item's panels (as MLAS packs B) gained nothing on
/// ResNet-50's shapes with the AVX-512 kernel (13 layers, best of 40 calls,
/// 1 thread, Intel Xeon family 6 model 207: 18.0–18.3 ms packed vs
/// 18.0–18.4 ms in place), nor under AVX2 (AMD EPYC family 25 model 1,
/// alternating calls, B in huge pages as the network's scratch is:
/// 0.99–1.01× on the 1×1s that read B in planes, 1.07–1.14× on layer2.0's
/// strided 3×3; with B in 4 KiB pages the 1×1s of k = 64 and 128 gained
/// 0.91× and 0.955×, a TLB effect). B (and C) written in the strip layout by the
/// layer before, though, is read as one run per strip: ResNet passes its
/// block outputs that way (ResidualBlock::exchanges_strips, figures
/// there). Fetching the next strip's rows into L2 during the first panel
/// of an item instead (B from L3 there): ResNet-50's 1×1 shapes alone
/// 0.97× the time, the network 1.005× at 1 thread and 1.020× at 2
/// (forward() calls alternating in one process, 40 pairs, AMD EPYC family
/// 25 model 1).
///
/// A grouped call runs every group's items in one parallel_for, one barrier
/// instead of one per group. ResNeXt's grouped 3×3 layers (resnext50's five
/// shapes and layer1 of both 101s at 224², batch 1; Intel Xeon family 6
/// model 207, 2 vCPUs, shared; lower quartile of 60 calls, 3 interleaved
/// rounds): 1 thread 18.0 / 19.6 / 25.4 ms in all vs 20.6 / 22.6 / 28.2 ms
/// with a gemm() call per group; 2 threads, with other builds running,
/// 33 vs 47 ms in the least loaded round.
///
/// `partial` (null, or depth_split_size() elements) lets an ungrouped
/// product that does not go by columns, and has as many k blocks as there
/// are threads, split its depth: thread i's share sums k block i over all
/// rows, block₀ (+ residual) into c and block i > 0 into partial's slice
/// i − 1; a second step adds them in block order, then the bias and ReLU.
/// Those are the sums and additions, in the same order, of the unsplit
/// product, so the bits do not change. A thread then reads only the input
/// channels of its own block: in ResNet-50 at 2 threads, layer3's
/// 1024 → 256 1×1s read the two halves of the block input that the
/// previous block's last 1×1 wrote on each core, where a split by rows
/// had both cores read all of it, and the next write over it (that 1×1's,
/// in place) no longer waits for the other core to drop its copy. ResNet-50
/// at 2 threads, forward() calls alternating in one process (medians of
/// 30–40 pairs' ratios, 4 runs, AMD EPYC family 26 model 2): 0.982–0.988×
/// the time, layer3's in-place 1×1s 46–63 µs faster each (layer4's first
/// 1×1, split too, 26 µs slower); Wide ResNet-50-2 and ResNet-18 1.000–1.002×.
template <class T>
void gemm(const T* a, int64_t rows, int64_t k, const T* b, MatrixLayout bl, int64_t cols, T* c, MatrixLayout cl,
          const OutputOps<T>& ops, ThreadPool& pool, const GemmGroups& groups = {}, T* partial = nullptr) {
    const Kernels<T>& kern = kernels<T>();
    const int R = kern.panel_rows_for(rows), S = kern.strip();
    constexpr int64_t kABlockBytes = 256 << 10, kBlockStrips = 8;
    const int E = bl.strip == S && cl.strip == S ? kern.columns_past_for(R) : 0;
    const int64_t strips = strip_count(cols, S, E), np = panel_count(rows, R);
    const int64_t c_size = cl.span(rows, cols, S);
    const int64_t depth = std::min<int64_t>(k, kern.depth);
    const int64_t threads = pool.threads();
    const bool by_columns = threads > 1 && groups.count == 1 && cols > rows && strips >= 2 * threads;
    const int64_t col_blocks = by_columns ? threads * ((strips + threads * kBlockStrips - 1) / (threads * kBlockStrips))
                                          : (strips + kBlockStrips - 1) / kBlockStrips;
    // Panels per item: at most kABlockBytes of A per k block, fewer when that
    // leaves too few items to keep every thread busy (any split gives the
    // same bits). 128 KB instead of 256 (A and B blocks in half of Zen 3's
    // L2, for when another thread shares the core): ResNet-50 1.001× the
    // time at 1 thread, 0.994× at 2 (forward() calls alternating in one
    // process, both builds in both places, 40 pairs; AMD EPYC family 25
    // model 1).
    const int64_t fit = std::max<int64_t>(1, kABlockBytes / (depth * R * int64_t(sizeof(T))));
    const int64_t k_blocks = (k + depth - 1) / depth;
    const bool by_depth = partial && groups.count == 1 && !by_columns && threads > 1 && k_blocks == threads;
    const int64_t splits = by_depth ? k_blocks : 1, products = splits * groups.count;
    const int64_t group_blocks = col_blocks * products;
    const int64_t want_row_blocks = (4 * threads + group_blocks - 1) / group_blocks;
    const int64_t block_panels = std::clamp<int64_t>((np + want_row_blocks - 1) / want_row_blocks, 1, fit);
    const int64_t row_blocks = (np + block_panels - 1) / block_panels;
    pool.parallel_for(products * row_blocks * col_blocks, [&](int64_t item) {
        // product: (k block if by_depth) × group
        const int64_t product = item / (row_blocks * col_blocks), rc = item % (row_blocks * col_blocks);
        const int64_t g = product % groups.count, split = product / groups.count;
        const int64_t rb = by_columns ? rc % row_blocks : rc / col_blocks, cb = by_columns ? rc / row_blocks : rc % col_blocks;
        const int64_t q0 = rb * block_panels, q1 = std::min(np, q0 + block_panels);
        const int64_t s0 = strips * cb / col_blocks, s1 = strips * (cb + 1) / col_blocks;
        const T* ag = a + g * groups.a_stride;
        T* cg = split > 0 ? partial + (split - 1) * c_size : c + g * rows * cl.row;
        const OutputOps<T> og{ops.bias + g * rows,
                              ops.residual && split == 0 ? ops.residual + g * rows * cl.row : nullptr, ops.relu};
        const int64_t first_k = by_depth ? split * depth : 0, end_k = by_depth ? first_k + depth : k;
        for (int64_t k0 = first_k; k0 < std::min(k, end_k); k0 += depth) {
            const int64_t kn = std::min(depth, k - k0);
            const bool last = !by_depth && k0 + kn == k;
            for (int64_t q = q0; q < q1; ++q) {
                const int64_t r0 = q * R;
                for (int64_t s = s0; s < s1; ++s) {
                    const T* bs = b + g * groups.b_stride + s * bl.strip + k0 * bl.row;
                    const int64_t at = r0 * cl.row + s * cl.strip;
                    strip_tiles(kern, R,
                                {kn, ag + k0 * np * R + q * kn * R, bs, bl.row, 0, cg + at, cl.row,
                                 int(std::min<int64_t>(R, rows - r0)), strip_width(s, strips, cols, S), k0 > first_k,
                                 last ? og.bias + r0 : nullptr, k0 == 0 && og.residual ? og.residual + at : nullptr,
                                 last && og.relu});
                }
            }
        }
    });
    if (!by_depth) return;
    // Row by row, one partial sum at a time, then the bias (and ReLU): loops
    // the compiler vectorizes. Element by element, over the partial sums in
    // an inner loop, ran scalar: ResNet-50's 1024 → 256 1×1 at 14² alone
    // took 278–280 instead of 254–261 µs at 2 threads; the network
    // 0.991–0.995× the time (forward() calls alternating in one process,
    // medians of 30 pairs' ratios, AMD EPYC family 26 model 2). Same
    // additions, in the same order. In the strip layout a row's runs are
    // its strips.
    const int64_t run = cl.strip == S ? cols : S;
    pool.parallel_ranges(rows, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r)
            for (int64_t q = 0; q < cols; q += run) {
                const int64_t at = r * cl.row + q / S * cl.strip, n = std::min(run, cols - q);
                T* row = c + at;
                for (int64_t i = 1; i < splits; ++i) {
                    const T* sum = partial + (i - 1) * c_size + at;
                    for (int64_t j = 0; j < n; ++j) row[j] += sum[j];
                }
                const T bias = ops.bias[r];
                if (ops.relu)
                    for (int64_t j = 0; j < n; ++j) row[j] = std::max(row[j] + bias, T(0));
                else
                    for (int64_t j = 0; j < n; ++j) row[j] += bias;
            }
    });
}

/// Elements of gemm()'s `partial` for a product of rows × k (k ≥ 1) whose
/// C spans `span` elements (MatrixLayout::span): one for each k block but the first.
template <class T>
int64_t depth_split_size(int64_t k, int64_t span) {
    return (k - 1) / kernels<T>().depth * span;
}

}  // namespace resnet::detail
