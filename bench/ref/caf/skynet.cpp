// skynet: 1,111,111 event-based actors in a 10-ary tree sum 0..999,999.
// Prints: RESULT bench=skynet impl=caf time_ms=... sum=... (peak RSS from /usr/bin/time)
#include "bench_caf.hpp"

using namespace caf;

namespace {

struct sk_state {
  int64_t sum = 0;
  int pending = 0;
};

behavior skynet(stateful_actor<sk_state>* self, actor parent, int64_t num, int64_t size) {
  if (size == 1) {
    self->send(parent, num);
    self->quit();
    return {};
  }
  int64_t sub = size / 10;
  for (int64_t i = 0; i < 10; ++i)
    self->spawn(skynet, actor_cast<actor>(self), num + i * sub, sub);
  self->state.pending = 10;
  return {
    [=](int64_t v) {
      auto& st = self->state;
      st.sum += v;
      if (--st.pending == 0) {
        self->send(parent, st.sum);
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
  int64_t sum = 0;
  int64_t t0 = bench::now_ns();
  {
    scoped_actor self{sys};
    self->spawn(skynet, actor_cast<actor>(self), int64_t{0}, int64_t{1000000});
    self->receive([&](int64_t v) { sum = v; });
  }
  int64_t t1 = bench::now_ns();
  std::printf("RESULT bench=skynet impl=caf time_ms=%.1f sum=%lld actors=1111111 workers=%zu\n",
              (t1 - t0) / 1e6, static_cast<long long>(sum), bench::workers());
  std::fflush(stdout);
  return sum == 499999500000LL ? 0 : 1;
}
