#include "strata/train/train_checkpoint.h"

#include <fstream>
#include <sstream>

#include "strata/core/config_json.h"
#include "strata/core/error.h"
#include "strata/io/atomic_file.h"
#include "strata/io/json_fields.h"
#include "strata/io/safetensors.h"
#include "strata/model/checkpoint.h"
#include "strata/train/checkpoint_dir.h"

namespace strata::train {

namespace fs = std::filesystem;

namespace {

void require_finite_weights(const LanguageModel& model, const fs::path& save_dir, int64_t iteration) {
  at::NoGradGuard no_grad;
  for (const auto& [name, p] : model.canonical_state_dict()) {
    if (!p.is_floating_point() || at::isfinite(p).all().item<bool>()) continue;
    fail("not saving iteration ", iteration, " to ", save_dir.string(), ": weight ", name,
         " holds NaN or infinity (the run diverged); the last checkpoint there is kept");
  }
}

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path.string(), ": cannot open the tokenizer file to copy it into the checkpoint");
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

}  // namespace

void save_training_checkpoint(const fs::path& save_dir, const LanguageModel& model, const AdamW& optimizer,
                              const TrainingState& state, const std::function<void(std::string_view)>& after_step) {
  require_finite_weights(model, save_dir, state.iteration);
  write_checkpoint_atomically(
      save_dir, state.iteration,
      [&](const fs::path& dir) {
        save_model_weights(model, dir);
        std::map<std::string, at::Tensor> optimizer_state;
        for (const auto& [name, t] : optimizer.state()) optimizer_state.emplace(name, t.detach().cpu());
        io::save_safetensors(dir / "optimizer.safetensors", optimizer_state);
        io::save_safetensors(dir / "rng.safetensors", {{"cpu", at::detail::getDefaultCPUGenerator().get_state()}});
        const nlohmann::json json = {{"iteration", state.iteration},
                                     {"data_position", state.data_position},
                                     {"config", to_json(model.config())},
                                     {"run", state.run}};
        io::write_file_atomically(dir / "state.json", json.dump(2) + "\n");
        if (!state.tokenizer.empty()) fs::create_directories(dir / "tokenizer");
        for (const auto& file : state.tokenizer) io::write_file_atomically(dir / "tokenizer" / file.name, read_bytes(file.source));
      },
      after_step);
}

std::optional<int64_t> latest_iteration(const fs::path& save_dir) { return tracked_iteration(save_dir); }

LoadFolder inspect_load_folder(const fs::path& dir) {
  std::error_code error;
  if (!fs::exists(dir, error)) return LoadFolder::missing;
  if (!fs::is_directory(dir, error)) return LoadFolder::not_a_folder;
  if (tracked_iteration(dir)) return LoadFolder::strata_checkpoint;
  bool safetensors = false, anything = false;
  for (const auto& entry : fs::directory_iterator(dir, error)) {
    anything = true;
    safetensors = safetensors || entry.path().extension() == ".safetensors";
  }
  if (fs::exists(dir / "config.json") && safetensors) return LoadFolder::hf_model;
  if (fs::exists(dir / "model" / "config.json")) return LoadFolder::hf_check_fixture;
  return anything ? LoadFolder::other : LoadFolder::empty;
}

std::string describe_non_checkpoint(const fs::path& dir) {
  switch (inspect_load_folder(dir)) {
    case LoadFolder::missing: return "no such directory";
    case LoadFolder::empty: return "an empty directory, no checkpoint in it";
    case LoadFolder::not_a_folder: return "a file, not a checkpoint folder";
    case LoadFolder::hf_model: return "an HF model (config.json and safetensors): start from it with --load-hf";
    case LoadFolder::hf_check_fixture: return "an hf-check fixture: start from its model with --load-hf";
    case LoadFolder::strata_checkpoint: return "a strata checkpoint";
    case LoadFolder::other: break;
  }
  return cat("no ", kTrackerFile, " (not a strata training checkpoint folder)");
}

SavedCheckpoint read_checkpoint(const fs::path& load_dir) {
  const auto dir = tracked_checkpoint_dir(load_dir);
  const auto path = dir / "state.json";
  std::ifstream in(path);
  if (!in) fail(path.string(), ": cannot open");
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail(path.string(), ": not valid JSON (", e.what(), ")");
  }
  if (!json.is_object()) fail(path.string(), ": expected a JSON object");
  const io::JsonFields fields(json, path.string(), "checkpoint state");
  SavedCheckpoint saved{dir, {}, {}};
  saved.state.iteration = fields.required<int64_t>("iteration");
  const auto position = fields.required<int64_t>("data_position");
  if (saved.state.iteration < 0 || position < 0)
    fail(path.string(), ": iteration ", saved.state.iteration, " and data_position ", position,
         " must be non-negative");
  saved.state.data_position = static_cast<uint64_t>(position);
  if (const auto tracked = tracked_iteration(load_dir); tracked != saved.state.iteration)
    fail(path.string(), ": iteration ", saved.state.iteration, " but the tracker names ", *tracked);
  if (!json.contains("config") || !json["config"].is_object()) fail(path.string(), ": no model \"config\" object");
  saved.config = json["config"];
  saved.state.run = json.value("run", nlohmann::json());
  return saved;
}

TrainingState load_training_checkpoint(const fs::path& load_dir, LanguageModel& model, AdamW& optimizer) {
  auto saved = read_checkpoint(load_dir);
  load_model_weights(model, saved.dir);
  const auto optimizer_path = saved.dir / "optimizer.safetensors";
  auto optimizer_file = io::SafetensorsFile::open(optimizer_path);
  std::map<std::string, at::Tensor> optimizer_state;
  for (const auto& name : optimizer_file.names()) optimizer_state.emplace(name, optimizer_file.load(name));
  optimizer.load_state(optimizer_state, optimizer_path.string());
  auto rng = io::SafetensorsFile::open(saved.dir / "rng.safetensors");
  auto generator = at::detail::getDefaultCPUGenerator();
  generator.set_state(rng.load("cpu"));
  return saved.state;
}

nlohmann::json checkpoint_config(const fs::path& load_dir) { return read_checkpoint(load_dir).config; }

fs::path latest_checkpoint_dir(const fs::path& load_dir) { return tracked_checkpoint_dir(load_dir); }

std::optional<fs::path> checkpoint_tokenizer_dir(const fs::path& load_dir) {
  const auto dir = tracked_checkpoint_dir(load_dir) / "tokenizer";
  std::error_code error;
  if (fs::is_directory(dir, error)) return dir;
  return std::nullopt;
}

}  // namespace strata::train
