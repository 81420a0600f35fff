// pingpong: two event-based actors bounce a message 1,000,000 times (2,000,000 messages).
// Prints: RESULT bench=pingpong impl=caf ns_per_msg=... time_ms=... msgs=...
#include "bench_caf.hpp"

using namespace caf;

namespace {

constexpr int64_t rounds = 1000000;

struct ping_state {
  int64_t t0 = 0;
};

behavior pong(event_based_actor*) {
  return {
    [](int64_t n) { return n; }, // the reply goes back to the sender
  };
}

behavior ping(stateful_actor<ping_state>* self, actor buddy, actor done) {
  return {
    [=](atom_value) {
      self->state.t0 = bench::now_ns();
      self->send(buddy, int64_t{1});
    },
    [=](int64_t n) {
      if (n < rounds) {
        self->send(buddy, n + 1);
        return;
      }
      self->send(done, bench::now_ns() - self->state.t0);
      self->quit();
    },
  };
}

} // namespace

int main() {
  actor_system_config cfg;
  bench::configure(cfg);
  actor_system sys{cfg};
  int64_t ns = 0;
  {
    scoped_actor self{sys};
    auto b = sys.spawn(pong);
    auto p = sys.spawn(ping, b, actor_cast<actor>(self));
    self->send(p, atom("go"));
    self->receive([&](int64_t v) { ns = v; });
    self->send_exit(b, exit_reason::user_shutdown);
  }
  double msgs = 2.0 * rounds;
  std::printf("RESULT bench=pingpong impl=caf ns_per_msg=%.1f time_ms=%.1f msgs=%.0f workers=%zu\n",
              ns / msgs, ns / 1e6, msgs, bench::workers());
  return 0;
}
