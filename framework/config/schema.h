// A small declarative schema: sections of typed fields with defaults, ranges, choices and a
// one-line doc, checked against a located YAML tree (tree.h).
//
//   Schema s({"", "optim"});                  // "" holds top-level scalars such as `device`
//   s.add({.section = "optim", .key = "lr", .kind = FieldKind::number,
//          .doc = "peak learning rate", .default_value = 3e-4, .range = Range::above(0)});
//   Schema::Parsed p = s.parse(parse_tree("optim:\n  lr: -1\n", "a.yaml"), false);
//   // throws ssm::Error "a.yaml:2:7: optim.lr: must be > 0, got -1"
//   s.fill_defaults(p.values);                // every field now has a value
//
// Errors are ssm::Error with the message "FILE:LINE:COL: text" (see tree.h, fail_at).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "framework/config/tree.h"

namespace ssm::config {

enum class FieldKind {
  boolean,      // true | false
  integer,      // any numeric literal with an integral value: 300, 2e9
  number,       // a float; also .inf / inf
  string,       // any scalar
  choice,       // one of `choices`
  number_list,  // a list of numbers, `list_size` long when list_size > 0
  auto_int,     // "auto" (stored as 0) or an integer within `range`
};

// boolean: bool; integer, auto_int: int64_t; number: double; string, choice: std::string;
// number_list: std::vector<double>.
using Value = std::variant<bool, int64_t, double, std::string, std::vector<double>>;
using ValueMap = std::map<std::string, Value>;  // keyed by dotted name: "optim.lr", "device"

struct Range {
  std::optional<double> lo{}, hi{};
  bool lo_open = false, hi_open = false;

  static Range at_least(double v) { return {v, std::nullopt, false, false}; }
  static Range above(double v) { return {v, std::nullopt, true, false}; }
  static Range closed(double a, double b) { return {a, b, false, false}; }
  static Range half_open(double a, double b) { return {a, b, false, true}; }  // [a, b)

  bool contains(double v) const;
  std::string str() const;  // "[1, 8]", "> 0", ">= 0", "[0, 1)"
};

struct FieldSpec {
  std::string section{};  // "" = a top-level scalar
  std::string key{};
  FieldKind kind = FieldKind::string;
  std::string doc{};
  Value default_value{};
  bool required = false;
  Range range{};                       // integer, number, auto_int and each number_list item
  std::vector<std::string> choices{};  // choice
  int list_size = 0;                   // number_list: exact length (0 = any)
  // Extra validation of a converted value; returns an error message, or "" when fine.
  std::function<std::string(const Value&)> check{};
  // A default that depends on fields earlier in schema order (e.g. d_state on the family).
  std::function<Value(const ValueMap&)> default_fn{};

  std::string dotted() const { return section.empty() ? key : section + "." + key; }
};

class Schema {
 public:
  // Sections in emission order; "" (top-level scalars) always comes first.
  explicit Schema(std::vector<std::string> sections) : sections_(std::move(sections)) {}

  void add(FieldSpec f);
  // Top-level keys the loader consumes itself (`inherit`): offered as suggestions only.
  void reserve(std::string key) { reserved_.push_back(std::move(key)); }

  const std::vector<FieldSpec>& fields() const { return fields_; }
  const std::vector<std::string>& sections() const { return sections_; }
  const FieldSpec* find(std::string_view section, std::string_view key) const;
  const FieldSpec* find(std::string_view dotted) const;

  struct Parsed {
    ValueMap values;                      // explicitly set fields only
    std::map<std::string, Loc> key_locs;  // dotted name -> where its key is written
    std::map<std::string, Loc> section_locs;
    Loc root;  // where the document starts
  };
  // Checks every key and value of `root`: unknown sections/keys (with did-you-mean), types,
  // ranges, choices, and, unless `partial`, that required fields are present.
  Parsed parse(const Node& root, bool partial) const;
  // Fills every field missing from `values` with its default, in schema order.
  void fill_defaults(ValueMap& values) const;

  // One value converted and checked; errors name `f.dotted()` and sit at the value's loc.
  Value convert(const FieldSpec& f, const Node& n) const;

  // `values` (every field present) as YAML; with `docs`, each field's doc as a comment.
  std::string to_yaml(const ValueMap& values, bool docs) const;
  // "model.d_model  integer, required  model width D" ... for --help style listings.
  std::string describe() const;

 private:
  std::string unknown_key_hint(std::string_view section, std::string_view key) const;

  std::vector<std::string> sections_;
  std::vector<std::string> reserved_;
  std::vector<FieldSpec> fields_;
};

// Optimal-string-alignment distance (an adjacent swap counts as one edit).
size_t edit_distance(std::string_view a, std::string_view b);
// The candidate closest to `word` if it is close enough to be a plausible typo, else "".
std::string closest_name(std::string_view word, const std::vector<std::string>& candidates);
// A scalar as YAML: numbers shortest-round-trip (".inf" for infinity), strings double-quoted.
std::string yaml_scalar(const Value& v, FieldKind kind);

}  // namespace ssm::config
