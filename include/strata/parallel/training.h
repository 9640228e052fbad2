#pragma once
// What the training loop (train/trainer.cpp) asks of a parallel run, for the part of the model
// this rank holds (parallel_model.h): data-parallel rows of each batch, one step's forward and
// backward (1F1B across pipeline stages, interleaved over virtual stages) with gradients synchronised, the global gradient norm,
// evaluation through the pipeline, and training checkpoints in the single-process layout.
//
// Batches: every data-parallel rank reads the same micro-batch of micro_batch_size x dp rows from
// the data source and keeps its own block of rows, so the data stream, its position and a resumed
// run are what a single process with dp times the micro-batch would see. The loss of each rank is
// the mean over its rows; the average over ranks equals the single-process loss when every row
// holds as many labelled tokens (true for all of strata's data sources).
#include <filesystem>
#include <functional>
#include <memory>
#include <vector>

#include "strata/model/language_model.h"
#include "strata/parallel/grad_sync.h"
#include "strata/train/optimizer.h"
#include "strata/train/train_checkpoint.h"

namespace strata::parallel {

struct MicroBatch {
  at::Tensor input_ids;  // [b * dp, T]: every data-parallel rank's rows
  at::Tensor labels;
};

// Means over the micro-batches (and over data-parallel ranks), the same on every rank.
struct StepMeans {
  double loss = 0.0;
  double accuracy = 0.0;
  std::vector<double> mtp_losses;  // one per multi-token prediction depth (training steps only)
};

class ParallelTraining {
 public:
  // Runs model chunk `chunk` of this rank (model.forward_chunk; chunk 0 unless the rank holds
  // several virtual pipeline stages).
  using ForwardFn = std::function<at::Tensor(int chunk, const at::Tensor& input, ForwardContext& ctx)>;
  using LossFn = std::function<at::Tensor(const at::Tensor& logits, const at::Tensor& labels)>;
  using AccuracyFn = std::function<double(const at::Tensor& logits, const at::Tensor& labels)>;

  explicit ParallelTraining(LanguageModel& model, int64_t bucket_bytes = kDefaultBucketBytes);

  int data_parallel_size() const { return model_.process_groups().dp_size(); }
  // This rank's block of rows of a batch that holds every data-parallel rank's rows.
  at::Tensor local_rows(const at::Tensor& all_ranks) const;

  // Forward and backward of one step (gradients accumulate over the micro-batches and are
  // synchronised at the end); the loss that enters backward is each micro-batch's loss plus its
  // auxiliary losses, divided by the number of micro-batches.
  StepMeans forward_backward(const std::vector<MicroBatch>& micro_batches, const ForwardFn& forward,
                             const LossFn& loss, const AccuracyFn& accuracy);
  // Loss and accuracy of held-out batches, without gradients.
  StepMeans evaluate(const std::vector<MicroBatch>& batches, const ForwardFn& forward, const LossFn& loss,
                     const AccuracyFn& accuracy);
  double clip_grad_norm(double max_norm) { return sync_->clip_grad_norm(max_norm); }

  // Training checkpoints (train_checkpoint.h's layout, readable by a single process and by any
  // other layout): weights and optimizer state are gathered whole and world rank 0 writes them.
  // Both build a whole single-process model on the ranks that read or write; every rank calls them.
  void save_checkpoint(const std::filesystem::path& save_dir, const train::AdamW& optimizer,
                       const train::TrainingState& state);
  train::TrainingState load_checkpoint(const std::filesystem::path& load_dir, train::AdamW& optimizer);

 private:
  StepMeans share_means(double loss_sum, double accuracy_sum, const std::vector<double>& mtp_sums,
                        int64_t count) const;

  LanguageModel& model_;
  std::unique_ptr<GradientSync> sync_;
};

}  // namespace strata::parallel
