#include "runtime/trace.h"

#include <algorithm>
#include <fstream>
#include <limits>

namespace parallax {
namespace {

// Length of the valid UTF-8 sequence at s[i], or 0 if none starts there
// (stray continuation byte, overlong form, surrogate, > U+10FFFF, truncated).
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte(i);
  size_t len = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // Allowed range of the second byte.
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + len > s.size() || byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (size_t k = 2; k < len; ++k)
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
  return len;
}

// Appends `s` as a JSON string literal: quotes, backslashes and control
// characters escaped; invalid UTF-8 bytes replaced by U+FFFD.
void AppendJsonString(std::string* out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  static constexpr std::string_view kEscaped = "\"\\\b\f\n\r\t";  // Written as \ + kLetters.
  static constexpr std::string_view kLetters = "\"\\bfnrt";
  out->push_back('"');
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const size_t len = Utf8SequenceLength(s, i);
      out->append(len ? s.substr(i, len) : std::string_view("\\ufffd"));
      i += len ? len : 1;
      continue;
    }
    ++i;
    if (const size_t k = kEscaped.find(static_cast<char>(c)); k != std::string_view::npos) {
      out->push_back('\\');
      out->push_back(kLetters[k]);
    } else if (c < 0x20) {
      out->append("\\u00");
      out->push_back(kHex[c >> 4]);
      out->push_back(kHex[c & 15]);
    } else {
      out->push_back(static_cast<char>(c));
    }
  }
  out->push_back('"');
}

void AppendInt(std::string* out, int64_t v) { out->append(std::to_string(v)); }

// Nanoseconds as microseconds with exactly 3 decimals ("-1.500"); integer
// arithmetic, so the output does not depend on the C locale.
void AppendMicros(std::string* out, int64_t ns) {
  if (ns < 0) out->push_back('-');
  const uint64_t abs_ns = ns < 0 ? 0 - static_cast<uint64_t>(ns) : static_cast<uint64_t>(ns);
  out->append(std::to_string(abs_ns / 1000));
  const unsigned frac = static_cast<unsigned>(abs_ns % 1000);
  out->push_back('.');
  out->push_back(static_cast<char>('0' + frac / 100));
  out->push_back(static_cast<char>('0' + frac / 10 % 10));
  out->push_back(static_cast<char>('0' + frac % 10));
}

}  // namespace

TraceRecorder::TraceRecorder(int workers, size_t reserve_slices)
    : origin_(std::chrono::steady_clock::now()), logs_(std::max(workers, 1)) {
  for (WorkerLog& log : logs_) {
    log.slices.reserve(reserve_slices);
    log.text.reserve(reserve_slices * 32);  // Typical node name + op type.
  }
  counters_.reserve(reserve_slices * logs_.size());
}

int64_t TraceRecorder::NowNs() const {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() -
                                                              origin_)
      .count();
}

void TraceRecorder::Slice(int worker, std::string_view name, std::string_view op_type, int branch,
                          int64_t start_ns, int64_t end_ns) {
  if (worker < 0 || worker >= workers()) return;
  constexpr size_t kMaxLen = std::numeric_limits<uint32_t>::max();
  name = name.substr(0, kMaxLen);
  op_type = op_type.substr(0, kMaxLen);
  WorkerLog& log = logs_[worker];
  log.slices.push_back({start_ns, std::max(start_ns, end_ns), log.text.size(),
                        static_cast<uint32_t>(name.size()), static_cast<uint32_t>(op_type.size()),
                        branch});
  log.text.append(name);
  log.text.append(op_type);
}

void TraceRecorder::Counter(int64_t t_ns, int64_t bytes) {
  std::lock_guard<std::mutex> lock(counter_mu_);
  counters_.push_back({t_ns, bytes});
}

std::string TraceRecorder::ToJson() const {
  std::string out;
  size_t estimate = 64 + counters_.size() * 96;
  for (const WorkerLog& log : logs_) estimate += 96 + log.slices.size() * 160 + log.text.size();
  out.reserve(estimate);
  out.append("{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n");
  bool first = true;
  auto begin_event = [&] {
    if (!first) out.append(",\n");
    first = false;
  };
  for (int w = 0; w < workers(); ++w) {
    begin_event();
    out.append("{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":1,\"tid\":");
    AppendInt(&out, w);
    out.append(",\"args\":{\"name\":\"worker ");
    AppendInt(&out, w);
    out.append("\"}}");
  }
  for (int w = 0; w < workers(); ++w) {
    const std::string_view text(logs_[w].text);
    for (const SliceRecord& s : logs_[w].slices) {
      begin_event();
      out.append("{\"ph\":\"X\",\"name\":");
      AppendJsonString(&out, text.substr(s.text_offset, s.name_len));
      out.append(",\"cat\":\"branch ");
      AppendInt(&out, s.branch);
      out.append("\",\"pid\":1,\"tid\":");
      AppendInt(&out, w);
      out.append(",\"ts\":");
      AppendMicros(&out, s.start_ns);
      out.append(",\"dur\":");
      AppendMicros(&out, s.end_ns - s.start_ns);
      out.append(",\"args\":{\"op\":");
      AppendJsonString(&out, text.substr(s.text_offset + s.name_len, s.op_len));
      out.append(",\"branch\":");
      AppendInt(&out, s.branch);
      out.append("}}");
    }
  }
  std::vector<CounterSample> counters = counters_;
  std::stable_sort(counters.begin(), counters.end(),
                   [](const CounterSample& a, const CounterSample& b) { return a.t_ns < b.t_ns; });
  for (const CounterSample& c : counters) {
    begin_event();
    out.append("{\"ph\":\"C\",\"name\":\"activation bytes\",\"pid\":1,\"tid\":0,\"ts\":");
    AppendMicros(&out, c.t_ns);
    out.append(",\"args\":{\"bytes\":");
    AppendInt(&out, c.bytes);
    out.append("}}");
  }
  out.append("\n]}\n");
  return out;
}

Status TraceRecorder::WriteJson(const std::string& path) const {
  const std::string json = ToJson();
  std::ofstream f(path, std::ios::binary);
  if (!f) return IoError("cannot write trace '" + path + "'");
  f.write(json.data(), static_cast<std::streamsize>(json.size()));
  f.close();
  if (!f) return IoError("failed writing trace '" + path + "'");
  return Status::Ok();
}

}  // namespace parallax
