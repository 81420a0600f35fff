%% interrupt: 2 busy processes per scheduler each work through an endless stream of
%% self-sent messages, ~20 us of CPU per message, while a target process (priority high,
%% Erlang's nearest thing to an urgent lane) waits in receive. A driver process (also
%% priority high, so its own pacing suffers least) sends the target a timestamp every ~1 ms
%% (5,000 samples, or 10 s at most); the target records now - ts.
%% Prints: RESULT bench=interrupt impl=erlang p50_us=... p99_us=... samples=...
-module(interrupt).
-export([main/0]).

-define(SAMPLES, 5000).
-define(PERIOD_MS, 1).
-define(MAX_NS, 10000000000).
-define(WORK_NS, 20000).
-define(BUSY_CAP, 1000000).

now_ns() -> erlang:monotonic_time(nanosecond).

spin(End) ->
    case now_ns() < End of true -> spin(End); false -> ok end.

busy(Parent, ?BUSY_CAP) -> Parent ! {busy_done, ?BUSY_CAP};
busy(Parent, N) ->
    receive
        stop -> Parent ! {busy_done, N};
        work ->
            spin(now_ns() + ?WORK_NS),
            self() ! work,
            busy(Parent, N + 1)
    end.

target(Parent, Busy, Lat, Tick) ->
    receive
        {ping, Ts, TickNs, Last} ->
            Now = now_ns(),
            L = [Now - Ts | Lat],
            T = [Now - TickNs | Tick],
            case Last of
                true ->
                    [B ! stop || B <- Busy],
                    Parent ! {samples, L, T};
                false ->
                    target(Parent, Busy, L, T)
            end
    end.

drive(Target, T0ms, I, Late) ->
    TickMs = T0ms + (I + 1) * ?PERIOD_MS,
    erlang:send_after(TickMs, self(), tick, [{abs, true}]),
    receive tick -> ok end,
    TickNs = erlang:convert_time_unit(TickMs, millisecond, nanosecond),
    Ts = now_ns(),
    Last = (I =:= ?SAMPLES - 1) orelse (Ts - T0ms * 1000000 >= ?MAX_NS),
    Target ! {ping, Ts, TickNs, Last},
    case Last of
        true -> [Ts - TickNs | Late];
        false -> drive(Target, T0ms, I + 1, [Ts - TickNs | Late])
    end.

pct(Sorted, N, Q) ->
    I = max(1, min(N, round(Q * N))),
    lists:nth(I, Sorted) / 1000.

collect_busy(0, Sum) -> Sum;
collect_busy(N, Sum) -> receive {busy_done, H} -> collect_busy(N - 1, Sum + H) end.

main() ->
    Self = self(),
    Scheds = erlang:system_info(schedulers_online),
    NBusy = 2 * Scheds,
    Busy = [spawn(fun() -> busy(Self, 0) end) || _ <- lists:seq(1, NBusy)],
    [B ! work || B <- Busy],
    Target = spawn_opt(fun() -> target(Self, Busy, [], []) end, [{priority, high}]),
    T0 = now_ns(),
    T0ms = erlang:monotonic_time(millisecond),
    spawn_opt(fun() -> Self ! {late, drive(Target, T0ms, 0, [])} end, [{priority, high}]),
    {Lat, Tick} = receive {samples, L, T} -> {lists:sort(L), lists:sort(T)} end,
    Elapsed = now_ns() - T0,
    Late = lists:sort(receive {late, Lt} -> Lt end),
    BusyMsgs = collect_busy(NBusy, 0),
    N = length(Lat),
    io:format("RESULT bench=interrupt impl=erlang p50_us=~.1f p99_us=~.1f p999_us=~.1f max_us=~.1f "
              "samples=~b tick_p50_us=~.1f tick_p99_us=~.1f driver_late_p99_us=~.1f elapsed_ms=~b "
              "busy=~b busy_msgs=~b busy_util=~.2f workers=~b~n",
              [pct(Lat, N, 0.5), pct(Lat, N, 0.99), pct(Lat, N, 0.999), pct(Lat, N, 1.0), N,
               pct(Tick, N, 0.5), pct(Tick, N, 0.99), pct(Late, length(Late), 0.99),
               Elapsed div 1000000, NBusy, BusyMsgs, BusyMsgs * ?WORK_NS / (Elapsed * Scheds),
               Scheds]),
    halt(0).
