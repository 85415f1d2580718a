// Keras ResNets against a Keras-semantics reference: the real
// keras_applications builders run by tests/python/keras_shim.py, saved in
// Keras' file formats and converted by weights/convert_keras.py
// (keras_fixtures.py writes both).
#include <resnet/image.hpp>

#include <catch2/catch.hpp>

#include <iostream>
#include <sstream>

#include "test_util.hpp"

using resnet::Tensor;
using namespace testutil;

namespace {

constexpr double kTolerance = 1e-4;  // max|Δ| ≤ 1e-4 · max(1, max|reference|)

/// max|Δ| ≤ tolerance for every output keras_<name>.ref.safetensors holds,
/// for every input; prints the figures. Returns whether all agreed.
bool keras_parity(const resnet::ResNet<float>& model, const std::string& name, bool print = true) {
    resnet::SafeTensorsFile ref(fixture("keras_" + name + ".ref.safetensors"));
    bool all = true;
    for (int i = 0; ref.contains("x" + std::to_string(i)); ++i) {
        const std::string in = "x" + std::to_string(i);
        const Tensor<float> x = ref.read<float>(in);
        std::vector<std::string> names;
        for (const auto& out : resnet::output_names())
            if (ref.contains(in + "." + out)) names.push_back(out);
        auto outputs = model.forward_outputs(x, names);
        if (ref.contains(in + ".probs"))
            outputs.emplace("probs", resnet::activate(outputs.at("fc"), model.head_activation())), names.push_back("probs");
        for (const auto& out : names) {
            const auto expected = ref.read<double>(in + "." + out);
            const double diff = max_abs_diff(outputs.at(out), expected), scale = max_abs(expected);
            const bool ok = diff <= kTolerance * std::max(1.0, scale);
            if (print)
                std::cout << "keras parity " << name << " " << in << " " << resnet::shape_str(x.shape()) << " " << out
                          << ": max|d|=" << diff << " max|ref|=" << scale << (ok ? "" : "  FAILED") << "\n";
            all = all && ok;
        }
    }
    return all;
}

resnet::ResNet<float> keras_model(const std::string& name) {
    return resnet::load_model(fixture("keras_" + name + ".safetensors"));
}

}  // namespace

TEST_CASE("Keras applications match the Keras reference in every file format", "[keras]") {
    // name, architecture; the fixture script picks the file format per case.
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"resnet50", "ResNet50"},     {"resnet101", "ResNet101"},     {"resnet152", "ResNet152"},
        {"resnet50_old", "ResNet50"}, {"resnet50v2", "ResNet50V2"},   {"resnet101v2", "ResNet101V2"},
        {"resnet152v2", "ResNet152V2"}, {"keras3_resnet50", "ResNet50"}, {"keras3_named_v2", "ResNet50V2"}};
    for (const auto& [name, arch] : cases) {
        SECTION(name) {
            const auto model = keras_model(name);
            CHECK(model.architecture().name == arch);
            CHECK(keras_parity(model, name));
        }
    }
}

TEST_CASE("Keras feature extractors and fine-tuned heads", "[keras]") {
    SECTION("include_top=False, pooling='avg': forward() gives the pooled features") {
        const auto model = keras_model("notop_avg");
        CHECK(model.num_classes() == 0);
        CHECK(keras_parity(model, "notop_avg"));
        resnet::SafeTensorsFile ref(fixture("keras_notop_avg.ref.safetensors"));
        CHECK(model.forward(ref.read<float>("x0")).shape() == resnet::Shape{2, 2048, 1, 1});
        CHECK_THROWS_WITH(model.features(ref.read<float>("x0"), "fc"), Catch::Contains("no classifier head"));
    }
    SECTION("Keras 3 .weights.h5, V2 include_top=False, pooling='avg'") {
        const auto model = keras_model("keras3_notop_v2");
        CHECK(model.num_classes() == 0);
        CHECK(keras_parity(model, "keras3_notop_v2"));
    }
    SECTION("V2 include_top=False, pooling=None: forward() gives post_relu") {
        const auto model = keras_model("notop_v2");
        CHECK(keras_parity(model, "notop_v2"));
        resnet::SafeTensorsFile ref(fixture("keras_notop_v2.ref.safetensors"));
        const auto x = ref.read<float>("x0");
        CHECK(close(model.forward(x), ref.read<double>("x0.layer4"), kTolerance));
    }
    SECTION("avg pool -> Dense 64 relu -> Dropout -> Dense 64 relu -> Dense 7 softmax") {
        const auto model = keras_model("finetuned");
        CHECK(model.num_classes() == 7);
        CHECK(model.head_activation() == resnet::Activation::Softmax);
        CHECK(keras_parity(model, "finetuned"));
    }
    SECTION("max pool -> Flatten -> Dense 32 -> Activation relu -> Dense 1 sigmoid") {
        const auto model = keras_model("finetuned_sigmoid");
        CHECK(model.head_activation() == resnet::Activation::Sigmoid);
        CHECK(keras_parity(model, "finetuned_sigmoid"));
    }
}

TEST_CASE("Keras stage names are aliases of layer1..layer4 and avgpool", "[keras]") {
    const auto model = keras_model("resnet50");
    resnet::SafeTensorsFile ref(fixture("keras_resnet50.ref.safetensors"));
    const auto x = ref.read<float>("x0");
    const auto out = model.forward_outputs(x, {"conv3_block4_out", "conv5_block3_out", "avg_pool", "layer2"});
    CHECK(close(out.at("conv3_block4_out"), ref.read<double>("x0.layer2"), kTolerance));
    CHECK(max_abs_diff(out.at("conv3_block4_out"), out.at("layer2")) == 0.0);
    CHECK(close(out.at("conv5_block3_out"), ref.read<double>("x0.layer4"), kTolerance));
    CHECK(close(out.at("avg_pool"), ref.read<double>("x0.avgpool"), kTolerance));
    CHECK_THROWS_WITH(model.features(x, "conv4_block5_out"), Catch::Contains("conv4_block6_out"));
    const auto v2 = keras_model("resnet50v2");
    resnet::SafeTensorsFile ref2(fixture("keras_resnet50v2.ref.safetensors"));
    CHECK(close(v2.features(ref2.read<float>("x0"), "post_relu"), ref2.read<double>("x0.layer4"), kTolerance));
}

TEST_CASE("a timed forward names a V2 block's pre-activation, its subsampled shortcut and the head's layers", "[keras]") {
    const auto names = [](const resnet::ResNet<float>& model, const std::string& name) {
        resnet::SafeTensorsFile ref(fixture("keras_" + name + ".ref.safetensors"));
        const auto x = ref.read<float>("x0");
        std::vector<resnet::LayerTiming> timings;
        CHECK(max_abs_diff(model.forward(x, timings), model.forward(x)) == 0.0);
        std::vector<std::string> out;
        for (const auto& t : timings) out.push_back(t.name);
        return out;
    };
    const auto v2 = names(keras_model("resnet50v2"), "resnet50v2");
    const std::vector<std::string> stage1 = {"conv1", "maxpool",
        "layer1.0.preact", "layer1.0.downsample.0", "layer1.0.conv1", "layer1.0.conv2", "layer1.0.conv3",
        "layer1.1.preact", "layer1.1.conv1", "layer1.1.conv2", "layer1.1.conv3",
        "layer1.2.preact", "layer1.2.shortcut", "layer1.2.conv1", "layer1.2.conv2", "layer1.2.conv3"};
    REQUIRE(v2.size() > stage1.size() + 3);
    CHECK(std::vector<std::string>(v2.begin(), v2.begin() + long(stage1.size())) == stage1);
    CHECK(std::vector<std::string>(v2.end() - 3, v2.end()) == std::vector<std::string>{"post_bn", "avgpool", "fc"});
    const auto head = names(keras_model("finetuned"), "finetuned");
    CHECK(std::vector<std::string>(head.end() - 4, head.end()) ==
          std::vector<std::string>{"avgpool", "dense1", "dense2", "fc"});
}

TEST_CASE("the Keras tests notice a wrong stride, epsilon, Dense layout or Keras 3 layer order", "[keras]") {
    // keras_fixtures.py rewrites converted files with one thing wrong each.
    for (const auto& [mutant, original] : std::vector<std::pair<std::string, std::string>>{
             {"mutant_stride_on_3x3", "resnet50"}, {"mutant_eps", "resnet50_old"},
             {"mutant_transposed_dense", "finetuned"}, {"mutant_keras3_order", "keras3_resnet50"}}) {
        SECTION(mutant) { CHECK_FALSE(keras_parity(keras_model(mutant), original, false)); }
    }
}

TEST_CASE("Keras preprocessing: load_img + preprocess_input, bit for bit", "[keras]") {
    // PNG forms and a JPEG, each resized nearest and bilinear, in caffe and tf modes.
    resnet::SafeTensorsFile ref(fixture("keras_preprocess.ref.safetensors"));
    std::stringstream files(ref.metadata().at("files"));
    for (std::string file; std::getline(files, file, ',');) {
        const resnet::Image img = resnet::read_image(fixture(file));
        for (const char* mode : {"caffe", "tf"})
            for (const auto filter : {resnet::Interpolation::Nearest, resnet::Interpolation::Bilinear}) {
                auto pre = std::string(mode) == "caffe" ? resnet::Preprocess::keras_caffe() : resnet::Preprocess::keras_tf();
                pre.interpolation = filter;
                const std::string key =
                    file + "." + mode + (filter == resnet::Interpolation::Nearest ? ".nearest" : ".bilinear");
                const auto expected = ref.read<float>(key);
                const double diff = max_abs_diff(resnet::preprocess<float>(img, pre), expected);
                std::cout << "keras preprocess " << key << ": max|d|=" << diff << "\n";
                INFO(key << " max|d|=" << diff);
                CHECK(diff == 0.0);  // JPEG too: decoded by libjpeg-turbo as PIL decodes it
                // The mistakes the issue names must show: RGB for BGR, bilinear for nearest.
                auto wrong = pre;
                if (std::string(mode) == "caffe" && file.find("gray") == std::string::npos) {
                    wrong.bgr = false;
                    CHECK(max_abs_diff(resnet::preprocess<float>(img, wrong), expected) > 1.0);
                }
                wrong = pre;
                wrong.interpolation = filter == resnet::Interpolation::Nearest ? resnet::Interpolation::Bilinear
                                                                               : resnet::Interpolation::Nearest;
                if (img.width > 224) CHECK(max_abs_diff(resnet::preprocess<float>(img, wrong), expected) > 0.0);
            }
    }
}

TEST_CASE("a converted Keras file carries its preprocessing preset", "[keras]") {
    const auto v1 = resnet::Preprocess::from_metadata(keras_model("resnet50").metadata());
    const auto v2 = resnet::Preprocess::from_metadata(keras_model("resnet50v2").metadata());
    const auto caffe = resnet::Preprocess::keras_caffe(), tf = resnet::Preprocess::keras_tf();
    CHECK((v1.mode == caffe.mode && v1.interpolation == caffe.interpolation && v1.bgr && v1.scale == 1 &&
           v1.mean == caffe.mean && v1.std == caffe.std && v1.crop == 224));
    CHECK((v2.mode == tf.mode && v2.interpolation == tf.interpolation && !v2.bgr && v2.scale == 127.5 &&
           v2.mean == tf.mean && v2.std == tf.std));
}
