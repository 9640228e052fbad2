#include "launcher_death.h"

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "strata/core/error.h"

namespace strata::parallel {

void die_with_launcher(pid_t launcher, int rank) {
  // The signal comes when the thread that started this process exits; the launcher starts its
  // ranks from the thread that then waits for them.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
    fail("rank ", rank, ": cannot ask to end with the launcher (pid ", launcher, "): prctl: ", std::strerror(errno));
  if (::getppid() != launcher)
    fail("rank ", rank, ": the launcher (pid ", launcher, ") that started this rank has already exited");
}

}  // namespace strata::parallel
