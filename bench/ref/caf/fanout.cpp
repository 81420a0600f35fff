// fanout: one parent actor spawns 100,000 children, sends each a request and collects one
// reply from each; every child quits after replying.
// Prints: RESULT bench=fanout impl=caf time_ms=... children=...
#include "bench_caf.hpp"

using namespace caf;

namespace {

constexpr int64_t children = 100000;

struct parent_state {
  int64_t t0 = 0;
  int64_t replies = 0;
  int64_t sum = 0;
};

behavior child(event_based_actor* self) {
  return {
    [=](int64_t n, const actor& reply_to) {
      self->send(reply_to, n);
      self->quit();
    },
  };
}

behavior parent(stateful_actor<parent_state>* self, actor done) {
  return {
    [=](atom_value) {
      self->state.t0 = bench::now_ns();
      for (int64_t i = 0; i < children; ++i)
        self->send(self->spawn(child), i, actor_cast<actor>(self));
    },
    [=](int64_t n) {
      auto& st = self->state;
      st.sum += n;
      if (++st.replies < children)
        return;
      self->send(done, bench::now_ns() - st.t0, st.sum);
      self->quit();
    },
  };
}

} // namespace

int main() {
  actor_system_config cfg;
  bench::configure(cfg);
  actor_system sys{cfg};
  int64_t ns = 0, sum = 0;
  {
    scoped_actor self{sys};
    auto p = sys.spawn(parent, actor_cast<actor>(self));
    self->send(p, atom("go"));
    self->receive([&](int64_t t, int64_t s) {
      ns = t;
      sum = s;
    });
  }
  std::printf("RESULT bench=fanout impl=caf time_ms=%.1f children=%lld workers=%zu\n", ns / 1e6,
              static_cast<long long>(children), bench::workers());
  return sum == children * (children - 1) / 2 ? 0 : 1;
}
