#include "strata/text/added_tokens.h"

#include <gtest/gtest.h>

#include "strata/core/error.h"

namespace strata::text {
namespace {

// The pieces as "text" and "[id:text]" for added tokens.
std::vector<std::string> split(const std::vector<AddedToken>& tokens, const std::string& text) {
  std::vector<std::string> patterns;
  for (const auto& t : tokens) patterns.push_back(t.content);
  std::vector<Piece> pieces{{text, std::nullopt, true, false}};
  AddedTokenMatcher(tokens, patterns).split(pieces);
  std::vector<std::string> out;
  for (const auto& p : pieces) out.push_back(p.token ? cat("[", *p.token, ":", p.text, "]") : p.text);
  return out;
}

AddedToken token(const std::string& content, int32_t id) {
  AddedToken t;
  t.content = content;
  t.id = id;
  return t;
}

using V = std::vector<std::string>;

TEST(AddedTokens, LeftmostThenLongest) {
  const std::vector<AddedToken> tokens{token("<a>", 1), token("<a><b>", 2), token("b>", 3)};
  EXPECT_EQ(split(tokens, "x<a><b>y<a>b>"), (V{"x", "[2:<a><b>]", "y", "[1:<a>]", "[3:b>]"}));
  EXPECT_EQ(split(tokens, "plain"), (V{"plain"}));
}

TEST(AddedTokens, LstripAndRstripTakeTheSpacesAround) {
  AddedToken mask = token("<mask>", 7);
  mask.lstrip = true;
  EXPECT_EQ(split({mask}, "a  <mask> b"), (V{"a", "[7:  <mask>]", " b"}));
  AddedToken sep = token("<sep>", 8);
  sep.rstrip = true;
  EXPECT_EQ(split({sep}, "a <sep> \t b"), (V{"a ", "[8:<sep> \t ]", "b"}));
}

TEST(AddedTokens, SingleWordOnlyBetweenNonWordCharacters) {
  AddedToken cat = token("cat", 5);
  cat.single_word = true;
  EXPECT_EQ(split({cat}, "cat cats concat cat!"), (V{"[5:cat]", " cats concat ", "[5:cat]", "!"}));
}

}  // namespace
}  // namespace strata::text
