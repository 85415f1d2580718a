#pragma once
// Conv2d (+ folded eval-mode BatchNorm2d, + fused bias/residual/ReLU).
#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>

#include "../detail/gemm.hpp"
#include "../detail/thread_pool.hpp"
#include "../detail/weight_arena.hpp"
#include "../tensor.hpp"
#include "direct.hpp"
#include "winograd.hpp"

namespace resnet {

/// What the output pass applies to each element: + bias[c], + residual (same
/// shape as the output, may be null, may be the output itself: each
/// element's residual is read before it is written), max(0, ·). With the
/// GEMM, the residual enters with the first k block (detail/gemm.hpp).
template <class T>
struct Epilogue {
    const T* residual = nullptr;
    bool relu = false;
};

/// How an image's C × H × W activations lie in memory: Planes, one H·W
/// plane per channel (NCHW); Strips, the GEMM's strip layout of the C × H·W
/// matrix (detail::MatrixLayout::strips(C)): for each run of S = strip()
/// positions, the C channels' S values each, one after the other. A 1×1
/// layer's GEMM reads an input in strips as one stream per strip instead
/// of C rows a plane apart; see ResidualBlock::exchanges_strips for what
/// that measured.
enum class Layout { Planes, Strips };

/// The layouts of a Conv2d::forward()'s input and output (the residual's is the output's).
struct Layouts {
    Layout in = Layout::Planes, out = Layout::Planes;
    bool any_strips() const { return in == Layout::Strips || out == Layout::Strips; }
};

/// 2-D convolution with bias (the folded BatchNorm) and G groups, as
/// PyTorch's F.conv2d(x, w, b, stride, pad, dilation, groups).
///
/// Input N×Cin×H×W, output N×Cout×Ho×Wo with
///   Ho = (H + 2·pad − dilation·(k−1) − 1) / stride + 1   (floor division)
/// and likewise Wo. G divides Cin and Cout; output channels
/// [g·Cout/G, (g+1)·Cout/G) see input channels [g·Cin/G, (g+1)·Cin/G) only.
///
/// Each image is G GEMMs, one per group g,
///   out_g[Cout/G × Ho·Wo] = W_g · col_g[(Cin/G)·k·k × Ho·Wo]
/// where W_g is rows [g·Cout/G, (g+1)·Cout/G) of PyTorch's [Cout,Cin/G,k,k]
/// tensor as a matrix, packed at load into the micro-kernel's panels
/// (detail/gemm.hpp), and col_g is rows [g·(Cin/G)·k·k, (g+1)·(Cin/G)·k·k)
/// of the im2col expansion of the whole input, built in bands of output rows
/// (or the input itself for a 1×1, stride-1, unpadded convolution whose rows
/// are whole strips of the micro-kernel, or whole strips and one vector: no
/// copy). Bias, residual and ReLU are applied as each micro-tile leaves the
/// registers.
///
/// Ungrouped 3×3 stride-1 pad-1 convolutions may instead run Winograd
/// F(m×m, 3×3) (winograd.hpp); such a layer keeps only the transformed
/// weights. Grouped layers and those of at most 4 input channels run a
/// direct convolution (direct.hpp), with its own weight layout; the other
/// ungrouped layers wider than 1×1 that Winograd does not take run its
/// channel-vector kernel under AVX-512 (runs_channels); Algorithm::Im2col
/// forces the GEMM.
template <class T>
class Conv2d {
public:
    /// Auto: by layer shape (below). The others force a path (the Winograd
    /// ones throw unless 3×3 s1 p1 d1 ungrouped; Direct above 8×8;
    /// DirectChannels above 8×8 or grouped).
    enum class Algorithm { Auto, Im2col, Winograd4x4, Winograd2x2, Direct, DirectChannels };

    Conv2d() = default;
    /// weight: [Cout, Cin/groups, k, k] (read here, laid out anew: the layer
    /// keeps no reference to it); bias: [Cout]. The new layout is carved
    /// from `arena` and written on its pool's threads if given (the
    /// loader's), else an array of its own written on the calling thread.
    Conv2d(const Tensor<T>& weight, Tensor<T> bias, int stride, int pad, int dilation = 1, int groups = 1,
           Algorithm algorithm = Algorithm::Auto, detail::WeightArena* arena = nullptr)
        : cout_(int(weight.dim(0))), cin_(int(weight.dim(1)) * groups), k_(int(weight.dim(2))), groups_(groups),
          stride_(stride), pad_(pad), dilation_(dilation), bias_(std::move(bias)), algorithm_(algorithm) {
        weight.require_shape({-1, -1, k_, k_}, "Conv2d weight (square kernel)");
        bias_.require_shape({cout_}, "Conv2d bias");
        if (stride < 1 || dilation < 1 || pad < 0) detail::fail("Conv2d: invalid stride/pad/dilation");
        if (groups < 1 || cout_ % groups != 0)
            detail::fail("Conv2d: groups ", groups, " does not divide the ", cout_, " output channels");
        wino_m_ = winograd_tile_for(algorithm);
        if (wino_m_) {
            wino_weight_ = std::make_shared<const Tensor<T>>(
                winograd::transform_weights(wino_m_, weight.data(), cout_, cin_, arena));
            return;
        }
        channels_ = runs_channels(algorithm);
        direct_ = !channels_ && runs_direct(algorithm);
        if (direct_ || channels_) {
            packed_ = direct::pack_weights(weight.data(), cout_, cin_ / groups, k_, groups,
                                           channels_ ? detail::kernels<T>().channel_block() : direct::kDirectRows,
                                           arena);
            return;
        }
        const int R = detail::kernels<T>().panel_rows_for(group_out());
        const int64_t rows = group_out(), panels = detail::panel_count(rows, R);
        packed_ = detail::layout_tensor<T>(arena, {groups, panels, krows(), R});
        for (int g = 0; g < groups; ++g)
            detail::pack_panels(weight.data() + g * rows * krows(), rows, krows(), R,
                                packed_.data() + g * panels * krows() * R, detail::layout_pool(arena));
    }

    /// Conv (with `conv_bias` if not null) followed by eval-mode BatchNorm2d,
    /// folded in double:
    ///   W' = W·γ/√(σ²+ε),   b' = β + (b − μ)·γ/√(σ²+ε).
    /// `weight` is scaled in place (to W'); `arena` as in the constructor.
    static Conv2d fold_batchnorm(Tensor<T>& weight, const Tensor<T>& gamma, const Tensor<T>& beta,
                                 const Tensor<T>& mean, const Tensor<T>& var, int stride, int pad,
                                 int groups = 1, double eps = 1e-5, const Tensor<T>* conv_bias = nullptr,
                                 detail::WeightArena* arena = nullptr) {
        const int64_t cout = weight.dim(0), per_out = weight.size() / cout;
        Tensor<T> b({cout});
        for (int64_t o = 0; o < cout; ++o) {
            const double scale = double(gamma[o]) / std::sqrt(double(var[o]) + eps);
            T* w = weight.data() + o * per_out;
            for (int64_t i = 0; i < per_out; ++i) w[i] = T(double(w[i]) * scale);
            const double bias = conv_bias ? double((*conv_bias)[o]) : 0.0;
            b[o] = T(double(beta[o]) + (bias - double(mean[o])) * scale);
        }
        return Conv2d(weight, std::move(b), stride, pad, 1, groups, Algorithm::Auto, arena);
    }

    int in_channels() const { return cin_; }
    int out_channels() const { return cout_; }
    int kernel() const { return k_; }
    int groups() const { return groups_; }
    int stride() const { return stride_; }
    /// The output side for an input side `in` (an Error if the padded input
    /// is narrower than the kernel's reach, as in PyTorch).
    int out_size(int in) const {
        const int reach = dilation_ * (k_ - 1) + 1;
        if (in + 2 * pad_ < reach)
            detail::fail("Conv2d: input side ", in, " with padding ", pad_, " is smaller than the ", k_, "x", k_,
                         " kernel's reach of ", reach, " (dilation ", dilation_, ")");
        return (in + 2 * pad_ - reach) / stride_ + 1;
    }
    const Tensor<T>& bias() const { return bias_; }
    Algorithm algorithm() const { return algorithm_; }
    /// The Winograd output tile m of forward() (4 or 2), or 0: im2col + GEMM or direct.
    int winograd_tile() const { return wino_m_; }
    /// Which of its two places in the scratch a Winograd layer puts its
    /// transformed input in, when it has two (winograd.hpp): consecutive
    /// Winograd layers of a network take alternate sides (ResNet's
    /// constructor), so each can fetch the lines the next will write.
    void set_winograd_side(int side) { wino_side_ = side; }
    /// Whether forward() runs the direct convolution (direct.hpp), and
    /// whether its channel-vector kernel.
    bool direct() const { return direct_ || channels_; }
    bool direct_channels() const { return channels_; }

    /// Whether forward() takes its input in Layout::Strips: an unpadded,
    /// ungrouped 1×1 layer on the GEMM (any stride).
    bool takes_strips() const { return k_ == 1 && pad_ == 0 && writes_strips(); }
    /// Whether forward() gives its output in Layout::Strips: an ungrouped
    /// layer on the GEMM or Winograd (whose output transform then stores
    /// each run of a strip's positions in place).
    bool writes_strips() const { return groups_ == 1 && !direct_ && !channels_; }
    /// Whether a block should have this layer give its ho×wo output in
    /// Layout::Strips to a 1×1 that takes it (ResidualBlock::handoff): where
    /// writes_strips(), but not through Winograd F(4×4), nor through the
    /// GEMM when the output's last few columns would have joined the strip
    /// before them (gemm.hpp's strip_count, only for C in planes).
    /// ResNet-50's 3×3s handing their outputs to the last 1×1s so, under
    /// AVX2 (forward() calls alternating with planes in one process, 30
    /// pairs, per-layer medians, AMD EPYC family 25 model 1): layer3's F(2×2)
    /// 3×3s 0.97–1.00× their time and the 1×1s after them 0.91–0.97×;
    /// layer2.0's and layer3.0's strided 3×3s (GEMM, 784 and 196 columns)
    /// 0.97× and 0.99×, their 1×1s 0.95× and 0.96×; but the F(4×4) 3×3s of
    /// layers 1–2 1.07–1.17× (+0.15–0.45 ms: a store per run of a strip)
    /// against 1×1s 0.89–0.95× (−0.1–0.25 ms), and layer4.0's strided 3×3
    /// (49 columns: the 49th in a tile of its own) 1.13× against 0.94×.
    bool hands_strips(int ho, int wo) const {
        if (!writes_strips() || wino_m_ == 4) return false;
        return wino_m_ || cuts_alike(int64_t(ho) * wo);
    }
    /// Whether this layer's GEMM cuts an output of `plane` positions into
    /// the same strips in either layout: in planes, a last strip of at most
    /// Kernels::columns_past columns joins the one before it (gemm.hpp's
    /// strip_count), which in strips it cannot, its columns lying a whole
    /// strip block apart.
    bool cuts_alike(int64_t plane) const {
        const auto& kern = detail::kernels<T>();
        const int E = kern.columns_past_for(kern.panel_rows_for(group_out()));
        return detail::strip_count(plane, strip(), E) == strips(plane);
    }
    /// Elements of one image's output for an h×w input, in `layout`.
    int64_t out_elements(int h, int w, Layout layout) const {
        const int64_t plane = int64_t(out_size(h)) * out_size(w);
        return out_layout(layout, plane).span(cout_, plane, strip());
    }

    /// Elements of scratch needed for one image of h×w, in and out of
    /// forward() in the layouts `io`: one im2col band (im2col_band; when
    /// the input is read where it lies, the GEMM's partial sums of a depth
    /// split instead: detail::gemm), the Winograd
    /// transforms, or the direct convolution's prepared input (+ the
    /// channel-vector kernel's partial sums).
    int64_t workspace_size(int h, int w, Layouts io = {}) const {
        if (wino_m_) return winograd::Plan::make<T>(wino_m_, cin_, cout_, h, w).total;
        if (channels_) return direct::channels_workspace<T>(direct_plan(h, w));
        if (direct_) return direct_plan(h, w).total();
        const int64_t plane = int64_t(out_size(h)) * out_size(w);
        const int64_t split = detail::depth_split_size<T>(krows(), out_elements(h, w, io.out));
        if (reads_directly(plane, io.in)) return groups_ == 1 ? split : 0;
        const int band = im2col_band(out_size(h), out_size(w), io.out);
        return groups_ * krows() * strips(int64_t(band) * out_size(w)) * strip();
    }

    /// in: n×Cin×h×w, out: n×Cout×Ho×Wo, col: workspace_size(h, w, io)
    /// elements; `io` other than Planes: one image, an input in strips for
    /// takes_strips() layers, an output in strips for writes_strips() ones.
    void forward(const T* in, int n, int h, int w, T* out, const Epilogue<T>& ep, T* col, detail::ThreadPool& pool,
                 Layouts io = {}) const {
        if (io.any_strips() && n != 1) detail::fail("Conv2d: Layout::Strips takes one image, not ", n);
        if (io.in == Layout::Strips && !takes_strips())
            detail::fail("Conv2d: an input in Layout::Strips needs an unpadded, ungrouped 1x1 layer on the GEMM");
        if (io.out == Layout::Strips && !writes_strips())
            detail::fail("Conv2d: an output in Layout::Strips needs an ungrouped layer on the GEMM or Winograd");
        if (wino_m_)
            return winograd::forward(winograd::Plan::make<T>(wino_m_, cin_, cout_, h, w), wino_weight_->data(),
                                     bias_.data(), in, n, out, out_layout(io.out, int64_t(h) * w), ep.residual,
                                     ep.relu, col, wino_side_, pool);
        if (channels_)
            return direct::forward_channels(direct_plan(h, w), stride_, packed_.data(), bias_.data(), in, n, out,
                                            ep.residual, ep.relu, col, pool);
        if (direct_)
            return direct::forward(direct_plan(h, w), packed_.data(), bias_.data(), in, n, out, ep.residual, ep.relu,
                                   col, pool);
        const int ho = out_size(h), wo = out_size(w);
        const int64_t plane = int64_t(ho) * wo;
        using detail::MatrixLayout;
        const int S = strip();
        const int band = im2col_band(ho, wo, io.out);
        const int64_t a_group = packed_.size() / groups_;
        const MatrixLayout cl = out_layout(io.out, plane);
        for (int img = 0; img < n; ++img) {
            const T* x = in + int64_t(img) * cin_ * h * w;
            const int64_t out_off = int64_t(img) * cout_ * plane;
            const T* res = ep.residual ? ep.residual + out_off : nullptr;
            if (reads_directly(plane, io.in)) {
                const MatrixLayout bl =
                    io.in == Layout::Strips ? MatrixLayout::strips<T>(cin_) : MatrixLayout::planes<T>(plane);
                detail::gemm(packed_.data(), group_out(), krows(), x, bl, plane, out + out_off, cl,
                             {bias_.data(), res, ep.relu}, pool, {groups_, a_group, krows() * plane},
                             groups_ == 1 ? col : nullptr);
                continue;
            }
            // Output rows [oy0, oy0 + band) at a time: one im2col band, one GEMM.
            for (int oy0 = 0; oy0 < ho; oy0 += band) {
                const int rows = std::min(band, ho - oy0);
                const int64_t cols = int64_t(rows) * wo, ld = strips(cols) * S, off = int64_t(oy0) * wo;
                pool.parallel_ranges(int64_t(cin_) * k_, [&](int64_t begin, int64_t end) {
                    for (int64_t ci = begin; ci < end; ++ci)
                        if (io.in == Layout::Strips)
                            gather_strips(x, int(ci), w, oy0, rows, wo, ld, col);
                        else
                            im2col_rows(x, int(ci / k_), int(ci % k_), h, w, oy0, rows, wo, ld, col);
                });
                const int64_t at = off / S * cl.strip + off % S;  // column off of C (a strip's first in strips)
                detail::gemm(packed_.data(), group_out(), krows(), col, MatrixLayout::planes<T>(ld), cols,
                             out + out_off + at, cl, {bias_.data(), res ? res + at : nullptr, ep.relu}, pool,
                             {groups_, a_group, krows() * ld});
            }
        }
    }

private:
    /// Auto's choice, by the wider of Cin and Cout: F(4×4) up to 128 channels, F(2×2) up to 512, the channel-vector
    /// kernel above. Each layer keeps either its im2col weights or its Winograd transforms (16/9 of them for F(2×2), 4×
    /// for F(4×4)), and ResNet-50 at 224² must stay within a 150 MB peak RSS (float). Measured by running two models of
    /// the same weights in one process, forward() calls alternating (medians of 30–40 pairs' ratios, AMD EPYC family 26
    /// model 2): F(2×2) for the 512-channel layers (layer4's 3×3s at 7², on im2col before) and for the 128-channel ones
    /// (layer2's at 28², F(4×4) before) took ResNet-50 0.962–0.966× the time at 2 threads and 0.981–0.993× at 1 for
    /// +9.6 MiB (peak RSS 142.5 MiB); ResNet-18 0.878× and 0.936× (+16.5 MiB), Wide ResNet-50-2 0.884× and 0.888×
    /// (+34.8 MiB). Layer4's alone, layer2 kept on F(4×4): 0.944–0.957× and 0.978×, but 3.8 MiB more, over the 150 MB
    /// then. Layer2 went back to F(4×4) once blocks with an identity shortcut ran in place (blocks.hpp), 1.5 MiB less:
    /// F(4×4) there took ResNet-50 0.970–0.979× the time at 1 thread and 0.984–0.990× at 2 (2 × 25 pairs) for +3.2 MiB.
    /// Layer3 on im2col instead of F(2×2): 1.077× at 2 threads; on F(4×4): 0.994× for 25 MiB more. Wider layers (Wide
    /// ResNet's layer4, 1024 channels) stay off Winograd (runs_channels takes them): F(2×2) would add 28 MiB per layer.
    /// Grouped layers stay off Winograd (they run direct: runs_direct): their per-group products are small, and
    /// Winograd would not cut the per-channel transforms.
    int winograd_tile_for(Algorithm algorithm) const {
        const bool eligible = winograd::eligible(k_, stride_, pad_, dilation_);
        const bool forced = algorithm == Algorithm::Winograd4x4 || algorithm == Algorithm::Winograd2x2;
        if (forced && (!eligible || groups_ > 1))
            detail::fail("Conv2d: Winograd needs a 3x3 kernel with stride 1, pad 1, dilation 1, groups 1 (got ", k_,
                         "x", k_, " stride ", stride_, " pad ", pad_, " dilation ", dilation_, " groups ", groups_, ")");
        if (algorithm == Algorithm::Winograd4x4) return 4;
        if (algorithm == Algorithm::Winograd2x2) return 2;
        if (algorithm != Algorithm::Auto || !eligible || groups_ > 1) return 0;
        const int width = std::max(cin_, cout_);
        return width <= 128 ? 4 : width <= 512 ? 2 : 0;
    }

    /// Direct: forced, or Auto's choice for every grouped layer (ResNeXt's
    /// grouped 3×3s, 4–64 input channels per group, all measured faster)
    /// and for layers of at most 4 input channels (the RGB stem), whose
    /// im2col copies the input k² times for a short GEMM. Figures: direct.hpp.
    bool runs_direct(Algorithm algorithm) const {
        if (algorithm == Algorithm::Direct && !direct::eligible(k_))
            detail::fail("Conv2d: the direct convolution takes kernels up to 8x8 (got ", k_, "x", k_, ")");
        const bool few_inputs = groups_ > 1 || cin_ <= 4;
        return algorithm == Algorithm::Direct || (algorithm == Algorithm::Auto && few_inputs && direct::eligible(k_));
    }
    /// DirectChannels: forced, or Auto's choice for the ungrouped layers
    /// with a kernel wider than 1×1 that Winograd does not take (strided
    /// 3×3s, 3×3s over 512 channels) and more than 4 input channels, where
    /// the kernel set has channels_auto (AVX-512). With 16 registers its
    /// 2 × 6 block lost to im2col + GEMM: ResNet-50's strided 3×3s inside
    /// the network took 10.61 instead of 11.96 ms at 1 thread and 7.80
    /// instead of 8.63 at 2 through im2col under AVX2, 41.9 instead of 50.5
    /// at 1 thread under SSE2 (two models alternating in one process, 12–40
    /// pairs, medians per layer; AMD EPYC family 25 model 1, Zen 3).
    /// Under AVX-512, alone, against im2col + GEMM (lower quartile of 180
    /// calls, AMD EPYC family 26 model 2, g++ 12 -O3): ResNet-50's strided 3×3s
    /// 0.92–0.97× the time at 1 thread, 0.83–0.94× at 2. In the network
    /// (two models alternating in one process) that is within noise at -O3:
    /// ResNet-50 1.004× at 1 thread and 0.994–0.999× at 2, ResNet-18
    /// 1.008× and 1.005×, Wide ResNet-50-2 1.000× and 0.978×. At -O2, where
    /// GCC leaves im2col's loops scalar, ResNet-50 0.987–0.991× and
    /// 0.976–0.999×, Wide ResNet-50-2 0.972× and 0.979×. Not the 1×1
    /// stride-2 downsamples (1.12–1.35×: one tap per step, and the padded
    /// copy of a wide input) nor the RGB stem (1.3×: its 147 steps per pass
    /// leave the transposed store too large a share).
    bool runs_channels(Algorithm algorithm) const {
        if (algorithm == Algorithm::DirectChannels && (!direct::eligible(k_) || groups_ > 1))
            detail::fail("Conv2d: the channel-vector direct convolution takes ungrouped kernels up to 8x8 (got ", k_,
                         "x", k_, ", groups ", groups_, ")");
        return algorithm == Algorithm::DirectChannels ||
               (algorithm == Algorithm::Auto && detail::kernels<T>().channels_auto && groups_ == 1 && k_ > 1 &&
                cin_ > 4 && direct::eligible(k_));
    }
    /// The channel-vector kernel broadcasts its inputs, so any stride reads
    /// them in place: it prepares the input as for stride 1 (zero padding
    /// only). The phase split cost layer2.0's 3×3 13% of its time.
    direct::Plan direct_plan(int h, int w) const {
        return direct::Plan::make<T>(cin_, cout_, groups_, k_, channels_ ? 1 : stride_, pad_, dilation_, h, w,
                                     out_size(h), out_size(w));
    }

    /// Per group: output channels, and rows of the GEMM's B (im2col rows).
    int64_t group_out() const { return cout_ / groups_; }
    int64_t krows() const { return int64_t(cin_ / groups_) * k_ * k_; }
    /// Columns per micro-kernel strip: the GEMM's B rows are padded to whole strips.
    static int strip() { return detail::kernels<T>().strip(); }
    static int64_t strips(int64_t plane) { return (plane + strip() - 1) / strip(); }

    /// Output rows per im2col band: the im2col matrix is built and consumed
    /// a band at a time, ≤ kBandBytes unless that leaves fewer than
    /// kBandStrips strips of columns (or one row is larger); for an output
    /// in strips, a whole number of strips (the GEMM writes C's strips from
    /// the band's first). The stem's 7.4 MB matrix at 224² was the largest
    /// scratch of ResNet-50; in 2 MB bands peak RSS fell by 3 MiB (the next
    /// largest, layer1's Winograd scratch, is 4 MB). Best of 200 calls, 1
    /// thread: stem 3.9 → 3.7 ms; layer2's strided 3×3, now two bands, 3.1 →
    /// 3.3 ms (Intel Xeon family 6 model 207, 2 MB of L2). With 512 KB of
    /// L2 (AMD EPYC family 25 model 1, Zen 3, AVX2), 1 MB bands instead of
    /// 2 took ResNet-50's strided 3×3s alone 0.91–0.95× (layer2.0), 0.98×
    /// (layer3.0) and 0.98–0.99× (layer4.0) the time, output in planes; and
    /// the two whose outputs go to the next 1×1 in strips, in one band
    /// before, 0.85–0.91× and 0.88–0.92× inside the network (bands of 14,
    /// 14, 14 and 7 strips; of 7 and 5¼; forward() calls alternating with the
    /// build before in one process, both builds in both places, 30 pairs,
    /// 1 thread; 0.91× and 0.98× at 2 threads). Fewer than 4 strips a band
    /// would leave most of a GEMM's tiles partial (Wide ResNet's 1024-channel
    /// 3×3s at 7×7: 4 rows of 7).
    int im2col_band(int ho, int wo, Layout out) const {
        constexpr int64_t kBandBytes = 1 << 20, kBandStrips = 4;
        const int64_t row_bytes = groups_ * krows() * wo * int64_t(sizeof(T));
        const int64_t fit = std::max(kBandBytes / row_bytes, (kBandStrips * strip() + wo - 1) / wo);
        const int band = int(std::clamp<int64_t>(fit, 1, ho));
        if (out == Layout::Planes) return band;
        const int whole = strip() / std::gcd(wo, strip());  // rows of a whole number of strips
        return band >= ho || whole >= ho ? ho : std::max(whole, band / whole * whole);
    }

    /// The GEMM's C for an output in `layout`.
    detail::MatrixLayout out_layout(Layout layout, int64_t plane) const {
        using detail::MatrixLayout;
        return layout == Layout::Strips ? MatrixLayout::strips<T>(cout_) : MatrixLayout::planes<T>(plane);
    }
    /// Whether the GEMM reads the input as B where it lies: in place
    /// (below), or a stride-1 layer's input in strips.
    bool reads_directly(int64_t plane, Layout in) const {
        return in == Layout::Strips ? stride_ == 1 : reads_in_place(plane);
    }

    /// 1×1, stride 1, unpadded, and rows the GEMM's tiles read exactly
    /// (whole vectors, then none or a few columns for tile_columns: gemm()):
    /// the GEMM reads the input as B directly. Otherwise im2col copies B
    /// with rows padded to whole strips. At 28×28 (24 strips and one vector
    /// under AVX-512) reading in place took ResNet-50's eight such layers
    /// from 7.6 to 6.9 ms at 1 thread (in the network, 6 interleaved rounds,
    /// medians, Intel Xeon family 6 model 207). At 14×14 (6 strips and 4
    /// columns) and 7×7 (1 strip, 1 vector and 1 column), copied before
    /// tile_columns existed, it took ResNet-50's five 1×1 shapes there
    /// 0.83–1.00× the time at 1 thread and 0.62–0.96× at 2 (lower quartile
    /// of 60 calls, 2 runs, AMD EPYC family 26 model 2; all im2col copies
    /// together had taken 8% of a 2-thread forward's CPU time); the whole
    /// network 0.975× the time at 2 threads, 1.00× at 1 (6 interleaved
    /// rounds).
    bool reads_in_place(int64_t plane) const {
        const auto& kern = detail::kernels<T>();
        const int rest = int(plane % strip() % kern.lanes);
        return k_ == 1 && stride_ == 1 && pad_ == 0 &&
               (rest == 0 || detail::takes_columns(rest, kern.panel_rows_for(group_out())));
    }

    /// Rows (c, i, j) for j < k of the im2col matrix of output rows
    /// [oy0, oy0 + rows), each ld long:
    ///   col[((c·k + i)·k + j)·ld + (oy − oy0)·Wo + ox] = x[c][oy·s − p + i·d][ox·s − p + j·d]
    /// with 0 outside the image and in the padding columns [rows·Wo, ld).
    /// Stride 2 has its own loop, which the compiler vectorizes: ResNet-50's
    /// 7×7 stem took 2.4 ms instead of 3.4 (with the micro-kernel's prefetch;
    /// 1 thread, best of 30, Intel Xeon family 6 model 207).
    /// B stays in planes. On the same B in the strip layout, ResNet-50's
    /// strided 3×3s alone took 0.69–0.72× (layer2.0, 128 × 1152 × 784) and
    /// 0.85–0.88× (layer3.0) the time in 4 KiB pages, but ≈0.85× in huge
    /// pages, as the network's scratch is. Built in that layout, as runs of a
    /// strip row by row or strip by strip (gathering each strip's columns),
    /// im2col took 2.1–2.7× as long, and the layers 0.96–1.20× their time;
    /// from the input's phase planes (as direct.hpp prepares it, so that each
    /// row of a strip is one contiguous copy per output row it spans), the
    /// strip im2col took 1.0–1.2× the planes one but the phase pass as long
    /// again, and layer2.0's 3×3 1.04–1.07× its time inside the network
    /// (1 thread, alternating calls, AMD EPYC family 25 model 1).
    void im2col_rows(const T* x, int c, int i, int h, int w, int oy0, int rows, int wo, int64_t ld, T* col) const {
        const T* src = x + int64_t(c) * h * w;
        const int64_t cols = int64_t(rows) * wo;
        for (int j = 0; j < k_; ++j) {
            T* dst = col + ((int64_t(c) * k_ + i) * k_ + j) * ld;
            std::fill(dst + cols, dst + ld, T(0));
            const int dx = j * dilation_ - pad_;
            // ox range whose input column ox·s+dx lies inside [0, w)
            const int lo = std::min(wo, dx >= 0 ? 0 : (-dx + stride_ - 1) / stride_);
            const int hi = std::max(lo, std::min(wo, w - dx <= 0 ? 0 : (w - dx - 1) / stride_ + 1));
            for (int oy = oy0; oy < oy0 + rows; ++oy, dst += wo) {
                const int iy = oy * stride_ - pad_ + i * dilation_;
                if (iy < 0 || iy >= h) {
                    std::fill_n(dst, wo, T(0));
                    continue;
                }
                const T* row = src + int64_t(iy) * w;
                std::fill_n(dst, lo, T(0));
                if (stride_ == 1 && lo < hi)
                    std::copy(row + (lo + dx), row + (hi + dx), dst + lo);
                else if (stride_ == 2)  // a constant stride: vectorized
                    for (int ox = lo; ox < hi; ++ox) dst[ox] = row[2 * int64_t(ox) + dx];
                else if (stride_ > 2)
                    for (int ox = lo; ox < hi; ++ox) dst[ox] = row[int64_t(ox) * stride_ + dx];
                std::fill(dst + hi, dst + wo, T(0));
            }
        }
    }

    /// im2col row c of an unpadded 1×1 layer (takes_strips) whose input x,
    /// w wide, is in strips: col[c·ld + (oy − oy0)·wo + ox] = channel c at
    /// position (oy·s)·w + ox·s, for output rows [oy0, oy0 + rows); 0 in the
    /// padding columns [rows·wo, ld).
    void gather_strips(const T* x, int c, int w, int oy0, int rows, int wo, int64_t ld, T* col) const {
        const int S = strip();
        const int64_t channels = int64_t(cin_) * S;
        T* dst = col + int64_t(c) * ld;
        std::fill(dst + int64_t(rows) * wo, dst + ld, T(0));
        for (int oy = oy0; oy < oy0 + rows; ++oy, dst += wo) {
            const int64_t p = int64_t(oy) * stride_ * w;
            const T* base = x + p / S * channels + int64_t(c) * S;
            for (int64_t ox = 0, lane = p % S; ox < wo; ++ox, lane += stride_) {
                for (; lane >= S; lane -= S) base += channels;
                dst[ox] = base[lane];
            }
        }
    }

    int cout_ = 0, cin_ = 0, k_ = 1, groups_ = 1, stride_ = 1, pad_ = 0, dilation_ = 1;
    // per group, (Cout/G) × (Cin/G·k·k) in micro-kernel panels
    // (detail::pack_panels), or direct::pack_weights' layout if direct_
    Tensor<T> packed_;
    Tensor<T> bias_;  // Cout
    Algorithm algorithm_ = Algorithm::Auto;
    // Winograd: α² × Cout × Cin in micro-kernel panels
    // (winograd::transform_weights), else null; immutable, so copies of the
    // layer share it. Exactly one of packed_ and wino_weight_ is set.
    std::shared_ptr<const Tensor<T>> wino_weight_;
    int wino_m_ = 0, wino_side_ = 0;
    bool direct_ = false, channels_ = false;
};

}  // namespace resnet
