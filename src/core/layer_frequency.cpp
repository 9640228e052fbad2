#include "strata/core/layer_frequency.h"

#include <limits>
#include <variant>
#include <vector>

#include "strata/core/error.h"
#include "strata/core/parse_number.h"

namespace strata {

namespace {

using List = std::vector<int64_t>;
using Value = std::variant<int64_t, List>;

// A recursive-descent reader of the Python expressions Megatron's _eval_pattern admits, with
// Python's precedence: '+' below '*', '*' below unary '+', unary '+' below '**' (right-associative).
//   sum     := product ('+' product)*
//   product := unary ('*' unary)*
//   unary   := '+' unary | power
//   power   := atom ['**' unary]
//   atom    := integer | '[' [sum (',' sum)* [',']] ']' | '(' sum ')'
// A list holds integers (no nested lists), at most kMaxLayers of them, and integers fit in int64;
// anything Python would evaluate to another type (a tuple, a float) is refused, and so is nesting
// (brackets, parentheses, unary '+') deeper than kMaxNesting, which Python's parser refuses too
// and which would otherwise exhaust this reader's stack.
class Expression {
 public:
  Expression(const std::string& text, const std::string& where) : text_(text), where_(where) {}

  Value evaluate() {
    for (size_t i = 0; i < text_.size(); ++i)
      if (std::string("0123456789,[]()+*").find(text_[i]) == std::string::npos)
        error(i, cat("'", text_[i], "' is not allowed: a list expression holds digits, [ ] ( ) , + and * only"));
    auto value = sum();
    if (pos_ != text_.size()) error(pos_, cat("unexpected '", text_[pos_], "'"));
    return value;
  }

 private:
  [[noreturn]] void error(size_t pos, const std::string& what) const {
    fail(where_, " \"", text_, "\": ", what, " (position ", pos, ")");
  }

  static constexpr int kMaxNesting = 200;

  // Counts one level of nesting while alive; refuses the level past kMaxNesting.
  class Nesting {
   public:
    explicit Nesting(Expression& e) : e_(e) {
      if (++e_.depth_ > kMaxNesting)
        e_.error(e_.pos_, cat("nested more than ", kMaxNesting, " deep (brackets, parentheses or unary '+')"));
    }
    ~Nesting() { --e_.depth_; }
    Nesting(const Nesting&) = delete;
    Nesting& operator=(const Nesting&) = delete;

   private:
    Expression& e_;
  };

  bool at(char c) const { return pos_ < text_.size() && text_[pos_] == c; }
  bool at_power() const { return at('*') && pos_ + 1 < text_.size() && text_[pos_ + 1] == '*'; }

  void expect(char c) {
    if (!at(c)) error(pos_, pos_ < text_.size() ? cat("expected '", c, "', found '", text_[pos_], "'")
                                                 : cat("expected '", c, "' at the end"));
    ++pos_;
  }

  Value sum() {
    auto value = product();
    while (at('+')) {
      const auto op = pos_++;
      value = add(std::move(value), product(), op);
    }
    return value;
  }

  Value product() {
    auto value = unary();
    while (at('*') && !at_power()) {
      const auto op = pos_++;
      value = multiply(std::move(value), unary(), op);
    }
    return value;
  }

  Value unary() {
    if (!at('+')) return power();
    const Nesting level(*this);
    const auto op = pos_++;
    auto value = unary();
    if (std::holds_alternative<List>(value)) error(op, "unary '+' of a list (Python refuses it too)");
    return value;
  }

  Value power() {
    const auto start = pos_;
    auto base = atom();
    if (!at_power()) return base;
    const auto op = pos_;
    pos_ += 2;
    auto exponent = unary();
    if (std::holds_alternative<List>(base) || std::holds_alternative<List>(exponent))
      error(op, "'**' of a list (Python refuses it too)");
    return integer_power(std::get<int64_t>(base), std::get<int64_t>(exponent), start);
  }

  Value atom() {
    if (!at('[') && !at('(')) return integer();
    const Nesting level(*this);
    if (at('[')) return list();
    const auto open = pos_++;
    if (at(')')) error(open, "'()' is an empty tuple, not a list or an integer");
    auto value = sum();
    if (at(',')) error(pos_, "a tuple ('(a, b)'): Megatron expects a list, written with [ ]");
    expect(')');
    return value;
  }

  Value list() {
    const auto open = pos_++;
    List items;
    while (!at(']')) {
      const auto item_start = pos_;
      auto item = sum();
      if (std::holds_alternative<List>(item)) error(item_start, "a list inside a list: expected integers");
      items.push_back(std::get<int64_t>(item));
      check_length(items.size(), open);
      if (!at(',')) break;
      ++pos_;
    }
    expect(']');
    return items;
  }

  Value integer() {
    const auto start = pos_;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') ++pos_;
    if (pos_ == start) error(start, pos_ < text_.size() ? cat("unexpected '", text_[pos_], "'") : "unexpected end");
    const auto digits = text_.substr(start, pos_ - start);
    // Python 3 reads "010" as a syntax error, not as octal or ten.
    if (digits.size() > 1 && digits.find_first_not_of('0') != std::string::npos && digits[0] == '0')
      error(start, "an integer with a leading zero (Python refuses it)");
    if (digits.find_first_not_of('0') == std::string::npos) return int64_t{0};
    return parse_int64(digits, cat(where_, " \"", text_, "\" at position ", start));
  }

  Value add(Value a, Value b, size_t op) const {
    if (a.index() != b.index()) error(op, "'+' of a list and an integer (Python refuses it too)");
    if (auto* x = std::get_if<int64_t>(&a)) {
      int64_t out;
      if (__builtin_add_overflow(*x, std::get<int64_t>(b), &out)) error(op, "the sum is too large");
      return out;
    }
    auto& left = std::get<List>(a);
    const auto& right = std::get<List>(b);
    check_length(left.size() + right.size(), op);
    left.insert(left.end(), right.begin(), right.end());
    return left;
  }

  Value multiply(Value a, Value b, size_t op) const {
    const bool a_list = std::holds_alternative<List>(a), b_list = std::holds_alternative<List>(b);
    if (a_list && b_list) error(op, "'*' of two lists (Python refuses it too)");
    if (!a_list && !b_list) {
      int64_t out;
      if (__builtin_mul_overflow(std::get<int64_t>(a), std::get<int64_t>(b), &out)) error(op, "the product is too large");
      return out;
    }
    const auto& items = a_list ? std::get<List>(a) : std::get<List>(b);
    const auto times = a_list ? std::get<int64_t>(b) : std::get<int64_t>(a);
    List out;
    if (times <= 0 || items.empty()) return out;  // Python: a list times 0 or less is empty
    if (static_cast<uint64_t>(times) > static_cast<uint64_t>(kMaxLayers) / items.size())
      error(op, cat("a list longer than strata's limit of ", kMaxLayers, " layers"));
    for (int64_t i = 0; i < times; ++i) out.insert(out.end(), items.begin(), items.end());
    return out;
  }

  Value integer_power(int64_t base, int64_t exponent, size_t start) const {
    if (exponent < 0) error(start, "a negative exponent (Python gives a fraction, not an integer)");
    if (base == 0) return int64_t{exponent == 0 ? 1 : 0};
    if (base == 1) return int64_t{1};
    int64_t out = 1;
    for (int64_t i = 0; i < exponent; ++i)  // base >= 2: overflows within 63 steps
      if (__builtin_mul_overflow(out, base, &out)) error(start, "the power is too large");
    return out;
  }

  void check_length(size_t length, size_t pos) const {
    if (length > static_cast<size_t>(kMaxLayers))
      error(pos, cat("a list longer than strata's limit of ", kMaxLayers, " layers"));
  }

  const std::string& text_;
  const std::string& where_;
  size_t pos_ = 0;
  int depth_ = 0;  // levels of nesting open (Nesting)
};

}  // namespace

LayerFrequency parse_layer_frequency(const std::string& text, const std::string& where) {
  LayerFrequency frequency;
  if (text.find('[') == std::string::npos) {
    frequency.every = parse_int64(text, where);
    return frequency;
  }
  auto value = Expression(text, where).evaluate();
  if (!std::holds_alternative<List>(value))
    fail(where, " \"", text, "\": evaluates to the integer ", std::get<int64_t>(value),
         ", expected a list (write an integer without brackets)");
  frequency.explicit_list = std::get<List>(std::move(value));
  if (frequency.explicit_list.empty()) fail(where, " \"", text, "\": the list is empty, expected one entry per layer");
  return frequency;
}

std::string to_string(const LayerFrequency& f) {
  if (f.every) return std::to_string(*f.every);
  if (f.explicit_list.empty()) return "";
  std::string out = "[";
  for (size_t i = 0; i < f.explicit_list.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(f.explicit_list[i]);
  }
  return out + "]";
}

}  // namespace strata
