// interrupt: 2 x GOMAXPROCS busy goroutines each work through an endless stream of
// self-sent messages (a buffered channel of one), ~20 us of CPU per message, while a
// target goroutine waits on a channel. A driver goroutine sends the target a timestamp
// every ~1 ms (5,000 samples, or 10 s at most); the target records now - ts.
// Go has no message priorities; the driver is itself a goroutine competing for a P, so
// driver_late_p99_us shows how late it got to run, and tick_* the latency from the tick.
// Prints: RESULT bench=interrupt impl=go p50_us=... p99_us=... samples=...
package main

import (
	"fmt"
	"runtime"
	"sort"
	"sync"
	"time"
)

const (
	samples = 5000
	period  = time.Millisecond
	maxRun  = 10 * time.Second
	work    = 20 * time.Microsecond
	busyCap = 1000000
)

type ping struct {
	ts, tick time.Time
	last     bool
}

func spin(d time.Duration) {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
	}
}

func busy(stop <-chan struct{}, handled *int64, wg *sync.WaitGroup) {
	defer wg.Done()
	self := make(chan struct{}, 1)
	self <- struct{}{}
	for n := int64(0); n < busyCap; n++ {
		select {
		case <-stop:
			*handled = n
			return
		case <-self:
			spin(work)
			self <- struct{}{}
		}
	}
	*handled = busyCap
}

func pct(v []time.Duration, q float64) float64 {
	if len(v) == 0 {
		return -1
	}
	i := int(q*float64(len(v))+0.5) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(v) {
		i = len(v) - 1
	}
	return float64(v[i].Nanoseconds()) / 1e3
}

func main() {
	procs := runtime.GOMAXPROCS(0)
	nbusy := 2 * procs
	stop := make(chan struct{})
	handled := make([]int64, nbusy)
	var wg sync.WaitGroup
	wg.Add(nbusy)
	for i := 0; i < nbusy; i++ {
		go busy(stop, &handled[i], &wg)
	}

	pings := make(chan ping)
	done := make(chan struct{})
	lat := make([]time.Duration, 0, samples)
	tick := make([]time.Duration, 0, samples)
	go func() { // the target
		for p := range pings {
			now := time.Now()
			lat = append(lat, now.Sub(p.ts))
			tick = append(tick, now.Sub(p.tick))
			if p.last {
				break
			}
		}
		close(stop)
		close(done)
	}()

	late := make([]time.Duration, 0, samples)
	start := time.Now()
	go func() { // the driver
		for i := 0; i < samples; i++ {
			t := start.Add(time.Duration(i+1) * period)
			time.Sleep(time.Until(t))
			now := time.Now()
			late = append(late, now.Sub(t))
			last := i == samples-1 || now.Sub(start) >= maxRun
			pings <- ping{ts: now, tick: t, last: last}
			if last {
				return
			}
		}
	}()
	<-done
	elapsed := time.Since(start)
	wg.Wait()
	var busyMsgs int64
	for _, h := range handled {
		busyMsgs += h
	}
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	sort.Slice(tick, func(a, b int) bool { return tick[a] < tick[b] })
	sort.Slice(late, func(a, b int) bool { return late[a] < late[b] })
	fmt.Printf("RESULT bench=interrupt impl=go p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f "+
		"samples=%d tick_p50_us=%.1f tick_p99_us=%.1f driver_late_p99_us=%.1f elapsed_ms=%.0f "+
		"busy=%d busy_msgs=%d busy_util=%.2f workers=%d\n",
		pct(lat, .5), pct(lat, .99), pct(lat, .999), pct(lat, 1), len(lat),
		pct(tick, .5), pct(tick, .99), pct(late, .99), float64(elapsed.Nanoseconds())/1e6,
		nbusy, busyMsgs, float64(busyMsgs)*float64(work.Nanoseconds())/(float64(elapsed.Nanoseconds())*float64(procs)), procs)
}
