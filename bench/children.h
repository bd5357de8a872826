#pragma once
// Child processes for the runner benches (runner_bench, sigma_bench): the
// real spt-server and spt-worker binaries, started with their output in a
// log file, timed by the CPU they use, stopped gracefully. Linux only
// (/proc, prctl). Not thread-safe; one bench thread drives them.
#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

namespace spt::bench {

struct Child {
  pid_t pid = -1;
};

// Starts argv[0] with this process's environment minus the variables
// `drop` returns true for ("NAME=value" strings), plus SPT_TOKEN=token;
// stdout and stderr go to `log`; the child is killed if the bench dies.
Child spawn(const std::vector<std::string>& argv, const std::string& log, const std::string& token,
            const std::function<bool(const std::string&)>& drop);
// SIGTERM, then SIGKILL after `grace_ms`; reaps the child.
void stop(Child& c, int grace_ms = 6000);
// CPU seconds (user + system) of a live process; with `children`, also of
// the children it has waited for (gnuplot runs, for instance).
double cpu_s(pid_t pid, bool children = false);
// A TCP port on 127.0.0.1 that was free a moment ago.
int free_port();

}  // namespace spt::bench
