#include "strata/parallel/training.h"

#include "strata/core/error.h"
#include "strata/model/build_model.h"
#include "strata/parallel/collectives.h"
#include "strata/parallel/pipeline.h"

namespace strata::parallel {

namespace {

constexpr const char* kExpAvg = "exp_avg.";
constexpr const char* kExpAvgSq = "exp_avg_sq.";

// The whole model of a single process, as a vessel for checkpoints. Building it draws its random
// initial weights; the generator is put back so the run's random stream does not change.
std::shared_ptr<LanguageModel> whole_model(const LanguageModel& model) {
  auto generator = at::detail::getDefaultCPUGenerator();
  const auto rng = generator.get_state();
  auto whole = build_language_model(std::make_shared<const TransformerConfig>(model.config()));
  generator.set_state(rng);
  return whole;
}

// Optimizer state entries ("exp_avg.<param>", "exp_avg_sq.<param>", "step") split like their
// parameters: the parameter's canonical name, or "" for entries that belong to none.
std::string parameter_of(const std::string& key) {
  for (const char* prefix : {kExpAvgSq, kExpAvg})
    if (key.rfind(prefix, 0) == 0) return key.substr(std::string(prefix).size());
  return "";
}

}  // namespace

ParallelTraining::ParallelTraining(LanguageModel& model, int64_t bucket_bytes)
    : model_(model), sync_(std::make_unique<GradientSync>(model, bucket_bytes)) {}

at::Tensor ParallelTraining::local_rows(const at::Tensor& all_ranks) const {
  const auto dp = data_parallel_size();
  if (all_ranks.size(0) % dp != 0)
    fail("data-parallel batch of ", all_ranks.size(0), " rows does not split over ", dp, " data-parallel ranks");
  return all_ranks.chunk(dp, 0)[model_.process_groups().dp_rank()];
}

StepMeans ParallelTraining::share_means(double loss_sum, double accuracy_sum, const std::vector<double>& mtp_sums,
                                        int64_t count) const {
  const auto& pg = model_.process_groups();
  std::vector<double> values{loss_sum, accuracy_sum};
  values.insert(values.end(), mtp_sums.begin(), mtp_sums.end());
  auto sums = at::tensor(values, at::kDouble);
  // The last stage computed the loss; the data-parallel ranks computed it on different rows.
  broadcast_(sums, pg.pp_size() - 1, pg.pp, "broadcast of the loss from the last pipeline stage");
  all_reduce_sum_(sums, pg.dp, "all-reduce of the loss over data-parallel ranks");
  const double divisor = static_cast<double>(count) * pg.dp_size();
  StepMeans means{sums[0].item<double>() / divisor, sums[1].item<double>() / divisor, {}};
  for (size_t d = 0; d < mtp_sums.size(); ++d) means.mtp_losses.push_back(sums[2 + d].item<double>() / divisor);
  return means;
}

StepMeans ParallelTraining::forward_backward(const std::vector<MicroBatch>& micro_batches, const ForwardFn& forward,
                                             const LossFn& loss, const AccuracyFn& accuracy) {
  const auto n = static_cast<int64_t>(micro_batches.size());
  if (n == 0) fail("a training step needs at least one micro-batch");
  double loss_sum = 0.0, accuracy_sum = 0.0;
  std::vector<double> mtp_sums;
  auto record = [&](int64_t i, const at::Tensor& logits) {
    const auto labels = local_rows(micro_batches[i].labels).to(logits.device());
    auto l = loss(logits, labels);
    loss_sum += l.item<double>();
    accuracy_sum += accuracy(logits, labels);
    return l;
  };
  if (model_.process_groups().pp_size() > 1) {
    PipelineCallbacks callbacks{
        .input_ids = [&](int64_t i) { return local_rows(micro_batches[i].input_ids); },
        .forward = forward,
        .loss = [&](int64_t i, const at::Tensor& logits) { return record(i, logits) / static_cast<double>(n); },
        .aux_loss_scale = 1.0 / static_cast<double>(n),
    };
    forward_backward_1f1b(model_, n, callbacks, sync_.get());
  } else {
    for (int64_t i = 0; i < n; ++i) {
      sync_->prepare_backward(i == n - 1);
      ForwardContext ctx;
      if (model_.mtp_depths() > 0) ctx.labels = local_rows(micro_batches[i].labels);
      auto logits = forward(0, local_rows(micro_batches[i].input_ids), ctx);
      auto total = record(i, logits);
      for (const auto& aux : ctx.aux_losses) total = total + aux;
      mtp_sums.resize(ctx.mtp_losses.size());
      for (size_t d = 0; d < ctx.mtp_losses.size(); ++d) mtp_sums[d] += ctx.mtp_losses[d].item<double>();
      (total / static_cast<double>(n)).backward();
    }
  }
  sync_->finish();
  return share_means(loss_sum, accuracy_sum, mtp_sums, n);
}

StepMeans ParallelTraining::evaluate(const std::vector<MicroBatch>& batches, const ForwardFn& forward,
                                     const LossFn& loss, const AccuracyFn& accuracy) {
  at::NoGradGuard no_grad;
  model_.eval();
  double loss_sum = 0.0, accuracy_sum = 0.0;
  auto record = [&](int64_t i, const at::Tensor& logits) {
    const auto labels = local_rows(batches[i].labels).to(logits.device());
    auto l = loss(logits, labels);
    loss_sum += l.item<double>();
    accuracy_sum += accuracy(logits, labels);
    return l;
  };
  const auto n = static_cast<int64_t>(batches.size());
  if (model_.process_groups().pp_size() > 1) {
    forward_only(model_, n,
                 PipelineCallbacks{.input_ids = [&](int64_t i) { return local_rows(batches[i].input_ids); },
                                   .forward = forward,
                                   .loss = record});
  } else {
    for (int64_t i = 0; i < n; ++i) {
      ForwardContext ctx;
      record(i, forward(0, local_rows(batches[i].input_ids), ctx));
    }
  }
  model_.train();
  return share_means(loss_sum, accuracy_sum, {}, std::max<int64_t>(n, 1));
}

void ParallelTraining::save_checkpoint(const std::filesystem::path& save_dir, const train::AdamW& optimizer,
                                       const train::TrainingState& state) {
  const auto& pg = model_.process_groups();
  const auto& placements = sync_->placements();
  // Optimizer state is split like its parameters; gather it alongside them.
  std::map<std::string, at::Tensor> moments, others;
  std::map<std::string, ParameterPlacement> moment_placements;
  for (const auto& [key, tensor] : optimizer.state()) {
    const auto param = parameter_of(key);
    if (param.empty()) {
      others.emplace(key, tensor);
      continue;
    }
    moments.emplace(key, tensor);
    moment_placements.emplace(key, placements.at(param));
  }
  auto weights = gather_canonical_state_dict(model_);
  auto whole_moments = exchange_over_pipeline(gather_named_shards(moments, moment_placements), pg.pp);
  if (ProcessGroups::rank(pg.world) == 0) {
    auto whole = whole_model(model_);
    whole->load_canonical_state_dict(weights, "the gathered weights");
    train::AdamW whole_optimizer(whole->canonical_state_dict(), {});
    whole_moments.insert(others.begin(), others.end());
    whole_optimizer.load_state(whole_moments, "the gathered optimizer state");
    train::save_training_checkpoint(save_dir, *whole, whole_optimizer, state);
  }
  barrier(pg.world, "barrier after saving a checkpoint to " + save_dir.string());
}

train::TrainingState ParallelTraining::load_checkpoint(const std::filesystem::path& load_dir, train::AdamW& optimizer) {
  auto whole = whole_model(model_);
  train::AdamW whole_optimizer(whole->canonical_state_dict(), {});
  auto state = train::load_training_checkpoint(load_dir, *whole, whole_optimizer);
  load_canonical_state_dict(model_, whole->canonical_state_dict(), load_dir.string());
  const auto& placements = sync_->placements();
  std::map<std::string, at::Tensor> local;
  for (const auto& [key, tensor] : whole_optimizer.state()) {
    const auto param = parameter_of(key);
    if (param.empty()) {
      local.emplace(key, tensor);
    } else if (auto it = placements.find(param); it != placements.end()) {
      local.emplace(key, it->second.shard ? shard_of(tensor, *it->second.shard, key) : tensor);
    }
  }
  optimizer.load_state(local, load_dir.string());
  return state;
}

}  // namespace strata::parallel
