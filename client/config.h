#pragma once
// spt-client's defaults file: $SPT_CONFIG, else $XDG_CONFIG_HOME/spt/config,
// else ~/.config/spt/config. Lines of `key = value` ('#' starts a comment):
//
//   server = coordinator.example:7070
//   token_file = ~/.config/spt/token
//   timeout_s = 60
//   tls_ca = ~/.config/spt/ca.pem          # TLS (also tls_cert, tls_key,
//   tls_server_name = coordinator.lab      #  see connection.h TlsOptions)
//
// Precedence (lowest first): built-in defaults < this file < environment
// (SPT_SERVER, SPT_TOKEN, SPT_TOKEN_FILE, SPT_TLS_*) < command-line flags. A missing
// file is no error; an unknown key or a malformed line is, naming the line.
// Pure file parsing, no globals; thread-compatible.
#include <map>
#include <string>

namespace spt::client {

struct ClientConfig {
  std::string path;                          // the file read ("" if none)
  std::map<std::string, std::string> values; // key -> value, '~/' expanded
};

// The file this user's client reads (which may not exist).
std::string config_path();

// Reads `path`; a missing file yields an empty config. Throws
// std::runtime_error "<path>:<line>: ..." on a bad line or unknown key.
ClientConfig read_config(const std::string& path);

}  // namespace spt::client
