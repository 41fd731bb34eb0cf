#include "runtime/trace.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace parallax {
namespace {

nlohmann::json ReadJsonFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return nlohmann::json::parse(ss.str());  // Throws (failing the test) on bad JSON.
}

std::vector<nlohmann::json> EventsWithPhase(const nlohmann::json& trace, const std::string& ph) {
  std::vector<nlohmann::json> events;
  for (const auto& e : trace.at("traceEvents"))
    if (e.at("ph") == ph) events.push_back(e);
  return events;
}

TEST(TraceRecorder, WritesChromeTraceJson) {
  TraceRecorder trace(2);
  trace.Slice(0, "conv1", "Conv", 0, 1000, 3500);
  trace.Slice(1, "add_7", "Add", 1, 2000, 2001);
  trace.Slice(0, "relu", "Relu", 0, 4000, 4000);
  trace.Counter(1500, 4096);
  trace.Counter(500, 1024);  // Out of order: written sorted by time.
  const std::string path = testing::TempDir() + "/parallax_trace_test.json";
  ASSERT_TRUE(trace.WriteJson(path).ok());
  const nlohmann::json j = ReadJsonFile(path);

  const auto meta = EventsWithPhase(j, "M");
  ASSERT_EQ(meta.size(), 2u);
  EXPECT_EQ(meta[0]["name"], "thread_name");
  EXPECT_EQ(meta[0]["tid"], 0);
  EXPECT_EQ(meta[0]["args"]["name"], "worker 0");
  EXPECT_EQ(meta[1]["args"]["name"], "worker 1");

  const auto slices = EventsWithPhase(j, "X");
  ASSERT_EQ(slices.size(), 3u);
  EXPECT_EQ(slices[0]["name"], "conv1");
  EXPECT_EQ(slices[0]["cat"], "branch 0");
  EXPECT_EQ(slices[0]["pid"], 1);
  EXPECT_EQ(slices[0]["tid"], 0);
  EXPECT_DOUBLE_EQ(slices[0]["ts"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(slices[0]["dur"].get<double>(), 2.5);
  EXPECT_EQ(slices[0]["args"]["op"], "Conv");
  EXPECT_EQ(slices[0]["args"]["branch"], 0);
  EXPECT_EQ(slices[1]["name"], "relu");  // Worker 0's slices, then worker 1's.
  EXPECT_DOUBLE_EQ(slices[1]["dur"].get<double>(), 0.0);
  EXPECT_EQ(slices[2]["name"], "add_7");
  EXPECT_EQ(slices[2]["tid"], 1);
  EXPECT_EQ(slices[2]["cat"], "branch 1");
  EXPECT_DOUBLE_EQ(slices[2]["ts"].get<double>(), 2.0);
  EXPECT_DOUBLE_EQ(slices[2]["dur"].get<double>(), 0.001);

  const auto counters = EventsWithPhase(j, "C");
  ASSERT_EQ(counters.size(), 2u);
  EXPECT_EQ(counters[0]["name"], "activation bytes");
  EXPECT_DOUBLE_EQ(counters[0]["ts"].get<double>(), 0.5);
  EXPECT_EQ(counters[0]["args"]["bytes"], 1024);
  EXPECT_DOUBLE_EQ(counters[1]["ts"].get<double>(), 1.5);
  EXPECT_EQ(counters[1]["args"]["bytes"], 4096);
}

TEST(TraceRecorder, EscapesNames) {
  const std::string nasty =
      std::string("a\"b\\c/d\n\t\r\b\f") + '\x01' + '\x1f' + "\xc3\xa9\xe2\x82\xac";
  TraceRecorder trace(1);
  trace.Slice(0, nasty, "Op\"Type", -1, 0, 10);
  trace.Slice(0, "bad\xff utf8\xc3", "X", 0, 0, 10);  // Invalid UTF-8: stray byte, truncated.
  const nlohmann::json j = nlohmann::json::parse(trace.ToJson());
  const auto slices = EventsWithPhase(j, "X");
  ASSERT_EQ(slices.size(), 2u);
  EXPECT_EQ(slices[0]["name"].get<std::string>(), nasty);
  EXPECT_EQ(slices[0]["args"]["op"], "Op\"Type");
  EXPECT_EQ(slices[0]["cat"], "branch -1");
  EXPECT_EQ(slices[1]["name"].get<std::string>(), "bad\xef\xbf\xbd utf8\xef\xbf\xbd");
}

TEST(TraceRecorder, UnwritablePathIsAnErrorNamingIt) {
  TraceRecorder trace(1);
  trace.Slice(0, "n", "Op", 0, 0, 1);
  const std::string path = testing::TempDir() + "/no_such_dir_parallax/trace.json";
  Status s = trace.WriteJson(path);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_NE(s.message().find(path), std::string::npos) << s.message();
}

TEST(TraceRecorder, WorkersRecordConcurrently) {
  constexpr int kWorkers = 2, kSlices = 2000;
  TraceRecorder trace(kWorkers, /*reserve_slices=*/16);  // Forces growth while recording.
  std::vector<std::thread> threads;
  for (int w = 0; w < kWorkers; ++w) {
    threads.emplace_back([&trace, w] {
      for (int i = 0; i < kSlices; ++i) {
        const int64_t start = trace.NowNs();
        trace.Slice(w, "node_" + std::to_string(i), "MatMul", w, start, trace.NowNs());
        trace.Counter(trace.NowNs(), i);
      }
    });
  }
  for (auto& t : threads) t.join();
  trace.Slice(kWorkers, "ignored", "Op", 0, 0, 1);  // Out of range: dropped.
  const nlohmann::json j = nlohmann::json::parse(trace.ToJson());
  const auto slices = EventsWithPhase(j, "X");
  ASSERT_EQ(slices.size(), size_t{kWorkers * kSlices});
  for (const auto& s : slices) {
    EXPECT_GE(s["ts"].get<double>(), 0.0);
    EXPECT_EQ(s["args"]["branch"], s["tid"]);
  }
  const auto counters = EventsWithPhase(j, "C");
  ASSERT_EQ(counters.size(), size_t{kWorkers * kSlices});
  for (size_t i = 1; i < counters.size(); ++i)
    EXPECT_LE(counters[i - 1]["ts"].get<double>(), counters[i]["ts"].get<double>());
}

}  // namespace
}  // namespace parallax
