package registry

import (
	"encoding/json"
	"strings"

	"github.com/mcpbus/mcpbus/bus"
)

// keepOperations carries the operations state of the stored record (drain,
// canary: the fields bus.ServerFields marks Operation) into the file's
// server when the file does not set it, so a restart does not undo an
// operator's drain or canary. Where the file sets it, the file wins: drain
// when it says true, the canary (url, command, args and percent together)
// when it names any canary field. stored is the record as stored (its
// canary_url possibly sealed, which Seal keeps as it is).
func keepOperations(file *bus.ServerSpec, stored []byte) {
	var cur bus.ServerSpec
	if json.Unmarshal(stored, &cur) != nil || cur.Name != file.Name {
		return
	}
	fileCanary := false
	for _, f := range bus.ServerFields {
		if f.Operation && strings.HasPrefix(f.Name, "canary_") && !isZero(f, file) {
			fileCanary = true
		}
	}
	for _, f := range bus.ServerFields {
		if !f.Operation || !isZero(f, file) || (fileCanary && strings.HasPrefix(f.Name, "canary_")) {
			continue
		}
		copyField(f, file, &cur)
	}
	if file.Transport != "stdio" {
		// A stdio canary of a server the file made another transport means
		// nothing; nor does a URL canary of one it made stdio.
		file.CanaryCommand, file.CanaryArgs = "", nil
	} else {
		file.CanaryURL = ""
	}
	if !file.HasCanary() {
		file.CanaryPercent = 0
	}
}

func isZero(f bus.ServerField, s *bus.ServerSpec) bool {
	switch {
	case f.Str(s) != nil:
		return *f.Str(s) == ""
	case f.List(s) != nil:
		return len(*f.List(s)) == 0
	case f.Bool(s) != nil:
		return !*f.Bool(s)
	case f.Count(s) != nil:
		return *f.Count(s) == 0
	}
	return true
}

func copyField(f bus.ServerField, dst, src *bus.ServerSpec) {
	switch {
	case f.Str(dst) != nil:
		*f.Str(dst) = *f.Str(src)
	case f.List(dst) != nil:
		*f.List(dst) = append([]string(nil), *f.List(src)...)
	case f.Bool(dst) != nil:
		*f.Bool(dst) = *f.Bool(src)
	case f.Count(dst) != nil:
		*f.Count(dst) = *f.Count(src)
	}
}
