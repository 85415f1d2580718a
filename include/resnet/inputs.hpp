#pragma once
// Lists of input files for a batch job: directories walked for images, list
// files, and a deterministic share of the list for one of N machines.
//   auto paths = resnet::image_files("photos/");              // recursive, sorted
//   auto mine = resnet::shard(paths, resnet::parse_shard("3/8"));
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <istream>
#include <string>
#include <vector>

#include "error.hpp"

namespace resnet {

/// The extensions image_files() picks (compared case-insensitively): the
/// formats resnet/image.hpp decodes.
inline const std::vector<std::string>& image_extensions() {
    static const std::vector<std::string> ext = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tga", ".ppm", ".pgm", ".pnm"};
    return ext;
}

inline bool has_image_extension(const std::filesystem::path& path) {
    std::string ext = path.extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    const auto& known = image_extensions();
    return std::find(known.begin(), known.end(), ext) != known.end();
}

/// Every regular file with an image extension under `dir`, recursively
/// (symbolic links to files followed, to directories not), as `dir` joined
/// with the relative path, sorted byte-wise so every run and every machine
/// sees the same order. Throws "<dir>: cannot list <where>: <reason>",
/// also for an unreadable subfolder: skipping it would silently drop its
/// photos and change every shard's share.
inline std::vector<std::string> image_files(const std::string& dir) {
    namespace fs = std::filesystem;
    std::vector<std::string> files;
    std::error_code ec;
    fs::recursive_directory_iterator it(dir, ec), end;
    std::string where = dir;
    for (; !ec && it != end; it.increment(ec)) {
        std::error_code file_ec;
        where = it->path().string();
        if (it->is_regular_file(file_ec) && has_image_extension(it->path())) files.push_back(where);
    }
    if (ec) detail::fail(dir, ": cannot list (after ", where, "): ", ec.message());
    std::sort(files.begin(), files.end());
    return files;
}

/// The paths of a list file, one per line: trailing '\r' (CRLF files) removed,
/// empty lines skipped, everything else taken verbatim (spaces included).
inline std::vector<std::string> read_list(std::istream& in) {
    std::vector<std::string> paths;
    for (std::string line; std::getline(in, line);) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (!line.empty()) paths.push_back(line);
    }
    return paths;
}

/// Shard `index` of `count`: 0 <= index < count.
struct Shard {
    int index = 0, count = 1;
};

/// "I/N" → Shard{I, N}; throws unless 0 <= I < N.
inline Shard parse_shard(const std::string& text) {
    const size_t slash = text.find('/');
    Shard s{-1, 0};
    const auto number = [](const std::string& t, int& v) {
        if (t.empty() || t.size() > 9 || !std::all_of(t.begin(), t.end(), [](unsigned char c) { return std::isdigit(c); }))
            return false;
        v = std::stoi(t);
        return true;
    };
    if (slash == std::string::npos || !number(text.substr(0, slash), s.index) || !number(text.substr(slash + 1), s.count) ||
        s.index >= s.count)
        detail::fail("shard ", text, ": expected I/N with 0 <= I < N (e.g. 0/4 … 3/4)");
    return s;
}

/// Items i with i mod count == index: the `count` shards are disjoint, their
/// union is `items`, and their sizes differ by at most one. Interleaving (not
/// blocks) spreads any order in the list, e.g. big folders first, evenly.
template <class T>
std::vector<T> shard(const std::vector<T>& items, const Shard& s) {
    std::vector<T> mine;
    for (size_t i = size_t(s.index); i < items.size(); i += size_t(s.count)) mine.push_back(items[i]);
    return mine;
}

}  // namespace resnet
