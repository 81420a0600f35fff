// contention: 4 sender goroutines push 10,000,000 messages in total into one unbuffered
// channel read by one receiver, which checks per-sender order.
// Prints: RESULT bench=contention impl=go time_ms=... msgs_per_s=... msgs=...
package main

import (
	"fmt"
	"os"
	"runtime"
	"time"
)

const (
	senders = 4
	total   = 10000000
	per     = total / senders
)

type msg struct {
	sender int32
	seq    int32
}

func sender(id int32, out chan<- msg) {
	for i := int32(0); i < per; i++ {
		out <- msg{id, i}
	}
}

func main() {
	ch := make(chan msg)
	var next [senders]int32
	errors := 0
	start := time.Now()
	for i := 0; i < senders; i++ {
		go sender(int32(i), ch)
	}
	for got := 0; got < total; got++ {
		m := <-ch
		if m.seq != next[m.sender] {
			errors++
		}
		next[m.sender] = m.seq + 1
	}
	el := time.Since(start)
	s := el.Seconds()
	fmt.Printf("RESULT bench=contention impl=go time_ms=%.1f msgs_per_s=%.0f msgs=%d workers=%d\n",
		s*1e3, total/s, total, runtime.GOMAXPROCS(0))
	if errors != 0 {
		os.Exit(1)
	}
}
