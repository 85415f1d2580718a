// Malformed weight files, concurrency (the thread pool itself too), resource
// limits, the CPU budget, determinism.
#include <catch2/catch.hpp>

#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <memory>
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
    // Values are checked in runs as they are read: an Inf past the first run
    // of a large tensor, a -Inf in the last element (past the 16-lane sums).
    const auto with_value = [](const std::string& key, int64_t index, float value) {  // index -1: the last
        ModelFile f;
        const auto& offsets = f.header[key]["data_offsets"];
        const uint64_t at = index < 0 ? offsets[1].get<uint64_t>() - 4 : offsets[0].get<uint64_t>() + 4 * index;
        std::memcpy(&f.data[at], &value, 4);
        return f.load_error();
    };
    const float inf = std::numeric_limits<float>::infinity();
    CHECK_THAT(with_value("layer4.1.conv2.weight", 300001, inf),
               Contains("'layer4.1.conv2.weight' contains NaN or Inf"));
    CHECK_THAT(with_value("fc.bias", -1, -inf), Contains("'fc.bias' contains NaN or Inf"));

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
    CHECK_THROWS_WITH(model.reserve(1, 1024, 1024), Contains("[1,3,1024,1024]") && Contains("limit of 64 MiB"));
    CHECK_THROWS_WITH(model.reserve(1, 40000, 1), Contains("[1,3,40000,1]"));
    // A limit below the preset's workspace: the load (which reserves for it) still succeeds.
    resnet::LoadOptions tight;
    tight.run.max_workspace_bytes = int64_t(1) << 20;
    const auto small = resnet::load_model(fixture("resnet18.safetensors"), tight);
    CHECK_THROWS_WITH(small.forward(Tensor<float>({1, 3, 224, 224})), Contains("limit of 1 MiB"));
}

TEST_CASE("the same input gives the same bits across calls and models", "[hardening]") {
    const auto a = resnet::load_model(fixture("resnet18.safetensors"));
    const auto b = resnet::load_model(fixture("resnet18.safetensors"));
    resnet::SafeTensorsFile ref(fixture("resnet18.ref.safetensors"));
    const auto x = ref.read<float>("x1");
    const auto first = a.forward(x);
    CHECK(max_abs_diff(a.forward(x), first) == 0.0);
    b.reserve(2, 320, 288);  // a workspace larger than x needs
    CHECK(max_abs_diff(b.forward(x), first) == 0.0);
}

namespace {

/// Runs `steps` parallel_for calls of 0..max_count items on `pool`. Each step's
/// state lives on the heap and is freed as soon as parallel_for returns, so a
/// worker touching it later is a use-after-free under ASan; besides, every
/// item checks that its step is the open one and counts its own runs.
void stress_pool(resnet::detail::ThreadPool& pool, int steps, int max_count, std::atomic<int>& errors) {
    std::atomic<int> open_step{-1};
    for (int s = 0; s < steps; ++s) {
        const int64_t count = (s * 7919) % (max_count + 1);
        auto hits = std::make_unique<std::vector<std::atomic<int>>>(size_t(count));
        open_step = s;
        pool.parallel_for(count, [&, s](int64_t i) {
            if (open_step.load() != s) ++errors;
            if ((s + i) % 5 == 0) std::this_thread::yield();  // let the OS interleave differently
            ++(*hits)[size_t(i)];
        });
        open_step = -1;
        for (const auto& h : *hits) errors += h.load() != 1;
    }
}

}  // namespace

TEST_CASE("thread pool: every item runs once, inside its own step, however threads and items compare",
          "[hardening][pool]") {
    for (int threads : {2, 3, 8}) {  // 8 threads on fewer cores: workers are often descheduled
        INFO(threads << " threads");
        resnet::detail::ThreadPool pool(threads);
        CHECK(pool.threads() == threads);
        std::atomic<int> errors{0};
        stress_pool(pool, 3000, 2 * threads + 3, errors);  // counts from 0 to above the thread count
        stress_pool(pool, 200, 300, errors);
        CHECK(errors == 0);
    }
}

TEST_CASE("thread pool: each thread starts on its own share", "[hardening][pool]") {
    // Two items that wait for each other to start (up to a second) must run
    // on two threads at once; the caller's share is item 0, the worker's
    // item 1. With the slots published first to last, the worker took item
    // 0 in 1382–1650 of these 2000 steps. The pool does not narrow: a worker
    // that some other process keeps off its core twice would otherwise hand
    // the next 256 steps to the caller alone (a CI run beside a compile: 256
    // steps timed out), which is the narrowing test's subject, not this one's.
    resnet::detail::ThreadPool pool(2, false);
    const auto caller = std::this_thread::get_id();
    std::atomic<int> timed_out{0};
    int wrong = 0;
    for (int s = 0; s < 2000; ++s) {
        std::atomic<int> started{0};
        std::thread::id ran[2];
        pool.parallel_for(2, [&](int64_t i) {
            ran[i] = std::this_thread::get_id();
            ++started;
            const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(1);
            while (started.load() < 2) {
                if (std::chrono::steady_clock::now() > until) {
                    ++timed_out;
                    break;
                }
                std::this_thread::yield();
            }
        });
        wrong += ran[0] != caller || ran[1] == caller;
    }
    CHECK(timed_out == 0);
    CHECK(wrong == 0);
}

TEST_CASE("thread pool: parallel_ranges covers every index once, in contiguous ranges", "[hardening][pool]") {
    for (int threads : {1, 2, 8}) {
        resnet::detail::ThreadPool pool(threads);
        for (int64_t count : {1, 2, 7, 31, 32, 33, 1000}) {
            INFO(threads << " threads, " << count << " items");
            std::vector<std::atomic<int>> hits(static_cast<size_t>(count));
            std::atomic<int> ranges{0}, bad{0};
            pool.parallel_ranges(count, [&](int64_t begin, int64_t end) {
                ++ranges;
                bad += begin >= end || begin < 0 || end > count;
                for (int64_t i = begin; i < end; ++i) ++hits[size_t(i)];
            });
            CHECK(bad == 0);
            CHECK(ranges <= std::min<int64_t>(count, 4 * threads));
            for (const auto& h : hits) CHECK(h.load() == 1);
        }
    }
}

TEST_CASE("thread pool: an item's exception reaches the caller, the others still run, the pool stays usable",
          "[hardening][pool]") {
    resnet::detail::ThreadPool pool(3);
    for (int round = 0; round < 200; ++round) {
        const int64_t count = 1 + round % 17;
        std::vector<std::atomic<int>> hits(static_cast<size_t>(count));
        const auto step = [&](int64_t i) {
            ++hits[size_t(i)];
            if (i % 4 == round % 4) throw std::runtime_error("item " + std::to_string(i));
        };
        if (count > round % 4) {
            CHECK_THROWS_WITH(pool.parallel_for(count, step), Catch::StartsWith("item "));
        } else {
            CHECK_NOTHROW(pool.parallel_for(count, step));
        }
        for (const auto& h : hits) CHECK(h.load() == 1);
    }
    std::atomic<int> errors{0};
    stress_pool(pool, 100, 20, errors);
    CHECK(errors == 0);
}

TEST_CASE("thread pool: two steps stalled by a late worker narrow the pool to the caller, which widens again later",
          "[hardening][pool]") {
    resnet::detail::ThreadPool pool(2);
    const auto caller = std::this_thread::get_id();
    // One item each: the worker's sleeps, as if the OS had descheduled it,
    // 50 ms and twice as long as it took to start (the caller's share, on a
    // loaded machine); the caller's returns once the worker holds the other.
    const auto stalled_step = [&] {
        std::atomic<bool> worker_started{false};
        const auto start = std::chrono::steady_clock::now();
        pool.parallel_for(2, [&](int64_t) {
            if (std::this_thread::get_id() != caller) {
                worker_started = true;
                std::this_thread::sleep_for(std::chrono::milliseconds(50) + 2 * (std::chrono::steady_clock::now() - start));
                return;
            }
            const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
            while (!worker_started && std::chrono::steady_clock::now() < give_up) std::this_thread::yield();
        });
        return worker_started.load();
    };
    REQUIRE(stalled_step());
    CHECK(pool.width() == 2);  // a lone stall: a first touch of fresh pages, a vCPU held back once
    pool.parallel_for(8, [](int64_t) {});
    REQUIRE(stalled_step());
    CHECK(pool.width() == 1);
    std::atomic<int> elsewhere{0};
    pool.parallel_for(64, [&](int64_t) { elsewhere += std::this_thread::get_id() != caller; });
    CHECK(elsewhere == 0);
    int steps = 1;
    for (; pool.width() == 1 && steps < 100000; ++steps) pool.parallel_for(2, [](int64_t) {});
    CHECK(steps > 16);
    CHECK(pool.width() == 2);
}

TEST_CASE("thread pool: each thread starts on its own contiguous share of a step's items", "[hardening][pool]") {
    resnet::detail::ThreadPool pool(2);
    const auto caller = std::this_thread::get_id();
    int split = 0;  // steps whose first half ran on the caller and second half on the worker
    for (int step = 0; step < 20; ++step) {
        std::vector<std::thread::id> ran_by(8);
        pool.parallel_for(8, [&](int64_t i) {
            ran_by[size_t(i)] = std::this_thread::get_id();
            std::this_thread::sleep_for(std::chrono::milliseconds(2));  // long enough that both threads take part
        });
        bool halves = true;
        for (size_t i = 0; i < 8; ++i) halves = halves && (ran_by[i] == caller) == (i < 4);
        split += halves;
    }
    // Stealing may move items when a thread runs late (a busy machine), so
    // most steps, not all; with one shared counter the threads alternate.
    CHECK(split >= 10);
}

TEST_CASE("thread pool: pools built and destroyed in a loop, idle or right after a step", "[hardening][pool]") {
    std::atomic<int> errors{0};
    for (int i = 0; i < 300; ++i) {
        resnet::detail::ThreadPool pool(1 + i % 6);
        if (i % 3) stress_pool(pool, i % 3, 9, errors);
    }
    CHECK(errors == 0);
}

TEST_CASE("CPU quotas in cgroup files parse as the kernel writes them; anything else is ignored", "[hardening]") {
    using namespace resnet::detail;
    CHECK(cgroup_v2_cpus("max 100000") == 0);
    CHECK(cgroup_v2_cpus("150000 100000") == 2);  // rounded up
    CHECK(cgroup_v2_cpus("200000 100000\n") == 2);
    CHECK(cgroup_v2_cpus("5000 100000") == 1);
    for (const char* garbage : {"", "max", "150000", "150000 100000 3", "1.5 1", "-100000 100000", "100000 0",
                                "x100000 100000", "100000 100000x"})
        CHECK(cgroup_v2_cpus(garbage) == 0);
    CHECK(cgroup_v1_cpus("-1", "100000") == 0);  // no quota
    CHECK(cgroup_v1_cpus("250000", "100000") == 3);
    CHECK(cgroup_v1_cpus("100000", "100000") == 1);
    for (const auto& [quota, period] : std::vector<std::pair<std::string, std::string>>{
             {"", "100000"}, {"100000", ""}, {"abc", "100000"}, {"100000", "0"}, {"1e5", "100000"}})
        CHECK(cgroup_v1_cpus(quota, period) == 0);
}

TEST_CASE("the cgroup CPU limit is the smallest quota from the process's cgroup up to the root", "[hardening]") {
    namespace fs = std::filesystem;
    const fs::path root = fs::temp_directory_path() / ("resnet_cgroup_" + std::to_string(::getpid()));
    fs::remove_all(root);
    const auto put = [&](const std::string& file, const std::string& text) {
        fs::create_directories((root / file).parent_path());
        std::ofstream(root / file) << text << '\n';
    };
    const std::string r = root.string();
    put("cpu.max", "max 100000");
    put("a/cpu.max", "300000 100000");
    put("a/b/cpu.max", "not a quota");
    CHECK(resnet::detail::cgroup_cpus(r, "0::/a/b\n") == 3);
    CHECK(resnet::detail::cgroup_cpus(r, "0::/a/b/not/mounted\n") == 3);  // missing levels are skipped
    CHECK(resnet::detail::cgroup_cpus(r, "0::/\n") == 0);
    put("cpu.max", "150000 100000");  // a tighter ancestor wins
    CHECK(resnet::detail::cgroup_cpus(r, "0::/a/b\n") == 2);
    put("cpu,cpuacct/job/cpu.cfs_quota_us", "50000");
    put("cpu,cpuacct/job/cpu.cfs_period_us", "100000");
    put("cpu,cpuacct/cpu.cfs_quota_us", "-1");
    put("cpu,cpuacct/cpu.cfs_period_us", "100000");
    CHECK(resnet::detail::cgroup_cpus(r, "4:memory:/job\n3:cpu,cpuacct:/job\n") == 1);
    CHECK(resnet::detail::cgroup_cpus(r, "3:cpu,cpuacct:/job\n0::/a\n") == 1);  // v1 and v2: the smaller
    CHECK(resnet::detail::cgroup_cpus(r, "4:memory:/job\n") == 0);             // no cpu controller
    CHECK(resnet::detail::cgroup_cpus(r, "garbage\n\n::\n0::a\n") == 0);
    fs::remove_all(root);
}

TEST_CASE("the default thread count follows this thread's affinity mask", "[hardening]") {
    cpu_set_t saved, one;
    REQUIRE(sched_getaffinity(0, sizeof saved, &saved) == 0);
    const int allowed = CPU_COUNT(&saved);
    const auto model = resnet::random_model<float>("resnet18", 10);
    CHECK(model.threads() == resnet::detail::cpu_budget());
    CHECK(resnet::detail::cpu_budget() <= allowed);
    int first = 0;
    while (!CPU_ISSET(first, &saved)) ++first;
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    REQUIRE(sched_setaffinity(0, sizeof one, &one) == 0);
    const int pinned = model.threads();
    sched_setaffinity(0, sizeof saved, &saved);
    CHECK(pinned == 1);
}

// Run by ctest `cpu_budget_taskset` under `taskset -c CPU`: a whole process
// started on one CPU defaults to one thread.
TEST_CASE("under taskset -c CPU the default is one thread", "[.taskset]") {
    CHECK(resnet::random_model<float>("resnet18", 10).threads() == 1);
}
