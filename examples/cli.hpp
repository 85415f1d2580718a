#pragma once
// What the example programs share: the command line, the model and
// preprocessing it selects, and per-input error reporting.
#include <resnet/image.hpp>
#include <resnet/resnet.hpp>

#include <cstdio>
#include <exception>
#include <functional>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace cli {

/// A parsed command line: "--name value" options, "--name" switches, inputs.
struct Args {
    std::map<std::string, std::string> options;
    std::set<std::string> switches;
    std::vector<std::string> inputs;

    bool has(const std::string& name) const { return options.count(name) || switches.count(name); }

    /// --name as an integer within [lo, hi]; `fallback` when absent.
    int integer(const std::string& name, int fallback, int lo, int hi) const {
        const auto it = options.find(name);
        if (it == options.end()) return fallback;
        int v = 0;
        if (!resnet::detail::parse_number(it->second, v) || v < lo || v > hi)
            resnet::detail::fail(name, " ", it->second, ": expected an integer in [", lo, ", ", hi, "]");
        return v;
    }

    std::string text(const std::string& name, const std::string& fallback) const {
        const auto it = options.find(name);
        return it == options.end() ? fallback : it->second;
    }
};

/// Splits argv: names in `valued` take the next argument, names in `flags`
/// take none, "--" ends the options, everything else is an input. Throws
/// resnet::Error for an unknown option or a missing value.
inline Args parse(int argc, char** argv, const std::set<std::string>& valued, const std::set<std::string>& flags) {
    Args a;
    bool options_done = false;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (options_done || arg.size() < 2 || arg.compare(0, 2, "--") != 0) {
            a.inputs.push_back(arg);
        } else if (arg == "--") {
            options_done = true;
        } else if (flags.count(arg)) {
            a.switches.insert(arg);
        } else if (!valued.count(arg)) {
            resnet::detail::fail("unknown option ", arg);
        } else if (i + 1 == argc) {
            resnet::detail::fail(arg, " needs a value");
        } else {
            a.options[arg] = argv[++i];
        }
    }
    return a;
}

/// The model in --weights, running on --threads threads (default 0: the
/// CPUs this process may use, see resnet::detail::cpu_budget()).
inline resnet::ResNet<float> load_model(const Args& args) {
    if (!args.options.count("--weights")) resnet::detail::fail("--weights FILE is required");
    auto model = resnet::load_model<float>(args.options.at("--weights"));
    model.set_threads(args.integer("--threads", 0, 0, 1024));
    return model;
}

/// The weights' preprocessing preset, with --resize, --crop and
/// --interpolation overriding it.
inline resnet::Preprocess preprocessing(const resnet::ResNet<float>& model, const Args& args) {
    resnet::Preprocess p = resnet::Preprocess::from_metadata(model.metadata());
    p.resize = args.integer("--resize", p.resize, 1, resnet::Preprocess::kMaxSide);
    p.crop = args.integer("--crop", p.crop, 1, resnet::Preprocess::kMaxSide);
    const std::string interpolation = args.text("--interpolation", "");
    if (!interpolation.empty() && interpolation != "bilinear" && interpolation != "nearest")
        resnet::detail::fail("--interpolation ", interpolation, ": expected bilinear or nearest");
    if (!interpolation.empty())
        p.interpolation = interpolation == "nearest" ? resnet::Interpolation::Nearest : resnet::Interpolation::Bilinear;
    return p;
}

/// Runs `each(input)` for every input. When it throws, the input gets one line
/// "<program>: error: <input>: <reason>" on stderr and the others still run.
/// Returns how many inputs failed.
inline int for_each_input(const char* program, const std::vector<std::string>& inputs,
                          const std::function<void(const std::string&)>& each) {
    int failed = 0;
    for (const auto& input : inputs) {
        try {
            each(input);
        } catch (const std::exception& e) {  // resnet::Error, or bad_alloc on a huge input
            const std::string what = e.what();
            std::fflush(stdout);  // keep the report of earlier inputs before this error
            std::cerr << program << ": error: " << (what.rfind(input, 0) == 0 ? "" : input + ": ") << what << '\n';
            ++failed;
        }
    }
    return failed;
}

/// main() of an example: parses the command line (option names in `valued`
/// and `flags`), then returns body(args). Usage mistakes and fatal errors
/// (unreadable weights, unwritable output) print one line and return 2.
inline int run(const char* program, const char* usage, int argc, char** argv, const std::set<std::string>& valued,
               const std::set<std::string>& flags, const std::function<int(const Args&)>& body) {
    Args args;
    try {
        args = parse(argc, argv, valued, flags);
        if (args.switches.count("--help")) {
            std::cout << usage;
            return 0;
        }
        if (args.inputs.empty() && !args.has("--list")) resnet::detail::fail("no INPUT given");
    } catch (const resnet::Error& e) {
        std::cerr << program << ": " << e.what() << "\n" << usage;
        return 2;
    }
    try {
        return body(args);
    } catch (const std::exception& e) {
        std::cerr << program << ": error: " << e.what() << '\n';
        return 2;
    }
}

}  // namespace cli
