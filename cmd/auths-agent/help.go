package main

// This file makes the CLI explain itself: `help [CMD…]`, `--version`, an
// unknown command answered with the nearest one, and usage errors as one
// line on stderr plus where to read more. urfave/cli/v2 would print the
// whole help and "Incorrect Usage" on stdout instead; prepareCommands turns
// that off command by command through its hooks (OnUsageError, Action, our
// own help command) rather than by swapping its package-level printers.

import (
	"fmt"
	"regexp"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v2"
)

// uriHelp is appended to the help of every command that takes key URIs.
const uriHelp = `Key URIs:
  pkcs11:token=LABEL;object=KEY?module-path=/path/to/module.so&pin-source=file:PATH
      RFC 7512; token= or serial= picks the token, object= or id= the key;
      module-path= names the PKCS#11 module (SoftHSM: /usr/lib/softhsm/libsofthsm2.so).
  piv:serial=12345678;slot=9c?pin-source=env:NAME
      a YubiKey's PIV slot (9a, 9c, 9d, 9e, 82-95); serial= may be left out when
      one card is present.
  The PIN comes from pin-source=file:PATH (a file readable by you only),
  pin-source=env:NAME, or pin-value=PIN (tests only: it shows in argv).`

// expiresHelp is appended to the help of every command with --expires.
const expiresHelp = `Durations (--expires): a Go duration, positive: 90s, 30m, 1h30m, 48h.`

// thresholdHelp is appended to the help of every command with --threshold.
const thresholdHelp = `Thresholds (T): N signatures (2), or a comma list of fractions for one
weighted clause (1/2,1/2,1/2).`

// examples holds one example per command, by command path. A test checks
// that every command has one.
var examples = map[string]string{
	"registry init":   "auths-agent registry init --bare /srv/registry.git",
	"registry unlock": "auths-agent registry unlock --registry /srv/registry.git",
	"kel said":        "auths-agent kel said event.json",
	"kel verify":      "auths-agent kel verify --registry reg EMd282TNa216KX7fuXQyuic3SSv7J6dpv6YLqQFlT5_S",
	"kel import":      "auths-agent kel import --registry reg kel.cesr",
	"kel show":        "auths-agent kel show --registry reg EMd282TNa216KX7fuXQyuic3SSv7J6dpv6YLqQFlT5_S",
	"kel export":      "auths-agent kel export --registry reg EMd282TNa216KX7fuXQyuic3SSv7J6dpv6YLqQFlT5_S | auths-agent kel verify -",
	"key generate":    "auths-agent key generate 'pkcs11:token=ci-1;object=k0?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=env:PIN1'",
	"key list":        "auths-agent key list --ssh 'pkcs11:token=ci-1?module-path=/usr/lib/softhsm/libsofthsm2.so'",
	"key tokens":      "auths-agent key tokens /usr/lib/softhsm/libsofthsm2.so",
	"key sign":        "auths-agent key sign 'piv:slot=9c?pin-source=env:YK_PIN' event.json",
	"key delete":      "auths-agent key delete --yes --registry reg 'pkcs11:token=ci-1;object=old?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=env:PIN1'",
	"piv list":        "auths-agent piv list",
	"id create":       "auths-agent id create --init --registry reg --threshold 2 --key \"$K1\" --key \"$K2\" --key \"$K3\"",
	"id contribute":   "auths-agent id contribute --registry reg --key \"$K2\"   # on the member's machine; then on the proposer's: auths-agent id create --registry reg --threshold 2 --key \"$K1\" --contribution \"$LINE\"",
	"id rotate":       "auths-agent id rotate --registry reg --id \"$P\" --key \"$K1N\" --key \"$K2N\" --key \"$K3N\"",
	"anchor":          "auths-agent anchor --registry reg --id \"$P\" --attestation laptop.json --device \"$DEVICE\" --key \"$K1\" --key \"$K2\"",
	"pending list":    "auths-agent pending list --registry reg",
	"pending show":    "auths-agent pending show --registry reg \"$P\" \"$SAID\"",
	"pending sign":    "auths-agent pending sign --registry reg --key \"$K2\" \"$P\" \"$SAID\"",
	"pending commit":  "auths-agent pending commit --registry reg \"$P\" \"$SAID\"",
	"pending push":    "auths-agent pending push --remote origin --registry reg",
	"pending pull":    "auths-agent pending pull --remote origin --registry reg",
	"serve":           "auths-agent serve --registry reg --key \"$K1\" --ssh-key \"$SSH1\"",
	"env":             "auths-agent env --ssh   # then: eval \"$(auths-agent env --ssh)\"",
	"audit":           "auths-agent audit --since 24h; auths-agent audit --verify",
	"install-units":   "auths-agent install-units && systemctl --user enable --now auths-agent.socket",
	"agent keys":      "auths-agent agent keys",
	"agent":           "auths-agent help agent keys",
	"help":            "auths-agent help kel verify",
	"registry":        "auths-agent help registry init",
	"kel":             "auths-agent help kel verify",
	"key":             "auths-agent help key generate",
	"piv":             "auths-agent help piv list",
	"id":              "auths-agent help id create",
	"pending":         "auths-agent help pending sign",
}

// version is this build's version: the module version `go install …@v1.2.3`
// stamps, or the VCS revision of a build from a checkout.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
			if len(rev) > 12 {
				rev = rev[:12]
			}
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	out := v
	if rev != "" && !strings.Contains(v, rev) {
		out += " (" + rev + dirty + ")"
	}
	return out + " " + bi.GoVersion
}

// usageHint is the line a usage error ends with.
func usageHint(path string) string {
	if path == "" {
		return "see 'auths-agent --help'"
	}
	return fmt.Sprintf("see 'auths-agent %s --help'", path)
}

// cmdUsageErr is bad usage of the command c runs: exit 2, the message, and
// a second line telling where its help is.
func cmdUsageErr(c *cli.Context, format string, args ...any) error {
	return &exitError{code: exitUsage, msg: fmt.Sprintf(format, args...), hint: usageHint(commandPath(c))}
}

var (
	undefinedFlag = regexp.MustCompile(`^flag provided but not defined: -+(.+)$`)
	quotedValue   = regexp.MustCompile(`value "(?:[^"\\]|\\.)*"`)
	badFlagValue  = regexp.MustCompile(`^invalid value ".*" for flag -+([^:]+): (.*)$`)
)

// onUsageError turns urfave/cli's flag parsing errors into ours: one line
// and the hint, with the nearest flag when one was mistyped. A value that
// does not parse is left out of the message, since it may be a key URI with
// its PIN given to the wrong flag.
func onUsageError(c *cli.Context, err error, _ bool) error {
	path := commandPath(c)
	msg := oneLine(err.Error())
	if m := undefinedFlag.FindStringSubmatch(msg); m != nil {
		msg = fmt.Sprintf("unknown flag --%s", m[1])
		if s := nearestFlag(c.Command.Flags, m[1]); s != "" {
			msg += fmt.Sprintf(" (did you mean --%s?)", s)
		}
	} else if m := badFlagValue.FindStringSubmatch(msg); m != nil {
		msg = fmt.Sprintf("--%s: the value does not parse: %s", m[1], m[2])
		if _, ok := findFlag(c.Command.Flags, m[1]).(*cli.DurationFlag); ok {
			msg += " (want a duration such as 30m or 48h)"
		}
	} else {
		msg = quotedValue.ReplaceAllString(msg, "value")
	}
	if path == "" {
		return &exitError{code: exitUsage, msg: msg, hint: usageHint("")}
	}
	return &exitError{code: exitUsage, msg: path + ": " + msg, hint: usageHint(path)}
}

// unknownCommand answers a name that is no subcommand of parent (nil: the
// application) with the nearest one.
func unknownCommand(path, name string, subs []*cli.Command) error {
	what := "command"
	if path != "" {
		what = path + " command"
	}
	msg := fmt.Sprintf("unknown %s %q", what, name)
	if s := nearestCommand(subs, name); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	return &exitError{code: exitUsage, msg: msg, hint: usageHint(path)}
}

// findFlag returns the flag called name.
func findFlag(flags []cli.Flag, name string) cli.Flag {
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

// nearestFlag is the flag name closest to name, if close enough to be a typo.
func nearestFlag(flags []cli.Flag, name string) string {
	var names []*cli.Command
	for _, f := range flags {
		names = append(names, &cli.Command{Name: f.Names()[0], Aliases: f.Names()[1:]})
	}
	return nearestCommand(names, name)
}

// nearestCommand is the visible command whose name is closest to name in
// edit distance, if it is close enough to be a typo (or name is its prefix).
func nearestCommand(cmds []*cli.Command, name string) string {
	best, bestD := "", 1<<30
	for _, c := range cmds {
		if c.Hidden {
			continue
		}
		for _, n := range c.Names() {
			d := editDistance(name, n)
			if strings.HasPrefix(n, name) && name != "" {
				d = 0
			}
			if d < bestD {
				best, bestD = c.Name, d
			}
		}
	}
	if bestD > 2 && bestD > len(name)/2 {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// prepareCommands walks the command tree once the app is built: it names
// each command's help, gives every command our usage-error hook, lets a
// command group answer an unknown or missing subcommand, checks required
// flags itself (urfave/cli prints the whole help first), and adds the URI,
// duration and threshold notes and the example to each command's help.
//
// required remembers the flags already made optional: commands may share one
// flag value (pending's --registry).
func prepareCommands(cmds []*cli.Command, parent string, required map[cli.Flag]bool) {
	for _, c := range cmds {
		path := strings.TrimSpace(parent + " " + c.Name)
		if parent != "" {
			// urfave/cli prefixes top-level commands with the
			// application's name itself.
			c.HelpName = "auths-agent " + path
		}
		c.OnUsageError = onUsageError
		c.HideHelpCommand = true
		c.Description = strings.TrimRight(c.Description+"\n\n"+helpNotes(c, path), "\n")
		c.Description = strings.TrimLeft(c.Description, "\n")
		if len(c.Subcommands) > 0 {
			subs, p := c.Subcommands, path
			c.Action = func(cc *cli.Context) error {
				if cc.Args().Len() == 0 {
					return &exitError{code: exitUsage, msg: fmt.Sprintf("%s: missing command", p), hint: usageHint(p)}
				}
				return unknownCommand(p, cc.Args().First(), subs)
			}
			prepareCommands(c.Subcommands, path, required)
			continue
		}
		requireFlags(c, required)
	}
}

// helpNotes returns the notes a command's help ends with.
func helpNotes(c *cli.Command, path string) string {
	var notes []string
	has := func(name string) bool {
		for _, f := range c.Flags {
			for _, n := range f.Names() {
				if n == name {
					return true
				}
			}
		}
		return false
	}
	if has("key") || has("next-key") || strings.Contains(c.ArgsUsage, "URI") {
		notes = append(notes, uriHelp)
	}
	if has("threshold") {
		notes = append(notes, thresholdHelp)
	}
	if has("expires") {
		notes = append(notes, expiresHelp)
	}
	if ex := examples[path]; ex != "" {
		notes = append(notes, "Example:\n  "+ex)
	}
	return strings.Join(notes, "\n\n")
}

// requireFlags replaces urfave/cli's required-flag check (which prints the
// whole help to stdout first) with ours, run before the command's action,
// and refuses a duration flag that is not positive.
func requireFlags(c *cli.Command, seen map[cli.Flag]bool) {
	var required []string
	for _, f := range c.Flags {
		if r, ok := seen[f]; ok {
			if r {
				required = append(required, f.Names()[0])
			}
			continue
		}
		r := false
		switch f := f.(type) {
		case *cli.StringFlag:
			r, f.Required = f.Required, false
			if r {
				f.Usage += " (required)"
			}
		case *cli.GenericFlag:
			r, f.Required = f.Required, false
			if r {
				f.Usage += " (required)"
			}
		}
		seen[f] = r
		if r {
			required = append(required, f.Names()[0])
		}
	}
	var durations []string
	for _, f := range c.Flags {
		if d, ok := f.(*cli.DurationFlag); ok {
			durations = append(durations, d.Name)
		}
	}
	if len(required)+len(durations) == 0 || c.Action == nil {
		return
	}
	action := c.Action
	c.Action = func(cc *cli.Context) error {
		for _, name := range required {
			if !cc.IsSet(name) {
				return cmdUsageErr(cc, "%s: --%s is required", commandPath(cc), name)
			}
		}
		// A zero or negative duration would make a proposal expire at once.
		for _, name := range durations {
			if d := cc.Duration(name); cc.IsSet(name) && d <= 0 {
				return cmdUsageErr(cc, "%s: --%s %s: want a positive duration (e.g. 30m, 48h)", commandPath(cc), name, d)
			}
		}
		return action(cc)
	}
}

// helpCommand is `auths-agent help [CMD…]`: the help of the application or
// of one command, on stdout.
func helpCommand() *cli.Command {
	return &cli.Command{
		Name:      "help",
		Usage:     "show the commands, or the help of one command",
		ArgsUsage: "[COMMAND [SUBCOMMAND]]",
		Action: func(c *cli.Context) error {
			cmds := c.App.Commands
			var cmd *cli.Command
			var path []string
			for _, name := range c.Args().Slice() {
				var next *cli.Command
				for _, sc := range cmds {
					if sc.HasName(name) {
						next = sc
					}
				}
				if next == nil {
					return unknownCommand(strings.Join(path, " "), name, cmds)
				}
				cmd, cmds, path = next, next.Subcommands, append(path, name)
			}
			if cmd == nil {
				return cli.ShowAppHelp(c)
			}
			if cmd == c.Command {
				// urfave/cli answers help --help with the overview.
				cli.HelpPrinter(c.App.Writer, cli.CommandHelpTemplate, cmd)
				return nil
			}
			// The same text as CMD --help: urfave/cli fills in a
			// command's subcommand list only when it runs it.
			return c.App.RunContext(c.Context, append(append([]string{c.App.Name}, path...), "--help"))
		},
	}
}
