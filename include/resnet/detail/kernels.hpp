#pragma once
// The kernels of kernel_body.hpp, instantiated per instruction set, and the
// table of the set chosen at run time (isa.hpp).
#include <Eigen/Core>

#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>

#include "isa.hpp"

#if RESNET_X86_DISPATCH
#include <immintrin.h>
#endif

// The micro-kernel and its store must inline into the loop that owns the
// accumulators, or they live in memory: when GCC stopped inlining the
// store, a 128→512 1×1 layer at 28×28 went from 1.15 to 1.43 ms. For the
// same reason every loop of kernel_body.hpp over a register array's index
// is marked RESNET_UNROLL_ALL: GCC 12 unrolls them by itself only at -O3,
// and a program built at -O2 ran ResNet-50 at 2.0–2.3× the -O3 time
// (in-network layer timings, 1 thread, 4 interleaved rounds, Intel Xeon
// family 6 model 207).
#if defined(__GNUC__)
#define RESNET_ALWAYS_INLINE inline __attribute__((always_inline))
#define RESNET_LAMBDA_INLINE __attribute__((always_inline))  // the same, for a lambda
#define RESNET_UNROLL_ALL _Pragma("GCC unroll 32")
// Prefetch the element `ahead` elements past p, to read or to write. The
// address may lie past the end of the array (a prefetch never faults), so it
// is formed as an integer: pointer arithmetic past the end would be
// undefined behaviour.
#define RESNET_PREFETCH_ADDRESS(p, ahead) \
    reinterpret_cast<const void*>(reinterpret_cast<std::uintptr_t>(p) + (ahead) * sizeof(*(p)))
#define RESNET_PREFETCH(p, ahead) __builtin_prefetch(RESNET_PREFETCH_ADDRESS(p, ahead))
// The same into L2 only (PREFETCHT1 on x86).
#define RESNET_PREFETCH_L2(p, ahead) __builtin_prefetch(RESNET_PREFETCH_ADDRESS(p, ahead), 0, 2)
// To write: PREFETCHW, which fetches the line for ownership, so that the
// store does not then wait for other cores to drop their copies (x86 CPUs
// without the PRFCHW feature run it as a NOP; __builtin_prefetch(p, 1)
// emits it only under a prfchw target, a read prefetch otherwise). Between
// this VM's 2 vCPUs a line took ~220 ns one way, and most activations are
// read by both cores before they are written over. For the GEMM tiles'
// output lines, instead of a read prefetch, forward() calls alternating
// processes (10–20 pairs, AMD EPYC family 26 model 2): ResNet-50 0.986–0.991×
// the time at 2 threads, 0.995× at 1 (pinned); ResNet-18 0.981–0.987× and
// 0.999×; ResNet-101 0.990–0.992× at 2.
#if defined(__x86_64__) || defined(__i386__)
#define RESNET_PREFETCH_WRITE(p, ahead) __asm__ volatile("prefetchw (%0)" ::"r"(RESNET_PREFETCH_ADDRESS(p, ahead)))
#else
#define RESNET_PREFETCH_WRITE(p, ahead) __builtin_prefetch(RESNET_PREFETCH_ADDRESS(p, ahead), 1)
#endif
#else
#define RESNET_ALWAYS_INLINE inline
#define RESNET_LAMBDA_INLINE
#define RESNET_UNROLL_ALL
#define RESNET_PREFETCH(p, ahead) ((void)0)
#define RESNET_PREFETCH_L2(p, ahead) ((void)0)
#define RESNET_PREFETCH_WRITE(p, ahead) ((void)0)
#endif

namespace resnet::detail {

/// One micro-tile: c[r·ldc + j] for r < rows, j < cols (rows ≤ the panel's,
/// cols ≤ vectors·lanes, or up to Kernels::columns_past more for a tile of
/// all the set's vectors) = (accumulate ? c : 0) + Σ_{i<k} a[i·R + r] ·
/// b[i·ldb + j], the sum over i in order (a: one packed panel of R rows);
/// then, if bias is set: + bias[r], + residual[r·ldc + j] (if set), max(0, ·)
/// if relu. b has max(cols, vectors·lanes) readable columns.
template <class T>
struct TileArgs {
    int64_t k;
    const T* a;
    const T* b;
    int64_t ldb;
    int vectors;
    T* c;
    int64_t ldc;
    int rows, cols;
    bool accumulate;
    const T* bias;
    const T* residual;
    bool relu;
};

/// Columns past a strip's whole vectors that tile_columns takes, at most.
constexpr int kColumns = 4;

/// Output channels per block of the direct convolution (layers/direct.hpp).
constexpr int kDirectRows = 4;

/// The panel height of Kernels::narrow_tile, and the rows a tile of a
/// last panel sums when it has no more (tile() in kernel_body.hpp).
constexpr int kNarrowRows = 4;

/// One block of the direct convolution (contract: layers/direct.hpp):
/// kDirectRows output channels × vectors·lanes consecutive flat positions
/// p0, p0 + 1, … of the output, where flat position p is output row p / wq,
/// column p % wq (columns ≥ wo and positions ≥ end are computed, not stored).
///   acc[r][p] = Σ_c Σ_t w[(c·taps + t)·R + r] · x[c·channel_stride + tap[t] + p − p0]
/// over c in order, then t in order (R = kDirectRows); then + bias[r],
/// + residual (layout of c, may be null), max(0, ·) if relu, stored to
/// c[r·plane + row·wo + column] for r < rows.
template <class T>
struct DirectArgs {
    const T* x;  // the prepared input of the group's first channel, at p0
    int64_t channel_stride;
    int channels;
    const int* tap;
    int taps;
    const T* w;
    int vectors;
    T* c;
    int64_t plane;
    int rows, wq, wo, p0, end;
    const T* bias;
    const T* residual;
    bool relu;
};

/// The most positions of a channel-vector block (Kernels::channel_positions).
constexpr int kMaxChannelPositions = 8;

/// One block of the channel-vector direct convolution (layers/direct.hpp):
/// vectors·lanes output channels × `positions` output positions, read from
/// the prepared input (as DirectArgs) at flat positions pos[j], j < P (the
/// kernel's count; entries past `positions` repeat a valid one):
///   acc[o][j] = Σ_c Σ_t w[(c·taps + t)·B + o] · x[c·channel_stride + tap[t] + pos[j]]
/// over c in order, then t in order (B = vectors·lanes), in passes over
/// runs of channels: a pass starts from the sums in `sums` (P × B, the
/// kernel's layout) unless `first`, plus those in `other` if not null (a
/// pass over no channels then adds two sums: forward_channels' splits),
/// and leaves them there unless `last`;
/// the last one adds bias[o], residual[o·plane + j] (may be null), applies
/// max(0, ·) if relu and stores to c[o·plane + j] for o < rows, j < positions.
/// Meanwhile the (channel, tap) steps prefetch the cache lines from `fetch`
/// on, one per step, fetch_lines of them at most (none if 0).
template <class T>
struct ChannelArgs {
    const T* x;  // the prepared input of the pass's first channel
    int64_t channel_stride;
    int channels;
    const int* tap;
    int taps;
    const T* w;
    const int* pos;
    int positions;
    T* sums;
    const T* other;
    bool first, last;
    T* c;
    int64_t plane;
    int rows;
    const T* bias;
    const T* residual;
    bool relu;
    const T* fetch;
    int fetch_lines;
};

/// Portable vector: a fixed-size Eigen array of 32 bytes, which compiles to
/// the global flags' packet instructions (SSE, AVX, NEON) or scalar code.
template <class T>
struct EigenVec {
    using Scalar = T;
    static constexpr int lanes = int(32 / sizeof(T));
    static constexpr bool lane_moves = false;  // no odd() … place() (see the x86 sets)
    using type = Eigen::Array<T, lanes, 1>;
    static type zero() { return type::Zero(); }
    static type load(const T* p) { return Eigen::Map<const type>(p); }
    static type load_n(const T* p, int n) {
        type x = type::Zero();
        for (int i = 0; i < n; ++i) x[i] = p[i];
        return x;
    }
    static void store(T* p, const type& x) { Eigen::Map<type>{p} = x; }
    static type set1(T s) { return type::Constant(s); }
    static type fma(const type& a, const type& b, const type& c) { return c + a * b; }
    static type add(const type& a, const type& b) { return a + b; }
    static type max(const type& a, const type& b) { return a.max(b); }
    /// The even lanes of a, then those of b.
    static type even(const type& a, const type& b) {
        type x;
        for (int i = 0; i < lanes / 2; ++i) x[i] = a[2 * i], x[lanes / 2 + i] = b[2 * i];
        return x;
    }
};

}  // namespace resnet::detail

// Debug builds: in a GCC -O0 build (no __OPTIMIZE__) the kernels below, and
// the x86 vector types they use, are still compiled at -O2, so that a program
// being debugged does not wait ~25× longer for every forward(): resnet18 at
// 1 thread, batch 1, took 77–79 ms instead of 1.07 s (Intel Xeon family 6
// model 207; 39–47 ms in an -O2 build). Clang has no such pragma;
// see README "Use it in your program".
#if defined(__GNUC__) && !defined(__clang__) && !defined(__OPTIMIZE__)
#define RESNET_OPTIMIZE_KERNELS 1
#pragma GCC push_options
#pragma GCC optimize("O2")
#endif

#define RESNET_KERNEL_NS portable
#define RESNET_KERNEL_ATTR
#include "kernel_body.hpp"
#undef RESNET_KERNEL_NS
#undef RESNET_KERNEL_ATTR

#if RESNET_X86_DISPATCH
namespace resnet::detail {

#define RESNET_X86_VEC(Name, tgt, reg, n, suffix, fma_expr, max_expr, load_n_expr, even_expr, lane_members) \
    struct Name {                                                                                     \
        using Scalar = float;                                                                         \
        using type = reg;                                                                             \
        static constexpr int lanes = n;                                                               \
        lane_members                                                                                  \
        __attribute__((target(tgt), always_inline)) static type zero() { return suffix##setzero_ps(); } \
        __attribute__((target(tgt), always_inline)) static type load(const float* p) { return suffix##loadu_ps(p); } \
        /* the first m < lanes floats at p, zeros above; reads nothing past p + m */                          \
        __attribute__((target(tgt), always_inline)) static type load_n(const float* p, int m) { return load_n_expr; } \
        __attribute__((target(tgt), always_inline)) static void store(float* p, type x) { suffix##storeu_ps(p, x); } \
        __attribute__((target(tgt), always_inline)) static type set1(float s) { return suffix##set1_ps(s); } \
        __attribute__((target(tgt), always_inline)) static type fma(type a, type b, type c) { return fma_expr; } \
        __attribute__((target(tgt), always_inline)) static type add(type a, type b) { return suffix##add_ps(a, b); } \
        __attribute__((target(tgt), always_inline)) static type max(type a, type b) { return max_expr; } \
        /* the even lanes of a, then those of b */                                                    \
        __attribute__((target(tgt), always_inline)) static type even(type a, type b) { return even_expr; } \
    };
// lane_moves: whether the set has, for the Winograd input transform
// (kernel_body.hpp, wino_input):
//   odd(a, b)            the odd lanes of a, then those of b;
//   shift_up(a, first)   lane 0 = first, lane l = a[l − 1];
//   shift_down(a, n, last) lane l = a[l + 1] for l < n − 1, lane n − 1 = last (0 < n ≤ lanes);
//   place(into, a, at, n) into, with lanes at … at + n − 1 = a's lanes 0 … n − 1.
#define RESNET_AVX512_LANE_MOVES(tgt)                                                                  \
    static constexpr bool lane_moves = true;                                                           \
    __attribute__((target(tgt), always_inline)) static type odd(type a, type b) {                      \
        return _mm512_permutex2var_ps(                                                                 \
            a, _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31), b);      \
    }                                                                                                  \
    __attribute__((target(tgt), always_inline)) static type shift_up(type a, float first) {            \
        return _mm512_castsi512_ps(                                                                    \
            _mm512_maskz_alignr_epi32(__mmask16(-1), _mm512_castps_si512(a),                           \
                                      _mm512_castps_si512(_mm512_set1_ps(first)), 15));                \
    }                                                                                                  \
    __attribute__((target(tgt), always_inline)) static type shift_down(type a, int n, float last) {    \
        const type down = _mm512_castsi512_ps(                                                         \
            _mm512_maskz_alignr_epi32(__mmask16(-1), _mm512_setzero_si512(), _mm512_castps_si512(a), 1)); \
        return _mm512_mask_mov_ps(down, __mmask16(1u << (n - 1)), _mm512_set1_ps(last));               \
    }                                                                                                  \
    __attribute__((target(tgt), always_inline)) static type place(type into, type a, int at, int n) {  \
        const __m512i from = _mm512_and_si512(                                                         \
            _mm512_sub_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),   \
                             _mm512_set1_epi32(at)),                                                   \
            _mm512_set1_epi32(15));                                                                    \
        return _mm512_mask_permutexvar_ps(into, __mmask16(((1u << n) - 1) << at), from, a);             \
    }
// The same under AVX2: lane permutes (vpermps) and blends.
#define RESNET_AVX2_IOTA _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)
#define RESNET_AVX2_LANE_MOVES(tgt)                                                                    \
    static constexpr bool lane_moves = true;                                                           \
    __attribute__((target(tgt), always_inline)) static type odd(type a, type b) {                      \
        return _mm256_castpd_ps(_mm256_permute4x64_pd(                                                 \
            _mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1))), _MM_SHUFFLE(3, 1, 2, 0))); \
    }                                                                                                  \
    __attribute__((target(tgt), always_inline)) static type shift_up(type a, float first) {            \
        const type up = _mm256_permutevar8x32_ps(a, _mm256_setr_epi32(7, 0, 1, 2, 3, 4, 5, 6));         \
        return _mm256_blend_ps(up, _mm256_set1_ps(first), 1);                                          \
    }                                                                                                  \
    __attribute__((target(tgt), always_inline)) static type shift_down(type a, int n, float last) {    \
        const type down = _mm256_permutevar8x32_ps(a, _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 7));       \
        const __m256i at = _mm256_cmpeq_epi32(RESNET_AVX2_IOTA, _mm256_set1_epi32(n - 1));              \
        return _mm256_blendv_ps(down, _mm256_set1_ps(last), _mm256_castsi256_ps(at));                   \
    }                                                                                                  \
    __attribute__((target(tgt), always_inline)) static type place(type into, type a, int at, int n) {  \
        const __m256i from = _mm256_sub_epi32(RESNET_AVX2_IOTA, _mm256_set1_epi32(at));                 \
        const __m256i in = _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_setzero_si256(), from),        \
                                               _mm256_cmpgt_epi32(_mm256_set1_epi32(n), from));         \
        const type moved = _mm256_permutevar8x32_ps(a, _mm256_and_si256(from, _mm256_set1_epi32(7)));  \
        return _mm256_blendv_ps(into, moved, _mm256_castsi256_ps(in));                                 \
    }
RESNET_X86_VEC(Sse2Vec, "sse2", __m128, 4, _mm_, _mm_add_ps(_mm_mul_ps(a, b), c), _mm_max_ps(a, b),
               _mm_setr_ps(p[0], m > 1 ? p[1] : 0.f, m > 2 ? p[2] : 0.f, 0.f),
               _mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)),
               static constexpr bool lane_moves = false;)
RESNET_X86_VEC(Avx2Vec, "avx2,fma", __m256, 8, _mm256_, _mm256_fmadd_ps(a, b, c), _mm256_max_ps(a, b),
               _mm256_maskload_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(m), RESNET_AVX2_IOTA)),
               _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0))),
                                                      _MM_SHUFFLE(3, 1, 2, 0))),
               RESNET_AVX2_LANE_MOVES("avx2,fma"))
// (_mm512_max_ps and _mm512_alignr_epi32 through their zero-masked forms:
// GCC 12 warns that the plain ones' undefined pass-through operand may be
// used uninitialized.)
RESNET_X86_VEC(Avx512Vec, "avx512f,avx2,fma", __m512, 16, _mm512_, _mm512_fmadd_ps(a, b, c),
               _mm512_maskz_max_ps(__mmask16(-1), a, b), _mm512_maskz_loadu_ps(__mmask16((1u << m) - 1), p),
               _mm512_permutex2var_ps(a, _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30), b),
               RESNET_AVX512_LANE_MOVES("avx512f,avx2,fma"))
#undef RESNET_X86_VEC
#undef RESNET_AVX512_LANE_MOVES
#undef RESNET_AVX2_LANE_MOVES
#undef RESNET_AVX2_IOTA

}  // namespace resnet::detail

#define RESNET_KERNEL_NS sse2
#define RESNET_KERNEL_ATTR __attribute__((target("sse2")))
#include "kernel_body.hpp"
#undef RESNET_KERNEL_NS
#undef RESNET_KERNEL_ATTR
#define RESNET_KERNEL_NS avx2
#define RESNET_KERNEL_ATTR __attribute__((target("avx2,fma")))
#include "kernel_body.hpp"
#undef RESNET_KERNEL_NS
#undef RESNET_KERNEL_ATTR
#define RESNET_KERNEL_NS avx512
#define RESNET_KERNEL_ATTR __attribute__((target("avx512f,avx2,fma")))
#include "kernel_body.hpp"
#undef RESNET_KERNEL_NS
#undef RESNET_KERNEL_ATTR
#endif

#ifdef RESNET_OPTIMIZE_KERNELS
#pragma GCC pop_options
#undef RESNET_OPTIMIZE_KERNELS
#endif

namespace resnet::detail {

/// The GEMM micro-kernel of one instruction set and the layout it reads:
/// A packed in panels of `rows` rows (pack_panels in gemm.hpp), B in strips
/// of strip() = vectors·lanes columns.
template <class T>
struct Kernels {
    using Tile = void (*)(const TileArgs<T>&);
    Isa isa;
    int rows, lanes, vectors;
    /// Columns past its `vectors` that `tile` sums in its own k loop, at
    /// most: a product's last few columns (gemm.hpp, strip_count). The
    /// 16-register sets spill for them: under AVX2 one column gained
    /// (512 × 2048 × 49: 1034–1046 against 1114–1125 µs for a strip of
    /// its own), two lost (64 × 64 × 98: 10.9–11.3 against 10.5–10.7 µs;
    /// 128 × 256 × 50: 44.2–46.5 against 40.0–41.4), four lost (256 × 1024
    /// × 196: 1055 against 1006–1018).
    int columns_past;
    /// The GEMM's k block (gemm.hpp): each micro-tile sums at most this many
    /// products before it adds them to c. Longer blocks halve the passes
    /// that reload and store each tile of c, shorter ones keep a tile's
    /// strip of B (depth × strip() values) and its panel of A (depth × rows)
    /// in L1.
    /// AVX-512, 512 rather than 256 (its 48-column strip is 96 KB at 512,
    /// 48 KB at 256: beyond L1 either way): two models of the same weights
    /// in one process, forward() calls alternating (20–30 pairs, AMD EPYC
    /// family 26 model 2): ResNet-50 0.981–0.983× the time at 1 thread,
    /// 0.967–0.992× at 2; 1024: 0.983× and 0.972×; 128: 1.003× and 1.021×.
    /// AVX2, 256 rather than 512 (a strip of B then takes 16 instead of 32
    /// KB, all of L1). Forward() calls alternating as above (30–40 pairs
    /// per run, AMD EPYC family 25 model 1, Zen 3, 2 vCPUs under KVM), in
    /// the host's fast state: ResNet-50 0.995–0.996× the time at 1 thread
    /// and 0.96–1.02× at 2, ResNet-101 1.008× and 1.007×, ResNet-18 0.996×
    /// and 0.930×; in its slow state, when the same forward takes 1.4–1.7×
    /// as long and a register-only FMA loop 1.45× (the host, it seems,
    /// shares the core): ResNet-50 0.90–0.91× at 1 and 2 threads,
    /// ResNet-101 0.90× and 0.94×. 128: 1.03× (fast) and 0.93× (slow) at 1
    /// thread. SSE2 (8-column strips, 16 KB at 512): 256 changed nothing
    /// (ResNet-50 0.999×), so it keeps 512, as does the portable set.
    int depth;
    Tile tile;
    /// The same strip under kNarrowRows rows, for GEMMs whose row count
    /// `rows` would pad badly (grouped convolutions: see panel_rows_for).
    Tile narrow_tile;
    int strip() const { return lanes * vectors; }
    /// The panel height for a GEMM of `m` rows: `rows`, or kNarrowRows when
    /// whole panels of `rows` would compute over 1.25·m rows (grouped layers
    /// run through im2col, e.g. forced by Conv2d::Algorithm::Im2col; Auto
    /// runs them direct). ResNeXt's grouped 3×3s have 4–32 output channels
    /// per group: 12-row AVX-512 panels (the tile then) computed 3× layer1's
    /// rows and 1.5× layer2's and layer3's. With 4-row panels,
    /// resnext50_32x4d's grouped 3×3s took 18.6 instead of 20.4 ms at 1
    /// thread (in-network layer timings, 4 interleaved rounds, Intel Xeon
    /// family 6 model 207).
    int panel_rows_for(int64_t m) const {
        return (m + rows - 1) / rows * rows * 4 > 5 * m ? kNarrowRows : rows;
    }
    Tile tile_for(int panel_rows) const { return panel_rows == rows ? tile : narrow_tile; }
    int columns_past_for(int panel_rows) const { return panel_rows == rows ? columns_past : 0; }
    /// tile_columns under `rows` and kNarrowRows rows: a strip's columns past
    /// its whole vectors, when at most kColumns and fewer than the panel's
    /// rows (strip_tiles in gemm.hpp).
    Tile columns, narrow_columns;
    Tile columns_for(int panel_rows) const { return panel_rows == rows ? columns : narrow_columns; }
    /// The direct convolution's block (DirectArgs), for 1 … direct_vectors vectors.
    void (*direct)(const DirectArgs<T>&);
    int direct_vectors;
    /// The channel-vector direct convolution's block (ChannelArgs):
    /// channel_vectors·lanes output channels × channel_positions positions.
    void (*channels)(const ChannelArgs<T>&);
    int channel_vectors, channel_positions;
    /// Whether Conv2d's Auto runs the ungrouped layers wider than 1×1 that
    /// Winograd does not take (strided 3×3s, 3×3s over 512 channels) on
    /// `channels` rather than through im2col + GEMM: only where it measured
    /// faster (Conv2d::runs_channels).
    bool channels_auto;
    /// Max pooling (layers/pool.hpp): rows_max(src, stride, n, w, dst):
    /// dst[x] = max_{i<n} src[i·stride + x], x < w; windows_max2(c, k, pad,
    /// lo, hi, dst): dst[ox] = max_{t<k} c[2·ox − pad + t], ox in [lo, hi).
    void (*rows_max)(const T*, int64_t, int, int, T*);
    void (*windows_max2)(const T*, int, int, int, int, T*);
    /// dot_rows(w, F, x, rows, out): out[r] = Σ_f w[r·F + f]·x[f] (Linear).
    void (*dot_rows)(const T*, int64_t, const T*, int, T*);
    int channel_block() const { return channel_vectors * lanes; }
};

/// Tile shapes, by the registers each set has (accumulators + B vectors + the
/// broadcast A element must fit; the direct convolution's blocks are
/// kDirectRows × DV vectors by the same count):
///   portable, sse2, avx2: 6 × 2 vectors, 12 accumulators of 16 registers.
///   avx512: 8 × 3 vectors of 16 floats, 24 accumulators of 32 registers.
///     Against 12 × 2 (ONNX Runtime's MLAS tile), it loads 11 registers per
///     24 FMAs instead of 14, pads no ResNet width (64 channels took 72
///     rows in panels of 12), and covers 7×7 = 49 columns as 48 + 1 where
///     12 × 2 ran a one-vector tile for 16 of them. Two models of the same
///     weights in one process, forward() calls alternating (medians of the
///     per-pair ratios, 30–40 pairs; AMD EPYC family 26 model 2): ResNet-50
///     0.989–1.001× the time at 1 thread and 0.962–0.974× at 2 (layer4's
///     1×1s 0.72–0.78×, layer1's 0.85–0.97×), Wide ResNet-50-2 0.88× and
///     0.97× (12 pairs), ResNet-18 0.998× and 0.996–1.003×; 2 MiB less RSS.
/// The channel-vector direct convolution's blocks: avx512 4 vectors (64
///   output channels) × 7 positions, the 16-register sets 2 × 6. Under
///   AVX-512, 28 accumulators and 4 weight vectors leave no register for
///   the broadcast, so GCC keeps one accumulator in memory; 4 × 6 (no
///   spill) still took ResNet-50's strided 3×3s 1.03–1.3× the time of
///   4 × 7 (1 thread, in the network). Nor is the spill what bounds 4 × 7:
///   without it (the fourth weight vector a memory operand of its 7 FMAs,
///   32 registers) those layers ran alike, 0.98–1.00× the time, and with
///   the broadcasts folded into the FMAs ({1to16}: 32 loads per 28 FMAs)
///   1.32–1.36× (alone, 1 thread, lower quartiles of 100 calls, 3
///   alternating rounds, AMD EPYC family 26 model 2).
/// tile_columns keeps P partial sums of kColumns columns: 4 under avx512
/// (16 accumulators), 2 under avx2 (8 of 16 registers), 1 for sse2 and
/// portable (their panel's 6 rows take two vectors there).
/// Measured on 13 ResNet-50 layer shapes at 224² (stem, the 1×1s, the
/// Winograd 3×3s, layer4's im2col 3×3), 1 thread, best of 40 calls each, one
/// default-flags g++ 12 -O3 binary, Intel Xeon family 6 model 207 (busy,
/// shared; avx512 then ran 12 × 2): sum 16.4–18.8 ms avx512, 28.9–30.1 ms
/// avx2, 82–89 ms sse2; e.g. the 128→512 1×1 at 28² ran at 95–125, 70–73
/// and 21 GFLOP/s.
template <class V, int R, int NV, int E, int DV, int CV, int CP, bool ChannelsAuto = false, int Depth = 512>
constexpr Kernels<typename V::Scalar> make_kernels(Isa isa, typename Kernels<typename V::Scalar>::Tile tile,
                                                   typename Kernels<typename V::Scalar>::Tile narrow_tile,
                                                   typename Kernels<typename V::Scalar>::Tile columns,
                                                   typename Kernels<typename V::Scalar>::Tile narrow_columns,
                                                   void (*direct)(const DirectArgs<typename V::Scalar>&),
                                                   void (*channels)(const ChannelArgs<typename V::Scalar>&),
                                                   decltype(Kernels<typename V::Scalar>::rows_max) rows_max,
                                                   decltype(Kernels<typename V::Scalar>::windows_max2) windows_max2,
                                                   decltype(Kernels<typename V::Scalar>::dot_rows) dot_rows) {
    return {isa,    R,  V::lanes, NV, E,  Depth, tile,         narrow_tile, columns,     narrow_columns,
            direct, DV, channels, CV, CP, ChannelsAuto, rows_max,    windows_max2, dot_rows};
}

/// The kernels of `isa` for T (double: always the portable ones).
template <class T>
Kernels<T> kernels_for(Isa isa) {
#if RESNET_X86_DISPATCH
    if constexpr (std::is_same<T, float>::value) {
        switch (isa) {
            case Isa::Sse2:
                return make_kernels<Sse2Vec, 6, 2, 0, 3, 2, 6>(
                    isa, sse2::tile<Sse2Vec, 6, 2>, sse2::tile<Sse2Vec, kNarrowRows, 2>,
                    sse2::tile_columns<Sse2Vec, 6, 1>, sse2::tile_columns<Sse2Vec, kNarrowRows, 1>, sse2::direct<Sse2Vec, 3>,
                    sse2::channels<Sse2Vec, 2, 6>,
                    sse2::rows_max<Sse2Vec>, sse2::windows_max2<Sse2Vec>, sse2::dot_rows<Sse2Vec>);
            case Isa::Avx2: {
                constexpr int kPast = 1;  // Kernels::columns_past, and the tile built for it
                return make_kernels<Avx2Vec, 6, 2, kPast, 3, 2, 6, false, 256>(
                    isa, avx2::tile<Avx2Vec, 6, 2, kPast>, avx2::tile<Avx2Vec, kNarrowRows, 2>,
                    avx2::tile_columns<Avx2Vec, 6, 2>, avx2::tile_columns<Avx2Vec, kNarrowRows, 2>, avx2::direct<Avx2Vec, 3>,
                    avx2::channels<Avx2Vec, 2, 6>,
                    avx2::rows_max<Avx2Vec>, avx2::windows_max2<Avx2Vec>, avx2::dot_rows<Avx2Vec>);
            }
            case Isa::Avx512:
                return make_kernels<Avx512Vec, 8, 3, kColumns, 6, 4, 7, true>(
                    isa, avx512::tile<Avx512Vec, 8, 3, kColumns>, avx512::tile<Avx512Vec, kNarrowRows, 3>,
                    avx512::tile_columns<Avx512Vec, 8, 4>, avx512::tile_columns<Avx512Vec, kNarrowRows, 4>,
                    avx512::direct<Avx512Vec, 6>, avx512::channels<Avx512Vec, 4, 7>,
                    avx512::rows_max<Avx512Vec>, avx512::windows_max2<Avx512Vec>, avx512::dot_rows<Avx512Vec>);
            default: break;
        }
    }
#endif
    (void)isa;
    return make_kernels<EigenVec<T>, 6, 2, 0, 3, 2, 6>(
        Isa::Portable, portable::tile<EigenVec<T>, 6, 2>, portable::tile<EigenVec<T>, kNarrowRows, 2>,
        portable::tile_columns<EigenVec<T>, 6, 1>, portable::tile_columns<EigenVec<T>, kNarrowRows, 1>,
        portable::direct<EigenVec<T>, 3>, portable::channels<EigenVec<T>, 2, 6>, portable::rows_max<EigenVec<T>>,
        portable::windows_max2<EigenVec<T>>, portable::dot_rows<EigenVec<T>>);
}

/// The process's kernels for T, chosen at the first call (isa.hpp).
template <class T>
const Kernels<T>& kernels() {
    static const Kernels<T> k = kernels_for<T>(active_isa());
    return k;
}

}  // namespace resnet::detail

namespace resnet {

/// Which float kernels this process runs, e.g. "avx512 (micro-tile 8x48)":
/// the instruction set chosen at run time (RESNET_ISA overrides) and the
/// GEMM micro-tile, rows × columns.
inline std::string kernel_info() {
    const auto& k = detail::kernels<float>();
    return std::string(detail::isa_name(k.isa)) + " (micro-tile " + std::to_string(k.rows) + "x" +
           std::to_string(k.strip()) + ")";
}

}  // namespace resnet
