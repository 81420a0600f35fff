%% pingpong: two processes bounce a message 1,000,000 times (2,000,000 messages).
%% Prints: RESULT bench=pingpong impl=erlang ns_per_msg=... time_ms=... msgs=...
-module(pingpong).
-export([main/0]).

-define(ROUNDS, 1000000).

pong() ->
    receive
        {ping, From} -> From ! pong, pong();
        stop -> ok
    end.

ping(_Pong, 0) -> ok;
ping(Pong, N) ->
    Pong ! {ping, self()},
    receive pong -> ping(Pong, N - 1) end.

main() ->
    Pong = spawn(fun pong/0),
    T0 = erlang:monotonic_time(nanosecond),
    ping(Pong, ?ROUNDS),
    T1 = erlang:monotonic_time(nanosecond),
    Pong ! stop,
    Msgs = 2 * ?ROUNDS,
    io:format("RESULT bench=pingpong impl=erlang ns_per_msg=~.1f time_ms=~.1f msgs=~b workers=~b~n",
              [(T1 - T0) / Msgs, (T1 - T0) / 1.0e6, Msgs, erlang:system_info(schedulers_online)]),
    halt(0).
