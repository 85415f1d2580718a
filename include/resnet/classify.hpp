#pragma once
// Turning logits into answers: softmax, top-k and class names.
//   auto probs = resnet::activate(model.forward(x), model.head_activation());  // N×C
//   for (const auto& p : resnet::top_k(probs, 0, 5)) ... labels[p.index] ...
//   auto labels = resnet::class_labels(model.metadata(), model.num_classes());
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "error.hpp"
#include "imagenet_labels.hpp"
#include "layers/activation.hpp"
#include "tensor.hpp"

namespace resnet {

/// `a` applied to N×C logits: a model's probabilities are
/// activate(model.forward(x), model.head_activation()) — softmax for
/// torchvision and ImageNet heads, sigmoid for a Keras sigmoid head.
template <class T>
Tensor<T> activate(const Tensor<T>& logits, Activation a) {
    logits.require_shape({-1, -1}, "activate: logits");
    Tensor<T> out = logits;
    apply_activation(a, out.data(), out.dim(0), out.dim(1));
    return out;
}

/// Row-wise softmax of N×C logits → N×C probabilities (each row sums to 1).
/// The row maximum is subtracted first, so large logits do not overflow.
template <class T>
Tensor<T> softmax(const Tensor<T>& logits) {
    return activate(logits, Activation::Softmax);
}

/// One class of a ranking: its index (the logit's position) and score.
struct Prediction {
    int64_t index;
    double score;
};

/// The k highest entries of row `row` of an N×C tensor, highest first (ties:
/// lower index first). k is capped at C.
template <class T>
std::vector<Prediction> top_k(const Tensor<T>& scores, int64_t row, int k) {
    scores.require_shape({-1, -1}, "top_k: scores");
    if (row < 0 || row >= scores.dim(0) || k < 0)
        detail::fail("top_k: row ", row, " of ", scores.dim(0), " and k = ", k, " (expected 0 <= row < N, k >= 0)");
    const int64_t cols = scores.dim(1), n = std::min<int64_t>(k, cols);
    const T* s = scores.data() + row * cols;
    std::vector<int64_t> order(static_cast<size_t>(cols));
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + n, order.end(),
                      [s](int64_t a, int64_t b) { return s[a] > s[b] || (s[a] == s[b] && a < b); });
    std::vector<Prediction> out;
    for (int64_t i = 0; i < n; ++i) out.push_back({order[size_t(i)], double(s[order[size_t(i)]])});
    return out;
}

/// Names of a model's classes, index i naming logit i:
///  - metadata "labels" (a JSON list of num_classes strings), when present;
///  - else the built-in ImageNet-1k names for a 1000-way head;
///  - else empty (callers show indices).
/// Throws if "labels" is present but is not a list of num_classes strings.
inline std::vector<std::string> class_labels(const std::map<std::string, std::string>& metadata, int64_t num_classes) {
    const auto it = metadata.find("labels");
    if (it == metadata.end())
        return num_classes == int64_t(imagenet_labels.size())
                   ? std::vector<std::string>(imagenet_labels.begin(), imagenet_labels.end())
                   : std::vector<std::string>();
    const auto labels = nlohmann::json::parse(it->second, nullptr, false);
    const bool ok = labels.is_array() && int64_t(labels.size()) == num_classes &&
                    std::all_of(labels.begin(), labels.end(), [](const nlohmann::json& l) { return l.is_string(); });
    if (!ok)
        detail::fail("weights metadata 'labels': expected a JSON list of ", num_classes, " strings (one per class), got ",
                     labels.is_array() ? std::to_string(labels.size()) + " entries" : std::string("no JSON list"));
    return labels.get<std::vector<std::string>>();
}

}  // namespace resnet
