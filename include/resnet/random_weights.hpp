#pragma once
// Untrained models without a weights file: for benchmarks and tests.
#include <optional>
#include <random>

#include "loader.hpp"

namespace resnet {
namespace detail {

/// Tensor source for build_resnet(): He-normal conv/fc weights and random
/// BatchNorm statistics, deterministic in the seed.
template <class T>
class RandomWeights {
public:
    explicit RandomWeights(uint64_t seed) : rng_(seed) {}

    Tensor<T> take(const std::string& key, const Shape& shape) {
        Tensor<T> t(shape);
        fill(key, t);
        return t;
    }

    /// take() into one buffer that each call reuses, held until the next
    /// call (build_resnet's source interface), as ModelReader::take_staged:
    /// with a fresh tensor per convolution, ResNet-50's peak RSS was 143.7
    /// instead of 142.2 MiB (`benchmark --arch resnet50 --random`).
    Tensor<T>& take_staged(const std::string& key, const Shape& shape) {
        staged_.resize(shape);
        fill(key, staged_);
        return staged_;
    }

    /// torchvision's convolutions have no bias.
    std::optional<Tensor<T>> take_optional(const std::string&, const Shape&) { return std::nullopt; }

private:
    void fill(const std::string& key, Tensor<T>& t) {
        const Shape& shape = t.shape();
        const auto ends_with = [&](const char* suffix) {
            const std::string s(suffix);
            return key.size() >= s.size() && key.compare(key.size() - s.size(), s.size(), s) == 0;
        };
        if (shape.size() >= 2) {  // conv or fc weight
            const double fan_in = double(t.size() / shape[0]);
            std::normal_distribution<double> d(0.0, std::sqrt(2.0 / fan_in));
            for (T& v : t) v = T(d(rng_));
        } else {
            const bool var = ends_with("running_var"), gamma = !var && ends_with(".weight") && key != "fc.weight";
            std::uniform_real_distribution<double> d(var ? 0.5 : gamma ? 0.2 : -0.1, var ? 2.0 : gamma ? 0.8 : 0.1);
            for (T& v : t) v = T(d(rng_));
        }
    }

    std::mt19937_64 rng_;
    Tensor<T> staged_;
};

}  // namespace detail

/// An untrained model of any architectures() entry (He-normal weights, random
/// BatchNorm statistics, no convolution biases), for
/// benchmarking and experiments without a weights file.
template <class T = float>
ResNet<T> random_model(const std::string& arch_name, int64_t num_classes = 1000, uint64_t seed = 0,
                       const RunOptions& run = {}) {
    for (const auto& arch : architectures())
        if (arch.name == arch_name) {
            detail::RandomWeights<T> src(seed);
            detail::ModelSpec spec;
            spec.arch = arch;
            spec.base_width = int64_t(arch.groups) * arch.width_per_group;
            spec.dense_units = {num_classes};
            spec.dense_activations = {Activation::Softmax};
            detail::ThreadPool pool = detail::loader_pool(run);
            return detail::build_resnet<T>(spec, src, {{"arch", arch.name}, {"source", "random"}}, run, pool);
        }
    detail::fail("unknown arch '", arch_name, "'");
}

}  // namespace resnet
