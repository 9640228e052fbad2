#pragma once
// Training checkpoints, Megatron's layout (checkpoint_dir.h says how a folder changes atomically):
//   SAVE/latest_checkpointed_iteration.txt    the newest complete checkpoint
//   SAVE/iter_0000060/model*.safetensors      canonical weights (sharded when large)
//   SAVE/iter_0000060/optimizer.safetensors   AdamW state by canonical parameter name
//   SAVE/iter_0000060/rng.safetensors         RNG states
//   SAVE/iter_0000060/state.json              iteration, data position, model config, run identity
//   SAVE/iter_0000060/tokenizer/              the run's tokenizer files, when it has a tokenizer
#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <optional>
#include <string_view>

#include "strata/model/language_model.h"
#include "strata/text/tokenizer_files.h"
#include "strata/train/optimizer.h"

namespace strata::train {

struct TrainingState {
  int64_t iteration = 0;
  uint64_t data_position = 0;
  nlohmann::json run;  // run_identity.h; null in checkpoints written before strata saved it
  // The run's tokenizer (--tokenizer-model, an --load-hf folder's, or the resumed checkpoint's),
  // copied into each checkpoint for generate, eval and export. Not read back by a load: it is
  // where the files lie, not the run's state.
  std::vector<text::TokenizerFile> tokenizer;
};

// Refuses weights that hold NaN or infinity (a diverged run must not overwrite a good checkpoint).
// `after_step` is checkpoint_dir.h's hook for tests.
void save_training_checkpoint(const std::filesystem::path& save_dir, const LanguageModel& model,
                              const AdamW& optimizer, const TrainingState& state,
                              const std::function<void(std::string_view step)>& after_step = {});

// The iteration named by the tracker file, if there is a checkpoint.
std::optional<int64_t> latest_iteration(const std::filesystem::path& save_dir);

// What a --load folder holds.
enum class LoadFolder { missing, empty, strata_checkpoint, hf_model, hf_check_fixture, not_a_folder, other };
LoadFolder inspect_load_folder(const std::filesystem::path& dir);
// For errors about a folder that holds no strata checkpoint: "no such directory", "an HF model
// (config.json and safetensors): start from it with --load-hf", ...
std::string describe_non_checkpoint(const std::filesystem::path& dir);

// The state.json of the latest checkpoint, read strictly, with the model config it was saved with.
struct SavedCheckpoint {
  std::filesystem::path dir;  // the iteration folder
  TrainingState state;
  nlohmann::json config;  // config_json.h's to_json of the model's TransformerConfig
};
SavedCheckpoint read_checkpoint(const std::filesystem::path& load_dir);

// Loads weights, optimizer state and RNG state of the latest checkpoint; returns its state.
TrainingState load_training_checkpoint(const std::filesystem::path& load_dir, LanguageModel& model,
                                       AdamW& optimizer);

// The model config a checkpoint was saved with (state.json), for `strata generate`.
nlohmann::json checkpoint_config(const std::filesystem::path& load_dir);
// The tokenizer/ folder of the latest checkpoint, when its run had a tokenizer.
std::optional<std::filesystem::path> checkpoint_tokenizer_dir(const std::filesystem::path& load_dir);
std::filesystem::path latest_checkpoint_dir(const std::filesystem::path& load_dir);

}  // namespace strata::train
