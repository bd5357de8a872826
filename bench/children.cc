#include "children.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>

extern char** environ;

namespace spt::bench {

Child spawn(const std::vector<std::string>& argv, const std::string& log, const std::string& token,
            const std::function<bool(const std::string&)>& drop) {
  std::vector<std::string> args = argv, env;
  for (char** e = environ; *e; ++e)
    if (!drop(*e)) env.emplace_back(*e);
  env.push_back("SPT_TOKEN=" + token);
  std::vector<char*> a, en;
  for (auto& s : args) a.push_back(s.data());
  a.push_back(nullptr);
  for (auto& s : env) en.push_back(s.data());
  en.push_back(nullptr);
  const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(fd, 1);
    dup2(fd, 2);
    execve(a[0], a.data(), en.data());
    _exit(127);
  }
  close(fd);
  return {pid};
}

void stop(Child& c, int grace_ms) {
  if (c.pid <= 0) return;
  kill(c.pid, SIGTERM);
  for (int waited = 0; waited < grace_ms; waited += 20) {
    if (waitpid(c.pid, nullptr, WNOHANG) == c.pid) {
      c.pid = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(c.pid, SIGKILL);
  waitpid(c.pid, nullptr, 0);
  c.pid = -1;
}

double cpu_s(pid_t pid, bool children) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto rp = s.rfind(')');  // the command name may hold spaces
  if (rp == std::string::npos) return 0;
  std::istringstream f(s.substr(rp + 2));
  std::string tok;
  double t = 0;
  const int last = children ? 17 : 15;  // utime, stime[, cutime, cstime]
  for (int field = 3; f >> tok && field <= last; ++field)
    if (field >= 14) t += std::stod(tok);
  return t / static_cast<double>(sysconf(_SC_CLK_TCK));
}

int free_port() {
  for (int p = 20000 + getpid() % 20000;; ++p) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(p));
    const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    close(fd);
    if (ok) return p;
  }
}

}  // namespace spt::bench
