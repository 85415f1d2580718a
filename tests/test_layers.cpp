// Each op against PyTorch (fixtures/ops.safetensors, float64) and each
// optimized kernel against its naive oracle.
#include <catch2/catch.hpp>

#include "test_util.hpp"

using resnet::Tensor;
using namespace testutil;

namespace {

resnet::SafeTensorsFile& ops() {
    static resnet::SafeTensorsFile f(fixture("ops.safetensors"));
    return f;
}
template <class T = double>
Tensor<T> op(const std::string& name) { return ops().read<T>(name); }

int case_count(const std::string& prefix) {
    int n = 0;
    while (ops().contains(prefix + std::to_string(n) + ".x")) ++n;
    return n;
}

struct ConvCase {
    Tensor<double> x, w, b, y;
    int k, stride, pad, dil;
};
ConvCase conv_case(int i) {
    const std::string p = "conv" + std::to_string(i) + ".";
    const auto params = op(p + "params");
    return {op(p + "x"), op(p + "w"), op(p + "b"), op(p + "y"), int(params[0]), int(params[1]), int(params[2]), int(params[3])};
}

}  // namespace

TEST_CASE("Tensor: shapes, views and errors naming both shapes", "[tensor]") {
    Tensor<float> t({2, 3, 4, 5});
    CHECK(t.size() == 120);
    CHECK(t.dim(-1) == 5);
    CHECK(reinterpret_cast<uintptr_t>(t.data()) % 64 == 0);
    t.at(1, 2, 3, 4) = 7.f;
    CHECK(t[119] == 7.f);
    CHECK(t.matrix().rows() == 2);
    CHECK(t.matrix().cols() == 60);
    CHECK(t.matrix()(1, 59) == 7.f);
    CHECK_THROWS_WITH(t.reshaped({7, 7}), Catch::Contains("[2,3,4,5]") && Catch::Contains("[7,7]"));
    CHECK_THROWS_WITH(t.require_shape({2, 3, 4, 6}, "input"),
                      Catch::Contains("input") && Catch::Contains("[2,3,4,6]") && Catch::Contains("[2,3,4,5]"));
    CHECK_THROWS_WITH(t.at(2, 0, 0, 0), Catch::Contains("out of range") && Catch::Contains("[2,3,4,5]"));
    CHECK_THROWS_AS(Tensor<double>({-1, 2}), resnet::Error);
    const Tensor<double> d = t.cast<double>();
    CHECK(d.reshaped({120})[119] == 7.0);
}

TEST_CASE("naive conv oracle matches PyTorch", "[layers]") {
    for (int i = 0; i < case_count("conv"); ++i) {
        const ConvCase c = conv_case(i);
        INFO("conv case " << i);
        CHECK(max_abs_diff(naive_conv2d(c.x, c.w, c.b, c.stride, c.pad, c.dil), c.y) < 1e-10);
    }
}

TEMPLATE_TEST_CASE("Conv2d (im2col + GEMM) matches PyTorch and the oracle", "[layers]", float, double) {
    const double tol = std::is_same<TestType, float>::value ? 2e-5 : 1e-11;
    for (int i = 0; i < case_count("conv"); ++i) {
        const ConvCase c = conv_case(i);
        const resnet::Conv2d<TestType> conv(c.w.cast<TestType>(), c.b.cast<TestType>(), c.stride, c.pad, c.dil);
        const Tensor<TestType> x = c.x.cast<TestType>();
        const auto oracle = naive_conv2d(x, c.w.cast<TestType>(), c.b.cast<TestType>(), c.stride, c.pad, c.dil);
        for (int threads : {1, 3}) {
            INFO("conv case " << i << ", " << threads << " threads");
            const auto y = run_conv(conv, x, threads);
            CHECK(close(y, c.y, tol));
            CHECK(close(y, oracle, tol));
        }
    }
}

TEST_CASE("Conv2d fused epilogue: bias, residual, ReLU", "[layers]") {
    const ConvCase c = conv_case(8);  // 130→140 channels: several row tiles
    const resnet::Conv2d<double> conv(c.w, c.b, c.stride, c.pad, c.dil);
    Tensor<double> res(c.y.shape()), expected = naive_conv2d(c.x, c.w, c.b, c.stride, c.pad, c.dil);
    for (int64_t i = 0; i < res.size(); ++i) {
        res[i] = std::sin(double(i));
        expected[i] = std::max(0.0, expected[i] + res[i]);
    }
    const auto y = run_conv(conv, c.x, 2, &res, true);
    CHECK(max_abs_diff(y, expected) < 1e-10);
    CHECK(*std::min_element(y.begin(), y.end()) == 0.0);
}

TEST_CASE("Conv2d output bits do not depend on the thread count", "[layers]") {
    const ConvCase c = conv_case(8);
    const resnet::Conv2d<float> conv(c.w.cast<float>(), c.b.cast<float>(), c.stride, c.pad, c.dil);
    const Tensor<float> x = c.x.cast<float>();
    const auto one = run_conv(conv, x, 1);
    for (int threads : {2, 3, 5}) CHECK(max_abs_diff(run_conv(conv, x, threads), one) == 0.0);
}

TEMPLATE_TEST_CASE("BatchNorm folded into the conv matches PyTorch's conv → BN (eval)", "[layers]", float, double) {
    const double tol = std::is_same<TestType, float>::value ? 2e-5 : 1e-11;
    for (int i = 0; ops().contains("convbn" + std::to_string(i) + ".x"); ++i) {
        const std::string p = "convbn" + std::to_string(i) + ".";
        const auto params = op(p + "params");
        const auto conv = resnet::Conv2d<TestType>::fold_batchnorm(
            op<TestType>(p + "w"), op<TestType>(p + "gamma"), op<TestType>(p + "beta"), op<TestType>(p + "mean"),
            op<TestType>(p + "var"), int(params[1]), int(params[0]) / 2);
        INFO("conv+bn case " << i);
        CHECK(close(run_conv(conv, op<TestType>(p + "x"), 2), op(p + "y"), tol));
    }
}

TEST_CASE("MaxPool2d pads with -inf, as PyTorch does", "[layers]") {
    for (int i = 0; i < case_count("maxpool"); ++i) {
        const std::string p = "maxpool" + std::to_string(i) + ".";
        const auto x = op(p + "x"), ref = op(p + "y"), params = op(p + "params");
        const resnet::MaxPool2d pool{int(params[0]), int(params[1]), int(params[2])};
        const int h = int(x.dim(2)), w = int(x.dim(3));
        Tensor<double> y({x.dim(0), x.dim(1), pool.out_size(h), pool.out_size(w)});
        resnet::detail::ThreadPool threads(2);
        pool.forward(x.data(), x.dim(0) * x.dim(1), h, w, y.data(), threads);
        INFO("maxpool case " << i);
        CHECK(max_abs_diff(y, ref) == 0.0);
        // The inputs are shifted negative: a zero-padded pool would give 0 here.
        CHECK(*std::max_element(ref.begin(), ref.end()) < 0.0);
    }
}

TEST_CASE("Global average pool and Linear match PyTorch", "[layers]") {
    const auto x = op("avgpool.x"), ref = op("avgpool.y");
    Tensor<double> y({x.dim(0), x.dim(1), 1, 1});
    resnet::detail::ThreadPool threads(2);
    resnet::GlobalAvgPool().forward(x.data(), x.dim(0) * x.dim(1), x.dim(2) * x.dim(3), y.data(), threads);
    CHECK(max_abs_diff(y, ref) < 1e-12);

    const resnet::Linear<double> fc(op("linear.w"), op("linear.b"));
    const auto in = op("linear.x"), expected = op("linear.y");
    Tensor<double> out({in.dim(0), fc.out_features()});
    fc.forward(in.data(), in.dim(0), out.data());
    CHECK(max_abs_diff(out, expected) < 1e-12);
    // fc is not square here, so a transposed weight could not even be applied.
    CHECK(fc.in_features() != fc.out_features());
}
