#pragma once
// The residual block of every variant: torchvision's BasicBlock and
// Bottleneck (v1.5), Keras' v1 and pre-activation v2 blocks.
#include <optional>
#include <vector>

#include "layer_timing.hpp"
#include "layers/batchnorm.hpp"
#include "layers/conv2d.hpp"

namespace resnet {

/// Scratch buffers a block may use; each holds any activation of its role.
/// `clock`: a timed forward()'s, else null.
template <class T>
struct BlockScratch {
    T* tmp[2];
    T* preact;
    T* col;
    detail::LayerClock* clock;
};

/// A residual block: an optional pre-activation BN + ReLU, then a chain of
/// convolutions (BN folded) with a ReLU after each but the last, whose
/// output is added to the shortcut (then a ReLU unless `out_relu` is false):
///   BasicBlock:  3×3 → 3×3                  out channels = planes
///   Bottleneck:  1×1 → 3×3 → 1×1            out channels = 4·planes
/// The stride sits on the conv the variant says (architecture.hpp). The
/// shortcut is, in this order of precedence: `downsample` (1×1 conv with
/// the block's stride, reading what the chain reads: the pre-activated input
/// when there is one), the input subsampled every `subsample` pixels (Keras'
/// MaxPooling2D(1, strides)), or the input itself.
/// Output spatial size: that of the chain, (H − 1)/stride + 1.
template <class T>
class ResidualBlock {
public:
    ResidualBlock(std::vector<Conv2d<T>> convs, std::optional<Conv2d<T>> downsample,
                  std::optional<BatchNorm2d<T>> preact = std::nullopt, int subsample = 1, bool out_relu = true)
        : convs_(std::move(convs)), downsample_(std::move(downsample)), preact_(std::move(preact)),
          subsample_(subsample), out_relu_(out_relu) {}

    int out_channels() const { return convs_.back().out_channels(); }
    int out_size(int in) const {
        for (const auto& c : convs_) in = c.out_size(in);
        return in;
    }
    const std::vector<Conv2d<T>>& convs() const { return convs_; }
    const std::optional<Conv2d<T>>& downsample() const { return downsample_; }
    /// Gives the block's Winograd convolutions alternate scratch sides in the
    /// order forward() runs them, the first `side`; returns the next one's.
    int alternate_winograd_sides(int side) {
        if (downsample_ && downsample_->winograd_tile()) downsample_->set_winograd_side(side++ % 2);
        for (auto& c : convs_)
            if (c.winograd_tile()) c.set_winograd_side(side++ % 2);
        return side;
    }
    /// Whether forward() writes its output over its input x (the shortcut is
    /// x itself) rather than into `out`.
    bool in_place() const { return !downsample_ && subsample_ == 1; }
    /// Whether forward() takes its input and gives its output in
    /// Layout::Strips (Conv2d::takes_strips): a first and a last 1×1 of
    /// the GEMM (a Bottleneck's, torchvision's or Keras v1's), a 1×1 or no
    /// downsample, no pre-activation and no subsampled shortcut. The output,
    /// the shortcut and the residual then share that layout, and in place
    /// too. ResNet passes it between such blocks (model.hpp). Under AVX2 the
    /// first 1×1s read their input in strips at 0.73× (64 × 256 × 3136) to
    /// 0.94× (1024 × 256 × 196) the time (ResNet-50's shapes alone, 1
    /// thread, medians of 400 alternating calls, AMD EPYC family 25 model 1,
    /// Zen 3, 2 vCPUs under KVM). In the network, forward() calls
    /// alternating with planes in one process (20–40 pairs per run, pairs
    /// split by the host's state, whose slow one takes 1.4–1.7× the time):
    /// ResNet-50 at 1 thread 0.976× and 0.992× (fast), 0.85× and 0.89×
    /// (slow), at 2 threads 0.95× and 0.89×; ResNet-101 0.97× and 0.885×
    /// at 1, 0.92× and 0.89× at 2; most 1×1s of layers 1–3 0.73–0.88×
    /// their time (slow state), layer4's last ones (49 positions in 64
    /// lanes, the 49th apart) 1.06–1.10×. A second copy in strips written
    /// beside the planes instead cost the last 1×1s at 56² 1.2–1.3× their
    /// time.
    bool exchanges_strips() const {
        return !preact_ && subsample_ == 1 && convs_.size() >= 2 && convs_.front().takes_strips() &&
               convs_.back().takes_strips() && (!downsample_ || downsample_->takes_strips());
    }

    /// Elements of the block's activations for one C×h×w image, by the
    /// scratch role that holds them (see forward()): intermediate[i % 2]
    /// holds the output of convolution i but the last.
    struct ActivationSizes {
        int64_t intermediate[2] = {0, 0}, preact = 0, out = 0;
    };
    /// `out`: the output's layout.
    ActivationSizes activation_sizes(int h, int w, Layout out = Layout::Planes) const {
        ActivationSizes a;
        if (preact_) a.preact = int64_t(preact_->channels()) * h * w;
        for (size_t i = 0; i < convs_.size(); ++i) {
            if (i + 1 == convs_.size())
                a.out = convs_[i].out_elements(h, w, out);
            else
                a.intermediate[i % 2] = std::max(
                    a.intermediate[i % 2],
                    convs_[i].out_elements(h, w, handoff(i, convs_[i].out_size(h), convs_[i].out_size(w))));
            h = convs_[i].out_size(h), w = convs_[i].out_size(w);
        }
        return a;
    }
    /// Elements of conv scratch (im2col / Winograd) for an h×w input, in
    /// and out of forward() in the layouts `io`.
    int64_t max_workspace(int h, int w, Layouts io = {}) const {
        int64_t m = downsample_ ? downsample_->workspace_size(h, w, io) : 0;
        for (size_t i = 0; i < convs_.size(); ++i) {
            m = std::max(m, convs_[i].workspace_size(h, w, conv_layouts(i, io, h, w)));
            h = convs_[i].out_size(h), w = convs_[i].out_size(w);
        }
        return m;
    }

    /// One image: x is C×h×w; returns where the out_channels()×out_size(h)×
    /// out_size(w) output went: over x when in_place(), else into `out`.
    /// In place, the last convolution adds its sums to the shortcut where it
    /// lies, as with a computed shortcut below, and the network needs no
    /// second buffer of that size: ResNet-50's two block-output buffers at
    /// 224² took 4.8 instead of 6.4 MB, room for layer2's F(4×4) under the
    /// 150 MB peak (conv2d.hpp). Alone, in place took ResNet-50 0.992–0.994×
    /// the time at 1 thread and 1.008–1.012× at 2 (forward() calls
    /// alternating in one process, 2 × 30 pairs, AMD EPYC family 26 model 2).
    /// x and the output in the layouts `io` (Planes but where exchanges_strips()).
    T* forward(T* x, int h, int w, T* out, const BlockScratch<T>& s, detail::ThreadPool& pool, Layouts io = {}) const {
        if (in_place()) out = x;
        const T* in = x;
        const auto lap = [&s](const char* name, int number = 0) {
            if (s.clock) s.clock->lap(name, number);
        };
        if (preact_) {
            preact_->forward(x, int64_t(h) * w, s.preact, pool);
            in = s.preact;
            lap("preact");
        }
        // A computed shortcut goes straight into `out`, which the last
        // convolution then adds its sums to in place (Conv2d::forward allows
        // the residual to be the output): no buffer of its own. That buffer,
        // ResNet-50's layer1 shortcut at 224², was 3.2 MB of the peak RSS.
        const T* shortcut = x;
        if (downsample_) {
            downsample_->forward(in, 1, h, w, out, {}, s.col, pool, io);
            shortcut = out;
            lap("downsample.0");
        } else if (subsample_ > 1) {
            subsample(x, h, w, out, pool);
            shortcut = out;
            lap("shortcut");
        }
        const T* cur = in;
        for (size_t i = 0; i < convs_.size(); ++i) {
            const bool last = i + 1 == convs_.size();
            T* dst = last ? out : s.tmp[i % 2];
            convs_[i].forward(cur, 1, h, w, dst, {last ? shortcut : nullptr, !last || out_relu_}, s.col, pool,
                              conv_layouts(i, io, h, w));
            h = convs_[i].out_size(h), w = convs_[i].out_size(w);
            cur = dst;
            lap("conv", int(i) + 1);
        }
        return out;
    }

private:
    /// Convolution i's layouts, for an h×w input, when the block's are
    /// `io`: the first reads the block input, the last writes the block
    /// output, and in between each hands its output on in handoff()'s layout.
    Layouts conv_layouts(size_t i, Layouts io, int h, int w) const {
        const Layout in = i == 0 ? io.in : handoff(i - 1, h, w);
        return {in, i + 1 == convs_.size() ? io.out : handoff(i, convs_[i].out_size(h), convs_[i].out_size(w))};
    }
    /// The layout of convolution i's ho×wo output, read by convolution
    /// i + 1: Strips where the one hands it on that way
    /// (Conv2d::hands_strips: a Bottleneck's 3×3) and the other reads it
    /// (its last 1×1), else Planes.
    Layout handoff(size_t i, int ho, int wo) const {
        return convs_[i].hands_strips(ho, wo) && convs_[i + 1].takes_strips() ? Layout::Strips : Layout::Planes;
    }

    /// out[c][y][x] = in[c][y·k][x·k] for k = subsample_.
    void subsample(const T* in, int h, int w, T* out, detail::ThreadPool& pool) const {
        const int k = subsample_, ho = (h - 1) / k + 1, wo = (w - 1) / k + 1;
        pool.parallel_ranges(out_channels(), [&](int64_t begin, int64_t end) {
            for (int64_t c = begin; c < end; ++c)
                for (int y = 0; y < ho; ++y)
                    for (int x = 0; x < wo; ++x)
                        out[(c * ho + y) * wo + x] = in[(c * h + int64_t(y) * k) * w + int64_t(x) * k];
        });
    }

    std::vector<Conv2d<T>> convs_;
    std::optional<Conv2d<T>> downsample_;
    std::optional<BatchNorm2d<T>> preact_;
    int subsample_ = 1;
    bool out_relu_ = true;
};

}  // namespace resnet
