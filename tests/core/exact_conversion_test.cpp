#include "strata/core/exact_conversion.h"

#include <gtest/gtest.h>

#include "strata/core/compat.h"

namespace strata {
namespace {

TEST(ExactConversion, SameDtypeAndWideningConvert) {
  for (auto dtype : {at::kFloat, at::kDouble, at::kBFloat16, at::kLong, at::kBool}) EXPECT_TRUE(converts_exactly(dtype, dtype));
  EXPECT_TRUE(converts_exactly(at::kBFloat16, at::kFloat));
  EXPECT_TRUE(converts_exactly(at::kHalf, at::kFloat));
  EXPECT_TRUE(converts_exactly(at::kFloat, at::kDouble));
  EXPECT_TRUE(converts_exactly(at::kInt, at::kLong));
  EXPECT_TRUE(converts_exactly(at::kByte, at::kShort));
}

TEST(ExactConversion, NarrowingAndCrossKindConversionsAreRefused) {
  EXPECT_FALSE(converts_exactly(at::kDouble, at::kFloat));     // rounds
  EXPECT_FALSE(converts_exactly(at::kFloat, at::kBFloat16));   // rounds
  EXPECT_FALSE(converts_exactly(at::kHalf, at::kBFloat16));    // neither holds the other
  EXPECT_FALSE(converts_exactly(at::kBFloat16, at::kHalf));
  EXPECT_FALSE(converts_exactly(at::kInt, at::kFloat));        // an integer tensor is not a weight
  EXPECT_FALSE(converts_exactly(at::kByte, at::kFloat));
  EXPECT_FALSE(converts_exactly(at::kBool, at::kFloat));
  EXPECT_FALSE(converts_exactly(at::kFloat, at::kLong));       // truncates
  EXPECT_FALSE(converts_exactly(at::kLong, at::kInt));         // overflows
  EXPECT_FALSE(converts_exactly(at::kChar, at::kByte));        // negative values
  EXPECT_FALSE(converts_exactly(at::kBool, at::kLong));
  if (compat::has_float8_dtypes()) {  // scaled weights: the bare values are not the weights
    EXPECT_FALSE(converts_exactly(compat::float8_e4m3_dtype(), at::kFloat));
    EXPECT_FALSE(converts_exactly(compat::float8_e5m2_dtype(), at::kFloat));
  }
}

}  // namespace
}  // namespace strata
