#include "strata/core/error.h"
#include "strata/io/json_fields.h"
#include "strata/train/data.h"

namespace strata::train {

namespace {

// A file named by a checkpoint must still be the file that run read.
void require_same_file(const io::JsonFields& fields, const std::string& path) {
  if (!fields.has("fingerprint")) return;
  const io::FileFingerprint saved{static_cast<uint64_t>(fields.required<int64_t>("size")),
                                  fields.required<std::string>("fingerprint")};
  const auto now = io::file_fingerprint(path);
  if (now == saved) return;
  fail(fields.source(), ": the data file ", path, " changed since this run read it (size ", saved.size, " -> ", now.size,
       ", fingerprint ", saved.hash, " -> ", now.hash,
       "): resuming would read other data; restore the file, or start a new run from the weights with --finetune");
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
  if (kind != "text" && kind != "uint16" && kind != "uint32")
    fields.invalid("kind", cat("is '", kind, "', expected text, uint16, uint32, mqar or random"));
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
