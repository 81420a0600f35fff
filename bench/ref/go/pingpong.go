// pingpong: two goroutines bounce a value over two unbuffered channels, 1,000,000 round
// trips (2,000,000 messages).
// Prints: RESULT bench=pingpong impl=go ns_per_msg=... time_ms=... msgs=...
package main

import (
	"fmt"
	"runtime"
	"time"
)

const rounds = 1000000

func pong(in <-chan int, out chan<- int) {
	for v := range in {
		out <- v
	}
}

func main() {
	ping := make(chan int)
	back := make(chan int)
	go pong(ping, back)
	start := time.Now()
	for i := 0; i < rounds; i++ {
		ping <- i
		<-back
	}
	el := time.Since(start)
	close(ping)
	msgs := 2.0 * rounds
	fmt.Printf("RESULT bench=pingpong impl=go ns_per_msg=%.1f time_ms=%.1f msgs=%.0f workers=%d\n",
		float64(el.Nanoseconds())/msgs, float64(el.Nanoseconds())/1e6, msgs, runtime.GOMAXPROCS(0))
}
