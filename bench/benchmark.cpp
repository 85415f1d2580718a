// bench/benchmark: times ResNet<float>::forward() on one N×3×S×S batch.
//
//   benchmark (--weights FILE | --arch NAME --random) [--batch N] [--threads T]
//             [--iters K] [--warmup W] [--size S] [--input FILE] [--logits FILE] [--json]
//
// Runs W untimed forward() calls, then K timed ones, and reports the median,
// min and max ms per batch, ms per image, effective GFLOP/s (conv + fc
// multiply-adds × 2 at the median), peak RSS (VmHWM) and the time load_model()
// (or, with --random, random_model()) took, and the kernels chosen at run time
// (resnet::kernel_info(): instruction set and GEMM micro-tile; RESNET_ISA overrides). The input is N(0,1) noise from a
// fixed seed, or --input: raw float32 in native byte order (numpy's tofile()).
// --logits writes the last forward()'s N×classes logits the same way.
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
#include <stdexcept>
#include <string>
#include <vector>

namespace {

const char* const kUsage =
    "usage: benchmark (--weights FILE | --arch NAME --random) [--batch N] [--threads T] [--iters K]\n"
    "                 [--warmup W] [--size S] [--input FILE] [--logits FILE] [--json]\n"
    "  --batch N      images per forward() (default 1)\n"
    "  --threads T    threads per forward(); 0 = all cores (default 0)\n"
    "  --iters K      timed forward() calls (default 10)\n"
    "  --warmup W     untimed forward() calls first (default 2)\n"
    "  --size S       input height and width (default 224)\n"
    "  --input FILE   N*3*S*S raw float32 values instead of the seeded N(0,1) input\n"
    "  --logits FILE  write the logits of the last call as raw float32\n"
    "  --json         print one JSON object instead of text\n";

struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct Args {
    std::string weights, arch, input, logits;
    bool random = false, json = false;
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
    for (int i = 1; i < argc; ++i) {
        const std::string flag = argv[i];
        if (flag == "-h" || flag == "--help") {
            std::cout << kUsage;
            std::exit(0);
        }
        if (flag == "--random" || flag == "--json") {
            (flag == "--random" ? a.random : a.json) = true;
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

/// FLOPs of one forward() on one size×size image: 2 × the multiply-adds of
/// every convolution (downsample included) and of the Dense head. Bias, ReLU,
/// BatchNorm, pooling and residual adds are left out (under 0.1% for resnet50).
double forward_flops(const resnet::ResNet<float>& m, int size) {
    double flops = 0;
    const auto conv = [&](const resnet::Conv2d<float>& c, int in) {
        const double out = c.out_size(in);
        flops += 2.0 * c.out_channels() * (c.in_channels() / c.groups()) * c.kernel() * c.kernel() * out * out;
        return c.out_size(in);
    };
    int h = m.stem().pool.out_size(conv(m.stem().conv, size));
    for (const auto& stage : m.stages())
        for (const auto& block : stage) {
            if (block.downsample()) conv(*block.downsample(), h);
            for (const auto& c : block.convs()) h = conv(c, h);
        }
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
    if (a.json) {
        std::cout << r.dump() << '\n';
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
