// classify: the top classes of images (or .npy tensors) under a ResNet, from a
// few files to a whole photo collection (streamed, pipelined, resumable, shardable).
#include <resnet/inputs.hpp>
#include <resnet/pipeline.hpp>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "cli.hpp"
#include "jsonl.hpp"
#include "progress.hpp"

namespace {

using Json = nlohmann::ordered_json;  // keys in the order written

const char* const kUsage = R"(usage: classify --weights FILE [--topk K] [--json | --jsonl FILE [--resume]]
                [--list FILE|-] [--shard I/N] [--progress]
                [--threads N] [--streams S] [--loaders L]
                [--logits-out FILE.npy] [--resize S] [--crop C]
                [--interpolation bilinear|nearest] [INPUT...]

INPUT is an image (JPEG, PNG, BMP, GIF, TGA, PNM), preprocessed as the
weights' framework does with the preset in their metadata (torchvision's eval
transform, or Keras' load_img + preprocess_input; --resize, --crop (for Keras:
the target size) and --interpolation override it), a .npy float32 tensor
3xHxW or Nx3xHxW that is already normalized, or a directory: every image file
under it (by extension, recursively), in sorted order. --list FILE adds one
path per line of FILE (- reads standard input), after the INPUTs.

Prints, per image and in input order, the top K classes (default 5): rank,
probability, class index, label. Probabilities are the head's: softmax, or
sigmoid for a sigmoid head. --json prints one JSON object per line instead:
  {"input": "...", "top": [{"index": i, "label": "...", "prob": p}, ...]}
and an input that cannot be read gets {"input": "...", "error": "..."}.
--jsonl FILE appends those lines to FILE, one flushed line per input as soon
as it is known; FILE must be empty or new unless --resume is given, which
skips the inputs FILE has a result line for and retries those it has only
error lines for, appending the retry's line after them (a partial last line
left by a killed run is dropped first). In "input", each byte of a name that
is not part of valid UTF-8 is written as \udcXX (XX: the byte), as Python's
surrogateescape does: os.fsencode(json.loads(line)["input"]) gives the
name's bytes back. --shard I/N keeps inputs I, I+N, I+2N, ... of
the full list (0 <= I < N): N machines running shards 0..N-1 share the work.
--progress shows done/total, images/s, ETA and errors on stderr (the default
when stderr is a terminal).

Decoding and preprocessing run on L loader threads while S forwards of N/S
threads each are in flight (N: --threads, default the CPUs this process may
use: affinity mask, cgroup quota; S and L are chosen from N and the number of
inputs unless given). The first stderr line says how many threads run.
--logits-out writes the logits (the last Dense layer's values before its
activation) of every image classified, in input order, as an N x num_classes
float32 .npy (held in memory until the end). An input that cannot be read
gets one line on stderr, the others are still classified, and the exit
status is 1.
)";

/// How the inputs are spread over the cores.
struct Plan {
    int streams = 1;    ///< forwards in flight
    int threads = 1;    ///< threads of each forward
    int loaders = 1;    ///< threads decoding and preprocessing
    size_t window = 1;  ///< inputs read ahead of the output, at most
};

/// For `cores` cores and `count` inputs: one forward on all cores for a single
/// input; for more, several forwards of fewer threads each (one thread each
/// up to 4 cores, 2 up to 16, 4 beyond): on 2 cores, 2 forwards of 1 thread
/// took 18% less CPU time than 1 of 2 threads for the same 20 photos (no
/// time spent waiting for a forward's other thread). Loaders: half the cores,
/// at least 2; a loader that is ahead waits for the window and costs nothing.
/// --streams and --loaders override.
Plan plan(const cli::Args& args, int cores, size_t count) {
    Plan p;
    const int per_stream = cores <= 4 ? 1 : cores <= 16 ? 2 : 4;
    const int automatic = int(std::min<size_t>(size_t(std::max(1, cores / per_stream)), std::max<size_t>(count, 1)));
    p.streams = args.integer("--streams", automatic, 1, 1024);
    p.threads = std::max(1, cores / p.streams);
    p.loaders = args.integer("--loaders", std::max(2, cores / 2), 1, 1024);
    p.window = size_t(4 * p.streams + 2 * p.loaders);
    return p;
}

/// The inputs as named on the command line and in --list, directories
/// replaced by the image files under them (a directory without any stays, to
/// be reported), then --shard's share of them.
std::vector<std::string> collect_inputs(const cli::Args& args) {
    std::vector<std::string> named = args.inputs;
    if (args.has("--list")) {
        const std::string list = args.text("--list", "");
        std::ifstream file;
        if (list != "-") {
            file.open(list);
            if (!file) resnet::detail::fail("--list ", list, ": cannot open: ", std::strerror(errno));
        }
        const auto listed = resnet::read_list(list == "-" ? std::cin : file);
        if (listed.empty()) resnet::detail::fail("--list ", list, ": names no files");
        named.insert(named.end(), listed.begin(), listed.end());
    }
    std::vector<std::string> inputs;
    for (const auto& name : named) {
        std::error_code ec;
        const auto files = std::filesystem::is_directory(name, ec) ? resnet::image_files(name) : std::vector<std::string>();
        if (files.empty()) inputs.push_back(name);
        inputs.insert(inputs.end(), files.begin(), files.end());
    }
    return args.has("--shard") ? resnet::shard(inputs, resnet::parse_shard(args.text("--shard", ""))) : inputs;
}

/// Errors as "<input>: <reason>" carry the input once, in front.
std::string reason(const std::string& input, std::exception_ptr error) {
    try {
        std::rethrow_exception(error);
    } catch (const std::exception& e) {  // resnet::Error, or bad_alloc on a huge input
        const std::string what = e.what();
        return what.rfind(input + ": ", 0) == 0 ? what.substr(input.size() + 2) : what;
    } catch (...) {
        return "unknown error";
    }
}

/// One image's top classes, as text lines or as one JSON line.
std::string report(const std::string& name, const std::vector<resnet::Prediction>& top,
                   const std::vector<std::string>& labels, bool json) {
    if (json) {
        Json entries = Json::array();
        for (const auto& p : top)
            entries.push_back({{"index", p.index},
                               {"label", labels.empty() ? Json() : Json(labels[size_t(p.index)])},
                               {"prob", p.score}});
        return cli::json_line(name, Json{{"top", entries}});
    }
    std::string text = name + "\n";
    for (size_t r = 0; r < top.size(); ++r) {
        char line[64];
        std::snprintf(line, sizeof line, "%4zu  %.4f  %4lld", r + 1, top[r].score, static_cast<long long>(top[r].index));
        text += line + (labels.empty() ? "" : "  " + labels[size_t(top[r].index)]) + "\n";
    }
    return text;
}

int classify(const cli::Args& args) {
    if (args.has("--resume") && !args.has("--jsonl")) resnet::detail::fail("--resume needs --jsonl FILE");
    if (args.has("--json") && args.has("--jsonl")) resnet::detail::fail("--json and --jsonl: choose one");
    std::vector<std::string> inputs = collect_inputs(args);
    const bool json = args.has("--json") || args.has("--jsonl");
    if (args.has("--resume")) {
        const auto answered = cli::answered_inputs(args.text("--jsonl", ""));
        const size_t before = inputs.size();
        inputs.erase(std::remove_if(inputs.begin(), inputs.end(),
                                    [&](const std::string& in) {
                                        return answered.results.count(in) || answered.results.count(in + "[0]");
                                    }),
                     inputs.end());
        const auto retried = std::count_if(inputs.begin(), inputs.end(),
                                           [&](const std::string& in) { return answered.errors.count(in) > 0; });
        std::cerr << "classify: resuming: " << before - inputs.size() << " of " << before << " inputs already in "
                  << args.text("--jsonl", "") << ", retrying " << retried << " that failed before\n";
    }
    cli::LineWriter out = args.has("--jsonl") ? cli::LineWriter::append_to(args.text("--jsonl", ""), args.has("--resume"))
                                              : cli::LineWriter(stdout, "standard output");

    auto model = cli::load_model(args);
    if (model.num_classes() == 0)
        resnet::detail::fail(args.text("--weights", ""), ": a feature extractor without a classifier head "
                             "(use extract_features)");
    const auto pre = cli::preprocessing(model, args);
    const int k = args.integer("--topk", 5, 1, model.num_classes());
    const auto labels = resnet::class_labels(model.metadata(), model.num_classes());
    const Plan p = plan(args, model.threads(), inputs.size());
    model.set_threads(p.threads);
    std::cerr << "classify: " << p.streams * p.threads << " threads: " << p.streams << " forward(s) of " << p.threads
              << ", " << p.loaders << " loader(s)\n";
    const auto activation = model.head_activation() == resnet::Activation::Sigmoid ? resnet::Activation::Sigmoid
                                                                                    : resnet::Activation::Softmax;

    cli::Progress progress(inputs.size(), args.has("--progress") || isatty(STDERR_FILENO), isatty(STDERR_FILENO));
    std::vector<float> logits_out;
    int failed = 0;
    resnet::ordered_pipeline<resnet::Tensor<float>, resnet::Tensor<float>>(
        inputs.size(),
        [&](size_t i) {
            if (std::filesystem::is_directory(inputs[i])) {
                std::string names;
                for (const auto& ext : resnet::image_extensions()) names += (names.empty() ? "*" : ", *") + ext;
                resnet::detail::fail(inputs[i], ": directory without image files (none named ", names, " under it)");
            }
            return resnet::load_input<float>(inputs[i], pre);
        },
        [&](size_t, resnet::Tensor<float> x) { return model.forward(x); },
        [&](size_t i, resnet::Outcome<resnet::Tensor<float>> result) {
            const std::string& input = inputs[i];
            progress.clear();
            if (result.error) {
                const std::string why = reason(input, result.error);
                std::cerr << "classify: error: " << input << ": " << why << '\n';
                if (json) out.write(cli::json_line(input, Json{{"error", why}}));
                ++failed;
            } else {
                const resnet::Tensor<float>& logits = *result.value;
                const resnet::Tensor<float> probs = resnet::activate(logits, activation);
                std::string text;
                for (int64_t n = 0; n < logits.dim(0); ++n) {
                    const std::string name = logits.dim(0) == 1 ? input : input + "[" + std::to_string(n) + "]";
                    text += report(name, resnet::top_k(probs, n, k), labels, json);
                }
                out.write(text);
                if (args.has("--logits-out")) logits_out.insert(logits_out.end(), logits.begin(), logits.end());
            }
            progress.step(bool(result.error));
        },
        {p.loaders, p.streams, p.window});
    progress.finish();
    if (args.has("--logits-out")) {
        const int64_t classes = model.num_classes(), rows = int64_t(logits_out.size()) / classes;
        resnet::write_npy(args.text("--logits-out", ""), resnet::Tensor<float>({rows, classes}, logits_out.data()));
    }
    return failed ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
    return cli::run("classify", kUsage, argc, argv,
                    {"--weights", "--topk", "--threads", "--streams", "--loaders", "--logits-out", "--resize", "--crop",
                     "--interpolation", "--jsonl", "--list", "--shard"},
                    {"--json", "--resume", "--progress", "--help"}, classify);
}
