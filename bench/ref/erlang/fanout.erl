%% fanout: one parent spawns 100,000 children, sends each a request and collects one reply
%% from each; every child ends after replying.
%% Prints: RESULT bench=fanout impl=erlang time_ms=... children=...
-module(fanout).
-export([main/0]).

-define(CHILDREN, 100000).

child() ->
    receive {req, From, N} -> From ! {reply, N} end.

spawn_all(I) when I >= ?CHILDREN -> ok;
spawn_all(I) ->
    Pid = spawn(fun child/0),
    Pid ! {req, self(), I},
    spawn_all(I + 1).

collect(0, Sum) -> Sum;
collect(N, Sum) -> receive {reply, X} -> collect(N - 1, Sum + X) end.

main() ->
    process_flag(message_queue_data, off_heap), % replies pile up while it spawns
    T0 = erlang:monotonic_time(nanosecond),
    spawn_all(0),
    Sum = collect(?CHILDREN, 0),
    T1 = erlang:monotonic_time(nanosecond),
    io:format("RESULT bench=fanout impl=erlang time_ms=~.1f children=~b workers=~b~n",
              [(T1 - T0) / 1.0e6, ?CHILDREN, erlang:system_info(schedulers_online)]),
    halt(case Sum =:= ?CHILDREN * (?CHILDREN - 1) div 2 of true -> 0; false -> 1 end).
