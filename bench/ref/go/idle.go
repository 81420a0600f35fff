// idle: 1,000,000 goroutines, each blocked on a channel receive. spawn_ms is the loop of
// `go` statements; ready_ms is when every goroutine has run and reported (sync.WaitGroup);
// bytes_per_actor is resident memory after minus before, over 1e6 (/proc/self/statm).
// Prints: RESULT bench=idle impl=go spawn_ms=... ready_ms=... bytes_per_actor=...
package main

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"
)

const actors = 1000000

func rssKB() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return -1
	}
	var size, res int64
	if _, err := fmt.Sscan(string(b), &size, &res); err != nil {
		return -1
	}
	return res * int64(os.Getpagesize()) / 1024
}

func main() {
	var wg sync.WaitGroup
	stop := make(chan struct{})
	rss0 := rssKB()
	start := time.Now()
	wg.Add(actors)
	for i := 0; i < actors; i++ {
		go func() {
			wg.Done()
			<-stop
		}()
	}
	spawn := time.Since(start)
	wg.Wait()
	ready := time.Since(start)
	rss1 := rssKB()
	fmt.Printf("RESULT bench=idle impl=go spawn_ms=%.1f ready_ms=%.1f bytes_per_actor=%.0f "+
		"rss_before_kb=%d rss_after_kb=%d alive=%d workers=%d\n",
		float64(spawn.Nanoseconds())/1e6, float64(ready.Nanoseconds())/1e6,
		float64(rss1-rss0)*1024/actors, rss0, rss1, runtime.NumGoroutine()-1, runtime.GOMAXPROCS(0))
	close(stop)
}
