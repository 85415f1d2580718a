#pragma once
// Load-time work on the loader's thread pool (loader.hpp): the layers lay
// their weights out (Winograd transforms, GEMM panels, direct blocks) item
// by item, into memory faulted in on every thread.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <utility>

#include "../tensor.hpp"
#include "thread_pool.hpp"

namespace resnet::detail {

/// fn(i) for every i in [0, count): on the pool's threads, or in order on
/// the calling thread when there is no pool.
template <class F>
void run_items(ThreadPool* pool, int64_t count, const F& fn) {
    if (pool) return pool->parallel_for(count, fn);
    for (int64_t i = 0; i < count; ++i) fn(i);
}

constexpr size_t kHugePage = size_t(2) << 20;

/// bytes rounded up to whole huge pages.
inline size_t whole_huge_pages(size_t bytes) { return (bytes + kHugePage - 1) / kHugePage * kHugePage; }

/// Faults in [p, p + bytes) (at most kHugePage bytes; a huge page where
/// aligned and marked for one) as a huge page or as small pages, as
/// page_choice() says, timing a whole kHugePage while that is undecided.
inline void populate_huge_page(char* p, size_t bytes) {
    PageChoice& choice = page_choice();
    const PageChoice::Mode mode = choice.mode();
    if (mode == PageChoice::Trial || mode == PageChoice::Small) forgo_huge_pages(p, bytes);
    const bool timed = bytes == kHugePage && (mode == PageChoice::Huge || mode == PageChoice::Trial);
    const auto start = std::chrono::steady_clock::now();
    populate_pages(p, bytes);
    if (!timed) return;
    const auto took = std::chrono::steady_clock::now() - start;
    if (mode == PageChoice::Huge) choice.huge_took(took);
    else choice.trial_took(took);
}

/// Faults in [base, base + bytes) on the pool's threads (or the calling
/// thread), one 2 MiB huge page per item (populate_huge_page). In a VM that
/// reports free memory to its host (virtio-balloon free page reporting), a
/// fresh huge page may have to be backed by the host on its first fault,
/// 3–7 ms each (PageChoice), and ResNet-50's load writes ~145 MiB; in one
/// such VM two threads faulted 150 MiB in 120–143 ms, one in 288–299.
/// ResNet-50's load in fresh processes (medians of 6 interleaved rounds,
/// AMD EPYC family 26 model 2, Firecracker VM): 2 threads 313 → 196 ms
/// with the layouts and their pages on the pool (and the reads in runs,
/// safetensors.hpp), 1 thread 321 → 285 ms from the reads alone.
inline void populate_on(ThreadPool* pool, char* base, size_t bytes) {
    run_items(pool, int64_t(whole_huge_pages(bytes) / kHugePage), [&](int64_t i) {
        const size_t begin = size_t(i) * kHugePage;
        populate_huge_page(base + begin, std::min(kHugePage, bytes - begin));
    });
}

/// Tensor<T>::uninitialized(shape), its pages faulted in on the pool's
/// threads (populate_on); without a pool, as its writer touches them.
template <class T>
Tensor<T> populated(Shape shape, ThreadPool* pool) {
    if (!pool) return Tensor<T>::uninitialized(std::move(shape));
    Tensor<T> t = Tensor<T>::unpopulated(std::move(shape));
    populate_on(pool, reinterpret_cast<char*>(t.data()), size_t(t.size()) * sizeof(T));
    return t;
}

}  // namespace resnet::detail
