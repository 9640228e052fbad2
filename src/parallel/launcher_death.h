#pragma once
// A rank that its launcher started dies with the launcher, however the launcher ends (kill -9
// included): a rank left behind would train on for minutes, holding its GPU, until a collective
// with a rank that died too times out.
#include <sys/types.h>

namespace strata::parallel {

// Asks the kernel to SIGKILL this process when its parent goes, then checks that the parent still
// is `launcher`: one that died before the request left this process re-parented, and no signal
// would ever come. Errors name the launcher's pid and this rank.
void die_with_launcher(pid_t launcher, int rank);

}  // namespace strata::parallel
