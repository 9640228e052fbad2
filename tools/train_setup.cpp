#include "train_setup.h"

#include <fstream>

#include "strata/core/config_json.h"
#include "strata/core/error.h"
#include "strata/hf/architecture.h"
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

// The data of a resumed run: the checkpoint's, with what the flags give on top.
Json resumed_data_spec(const TrainFlags& f, Json saved) {
  std::error_code error;
  const bool file = saved.value("kind", "") != "mqar";
  if (f.given("--data-path") && !file) return data_spec_from_flags(f);  // another source: the trainer says so
  if (f.given("--data-path") && !std::filesystem::equivalent(f.data_path, saved.value("path", ""), error)) {
    // Another file: compared with the checkpoint's data by content (a moved file is the same data).
    saved["path"] = f.data_path;
    saved.erase("fingerprint");
    saved.erase("size");
  }
  if (f.given("--data-format")) saved["kind"] = f.data_format;
  if (f.given("--vocab-size") && file && saved["kind"] != "text") saved["vocab_size"] = *f.vocab_size;
  if (f.given("--split") && file) {  // another split of the file: compared with the checkpoint's
    const auto split = data_spec_from_flags(f);
    saved.erase("test_fraction");
    for (const char* key : {"held_out_fraction", "test_fraction"})
      if (split.contains(key)) saved[key] = split[key];
  }
  if (f.given("--mqar-kv-pairs") && !file) saved["num_kv_pairs"] = f.mqar_kv_pairs;
  if (f.given("--seed") && !file) saved["seed"] = f.seed;
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

TrainSetup from_hf(TrainFlags& f) {
  if (!f.options.load.empty()) fail("--load-hf ", f.load_hf, ": give either --load-hf or --load, not both");
  if (!f.model_config.empty()) fail("--load-hf ", f.load_hf, ": the HF config defines the model; drop --model-config");
  if (f.model.any_given())
    fail("--load-hf ", f.load_hf, ": the HF config defines the model; drop ", f.model.given.front().flag);
  std::filesystem::path dir = f.load_hf;
  if (!std::filesystem::exists(dir / "config.json") && std::filesystem::exists(dir / "model" / "config.json"))
    dir /= "model";  // an hf-check fixture folder
  auto hf = hf::load_hf_model(dir);
  TrainSetup setup{hf.config, train::open_data_source(data_spec_from_flags(f), "--data-path"),
                   hf.model->canonical_state_dict(), cat("a new run from the HF model in ", dir.string())};
  return setup;
}

// The model a new run starts from before its config file and flags: Megatron's defaults when the
// run names a config file (TransformerConfig's) or its flags define the model (the flags'), else
// the embedded default model.
TransformerConfig new_run_base(const TrainFlags& f) {
  if (!f.model_config.empty()) return TransformerConfig{};
  if (f.model.define_a_model()) return megatron_flag_defaults();
  return train::default_model_config();
}

}  // namespace

TrainSetup set_up_run(TrainFlags& f, int64_t data_parallel_size) {
  if (!f.load_hf.empty()) return from_hf(f);
  auto& o = f.options;
  const bool resumes = !o.load.empty() && !train::load_starts_fresh(o);
  if (!resumes || o.finetune) {
    auto data = train::open_data_source(data_spec_from_flags(f), "--data-path");
    TransformerConfig c = new_run_base(f);
    c.vocab_size = model_vocab_size(f, data->vocab_size());
    if (resumes) c = saved_config_from_json(train::checkpoint_config(o.load), "--load " + o.load);
    if (!f.model_config.empty())
      c = config_from_json(read_json_file(f.model_config, "--model-config"), f.model_config, c);
    c = apply_model_flags(f.model, c);
    derive_unset_fields(c);
    return {std::make_shared<const TransformerConfig>(c), std::move(data), {},
            resumes ? cat("a new run from the weights in ", o.load, " (--finetune)") : "a new run"};
  }

  const auto saved = train::read_checkpoint(o.load);
  const auto source = "--load " + o.load;
  TransformerConfig c = saved_config_from_json(saved.config, source);
  if (!f.model_config.empty()) c = config_from_json(read_json_file(f.model_config, "--model-config"), f.model_config, c);
  c = apply_model_flags(f.model, c);
  derive_unset_fields(c);
  std::unique_ptr<train::DataSource> data;
  if (saved.state.run.is_null()) {  // written before strata saved the run: only the model is known
    data = train::open_data_source(data_spec_from_flags(f), "--data-path");
  } else {
    data = train::open_data_source(resumed_data_spec(f, saved.state.run.at("data")), source);
    restore_options(f, saved.state.run, source);
    const auto global_batch = o.global_batch_size ? o.global_batch_size : o.micro_batch_size * data_parallel_size;
    train::check_resumable(to_json(saved_config_from_json(saved.config, source)), saved.state.run, to_json(c),
                           train::run_identity(*data, o, global_batch), o.override_opt_param_scheduler, source);
  }
  return {std::make_shared<const TransformerConfig>(c), std::move(data), {},
          cat("resumes ", o.load, " at iteration ", saved.state.iteration)};
}

}  // namespace strata::tools
