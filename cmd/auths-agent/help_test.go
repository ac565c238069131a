package main

import (
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// TestEveryCommandExplainsItself runs `help CMD` for every command: each
// help names the command, ends with an example that starts with auths-agent,
// and states the key URI syntax when the command takes keys and the duration
// format when it has --expires.
func TestEveryCommandExplainsItself(t *testing.T) {
	app := newApp(&cliEnv{getenv: func(string) string { return "" }})
	var walk func(cmds []*cli.Command, path []string)
	n := 0
	walk = func(cmds []*cli.Command, path []string) {
		for _, c := range cmds {
			p := append(append([]string(nil), path...), c.Name)
			n++
			code, out, errs := runCLI(t, nil, append([]string{"help"}, p...)...)
			name := strings.Join(p, " ")
			if code != 0 || errs != "" {
				t.Errorf("help %s: exit %d, stderr %q", name, code, errs)
				continue
			}
			if !strings.Contains(out, "auths-agent "+name+" - ") {
				t.Errorf("help %s does not name the command:\n%s", name, out)
			}
			if !strings.Contains(out, "Example:\n     auths-agent ") {
				t.Errorf("help %s has no example (add one to examples in help.go)", name)
			}
			takesKeys := strings.Contains(c.ArgsUsage, "URI") || findFlag(c.Flags, "key") != nil
			if takesKeys && !strings.Contains(out, "pkcs11:token=LABEL;object=KEY?module-path=") {
				t.Errorf("help %s takes key URIs but does not show their syntax", name)
			}
			if findFlag(c.Flags, "expires") != nil && !strings.Contains(out, "Durations (--expires)") {
				t.Errorf("help %s has --expires but does not say its format", name)
			}
			walk(c.Subcommands, p)
		}
	}
	walk(app.Commands, nil)
	if n < 15 {
		t.Fatalf("walked %d commands, want every command", n)
	}
}

func TestNearestCommand(t *testing.T) {
	cmds := []*cli.Command{{Name: "verify"}, {Name: "said"}, {Name: "show"}, {Name: "import"}, {Name: "secret", Hidden: true}}
	for in, want := range map[string]string{
		"verfy": "verify", "vrify": "verify", "sho": "show", "imprt": "import", "sai": "said",
		"zzzzzz": "", "secre": "", "": "",
	} {
		if got := nearestCommand(cmds, in); got != want {
			t.Errorf("nearestCommand(%q) = %q, want %q", in, got, want)
		}
	}
}
