%% idle: 1,000,000 processes, each waiting in receive. spawn_ms is the spawn loop; ready_ms
%% is when every process has run and reported; bytes_per_actor is resident memory after
%% minus before (/proc/self/statm), over 1e6.
%% Prints: RESULT bench=idle impl=erlang spawn_ms=... ready_ms=... bytes_per_actor=...
-module(idle).
-export([main/0]).

-define(ACTORS, 1000000).

rss_kb() ->
    {ok, B} = file:read_file("/proc/self/statm"),
    [_Size, Res | _] = string:lexemes(binary_to_list(B), " \n"),
    list_to_integer(Res) * 4.

idle(Parent) ->
    Parent ! ready,
    receive stop -> ok end.

spawn_all(0, _Parent) -> ok;
spawn_all(N, Parent) ->
    spawn(fun() -> idle(Parent) end),
    spawn_all(N - 1, Parent).

wait_ready(0) -> ok;
wait_ready(N) -> receive ready -> wait_ready(N - 1) end.

main() ->
    %% The parent's mailbox fills with a million `ready`s while it is still spawning: keep
    %% them off the heap so its garbage collections do not copy them over and over.
    process_flag(message_queue_data, off_heap),
    Rss0 = rss_kb(),
    T0 = erlang:monotonic_time(nanosecond),
    spawn_all(?ACTORS, self()),
    T1 = erlang:monotonic_time(nanosecond),
    wait_ready(?ACTORS),
    T2 = erlang:monotonic_time(nanosecond),
    Rss1 = rss_kb(),
    io:format("RESULT bench=idle impl=erlang spawn_ms=~.1f ready_ms=~.1f bytes_per_actor=~b "
              "rss_before_kb=~b rss_after_kb=~b alive=~b workers=~b~n",
              [(T1 - T0) / 1.0e6, (T2 - T0) / 1.0e6, round((Rss1 - Rss0) * 1024 / ?ACTORS),
               Rss0, Rss1, erlang:system_info(process_count) - 1,
               erlang:system_info(schedulers_online)]),
    halt(0).
