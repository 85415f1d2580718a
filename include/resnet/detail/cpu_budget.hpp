#pragma once
// How many CPUs this process may really use: the smallest of its affinity
// mask (taskset, cpusets) and its cgroup CPU quotas (a container's
// `limits.cpu`, systemd's CPUQuota), rounded up. hardware_concurrency()
// counts the whole host, which oversubscribes a quota-limited container.
// Limits that cannot be read or parsed are ignored, never guessed.
#include <algorithm>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>

#if defined(__linux__)
#include <sched.h>
#endif

namespace resnet::detail {

/// ⌈quota / period⌉ CPUs; 0 (no limit) unless both are positive.
inline int quota_cpus(int64_t quota, int64_t period) {
    if (quota <= 0 || period <= 0) return 0;
    return int(std::min<int64_t>((quota + period - 1) / period, 1 << 20));
}

/// The whole of `text` but surrounding whitespace as one integer, else false.
inline bool parse_integer(const std::string& text, int64_t& value) {
    std::istringstream in(text);
    std::string rest;
    return in >> value && !(in >> rest);
}

/// CPUs allowed by a cgroup v2 `cpu.max` ("$MAX $PERIOD", MAX "max" for no
/// limit): "150000 100000" → 2, "max 100000" → 0. Anything else → 0.
inline int cgroup_v2_cpus(const std::string& cpu_max) {
    std::istringstream in(cpu_max);
    std::string quota, period, rest;
    int64_t q = 0, p = 0;
    if (!(in >> quota >> period) || in >> rest || !parse_integer(quota, q) || !parse_integer(period, p)) return 0;
    return quota_cpus(q, p);
}

/// CPUs allowed by cgroup v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us`
/// ("-1" quota: no limit). Unparsable → 0.
inline int cgroup_v1_cpus(const std::string& quota, const std::string& period) {
    int64_t q = 0, p = 0;
    return parse_integer(quota, q) && parse_integer(period, p) ? quota_cpus(q, p) : 0;
}

/// The first line of a file; empty if it cannot be read.
inline std::string read_line(const std::string& path) {
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);
    return line;
}

/// The smallest CPU quota on this process's cgroups and their ancestors,
/// 0 if none. `proc_cgroup` is /proc/self/cgroup's text ("0::PATH" for v2,
/// "ID:CONTROLLERS:PATH" for v1), `root` where the hierarchies are mounted.
/// A cgroup's directory missing under `root` (a container that sees only its
/// own cgroup, mounted at the root) is skipped on the way up.
inline int cgroup_cpus(const std::string& root, const std::string& proc_cgroup) {
    int best = 0;
    const auto take = [&](int cpus) {
        if (cpus > 0) best = best ? std::min(best, cpus) : cpus;
    };
    std::istringstream lines(proc_cgroup);
    for (std::string line; std::getline(lines, line);) {
        const size_t a = line.find(':'), b = a == std::string::npos ? a : line.find(':', a + 1);
        if (b == std::string::npos || line.compare(b + 1, 1, "/") != 0) continue;
        const std::string controllers = line.substr(a + 1, b - a - 1);
        const bool v2 = controllers.empty();
        if (!v2 && ("," + controllers + ",").find(",cpu,") == std::string::npos) continue;
        const std::string base = root + (v2 ? "" : "/" + controllers);
        for (std::string path = line.substr(b + 1);; path.erase(path.rfind('/'))) {
            while (!path.empty() && path.back() == '/') path.pop_back();
            const std::string dir = base + path + "/";
            take(v2 ? cgroup_v2_cpus(read_line(dir + "cpu.max"))
                    : cgroup_v1_cpus(read_line(dir + "cpu.cfs_quota_us"), read_line(dir + "cpu.cfs_period_us")));
            if (path.find('/') == std::string::npos) break;
        }
    }
    return best;
}

/// CPUs in this thread's affinity mask; 0 where unknown.
inline int affinity_cpus() {
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
#endif
    return 0;
}

/// The default thread count: min(affinity mask, cgroup quotas), falling
/// back to hardware_concurrency(), at least 1.
inline int cpu_budget() {
    int cpus = int(std::thread::hardware_concurrency());
    std::ifstream in("/proc/self/cgroup");
    const std::string proc_cgroup((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (int limit : {affinity_cpus(), cgroup_cpus("/sys/fs/cgroup", proc_cgroup)})
        if (limit > 0) cpus = cpus > 0 ? std::min(cpus, limit) : limit;
    return std::max(cpus, 1);
}

}  // namespace resnet::detail
