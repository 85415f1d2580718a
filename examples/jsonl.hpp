#pragma once
// classify's output file: JSON Lines, appended and flushed line by line, so a
// killed run leaves whole lines (at most a final partial one, which --resume
// repairs), and resumable: the inputs already answered are read back.
#include <nlohmann/json.hpp>
#include <resnet/error.hpp>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <string>

namespace cli {

/// The "input" of every line of an existing JSONL file. A last line without
/// its '\n' (a run killed mid-write) is completed if it is a whole JSON
/// object, else cut off, with a note on stderr. Any other line that is not a
/// JSON object with a string "input" is an error naming the file and line:
/// such a file is not ours to append to.
inline std::set<std::string> answered_inputs(const std::string& path) {
    std::set<std::string> inputs;
    std::ifstream in(path, std::ios::binary);
    const auto input_of = [](const std::string& line) {
        const auto j = nlohmann::json::parse(line, nullptr, false);
        return j.is_object() && j.contains("input") && j["input"].is_string() ? j["input"].get<std::string>()
                                                                               : std::string();
    };
    uint64_t whole = 0;  // bytes of the complete lines so far
    std::string line;
    for (size_t number = 1; std::getline(in, line); ++number) {
        const std::string input = input_of(line);
        if (in.eof()) {  // the last line, without its '\n'
            in.close();
            if (!input.empty()) {
                inputs.insert(input);
                std::ofstream out(path, std::ios::app | std::ios::binary);
                out << '\n';
                out.close();
                if (!out) resnet::detail::fail(path, ": cannot complete its last line: ", std::strerror(errno));
                std::cerr << "classify: " << path << ": completed its last line, which lacked a newline\n";
            } else {
                std::filesystem::resize_file(path, whole);
                std::cerr << "classify: " << path << ": dropped an incomplete last line (" << line.size()
                          << " bytes) left by an interrupted run\n";
            }
            break;
        }
        if (input.empty())
            resnet::detail::fail(path, " line ", number, ": not a classify result (expected a JSON object with "
                                 "\"input\"); refusing to resume into this file");
        inputs.insert(input);
        whole += line.size() + 1;
    }
    return inputs;
}

/// Where results go: a FILE* (stdout, or a file opened for appending) that
/// gets whole lines, each flushed at once.
class LineWriter {
public:
    explicit LineWriter(std::FILE* out, std::string name) : out_(out), name_(std::move(name)) {}
    ~LineWriter() {
        if (out_ != stdout) std::fclose(out_);
    }
    LineWriter(const LineWriter&) = delete;
    LineWriter& operator=(const LineWriter&) = delete;

    /// Opens `path` for appending; without `resume`, a file that already holds
    /// something is refused rather than mixed into.
    static LineWriter append_to(const std::string& path, bool resume) {
        std::error_code ec;
        if (!resume && std::filesystem::file_size(path, ec) > 0 && !ec)
            resnet::detail::fail(path, ": already holds results; pass --resume to continue it, or remove it");
        std::FILE* f = std::fopen(path.c_str(), "ab");
        if (!f) resnet::detail::fail(path, ": cannot open for appending: ", std::strerror(errno));
        // Unbuffered, so one input's lines (N of them for an N-image .npy)
        // leave in one write(2): a buffered stream splits text over 4 KiB
        // into several, and a run killed between them left lines that made
        // --resume skip the input's remaining images.
        std::setvbuf(f, nullptr, _IONBF, 0);
        return LineWriter(f, path);
    }

    /// Writes `text` (whole lines, each ending in '\n') and flushes it.
    void write(const std::string& text) {
        if (std::fwrite(text.data(), 1, text.size(), out_) != text.size() || std::fflush(out_) != 0)
            resnet::detail::fail(name_, ": cannot write: ", std::strerror(errno));
    }

private:
    std::FILE* out_;
    std::string name_;
};

}  // namespace cli
