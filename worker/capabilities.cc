#include "capabilities.h"

#include <unistd.h>

#include <array>
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

}  // namespace

v1::Capabilities probe_capabilities(const std::string& device, int slots, int threads,
                                    const std::vector<std::string>& models, const ExecutorRegistry& reg) {
  v1::Capabilities c;
  const std::string kind = device.substr(0, device.find(':'));
  c.set_device_kind(kind);
  if (kind == "cuda") {
    std::string name;
    int64_t bytes = 0;
    if (cuda_info(device, &name, &bytes)) {
      c.set_device_name(name);
      c.set_memory_bytes(bytes);
    } else {
      c.set_device_name(device);
    }
  } else if (kind == "mps") {
    c.set_device_name("Apple GPU (" + cpu_name() + ")");
    c.set_memory_bytes(physical_memory());  // unified memory
  } else {
    c.set_device_name(cpu_name());
    c.set_memory_bytes(physical_memory());
  }
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
