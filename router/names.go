package router

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strings"
)

// Names of aggregated tools and prompts (docs/AGGREGATION.md). A client sees
// prefix+separator+name, where prefix is the server's alias or name. The
// result stays within [A-Za-z0-9_.-] and maxNameLen characters:
//
//   - prefix and separator (the operator's choice) have any other character
//     replaced by '_';
//   - a tool name with any other character gets those replaced by '_' and
//     '_' + 8 hex digits of the SHA-256 of the unaltered prefix+separator+name
//     appended, so it never takes the name of a tool that needed no change;
//   - a name longer than maxNameLen keeps its first 55 characters, then '_'
//     and the same 8 hex digits (64 in all).
//
// The same inputs always give the same name. Two (server, name) pairs can
// still meet on one name when one server's prefix+separator starts another's
// (servers "a" and "a-b" with separator "-": tool "b-x" of a and "x" of a-b):
// assign settles that over the whole catalog, in (server, name) order.
const (
	maxNameLen = 64
	hashLen    = 8
)

// pair is one upstream tool or prompt: its server and its bare name.
type pair struct{ server, name string }

func nameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
}

// clean replaces every character outside [A-Za-z0-9_.-] by '_' and reports
// whether it had to. A multi-byte character becomes one '_'.
func clean(s string) (string, bool) {
	ok := true
	for i := 0; i < len(s); i++ {
		if !nameChar(s[i]) {
			ok = false
			break
		}
	}
	if ok {
		return s, false
	}
	var b strings.Builder
	for _, r := range s {
		if r < 0x80 && nameChar(byte(r)) {
			b.WriteByte(byte(r))
		} else {
			b.WriteByte('_')
		}
	}
	return b.String(), true
}

func hexHash(s string, n int) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:n]
}

// withHash cuts s so that s + "_" + h fits in maxNameLen and appends it.
func withHash(s, h string) string {
	if keep := maxNameLen - 1 - len(h); len(s) > keep {
		s = s[:keep]
	}
	return s + "_" + h
}

// namespace is the cleaned prefix+separator every name of a server starts with.
func namespace(prefix, sep string) string {
	ns, _ := clean(prefix + sep)
	return ns
}

// exposedName is the name a client sees for name of the server whose
// namespace is ns (prefix and sep as configured, for the hash).
func exposedName(ns, prefix, sep, name string) string {
	n, altered := clean(name)
	full := ns + n
	if !altered && len(full) <= maxNameLen {
		return full
	}
	return withHash(full, hexHash(prefix+sep+name, hashLen))
}

// assign names every pair, settling collisions: pairs in (server, name) order,
// the first keeps its name, each later one gets '_' and a hash of its server
// and name appended (longer hashes if that is taken too). It returns the names
// and the pairs that had to be renamed.
func assign(pairs []pair, nameOf func(pair) string) (map[pair]string, map[string]pair, []pair) {
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].server != pairs[j].server {
			return pairs[i].server < pairs[j].server
		}
		return pairs[i].name < pairs[j].name
	})
	names := make(map[pair]string, len(pairs))
	owner := make(map[string]pair, len(pairs))
	var renamed []pair
	for _, p := range pairs {
		if _, dup := names[p]; dup {
			continue
		}
		n := nameOf(p)
		if _, taken := owner[n]; taken {
			renamed = append(renamed, p)
			h := hexHash(p.server+"\x00"+p.name, 32)
			for l := hashLen; ; l += 4 {
				c := withHash(n, h[:l])
				if _, taken := owner[c]; !taken || l >= len(h) {
					n = c
					break
				}
			}
		}
		names[p] = n
		owner[n] = p
	}
	return names, owner, renamed
}

// ambiguous reports whether two namespaces of a view could give one name: one
// is a prefix of the other. Only then does naming need whole catalogs.
func ambiguous(namespaces []string) bool {
	for i, a := range namespaces {
		for j, b := range namespaces {
			if i != j && strings.HasPrefix(b, a) {
				return true
			}
		}
	}
	return false
}
