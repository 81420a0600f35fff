// contention: 4 sender actors push 10,000,000 messages in total to one receiver, which
// checks per-sender order. Senders send 1,000 messages per turn and then send themselves a
// `continue`, so the cooperative scheduler can interleave the receiver.
// Prints: RESULT bench=contention impl=caf time_ms=... msgs_per_s=... msgs=...
#include "bench_caf.hpp"

#include <array>

using namespace caf;

namespace {

constexpr int32_t senders = 4;
constexpr int64_t total = 10000000;
constexpr int32_t per = total / senders;
constexpr int32_t slice = 1000;

struct sender_state {
  int32_t sent = 0;
};

behavior sender(stateful_actor<sender_state>* self, actor to, int32_t id) {
  return {
    [=](atom_value) {
      auto& st = self->state;
      for (int32_t i = 0; i < slice && st.sent < per; ++i)
        self->send(to, id, st.sent++);
      if (st.sent < per)
        self->send(self, atom("more"));
      else
        self->quit();
    },
  };
}

struct receiver_state {
  int64_t got = 0;
  int64_t errors = 0;
  std::array<int32_t, senders> next{};
};

behavior receiver(stateful_actor<receiver_state>* self, actor done) {
  return {
    [=](int32_t id, int32_t seq) {
      auto& st = self->state;
      if (st.next[id] != seq)
        ++st.errors;
      st.next[id] = seq + 1;
      if (++st.got == total) {
        self->send(done, bench::now_ns(), st.errors);
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
  int64_t t0 = 0, t1 = 0, errors = 0;
  {
    scoped_actor self{sys};
    auto rx = sys.spawn(receiver, actor_cast<actor>(self));
    std::array<actor, senders> tx;
    for (int32_t i = 0; i < senders; ++i)
      tx[i] = sys.spawn(sender, rx, i);
    t0 = bench::now_ns();
    for (auto& t : tx)
      self->send(t, atom("more"));
    self->receive([&](int64_t t, int64_t e) {
      t1 = t;
      errors = e;
    });
  }
  double s = (t1 - t0) / 1e9;
  std::printf("RESULT bench=contention impl=caf time_ms=%.1f msgs_per_s=%.0f msgs=%lld workers=%zu\n",
              s * 1e3, total / s, static_cast<long long>(total), bench::workers());
  return errors == 0 ? 0 : 1;
}
