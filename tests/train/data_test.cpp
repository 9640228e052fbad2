#include "strata/train/data.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "strata/core/error.h"

namespace strata::train {
namespace {

namespace fs = std::filesystem;

fs::path write_file(const std::string& name, const std::string& bytes) {
  auto path = fs::temp_directory_path() / ("strata_data_" + name + "_" + std::to_string(::getpid()));
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

TEST(ByteTextData, WindowsAreConsecutiveBytesAndHeldOutIsTheTail) {
  std::string text;
  for (int i = 0; i < 100; ++i) text += static_cast<char>('a' + i % 26);
  auto path = write_file("text", text);
  ByteTextData data(path, 0.2);  // 80 training bytes, 20 held out
  auto batch = data.next(2, 8);
  EXPECT_EQ(batch.input_ids[0][0].item<int64_t>(), 'a');
  EXPECT_EQ(batch.input_ids[1][0].item<int64_t>(), 'a' + 8);
  EXPECT_TRUE(at::equal(batch.input_ids, batch.labels));
  EXPECT_EQ(data.position(), 2u);
  auto held = data.held_out(0, 1, 8);
  EXPECT_EQ(held.input_ids[0][0].item<int64_t>(), 'a' + 80 % 26);
  // Seeking reproduces the stream.
  auto next = data.next(1, 8);
  data.seek(2);
  EXPECT_TRUE(at::equal(data.next(1, 8).input_ids, next.input_ids));
  fs::remove(path);
}

TEST(TokenFileData, ReadsUint16AndRejectsTokensOutsideTheVocabulary) {
  std::string bytes;
  for (uint16_t t : {1, 2, 3, 4, 500, 6, 7, 8}) bytes.append(reinterpret_cast<const char*>(&t), 2);
  auto path = write_file("u16", bytes);
  TokenFileData ok(path, 2, 1000, 0.0);
  auto batch = ok.next(1, 8);
  EXPECT_EQ(batch.input_ids[0][4].item<int64_t>(), 500);
  TokenFileData small_vocab(path, 2, 100, 0.0);
  try {
    small_vocab.next(1, 8);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("token 500 at index 4 is outside the vocabulary (vocab_size 100)"),
              std::string::npos);
  }
  fs::remove(path);
}

// uint32 tokens 0, 1, 2, ...: every token says where it is.
fs::path write_counting_tokens(const std::string& name, uint32_t count) {
  std::string bytes(count * 4, '\0');
  for (uint32_t t = 0; t < count; ++t) std::memcpy(bytes.data() + 4 * t, &t, 4);
  return write_file(name, bytes);
}

TEST(TokenFileData, WindowsAcrossReadChunksHoldTheRightTokens) {
  const uint64_t chunk = TokenFileData::kChunkTokens;
  auto path = write_counting_tokens("chunks", chunk + 100);
  TokenFileData data(path, 4, chunk + 100, 0.0);
  // With windows of 48 tokens, window 1365 is tokens [65520, 65568): across the first chunk's end.
  data.seek(chunk / 48);
  const auto across = data.next(2, 48).input_ids;
  EXPECT_TRUE(at::equal(across, at::arange(int64_t(chunk / 48 * 48), int64_t(chunk / 48 * 48 + 96)).view({2, 48})));
  data.seek(0);  // and back to the start, before the chunk now held
  EXPECT_TRUE(at::equal(data.next(1, 48).input_ids, at::arange(0, 48).view({1, 48})));
  fs::remove(path);
}

TEST(TokenFileData, FileTruncatedWhileTrainingIsAnErrorNamingIt) {
  const uint64_t chunk = TokenFileData::kChunkTokens;
  auto path = write_counting_tokens("truncated", 3 * chunk);
  TokenFileData data(path, 4, 3 * chunk, 0.0);
  data.next(1, 64);  // reads the first chunk
  fs::resize_file(path, 0);
  data.seek(2 * chunk / 64);  // tokens of a chunk not yet read
  try {
    data.next(1, 64);
    FAIL() << "read a truncated file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path.string() + ": the file changed while being read"), std::string::npos)
        << e.what();
  }
  fs::remove(path);
}

TEST(TokenFileData, BadFilesAndWidthsAreRefusedWithTheirPath) {
  auto path = write_file("odd", "abc");
  const auto error_of = [](auto action) -> std::string {
    try {
      action();
    } catch (const Error& e) {
      return e.what();
    }
    return "accepted";
  };
  EXPECT_EQ(error_of([&] { TokenFileData(path, 0, 10); }),
            path.string() + ": token width 0 bytes; expected 2 (uint16) or 4 (uint32)");
  EXPECT_EQ(error_of([&] { TokenFileData(path, 2, 10); }),
            path.string() + ": size 3 bytes is not a multiple of the token width 2");
  fs::remove(path);
  EXPECT_NE(error_of([&] { TokenFileData(path, 2, 10); }).find(path.string() + ": cannot read the token file: "),
            std::string::npos);
}

TEST(MqarData, QueriesAskForStoredValuesAndOnlyThoseCount) {
  MqarData data(64, 4, 1);
  auto batch = data.next(3, 20);  // 4 pairs (8 tokens), then 6 queries (12 tokens)
  for (int64_t b = 0; b < 3; ++b) {
    auto ids = batch.input_ids[b];
    std::map<int64_t, int64_t> stored;
    for (int64_t i = 0; i < 4; ++i) {
      const auto key = ids[2 * i].item<int64_t>(), value = ids[2 * i + 1].item<int64_t>();
      EXPECT_GE(key, 1);
      EXPECT_LT(key, 32);
      EXPECT_GE(value, 32);
      stored[key] = value;
    }
    EXPECT_EQ(stored.size(), 4u) << "keys are distinct";
    for (int64_t q = 0; q < 6; ++q) {
      const auto key = ids[8 + 2 * q].item<int64_t>(), value = ids[9 + 2 * q].item<int64_t>();
      ASSERT_TRUE(stored.count(key));
      EXPECT_EQ(value, stored[key]);
      EXPECT_EQ(batch.labels[b][9 + 2 * q].item<int64_t>(), value);
      EXPECT_EQ(batch.labels[b][8 + 2 * q].item<int64_t>(), -100);
    }
    EXPECT_EQ(batch.labels[b].narrow(0, 0, 8).eq(-100).all().item<bool>(), true);
  }
  // Deterministic by position; held-out sequences differ from training ones.
  MqarData again(64, 4, 1);
  EXPECT_TRUE(at::equal(again.next(3, 20).input_ids, batch.input_ids));
  EXPECT_FALSE(at::equal(data.held_out(0, 3, 20).input_ids, batch.input_ids));
}

TEST(LabelAccuracy, CountsOnlyLabelledPositions) {
  auto labels = at::full({1, 4}, -100, at::kLong);
  labels[0][2] = 5;
  labels[0][3] = 7;
  auto logits = at::zeros({1, 4, 8});
  logits[0][1][5] = 1;  // position 1 predicts label[2] = 5: right
  logits[0][2][6] = 1;  // position 2 predicts label[3] = 7: wrong
  EXPECT_DOUBLE_EQ(label_accuracy(logits, labels), 0.5);
}

}  // namespace
}  // namespace strata::train
