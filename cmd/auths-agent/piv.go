package main

// This file holds `auths-agent piv` (list the YubiKeys present) and the
// piv: backend of `auths-agent key`.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/auths-dev/auths-agent/agent/touch"
	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/hsm/piv"
	"github.com/auths-dev/auths-agent/kel"
	gopiv "github.com/go-piv/piv-go/v2/piv"
)

func pivCommand(env *cliEnv) *cli.Command {
	return &cli.Command{
		Name:  "piv",
		Usage: "YubiKeys over PIV",
		Subcommands: []*cli.Command{
			{
				Name:   "list",
				Usage:  "list the YubiKeys present: serial, reader, firmware version, slots holding keys (tab-separated)",
				Action: func(c *cli.Context) error { return pivList(c, env) },
			},
		},
	}
}

func pivList(c *cli.Context, env *cliEnv) error {
	if err := wantArgs(c); err != nil {
		return err
	}
	p := newPIVProvider(env)
	defer p.Close()
	cards, notes, err := p.Cards(c.Context)
	if err != nil {
		return usageErr("%s: %s", commandPath(c), oneLine(err.Error()))
	}
	for _, n := range notes {
		fmt.Fprintf(env.stderr, "auths-agent: %s: %s\n", commandPath(c), oneLine(n))
	}
	if len(cards) == 0 {
		return negativeErr("%s: no YubiKey found: insert one", commandPath(c))
	}
	failed := false
	for _, ci := range cards {
		if ci.Err != nil {
			fmt.Fprintf(env.stderr, "auths-agent: %s: %s\n", commandPath(c), oneLine(ci.Err.Error()))
			failed = true
			continue
		}
		slots := make([]string, 0, len(ci.Slots))
		for _, k := range ci.Slots {
			slots = append(slots, fmt.Sprintf("%02x", k.Slot))
		}
		if len(slots) == 0 {
			slots = append(slots, "-")
		}
		fmt.Fprintf(env.stdout, "%d\t%s\t%s\t%s\n", ci.Serial, readerName(ci.Reader), ci.VersionString(), strings.Join(slots, ","))
	}
	if failed {
		return silentExit(exitUsage)
	}
	return nil
}

// readerName keeps a reader name (which has spaces) as it is, unless it
// has tabs or control characters: then it is quoted so each card stays one
// line of tab-separated fields.
func readerName(s string) string {
	if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f || !strconv.IsPrint(r) }) {
		return strconv.Quote(s)
	}
	return s
}

// newPIVProvider builds the PIV provider of one command: PINs from the
// URI (no prompt: commands take no PIN from a terminal yet), touch notices
// on stderr.
func newPIVProvider(env *cliEnv) *piv.Provider {
	return piv.NewProvider(piv.Options{
		Getenv: env.getenv,
		Touch: func(_ context.Context, what string) {
			// The words the agent sends to the CLI that asked, too.
			fmt.Fprintf(env.stderr, "auths-agent: %s\n", touch.Notice{Token: what})
		},
	})
}

// pivGenerateFlags are the flags `key generate` takes for piv: URIs.
func pivGenerateFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "pin-policy", Usage: "piv: when the key needs the PIN: never, once (per session) or always"},
		&cli.StringFlag{Name: "touch-policy", Usage: "piv: when the key needs a touch: never, always or cached (15 s)"},
		&cli.StringFlag{Name: "management-key-source", Usage: "piv: the card's management key, hex, from file:PATH or env:NAME (default: the factory key)"},
		&cli.BoolFlag{Name: "overwrite", Usage: "piv: replace the key already in the slot"},
	}
}

// pivKey is a piv: URI on its card. The URI may omit slot= for `key list`.
type pivKey struct {
	p      *piv.Provider
	env    *cliEnv
	uri    string // as given, for messages (redacted when shown)
	u      hsm.PIVURI
	noSlot bool
	gen    piv.GenerateOptions
}

// openPIVKey opens a piv: URI; the card itself is opened on first use.
func openPIVKey(_ context.Context, env *cliEnv, uri string) (keyBackend, error) {
	u, noSlot, err := parsePIVCardURI(uri)
	if err != nil {
		return nil, err
	}
	return &pivKey{p: newPIVProvider(env), env: env, uri: uri, u: u, noSlot: noSlot}, nil
}

// parsePIVCardURI parses a piv: URI that may name only a card (no slot=),
// as `key list` takes.
func parsePIVCardURI(uri string) (hsm.PIVURI, bool, error) {
	u, err := hsm.ParsePIVURI(uri)
	if err == nil || !errors.Is(err, hsm.ErrBadURI) || strings.Contains(uri, "slot=") {
		return u, false, err
	}
	path, query, hasQuery := strings.Cut(uri, "?")
	withSlot := path
	if path != "piv:" {
		withSlot += ";"
	}
	withSlot += "slot=9a"
	if hasQuery {
		withSlot += "?" + query
	}
	u, err2 := hsm.ParsePIVURI(withSlot)
	if err2 != nil {
		return hsm.PIVURI{}, false, err // the first error names the URI as given
	}
	return u, true, nil
}

// ApplyGenerateFlags reads the piv: flags of `key generate`.
func (k *pivKey) ApplyGenerateFlags(c *cli.Context) error {
	var err error
	if s := c.String("pin-policy"); s != "" {
		if k.gen.PINPolicy, err = piv.ParsePINPolicy(s); err != nil {
			return usageErr("%s: --pin-policy: %v", commandPath(c), err)
		}
	}
	if s := c.String("touch-policy"); s != "" {
		if k.gen.TouchPolicy, err = piv.ParseTouchPolicy(s); err != nil {
			return usageErr("%s: --touch-policy: %v", commandPath(c), err)
		}
	}
	k.gen.Overwrite = c.Bool("overwrite")
	if s := c.String("management-key-source"); s != "" {
		if k.gen.ManagementKey, err = piv.ManagementKeyFrom(s, k.env.getenv); err != nil {
			return usageErr("%s: --management-key-source: %v", commandPath(c), err)
		}
	}
	return nil
}

func (k *pivKey) needSlot() error {
	if k.noSlot {
		return hsm.NewURIError(k.uri, fmt.Errorf("%w: missing slot= (9a, 9c, 9d, 9e or 82–95)", hsm.ErrBadURI))
	}
	return nil
}

func (k *pivKey) Generate(ctx context.Context, alg kel.Algorithm) (keyListing, error) {
	if err := k.needSlot(); err != nil {
		return keyListing{}, err
	}
	o := k.gen
	switch alg {
	case kel.Ed25519:
		o.Algorithm = gopiv.AlgorithmEd25519
	case kel.P256:
		o.Algorithm = gopiv.AlgorithmEC256
	default:
		return keyListing{}, fmt.Errorf("%w: %v", hsm.ErrUnsupportedKey, alg)
	}
	s, err := k.p.GenerateURI(ctx, k.u, o)
	if err != nil {
		return keyListing{}, err
	}
	return pivListing(s.URI(), s.Info()), nil
}

func (k *pivKey) List(ctx context.Context) ([]keyListing, error) {
	cards, _, err := k.p.Cards(ctx)
	if err != nil {
		return nil, err
	}
	var out []keyListing
	found := false
	for _, ci := range cards {
		if k.u.HasSerial && ci.Serial != k.u.Serial {
			continue
		}
		if found && !k.u.HasSerial {
			return nil, hsm.NewURIError(k.uri, fmt.Errorf("%w: several YubiKeys present: add serial= to the URI", hsm.ErrAmbiguous))
		}
		found = true
		if ci.Err != nil {
			return nil, ci.Err
		}
		for _, info := range ci.Slots {
			if !k.noSlot && info.Slot != k.u.Slot {
				continue
			}
			out = append(out, pivListing(fmt.Sprintf("piv:serial=%d;slot=%02x", ci.Serial, info.Slot), info))
		}
	}
	if !found {
		what := "no YubiKey found: insert one"
		if k.u.HasSerial {
			what = fmt.Sprintf("card %d not found: insert it, or check the serial", k.u.Serial)
		}
		return nil, hsm.NewURIError(k.uri, fmt.Errorf("%w: %s", hsm.ErrNotFound, what))
	}
	return out, nil
}

func pivListing(uri string, info piv.KeyInfo) keyListing {
	slot := fmt.Sprintf("%02x", info.Slot)
	l := keyListing{Label: slot, ID: slot, Algorithm: piv.AlgorithmName(info.Algorithm), Key: "-", URI: uri}
	if v, err := kel.VerferFromPublicKey(info.Public); err == nil {
		l.Algorithm, l.Key = v.Algorithm().String(), v.QB64()
	}
	return l
}

func (k *pivKey) Signer(ctx context.Context) (hsm.Signer, error) {
	if err := k.needSlot(); err != nil {
		return nil, err
	}
	return k.p.SignerURI(ctx, k.u)
}

func (k *pivKey) Close() error { return k.p.Close() }
