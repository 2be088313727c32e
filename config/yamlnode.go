package config

import (
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// This file reads yaml.Node trees by hand rather than decoding into structs, so
// that every error can name the exact path in the file and never quote a value
// (yaml's own type errors quote the offending scalar, which may be a secret).

// pair is one key of a YAML mapping and its value.
type pair struct {
	key string
	val *yaml.Node
}

// deref follows YAML aliases (*anchor) to the node they name.
func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// isNull reports an absent value or an explicit null ("key:" with nothing after it).
func isNull(n *yaml.Node) bool {
	n = deref(n)
	return n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// pairs lists a mapping's keys in file order. Merge keys ("<<: *base") are
// expanded; keys written in the mapping itself win over merged ones.
func pairs(n *yaml.Node) []pair {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	var own, merged []pair
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), n.Content[i+1]
		if k.Tag == "!!merge" {
			src := deref(v)
			if src.Kind == yaml.SequenceNode {
				// Each source once: [*a, *a, ...] at every level of a chain
				// of merges would grow exponentially (a "merge bomb").
				done := map[*yaml.Node]bool{}
				for _, m := range src.Content {
					if dm := deref(m); !done[dm] {
						done[dm] = true
						merged = append(merged, pairs(dm)...)
					}
				}
			} else {
				merged = append(merged, pairs(src)...)
			}
			continue
		}
		own = append(own, pair{key: k.Value, val: v})
	}
	seen := make(map[string]bool, len(own))
	for _, p := range own {
		seen[p.key] = true
	}
	out := own
	for _, p := range merged {
		if !seen[p.key] {
			seen[p.key] = true
			out = append(out, p)
		}
	}
	return out
}

// isMapping reports whether n is a mapping.
func isMapping(n *yaml.Node) bool {
	n = deref(n)
	return n != nil && n.Kind == yaml.MappingNode
}

// str reads a scalar as a string; ok is false for null or after an error.
func (p *problems) str(path string, n *yaml.Node) (string, bool) {
	if isNull(n) {
		return "", false
	}
	n = deref(n)
	if n.Kind != yaml.ScalarNode {
		p.errorf(path, "must be a string")
		return "", false
	}
	return n.Value, true
}

// strList reads a list of scalars.
func (p *problems) strList(path string, n *yaml.Node) []string {
	if isNull(n) {
		return nil
	}
	n = deref(n)
	if n.Kind != yaml.SequenceNode {
		p.errorf(path, "must be a list of strings")
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for i, item := range n.Content {
		s, ok := p.str(path+"["+strconv.Itoa(i)+"]", item)
		if ok {
			out = append(out, s)
		}
	}
	return out
}

// strMap reads a mapping of scalars.
func (p *problems) strMap(path string, n *yaml.Node) map[string]string {
	if isNull(n) {
		return nil
	}
	if !isMapping(n) {
		p.errorf(path, "must be a mapping of strings")
		return nil
	}
	ps := pairs(n)
	out := make(map[string]string, len(ps))
	for _, kv := range ps {
		if s, ok := p.str(path+"."+kv.key, kv.val); ok {
			out[kv.key] = s
		}
	}
	return out
}

// scopes reads OAuth2 scopes as a list or one space-separated string.
func (p *problems) scopes(path string, n *yaml.Node) []string {
	if !isNull(n) && deref(n).Kind == yaml.ScalarNode {
		return strings.Fields(deref(n).Value)
	}
	return p.strList(path, n)
}

// count reads a non-negative whole number.
func (p *problems) count(path string, n *yaml.Node) int {
	s, ok := p.str(path, n)
	if !ok {
		return 0
	}
	v, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || v < 0 {
		p.errorf(path, "must be a whole number, 0 or more")
		return 0
	}
	return v
}

// boolean reads true/false, or a string (possibly an environment reference)
// that strconv.ParseBool accepts.
func (p *problems) boolean(path string, n *yaml.Node, env LookupEnv) bool {
	s, ok := p.str(path, n)
	if !ok {
		return false
	}
	s, ferr := resolve(path, s, env)
	if ferr != nil {
		p.add(*ferr)
		return false
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		p.errorf(path, "must be true or false")
		return false
	}
	return b
}
