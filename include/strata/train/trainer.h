#pragma once
// The training loop: gradient accumulation over micro-batches, AdamW with Megatron's LR schedules,
// gradient clipping, optional bf16 autocast (CUDA), activation recompute (the model config's), MoE aux losses,
// periodic evaluation on held-out data, JSONL metrics, atomic checkpoints and exact resume.
#include <optional>
#include <string>
#include <vector>

#include "strata/model/language_model.h"
#include "strata/text/tokenizer_files.h"
#include "strata/train/data.h"
#include "strata/train/lr_schedule.h"
#include "strata/train/optimizer.h"
#include "strata/train/stop_conditions.h"

namespace strata::train {

struct TrainOptions {
  int64_t train_iters = 60;
  int64_t micro_batch_size = 16;
  int64_t global_batch_size = 0;  // 0: one micro-batch per step; else a multiple of micro_batch_size
  int64_t seq_length = 64;
  double lr = 3e-3;
  double min_lr = 3e-4;
  int64_t lr_warmup_iters = 10;
  int64_t lr_decay_iters = 0;  // 0: train_iters
  // The schedule's shape (Megatron's flags; train/lr_schedule.h). strata's default style is
  // cosine, Megatron's linear: a Megatron command line gets linear (docs/megatron.md).
  std::string lr_decay_style = "cosine";
  double lr_warmup_init = 0.0;
  std::optional<double> lr_warmup_fraction;  // warmup as a fraction of the decay length
  std::string lr_wsd_decay_style = "exponential";
  int64_t lr_wsd_decay_iters = 0;
  // Sample-based training (0: unset): lengths in sequences, each turned into iterations by the
  // global batch as Megatron does (train_iters = train_samples / global batch, rounded down).
  // Given train_samples, the *_iters lengths above must be unset.
  int64_t train_samples = 0;
  int64_t lr_decay_samples = 0;  // 0: train_samples
  int64_t lr_warmup_samples = 0;
  int64_t lr_wsd_decay_samples = 0;
  AdamWOptions adam;
  double clip_grad = 1.0;
  bool bf16 = false;       // autocast to bfloat16 (CUDA only)
  std::string save;  // refused when it holds another run (one that `load` does not resume)
  // A checkpoint folder to resume: the run must not contradict it (run_identity.h). A folder with
  // no checkpoint is an error, except when it is also `save` (a script that always resumes its own
  // folder: the first run starts fresh and says so).
  std::string load;
  bool finetune = false;  // take only the weights of `load`: a new run from iteration 0
  bool override_opt_param_scheduler = false;  // a resumed run may change the schedule (Megatron's flag)
  int64_t save_interval = 0;  // 0: save only at the end
  std::string metrics;        // JSONL path
  std::vector<text::TokenizerFile> tokenizer;  // copied into every checkpoint (train_checkpoint.h)
  int64_t log_interval = 1;
  int64_t eval_interval = 0;  // 0: evaluate only at the end
  int64_t eval_iters = 2;     // global batches per evaluation; 0: no evaluation (Megatron's meaning)
  at::Device device = at::kCPU;
  bool progress = true;  // this process prints: the progress bar, evaluations, notes
  // A model split over ranks (parallel::build_parallel_language_model) trains data-, tensor-,
  // pipeline- and expert-parallel: micro_batch_size is per data-parallel rank and
  // global_batch_size counts every rank's sequences, as in Megatron. Gradients are all-reduced in
  // buckets of this many bytes while backward runs.
  int64_t grad_bucket_bytes = 25ll << 20;
  // Stopping early at a step boundary, checkpoint saved first (stop_conditions.h; Megatron's flags).
  bool exit_signal_handler = true;     // SIGTERM / SIGINT stop the run instead of killing it
  double exit_duration_in_mins = 0.0;  // stop after this much training time (0: no limit)
  int64_t exit_interval = 0;           // stop at an iteration that is a multiple of this (0: never)
};

struct StepRecord {
  int64_t step;  // iterations completed
  double loss;
  double accuracy;  // argmax accuracy over labelled positions
  double lr;
  double grad_norm;
  double tokens_per_second;
  std::vector<double> mtp_losses;  // each multi-token prediction depth's loss (empty without MTP)
};

struct EvalRecord {
  int64_t step;
  double loss;
  double accuracy;
};

struct TrainResult {
  std::vector<StepRecord> steps;  // the steps this run did (after any resume)
  std::vector<EvalRecord> evals;
  Stop stop;  // why the run ended before train_iters, if it did; stop.exit_code() for the command
};

// The learning-rate schedule of `options` for this global batch (sample lengths divided by it).
LrSchedule lr_schedule_of(const TrainOptions& options, int64_t global_batch_size);
// The iterations the run trains: train_iters, or train_samples / global batch for a sample-based
// run (an error when that is 0).
int64_t train_iterations(const TrainOptions& options, int64_t global_batch_size);

// Every option is checked before any work (check_train_options); a step whose loss or gradient
// norm is not finite stops the run with an error before the step is applied.
TrainResult train(LanguageModel& model, DataSource& data, const TrainOptions& options);

// The range of every option, each error naming its flag.
void check_train_options(const TrainOptions& options);

// Refuses a `load` folder that holds no checkpoint (unless load_starts_fresh), saying what it holds.
void refuse_load_without_checkpoint(const TrainOptions& options);

// Refuses a `save` folder that holds another run (one that `load` does not resume).
void refuse_save_over_another_run(const TrainOptions& options);

// Whether `load` names no checkpoint (a missing or empty folder) and is also `save`: a script that
// always resumes its own folder starts its first run there, as in Megatron. The trainer says so.
bool load_starts_fresh(const TrainOptions& options);

// Mean loss and accuracy over options.eval_iters global batches of held-out data (Megatron's
// evaluation iterations), read as micro-batches of options.micro_batch_size.
EvalRecord evaluate(LanguageModel& model, const DataSource& data, const TrainOptions& options, int64_t step);

}  // namespace strata::train
