#include "strata/train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "strata/core/compat.h"
#include "strata/core/config_json.h"
#include "strata/core/error.h"
#include "strata/model/checkpoint.h"
#include "strata/model/loss.h"
#include "strata/parallel/model_state.h"
#include "strata/parallel/training.h"
#include "strata/train/grad_norm.h"
#include "strata/train/lr_schedule.h"
#include "strata/train/metrics.h"
#include "strata/train/run_identity.h"
#include "strata/train/stop_conditions.h"
#include "strata/train/train_checkpoint.h"

namespace strata::train {

namespace {

bool same_directory(const std::string& a, const std::string& b) {
  std::error_code error;
  if (std::filesystem::equivalent(a, b, error)) return true;
  return std::filesystem::weakly_canonical(a, error) == std::filesystem::weakly_canonical(b, error);
}

}  // namespace

bool load_starts_fresh(const TrainOptions& o) {
  if (o.load.empty() || o.finetune || latest_iteration(o.load) || !same_directory(o.load, o.save)) return false;
  const auto found = inspect_load_folder(o.load);
  return found == LoadFolder::missing || found == LoadFolder::empty;
}

void refuse_load_without_checkpoint(const TrainOptions& o) {
  if (!o.load.empty() && !load_starts_fresh(o) && !latest_iteration(o.load))
    fail("--load ", o.load, ": ", describe_non_checkpoint(o.load));
}

void refuse_save_over_another_run(const TrainOptions& o) {
  if (o.save.empty()) return;
  const auto iteration = latest_iteration(o.save);
  if (!iteration || (!o.load.empty() && !o.finetune && same_directory(o.load, o.save))) return;
  fail("--save ", o.save, ": holds another run (a checkpoint at iteration ", *iteration, "); resume it with --load ",
       o.save, ", or save this run elsewhere",
       o.finetune ? " (--finetune starts a new run, which cannot share the folder it starts from)" : "");
}

namespace {

// What the progress bar adds to the loss: accuracy, and each MTP depth's loss.
std::string step_summary(const StepRecord& r) {
  char text[32];
  std::snprintf(text, sizeof text, "acc %.3f", r.accuracy);
  std::string out = text;
  for (size_t d = 0; d < r.mtp_losses.size(); ++d) {
    std::snprintf(text, sizeof text, " mtp%zu %.4f", d + 1, r.mtp_losses[d]);
    out += text;
  }
  return out;
}

// Forward and loss for one batch; autocast on when asked.
std::pair<at::Tensor, at::Tensor> forward_loss(LanguageModel& model, const Batch& batch, const TrainOptions& o,
                                               ForwardContext& ctx) {
  std::optional<compat::CudaAutocast> autocast;
  if (o.bf16) autocast.emplace(at::kBFloat16);
  auto logits = model.forward(batch.input_ids.to(o.device), ctx);
  auto loss = causal_lm_loss(logits, batch.labels.to(o.device));
  return {logits, loss};
}

// Micro-batches of --micro-batch-size x `dp` rows per evaluation: as in Megatron, each of
// --eval-iters iterations reads a global batch.
int64_t eval_micro_batches(const TrainOptions& o, int64_t dp) {
  const int64_t per_iteration = o.global_batch_size ? o.global_batch_size / (o.micro_batch_size * dp) : 1;
  return o.eval_iters * std::max<int64_t>(per_iteration, 1);
}

// A parallel run's evaluation: every data-parallel rank takes its rows of the same batches.
EvalRecord evaluate_parallel(parallel::ParallelTraining& run, LanguageModel& model, const DataSource& data,
                             const TrainOptions& o, int64_t step) {
  std::vector<parallel::MicroBatch> batches;
  for (int64_t i = 0; i < eval_micro_batches(o, run.data_parallel_size()); ++i) {
    auto batch = data.held_out(i, o.micro_batch_size * run.data_parallel_size(), o.seq_length);
    batches.push_back({batch.input_ids, batch.labels});
  }
  auto forward = [&](int chunk, const at::Tensor& input, ForwardContext& ctx) {
    return model.forward_chunk(chunk, input.to(o.device), ctx);
  };
  auto means = run.evaluate(batches, forward, causal_lm_loss, label_accuracy);
  return {step, means.loss, means.accuracy};
}

}  // namespace

EvalRecord evaluate(LanguageModel& model, const DataSource& data, const TrainOptions& o, int64_t step) {
  if (o.eval_iters < 1) fail("--eval-iters ", o.eval_iters, ": evaluation needs at least one batch");
  at::NoGradGuard no_grad;
  model.eval();
  double loss = 0.0, accuracy = 0.0;
  const int64_t micro_batches = eval_micro_batches(o, 1);
  for (int64_t i = 0; i < micro_batches; ++i) {
    auto batch = data.held_out(i, o.micro_batch_size, o.seq_length);
    ForwardContext ctx;
    auto [logits, l] = forward_loss(model, batch, o, ctx);
    loss += l.item<double>();
    accuracy += label_accuracy(logits, batch.labels);
  }
  model.train();
  return {step, loss / static_cast<double>(micro_batches), accuracy / static_cast<double>(micro_batches)};
}

TrainResult train(LanguageModel& model, DataSource& data, const TrainOptions& given) {
  check_train_options(given);
  TrainOptions o = given;
  if (load_starts_fresh(o)) {
    if (o.progress) std::printf("--load %s: no checkpoint there yet; starting a new run\n", o.load.c_str());
    o.load.clear();
  }
  refuse_load_without_checkpoint(o);
  refuse_save_over_another_run(o);
  if (data.vocab_size() > model.config().vocab_size)
    fail("data vocabulary ", data.vocab_size(), " (", data.describe(), ") exceeds the model's vocab_size ",
         model.config().vocab_size);
  const bool evaluates = o.eval_iters > 0;
  data.check_fits(o.seq_length, evaluates);
  model.to(o.device);
  model.train();
  auto params = model.canonical_state_dict();
  AdamW optimizer(params, o.adam);
  // A model split over ranks trains through parallel::ParallelTraining (parallel/training.h).
  std::unique_ptr<parallel::ParallelTraining> parallel_run;
  if (model.process_groups().world) parallel_run = std::make_unique<parallel::ParallelTraining>(model, o.grad_bucket_bytes);
  const int64_t dp = parallel_run ? parallel_run->data_parallel_size() : 1;
  if (o.global_batch_size % (o.micro_batch_size * dp) != 0)
    fail("--global-batch-size ", o.global_batch_size, ": must be a multiple of --micro-batch-size ", o.micro_batch_size,
         " x ", dp, " data-parallel ranks");
  const int64_t accumulation = o.global_batch_size ? o.global_batch_size / (o.micro_batch_size * dp) : 1;
  const int pp = model.process_groups().pp_size();
  if (model.num_model_chunks() > 1 && accumulation % pp != 0)
    fail("--global-batch-size ", o.global_batch_size, ": ", accumulation, accumulation == 1 ? " micro-batch" : " micro-batches",
         " per step of --micro-batch-size ", o.micro_batch_size, " x ", dp,
         " data-parallel ranks; the interleaved pipeline schedule (", model.num_model_chunks(),
         " virtual stages per rank) needs a multiple of --pipeline-model-parallel-size ", pp);
  const int64_t global_batch = accumulation * o.micro_batch_size * dp;
  const auto identity = run_identity(data, o, global_batch);
  o.train_iters = train_iterations(o, global_batch);
  const auto schedule = lr_schedule_of(o, global_batch);

  StopConditions stop_conditions(o, model.process_groups().world);
  int64_t first = 0;
  if (!o.load.empty()) {
    if (o.finetune) {
      const auto dir = latest_checkpoint_dir(o.load);
      if (parallel_run) {
        parallel::load_parallel_model_weights(model, dir);
      } else {
        load_model_weights(model, dir);
      }
    } else {
      const auto saved = read_checkpoint(o.load);
      if (!saved.state.run.is_null()) {
        const auto saved_config = to_json(saved_config_from_json(saved.config, (saved.dir / "state.json").string()));
        check_resumable(saved_config, saved.state.run, to_json(model.config()), identity, o.override_opt_param_scheduler,
                        "--load " + o.load);
      }
      if (saved.state.iteration >= o.train_iters)
        fail("--train-iters ", o.train_iters, ": the run in ", o.load, " is already at iteration ",
             saved.state.iteration, "; give a larger --train-iters to train it further");
      auto state = parallel_run ? parallel_run->load_checkpoint(o.load, optimizer)
                                : load_training_checkpoint(o.load, model, optimizer);
      data.seek(state.data_position);
      first = state.iteration;
    }
  }

  MetricsLog metrics(o.metrics);
  ProgressBar progress(o.train_iters, first);
  TrainResult result;
  int64_t saved = -1;  // the iteration this run last saved
  auto save = [&](int64_t step) {
    saved = step;
    const TrainingState state{step, data.position(), identity, o.tokenizer};
    if (parallel_run) {
      parallel_run->save_checkpoint(o.save, optimizer, state);
    } else {
      save_training_checkpoint(o.save, model, optimizer, state);
    }
  };
  auto run_eval = [&](int64_t step) {
    if (!evaluates) return;
    auto e = parallel_run ? evaluate_parallel(*parallel_run, model, data, o, step) : evaluate(model, data, o, step);
    result.evals.push_back(e);
    metrics.write({{"step", e.step}, {"eval_loss", e.loss}, {"eval_accuracy", e.accuracy}});
    if (o.progress) {
      char line[96];
      std::snprintf(line, sizeof line, "eval: step %lld loss %.4f accuracy %.3f", static_cast<long long>(e.step), e.loss,
                    e.accuracy);
      progress.print_line(line);
    }
  };

  for (int64_t it = first; it < o.train_iters; ++it) {
    const auto start = std::chrono::steady_clock::now();
    const double lr = schedule.at(it);
    optimizer.zero_grad();
    double loss_sum = 0.0, accuracy_sum = 0.0;
    std::vector<double> mtp_sums;  // per MTP depth, summed over micro-batches
    if (parallel_run) {
      std::vector<parallel::MicroBatch> micro_batches;
      for (int64_t micro = 0; micro < accumulation; ++micro) {
        auto batch = data.next(o.micro_batch_size * dp, o.seq_length);
        micro_batches.push_back({batch.input_ids, batch.labels});
      }
      std::optional<compat::CudaAutocast> autocast;
      if (o.bf16) autocast.emplace(at::kBFloat16);
      auto forward = [&](int chunk, const at::Tensor& input, ForwardContext& ctx) {
        return model.forward_chunk(chunk, input.to(o.device), ctx);
      };
      auto means = parallel_run->forward_backward(micro_batches, forward, causal_lm_loss, label_accuracy);
      loss_sum = means.loss * static_cast<double>(accumulation);
      accuracy_sum = means.accuracy * static_cast<double>(accumulation);
      for (const double mean : means.mtp_losses) mtp_sums.push_back(mean * static_cast<double>(accumulation));
    } else {
      for (int64_t micro = 0; micro < accumulation; ++micro) {
        auto batch = data.next(o.micro_batch_size, o.seq_length);
        ForwardContext ctx;
        if (model.mtp_depths() > 0) ctx.labels = batch.labels.to(o.device);
        auto [logits, loss] = forward_loss(model, batch, o, ctx);
        auto total = loss;
        for (const auto& aux : ctx.aux_losses) total = total + aux;
        (total / static_cast<double>(accumulation)).backward();
        loss_sum += loss.item<double>();
        accuracy_sum += label_accuracy(logits, batch.labels);
        mtp_sums.resize(ctx.mtp_losses.size());
        for (size_t d = 0; d < ctx.mtp_losses.size(); ++d) mtp_sums[d] += ctx.mtp_losses[d].item<double>();
      }
    }
    const double grad_norm = parallel_run ? parallel_run->clip_grad_norm(o.clip_grad) : clip_grad_norm(params, o.clip_grad);
    const double loss = loss_sum / static_cast<double>(accumulation);
    if (!std::isfinite(loss) || !std::isfinite(grad_norm))
      fail("step ", it + 1, ": the loss is ", loss, " and the gradient norm ", grad_norm,
           ": the run diverged. Stopped before applying the step; the weights",
           o.save.empty() ? "" : cat(" and the last checkpoint in ", o.save), " are unchanged. Lower --lr, ",
           "lengthen --lr-warmup-iters or check the data.");
    optimizer.step(lr);

    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double tokens = static_cast<double>(accumulation * o.micro_batch_size * dp * o.seq_length);
    StepRecord record{it + 1, loss, accuracy_sum / static_cast<double>(accumulation), lr, grad_norm, tokens / seconds, {}};
    for (const double sum : mtp_sums) record.mtp_losses.push_back(sum / static_cast<double>(accumulation));
    result.steps.push_back(record);
    if (record.step % o.log_interval == 0 || record.step == o.train_iters) {
      nlohmann::json line = {{"step", record.step},         {"loss", record.loss}, {"accuracy", record.accuracy},
                             {"lr", record.lr},             {"grad_norm", record.grad_norm},
                             {"tokens_per_second", record.tokens_per_second}};
      if (!record.mtp_losses.empty()) line["mtp_losses"] = record.mtp_losses;
      metrics.write(line);
      if (o.progress) progress.update(record.step, record.loss, record.tokens_per_second, step_summary(record));
    }
    if (o.eval_interval > 0 && record.step % o.eval_interval == 0 && record.step != o.train_iters) run_eval(record.step);
    if (!o.save.empty() && o.save_interval > 0 && record.step % o.save_interval == 0 && record.step != o.train_iters)
      save(record.step);
    if (record.step < o.train_iters && (result.stop = stop_conditions.check(record.step)).stopped()) {
      if (!o.save.empty() && saved != record.step) save(record.step);
      break;
    }
  }
  if (o.progress) progress.finish();
  if (!result.stop.stopped()) {
    // The checkpoint first: an evaluation that fails must not cost the run its weights.
    if (!o.save.empty()) save(o.train_iters);
    run_eval(o.train_iters);
  }
  return result;
}

}  // namespace strata::train
