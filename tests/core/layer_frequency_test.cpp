// Megatron's list expressions for --moe-layer-freq and --linear-attention-freq, read without eval.
#include "strata/core/layer_frequency.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace strata {
namespace {

using testing::error_of;

std::vector<int64_t> list(const std::string& text) { return parse_layer_frequency(text, "--moe-layer-freq").explicit_list; }

std::string refusal(const std::string& text) {
  return error_of([&] { parse_layer_frequency(text, "--moe-layer-freq"); });
}

TEST(LayerFrequency, AnIntegerIsEveryNthLayer) {
  const auto f = parse_layer_frequency("4", "--moe-layer-freq");
  EXPECT_EQ(f.every, 4);
  EXPECT_TRUE(f.explicit_list.empty());
  EXPECT_EQ(to_string(f), "4");
}

// The examples of Megatron's --moe-layer-freq and --linear-attention-freq help.
TEST(LayerFrequency, MegatronsHelpExamples) {
  EXPECT_EQ(list("([1]*3+[0]*1)*3"), (std::vector<int64_t>{1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 0}));
  EXPECT_EQ(list("([0]+[1]*23)").size(), 24u);
  EXPECT_EQ(list("([0]+[1]*23)")[0], 0);
  EXPECT_EQ(list("([1]*3+[0]*2)*2"), (std::vector<int64_t>{1, 1, 1, 0, 0, 1, 1, 1, 0, 0}));
  EXPECT_EQ(list("([0]*3+[1]*5)"), (std::vector<int64_t>{0, 0, 0, 1, 1, 1, 1, 1}));
}

TEST(LayerFrequency, PythonsOperatorsAndPrecedence) {
  EXPECT_EQ(list("[1,0]*2"), (std::vector<int64_t>{1, 0, 1, 0}));
  EXPECT_EQ(list("2*[1,0]"), (std::vector<int64_t>{1, 0, 1, 0}));
  EXPECT_EQ(list("[1,0,]"), (std::vector<int64_t>{1, 0}));      // a trailing comma, as Python allows
  EXPECT_EQ(list("[1]*2**2").size(), 4u);                       // ** binds tighter than *
  EXPECT_EQ(list("[0]+[1]*1+1*[0]"), (std::vector<int64_t>{0, 1, 0}));
  EXPECT_EQ(list("[1]*(1+1)"), (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(list("[1]+[0]*0"), (std::vector<int64_t>{1}));      // a list times 0 is empty
  EXPECT_EQ(list("[00,+1]"), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(to_string(parse_layer_frequency("[1,0]*2", "f")), "[1,0,1,0]");
}

TEST(LayerFrequency, WhatMegatronOrPythonRefusesIsRefusedWithThePosition) {
  EXPECT_EQ(refusal("[1, 0]"),
            "--moe-layer-freq \"[1, 0]\": ' ' is not allowed: a list expression holds digits, [ ] ( ) , + and * only "
            "(position 3)");
  EXPECT_EQ(refusal("[0]*(1,0)"),
            "--moe-layer-freq \"[0]*(1,0)\": a tuple ('(a, b)'): Megatron expects a list, written with [ ] (position 6)");
  // Without '[' the text is an integer, as Megatron's int() reads it.
  EXPECT_EQ(refusal("(1,0)"), "--moe-layer-freq '(1,0)': expected an integer");
  EXPECT_EQ(refusal("[[1]]"), "--moe-layer-freq \"[[1]]\": a list inside a list: expected integers (position 1)");
  EXPECT_EQ(refusal("[1]+1"), "--moe-layer-freq \"[1]+1\": '+' of a list and an integer (Python refuses it too) (position 3)");
  EXPECT_EQ(refusal("[1]*[1]"), "--moe-layer-freq \"[1]*[1]\": '*' of two lists (Python refuses it too) (position 3)");
  EXPECT_EQ(refusal("[01]"), "--moe-layer-freq \"[01]\": an integer with a leading zero (Python refuses it) (position 1)");
  EXPECT_EQ(refusal("[1"), "--moe-layer-freq \"[1\": expected ']' at the end (position 2)");
  EXPECT_EQ(refusal("[1]]"), "--moe-layer-freq \"[1]]\": unexpected ']' (position 3)");
  EXPECT_EQ(refusal("[1][0]"), "--moe-layer-freq \"[1][0]\": unexpected '[' (position 3)");
  EXPECT_EQ(refusal("[]"), "--moe-layer-freq \"[]\": the list is empty, expected one entry per layer");
  EXPECT_EQ(refusal("[2]*0+1*[3][0]"), "--moe-layer-freq \"[2]*0+1*[3][0]\": unexpected '[' (position 11)");
  EXPECT_EQ(refusal("x"), "--moe-layer-freq 'x': expected an integer");
}

// Found by fuzz_layer_frequency: deep nesting overflowed the reader's stack. Python's parser
// refuses it too; 200 levels are read, the next is refused by name.
TEST(LayerFrequency, DeepNestingIsRefusedNotAStackOverflow) {
  const auto nested = [](char open, char close, size_t depth) {
    return std::string("[").append(depth, open).append("1").append(depth, close).append("]");
  };
  EXPECT_EQ(list(nested('(', ')', 199)), std::vector<int64_t>{1});
  EXPECT_EQ(list(std::string("[").append(199, '+').append("1]")), std::vector<int64_t>{1});
  for (const auto& text :
       {nested('(', ')', 100000), std::string("[").append(100000, '+').append("1]"), std::string(100000, '[')}) {
    const auto message = refusal(text);
    EXPECT_NE(message.find("nested more than 200 deep (brackets, parentheses or unary '+')"), std::string::npos)
        << message.substr(0, 200);
  }
}

TEST(LayerFrequency, SizesAreBoundedBeforeAnythingIsAllocated) {
  EXPECT_EQ(list("[1]*10000").size(), 10000u);
  EXPECT_EQ(refusal("[1]*10001"),
            "--moe-layer-freq \"[1]*10001\": a list longer than strata's limit of 10000 layers (position 3)");
  EXPECT_NE(refusal("[1]*9999999999999999999*2")
                .find("--moe-layer-freq \"[1]*9999999999999999999*2\" at position 4 '9999999999999999999': out of range "
                      "for an integer"),
            std::string::npos);
  EXPECT_EQ(refusal("[1]*2**99"), "--moe-layer-freq \"[1]*2**99\": the power is too large (position 4)");
  EXPECT_EQ(refusal("[1]*(9999999999*9999999999)"),
            "--moe-layer-freq \"[1]*(9999999999*9999999999)\": the product is too large (position 15)");
}

}  // namespace
}  // namespace strata
