#pragma once
// Direct convolution: no im2col. Two kernels over one prepared input: output
// positions in the vector lanes (grouped convolutions, the 3-channel stem:
// few im2col rows), and output channels in the vector lanes
// (forward_channels: ungrouped layers wider than 1×1 off Winograd).
#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>

#include "../detail/kernels.hpp"
#include "../detail/thread_pool.hpp"
#include "../detail/weight_arena.hpp"
#include "../error.hpp"
#include "../tensor.hpp"

namespace resnet::direct {

using resnet::detail::kDirectRows;

// ---------------------------------------------------------------------------
// Contract
//   * Each input channel is copied once per image into a "prepared" form:
//     zero-padded by `pad` and split into s² phase planes (s = stride),
//       phase (a, b)[i][j] = xpad[s·i + a][s·j + b],  hq × wq each,
//       hq = ⌈(h + 2·pad)/s⌉, wq = ⌈(w + 2·pad)/s⌉,
//     followed by zeros up to channel_stride. Kernel tap (ky, kx) of output
//     (y, x) then reads phase ((ky·d) mod s, (kx·d) mod s) at row
//     y + ⌊ky·d/s⌋, column x + ⌊kx·d/s⌋: in flat position p = y·wq + x of
//     every phase plane, each tap is one constant offset (`tap`).
//   * So an output channel's plane is a 1-D sum over (input channel, tap) of
//     shifted contiguous vectors: the micro-kernel (kernel_body.hpp, direct)
//     computes kDirectRows output channels × vectors·lanes flat positions in
//     registers, summing over the group's input channels in order and then
//     the taps in order, and stores the columns x < wo of each row. Every
//     output's sum order is fixed by the layer shape, so its bits do not
//     depend on the thread count.
//   * Weights are packed once, at load: per group, per block of kDirectRows
//     output channels (the last zero-padded), [channel][tap][row].
//   * forward(), per image: one parallel pass prepares the channels; a second
//     runs one item per (group, chunk of kChunkBlocks blocks of flat
//     positions), each item every output block of its group.
//   * Block shape: kDirectRows = 4 output channels divides every ResNeXt
//     group (4–64 outputs); AVX-512 holds 4 × 6 vectors of accumulators
//     (24 of 32 registers), the 16-register sets 4 × 3. Each (channel, tap)
//     step loads 6 input vectors and broadcasts 4 weights for 24 FMAs.
//     AVX-512 blocks of 4 × 4 and 4 × 5 vectors instead: ResNet-50's stem
//     1.025× and 1.005× its time, ResNeXt-50's grouped 3×3s 1.02× (in the
//     network, 1 thread, forward() calls alternating in one process, 10–20
//     pairs, AMD EPYC family 26 model 2).
//     Per layer, 1 thread, best of 200 calls (Intel Xeon family 6 model
//     207): resnext50_32x4d's stride-1 grouped 3×3s 0.34–0.43 ms (67–85
//     GFLOP/s) instead of 0.86–1.28 ms through im2col; the 7×7 stem 1.66
//     instead of 2.16 ms (142 GFLOP/s). The stride-2 ones gain less, as
//     the phase split copies a 4× larger input: 0.69–1.39 instead of
//     1.37–1.81 ms (another run, busier host). Inside the network
//     (4 interleaved rounds): resnext50's grouped 3×3s 23.5 → 11.2 ms,
//     resnet50's stem 2.53 → 1.79 ms. Wider groups gain as much:
//     resnext101_32x8d's layer3 and layer4 grouped 3×3s (32 and 64 channels
//     per group) 1.10 and 1.16 ms instead of 2.40 and 2.47, resnext101_64x4d's
//     layer4 one 0.71 instead of 1.91–2.06.
//   * Cost: the flat rows are wq long, so (wq − wo)/wq of the positions are
//     computed and dropped (2 of 58 at 56², 2 of 9 at 7²); the prepared copy
//     is 1× the padded input where im2col writes k²/s² × it.
//   * Memory: the workspace is one image's whole prepared input (not cut
//     into bands as im2col is): at most 3.4 MB in resnext50_32x4d at 224²
//     (layer2.0's 3×3: 256 channels of 58×58), growing with the input's area;
//     peak RSS stayed 121 MiB (compare.py, before and after).
// ---------------------------------------------------------------------------

constexpr int kMaxTaps = 64;     // kernels up to 8×8
constexpr int kChunkBlocks = 8;  // blocks of flat positions per item
constexpr int kChannelTiles = 16;   // tiles per item of forward_channels
constexpr int kChannelDepth = 256;  // (channel, tap) steps per pass of forward_channels
constexpr int kChannelSplits = 2;   // ranges of input channels forward_channels sums apart

/// Whether a kernel of k×k can run here.
inline bool eligible(int k) { return k * k <= kMaxTaps; }

/// The layout of one image's work, from the layer shape and the kernels' lanes.
struct Plan {
    int cin = 0, cout = 0, groups = 1, k = 1, stride = 1, pad = 0, dilation = 1, h = 0, w = 0;
    int ho = 0, wo = 0, hq = 0, wq = 0, end = 0;  // end = ho·wq flat positions
    int block = 0, chunks = 0;                    // flat positions per block (the widest), chunks per group
    int64_t channel_stride = 0;
    std::array<int, kMaxTaps> tap{};

    /// ho × wo: the output's size (Conv2d::out_size).
    template <class T>
    static Plan make(int cin, int cout, int groups, int k, int stride, int pad, int dilation, int h, int w, int ho,
                     int wo) {
        const auto& kern = resnet::detail::kernels<T>();
        Plan p{cin, cout, groups, k, stride, pad, dilation, h, w};
        p.ho = ho, p.wo = wo;
        p.hq = (h + 2 * pad + stride - 1) / stride;
        p.wq = (w + 2 * pad + stride - 1) / stride;
        p.end = p.ho * p.wq;
        p.block = kern.direct_vectors * kern.lanes;
        p.chunks = (p.end + p.block * kChunkBlocks - 1) / (p.block * kChunkBlocks);
        int reach = 0;
        for (int ky = 0; ky < k; ++ky)
            for (int kx = 0; kx < k; ++kx) {
                const int phase = (ky * dilation % stride) * stride + kx * dilation % stride;
                p.tap[ky * k + kx] = (phase * p.hq + ky * dilation / stride) * p.wq + kx * dilation / stride;
                reach = std::max(reach, p.tap[ky * k + kx]);
            }
        // The last block reads up to a whole vector past `end` from the farthest tap.
        const int64_t read = reach + (p.end + kern.lanes - 1) / kern.lanes * kern.lanes;
        p.channel_stride = std::max<int64_t>(int64_t(stride) * stride * p.hq * p.wq, read);
        return p;
    }

    int blocks() const { return (cout / groups + kDirectRows - 1) / kDirectRows; }
    int64_t total() const { return int64_t(cin) * channel_stride; }
};

/// Packs w = [Cout, Cin/groups, k, k] into per-group blocks of R output
/// channels (kDirectRows, or the channel-vector kernel's block),
/// [group][block][channel][tap][row] (0 past the group's).
/// In `arena` (may be null: detail::layout_tensor), one item of its pool per block.
template <class T>
Tensor<T> pack_weights(const T* w, int cout, int cin_per_group, int k, int groups, int R,
                       resnet::detail::WeightArena* arena = nullptr) {
    const int per_group = cout / groups, blocks = (per_group + R - 1) / R, taps = k * k;
    Tensor<T> packed = resnet::detail::layout_tensor<T>(arena, {groups, blocks, cin_per_group, taps, R});
    resnet::detail::run_items(resnet::detail::layout_pool(arena), int64_t(groups) * blocks, [&](int64_t item) {
        const int g = int(item / blocks), first = int(item % blocks) * R;
        T* dst = packed.data() + item * cin_per_group * taps * R;
        for (int c = 0; c < cin_per_group; ++c)
            for (int t = 0; t < taps; ++t, dst += R)
                for (int r = 0; r < R; ++r) {
                    const int o = first + r;
                    dst[r] = o < per_group ? w[((int64_t(g) * per_group + o) * cin_per_group + c) * taps + t] : T(0);
                }
    });
    return packed;
}

namespace detail {

/// Phase plane (a, b) of channel `src` (h×w) in prepared form at dst (the
/// channel's Plan::channel_stride elements); the last phase also zeroes the
/// channel's tail.
template <class T>
void prepare_phase(const Plan& p, const T* src, int a, int b, T* dst) {
    const int s = p.stride;
    // columns j whose input column s·j + b − pad lies in [0, w)
    const int lo = std::min(p.wq, std::max(0, (p.pad - b + s - 1) / s));
    const int hi = std::max(lo, std::min(p.wq, (p.w + p.pad - b + s - 1) / s));
    const int dx = b - p.pad;
    for (int i = 0; i < p.hq; ++i) {
        T* row = dst + ((int64_t(a) * s + b) * p.hq + i) * p.wq;
        const int y = s * i + a - p.pad;
        if (y < 0 || y >= p.h || lo == hi) {
            std::fill_n(row, p.wq, T(0));
            continue;
        }
        const T* in = src + int64_t(y) * p.w;
        // The padding columns (a few) by plain loops: std::fill's two
        // calls per row were a third of the time. ResNet-50's strided
        // 3×3s (128–512 channels, prepared as stride 1): 48–57 instead
        // of 67–73 µs at -O3, 50–55 instead of 61–66 at -O2;
        // resnext50's layer2.0 grouped 3×3 (stride 2): 116 instead of
        // 197 µs at -O3, 144 instead of 192 at -O2 (1 thread, medians
        // of 400 alternating calls, AMD EPYC family 26 model 2).
        for (int j = 0; j < lo; ++j) row[j] = T(0);
        // Stride 2 has its own loop, a constant stride the compiler
        // vectorizes: resnext50's layer2.0 grouped 3×3 0.83–0.89 ms
        // instead of 1.05–1.10, the stem 1.62 instead of 2.15 (1
        // thread, best of 300–500 calls, 3 rounds).
        if (s == 1)
            std::copy(in + lo + dx, in + hi + dx, row + lo);
        else if (s == 2)
            for (int j = lo; j < hi; ++j) row[j] = in[2 * j + dx];
        else
            for (int j = lo; j < hi; ++j) row[j] = in[s * j + dx];
        for (int j = hi; j < p.wq; ++j) row[j] = T(0);
    }
    if (a == s - 1 && b == s - 1) std::fill(dst + int64_t(s) * s * p.hq * p.wq, dst + p.channel_stride, T(0));
}

/// All channels of image x in prepared form at ws, one item per (channel,
/// phase). Per channel, the stem's 3 items split 2 : 1 between 2 threads;
/// its 12 phase planes split 6 : 6, and its preparation took 44–46 instead
/// of 57–58 µs at 2 threads (the stem alone, lower quartile of 200 calls,
/// AMD EPYC family 26 model 2).
template <class T>
void prepare(const Plan& p, const T* x, T* ws, resnet::detail::ThreadPool& pool) {
    const int phases = p.stride * p.stride;
    pool.parallel_ranges(int64_t(p.cin) * phases, [&](int64_t begin, int64_t end) {
        for (int64_t item = begin; item < end; ++item) {
            const int64_t c = item / phases;
            const int phase = int(item % phases);
            prepare_phase(p, x + c * p.h * p.w, phase / p.stride, phase % p.stride, ws + c * p.channel_stride);
        }
    });
}

}  // namespace detail

/// in: n×Cin×h×w, out: n×Cout×ho×wo (+ residual of that shape, may be null),
/// packed: pack_weights(…, kDirectRows) of the layer, ws: p.total() elements.
template <class T>
void forward(const Plan& p, const T* packed, const T* bias, const T* in, int n, T* out, const T* residual, bool relu,
             T* ws, resnet::detail::ThreadPool& pool) {
    const auto& kern = resnet::detail::kernels<T>();
    const int cin_g = p.cin / p.groups, cout_g = p.cout / p.groups, taps = p.k * p.k, blocks = p.blocks();
    const int64_t plane = int64_t(p.ho) * p.wo, block_weights = int64_t(cin_g) * taps * kDirectRows;
    for (int img = 0; img < n; ++img) {
        detail::prepare(p, in + int64_t(img) * p.cin * p.h * p.w, ws, pool);
        const int64_t out_off = int64_t(img) * p.cout * plane;
        pool.parallel_for(int64_t(p.groups) * p.chunks, [&](int64_t item) {
            const int g = int(item / p.chunks), chunk = int(item % p.chunks);
            const int first = chunk * kChunkBlocks * p.block, last = std::min(p.end, first + kChunkBlocks * p.block);
            const T* xg = ws + int64_t(g) * cin_g * p.channel_stride;
            for (int p0 = first; p0 < last; p0 += p.block) {
                const int vectors = std::min(kern.direct_vectors, (last - p0 + kern.lanes - 1) / kern.lanes);
                for (int b = 0; b < blocks; ++b) {
                    const int o0 = g * cout_g + b * kDirectRows;
                    const int64_t at = out_off + o0 * plane;
                    kern.direct({xg + p0, p.channel_stride, cin_g, p.tap.data(), taps,
                                 packed + (int64_t(g) * blocks + b) * block_weights, vectors, out + at, plane,
                                 std::min(kDirectRows, cout_g - b * kDirectRows), p.wq, p.wo, p0, last, bias + o0,
                                 residual ? residual + at : nullptr, relu});
                }
            }
        });
    }
}

/// Scratch of forward_channels: the prepared input, then each (split, item)'s sums.
template <class T>
int64_t channels_workspace(const Plan& p) {
    const auto& kern = resnet::detail::kernels<T>();
    const int64_t P = kern.channel_positions, B = kern.channel_block();
    const int64_t tiles = (int64_t(p.ho) * p.wo + P - 1) / P, chunks = (tiles + kChannelTiles - 1) / kChannelTiles;
    return p.total() + kChannelSplits * ((p.cout + B - 1) / B) * chunks * kChannelTiles * P * B;
}

/// The channel-vector kernel (groups = 1), for p prepared as stride 1 and
/// the layer's `stride`: output (y, x) reads flat position (y·wq + x)·stride
/// of the padded planes. Items are (block of Kernels::channel_block() output
/// channels, chunk of kChannelTiles tiles); a tile is channel_positions
/// consecutive output positions in row-major order (rows may wrap), the
/// last one partial. Three parallel steps: the prepared input; then, per
/// split of the input channels into kChannelSplits ranges (splits
/// outermost), every item's sums over the split's channels, pass by pass,
/// each pass over ⌈kChannelDepth / k²⌉ channels so that its weights are
/// read from cache by every tile; then, per item, the splits' sums added in
/// split order and the bias, residual and ReLU. The sum order depends on
/// the layer shape only.
///
/// Split by channels, each thread reads the half of the prepared input it
/// prepared, and half of the weights. With one sum per item, each thread
/// read its blocks' weights and all of the prepared input, half of it
/// written on the other core. 2 threads, in the network (ResNet-50; AMD
/// EPYC family 26 model 2, whose two vCPUs exchange a cache line in ~240
/// ns): the strided 3×3s of layer2.0, 3.0 and 4.0 took 1035, 839 and 1035
/// µs, split 867, 799 and 939 (sums and epilogue steps; medians of 6
/// alternating processes). The whole forward, processes alternating, runs
/// of 16–24 pairs: ResNet-50 0.972–0.991× the time at 2 threads,
/// 0.986–1.001× at 1; ResNet-18 0.98× at both.
/// packed: pack_weights(…, channel_block()), ws: channels_workspace(p) elements.
template <class T>
void forward_channels(const Plan& p, int stride, const T* packed, const T* bias, const T* in, int n, T* out,
                      const T* residual, bool relu, T* ws, resnet::detail::ThreadPool& pool) {
    const auto& kern = resnet::detail::kernels<T>();
    const int B = kern.channel_block(), P = kern.channel_positions, taps = p.k * p.k;
    const int blocks = (p.cout + B - 1) / B, depth = std::max(1, kChannelDepth / taps);
    const int splits = kChannelSplits;
    const int64_t plane = int64_t(p.ho) * p.wo, block_weights = int64_t(p.cin) * taps * B;
    const int64_t tiles = (plane + P - 1) / P, chunks = (tiles + kChannelTiles - 1) / kChannelTiles;
    const int64_t items = blocks * chunks, tile_sums = int64_t(P) * B, item_sums = kChannelTiles * tile_sums;
    const auto split_begin = [&](int64_t split) { return int(split * p.cin / splits); };
    // The first pass's weights of (split, item) `job`, and its channels.
    const auto first_pass = [&](int64_t job) {
        const int64_t split = job / items, c0 = split_begin(split);
        return std::pair(packed + job % items / chunks * block_weights + c0 * taps * B,
                         std::min<int64_t>(depth, split_begin(split + 1) - c0));
    };
    T* sums = ws + p.total();
    for (int img = 0; img < n; ++img) {
        detail::prepare(p, in + int64_t(img) * p.cin * p.h * p.w, ws, pool);
        const int64_t out_off = int64_t(img) * p.cout * plane;
        pool.parallel_for(splits * items, [&](int64_t job) {
            const int64_t item = job % items, first = item % chunks * kChannelTiles;
            const int64_t last = std::min(tiles, first + kChannelTiles);
            const int c_begin = split_begin(job / items), c_end = split_begin(job / items + 1);
            if (c_begin == c_end) std::fill_n(sums + job * item_sums, item_sums, T(0));  // Cin < splits
            const T* w = packed + item / chunks * block_weights;
            int pos[kChannelTiles][resnet::detail::kMaxChannelPositions];
            for (int64_t tile = first; tile < last; ++tile) {
                const int64_t q0 = tile * P, count = std::min<int64_t>(P, plane - q0);
                for (int j = 0; j < P; ++j) {
                    const int64_t q = q0 + std::min<int64_t>(j, count - 1);
                    pos[tile - first][j] = int((q / p.wo * p.wq + q % p.wo) * stride);
                }
            }
            for (int c0 = c_begin; c0 < c_end; c0 += depth) {
                const int channels = std::min(depth, c_end - c0);
                // The weights of the next pass, or of the next job's first,
                // prefetched by the tiles of this one, a share each: layer4's
                // 9.4 MB come from DRAM. ResNet-50, forward() calls
                // alternating in one process (medians of 30–40 pairs' ratios,
                // 4 runs, AMD EPYC family 26 model 2): 0.990–0.994× the time
                // at 2 threads, 1.000–1.001× at 1.
                const bool more = c0 + channels < c_end;
                const auto [next, next_channels] =
                    more ? std::pair(w + int64_t(c0 + channels) * taps * B, int64_t(std::min(depth, c_end - c0 - channels)))
                    : job + 1 < splits * items ? first_pass(job + 1)
                                               : std::pair(static_cast<const T*>(nullptr), int64_t(0));
                const int64_t lines = next_channels * taps * B * int64_t(sizeof(T)) / 64;
                const int64_t share = (lines + last - first - 1) / (last - first);
                for (int64_t tile = first; tile < last; ++tile) {
                    const int64_t q0 = tile * P, f0 = (tile - first) * share;
                    const int fetch = int(std::clamp<int64_t>(lines - f0, 0, share));
                    kern.channels({ws + c0 * p.channel_stride, p.channel_stride, channels, p.tap.data(), taps,
                                   w + int64_t(c0) * taps * B, pos[tile - first], int(std::min<int64_t>(P, plane - q0)),
                                   sums + job * item_sums + (tile - first) * tile_sums, nullptr, c0 == c_begin, false, nullptr,
                                   plane, 0, nullptr, nullptr, false,
                                   fetch > 0 ? next + f0 * 64 / int64_t(sizeof(T)) : nullptr, fetch});
                }
            }
        });
        // Kernel calls over no channels: each adds a split's sums to the
        // previous ones', the last one runs the epilogue.
        pool.parallel_for(items, [&](int64_t item) {
            const int o0 = int(item / chunks) * B, rows = std::min(B, p.cout - o0);
            const int64_t first = item % chunks * kChannelTiles, last = std::min(tiles, first + kChannelTiles);
            const int none[resnet::detail::kMaxChannelPositions] = {};
            for (int64_t tile = first; tile < last; ++tile) {
                T* s = sums + item * item_sums + (tile - first) * tile_sums;
                const int64_t q0 = tile * P, at = out_off + o0 * plane + q0;
                for (int split = 1; split < splits; ++split)
                    kern.channels({ws, p.channel_stride, 0, p.tap.data(), taps, nullptr, none,
                                   int(std::min<int64_t>(P, plane - q0)), s, s + split * items * item_sums, false,
                                   split + 1 == splits, out + at, plane, rows, bias + o0,
                                   residual ? residual + at : nullptr, relu, nullptr, 0});
            }
        });
    }
}

}  // namespace resnet::direct
