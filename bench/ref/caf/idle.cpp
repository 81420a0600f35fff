// idle: 1,000,000 event-based actors, each waiting for a message. spawn_ms is the spawn
// loop; ready_ms is when every actor has run once and reported; bytes_per_actor is resident
// memory after minus before (/proc/self/statm), over 1e6. CAF ends actors nobody refers
// to, so main keeps one handle per actor (8 bytes each, included in the figure).
// Prints: RESULT bench=idle impl=caf spawn_ms=... ready_ms=... bytes_per_actor=...
#include "bench_caf.hpp"

#include <vector>

using namespace caf;

namespace {

constexpr size_t actors = 1000000;

behavior idle(event_based_actor* self, actor counter) {
  self->send(counter, atom("ready"));
  return {
    [](atom_value) {},
  };
}

struct counter_state {
  size_t ready = 0;
};

behavior counter(stateful_actor<counter_state>* self, actor done) {
  return {
    [=](atom_value) {
      if (++self->state.ready == actors) {
        self->send(done, bench::now_ns());
        self->quit();
      }
    },
  };
}

} // namespace

int main() {
  actor_system_config cfg;
  bench::configure(cfg);
  actor_system sys{cfg};
  std::vector<actor> all;
  int64_t t0 = 0, t1 = 0, t2 = 0;
  long rss0 = 0, rss1 = 0;
  {
    scoped_actor self{sys};
    auto c = sys.spawn(counter, actor_cast<actor>(self));
    all.reserve(actors);
    rss0 = bench::rss_kb();
    t0 = bench::now_ns();
    for (size_t i = 0; i < actors; ++i)
      all.emplace_back(sys.spawn(idle, c));
    t1 = bench::now_ns();
    self->receive([&](int64_t t) { t2 = t; });
    rss1 = bench::rss_kb();
  }
  std::printf("RESULT bench=idle impl=caf spawn_ms=%.1f ready_ms=%.1f bytes_per_actor=%.0f "
              "rss_before_kb=%ld rss_after_kb=%ld alive=%zu workers=%zu\n",
              (t1 - t0) / 1e6, (t2 - t0) / 1e6, (rss1 - rss0) * 1024.0 / actors, rss0, rss1,
              all.size(), bench::workers());
  std::fflush(stdout);
  for (auto& a : all)
    anon_send_exit(a, exit_reason::user_shutdown);
  all.clear();
  return 0;
}
