// Strict number parsing: the plain decimal forms are read exactly, up to the types' limits; every
// other form is refused with an error naming where the text came from and the text itself.
#include "strata/core/parse_number.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "test_util.h"

namespace strata {
namespace {

using testing::error_of;

TEST(ParseNumber, ReadsPlainIntegersUpToTheLimits) {
  EXPECT_EQ(parse_int64("0", "--n"), 0);
  EXPECT_EQ(parse_int64("42", "--n"), 42);
  EXPECT_EQ(parse_int64("-17", "--n"), -17);
  EXPECT_EQ(parse_int64("9223372036854775807", "--n"), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(parse_int64("-9223372036854775808", "--n"), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(parse_uint64("0", "--n"), 0u);
  EXPECT_EQ(parse_uint64("18446744073709551615", "--n"), std::numeric_limits<uint64_t>::max());
}

TEST(ParseNumber, ReadsRealsWithAndWithoutExponents) {
  EXPECT_EQ(parse_finite_double("3", "--lr"), 3.0);
  EXPECT_EQ(parse_finite_double("-0.25", "--lr"), -0.25);
  EXPECT_EQ(parse_finite_double("3e-4", "--lr"), 3e-4);
  EXPECT_EQ(parse_finite_double("1.5E+2", "--lr"), 150.0);
  EXPECT_EQ(parse_finite_double("2.5e-3", "--lr"), 0.0025);
  EXPECT_EQ(parse_finite_double("1.7976931348623157e308", "--lr"), std::numeric_limits<double>::max());
  EXPECT_EQ(parse_finite_double("2.2250738585072014e-308", "--lr"), std::numeric_limits<double>::min());
  const double negative_zero = parse_finite_double("-0", "--lr");
  EXPECT_EQ(negative_zero, 0.0);
  EXPECT_TRUE(std::signbit(negative_zero));
}

// Each refused text, and what the error says after naming the flag and the quoted text.
struct Refusal {
  std::string text, reason;
};

void expect_refused(int64_t (*parse)(std::string_view, const std::string&), const Refusal& r) {
  EXPECT_EQ(error_of([&] { parse(r.text, "--train-iters"); }), "--train-iters '" + r.text + "': " + r.reason);
}

TEST(ParseNumber, RefusesEveryIntegerFormButPlainDecimal) {
  for (const Refusal& r : std::initializer_list<Refusal>{
           {"", "expected an integer"},
           {" 1", "expected an integer"},
           {"1 ", "expected an integer"},
           {"+1", "expected an integer"},
           {"0x10", "expected an integer"},
           {"1x", "expected an integer"},
           {"1.5", "expected an integer"},
           {"1e3", "expected an integer"},
           {"-", "expected an integer"},
           // CLI11 reads "010" as octal 8 after the validator: a leading zero is refused outright.
           {"010", "expected an integer in plain decimal (no leading zero, no -0)"},
           {"-0", "expected an integer in plain decimal (no leading zero, no -0)"},
           {"9223372036854775808", "out of range for an integer (-9223372036854775808 to 9223372036854775807)"},
           {"-9223372036854775809", "out of range for an integer (-9223372036854775808 to 9223372036854775807)"},
       })
    expect_refused(parse_int64, r);
}

TEST(ParseNumber, RefusesNegativeAndOverflowingUnsignedIntegers) {
  EXPECT_EQ(error_of([] { parse_uint64("18446744073709551616", "--seed"); }),
            "--seed '18446744073709551616': out of range for a non-negative integer (0 to 18446744073709551615)");
  EXPECT_EQ(error_of([] { parse_uint64("-1", "--seed"); }), "--seed '-1': expected a non-negative integer");
  EXPECT_EQ(error_of([] { parse_uint64("00", "--seed"); }),
            "--seed '00': expected a non-negative integer in plain decimal (no leading zero, no -0)");
}

TEST(ParseNumber, RefusesRealsThatAreNotFiniteNumbers) {
  for (const Refusal& r : std::initializer_list<Refusal>{
           {"", "expected a number"},
           {" 1", "expected a number"},
           {"+1", "expected a number"},
           {"0x10", "expected a number"},
           {"1x", "expected a number"},
           {"1e", "expected a number"},
           {"nan", "expected a finite number"},
           {"inf", "expected a finite number"},
           {"-inf", "expected a finite number"},
           {"infinity", "expected a finite number"},
           {"1e400", "out of range for a double"},
           {"-1e400", "out of range for a double"},
       })
    EXPECT_EQ(error_of([&] { parse_finite_double(r.text, "--lr"); }), "--lr '" + r.text + "': " + r.reason);
}

// A hostile flag may be megabytes long: the error quotes its first 40 characters.
TEST(ParseNumber, ErrorsQuoteOnlyTheStartOfALongText) {
  const std::string text(1 << 20, '7');
  EXPECT_EQ(error_of([&] { parse_int64(text, "--seq-length"); }),
            "--seq-length '" + std::string(40, '7') + "...': out of range for an integer (-9223372036854775808 to "
                                                      "9223372036854775807)");
}

}  // namespace
}  // namespace strata
