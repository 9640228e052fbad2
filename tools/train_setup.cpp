#include "train_setup.h"

#include <fstream>

#include "strata/core/config_json.h"
#include "strata/core/error.h"
#include "strata/hf/architecture.h"
#include "strata/model/layer_allocation.h"
#include "strata/train/run_identity.h"
#include "strata/train/train_checkpoint.h"

namespace strata::tools {

namespace {

using Json = nlohmann::json;

Json read_json_file(const std::string& path, const char* flag) {
  std::ifstream in(path);
  if (!in) fail(flag, " ", path, ": cannot open");
  try {
    return Json::parse(in);
  } catch (const Json::exception& e) {  // parse_error, or out_of_range for a number beyond a double
    fail(flag, " ", path, ": not valid JSON (", e.what(), ")");
  }
}

bool same_path(const std::string& a, const std::string& b) {
  std::error_code error;
  return std::filesystem::equivalent(a, b, error);
}

// A resumed run's indexed datasets: the checkpoint's, with what the flags give on top. Its
// samples stay those it was built for (train_samples, seq_length): a longer --train-iters reads
// them again from the start rather than reshuffling the run.
Json resumed_indexed_spec(const TrainFlags& f, Json saved, int64_t data_parallel_size) {
  if (f.given("--data-path")) {
    const auto now = data_spec_from_flags(f, data_parallel_size);
    if (now.value("kind", "") != "megatron") return now;  // another source: the trainer says so
    auto datasets = now["datasets"];
    const auto& before = saved["datasets"];
    // The same files keep their fingerprints; others are compared with the checkpoint's by content.
    for (size_t d = 0; d < datasets.size() && d < before.size(); ++d)
      if (same_path(datasets[d]["path"], before[d].value("path", ""))) {
        auto kept = before[d];
        kept.erase("weight");
        if (datasets[d].contains("weight")) kept["weight"] = datasets[d]["weight"];
        datasets[d] = kept;
      }
    saved["datasets"] = datasets;
  }
  if (f.given("--split")) saved["split"] = f.data.split;
  if (f.given("--seed")) saved["seed"] = f.seed;
  if (f.given("--vocab-size")) saved["vocab_size"] = *f.vocab_size;
  if (f.given("--eod-mask-loss")) saved["eod_mask_loss"] = true;
  if (f.given("--eod-token-id")) saved["eod_token_id"] = *f.data.eod_token_id;
  if (f.tokenizer.given() && !f.tokenizer.is_null() && !f.given("--vocab-size"))
    saved["vocab_size"] = f.tokenizer.open()->vocab_size();
  return saved;
}

// The data of a resumed run: the checkpoint's, with what the flags give on top.
Json resumed_data_spec(const TrainFlags& f, Json saved, int64_t data_parallel_size) {
  if (saved.value("kind", "") == "megatron") return resumed_indexed_spec(f, std::move(saved), data_parallel_size);
  const auto kind = saved.value("kind", "");
  const bool file = kind != "mqar" && kind != "random";
  if (f.given("--data-path")) {
    auto now = data_spec_from_flags(f, data_parallel_size);
    if (!file || now.value("kind", "") == "megatron") return now;  // another source: the trainer says so
    if (!same_path(f.data.data_path[0], saved.value("path", ""))) {
      // Another file: compared with the checkpoint's data by content (a moved file is the same data).
      saved["path"] = f.data.data_path[0];
      saved.erase("fingerprint");
      saved.erase("size");
    }
  }
  if (f.given("--data-format")) saved["kind"] = f.data.data_format;
  if (f.given("--vocab-size") && file && saved["kind"] != "text") saved["vocab_size"] = *f.vocab_size;
  if (f.given("--split") && file) set_file_split(f.data, saved);  // compared with the checkpoint's
  if (f.given("--mqar-kv-pairs") && kind == "mqar") saved["num_kv_pairs"] = f.mqar_kv_pairs;
  if (f.given("--seed") && kind == "mqar") saved["seed"] = f.seed;
  return saved;
}

// Shapes and schedule the flags leave out, from the checkpoint.
void restore_options(TrainFlags& f, const Json& run, const std::string& source) {
  auto& o = f.options;
  if (!f.given("--seq-length")) o.seq_length = run.at("seq_length").get<int64_t>();
  if (!f.given("--micro-batch-size")) o.micro_batch_size = run.at("micro_batch_size").get<int64_t>();
  if (!f.given("--global-batch-size")) o.global_batch_size = run.at("global_batch_size").get<int64_t>();
  train::TrainOptions saved;
  train::apply_schedule(run.at("schedule"), saved, source);
  // --use-checkpoint-opt_param-scheduler: the checkpoint's schedule whatever the flags say.
  const auto keep = [&](const char* flag, auto& value, const auto& saved_value) {
    if (f.use_checkpoint_opt_param_scheduler || !f.given(flag)) value = saved_value;
  };
  keep("--lr", o.lr, saved.lr);
  keep("--min-lr", o.min_lr, saved.min_lr);
  keep("--lr-decay-style", o.lr_decay_style, saved.lr_decay_style);
  keep("--lr-warmup-init", o.lr_warmup_init, saved.lr_warmup_init);
  keep("--lr-warmup-fraction", o.lr_warmup_fraction, saved.lr_warmup_fraction);
  keep("--lr-warmup-iters", o.lr_warmup_iters, saved.lr_warmup_iters);
  keep("--lr-decay-iters", o.lr_decay_iters, saved.lr_decay_iters);
  keep("--lr-wsd-decay-style", o.lr_wsd_decay_style, saved.lr_wsd_decay_style);
  keep("--lr-wsd-decay-iters", o.lr_wsd_decay_iters, saved.lr_wsd_decay_iters);
  keep("--lr-warmup-samples", o.lr_warmup_samples, saved.lr_warmup_samples);
  keep("--lr-decay-samples", o.lr_decay_samples, saved.lr_decay_samples);
  keep("--lr-wsd-decay-samples", o.lr_wsd_decay_samples, saved.lr_wsd_decay_samples);
  keep("--weight-decay", o.adam.weight_decay, saved.adam.weight_decay);
  keep("--apply-wd-to-qk-layernorm", o.adam.apply_wd_to_qk_layernorm, saved.adam.apply_wd_to_qk_layernorm);
  keep("--adam-beta1", o.adam.beta1, saved.adam.beta1);
  keep("--adam-beta2", o.adam.beta2, saved.adam.beta2);
  keep("--adam-eps", o.adam.eps, saved.adam.eps);
  keep("--clip-grad", o.clip_grad, saved.clip_grad);
}

// The tokenizer the flags name, else the one in `folder` (an HF model folder or a checkpoint's
// tokenizer/), else none.
std::vector<text::TokenizerFile> run_tokenizer(const TrainFlags& f, const std::optional<std::filesystem::path>& folder) {
  if (f.tokenizer.is_null()) return {};  // the data are ids: no tokenizer to keep
  if (f.tokenizer.given()) return text::tokenizer_files(f.tokenizer.type, f.tokenizer.model);
  if (!folder) return {};
  const auto type = text::tokenizer_type_in(*folder);
  return type ? text::tokenizer_files(*type, *folder) : std::vector<text::TokenizerFile>{};
}

TrainSetup from_hf(TrainFlags& f, int64_t data_parallel_size) {
  if (!f.options.load.empty()) fail("--load-hf ", f.load_hf, ": give either --load-hf or --load, not both");
  if (!f.model_config.empty()) fail("--load-hf ", f.load_hf, ": the HF config defines the model; drop --model-config");
  if (const auto flag = f.model.first_given(); !flag.empty())
    fail("--load-hf ", f.load_hf, ": the HF config defines the model; drop ", flag);
  const auto dir = hf::hf_model_dir(f.load_hf);
  auto hf = hf::load_hf_model(dir);
  return {hf.config, train::open_data_source(data_spec_from_flags(f, data_parallel_size, dir), "--data-path"),
          hf.model->canonical_state_dict(), cat("a new run from the HF model in ", dir.string()), {},
          run_tokenizer(f, dir)};
}

}  // namespace

TransformerConfig new_run_base(const TrainFlags& f, int64_t data_vocab_size) {
  TransformerConfig c = !f.model_config.empty()      ? TransformerConfig{}
                        : f.model.define_a_model() ? megatron_flag_defaults()
                                                   : train::default_model_config();
  c.vocab_size = model_vocab_size(f, data_vocab_size);
  return c;
}

TransformerConfig model_config_from_flags(const TrainFlags& f, TransformerConfig base) {
  if (!f.model_config.empty())
    base = config_from_json(read_json_file(f.model_config, "--model-config"), f.model_config, std::move(base));
  // --vocab-size is the data's vocabulary: it wins over the file's, as every flag does.
  if (f.vocab_size) base.vocab_size = model_vocab_size(f, *f.vocab_size);
  base = apply_model_flags(f.model, std::move(base));
  derive_unset_fields(base);
  return base;
}

TrainSetup set_up_run(TrainFlags& f, int64_t data_parallel_size) {
  if (!f.load_hf.empty()) return from_hf(f, data_parallel_size);
  auto& o = f.options;
  const bool resumes = !o.load.empty() && !train::load_starts_fresh(o);
  if (!resumes || o.finetune) {
    const auto tokenizer_folder = resumes ? train::checkpoint_tokenizer_dir(o.load) : std::nullopt;
    auto data = train::open_data_source(data_spec_from_flags(f, data_parallel_size, tokenizer_folder), "--data-path");
    TransformerConfig c = new_run_base(f, data->vocab_size());
    if (resumes) c = saved_config_from_json(train::checkpoint_config(o.load), "--load " + o.load);
    auto resolved = resolve_layer_settings(model_config_from_flags(f, c));
    return {std::make_shared<const TransformerConfig>(std::move(resolved.config)), std::move(data), {},
            resumes ? cat("a new run from the weights in ", o.load, " (--finetune)") : "a new run",
            std::move(resolved.warnings), run_tokenizer(f, tokenizer_folder)};
  }

  const auto saved = train::read_checkpoint(o.load);
  const auto source = "--load " + o.load;
  auto resolved = resolve_layer_settings(model_config_from_flags(f, saved_config_from_json(saved.config, source)));
  auto c = std::move(resolved.config);
  std::unique_ptr<train::DataSource> data;
  if (saved.state.run.is_null()) {  // written before strata saved the run: only the model is known
    data = train::open_data_source(data_spec_from_flags(f, data_parallel_size), "--data-path");
  } else {
    data = train::open_data_source(resumed_data_spec(f, saved.state.run.at("data"), data_parallel_size), source);
    restore_options(f, saved.state.run, source);
    const auto global_batch = o.global_batch_size ? o.global_batch_size : o.micro_batch_size * data_parallel_size;
    train::check_resumable(to_json(saved_config_from_json(saved.config, source)), saved.state.run, to_json(c),
                           train::run_identity(*data, o, global_batch), o.override_opt_param_scheduler, source);
  }
  return {std::make_shared<const TransformerConfig>(c), std::move(data), {},
          cat("resumes ", o.load, " at iteration ", saved.state.iteration), std::move(resolved.warnings),
          run_tokenizer(f, train::checkpoint_tokenizer_dir(o.load))};
}

}  // namespace strata::tools
