#pragma once
// An ordered two-stage pipeline: load items on some threads, run them on
// others, and hand the results back in item order on the calling thread, with
// at most `window` items in flight, so memory stays flat however many items
// there are. What `classify` uses to decode upcoming images while others go
// through the network:
//   resnet::ordered_pipeline<Tensor<float>, Tensor<float>>(paths.size(),
//       [&](size_t i) { return resnet::load_input(paths[i], pre); },            // `loaders` threads
//       [&](size_t, Tensor<float> x) { return model.forward(x); },             // `workers` threads
//       [&](size_t i, resnet::Outcome<Tensor<float>> r) { ... },               // calling thread, i = 0, 1, …
//       {/*loaders*/ 1, /*workers*/ 2, /*window*/ 16});
#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "bounded_queue.hpp"
#include "error.hpp"

namespace resnet {

/// What a stage made of an item: its value, or the exception it threw.
template <class T>
struct Outcome {
    std::optional<T> value;
    std::exception_ptr error;
};

struct PipelineOptions {
    int loaders = 1;    ///< threads running load()
    int workers = 1;    ///< threads running run()
    size_t window = 8;  ///< items loaded but not yet emitted, at most (>= 1)
};

/// For i = 0 … count-1: load(i) on one of `loaders` threads, then
/// run(i, loaded) on one of `workers` threads, then emit(i, outcome) on the
/// calling thread, strictly in order of i. An exception thrown by load or run
/// becomes the outcome's `error` (run is skipped for an item whose load
/// threw) and the other items go on. Item i is loaded only once items before
/// i - window have been emitted; loaded items wait for a worker in a
/// BoundedQueue. If emit throws, the threads finish the item they are running,
/// skip the rest, and the exception propagates; so does a failure of the
/// pipeline's own bookkeeping on a thread (e.g. std::bad_alloc queuing a
/// result), which would otherwise end the process.
template <class Loaded, class Result>
void ordered_pipeline(size_t count, const std::function<Loaded(size_t)>& load,
                      const std::function<Result(size_t, Loaded)>& run,
                      const std::function<void(size_t, Outcome<Result>)>& emit, const PipelineOptions& options) {
    if (options.loaders < 1 || options.workers < 1 || options.window < 1)
        detail::fail("ordered_pipeline: ", options.loaders, " loaders, ", options.workers, " workers, window ",
                     options.window, " (expected each >= 1)");
    std::mutex mu;
    std::condition_variable progressed;  // an item was emitted or finished, or the pipeline stops
    size_t next = 0, emitted = 0;
    int loaders_left = options.loaders;
    bool stop = false;
    std::exception_ptr fatal;  // a failure outside load() and run()
    std::map<size_t, Outcome<Result>> done;
    BoundedQueue<std::pair<size_t, Outcome<Loaded>>> queue(size_t(options.workers));

    const auto loader = [&] {
        for (;;) {
            size_t i;
            {
                std::unique_lock<std::mutex> lock(mu);
                progressed.wait(lock, [&] { return stop || next >= count || next < emitted + options.window; });
                if (stop || next >= count) break;
                i = next++;
            }
            Outcome<Loaded> loaded;
            try {
                loaded.value.emplace(load(i));
            } catch (...) {
                loaded.error = std::current_exception();
            }
            if (!queue.push({i, std::move(loaded)})) break;
        }
        std::lock_guard<std::mutex> lock(mu);
        if (--loaders_left == 0) queue.close();
    };
    const auto worker = [&] {
        while (auto item = queue.pop()) {
            Outcome<Result> result;
            result.error = item->second.error;
            {
                std::lock_guard<std::mutex> lock(mu);
                if (stop) continue;
            }
            if (!result.error) {
                try {
                    result.value.emplace(run(item->first, std::move(*item->second.value)));
                } catch (...) {
                    result.error = std::current_exception();
                }
            }
            std::lock_guard<std::mutex> lock(mu);
            done.emplace(item->first, std::move(result));
            progressed.notify_all();
        }
    };

    // Runs a thread's body; a failure escaping it stops the pipeline and is
    // rethrown on the calling thread.
    const auto guarded = [&](const auto& body) {
        return [&] {
            try {
                body();
            } catch (...) {
                std::lock_guard<std::mutex> lock(mu);
                if (!fatal) fatal = std::current_exception();
                stop = true;
                queue.close();
                progressed.notify_all();
            }
        };
    };
    std::vector<std::thread> threads;
    const auto finish = [&] {
        {
            std::lock_guard<std::mutex> lock(mu);
            stop = true;
        }
        progressed.notify_all();
        queue.close();
        for (auto& t : threads) t.join();
    };
    try {
        for (int t = 0; t < options.loaders; ++t) threads.emplace_back(guarded(loader));
        for (int t = 0; t < options.workers; ++t) threads.emplace_back(guarded(worker));
        for (size_t i = 0; i < count; ++i) {
            Outcome<Result> outcome;
            {
                std::unique_lock<std::mutex> lock(mu);
                progressed.wait(lock, [&] { return fatal || done.count(i) != 0; });
                if (fatal) std::rethrow_exception(fatal);
                outcome = std::move(done.at(i));
                done.erase(i);
            }
            emit(i, std::move(outcome));
            {
                std::lock_guard<std::mutex> lock(mu);
                emitted = i + 1;
            }
            progressed.notify_all();
        }
    } catch (...) {
        finish();
        throw;
    }
    finish();
}

}  // namespace resnet
