package bus

import "slices"

// The subject lists the roles' permissions are built from (natsauth_roles.go):
// following, owning, creating and reading buckets and streams, and serving
// servers.

// serving is what serving servers (none: every server) takes besides the
// buckets: their requests, cancellations and client answers; sending, as
// them only, notifications and messages for clients; recording their usage
// and their audit records (audit.go).
func serving(servers []string) (pub, sub []string) {
	pub = []string{jsStreamInfo(StreamUsage)}
	sub = []string{SubjectCancel, SubjectCancelRequest, SubjectSessionClosed, RecallSubject("*"), microAll}
	names := servers
	if len(names) == 0 {
		names = []string{"*"}
	}
	for _, n := range names {
		pub = append(pub, NotifySubject(n), ClientSubject(StreamSubject("*", "*"), n), ReplyFrom(n), ClientSubject(SessionSubject("*"), n),
			usageOfServer(n), auditOfServer(n))
		sub = append(sub, ToolRPC(n), ToolInfo(n), NotifySubject(n), ServerRequestSubjects(n, "*"), ToolOAuthStart(n), ToolOAuthFinish(n), ToolOAuthExchange(n))
	}
	return pub, sub
}

// kvFollower: read a bucket (all of it, or the named keys only) the way
// FollowKV does: subscriptions to its subjects and gets, no consumer. Only
// the servers bucket (registry-written) is read with direct gets, keyed by
// subject; other buckets with MSG.GET, which cannot be limited to keys
// (msgget.go says why not direct gets).
func kvFollower(bucket string, keys []string) (pub, sub []string) {
	stream := KVStream(bucket)
	pub = []string{jsStreamInfo(stream)}
	if !directReadable(bucket) {
		pub = append(pub, jsMsgGet(stream))
		if len(keys) == 0 {
			return pub, []string{KVSubject(bucket, ">")}
		}
		for _, k := range keys {
			sub = append(sub, KVSubject(bucket, k))
		}
		return pub, sub
	}
	if len(keys) == 0 {
		return append(pub, jsDirectGet(stream), jsDirectGetLast(stream, ">")), []string{KVSubject(bucket, ">")}
	}
	for _, k := range keys {
		pub = append(pub, jsDirectGetLast(stream, KVSubject(bucket, k)))
		sub = append(sub, KVSubject(bucket, k))
	}
	return pub, sub
}

// streamReader: read a stream with MSG.GET (usage_read.go; msgget.go says
// why not direct gets).
func streamReader(stream string) []string {
	return []string{jsStreamInfo(stream), jsMsgGet(stream)}
}

// kvOwner: create, read, watch and write a bucket (trusted roles only).
func kvOwner(buckets ...string) []string {
	var out []string
	for _, b := range buckets {
		out = append(out, streamOwner(KVStream(b))...)
		out = append(out, KVSubject(b, ">"))
	}
	return out
}

// streamCreator: create or update a stream, and look it up.
func streamCreator(stream string) []string {
	return []string{jsStreamInfo(stream), jsStreamCreate(stream), jsStreamUpdate(stream)}
}

// streamOwner: look a stream up, read it directly and through consumers of
// one's own, create and update it (trusted roles only).
func streamOwner(stream string) []string {
	return append(streamCreator(stream),
		jsMsgGet(stream), jsDirectGet(stream), jsDirectGetLast(stream, ">"),
		jsConsumer("CREATE", stream), jsConsumer("CREATE", stream)+".>",
		jsConsumer("DURABLE.CREATE", stream)+".>", jsConsumer("INFO", stream)+".>",
		jsConsumer("DELETE", stream)+".>", jsConsumer("MSG.NEXT", stream)+".>", jsAck(stream)+".>")
}

func dedupe(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}
