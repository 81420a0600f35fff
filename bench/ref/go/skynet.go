// skynet: 1,111,111 goroutines in a 10-ary tree sum 0..999,999 over unbuffered channels.
// The classic program from github.com/atemerev/skynet (Go version), unchanged in spirit.
// Prints: RESULT bench=skynet impl=go time_ms=... sum=... (peak RSS comes from /usr/bin/time)
package main

import (
	"fmt"
	"os"
	"runtime"
	"time"
)

func skynet(c chan<- int, num, size, div int) {
	if size == 1 {
		c <- num
		return
	}
	rc := make(chan int)
	sub := size / div
	for i := 0; i < div; i++ {
		go skynet(rc, num+i*sub, sub, div)
	}
	sum := 0
	for i := 0; i < div; i++ {
		sum += <-rc
	}
	c <- sum
}

func main() {
	c := make(chan int)
	start := time.Now()
	go skynet(c, 0, 1000000, 10)
	sum := <-c
	el := time.Since(start)
	fmt.Printf("RESULT bench=skynet impl=go time_ms=%.1f sum=%d actors=1111111 workers=%d\n",
		float64(el.Nanoseconds())/1e6, sum, runtime.GOMAXPROCS(0))
	if sum != 499999500000 {
		os.Exit(1)
	}
}
