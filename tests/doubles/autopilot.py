"""Closed-loop chat users inside a platform double, for the gateway capacity benchmark
(bench/gateway/chat_load.py). Test and bench code only — never shipped.

A double (matrix_double.py, mattermost_double.py) owns one Autopilot while a load runs. Each
user posts a message into its room through the double's own posting path (so the bot sees it
exactly as any other message: a /sync long-poll woken, a WebSocket "posted" event), waits for
the bot's answer, and posts the next one at once. Timestamps are taken inside the double's event
loop: added latency = the bot's answer arriving − the user's message posted − the model's
latency (the driver subtracts that). What the double itself costs (its loop, the HTTP round
trips) is inside the figure; the driver reports the double's CPU so a saturated double shows.

Matching an answer to its user: a room with one load user answers that user; in a shared room
the answer must name the user's message (Matrix m.relates_to / m.in_reply_to, Mattermost
root_id). Anything else the bot posts is counted as "other" and ignored.

Control (JSON, via the double's control API):
  start  {"users": [[room, sender], ...], "text": "...", "seconds": S, "warmup": W,
          "ramp_ms": R}   the first messages spread evenly over R ms; after W s, an S s window:
                          "in_window" counts the answers that arrived inside it (the rate),
                          "latencies_ms" has the turns both posted and answered inside it
  status {"running", "elapsed_s", "posted", "answered", "counted", "in_window", "other",
          "waiting",
          "latencies_ms": [...], "waiting_s": [how long each unanswered message has waited]
          (the last two only once finished)}
"""
import asyncio
import time


class Autopilot:
    def __init__(self, post, spec):
        """post(room, sender, text) -> (awaitable of) the message id."""
        self.post = post
        self.users = [(str(r), str(s)) for r, s in spec["users"]]
        if not self.users:
            raise ValueError("no users")
        self.text = str(spec.get("text", "hello"))
        self.seconds = float(spec["seconds"])
        self.warmup = float(spec.get("warmup", 0))
        self.ramp = float(spec.get("ramp_ms", 0)) / 1000.0
        if not (0 < self.seconds <= 3600 and 0 <= self.warmup <= 600 and 0 <= self.ramp <= 600):
            raise ValueError("seconds 0..3600, warmup 0..600, ramp_ms 0..600000")
        self.by_room = {}
        for i, (room, _) in enumerate(self.users):
            self.by_room.setdefault(room, []).append(i)
        self.pending = {}  # user index -> (message id, posted at)
        self.by_msg = {}  # message id -> user index
        self.n = [0] * len(self.users)
        self.latencies = []
        self.posted = self.answered = self.other = 0
        self.in_window = 0  # answers that arrived inside the measured window
        self.t0 = time.monotonic()
        self.t_measure = self.t0 + self.warmup
        self.t_end = self.t_measure + self.seconds
        self.running = True
        self.tasks = set()
        for i in range(len(self.users)):
            delay = self.ramp * i / len(self.users)
            self._spawn(self._first(i, delay))
        self._spawn(self._finish())

    def _spawn(self, coro):
        t = asyncio.ensure_future(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    async def _first(self, i, delay):
        if delay:
            await asyncio.sleep(delay)
        await self._send(i)

    async def _finish(self):
        await asyncio.sleep(max(0.0, self.t_end - time.monotonic()))
        self.running = False

    async def _send(self, i):
        if not self.running or time.monotonic() >= self.t_end:
            return
        room, sender = self.users[i]
        self.n[i] += 1
        text = "%s %d-%d" % (self.text, i, self.n[i])
        posted_at = time.monotonic()
        # The user is waiting from the moment the message is posted; the id is known once the
        # double made it (the bot cannot answer a message before it exists).
        self.pending[i] = (None, posted_at)
        mid = self.post(room, sender, text)
        if asyncio.iscoroutine(mid) or isinstance(mid, asyncio.Future):
            mid = await mid
        self.posted += 1
        if i in self.pending and self.pending[i][0] is None:
            self.pending[i] = (mid, posted_at)
            self.by_msg[mid] = i

    def on_bot_message(self, room, refs=()):
        """The bot posted a message into room; refs: message ids it names (reply, thread)."""
        users = self.by_room.get(room)
        if not users:
            return
        i = None
        if len(users) == 1:
            i = users[0]
        else:
            for r in refs:
                if r in self.by_msg:
                    i = self.by_msg[r]
                    break
        if i is None or i not in self.pending:
            self.other += 1
            return
        mid, posted_at = self.pending.pop(i)
        self.by_msg.pop(mid, None)
        now = time.monotonic()
        self.answered += 1
        if self.t_measure <= now <= self.t_end:
            self.in_window += 1
        if posted_at >= self.t_measure and now <= self.t_end:
            self.latencies.append((now - posted_at) * 1000.0)
        self._spawn(self._send(i))

    def status(self):
        now = time.monotonic()
        out = {"running": self.running, "elapsed_s": round(now - self.t0, 3),
               "posted": self.posted, "answered": self.answered,
               "counted": len(self.latencies), "in_window": self.in_window,
               "other": self.other,
               "waiting": len(self.pending), "users": len(self.users)}
        if not self.running:
            out["latencies_ms"] = [round(x, 3) for x in self.latencies]
            out["waiting_s"] = [round(now - at, 3) for _, at in self.pending.values()]
        return out

    def stop(self):
        self.running = False
        for t in list(self.tasks):
            t.cancel()
