// bench/stages: the single-core cost of classify's two stages before the
// network, each measured alone, for bench/collection.py's machine limit.
//
//   stages --weights FILE DIR|IMAGE...
//
// For every image (directories walked as classify walks them) on one thread:
// read + decode (resnet::read_image), then preprocess with the weights'
// preset. Prints one JSON object: images, decode_ms and preprocess_ms (means
// per image, as the collection mixes sizes), and the total seconds of each.
// The forward's cost is bench/benchmark --threads 1's.
#include <resnet/image.hpp>
#include <resnet/inputs.hpp>
#include <resnet/loader.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <iostream>

int main(int argc, char** argv) {
    if (argc < 4 || std::string(argv[1]) != "--weights") {
        std::cerr << "usage: stages --weights FILE DIR|IMAGE...\n";
        return 2;
    }
    try {
        const auto pre = resnet::Preprocess::from_metadata(resnet::load_model<float>(argv[2]).metadata());
        std::vector<std::string> files;
        for (int i = 3; i < argc; ++i) {
            const auto found = std::filesystem::is_directory(argv[i]) ? resnet::image_files(argv[i])
                                                                      : std::vector<std::string>{argv[i]};
            files.insert(files.end(), found.begin(), found.end());
        }
        using Clock = std::chrono::steady_clock;
        double decode = 0, preprocess = 0, checksum = 0;
        for (const auto& f : files) {
            const auto t0 = Clock::now();
            const resnet::Image img = resnet::read_image(f);
            const auto t1 = Clock::now();
            checksum += resnet::preprocess<float>(img, pre).data()[0];  // keeps the work observable
            decode += std::chrono::duration<double>(t1 - t0).count();
            preprocess += std::chrono::duration<double>(Clock::now() - t1).count();
        }
        const double n = double(std::max<size_t>(files.size(), 1));
        std::cout << nlohmann::json{{"images", files.size()}, {"decode_ms", 1e3 * decode / n},
                                    {"preprocess_ms", 1e3 * preprocess / n}, {"decode_s", decode},
                                    {"preprocess_s", preprocess}, {"checksum", checksum}}
                         .dump()
                  << "\n";
    } catch (const std::exception& e) {
        std::cerr << "stages: error: " << e.what() << "\n";
        return 1;
    }
}
