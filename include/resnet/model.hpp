#pragma once
// ResNet<T>: stem → 4 stages of residual blocks → global average pool → fc.
#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "architecture.hpp"
#include "blocks.hpp"
#include "layers/linear.hpp"
#include "layers/pool.hpp"

namespace resnet {

/// Names of the outputs forward_outputs() can return, in network order
/// (torchvision module names; "fc" is the logits).
inline const std::vector<std::string>& output_names() {
    static const std::vector<std::string> names = {"layer1", "layer2", "layer3", "layer4", "avgpool", "fc"};
    return names;
}

struct RunOptions {
    /// Threads one forward() call uses (the caller's thread included).
    /// 0 = std::thread::hardware_concurrency().
    int threads = 0;
    /// forward() refuses inputs whose activations and scratch would exceed this.
    int64_t max_workspace_bytes = int64_t(8) << 30;
};

template <class T>
class ResNet {
public:
    ResNet(Architecture arch, Conv2d<T> stem, std::vector<std::vector<ResidualBlock<T>>> stages, Linear<T> fc,
           std::map<std::string, std::string> metadata = {}, RunOptions options = {})
        : arch_(std::move(arch)), stem_(std::move(stem)), stages_(std::move(stages)), fc_(std::move(fc)),
          metadata_(std::move(metadata)), options_(options) {}

    ResNet(ResNet&& o) noexcept
        : arch_(std::move(o.arch_)), stem_(std::move(o.stem_)), stages_(std::move(o.stages_)),
          fc_(std::move(o.fc_)), metadata_(std::move(o.metadata_)), options_(o.options_) {}

    const Architecture& architecture() const { return arch_; }
    int num_classes() const { return fc_.out_features(); }
    int feature_channels() const { return fc_.in_features(); }
    const std::map<std::string, std::string>& metadata() const { return metadata_; }
    const Conv2d<T>& stem() const { return stem_; }
    const Linear<T>& fc() const { return fc_; }
    const std::vector<std::vector<ResidualBlock<T>>>& stages() const { return stages_; }

    int threads() const {
        return options_.threads > 0 ? options_.threads : int(std::max(1u, std::thread::hardware_concurrency()));
    }
    /// Not to be called while another thread is inside forward().
    void set_threads(int threads) {
        options_.threads = threads;
        std::lock_guard<std::mutex> lock(contexts_mu_);
        idle_.clear();
    }
    void set_max_workspace_bytes(int64_t bytes) { options_.max_workspace_bytes = bytes; }

    /// input N×3×H×W (normalized) → logits N×num_classes.
    Tensor<T> forward(const Tensor<T>& input) const { return std::move(forward_outputs(input, {"fc"}).at("fc")); }

    /// One named output: "layer1".."layer4" (N×C×h×w), "avgpool" (N×C×1×1) or "fc".
    Tensor<T> features(const Tensor<T>& input, const std::string& name) const {
        return std::move(forward_outputs(input, {name}).at(name));
    }

    /// Runs the network as far as the last requested output and returns each
    /// requested one by name. Safe to call from several threads at once: each
    /// call borrows its own workspace and thread pool.
    std::map<std::string, Tensor<T>> forward_outputs(const Tensor<T>& input, const std::vector<std::string>& names) const {
        const int last = last_output_index(names);
        check_input(input);
        const int n = int(input.dim(0)), h = int(input.dim(2)), w = int(input.dim(3));
        auto ctx = acquire_context();
        ctx->reserve(plan(n, h, w), options_.max_workspace_bytes, input.shape());
        std::map<std::string, Tensor<T>> out;
        for (int img = 0; img < n; ++img) run_image(input, img, h, w, last, names, *ctx, out);
        if (last == 5) {
            Tensor<T> logits({n, num_classes()});
            fc_.forward(ctx->pooled, n, logits.data());
            out.emplace("fc", std::move(logits));
        }
        release_context(std::move(ctx));
        return out;
    }

private:
    /// Elements of each buffer, by role: for one image of h×w, two for the
    /// activations between blocks (x, y; also the stem's output), two for the
    /// convolutions inside a block, one for the downsampled shortcut, and the
    /// convolution scratch; then the pooled features of the whole batch (fc's
    /// input). Sized per role, ResNet-50 at 224² needs 12.8 MB of activations
    /// where five buffers of the largest took 16 MB.
    struct WorkspacePlan {
        int64_t io = 0, intermediate = 0, identity = 0, col = 0, pooled = 0;
        int64_t total() const { return 2 * io + 2 * intermediate + identity + col + pooled; }
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
            io[0] = take(plan.io), io[1] = take(plan.io);
            scratch.tmp[0] = take(plan.intermediate), scratch.tmp[1] = take(plan.intermediate);
            scratch.identity = take(plan.identity);
            scratch.col = take(plan.col);
            pooled = take(plan.pooled);
        }
        detail::ThreadPool pool;
        std::unique_ptr<T[], detail::AlignedFree> storage;
        int64_t capacity = 0;
        T* io[2] = {};
        BlockScratch<T> scratch{};
        T* pooled = nullptr;  // batch × feature channels
    };

    static int last_output_index(const std::vector<std::string>& names) {
        const auto& all = output_names();
        int last = -1;
        for (const auto& name : names) {
            auto it = std::find(all.begin(), all.end(), name);
            if (it == all.end())
                detail::fail("unknown output '", name, "' (expected layer1, layer2, layer3, layer4, avgpool or fc)");
            last = std::max(last, int(it - all.begin()));
        }
        if (last < 0) detail::fail("forward_outputs: no output requested");
        return last;
    }

    void check_input(const Tensor<T>& x) const {
        const int64_t kMaxSide = 1 << 15;
        if (x.rank() != 4 || x.dim(0) < 1 || x.dim(1) != stem_.in_channels() || x.dim(2) < 1 || x.dim(3) < 1 ||
            x.dim(2) > kMaxSide || x.dim(3) > kMaxSide || x.dim(0) > kMaxSide)
            detail::fail("model input: expected shape [N,", stem_.in_channels(), ",H,W] with 1<=N,H,W<=", kMaxSide,
                         ", got ", shape_str(x.shape()));
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
        const int sh = stem_.out_size(h), sw = stem_.out_size(w);
        p.io = int64_t(stem_.out_channels()) * sh * sw;
        p.col = stem_.workspace_size(h, w);
        h = pool_.out_size(sh), w = pool_.out_size(sw);
        for (const auto& stage : stages_)
            for (const auto& b : stage) {
                const auto a = b.activation_sizes(h, w);
                p.io = std::max(p.io, a.out);
                p.intermediate = std::max(p.intermediate, a.intermediate);
                p.identity = std::max(p.identity, a.identity);
                p.col = std::max(p.col, b.max_workspace(h, w));
                h = b.out_size(h), w = b.out_size(w);
            }
        return p;
    }

    static bool wanted(const std::vector<std::string>& names, const std::string& name) {
        return std::find(names.begin(), names.end(), name) != names.end();
    }

    /// Image `img` of the batch through the network as far as output `last`:
    /// requested outputs are copied into their batch tensors in `out`, the
    /// pooled features into row img of ctx.pooled.
    void run_image(const Tensor<T>& input, int img, int h, int w, int last, const std::vector<std::string>& names,
                   Context& ctx, std::map<std::string, Tensor<T>>& out) const {
        const int n = int(input.dim(0));
        const T* in = input.data() + int64_t(img) * input.dim(1) * h * w;
        stem_.forward(in, 1, h, w, ctx.io[1], {nullptr, true}, ctx.scratch.col, ctx.pool);
        h = stem_.out_size(h), w = stem_.out_size(w);
        int c = stem_.out_channels();
        pool_.forward(ctx.io[1], c, h, w, ctx.io[0], ctx.pool);
        h = pool_.out_size(h), w = pool_.out_size(w);
        T *x = ctx.io[0], *y = ctx.io[1];
        for (size_t s = 0; s < stages_.size(); ++s) {
            for (const auto& block : stages_[s]) {
                block.forward(x, 1, h, w, y, ctx.scratch, ctx.pool);
                std::swap(x, y);
                h = block.out_size(h), w = block.out_size(w), c = block.out_channels();
            }
            const std::string& name = output_names()[s];
            if (wanted(names, name)) store(out, name, {n, c, h, w}, img, x);
            if (last == int(s)) return;
        }
        T* features = ctx.pooled + int64_t(img) * c;
        GlobalAvgPool().forward(x, c, int64_t(h) * w, features, ctx.pool);
        if (wanted(names, "avgpool")) store(out, "avgpool", {n, c, 1, 1}, img, features);
    }

    /// Copies one image's output into image slot `img` of the batch tensor
    /// out[name] of `shape`, creating it for the first image.
    static void store(std::map<std::string, Tensor<T>>& out, const std::string& name, const Shape& shape, int img,
                      const T* src) {
        auto it = out.find(name);
        if (it == out.end()) it = out.emplace(name, Tensor<T>::uninitialized(shape)).first;
        const int64_t size = it->second.size() / shape[0];
        std::copy(src, src + size, it->second.data() + img * size);
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
    Conv2d<T> stem_;
    MaxPool2d pool_{3, 2, 1};
    std::vector<std::vector<ResidualBlock<T>>> stages_;
    Linear<T> fc_;
    std::map<std::string, std::string> metadata_;
    RunOptions options_;
    mutable std::mutex contexts_mu_;
    mutable std::vector<std::unique_ptr<Context>> idle_;
};

}  // namespace resnet
