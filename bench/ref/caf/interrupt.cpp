// interrupt: 2 busy actors per scheduler thread each work through an endless stream of
// self-sent messages, ~20 us of CPU per message, while a target actor waits. A driver
// thread outside the scheduler sends the target a high-priority message
// (message_priority::high) carrying a steady_clock timestamp every ~1 ms (5,000 samples, or
// 10 s at most); the target records now - ts.
// CAF's default max-throughput is unbounded: a busy actor that always has mail would never
// give its thread back and the target would starve. We set 64, the same batch our runtime
// uses, and say so in the README.
// Prints: RESULT bench=interrupt impl=caf p50_us=... p99_us=... samples=...
#include "bench_caf.hpp"

#include <algorithm>
#include <atomic>
#include <future>
#include <pthread.h>
#include <sched.h>
#include <sys/prctl.h>
#include <thread>
#include <vector>

using namespace caf;

namespace {

constexpr int samples = 5000;
constexpr int64_t period_ns = 1000000;
constexpr int64_t max_ns = 10000000000LL;
constexpr int64_t work_ns = 20000;
constexpr int64_t busy_cap = 1000000;

std::atomic<int64_t> busy_handled{0};

struct busy_state {
  int64_t handled = 0;
  ~busy_state() { busy_handled += handled; }
};

void spin(int64_t ns) {
  int64_t end = bench::now_ns() + ns;
  while (bench::now_ns() < end) {
  }
}

behavior busy(stateful_actor<busy_state>* self) {
  return {
    [=](atom_value) {
      spin(work_ns);
      if (++self->state.handled < busy_cap)
        self->send(self, atom("work"));
      else
        self->quit();
    },
  };
}

struct results {
  std::vector<int64_t> lat, tick;
  std::promise<void> done;
};

struct target_state {
  results* out = nullptr;
};

behavior target(stateful_actor<target_state>* self, results* out, std::vector<actor> busies) {
  self->state.out = out;
  return {
    [=](int64_t ts, int64_t tk, bool last) {
      int64_t now = bench::now_ns();
      auto* r = self->state.out;
      r->lat.push_back(now - ts);
      r->tick.push_back(now - tk);
      if (!last)
        return;
      for (auto& b : busies)
        self->send_exit(b, exit_reason::user_shutdown);
      r->done.set_value();
      self->quit();
    },
  };
}

double pct(std::vector<int64_t>& v, double q) {
  if (v.empty())
    return -1;
  long i = std::lround(q * v.size()) - 1;
  i = std::max(0L, std::min(i, static_cast<long>(v.size()) - 1));
  return v[i] / 1e3;
}

} // namespace

int main() {
  actor_system_config cfg;
  bench::configure(cfg);
  cfg.set("scheduler.max-throughput", 64);
  actor_system sys{cfg};
  size_t nbusy = 2 * bench::workers();
  std::vector<actor> busies;
  for (size_t i = 0; i < nbusy; ++i)
    busies.push_back(sys.spawn(busy));
  results res;
  res.lat.reserve(samples);
  res.tick.reserve(samples);
  auto done = res.done.get_future();
  auto t = sys.spawn(target, &res, busies);
  for (auto& b : busies)
    anon_send(b, atom("work"));

  // The driver is this (non-scheduler) thread, paced on absolute deadlines.
  prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
  sched_param sp{};
  sp.sched_priority = 1;
  bool rt = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) == 0;
  std::vector<int64_t> late;
  late.reserve(samples);
  int64_t t0 = bench::now_ns();
  for (int i = 0; i < samples; ++i) {
    int64_t tick = t0 + (i + 1) * period_ns;
    timespec ts{static_cast<time_t>(tick / 1000000000), static_cast<long>(tick % 1000000000)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
    }
    int64_t now = bench::now_ns();
    late.push_back(now - tick);
    bool last = i == samples - 1 || now - t0 >= max_ns;
    anon_send<message_priority::high>(t, now, tick, last);
    if (last)
      break;
  }
  done.wait();
  int64_t elapsed = bench::now_ns() - t0;
  busies.clear();
  sys.await_all_actors_done();
  std::sort(res.lat.begin(), res.lat.end());
  std::sort(res.tick.begin(), res.tick.end());
  std::sort(late.begin(), late.end());
  int64_t bm = busy_handled.load();
  std::printf("RESULT bench=interrupt impl=caf p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f "
              "samples=%zu tick_p50_us=%.1f tick_p99_us=%.1f driver_late_p99_us=%.1f "
              "elapsed_ms=%.0f busy=%zu busy_msgs=%lld busy_util=%.2f driver_rt=%d workers=%zu\n",
              pct(res.lat, .5), pct(res.lat, .99), pct(res.lat, .999), pct(res.lat, 1.0),
              res.lat.size(), pct(res.tick, .5), pct(res.tick, .99), pct(late, .99),
              elapsed / 1e6, nbusy, static_cast<long long>(bm),
              bm * double(work_ns) / (double(elapsed) * bench::workers()), rt ? 1 : 0,
              bench::workers());
  return 0;
}
