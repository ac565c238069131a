package main

// This file holds `auths-agent id` (create and rotate multi-sig identities
// whose keys live on tokens) and tokenSet, which opens the key URIs of one
// command with one provider per PKCS#11 module and one for PIV cards.

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/auths-dev/auths-agent/anchor"
	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/hsm/piv"
	"github.com/auths-dev/auths-agent/hsm/pkcs11"
	"github.com/auths-dev/auths-agent/kel"
	"github.com/auths-dev/auths-agent/registry"
	gopiv "github.com/go-piv/piv-go/v2/piv"
)

func idCommand(env *cliEnv) *cli.Command {
	keyFlags := func(thresholdUsage string) []cli.Flag {
		return []cli.Flag{
			&cli.StringFlag{Name: "registry", Usage: "the registry's git repository `DIR`", Required: true},
			newListFlag("key", "a current key's `URI` (pkcs11: or piv:), in key-list order; repeat"),
			&cli.StringFlag{Name: "threshold", Usage: thresholdUsage},
			newListFlag("next-key", "a next key's `URI`; default: a new key on each current key's token"),
			&cli.StringFlag{Name: "next-threshold", Usage: "next threshold `T` (default: the signing threshold)"},
			&cli.DurationFlag{Name: "expires", Value: anchor.DefaultTTL, Usage: "how long the event waits in escrow if not fully signed"},
		}
	}
	return &cli.Command{
		Name:  "id",
		Usage: "create and rotate identities whose controller keys live on tokens",
		Subcommands: []*cli.Command{
			{
				Name:  "create",
				Usage: "incept a (multi-sig) identity with keys on tokens; print its prefix",
				Description: "T is N (signatures), a comma list of fractions for one weighted clause\n" +
					"(1/2,1/2,1/2), or JSON for several clauses ([[\"1/2\",\"1/2\"],[\"1\"]]).\n" +
					"Without --next-key, a next key is generated beside each current key:\n" +
					"PKCS#11: same label with -nextN; PIV: the next free retired slot (82-95).",
				Flags:  keyFlags("signing threshold `T` (required)"),
				Action: func(c *cli.Context) error { return idCreate(c, env) },
			},
			{
				Name:  "rotate",
				Usage: "rotate to the pre-committed next keys (on their tokens)",
				Description: "The --key URIs are the new current keys in their new order; each that was\n" +
					"pre-committed signs with both its new index and its prior-next position.\n" +
					"--threshold defaults to the prior next threshold.",
				Flags: append(keyFlags("new signing threshold `T`"),
					&cli.StringFlag{Name: "id", Usage: "the identity's `PREFIX`", Required: true}),
				Action: func(c *cli.Context) error { return idRotate(c, env) },
			},
		},
	}
}

func idCreate(c *cli.Context, env *cliEnv) error {
	if err := wantArgs(c); err != nil {
		return err
	}
	cmd := commandPath(c)
	uris, err := keyURIs(c, "key", true)
	if err != nil {
		return err
	}
	if c.String("threshold") == "" {
		return usageErr("%s: --threshold is required", cmd)
	}
	kt, err := thresholdFlag(c, "threshold", len(uris))
	if err != nil {
		return err
	}
	ts := newTokenSet(env)
	defer ts.Close()
	signers, keys, err := ts.open(c.Context, cmd, uris)
	if err != nil {
		return err
	}
	nextKeys, err := nextKeys(c, ts, uris, signers)
	if err != nil {
		return err
	}
	nt, err := nextThreshold(c, kt, len(nextKeys))
	if err != nil {
		return err
	}
	spec := kel.InceptionSpec{Keys: keys, Threshold: kt, NextThreshold: nt}
	for _, k := range nextKeys {
		spec.NextDigests = append(spec.NextDigests, kel.NextKeyDigest(k))
	}
	reg, _, err := registry.Init(c.Context, c.String("registry"), false)
	if err != nil {
		return usageErr("%s: %v", cmd, oneLine(err.Error()))
	}
	a := anchor.New(reg, anchor.WithTTL(c.Duration("expires")))
	p, err := a.Incept(c.Context, spec)
	if err != nil {
		return anchorErr(cmd, err)
	}
	return signAndFinish(c.Context, env, cmd, a, p, signers)
}

func idRotate(c *cli.Context, env *cliEnv) error {
	if err := wantArgs(c); err != nil {
		return err
	}
	cmd := commandPath(c)
	prefix, err := prefixArg(c, c.String("id"))
	if err != nil {
		return err
	}
	uris, err := keyURIs(c, "key", true)
	if err != nil {
		return err
	}
	a, err := openAnchorer(c, cmd)
	if err != nil {
		return err
	}
	snap, err := a.Registry().Snapshot()
	if err != nil {
		return usageErr("%s: %v", cmd, oneLine(err.Error()))
	}
	st, err := snap.KeyState(prefix)
	if err != nil {
		return anchorErr(cmd, fmt.Errorf("identity %s: %w", prefix, err))
	}
	kt := st.NextThreshold
	if c.String("threshold") != "" {
		if kt, err = thresholdFlag(c, "threshold", len(uris)); err != nil {
			return err
		}
	} else if err := kt.CheckKeys(len(uris)); err != nil {
		return usageErr("%s: the prior next threshold %s does not fit the %d keys: give --threshold (%v)", cmd, kt.Text(), len(uris), err)
	}
	ts := newTokenSet(env)
	defer ts.Close()
	signers, keys, err := ts.open(c.Context, cmd, uris)
	if err != nil {
		return err
	}
	for i, k := range keys {
		if st.KeyIndex(k) >= 0 {
			return negativeErr("%s: --key %s is a current key of %s; rotate to its pre-committed next keys", cmd, uris[i], prefix)
		}
	}
	nextKeys, err := nextKeys(c, ts, uris, signers)
	if err != nil {
		return err
	}
	nt, err := nextThreshold(c, kt, len(nextKeys))
	if err != nil {
		return err
	}
	spec := kel.RotationSpec{Keys: keys, Threshold: kt, NextThreshold: nt,
		BackerThreshold: st.BackerThreshold.Count()}
	for _, k := range nextKeys {
		spec.NextDigests = append(spec.NextDigests, kel.NextKeyDigest(k))
	}
	p, err := a.Rotate(c.Context, prefix, spec)
	if err != nil {
		return anchorErr(cmd, err)
	}
	return signAndFinish(c.Context, env, cmd, a, p, signers)
}

// listFlag is a repeatable flag whose values are kept whole: urfave/cli's
// StringSliceFlag splits values at commas, which seals (i=…,s=…,d=…),
// weighted thresholds and URIs contain.
type listFlag struct{ values []string }

func (l *listFlag) Set(v string) error { l.values = append(l.values, v); return nil }
func (l *listFlag) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(l.values, " ")
}

func newListFlag(name, usage string) cli.Flag {
	return &cli.GenericFlag{Name: name, Usage: usage, Value: &listFlag{}}
}

// listValues returns the values of a listFlag.
func listValues(c *cli.Context, name string) []string {
	if l, ok := c.Generic(name).(*listFlag); ok && l != nil {
		return l.values
	}
	return nil
}

// keyRef is a key URI parsed where the command line gives it. Providers
// receive it parsed, never as a string: a PIN glued back into a string is
// a PIN that can end up in a message. Exactly one field is set.
type keyRef struct {
	pkcs11 *hsm.PKCS11URI
	piv    *hsm.PIVURI
}

// parseKeyRef parses a pkcs11: or piv: URI; errors show it redacted.
func parseKeyRef(s string) (keyRef, error) {
	scheme, _, _ := strings.Cut(s, ":")
	switch scheme {
	case "pkcs11":
		u, err := hsm.ParsePKCS11URI(s)
		return keyRef{pkcs11: u}, err
	case "piv":
		u, err := hsm.ParsePIVURI(s)
		return keyRef{piv: &u}, err
	}
	return keyRef{}, hsm.NewURIError(s, fmt.Errorf("%w: not a key URI (want pkcs11: or piv:)", hsm.ErrBadURI))
}

// String shows the URI without its PIN.
func (r keyRef) String() string {
	if r.pkcs11 != nil {
		return r.pkcs11.String()
	}
	return r.piv.String()
}

// keyURIs parses the URIs of a repeated flag, refusing a URI given twice.
func keyURIs(c *cli.Context, flag string, required bool) ([]keyRef, error) {
	values := listValues(c, flag)
	if required && len(values) == 0 {
		return nil, usageErr("%s: give at least one --%s URI", commandPath(c), flag)
	}
	seen := map[string]bool{}
	var refs []keyRef
	for i, v := range values {
		r, err := parseKeyRef(v)
		if err != nil {
			return nil, usageErr("%s: --%s %d: %s", commandPath(c), flag, i+1, oneLine(err.Error()))
		}
		if seen[r.String()] {
			return nil, usageErr("%s: --%s %s listed twice", commandPath(c), flag, r)
		}
		seen[r.String()] = true
		refs = append(refs, r)
	}
	return refs, nil
}

func thresholdFlag(c *cli.Context, flag string, keys int) (kel.Threshold, error) {
	t, err := kel.ParseThresholdText(c.String(flag))
	if err != nil {
		return kel.Threshold{}, usageErr("%s: --%s: %v", commandPath(c), flag, err)
	}
	if err := t.CheckKeys(keys); err != nil {
		return kel.Threshold{}, usageErr("%s: --%s %s: %v", commandPath(c), flag, c.String(flag), err)
	}
	// The event goes into a registry auths reads: only forms it reads alike.
	raw, err := t.MarshalJSON()
	if err == nil {
		err = kel.CheckAuthsThreshold(raw, keys)
	}
	if err != nil {
		return kel.Threshold{}, usageErr("%s: --%s %s: %v", commandPath(c), flag, c.String(flag), err)
	}
	return t, nil
}

func nextThreshold(c *cli.Context, kt kel.Threshold, n int) (kel.Threshold, error) {
	if c.String("next-threshold") != "" {
		return thresholdFlag(c, "next-threshold", n)
	}
	if err := kt.CheckKeys(n); err != nil {
		return kel.Threshold{}, usageErr("%s: the signing threshold %s does not fit the %d next keys: give --next-threshold", commandPath(c), kt.Text(), n)
	}
	return kt, nil
}

// nextKeys returns the next keys' public keys: those of --next-key, or new
// keys generated beside each current key.
func nextKeys(c *cli.Context, ts *tokenSet, uris []keyRef, signers []hsm.Signer) ([]string, error) {
	cmd := commandPath(c)
	nextURIs, err := keyURIs(c, "next-key", false)
	if err != nil {
		return nil, err
	}
	if len(nextURIs) > 0 {
		_, keys, err := ts.open(c.Context, cmd, nextURIs)
		return keys, err
	}
	var keys []string
	for i, u := range uris {
		v, _ := hsm.Verfer(signers[i])
		nu, key, err := ts.generateNext(c.Context, u, v.Algorithm())
		if err != nil {
			return nil, keyErrMsg(cmd, err)
		}
		fmt.Fprintf(ts.env.stderr, "auths-agent: next key for key %d: %s\n", i, nu)
		keys = append(keys, key)
	}
	return keys, nil
}

// keyErrMsg is keyErr without a cli.Context.
func keyErrMsg(cmd string, err error) error {
	msg := cmd + ": " + oneLine(err.Error())
	if errors.Is(err, hsm.ErrWrongPIN) || errors.Is(err, hsm.ErrPINBlocked) || errors.Is(err, hsm.ErrExists) {
		return negativeErr("%s", msg)
	}
	return usageErr("%s", msg)
}

// tokenSet opens the keys of one command: one provider per PKCS#11 module
// (a module loads once per process) and one for PIV cards.
type tokenSet struct {
	env    *cliEnv
	pkcs11 map[string]*pkcs11.Provider
	piv    *piv.Provider
}

func newTokenSet(env *cliEnv) *tokenSet {
	return &tokenSet{env: env, pkcs11: map[string]*pkcs11.Provider{}}
}

func (ts *tokenSet) Close() {
	for _, p := range ts.pkcs11 {
		p.Close()
	}
	if ts.piv != nil {
		ts.piv.Close()
	}
}

func (ts *tokenSet) module(u *hsm.PKCS11URI) (*pkcs11.Provider, error) {
	if u.ModulePath == "" {
		return nil, hsm.NewURIError(u.String(), fmt.Errorf("%w: no module-path (add ?module-path=/path/to/module.so)", hsm.ErrBadURI))
	}
	if p, ok := ts.pkcs11[u.ModulePath]; ok {
		return p, nil
	}
	p, err := pkcs11.Open(u.ModulePath, pkcs11.Options{Getenv: ts.env.getenv})
	if err != nil {
		return nil, hsm.NewURIError(u.String(), err)
	}
	ts.pkcs11[u.ModulePath] = p
	return p, nil
}

func (ts *tokenSet) pivProvider() *piv.Provider {
	if ts.piv == nil {
		ts.piv = newPIVProvider(ts.env)
	}
	return ts.piv
}

// signer opens the key r names.
func (ts *tokenSet) signer(ctx context.Context, r keyRef) (hsm.Signer, error) {
	if r.piv != nil {
		return ts.pivProvider().SignerURI(ctx, *r.piv)
	}
	p, err := ts.module(r.pkcs11)
	if err != nil {
		return nil, err
	}
	return p.Signer(ctx, r.pkcs11)
}

// open opens every URI and returns the signers and their CESR keys,
// refusing two URIs that name the same key.
func (ts *tokenSet) open(ctx context.Context, cmd string, uris []keyRef) ([]hsm.Signer, []string, error) {
	var signers []hsm.Signer
	var keys []string
	for _, u := range uris {
		s, err := ts.signer(ctx, u)
		if err != nil {
			return nil, nil, keyErrMsg(cmd, err)
		}
		v, err := hsm.Verfer(s)
		if err != nil {
			return nil, nil, usageErr("%s: %s: %v", cmd, u, err)
		}
		for j, k := range keys {
			if k == v.QB64() {
				return nil, nil, usageErr("%s: key listed twice: %s and %s are the same key %s", cmd, uris[j], u, k)
			}
		}
		signers, keys = append(signers, s), append(keys, v.QB64())
	}
	return signers, keys, nil
}

var nextSuffix = regexp.MustCompile(`-next([0-9]+)$`)

// generateNext makes a next key beside the key r names: on a PKCS#11
// token the same label with "-nextN" (N one more than the label's own
// suffix, or 1), on a PIV card the first free retired slot 82–95. It
// returns the new key's URI (without PIN) and CESR public key.
func (ts *tokenSet) generateNext(ctx context.Context, r keyRef, alg kel.Algorithm) (string, string, error) {
	if r.piv != nil {
		return ts.generateNextPIV(ctx, *r.piv, alg)
	}
	u := r.pkcs11
	if u.Object == "" {
		return "", "", hsm.NewURIError(u.String(), fmt.Errorf("%w: no object= label to derive the next key's label from (give --next-key)", hsm.ErrBadURI))
	}
	p, err := ts.module(u)
	if err != nil {
		return "", "", err
	}
	base, n := u.Object, 1
	if m := nextSuffix.FindStringSubmatch(base); m != nil {
		k, _ := strconv.Atoi(m[1])
		base, n = strings.TrimSuffix(base, m[0]), k+1
	}
	nu := u.WithKey(fmt.Sprintf("%s-next%d", base, n), nil)
	info, err := p.Generate(ctx, nu, alg)
	if err != nil {
		return "", "", err
	}
	return info.URI.String(), info.Verfer.QB64(), nil
}

// generateNextPIV generates in the first empty retired slot of u's card;
// the new slot's URI keeps u's PIN source (or value) as parsed.
func (ts *tokenSet) generateNextPIV(ctx context.Context, u hsm.PIVURI, alg kel.Algorithm) (string, string, error) {
	p := ts.pivProvider()
	galg := gopiv.AlgorithmEC256
	if alg == kel.Ed25519 {
		galg = gopiv.AlgorithmEd25519
	}
	for slot := uint8(0x82); slot <= 0x95; slot++ {
		nu := u
		nu.Slot = slot
		if _, err := p.KeyURI(ctx, nu, false); err == nil {
			continue
		} else if !errors.Is(err, hsm.ErrNotFound) {
			return "", "", err
		}
		s, err := p.GenerateURI(ctx, nu, piv.GenerateOptions{Algorithm: galg})
		if err != nil {
			return "", "", err
		}
		v, err := hsm.Verfer(s)
		if err != nil {
			return "", "", err
		}
		return nu.String(), v.QB64(), nil
	}
	return "", "", hsm.NewURIError(u.String(), fmt.Errorf("%w: no free retired slot (82-95) on the card: give --next-key", hsm.ErrExists))
}
