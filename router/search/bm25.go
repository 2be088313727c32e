// Package search ranks tool definitions for a query of words, with no model
// and no network: BM25F over three fields (the name, the description, and the
// words of the input schema: property names and their descriptions), each
// field's term counts weighted before the usual BM25 saturation, so a word in
// a tool's name counts more than the same word in its description, and that
// more than one in its schema. The router's tool search mode uses it
// (router/toolsearch.go, docs/AGGREGATION.md#tool-search).
//
// Ranking is deterministic: equal scores are ordered by name.
package search

import (
	"math"
	"sort"
)

// Doc is one tool as the index sees it.
type Doc struct {
	Name        string
	Description string
	// Schema is the input schema's words: property names and descriptions.
	Schema string
}

// Field weights: a term's count in a document is the weighted sum over
// fields. A name is short and chosen; a description says what the tool does;
// a schema mostly says what it takes.
const (
	WeightName        = 3.0
	WeightDescription = 1.0
	WeightSchema      = 0.5
)

// BM25 parameters, the usual ones.
const (
	k1 = 1.2
	b  = 0.75
)

// maxFieldTokens bounds what one field adds to the index, so one tool with a
// huge description costs its share, not more.
const maxFieldTokens = 2000

type posting struct {
	doc int32
	tf  float32 // weighted over fields
}

// Index is an immutable BM25F index of docs; it is safe for concurrent use.
type Index struct {
	names []string
	lens  []float32 // weighted length of each doc
	avg   float64
	post  map[string][]posting
}

// Hit is one ranked doc: its index in the docs given to New, and its score.
type Hit struct {
	Doc   int
	Score float64
}

// New indexes docs; Hit.Doc refers to their order.
func New(docs []Doc) *Index {
	ix := &Index{names: make([]string, len(docs)), lens: make([]float32, len(docs)), post: map[string][]posting{}}
	var total float64
	tf := map[string]float32{}
	for i, d := range docs {
		ix.names[i] = d.Name
		clear(tf)
		var l float32
		for _, f := range []struct {
			text string
			w    float32
		}{{d.Name, WeightName}, {d.Description, WeightDescription}, {d.Schema, WeightSchema}} {
			toks := Tokens(f.text)
			if len(toks) > maxFieldTokens {
				toks = toks[:maxFieldTokens]
			}
			for _, t := range toks {
				tf[t] += f.w
				l += f.w
			}
		}
		ix.lens[i] = l
		total += float64(l)
		for t, n := range tf {
			ix.post[t] = append(ix.post[t], posting{doc: int32(i), tf: n})
		}
	}
	if len(docs) > 0 {
		ix.avg = total / float64(len(docs))
	}
	if ix.avg == 0 {
		ix.avg = 1
	}
	return ix
}

// Len is the number of docs.
func (ix *Index) Len() int { return len(ix.names) }

// Search ranks the docs that share a word with query, best first, at most
// limit of them (all when limit <= 0). A query word counts once however
// often it is repeated.
func (ix *Index) Search(query string, limit int) []Hit {
	terms := Tokens(query)
	if len(terms) == 0 || len(ix.names) == 0 {
		return nil
	}
	scores := make([]float64, len(ix.names))
	n := float64(len(ix.names))
	matched := 0
	for i, t := range terms {
		if dup(terms[:i], t) {
			continue
		}
		ps := ix.post[t]
		if len(ps) == 0 {
			continue
		}
		df := float64(len(ps))
		idf := math.Log(1 + (n-df+0.5)/(df+0.5))
		for _, p := range ps {
			tf := float64(p.tf)
			norm := k1 * (1 - b + b*float64(ix.lens[p.doc])/ix.avg)
			if scores[p.doc] == 0 {
				matched++
			}
			scores[p.doc] += idf * tf * (k1 + 1) / (tf + norm)
		}
	}
	hits := make([]Hit, 0, matched)
	for d, s := range scores {
		if s > 0 {
			hits = append(hits, Hit{Doc: d, Score: s})
		}
	}
	sort.Slice(hits, func(i, j int) bool {
		if hits[i].Score != hits[j].Score {
			return hits[i].Score > hits[j].Score
		}
		return ix.names[hits[i].Doc] < ix.names[hits[j].Doc]
	})
	if limit > 0 && len(hits) > limit {
		hits = hits[:limit]
	}
	return hits
}

func dup(seen []string, t string) bool {
	for _, s := range seen {
		if s == t {
			return true
		}
	}
	return false
}
