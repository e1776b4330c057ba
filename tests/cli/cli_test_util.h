// Runs the edgeglm binary for the CLI tests: exit code, stdout and stderr of one invocation.
#pragma once
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <string>

#include "core/mapped_file.h"
#include "test_util.h"

namespace edgeglm::test {

struct CliResult {
  int code;
  std::string out;
  std::string err;
};

inline CliResult run_cli(const std::string& args, const std::string& stdin_file = "/dev/null") {
  // One stderr file per process: ctest runs test cases as parallel processes.
  const std::string err_file = temp_path("cli_stderr_" + std::to_string(getpid()) + ".txt");
  const std::string cmd = bin_path("edgeglm") + " " + args + " 2>" + err_file + " <" + stdin_file;
  CliResult r;
  FILE* p = popen(cmd.c_str(), "r");
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.err = read_text_file(err_file).value();
  std::remove(err_file.c_str());
  return r;
}

}  // namespace edgeglm::test
