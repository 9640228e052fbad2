// strata describe: the model a `strata train` command line would build, resolved and checked but
// not built: every canonical layer (its symbol, the TransformerLayer it is part of, its pipeline
// stage, rank and virtual stage), the MTP depths, and the parameters per kind of layer.
#include <nlohmann/json.hpp>

#include <cstdio>

#include "commands.h"
#include "strata/core/config_json.h"
#include "strata/core/error.h"
#include "strata/model/layer_allocation.h"
#include "strata/model/parameter_count.h"
#include "strata/model/pipeline_layout.h"
#include "strata/train/default_run.h"
#include "strata/train/train_checkpoint.h"
#include "train_flags.h"
#include "train_setup.h"

namespace strata::tools {

namespace {

using Json = nlohmann::json;

// One canonical layer and where it runs.
struct DescribedLayer {
  int64_t index;
  char symbol;
  std::string kind;
  int64_t transformer_layer;  // layers fused by [..] share it
  std::string fused;          // "[G-]", or "" for a layer of its own
  int stage, rank, virtual_stage;
};

struct Description {
  ResolvedLayers resolved;
  PipelineLayout pipeline;
  std::vector<DescribedLayer> layers;
  std::vector<std::vector<PatternLayer>> mtp;  // the layers of each MTP depth
  ParameterCount parameters;
};

std::string kind_of(char symbol, const TransformerConfig& config) {
  // The variant picks the module a 'G' builds (layer_specs.h).
  if (symbol == 'G' && config.experimental_attention_variant == "gdn2") return "Gated DeltaNet-2";
  for (auto kind : {SequenceMixerKind::Mamba2, SequenceMixerKind::GatedDeltaNet, SequenceMixerKind::Attention,
                    SequenceMixerKind::DeepSeekSparseAttention, SequenceMixerKind::MultiLatentAttention,
                    SequenceMixerKind::SlidingWindowAttention, SequenceMixerKind::CompressedSparseAttention,
                    SequenceMixerKind::HeavilyCompressedAttention})
    if (strata::symbol(kind) == symbol) return name(kind);
  return name(symbol == '-' ? ChannelMixerKind::Mlp : ChannelMixerKind::MoE);
}

// The config train would start a new run from: the default model or --load's checkpoint, under
// --model-config and the flags; resolved and checked as train checks it.
Description describe(const TrainFlags& given) {
  TrainFlags f = given;
  settle_train_flags(f);  // refused flags are refused as train refuses them; its notes concern the run
  if (!f.load_hf.empty())
    fail("--load-hf ", f.load_hf, ": strata describe reads no HF model (it would have to build it); describe a ",
         "--model-config");
  // The data only tells the vocabulary (a new run's), as train reads it.
  auto base = f.options.load.empty()
                  ? new_run_base(f, train::open_data_source(data_spec_from_flags(f, 1), "--data-path")->vocab_size())
                  : saved_config_from_json(train::checkpoint_config(f.options.load), "--load " + f.options.load);
  Description d{.resolved = resolve_layer_settings(model_config_from_flags(f, base))};
  const auto& config = d.resolved.config;
  validate(config);
  d.pipeline = pipeline_layout(d.resolved.pattern, f.layout.pipeline_parallel, f.pipeline_split);
  d.mtp = resolve_mtp_depths(config);
  if (auto warning = unmarked_stages_warning(config, f.layout.pipeline_parallel); !warning.empty())
    d.resolved.warnings.push_back(warning);
  int64_t transformer_layer = 0;
  for (int s = 0; s < static_cast<int>(d.pipeline.stages.size()); ++s) {
    for (const auto& layer : d.pipeline.stages[s]) {
      const auto fused = layer.sequence && layer.channel ? layer.text() : "";
      auto add = [&](int64_t index, char symbol, const std::string& kind) {
        d.layers.push_back({index, symbol, kind, transformer_layer, fused, s, d.pipeline.rank_of(s),
                            d.pipeline.virtual_stage_of(s)});
      };
      if (layer.sequence)
        add(layer.sequence_canonical(), symbol(*layer.sequence), kind_of(symbol(*layer.sequence), config));
      if (layer.channel) add(layer.channel_canonical(), symbol(*layer.channel), name(*layer.channel));
      ++transformer_layer;
    }
  }
  d.parameters = count_parameters(config, d.resolved.pattern);
  return d;
}

Json to_json(const Description& d) {
  Json layers = Json::array(), stages = Json::array(), transformer_layers = Json::array(), parameters;
  for (const auto& l : d.layers) layers.push_back(std::string(1, l.symbol));
  for (int s = 0; s < static_cast<int>(d.pipeline.stages.size()); ++s) {
    Json indices = Json::array();
    for (const auto& layer : d.pipeline.stages[s]) {
      Json canonical = Json::array();
      for (int64_t i = 0; i < layer.num_canonical(); ++i) canonical.push_back(layer.first_canonical + i);
      indices.insert(indices.end(), canonical.begin(), canonical.end());
      transformer_layers.push_back({{"layers", canonical},
                                    {"symbols", layer.text()},
                                    {"stage", s},
                                    {"pipeline_rank", d.pipeline.rank_of(s)},
                                    {"virtual_stage", d.pipeline.virtual_stage_of(s)}});
    }
    stages.push_back(indices);
  }
  for (const auto& [symbol, count] : d.parameters.by_symbol) parameters[std::string(1, symbol)] = count;
  parameters["embedding"] = d.parameters.embedding;
  parameters["output_layer"] = d.parameters.output_layer;
  parameters["final_layernorm"] = d.parameters.final_layernorm;
  parameters["mtp"] = d.parameters.mtp;
  parameters["total"] = d.parameters.total();
  Json mtp_layers = Json::array();
  if (!d.mtp.empty())
    for (const auto& layer : d.mtp.front()) {
      if (layer.sequence) mtp_layers.push_back(std::string(1, symbol(*layer.sequence)));
      if (layer.channel) mtp_layers.push_back(std::string(1, symbol(*layer.channel)));
    }
  return {{"ok", true},
          {"layers", layers},
          {"mtp_depths", d.mtp.size()},
          {"mtp_layers", mtp_layers},
          {"stages", stages},
          {"pipeline_model_parallel_size", d.pipeline.pipeline_size},
          {"virtual_pipeline_model_parallel_size", d.pipeline.virtual_stages},
          {"transformer_layers", transformer_layers},
          {"num_layers", d.resolved.config.num_layers},
          {"layer_pattern", d.resolved.pattern.text},
          {"parameters", parameters},
          {"warnings", d.resolved.warnings}};
}

void print_text(const Description& d) {
  const auto& pattern = d.resolved.pattern;
  const auto& c = d.resolved.config;
  std::printf("layers: %s (%s), %lld canonical layers in %zu TransformerLayers\n", pattern.text.c_str(),
              c.hybrid_layer_pattern.empty() ? "from num_layers and the attention variant, frequencies and experts"
                                             : "hybrid_layer_pattern",
              static_cast<long long>(pattern.num_canonical_layers()), pattern.layers.size());
  std::printf("pipeline: %zu stage%s on %d rank%s, %d virtual stage%s per rank\n", d.pipeline.stages.size(),
              d.pipeline.stages.size() == 1 ? "" : "s", d.pipeline.pipeline_size, d.pipeline.pipeline_size == 1 ? "" : "s",
              d.pipeline.virtual_stages, d.pipeline.virtual_stages == 1 ? "" : "s");
  std::printf("%-6s %-6s %-26s %-18s %-6s %-5s %s\n", "layer", "symbol", "kind", "transformer layer", "stage", "rank",
              "virtual stage");
  for (const auto& l : d.layers) {
    const auto group = l.fused.empty() ? std::to_string(l.transformer_layer)
                                       : cat(l.transformer_layer, " ", l.fused);
    std::printf("%-6lld %-6c %-26s %-18s %-6d %-5d %d\n", static_cast<long long>(l.index), l.symbol, l.kind.c_str(),
                group.c_str(), l.stage, l.rank, l.virtual_stage);
  }
  if (d.mtp.empty()) {
    std::printf("mtp: none\n");
  } else {
    std::string depth;
    for (const auto& layer : d.mtp.front()) depth += layer.text();
    std::printf("mtp: %zu depth%s of \"%s\"\n", d.mtp.size(), d.mtp.size() == 1 ? "" : "s", depth.c_str());
  }
  std::printf("parameters:\n");
  for (const auto& [symbol, count] : d.parameters.by_symbol)
    std::printf("  %c  %-26s %lld\n", symbol, kind_of(symbol, c).c_str(), static_cast<long long>(count));
  std::printf("  %-29s %lld\n", "embedding", static_cast<long long>(d.parameters.embedding));
  std::printf("  %-29s %lld%s\n", "output layer", static_cast<long long>(d.parameters.output_layer),
              c.share_embeddings_and_output_weights ? " (tied to the embedding)" : "");
  std::printf("  %-29s %lld\n", "final norm", static_cast<long long>(d.parameters.final_layernorm));
  if (!d.mtp.empty()) std::printf("  %-29s %lld\n", "mtp depths", static_cast<long long>(d.parameters.mtp));
  std::printf("  %-29s %lld\n", "total", static_cast<long long>(d.parameters.total()));
}

// A pattern quoted in a message may hold any bytes: those that are not UTF-8 print as U+FFFD.
std::string one_line(const Json& json) { return json.dump(-1, ' ', false, Json::error_handler_t::replace); }

int run_describe(const TrainFlags& f, bool json) {
  Description d;
  try {
    d = describe(f);
  } catch (const Error& e) {
    if (!json) throw;
    std::printf("%s\n", one_line(Json{{"ok", false}, {"error", e.what()}}).c_str());
    return 1;
  }
  for (const auto& warning : d.resolved.warnings) std::fprintf(stderr, "strata: warning: %s\n", warning.c_str());
  if (json) {
    std::printf("%s\n", one_line(to_json(d)).c_str());
  } else {
    print_text(d);
  }
  return 0;
}

}  // namespace

Subcommand add_describe(CLI::App& app) {
  auto f = std::make_shared<TrainFlags>();
  auto json = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand(
      "describe",
      "the model `strata train` would build from the same flags, without building it: each layer, its pipeline "
      "stage, the MTP depths, the parameters per kind (train's other flags are read and unused)");
  add_train_flags(*cmd, *f);
  cmd->add_flag("--json", *json,
                "one line of JSON: ok, layers, mtp_depths, stages, ... (or ok false and error; exit code 1)");
  return {cmd, [f, json] { return run_describe(*f, *json); }};
}

}  // namespace strata::tools
