#include "strata/io/megatron_indexed.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "strata/io/megatron_indexed_writer.h"
#include "test_util.h"

namespace strata::io {
namespace {

namespace fs = std::filesystem;
using testing::error_of;

const fs::path kFixture = fs::path(STRATA_TEXT_FIXTURES_DIR) / "megatron_indexed";

// documents.json: the ids Megatron's builder wrote, each document ending with the EOD id.
nlohmann::json fixture_documents() {
  std::ifstream in(kFixture / "documents.json");
  return nlohmann::json::parse(in);
}

std::string bytes_of(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

TEST(MegatronIndexedDataset, EveryDocumentOfTheFixtureIsTheIdsMegatronWrote) {
  const auto expected = fixture_documents();
  const int64_t eod = expected["eod"];
  const auto& documents = expected["documents"];
  ASSERT_EQ(documents.size(), 200u);
  for (const auto* name : {"corpus_uint16", "corpus_int32"}) {
    MegatronIndexedDataset data((kFixture / name).string());
    EXPECT_EQ(data.dtype(), std::string(name) == "corpus_uint16" ? MegatronDType::uint16 : MegatronDType::int32);
    EXPECT_EQ(data.num_documents(), 200);
    EXPECT_EQ(data.num_sequences(), 200);  // one sequence per document: no sentence splitting
    EXPECT_EQ(data.num_tokens(), 15005u);
    for (int64_t d = 0; d < 200; ++d) {
      EXPECT_EQ(data.document_indices()[d], d);
      const auto tokens = data.sequence(d);
      EXPECT_EQ(tokens, documents[d].get<std::vector<int64_t>>()) << name << " document " << d;
      EXPECT_EQ(tokens.back(), eod);
    }
  }
}

TEST(MegatronIndexedDataset, ReadsAPartOfASequence) {
  MegatronIndexedDataset data((kFixture / "corpus_int32").string());
  const auto whole = data.sequence(7);
  std::vector<int64_t> part(3);
  data.read(7, 2, 3, part.data());
  EXPECT_EQ(part, std::vector<int64_t>(whole.begin() + 2, whole.begin() + 5));
  EXPECT_NE(error_of([&] { data.read(7, whole.size() - 1, 2, part.data()); }).find("outside the dataset"),
            std::string::npos);
}

TEST(MegatronIndexedWriter, WritesTheFixtureByteForByte) {
  const auto documents = fixture_documents()["documents"];
  const auto dir = testing::fresh_temp_dir("megatron_writer");
  fs::create_directories(dir);
  for (const auto& [name, dtype] : {std::pair{"corpus_uint16", MegatronDType::uint16},
                                    std::pair{"corpus_int32", MegatronDType::int32}}) {
    MegatronIndexedWriter writer((dir / name).string(), dtype);
    for (const auto& d : documents) {
      const auto ids = d.get<std::vector<int64_t>>();
      writer.add_document(ids, {static_cast<int32_t>(ids.size())});
    }
    writer.finish();
    EXPECT_EQ(bytes_of(dir / (std::string(name) + ".bin")), bytes_of(kFixture / (std::string(name) + ".bin"))) << name;
    EXPECT_EQ(bytes_of(dir / (std::string(name) + ".idx")), bytes_of(kFixture / (std::string(name) + ".idx"))) << name;
  }
  fs::remove_all(dir);
}

TEST(MegatronIndexedWriter, AnEmptyDocumentIsADocumentOfNoSequences) {
  const auto dir = testing::fresh_temp_dir("megatron_empty_document");
  fs::create_directories(dir);
  const auto prefix = (dir / "d").string();
  MegatronIndexedWriter writer(prefix, MegatronDType::uint16);
  writer.add_document({5, 6, 7}, {2, 1});
  writer.add_document({}, {});
  writer.add_document({8}, {1});
  writer.finish();
  MegatronIndexedDataset data(prefix);
  EXPECT_EQ(data.document_indices(), (std::vector<int64_t>{0, 2, 2, 3}));
  EXPECT_EQ(data.sequence_lengths(), (std::vector<int32_t>{2, 1, 1}));
  EXPECT_EQ(data.sequence_pointers(), (std::vector<int64_t>{0, 4, 6}));
  EXPECT_EQ(data.sequence(2), (std::vector<int64_t>{8}));
  MegatronIndexedWriter narrow((dir / "n").string(), MegatronDType::uint16);
  EXPECT_NE(error_of([&] { narrow.add_document({70000}, {1}); }).find("token id 70000, which uint16 cannot hold"),
            std::string::npos);
  EXPECT_NE(error_of([&] { narrow.add_document({1, 2}, {1}); }).find("has 2 tokens but its sequence lengths add up to 1"),
            std::string::npos);
  fs::remove_all(dir);
}

// A copy of the uint16 fixture with `edit` applied to its .idx or .bin bytes.
class BrokenDataset : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::fresh_temp_dir("megatron_broken");
    fs::create_directories(dir_);
    prefix_ = (dir_ / "corpus").string();
    idx_ = bytes_of(kFixture / "corpus_uint16.idx");
    bin_ = bytes_of(kFixture / "corpus_uint16.bin");
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string open_error() {
    write_bytes(prefix_ + ".idx", idx_);
    write_bytes(prefix_ + ".bin", bin_);
    return error_of([&] { MegatronIndexedDataset data(prefix_); });
  }
  template <class T>
  void put(uint64_t offset, T value) {
    std::memcpy(idx_.data() + offset, &value, sizeof value);
  }
  fs::path dir_;
  std::string prefix_, idx_, bin_;
};

TEST_F(BrokenDataset, TruncatedBinIsNamedWithBothSizes) {
  bin_.resize(bin_.size() - 2);
  const auto error = open_error();
  EXPECT_NE(error.find(prefix_ + ".bin: 30008 bytes, but " + prefix_ + ".idx describes 30010 (15005 uint16 tokens in 200 sequences): the .bin is truncated"),
            std::string::npos)
      << error;
}

TEST_F(BrokenDataset, LongerBinIsNotTheIndexedData) {
  bin_ += "xx";
  EXPECT_NE(open_error().find("the .bin holds more than its index describes"), std::string::npos);
}

TEST_F(BrokenDataset, TruncatedIdx) {
  idx_.resize(idx_.size() - 8);
  EXPECT_NE(open_error().find(prefix_ + ".idx: 4034 bytes, but its header announces 200 sequences and 201 document indices"),
            std::string::npos);
  idx_.resize(20);
  EXPECT_NE(open_error().find("20 bytes, shorter than the 34-byte header"), std::string::npos);
}

TEST_F(BrokenDataset, HeaderFields) {
  idx_[0] = 'X';
  EXPECT_NE(open_error().find("does not start with the magic"), std::string::npos);
  idx_[0] = 'M';
  put<uint64_t>(9, 2);
  EXPECT_NE(open_error().find("index version 2, expected 1"), std::string::npos);
  put<uint64_t>(9, 1);
  put<uint8_t>(17, 9);
  EXPECT_NE(open_error().find("dtype code 9 is not one of Megatron's (1 uint8, 2 int8, 3 int16, 4 int32, 5 int64, "
                              "6 float64, 7 float32, 8 uint16)"),
            std::string::npos);
  put<uint8_t>(17, 7);
  EXPECT_NE(open_error().find("dtype float32 (code 7): token ids must be integers"), std::string::npos);
  put<uint8_t>(17, 4);  // int32: the pointers (of 2-byte tokens) no longer follow the lengths
  const auto error = open_error();
  EXPECT_NE(error.find("sequence 1 starts at byte"), std::string::npos) << error;
  EXPECT_NE(error.find("this index does not describe that .bin"), std::string::npos) << error;
}

TEST_F(BrokenDataset, PointersAndDocumentIndices) {
  const uint64_t pointers = 34 + 4 * 200, documents = pointers + 8 * 200;
  put<int64_t>(pointers + 8 * 5, 1000000);  // sequence 5 past the end
  EXPECT_NE(open_error().find("sequence 5 starts at byte 1000000 of " + prefix_ + ".bin, expected"), std::string::npos);
  idx_ = bytes_of(kFixture / "corpus_uint16.idx");
  put<int64_t>(documents + 8 * 200, 199);
  EXPECT_NE(open_error().find("the last document index is 199, expected the sequence count 200"), std::string::npos);
  put<int64_t>(documents + 8 * 200, 200);
  put<int64_t>(documents + 8 * 3, 1);
  EXPECT_NE(open_error().find("document index 3 is 1, below document index 2 (2)"), std::string::npos);
  idx_ = bytes_of(kFixture / "corpus_uint16.idx");
  put<int32_t>(34 + 4 * 4, -3);
  EXPECT_NE(open_error().find("sequence 4 has length -3"), std::string::npos);
}

TEST(MegatronIndexedDataset, MissingFilesAreNamed) {
  EXPECT_NE(error_of([] { MegatronIndexedDataset data("/nonexistent/corpus"); })
                .find("/nonexistent/corpus.idx: cannot open the index of the Megatron dataset /nonexistent/corpus"),
            std::string::npos);
}

TEST(MegatronTokenDtype, PreprocessChoosesUint16BelowItsLimit) {
  EXPECT_EQ(megatron_token_dtype(1024), MegatronDType::uint16);
  EXPECT_EQ(megatron_token_dtype(65499), MegatronDType::uint16);
  EXPECT_EQ(megatron_token_dtype(65500), MegatronDType::int32);
  EXPECT_EQ(megatron_token_dtype(151936), MegatronDType::int32);
}

}  // namespace
}  // namespace strata::io
