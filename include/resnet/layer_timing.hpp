#pragma once
// Per-layer wall times of one forward() call: ResNet::forward(input, timings).
#include <chrono>
#include <string>
#include <vector>

namespace resnet {

/// One layer's share of a timed forward(). Names are torchvision's module
/// names whatever the weights' origin: "conv1", "maxpool",
/// "layer1.0.conv1" … "layer4.2.conv3", "layer2.0.downsample.0",
/// "avgpool" (the global pooling, average or max) and "fc" (the last Dense
/// layer; hidden Dense layers of a Keras head are "dense1", "dense2", …).
/// Keras' V2 blocks add "layerS.B.preact" (their BN + ReLU) and
/// "post_bn", and a shortcut taken by subsampling is "layerS.B.shortcut".
/// A convolution's time includes what is fused into it (batch norm, bias,
/// the residual add, ReLU).
struct LayerTiming {
    std::string name;
    /// Wall time on the calling thread, which waits for the layer's work
    /// on every thread; for a batch, summed over its images.
    double ms = 0;
};

namespace detail {

/// The laps of one timed forward(): lap(name) books the time since the
/// previous lap (or begin_image() / begin_head()) to entry name, prefixed by
/// the block's "layerS.B." inside a block. Images after the first add to the
/// first image's entries, in order; only those entries build their names.
class LayerClock {
public:
    explicit LayerClock(std::vector<LayerTiming>& out) : out_(out) { out_.clear(); }

    void begin_image() { start(0); }
    /// The Dense head, after the last image: its entries follow the image's.
    void begin_head() { start(next_); }
    /// Laps until leave_block() belong to block `block` of stage `stage` (0-based).
    void enter_block(int stage, int block) { stage_ = stage, block_ = block; }
    void leave_block() { stage_ = -1; }

    /// `number` > 0 is appended to the name ("conv", 2: "conv2").
    void lap(const char* name, int number = 0) {
        const auto now = Clock::now();
        if (next_ == out_.size()) out_.push_back({full_name(name, number), 0.0});
        out_[next_++].ms += std::chrono::duration<double, std::milli>(now - last_).count();
        last_ = now;
    }

private:
    using Clock = std::chrono::steady_clock;
    void start(size_t entry) {
        next_ = entry;
        leave_block();
        last_ = Clock::now();
    }
    std::string full_name(const char* name, int number) const {
        std::string block = stage_ < 0 ? "" : "layer" + std::to_string(stage_ + 1) + "." + std::to_string(block_) + ".";
        return block + name + (number > 0 ? std::to_string(number) : "");
    }

    std::vector<LayerTiming>& out_;
    int stage_ = -1, block_ = 0;
    size_t next_ = 0;
    Clock::time_point last_;
};

}  // namespace detail
}  // namespace resnet
