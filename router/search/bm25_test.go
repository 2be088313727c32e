package search

import (
	"fmt"
	"slices"
	"testing"
)

func TestTokensSplitsNamesAndStems(t *testing.T) {
	cases := map[string][]string{
		"github-create_issue":                     {"github", "create", "issue"},
		"listPullRequests":                        {"list", "pull", "request"},
		"HTTPServer.getURLForID":                  {"http", "server", "get", "url", "id"},
		"db.query-rows":                           {"db", "query", "row"},
		"Create an issue in the repo":             {"create", "issue", "repo"},
		"search repositories, branches and boxes": {"search", "repository", "branch", "box"},
		"a b  x":       nil,
		"status class": {"status", "class"},
		"Größe ändern": {"größe", "ändern"},
	}
	for in, want := range cases {
		if got := Tokens(in); !slices.Equal(got, want) {
			t.Errorf("Tokens(%q) = %q, want %q", in, got, want)
		}
	}
}

// catalogue is n tools of several servers, with github-create_issue among them.
func catalogue(n int) []Doc {
	verbs := []string{"list", "get", "update", "delete", "search", "archive"}
	things := []string{"file", "branch", "commit", "comment", "label", "user", "page", "row", "ticket", "message"}
	servers := []string{"github", "jira", "slack", "notion", "postgres"}
	docs := []Doc{{Name: "github-create_issue", Description: "Create a new issue in a GitHub repository.",
		Schema: "owner repository owner repo repository name title issue title body issue body"}}
	for i := 0; len(docs) < n; i++ {
		s, v, th := servers[i%len(servers)], verbs[i/len(servers)%len(verbs)], things[i/(len(servers)*len(verbs))%len(things)]
		docs = append(docs, Doc{
			Name:        fmt.Sprintf("%s-%s_%s_%d", s, v, th, i),
			Description: fmt.Sprintf("%s a %s in %s.", v, th, s),
			Schema:      "id the " + th + " id",
		})
	}
	return docs
}

func TestSearchRanksTheRelevantToolFirst(t *testing.T) {
	docs := catalogue(100)
	ix := New(docs)
	for _, q := range []string{"create a github issue", "open new issue", "Create Issue"} {
		hits := ix.Search(q, 5)
		if len(hits) == 0 || docs[hits[0].Doc].Name != "github-create_issue" {
			t.Fatalf("Search(%q) = %v, want github-create_issue first", q, names(docs, hits))
		}
	}
	if hits := ix.Search("the and of", 5); len(hits) != 0 {
		t.Fatalf("a query of stop words matched %v", names(docs, hits))
	}
	if hits := ix.Search("zebra", 5); len(hits) != 0 {
		t.Fatalf("an unknown word matched %v", names(docs, hits))
	}
}

func TestSearchWeighsNameOverDescriptionOverSchema(t *testing.T) {
	docs := []Doc{
		{Name: "in_schema", Description: "does things", Schema: "widget the widget"},
		{Name: "in_description", Description: "makes a widget", Schema: "x"},
		{Name: "widget_maker", Description: "does things", Schema: "x"},
	}
	got := names(docs, New(docs).Search("widget", 0))
	if want := []string{"widget_maker", "in_description", "in_schema"}; !slices.Equal(got, want) {
		t.Fatalf("ranking = %q, want %q", got, want)
	}
}

func TestSearchIsDeterministicWithTiesByName(t *testing.T) {
	docs := []Doc{{Name: "c_tool", Description: "send mail"}, {Name: "a_tool", Description: "send mail"}, {Name: "b_tool", Description: "send mail"}}
	for range 20 {
		got := names(docs, New(docs).Search("mail send", 2))
		if want := []string{"a_tool", "b_tool"}; !slices.Equal(got, want) {
			t.Fatalf("ranking = %q, want %q (equal scores by name, limit 2)", got, want)
		}
	}
}

func names(docs []Doc, hits []Hit) []string {
	var out []string
	for _, h := range hits {
		out = append(out, docs[h.Doc].Name)
	}
	return out
}

func BenchmarkSearch500(b *testing.B) {
	ix := New(catalogue(500))
	b.ReportAllocs()
	for b.Loop() {
		if len(ix.Search("create a github issue", 10)) == 0 {
			b.Fatal("no hits")
		}
	}
}

func BenchmarkIndex500(b *testing.B) {
	docs := catalogue(500)
	b.ReportAllocs()
	for b.Loop() {
		New(docs)
	}
}

// A word said twice in a query counts once: repeating it cannot push the
// tools that have it past better matches.
func TestSearchCountsAQueryWordOnce(t *testing.T) {
	docs := catalogue(100)
	ix := New(docs)
	once, thrice := ix.Search("create issue", 0), ix.Search("issue create issue issue", 0)
	if len(once) == 0 || !slices.Equal(once, thrice) {
		t.Fatalf("Search(create issue) = %v, Search(issue create issue issue) = %v: want the same", names(docs, once), names(docs, thrice))
	}
}
