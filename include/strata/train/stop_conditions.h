#pragma once
// When a run ends before --train-iters: on SIGTERM or SIGINT (stop_signal_handler.h) and on
// Megatron's --exit-duration-in-mins and --exit-interval. The conditions are checked at step
// boundaries, after the optimizer step, its logging, evaluation and any periodic save, so that
// the checkpoint the trainer writes before returning is a consistent one and resuming from it
// continues the run where it stopped.
//
// In a parallel run every rank must stop after the same iteration, or the ranks that go on wait
// in a collective for the ones that left: one small all-reduce (MAX over the world group) per
// boundary shares the signal any rank received and rank 0's training time, whose clock alone
// decides the duration (Megatron takes the maximum over every rank's clock; one clock is as good
// and names one number in the stop line).
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "strata/parallel/world.h"
#include "strata/train/stop_signal_handler.h"

namespace strata::train {

struct TrainOptions;

enum class StopReason { none, signal, duration, interval };

// Why and where a run stopped early; reason none for a run that did all its iterations.
struct Stop {
  StopReason reason = StopReason::none;
  int signal = 0;          // StopReason::signal: which one
  int64_t iteration = 0;   // the last iteration done
  double minutes = 0.0;    // StopReason::duration: rank 0's training time
  double exit_duration_in_mins = 0.0;  // StopReason::duration: the limit it passed
  int64_t exit_interval = 0;           // StopReason::interval: the interval the iteration is a multiple of

  bool stopped() const { return reason != StopReason::none; }
  // What `strata train` exits with: 128 + the signal, as a shell reports a process the signal
  // killed (an interrupted run is not a finished one: `&&` chains stop); 0 otherwise, also for
  // the exit flags (as in Megatron: the run did what it was asked to).
  int exit_code() const;
  // "stopped after iteration 7 on SIGTERM: checkpoint saved to runs/a" (save_dir empty: "no
  // --save, nothing saved").
  std::string describe(const std::string& save_dir) const;
};

class StopConditions {
 public:
  // `world`: every rank of a parallel run; null for a single process. Installs the signal handler
  // when options.exit_signal_handler is on (for as long as this lives) and starts the clock of
  // --exit-duration-in-mins. Errors name a negative flag value.
  StopConditions(const TrainOptions& options, parallel::Group world);

  // At the boundary after `iteration`: whether to stop there. The same answer on every rank; in a
  // parallel run a collective, so every rank checks at every boundary.
  Stop check(int64_t iteration);

 private:
  double exit_duration_in_mins_;
  int64_t exit_interval_;
  parallel::Group world_;
  std::chrono::steady_clock::time_point start_;
  std::optional<StopSignalHandler> signals_;
};

}  // namespace strata::train
