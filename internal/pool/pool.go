package pool

import "time"

// Pool bounds the goroutines that do slow work handed off by subscription
// handlers: a NATS subscription delivers messages one at a time, so a handler
// that waited on an upstream would stall every message behind it.
//
// Its goroutines are kept for a while after a task (poolIdle) and take the
// next one: a fresh goroutine per task would grow its stack again for every
// call (the HTTP client and JSON decoding run deep), which profiles showed as
// about 4 % of a tools/call's CPU.
type Pool struct {
	slots chan struct{}
	tasks chan func() // unbuffered: a send succeeds only when an idle goroutine waits
}

// poolIdle is how long a pool goroutine waits for another task before it ends.
const poolIdle = 10 * time.Second

// New allows n tasks at once.
func New(n int) *Pool {
	if n < 1 {
		n = 1
	}
	return &Pool{slots: make(chan struct{}, n), tasks: make(chan func())}
}

// Go runs f on a pool goroutine if a slot is free and reports whether it did.
// It never blocks: when the pool is full the caller answers "overloaded" at
// once rather than stalling its subscription.
func (p *Pool) Go(f func()) bool {
	select {
	case p.slots <- struct{}{}:
	default:
		return false
	}
	select {
	case p.tasks <- f: // an idle goroutine takes it
	default:
		go p.run(f)
	}
	return true
}

// run does f, then waits up to poolIdle for the next task. Go took the slot
// of every task; run gives it back when the task is done.
func (p *Pool) run(f func()) {
	var t *time.Timer
	for {
		p.do(f)
		if t == nil {
			t = time.NewTimer(poolIdle)
		} else {
			t.Reset(poolIdle)
		}
		select {
		case f = <-p.tasks:
		case <-t.C:
			return
		}
	}
}

// do runs one task and frees its slot, even if the task panics.
func (p *Pool) do(f func()) {
	defer func() { <-p.slots }()
	f()
}

// InFlight is the number of tasks running now.
func (p *Pool) InFlight() int { return len(p.slots) }
