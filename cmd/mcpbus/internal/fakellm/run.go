package fakellm

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/mcpbus/mcpbus/cmd/mcpbus/internal/localhttp"
)

// Run implements `mcpbus fake-llm`: the fake provider on a loopback address
// until ctx ends, after one line with its base URL on stdout. The key it
// requires, if any, comes from --api-key-env's variable, never a flag.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fake-llm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:3020", "address to listen on (loopback only; port 0 picks a free port)")
	keyEnv := fs.String("api-key-env", "", "require the key in this environment variable, as each wire sends it")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: mcpbus fake-llm [--listen 127.0.0.1:3020] [--api-key-env NAME]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("fake-llm: unexpected arguments %q", fs.Args())
	}
	if err := localhttp.CheckLoopback("fake-llm", *listen, "it is a test fake"); err != nil {
		return err
	}
	s := &Server{}
	if *keyEnv != "" {
		k, ok := os.LookupEnv(*keyEnv)
		if !ok || k == "" {
			return fmt.Errorf("fake-llm: --api-key-env %s: the variable is not set", *keyEnv)
		}
		s.APIKey = k
	}
	return localhttp.ServeAll(ctx, "fake-llm", *listen, s, stdout, "fake LLM provider listening on http://%s (OpenAI /v1, Anthropic /v1/messages, Azure /openai/deployments)")
}
