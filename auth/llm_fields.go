package auth

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"

	"github.com/mcpbus/mcpbus/bus"
)

// Applying the LLM limits of a key or team write (bus/llm_limits.go):
// tpm_limit, max_budget, budget_duration, and for keys model_max_budget,
// model_rpm_limit and model_tpm_limit. Model maps are bounded like models
// lists (MaxModelEntries names of at most MaxModelEntry characters).

// applyLLMLimits sets the LLM limits present in f on l.
func applyLLMLimits(f bus.CommonFields, l *bus.LLMLimits) *bus.Error {
	if f.TPMLimit != nil {
		if *f.TPMLimit < 0 {
			return bus.Errorf(bus.ErrBadRequest, "tpm_limit: must be 0 (no limit) or more")
		}
		l.TPMLimit = *f.TPMLimit
	}
	if raw := bytes.TrimSpace(f.MaxBudget); len(raw) > 0 {
		if string(raw) == "null" {
			l.MaxBudget = nil
		} else {
			var v float64
			if json.Unmarshal(raw, &v) != nil || v < 0 || math.IsInf(v, 0) {
				return bus.Errorf(bus.ErrBadRequest, "max_budget: must be a number of USD, 0 or more (null: no budget)")
			}
			l.MaxBudget = &v
		}
	}
	if f.BudgetDuration != nil {
		if *f.BudgetDuration != "" {
			if e := checkPeriod("budget_duration", *f.BudgetDuration); e != nil {
				return e
			}
		}
		l.BudgetDuration = strings.TrimSpace(*f.BudgetDuration)
	}
	return nil
}

// applyModelLimits sets a key's per-model limits present in f on rec.
func applyModelLimits(f bus.KeyFields, rec *bus.KeyRecord) *bus.Error {
	if f.ModelMaxBudget != nil {
		if e := checkModelNames("model_max_budget", len(*f.ModelMaxBudget), keysOf(*f.ModelMaxBudget)); e != nil {
			return e
		}
		for m, b := range *f.ModelMaxBudget {
			if b.BudgetLimit < 0 || math.IsInf(b.BudgetLimit, 0) || math.IsNaN(b.BudgetLimit) {
				return bus.Errorf(bus.ErrBadRequest, "model_max_budget.%s.budget_limit: must be a number of USD, 0 or more", bus.Shorten(m, 64))
			}
			if b.TimePeriod != "" {
				if e := checkPeriod("model_max_budget."+bus.Shorten(m, 64)+".time_period", b.TimePeriod); e != nil {
					return e
				}
			}
		}
		rec.ModelMaxBudget = nilIfEmpty(*f.ModelMaxBudget)
	}
	for _, mp := range []struct {
		field string
		in    *map[string]int
		out   *map[string]int
	}{{"model_rpm_limit", f.ModelRPMLimit, &rec.ModelRPMLimit}, {"model_tpm_limit", f.ModelTPMLimit, &rec.ModelTPMLimit}} {
		if mp.in == nil {
			continue
		}
		if e := checkModelNames(mp.field, len(*mp.in), keysOf(*mp.in)); e != nil {
			return e
		}
		for m, n := range *mp.in {
			if n < 0 {
				return bus.Errorf(bus.ErrBadRequest, "%s.%s: must be 0 (no limit) or more", mp.field, bus.Shorten(m, 64))
			}
		}
		*mp.out = nilIfEmpty(*mp.in)
	}
	return nil
}

func checkPeriod(field, v string) *bus.Error {
	if _, e := parseDuration(v); e != nil {
		return bus.Errorf(bus.ErrBadRequest, "%s: %s", field, strings.TrimPrefix(e.Message, "duration: "))
	}
	return nil
}

func checkModelNames(field string, n int, names []string) *bus.Error {
	if n > MaxModelEntries {
		return bus.Errorf(bus.ErrBadRequest, "%s: %d models; at most %d", field, n, MaxModelEntries)
	}
	for _, m := range names {
		if m == "" || len(m) > MaxModelEntry || !bus.ValidHeaderValue(m) {
			return bus.Errorf(bus.ErrBadRequest, "%s: %q is not a model name (1-%d printable characters)", field, bus.Shorten(m, 64), MaxModelEntry)
		}
	}
	return nil
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func nilIfEmpty[V any](m map[string]V) map[string]V {
	if len(m) == 0 {
		return nil
	}
	return m
}
