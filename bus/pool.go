package bus

// Pool bounds the goroutines that do slow work handed off by subscription
// handlers: a NATS subscription delivers messages one at a time, so a handler that
// waited on an upstream would stall every message behind it.
type Pool struct{ slots chan struct{} }

// NewPool allows n tasks at once.
func NewPool(n int) *Pool {
	if n < 1 {
		n = 1
	}
	return &Pool{slots: make(chan struct{}, n)}
}

// Go runs f on a new goroutine if a slot is free and reports whether it did. It
// never blocks: when the pool is full the caller answers "overloaded" at once
// rather than stalling its subscription.
func (p *Pool) Go(f func()) bool {
	select {
	case p.slots <- struct{}{}:
	default:
		return false
	}
	go func() {
		defer func() { <-p.slots }()
		f()
	}()
	return true
}

// InFlight is the number of tasks running now.
func (p *Pool) InFlight() int { return len(p.slots) }
