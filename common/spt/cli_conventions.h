#pragma once
// Command-line conventions shared by spt-client, spt-server and spt-worker
// (the git/kubectl ones): usage errors exit 2, an unknown subcommand gets a
// "did you mean", --version prints the program's name, every help ends with
// examples and an ENVIRONMENT section. Header-only over CLI11 so the three
// binaries (different link sets) share it without a library; spt-engine has
// no CLI11 and applies the same rules by hand (bench/engine_main.cc).
// Pure functions of their arguments; thread-compatible.
#include <algorithm>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

namespace spt::cli {

// Exit status of a usage error (bad flag, missing argument, unknown command).
inline constexpr int kUsageExit = 2;

// Levenshtein distance (small strings: command names).
inline size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// The candidates within edit distance 2 (or sharing `word` as a prefix),
// closest first; git's rule of thumb for "did you mean".
inline std::vector<std::string> similar(const std::string& word, const std::vector<std::string>& candidates) {
  std::vector<std::pair<size_t, std::string>> scored;
  for (const auto& c : candidates) {
    const size_t d = edit_distance(word, c);
    if (d <= 2 || (word.size() >= 2 && c.rfind(word, 0) == 0)) scored.emplace_back(d, c);
  }
  std::sort(scored.begin(), scored.end());
  std::vector<std::string> out;
  for (auto& [d, c] : scored) out.push_back(std::move(c));
  return out;
}

// The first positional word of argv (skipping options and the values of
// options that take one), or "" if none: the subcommand the user meant.
inline std::string first_word(const CLI::App& app, int argc, const char* const* argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--") return i + 1 < argc ? argv[i + 1] : "";
    if (a.empty() || a[0] != '-') return a;
    if (a.find('=') != std::string::npos) continue;
    const CLI::Option* o = app.get_option_no_throw(a);
    if (o && o->get_items_expected_min() > 0) ++i;  // its value
  }
  return "";
}

inline std::vector<std::string> subcommand_names(const CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::App* s : app.get_subcommands([](const CLI::App*) { return true; })) names.push_back(s->get_name());
  return names;
}

// Parses; on a usage error prints CLI11's message (plus a did-you-mean for
// an unknown subcommand) and returns kUsageExit; on --help/--version prints
// and returns 0. Returns -1 when parsing succeeded and the program goes on.
inline int parse(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
    return -1;
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // help or version
    const auto subs = subcommand_names(app);
    const std::string word = first_word(app, argc, argv);
    const bool unknown_sub =
        !subs.empty() && !word.empty() && std::find(subs.begin(), subs.end(), word) == subs.end();
    if (unknown_sub) {
      std::cerr << app.get_name() << ": '" << word << "' is not a command. See '" << app.get_name() << " --help'.\n";
      const auto near = similar(word, subs);
      if (!near.empty()) {
        std::cerr << "\nThe most similar command" << (near.size() > 1 ? "s are" : " is") << "\n";
        for (const auto& n : near) std::cerr << "\t" << n << "\n";
      }
    } else {
      app.exit(e);
    }
    return kUsageExit;
  }
}

// A help footer: EXAMPLES and ENVIRONMENT sections ({name, what} pairs).
inline std::string footer(const std::vector<std::pair<std::string, std::string>>& examples,
                          const std::vector<std::pair<std::string, std::string>>& environment) {
  auto section = [](const char* title, const std::vector<std::pair<std::string, std::string>>& rows) {
    size_t w = 0;
    for (const auto& [k, v] : rows) w = std::max(w, k.size());
    std::string s = std::string("\n") + title + ":\n";
    for (const auto& [k, v] : rows) {
      s += "  " + k;
      if (!v.empty()) s += std::string(w - k.size() + 3, ' ') + v;
      s += "\n";
    }
    return s;
  };
  std::string out;
  if (!examples.empty()) out += section("EXAMPLES", examples);
  if (!environment.empty()) out += section("ENVIRONMENT", environment);
  return out;
}

// "host" -> "host:<default_port>"; "host:port", "[v6]:port", "unix:..."
// pass through. gRPC dials port 0 for a bare host otherwise.
inline std::string with_default_port(const std::string& address, int default_port) {
  if (address.empty() || address.rfind("unix:", 0) == 0 || address.rfind("dns:", 0) == 0) return address;
  if (address.front() == '[') {  // [v6] or [v6]:port
    return address.find("]:") == std::string::npos ? address + ":" + std::to_string(default_port) : address;
  }
  const auto colon = address.find(':');
  if (colon == std::string::npos) return address + ":" + std::to_string(default_port);
  if (address.find(':', colon + 1) != std::string::npos)  // a bare IPv6 address
    return "[" + address + "]:" + std::to_string(default_port);
  return address;
}

// The coordinator's port when an address names none.
inline constexpr int kDefaultPort = 7070;

}  // namespace spt::cli
