package router

import (
	"fmt"
	"testing"
	"time"
)

// The catalog keeps at most maxIndexes tool search indexes, dropping the one
// built longest ago, and none outlives a change of the catalog.
func TestToolIndexesBoundedAndRetired(t *testing.T) {
	c := newCatalog()
	start := time.Now()
	for i := range maxIndexes + 1 {
		c.keepIndex(fmt.Sprint(i), &toolIndex{at: start.Add(time.Duration(i) * time.Second), gen: c.generation()})
	}
	if len(c.indexes) != maxIndexes || c.index("0") != nil || c.index(fmt.Sprint(maxIndexes)) == nil {
		t.Fatalf("%d indexes kept (want %d), oldest kept: %v", len(c.indexes), maxIndexes, c.index("0") != nil)
	}
	stale := &toolIndex{at: time.Now(), gen: c.generation()}
	c.drop("github", kindTools) // a list_changed
	if c.index("1") != nil {
		t.Fatal("an index outlived a change of the catalog")
	}
	if c.keepIndex("late", stale); c.index("late") != nil {
		t.Fatal("an index built before a change was kept after it")
	}
}
