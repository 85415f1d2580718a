// Malformed weight files, concurrency, resource limits, determinism.
#include <catch2/catch.hpp>

#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <thread>

#include "test_util.hpp"

using resnet::Tensor;
using namespace testutil;
using Catch::Contains;
using nlohmann::json;

namespace {

/// A safetensors image: 8-byte little-endian length, header text, data.
std::string safetensors_bytes(const std::string& header, const std::string& data, uint64_t claimed_len) {
    std::string out(8, '\0');
    for (int i = 0; i < 8; ++i) out[size_t(i)] = char((claimed_len >> (8 * i)) & 0xff);
    return out + header + data;
}
std::string safetensors_bytes(const json& header, const std::string& data) {
    const std::string text = header.dump();
    return safetensors_bytes(text, data, text.size());
}

void check_open_fails(const std::string& bytes, const std::string& message) {
    INFO("expected: " << message);
    CHECK_THROWS_WITH(resnet::SafeTensorsFile("bad.safetensors", bytes),
                      Contains("bad.safetensors") && Contains(message));
}

/// A real converted resnet18, as header JSON + data, to corrupt one aspect at a time.
struct ModelFile {
    json header;
    std::string data;

    ModelFile() {
        std::ifstream in(fixture("resnet18.safetensors"), std::ios::binary);
        const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        uint64_t len = 0;
        for (int i = 7; i >= 0; --i) len = len << 8 | uint8_t(bytes[size_t(i)]);
        header = json::parse(bytes.substr(8, len));
        data = bytes.substr(8 + len);
    }
    std::string load_error() const {
        try {
            resnet::load_model(resnet::SafeTensorsFile("r18.safetensors", safetensors_bytes(header, data)));
        } catch (const resnet::Error& e) {
            return e.what();
        }
        return "(loaded without error)";
    }
};

}  // namespace

TEST_CASE("malformed safetensors structure is reported, never read out of bounds", "[hardening]") {
    const json f32x2 = {{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {0, 8}}};
    check_open_fails(safetensors_bytes("{}", "", 1000), "header length 1000 exceeds");
    check_open_fails(std::string(5, 'x'), "too short");
    check_open_fails(safetensors_bytes("{\"a\": ", "", 6), "not valid JSON");
    check_open_fails(safetensors_bytes(json::array({1, 2}), ""), "not a JSON object");
    check_open_fails(safetensors_bytes(json{{"a", 3}}, ""), "'a': header entry is not an object");
    check_open_fails(safetensors_bytes(json{{"a", {{"dtype", "F32"}, {"shape", {2}}}}}, ""), "data_offsets");
    check_open_fails(safetensors_bytes(json{{"a", f32x2}, {"b", {{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {4, 12}}}}},
                                       std::string(12, '\0')),
                     "overlap");
    check_open_fails(safetensors_bytes(json{{"a", {{"dtype", "F32"}, {"shape", {4}}, {"data_offsets", {0, 16}}}}},
                                       std::string(8, '\0')),
                     "run past the 8-byte data section");
    check_open_fails(safetensors_bytes(json{{"a", {{"dtype", "F32"}, {"shape", {3}}, {"data_offsets", {0, 8}}}}},
                                       std::string(8, '\0')),
                     "F32 [3] needs 12 bytes, data_offsets give 8");
    check_open_fails(safetensors_bytes(json{{"a", {{"dtype", "F32"}, {"shape", {-2}}, {"data_offsets", {0, 8}}}}},
                                       std::string(8, '\0')),
                     "invalid dimension");
    const uint64_t big = uint64_t(1) << 40;
    check_open_fails(safetensors_bytes(json{{"a", {{"dtype", "F32"}, {"shape", {big, big}}, {"data_offsets", {0, 8}}}}},
                                       std::string(8, '\0')),
                     "overflows");
    check_open_fails(safetensors_bytes(json{{"a", {{"dtype", "I8"}, {"shape", {8}}, {"data_offsets", {0, 8}}}}},
                                       std::string(8, '\0')),
                     "dtype I8 is not supported");
    check_open_fails(safetensors_bytes(json{{"a", {{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {8, 0}}}}},
                                       std::string(8, '\0')),
                     "data_offsets");
    check_open_fails(std::string("PK\x03\x04", 4) + std::string(60, '\0'), "PyTorch checkpoint (zip)");
    check_open_fails(std::string("\x80\x02\x8a\x0a", 4) + std::string(60, '\0'), "PyTorch checkpoint (pickle)");
    CHECK_THROWS_WITH(resnet::SafeTensorsFile(RESNET_FIXTURE_DIR), Contains("is a directory"));
}

TEST_CASE("weights that do not fit the architecture name the key and both shapes", "[hardening]") {
    ModelFile ok;
    REQUIRE(ok.load_error() == "(loaded without error)");

    ModelFile missing;
    missing.header.erase("layer2.0.bn1.running_var");
    CHECK_THAT(missing.load_error(), Contains("missing tensor 'layer2.0.bn1.running_var'") && Contains("[128]"));

    ModelFile extra;
    const uint64_t end = extra.data.size();
    extra.header["extra.weight"] = {{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {end, end + 8}}};
    extra.data.append(8, '\0');
    CHECK_THAT(extra.load_error(), Contains("unexpected tensor 'extra.weight'"));

    ModelFile reshaped;
    reshaped.header["layer1.0.conv1.weight"]["shape"] = {64, 64, 9, 1};
    CHECK_THAT(reshaped.load_error(), Contains("layer1.0.conv1.weight") && Contains("expected shape [64,64,3,3]") &&
                                          Contains("got [64,64,9,1]"));

    ModelFile nan;
    const uint64_t at = nan.header["layer3.1.bn2.running_var"]["data_offsets"][0].get<uint64_t>();
    const float bad = std::numeric_limits<float>::quiet_NaN();
    std::memcpy(&nan.data[at], &bad, 4);
    CHECK_THAT(nan.load_error(), Contains("'layer3.1.bn2.running_var' contains NaN or Inf"));

    ModelFile truncated;
    truncated.data.resize(truncated.data.size() / 2);
    CHECK_THAT(truncated.load_error(), Contains("file truncated"));

    ModelFile mislabeled;
    mislabeled.header["__metadata__"]["arch"] = "resnet50";
    CHECK_THAT(mislabeled.load_error(), Contains("metadata arch 'resnet50'") && Contains("basic blocks [2,2,2,2]"));
}

TEST_CASE("one model, many calling threads: results identical to sequential calls", "[hardening]") {
    auto model = resnet::load_model(fixture("resnet18.safetensors"));
    model.set_threads(1);
    std::vector<Tensor<float>> inputs;
    for (int i = 0; i < 6; ++i) {
        Tensor<float> x({1 + i % 2, 3, 32 + 16 * i, 48 + 8 * i});
        for (int64_t j = 0; j < x.size(); ++j) x[j] = float(std::sin(0.37 * double(j) + i));
        inputs.push_back(std::move(x));
    }
    std::vector<Tensor<float>> expected;
    for (const auto& x : inputs) expected.push_back(model.forward(x));

    constexpr int kThreads = 4, kCalls = 12;
    std::vector<int> mismatches(kThreads, 0);
    std::vector<std::thread> callers;
    for (int t = 0; t < kThreads; ++t)
        callers.emplace_back([&, t] {
            for (int c = 0; c < kCalls; ++c) {
                const size_t k = size_t(t + c) % inputs.size();
                if (max_abs_diff(model.forward(inputs[k]), expected[k]) != 0.0) ++mismatches[size_t(t)];
            }
        });
    for (auto& c : callers) c.join();
    for (int m : mismatches) CHECK(m == 0);
}

TEST_CASE("inputs that would exceed the memory limit are refused before allocating", "[hardening]") {
    auto model = resnet::load_model(fixture("resnet18.safetensors"));
    model.set_max_workspace_bytes(int64_t(64) << 20);
    CHECK_THROWS_WITH(model.forward(Tensor<float>({1, 3, 1024, 1024})),
                      Contains("[1,3,1024,1024]") && Contains("limit of 64 MiB"));
    CHECK_NOTHROW(model.forward(Tensor<float>({1, 3, 64, 64})));
    // Beyond any limit: rejected by the shape check, with no Tensor allocated either.
    CHECK_THROWS_WITH(model.forward(Tensor<float>({1, 3, 40000, 1})), Contains("[1,3,40000,1]"));
}

TEST_CASE("the same input gives the same bits across calls and models", "[hardening]") {
    const auto a = resnet::load_model(fixture("resnet18.safetensors"));
    const auto b = resnet::load_model(fixture("resnet18.safetensors"));
    resnet::SafeTensorsFile ref(fixture("resnet18.ref.safetensors"));
    const auto x = ref.read<float>("x1");
    const auto first = a.forward(x);
    CHECK(max_abs_diff(a.forward(x), first) == 0.0);
    CHECK(max_abs_diff(b.forward(x), first) == 0.0);
}
