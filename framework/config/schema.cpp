#include "framework/config/schema.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>

#include "framework/core/error.h"

namespace ssm::config {

// ---- ranges ---------------------------------------------------------------------------------

bool Range::contains(double v) const {
  if (lo && (lo_open ? !(v > *lo) : !(v >= *lo))) return false;
  if (hi && (hi_open ? !(v < *hi) : !(v <= *hi))) return false;
  return true;
}

std::string Range::str() const {
  if (lo && hi) return fmt::format("{}{}, {}{}", lo_open ? "(" : "[", *lo, *hi, hi_open ? ")" : "]");
  if (lo) return fmt::format("{} {}", lo_open ? ">" : ">=", *lo);
  if (hi) return fmt::format("{} {}", hi_open ? "<" : "<=", *hi);
  return "any";
}

// ---- did you mean ---------------------------------------------------------------------------

size_t edit_distance(std::string_view a, std::string_view b) {
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<size_t>> d(n + 1, std::vector<size_t>(m + 1));
  for (size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (size_t i = 1; i <= n; ++i) {
    for (size_t j = 1; j <= m; ++j) {
      size_t sub = std::tolower(a[i - 1]) == std::tolower(b[j - 1]) ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + sub});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[n][m];
}

std::string closest_name(std::string_view word, const std::vector<std::string>& candidates) {
  // Short words allow one edit, longer ones a third of their length: "lrr" -> "lr", but "x"
  // is not a typo of "lr".
  const size_t budget = std::max<size_t>(1, word.size() / 3);
  std::string best;
  size_t best_d = budget + 1;
  for (const std::string& c : candidates) {
    size_t dist = edit_distance(word, c);
    if (dist < best_d) {
      best_d = dist;
      best = c;
    }
  }
  return best;
}

// ---- scalars --------------------------------------------------------------------------------

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Decimal literal: [+-] digits [. digits] [e [+-] digits], or an infinity spelling. NaN and
// hex floats are rejected: no recipe value should ever be either.
std::optional<double> parse_number(const std::string& s) {
  std::string l = lower(s);
  if (l == ".inf" || l == "+.inf" || l == "inf" || l == "+inf" || l == "infinity")
    return std::numeric_limits<double>::infinity();
  if (l == "-.inf" || l == "-inf" || l == "-infinity") return -std::numeric_limits<double>::infinity();
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  size_t digits = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++digits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++digits;
  }
  if (digits == 0) return std::nullopt;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    size_t exp_digits = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++exp_digits;
    if (exp_digits == 0) return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  // from_chars, unlike strtod, ignores the C locale's decimal separator.
  double v = 0;
  const char* first = s.data() + (s[0] == '+' ? 1 : 0);
  auto [end, ec] = std::from_chars(first, s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || std::isinf(v)) return std::nullopt;  // 1e400
  return v;
}

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

const char* kind_noun(FieldKind k) {
  switch (k) {
    case FieldKind::boolean:
      return "a boolean (true or false)";
    case FieldKind::integer:
      return "an integer";
    case FieldKind::number:
      return "a number";
    case FieldKind::string:
      return "a string";
    case FieldKind::choice:
      return "one of the choices";
    case FieldKind::number_list:
      return "a list of numbers";
    case FieldKind::auto_int:
      return "an integer or 'auto'";
  }
  return "?";
}

}  // namespace

std::string yaml_scalar(const Value& v, FieldKind kind) {
  if (const bool* b = std::get_if<bool>(&v)) return *b ? "true" : "false";
  if (const int64_t* i = std::get_if<int64_t>(&v))
    return kind == FieldKind::auto_int && *i == 0 ? "auto" : std::to_string(*i);
  if (const double* d = std::get_if<double>(&v)) {
    if (std::isinf(*d)) return *d > 0 ? ".inf" : "-.inf";
    std::string s = fmt::format("{}", *d);  // shortest text that reads back to the same double
    if (s.find_first_of(".e") == std::string::npos) s += ".0";
    return s;
  }
  if (const auto* list = std::get_if<std::vector<double>>(&v)) {
    std::string s = "[";
    for (size_t i = 0; i < list->size(); ++i)
      s += (i ? ", " : "") + yaml_scalar((*list)[i], FieldKind::number);
    return s + "]";
  }
  const std::string& s = std::get<std::string>(v);
  if (kind == FieldKind::choice) return s;
  std::string q = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\')
      q += '\\', q += c;
    else if (c == '\n')
      q += "\\n";
    else if (c == '\t')
      q += "\\t";
    else
      q += c;
  }
  return q + "\"";
}

// ---- the schema -----------------------------------------------------------------------------

void Schema::add(FieldSpec f) {
  SSM_CHECK(std::find(sections_.begin(), sections_.end(), f.section) != sections_.end(),
            "schema: field '{}' names an undeclared section", f.dotted());
  SSM_CHECK(!find(f.section, f.key), "schema: field '{}' declared twice", f.dotted());
  fields_.push_back(std::move(f));
}

const FieldSpec* Schema::find(std::string_view section, std::string_view key) const {
  for (const FieldSpec& f : fields_)
    if (f.section == section && f.key == key) return &f;
  return nullptr;
}

const FieldSpec* Schema::find(std::string_view dotted) const {
  size_t dot = dotted.find('.');
  if (dot == std::string_view::npos) return find("", dotted);
  return find(dotted.substr(0, dot), dotted.substr(dot + 1));
}

std::string Schema::unknown_key_hint(std::string_view section, std::string_view key) const {
  std::vector<std::string> same;
  for (const FieldSpec& f : fields_)
    if (f.section == section) same.push_back(f.key);
  if (section.empty()) {
    for (const std::string& s : sections_)
      if (!s.empty()) same.push_back(s);
    same.insert(same.end(), reserved_.begin(), reserved_.end());
  }
  if (section.empty() && find(key)) {  // "optim.lr: 1" at the top level
    const FieldSpec* f = find(key);
    return " (nest it: '" + f->section + ":' with '" + f->key + ":' indented under it)";
  }
  std::string best = closest_name(key, same);
  if (!best.empty()) return " (did you mean '" + best + "'?)";
  // Right key, wrong section: "train.lr" -> "optim.lr".
  for (const FieldSpec& f : fields_)
    if (f.key == key && f.section != section) return " (did you mean '" + f.dotted() + "'?)";
  return "";
}

Value Schema::convert(const FieldSpec& f, const Node& n) const {
  const std::string name = f.dotted();
  auto fail = [&](const std::string& msg) -> Value { fail_at(n.loc, name + ": " + msg); };
  auto expected = [&](const char* what) -> Value {
    if (n.is_scalar() && n.quoted && f.kind != FieldKind::string && f.kind != FieldKind::choice)
      return fail(fmt::format("expected {}, got the quoted string \"{}\"", what, n.text));
    return fail(fmt::format("expected {}, got {}", what, n.describe()));
  };
  auto number_in_range = [&](const Node& item, const std::string& label, bool integral) -> double {
    auto v = item.is_scalar() && !item.quoted ? parse_number(item.text) : std::nullopt;
    const char* noun = integral ? "an integer" : "a number";
    if (!v) {
      if (item.is_scalar() && item.quoted)
        fail_at(item.loc,
                fmt::format("{}: expected {}, got the quoted string \"{}\"", label, noun, item.text));
      fail_at(item.loc, fmt::format("{}: expected {}, got {}", label, noun, item.describe()));
    }
    if (integral && (std::nearbyint(*v) != *v || std::abs(*v) > 9.0e15))
      fail_at(item.loc, fmt::format("{}: expected an integer, got '{}'", label, item.text));
    if (!f.range.contains(*v)) {
      if (f.range.lo && f.range.hi)
        fail_at(item.loc, fmt::format("{}: {} is out of range {}", label, item.text, f.range.str()));
      fail_at(item.loc, fmt::format("{}: must be {}, got {}", label, f.range.str(), item.text));
    }
    return *v;
  };

  Value out;
  switch (f.kind) {
    case FieldKind::boolean: {
      if (!n.is_scalar() || n.quoted) return expected(kind_noun(f.kind));
      std::string l = lower(n.text);
      if (l != "true" && l != "false") return expected(kind_noun(f.kind));
      out = l == "true";
      break;
    }
    case FieldKind::integer:
      if (!n.is_scalar()) return expected(kind_noun(f.kind));
      out = static_cast<int64_t>(number_in_range(n, name, true));
      break;
    case FieldKind::auto_int:
      if (!n.is_scalar()) return expected(kind_noun(f.kind));
      if (!n.quoted && n.text == "auto") {
        out = int64_t{0};
        break;
      }
      if (n.quoted || !parse_number(n.text)) return expected(kind_noun(f.kind));
      out = static_cast<int64_t>(number_in_range(n, name, true));
      break;
    case FieldKind::number:
      if (!n.is_scalar()) return expected(kind_noun(f.kind));
      out = number_in_range(n, name, false);
      break;
    case FieldKind::string:
      if (!n.is_scalar()) return expected(kind_noun(f.kind));
      out = n.text;
      break;
    case FieldKind::choice:
      if (!n.is_scalar()) return fail("expected one of: " + join(f.choices, ", ") + "; got " + n.describe());
      if (std::find(f.choices.begin(), f.choices.end(), n.text) == f.choices.end())
        return fail("'" + n.text + "' is not one of: " + join(f.choices, ", "));
      out = n.text;
      break;
    case FieldKind::number_list: {
      std::string want =
          f.list_size > 0 ? fmt::format("a list of {} numbers", f.list_size) : "a list of numbers";
      if (!n.is_sequence()) return expected(want.c_str());
      if (f.list_size > 0 && static_cast<int>(n.items.size()) != f.list_size)
        return fail(
            fmt::format("expected {}, got {} item{}", want, n.items.size(), n.items.size() == 1 ? "" : "s"));
      std::vector<double> list;
      for (size_t i = 0; i < n.items.size(); ++i)
        list.push_back(number_in_range(n.items[i], fmt::format("{}[{}]", name, i), false));
      out = std::move(list);
      break;
    }
  }
  if (f.check) {
    std::string msg = f.check(out);
    if (!msg.empty()) return fail(msg);
  }
  return out;
}

Schema::Parsed Schema::parse(const Node& root, bool partial) const {
  Parsed p;
  p.root = root.loc;
  auto take = [&](const FieldSpec& f, const Entry& e) {
    p.values[f.dotted()] = convert(f, e.value);
    p.key_locs[f.dotted()] = e.key_loc;
  };
  for (const Entry& top : root.entries) {
    if (const FieldSpec* f = find("", top.key)) {
      take(*f, top);
      continue;
    }
    bool is_section =
        !top.key.empty() && std::find(sections_.begin(), sections_.end(), top.key) != sections_.end();
    if (!is_section)
      fail_at(top.key_loc, "unknown section '" + top.key + "'" + unknown_key_hint("", top.key));
    p.section_locs[top.key] = top.key_loc;
    const Node& body = top.value;
    if (body.is_null()) continue;  // `kernels:` with nothing under it: all defaults
    if (!body.is_map())
      fail_at(body.loc, "section '" + top.key + "' must be a mapping of keys, got " + body.describe());
    for (const Entry& e : body.entries) {
      const FieldSpec* f = find(top.key, e.key);
      if (!f)
        fail_at(e.key_loc, "unknown key '" + e.key + "' in section '" + top.key + "'" +
                               unknown_key_hint(top.key, e.key));
      take(*f, e);
    }
  }
  if (partial) return p;
  for (const FieldSpec& f : fields_) {
    if (!f.required || p.values.count(f.dotted())) continue;
    if (f.section.empty()) fail_at(p.root, "missing required key '" + f.key + "'");
    auto sec = p.section_locs.find(f.section);
    if (sec == p.section_locs.end())
      fail_at(p.root, "missing required section '" + f.section + "' (needs '" + f.key + "')");
    fail_at(sec->second, "missing required key '" + f.key + "' in section '" + f.section + "'");
  }
  return p;
}

void Schema::fill_defaults(ValueMap& values) const {
  for (const FieldSpec& f : fields_) {
    if (values.count(f.dotted())) continue;
    values[f.dotted()] = f.default_fn ? f.default_fn(values) : f.default_value;
  }
}

std::string Schema::to_yaml(const ValueMap& values, bool docs) const {
  std::string out;
  for (const std::string& section : sections_) {
    const std::string indent = section.empty() ? "" : "  ";
    if (!section.empty()) out += section + ":\n";
    for (const FieldSpec& f : fields_) {
      if (f.section != section) continue;
      auto it = values.find(f.dotted());
      SSM_CHECK(it != values.end(), "resolved recipe lacks field '{}'", f.dotted());
      std::string line = indent + f.key + ": " + yaml_scalar(it->second, f.kind);
      if (docs && !f.doc.empty())
        line += std::string(std::max<size_t>(1, 40 - std::min<size_t>(40, line.size())), ' ') + "# " + f.doc;
      out += line + "\n";
    }
  }
  return out;
}

std::string Schema::describe() const {
  std::string out;
  for (const FieldSpec& f : fields_) {
    std::string type = f.kind == FieldKind::choice ? join(f.choices, " | ") : kind_noun(f.kind);
    if (f.range.lo || f.range.hi) type += ", " + f.range.str();
    std::string def = f.required     ? "required"
                      : f.default_fn ? "derived"
                                     : "default " + yaml_scalar(f.default_value, f.kind);
    out += fmt::format("{:<30} {:<40} {:<18} {}\n", f.dotted(), type, def, f.doc);
  }
  return out;
}

}  // namespace ssm::config
