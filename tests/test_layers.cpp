// Each op against PyTorch (fixtures/ops.safetensors, float64) and each
// optimized kernel against its naive oracle.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <random>

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
    int k, stride, pad, dil, groups;
};
ConvCase conv_case(int i) {
    const std::string p = "conv" + std::to_string(i) + ".";
    const auto params = op(p + "params");
    return {op(p + "x"), op(p + "w"), op(p + "b"), op(p + "y"),
            int(params[0]), int(params[1]), int(params[2]), int(params[3]), int(params[4])};
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
    const Tensor<float> empty, empty_copy(empty);
    CHECK(empty_copy.empty());
    const Tensor<double> d = t.cast<double>();
    CHECK(d.reshaped({120})[119] == 7.0);

    // resize keeps the storage while it is large enough, a copy holds only its elements
    const float* storage = t.data();
    t.resize({3, 4});
    CHECK((t.shape() == resnet::Shape{3, 4} && t.size() == 12 && t.data() == storage));
    t.resize({120});
    CHECK(t.data() == storage);
    const Tensor<float> copy(t);
    t.resize({121});
    t[120] = 1.f;  // (ASan: the storage grew)
    CHECK(t.size() == 121);
    const Tensor<float> moved = std::move(t);
    t.resize({4});
    CHECK((t.size() == 4 && t.data() != nullptr && moved.size() == 121 && copy.size() == 120));
}

TEST_CASE("WeightArena: carved tensors are aligned, apart, outlive the arena, and release their blocks",
          "[tensor]") {
    const auto mapped = [](const void* p) {  // msync fails with ENOMEM on an unmapped page
        const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
        return msync(reinterpret_cast<void*>(uintptr_t(p) / page * page), 1, MS_ASYNC) == 0;
    };
    resnet::detail::ThreadPool pool(2, false);
    std::vector<Tensor<float>> kept;
    const float* block_end = nullptr;  // one past the first block's last array
    {
        resnet::detail::WeightArena arena(&pool, 4 << 20);
        // across a huge page; an odd size; larger than a block (a block of its own); into a new block
        for (int64_t n : {1000, 600000, 3, 3 << 20, 100000, 0, 10}) {
            kept.push_back(arena.tensor<float>({n}));
            std::iota(kept.back().begin(), kept.back().end(), float(n));
            if (n == 3) block_end = kept.back().end();
        }
        CHECK(mapped(block_end - 1));
    }
    CHECK(!mapped(block_end + 4096));  // the first block, closed: nothing mapped past its arrays' last page
    std::vector<std::pair<const float*, const float*>> spans;
    for (const Tensor<float>& t : kept) {
        INFO(t.size() << " elements");
        CHECK(reinterpret_cast<uintptr_t>(t.data()) % 64 == 0);
        for (int64_t i = 0; i < t.size(); i += 997) CHECK(t[i] == float(t.size() + i));
        if (!t.empty()) spans.emplace_back(t.begin(), t.end());
    }
    std::sort(spans.begin(), spans.end());
    for (size_t i = 1; i < spans.size(); ++i) CHECK(spans[i - 1].second <= spans[i].first);
    CHECK(kept[5].empty());
    const Tensor<float> copy(kept[1]);
    const float* first = kept[0].data();
    kept.erase(kept.begin(), kept.begin() + 3);
    CHECK(!mapped(first));  // the first block's arrays gone: unmapped
    CHECK(copy[599999] == float(600000 + 599999));
    CHECK(kept[1][99999] == float(100000 + 99999));
}

#if defined(__linux__)
namespace {
/// The VmFlags of the mapping holding `p` (/proc/self/smaps), e.g. "rd wr mr mw me ac nh".
std::string vm_flags(const void* p) {
    std::ifstream smaps("/proc/self/smaps");
    bool inside = false;
    for (std::string line; std::getline(smaps, line);) {
        unsigned long lo = 0, hi = 0;
        if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find(':') > line.find(' '))
            inside = lo <= uintptr_t(p) && uintptr_t(p) < hi;
        else if (inside && line.rfind("VmFlags:", 0) == 0)
            return line.substr(8) + " ";
    }
    return "";
}
}  // namespace

TEST_CASE("WeightArena: once huge pages have been slow to fault in, carved tensors take small pages", "[tensor]") {
    auto& choice = resnet::detail::page_choice();
    const auto before = choice.mode();
    choice.reset(resnet::detail::PageChoice::Small);
    resnet::detail::ThreadPool pool(2, false);
    Tensor<float> t;
    {
        resnet::detail::WeightArena arena(&pool, 4 << 20);
        t = arena.tensor<float>({3 << 20});
    }
    choice.reset(before);
    std::iota(t.begin(), t.end(), 0.f);
    CHECK(t[(3 << 20) - 1] == float((3 << 20) - 1));
    for (const float* p : {t.data(), t.data() + (3 << 20) - 1}) {
        const std::string flags = vm_flags(p);
        INFO("VmFlags:" << flags);
        CHECK(flags.find(" hg ") == std::string::npos);
        CHECK(flags.find(" nh ") != std::string::npos);
    }
}
#endif

TEST_CASE("naive conv oracle matches PyTorch", "[layers]") {
    for (int i = 0; i < case_count("conv"); ++i) {
        const ConvCase c = conv_case(i);
        INFO("conv case " << i);
        CHECK(max_abs_diff(naive_conv2d(c.x, c.w, c.b, c.stride, c.pad, c.dil, c.groups), c.y) < 1e-10);
    }
}

namespace {
template <class T>
using Algo = typename resnet::Conv2d<T>::Algorithm;
}  // namespace

TEMPLATE_TEST_CASE("Conv2d (im2col + GEMM, both direct kernels) matches PyTorch and the oracle, grouped or not",
                   "[layers]", float, double) {
    const double tol = std::is_same<TestType, float>::value ? 2e-5 : 1e-11;
    int grouped = 0, direct = 0, channels = 0;
    for (int i = 0; i < case_count("conv"); ++i) {
        const ConvCase c = conv_case(i);
        grouped += c.groups > 1;
        const Tensor<TestType> x = c.x.cast<TestType>();
        const auto oracle =
            naive_conv2d(x, c.w.cast<TestType>(), c.b.cast<TestType>(), c.stride, c.pad, c.dil, c.groups);
        for (auto algo : {Algo<TestType>::Auto, Algo<TestType>::Im2col, Algo<TestType>::Direct,
                          Algo<TestType>::DirectChannels}) {
            if (algo == Algo<TestType>::DirectChannels && c.groups > 1) {
                CHECK_THROWS_WITH(resnet::Conv2d<TestType>(c.w.cast<TestType>(), c.b.cast<TestType>(), c.stride,
                                                           c.pad, c.dil, c.groups, algo),
                                  Catch::Contains("channel-vector") && Catch::Contains("groups"));
                continue;
            }
            const resnet::Conv2d<TestType> conv(c.w.cast<TestType>(), c.b.cast<TestType>(), c.stride, c.pad, c.dil,
                                                c.groups, algo);
            CHECK(conv.in_channels() == c.x.dim(1));
            const bool positions = algo == Algo<TestType>::Direct ||
                                   (algo == Algo<TestType>::Auto && (c.groups > 1 || c.x.dim(1) <= 4));
            const bool by_channels = algo == Algo<TestType>::DirectChannels ||
                                     (algo == Algo<TestType>::Auto && !positions && c.w.dim(2) > 1 &&
                                      conv.winograd_tile() == 0 && resnet::detail::kernels<TestType>().channels_auto);
            CHECK(conv.direct_channels() == by_channels);
            CHECK(conv.direct() == (positions || by_channels));
            direct += positions && algo == Algo<TestType>::Auto;
            channels += by_channels && algo == Algo<TestType>::Auto;
            const auto one = run_conv(conv, x, 1);
            INFO("conv case " << i << " (groups " << c.groups << "), algorithm " << int(algo));
            CHECK(close(one, c.y, tol));
            CHECK(close(one, oracle, tol));
            CHECK(max_abs_diff(run_conv(conv, x, 3), one) == 0.0);
        }
    }
    CHECK(grouped == 8);
    CHECK(direct == 15);
    CHECK(channels == (resnet::detail::kernels<TestType>().channels_auto ? 2 : 0));
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

TEST_CASE("Conv2d output bits do not depend on the thread count, of forward() or of the weights' layout",
          "[layers]") {
    // 130→140 channels; 32 groups of 8; 64 groups, 1×1 read in place; the channel-vector kernel
    for (int i : {8, 13, 16, 19}) {
        const ConvCase c = conv_case(i);
        const Tensor<float> w = c.w.cast<float>(), b = c.b.cast<float>(), x = c.x.cast<float>();
        const resnet::Conv2d<float> conv(w, b, c.stride, c.pad, c.dil, c.groups);
        const auto one = run_conv(conv, x, 1);
        for (int threads : {2, 3, 5}) {
            INFO("conv case " << i << ", " << threads << " threads");
            CHECK(max_abs_diff(run_conv(conv, x, threads), one) == 0.0);
            resnet::detail::ThreadPool loader(threads, false);
            resnet::detail::WeightArena arena(&loader);
            const resnet::Conv2d<float> laid_out(w, b, c.stride, c.pad, c.dil, c.groups, Algo<float>::Auto, &arena);
            CHECK(max_abs_diff(run_conv(laid_out, x, 1), one) == 0.0);
        }
    }
}

namespace {

/// Deterministic N(0, scale²) tensor.
template <class T>
Tensor<T> random_tensor(const resnet::Shape& shape, uint32_t seed, double scale = 1.0) {
    std::mt19937 gen(seed);
    std::normal_distribution<double> dist(0.0, scale);
    Tensor<T> t(shape);
    for (auto& v : t) v = T(dist(gen));
    return t;
}

// Winograd F(4×4,3×3) in float: transforms amplify rounding a few times over
// the direct sum (measured ≤ 2e-6 relative on these cases; F(2×2) less);
// double stays ~1e-14.
template <class T>
constexpr double winograd_tol() { return std::is_same<T, float>::value ? 1e-5 : 1e-12; }

/// Both Winograd tiles, each test runs for each.
template <class T>
const std::pair<Algo<T>, int> kWinograd[] = {{Algo<T>::Winograd4x4, 4}, {Algo<T>::Winograd2x2, 2}};

}  // namespace

TEMPLATE_TEST_CASE("Conv2d GEMM and direct kernels: partial panels, strips and blocks, fused ops", "[layers]", float,
                   double) {
    // Shapes chosen to hit every edge of detail::gemm: Cout not a multiple of
    // the 6- or 12-row panel (detail/kernels.hpp), column counts with and
    // without a partial strip, k large enough to split the panels into
    // several blocks, more than one block of strips, 1×1 (B read in place)
    // and im2col, and an im2col row of 2.6 MB, above the 2 MB band: one band
    // per output row. Grouped: 3 groups of 5 → 7
    // (partial panels) in bands of one output row, 32 groups of 2 → 4 with
    // stride 2, 16 groups of 4 → 8 read in place. 1×1 read in place with
    // whole strips and whole vectors: 48 columns (AVX-512's strip, AVX2's
    // 16 + 16 + 16), 80 (AVX-512's 48 + 32: a two-vector tile) and,
    // grouped, 24 (AVX2's 16 + 8); 16 columns (AVX-512's one vector) above;
    // with a few columns past whole vectors: 49 (ResNet's 7×7: the last
    // strip's tile takes the 49th column under AVX-512 and AVX2,
    // Kernels::columns_past; SSE2 runs tile_columns on it), 50, 51 and 98
    // (AVX-512's last tile takes 2 or 3; AVX2 runs tile_columns), 84
    // (AVX-512: 48, then two vectors and 4 for tile_columns) and 196 (14×14:
    // AVX-512's 3 strips, then 48 and 4 in one tile; SSE2: whole vectors). A 1×1 of 600 channels into 16 at
    // 20×20: k blocks, and at 3 threads items by columns (gemm(): more
    // columns than rows, at least two strips per thread), as the 7×7 over a
    // 5×210 plane and, under AVX2 and SSE2, 14×14 and 10×14 outputs.
    // 1×1s of 1000 and 1100 channels at 7×7, read in place: 2 and 3 k
    // blocks of 512 (AVX-512, SSE2, portable), split by depth at 2 and 3
    // threads (gemm()'s partial sums); 500 and 700 channels: the same
    // under AVX2's blocks of 256 (Kernels::depth).
    // The direct kernel runs the same shapes: partial blocks of output
    // channels, rows of 1–1904 flat positions, several chunks per group. So
    // does the channel-vector one where ungrouped: partial blocks of 8–64
    // output channels (150 = 2·64 + 22), the last tile of positions partial,
    // several chunks of tiles (1050 positions), passes over the input
    // channels (300·9 steps) and one input channel (its first half of the
    // channels then holds none).
    struct Shape {
        int n, cin, cout, h, w, k, stride, pad, groups;
    };
    const Shape shapes[] = {{1, 3, 1, 5, 3, 1, 1, 0, 1},     {2, 5, 7, 4, 4, 1, 1, 0, 1},
                            {1, 9, 13, 9, 19, 3, 1, 1, 1},   {1, 700, 70, 3, 7, 1, 1, 0, 1},
                            {1, 6, 12, 20, 27, 3, 2, 1, 1},  {2, 300, 40, 5, 5, 3, 1, 1, 1},
                            {1, 64, 8, 5, 210, 7, 1, 3, 1},  {2, 15, 21, 5, 1900, 5, 1, 2, 3},
                            {2, 64, 128, 9, 11, 3, 2, 1, 32}, {2, 64, 128, 4, 8, 1, 1, 0, 16},
                            {1, 40, 30, 6, 8, 1, 1, 0, 1},    {2, 24, 20, 4, 6, 1, 1, 0, 2},
                            {2, 20, 30, 7, 7, 1, 1, 0, 1},    {1, 24, 24, 14, 14, 1, 1, 0, 1},
                            {1, 24, 20, 8, 10, 1, 1, 0, 1},   {2, 24, 20, 7, 12, 1, 1, 0, 1},
                            {1, 20, 150, 9, 13, 3, 2, 1, 1},  {1, 600, 16, 20, 20, 1, 1, 0, 1},
                            {1, 1000, 64, 7, 7, 1, 1, 0, 1},  {2, 1100, 40, 7, 7, 1, 1, 0, 1},
                            {1, 500, 64, 7, 7, 1, 1, 0, 1},   {2, 700, 40, 7, 7, 1, 1, 0, 1},
                            {1, 1, 6, 7, 9, 3, 2, 1, 1},      {1, 40, 20, 5, 10, 1, 1, 0, 1},
                            {2, 30, 17, 3, 17, 1, 1, 0, 1},   {1, 20, 9, 7, 14, 1, 1, 0, 1}};
    const double tol = std::is_same<TestType, float>::value ? 2e-5 : 1e-11;
    uint32_t seed = 100;
    for (const auto& s : shapes) {
        INFO("n=" << s.n << " cin=" << s.cin << " cout=" << s.cout << " " << s.h << "x" << s.w << " k=" << s.k
                  << " groups=" << s.groups);
        const int cin = s.cin / s.groups;
        const auto x = random_tensor<TestType>({s.n, s.cin, s.h, s.w}, ++seed);
        const auto w = random_tensor<TestType>({s.cout, cin, s.k, s.k}, ++seed, 1.0 / std::sqrt(cin * s.k * s.k));
        const auto b = random_tensor<TestType>({s.cout}, ++seed);
        for (auto algo : {Algo<TestType>::Im2col, Algo<TestType>::Direct, Algo<TestType>::DirectChannels}) {
            if (algo == Algo<TestType>::DirectChannels && s.groups > 1) continue;
            INFO("algorithm " << int(algo));
            const resnet::Conv2d<TestType> conv(w, b, s.stride, s.pad, 1, s.groups, algo);
            const int ho = conv.out_size(s.h), wo = conv.out_size(s.w);
            const auto res = random_tensor<TestType>({s.n, s.cout, ho, wo}, ++seed);
            auto expected = naive_conv2d(x, w, b, s.stride, s.pad, 1, s.groups);
            CHECK(close(run_conv(conv, x, 1), expected, tol));
            for (int64_t i = 0; i < expected.size(); ++i) expected[i] = std::max(TestType(0), expected[i] + res[i]);
            const auto fused = run_conv(conv, x, 1, &res, true);
            CHECK(close(fused, expected, tol));
            // Each epilogue op alone: + residual without ReLU, ReLU without residual.
            auto plain = naive_conv2d(x, w, b, s.stride, s.pad, 1, s.groups), with_res = plain;
            for (int64_t i = 0; i < plain.size(); ++i) {
                with_res[i] += res[i];
                plain[i] = std::max(TestType(0), plain[i]);
            }
            CHECK(close(run_conv(conv, x, 1, &res, false), with_res, tol));
            CHECK(close(run_conv(conv, x, 1, static_cast<const Tensor<TestType>*>(nullptr), true), plain, tol));
            CHECK(max_abs_diff(run_conv(conv, x, 3, &res, true), fused) == 0.0);
            CHECK(max_abs_diff(run_conv(conv, x, 2, &res, false), run_conv(conv, x, 1, &res, false)) == 0.0);
            // The layer touches only the scratch it asked for, and reads
            // none it did not write first (NaN there, as a reused arena's
            // leftovers could be).
            const int64_t ws = conv.workspace_size(s.h, s.w);
            Tensor<TestType> col({ws + 2}), y({s.n, s.cout, ho, wo});
            std::fill(col.begin(), col.end(), std::numeric_limits<TestType>::quiet_NaN());
            col[0] = col[ws + 1] = TestType(12345);
            resnet::detail::ThreadPool pool(2);
            conv.forward(x.data(), s.n, s.h, s.w, y.data(), {res.data(), true}, col.data() + 1, pool);
            CHECK(max_abs_diff(y, fused) == 0.0);
            CHECK((col[0] == TestType(12345) && col[ws + 1] == TestType(12345)));
            // The residual may be the output itself (a block's shortcut is
            // written into its output): the same bits.
            Tensor<TestType> in_place = res;
            conv.forward(x.data(), s.n, s.h, s.w, in_place.data(), {in_place.data(), true}, col.data() + 1, pool);
            CHECK(max_abs_diff(in_place, fused) == 0.0);
        }
    }
}

namespace {

/// One C×h×w image (planes) in Layout::Strips, NaN in the last strip's
/// lanes past the plane (they must never reach an output).
template <class T>
std::vector<T> to_strips(const T* x, int64_t c, int64_t plane) {
    const int64_t S = resnet::detail::kernels<T>().strip(), strips = (plane + S - 1) / S;
    std::vector<T> out(size_t(strips * S * c), std::numeric_limits<T>::quiet_NaN());
    for (int64_t ch = 0; ch < c; ++ch)
        for (int64_t i = 0; i < plane; ++i) out[size_t(i / S * c * S + ch * S + i % S)] = x[ch * plane + i];
    return out;
}
template <class T>
Tensor<T> from_strips(const std::vector<T>& s, int64_t c, int64_t h, int64_t w) {
    const int64_t S = resnet::detail::kernels<T>().strip(), plane = h * w;
    Tensor<T> out({1, c, h, w});
    for (int64_t ch = 0; ch < c; ++ch)
        for (int64_t i = 0; i < plane; ++i) out[ch * plane + i] = s[size_t(i / S * c * S + ch * S + i % S)];
    return out;
}

}  // namespace

TEMPLATE_TEST_CASE("Conv2d 1x1 in and out of Layout::Strips: the outputs of planes, any thread count", "[layers]",
                   float, double) {
    // 48 and 49 columns (whole strips; a column past them, which in strips
    // runs apart: MatrixLayout), 196 (14×14), k blocks and items by columns
    // (600 → 16 at 20×20, 3 threads), depth splits at 2 and 3 threads
    // (1000, 500 and 700 channels at 7×7: strips as partial sums), stride 2
    // (gathered from strips) at even and odd sizes.
    struct Shape {
        int cin, cout, h, w, stride;
    };
    const Shape shapes[] = {{40, 30, 6, 8, 1},   {20, 30, 7, 7, 1},    {24, 24, 14, 14, 1}, {600, 16, 20, 20, 1},
                            {1000, 64, 7, 7, 1}, {500, 64, 7, 7, 1},   {700, 40, 7, 7, 1},  {30, 17, 3, 17, 1},
                            {24, 20, 14, 14, 2}, {16, 12, 9, 11, 2},   {64, 40, 7, 7, 2}};
    const double tol = std::is_same<TestType, float>::value ? 2e-5 : 1e-11;
    using resnet::Layout;
    uint32_t seed = 500;
    for (const auto& s : shapes) {
        INFO("cin=" << s.cin << " cout=" << s.cout << " " << s.h << "x" << s.w << " stride " << s.stride);
        const auto x = random_tensor<TestType>({1, s.cin, s.h, s.w}, ++seed);
        const auto w = random_tensor<TestType>({s.cout, s.cin, 1, 1}, ++seed, 1.0 / std::sqrt(s.cin));
        const auto b = random_tensor<TestType>({s.cout}, ++seed);
        const resnet::Conv2d<TestType> conv(w, b, s.stride, 0, 1, 1);
        REQUIRE(conv.takes_strips());
        const int ho = conv.out_size(s.h), wo = conv.out_size(s.w);
        const auto res = random_tensor<TestType>({1, s.cout, ho, wo}, ++seed);
        const auto planes = run_conv(conv, x, 1, &res, true);
        const auto xs = to_strips(x.data(), s.cin, int64_t(s.h) * s.w);
        const auto rs = to_strips(res.data(), s.cout, int64_t(ho) * wo);
        for (Layout in : {Layout::Planes, Layout::Strips})
            for (Layout out : {Layout::Planes, Layout::Strips}) {
                const resnet::Layouts io{in, out};
                const int64_t ws = conv.workspace_size(s.h, s.w, io);
                Tensor<TestType> first;
                for (int threads : {1, 2, 3}) {
                    INFO("in " << int(in) << ", out " << int(out) << ", " << threads << " threads");
                    Tensor<TestType> col({ws + 2});
                    std::fill(col.begin(), col.end(), std::numeric_limits<TestType>::quiet_NaN());
                    col[0] = col[ws + 1] = TestType(12345);
                    // The residual is the output itself, as in a block.
                    std::vector<TestType> ys(res.begin(), res.end());
                    if (out == Layout::Strips) ys = rs;
                    resnet::detail::ThreadPool pool(threads);
                    conv.forward(in == Layout::Strips ? xs.data() : x.data(), 1, s.h, s.w, ys.data(), {ys.data(), true},
                                 col.data() + 1, pool, io);
                    CHECK((col[0] == TestType(12345) && col[ws + 1] == TestType(12345)));
                    Tensor<TestType> y({1, s.cout, ho, wo});
                    if (out == Layout::Strips)
                        y = from_strips(ys, s.cout, ho, wo);
                    else
                        std::copy(ys.begin(), ys.end(), y.begin());
                    CHECK(close(y, planes, tol));
                    if (threads == 1)
                        first = y;
                    else
                        CHECK(max_abs_diff(y, first) == 0.0);
                }
            }
    }
}

TEMPLATE_TEST_CASE("Conv2d 3x3 output in Layout::Strips (Winograd, im2col): the bits of planes, any thread count",
                   "[layers]", float, double) {
    // Winograd F(4×4) and F(2×2): a partial border tile, two chunks (48×48
    // at F(4×4): 144 tiles), more output channels than one item (70); the
    // GEMM through im2col at stride 2 (even and odd sizes) and stride 1,
    // and in several bands of whole strips (2700 and 4608 im2col rows: 28
    // output columns, bands of 4 rows under AVX2; 25 columns, 16 rows).
    // The residual is the output itself, as in a block. Winograd's output
    // transform stores the same values either way; the GEMM's last few
    // columns may sum in another order (a strip takes the next one's few
    // columns only where C's strips lie side by side: detail::gemm), so
    // the GEMM is held to a tolerance, and to the same bits at any thread count.
    struct Shape {
        int cin, cout, h, w, stride;
        Algo<TestType> algo;
    };
    const Shape shapes[] = {{20, 30, 13, 11, 1, Algo<TestType>::Winograd4x4}, {20, 30, 13, 11, 1, Algo<TestType>::Winograd2x2},
                            {8, 70, 48, 48, 1, Algo<TestType>::Winograd4x4},  {24, 40, 7, 7, 1, Algo<TestType>::Winograd2x2},
                            {16, 24, 15, 13, 2, Algo<TestType>::Im2col},      {12, 20, 14, 14, 2, Algo<TestType>::Im2col},
                            {10, 17, 9, 9, 1, Algo<TestType>::Im2col},        {300, 10, 56, 56, 2, Algo<TestType>::Im2col},
                            {512, 8, 56, 50, 2, Algo<TestType>::Im2col}};
    using resnet::Layout;
    uint32_t seed = 700;
    for (const auto& s : shapes) {
        INFO("cin=" << s.cin << " cout=" << s.cout << " " << s.h << "x" << s.w << " stride " << s.stride << " algorithm "
                    << int(s.algo));
        const auto x = random_tensor<TestType>({1, s.cin, s.h, s.w}, ++seed);
        const auto w = random_tensor<TestType>({s.cout, s.cin, 3, 3}, ++seed, 1.0 / std::sqrt(9 * s.cin));
        const auto b = random_tensor<TestType>({s.cout}, ++seed);
        const resnet::Conv2d<TestType> conv(w, b, s.stride, 1, 1, 1, s.algo);
        REQUIRE(conv.writes_strips());
        REQUIRE_FALSE(conv.takes_strips());
        const int ho = conv.out_size(s.h), wo = conv.out_size(s.w);
        const auto res = random_tensor<TestType>({1, s.cout, ho, wo}, ++seed);
        const auto planes = run_conv(conv, x, 1, &res, true);
        const resnet::Layouts io{Layout::Planes, Layout::Strips};
        const int64_t ws = conv.workspace_size(s.h, s.w, io);
        Tensor<TestType> first;
        for (int threads : {1, 2, 3}) {
            INFO(threads << " threads");
            Tensor<TestType> col({ws + 2});
            col[0] = col[ws + 1] = TestType(12345);
            auto ys = to_strips(res.data(), s.cout, int64_t(ho) * wo);
            resnet::detail::ThreadPool pool(threads);
            conv.forward(x.data(), 1, s.h, s.w, ys.data(), {ys.data(), true}, col.data() + 1, pool, io);
            CHECK((col[0] == TestType(12345) && col[ws + 1] == TestType(12345)));
            const auto y = from_strips(ys, s.cout, ho, wo);
            if (conv.winograd_tile())
                CHECK(max_abs_diff(y, planes) == 0.0);
            else
                CHECK(close(y, planes, std::is_same<TestType, float>::value ? 2e-5 : 1e-11));
            if (threads == 1)
                first = y;
            else
                CHECK(max_abs_diff(y, first) == 0.0);
        }
        resnet::detail::ThreadPool pool(1);
        Tensor<TestType> col({ws}), y({1, s.cout, ho, wo});
        CHECK_THROWS_WITH(conv.forward(x.data(), 1, s.h, s.w, y.data(), {}, col.data(), pool, {Layout::Strips, Layout::Planes}),
                          Catch::Contains("input in Layout::Strips needs an unpadded, ungrouped 1x1"));
    }
}

TEMPLATE_TEST_CASE("Conv2d Winograd path matches PyTorch and the oracle on the 3x3 s1 p1 cases", "[layers]", float,
                   double) {
    int checked = 0;
    for (int i = 0; i < case_count("conv"); ++i) {
        const ConvCase c = conv_case(i);
        if (!resnet::winograd::eligible(c.k, c.stride, c.pad, c.dil) || c.groups > 1) continue;
        ++checked;  // conv1 (5→6, 9×8) and conv8 (130→140, 17×18)
        const auto w = c.w.cast<TestType>(), b = c.b.cast<TestType>();
        const resnet::Conv2d<TestType> im2col(w, b, 1, 1, 1, 1, Algo<TestType>::Im2col);
        CHECK(im2col.winograd_tile() == 0);
        const Tensor<TestType> x = c.x.cast<TestType>();
        const auto oracle = naive_conv2d(c.x, c.w, c.b, 1, 1, 1);  // double
        for (const auto& [algo, m] : kWinograd<TestType>)
        for (int threads : {1, 3}) {
            const resnet::Conv2d<TestType> wino(w, b, 1, 1, 1, 1, algo);
            CHECK(wino.winograd_tile() == m);
            INFO("conv case " << i << ", F(" << m << "x" << m << "), " << threads << " threads");
            const auto yw = run_conv(wino, x, threads), yi = run_conv(im2col, x, threads);
            const double scale = std::max(1.0, max_abs(oracle));
            INFO("winograd max|d|/scale=" << max_abs_diff(yw, oracle) / scale
                                          << " im2col=" << max_abs_diff(yi, oracle) / scale);
            CHECK(close(yw, c.y, winograd_tol<TestType>()));
            CHECK(close(yw, oracle, winograd_tol<TestType>()));
            CHECK(close(yi, oracle, std::is_same<TestType, float>::value ? 2e-5 : 1e-11));
        }
    }
    CHECK(checked == 2);
}

TEMPLATE_TEST_CASE("Conv2d Winograd: odd sizes, tiny inputs, batches, residual + ReLU", "[layers]", float, double) {
    struct Shape {
        int n, cin, cout, h, w;
    };
    // Sizes not multiples of 4, 1×1 and 2×3 inputs (a single partial tile),
    // batch 3, Cout not a multiple of the 6- or 12-row panels and above one
    // item (66 or 72 rows), Cin above one 16-channel input block, and 41×53 = 11×14 tiles: two
    // chunks of 77, the boundary in the middle of a tile row (F(2×2): 21×27
    // tiles, six chunks). 9×131: tile rows of 33 (F(4×4)) and 66 (F(2×2))
    // tiles, wider than a vector's 16 lanes (the row loads of row_patches).
    // 2 × 2×1×3: a batch whose images' outputs (6 values) are narrower than
    // any set's strip (8 to 48 columns).
    const Shape shapes[] = {{1, 3, 4, 1, 1},    {3, 4, 5, 2, 3},     {2, 5, 7, 5, 5},   {1, 7, 9, 13, 17},
                            {3, 17, 70, 9, 10}, {1, 33, 13, 41, 53}, {2, 6, 140, 4, 8}, {1, 2, 3, 3, 30},
                            {1, 2, 3, 9, 131},  {2, 3, 2, 1, 3}};
    uint32_t seed = 1;
    for (const auto& s : shapes) {
        const Tensor<double> x = random_tensor<double>({s.n, s.cin, s.h, s.w}, seed++);
        const Tensor<double> w = random_tensor<double>({s.cout, s.cin, 3, 3}, seed++, 1.0 / std::sqrt(9.0 * s.cin));
        const Tensor<double> b = random_tensor<double>({s.cout}, seed++);
        const Tensor<double> res = random_tensor<double>({s.n, s.cout, s.h, s.w}, seed++);
        Tensor<double> expected = naive_conv2d(x, w, b, 1, 1, 1);
        const Tensor<double> plain = expected;
        for (int64_t i = 0; i < expected.size(); ++i) expected[i] = std::max(0.0, expected[i] + res[i]);

        for (const auto& [algo, m] : kWinograd<TestType>) {
        const resnet::Conv2d<TestType> conv(w.cast<TestType>(), b.cast<TestType>(), 1, 1, 1, 1, algo);
        const Tensor<TestType> xt = x.cast<TestType>(), rt = res.cast<TestType>();
        INFO("F(" << m << "x" << m << ") n=" << s.n << " cin=" << s.cin << " cout=" << s.cout << " " << s.h << "x"
                  << s.w);
        const auto fused = run_conv(conv, xt, 2, &rt, true);
        CHECK(close(fused, expected, winograd_tol<TestType>()));
        CHECK(close(run_conv(conv, xt, 1), plain, winograd_tol<TestType>()));
        // Bias and residual without ReLU, and ReLU alone.
        Tensor<double> no_relu = plain;
        for (int64_t i = 0; i < no_relu.size(); ++i) no_relu[i] += res[i];
        CHECK(close(run_conv(conv, xt, 3, &rt, false), no_relu, winograd_tol<TestType>()));
        Tensor<double> relu_only = plain;
        for (auto& v : relu_only) v = std::max(0.0, v);
        CHECK(close(run_conv<TestType>(conv, xt, 1, nullptr, true), relu_only, winograd_tol<TestType>()));

        // The scratch need not be aligned, and is all the layer touches.
        const int64_t ws = conv.workspace_size(s.h, s.w);
        Tensor<TestType> col({ws + 2}), y({s.n, s.cout, s.h, s.w});
        const TestType canary = TestType(12345);
        col[0] = col[ws + 1] = canary;
        resnet::detail::ThreadPool pool(2);
        conv.forward(xt.data(), s.n, s.h, s.w, y.data(), {rt.data(), true}, col.data() + 1, pool);
        CHECK(max_abs_diff(y, fused) == 0.0);
        CHECK(col[0] == canary);
        CHECK(col[ws + 1] == canary);
        // The residual may be the output itself: the same bits.
        Tensor<TestType> in_place = rt;
        conv.forward(xt.data(), s.n, s.h, s.w, in_place.data(), {in_place.data(), true}, col.data() + 1, pool);
        CHECK(max_abs_diff(in_place, fused) == 0.0);
        }
    }
}

TEMPLATE_TEST_CASE("Conv2d Winograd output bits do not depend on the thread count or the scratch side", "[layers]",
                   float, double) {
    // 41×53: several chunks × several input blocks × three output items,
    // batch 2. 13×17: one chunk, whose transformed input has two places.
    const auto w = random_tensor<TestType>({140, 33, 3, 3}, 8, 0.06);
    const auto b = random_tensor<TestType>({140}, 9);
    for (const auto& [h, wd] : {std::pair(41, 53), std::pair(13, 17)}) {
        const auto x = random_tensor<TestType>({2, 33, h, wd}, 7);
        const auto res = random_tensor<TestType>({2, 140, h, wd}, 10);
        const auto im2col =
            run_conv(resnet::Conv2d<TestType>(w, b, 1, 1, 1, 1, Algo<TestType>::Im2col), x, 1, &res, true);
        for (const auto& [algo, m] : kWinograd<TestType>) {
            resnet::Conv2d<TestType> conv(w, b, 1, 1, 1, 1, algo);
            const auto one = run_conv(conv, x, 1, &res, true);
            for (int side : {0, 1})
                for (int threads : {1, 2, 3}) {
                    INFO(h << "x" << wd << ", F(" << m << "x" << m << "), side " << side << ", " << threads
                           << " threads");
                    conv.set_winograd_side(side);
                    CHECK(max_abs_diff(run_conv(conv, x, threads, &res, true), one) == 0.0);
                }
            CHECK(close(one, im2col, winograd_tol<TestType>()));
            resnet::detail::ThreadPool loader(3, false);  // U written on 3 threads
            resnet::detail::WeightArena arena(&loader);
            const resnet::Conv2d<TestType> laid_out(w, b, 1, 1, 1, 1, algo, &arena);
            CHECK(max_abs_diff(run_conv(laid_out, x, 1, &res, true), one) == 0.0);
        }
    }
}

TEST_CASE("Conv2d algorithm choice: Auto picks direct or the Winograd tile by layer shape", "[layers]") {
    const auto conv = [](int channels, int stride, int pad, int dilation, Algo<float> algo = Algo<float>::Auto,
                         int groups = 1) {
        return resnet::Conv2d<float>(random_tensor<float>({channels, channels / groups, 3, 3}, 11),
                                     random_tensor<float>({channels}, 12), stride, pad, dilation, groups, algo);
    };
    CHECK(conv(8, 1, 1, 1).algorithm() == Algo<float>::Auto);
    CHECK(conv(8, 1, 1, 1).winograd_tile() == 4);
    CHECK(conv(128, 1, 1, 1).winograd_tile() == 4);
    CHECK(conv(129, 1, 1, 1).winograd_tile() == 2);
    CHECK(conv(512, 1, 1, 1).winograd_tile() == 2);
    CHECK(conv(513, 1, 1, 1).winograd_tile() == 0);
    CHECK(conv(8, 2, 1, 1).winograd_tile() == 0);  // stride 2
    CHECK(conv(8, 1, 2, 2).winograd_tile() == 0);  // dilation 2
    CHECK(conv(8, 1, 1, 1, Algo<float>::Im2col).winograd_tile() == 0);
    CHECK(conv(64, 1, 1, 1, Algo<float>::Auto, 2).winograd_tile() == 0);  // grouped: direct
    CHECK(conv(64, 1, 1, 1, Algo<float>::Auto, 2).direct());
    CHECK(conv(4, 2, 1, 1).direct());  // ≤ 4 input channels (the RGB stem): direct
    CHECK_FALSE(conv(4, 2, 1, 1).direct_channels());
    // strided, or wider than Winograd's 512: the channel-vector kernel where it is Auto's (AVX-512), else im2col
    const bool channels_auto = resnet::detail::kernels<float>().channels_auto;
    CHECK(conv(5, 2, 1, 1).direct_channels() == channels_auto);
    CHECK(conv(513, 1, 1, 1).direct_channels() == channels_auto);
    CHECK(conv(5, 2, 1, 1).direct() == channels_auto);
    CHECK_FALSE(conv(512, 1, 1, 1).direct_channels());
    CHECK_FALSE(conv(5, 2, 1, 1, Algo<float>::Im2col).direct());
    CHECK_FALSE(conv(64, 1, 1, 1, Algo<float>::Im2col, 2).direct());
    CHECK_THROWS_WITH(conv(8, 1, 0, 2).out_size(4), Catch::Contains("input side 4") && Catch::Contains("reach of 5"));
    CHECK(conv(8, 1, 0, 2).out_size(5) == 1);
    CHECK_THROWS_WITH(resnet::Conv2d<float>(random_tensor<float>({8, 8, 9, 9}, 14), random_tensor<float>({8}, 12), 1,
                                            4, 1, 1, Algo<float>::Direct),
                      Catch::Contains("direct") && Catch::Contains("9x9"));
    CHECK_THROWS_WITH(conv(64, 1, 1, 1, Algo<float>::Winograd4x4, 2), Catch::Contains("groups 2"));
    CHECK_THROWS_WITH(resnet::Conv2d<float>(random_tensor<float>({8, 2, 3, 3}, 15), random_tensor<float>({8}, 16), 1,
                                            1, 1, 3),
                      Catch::Contains("groups 3") && Catch::Contains("8 output channels"));
    CHECK(conv(300, 1, 1, 1, Algo<float>::Winograd4x4).winograd_tile() == 4);
    CHECK(conv(8, 1, 1, 1, Algo<float>::Winograd2x2).winograd_tile() == 2);
    CHECK_THROWS_WITH(conv(8, 2, 1, 1, Algo<float>::Winograd4x4),
                      Catch::Contains("Winograd") && Catch::Contains("stride 2"));
    const auto b = random_tensor<float>({8}, 12);
    CHECK_THROWS_WITH(resnet::Conv2d<float>(random_tensor<float>({8, 8, 1, 1}, 14), b, 1, 0, 1, 1, Algo<float>::Winograd2x2),
                      Catch::Contains("1x1"));
    // Auto runs exactly the path it chose, and copies share the transformed
    // weights and compute the same.
    const auto x = random_tensor<float>({1, 8, 9, 9}, 13);
    const auto auto3x3 = conv(8, 1, 1, 1);
    const auto copy = auto3x3;
    CHECK(max_abs_diff(run_conv(auto3x3, x, 2), run_conv(conv(8, 1, 1, 1, Algo<float>::Winograd4x4), x, 1)) == 0.0);
    CHECK(max_abs_diff(run_conv(copy, x, 1), run_conv(auto3x3, x, 1)) == 0.0);
}

namespace {
/// choose() with environment variable `name` set to `value`, restored after
/// (to "" if it was unset).
template <class F>
auto with_env(const char* name, const char* value, const F& choose) {
    struct Restore {
        const char* name;
        std::string value;
        ~Restore() { setenv(name, value.c_str(), 1); }
    };
    const char* saved = std::getenv(name);
    const Restore restore{name, saved ? saved : ""};
    setenv(name, value, 1);
    return choose();
}
}  // namespace

TEST_CASE("RESNET_HUGE_PAGES sets the page choice; an unknown setting is a one-line error", "[tensor]") {
    using resnet::detail::PageChoice;
    const auto choose = [](const char* value) {
        return with_env("RESNET_HUGE_PAGES", value, resnet::detail::choose_page_mode);
    };
    CHECK(choose("") == PageChoice::Huge);
    CHECK(choose("auto") == PageChoice::Huge);
    CHECK(choose("always") == PageChoice::HugeForGood);
    CHECK(choose("never") == PageChoice::Small);
    CHECK_THROWS_WITH(choose("sometimes"), Catch::Contains("RESNET_HUGE_PAGES=sometimes") &&
                                               Catch::Contains("expected auto, always or never"));
    // Measured choices: two slow huge pages start a trial, which decides.
    PageChoice slow_host, fast_small;
    for (PageChoice* c : {&slow_host, &fast_small}) {
        c->huge_took(std::chrono::microseconds(300));
        CHECK(c->mode() == PageChoice::Huge);
        c->huge_took(std::chrono::milliseconds(6));
        c->huge_took(std::chrono::milliseconds(5));
        CHECK(c->mode() == PageChoice::Trial);
    }
    slow_host.trial_took(std::chrono::milliseconds(4));
    fast_small.trial_took(std::chrono::milliseconds(1));
    CHECK(slow_host.mode() == PageChoice::HugeForGood);
    CHECK(fast_small.mode() == PageChoice::Small);
}

TEST_CASE("RESNET_ISA picks the float kernels; unknown or unsupported sets are one-line errors", "[layers]") {
    using resnet::detail::Isa;
    const auto choose = [](const char* value) { return with_env("RESNET_ISA", value, resnet::detail::choose_isa); };
    CHECK(choose("") == resnet::detail::best_isa());
    CHECK(choose("portable") == Isa::Portable);
    for (Isa isa : {Isa::Sse2, Isa::Avx2, Isa::Avx512}) {
        const std::string name = resnet::detail::isa_name(isa);
        INFO(name);
        if (resnet::detail::isa_supported(isa))
            CHECK(choose(name.c_str()) == isa);
        else
            CHECK_THROWS_WITH(choose(name.c_str()), Catch::Contains("RESNET_ISA=" + name) &&
                                                        Catch::Contains("not supported by this CPU"));
    }
    CHECK_THROWS_WITH(choose("avx1024"), Catch::Contains("RESNET_ISA=avx1024") && Catch::Contains("unknown") &&
                                             Catch::Contains("avx512"));
    // This process runs the set chosen at its first kernel call, and says which.
    CHECK(resnet::detail::kernels<float>().isa == resnet::detail::active_isa());
    CHECK_THAT(resnet::kernel_info(), Catch::StartsWith(resnet::detail::isa_name(resnet::detail::active_isa())));
    CHECK(resnet::detail::kernels<double>().isa == Isa::Portable);
}

TEMPLATE_TEST_CASE("BatchNorm folded into the conv matches PyTorch's conv → BN (eval)", "[layers]", float, double) {
    const double tol = std::is_same<TestType, float>::value ? 2e-5 : 1e-11;
    for (int i = 0; ops().contains("convbn" + std::to_string(i) + ".x"); ++i) {
        const std::string p = "convbn" + std::to_string(i) + ".";
        const auto params = op(p + "params");
        auto w = op<TestType>(p + "w");
        const auto conv = resnet::Conv2d<TestType>::fold_batchnorm(
            w, op<TestType>(p + "gamma"), op<TestType>(p + "beta"), op<TestType>(p + "mean"),
            op<TestType>(p + "var"), int(params[1]), int(params[0]) / 2);
        INFO("conv+bn case " << i);
        CHECK(close(run_conv(conv, op<TestType>(p + "x"), 2), op(p + "y"), tol));
    }
}

// Exact in float too: rounding to float preserves order, so the max of the
// rounded inputs is the rounded max.
TEMPLATE_TEST_CASE("MaxPool2d pads with -inf, as PyTorch does, or with 0, as Keras' ZeroPadding2D does", "[layers]",
                   float, double) {
    for (int i = 0; i < case_count("maxpool"); ++i) {
        const std::string p = "maxpool" + std::to_string(i) + ".";
        const auto x = op<TestType>(p + "x");
        const auto params = op(p + "params");
        const int h = int(x.dim(2)), w = int(x.dim(3));
        for (const bool zero_pad : {false, true}) {
            const auto ref = op<TestType>(p + (zero_pad ? "y_zero_pad" : "y"));
            const resnet::MaxPool2d pool{int(params[0]), int(params[1]), int(params[2]), zero_pad};
            Tensor<TestType> y({x.dim(0), x.dim(1), pool.out_size(h), pool.out_size(w)});
            resnet::detail::ThreadPool threads(2);
            pool.forward(x.data(), x.dim(0) * x.dim(1), h, w, y.data(), threads);
            INFO("maxpool case " << i << (zero_pad ? ", zero padding" : ""));
            CHECK(max_abs_diff(y, ref) == 0.0);
            // The inputs are shifted negative: padded windows differ between the two.
            const double top = *std::max_element(ref.begin(), ref.end());
            CHECK((zero_pad && params[2] > 0 ? top == 0.0 : top < 0.0));
        }
    }
    const resnet::MaxPool2d too_big{3, 2, 0};
    Tensor<TestType> x({1, 1, 2, 2}), y({1, 1, 1, 1});
    resnet::detail::ThreadPool threads(1);
    CHECK_THROWS_WITH(too_big.forward(x.data(), 1, 2, 2, y.data(), threads),
                      Catch::Contains("kernel 3 stride 2 pad 0 on a 2x2 input"));
}

TEST_CASE("Global average pool and Linear match PyTorch", "[layers]") {
    const auto x = op("avgpool.x"), ref = op("avgpool.y");
    Tensor<double> y({x.dim(0), x.dim(1), 1, 1});
    resnet::detail::ThreadPool threads(2);
    resnet::GlobalPool{}.forward(x.data(), x.dim(0) * x.dim(1), x.dim(2) * x.dim(3), y.data(), threads);
    CHECK(max_abs_diff(y, ref) < 1e-12);

    const auto linear = [&](auto zero, double tol) {  // 20 inputs: one vector and a scalar tail in float
        using T = decltype(zero);
        const resnet::Linear<T> fc(op<T>("linear.w"), op<T>("linear.b"));
        const auto in = op<T>("linear.x");
        Tensor<T> out({in.dim(0), fc.out_features()});
        fc.forward(in.data(), in.dim(0), out.data(), threads);
        CHECK(max_abs_diff(out, op("linear.y")) < tol);
        // fc is not square here, so a transposed weight could not even be applied.
        CHECK(fc.in_features() != fc.out_features());
        for (int n : {1, 3}) {  // blocks of outputs spread over the threads: the same bits
            resnet::detail::ThreadPool other(n);
            Tensor<T> again({in.dim(0), fc.out_features()});
            fc.forward(in.data(), in.dim(0), again.data(), other);
            CHECK(max_abs_diff(again, out) == 0.0);
        }
    };
    linear(0.0, 1e-12);
    linear(0.f, 1e-5);
}
