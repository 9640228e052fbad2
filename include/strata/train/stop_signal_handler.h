#pragma once
// SIGTERM and SIGINT as requests to stop at the next step boundary (a scheduler's preemption, a
// Ctrl-C): while a StopSignalHandler lives, either signal only records itself, which is all a
// handler may safely do; the training loop reads it between steps (stop_conditions.h). A SIGINT
// that comes while a stop is already pending restores the default action and re-raises itself:
// an impatient second Ctrl-C still kills at once. A repeated SIGTERM changes nothing, since
// schedulers may send it to every process of a job and a launcher forwards it again.
//
// A signal this process was started with ignored (nohup, `cmd &` in a script) stays ignored.
namespace strata::train {

class StopSignalHandler {
 public:
  // Installs the handlers and forgets any signal recorded before; one handler per process.
  StopSignalHandler();
  // Puts back the handlers that were there before.
  ~StopSignalHandler();
  StopSignalHandler(const StopSignalHandler&) = delete;
  StopSignalHandler& operator=(const StopSignalHandler&) = delete;

  // The first stop signal received since installation (SIGTERM or SIGINT), or 0.
  static int received();
};

}  // namespace strata::train
