#include "hub.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>

#include "spt/util.h"

namespace fs = std::filesystem;

namespace spt::gpt2 {
namespace {


bool truthy(const char* v) {
  if (!v) return false;
  const std::string s(v);
  return s == "1" || s == "true" || s == "TRUE" || s == "yes" || s == "ON" || s == "on";
}

// One file; returns "" on success, else why not. `headers` receives the
// response headers (for the revision).
std::string curl_get(const std::string& url, const fs::path& out, const fs::path& headers) {
  std::string cmd = "curl -fsSL --connect-timeout 15 --retry 2 -o " + shell_quote(out.string()) + " -D " +
                    shell_quote(headers.string());
  if (const char* t = std::getenv("HF_TOKEN"); t && *t)
    cmd += " -H " + shell_quote(std::string("Authorization: Bearer ") + t);
  cmd += " " + shell_quote(url) + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return "cannot run curl";
  std::string msg;
  char buf[512];
  while (fgets(buf, sizeof buf, p)) msg += buf;
  const int st = pclose(p);
  if (st == 0) return "";
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == '\r')) msg.pop_back();
  if (WIFEXITED(st) && WEXITSTATUS(st) == 127) return "the curl program is not installed";
  return msg.empty() ? "curl failed (exit " + std::to_string(WEXITSTATUS(st)) + ")" : msg;
}

// The commit the hub served ("x-repo-commit" header), if it said.
std::string repo_commit(const fs::path& headers) {
  std::string h;
  try {
    h = read_file(headers.string());
  } catch (const std::exception&) {
    return "";
  }
  std::string rev;
  size_t pos = 0;
  while (pos < h.size()) {
    size_t e = h.find('\n', pos);
    if (e == std::string::npos) e = h.size();
    std::string line = h.substr(pos, e - pos);
    pos = e + 1;
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon);
    for (auto& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (key != "x-repo-commit") continue;
    rev.clear();
    for (char c : line.substr(colon + 1))
      if (std::isalnum(static_cast<unsigned char>(c))) rev += c;  // last one wins (after redirects)
  }
  return rev;
}

}  // namespace

bool hub_offline() { return truthy(std::getenv("HF_HUB_OFFLINE")) || truthy(std::getenv("TRANSFORMERS_OFFLINE")); }

std::string download_from_hub(const std::string& repo_id, const std::string& cache_root) {
  if (hub_offline()) throw std::runtime_error("HF_HUB_OFFLINE is set, so nothing was downloaded");
  std::string endpoint = "https://huggingface.co";
  if (const char* e = std::getenv("HF_ENDPOINT"); e && *e) endpoint = e;
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();

  std::string folder = "models--";
  for (char ch : repo_id) folder += (ch == '/') ? std::string("--") : std::string(1, ch);
  const fs::path repo = fs::path(cache_root) / folder;
  const fs::path staging = repo / ("download." + std::to_string(getpid()));
  fs::create_directories(staging);
  struct Cleanup {
    fs::path p;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(p, ec);
    }
  } cleanup{staging};

  std::string rev;
  // Required first; the tokenizer files are optional (spt ships GPT-2's).
  const std::pair<const char*, bool> files[] = {
      {"config.json", true}, {"model.safetensors", true}, {"vocab.json", false}, {"merges.txt", false}};
  for (const auto& [name, required] : files) {
    const std::string url = endpoint + "/" + repo_id + "/resolve/main/" + name;
    const fs::path part = staging / (std::string(name) + ".part");
    const std::string err = curl_get(url, part, staging / "headers");
    if (!err.empty()) {
      if (required) throw std::runtime_error("download of " + url + " failed: " + err);
      continue;
    }
    if (rev.empty()) rev = repo_commit(staging / "headers");
    fs::rename(part, staging / name);
  }
  if (rev.empty()) rev = "downloaded";
  const fs::path snap = repo / "snapshots" / rev;
  fs::create_directories(snap);
  for (const auto& [name, required] : files)
    if (fs::exists(staging / name)) fs::rename(staging / name, snap / name);
  fs::create_directories(repo / "refs");
  write_file_atomic((repo / "refs" / "main").string(), rev);
  return snap.string();
}

}  // namespace spt::gpt2
