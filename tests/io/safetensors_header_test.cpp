#include "strata/io/safetensors_header.h"

#include <gtest/gtest.h>

#include <functional>
#include <initializer_list>

#include "strata/core/error.h"

namespace strata::io {
namespace {

const std::string kSource = "bad/model.safetensors";

// A file: the 8-byte little-endian length of `json`, `json`, then `data_bytes` zero bytes.
std::string file_bytes(const std::string& json, size_t data_bytes = 0) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((json.size() >> (8 * i)) & 0xff);
  return bytes + json + std::string(data_bytes, '\0');
}

std::string entry(const std::string& dtype, const std::string& shape, uint64_t begin, uint64_t end) {
  return cat(R"({"dtype":")", dtype, R"(","shape":)", shape, R"(,"data_offsets":[)", begin, ",", end, "]}");
}

// The message parse_safetensors_header throws for `bytes`, or "" (and a test failure) if it parses.
std::string parse_error(const std::string& bytes) {
  try {
    parse_safetensors_header(bytes, bytes.size(), kSource);
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "parsed without error";
  return "";
}

// Every error starts with the file it is about and names the specific problem.
testing::AssertionResult names_file_and(const std::string& message, std::initializer_list<std::string> parts) {
  if (message.rfind(kSource + ": ", 0) != 0) return testing::AssertionFailure() << "does not start with the file: " << message;
  for (const auto& part : parts) {
    if (message.find(part) == std::string::npos) return testing::AssertionFailure() << "lacks '" << part << "': " << message;
  }
  return testing::AssertionSuccess();
}

TEST(SafetensorsHeader, ParsesEntriesSortedByOffset) {
  const std::string json = cat(R"({"__metadata__":{"format":"pt"},"a":)", entry("F32", "[2,3]", 4, 28),
                               R"(,"b":)", entry("I32", "[1]", 0, 4), "}");
  const auto header = parse_safetensors_header(file_bytes(json, 28), 8 + json.size() + 28, kSource);
  ASSERT_EQ(header.tensors.size(), 2u);
  EXPECT_EQ(header.tensors[0], (TensorEntry{"b", DType::I32, {1}, 0, 4}));
  EXPECT_EQ(header.tensors[1], (TensorEntry{"a", DType::F32, {2, 3}, 4, 28}));
  EXPECT_EQ(header.metadata, (std::map<std::string, std::string>{{"format", "pt"}}));
  EXPECT_EQ(header.header_size, json.size());
}

TEST(SafetensorsHeader, NeedsOnlyTheHeaderBytes) {
  const std::string json = cat(R"({"a":)", entry("U8", "[100]", 0, 100), "}");
  const std::string bytes = file_bytes(json);  // the data section is not given, only its size
  const auto header = parse_safetensors_header(bytes, bytes.size() + 100, kSource);
  EXPECT_EQ(header.tensors.at(0).end, 100u);
}

TEST(SafetensorsHeader, EmptyHeaderIsLegal) {
  EXPECT_TRUE(parse_safetensors_header(file_bytes("{}"), 10, kSource).tensors.empty());
}

TEST(SafetensorsHeader, RejectsTruncatedFile) {
  EXPECT_TRUE(names_file_and(parse_error("abc"), {"truncated", "3 bytes"}));
  EXPECT_TRUE(names_file_and(parse_error(""), {"truncated", "0 bytes"}));
}

TEST(SafetensorsHeader, RejectsHeaderLengthPastEndOfFile) {
  std::string bytes = file_bytes("{}", 990);
  bytes[0] = '\x40', bytes[1] = '\xe2', bytes[2] = '\x01';  // 123456
  EXPECT_TRUE(names_file_and(parse_error(bytes),
                             {"header length 123456 runs past the end of the file (1000 bytes)"}));
  std::string huge(8, '\xff');
  EXPECT_TRUE(names_file_and(parse_error(huge + "{}"), {"header length 18446744073709551615 runs past the end"}));
}

TEST(SafetensorsHeader, RejectsInvalidJson) {
  EXPECT_TRUE(names_file_and(parse_error(file_bytes(R"({"a": )")), {"header is not valid JSON"}));
  EXPECT_TRUE(names_file_and(parse_error(file_bytes("{} trailing")), {"header is not valid JSON"}));
}

TEST(SafetensorsHeader, RejectsJsonThatIsNotAnObject) {
  EXPECT_TRUE(names_file_and(parse_error(file_bytes("[1, 2]")), {"header JSON is an array, expected an object"}));
}

TEST(SafetensorsHeader, RejectsEntryThatIsNotAnObject) {
  EXPECT_TRUE(names_file_and(parse_error(file_bytes(R"({"w": 5})")), {"tensor 'w'", "entry is a number"}));
}

TEST(SafetensorsHeader, RejectsEntryMissingAField) {
  const std::map<std::string, std::string> without{
      {"dtype", R"({"shape":[1],"data_offsets":[0,4]})"},
      {"shape", R"({"dtype":"F32","data_offsets":[0,4]})"},
      {"data_offsets", R"({"dtype":"F32","shape":[1]})"},
  };
  for (const auto& [field, json] : without) {
    EXPECT_TRUE(names_file_and(parse_error(file_bytes(cat(R"({"w":)", json, "}"), 4)),
                               {"tensor 'w'", cat("missing '", field, "'")}));
  }
}

TEST(SafetensorsHeader, RejectsFieldsOfTheWrongType) {
  auto error_for = [](const std::string& json) { return parse_error(file_bytes(cat(R"({"w":)", json, "}"), 4)); };
  EXPECT_TRUE(names_file_and(error_for(R"({"dtype":4,"shape":[1],"data_offsets":[0,4]})"), {"dtype is a number"}));
  EXPECT_TRUE(names_file_and(error_for(R"({"dtype":"F32","shape":"1","data_offsets":[0,4]})"), {"shape is a string"}));
  EXPECT_TRUE(names_file_and(error_for(R"({"dtype":"F32","shape":[1],"data_offsets":[4]})"),
                             {"data_offsets is [4], expected [begin, end]"}));
  EXPECT_TRUE(names_file_and(error_for(R"({"dtype":"F32","shape":[1],"data_offsets":[0,"4"]})"),
                             {"data_offsets[1] is a string"}));
}

TEST(SafetensorsHeader, RejectsUnknownDtypeListingValidOnes) {
  EXPECT_TRUE(names_file_and(parse_error(file_bytes(cat(R"({"w":)", entry("F128", "[1]", 0, 16), "}"), 16)),
                             {"tensor 'w'", "unknown dtype 'F128'", "F64, F32, F16, BF16", "BOOL", "F8_E5M2"}));
}

TEST(SafetensorsHeader, RejectsNegativeAndNonIntegerDims) {
  EXPECT_TRUE(names_file_and(parse_error(file_bytes(cat(R"({"w":)", entry("F32", "[-2]", 0, 0), "}"))),
                             {"tensor 'w': shape[0] is -2, expected a non-negative integer"}));
  EXPECT_TRUE(names_file_and(parse_error(file_bytes(cat(R"({"w":)", entry("F32", "[1,1.5]", 0, 4), "}"), 4)),
                             {"shape[1] is 1.5, expected a non-negative integer"}));
  EXPECT_TRUE(names_file_and(parse_error(file_bytes(cat(R"({"w":)", entry("F32", "[18446744073709551615]", 0, 4), "}"), 4)),
                             {"shape[0] is 18446744073709551615, larger than the supported maximum"}));
}

TEST(SafetensorsHeader, HugeShapesDoNotWrapAround) {
  // 2^32 * 2^32 wraps to 0 in 64-bit arithmetic, which would match the empty byte range.
  EXPECT_TRUE(names_file_and(parse_error(file_bytes(cat(R"({"w":)", entry("F32", "[4294967296,4294967296]", 0, 0), "}"))),
                             {"tensor 'w'", "is too large"}));
  // 2^61 elements fit in 63 bits, 2^63 bytes of F32 do not.
  EXPECT_TRUE(names_file_and(parse_error(file_bytes(cat(R"({"w":)", entry("F32", "[2305843009213693952]", 0, 0), "}"))),
                             {"tensor 'w'", "is too large"}));
}

TEST(SafetensorsHeader, RejectsSizeThatDoesNotMatchShape) {
  EXPECT_TRUE(names_file_and(parse_error(file_bytes(cat(R"({"w":)", entry("F32", "[2,3]", 0, 20), "}"), 20)),
                             {"tensor 'w'", "needs 24 bytes", "hold 20"}));
}

TEST(SafetensorsHeader, RejectsBeginAfterEnd) {
  EXPECT_TRUE(names_file_and(parse_error(file_bytes(cat(R"({"w":)", entry("U8", "[4]", 8, 4), "}"), 8)),
                             {"tensor 'w'", "[8, 4]", "begin is after end"}));
}

TEST(SafetensorsHeader, RejectsOffsetsPastTheDataSection) {
  EXPECT_TRUE(names_file_and(parse_error(file_bytes(cat(R"({"w":)", entry("F32", "[2]", 0, 8), "}"), 4)),
                             {"tensor 'w'", "run past the end of the data section (4 bytes)"}));
}

TEST(SafetensorsHeader, RejectsOverlappingTensors) {
  const std::string json = cat(R"({"a":)", entry("U8", "[8]", 0, 8), R"(,"b":)", entry("U8", "[8]", 4, 12), "}");
  EXPECT_TRUE(names_file_and(parse_error(file_bytes(json, 12)), {"'a' (bytes [0, 8))", "'b' (bytes [4, 12))", "overlap"}));
}

TEST(SafetensorsHeader, RejectsHolesBetweenTensors) {
  const std::string json = cat(R"({"a":)", entry("U8", "[4]", 0, 4), R"(,"b":)", entry("U8", "[4]", 8, 12), "}");
  EXPECT_TRUE(names_file_and(parse_error(file_bytes(json, 12)), {"bytes [4, 8)", "belong to no tensor", "after 'a'"}));
  const std::string at_start = cat(R"({"a":)", entry("U8", "[4]", 4, 8), "}");
  EXPECT_TRUE(names_file_and(parse_error(file_bytes(at_start, 8)), {"bytes [0, 4)", "at the start"}));
}

TEST(SafetensorsHeader, RejectsDataSectionLongerThanTheTensors) {
  EXPECT_TRUE(names_file_and(parse_error(file_bytes(cat(R"({"a":)", entry("U8", "[4]", 0, 4), "}"), 8)),
                             {"data section is 8 bytes but the tensors cover only 4"}));
  EXPECT_TRUE(names_file_and(parse_error(file_bytes("{}", 3)), {"data section is 3 bytes but the tensors cover only 0"}));
}

TEST(SafetensorsHeader, RejectsDuplicateTensorNames) {
  const std::string json = cat(R"({"w":)", entry("U8", "[4]", 0, 4), R"(,"w":)", entry("U8", "[4]", 4, 8), "}");
  EXPECT_TRUE(names_file_and(parse_error(file_bytes(json, 8)), {"duplicate tensor name 'w'"}));
}

TEST(SafetensorsHeader, RejectsDuplicateFieldsInAnEntry) {
  const std::string json = R"({"w":{"dtype":"U8","dtype":"I8","shape":[1],"data_offsets":[0,1]}})";
  EXPECT_TRUE(names_file_and(parse_error(file_bytes(json, 1)), {"duplicate key 'dtype'"}));
}

TEST(SafetensorsHeader, RejectsMetadataThatIsNotAnObjectOfStrings) {
  EXPECT_TRUE(names_file_and(parse_error(file_bytes(R"({"__metadata__":[1]})")),
                             {"__metadata__ is an array, expected an object of strings"}));
  EXPECT_TRUE(names_file_and(parse_error(file_bytes(R"({"__metadata__":{"format":"pt","step":3}})")),
                             {"__metadata__ value for 'step' is a number, expected a string"}));
}

TEST(SafetensorsHeader, ZeroElementTensorsAreLegal) {
  const std::string json = cat(R"({"a":)", entry("F32", "[0,5]", 0, 0), R"(,"b":)", entry("I64", "[1]", 0, 8),
                               R"(,"c":)", entry("BF16", "[1048576,0,1048576]", 8, 8), "}");
  const auto header = parse_safetensors_header(file_bytes(json, 8), 8 + json.size() + 8, kSource);
  ASSERT_EQ(header.tensors.size(), 3u);
  EXPECT_EQ(header.tensors[0].name, "a");
  EXPECT_EQ(header.tensors[1].name, "b");
  EXPECT_EQ(header.tensors[2].name, "c");
}

// The header of `count` tensors "t<i>" made by entry_of(i); every entry is kept on its own.
std::string many_tensors(int count, const std::function<std::string(int)>& entry_of) {
  std::string json = "{";
  for (int i = 0; i < count; ++i) json += cat(i ? "," : "", "\"t", i, "\":", entry_of(i));
  return json + "}";
}

// Parsing once took time quadratic in the tensor count (nlohmann's callback parser rescanning the
// root object after every entry): 40k tensors took 38 s, 300k did not finish.
constexpr int kManyTensors = 300'000;

TEST(SafetensorsHeader, ParsesThreeHundredThousandTensors) {
  const std::string json = many_tensors(kManyTensors, [](int i) { return entry("U8", "[1]", i, i + 1); });
  const auto header = parse_safetensors_header(file_bytes(json, kManyTensors), 8 + json.size() + kManyTensors, kSource);
  ASSERT_EQ(header.tensors.size(), static_cast<size_t>(kManyTensors));
  // Sorted by offset, which is not the name order the JSON object keeps ("t10" before "t2").
  EXPECT_EQ(header.tensors[2].name, "t2");
  EXPECT_EQ(header.tensors[123456].name, "t123456");
  EXPECT_EQ(header.tensors.back().end, static_cast<uint64_t>(kManyTensors));
}

TEST(SafetensorsHeader, ParsesThreeHundredThousandZeroSizeTensors) {
  const std::string json = many_tensors(kManyTensors, [](int) { return entry("F32", "[0]", 0, 0); });
  const auto header = parse_safetensors_header(file_bytes(json), 8 + json.size(), kSource);
  ASSERT_EQ(header.tensors.size(), static_cast<size_t>(kManyTensors));
  EXPECT_EQ(header.tensors.front().name, "t0");  // all at offset 0: name order
  EXPECT_EQ(header.tensors[1].name, "t1");
  EXPECT_EQ(header.tensors[2].name, "t10");
  EXPECT_EQ(header.tensors.back().name, "t99999");
}

TEST(SafetensorsHeader, EncodeRoundTripsAndPadsToEightBytes) {
  const std::vector<TensorEntry> tensors{{"b", DType::BF16, {2, 3}, 0, 12},
                                         {"a", DType::BOOL, {5}, 12, 17},
                                         {"empty", DType::F64, {0}, 17, 17}};
  const std::map<std::string, std::string> metadata{{"format", "pt"}, {"note", "caf\xc3\xa9"}};
  const std::string encoded = encode_safetensors_header(tensors, metadata);
  EXPECT_EQ(encoded.size() % 8, 0u);
  const auto header = parse_safetensors_header(encoded, encoded.size() + 17, kSource);
  EXPECT_EQ(header.tensors, tensors);
  EXPECT_EQ(header.metadata, metadata);
  EXPECT_EQ(header.header_size + 8, encoded.size());
}

TEST(SafetensorsHeader, EncodeRejectsNamesAJsonObjectCannotHold) {
  EXPECT_THROW(encode_safetensors_header({{"w", DType::U8, {1}, 0, 1}, {"w", DType::U8, {1}, 1, 2}}, {}), Error);
  EXPECT_THROW(encode_safetensors_header({{"__metadata__", DType::U8, {1}, 0, 1}}, {}), Error);
  EXPECT_THROW(encode_safetensors_header({{"bad\xff", DType::U8, {1}, 0, 1}}, {}), Error);
}

TEST(SafetensorsHeader, DtypeNamesAndSizes) {
  const std::vector<std::pair<DType, size_t>> sizes{
      {DType::F64, 8}, {DType::F32, 4}, {DType::F16, 2}, {DType::BF16, 2},   {DType::I64, 8},     {DType::I32, 4},
      {DType::I16, 2}, {DType::I8, 1},  {DType::U8, 1},  {DType::BOOL, 1}, {DType::F8_E4M3, 1}, {DType::F8_E5M2, 1}};
  for (const auto& [dtype, size] : sizes) {
    EXPECT_EQ(dtype_from_name(dtype_name(dtype)), dtype);
    EXPECT_EQ(dtype_size(dtype), size) << dtype_name(dtype);
  }
  EXPECT_EQ(dtype_name(DType::F8_E4M3), "F8_E4M3");
  EXPECT_FALSE(dtype_from_name("f32").has_value());
}

}  // namespace
}  // namespace strata::io
