// Shared by the CAF reference benchmarks: scheduler threads (HERMES_WORKERS, default 2, to
// match the runtime under test) and small clock/RSS helpers.
#pragma once

#include <caf/all.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace bench {

inline size_t workers() {
  const char* env = std::getenv("HERMES_WORKERS");
  if (env != nullptr) {
    char* end = nullptr;
    long n = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && n >= 1 && n <= 256)
      return static_cast<size_t>(n);
  }
  return 2;
}

inline void configure(caf::actor_system_config& cfg) {
  cfg.set("scheduler.max-threads", workers());
}

inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
           std::chrono::steady_clock::now().time_since_epoch())
    .count();
}

inline long rss_kb() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  long size = 0, res = 0;
  if (f == nullptr)
    return -1;
  int n = std::fscanf(f, "%ld %ld", &size, &res);
  std::fclose(f);
  return n == 2 ? res * 4 : -1;
}

} // namespace bench
