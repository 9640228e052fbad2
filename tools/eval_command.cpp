// strata eval: a model's loss and perplexity on held-out data, read as strata train reads it (a
// text or token file's last 5 %, the valid split of Megatron indexed datasets).
#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "commands.h"
#include "data_flags.h"
#include "flag_checks.h"
#include "model_source.h"
#include "strata/core/error.h"
#include "strata/train/held_out_loss.h"
#include "strata/train/metrics.h"
#include "strata/train/train_checkpoint.h"
#include "tokenizer_flags.h"

namespace strata::tools {

namespace {

struct EvalFlags {
  ModelSource model;
  DataFlags data;
  TokenizerFlags tokenizer;
  std::optional<int64_t> seq_length, micro_batch_size, eval_iters, vocab_size;
  uint64_t seed = 1234;
  std::string device = "cpu";
  bool json = false;
};

// Shapes the flags leave out: the run's own for a strata checkpoint, else these defaults.
constexpr int64_t kDefaultSeqLength = 1024, kDefaultMicroBatchSize = 8;

int64_t run_setting(const EvalFlags& f, const char* key, int64_t fallback) {
  if (f.model.load.empty()) return fallback;
  const auto run = train::read_checkpoint(f.model.load).state.run;
  return run.is_object() && run.contains(key) ? run.at(key).get<int64_t>() : fallback;
}

// The tokenizer the flags name, else the model's own; null when there is none. `where` names it.
std::unique_ptr<text::Tokenizer> eval_tokenizer(const EvalFlags& f, std::string& where) {
  if (f.tokenizer.given()) {
    where = "--tokenizer-model " + f.tokenizer.model;
    return f.tokenizer.open();
  }
  const auto dir = model_tokenizer_dir(f.model);
  if (!dir) return nullptr;
  where = "the model's tokenizer in " + dir->string();
  return open_model_tokenizer(*dir);
}

// Data the model cannot read is refused before any batch runs, naming both vocabularies.
void check_vocabularies(const EvalFlags& f, const train::DataSource& data, const text::Tokenizer* tokenizer,
                        const std::string& tokenizer_where, int64_t model_vocab) {
  if (data.vocab_size() > model_vocab)
    fail("--data-path ", f.data.data_path[0], ": the data's vocabulary is ", data.vocab_size(),
         " tokens, more than the model's vocab_size ", model_vocab, " (", data.describe(), ")");
  if (tokenizer && tokenizer->vocab_size() > model_vocab)
    fail(tokenizer_where, ": the tokenizer's vocabulary is ", tokenizer->vocab_size(), " tokens, more than the model's vocab_size ",
         model_vocab);
  if (tokenizer && data.identity().value("kind", "") == "text" && tokenizer->vocab_size() != 256)
    fail("--data-path ", f.data.data_path[0], ": text, which strata reads as bytes (vocabulary 256), but the model reads ",
         "tokens of ", tokenizer_where, " (", tokenizer->vocab_size(), " tokens); tokenize the text first ",
         "(strata preprocess writes an indexed dataset) and evaluate that");
}

int run_eval(const EvalFlags& f) {
  if (f.data.data_path.empty())
    fail("give --data-path: the held-out data (a text or token file, or Megatron indexed datasets PREFIX.bin/.idx)");
  auto model = load_model(f.model);
  const int64_t model_vocab = model->config().vocab_size;
  std::string tokenizer_where;
  const auto tokenizer = eval_tokenizer(f, tokenizer_where);

  train::HeldOutLossOptions options;
  options.seq_length = f.seq_length.value_or(run_setting(f, "seq_length", kDefaultSeqLength));
  options.batch_size = f.micro_batch_size.value_or(run_setting(f, "micro_batch_size", kDefaultMicroBatchSize));
  options.batches = f.eval_iters;
  options.device = parse_device(f.device);
  DataSpecSettings settings{options.seq_length, 1, f.seed, f.vocab_size.value_or(model_vocab), {}};
  if (tokenizer) settings.tokenizer = [&] { return eval_tokenizer(f, tokenizer_where); };
  const auto data = train::open_data_source(data_spec_from_flags(f.data, settings), "--data-path");
  check_vocabularies(f, *data, tokenizer.get(), tokenizer_where, model_vocab);

  model->to(options.device);
  std::optional<train::ProgressBar> bar;  // on a terminal only: a log gets the result alone
  const auto start = std::chrono::steady_clock::now();
  if (::isatty(2) && !f.json)
    options.progress = [&](int64_t done, int64_t total, int64_t tokens, double loss) {
      if (!bar) bar.emplace(total, 0);
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      bar->update(done, loss, static_cast<double>(tokens) / seconds, "");
    };
  const auto result = train::held_out_loss(*model, *data, options);
  if (bar) bar->finish();
  if (f.json) {
    const nlohmann::json line = {{"loss", result.loss},         {"perplexity", result.perplexity},
                                 {"tokens", result.tokens},     {"sequences", result.sequences},
                                 {"seq_length", options.seq_length}, {"data", data->describe()}};
    std::printf("%s\n", line.dump().c_str());
  } else {
    std::printf("eval: loss %.4f perplexity %.4g over %lld tokens (%lld sequences of %lld, %s)\n", result.loss,
                result.perplexity, static_cast<long long>(result.tokens), static_cast<long long>(result.sequences),
                static_cast<long long>(options.seq_length), data->describe().c_str());
  }
  return 0;
}

}  // namespace

Subcommand add_eval(CLI::App& app) {
  auto f = std::make_shared<EvalFlags>();
  auto* cmd = app.add_subcommand("eval", "a model's loss and perplexity on held-out data");
  add_model_source_flags(*cmd, f->model);
  add_data_flags(*cmd, f->data,
                 "held-out data: a text or token file (its last 5 %, as strata train holds out), or Megatron indexed "
                 "datasets \"[W1] PREFIX1 [W2] PREFIX2 ...\" (the valid split of --split)");
  add_tokenizer_flags(*cmd, f->tokenizer);
  cmd->add_option("--seq-length", f->seq_length, "tokens per sequence (default: the run's for --load, else 1024)")
      ->check(integer_at_least(2));
  cmd->add_option("--micro-batch-size", f->micro_batch_size, "sequences per forward pass (default: the run's, else 8)")
      ->check(integer_at_least(1));
  cmd->add_option("--eval-iters", f->eval_iters, "batches to evaluate (default: every held-out sequence once)")
      ->check(integer_at_least(1));
  cmd->add_option("--vocab-size", f->vocab_size, "token files: the vocabulary their ids are below (default: the model's)")
      ->check(integer_at_least(1));
  cmd->add_option("--seed", f->seed, "indexed data: the seed that orders the samples")->check(unsigned_integer());
  cmd->add_option("--device", f->device, "cpu or cuda");
  cmd->add_flag("--json", f->json, "print one line of JSON instead of the summary");
  return {cmd, [f] { return run_eval(*f); }};
}

}  // namespace strata::tools
