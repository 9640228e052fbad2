#include "strata/io/safetensors.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "strata/core/compat.h"
#include "strata/core/error.h"
#include "test_util.h"

namespace strata::io {
namespace {

namespace fs = std::filesystem;
using TensorMap = std::map<std::string, at::Tensor>;

// A fresh directory per test, removed afterwards.
class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / cat("strata_", test->test_suite_name(), "_", test->name(), "_", ::getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    at::manual_seed(0);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::vector<std::string> files_in(const fs::path& dir) const {
    std::vector<std::string> names;
    for (const auto& item : fs::directory_iterator(dir)) names.push_back(item.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

  fs::path dir_;
};

using SafetensorsFileTest = SafetensorsTest;
using SafetensorsCheckpointTest = SafetensorsTest;

::testing::AssertionResult mentions(const std::string& message, std::initializer_list<std::string> parts) {
  for (const auto& part : parts) {
    if (message.find(part) == std::string::npos) return ::testing::AssertionFailure() << "lacks '" << part << "': " << message;
  }
  return ::testing::AssertionSuccess();
}

// Exact equality: same dtype, same shape, same values bit for bit (no NaNs are generated).
void expect_identical(const at::Tensor& actual, const at::Tensor& expected, const std::string& name) {
  EXPECT_EQ(actual.scalar_type(), expected.scalar_type()) << name;
  EXPECT_EQ(actual.sizes(), expected.sizes()) << name;
  EXPECT_TRUE(at::equal(actual, expected)) << name;
}

void expect_identical(const TensorMap& actual, const TensorMap& expected) {
  ASSERT_EQ(actual.size(), expected.size());
  for (const auto& [name, tensor] : expected) {
    ASSERT_TRUE(actual.count(name)) << name;
    expect_identical(actual.at(name), tensor, name);
  }
}

TensorMap random_tensors_of_every_dtype() {
  const auto randint = [](int64_t low, int64_t high, at::ScalarType dtype) {
    return at::randint(low, high, {3, 5}, at::TensorOptions().dtype(dtype));
  };
  return {
      {"f64", at::randn({4, 3}, at::kDouble)},
      {"f32", at::randn({2, 3, 4}, at::kFloat)},
      {"f16", at::randn({7}, at::kFloat).to(at::kHalf)},
      {"bf16", at::randn({5, 2}, at::kFloat).to(at::kBFloat16)},
      {"i64", randint(-(int64_t{1} << 40), int64_t{1} << 40, at::kLong)},
      {"i32", randint(-(int64_t{1} << 31), (int64_t{1} << 31) - 1, at::kInt)},
      {"i16", randint(-32768, 32767, at::kShort)},
      {"i8", randint(-128, 127, at::kChar)},
      {"u8", randint(0, 255, at::kByte)},
      {"bool", randint(0, 2, at::kByte).to(at::kBool)},
      {"scalar", at::randn({}, at::kFloat)},
  };
}

TEST_F(SafetensorsFileTest, RoundTripsEveryDtype) {
  const TensorMap tensors = random_tensors_of_every_dtype();
  save_safetensors(dir_ / "all.safetensors", tensors);
  const auto file = SafetensorsFile::open(dir_ / "all.safetensors");
  EXPECT_EQ(file.names().size(), tensors.size());
  for (const auto& [name, tensor] : tensors) {
    expect_identical(file.load(name), tensor, name);
    expect_identical(file.view(name), tensor, name);
    EXPECT_EQ(file.entry(name).dtype, from_torch_dtype(tensor.scalar_type()));
  }
}

TEST_F(SafetensorsFileTest, Float8NeedsANewerLibTorch) {
  if (!compat::has_float8_dtypes()) {
    EXPECT_TRUE(mentions(testing::error_of([] { to_torch_dtype(DType::F8_E4M3); }), {"F8_E4M3", "LibTorch >= 2.1"}));
    return;
  }
  const at::Tensor bits = at::randint(0, 127, {16}, at::TensorOptions().dtype(at::kByte));
  const TensorMap tensors{{"e4m3", bits.view(to_torch_dtype(DType::F8_E4M3))},
                          {"e5m2", bits.view(to_torch_dtype(DType::F8_E5M2))}};
  save_safetensors(dir_ / "f8.safetensors", tensors);
  const auto file = SafetensorsFile::open(dir_ / "f8.safetensors");
  for (const auto& [name, tensor] : tensors) {
    EXPECT_EQ(file.load(name).scalar_type(), tensor.scalar_type());
    EXPECT_TRUE(at::equal(file.load(name).view(at::kByte), bits)) << name;
  }
}

TEST_F(SafetensorsFileTest, ZeroElementTensorsRoundTrip) {
  const TensorMap tensors{{"a", at::empty({0}, at::kFloat)},
                          {"b", at::empty({3, 0, 2}, at::kBFloat16)},
                          {"c", at::arange(6, at::kLong)}};
  save_safetensors(dir_ / "empty.safetensors", tensors);
  const auto file = SafetensorsFile::open(dir_ / "empty.safetensors");
  for (const auto& [name, tensor] : tensors) {
    expect_identical(file.load(name), tensor, name);
    expect_identical(file.view(name), tensor, name);
  }
  EXPECT_EQ(file.entry("b").begin, file.entry("b").end);
}

TEST_F(SafetensorsFileTest, MetadataRoundTrips) {
  const std::map<std::string, std::string> metadata{{"format", "pt"}, {"step", "1200"}};
  save_safetensors(dir_ / "m.safetensors", {{"w", at::ones({2})}}, metadata);
  EXPECT_EQ(SafetensorsFile::open(dir_ / "m.safetensors").header().metadata, metadata);
}

TEST_F(SafetensorsFileTest, NonContiguousTensorsAreSavedContiguous) {
  const at::Tensor transposed = at::randn({3, 4}).t();
  ASSERT_FALSE(transposed.is_contiguous());
  save_safetensors(dir_ / "t.safetensors", {{"t", transposed}});
  const at::Tensor loaded = SafetensorsFile::open(dir_ / "t.safetensors").load("t");
  EXPECT_TRUE(loaded.is_contiguous());
  expect_identical(loaded, transposed, "t");
}

TEST_F(SafetensorsFileTest, ViewIsZeroCopyAndOutlivesTheFile) {
  save_safetensors(dir_ / "v.safetensors", {{"w", at::randn({64, 8})}});
  at::Tensor view, loaded;
  {
    const auto file = SafetensorsFile::open(dir_ / "v.safetensors");
    view = file.view("w");
    loaded = file.load("w");
    const auto* mapped = static_cast<const char*>(view.data_ptr());
    EXPECT_EQ(mapped, static_cast<const char*>(file.view("w").data_ptr()));  // the same mapped bytes
  }
  expect_identical(view, loaded, "w");  // the mapping is still alive
}

TEST_F(SafetensorsFileTest, WritingToAViewLeavesTheFileUnchanged) {
  const at::Tensor original = at::randn({16});
  save_safetensors(dir_ / "w.safetensors", {{"w", original}});
  {
    const auto file = SafetensorsFile::open(dir_ / "w.safetensors");
    at::Tensor view = file.view("w");
    view.add_(1.0);
    EXPECT_TRUE(at::equal(file.view("w"), original + 1.0));
  }
  expect_identical(SafetensorsFile::open(dir_ / "w.safetensors").load("w"), original, "w");
}

TEST_F(SafetensorsFileTest, ViewOfUnalignedDataIsACopy) {
  // Padding the JSON so the data section starts at an odd offset misaligns it for F32.
  std::string padded = R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}})";
  while ((8 + padded.size()) % 4 != 1) padded += ' ';
  const float values[3] = {1.5f, -2.0f, 3.25f};
  {
    std::ofstream out(dir_ / "u.safetensors", std::ios::binary);
    const uint64_t length = padded.size();
    out.write(reinterpret_cast<const char*>(&length), 8);
    out << padded;
    out.write(reinterpret_cast<const char*>(values), sizeof(values));
  }
  const auto file = SafetensorsFile::open(dir_ / "u.safetensors");
  const at::Tensor view = file.view("w");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(view.data_ptr()) % alignof(float), 0u);
  expect_identical(view, at::tensor({1.5f, -2.0f, 3.25f}), "w");
}

TEST_F(SafetensorsFileTest, OpenErrorsNameThePath) {
  const auto missing = dir_ / "missing.safetensors";
  EXPECT_TRUE(mentions(testing::error_of([&] { SafetensorsFile::open(missing); }), {missing.string(), "no such file"}));
  EXPECT_TRUE(mentions(testing::error_of([&] { SafetensorsFile::open(dir_); }), {dir_.string(), "not a regular file"}));
  const auto truncated = dir_ / "truncated.safetensors";
  std::ofstream(truncated) << "abc";
  EXPECT_TRUE(mentions(testing::error_of([&] { SafetensorsFile::open(truncated); }), {truncated.string(), "truncated"}));
  const auto empty = dir_ / "empty.safetensors";
  std::ofstream{empty};
  EXPECT_TRUE(mentions(testing::error_of([&] { SafetensorsFile::open(empty); }), {empty.string(), "truncated"}));
}

TEST_F(SafetensorsFileTest, FileTruncatedWhileOpenIsAnErrorNamingIt) {
  const auto path = dir_ / "t.safetensors";
  save_safetensors(path, {{"w", at::randn({4, 4096})}});  // 64 KiB of data: pages past the header
  const auto file = SafetensorsFile::open(path);
  fs::resize_file(path, 8 + file.header().header_size);  // the data section is gone
  EXPECT_TRUE(mentions(testing::error_of([&] { file.load("w"); }), {path.string(), "changed while being read"}));
}

TEST_F(SafetensorsFileTest, UnknownTensorNamesFileAndTensor) {
  save_safetensors(dir_ / "a.safetensors", {{"w", at::ones({1})}});
  const auto file = SafetensorsFile::open(dir_ / "a.safetensors");
  EXPECT_FALSE(file.contains("nope"));
  EXPECT_TRUE(mentions(testing::error_of([&] { file.load("nope"); }), {(dir_ / "a.safetensors").string(), "no tensor 'nope'"}));
}

TEST_F(SafetensorsFileTest, AtomicWriteLeavesOnlyTheTarget) {
  save_safetensors(dir_ / "a.safetensors", random_tensors_of_every_dtype());
  save_safetensors(dir_ / "a.safetensors", {{"w", at::ones({3})}});  // replaces the first
  EXPECT_EQ(files_in(dir_), std::vector<std::string>{"a.safetensors"});
  EXPECT_EQ(SafetensorsFile::open(dir_ / "a.safetensors").names(), std::vector<std::string>{"w"});
}

TEST_F(SafetensorsFileTest, FailedWriteLeavesNoTemporaryFile) {
  fs::create_directory(dir_ / "taken");  // rename() cannot replace a directory with a file
  EXPECT_TRUE(mentions(testing::error_of([&] { save_safetensors(dir_ / "taken", {{"w", at::ones({2})}}); }),
                       {(dir_ / "taken").string(), "cannot rename"}));
  EXPECT_EQ(files_in(dir_), std::vector<std::string>{"taken"});
}

TEST_F(SafetensorsFileTest, UnsupportedDtypeNamesTheTensor) {
  const auto path = dir_ / "c.safetensors";
  EXPECT_TRUE(mentions(testing::error_of([&] { save_safetensors(path, {{"z", at::ones({2}, at::kComplexFloat)}}); }),
                       {path.string(), "tensor 'z'", "ComplexFloat"}));
  EXPECT_TRUE(files_in(dir_).empty());
}

TEST(SafetensorsFixture, QwenCheckpointOpens) {
  const fs::path model_dir = fs::path(STRATA_FIXTURES_DIR) / "qwen3_dense" / "model";
  const auto file = SafetensorsFile::open(model_dir / "model.safetensors");
  const auto& entry = file.entry("model.embed_tokens.weight");
  EXPECT_EQ(entry.dtype, DType::F32);
  EXPECT_EQ(entry.shape, (std::vector<int64_t>{256, 64}));
  const at::Tensor embedding = file.load("model.embed_tokens.weight");
  EXPECT_EQ(embedding.sizes(), (std::vector<int64_t>{256, 64}));
  EXPECT_TRUE(at::equal(embedding, file.view("model.embed_tokens.weight")));
  EXPECT_EQ(CheckpointReader::open(model_dir).names(), file.names());
}

TEST_F(SafetensorsCheckpointTest, ShardedSaveLoadsBack) {
  TensorMap tensors;
  for (int i = 0; i < 8; ++i) tensors.emplace(cat("layers.", i, ".weight"), at::randn({8, 8}));  // 256 bytes each
  tensors.emplace("big", at::randn({40, 8}));  // 1280 bytes: larger than a shard, so a shard of its own
  save_checkpoint(dir_, tensors, /*max_shard_bytes=*/600);

  const auto files = files_in(dir_);
  const auto shards = std::count_if(files.begin(), files.end(), [](const std::string& f) {
    return f.rfind("model-", 0) == 0 && f.find(".safetensors") != std::string::npos;
  });
  EXPECT_GE(shards, 3);
  EXPECT_EQ(std::count(files.begin(), files.end(), "model.safetensors.index.json"), 1);
  EXPECT_EQ(std::count(files.begin(), files.end(), "model.safetensors"), 0);
  for (const auto& file : files) EXPECT_EQ(file.find(".tmp-"), std::string::npos) << file;

  const auto reader = CheckpointReader::open(dir_);
  EXPECT_TRUE(reader.contains("big"));
  expect_identical(reader.load_all(), tensors);
  expect_identical(reader.load("layers.3.weight"), tensors.at("layers.3.weight"), "layers.3.weight");
}

TEST_F(SafetensorsCheckpointTest, SmallCheckpointIsOneFileAndReplacesAnIndex) {
  const TensorMap tensors{{"a", at::randn({4})}, {"b", at::randn({4})}};
  save_checkpoint(dir_, tensors, /*max_shard_bytes=*/16);  // sharded
  save_checkpoint(dir_, tensors);                          // one file; the stale index must go
  const auto files = files_in(dir_);
  EXPECT_EQ(std::count(files.begin(), files.end(), "model.safetensors"), 1);
  EXPECT_EQ(std::count(files.begin(), files.end(), "model.safetensors.index.json"), 0);
  expect_identical(CheckpointReader::open(dir_).load_all(), tensors);
  EXPECT_EQ(SafetensorsFile::open(dir_ / "model.safetensors").header().metadata.at("format"), "pt");
}

void write_index(const fs::path& dir, const std::map<std::string, std::string>& weight_map) {
  std::ofstream(dir / "model.safetensors.index.json") << nlohmann::json{{"weight_map", weight_map}}.dump();
}

TEST_F(SafetensorsCheckpointTest, IndexNamingAMissingShard) {
  save_safetensors(dir_ / "one.safetensors", {{"a", at::ones({1})}});
  write_index(dir_, {{"a", "one.safetensors"}, {"b", "two.safetensors"}});
  EXPECT_TRUE(mentions(testing::error_of([&] { CheckpointReader::open(dir_); }),
                       {"model.safetensors.index.json", "shard 'two.safetensors'", "tensor 'b'", "does not exist"}));
}

TEST_F(SafetensorsCheckpointTest, IndexListingATensorItsShardLacks) {
  save_safetensors(dir_ / "one.safetensors", {{"a", at::ones({1})}});
  write_index(dir_, {{"a", "one.safetensors"}, {"b", "one.safetensors"}});
  EXPECT_TRUE(mentions(testing::error_of([&] { CheckpointReader::open(dir_); }),
                       {"model.safetensors.index.json", "tensor 'b'", "'one.safetensors', which does not contain it"}));
}

TEST_F(SafetensorsCheckpointTest, TensorInTwoShards) {
  save_safetensors(dir_ / "one.safetensors", {{"a", at::ones({1})}});
  save_safetensors(dir_ / "two.safetensors", {{"a", at::ones({1})}, {"b", at::ones({1})}});
  write_index(dir_, {{"a", "one.safetensors"}, {"b", "two.safetensors"}});
  EXPECT_TRUE(mentions(testing::error_of([&] { CheckpointReader::open(dir_); }),
                       {dir_.string(), "tensor 'a' is present in two shards", "one.safetensors", "two.safetensors"}));
}

TEST_F(SafetensorsCheckpointTest, DirectoryWithoutACheckpoint) {
  EXPECT_TRUE(mentions(testing::error_of([&] { CheckpointReader::open(dir_); }),
                       {dir_.string(), "model.safetensors.index.json", "model.safetensors"}));
  EXPECT_TRUE(mentions(testing::error_of([&] { CheckpointReader::open(dir_ / "nope"); }), {"nope", "no such directory"}));
}

TEST_F(SafetensorsCheckpointTest, UnknownTensorNamesTheCheckpoint) {
  save_checkpoint(dir_, {{"a", at::ones({1})}});
  const auto reader = CheckpointReader::open(dir_);
  EXPECT_TRUE(mentions(testing::error_of([&] { reader.load("zz"); }), {dir_.string(), "no tensor 'zz'"}));
}

}  // namespace
}  // namespace strata::io
