package main

// This file holds `auths-agent key`: generate, list and sign with keys on
// tokens, whatever backend holds them. The backend is chosen by the key
// URI's scheme through keyBackends.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/hsm/pkcs11"
	"github.com/auths-dev/auths-agent/kel"
)

// maxSignInput caps what `key sign` reads: KERI events are far smaller.
const maxSignInput = 1 << 20

// keyBackend is one key URI opened by its backend: what `auths-agent key`
// needs, and nothing more.
type keyBackend interface {
	// Generate makes a key of alg at the URI; a label or slot already in
	// use is refused with an error matching hsm.ErrExists.
	Generate(ctx context.Context, alg kel.Algorithm) (keyListing, error)
	// List returns the keys the URI's token or card holds.
	List(ctx context.Context) ([]keyListing, error)
	// Signer opens the key the URI names.
	Signer(ctx context.Context) (hsm.Signer, error)
	// Close releases the module or card.
	Close() error
}

// keyListing is one key as `key list` and `key generate` print it.
type keyListing struct {
	Label     string // PKCS#11 label, or the PIV slot
	ID        string // hex id, or the PIV slot in hex
	Algorithm string // ed25519, p256, or what else the key is
	Key       string // CESR public key; "-" when not Ed25519 or P-256
	URI       string // the key's URI, without PIN attributes
}

// openKeyBackend opens the backend for one key URI. env gives the
// environment (pin-source=env:NAME) and stdio.
type openKeyBackend func(ctx context.Context, env *cliEnv, uri string) (keyBackend, error)

// keyBackends maps key URI schemes to their backends. Backends are wired
// here, explicitly, not by init side effects.
//
// Each backend lives in its own file (pkcs11: here, piv: in piv.go).
func keyBackends() map[string]openKeyBackend {
	return map[string]openKeyBackend{
		"pkcs11": openPKCS11Key,
		"piv":    openPIVKey,
	}
}

func keyCommand(env *cliEnv) *cli.Command {
	return &cli.Command{
		Name:  "key",
		Usage: "generate, list and use controller keys on tokens (pkcs11: and piv: URIs)",
		Subcommands: []*cli.Command{
			{
				Name:      "generate",
				Usage:     "generate a key on the token; print its URI and, last, its CESR public key",
				ArgsUsage: "URI",
				Flags: append([]cli.Flag{&cli.StringFlag{
					Name: "algorithm", Value: "ed25519", Usage: "ed25519 or p256",
				}}, pivGenerateFlags()...),
				Action: func(c *cli.Context) error { return keyGenerate(c, env) },
			},
			{
				Name:      "list",
				Usage:     "list keys: label, id (hex), algorithm, CESR public key (tab-separated)",
				ArgsUsage: "URI",
				Description: "Without pin-source or pin-value in a pkcs11: URI, the public key objects are\n" +
					"listed without logging in (no PIN needed); with a PIN, the private keys.\n" +
					"--ssh prints OpenSSH authorized_keys lines instead, the label as comment.",
				Flags:  []cli.Flag{&cli.BoolFlag{Name: "ssh", Usage: "print OpenSSH authorized_keys lines"}},
				Action: func(c *cli.Context) error { return keyList(c, env) },
			},
			keyTokensCommand(env),
			keyDeleteCommand(env),
			{
				Name:      "sign",
				Usage:     "sign the KERI event in FILE (- for stdin) as its controller; print the signature in base64url",
				ArgsUsage: "URI FILE",
				Description: "FILE holds one KERI event, compact or pretty-printed JSON (as registry blobs\n" +
					"are). It is parsed and its SAID checked before the token is opened; the\n" +
					"signature is over the event's compact serialization, the bytes a KEL holds.\n" +
					"Anything else is refused: exit 2 when it is not an event, 1 when its SAID\n" +
					"does not match. --raw signs FILE's bytes as they are, unchecked: an\n" +
					"operator's escape hatch, since such a signature is the controller's all the\n" +
					"same.",
				Flags: []cli.Flag{&cli.BoolFlag{
					Name:  "raw",
					Usage: "sign FILE's bytes as they are, without parsing them as a KERI event (an operator's escape hatch)",
				}},
				Action: func(c *cli.Context) error { return keySign(c, env) },
			},
		},
	}
}

// openKey chooses the backend by the URI's scheme and opens it.
func openKey(c *cli.Context, env *cliEnv, uri string) (keyBackend, error) {
	table := keyBackends()
	scheme, _, ok := strings.Cut(uri, ":")
	open := table[scheme]
	if !ok || open == nil {
		var want []string
		for s := range table {
			want = append(want, s+":")
		}
		slices.Sort(want)
		return nil, usageErr("%s: %q: not a key URI (want %s)", commandPath(c), hsm.RedactURI(uri), strings.Join(want, " or "))
	}
	if r, err := parseKeyRef(uri); err == nil {
		warnPINFile(env, r.pinSpec())
	}
	kb, err := open(c.Context, env, uri)
	if err != nil {
		return nil, keyErr(c, err)
	}
	return kb, nil
}

// keyErr turns a backend error into the CLI's: refusals (wrong or blocked
// PIN, existing label) exit 1, everything else (bad URI, missing token or
// key, unreachable module) exits 2.
func keyErr(c *cli.Context, err error) error {
	msg := commandPath(c) + ": " + oneLine(err.Error())
	if errors.Is(err, hsm.ErrWrongPIN) || errors.Is(err, hsm.ErrPINBlocked) || errors.Is(err, hsm.ErrExists) {
		return negativeErr("%s", msg)
	}
	return usageErr("%s", msg)
}

func keyGenerate(c *cli.Context, env *cliEnv) error {
	if err := wantArgs(c, "uri"); err != nil {
		return err
	}
	var alg kel.Algorithm
	switch a := c.String("algorithm"); a {
	case "ed25519":
		alg = kel.Ed25519
	case "p256":
		alg = kel.P256
	default:
		return usageErr("%s: --algorithm %q: want ed25519 or p256", commandPath(c), a)
	}
	kb, err := openKey(c, env, c.Args().Get(0))
	if err != nil {
		return err
	}
	defer kb.Close()
	if err := applyGenerateFlags(c, kb); err != nil {
		return err
	}
	k, err := kb.Generate(c.Context, alg)
	if err != nil {
		return keyErr(c, err)
	}
	fmt.Fprintf(env.stdout, "%s\n%s\n", k.URI, k.Key)
	return nil
}

func keyList(c *cli.Context, env *cliEnv) error {
	if err := wantArgs(c, "uri"); err != nil {
		return err
	}
	kb, err := openKey(c, env, c.Args().Get(0))
	if err != nil {
		return err
	}
	defer kb.Close()
	keys, err := kb.List(c.Context)
	if err != nil {
		return keyErr(c, err)
	}
	if c.Bool("ssh") {
		return printAuthorizedKeys(env, keys)
	}
	for _, k := range keys {
		fmt.Fprintf(env.stdout, "%s\t%s\t%s\t%s\n", printable(k.Label), k.ID, k.Algorithm, k.Key)
	}
	return nil
}

func keySign(c *cli.Context, env *cliEnv) error {
	if err := wantArgs(c, "uri", "file"); err != nil {
		return err
	}
	name := c.Args().Get(1)
	msg, err := readInput(env, name, maxSignInput)
	if err != nil {
		return err
	}
	if !c.Bool("raw") {
		if msg, err = eventToSign(c, name, msg); err != nil {
			return err
		}
	}
	kb, err := openKey(c, env, c.Args().Get(0))
	if err != nil {
		return err
	}
	defer kb.Close()
	s, err := kb.Signer(c.Context)
	if err != nil {
		return keyErr(c, err)
	}
	defer hsm.Close(s)
	sig, err := s.SignKERI(c.Context, msg)
	if err != nil {
		return keyErr(c, err)
	}
	fmt.Fprintln(env.stdout, base64.RawURLEncoding.EncodeToString(sig))
	return nil
}

// eventToSign returns the bytes a controller signs for the event in data:
// its compact serialization, once it parsed and its SAID checked. Compacting
// keeps every string as written, so a pretty-printed registry blob signs as
// the event it holds.
func eventToSign(c *cli.Context, name string, data []byte) ([]byte, error) {
	cmd, shown := commandPath(c), shownName(name)
	var compact bytes.Buffer
	if err := json.Compact(&compact, data); err != nil {
		return nil, usageErr("%s: %s: not a KERI event: not JSON: %v (sign other bytes with --raw)", cmd, shown, err)
	}
	e, err := kel.ParseEvent(compact.Bytes())
	if err != nil {
		return nil, usageErr("%s: %s: not a KERI event: %s (sign other bytes with --raw)", cmd, shown, oneLine(err.Error()))
	}
	if err := e.CheckSAID(); err != nil {
		return nil, negativeErr("%s: %s: %s event: %s; not signed", cmd, shown, e.Type, oneLine(err.Error()))
	}
	return e.Raw(), nil
}

// printable quotes a label with spaces, tabs or control characters so each
// key stays one line of tab-separated fields.
func printable(s string) string {
	if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f || !strconv.IsPrint(r) }) {
		return strconv.Quote(s)
	}
	return s
}

// pkcs11Key is a pkcs11: URI opened on its module.
type pkcs11Key struct {
	p *pkcs11.Provider
	u *hsm.PKCS11URI
}

// openPKCS11Key loads the URI's module-path. One command loads one module,
// once; the agent builds its providers in main instead.
func openPKCS11Key(_ context.Context, env *cliEnv, uri string) (keyBackend, error) {
	u, err := hsm.ParsePKCS11URI(uri)
	if err != nil {
		return nil, err
	}
	if u.ModulePath == "" {
		return nil, hsm.NewURIError(u.String(), fmt.Errorf("%w: no module-path (add ?module-path=/path/to/module.so)", hsm.ErrBadURI))
	}
	p, err := pkcs11.Open(u.ModulePath, pkcs11.Options{Getenv: env.getenv})
	if err != nil {
		return nil, hsm.NewURIError(u.String(), err)
	}
	return &pkcs11Key{p: p, u: u}, nil
}

func listing(k pkcs11.KeyInfo) keyListing {
	l := keyListing{Label: k.Label, ID: k.IDHex(), Algorithm: k.Type, Key: "-", URI: k.URI.String()}
	if k.Algorithm != 0 {
		l.Algorithm, l.Key = k.Algorithm.String(), k.Verfer.QB64()
	}
	if l.ID == "" {
		l.ID = "-"
	}
	return l
}

func (k *pkcs11Key) Generate(ctx context.Context, alg kel.Algorithm) (keyListing, error) {
	info, err := k.p.Generate(ctx, k.u, alg)
	if err != nil {
		return keyListing{}, err
	}
	return listing(info), nil
}

func (k *pkcs11Key) List(ctx context.Context) ([]keyListing, error) {
	list := k.p.List
	if k.u.PIN.IsZero() {
		list = k.p.ListPublic // no PIN given: what the token shows without one
	}
	keys, err := list(ctx, k.u)
	if err != nil {
		return nil, err
	}
	var out []keyListing
	for _, info := range keys {
		out = append(out, listing(info))
	}
	return out, nil
}

func (k *pkcs11Key) Signer(ctx context.Context) (hsm.Signer, error) { return k.p.Signer(ctx, k.u) }

func (k *pkcs11Key) Close() error { return k.p.Close() }

// generateFlagger is a backend with `key generate` flags of its own (the
// PIV policies and management key).
type generateFlagger interface {
	ApplyGenerateFlags(*cli.Context) error
}

// applyGenerateFlags hands the backend its own flags, and refuses them for
// a backend that has none.
func applyGenerateFlags(c *cli.Context, kb keyBackend) error {
	if f, ok := kb.(generateFlagger); ok {
		return f.ApplyGenerateFlags(c)
	}
	for _, fl := range pivGenerateFlags() {
		if name := fl.Names()[0]; c.IsSet(name) {
			return usageErr("%s: --%s applies to piv: keys only", commandPath(c), name)
		}
	}
	return nil
}
