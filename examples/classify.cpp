// classify: the top classes of images (or .npy tensors) under a ResNet.
#include <nlohmann/json.hpp>

#include <cstdio>

#include "cli.hpp"

namespace {

const char* const kUsage = R"(usage: classify --weights FILE [--topk K] [--threads N] [--json]
                [--logits-out FILE.npy] [--resize S] [--crop C]
                [--interpolation bilinear|nearest] INPUT...

INPUT is an image (JPEG, PNG, BMP, GIF, TGA, PNM), preprocessed as the
weights' framework does with the preset in their metadata (torchvision's eval
transform, or Keras' load_img + preprocess_input; --resize, --crop (for Keras:
the target size) and --interpolation override it), or a .npy float32 tensor
3xHxW or Nx3xHxW that is already normalized.

Prints, per image, the top K classes (default 5): rank, probability, class
index, label. Probabilities are the head's: softmax, or sigmoid for a sigmoid
head. --json prints one JSON object per line instead:
  {"input": "...", "top": [{"index": i, "label": "...", "prob": p}, ...]}
--logits-out writes the logits (the last Dense layer's values before its
activation) of every image classified, in input order, as an N x num_classes
float32 .npy. An input that cannot be read gets one line on stderr, the others
are still classified, and the exit status is 1. --threads defaults to the CPUs
this process may use (affinity mask, cgroup quota); the first stderr line says
how many threads run.
)";

/// One image's top classes, as text lines or as one JSON line.
void report(const std::string& name, const std::vector<resnet::Prediction>& top,
            const std::vector<std::string>& labels, bool json) {
    if (json) {
        nlohmann::json entries = nlohmann::json::array();
        for (const auto& p : top)
            entries.push_back({{"index", p.index},
                               {"label", labels.empty() ? nlohmann::json() : nlohmann::json(labels[size_t(p.index)])},
                               {"prob", p.score}});
        std::printf("%s\n", nlohmann::json{{"input", name}, {"top", entries}}.dump().c_str());
        return;
    }
    std::printf("%s\n", name.c_str());
    for (size_t r = 0; r < top.size(); ++r) {
        const std::string label = labels.empty() ? "" : "  " + labels[size_t(top[r].index)];
        std::printf("%4zu  %.4f  %4lld%s\n", r + 1, top[r].score, static_cast<long long>(top[r].index), label.c_str());
    }
}

int classify(const cli::Args& args) {
    const auto model = cli::load_model("classify", args);
    if (model.num_classes() == 0)
        resnet::detail::fail(args.text("--weights", ""), ": a feature extractor without a classifier head "
                             "(use extract_features)");
    const auto pre = cli::preprocessing(model, args);
    const int k = args.integer("--topk", 5, 1, model.num_classes());
    const auto labels = resnet::class_labels(model.metadata(), model.num_classes());
    std::vector<float> logits_out;
    const int failed = cli::for_each_input("classify", args.inputs, [&](const std::string& input) {
        const resnet::Tensor<float> logits = model.forward(resnet::load_input<float>(input, pre));
        const resnet::Tensor<float> probs = resnet::activate(logits, model.head_activation() == resnet::Activation::Sigmoid
                                                                         ? resnet::Activation::Sigmoid
                                                                         : resnet::Activation::Softmax);
        for (int64_t n = 0; n < logits.dim(0); ++n) {
            const std::string name = logits.dim(0) == 1 ? input : input + "[" + std::to_string(n) + "]";
            report(name, resnet::top_k(probs, n, k), labels, args.has("--json"));
        }
        std::fflush(stdout);
        logits_out.insert(logits_out.end(), logits.begin(), logits.end());
    });
    if (args.has("--logits-out")) {
        const int64_t classes = model.num_classes(), rows = int64_t(logits_out.size()) / classes;
        resnet::write_npy(args.text("--logits-out", ""), resnet::Tensor<float>({rows, classes}, logits_out.data()));
    }
    return failed ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
    return cli::run("classify", kUsage, argc, argv,
                    {"--weights", "--topk", "--threads", "--logits-out", "--resize", "--crop", "--interpolation"}, {"--json", "--help"},
                    classify);
}
