#pragma once
// classify's output file: JSON Lines, appended and flushed line by line, so a
// killed run leaves whole lines (at most a final partial one, which --resume
// repairs), and resumable: the inputs already answered are read back, file
// names that are not UTF-8 included (json_name).
#include <nlohmann/json.hpp>
#include <resnet/error.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <set>
#include <string>

namespace cli {

/// The length of the valid UTF-8 sequence that starts at s[i], or 0 if none
/// does: strict UTF-8 as Python decodes it (no overlong forms, no encoded
/// surrogates, nothing above U+10FFFF).
inline size_t utf8_sequence(const std::string& s, size_t i) {
    const auto byte = [&](size_t k) { return k < s.size() ? unsigned(static_cast<unsigned char>(s[k])) : 0u; };
    const unsigned lead = byte(i);
    if (lead < 0x80) return 1;
    size_t n = 0;
    unsigned lo = 0x80, hi = 0xBF;  // the range of the second byte
    if (lead >= 0xC2 && lead <= 0xDF) n = 2;
    if (lead >= 0xE0 && lead <= 0xEF) n = 3, lo = lead == 0xE0 ? 0xA0 : lo, hi = lead == 0xED ? 0x9F : hi;
    if (lead >= 0xF0 && lead <= 0xF4) n = 4, lo = lead == 0xF0 ? 0x90 : lo, hi = lead == 0xF4 ? 0x8F : hi;
    if (n == 0 || byte(i + 1) < lo || byte(i + 1) > hi) return 0;
    for (size_t k = 2; k < n; ++k)
        if ((byte(i + k) & 0xC0) != 0x80) return 0;
    return n;
}

/// A file name (any bytes but NUL) as a JSON string, losslessly: valid UTF-8
/// as nlohmann::json writes it, and each byte that is not part of valid UTF-8
/// as the escape \udcXX (a lone low surrogate, XX the byte), which is
/// Python's surrogateescape: json.loads of this and of json.dumps(os.fsdecode(name))
/// give the same string, and os.fsencode of it gives the name's bytes back.
inline std::string json_name(const std::string& name) {
    std::string quoted = "\"", valid;
    const auto flush = [&] {
        const std::string q = nlohmann::json(valid).dump();
        quoted.append(q, 1, q.size() - 2);
        valid.clear();
    };
    for (size_t i = 0; i < name.size();) {
        const size_t n = utf8_sequence(name, i);
        if (n > 0) {
            valid.append(name, i, n);
            i += n;
        } else {
            flush();
            char escape[8];
            std::snprintf(escape, sizeof escape, "\\udc%02x", unsigned(static_cast<unsigned char>(name[i++])));
            quoted += escape;
        }
    }
    flush();
    return quoted + '"';
}

/// One line of classify's output: {"input": json_name(input), then the
/// members of `rest`, an object with at least one}. Bytes of `rest` that are
/// not UTF-8 (an error message may quote anything) become U+FFFD.
inline std::string json_line(const std::string& input, const nlohmann::ordered_json& rest) {
    const std::string members = rest.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
    return "{\"input\":" + json_name(input) + "," + members.substr(1) + "\n";
}

/// What a line of the output says: the input (json_name decoded back to its
/// bytes), and whether the line is an error.
struct Line {
    std::string input;
    bool error = false;
};

/// `text` as a Line, or nothing if it is not a JSON object with a string
/// "input". nlohmann::json refuses lone surrogates, so each \udc80-\udcff
/// escape not preceded by a high surrogate escape is read as \u0000 and its
/// two hex digits XX, then turned into the byte XX: NUL is never in a name.
inline std::optional<Line> read_line(const std::string& text) {
    std::string json;
    bool after_high = false;  // the previous thing was a \ud800-\udbff escape
    for (size_t i = 0; i < text.size();) {
        const bool u = text.compare(i, 2, "\\u") == 0 && i + 6 <= text.size() &&
                       std::all_of(text.begin() + long(i) + 2, text.begin() + long(i) + 6,
                                   [](unsigned char c) { return std::isxdigit(c); });
        const unsigned unit = u ? unsigned(std::stoul(text.substr(i + 2, 4), nullptr, 16)) : 0;
        const size_t size = u ? 6 : text[i] == '\\' ? 2 : 1;
        if (unit >= 0xDC80 && unit <= 0xDCFF && !after_high)
            json += "\\u0000" + text.substr(i + 4, 2);
        else
            json.append(text, i, size);
        after_high = unit >= 0xD800 && unit <= 0xDBFF;
        i += size;
    }
    const auto j = nlohmann::json::parse(json, nullptr, false);
    if (!j.is_object() || !j.contains("input") || !j["input"].is_string()) return std::nullopt;
    const auto& escaped = j["input"].get_ref<const std::string&>();
    Line line{"", j.contains("error")};
    for (size_t i = 0; i < escaped.size(); ++i) {
        if (escaped[i] == '\0' && i + 2 < escaped.size() && std::isxdigit(static_cast<unsigned char>(escaped[i + 1])) &&
            std::isxdigit(static_cast<unsigned char>(escaped[i + 2]))) {
            line.input += char(std::stoi(escaped.substr(i + 1, 2), nullptr, 16));
            i += 2;
        } else {
            line.input += escaped[i];
        }
    }
    return line;
}

/// The inputs of an existing JSONL file, by what their lines say.
struct Answered {
    std::set<std::string> results;  ///< inputs with a result line: done
    std::set<std::string> errors;   ///< inputs with only error lines: to retry
};

/// Reads an existing JSONL file. A last line without its '\n' (a run killed
/// mid-write) is completed if it is a whole JSON object, else cut off, with a
/// note on stderr. Any other line that is not a JSON object with a string
/// "input" is an error naming the file and line: such a file is not ours to
/// append to.
inline Answered answered_inputs(const std::string& path) {
    Answered answered;
    std::ifstream in(path, std::ios::binary);
    const auto note = [&](const Line& line) {
        (line.error ? answered.errors : answered.results).insert(line.input);
    };
    uint64_t whole = 0;  // bytes of the complete lines so far
    std::string text;
    for (size_t number = 1; std::getline(in, text); ++number) {
        const auto line = read_line(text);
        if (in.eof()) {  // the last line, without its '\n'
            in.close();
            if (line) {
                note(*line);
                std::ofstream out(path, std::ios::app | std::ios::binary);
                out << '\n';
                out.close();
                if (!out) resnet::detail::fail(path, ": cannot complete its last line: ", std::strerror(errno));
                std::cerr << "classify: " << path << ": completed its last line, which lacked a newline\n";
            } else {
                std::filesystem::resize_file(path, whole);
                std::cerr << "classify: " << path << ": dropped an incomplete last line (" << text.size()
                          << " bytes) left by an interrupted run\n";
            }
            break;
        }
        if (!line)
            resnet::detail::fail(path, " line ", number, ": not a classify result (expected a JSON object with "
                                 "\"input\"); refusing to resume into this file");
        note(*line);
        whole += text.size() + 1;
    }
    for (const auto& input : answered.results) answered.errors.erase(input);
    return answered;
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
