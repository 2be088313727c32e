package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// mcpbus's state on the bus is its KV buckets and the usage stream. Every
// service that creates one goes through EnsureKV or EnsureStream, so one
// setting (general_settings.nats_replicas, serve --nats-replicas) decides how
// many copies JetStream keeps of each, and no service start ever lowers what
// an operator raised by hand: replicas, history, byte and age limits only go
// up here.

// Replicas is the replica count mcpbus asks for: 1 to MaxReplicas, or 0
// (AutoReplicas) for 3 on a NATS cluster of 3 or more servers and 1
// otherwise (the embedded single node).
type Replicas int

const (
	AutoReplicas Replicas = 0
	MaxReplicas           = 5
)

// StatePolicy is how a service creates state: the replicas wanted and where
// to say what it found.
type StatePolicy struct {
	Replicas Replicas
	Log      *slog.Logger
}

// ClusterSize is the number of NATS servers nc knows of: those it was given
// and those the cluster announced (distinct host:port), 1 at least.
func ClusterSize(nc *nats.Conn) int {
	if nc == nil {
		return 1
	}
	seen := map[string]bool{}
	for _, s := range nc.Servers() {
		if u, err := url.Parse(s); err == nil {
			seen[u.Host] = true
		}
	}
	return max(1, len(seen))
}

// want is the replica count to create with on nc, and whether it was chosen
// automatically (then a cluster that cannot place it gets 1 and a warning).
func (p StatePolicy) want(nc *nats.Conn) (n int, auto bool) {
	if p.Replicas > 0 {
		return min(int(p.Replicas), MaxReplicas), false
	}
	if ClusterSize(nc) >= 3 {
		return 3, true
	}
	return 1, true
}

func (p StatePolicy) log() *slog.Logger {
	if p.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Log
}

// EnsureKV creates the bucket cfg describes, or brings an existing one to it
// without lowering anything an operator raised (raiseOnly).
func EnsureKV(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig, p StatePolicy) (kv jetstream.KeyValue, err error) {
	err = p.whileForming(ctx, "kv bucket "+cfg.Bucket, func(ctx context.Context) error {
		kv, err = ensureKV(ctx, js, cfg, p)
		return err
	})
	return kv, err
}

func ensureKV(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig, p StatePolicy) (jetstream.KeyValue, error) {
	n, auto := p.want(js.Conn())
	cfg.Replicas = n
	existing, err := existingStream(ctx, js, KVStream(cfg.Bucket))
	if err != nil {
		return nil, fmt.Errorf("kv bucket %s: %w", cfg.Bucket, err)
	}
	if existing != nil {
		c := *existing
		cfg.Replicas = max(cfg.Replicas, c.Replicas)
		if c.MaxMsgsPerSubject > int64(cfg.History) && c.MaxMsgsPerSubject <= jetstream.KeyValueMaxHistory {
			cfg.History = uint8(c.MaxMsgsPerSubject)
		}
		cfg.MaxBytes = raised(cfg.MaxBytes, c.MaxBytes)
		cfg.MaxValueSize = int32(raised(int64(cfg.MaxValueSize), int64(c.MaxMsgSize)))
		p.warnSingle(js.Conn(), "kv bucket "+cfg.Bucket, cfg.Replicas)
	}
	kv, err := placed(p, "kv bucket "+cfg.Bucket, &cfg.Replicas, auto && existing == nil, func() (jetstream.KeyValue, error) {
		return js.CreateOrUpdateKeyValue(ctx, cfg)
	})
	if err != nil {
		return nil, fmt.Errorf("kv bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// EnsureStream creates the stream cfg describes, or brings an existing one to
// it without lowering its replicas or its byte, message or age limits.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig, p StatePolicy) (s jetstream.Stream, err error) {
	err = p.whileForming(ctx, "stream "+cfg.Name, func(ctx context.Context) error {
		s, err = ensureStream(ctx, js, cfg, p)
		return err
	})
	return s, err
}

func ensureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig, p StatePolicy) (jetstream.Stream, error) {
	n, auto := p.want(js.Conn())
	cfg.Replicas = n
	existing, err := existingStream(ctx, js, cfg.Name)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", cfg.Name, err)
	}
	if existing != nil {
		RaiseOnly(&cfg, *existing)
		p.warnSingle(js.Conn(), "stream "+cfg.Name, cfg.Replicas)
	}
	return placed(p, "stream "+cfg.Name, &cfg.Replicas, auto && existing == nil, func() (jetstream.Stream, error) {
		return js.CreateOrUpdateStream(ctx, cfg)
	})
}

// placed runs create (which reads *replicas). New state whose replica count
// was chosen automatically (fallback) and that the cluster cannot place is
// created again with 1 replica, said in a warning: the next start raises it.
// A store out of space is not a placement problem and fails as it is.
func placed[T any](p StatePolicy, what string, replicas *int, fallback bool, create func() (T, error)) (T, error) {
	v, err := create()
	if err != nil && fallback && *replicas > 1 && !insufficientResources(err) {
		p.log().Warn(what+": cannot place "+fmt.Sprint(*replicas)+" replicas on this NATS cluster; created with 1 (set general_settings.nats_replicas)", "err", err)
		*replicas = 1
		v, err = create()
	}
	return v, err
}

// RaiseOnly keeps in cfg what an existing stream has more of: replicas,
// MaxBytes, MaxMsgs, MaxAge and MaxMsgSize (-1 or 0 meaning no limit).
func RaiseOnly(cfg *jetstream.StreamConfig, existing jetstream.StreamConfig) {
	cfg.Replicas = max(cfg.Replicas, existing.Replicas)
	cfg.MaxBytes = raised(cfg.MaxBytes, existing.MaxBytes)
	cfg.MaxMsgs = raised(cfg.MaxMsgs, existing.MaxMsgs)
	cfg.MaxMsgSize = int32(raised(int64(cfg.MaxMsgSize), int64(existing.MaxMsgSize)))
	if cfg.MaxAge > 0 && (existing.MaxAge == 0 || existing.MaxAge > cfg.MaxAge) {
		cfg.MaxAge = existing.MaxAge
	}
}

// raised is the limit to apply over an existing one: ours when it is larger,
// else theirs (0 or less meaning none, the largest). Where mcpbus sets no
// limit the existing one stays: it is the operator's.
func raised(ours, theirs int64) int64 {
	if ours <= 0 {
		return theirs
	}
	if theirs <= 0 || theirs > ours {
		return theirs
	}
	return ours
}

// existingStream is the stream's configuration, or nil when there is none.
func existingStream(ctx context.Context, js jetstream.JetStream, name string) (*jetstream.StreamConfig, error) {
	s, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	c := s.CachedInfo().Config
	return &c, nil
}

// warnSingle says when state kept once lives on a cluster that could keep it
// three times: losing the one server that holds it loses it.
func (p StatePolicy) warnSingle(nc *nats.Conn, what string, replicas int) {
	if size := ClusterSize(nc); replicas == 1 && size >= 3 {
		p.log().Warn(what+" has 1 replica on a NATS cluster of "+fmt.Sprint(size)+" servers: losing the server that holds it loses it; set general_settings.nats_replicas: 3 (or serve --nats-replicas 3) to raise it",
			"replicas", replicas, "cluster_servers", size)
	}
}

// FormingWait bounds how long a service waits at start for JetStream to
// answer (a cluster electing its leader, a node just lost).
const FormingWait = 2 * time.Minute

// formingTry bounds one try of whileForming: a JetStream API request made
// while a cluster forms may get no answer at all, and one try must not wait
// out the whole FormingWait (or a caller's context without deadline) in
// silence.
const formingTry = 5 * time.Second

// whileForming runs op until it succeeds, fails for good, ctx ends or
// FormingWait passes: JetStream that does not answer yet (no meta leader
// while a cluster forms or after a node is lost) is waited for, said once.
// Each try of op gets at most formingTry.
func (p StatePolicy) whileForming(ctx context.Context, what string, op func(context.Context) error) error {
	deadline := time.Now().Add(FormingWait)
	said := false
	for {
		tctx, cancel := context.WithTimeout(ctx, formingTry)
		err := op(tctx)
		cancel()
		if err == nil || !jetStreamNotReady(err) || ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		if !said {
			p.log().Warn(what+": JetStream does not answer yet (a NATS cluster electing its leader?); waiting up to "+FormingWait.String(), "err", err)
			said = true
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// jetStreamNotReady reports errors of a JetStream that may answer soon.
func jetStreamNotReady(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		// 10008: JetStream system temporarily unavailable; 10074 and 10005:
		// no suitable peers / cluster not available while nodes join.
		return apiErr.ErrorCode == 10008 || apiErr.ErrorCode == 10005 || apiErr.ErrorCode == 10074
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders)
}
