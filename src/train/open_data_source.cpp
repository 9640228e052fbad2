#include "strata/core/error.h"
#include "strata/io/json_fields.h"
#include "strata/train/data.h"
#include "strata/train/megatron_data.h"

namespace strata::train {

namespace {

// A file named by a checkpoint must still be the file that run read: its size and fingerprint are
// the fields `key`_size and `key`_fingerprint ("size" and "fingerprint" with no key).
void require_same_file(const io::JsonFields& fields, const std::string& path, const std::string& key = "") {
  const auto field = [&](const char* name) { return key.empty() ? std::string(name) : key + "_" + name; };
  if (!fields.has(field("fingerprint"))) return;
  const io::FileFingerprint saved{static_cast<uint64_t>(fields.required<int64_t>(field("size"))),
                                  fields.required<std::string>(field("fingerprint"))};
  const auto now = io::file_fingerprint(path);
  if (now == saved) return;
  fail(fields.source(), ": the data file ", path, " changed since this run read it (size ", saved.size, " -> ", now.size,
       ", fingerprint ", saved.hash, " -> ", now.hash,
       "): resuming would read other data; restore the file, or start a new run from the weights with --finetune");
}

// Megatron indexed datasets (megatron_data.h): a list of prefixes, each with its files'
// fingerprints once a run has read them.
std::unique_ptr<DataSource> open_megatron_data(const io::JsonFields& fields, const nlohmann::json& identity) {
  MegatronDataSpec spec;
  const auto& datasets = identity.at("datasets");
  if (!datasets.is_array() || datasets.empty()) fields.invalid("datasets", "must be a non-empty list of datasets");
  std::vector<double> weights;
  for (size_t d = 0; d < datasets.size(); ++d) {
    if (!datasets[d].is_object()) fields.invalid(cat("datasets[", d, "]"), "must be an object with a \"path\"");
    const io::JsonFields dataset(datasets[d], fields.source(), cat("data.datasets[", d, "]"));
    spec.blend.prefixes.push_back(dataset.required<std::string>("path"));
    if (dataset.has("weight")) weights.push_back(dataset.required<double>("weight"));
  }
  if (!weights.empty()) {
    if (weights.size() != datasets.size()) fields.invalid("datasets", "give every dataset a weight, or none");
    spec.blend.weights = weights;
  }
  spec.split = fields.optional<std::string>("split", spec.split);
  spec.seq_length = fields.required<int64_t>("seq_length");
  spec.train_samples = fields.required<int64_t>("train_samples");
  const auto seed = fields.required<int64_t>("seed");
  if (seed < 0 || seed > 0xffffffffll)
    fields.invalid("seed", cat("is ", seed, "; Megatron's datasets take seeds in [0, 2^32)"));
  spec.seed = static_cast<uint32_t>(seed);
  spec.vocab_size = fields.required<int64_t>("vocab_size");
  spec.eod_mask_loss = fields.optional<bool>("eod_mask_loss", false);
  spec.eod_token_id = fields.optional_value<int64_t>("eod_token_id");
  for (size_t d = 0; d < datasets.size(); ++d) {  // before opening: "changed" says more than "truncated"
    const io::JsonFields dataset(datasets[d], fields.source(), cat("data.datasets[", d, "]"));
    require_same_file(dataset, io::megatron_idx_path(spec.blend.prefixes[d]).string(), "idx");
    require_same_file(dataset, io::megatron_bin_path(spec.blend.prefixes[d]).string(), "bin");
  }
  return std::make_unique<MegatronData>(spec);
}

}  // namespace

std::unique_ptr<DataSource> open_data_source(const nlohmann::json& identity, const std::string& source) {
  if (!identity.is_object()) fail(source, ": data is ", identity.dump(), ", expected an object with a \"kind\"");
  const io::JsonFields fields(identity, source, "data");
  const auto kind = fields.required<std::string>("kind");
  if (kind == "mqar")
    return std::make_unique<MqarData>(fields.required<int64_t>("vocab_size"), fields.required<int64_t>("num_kv_pairs"),
                                      static_cast<uint64_t>(fields.required<int64_t>("seed")));
  if (kind == "random") return std::make_unique<RandomTokenData>(fields.required<int64_t>("vocab_size"));
  if (kind == "megatron") return open_megatron_data(fields, identity);
  if (kind != "text" && kind != "uint16" && kind != "uint32")
    fields.invalid("kind", cat("is '", kind, "', expected text, uint16, uint32, megatron, mqar or random"));
  const auto path = fields.required<std::string>("path");
  const double held_out = fields.optional<double>("held_out_fraction", 0.05);
  const double test = fields.optional<double>("test_fraction", 0.0);
  std::unique_ptr<DataSource> data;
  if (kind == "text") {
    data = std::make_unique<ByteTextData>(path, held_out, test);
  } else {
    data = std::make_unique<TokenFileData>(path, kind == "uint16" ? 2 : 4, fields.required<int64_t>("vocab_size"),
                                           held_out, test);
  }
  require_same_file(fields, path);
  return data;
}

}  // namespace strata::train
