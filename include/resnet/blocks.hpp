#pragma once
// BasicBlock and Bottleneck, torchvision v1.5.
#include <optional>
#include <vector>

#include "layers/conv2d.hpp"

namespace resnet {

/// Scratch buffers a block may use; each holds any activation of the network.
template <class T>
struct BlockScratch {
    T* tmp[2];
    T* identity;
    T* col;
};

/// A residual block: a chain of convolutions (BN folded), ReLU after each,
/// the last one's output added to the shortcut before its ReLU.
///   BasicBlock:  3×3(stride) → 3×3                      out channels = planes
///   Bottleneck:  1×1 → 3×3(stride) → 1×1                out channels = 4·planes
/// (v1.5: the stride sits on the 3×3). The shortcut is the input, or
/// downsample = 1×1 conv(stride) + BN when the shape changes.
/// Output spatial size: that of the strided 3×3, (H − 1)/stride + 1.
template <class T>
class ResidualBlock {
public:
    ResidualBlock(std::vector<Conv2d<T>> convs, std::optional<Conv2d<T>> downsample)
        : convs_(std::move(convs)), downsample_(std::move(downsample)) {}

    int out_channels() const { return convs_.back().out_channels(); }
    int out_size(int in) const {
        for (const auto& c : convs_) in = c.out_size(in);
        return in;
    }
    const std::vector<Conv2d<T>>& convs() const { return convs_; }
    const std::optional<Conv2d<T>>& downsample() const { return downsample_; }

    /// Elements of the block's activations for one C×h×w image, by the
    /// scratch role that holds them (see forward()).
    struct ActivationSizes {
        int64_t intermediate = 0, identity = 0, out = 0;
    };
    ActivationSizes activation_sizes(int h, int w) const {
        ActivationSizes a;
        if (downsample_)
            a.identity = int64_t(downsample_->out_channels()) * downsample_->out_size(h) * downsample_->out_size(w);
        for (size_t i = 0; i < convs_.size(); ++i) {
            h = convs_[i].out_size(h), w = convs_[i].out_size(w);
            const int64_t size = int64_t(convs_[i].out_channels()) * h * w;
            if (i + 1 == convs_.size())
                a.out = size;
            else
                a.intermediate = std::max(a.intermediate, size);
        }
        return a;
    }
    /// Elements of conv scratch (im2col / Winograd) for an n×C×h×w input.
    int64_t max_workspace(int h, int w) const {
        int64_t m = downsample_ ? downsample_->workspace_size(h, w) : 0;
        for (const auto& c : convs_) {
            m = std::max(m, c.workspace_size(h, w));
            h = c.out_size(h), w = c.out_size(w);
        }
        return m;
    }

    void forward(const T* x, int n, int h, int w, T* out, const BlockScratch<T>& s,
                 detail::ThreadPool& pool) const {
        const T* shortcut = x;
        if (downsample_) {
            downsample_->forward(x, n, h, w, s.identity, {}, s.col, pool);
            shortcut = s.identity;
        }
        const T* cur = x;
        for (size_t i = 0; i < convs_.size(); ++i) {
            const bool last = i + 1 == convs_.size();
            T* dst = last ? out : s.tmp[i % 2];
            convs_[i].forward(cur, n, h, w, dst, {last ? shortcut : nullptr, true}, s.col, pool);
            h = convs_[i].out_size(h), w = convs_[i].out_size(w);
            cur = dst;
        }
    }

private:
    std::vector<Conv2d<T>> convs_;
    std::optional<Conv2d<T>> downsample_;
};

}  // namespace resnet
