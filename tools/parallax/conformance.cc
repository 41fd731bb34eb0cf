// `parallax conformance`: runs ONNX backend test folders. Each test runs in
// its own forked process so a crash or hang in one test is reported as that
// test's failure instead of ending the run.
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include "onnx/tensor_proto.h"
#include "ops/shape_util.h"
#include "parallax/commands.h"
#include "parallax/parallax.h"

namespace fs = std::filesystem;

namespace parallax::cli {
namespace {

enum class Outcome { kPass, kFail, kSkip };
struct TestResult {
  std::string name;
  Outcome outcome = Outcome::kFail;
  std::string reason;
};

constexpr double kRtol = 1e-3, kAtol = 1e-7;  // The ONNX backend test defaults.

// Empty string when `got` matches `want`, else a description of the mismatch.
std::string Compare(const Tensor& got, const Tensor& want) {
  if (got.is_none() || want.is_none())
    return got.is_none() == want.is_none() ? ""
           : want.is_none()                ? "expected an empty optional"
                                           : "got an empty optional";
  if (want.is_sequence()) {
    if (!got.is_sequence()) return "expected a sequence, got a tensor";
    if (got.elements().size() != want.elements().size())
      return "sequence has " + std::to_string(got.elements().size()) + " elements, expected " +
             std::to_string(want.elements().size());
    for (size_t i = 0; i < want.elements().size(); ++i) {
      std::string d = Compare(got.elements()[i], want.elements()[i]);
      if (!d.empty()) return "sequence element " + std::to_string(i) + ": " + d;
    }
    return "";
  }
  if (got.dtype() != want.dtype())
    return "dtype " + std::string(DTypeName(got.dtype())) + ", expected " +
           std::string(DTypeName(want.dtype()));
  if (got.shape() != want.shape())
    return "shape " + ShapeToString(got.shape()) + ", expected " + ShapeToString(want.shape());
  bool exact = !IsFloatingDType(want.dtype()) && want.dtype() != DType::kBFloat16;
  for (int64_t i = 0; i < want.numel(); ++i) {
    double g = ElementAsDouble(got, i), w = ElementAsDouble(want, i);
    if (std::isnan(w) && std::isnan(g)) continue;
    if (std::isinf(w) && g == w) continue;
    bool ok = exact ? g == w : std::fabs(g - w) <= kAtol + kRtol * std::fabs(w);
    if (!ok) {
      std::ostringstream os;
      os << "element " << i << " is " << g << ", expected " << w;
      return os.str();
    }
  }
  return "";
}

std::vector<std::string> SortedFiles(const fs::path& dir, const std::string& prefix) {
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string n = e.path().filename().string();
    if (n.rfind(prefix, 0) == 0 && n.size() > 3 && n.substr(n.size() - 3) == ".pb")
      files.push_back(n);
  }
  std::sort(files.begin(), files.end(), [&](const std::string& a, const std::string& b) {
    return std::stoi(a.substr(prefix.size())) < std::stoi(b.substr(prefix.size()));
  });
  return files;
}

TestResult RunOne(const fs::path& dir) {
  TestResult r{dir.filename().string(), Outcome::kFail, ""};
  Result<Model> model = Model::Load((dir / "model.onnx").string());
  if (!model.ok()) {
    r.reason = model.status().ToString();
    return r;
  }
  for (const auto* list : {&model->inputs(), &model->outputs()})
    for (const TensorInfo& info : *list)
      if (info.dtype == DType::kString || info.dtype == DType::kUndefined) {
        r.outcome = Outcome::kSkip;
        r.reason = "'" + info.name + "' is a string tensor or a map (not supported)";
        return r;
      }
  Result<Session> session = Session::Create(*model);
  if (!session.ok()) {
    r.reason = session.status().ToString();
    return r;
  }
  std::vector<fs::path> sets;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory() && e.path().filename().string().rfind("test_data_set_", 0) == 0)
      sets.push_back(e.path());
  std::sort(sets.begin(), sets.end());
  if (sets.empty()) {
    r.outcome = Outcome::kSkip;
    r.reason = "no test_data_set_* folders";
    return r;
  }
  for (const fs::path& set : sets) {
    Session::NamedTensors inputs;
    std::vector<std::string> in_files = SortedFiles(set, "input_");
    for (size_t i = 0; i < in_files.size(); ++i) {
      if (i >= model->inputs().size()) {
        r.reason = "more input files than model inputs";
        return r;
      }
      std::string pb_name;
      const DType kind = model->inputs()[i].dtype;
      Result<Tensor> t = kind == DType::kSequence || kind == DType::kOptional
                             ? ReadValueProtoFile((set / in_files[i]).string(), kind)
                             : ReadTensorProtoFile((set / in_files[i]).string(), &pb_name);
      if (!t.ok()) {
        r.reason = t.status().ToString();
        return r;
      }
      if (kind == DType::kBFloat16 && t->dtype() == DType::kUInt16)
        *t = t->Reinterpreted(DType::kBFloat16);
      // The .pb's own name wins when it names a model input; else position.
      std::string name = model->inputs()[i].name;
      for (const TensorInfo& info : model->inputs())
        if (!pb_name.empty() && info.name == pb_name) name = pb_name;
      inputs.emplace_back(name, std::move(t).value());
    }
    Result<std::vector<Tensor>> outs = session->Run(inputs);
    if (!outs.ok()) {
      r.reason = outs.status().ToString();
      return r;
    }
    std::vector<std::string> out_files = SortedFiles(set, "output_");
    if (out_files.size() != outs->size()) {
      r.reason = "model produced " + std::to_string(outs->size()) + " outputs, test has " +
                 std::to_string(out_files.size());
      return r;
    }
    for (size_t i = 0; i < out_files.size(); ++i) {
      Result<Tensor> want =
          ReadValueProtoFile((set / out_files[i]).string(), model->outputs()[i].dtype);
      if (!want.ok()) {
        r.reason = want.status().ToString();
        return r;
      }
      // ONNX 1.12's test data stores bfloat16 values as uint16 tensors.
      if (model->outputs()[i].dtype == DType::kBFloat16 && want->dtype() == DType::kUInt16)
        *want = want->Reinterpreted(DType::kBFloat16);
      std::string diff = Compare((*outs)[i], *want);
      if (!diff.empty()) {
        r.reason = set.filename().string() + " output '" + model->outputs()[i].name + "': " + diff;
        return r;
      }
    }
  }
  r.outcome = Outcome::kPass;
  return r;
}

// Serialised over the pipe as "<P|F|S>reason".
struct Child {
  pid_t pid;
  int fd;
  fs::path dir;
  std::chrono::steady_clock::time_point start;
  std::string buffer;
};

Child Spawn(const fs::path& dir) {
  int fds[2];
  if (pipe(fds) != 0) return {-1, -1, dir, {}, {}};
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    TestResult r = RunOne(dir);
    std::string msg = std::string(1, r.outcome == Outcome::kPass   ? 'P'
                                     : r.outcome == Outcome::kSkip ? 'S'
                                                                   : 'F') +
                      r.reason;
    ssize_t ignored = write(fds[1], msg.data(), msg.size());
    (void)ignored;
    close(fds[1]);
    _exit(0);
  }
  close(fds[1]);
  return {pid, fds[0], dir, std::chrono::steady_clock::now(), {}};
}

TestResult Finish(Child& c, bool timed_out, double timeout_s) {
  TestResult r{c.dir.filename().string(), Outcome::kFail, ""};
  int status = 0;
  if (timed_out) kill(c.pid, SIGKILL);
  waitpid(c.pid, &status, 0);
  close(c.fd);
  if (timed_out) {
    r.reason = "timed out after " + std::to_string(static_cast<int>(timeout_s)) + " s";
  } else if (c.buffer.empty()) {
    r.reason = WIFSIGNALED(status)
                   ? std::string("crashed with signal ") + strsignal(WTERMSIG(status))
                   : "exited without a result";
  } else {
    r.outcome = c.buffer[0] == 'P'   ? Outcome::kPass
                : c.buffer[0] == 'S' ? Outcome::kSkip
                                     : Outcome::kFail;
    r.reason = c.buffer.substr(1);
  }
  for (char& ch : r.reason)
    if (ch == '\n' || ch == '\t') ch = ' ';
  return r;
}

// The hand-written explanation of a known failure: the text between "why: "
// and " | " in its line of the known-failures file, kept on regeneration.
std::string KnownNote(const std::map<std::string, std::string>& known, const std::string& name) {
  auto it = known.find(name);
  if (it == known.end()) return "";
  size_t a = it->second.find("why: ");
  if (a == std::string::npos) return "";
  size_t b = it->second.find(" | ", a);
  return it->second.substr(a, b == std::string::npos ? std::string::npos : b + 3 - a);
}

std::vector<fs::path> CollectTests(const std::vector<std::string>& dirs) {
  std::vector<fs::path> tests;
  for (const std::string& d : dirs) {
    fs::path p(d);
    if (fs::exists(p / "model.onnx")) {
      tests.push_back(p);
      continue;
    }
    if (!fs::is_directory(p)) continue;
    for (const auto& e : fs::directory_iterator(p))
      if (fs::exists(e.path() / "model.onnx")) tests.push_back(e.path());
  }
  std::sort(tests.begin(), tests.end());
  return tests;
}

}  // namespace

int RunConformance(const ConformanceFlags& flags) {
  std::vector<fs::path> tests = CollectTests(flags.dirs);
  if (tests.empty()) {
    std::cerr << "error: no test folders (with model.onnx) found\n";
    return 1;
  }
  std::map<std::string, std::string> known;
  if (!flags.known_failures.empty()) {
    std::ifstream f(flags.known_failures);
    if (!f) {
      std::cerr << "error: cannot read " << flags.known_failures << "\n";
      return 1;
    }
    std::string line;
    while (std::getline(f, line))
      if (!line.empty() && line[0] != '#') known[line.substr(0, line.find('\t'))] = line;
  }
  std::vector<TestResult> results;
  std::vector<Child> running;
  size_t next = 0;
  const size_t jobs = static_cast<size_t>(std::max(1, flags.jobs));
  while (next < tests.size() || !running.empty()) {
    while (next < tests.size() && running.size() < jobs) running.push_back(Spawn(tests[next++]));
    std::vector<pollfd> pfds;
    for (const Child& c : running) pfds.push_back({c.fd, POLLIN, 0});
    poll(pfds.data(), pfds.size(), 200);
    for (size_t i = running.size(); i-- > 0;) {
      Child& c = running[i];
      bool done = false, timed_out = false;
      if (pfds[i].revents & (POLLIN | POLLHUP)) {
        char buf[4096];
        ssize_t n = read(c.fd, buf, sizeof buf);
        if (n > 0)
          c.buffer.append(buf, static_cast<size_t>(n));
        else
          done = true;
      }
      double elapsed =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - c.start).count();
      if (!done && elapsed > flags.timeout_s) done = timed_out = true;
      if (!done) continue;
      TestResult r = Finish(c, timed_out, flags.timeout_s);
      if (flags.verbose || r.outcome == Outcome::kFail)
        std::cout << (r.outcome == Outcome::kPass   ? "PASS "
                      : r.outcome == Outcome::kSkip ? "SKIP "
                                                    : "FAIL ")
                  << r.name << (r.reason.empty() ? "" : ": " + r.reason)
                  << (r.outcome == Outcome::kFail && !known.empty() && !known.count(r.name)
                          ? "  [NEW]"
                          : "")
                  << "\n"
                  << std::flush;
      results.push_back(std::move(r));
      running.erase(running.begin() + static_cast<long>(i));
    }
  }
  std::sort(results.begin(), results.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  int passed = 0, failed = 0, skipped = 0;
  for (const auto& r : results) {
    passed += r.outcome == Outcome::kPass;
    failed += r.outcome == Outcome::kFail;
    skipped += r.outcome == Outcome::kSkip;
  }
  if (!flags.write_failures.empty()) {
    std::ofstream f(flags.write_failures);
    f << "# Conformance tests that do not pass: name, FAIL|SKIP, then 'why: <explanation> | '\n"
         "# (hand-written, kept when regenerated) and the runner's message. Regenerate with\n"
         "# `parallax conformance DIR --known-failures F --write-failures F`.\n"
         "# SKIP = the test's inputs or outputs are string tensors, which Parallax does not "
         "represent.\n";
    for (const auto& r : results)
      if (r.outcome != Outcome::kPass)
        f << r.name << "\t" << (r.outcome == Outcome::kSkip ? "SKIP" : "FAIL") << "\t"
          << KnownNote(known, r.name) << r.reason << "\n";
  }
  for (const auto& [name, line] : known) {
    bool now_passes = false;
    for (const auto& r : results) now_passes |= r.name == name && r.outcome == Outcome::kPass;
    if (now_passes)
      std::cout << "note: " << name << " is listed as a known failure but now passes\n";
  }
  std::printf("pass rate %.1f%% of %zu tests\n",
              100.0 * passed / static_cast<double>(results.size()), results.size());
  std::printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
  if (passed < flags.min_pass) {
    std::printf("error: %d passed is below the floor of %d\n", passed, flags.min_pass);
    return 1;
  }
  return 0;
}

}  // namespace parallax::cli
