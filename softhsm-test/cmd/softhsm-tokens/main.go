// Command softhsm-tokens makes SoftHSM tokens for the demo and scripts: it
// creates DIR with its own softhsm2.conf, initializes one token per LABEL
// with the same user PIN, optionally generates keys on them through the
// auths-agent PKCS#11 backend, and prints the SOFTHSM2_CONF path as its last
// line.
//
//	export SOFTHSM2_CONF=$(softhsm-tokens -pin 1234 -key ci-1/k0:ed25519 -key ci-2/k0:p256 /tmp/demo ci-1 ci-2 | tail -n1)
//
// Each generated key is printed before that as "LABEL<TAB>KEY<TAB>ALG<TAB>CESR".
// Remove DIR (rm -rf) to remove the tokens. Exit 0 on success, 2 on bad
// usage or any failure (nothing is left in DIR then).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/hsm/pkcs11"
	"github.com/auths-dev/auths-agent/kel"
	"github.com/auths-dev/auths-agent/softhsm-test/softhsm"
)

type keySpecs []string

func (k *keySpecs) String() string     { return strings.Join(*k, ",") }
func (k *keySpecs) Set(v string) error { *k = append(*k, v); return nil }

// keyReq is one -key flag.
type keyReq struct {
	token, label string
	alg          kel.Algorithm
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("softhsm-tokens", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pin := fs.String("pin", "1234", "user PIN of every token (test tokens only)")
	var keys keySpecs
	fs.Var(&keys, "key", "generate a key: TOKEN/LABEL:ed25519 or TOKEN/LABEL:p256 (repeatable)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: softhsm-tokens [-pin PIN] [-key TOKEN/LABEL:ALG]... DIR LABEL...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() < 2 {
		fmt.Fprintln(stderr, "softhsm-tokens: want DIR and at least one token LABEL (flags go before arguments)")
		return 2
	}
	dir, labels := fs.Arg(0), fs.Args()[1:]
	var reqs []keyReq
	for _, k := range keys {
		tok, rest, ok1 := strings.Cut(k, "/")
		label, alg, ok2 := strings.Cut(rest, ":")
		r := keyReq{token: tok, label: label}
		switch alg {
		case "ed25519":
			r.alg = kel.Ed25519
		case "p256":
			r.alg = kel.P256
		}
		if !ok1 || !ok2 || tok == "" || label == "" || r.alg == 0 {
			fmt.Fprintf(stderr, "softhsm-tokens: -key %q: want TOKEN/LABEL:ed25519 or TOKEN/LABEL:p256\n", k)
			return 2
		}
		reqs = append(reqs, r)
	}
	var toks []softhsm.Token
	for _, l := range labels {
		toks = append(toks, softhsm.Token{Label: l, PIN: *pin})
	}
	rig, err := softhsm.New(dir, toks...)
	if err != nil {
		fmt.Fprintf(stderr, "softhsm-tokens: %v\n", err)
		return 2
	}
	if len(reqs) > 0 {
		if err := generate(rig, *pin, reqs, stdout); err != nil {
			rig.Remove()
			fmt.Fprintf(stderr, "softhsm-tokens: %v\n", err)
			return 2
		}
	}
	fmt.Fprintln(stdout, rig.Conf)
	return 0
}

// generate opens the module once, with SOFTHSM2_CONF pointing at the rig
// (SoftHSM reads it when initialized), and makes the keys.
func generate(rig *softhsm.Rig, pin string, reqs []keyReq, stdout io.Writer) error {
	if err := rig.Setenv(); err != nil {
		return err
	}
	p, err := pkcs11.Open(rig.Module, pkcs11.Options{})
	if err != nil {
		return err
	}
	defer p.Close()
	for _, r := range reqs {
		u := &hsm.PKCS11URI{Token: r.token, Object: r.label, ModulePath: rig.Module, PIN: hsm.PINSpec{Value: pin}}
		info, err := p.Generate(context.Background(), u, r.alg)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\t%s\t%v\t%s\n", r.token, r.label, r.alg, info.Verfer.QB64())
	}
	return nil
}
