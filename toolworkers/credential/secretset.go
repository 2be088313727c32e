package credential

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/mcpbus/mcpbus/bus"
)

// secretSet is a fixed set of values in every form they may take.
type secretSet struct {
	forms   []string // every form, longest first
	json    [][]byte // the forms JSON text can hold (no raw '"', '\' or control byte), longest first
	detect  [][]byte // the json forms that hold no other: enough to tell if any is there
	numeric [][]byte // json forms a JSON number could hold
	first   [256]bool
}

// newSecretSet builds the set of values (those shorter than minSecretLen are
// left out); nil when none is left.
func newSecretSet(values []string) *secretSet {
	seen := map[string]bool{}
	inJSON := map[string]bool{} // forms JSON text can hold
	set := &secretSet{}
	addForm := func(f string, json bool) {
		if !seen[f] {
			seen[f] = true
			set.forms = append(set.forms, f)
		}
		inJSON[f] = inJSON[f] || json
	}
	for _, v := range values {
		if len(v) < minSecretLen {
			continue
		}
		addForm(v, jsonSafe(v))
		for _, f := range jsonForms(v) {
			addForm(f, true)
			if strings.Contains(f, `\`) { // JSON text inside a JSON string
				for _, g := range jsonForms(f) {
					addForm(g, true)
				}
			}
		}
	}
	if len(set.forms) == 0 {
		return nil
	}
	slices.SortStableFunc(set.forms, func(a, b string) int { return len(b) - len(a) })
	for _, f := range set.forms {
		if !inJSON[f] {
			continue
		}
		set.json = append(set.json, []byte(f))
		set.first[f[0]] = true
		if strings.Trim(f, "0123456789.eE+-") == "" {
			set.numeric = append(set.numeric, []byte(f))
		}
	}
	for i, f := range set.json {
		redundant := false
		for _, g := range set.json[i+1:] {
			if len(g) < len(f) && bytes.Contains(f, g) {
				redundant = true
				break
			}
		}
		if !redundant {
			set.detect = append(set.detect, f)
		}
	}
	return set
}

// present reports whether b holds any value.
func (set *secretSet) present(b []byte) bool {
	for _, d := range set.detect {
		if bytes.Contains(b, d) {
			return true
		}
	}
	return false
}

// at is the length of the value that starts at b[i], or 0.
func (set *secretSet) at(b []byte, i int) int {
	if !set.first[b[i]] {
		return 0
	}
	for _, f := range set.json {
		if bytes.HasPrefix(b[i:], f) {
			return len(f)
		}
	}
	return 0
}

func (set *secretSet) starts() *[256]bool { return &set.first }

func (set *secretSet) inNumber(tok []byte) bool {
	for _, f := range set.numeric {
		if bytes.Contains(tok, f) {
			return true
		}
	}
	return false
}

func (set *secretSet) text(msg string) string {
	if set == nil {
		return msg
	}
	for _, f := range set.forms {
		if strings.Contains(msg, f) {
			msg = strings.ReplaceAll(msg, f, bus.Redacted)
		}
	}
	return msg
}

// jsonSafe reports whether s can appear as is in JSON text: a raw '"', '\'
// or control byte cannot be inside a string, so it would match structure.
func jsonSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' || c < 0x20 {
			return false
		}
	}
	return true
}

// jsonEscapes says which optional escapes an encoder uses.
type jsonEscapes struct {
	slash    bool // '/' as \/
	html     bool // <, >, & (and U+2028, U+2029) as \u003c...
	nonASCII bool // every rune past 0x7f as \uXXXX (surrogate pairs past 0xffff)
	upper    bool // upper-case hex digits in \u escapes
}

// jsonForms is v as each combination of escapes writes it inside a JSON
// string, without the quotes.
func jsonForms(v string) []string {
	var out []string
	for i := range 16 {
		f := escapeJSON(v, jsonEscapes{slash: i&1 != 0, html: i&2 != 0, nonASCII: i&4 != 0, upper: i&8 != 0})
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

func escapeJSON(v string, e jsonEscapes) string {
	var b strings.Builder
	u := func(r rune) {
		h := strconv.FormatInt(int64(r), 16)
		if e.upper {
			h = strings.ToUpper(h)
		}
		b.WriteString(`\u` + strings.Repeat("0", 4-len(h)) + h)
	}
	for i := 0; i < len(v); {
		r, size := utf8.DecodeRuneInString(v[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteByte(v[i]) // not UTF-8: as the bytes came
			i++
			continue
		}
		i += size
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '/' && e.slash:
			b.WriteString(`\/`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20:
			u(r)
		case (r == '<' || r == '>' || r == '&') && e.html:
			u(r)
		case (r == 0x2028 || r == 0x2029) && (e.html || e.nonASCII):
			u(r)
		case r > 0x7f && e.nonASCII:
			if r > 0xffff {
				r1, r2 := utf16Pair(r)
				u(r1)
				u(r2)
			} else {
				u(r)
			}
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func utf16Pair(r rune) (rune, rune) {
	r -= 0x10000
	return 0xd800 + (r>>10)&0x3ff, 0xdc00 + r&0x3ff
}

// matcher finds values in JSON text for scrubJSON.
type matcher interface {
	// starts marks the bytes a value can start with.
	starts() *[256]bool
	// at is the length of a value that starts at b[i] (inside a string), or 0.
	at(b []byte, i int) int
	// inNumber reports whether a JSON number token holds a value.
	inNumber(tok []byte) bool
}

// scrubJSON replaces what m finds inside the strings of JSON text b by
// bus.Redacted, and a number that holds a value by the string "[redacted]".
// It never looks inside an escape sequence, so the text stays valid JSON.
// b itself is returned when nothing was found.
func scrubJSON(b []byte, m matcher) []byte {
	var out []byte
	done := 0
	replace := func(from, to int, with []byte) {
		if out == nil {
			out = make([]byte, 0, len(b))
		}
		out = append(append(out, b[done:from]...), with...)
		done = to
	}
	stop := *m.starts() // in a string: where a value, an escape or the end may be
	stop['"'], stop['\\'] = true, true
	inString := false
	for i := 0; i < len(b); {
		if inString {
			for i < len(b) && !stop[b[i]] {
				i++
			}
			if i == len(b) {
				break
			}
		}
		c := b[i]
		switch {
		case inString:
			if n := m.at(b, i); n > 0 {
				replace(i, i+n, redactedBytes)
				i += n
				continue
			}
			switch {
			case c == '"':
				inString = false
				i++
			case c == '\\' && i+1 < len(b) && b[i+1] == 'u':
				i += 6
			case c == '\\':
				i += 2
			default:
				i++
			}
		case c == '"':
			inString = true
			i++
		case c == '-' || c >= '0' && c <= '9':
			j := i + 1
			for j < len(b) && strings.IndexByte("0123456789.eE+-", b[j]) >= 0 {
				j++
			}
			if m.inNumber(b[i:j]) {
				replace(i, j, redactedString)
			}
			i = j
		default:
			i++
		}
	}
	if out == nil {
		return b
	}
	return append(out, b[done:]...)
}
