#pragma once
// load_model(): a torchvision-keyed .safetensors file → ResNet<T>.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <optional>
#include <set>
#include <string>

#include "model.hpp"
#include "preprocess.hpp"
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
    std::ostringstream s;
    const auto& b = a.blocks_per_stage;
    s << variant_name(a.variant) << ' ' << block_name(a.block) << " blocks [" << b[0] << ',' << b[1] << ',' << b[2]
      << ',' << b[3] << "], " << a.groups << " groups x " << a.width_per_group << " channels";
    return s.str();
}

/// The pool load_model() and random_model() lay the weights out on: the
/// model's threads. It does not narrow (thread_pool.hpp). Where the system
/// refuses threads, the calling thread loads alone (forward() then reports
/// the refusal, naming its thread count).
inline ThreadPool loader_pool(const RunOptions& run) {
    try {
        return ThreadPool(run.threads > 0 ? run.threads : cpu_budget(), false);
    } catch (const Error&) {
        return ThreadPool(1, false);
    }
}

/// Reads tensors by key, checking each shape against what the architecture
/// expects and recording which keys were used. Tensors it allocates are
/// faulted in on `pool` (populate.hpp).
template <class T>
class ModelReader {
public:
    ModelReader(SafeTensorsFile file, ThreadPool& pool) : file_(std::move(file)), pool_(pool) {
        int64_t largest = 0;
        for (const auto& kv : file_.entries())
            if (kv.second.shape.size() == 4) largest = std::max(largest, checked_numel(kv.second.shape));
        staged_ = populated<T>({largest}, &pool_);
    }

    SafeTensorsFile& file() { return file_; }

    Tensor<T> take(const std::string& key, const Shape& expected) {
        Tensor<T> t;
        read_checked(key, expected, t, true);
        return t;
    }

    /// take(), into one buffer that every call reuses: the tensor is valid
    /// until the next call. For weights a layer lays out anew at load and
    /// drops (every convolution's). In a VM, the first touch of a fresh page
    /// traps to the hypervisor once from the kernel (the file read's copy)
    /// and once from user space (the finiteness check): reading 9 MiB into
    /// fresh memory took 7 ms and its first scan 6 ms, into a page touched
    /// before 1.3 and 0.8 ms. The reused buffer's pages are touched before:
    /// ResNet-50's load took 239–256 instead of 326–455 ms (medians 245 vs
    /// 356, 9 interleaved runs), ResNet-18's 136–148 instead of 174–207 ms
    /// (AMD EPYC family 26 model 2, Firecracker VM, 1 thread). It is sized
    /// for the file's largest 4-d tensor at once.
    Tensor<T>& take_staged(const std::string& key, const Shape& expected) {
        read_checked(key, expected, staged_, false);
        return staged_;
    }

    /// take(), or nothing when the file has no such tensor (convolution
    /// biases: Keras has them, torchvision does not).
    std::optional<Tensor<T>> take_optional(const std::string& key, const Shape& expected) {
        if (!file_.contains(key)) return std::nullopt;
        return take(key, expected);
    }

    void reject_unused(const Architecture& arch) const {
        for (const auto& kv : file_.entries()) {
            const std::string& key = kv.first;
            const bool ignorable = key.size() >= 19 && key.compare(key.size() - 19, 19, "num_batches_tracked") == 0;
            if (!used_.count(key) && !ignorable)
                file_.fail("unexpected tensor '", key, "' ", shape_str(kv.second.shape), " (not part of a ",
                           layout_str(arch), " ResNet)");
        }
    }

private:
    /// Reads `key` into `out` (a new tensor, faulted in on the pool, if `fresh`).
    void read_checked(const std::string& key, const Shape& expected, Tensor<T>& out, bool fresh) {
        if (!file_.contains(key)) file_.fail("missing tensor '", key, "' (expected shape ", shape_str(expected), ")");
        const auto& e = file_.entry(key);
        bool ok = e.shape.size() == expected.size();
        for (size_t i = 0; ok && i < expected.size(); ++i) ok = expected[i] < 0 || expected[i] == e.shape[i];
        if (!ok)
            file_.fail("tensor '", key, "': expected shape ", shape_str(expected), ", got ", shape_str(e.shape));
        if (fresh) out = populated<T>(e.shape, &pool_);
        bool finite = true;
        file_.read_into(key, out, [&](const T* p, int64_t n) { finite = finite && all_finite(p, n); });
        if (!finite) file_.fail("tensor '", key, "' contains NaN or Inf");
        used_.insert(key);
    }

    /// x − x is 0 for a finite x, NaN for ±Inf and NaN, and a NaN stays in
    /// a sum. Summed in 16 lanes, so that the compiler vectorizes the loop
    /// without reordering a sum: 256 KiB in 4.5 µs at -O3, where counting
    /// !(|x| ≤ max) took 18 µs and an early-exit isfinite() loop longer.
    static bool all_finite(const T* p, int64_t n) {
        constexpr int kLanes = 16;
        T lanes[kLanes] = {};
        int64_t i = 0;
        for (; i + kLanes <= n; i += kLanes)
            for (int j = 0; j < kLanes; ++j) lanes[j] += p[i + j] - p[i + j];
        for (; i < n; ++i) lanes[0] += p[i] - p[i];
        return std::all_of(lanes, lanes + kLanes, [](T s) { return s == 0; });
    }

    SafeTensorsFile file_;
    ThreadPool& pool_;
    std::set<std::string> used_;
    Tensor<T> staged_;  // take_staged()'s buffer
};

/// Everything build_resnet() needs besides the tensors.
struct ModelSpec {
    Architecture arch;
    int64_t base_width = 64;  ///< bottleneck width of layer1 (128 for wide_resnet50_2 and resnext50_32x4d)
    double bn_eps = 1e-5;     ///< BatchNorm epsilon (Keras ResNet: 1.001e-5, its older ResNet50: 1e-3)
    Pooling pooling = Pooling::Avg;
    std::vector<int64_t> dense_units;         ///< outputs of each Dense layer of the head, "fc" last
    std::vector<Activation> dense_activations;
};

/// Variant from metadata "variant" (v1, v1.5, v2), else v2 when the blocks
/// have pre-activation BNs, else v1.5 (torchvision).
inline Variant infer_variant(const SafeTensorsFile& f) {
    const auto it = f.metadata().find("variant");
    if (it == f.metadata().end()) return f.contains("layer1.0.preact.weight") ? Variant::V2 : Variant::V1_5;
    for (Variant v : {Variant::V1, Variant::V1_5, Variant::V2})
        if (it->second == variant_name(v)) return v;
    f.fail("metadata 'variant': expected v1, v1.5 or v2, got '", it->second, "'");
}

/// Block type, blocks per stage and variant, from which keys exist; for
/// bottlenecks, groups and width from layer1.0's conv1 [width,…] and conv2
/// [width, width/groups, 3, 3].
inline Architecture infer_architecture(const SafeTensorsFile& f) {
    Architecture a{"", f.contains("layer1.0.conv3.weight") ? BlockKind::Bottleneck : BlockKind::Basic, {},
                   infer_variant(f)};
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
                f.fail(origin, " arch '", requested, "' has ", layout_str(a), ", the file holds ", layout_str(found));
            return;
        }
    if (std::string(origin) == "requested") f.fail("unknown arch '", requested, "'");
}

/// The head the file holds: Dense layers "head.0", "head.1", … then "fc"
/// (none: a feature extractor), their activations from metadata
/// "head_activations" (a JSON list, one per Dense layer; default: softmax
/// after fc, torchvision's reading of its logits) and the pooling from
/// metadata "pooling" (avg, max or none; default avg).
inline void infer_head(const SafeTensorsFile& f, ModelSpec& spec) {
    for (int j = 0; f.contains("head." + std::to_string(j) + ".weight"); ++j)
        spec.dense_units.push_back(f.entry("head." + std::to_string(j) + ".weight").shape.at(0));
    if (f.contains("fc.weight")) spec.dense_units.push_back(f.entry("fc.weight").shape.at(0));
    const auto& m = f.metadata();
    if (m.count("head_activations")) {
        const auto list = nlohmann::json::parse(m.at("head_activations"), nullptr, false);
        if (!list.is_array() || list.size() != spec.dense_units.size() ||
            !std::all_of(list.begin(), list.end(), [](const nlohmann::json& a) { return a.is_string(); }))
            f.fail("metadata 'head_activations': expected a JSON list of ", spec.dense_units.size(),
                   " activation names (one per Dense layer), got '", m.at("head_activations"), "'");
        for (const auto& a : list) {
            try {
                spec.dense_activations.push_back(parse_activation(a.get<std::string>()));
            } catch (const Error& e) {
                f.fail("metadata 'head_activations': ", e.what());
            }
        }
    } else if (spec.dense_units.size() > 1) {
        f.fail("tensor 'head.0.weight': a Dense chain needs metadata 'head_activations'");
    } else if (!spec.dense_units.empty()) {
        spec.dense_activations.push_back(Activation::Softmax);
    }
    const auto pooling = m.find("pooling");
    if (pooling != m.end()) {
        const std::string& p = pooling->second;
        if (p != "avg" && p != "max" && p != "none")
            f.fail("metadata 'pooling': expected avg, max or none, got '", p, "'");
        spec.pooling = p == "avg" ? Pooling::Avg : p == "max" ? Pooling::Max : Pooling::None;
    }
}

inline double metadata_eps(const SafeTensorsFile& f) {
    const auto it = f.metadata().find("bn_eps");
    if (it == f.metadata().end()) return 1e-5;
    double eps = 0;
    if (!parse_number(it->second, eps) || !(eps > 0 && eps < 1))
        f.fail("metadata 'bn_eps': expected a number in (0, 1), got '", it->second, "'");
    return eps;
}

/// Builds the network `spec` describes from a tensor source — anything with
/// `Tensor<T> take(key, expected_shape)`, `Tensor<T>& take_staged(key,
/// expected_shape)` (valid until its next call) and `optional<Tensor<T>>
/// take_optional(key, expected_shape)` — by torchvision key. One builder
/// serves every variant, files (ModelReader) and random weights
/// (RandomWeights). Keys beyond torchvision's: a convolution's ".bias"
/// (Keras), "layerS.B.preact.*" and "post_bn.*" (V2's pre-activation and
/// final BatchNorms), "head.J.*" (Dense layers before "fc"). The
/// convolutions' layouts are carved from one WeightArena, on `pool`.
template <class T, class Source>
ResNet<T> build_resnet(const ModelSpec& spec, Source& src, std::map<std::string, std::string> metadata,
                       const RunOptions& run, ThreadPool& pool) {
    const Architecture& arch = spec.arch;
    const bool v2 = arch.variant == Variant::V2;
    WeightArena arena(&pool);
    const auto bn = [&](const std::string& name, int64_t c) {
        return BatchNorm2d<T>(src.take(name + ".weight", {c}), src.take(name + ".bias", {c}),
                              src.take(name + ".running_mean", {c}), src.take(name + ".running_var", {c}),
                              spec.bn_eps, true);
    };
    // A convolution with its bias, if any, and the BatchNorm `bn` after it folded in (none if "").
    const auto conv = [&](const std::string& name, const std::string& bn_name, int64_t cout, int64_t cin, int k,
                          int stride, int groups = 1) {
        Tensor<T>& w = src.take_staged(name + ".weight", {cout, cin / groups, k, k});
        std::optional<Tensor<T>> b = src.take_optional(name + ".bias", {cout});
        if (bn_name.empty())
            return Conv2d<T>(w, b ? std::move(*b) : Tensor<T>({cout}), stride, k / 2, 1, groups,
                             Conv2d<T>::Algorithm::Auto, &arena);
        return Conv2d<T>::fold_batchnorm(w, src.take(bn_name + ".weight", {cout}),
                                         src.take(bn_name + ".bias", {cout}), src.take(bn_name + ".running_mean", {cout}),
                                         src.take(bn_name + ".running_var", {cout}), stride, k / 2, groups,
                                         spec.bn_eps, b ? &*b : nullptr, &arena);
    };
    Stem<T> stem{conv("conv1", v2 ? "" : "bn1", 64, 3, 7, 2), !v2, MaxPool2d{3, 2, 1, v2}};
    const bool bottleneck = arch.block == BlockKind::Bottleneck;
    int64_t channels = 64;
    std::vector<std::vector<ResidualBlock<T>>> stages(4);
    for (int s = 0; s < 4; ++s) {
        const int64_t planes = int64_t(64) << s, width = planes * spec.base_width / 64;
        const int64_t out = bottleneck ? planes * 4 : planes;
        for (int i = 0; i < arch.blocks_per_stage[size_t(s)]; ++i) {
            const std::string p = "layer" + std::to_string(s + 1) + "." + std::to_string(i) + ".";
            const int stride = arch.stride(s, i);
            const int first = arch.variant == Variant::V1 ? stride : 1, mid = first == 1 ? stride : 1;
            const std::string last_bn = v2 ? "" : p + (bottleneck ? "bn3" : "bn2");
            std::vector<Conv2d<T>> convs;
            if (bottleneck) {
                convs.push_back(conv(p + "conv1", p + "bn1", width, channels, 1, first));
                convs.push_back(conv(p + "conv2", p + "bn2", width, width, 3, mid, arch.groups));
                convs.push_back(conv(p + "conv3", last_bn, out, width, 1, 1));
            } else {
                convs.push_back(conv(p + "conv1", p + "bn1", out, channels, 3, stride));
                convs.push_back(conv(p + "conv2", last_bn, out, out, 3, 1));
            }
            std::optional<BatchNorm2d<T>> preact;
            if (v2) preact = bn(p + "preact", channels);
            const bool conv_shortcut = channels != out || (stride != 1 && !v2);
            std::optional<Conv2d<T>> downsample;
            if (conv_shortcut)
                downsample = conv(p + "downsample.0", v2 ? "" : p + "downsample.1", out, channels, 1, stride);
            stages[size_t(s)].emplace_back(std::move(convs), std::move(downsample), std::move(preact),
                                           conv_shortcut ? 1 : stride, !v2);
            channels = out;
        }
    }
    Head<T> head;
    if (v2) head.post_bn = bn("post_bn", channels);
    head.pooling = spec.pooling;
    for (size_t j = 0; j < spec.dense_units.size(); ++j) {
        const std::string name = j + 1 == spec.dense_units.size() ? "fc" : "head." + std::to_string(j);
        const int64_t units = spec.dense_units[j];
        head.dense.push_back({Linear<T>(src.take(name + ".weight", {units, channels}), src.take(name + ".bias", {units})),
                              spec.dense_activations[j]});
        channels = units;
    }
    return ResNet<T>(arch, std::move(stem), std::move(stages), std::move(head), std::move(metadata), run);
}

}  // namespace detail

/// Loads a ResNet from a .safetensors file keyed like torchvision's
/// state_dict (conv1.weight, bn1.running_var, layer1.0.downsample.1.weight,
/// …, fc.bias), as weights/convert_torchvision.py and convert_keras.py write
/// them. BatchNorm is folded into the convolutions here, once. Then the
/// model reserve()s for one image of its preset's crop size (224 unless the
/// metadata says otherwise), in pages the reader has just freed: ResNet-50's
/// first forward() took 6.7–11 ms longer without.
/// Throws resnet::Error naming the file, key, and expected/actual shape.
template <class T = float>
ResNet<T> load_model(SafeTensorsFile file, const LoadOptions& options = {}) {
    ResNet<T> model = [&] {
        detail::ThreadPool pool = detail::loader_pool(options.run);
        detail::ModelReader<T> r(std::move(file), pool);
        SafeTensorsFile& f = r.file();
        detail::ModelSpec spec;
        spec.arch = detail::infer_architecture(f);
        detail::check_requested_arch(f, spec.arch, options.arch, "requested");
        if (f.metadata().count("arch"))
            detail::check_requested_arch(f, spec.arch, f.metadata().at("arch"), "metadata");
        if (spec.arch.block == BlockKind::Bottleneck) spec.base_width = f.entry("layer1.0.conv1.weight").shape.at(0);
        spec.bn_eps = detail::metadata_eps(f);
        detail::infer_head(f, spec);
        ResNet<T> built = detail::build_resnet<T>(spec, r, f.metadata(), options.run, pool);
        r.reject_unused(spec.arch);
        return built;
    }();
    try {
        const int side = Preprocess::from_metadata(model.metadata()).crop;
        model.reserve(1, side, side);
    } catch (const Error&) {
        // a preset the metadata gets wrong, or a workspace above max_workspace_bytes:
        // reported where the preset or forward() is used, not here
    }
    return model;
}

/// Same, from a path.
template <class T = float>
ResNet<T> load_model(const std::string& path, const LoadOptions& options = {}) {
    return load_model<T>(SafeTensorsFile(path), options);
}

}  // namespace resnet
