// What classify's collection mode is built from: BoundedQueue, ordered_pipeline,
// input listing, sharding and its JSONL lines. No Eigen here, so this
// translation unit is cheap.
#include <catch2/catch.hpp>
#include <resnet/bounded_queue.hpp>
#include <resnet/inputs.hpp>
#include <resnet/pipeline.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "../examples/jsonl.hpp"

using Catch::Contains;
namespace fs = std::filesystem;

TEST_CASE("BoundedQueue blocks producers at capacity and drains after close", "[collection]") {
    resnet::BoundedQueue<int> q(2);
    REQUIRE(q.push(1));
    REQUIRE(q.push(2));
    std::atomic<bool> third_in{false};
    std::thread producer([&] { third_in = q.push(3); });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    CHECK_FALSE(third_in);  // full: the producer waits
    CHECK(*q.pop() == 1);
    producer.join();
    CHECK(third_in);
    q.close();
    CHECK_FALSE(q.push(4));
    CHECK(*q.pop() == 2);
    CHECK(*q.pop() == 3);
    CHECK_FALSE(q.pop().has_value());
    CHECK_THROWS_WITH(resnet::BoundedQueue<int>(0), Contains("capacity 0"));
}

TEST_CASE("ordered_pipeline emits every item in order, errors in place, within its window", "[collection]") {
    for (const resnet::PipelineOptions options : {resnet::PipelineOptions{1, 1, 1}, resnet::PipelineOptions{3, 2, 5},
                                                  resnet::PipelineOptions{4, 4, 2}}) {
        const size_t count = 200;
        std::atomic<int> in_flight{0}, most{0};
        std::vector<size_t> order;
        std::vector<std::string> errors;
        resnet::ordered_pipeline<size_t, size_t>(
            count,
            [&](size_t i) {
                most = std::max(most.load(), ++in_flight);
                if (i % 7 == 3) throw std::runtime_error("load " + std::to_string(i));
                std::this_thread::sleep_for(std::chrono::microseconds((i * 37) % 300));  // finish out of order
                return i * i;
            },
            [&](size_t i, size_t loaded) {
                if (i % 11 == 5) throw std::runtime_error("run " + std::to_string(i));
                return loaded + 1;
            },
            [&](size_t i, resnet::Outcome<size_t> r) {
                --in_flight;
                order.push_back(i);
                if (r.error) {
                    try {
                        std::rethrow_exception(r.error);
                    } catch (const std::exception& e) {
                        errors.push_back(e.what());
                    }
                } else {
                    CHECK(*r.value == i * i + 1);
                }
            },
            options);
        std::vector<size_t> expected(count);
        std::iota(expected.begin(), expected.end(), size_t(0));
        CHECK(order == expected);
        CHECK(size_t(most.load()) <= options.window);
        std::vector<std::string> expected_errors;
        for (size_t i = 0; i < count; ++i)
            if (i % 7 == 3 || i % 11 == 5) expected_errors.push_back((i % 7 == 3 ? "load " : "run ") + std::to_string(i));
        CHECK(errors == expected_errors);
    }
}

TEST_CASE("ordered_pipeline stops and rethrows when emit throws", "[collection]") {
    std::atomic<size_t> loaded{0};
    const auto run = [&] {
        resnet::ordered_pipeline<int, int>(
            1000, [&](size_t) { return int(++loaded); }, [](size_t, int v) { return v; },
            [](size_t i, resnet::Outcome<int>) {
                if (i == 10) throw std::runtime_error("disk full");
            },
            {2, 2, 4});
    };
    CHECK_THROWS_WITH(run(), "disk full");
    CHECK(loaded <= 10 + 4 + 2);  // the window, plus what the loaders held when it closed
    CHECK_THROWS_WITH((resnet::ordered_pipeline<int, int>(1, {}, {}, {}, {0, 1, 1})), Contains("0 loaders"));
}

// A value whose second move throws: item 7's load succeeds, then queuing it
// for a worker fails, as std::bad_alloc would, outside load() and run().
struct FailsToQueue {
    size_t id = 0;
    int moves = 0;
    explicit FailsToQueue(size_t i) : id(i) {}
    FailsToQueue(FailsToQueue&& o) : id(o.id), moves(o.moves + 1) {
        if (id == 7 && moves == 2) throw std::runtime_error("cannot queue item 7");
    }
};

TEST_CASE("ordered_pipeline rethrows a failure of its own threads instead of ending the process", "[collection]") {
    std::vector<size_t> emitted;
    const auto run = [&] {
        resnet::ordered_pipeline<FailsToQueue, size_t>(
            100, [](size_t i) { return FailsToQueue(i); }, [](size_t, FailsToQueue v) { return v.id; },
            [&](size_t i, resnet::Outcome<size_t>) { emitted.push_back(i); }, {2, 2, 4});
    };
    CHECK_THROWS_WITH(run(), "cannot queue item 7");
    CHECK(emitted.size() <= 7);
}

TEST_CASE("image_files walks a tree for image extensions, sorted; read_list; shards", "[collection]") {
    const fs::path root = fs::temp_directory_path() / ("resnet_collection_" + std::to_string(::getpid()));
    fs::remove_all(root);
    std::vector<std::string> names = {"b/x.PNG", "a/z/y.jpeg", "a/1.jpg", "c.gif", "notes.txt", "a/z/t.npy", "d.tga",
                                      "e.ppm", "f.bmp", "g.pgm", "h.pnm", "i.JPG"};
    for (const auto& n : names) {
        fs::create_directories((root / n).parent_path());
        std::ofstream(root / n) << "x";
    }
    fs::create_directories(root / "empty.jpg");  // a directory named like an image is not a file
    std::vector<std::string> expected;
    for (const auto& n : names)
        if (n != "notes.txt" && n != "a/z/t.npy") expected.push_back((root / n).string());
    std::sort(expected.begin(), expected.end());
    CHECK(resnet::image_files(root.string()) == expected);
    CHECK(resnet::image_files((root / "empty.jpg").string()).empty());
    CHECK_THROWS_WITH(resnet::image_files((root / "missing").string()), Contains("missing: cannot list"));
    fs::remove_all(root);

    std::istringstream list("a.jpg\r\n\nwith space.png\n/abs/c.png");
    CHECK(resnet::read_list(list) == std::vector<std::string>{"a.jpg", "with space.png", "/abs/c.png"});

    std::vector<int> items(23);
    std::iota(items.begin(), items.end(), 0);
    for (int n : {1, 2, 5, 23, 40}) {
        std::multiset<int> all;
        for (int i = 0; i < n; ++i) {
            const auto part = resnet::shard(items, resnet::parse_shard(std::to_string(i) + "/" + std::to_string(n)));
            CHECK(part.size() >= items.size() / size_t(n));
            CHECK(part.size() <= items.size() / size_t(n) + 1);
            all.insert(part.begin(), part.end());
        }
        CHECK(all == std::multiset<int>(items.begin(), items.end()));  // disjoint, and the union is everything
    }
    for (const char* bad : {"3/3", "1", "-1/2", "a/b", "1/0", "/2", "1/"})
        CHECK_THROWS_WITH(resnet::parse_shard(bad), Contains("expected I/N with 0 <= I < N"));
}

// Names built from pieces that are valid UTF-8 (ASCII, 2-, 3- and 4-byte
// characters, the last ones of their ranges, JSON's special characters and
// the text "\udce9") and bytes that are not (lone continuations, leads cut
// short, overlong forms, encoded surrogates, beyond U+10FFFF, F5-FF).
TEST_CASE("json_name writes any name losslessly, valid UTF-8 as nlohmann::json does; read_line reads it back",
          "[collection]") {
    const std::vector<std::string> pieces = {"a", "/", " ", "\"", "\\", "\t", "\x01", "\x7f", "\\udce9", "\xc3\xa9",
                                             "\xdf\xbf", "\xe2\x82\xac", "\xed\x9f\xbf", "\xee\x80\x80",
                                             "\xf0\x9f\x93\xa9", "\xf4\x8f\xbf\xbf", "\x80", "\xbf", "\xc3", "\xe2\x82",
                                             "\xc0\xaf", "\xe0\x80\xaf", "\xed\xb3\xa9", "\xf4\x90\x80\x80", "\xf5",
                                             "\xff"};
    std::mt19937 rng(7);
    for (int t = 0; t < 3000; ++t) {
        std::string name;
        for (size_t n = rng() % 6 + 1; n > 0; --n) name += pieces[rng() % pieces.size()];
        const nlohmann::json oracle(name);
        std::string expected;  // nlohmann's own writing, empty if its strict UTF-8 check refuses the name
        try {
            expected = oracle.dump();
        } catch (const nlohmann::json::type_error&) {  // 316: invalid UTF-8
        }
        const bool valid = !expected.empty();
        if (valid) CHECK(cli::json_name(name) == expected);
        const std::string line = cli::json_line(name, nlohmann::ordered_json{{"error", "e"}});
        CHECK(line.back() == '\n');
        const auto back = cli::read_line(line.substr(0, line.size() - 1));
        REQUIRE(back);
        CHECK(back->input == name);
        CHECK(back->error);
        if (valid) {  // as another writer may escape it: \uXXXX, surrogate pairs beyond U+FFFF
            const auto ascii = cli::read_line("{\"input\":" + oracle.dump(-1, ' ', true) + ",\"top\":[]}");
            REQUIRE(ascii);
            CHECK(ascii->input == name);
            CHECK_FALSE(ascii->error);
        }
        CHECK_NOTHROW(nlohmann::json(line).dump());  // the line itself is UTF-8
    }
    CHECK_FALSE(cli::read_line("{\"top\":[]}"));
    CHECK_FALSE(cli::read_line("{\"input\":\"a\\udce9"));
}
