#include "capabilities.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <set>
#include <string>

#ifdef __APPLE__
#include <sys/sysctl.h>
#endif

#include "spt/version.h"

namespace spt::worker {

namespace {

int64_t physical_memory() {
#ifdef __APPLE__
  int64_t mem = 0;
  size_t len = sizeof mem;
  if (sysctlbyname("hw.memsize", &mem, &len, nullptr, 0) == 0) return mem;
  return 0;
#else
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<int64_t>(pages) * page : 0;
#endif
}

std::string cpu_name() {
#ifdef __APPLE__
  char buf[256];
  size_t len = sizeof buf;
  if (sysctlbyname("machdep.cpu.brand_string", buf, &len, nullptr, 0) == 0) return buf;
  return "cpu";
#else
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      const auto p = line.find(':');
      if (p != std::string::npos) return line.substr(line.find_first_not_of(' ', p + 1));
    }
  return "cpu";
#endif
}

// Name and memory of the selected NVIDIA GPU via nvidia-smi, so the worker
// need not link CUDA to describe itself.
bool cuda_info(const std::string& device, std::string* name, int64_t* bytes) {
  std::string index = "0";
  if (const auto p = device.find(':'); p != std::string::npos) index = device.substr(p + 1);
  if (index.find_first_not_of("0123456789") != std::string::npos) return false;
  const std::string cmd = "nvidia-smi --query-gpu=name,memory.total --format=csv,noheader,nounits -i " + index +
                          " 2>/dev/null";
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) return false;
  std::array<char, 512> buf{};
  std::string out;
  while (fgets(buf.data(), buf.size(), f)) out += buf.data();
  if (pclose(f) != 0) return false;
  const auto comma = out.find(',');
  if (comma == std::string::npos) return false;
  *name = out.substr(0, comma);
  try {
    *bytes = std::stoll(out.substr(comma + 1)) * 1024 * 1024;  // MiB
  } catch (const std::exception&) {
    *bytes = 0;
  }
  return true;
}

// The cgroup (v2, else v1) memory limit of this process; 0 if none.
int64_t cgroup_limit() {
  for (const char* path : {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    std::ifstream in(path);
    std::string v;
    if (!(in >> v) || v == "max") continue;
    try {
      const long long n = std::stoll(v);
      if (n > 0 && n < (1ll << 60)) return n;  // v1 reports "no limit" as a huge number
    } catch (const std::exception&) {
    }
  }
  return 0;
}

}  // namespace

int64_t parse_bytes(const std::string& s) {
  size_t pos = 0;
  double v = 0;
  try {
    v = std::stod(s, &pos);
  } catch (const std::exception&) {
    pos = 0;
  }
  std::string unit = s.substr(pos);
  for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (unit.size() > 1 && unit.back() == 'B') unit.pop_back();
  if (unit.size() > 1 && unit.back() == 'I') unit.pop_back();
  double mult = 0;
  if (unit.empty()) mult = 1;
  else if (unit == "K") mult = 1024.0;
  else if (unit == "M") mult = 1024.0 * 1024;
  else if (unit == "G") mult = 1024.0 * 1024 * 1024;
  else if (unit == "T") mult = 1024.0 * 1024 * 1024 * 1024;
  if (pos == 0 || mult == 0 || !(v > 0) || v * mult > 9e18)
    throw std::invalid_argument("memory size '" + s + "': expected a positive number with an optional K, M, G or T");
  return static_cast<int64_t>(v * mult);
}

int64_t default_memory_bytes(const std::string& device) {
  const std::string kind = device.substr(0, device.find(':'));
  if (kind == "cuda") {
    std::string name;
    int64_t bytes = 0;
    return cuda_info(device, &name, &bytes) ? bytes : 0;
  }
  int64_t total = physical_memory();
  if (const int64_t cg = cgroup_limit(); cg > 0 && (total == 0 || cg < total)) total = cg;
  const int64_t headroom = std::clamp<int64_t>(total / 8, int64_t{512} << 20, int64_t{4} << 30);
  return std::max<int64_t>(0, total - headroom);
}

v1::Capabilities probe_capabilities(const std::string& device, int slots, int threads,
                                    const std::vector<std::string>& models, const ExecutorRegistry& reg,
                                    int64_t memory_bytes) {
  v1::Capabilities c;
  const std::string kind = device.substr(0, device.find(':'));
  c.set_device_kind(kind);
  int64_t probed = -1;  // the GPU's memory from the one nvidia-smi call; -1 = not probed
  if (kind == "cuda") {
    std::string name;
    int64_t bytes = 0;
    if (cuda_info(device, &name, &bytes)) {
      c.set_device_name(name);
      probed = bytes;
    } else {
      c.set_device_name(device);
      probed = 0;
    }
  } else if (kind == "mps") {
    c.set_device_name("Apple GPU (" + cpu_name() + ")");
  } else {
    c.set_device_name(cpu_name());
  }
  c.set_memory_bytes(memory_bytes > 0 ? memory_bytes : probed >= 0 ? probed : default_memory_bytes(device));
  for (const auto& p : reg.precisions()) c.add_precisions(p);
  std::set<std::string> m(models.begin(), models.end());
  for (const auto& x : reg.loaded_models()) m.insert(x);
  for (const auto& x : m) c.add_models(x);
  for (const auto& k : reg.kinds()) c.add_job_kinds(k);
  c.set_slots(slots);
  c.set_threads(threads);
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) == 0) c.set_hostname(host);
  c.set_version(SPT_CODE_VERSION);
  return c;
}

}  // namespace spt::worker
