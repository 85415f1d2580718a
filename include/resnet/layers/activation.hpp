#pragma once
// The activations a classifier head may apply: Keras' Dense(activation=…)
// and Activation(…) names.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "../error.hpp"

namespace resnet {

enum class Activation { Linear, Relu, Sigmoid, Softmax };

inline const char* activation_name(Activation a) {
    switch (a) {
        case Activation::Relu: return "relu";
        case Activation::Sigmoid: return "sigmoid";
        case Activation::Softmax: return "softmax";
        default: return "linear";
    }
}

/// "linear", "relu", "sigmoid" or "softmax"; anything else throws naming it.
inline Activation parse_activation(const std::string& name) {
    for (Activation a : {Activation::Linear, Activation::Relu, Activation::Sigmoid, Activation::Softmax})
        if (name == activation_name(a)) return a;
    detail::fail("unsupported activation '", name, "' (expected linear, relu, sigmoid or softmax)");
}

/// Applies `a` in place to `rows` rows of `cols` values. Softmax is per row,
/// with the row maximum subtracted first (no overflow) and the sum in double.
template <class T>
void apply_activation(Activation a, T* x, int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; ++r) {
        T* v = x + r * cols;
        if (a == Activation::Relu) {
            for (int64_t c = 0; c < cols; ++c) v[c] = std::max(v[c], T(0));
        } else if (a == Activation::Sigmoid) {
            for (int64_t c = 0; c < cols; ++c) v[c] = T(1) / (T(1) + std::exp(-v[c]));
        } else if (a == Activation::Softmax) {
            const T max = *std::max_element(v, v + cols);
            double sum = 0;
            for (int64_t c = 0; c < cols; ++c) sum += v[c] = std::exp(v[c] - max);
            for (int64_t c = 0; c < cols; ++c) v[c] = T(v[c] / sum);
        }
    }
}

}  // namespace resnet
