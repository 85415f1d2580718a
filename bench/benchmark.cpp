// bench/benchmark: times ResNet<float>::forward() on one N×3×S×S batch.
//
//   benchmark (--weights FILE | --arch NAME --random) [--batch N] [--threads T]
//             [--iters K] [--warmup W] [--size S] [--input FILE] [--logits FILE] [--profile] [--layers] [--peak]
//             [--json] [--serve]
//
// Runs W untimed forward() calls, then K timed ones, and reports the median,
// min and max ms per batch, ms per image, effective GFLOP/s (conv + fc
// multiply-adds × 2 at the median), peak RSS (VmHWM) and the time load_model()
// (or, with --random, random_model()) took, and the kernels chosen at run time
// (resnet::kernel_info(): instruction set and GEMM micro-tile; RESNET_ISA overrides). The input is N(0,1) noise from a
// fixed seed, or --input: raw float32 in native byte order (numpy's tofile()).
// --logits writes the last forward()'s N×classes logits the same way.
// --profile then times each layer inside K more forward() calls (see
// profile_layers); --layers each convolution alone (see time_layers);
// --peak each instruction set's FMA peak and micro-kernel rate (see peaks).
// --serve keeps the warm model for bench/compare.py --paired (see serve).
// Exit status: 0 success, 2 bad arguments, 1 any other failure.
#include <resnet/resnet.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <limits>
#include <map>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#if RESNET_X86_DISPATCH
#include <immintrin.h>
#endif

namespace {

const char* const kUsage =
    "usage: benchmark (--weights FILE | --arch NAME --random) [--batch N] [--threads T] [--iters K]\n"
    "                 [--warmup W] [--size S] [--input FILE] [--logits FILE] [--profile] [--layers] [--peak]\n"
    "                 [--json] [--serve]\n"
    "  --batch N      images per forward() (default 1)\n"
    "  --threads T    threads per forward(); 0 = all cores (default 0)\n"
    "  --iters K      timed forward() calls (default 10)\n"
    "  --warmup W     untimed forward() calls first (default 2)\n"
    "  --size S       input height and width (default 224)\n"
    "  --input FILE   N*3*S*S raw float32 values instead of the seeded N(0,1) input\n"
    "  --logits FILE  write the logits of the last call as raw float32\n"
    "  --profile      then time each layer inside K more forward() calls (median ms per batch)\n"
    "  --layers       then time each convolution alone, batch 1, W warm-up + K timed calls\n"
    "  --peak         then, for each instruction set this CPU runs, one thread's GFLOP/s on a loop of\n"
    "                 register-only FMAs and on the GEMM micro-kernel with its operands in L1\n"
    "  --json         print one JSON object instead of text\n"
    "  --serve        after the warm-up, print 'ready'; then for each count n read from stdin,\n"
    "                 time n forward() calls and print their ms on one line (no report)\n";

struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct Args {
    std::string weights, arch, input, logits;
    bool random = false, json = false, layers = false, profile = false, peak = false, serve = false;
    int batch = 1, threads = 0, iters = 10, warmup = 2, size = 224;
};

/// The whole of `text` as an integer in [min, INT_MAX], else UsageError naming `flag`.
int parse_int(const std::string& flag, const std::string& text, int min) {
    size_t used = 0;
    long long v = 0;
    try {
        v = std::stoll(text, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (text.empty() || used != text.size() || v < min || v > INT_MAX)
        throw UsageError(flag + " expects an integer >= " + std::to_string(min) + ", got '" + text + "'");
    return int(v);
}

Args parse_args(int argc, char** argv) {
    Args a;
    const std::map<std::string, std::function<void(const std::string&)>> valued = {
        {"--weights", [&](const std::string& v) { a.weights = v; }},
        {"--arch", [&](const std::string& v) { a.arch = v; }},
        {"--input", [&](const std::string& v) { a.input = v; }},
        {"--logits", [&](const std::string& v) { a.logits = v; }},
        {"--batch", [&](const std::string& v) { a.batch = parse_int("--batch", v, 1); }},
        {"--threads", [&](const std::string& v) { a.threads = parse_int("--threads", v, 0); }},
        {"--iters", [&](const std::string& v) { a.iters = parse_int("--iters", v, 1); }},
        {"--warmup", [&](const std::string& v) { a.warmup = parse_int("--warmup", v, 0); }},
        {"--size", [&](const std::string& v) { a.size = parse_int("--size", v, 1); }},
    };
    const std::map<std::string, bool*> switches = {
        {"--random", &a.random}, {"--json", &a.json}, {"--layers", &a.layers}, {"--profile", &a.profile},
        {"--peak", &a.peak}, {"--serve", &a.serve}};
    for (int i = 1; i < argc; ++i) {
        const std::string flag = argv[i];
        if (flag == "-h" || flag == "--help") {
            std::cout << kUsage;
            std::exit(0);
        }
        if (switches.count(flag)) {
            *switches.at(flag) = true;
            continue;
        }
        const auto it = valued.find(flag);
        if (it == valued.end()) throw UsageError("unknown argument '" + flag + "'");
        if (i + 1 == argc) throw UsageError(flag + " needs a value");
        it->second(argv[++i]);
    }
    if (a.random == !a.weights.empty())
        throw UsageError(a.random ? "give --weights FILE or --random, not both"
                                  : "no model: give --weights FILE or --arch NAME --random");
    if (a.random && a.arch.empty()) throw UsageError("--random needs --arch NAME (e.g. resnet50)");
    return a;
}

/// Calls fn(name, conv, in) for every convolution of `m` in network order,
/// a block's downsample first, with `in` the side of its input for a
/// size×size image; names as torchvision's ("conv1", "layer1.0.conv2").
template <class F>
void for_each_conv(const resnet::ResNet<float>& m, int size, const F& fn) {
    fn("conv1", m.stem().conv, size);
    int h = m.stem().pool.out_size(m.stem().conv.out_size(size));
    for (size_t s = 0; s < m.stages().size(); ++s)
        for (size_t b = 0; b < m.stages()[s].size(); ++b) {
            const auto& block = m.stages()[s][b];
            const std::string prefix = "layer" + std::to_string(s + 1) + "." + std::to_string(b) + ".";
            if (block.downsample()) fn(prefix + "downsample.0", *block.downsample(), h);
            int in = h;
            for (size_t i = 0; i < block.convs().size(); ++i) {
                fn(prefix + "conv" + std::to_string(i + 1), block.convs()[i], in);
                in = block.convs()[i].out_size(in);
            }
            h = block.out_size(h);
        }
}

/// 2 × the multiply-adds of convolution c on an in×in input.
double conv_flops(const resnet::Conv2d<float>& c, int in) {
    const double out = c.out_size(in);
    return 2.0 * c.out_channels() * (c.in_channels() / c.groups()) * c.kernel() * c.kernel() * out * out;
}

/// FLOPs of one forward() on one size×size image: 2 × the multiply-adds of
/// every convolution (downsample included) and of the Dense head. Bias, ReLU,
/// BatchNorm, pooling and residual adds are left out (under 0.1% for resnet50).
double forward_flops(const resnet::ResNet<float>& m, int size) {
    double flops = 0;
    for_each_conv(m, size, [&](const std::string&, const resnet::Conv2d<float>& c, int in) { flops += conv_flops(c, in); });
    for (const auto& d : m.head().dense) flops += 2.0 * d.linear.in_features() * d.linear.out_features();
    return flops;
}

/// This process's peak resident set (VmHWM) in MiB; NaN where /proc has none.
double peak_rss_mib() {
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);)
        if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
    return std::numeric_limits<double>::quiet_NaN();
}

resnet::Tensor<float> make_input(const Args& a) {
    resnet::Tensor<float> x({a.batch, 3, a.size, a.size});
    if (a.input.empty()) {
        std::mt19937_64 rng(0);
        std::normal_distribution<float> normal;
        for (float& v : x) v = normal(rng);
        return x;
    }
    std::ifstream f(a.input, std::ios::binary);
    if (!f) throw std::runtime_error("cannot open --input " + a.input);
    const std::streamsize bytes = std::streamsize(x.size() * sizeof(float));
    f.read(reinterpret_cast<char*>(x.data()), bytes);
    if (f.gcount() != bytes || f.peek() != std::char_traits<char>::eof())
        throw std::runtime_error("--input " + a.input + ": expected exactly " + std::to_string(x.size()) +
                                 " float32 values (" + resnet::shape_str(x.shape()) + ")");
    return x;
}

void write_raw(const std::string& path, const resnet::Tensor<float>& t) {
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(t.data()), std::streamsize(t.size() * sizeof(float)));
    if (!f) throw std::runtime_error("cannot write --logits " + path);
}

double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/// How forward() computes convolution c on an in×in input.
std::string conv_path(const resnet::Conv2d<float>& c, int in) {
    if (c.winograd_tile()) return "winograd " + std::to_string(c.winograd_tile()) + "x" + std::to_string(c.winograd_tile());
    if (c.direct_channels()) return "channel-vector direct";
    if (c.direct()) return "direct";
    return c.workspace_size(in, in) ? "gemm, im2col" : "gemm, in place";
}

/// --profile: `a.iters` timed forward() calls of x after the benchmark's
/// (ResNet::forward(x, timings)), one row per layer in network order: its
/// median ms per batch inside the network.
nlohmann::json profile_layers(const resnet::ResNet<float>& m, const resnet::Tensor<float>& x, const Args& a) {
    std::vector<resnet::LayerTiming> timings;
    std::vector<std::vector<double>> ms;
    for (int i = 0; i < a.iters; ++i) {
        m.forward(x, timings);
        ms.resize(timings.size());
        for (size_t l = 0; l < timings.size(); ++l) ms[l].push_back(timings[l].ms);
    }
    nlohmann::json rows = nlohmann::json::array();
    for (size_t l = 0; l < timings.size(); ++l) rows.push_back({{"name", timings[l].name}, {"ms", median(ms[l])}});
    return rows;
}

void print_profile(const nlohmann::json& rows, int iters) {
    double sum = 0;
    for (const auto& r : rows) sum += r["ms"].get<double>();
    std::cout << "  profile     each layer inside the network, median of " << iters << " calls:\n";
    for (const auto& r : rows)
        std::cout << "    " << std::left << std::setw(22) << r["name"].get<std::string>() << std::right
                  << std::setprecision(3) << std::setw(8) << r["ms"].get<double>() << " ms " << std::setprecision(1)
                  << std::setw(5) << 100 * r["ms"].get<double>() / sum << " %\n";
    std::cout << "    sum " << std::setprecision(2) << sum << " ms\n";
}

/// --layers: each convolution of `m` alone, batch 1, on N(0,1) noise of the
/// shape it sees in the network, with ReLU and no residual (a block's last
/// convolution also adds one in the network): `a.warmup` untimed and
/// `a.iters` timed calls each, on the model's threads. Weights and input stay
/// in cache between calls, unlike in a forward(), so the sum is a floor,
/// not a forward's time. One row per convolution: its lower-quartile ms.
nlohmann::json time_layers(const resnet::ResNet<float>& m, const Args& a) {
    resnet::detail::ThreadPool pool(m.threads());
    std::mt19937_64 rng(1);
    std::normal_distribution<float> normal;
    nlohmann::json rows = nlohmann::json::array();
    for_each_conv(m, a.size, [&](const std::string& name, const resnet::Conv2d<float>& c, int in) {
        const int out = c.out_size(in);
        std::vector<float> x(size_t(c.in_channels()) * in * in), y(size_t(c.out_channels()) * out * out);
        std::vector<float> col(size_t(c.workspace_size(in, in)));
        for (float& v : x) v = normal(rng);
        std::vector<double> ms;
        for (int i = 0; i < a.warmup + a.iters; ++i) {
            const auto t0 = std::chrono::steady_clock::now();
            c.forward(x.data(), 1, in, in, y.data(), {nullptr, true}, col.data(), pool);
            if (i >= a.warmup) ms.push_back(ms_since(t0));
        }
        std::sort(ms.begin(), ms.end());
        const double q = ms[ms.size() / 4];
        rows.push_back({{"name", name},
                        {"in_channels", c.in_channels()},
                        {"out_channels", c.out_channels()},
                        {"kernel", c.kernel()},
                        {"stride", c.stride()},
                        {"groups", c.groups()},
                        {"input", in},
                        {"path", conv_path(c, in)},
                        {"ms", q},
                        {"gflops", conv_flops(c, in) * 1e-6 / q}});
    });
    return rows;
}

void print_layers(const nlohmann::json& rows, int iters) {
    double sum = 0;
    std::cout << "  layers      each alone, lower quartile of " << iters << " calls:\n";
    for (const auto& r : rows) {
        std::ostringstream shape;
        shape << r["in_channels"].get<int>() << "->" << r["out_channels"].get<int>() << ' ' << r["kernel"].get<int>()
              << 'x' << r["kernel"].get<int>() << " s" << r["stride"].get<int>() << " g" << r["groups"].get<int>()
              << ' ' << r["input"].get<int>() << '^' << 2;
        std::cout << "    " << std::left << std::setw(22) << r["name"].get<std::string>() << std::setw(26) << shape.str()
                  << std::setw(16) << r["path"].get<std::string>() << std::right << std::setprecision(3)
                  << std::setw(8) << r["ms"].get<double>() << " ms " << std::setprecision(1) << std::setw(7)
                  << r["gflops"].get<double>() << " GFLOP/s\n";
        sum += r["ms"].get<double>();
    }
    std::cout << "    sum " << std::setprecision(2) << sum << " ms\n";
}

/// GFLOP/s of `call` (which does `flops` each time) on this thread: the
/// best of 9 runs, each of as many calls as take ≥ 10 ms.
template <class F>
double best_rate(double flops, const F& call) {
    const auto time_calls = [&](int calls) {
        const auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < calls; ++i) call();
        return ms_since(t0);
    };
    int calls = 1;
    while (time_calls(calls) < 10) calls *= 2;
    double best = std::numeric_limits<double>::infinity();
    for (int run = 0; run < 9; ++run) best = std::min(best, time_calls(calls));
    return flops * calls / (best * 1e6);
}

#if RESNET_X86_DISPATCH
/// The FMA peak: `steps` passes over kChains accumulators held in registers,
/// each a·m + b (under SSE2, which has no FMA, a multiply and an add), no
/// memory operand. 12 chains cover 4 cycles of latency at 2 FMAs a cycle
/// and leave the two constants room in 16 registers. Returns a sum of the
/// accumulators so that the loop is not optimized away.
constexpr int kChains = 12;
#define RESNET_BENCH_FMA_LOOP(name, tgt, Vec, lanes, set1, madd, add, store)     \
    __attribute__((target(tgt))) float name(int64_t steps) {                     \
        Vec acc[kChains];                                                         \
        for (int i = 0; i < kChains; ++i) acc[i] = set1(float(i));                \
        const Vec m = set1(0.999999f), b = set1(1e-6f);                           \
        for (int64_t s = 0; s < steps; ++s)                                       \
            _Pragma("GCC unroll 12") for (int i = 0; i < kChains; ++i) acc[i] = madd(acc[i], m, b); \
        for (int i = 1; i < kChains; ++i) acc[0] = add(acc[0], acc[i]);           \
        float out[lanes];                                                         \
        store(out, acc[0]);                                                       \
        return out[0];                                                            \
    }
#define RESNET_BENCH_SSE2_MADD(a, m, b) _mm_add_ps(_mm_mul_ps(a, m), b)
RESNET_BENCH_FMA_LOOP(fma_loop_sse2, "sse2", __m128, 4, _mm_set1_ps, RESNET_BENCH_SSE2_MADD, _mm_add_ps, _mm_storeu_ps)
RESNET_BENCH_FMA_LOOP(fma_loop_avx2, "avx2,fma", __m256, 8, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps,
                      _mm256_storeu_ps)
RESNET_BENCH_FMA_LOOP(fma_loop_avx512, "avx512f", __m512, 16, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps,
                      _mm512_storeu_ps)
#undef RESNET_BENCH_FMA_LOOP
#undef RESNET_BENCH_SSE2_MADD

/// The micro-kernel's rate where memory cannot hold it back: one panel of
/// A × one strip of B, k = the set's depth, both a few KB and in L1, summed
/// into the same tile of C on every call (as k blocks after the first are).
double tile_gflops(const resnet::detail::Kernels<float>& kern) {
    const int64_t k = kern.depth, S = kern.strip();
    std::vector<float> a(size_t(k * kern.rows), 0.5f), b(size_t(k * S), 0.25f), c(size_t(kern.rows * S));
    const resnet::detail::TileArgs<float> t{k, a.data(), b.data(), S, kern.vectors, c.data(), S, kern.rows, int(S),
                                            true, nullptr, nullptr, false};
    return best_rate(2.0 * k * kern.rows * S, [&] { kern.tile(t); });
}

/// --peak: for each instruction set of the x86 kernels this CPU runs, one
/// thread's GFLOP/s on the FMA loop above (the peak the README's fractions
/// refer to) and on the set's GEMM micro-kernel (tile_gflops). The network
/// runs the set kernel_info() names.
nlohmann::json peaks() {
    using resnet::detail::Isa;
    struct Set {
        Isa isa;
        float (*loop)(int64_t);
    };
    const Set sets[] = {{Isa::Sse2, fma_loop_sse2}, {Isa::Avx2, fma_loop_avx2}, {Isa::Avx512, fma_loop_avx512}};
    nlohmann::json rows = nlohmann::json::array();
    for (const Set& set : sets) {
        if (!resnet::detail::isa_supported(set.isa)) continue;
        const auto kern = resnet::detail::kernels_for<float>(set.isa);
        constexpr int64_t kSteps = 1 << 16;
        volatile float sink = 0;
        const double fma = best_rate(2.0 * kern.lanes * kChains * kSteps, [&] { sink = sink + set.loop(kSteps); });
        rows.push_back({{"isa", resnet::detail::isa_name(set.isa)},
                        {"fma_gflops", fma},
                        {"tile", std::to_string(kern.rows) + "x" + std::to_string(kern.strip())},
                        {"tile_gflops", tile_gflops(kern)}});
    }
    return rows;
}
#else
nlohmann::json peaks() { return nlohmann::json::array(); }
#endif

void print_peaks(const nlohmann::json& rows) {
    std::cout << "  peak        one thread, best of 9 runs:\n";
    if (rows.empty()) std::cout << "    (portable kernels only: no per-set loop in this build)\n";
    for (const auto& r : rows) {
        const double fma = r["fma_gflops"].get<double>(), tile = r["tile_gflops"].get<double>();
        std::cout << "    " << std::left << std::setw(8) << r["isa"].get<std::string>() << std::right
                  << std::setprecision(1) << "FMA loop " << std::setw(6) << fma << " GFLOP/s, micro-kernel "
                  << r["tile"].get<std::string>() << " in L1 " << std::setw(6) << tile << " (" << std::setprecision(0)
                  << 100 * tile / fma << "%)\n";
    }
}

/// --serve: for each count n read from stdin until it ends, n timed
/// forward() calls of x, their ms on one line. bench/compare.py --paired
/// keeps one such process per engine and alternates turns of a few calls
/// between them, so that both meet the same state of a shared host.
int serve(resnet::ResNet<float>& model, const resnet::Tensor<float>& x) {
    std::cout << "ready" << std::endl;
    for (int n; std::cin >> n;) {
        if (n < 1) throw std::runtime_error("--serve: expected a count >= 1 of forward() calls, got " +
                                            std::to_string(n));
        for (int i = 0; i < n; ++i) {
            const auto t0 = std::chrono::steady_clock::now();
            model.forward(x);
            std::cout << ms_since(t0) << (i + 1 < n ? ' ' : '\n');
        }
        std::cout.flush();
    }
    if (!std::cin.eof()) throw std::runtime_error("--serve: expected a count of forward() calls on each line of stdin");
    return 0;
}

int run(const Args& a) {
    resnet::RunOptions run_options;
    run_options.threads = a.threads;
    const auto load_start = std::chrono::steady_clock::now();
    resnet::ResNet<float> model = [&] {
        if (a.random) return resnet::random_model<float>(a.arch, 1000, 0, run_options);
        resnet::LoadOptions options;
        options.arch = a.arch;
        options.run = run_options;
        return resnet::load_model<float>(a.weights, options);
    }();
    const double load_ms = ms_since(load_start);

    const resnet::Tensor<float> x = make_input(a);
    resnet::Tensor<float> logits;
    for (int i = 0; i < a.warmup; ++i) logits = model.forward(x);
    if (a.serve) return serve(model, x);
    std::vector<double> ms;
    for (int i = 0; i < a.iters; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        logits = model.forward(x);
        ms.push_back(ms_since(t0));
    }
    if (!a.logits.empty()) write_raw(a.logits, logits);

    const double med = median(ms), gflop = forward_flops(model, a.size) * 1e-9;
    const double min = *std::min_element(ms.begin(), ms.end()), max = *std::max_element(ms.begin(), ms.end());
    const nlohmann::json r = {
        {"engine", "resnet"},
        {"arch", model.architecture().name},
        {"source", a.random ? "random" : a.weights},
        {"size", a.size},
        {"batch", a.batch},
        {"threads", model.threads()},
        {"iters", a.iters},
        {"warmup", a.warmup},
        {"median_ms", med},
        {"min_ms", min},
        {"max_ms", max},
        {"ms_per_image", med / a.batch},
        {"gflop_per_image", gflop},
        {"gflops", gflop * a.batch / (med * 1e-3)},
        {"peak_rss_mib", peak_rss_mib()},
        {"load_ms", load_ms},
        {"kernels", resnet::kernel_info()},
    };
    const nlohmann::json profile = a.profile ? profile_layers(model, x, a) : nlohmann::json();
    const nlohmann::json layers = a.layers ? time_layers(model, a) : nlohmann::json();
    const nlohmann::json peak = a.peak ? peaks() : nlohmann::json();
    if (a.json) {
        nlohmann::json out = r;
        if (a.profile) out["profile"] = profile;
        if (a.layers) out["layers"] = layers;
        if (a.peak) out["peak"] = peak;
        std::cout << out.dump() << '\n';
        return 0;
    }
    std::cout << std::fixed << std::setprecision(1) << r["arch"].get<std::string>() << ' ' << a.size << 'x'
              << a.size << ", batch " << a.batch << ", " << model.threads() << " thread(s), " << a.iters
              << " timed calls after " << a.warmup << " warm-up\n"
              << "  ms/batch    median " << med << "  min " << min << "  max " << max << '\n'
              << "  ms/image    " << med / a.batch << '\n'
              << "  GFLOP/s     " << r["gflops"].get<double>() << "  (" << std::setprecision(2) << gflop
              << " GFLOP/image)\n"
              << std::setprecision(1) << "  peak RSS    " << r["peak_rss_mib"].get<double>() << " MiB\n"
              << "  " << (a.random ? "build" : "load ") << "       " << load_ms << " ms\n"
              << "  kernels     " << resnet::kernel_info() << '\n';
    if (a.profile) print_profile(profile, a.iters);
    if (a.layers) print_layers(layers, a.iters);
    if (a.peak) print_peaks(peak);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Args args;
    try {
        args = parse_args(argc, argv);
    } catch (const UsageError& e) {
        std::cerr << "benchmark: error: " << e.what() << " (see --help)\n";
        return 2;
    }
    try {
        return run(args);
    } catch (const std::exception& e) {
        std::cerr << "benchmark: error: " << e.what() << '\n';
        return 1;
    }
}
