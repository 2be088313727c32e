package search

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Tokens splits text into the index's words: at anything that is not a
// letter or a digit (snake_case, dots, dashes, spaces, punctuation), and
// inside a word at case changes (camelCase, and "HTTPServer" as "http",
// "server"); then lower-cased, light-stemmed (plural forms: "issues" is
// "issue", "repositories" "repository"), with common English words and
// one-letter words left out. A query and a document are split the same way.
func Tokens(text string) []string {
	var out []string
	start := -1
	var prev, prev2 rune
	emit := func(end int) {
		if start >= 0 {
			if t := normalize(text[start:end]); t != "" {
				out = append(out, t)
			}
		}
		start = -1
	}
	for i, r := range text {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			emit(i)
			prev, prev2 = 0, 0
			continue
		}
		if start >= 0 {
			switch {
			case unicode.IsUpper(r) && unicode.IsLower(prev):
				// fooBar: a new word at B
				emit(i)
			case unicode.IsLower(r) && unicode.IsUpper(prev) && unicode.IsUpper(prev2):
				// HTTPServer: the new word starts at S, the upper case before r
				emit(i - utf8.RuneLen(prev))
				start = i - utf8.RuneLen(prev)
			}
		}
		if start < 0 {
			start = i
		}
		prev2, prev = prev, r
	}
	emit(len(text))
	return out
}

// normalize is one word as indexed: lower case, stemmed; "" to leave it out.
func normalize(w string) string {
	w = strings.ToLower(w)
	if utf8.RuneCountInString(w) < 2 || stopWords[w] {
		return ""
	}
	return stem(w)
}

// stem folds plural forms onto the singular. It is deliberately small: it
// must never make two unrelated words one.
func stem(w string) string {
	n := len(w)
	switch {
	case n > 4 && strings.HasSuffix(w, "ies"):
		return w[:n-3] + "y"
	case n > 4 && (strings.HasSuffix(w, "ches") || strings.HasSuffix(w, "shes") || strings.HasSuffix(w, "sses") || strings.HasSuffix(w, "xes")):
		return w[:n-2]
	case n > 3 && strings.HasSuffix(w, "s") && !strings.HasSuffix(w, "ss") && !strings.HasSuffix(w, "us") && !strings.HasSuffix(w, "is"):
		return w[:n-1]
	}
	return w
}

// stopWords are words too common to tell tools apart.
var stopWords = map[string]bool{
	"an": true, "and": true, "are": true, "as": true, "at": true, "be": true, "by": true,
	"can": true, "do": true, "for": true, "from": true, "has": true, "have": true, "how": true,
	"if": true, "in": true, "into": true, "is": true, "it": true, "its": true, "me": true,
	"my": true, "of": true, "on": true, "or": true, "should": true, "some": true, "than": true,
	"that": true, "the": true, "their": true, "them": true, "then": true, "there": true,
	"these": true, "this": true, "to": true, "was": true, "we": true, "what": true, "when": true,
	"which": true, "will": true, "with": true, "you": true, "your": true, "want": true, "need": true,
	"please": true, "tool": true,
}
