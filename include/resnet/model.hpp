#pragma once
// ResNet<T>: stem → 4 stages of residual blocks → global pool → Dense head.
#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "architecture.hpp"
#include "blocks.hpp"
#include "detail/cpu_budget.hpp"
#include "layer_timing.hpp"
#include "layers/activation.hpp"
#include "layers/linear.hpp"
#include "layers/pool.hpp"

namespace resnet {

/// Names of the outputs forward_outputs() can return, in network order
/// (torchvision module names; "avgpool" is the pooled features whatever the
/// pooling, "fc" the last Dense layer before its activation: the logits).
/// Keras names are accepted too: see ResNet::output_index().
inline const std::vector<std::string>& output_names() {
    static const std::vector<std::string> names = {"layer1", "layer2", "layer3", "layer4", "avgpool", "fc"};
    return names;
}

struct RunOptions {
    /// Threads one forward() call uses (the caller's thread included).
    /// 0 = the CPUs this process may use: detail::cpu_budget() (affinity
    /// mask and cgroup quota, not the host's hardware_concurrency()).
    int threads = 0;
    /// forward() refuses inputs whose activations and scratch would exceed this.
    int64_t max_workspace_bytes = int64_t(8) << 30;
};

/// The stem: a 7×7 stride-2 convolution (BN folded, then ReLU unless V2)
/// and the 3×3 stride-2 max-pool.
template <class T>
struct Stem {
    Conv2d<T> conv;
    bool relu = true;
    MaxPool2d pool{3, 2, 1};
};

/// One Dense (Linear) layer of the head and the activation after it.
template <class T>
struct Dense {
    Linear<T> linear;
    Activation activation = Activation::Linear;
};

/// What follows the last stage: an optional BN + ReLU (V2's post_bn), the
/// global pooling, then a chain of Dense layers (empty for a feature
/// extractor). forward() stops at the last Dense's logits: its activation
/// (softmax for ImageNet heads) is the caller's, see head_activation().
template <class T>
struct Head {
    std::optional<BatchNorm2d<T>> post_bn;
    Pooling pooling = Pooling::Avg;
    std::vector<Dense<T>> dense;
};

template <class T>
class ResNet {
public:
    ResNet(Architecture arch, Stem<T> stem, std::vector<std::vector<ResidualBlock<T>>> stages, Head<T> head,
           std::map<std::string, std::string> metadata = {}, RunOptions options = {})
        : arch_(std::move(arch)), stem_(std::move(stem)), stages_(std::move(stages)), head_(std::move(head)),
          metadata_(std::move(metadata)), options_(options) {
        int side = 0;
        for (auto& stage : stages_)
            for (auto& block : stage) side = block.alternate_winograd_sides(side);
    }

    ResNet(ResNet&& o) noexcept
        : arch_(std::move(o.arch_)), stem_(std::move(o.stem_)), stages_(std::move(o.stages_)),
          head_(std::move(o.head_)), metadata_(std::move(o.metadata_)), options_(o.options_) {}

    const Architecture& architecture() const { return arch_; }
    /// Outputs of the last Dense layer; 0 for a model without a head.
    int num_classes() const { return head_.dense.empty() ? 0 : head_.dense.back().linear.out_features(); }
    int feature_channels() const { return stages_.back().back().out_channels(); }
    const std::map<std::string, std::string>& metadata() const { return metadata_; }
    const Stem<T>& stem() const { return stem_; }
    const Head<T>& head() const { return head_; }
    const std::vector<std::vector<ResidualBlock<T>>>& stages() const { return stages_; }
    /// The activation that turns forward()'s logits into the head's output.
    Activation head_activation() const { return head_.dense.empty() ? Activation::Linear : head_.dense.back().activation; }

    int threads() const {
        return options_.threads > 0 ? options_.threads : detail::cpu_budget();
    }
    /// Not to be called while another thread is inside forward().
    void set_threads(int threads) {
        options_.threads = threads;
        std::lock_guard<std::mutex> lock(contexts_mu_);
        idle_.clear();
    }
    void set_max_workspace_bytes(int64_t bytes) { options_.max_workspace_bytes = bytes; }

    /// input N×3×H×W (normalized) → the model's last output: logits
    /// N×num_classes, or for a model without a head "avgpool" (N×C×1×1) when
    /// it pools, else "layer4".
    Tensor<T> forward(const Tensor<T>& input) const {
        const std::string& last = output_names()[size_t(final_output())];
        return std::move(forward_outputs(input, {last}).at(last));
    }

    /// forward(), also timing each layer into `timings` (cleared first): one
    /// entry per layer, in the order they ran (see LayerTiming). Same output
    /// as forward(); the timer reads the clock once per layer.
    Tensor<T> forward(const Tensor<T>& input, std::vector<LayerTiming>& timings) const {
        detail::LayerClock clock(timings);
        const int last = final_output();
        return std::move(run(input, {last}, &clock).at(last));
    }

    /// Readies a forward() context (thread pool and workspace) for inputs of
    /// up to n×C×h×w now, so that the next forward() of that size allocates
    /// nothing but its output. load_model() does this for batch 1 at the
    /// preset's crop size (see there).
    void reserve(int n, int h, int w) const {
        const Shape shape{n, stem_.conv.in_channels(), h, w};
        check_input(shape);
        auto ctx = acquire_context();
        ctx->reserve(plan(n, h, w), options_.max_workspace_bytes, shape);
        release_context(std::move(ctx));
    }

    /// One named output: "layer1".."layer4" (N×C×h×w), "avgpool" (N×C×1×1) or "fc".
    Tensor<T> features(const Tensor<T>& input, const std::string& name) const {
        return std::move(forward_outputs(input, {name}).at(name));
    }

    /// Runs the network as far as the last requested output and returns each
    /// requested one under the name asked for. Safe to call from several
    /// threads at once: each call borrows its own workspace and thread pool.
    std::map<std::string, Tensor<T>> forward_outputs(const Tensor<T>& input, const std::vector<std::string>& names) const {
        std::vector<int> wanted;
        for (const auto& name : names) wanted.push_back(output_index(name));
        if (wanted.empty()) detail::fail("forward_outputs: no output requested");
        std::map<int, Tensor<T>> out = run(input, wanted, nullptr);
        std::map<std::string, Tensor<T>> named;
        for (size_t i = 0; i < names.size(); ++i) {
            const bool asked_again = std::find(wanted.begin() + i + 1, wanted.end(), wanted[i]) != wanted.end();
            named[names[i]] = asked_again ? out.at(wanted[i]) : std::move(out.at(wanted[i]));
        }
        return named;
    }

    /// Position in output_names() of an output name: a torchvision name, or
    /// its Keras name for this model — "convS_blockB_out" for the last block
    /// B of stage S = 2..5 (V2: stages 2..4, and "post_relu" for layer4,
    /// which in V2 includes the final BN + ReLU), "avg_pool" / "max_pool".
    int output_index(const std::string& name) const {
        const auto& all = output_names();
        const auto it = std::find(all.begin(), all.end(), name);
        if (it != all.end()) return check_available(int(it - all.begin()), name);
        for (int s = 0; s < 4; ++s)
            if (name == keras_stage_name(s)) return s;
        if (name == "avg_pool" || name == "max_pool") return check_available(kPool, name);
        detail::fail("unknown output '", name, "' (expected layer1, layer2, layer3, layer4, avgpool or fc, or ",
                     keras_stage_name(0), ", ", keras_stage_name(1), ", ", keras_stage_name(2), ", ",
                     keras_stage_name(3), ", avg_pool)");
    }

private:
    static constexpr int kPool = 4, kFc = 5;  // positions in output_names()

    /// Elements of each buffer, by role: for one image of h×w, two for the
    /// activations between blocks (io[1] takes the stem's output, io[0] the
    /// pool's; a block in place keeps its input's buffer, any other writes
    /// the other one, its computed shortcut too), two for the convolutions
    /// inside a block (the first's output, the second's), one for a
    /// pre-activated block input (V2), and the convolution scratch; then,
    /// for the whole batch, the pooled features (the head's input) and two
    /// for the hidden Dense layers. Sized per role, ResNet-50 at 224² needs
    /// 7.2 MB of activations where five buffers of the largest took 16 MB.
    struct WorkspacePlan {
        int64_t io[2] = {0, 0}, intermediate[2] = {0, 0}, preact = 0, col = 0, pooled = 0, hidden = 0;
        int64_t total() const {
            return io[0] + io[1] + intermediate[0] + intermediate[1] + preact + col + pooled + 2 * hidden;
        }
    };

    /// Per-call state: the thread pool and one allocation carved into the
    /// plan's buffers. It grows only when a larger input arrives, so a warm
    /// forward() allocates nothing but its outputs.
    struct Context {
        explicit Context(int threads) : pool(threads) {}
        void reserve(const WorkspacePlan& plan, int64_t limit_bytes, const Shape& shape) {
            const int64_t need = plan.total();
            if (need > limit_bytes / int64_t(sizeof(T)))
                detail::fail("input ", shape_str(shape), " needs ", (need * int64_t(sizeof(T))) >> 20,
                             " MiB of workspace, above the limit of ", limit_bytes >> 20,
                             " MiB (RunOptions::max_workspace_bytes)");
            if (need > capacity) {
                storage = detail::aligned_array<T>(size_t(need));
                capacity = need;
            }
            T* p = storage.get();
            const auto take = [&p](int64_t size) { return std::exchange(p, p + size); };
            io[0] = take(plan.io[0]), io[1] = take(plan.io[1]);
            scratch.tmp[0] = take(plan.intermediate[0]), scratch.tmp[1] = take(plan.intermediate[1]);
            scratch.preact = take(plan.preact);
            scratch.col = take(plan.col);
            pooled = take(plan.pooled);
            hidden[0] = take(plan.hidden), hidden[1] = take(plan.hidden);
        }
        detail::ThreadPool pool;
        std::unique_ptr<T[], detail::AlignedFree> storage;
        int64_t capacity = 0;
        T* io[2] = {};
        BlockScratch<T> scratch{};
        T* pooled = nullptr;  // batch × feature channels
        T* hidden[2] = {};    // batch × widest hidden Dense layer
    };

    /// The last output the model has: fc, else the pooled features, else layer4.
    int final_output() const { return !head_.dense.empty() ? kFc : head_.pooling != Pooling::None ? kPool : 3; }

    int check_available(int index, const std::string& name) const {
        if (index == kFc && head_.dense.empty())
            detail::fail("output '", name, "': this model has no classifier head (a feature extractor): ",
                         "request avgpool or layer1..layer4");
        return index;
    }

    /// Keras' name of the output of stage s (0..3); see output_index().
    std::string keras_stage_name(int s) const {
        if (arch_.variant == Variant::V2 && s == 3) return "post_relu";
        return "conv" + std::to_string(s + 2) + "_block" + std::to_string(stages_[size_t(s)].size()) + "_out";
    }

    void check_input(const Shape& s) const {
        const int64_t kMaxSide = 1 << 15;
        const auto within = [&](int64_t d) { return d >= 1 && d <= kMaxSide; };
        if (s.size() != 4 || !within(s[0]) || s[1] != stem_.conv.in_channels() || !within(s[2]) || !within(s[3]))
            detail::fail("model input: expected shape [N,", stem_.conv.in_channels(), ",H,W] with 1<=N,H,W<=",
                         kMaxSide, ", got ", shape_str(s));
    }

    /// Whether the blocks pass their outputs in Layout::Strips
    /// (ResidualBlock::exchanges_strips: every block must; the stem's
    /// output stays in planes, and the pooling and the stage outputs read
    /// the strips).
    bool exchanges_strips() const {
        if (head_.post_bn) return false;
        for (const auto& stage : stages_)
            for (const auto& b : stage)
                if (!b.exchanges_strips()) return false;
        return true;
    }
    /// The layout block b gives its output in, for an h×w input that comes
    /// in `in`, when `exchange` = exchanges_strips() (asked once per
    /// network, not per block): an in-place block keeps its input's; the
    /// others Strips where the blocks exchange them, unless b's last convolution would cut
    /// the output into other strips in planes (Conv2d::cuts_alike) and the
    /// output has fewer than 4 whole strips. In planes a last strip's few
    /// columns join the one before it; in strips they run apart, a second
    /// pass over every row of B for one strip's worth of work or less.
    /// So under AVX-512 (48 columns, up to 4 joining) layer4 (7² = 48 + 1)
    /// runs in planes, and under AVX2 (16, 1) layer4 (3·16 + 1); layer3
    /// under AVX-512 (14² = 4·48 + 4) stays in strips: in planes, layer3.0's
    /// and layer3.1's last 1×1s took 1.05–1.12× their time, the other 1×1s
    /// 0.98–1.03×. ResNet-50, layer4 in planes rather than strips (AVX-512,
    /// forward() calls alternating in one process, 20 pairs, AMD EPYC family
    /// 26 model 2): its 1×1s but the in-place last ones 0.82–0.87× their
    /// time, the network 0.990× at 1 thread and 0.983× at 2; ResNet-101
    /// 0.987× and 0.996×, Wide ResNet-50-2 0.990× and 0.980×,
    /// ResNeXt-50 32×4d 0.972× and 0.981× (15 pairs); under AVX2 (same
    /// CPU) ResNet-50 0.999× and 0.998×.
    static Layout block_layout(const ResidualBlock<T>& b, Layout in, int h, int w, bool exchange) {
        if (b.in_place()) return in;
        if (!exchange) return Layout::Planes;
        const int64_t plane = int64_t(b.out_size(h)) * b.out_size(w);
        const bool apart_is_cheap = plane >= 4 * detail::kernels<T>().strip() || b.convs().back().cuts_alike(plane);
        return apart_is_cheap ? Layout::Strips : Layout::Planes;
    }

    /// A batch runs image by image through the whole network, so the
    /// workspace is one image's. Measured on ResNet-50 at 224², batch 8:
    /// layer by layer over the batch, peak RSS was 223 MiB and ms/image
    /// between 8% below and 2% above batch 1's (1 thread, two compare.py
    /// runs). Image by image, peak RSS is 141 MiB and batch 8 and batch 1
    /// ms/image agree within 1% back to back (135.8 / 135.0, 133.5 / 134.6,
    /// 130.5 / 131.1 ms); a batch-wide GEMM would have to beat that.
    WorkspacePlan plan(int n, int h, int w) const {
        WorkspacePlan p;
        p.pooled = int64_t(n) * feature_channels();
        for (size_t i = 0; i + 1 < head_.dense.size(); ++i)
            p.hidden = std::max<int64_t>(p.hidden, int64_t(n) * head_.dense[i].linear.out_features());
        const int sh = stem_.conv.out_size(h), sw = stem_.conv.out_size(w);
        p.io[1] = int64_t(stem_.conv.out_channels()) * sh * sw;
        p.col = stem_.conv.workspace_size(h, w);
        h = stem_.pool.out_size(sh), w = stem_.pool.out_size(sw);
        p.io[0] = int64_t(stem_.conv.out_channels()) * h * w;
        int x = 0;  // the io buffer that holds the block input, as in run_image
        Layouts io{Layout::Planes, Layout::Planes};
        const bool exchange = exchanges_strips();
        for (const auto& stage : stages_)
            for (const auto& b : stage) {
                io.out = block_layout(b, io.in, h, w, exchange);
                const auto a = b.activation_sizes(h, w, io.out);
                if (!b.in_place()) x = 1 - x;
                p.io[x] = std::max(p.io[x], a.out);
                for (int i = 0; i < 2; ++i) p.intermediate[i] = std::max(p.intermediate[i], a.intermediate[i]);
                p.preact = std::max(p.preact, a.preact);
                p.col = std::max(p.col, b.max_workspace(h, w, io));
                h = b.out_size(h), w = b.out_size(w);
                io.in = io.out;
            }
        return p;
    }

    /// The batch through the network as far as the last of the `wanted`
    /// outputs (positions in output_names()), timed by `clock` if not null.
    std::map<int, Tensor<T>> run(const Tensor<T>& input, const std::vector<int>& wanted, detail::LayerClock* clock) const {
        const int last = *std::max_element(wanted.begin(), wanted.end());
        check_input(input.shape());
        const int n = int(input.dim(0)), h = int(input.dim(2)), w = int(input.dim(3));
        auto ctx = acquire_context();
        ctx->reserve(plan(n, h, w), options_.max_workspace_bytes, input.shape());
        ctx->scratch.clock = clock;
        std::map<int, Tensor<T>> out;
        for (int img = 0; img < n; ++img) {
            if (clock) clock->begin_image();
            run_image(input, img, h, w, last, wanted, *ctx, out);
        }
        if (clock) clock->begin_head();
        if (last == kFc) out.emplace(kFc, run_head(n, *ctx));
        ctx->scratch.clock = nullptr;
        release_context(std::move(ctx));
        return out;
    }

    /// Image `img` of the batch through the network as far as output `last`:
    /// requested outputs are copied into their batch tensors in `out`, the
    /// pooled features into row img of ctx.pooled.
    void run_image(const Tensor<T>& input, int img, int h, int w, int last, const std::vector<int>& wanted,
                   Context& ctx, std::map<int, Tensor<T>>& out) const {
        const int n = int(input.dim(0));
        const auto want = [&](int i) { return std::find(wanted.begin(), wanted.end(), i) != wanted.end(); };
        detail::LayerClock* clock = ctx.scratch.clock;
        const auto lap = [clock](const char* name) {
            if (clock) clock->lap(name);
        };
        const T* in = input.data() + int64_t(img) * input.dim(1) * h * w;
        stem_.conv.forward(in, 1, h, w, ctx.io[1], {nullptr, stem_.relu}, ctx.scratch.col, ctx.pool);
        lap("conv1");
        h = stem_.conv.out_size(h), w = stem_.conv.out_size(w);
        int c = stem_.conv.out_channels();
        stem_.pool.forward(ctx.io[1], c, h, w, ctx.io[0], ctx.pool);
        lap("maxpool");
        h = stem_.pool.out_size(h), w = stem_.pool.out_size(w);
        T *x = ctx.io[0], *y = ctx.io[1];
        Layouts io{Layout::Planes, Layout::Planes};
        const bool exchange = exchanges_strips();
        for (int s = 0; s < int(stages_.size()); ++s) {
            for (size_t b = 0; b < stages_[size_t(s)].size(); ++b) {
                const auto& block = stages_[size_t(s)][b];
                io.out = block_layout(block, io.in, h, w, exchange);
                if (clock) clock->enter_block(s, int(b));
                if (block.forward(x, h, w, y, ctx.scratch, ctx.pool, io) == y) std::swap(x, y);
                io.in = io.out;
                h = block.out_size(h), w = block.out_size(w), c = block.out_channels();
            }
            if (clock) clock->leave_block();
            if (s == 3 && head_.post_bn) {
                head_.post_bn->forward(x, int64_t(h) * w, x, ctx.pool);
                lap("post_bn");
            }
            if (want(s)) store(out, s, {n, c, h, w}, img, x, io.in);
            if (last == s) return;
        }
        T* features = ctx.pooled + int64_t(img) * c;
        GlobalPool{head_.pooling}.forward(x, c, int64_t(h) * w, features, ctx.pool, io.in == Layout::Strips);
        lap("avgpool");
        if (want(kPool)) store(out, kPool, {n, c, 1, 1}, img, features, Layout::Planes);
    }

    /// The Dense chain on the batch's pooled features: the last layer's
    /// logits (N×num_classes), hidden layers through their activations.
    Tensor<T> run_head(int n, Context& ctx) const {
        const T* x = ctx.pooled;
        detail::LayerClock* clock = ctx.scratch.clock;
        for (size_t i = 0; i + 1 < head_.dense.size(); ++i) {
            const auto& d = head_.dense[i];
            T* y = ctx.hidden[i % 2];
            d.linear.forward(x, n, y, ctx.pool);
            apply_activation(d.activation, y, n, d.linear.out_features());
            x = y;
            if (clock) clock->lap("dense", int(i) + 1);
        }
        Tensor<T> logits({n, num_classes()});
        head_.dense.back().linear.forward(x, n, logits.data(), ctx.pool);
        if (clock) clock->lap("fc");
        return logits;
    }

    /// Copies one image's output, in `layout`, into image slot `img` of the
    /// batch tensor out[index] of `shape` (in planes), creating it for the first image.
    static void store(std::map<int, Tensor<T>>& out, int index, const Shape& shape, int img, const T* src,
                      Layout layout) {
        auto it = out.find(index);
        if (it == out.end()) it = out.emplace(index, Tensor<T>::uninitialized(shape)).first;
        const int64_t size = it->second.size() / shape[0];
        T* dst = it->second.data() + img * size;
        if (layout == Layout::Planes) return void(std::copy(src, src + size, dst));
        const int64_t c = shape[1], plane = size / c, S = detail::kernels<T>().strip();
        for (int64_t ch = 0; ch < c; ++ch)
            for (int64_t i = 0; i < plane; ++i) dst[ch * plane + i] = src[i / S * c * S + ch * S + i % S];
    }

    std::unique_ptr<Context> acquire_context() const {
        {
            std::lock_guard<std::mutex> lock(contexts_mu_);
            if (!idle_.empty()) {
                auto ctx = std::move(idle_.back());
                idle_.pop_back();
                return ctx;
            }
        }
        return std::make_unique<Context>(threads());
    }
    void release_context(std::unique_ptr<Context> ctx) const {
        std::lock_guard<std::mutex> lock(contexts_mu_);
        idle_.push_back(std::move(ctx));
    }

    Architecture arch_;
    Stem<T> stem_;
    std::vector<std::vector<ResidualBlock<T>>> stages_;
    Head<T> head_;
    std::map<std::string, std::string> metadata_;
    RunOptions options_;
    mutable std::mutex contexts_mu_;
    mutable std::vector<std::unique_ptr<Context>> idle_;
};

}  // namespace resnet
