#include "strata/train/stop_signal_handler.h"

#include <signal.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "strata/core/error.h"

namespace strata::train {

namespace {

volatile sig_atomic_t received_signal = 0;
std::atomic<bool> installed{false};

constexpr int kStopSignals[] = {SIGTERM, SIGINT};
struct sigaction previous[2];
bool replaced[2] = {false, false};

void record_stop_signal(int signal) {
  if (signal == SIGINT && received_signal != 0) {
    // Async-signal-safe: SIGINT is blocked while this handler runs, so the re-raised one is
    // delivered, with the default action, as soon as the handler returns.
    ::signal(SIGINT, SIG_DFL);
    ::raise(SIGINT);
    return;
  }
  if (received_signal == 0) received_signal = signal;
}

}  // namespace

StopSignalHandler::StopSignalHandler() {
  if (installed.exchange(true)) fail("stop signal handler: one is already installed in this process");
  received_signal = 0;
  struct sigaction action {};
  action.sa_handler = record_stop_signal;
  sigemptyset(&action.sa_mask);
  // Restart interrupted system calls: the signal must not turn a blocking read in a collective or
  // a file write into an error.
  action.sa_flags = SA_RESTART;
  for (int i = 0; i < 2; ++i) {
    struct sigaction current {};
    ::sigaction(kStopSignals[i], nullptr, &current);
    replaced[i] = current.sa_handler != SIG_IGN;
    if (!replaced[i]) continue;
    if (::sigaction(kStopSignals[i], &action, &previous[i]) != 0)
      fail("stop signal handler: cannot install a handler for ", strsignal(kStopSignals[i]), ": ",
           std::strerror(errno));
  }
}

StopSignalHandler::~StopSignalHandler() {
  for (int i = 0; i < 2; ++i)
    if (replaced[i]) ::sigaction(kStopSignals[i], &previous[i], nullptr);
  installed.store(false);
}

int StopSignalHandler::received() { return received_signal; }

}  // namespace strata::train
