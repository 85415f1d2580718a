#pragma once
// load_model(): a torchvision-keyed .safetensors file → ResNet<T>.
#include <cmath>
#include <limits>
#include <set>
#include <string>

#include "model.hpp"
#include "safetensors.hpp"

namespace resnet {

struct LoadOptions {
    /// "" = infer from the tensors (block type, blocks per stage, classes).
    /// Otherwise one of architectures(); a mismatch with the file is an error.
    std::string arch;
    RunOptions run;
};

namespace detail {

inline std::string layout_str(const Architecture& a) {
    const auto& n = a.blocks_per_stage;
    std::ostringstream s;
    s << block_name(a.block) << " blocks [" << n[0] << ',' << n[1] << ',' << n[2] << ',' << n[3] << "], "
      << a.groups << " groups x " << a.width_per_group << " channels";
    return s.str();
}

/// Reads tensors by torchvision key, checking each shape against what the
/// architecture expects and recording which keys were used.
template <class T>
class ModelReader {
public:
    explicit ModelReader(SafeTensorsFile file) : file_(std::move(file)) {}

    SafeTensorsFile& file() { return file_; }

    Tensor<T> take(const std::string& key, const Shape& expected) {
        if (!file_.contains(key)) file_.fail("missing tensor '", key, "' (expected shape ", shape_str(expected), ")");
        const auto& e = file_.entry(key);
        bool ok = e.shape.size() == expected.size();
        for (size_t i = 0; ok && i < expected.size(); ++i) ok = expected[i] < 0 || expected[i] == e.shape[i];
        if (!ok)
            file_.fail("tensor '", key, "': expected shape ", shape_str(expected), ", got ", shape_str(e.shape));
        Tensor<T> t = file_.read<T>(key);
        if (!all_finite(t.data(), t.size())) file_.fail("tensor '", key, "' contains NaN or Inf");
        used_.insert(key);
        return t;
    }

    void reject_unused() const {
        for (const auto& kv : file_.entries()) {
            const std::string& key = kv.first;
            const bool ignorable = key.size() >= 19 && key.compare(key.size() - 19, 19, "num_batches_tracked") == 0;
            if (!used_.count(key) && !ignorable)
                file_.fail("unexpected tensor '", key, "' ", shape_str(kv.second.shape),
                           " (not part of a torchvision ResNet)");
        }
    }

private:
    /// Branch-free, so it vectorizes: an early-exit isfinite() loop took
    /// ~20% of ResNet-50's load time.
    static bool all_finite(const T* p, int64_t n) {
        int64_t bad = 0;
        for (int64_t i = 0; i < n; ++i) bad += !(std::abs(p[i]) <= std::numeric_limits<T>::max());
        return bad == 0;
    }

    SafeTensorsFile file_;
    std::set<std::string> used_;
};

/// Block type and blocks per stage, from which keys exist; for bottlenecks,
/// groups and width from layer1.0's conv1 [width,…] and conv2
/// [width, width/groups, 3, 3].
inline Architecture infer_architecture(const SafeTensorsFile& f) {
    Architecture a{"", f.contains("layer1.0.conv3.weight") ? BlockKind::Bottleneck : BlockKind::Basic, {}};
    for (int s = 0; s < 4; ++s) {
        int i = 0;
        while (f.contains("layer" + std::to_string(s + 1) + "." + std::to_string(i) + ".conv1.weight")) ++i;
        if (i == 0) f.fail("missing tensor 'layer", s + 1, ".0.conv1.weight': no blocks found for layer", s + 1);
        a.blocks_per_stage[size_t(s)] = i;
    }
    if (a.block == BlockKind::Bottleneck && f.contains("layer1.0.conv2.weight")) {
        const auto &w1 = f.entry("layer1.0.conv1.weight").shape, &w2 = f.entry("layer1.0.conv2.weight").shape;
        if (w1.size() != 4 || w2.size() != 4 || w2[1] < 1 || w1[0] % w2[1] != 0)
            f.fail("tensor 'layer1.0.conv2.weight': expected shape [width,width/groups,3,3] with width = ",
                   w1.empty() ? 0 : w1[0], " from layer1.0.conv1.weight, got ", shape_str(w2));
        a.groups = int(w1[0] / w2[1]);
        a.width_per_group = int(w2[1]);
    }
    a.name = architecture_name(a);
    if (a.name.empty()) a.name = "custom";
    return a;
}

inline void check_requested_arch(const SafeTensorsFile& f, const Architecture& found, const std::string& requested,
                                 const char* origin) {
    if (requested.empty()) return;
    for (const auto& a : architectures())
        if (a.name == requested) {
            if (!same_layout(a, found))
                f.fail(origin, " arch '", requested, "' has ", layout_str(a), ", the tensors hold ", layout_str(found));
            return;
        }
    if (std::string(origin) == "requested") f.fail("unknown arch '", requested, "'");
}

}  // namespace detail

namespace detail {

/// Builds the network for `arch` from a tensor source — anything with
/// `Tensor<T> take(key, expected_shape)` — by torchvision key. One builder
/// serves files (ModelReader) and random weights (RandomWeights).
/// `base_width` is the bottleneck width of layer1 (64, 128 for wide_resnet50_2
/// and resnext50_32x4d), arch.groups the groups of each bottleneck's 3×3.
template <class T, class Source>
ResNet<T> build_resnet(const Architecture& arch, int64_t base_width, int64_t classes, Source& src,
                       std::map<std::string, std::string> metadata, const RunOptions& run) {
    auto conv_bn = [&](const std::string& conv, const std::string& bn, int64_t cout, int64_t cin, int k, int stride,
                       int groups = 1) {
        Tensor<T> w = src.take(conv + ".weight", {cout, cin, k, k});
        return Conv2d<T>::fold_batchnorm(std::move(w), src.take(bn + ".weight", {cout}), src.take(bn + ".bias", {cout}),
                                         src.take(bn + ".running_mean", {cout}), src.take(bn + ".running_var", {cout}),
                                         stride, k / 2, groups);
    };
    const bool bottleneck = arch.block == BlockKind::Bottleneck;
    Conv2d<T> stem = conv_bn("conv1", "bn1", 64, 3, 7, 2);
    int64_t channels = 64;
    std::vector<std::vector<ResidualBlock<T>>> stages(4);
    for (int s = 0; s < 4; ++s) {
        const int64_t planes = int64_t(64) << s, width = planes * base_width / 64;
        const int64_t out = bottleneck ? planes * 4 : planes;
        for (int i = 0; i < arch.blocks_per_stage[size_t(s)]; ++i) {
            const std::string p = "layer" + std::to_string(s + 1) + "." + std::to_string(i) + ".";
            const int stride = (s > 0 && i == 0) ? 2 : 1;
            std::vector<Conv2d<T>> convs;
            if (bottleneck) {
                convs.push_back(conv_bn(p + "conv1", p + "bn1", width, channels, 1, 1));
                convs.push_back(conv_bn(p + "conv2", p + "bn2", width, width / arch.groups, 3, stride, arch.groups));
                convs.push_back(conv_bn(p + "conv3", p + "bn3", out, width, 1, 1));
            } else {
                convs.push_back(conv_bn(p + "conv1", p + "bn1", out, channels, 3, stride));
                convs.push_back(conv_bn(p + "conv2", p + "bn2", out, out, 3, 1));
            }
            std::optional<Conv2d<T>> downsample;
            if (stride != 1 || channels != out)
                downsample = conv_bn(p + "downsample.0", p + "downsample.1", out, channels, 1, stride);
            stages[size_t(s)].emplace_back(std::move(convs), std::move(downsample));
            channels = out;
        }
    }
    Linear<T> fc(src.take("fc.weight", {classes, channels}), src.take("fc.bias", {classes}));
    return ResNet<T>(arch, std::move(stem), std::move(stages), std::move(fc), std::move(metadata), run);
}

}  // namespace detail

/// Loads a ResNet from a .safetensors file keyed like torchvision's
/// state_dict (conv1.weight, bn1.running_var, layer1.0.downsample.1.weight,
/// …, fc.bias). BatchNorm is folded into the convolutions here, once.
/// Throws resnet::Error naming the file, key, and expected/actual shape.
template <class T = float>
ResNet<T> load_model(SafeTensorsFile file, const LoadOptions& options = {}) {
    detail::ModelReader<T> r(std::move(file));
    SafeTensorsFile& f = r.file();
    const Architecture arch = detail::infer_architecture(f);
    detail::check_requested_arch(f, arch, options.arch, "requested");
    if (f.metadata().count("arch")) detail::check_requested_arch(f, arch, f.metadata().at("arch"), "metadata");
    const int64_t base_width = arch.block == BlockKind::Bottleneck ? f.entry("layer1.0.conv1.weight").shape.at(0) : 64;
    const int64_t classes = f.contains("fc.weight") ? f.entry("fc.weight").shape.at(0) : 1000;
    ResNet<T> model = detail::build_resnet<T>(arch, base_width, classes, r, f.metadata(), options.run);
    r.reject_unused();
    return model;
}

/// Same, from a path.
template <class T = float>
ResNet<T> load_model(const std::string& path, const LoadOptions& options = {}) {
    return load_model<T>(SafeTensorsFile(path), options);
}

}  // namespace resnet
