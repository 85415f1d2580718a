#pragma once
// A progress line on stderr for long runs: done/total, images/s, ETA, errors.
// On a terminal it is redrawn in place (at most 4 times a second); into a
// file or pipe (--progress) a line is appended every 10 s.
#include <chrono>
#include <cstdio>
#include <string>

namespace cli {

class Progress {
public:
    Progress(size_t total, bool enabled, bool terminal)
        : total_(total), enabled_(enabled), terminal_(terminal), start_(Clock::now()), last_(start_) {}

    /// One more input done (`failed`: it got an error).
    void step(bool failed) {
        ++done_;
        errors_ += failed;
        const auto now = Clock::now();
        if (enabled_ && now - last_ >= (terminal_ ? std::chrono::milliseconds(250) : std::chrono::seconds(10))) {
            last_ = now;
            draw(false);
        }
    }

    /// The final line.
    void finish() {
        if (enabled_) draw(true);
    }

    /// Erases a terminal's progress line, so that output to the same terminal starts at column 0.
    void clear() const {
        if (enabled_ && terminal_ && done_ > 0) std::fputs("\r\033[K", stderr);
    }

private:
    using Clock = std::chrono::steady_clock;

    static std::string duration(double s) {
        const long t = long(s + 0.5);
        char buf[32];
        if (t >= 3600)
            std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, t / 60 % 60);
        else
            std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
        return buf;
    }

    void draw(bool final) const {
        const double seconds = std::chrono::duration<double>(Clock::now() - start_).count();
        const double rate = seconds > 0 ? double(done_) / seconds : 0;
        const std::string eta = final ? "took " + duration(seconds)
                                      : rate > 0 ? "ETA " + duration(double(total_ - done_) / rate) : "ETA ?";
        std::fprintf(stderr, "%s%zu/%zu images, %.1f images/s, %s, %zu errors%s", terminal_ ? "\r\033[K" : "", done_,
                     total_, rate, eta.c_str(), errors_, terminal_ && !final ? "" : "\n");
        std::fflush(stderr);
    }

    size_t total_, done_ = 0, errors_ = 0;
    bool enabled_, terminal_;
    Clock::time_point start_, last_;
};

}  // namespace cli
