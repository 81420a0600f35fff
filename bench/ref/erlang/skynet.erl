%% skynet: 1,111,111 processes in a 10-ary tree sum 0..999,999 (the classic program).
%% Prints: RESULT bench=skynet impl=erlang time_ms=... sum=... (peak RSS from /usr/bin/time)
-module(skynet).
-export([main/0]).

skynet(Parent, Num, 1, _Div) ->
    Parent ! {sum, Num};
skynet(Parent, Num, Size, Div) ->
    Self = self(),
    Sub = Size div Div,
    [spawn(fun() -> skynet(Self, Num + I * Sub, Sub, Div) end) || I <- lists:seq(0, Div - 1)],
    Parent ! {sum, collect(Div, 0)}.

collect(0, Sum) -> Sum;
collect(N, Sum) -> receive {sum, X} -> collect(N - 1, Sum + X) end.

main() ->
    Self = self(),
    T0 = erlang:monotonic_time(nanosecond),
    spawn(fun() -> skynet(Self, 0, 1000000, 10) end),
    Sum = receive {sum, S} -> S end,
    T1 = erlang:monotonic_time(nanosecond),
    io:format("RESULT bench=skynet impl=erlang time_ms=~.1f sum=~b actors=1111111 workers=~b~n",
              [(T1 - T0) / 1.0e6, Sum, erlang:system_info(schedulers_online)]),
    halt(case Sum of 499999500000 -> 0; _ -> 1 end).
