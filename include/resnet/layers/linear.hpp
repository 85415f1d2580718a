#pragma once
// Linear (fully connected) layer.
#include "../tensor.hpp"

namespace resnet {

/// y = x·Wᵀ + b.  Input N×F, output N×K; weight [K, F] as in PyTorch.
template <class T>
class Linear {
public:
    Linear() = default;
    Linear(Tensor<T> weight, Tensor<T> bias) : weight_(std::move(weight)), bias_(std::move(bias)) {
        bias_.require_shape({weight_.dim(0)}, "Linear bias");
    }

    int in_features() const { return int(weight_.dim(1)); }
    int out_features() const { return int(weight_.dim(0)); }

    /// in: n×F (row-major), out: n×K.
    void forward(const T* in, int64_t n, T* out) const {
        using Map = Eigen::Map<const typename Tensor<T>::RowMatrix>;
        Eigen::Map<typename Tensor<T>::RowMatrix> y(out, n, out_features());
        y.noalias() = Map(in, n, in_features()) * weight_.matrix().transpose();
        y.rowwise() += bias_.vector().transpose();
    }

private:
    Tensor<T> weight_, bias_;
};

}  // namespace resnet
