package bus

import (
	"net/http"
	"strconv"
	"strings"
)

// LLM limits and spend (docs/LLM.md, "Limits and spend"): LiteLLM's
// tpm_limit, max_budget and budget_duration on keys and teams, and
// model_max_budget, model_rpm_limit and model_tpm_limit on keys. The LLM
// router asks auth to admit a request for a model before it routes it
// (SubjectLLMAdmit), and tells auth what the answer spent
// (SubjectLLMSpend): tokens, counted per minute with the rpm counters
// (StreamRateCounters), and cost, counted per budget period in
// StreamSpend. Both carry the caller's envelope; auth reads the limits
// from the key and team records it holds.
const (
	SubjectLLMAdmit = Root + ".auth.llm.admit"
	SubjectLLMSpend = Root + ".auth.llm.spend"
	// SubjectLLMAll matches both, for auth to serve.
	SubjectLLMAll = Root + ".auth.llm.*"

	// StreamSpend holds the spend counters (JetStream distributed
	// counters, in nano-dollars), one subject per key, team or key and
	// model and budget period (SpendCounterSubject).
	StreamSpend      = "MCPBUS_SPEND"
	SubjectSpend     = Root + ".spend"
	SubjectSpendAll  = SubjectSpend + ".>"
	NanoDollarsInUSD = 1e9
)

// SpendCounterSubject is the spend counter of scope ("key", "team",
// "key-model") and id in budget period (a decimal index, or "all").
func SpendCounterSubject(scope, id, period string) string {
	return SubjectSpend + "." + scope + "." + id + "." + period
}

// CounterToken makes s (a model group's name) one subject token: itself
// when it is one, else with other characters as '_' and, when long, a hash.
func CounterToken(s string) string { return usageToken(s, "_") }

// LLMUsageServer is the server part of an LLM call's usage event and
// subject (UsageSubject): no MCP server can have the name, which must
// start with a letter or digit. Its tool part is the model group.
const LLMUsageServer = "_llm"

// LLMUsageMethod is the method of a chat completions call's usage event.
const LLMUsageMethod = "chat.completions"

// LLMAdmitRequest is the body of SubjectLLMAdmit: the model group asked.
// The answer is empty, or an error: ErrRateLimited (tpm_limit,
// model_rpm_limit, model_tpm_limit, with RetryAfter) or ErrBudgetExceeded.
type LLMAdmitRequest struct {
	Model string `json:"model"`
}

// LLMSpendRequest is the body of SubjectLLMSpend: what one answer of model
// cost.
type LLMSpendRequest struct {
	Model            string  `json:"model"`
	PromptTokens     int     `json:"prompt_tokens"`
	CompletionTokens int     `json:"completion_tokens"`
	Cost             float64 `json:"cost"`
}

// ModelBudget is one model's budget on a key (model_max_budget).
type ModelBudget struct {
	BudgetLimit float64 `json:"budget_limit"`
	// TimePeriod is a duration ("30d"; "" = the key's whole life).
	TimePeriod string `json:"time_period,omitempty"`
}

// ErrBudgetExceeded: a key's or team's budget (max_budget,
// model_max_budget) is spent; LiteLLM's 429 without Retry-After, since
// waiting does not help until the budget period ends.
var ErrBudgetExceeded = Kind{"MCPBUS_BUDGET_EXCEEDED", -32040, http.StatusTooManyRequests, http.StatusTooManyRequests}

// HeaderLLMUsage, on a worker's answer, is the tokens the answer took:
// "<prompt> <completion>".
const HeaderLLMUsage = "Mcpbus-Llm-Usage"

// FormatLLMUsage and ParseLLMUsage write and read HeaderLLMUsage.
func FormatLLMUsage(prompt, completion int) string {
	return strconv.Itoa(prompt) + " " + strconv.Itoa(completion)
}

func ParseLLMUsage(v string) (prompt, completion int, ok bool) {
	a, b, found := strings.Cut(v, " ")
	if !found {
		return 0, 0, false
	}
	p, err1 := strconv.Atoi(a)
	c, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || p < 0 || c < 0 {
		return 0, 0, false
	}
	return p, c, true
}
