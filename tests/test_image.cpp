// Image decoding, preprocessing, .npy files and classification helpers against
// PIL + torchvision: references written at test time by tests/python/image_fixtures.py.
#include <resnet/image.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "png_bomb.hpp"
#include "test_util.hpp"

using resnet::Tensor;
using Catch::Matchers::Contains;
using namespace testutil;

namespace {

struct Case {
    std::string name, file;
    int resize, crop;
    bool logits;
};

resnet::SafeTensorsFile& refs() {
    static resnet::SafeTensorsFile file(fixture("images.ref.safetensors"));
    return file;
}

/// Every image PIL decodes, in every format (JPEGs damaged in ways PIL decodes around included).
std::vector<Case> cases() {
    std::vector<Case> out;
    for (const auto& c : nlohmann::json::parse(refs().metadata().at("cases")))
        out.push_back({c["name"], c["file"], c["resize"], c["crop"], c["logits"]});
    return out;
}

const resnet::ResNet<float>& resnet50() {
    static const auto model = resnet::load_model(fixture("resnet50.safetensors"));
    return model;
}

/// An Image as an H×W×3 tensor, the layout of the <case>.rgb references.
Tensor<float> as_tensor(const resnet::Image& img) {
    Tensor<float> t({img.height, img.width, 3});
    std::copy(img.rgb.begin(), img.rgb.end(), t.begin());
    return t;
}

resnet::Image as_image(const Tensor<float>& t) {
    resnet::Image img{int(t.dim(1)), int(t.dim(0)), std::vector<uint8_t>(t.begin(), t.end())};
    return img;
}

/// How far apart two tensors are: the largest difference (in `unit`s) and the
/// number of elements that differ by 1e-3 unit or more.
struct Agreement {
    double max_diff = 0;
    int64_t differing = 0;
};

/// For N×3×H×W model inputs (normalized) the unit is one uint8 step after
/// Normalize, 1/255/std[c]; for pixels it is one level.
Agreement agreement(const Tensor<float>& ours, const Tensor<double>& ref, bool normalized) {
    REQUIRE(ours.shape() == ref.shape());
    const std::array<double, 3> std = resnet::Preprocess().std;
    const int64_t plane = normalized ? ref.dim(2) * ref.dim(3) : 1;
    Agreement a;
    for (int64_t i = 0; i < ours.size(); ++i) {
        const double unit = normalized ? 1.0 / 255.0 / std[size_t(i / plane % 3)] : 1.0;
        const double d = std::abs(double(ours[i]) - ref[i]) / unit;
        a.max_diff = std::max(a.max_diff, d);
        a.differing += d >= 1e-3;
    }
    return a;
}

std::vector<int64_t> top5(const Tensor<float>& logits) {
    std::vector<int64_t> idx;
    for (const auto& p : resnet::top_k(logits, 0, 5)) idx.push_back(p.index);
    return idx;
}

std::string bad_dir() {
    const std::string dir = fixture("bad_inputs");
    std::filesystem::create_directories(dir);
    return dir;
}

std::vector<uint8_t> file_bytes(const std::string& path) { return resnet::detail::read_file_bytes(path); }

/// Writes `bytes` to bad_inputs/<name> and returns the path.
std::string write_bad(const std::string& name, const std::vector<uint8_t>& bytes) {
    const std::string path = bad_dir() + "/" + name;
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    return path;
}

std::vector<uint8_t> bytes_of(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

/// load_input(path) must throw one line naming the path and containing `reason`.
void check_refused(const std::string& path, const std::string& reason, const resnet::DecodeOptions& options = {}) {
    INFO("input " << path);
    try {
        resnet::load_input<float>(path, {}, options);
        FAIL("no error for " << path);
    } catch (const resnet::Error& e) {
        const std::string what = e.what();
        std::cout << "refused: " << what << "\n";
        CHECK_THAT(what, Contains(path) && Contains(reason));
        CHECK(what.find('\n') == std::string::npos);
    }
}

/// What f() writes to file descriptors 1 and 2 (stdout, stderr).
template <class F>
std::string output_of(F f) {
    std::fflush(nullptr);
    FILE* capture = std::tmpfile();
    const int saved_out = dup(1), saved_err = dup(2);
    dup2(fileno(capture), 1);
    dup2(fileno(capture), 2);
    std::exception_ptr error;
    try {
        f();
    } catch (...) {
        error = std::current_exception();
    }
    std::fflush(nullptr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    if (error) std::rethrow_exception(error);
    std::string out(size_t(std::ftell(capture)), '\0');
    std::rewind(capture);
    out.resize(std::fread(out.data(), 1, out.size(), capture));
    std::fclose(capture);
    return out;
}

}  // namespace

TEST_CASE("every format, JPEG included, decodes exactly as PIL's convert(\"RGB\")", "[image]") {
    for (const auto& c : cases()) {
        if (c.name.find('@') != std::string::npos) continue;  // same file, other preset
        const resnet::Image img = resnet::read_image(c.file);
        const Agreement a = agreement(as_tensor(img), refs().read<double>(c.name + ".rgb"), false);
        std::cout << "decode " << c.name << " " << img.width << "x" << img.height << ": " << a.differing
                  << " differing values, max|d|=" << a.max_diff << " levels\n";
        INFO(c.name);
        CHECK(a.differing == 0);
    }
}

TEST_CASE("preprocessing gives exactly torchvision's tensors from PIL's images", "[image]") {
    double worst = 0;
    int64_t differing = 0, total = 0;
    for (const auto& c : cases()) {
        resnet::Preprocess pre;
        pre.resize = c.resize, pre.crop = c.crop;
        const Tensor<double> ref = refs().read<double>(c.name + ".input");
        const Agreement a = agreement(resnet::preprocess<float>(resnet::read_image(c.file), pre), ref, true);
        std::cout << "preprocess " << c.name << " resize " << c.resize << " crop " << c.crop << ": " << a.differing
                  << " differing values, max|d|=" << a.max_diff << " uint8 steps\n";
        INFO(c.name);
        CHECK(a.differing == 0);
        worst = std::max(worst, a.max_diff), differing += a.differing, total += ref.size();
    }
    std::cout << "preprocess, all inputs: " << differing << " of " << total << " values differ, max|d|=" << worst
              << " uint8 steps\n";
}

TEST_CASE("resize is Pillow's antialiased bilinear resize, bit for bit", "[image]") {
    for (int i = 0; refs().contains("resize" + std::to_string(i) + ".in"); ++i) {
        const std::string key = "resize" + std::to_string(i);
        const auto in = as_image(refs().read<float>(key + ".in"));
        const auto ref = refs().read<double>(key + ".out");
        const auto out = resnet::resize(in, int(ref.dim(1)), int(ref.dim(0)));
        const Agreement a = agreement(as_tensor(out), ref, false);
        std::cout << "resize " << in.width << "x" << in.height << " -> " << out.width << "x" << out.height
                  << ": max|d|=" << a.max_diff << " levels\n";
        INFO(key);
        CHECK(a.max_diff == 0);
    }
}

TEST_CASE("resized_size and the crop window follow torchvision 0.14", "[image]") {
    CHECK(resnet::resized_size(451, 300, 256) == std::make_pair(384, 256));  // int(256*451/300) = int(384.85)
    CHECK(resnet::resized_size(300, 451, 256) == std::make_pair(256, 384));
    CHECK(resnet::resized_size(10, 7, 256) == std::make_pair(365, 256));
    CHECK(resnet::resized_size(256, 256, 232) == std::make_pair(232, 232));
    CHECK(resnet::detail::center_crop_offset(341, 224) == 58);  // round(58.5) = 58, half to even
    CHECK(resnet::detail::center_crop_offset(343, 224) == 60);  // round(59.5) = 60
    CHECK(resnet::detail::center_crop_offset(200, 224) == -12);
    CHECK(resnet::detail::center_crop_offset(201, 224) == -11);  // padding left (23)//2 = 11, right 12
    CHECK_THROWS_WITH(resnet::resized_size(1, 100000000, 256), Contains("limit"));
}

TEST_CASE("photos end to end: file → logits as torchvision computes them", "[image]") {
    const auto& model = resnet50();
    for (const auto& c : cases()) {
        if (!c.logits) continue;
        const Tensor<float> logits = model.forward(resnet::load_input<float>(c.file, resnet::Preprocess::from_metadata(model.metadata())));
        const Tensor<double> ref = refs().read<double>(c.name + ".logits");
        const double diff = max_abs_diff(logits, ref), scale = max_abs(ref);
        std::cout << "photo " << c.name << ": logits max|d|=" << diff << " max|ref|=" << scale << "\n";
        INFO(c.name);
        CHECK(diff <= 1e-4 * std::max(1.0, scale));
        CHECK(top5(logits) == top5(ref.cast<float>()));
    }
}

TEST_CASE("presets come from the weights' metadata and can be overridden", "[image]") {
    const auto pre = resnet::Preprocess::from_metadata(resnet50().metadata());
    CHECK(pre.resize == 256);
    CHECK(pre.crop == 224);
    CHECK(pre.mean == resnet::Preprocess().mean);
    CHECK(pre.std == resnet::Preprocess().std);
    CHECK(resnet::Preprocess::imagenet_v2().resize == 232);
    const auto v2 = resnet::Preprocess::from_metadata({{"resize", "232"}, {"mean", "0.5, 0.25,0.125"}});
    CHECK(v2.resize == 232);
    CHECK(v2.mean == std::array<double, 3>{{0.5, 0.25, 0.125}});
    CHECK_THROWS_WITH(resnet::Preprocess::from_metadata({{"interpolation", "bicubic"}}),
                      Contains("interpolation") && Contains("bicubic"));
    CHECK_THROWS_WITH(resnet::Preprocess::from_metadata({{"resize", "2x"}}), Contains("'resize'") && Contains("2x"));
    CHECK_THROWS_WITH(resnet::Preprocess::from_metadata({{"std", "1,2"}}), Contains("'std'") && Contains("1,2"));
    CHECK_THROWS_WITH(resnet::Preprocess::from_metadata({{"crop", "0"}}), Contains("crop 0"));
}

TEST_CASE("bad inputs: one-line errors naming the input and the reason", "[image]") {
    const std::string images = fixture("images/");
    const auto png = file_bytes(images + "rgb_640x480.png");
    const auto cut = [](const std::vector<uint8_t>& b, size_t n) { return std::vector<uint8_t>(b.begin(), b.begin() + ptrdiff_t(n)); };

    check_refused(bad_dir() + "/missing.png", "cannot open");
    check_refused(bad_dir(), "is a directory");
    check_refused(write_bad("empty.jpg", {}), "empty file");
    check_refused(write_bad("truncated.png", cut(png, png.size() / 2)), "truncated or corrupt PNG");
    check_refused(write_bad("signature_only.png", cut(png, 12)), "truncated or corrupt PNG");
    auto garbled = png;
    std::fill(garbled.begin() + 200, garbled.begin() + 1200, uint8_t(0x5A));
    check_refused(write_bad("corrupt.png", garbled), "truncated or corrupt PNG");
    const auto ppm = file_bytes(images + "rgb.ppm");
    check_refused(write_bad("truncated.ppm", cut(ppm, ppm.size() - 1)), "truncated PNM");

    check_refused(write_bad("photo.tif", bytes_of(std::string("II*\0\x08\0\0\0", 8) + std::string(64, '\0'))),
                  "unsupported image format TIFF");
    check_refused(write_bad("photo.webp", bytes_of(std::string("RIFF\x24\0\0\0WEBPVP8 ", 16) + std::string(64, '\0'))),
                  "unsupported image format WebP");
    check_refused(write_bad("notes.txt", bytes_of("just some text, no image here\n")), "not an image in a known format");

    check_refused(write_bad("zero.png", testpng::header_only(0, 0)), "0x0 image, which has no pixels");
    check_refused(write_bad("zero.gif", bytes_of(std::string("GIF89a\0\0\0\0\0\0\0;", 14))), "0x0 image");
    check_refused(write_bad("zero.ppm", bytes_of("P6\n0 0\n255\n")), "0x0 image");
    check_refused(write_bad("bomb.png", testpng::header_only(12000, 10000)), "12000x10000 pixels, above the limit of 100000000");
    // libpng stops inflating at the last row: the 64 MiB behind it are never
    // inflated (stb_image's path refuses the bomb: tests/consumer).
    const resnet::Image bomb = resnet::read_image(write_bad("zlib_bomb.png", testpng::zlib_bomb(16, 16, 64 << 20)));
    CHECK((bomb.width == 16 && bomb.height == 16 && bomb.rgb == std::vector<uint8_t>(16 * 16 * 3, 0)));
    resnet::DecodeOptions small;
    small.max_pixels = 640 * 480 - 1;
    check_refused(images + "rgb_640x480.png", "above the limit of 307199", small);
    small.max_pixels = 640 * 480;
    CHECK(resnet::read_image(images + "rgb_640x480.png", small).width == 640);
    small.max_pixels = 451 * 300 - 1;  // JPEG: read by libjpeg, refused after its header
    check_refused(images + "chelsea_baseline.jpg", "451x300 pixels, above the limit of 135299", small);

    check_refused(images + "bad_dtype.npy", "dtype '<f8' is not supported (expected float32 '<f4')");
    check_refused(images + "bad_shape.npy", "shape [32,40] is not a model input");
    check_refused(images + "bad_channels.npy", "shape [2,2,32,40] is not a model input");
    check_refused(images + "fortran_order.npy", "Fortran order");
    const auto npy = file_bytes(images + "good_chw.npy");
    check_refused(write_bad("truncated.npy", cut(npy, npy.size() - 4)), "needs 15360 bytes of float32 data, the file has 15356");
}

TEST_CASE("damaged JPEGs: refused where PIL refuses them, decoded silently as PIL decodes them", "[image]") {
    // The ones PIL decodes (junk between segments, an early end marker,
    // garbled scan data) are among cases(), compared value by value above.
    for (const auto& r : nlohmann::json::parse(refs().metadata().at("refused"))) {
        const std::string file = r["file"];
        std::cout << "PIL: " << r["pil_error"].get<std::string>() << "\n";
        const bool cut = file.find("_cut_") != std::string::npos;
        check_refused(file, cut ? "truncated JPEG" : "corrupt or unsupported JPEG (libjpeg: ");
    }
    // libjpeg warns about the damage it decodes around; nothing may reach stdout or stderr.
    for (const auto& c : cases()) {
        if (c.name.rfind("damaged_", 0) != 0) continue;
        INFO(c.name);
        CHECK(output_of([&] { resnet::read_image(c.file); }).empty());
    }
}

TEST_CASE(".npy inputs: 3xHxW and Nx3xHxW load as model inputs; write_npy writes what numpy writes", "[image]") {
    const std::string images = fixture("images/");
    const Tensor<float> chw = resnet::load_input<float>(images + "good_chw.npy");
    CHECK(chw.shape() == resnet::Shape{1, 3, 32, 40});
    CHECK(max_abs_diff(chw.reshaped({3, 32, 40}), refs().read<float>("npy.chw")) == 0);
    const Tensor<float> nchw = resnet::load_input<float>(images + "good_nchw.npy");
    CHECK(max_abs_diff(nchw, refs().read<float>("npy.nchw")) == 0);

    const std::string ours = bad_dir() + "/written.npy";
    resnet::write_npy(ours, refs().read<float>("npy.chw"));
    CHECK(file_bytes(ours) == file_bytes(images + "good_chw.npy"));  // byte for byte what np.save wrote
    for (const resnet::Shape& shape : {resnet::Shape{5}, resnet::Shape{2, 3}, resnet::Shape{}}) {
        Tensor<double> t(shape);
        for (int64_t i = 0; i < t.size(); ++i) t[i] = 0.25 * double(i) - 1;
        resnet::write_npy(ours, t);
        const Tensor<double> back = resnet::read_npy<double>(ours);
        CHECK(back.shape() == shape);
        CHECK(max_abs_diff(back, t) == 0);
    }
    CHECK_THROWS_WITH(resnet::write_npy(bad_dir() + "/no/such/dir/x.npy", chw), Contains("cannot write"));
}

TEST_CASE("softmax, top-k and class labels", "[image]") {
    const float row[] = {1000.f, 1001.f, 999.f, 1001.f};
    const Tensor<float> probs = resnet::softmax(Tensor<float>({1, 4}, row));
    double sum = 0;
    for (float p : probs) sum += p;
    CHECK(sum == Approx(1.0));
    CHECK(probs[1] == Approx(std::exp(1.0) / (1 + 2 * std::exp(1.0) + std::exp(-1.0))));
    const auto top = resnet::top_k(probs, 0, 3);
    REQUIRE(top.size() == 3);
    CHECK(top[0].index == 1);  // tie with index 3: lower index first
    CHECK(top[1].index == 3);
    CHECK(top[2].index == 0);
    CHECK(resnet::top_k(probs, 0, 10).size() == 4);
    CHECK_THROWS_WITH(resnet::top_k(probs, 1, 3), Contains("row 1 of 1"));

    CHECK(resnet::imagenet_labels.size() == 1000);
    CHECK(std::string(resnet::imagenet_labels[0]) == "tench");
    CHECK(std::string(resnet::imagenet_labels[281]) == "tabby");
    CHECK(std::string(resnet::imagenet_labels[999]) == "toilet tissue");
    CHECK(resnet::class_labels({}, 1000)[281] == "tabby");
    CHECK(resnet::class_labels({}, 10).empty());
    CHECK(resnet::class_labels({{"labels", R"(["cat", "dog"])"}}, 2) == std::vector<std::string>{"cat", "dog"});
    CHECK_THROWS_WITH(resnet::class_labels({{"labels", R"(["cat"])"}}, 2),
                      Contains("'labels'") && Contains("2 strings") && Contains("got 1 entries"));
}

TEST_CASE("inputs found by fuzzing are refused cleanly", "[image]") {
    // tests/fuzz/regressions holds each crashing input libFuzzer ever found;
    // under the ASan/UBSan build this test replays them.
    const std::string dir = std::string(RESNET_SOURCE_DIR) + "/tests/fuzz/regressions";
    int replayed = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        INFO(entry.path().string());
        CHECK_THROWS_AS(resnet::read_image(entry.path().string()), resnet::Error);
        ++replayed;
    }
    CHECK(replayed > 0);
    // Refused before stb_image grows a 2 GiB buffer for it (a libFuzzer OOM).
    CHECK_THROWS_WITH(resnet::read_image(dir + "/png_idat_length_past_end"),
                      Contains("IDAT chunk at byte") && Contains("declares"));
}
