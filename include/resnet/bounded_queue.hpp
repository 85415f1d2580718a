#pragma once
// A blocking first-in first-out queue of at most `capacity` items, shared by
// producer and consumer threads: what keeps a pipeline's memory flat.
//   resnet::BoundedQueue<Job> q(8);
//   producer: q.push(job);  ...  q.close();
//   consumer: while (auto job = q.pop()) run(*job);
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>

#include "error.hpp"

namespace resnet {

template <class T>
class BoundedQueue {
public:
    explicit BoundedQueue(size_t capacity) : capacity_(capacity) {
        if (capacity == 0) detail::fail("BoundedQueue: capacity 0 (expected at least 1)");
    }

    /// Waits while the queue is full, then appends `item`. Returns false (and
    /// drops the item) once the queue is closed.
    bool push(T item) {
        std::unique_lock<std::mutex> lock(mu_);
        not_full_.wait(lock, [&] { return closed_ || items_.size() < capacity_; });
        if (closed_) return false;
        items_.push_back(std::move(item));
        not_empty_.notify_one();
        return true;
    }

    /// Waits for an item and removes it; empty once the queue is closed and drained.
    std::optional<T> pop() {
        std::unique_lock<std::mutex> lock(mu_);
        not_empty_.wait(lock, [&] { return closed_ || !items_.empty(); });
        if (items_.empty()) return std::nullopt;
        std::optional<T> item(std::move(items_.front()));
        items_.pop_front();
        not_full_.notify_one();
        return item;
    }

    /// No more pushes: waiting producers return false, consumers drain what is left.
    void close() {
        std::lock_guard<std::mutex> lock(mu_);
        closed_ = true;
        not_full_.notify_all();
        not_empty_.notify_all();
    }

    size_t capacity() const { return capacity_; }

private:
    const size_t capacity_;
    std::mutex mu_;
    std::condition_variable not_full_, not_empty_;
    std::deque<T> items_;
    bool closed_ = false;
};

}  // namespace resnet
