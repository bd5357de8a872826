#pragma once
// Shell completion scripts for spt-client, generated from the CLI11 app
// itself (subcommands and their --options), so they never drift from the
// parser. `spt-client completion bash|zsh` prints one.
#include <string>

#include <CLI/CLI.hpp>

namespace spt::client {

// The script for `shell` ("bash" or "zsh"); std::invalid_argument otherwise.
std::string completion_script(const CLI::App& app, const std::string& shell);

}  // namespace spt::client
