#include "strata/io/guarded_read.h"

#include <atomic>
#include <csetjmp>
#include <csignal>
#include <cstring>

#include "strata/core/error.h"

namespace strata::io {
namespace {

// Where a fault in this thread's guarded copy jumps to; null outside a guarded copy.
thread_local sigjmp_buf* t_guarded_copy = nullptr;
struct sigaction g_previous_action {};

void on_sigbus(int signal, siginfo_t* info, void* context) {
  if (sigjmp_buf* guarded = t_guarded_copy) {
    t_guarded_copy = nullptr;
    siglongjmp(*guarded, 1);
  }
  // Not our fault to report: hand it on as if we had never installed a handler.
  if (g_previous_action.sa_flags & SA_SIGINFO) {
    g_previous_action.sa_sigaction(signal, info, context);
    return;
  }
  if (g_previous_action.sa_handler != SIG_DFL && g_previous_action.sa_handler != SIG_IGN) {
    g_previous_action.sa_handler(signal);
    return;
  }
  // A SIGBUS sent by kill() that the process ignores stays ignored. A real fault cannot be
  // ignored (returning would re-run the faulting access forever), so it and a sent SIGBUS under
  // the default action get the default action: the handler goes and the signal is raised again,
  // delivered as soon as this handler returns.
  if (g_previous_action.sa_handler == SIG_IGN && info->si_code <= 0) return;
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  ::sigaction(SIGBUS, &default_action, nullptr);
  ::raise(SIGBUS);
}

bool install_sigbus_handler() {
  struct sigaction action {};
  action.sa_sigaction = on_sigbus;
  action.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&action.sa_mask);
  if (::sigaction(SIGBUS, &action, &g_previous_action) != 0) {
    fail("cannot install the SIGBUS handler that guards reads from mapped files: ", std::strerror(errno));
  }
  return true;
}

}  // namespace

void copy_from_mapping(void* destination, const char* mapping, uint64_t offset, size_t bytes,
                       const std::string& file) {
  if (bytes == 0) return;  // an empty file has no mapping to read from
  static const bool installed = install_sigbus_handler();
  (void)installed;
  sigjmp_buf guarded;
  // savemask 1: the handler runs with SIGBUS blocked, and jumping out of it must unblock it again,
  // or the next fault would kill the process outright.
  if (sigsetjmp(guarded, 1) != 0) {
    fail(file, ": the file changed while being read: bytes [", offset, ", ", offset + bytes,
         ") could not be read, it is now shorter than when it was opened (truncated or rewritten in place?)");
  }
  t_guarded_copy = &guarded;
  std::atomic_signal_fence(std::memory_order_seq_cst);  // the guard is set before the first byte is read
  std::memcpy(destination, mapping + offset, bytes);
  std::atomic_signal_fence(std::memory_order_seq_cst);  // and cleared only after the last
  t_guarded_copy = nullptr;
}

}  // namespace strata::io
