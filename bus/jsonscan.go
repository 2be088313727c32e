package bus

import (
	"bytes"
	"encoding/json"
	"unicode"
	"unicode/utf8"
)

// Reading JSON-RPC the way an upstream reads it.
//
// The gateway decides on names it reads from a message (the method, a tool's
// params.name, a resource's params.uri) while the message's bytes go upstream
// unchanged. Go's encoding/json matches object keys ignoring case and keeps
// the last of several, while other readers match exactly and may keep the
// first: {"name":"a","NAME":"b"} is "b" to one and "a" to another. So a
// message whose objects the gateway reads hold a key twice, exactly or
// ignoring case, is refused (ParseMessage), and names are read by exact key
// (Field). The objects the gateway reads are the message itself, params,
// result and error, and params._meta and params.ref; deeper objects (a
// tool's arguments) are the upstream's business and pass untouched.

// checkedObjects names, for each object the gateway reads, the member
// objects it reads too, with how errors call them.
var (
	messageMembers = map[string]string{"params": "params", "result": "result", "error": "error"}
	paramsMembers  = map[string]string{"_meta": "params._meta", "ref": "params.ref"}
)

// checkKeys refuses an object (obj, valid JSON) that holds a key twice, exactly
// or ignoring case, and recurses into the member objects nested names. where
// names obj in the error. A value that is not an object is left alone.
func checkKeys(obj []byte, where string, nested map[string]string) *Error {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return nil
	}
	var seen keySet
	_, e := eachMember(obj, i, func(key, val []byte) *Error {
		if prev, dup := seen.add(key); dup {
			if bytes.Equal(prev, key) {
				return Errorf(ErrInvalidRequest, "invalid request: %s has the key %q more than once", where, Shorten(string(key), 64))
			}
			return Errorf(ErrInvalidRequest, "invalid request: %s has the keys %q and %q, which differ only in case: send one", where, Shorten(string(prev), 64), Shorten(string(key), 64))
		}
		if label, ok := nested[string(key)]; ok {
			var next map[string]string
			if string(key) == "params" {
				next = paramsMembers
			}
			return checkKeys(val, label, next)
		}
		return nil
	})
	return e
}

// Field returns the raw value of key in the JSON object obj, matched exactly
// (case included), as an upstream reading obj would. ok is false when obj is
// not an object or has no such key; ambiguous is true when obj holds the key
// more than once, exactly or ignoring case (ParseMessage refuses such
// messages; a service that reads a field checks again). obj should be valid
// JSON (a part of a message ParseMessage accepted); on anything else Field
// answers something without failing.
func Field(obj []byte, key string) (val json.RawMessage, ok, ambiguous bool) {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return nil, false, false
	}
	_, _ = eachMember(obj, i, func(k, v []byte) *Error {
		if string(k) == key {
			if ok {
				ambiguous = true
			}
			val, ok = v, true
		} else if bytes.EqualFold(k, []byte(key)) {
			ambiguous = true
		}
		return nil
	})
	return val, ok, ambiguous
}

// StringField is Field for a string value: "" with ok false when the key is
// missing or its value is not a string.
func StringField(obj []byte, key string) (s string, ok, ambiguous bool) {
	raw, found, amb := Field(obj, key)
	if !found || len(raw) == 0 || raw[0] != '"' {
		return "", false, amb
	}
	if json.Unmarshal(raw, &s) != nil {
		return "", false, amb
	}
	return s, true, amb
}

// keySet remembers an object's keys, compared as encoding/json compares them
// (bytes.EqualFold: Unicode simple folding, the same sets as encoding/json's
// foldName). Keys are slices of the message being read: no copy for the
// objects of a message, which have a handful of keys.
type keySet struct {
	few  [][]byte          // the first keys, compared one by one
	many map[string][]byte // folded -> key, once there are more
}

// add records key and reports the earlier key it equals, exactly or ignoring
// case, if any.
func (s *keySet) add(key []byte) (prev []byte, dup bool) {
	if s.many == nil {
		for _, k := range s.few {
			if bytes.Equal(k, key) || bytes.EqualFold(k, key) {
				return k, true
			}
		}
		if len(s.few) < 16 {
			if s.few == nil {
				s.few = make([][]byte, 0, 8)
			}
			s.few = append(s.few, key)
			return nil, false
		}
		s.many = make(map[string][]byte, 32)
		for _, k := range s.few {
			s.many[foldKey(string(k))] = k
		}
	}
	f := foldKey(string(key))
	if k, ok := s.many[f]; ok {
		return k, true
	}
	s.many[f] = key
	return nil, false
}

// foldKey maps every key encoding/json would match to the same string: ASCII
// letters upper-cased, other runes to the smallest rune of their simple case
// folding orbit (as encoding/json's own foldName does).
func foldKey(k string) string {
	ascii := true
	for i := 0; i < len(k); i++ {
		if c := k[i]; c >= utf8.RuneSelf || c >= 'a' && c <= 'z' {
			ascii = false
			break
		}
	}
	if ascii {
		return k
	}
	out := make([]byte, 0, len(k))
	for _, r := range k {
		if r < utf8.RuneSelf {
			if r >= 'a' && r <= 'z' {
				r -= 'a' - 'A'
			}
			out = append(out, byte(r))
			continue
		}
		out = utf8.AppendRune(out, foldRune(r))
	}
	return string(out)
}

func foldRune(r rune) rune {
	for {
		r2 := unicode.SimpleFold(r)
		if r2 <= r {
			return r2
		}
		r = r2
	}
}

// eachMember calls f for every member of the object starting at data[i] (a
// '{' of valid JSON) with its unescaped key (a slice of data unless it held
// an escape) and raw value, stopping at the first error; it returns the index
// after the object.
func eachMember(data []byte, i int, f func(key, val []byte) *Error) (int, *Error) {
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return i + 1, nil
	}
	for i < len(data) {
		if data[i] != '"' {
			return len(data), nil // not valid JSON
		}
		end := skipString(data, i)
		key := unquoteBytes(data[i:end])
		i = skipSpace(data, end)
		if i >= len(data) || data[i] != ':' {
			return len(data), nil // not valid JSON
		}
		i = skipSpace(data, i+1)
		if i >= len(data) {
			return len(data), nil
		}
		vend := skipValue(data, i)
		if e := f(key, data[i:vend]); e != nil {
			return vend, e
		}
		i = skipSpace(data, vend)
		if i >= len(data) || data[i] == '}' {
			return i + 1, nil
		}
		if data[i] != ',' {
			return len(data), nil // not valid JSON
		}
		i = skipSpace(data, i+1)
	}
	return i, nil
}

// unquoteBytes is unquote without a copy when the literal has no escape.
func unquoteBytes(lit []byte) []byte {
	if len(lit) < 2 {
		return nil
	}
	inner := lit[1 : len(lit)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return inner
	}
	return []byte(unquote(lit))
}

// unquote returns the string a JSON string literal (quotes included) holds.
func unquote(lit []byte) string {
	if len(lit) < 2 {
		return ""
	}
	for _, c := range lit[1 : len(lit)-1] {
		if c == '\\' {
			var s string
			_ = json.Unmarshal(lit, &s)
			return s
		}
	}
	return string(lit[1 : len(lit)-1])
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string literal starting at data[i].
func skipString(data []byte, i int) int {
	for i++; i < len(data); i++ {
		switch data[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(data)
}

// skipValue returns the index after the JSON value starting at data[i].
func skipValue(data []byte, i int) int {
	if i >= len(data) {
		return i
	}
	switch data[i] {
	case '"':
		return skipString(data, i)
	case '{', '[':
		depth := 0
		for ; i < len(data); i++ {
			switch data[i] {
			case '"':
				i = skipString(data, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return i
	}
	for i < len(data) && data[i] != ',' && data[i] != '}' && data[i] != ']' && data[i] != ' ' && data[i] != '\t' && data[i] != '\n' && data[i] != '\r' {
		i++
	}
	return i
}
