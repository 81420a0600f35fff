// fanout: one parent goroutine starts 100,000 child goroutines, hands each a request and
// collects one reply from each on an unbuffered channel, while it is still spawning.
// Prints: RESULT bench=fanout impl=go time_ms=... children=...
package main

import (
	"fmt"
	"os"
	"runtime"
	"time"
)

const children = 100000

type request struct {
	n     int
	reply chan<- int
}

func child(req <-chan request) {
	r := <-req
	r.reply <- r.n
}

func main() {
	replies := make(chan int)
	start := time.Now()
	go func() {
		for i := 0; i < children; i++ {
			req := make(chan request, 1)
			go child(req)
			req <- request{n: i, reply: replies}
		}
	}()
	sum := 0
	for i := 0; i < children; i++ {
		sum += <-replies
	}
	el := time.Since(start)
	fmt.Printf("RESULT bench=fanout impl=go time_ms=%.1f children=%d workers=%d\n",
		float64(el.Nanoseconds())/1e6, children, runtime.GOMAXPROCS(0))
	if sum != children*(children-1)/2 {
		os.Exit(1)
	}
}
