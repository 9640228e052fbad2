#include "strata/train/stop_conditions.h"

#include <signal.h>

#include <cstdio>
#include <cstring>

#include "strata/core/error.h"
#include "strata/parallel/collectives.h"
#include "strata/train/trainer.h"

namespace strata::train {

namespace {

const char* signal_name(int signal) {
  switch (signal) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    default: return strsignal(signal);
  }
}

std::string two_decimals(double x) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f", x);
  return text;
}

}  // namespace

int Stop::exit_code() const { return reason == StopReason::signal ? 128 + signal : 0; }

std::string Stop::describe(const std::string& save_dir) const {
  std::string why;
  switch (reason) {
    case StopReason::none: return cat("ran to iteration ", iteration);
    case StopReason::signal: why = cat("on ", signal_name(signal)); break;
    case StopReason::duration:
      why = cat("after ", two_decimals(minutes), " minutes of training (--exit-duration-in-mins ",
                exit_duration_in_mins, ")");
      break;
    case StopReason::interval: why = cat("at a multiple of --exit-interval ", exit_interval); break;
  }
  return cat("stopped after iteration ", iteration, " ", why, ": ",
             save_dir.empty() ? std::string("no --save, nothing saved") : cat("checkpoint saved to ", save_dir));
}

StopConditions::StopConditions(const TrainOptions& o, parallel::Group world)
    : exit_duration_in_mins_(o.exit_duration_in_mins),
      exit_interval_(o.exit_interval),
      world_(std::move(world)),
      start_(std::chrono::steady_clock::now()) {
  if (o.exit_duration_in_mins < 0)
    fail("--exit-duration-in-mins ", o.exit_duration_in_mins, ": expected a non-negative duration (0: no limit)");
  if (o.exit_interval < 0) fail("--exit-interval ", o.exit_interval, ": expected a non-negative count (0: never)");
  if (o.exit_signal_handler) signals_.emplace();
}

Stop StopConditions::check(int64_t iteration) {
  const bool keeps_clock = !world_ || world_->getRank() == 0;
  const auto elapsed = std::chrono::steady_clock::now() - start_;
  const auto elapsed_ms = std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count();
  // What this rank knows: a signal, and (rank 0 only) the training time; the maximum over the
  // ranks is what every rank then acts on.
  auto known = at::tensor({static_cast<int64_t>(signals_ ? StopSignalHandler::received() : 0),
                           static_cast<int64_t>(keeps_clock ? elapsed_ms : 0)},
                          at::kLong);
  parallel::all_reduce_max_(known, world_, "stop-condition all-reduce");
  const auto signal = known[0].item<int64_t>();
  const double minutes = static_cast<double>(known[1].item<int64_t>()) / 60e3;

  Stop stop{.iteration = iteration};
  if (signal != 0) {
    stop.reason = StopReason::signal;
    stop.signal = static_cast<int>(signal);
  } else if (exit_duration_in_mins_ > 0 && minutes > exit_duration_in_mins_) {
    stop.reason = StopReason::duration;
    stop.minutes = minutes;
    stop.exit_duration_in_mins = exit_duration_in_mins_;
  } else if (exit_interval_ > 0 && iteration % exit_interval_ == 0) {
    stop.reason = StopReason::interval;
    stop.exit_interval = exit_interval_;
  }
  return stop;
}

}  // namespace strata::train
