// The hot kernels, written once against a vector type's operations V and
// compiled once per instruction set: kernels.hpp includes this file (no
// include guard, on purpose) with
//   RESNET_KERNEL_NS    the namespace of this copy (portable, sse2, avx2, avx512)
//   RESNET_KERNEL_ATTR  attributes of every function: __attribute__((target(…))) or nothing
// so that code inlined into these functions is compiled for that set, whatever
// the global flags. V (kernels.hpp) gives the scalar type T, the register
// type `type`, `lanes`, and zero/load/store/set1/fma/add/max; `type` also
// has +, − and scalar · (GCC/Clang vector extensions, or Eigen arrays).

namespace resnet::detail::RESNET_KERNEL_NS {

constexpr int kAPrefetchBytes = 4096;  // how far ahead tile_n fetches A (see there)

/// The tile's store (TileArgs in kernels.hpp) one element at a time, of the
/// sums value(r, j) for r < t.rows, j < t.cols.
template <class T, class Value>
RESNET_KERNEL_ATTR RESNET_ALWAYS_INLINE void store_elements(const TileArgs<T>& t, const Value& value) {
    for (int r = 0; r < t.rows; ++r) {
        T* dst = t.c + r * t.ldc;
        const T* res = t.residual ? t.residual + r * t.ldc : nullptr;
        for (int j = 0; j < t.cols; ++j) {
            T y = value(r, j);
            if (t.accumulate) y = dst[j] + y;
            if (t.bias) y += t.bias[r];
            if (res) y += res[j];
            dst[j] = t.relu ? std::max(y, T(0)) : y;
        }
    }
}

/// acc[r][v] = Σ_{c<k} a[c·RA + r] · b[c·ldb + v·L + l], c in order, for
/// the R rows of a panel of RA ≥ R rows, and for the E columns past the NV
/// vectors (t.cols = NV·L + E; only where RA = R),
/// col[j] = Σ_{c<k} a[c·R + ·] · b[c·ldb + NV·L + j] vectorized over the R
/// rows, in the same loop; then the tile's store (TileArgs in kernels.hpp).
template <class V, int R, int NV, int E = 0, int RA = R>
RESNET_KERNEL_ATTR RESNET_ALWAYS_INLINE void tile_n(const TileArgs<typename V::Scalar>& t) {
    static_assert(RA >= R && (E == 0 || RA == R), "tile_n: a panel of RA >= R rows, columns past only at RA = R");
    using T = typename V::Scalar;
    using X = typename V::type;
    constexpr int L = V::lanes, NR = (R + L - 1) / L;  // NR vectors hold a panel's column
    X acc[R][NV];
    RESNET_UNROLL_ALL
    for (int r = 0; r < R; ++r)
        RESNET_UNROLL_ALL
        for (int v = 0; v < NV; ++v) acc[r][v] = V::zero();
    X col[E > 0 ? E : 1][NR];
    RESNET_UNROLL_ALL
    for (int j = 0; j < E; ++j)
        RESNET_UNROLL_ALL
        for (int v = 0; v < NR; ++v) col[j][v] = V::zero();
    const T* __restrict a = t.a;
    const T* __restrict b = t.b;
    // The store's lines, fetched while the k loop runs: output and residual
    // rows lie a plane apart, too many streams for the hardware prefetcher,
    // and a tile's store waited for each of them. ResNet-50, 1 thread, in
    // the network (6 interleaved rounds, medians, Intel Xeon family 6 model
    // 207): convolutions 71.1 → 69.8 ms, layer1's 64→256 1×1s 4.6 → 4.2 ms.
    // One row per k step, not all 2·R·NV lines before the loop: that burst
    // filled the core's line-fill buffers and the loop's loads of B queued
    // behind it. ResNet-50's eight 1×1 shapes, 1 thread, medians of 3
    // interleaved rounds of 100 calls (same Xeon): sum 7.89 → 6.68 ms, each
    // shape faster; in the network, 6 rounds: convolutions 66.1 → 64.4 ms.
    // Every tile fetches, not only those with a bias or residual: the
    // Winograd products, which have neither, write their sums across the α²
    // rows of a scratch slice; fetching those too took ResNet-50 0.985–0.993×
    // the time at 1 thread and 0.988–0.998× at 2 (forward() calls
    // alternating in one process, medians of 20–30 pairs' ratios, AMD EPYC
    // family 26 model 2).
    const int64_t fetch_rows = std::min<int64_t>(std::min(R, t.rows), t.k);
    // One k step: the products of row c of A's panel and of B, c in order.
    const auto step = [&](const T* ac, const T* bc) RESNET_LAMBDA_INLINE RESNET_KERNEL_ATTR {
        X x[NV];
        RESNET_UNROLL_ALL
        for (int v = 0; v < NV; ++v) x[v] = V::load(bc + v * L);
        RESNET_UNROLL_ALL
        for (int r = 0; r < R; ++r) {
            const X ar = V::set1(ac[r]);
            RESNET_UNROLL_ALL
            for (int v = 0; v < NV; ++v) acc[r][v] = V::fma(ar, x[v], acc[r][v]);
        }
        if constexpr (E > 0) {
            X ak[NR];
            RESNET_UNROLL_ALL
            for (int v = 0; v < NR; ++v) ak[v] = (v + 1) * L <= R ? V::load(ac + v * L) : V::load_n(ac + v * L, R - v * L);
            RESNET_UNROLL_ALL
            for (int j = 0; j < E; ++j) {
                const X bj = V::set1(bc[NV * L + j]);
                RESNET_UNROLL_ALL
                for (int v = 0; v < NR; ++v) col[j][v] = V::fma(ak[v], bj, col[j][v]);
            }
        }
    };
    // B's rows lie ldb apart (a page or more at 56×56), too many streams
    // for the hardware prefetcher: fetching the row 8 ahead took
    // ResNet-50 at 1 thread from 96 to 90 ms (median over 10 interleaved
    // rounds of the best of 8 calls, Intel Xeon family 6 model 207, busy;
    // 16 ahead: no gain). One fetch per line the row's vectors span.
    constexpr int kLineElements = 64 / int(sizeof(T)), kRowLines = (NV * L + kLineElements - 1) / kLineElements;
    const auto fetch_b = [&](const T* bc) RESNET_LAMBDA_INLINE RESNET_KERNEL_ATTR {
        RESNET_UNROLL_ALL
        for (int l = 0; l < kRowLines; ++l) RESNET_PREFETCH(bc, 8 * t.ldb + l * kLineElements);
    };
    // A, the weights, is one stream, but at batch 1 most layers' weights
    // come from DRAM (ResNet-50's 98 MiB pass through the caches once
    // per forward) and the hardware prefetcher, which stops at each 4 KiB
    // page, did not keep ahead: fetching 4 KiB ahead took ResNet-50 from
    // 75.0 to 63.7 ms at 1 thread and 45.2 to 37.4 ms at 2 (in-network
    // layer timings, 6 interleaved rounds, medians, Intel Xeon family 6
    // model 207; 2 KiB ahead: 63.9 and 38.5, 8 KiB: 66.7 ms at 1 thread).
    // A one-vector tile reads A four times as fast per FMA as a
    // 3-vector one (AVX-512: 32 bytes per 8 FMAs): the Winograd products
    // at 7×7 (16 tiles), whose 16.8 MB of U per 512-channel layer come
    // from DRAM. There, a second fetch 8 KiB ahead into L2 as well:
    // forward() calls alternating with the build before (medians of
    // 40–50 pairs' ratios, AMD EPYC family 26 model 2): ResNet-18 (three
    // such layers) 0.978–0.985× the time, ResNet-50 0.993–0.998× at 2
    // threads and 0.996–1.000× at 1, ResNet-101 1.000×. In every tile,
    // 16 KiB ahead took ResNet-50 1.004–1.008× the time; 8 KiB ahead
    // 0.991–0.999×, but ResNet-101 1.009× at 2 threads. Two other
    // ways to hide the weights' DRAM latency measured worse or no
    // better (ResNet-50, forward() calls alternating with the build
    // before, medians of 40 pairs' ratios, same CPU): fetching the
    // next convolution's weights into L2 (or non-temporally), a share
    // per strip of the current one's tiles, 1.004–1.07× the time at 1
    // and 2 threads; a non-temporal fetch here, 0.994–1.002×.
    const auto fetch_a = [&](const T* ac) RESNET_LAMBDA_INLINE RESNET_KERNEL_ATTR {
        RESNET_PREFETCH(ac, kAPrefetchBytes / int(sizeof(T)));
        if constexpr (NV == 1) RESNET_PREFETCH_L2(ac, 8192 / int(sizeof(T)));
    };
    int64_t c = 0;
    for (; c < fetch_rows; ++c, a += RA, b += t.ldb) {
        RESNET_UNROLL_ALL
        for (int v = 0; v < NV; ++v) {
            RESNET_PREFETCH_WRITE(t.c + c * t.ldc, v * L);
            if (t.residual) RESNET_PREFETCH(t.residual + c * t.ldc, v * L);
        }
        fetch_b(b);
        fetch_a(a);
        step(a, b);
    }
    // Two k steps per pass, B fetched once per line and A once per pass
    // where 2·R elements fit in a line (R ≤ 8 in float): under AVX2, 25
    // instead of 27 instructions per 12 FMAs. The core's front end issues
    // them, and on this VM's host another thread often shares the core: in
    // the host's slow state (ResNet-50 1.4–1.7× its fast time) a loop of 10
    // FMAs and 12 integer adds ran at 65–71 instead of 91.5 GFLOP/s while a
    // loop of FMAs alone held 91–95. ResNet-50, forward() calls alternating
    // with the one-step loop in one process, both builds in both places
    // (40 pairs each, AMD EPYC family 25 model 1, Zen 3, 2 vCPUs under
    // KVM): 0.86× and 0.90× the time at 1 thread, 0.87× at 2 (0.93× in the
    // pairs of the faster probes, 0.84× in the slower). Measured against
    // this loop the same way and not kept: four steps per pass 1.05–1.07×;
    // no B fetch where B's rows are contiguous (strips) 1.01–1.02×; the
    // pass counted by A's pointer alone, 1.00×; A fetched only by each
    // panel's first tile of an item, 0.99–1.00×; two taps per pass in
    // direct_n, the stem 1.34× its time. Nor, later (same CPU, same A/B):
    // this pass in inline assembly, 46 instructions where GCC 12 emits 51
    // (its second counter and a register copy gone), 0.994–1.003× the
    // time at 1 and 2 threads (0.974–1.005× in the pairs of the slower
    // probes); B a memory operand of each FMA (12 loads per step instead
    // of 2, 6 fewer instructions), 1.41×: Zen 3 loads 2 vectors per cycle,
    // and a step then needed 18 loads for its 6 cycles of FMAs.
    for (; c + 2 <= t.k; c += 2, a += 2 * RA, b += 2 * t.ldb) {
        fetch_b(b);
        fetch_b(b + t.ldb);
        fetch_a(a);
        if constexpr (2 * RA * sizeof(T) > 64) fetch_a(a + RA);
        step(a, b);
        step(a + RA, b + t.ldb);
    }
    if (c < t.k) {
        fetch_b(b);
        fetch_a(a);
        step(a, b);
    }
    if constexpr (E > 0) {
        alignas(64) T column[E][NR * L];
        RESNET_UNROLL_ALL
        for (int j = 0; j < E; ++j)
            RESNET_UNROLL_ALL
            for (int v = 0; v < NR; ++v) V::store(column[j] + v * L, col[j][v]);
        TileArgs<T> rest = t;
        rest.c += NV * L;
        if (rest.residual) rest.residual += NV * L;
        rest.cols = E;
        store_elements(rest, [&](int r, int j) { return column[j][r]; });
    }
    if (t.cols == NV * L + E) {
        // Unrolled, so that acc stays in registers (indexed by constants)
        // instead of being spilled for a loop over a run-time row count.
        RESNET_UNROLL_ALL
        for (int r = 0; r < R; ++r) {
            if (r == t.rows) break;
            T* dst = t.c + r * t.ldc;
            const T* res = t.residual ? t.residual + r * t.ldc : nullptr;
            RESNET_UNROLL_ALL
            for (int v = 0; v < NV; ++v) {
                X y = acc[r][v];
                if (t.accumulate) y = V::add(V::load(dst + v * L), y);
                if (t.bias) y = V::add(y, V::set1(t.bias[r]));
                if (res) y = V::add(y, V::load(res + v * L));
                if (t.relu) y = V::max(y, V::zero());
                V::store(dst + v * L, y);
            }
        }
        return;
    }
    alignas(64) T tile[R][NV * L];
    RESNET_UNROLL_ALL
    for (int r = 0; r < R; ++r)
        RESNET_UNROLL_ALL
        for (int v = 0; v < NV; ++v) V::store(tile[r] + v * L, acc[r][v]);
    store_elements(t, [&](int r, int j) { return tile[r][j]; });
}

/// The columns of a strip past its whole vectors, t.cols ≤ kColumns of
/// them, vectorized over the panel's R rows instead of over columns:
///   acc[j][r] = Σ_{p<P} Σ_{c ≡ p mod P} a[c·R + r] · b[c·ldb + j]
/// (each inner sum over c in order, then p in order); then tile_n's store.
/// At ResNet-50's 7×7 (49 = 3·16 + 1 columns under AVX-512) the last
/// column took a whole one-vector tile, R vector FMAs per k; here it takes
/// one. The P partial sums give the FMAs independent chains: with one, a
/// column waited out the FMA latency at every k.
template <class V, int R, int P>
RESNET_KERNEL_ATTR void tile_columns(const TileArgs<typename V::Scalar>& t) {
    using T = typename V::Scalar;
    using X = typename V::type;
    constexpr int L = V::lanes, NR = (R + L - 1) / L, C = kColumns;  // NR vectors hold a panel's column
    X acc[P][C][NR];
    RESNET_UNROLL_ALL
    for (int p = 0; p < P; ++p)
        RESNET_UNROLL_ALL
        for (int j = 0; j < C; ++j)
            RESNET_UNROLL_ALL
            for (int v = 0; v < NR; ++v) acc[p][j][v] = V::zero();
    const T* __restrict a = t.a;
    const T* __restrict b = t.b;
    const auto step = [&](X(&sum)[C][NR]) RESNET_KERNEL_ATTR {
        RESNET_PREFETCH(b, 8 * t.ldb);  // as tile_n
        X ar[NR];
        RESNET_UNROLL_ALL
        for (int v = 0; v < NR; ++v) ar[v] = (v + 1) * L <= R ? V::load(a + v * L) : V::load_n(a + v * L, R - v * L);
        RESNET_UNROLL_ALL
        for (int j = 0; j < C; ++j) {
            if (j == t.cols) break;
            const X bj = V::set1(b[j]);
            RESNET_UNROLL_ALL
            for (int v = 0; v < NR; ++v) sum[j][v] = V::fma(ar[v], bj, sum[j][v]);
        }
        a += R;
        b += t.ldb;
    };
    int64_t c = 0;
    for (; c + P <= t.k; c += P)
        RESNET_UNROLL_ALL
        for (int p = 0; p < P; ++p) step(acc[p]);
    // The last k mod P steps, unrolled like the rest: an acc index known
    // only at run time kept every accumulator in memory, a store and a
    // reload around every FMA. ResNet-50's 512-channel 3×3 at 7×7, which
    // spent 14% of its time here for 1 of its 49 columns, took 1.60–1.66
    // instead of 1.68–1.75 ms (1 thread, 3 interleaved runs, AMD EPYC
    // family 26 model 2); the whole network 0.97× the time (8 rounds).
    RESNET_UNROLL_ALL
    for (int p = 0; p < P; ++p)
        if (c + p < t.k) step(acc[p]);
    alignas(64) T column[C][NR * L];
    RESNET_UNROLL_ALL
    for (int j = 0; j < C; ++j)
        RESNET_UNROLL_ALL
        for (int v = 0; v < NR; ++v) {
            X y = acc[0][j][v];
            RESNET_UNROLL_ALL
            for (int p = 1; p < P; ++p) y = V::add(y, acc[p][j][v]);
            V::store(column[j] + v * L, y);
        }
    store_elements(t, [&](int r, int j) { return column[j][r]; });
}

/// tile_n of NV vectors and E columns past them, a function of its own:
/// inlined into tile() with the others, a program including resnet.hpp took
/// g++ 12 -O3 24.0–24.8 s to compile instead of 19.0–20.8 (16.5–17.8
/// before these tiles).
template <class V, int R, int NV, int E>
RESNET_KERNEL_ATTR void tile_past(const TileArgs<typename V::Scalar>& t) {
    tile_n<V, R, NV, E>(t);
}

/// tile_past for E = e (1 ≤ e ≤ EMax).
template <class V, int R, int NV, int EMax>
RESNET_KERNEL_ATTR RESNET_ALWAYS_INLINE void tile_columns_past(const TileArgs<typename V::Scalar>& t, int e) {
    if constexpr (EMax > 1)
        if (e < EMax) return tile_columns_past<V, R, NV, EMax - 1>(t, e);
    tile_past<V, R, NV, EMax>(t);
}

/// The micro-kernel entry (Kernels::tile): t.vectors is 1 … NV (NV ≤ 3);
/// a tile of NV vectors takes up to EMax columns past them
/// (t.cols ≤ NV·lanes + EMax; Kernels::columns_past); A in panels of RA rows.
/// A tile of at most kNarrowRows rows (a last panel) sums only those: the
/// same sums as the full tile's first rows, in the same order, so the same
/// bits. ResNet's widths leave 4 rows of 6 (64, 256, 1024 channels) or 2
/// (128, 512, 2048) in the last panel under the 16-register sets, which
/// computed 6: a 64-row GEMM computed 66 rows, a 128-row one 132. With 8
/// accumulators the 4-row tile still issues 2 FMAs a cycle. ResNet's GEMM
/// shapes alone (B and C in strips, calls alternating with the 6-row
/// build, medians of 200 pairs' ratios, 1 thread): 64 × 256 × 3136 and
/// 64 × 64 × 3136 0.974–0.976× the time, 128 × 512 × 784 0.990×, 256- and
/// 1024-row ones 0.994–1.002×. In the network, forward() calls alternating
/// with the 6-row build in one process, both builds in both places (30
/// pairs each, AMD EPYC family 25 model 1, host mostly in its slow state):
/// ResNet-50 0.969–0.989× the time at 1 thread and 0.966–0.993× at 2,
/// ResNet-18 0.986× and 0.976×, ResNet-101 0.984× and 0.976× (20 pairs);
/// the logits' bits unchanged.
template <class V, int R, int NV, int EMax = 0, int RA = R>
RESNET_KERNEL_ATTR void tile(const TileArgs<typename V::Scalar>& t) {
    static_assert(NV >= 1 && NV <= 3, "tile() runs 1 to 3 vectors");
    if constexpr (R > kNarrowRows)
        if (t.rows <= kNarrowRows && t.cols <= t.vectors * V::lanes) return tile<V, kNarrowRows, NV, 0, R>(t);
    if (t.vectors == NV) {
        if constexpr (EMax > 0)
            if (t.cols > NV * V::lanes) return tile_columns_past<V, R, NV, EMax>(t, t.cols - NV * V::lanes);
        return tile_n<V, R, NV, 0, RA>(t);
    }
    if constexpr (NV == 3)
        if (t.vectors == 2) return tile_n<V, R, 2, 0, RA>(t);
    tile_n<V, R, 1, 0, RA>(t);
}

/// dst[j] = src[j] (+ res[j] if res is set), then max(0, ·) if relu, for
/// j < n; whole vectors first. Written with V, not left to the
/// auto-vectorizer: at -O2, GCC 12 leaves such loops scalar.
template <class V>
RESNET_KERNEL_ATTR RESNET_ALWAYS_INLINE void finish_run(const typename V::Scalar* src, const typename V::Scalar* res,
                                                        bool relu, int n, typename V::Scalar* dst) {
    using T = typename V::Scalar;
    constexpr int L = V::lanes;
    int j = 0;
    for (; j + L <= n; j += L) {
        typename V::type y = V::load(src + j);
        if (res) y = V::add(y, V::load(res + j));
        if (relu) y = V::max(y, V::zero());
        V::store(dst + j, y);
    }
    for (; j < n; ++j) {
        const T y = res ? src[j] + res[j] : src[j];
        dst[j] = relu ? std::max(y, T(0)) : y;
    }
}

// --- Direct convolution (DirectArgs in kernels.hpp, layers/direct.hpp) -----

template <class V, int NV>
RESNET_KERNEL_ATTR RESNET_ALWAYS_INLINE void direct_n(const DirectArgs<typename V::Scalar>& d) {
    using T = typename V::Scalar;
    using X = typename V::type;
    constexpr int L = V::lanes, R = kDirectRows;
    X acc[R][NV];
    RESNET_UNROLL_ALL
    for (int r = 0; r < R; ++r)
        RESNET_UNROLL_ALL
        for (int v = 0; v < NV; ++v) acc[r][v] = V::zero();
    // The lines the block's rows will be stored to, fetched for ownership
    // while the sums run, as tile_n fetches its store's: the stem scaled
    // 1.55× from 1 to 2 threads where the other layers scaled 1.9×, its
    // stores waiting for lines held by the other core or L3. ResNet-50's
    // stem in the network, forward() calls alternating with the build
    // before in one process, both builds in both places (30 pairs, AMD EPYC
    // family 25 model 1, quiet host): 3.36–3.40 → 3.04–3.05 ms at 1 thread,
    // 1.69–1.73 → 1.56–1.57 at 2; the whole forward 0.992× at 1 and 2.
    [[maybe_unused]] const int64_t first = int64_t(d.p0 / d.wq) * d.wo + std::min(d.p0 % d.wq, d.wo);
    constexpr int kStoreLines = (NV * L * int(sizeof(T)) + 63) / 64 + 1;
    for (int r = 0; r < d.rows; ++r)
        RESNET_UNROLL_ALL
        for (int l = 0; l < kStoreLines; ++l) RESNET_PREFETCH_WRITE(d.c + r * d.plane + first, l * 64 / int(sizeof(T)));
    const T* __restrict w = d.w;
    for (int c = 0; c < d.channels; ++c) {
        const T* __restrict xc = d.x + c * d.channel_stride;
        for (int t = 0; t < d.taps; ++t, w += R) {
            const T* xt = xc + d.tap[t];
            X x[NV];
            RESNET_UNROLL_ALL
            for (int v = 0; v < NV; ++v) x[v] = V::load(xt + v * L);
            RESNET_UNROLL_ALL
            for (int r = 0; r < R; ++r) {
                const X wr = V::set1(w[r]);
                RESNET_UNROLL_ALL
                for (int v = 0; v < NV; ++v) acc[r][v] = V::fma(wr, x[v], acc[r][v]);
            }
        }
    }
    alignas(64) T tile[R][NV * L];
    const bool relu_now = d.relu && !d.residual;
    RESNET_UNROLL_ALL
    for (int r = 0; r < R; ++r)
        RESNET_UNROLL_ALL
        for (int v = 0; v < NV; ++v) {
            X y = V::add(acc[r][v], V::set1(r < d.rows ? d.bias[r] : T(0)));
            if (relu_now) y = V::max(y, V::zero());
            V::store(tile[r] + v * L, y);
        }
    // Scatter the block's runs of real columns, row by row.
    const int end = std::min(d.p0 + NV * L, d.end);
    for (int p = d.p0; p < end;) {
        const int row = p / d.wq, col = p % d.wq, run = std::min(d.wq - col, end - p);
        const int n = std::min(run, d.wo - col);
        const int64_t off = int64_t(row) * d.wo + col;
        for (int r = 0; r < d.rows && n > 0; ++r) {
            finish_run<V>(tile[r] + (p - d.p0), d.residual ? d.residual + r * d.plane + off : nullptr,
                          d.relu && d.residual, n, d.c + r * d.plane + off);
        }
        p += run;
    }
}

/// The direct-convolution entry (Kernels::direct): d.vectors ≤ NV, one
/// instantiation per vector count.
template <class V, int NV>
RESNET_KERNEL_ATTR void direct(const DirectArgs<typename V::Scalar>& d) {
    if constexpr (NV > 1)
        if (d.vectors < NV) return direct<V, NV - 1>(d);
    direct_n<V, NV>(d);
}

// --- Channel-vector direct convolution (ChannelArgs, layers/direct.hpp) -----

/// The channel-vector block (Kernels::channels): NV vectors of output
/// channels × P positions of accumulators. Each (channel, tap) step loads NV
/// weight vectors and broadcasts P input elements, NV·P FMAs.
/// Under AVX-512 (4 × 7) that is 33 registers for 32, and GCC 12 keeps one
/// accumulator on the stack (a load and a store per step). Reading the
/// fourth weight vector from L1 in each of its FMAs instead, which keeps all
/// 28 in registers, left ResNet-50's forward unchanged: 1.001–1.003× the
/// time at 1 thread, 1.000–1.004× at 2 (forward() calls alternating with
/// this kernel in one process, 40 pairs, AMD EPYC family 26 model 2).
template <class V, int NV, int P>
RESNET_KERNEL_ATTR void channels(const ChannelArgs<typename V::Scalar>& d) {
    using T = typename V::Scalar;
    using X = typename V::type;
    constexpr int L = V::lanes, B = NV * L;
    X acc[NV][P];
    T(*tile)[B] = reinterpret_cast<T(*)[B]>(d.sums);
    RESNET_UNROLL_ALL
    for (int v = 0; v < NV; ++v)
        RESNET_UNROLL_ALL
        for (int j = 0; j < P; ++j) acc[v][j] = d.first ? V::zero() : V::load(tile[j] + v * L);
    if (d.other) {
        const T(*other)[B] = reinterpret_cast<const T(*)[B]>(d.other);
        RESNET_UNROLL_ALL
        for (int v = 0; v < NV; ++v)
            RESNET_UNROLL_ALL
            for (int j = 0; j < P; ++j) acc[v][j] = V::add(acc[v][j], V::load(other[j] + v * L));
    }
    int pos[P];
    RESNET_UNROLL_ALL
    for (int j = 0; j < P; ++j) pos[j] = d.pos[j];
    const T* __restrict w = d.w;
    constexpr int kLine = 64 / int(sizeof(T));
    int fetched = 0;
    for (int c = 0; c < d.channels; ++c) {
        const T* __restrict xc = d.x + c * d.channel_stride;
        for (int t = 0; t < d.taps; ++t, w += B) {
            if (fetched < d.fetch_lines) RESNET_PREFETCH(d.fetch, kLine * fetched++);
            const T* xt = xc + d.tap[t];
            X wv[NV];
            RESNET_UNROLL_ALL
            for (int v = 0; v < NV; ++v) wv[v] = V::load(w + v * L);
            RESNET_UNROLL_ALL
            for (int j = 0; j < P; ++j) {
                const X xj = V::set1(xt[pos[j]]);
                RESNET_UNROLL_ALL
                for (int v = 0; v < NV; ++v) acc[v][j] = V::fma(wv[v], xj, acc[v][j]);
            }
        }
    }
    if (!d.last) {
        RESNET_UNROLL_ALL
        for (int v = 0; v < NV; ++v)
            RESNET_UNROLL_ALL
            for (int j = 0; j < P; ++j) V::store(tile[j] + v * L, acc[v][j]);
        return;
    }
    // + bias (and ReLU when no residual follows) in registers, then out
    // through a transposed copy: channel o's P sums are tile[·][o].
    const bool relu_now = d.relu && !d.residual;
    RESNET_UNROLL_ALL
    for (int v = 0; v < NV; ++v) {
        const int n = std::min(L, d.rows - v * L);
        const X bias = n <= 0 ? V::zero() : n == L ? V::load(d.bias + v * L) : V::load_n(d.bias + v * L, n);
        RESNET_UNROLL_ALL
        for (int j = 0; j < P; ++j) {
            X y = V::add(acc[v][j], bias);
            if (relu_now) y = V::max(y, V::zero());
            V::store(tile[j] + v * L, y);
        }
    }
    for (int o = 0; o < d.rows; ++o) {
        T* dst = d.c + o * d.plane;
        if (d.residual) {
            const T* res = d.residual + o * d.plane;
            for (int j = 0; j < d.positions; ++j) {
                const T y = tile[j][o] + res[j];
                dst[j] = d.relu ? std::max(y, T(0)) : y;
            }
        } else {
            for (int j = 0; j < d.positions; ++j) dst[j] = tile[j][o];
        }
    }
}

// --- Dot products of weight rows (Kernels::dot_rows; layers/linear.hpp) ----

/// out[r] = Σ_{f<F} w[r·F + f] · x[f] for r < rows: four rows at a time,
/// four streams from memory; each row's lanes summed in order, then the
/// scalar tail.
template <class V>
RESNET_KERNEL_ATTR void dot_rows(const typename V::Scalar* w, int64_t F, const typename V::Scalar* x, int rows,
                                 typename V::Scalar* out) {
    using T = typename V::Scalar;
    using X = typename V::type;
    constexpr int L = V::lanes, N = 4;
    const int64_t whole = F / L * L;
    for (int r0 = 0; r0 < rows; r0 += N) {
        const int n = std::min(N, rows - r0);
        X acc[N];
        RESNET_UNROLL_ALL
        for (int i = 0; i < N; ++i) acc[i] = V::zero();
        const T* wr = w + int64_t(r0) * F;
        for (int64_t f = 0; f < whole; f += L) {
            const X xv = V::load(x + f);
            RESNET_UNROLL_ALL
            for (int i = 0; i < N; ++i)
                if (i < n) acc[i] = V::fma(V::load(wr + i * F + f), xv, acc[i]);
        }
        alignas(64) T lanes[N][L];
        RESNET_UNROLL_ALL
        for (int i = 0; i < N; ++i) V::store(lanes[i], acc[i]);
        for (int i = 0; i < n; ++i) {
            T sum = lanes[i][0];
            for (int l = 1; l < L; ++l) sum += lanes[i][l];
            for (int64_t f = whole; f < F; ++f) sum += wr[i * F + f] * x[f];
            out[r0 + i] = sum;
        }
    }
}

// --- Max pooling (Kernels::rows_max, windows_max2; layers/pool.hpp) ---------

/// dst[x] = max_{i<n} src[i·stride + x] for x < w (n ≥ 1).
template <class V>
RESNET_KERNEL_ATTR void rows_max(const typename V::Scalar* src, int64_t stride, int n, int w,
                                 typename V::Scalar* dst) {
    using T = typename V::Scalar;
    constexpr int L = V::lanes;
    int x = 0;
    for (; x + L <= w; x += L) {
        typename V::type m = V::load(src + x);
        for (int i = 1; i < n; ++i) m = V::max(m, V::load(src + i * stride + x));
        V::store(dst + x, m);
    }
    for (; x < w; ++x) {
        T m = src[x];
        for (int i = 1; i < n; ++i) m = std::max(m, src[i * stride + x]);
        dst[x] = m;
    }
}

/// dst[ox] = max_{t<k} c[2·ox − pad + t] for ox in [lo, hi), each window
/// inside c. A vector of outputs is the even lanes of two vectors of
/// h[x] = max_t c[x − pad + t] at x = 2·ox, …: contiguous loads, no gather.
template <class V>
RESNET_KERNEL_ATTR void windows_max2(const typename V::Scalar* c, int k, int pad, int lo, int hi,
                                     typename V::Scalar* dst) {
    using T = typename V::Scalar;
    constexpr int L = V::lanes;
    int ox = lo;
    // The second vector's last lane reads one element past the last window.
    for (; ox + L < hi; ox += L) {
        const T* p = c + 2 * ox - pad;
        typename V::type a = V::load(p), b = V::load(p + L);
        for (int t = 1; t < k; ++t) a = V::max(a, V::load(p + t)), b = V::max(b, V::load(p + L + t));
        V::store(dst + ox, V::even(a, b));
    }
    for (; ox < hi; ++ox) {
        const T* p = c + 2 * ox - pad;
        T m = p[0];
        for (int t = 1; t < k; ++t) m = std::max(m, p[t]);
        dst[ox] = m;
    }
}

// --- Winograd F(m×m, 3×3) transforms (matrices and contract: winograd.hpp) --

/// o_i = (Bᵀ d)_i on L tiles side by side: d_j at s[j·ss + l], o_i to o[i·os + l].
template <class V, int M>
RESNET_KERNEL_ATTR RESNET_ALWAYS_INLINE void wino_in(const typename V::Scalar* s, int64_t ss, typename V::Scalar* o,
                                                     int64_t os) {
    using T = typename V::Scalar;
    using X = typename V::type;
    const X d0 = V::load(s), d1 = V::load(s + ss), d2 = V::load(s + 2 * ss), d3 = V::load(s + 3 * ss);
    if constexpr (M == 4) {
        const X d4 = V::load(s + 4 * ss), d5 = V::load(s + 5 * ss);
        const X t1 = d3 - d1, t2 = d4 - d2;
        V::store(o, (d0 - d2) + t2 + T(1.5) * t1);
        V::store(o + os, (d4 + d1) + T(0.5) * d3 - T(2.5) * d2);
        V::store(o + 2 * os, (d4 - d1) + T(0.5) * d2 + T(2.5) * d3);
        V::store(o + 3 * os, t2 + T(2) * t1);
        V::store(o + 4 * os, t2 - T(0.5) * t1);
        V::store(o + 5 * os, (d5 - d3) - t1 + T(1.5) * t2);
    } else {
        V::store(o, d0 - d2);
        V::store(o + os, d1 + d2);
        V::store(o + 2 * os, d2 - d1);
        V::store(o + 3 * os, d1 - d3);
    }
}

/// y_i = (Aᵀ m)_i + add: m_j at s[j·ss + l], y_i to y[i·ys + l]; lanes
/// l ≥ `valid` of m are taken as zeros, not read.
template <class V, int M>
RESNET_KERNEL_ATTR RESNET_ALWAYS_INLINE void wino_out(const typename V::Scalar* s, int64_t ss, typename V::Scalar* y,
                                                      int64_t ys, typename V::Scalar add, int valid = V::lanes) {
    using T = typename V::Scalar;
    using X = typename V::type;
    const auto load = [valid](const T* p) RESNET_KERNEL_ATTR { return valid < V::lanes ? V::load_n(p, valid) : V::load(p); };
    const X m0 = load(s), m1 = load(s + ss), m2 = load(s + 2 * ss), m3 = load(s + 3 * ss);
    const X a = V::set1(add);
    if constexpr (M == 4) {
        const X m4 = load(s + 4 * ss), m5 = load(s + 5 * ss);
        const X sum = m1 + m2, dif = m2 - m1;
        V::store(y, ((m0 + sum) + (m3 + m4)) + a);
        V::store(y + ys, (dif + T(0.5) * m3 - T(2) * m4) + a);
        V::store(y + 2 * ys, (sum + T(0.25) * m3 + T(4) * m4) + a);
        V::store(y + 3 * ys, ((dif + m5) + T(0.125) * m3 - T(8) * m4) + a);
    } else {
        V::store(y, ((m0 + m1) + m2) + a);
        V::store(y + ys, ((m1 - m2) - m3) + a);
    }
}

/// The α×α patches (α = M + 2) of tiles t0 … t0 + n − 1 (n ≤ L) of one
/// channel plane, into d as wino_input lays them out (zero outside the image
/// and in lanes ≥ n), from contiguous loads of each image row. With ph_j
/// the row's elements x0 + M·i + j (x0 = M·tx of a run's first tile; even
/// and odd lanes, twice for M = 4), tile i's patch row is ph_{M−1}[i − 1],
/// ph_0[i], …, ph_{M−1}[i], ph_0[i + 1]; each run of tiles from one tile
/// row is then placed at its lanes. Same bits as copying each element
/// (wino_input's path for the other sets). It replaced a masked gather per
/// patch element; inside ResNet-50 at 1 thread (pinned, medians of 6
/// alternating processes, AMD EPYC family 26 model 2) the input transforms
/// took, under AVX-512 (either vCPU): layer1's (F(4×4), 56²) 116–141
/// instead of 180–204 µs, layer2's 70 instead of 97, layer3's (F(2×2), 14²)
/// 37–42 instead of 75–80, layer4's 26–30 instead of 40–42; under AVX2
/// (RESNET_ISA=avx2, vCPU 0): 142–145 instead of 224–229, 86–88 instead of
/// 114–117, 64–65 instead of 86, 39 instead of 52. The whole forward under
/// AVX-512, processes alternating (10–20 pairs): F(2×2)'s first, ResNet-50
/// 0.992× the time at 1 thread and 0.999× at 2, ResNet-101 0.986–0.992× at
/// 1; then F(4×4)'s, ResNet-50 0.980–0.986× and 0.993–0.996× of that,
/// ResNet-18 0.967–0.970× and 0.987–0.996×.
template <class V, int M, class P>
RESNET_KERNEL_ATTR RESNET_ALWAYS_INLINE void row_patches(const P& p, const typename V::Scalar* xc, int t0, int n,
                                                         typename V::Scalar* d) {
    using T = typename V::Scalar;
    using X = typename V::type;
    constexpr int L = V::lanes, A = M + 2;
    // Tiles [lane, lane + n) of one tile row: patch rows from y0, columns
    // from x0, `avail` elements from x0 in each image row (at most M·L).
    struct Run {
        int lane, n, y0, x0, avail;
    } runs[L];
    int count = 0;
    for (int lane = 0; lane < n; lane += runs[count++].n) {
        const int ty = (t0 + lane) / p.tiles_x, tx = (t0 + lane) % p.tiles_x;
        const int x0 = M * tx;
        runs[count] = {lane, std::min(p.tiles_x - tx, n - lane), M * ty - 1, x0, std::clamp(p.w - x0, 0, M * L)};
    }
    // Row by row, so that only a patch row's α vectors stay in registers.
    for (int r = 0; r < A; ++r) {
        X out[A];
        RESNET_UNROLL_ALL
        for (int s = 0; s < A; ++s) out[s] = V::zero();
        for (int i = 0; i < count; ++i) {
            const Run& run = runs[i];
            const int y = run.y0 + r;
            if (y < 0 || y >= p.h) continue;
            const T* row = xc + int64_t(y) * p.w + run.x0;
            X part[M];
            RESNET_UNROLL_ALL
            for (int q = 0; q < M; ++q) {
                const int left = run.avail - q * L;
                part[q] = left >= L ? V::load(row + q * L) : left > 0 ? V::load_n(row + q * L, left) : V::zero();
            }
            X ph[M];
            if constexpr (M == 2) {
                ph[0] = V::even(part[0], part[1]), ph[1] = V::odd(part[0], part[1]);
            } else {
                const X e1 = V::even(part[0], part[1]), o1 = V::odd(part[0], part[1]);
                const X e2 = V::even(part[2], part[3]), o2 = V::odd(part[2], part[3]);
                ph[0] = V::even(e1, e2), ph[1] = V::even(o1, o2), ph[2] = V::odd(e1, e2), ph[3] = V::odd(o1, o2);
            }
            out[0] = V::place(out[0], V::shift_up(ph[M - 1], run.x0 > 0 ? row[-1] : T(0)), run.lane, run.n);
            RESNET_UNROLL_ALL
            for (int s = 1; s <= M; ++s) out[s] = V::place(out[s], ph[s - 1], run.lane, run.n);
            const T last = run.x0 + M * run.n < p.w ? row[M * run.n] : T(0);
            out[M + 1] = V::place(out[M + 1], V::shift_down(ph[0], run.n, last), run.lane, run.n);
        }
        RESNET_UNROLL_ALL
        for (int s = 0; s < A; ++s) V::store(d + (r * A + s) * L, out[s]);
    }
}

/// Input transform of channels [c0, c1) of one chunk into its V (P: winograd::Plan):
/// v[ξ·v_stride + c·ld + k] = (Bᵀ d B)[ξ] of tile k, channel c, for k below
/// the chunk's padded tile count (zero patches past its tiles).
///
/// Patches are taken L tiles at a time, one vector per patch element
/// (zero outside the image and past the chunk's tiles): from whole image
/// rows where the set has lane moves (AVX2, AVX-512: row_patches), else
/// copied element by element with the row and column tests precomputed per
/// group. Copying had been most of the transform's time in every set; the
/// gathers that first replaced it (before row_patches) and the precomputed
/// tests took ResNet-50's three shapes (64ch 56², 128ch 28² F(4×4), 256ch
/// 14² F(2×2); the whole input transform, 1 thread pinned to one vCPU,
/// lower quartile of 300 calls, AMD EPYC family 26 model 2) from AVX-512
/// 250 / 136 / 128 to 184 / 98 / 78 µs, AVX2 217 / 116 / 105 to 199 / 102
/// / 79, SSE2 257 / 131 / 110 to 237 / 119 / 99 and portable 308 / 161 /
/// 123 to 273 / 140 / 99.
template <class V, int M, class P>
RESNET_KERNEL_ATTR void wino_input(const P& p, const typename V::Scalar* x, int chunk, int c0, int c1,
                                   typename V::Scalar* v) {
    using T = typename V::Scalar;
    constexpr int L = V::lanes, A = M + 2, G = (P::kMaxChunkTiles + L - 1) / L;
    const int first = chunk * p.chunk_tiles, nt = p.chunk_size(chunk), groups = p.padded(nt) / L;
    // Per tile: its patch's offset in the channel plane (top-left at
    // row y0 = M·ty − 1, column x0 = M·tx − 1); per group of L tiles and
    // patch row r (column s): the lanes whose row y0 + r (column x0 + s)
    // lies inside the image. Not needed with lane moves.
    alignas(64) int32_t offset[G * L];
    uint32_t row_in[G][A] = {}, col_in[G][A] = {};
    for (int k = 0; k < (V::lane_moves ? 0 : groups * L); ++k) {
        offset[k] = 0;
        if (k >= nt) continue;
        const int y0 = M * ((first + k) / p.tiles_x) - 1, x0 = M * ((first + k) % p.tiles_x) - 1;
        offset[k] = y0 * p.w + x0;
        for (int i = 0; i < A; ++i) {
            if (y0 + i >= 0 && y0 + i < p.h) row_in[k / L][i] |= 1u << (k % L);
            if (x0 + i >= 0 && x0 + i < p.w) col_in[k / L][i] |= 1u << (k % L);
        }
    }
    for (int c = c0; c < c1; ++c) {
        const T* xc = x + int64_t(c) * p.h * p.w;
        T* vc = v + int64_t(c) * p.ld;
        for (int g = 0; g < groups; ++g) {
            alignas(64) T d[A * A * L];  // d[(r·α + s)·L + l]: patch element (r, s) of tile g·L + l
            if constexpr (V::lane_moves) {
                row_patches<V, M>(p, xc, first + g * L, std::min(L, nt - g * L), d);
            } else {
                // Lane by lane and row by row: a select per element, tried
                // instead, took SSE2's F(4×4) transform 1.25–1.4× the time.
                for (int l = 0; l < L; ++l)
                    for (int r = 0; r < A; ++r) {
                        const bool in = row_in[g][r] >> l & 1;
                        const int64_t row = offset[g * L + l] + int64_t(r) * p.w;
                        RESNET_UNROLL_ALL
                        for (int s = 0; s < A; ++s)
                            d[(r * A + s) * L + l] = in && col_in[g][s] >> l & 1 ? xc[row + s] : T(0);
                    }
            }
            alignas(64) T h[A * A * L];  // rows transformed: h[(r·α + b)·L + l]
            RESNET_UNROLL_ALL
            for (int r = 0; r < A; ++r) wino_in<V, M>(d + r * A * L, L, h + r * A * L, L);
            // The next group's α² lines of V, fetched for ownership while
            // this group is stored. The previous Winograd layer's products
            // read V on every core, so each store here otherwise waited for
            // the other cores to drop their copies. ResNet-50 at 2 threads,
            // in the network (12 alternating processes, medians, AMD EPYC
            // family 26 model 2): layer1's input transforms 116–118 → 78–93
            // µs, layer2's 126 → 90, layer3's 56 → 40, the sum of all steps
            // 21.79 → 21.48 ms; the whole forward 0.994–1.001× the time at 2
            // threads and 0.984–0.995× at 1 (alternating processes, 10–16
            // pairs, two host states).
            if (const T* next = g + 1 < groups ? vc + (g + 1) * L : c + 1 < c1 ? vc + p.ld : nullptr) {
                RESNET_UNROLL_ALL
                for (int xi = 0; xi < A * A; ++xi) RESNET_PREFETCH_WRITE(next, xi * p.v_stride);
            }
            RESNET_UNROLL_ALL
            for (int b = 0; b < A; ++b) wino_in<V, M>(h + b * L, A * L, vc + g * L + b * p.v_stride, A * p.v_stride);
        }
    }
}

/// Output transform of channels [o0, o0 + nr) of one chunk from m
/// (m[(o − o0)·α²·ld + ξ·ld + k], the item's GEMM results) with the fused
/// epilogue, into the image's output `out` (Cout × h·w) with `residual` in
/// the same layout (or null); `stage` holds m²·ld + m·ld elements. Channel
/// o at position q lies at out[q / S·ls + o·lr + q % S] (detail::MatrixLayout
/// {lr, ls}, S = strip): lr = h·w and ls = S for planes (NCHW).
template <class V, int M, class P>
RESNET_KERNEL_ATTR void wino_output(const P& p, const typename V::Scalar* m, int chunk, int o0, int nr,
                                    const typename V::Scalar* bias, typename V::Scalar* out, const typename V::Scalar* residual,
                                    bool relu, typename V::Scalar* stage, int64_t lr, int64_t ls, int S) {
    using T = typename V::Scalar;
    constexpr int L = V::lanes, A = M + 2;
    T* __restrict yb = stage;                  // yb[(i·m + j)·ld + k]: output (i, j) of tile k
    T* __restrict row = stage + M * M * p.ld;  // one output row of a run of tiles, ≤ m·ld
    const int first = chunk * p.chunk_tiles, nt = p.chunk_size(chunk), nv = p.padded(nt);
    const int64_t plane = int64_t(p.h) * p.w;
    // The chunk's output rows of the next channel are fetched for ownership
    // while this one is transformed (see RESNET_PREFETCH_WRITE): the block's
    // previous layer read them on both cores. Alternating processes (16
    // pairs, AMD EPYC family 26 model 2): ResNet-50 0.990–0.993× the time at
    // 2 threads, 1.000× at 1 (pinned); ResNet-18 0.959–0.975× at 2.
    const int64_t rows_begin = int64_t(M) * (first / p.tiles_x) * p.w;
    const int64_t rows_end = std::min(plane, int64_t(M) * ((first + nt - 1) / p.tiles_x + 1) * p.w);
    // In the strip layout, the lines of those rows' strips.
    constexpr int64_t kLine = 64 / int64_t(sizeof(T));
    const int64_t fetch_begin = ls == S ? rows_begin : rows_begin / S * ls;
    const int64_t fetch_end = ls == S ? rows_end : (rows_end - 1) / S * ls + S;
    const int64_t fetch_run = ls == S ? fetch_end - fetch_begin : S;
    for (int o = o0; o < o0 + nr; ++o) {
        if (o + 1 < o0 + nr)
            for (int64_t r = fetch_begin + (o + 1) * lr; r < fetch_end + (o + 1) * lr; r += ls == S ? fetch_run : ls)
                for (int64_t i = 0; i < fetch_run; i += kLine) RESNET_PREFETCH_WRITE(out, r + i);
        const T* mo = m + int64_t(o - o0) * p.points * p.ld;
        const T bo = bias[o];
        for (int k0 = 0; k0 < nv; k0 += L) {
            // The GEMMs wrote m's first nt columns only (strip_tiles): the
            // last vector's lanes past them are loaded as zeros.
            const int valid = std::min(L, nt - k0);
            alignas(64) T t[A * M * L];  // columns transformed: t[(b·m + i)·L + l]
            RESNET_UNROLL_ALL
            for (int b = 0; b < A; ++b) wino_out<V, M>(mo + b * p.ld + k0, A * p.ld, t + b * M * L, L, T(0), valid);
            RESNET_UNROLL_ALL
            for (int i = 0; i < M; ++i) wino_out<V, M>(t + i * L, M * L, yb + i * M * p.ld + k0, p.ld, bo);
        }
        // Runs of tiles within one tile row: interleave the m columns of each
        // tile into an output row, then add the residual, ReLU and store it,
        // a strip at a time in the strip layout.
        for (int k = 0; k < nt;) {
            const int t = first + k, ty = t / p.tiles_x, tx = t % p.tiles_x, n = std::min(p.tiles_x - tx, nt - k);
            const int x0 = M * tx, wn = std::min(M * n, p.w - x0);
            for (int i = 0; i < M && M * ty + i < p.h; ++i) {
                const T* yi = yb + i * M * p.ld + k;  // yi[j·ld + q]: output (i, j) of tile k + q
                for (int q = 0; q < n; ++q)
                    RESNET_UNROLL_ALL
                    for (int j = 0; j < M; ++j) row[M * q + j] = yi[j * p.ld + q];
                const int64_t q0 = int64_t(M * ty + i) * p.w + x0;
                int64_t off = q0 / S * ls + o * lr + q0 % S;
                for (int e = 0, lane = int(q0 % S); e < wn; lane = 0, off += ls - S) {
                    const int run = ls == S ? wn - e : std::min(wn - e, S - lane);
                    finish_run<V>(row + e, residual ? residual + off : nullptr, relu, run, out + off);
                    e += run, off += run;
                }
            }
            k += n;
        }
    }
}

}  // namespace resnet::detail::RESNET_KERNEL_NS
