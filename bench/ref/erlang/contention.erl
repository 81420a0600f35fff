%% contention: 4 sender processes push 10,000,000 messages in total to one receiver, which
%% checks per-sender order. Processes are preempted by reductions, so senders just loop.
%% Prints: RESULT bench=contention impl=erlang time_ms=... msgs_per_s=... msgs=...
-module(contention).
-export([main/0]).

-define(SENDERS, 4).
-define(TOTAL, 10000000).
-define(PER, (?TOTAL div ?SENDERS)).

sender(_Id, _To, ?PER) -> ok;
sender(Id, To, Seq) ->
    To ! {Id, Seq},
    sender(Id, To, Seq + 1).

receiver(?TOTAL, _Next, Errors) -> Errors;
receiver(Got, Next, Errors) ->
    receive
        {Id, Seq} ->
            E = case maps:get(Id, Next) of Seq -> Errors; _ -> Errors + 1 end,
            receiver(Got + 1, Next#{Id => Seq + 1}, E)
    end.

main() ->
    %% A mailbox that can hold millions of messages: keep it off the heap (standard advice).
    process_flag(message_queue_data, off_heap),
    Self = self(),
    T0 = erlang:monotonic_time(nanosecond),
    [spawn(fun() -> sender(I, Self, 0) end) || I <- lists:seq(0, ?SENDERS - 1)],
    Errors = receiver(0, maps:from_list([{I, 0} || I <- lists:seq(0, ?SENDERS - 1)]), 0),
    T1 = erlang:monotonic_time(nanosecond),
    S = (T1 - T0) / 1.0e9,
    io:format("RESULT bench=contention impl=erlang time_ms=~.1f msgs_per_s=~b msgs=~b workers=~b~n",
              [S * 1000, round(?TOTAL / S), ?TOTAL, erlang:system_info(schedulers_online)]),
    halt(case Errors of 0 -> 0; _ -> 1 end).
