package main

// This file holds the everyday reading and tidying tools of `auths-agent
// key`: tokens (what a PKCS#11 module holds), authorized_keys lines for key
// list --ssh, delete (with its checks against the registry), and the PIN
// file permission warning.

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"
	"golang.org/x/crypto/ssh"

	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/hsm/pkcs11"
	"github.com/auths-dev/auths-agent/kel"
)

func keyTokensCommand(env *cliEnv) *cli.Command {
	return &cli.Command{
		Name:      "tokens",
		Usage:     "list the tokens of a PKCS#11 module: label, serial, manufacturer, model (tab-separated); then the free slots",
		ArgsUsage: "MODULE",
		Description: "MODULE is the path of the PKCS#11 module (the module-path= of key URIs).\n" +
			"Needs no PIN. The last line counts the slots without a token.",
		Action: func(c *cli.Context) error {
			if err := wantArgs(c, "module"); err != nil {
				return err
			}
			mod := c.Args().First()
			p, err := pkcs11.Open(mod, pkcs11.Options{Getenv: env.getenv})
			if err != nil {
				return usageErr("%s: %s", commandPath(c), oneLine(err.Error()))
			}
			defer p.Close()
			tokens, free, err := p.Tokens()
			if err != nil {
				return usageErr("%s: %s", commandPath(c), oneLine(err.Error()))
			}
			for _, t := range tokens {
				fmt.Fprintf(env.stdout, "%s\t%s\t%s\t%s\n", field(t.Label), field(t.Serial), field(t.Manufacturer), field(t.Model))
			}
			fmt.Fprintf(env.stdout, "free slots: %d\n", free)
			return nil
		},
	}
}

// field keeps a token attribute one tab-separated field: spaces stay (token
// manufacturers have them), control characters make it quoted.
func field(s string) string {
	if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return strconv.Quote(s)
	}
	return s
}

// printAuthorizedKeys prints one OpenSSH authorized_keys line per key it
// can express (Ed25519, P-256), with the label as comment.
func printAuthorizedKeys(env *cliEnv, keys []keyListing) error {
	for _, k := range keys {
		if k.Key == "-" {
			continue
		}
		v, err := kel.ParseVerfer(k.Key)
		if err != nil {
			return fmt.Errorf("key %s: %w", k.Label, err)
		}
		pub, err := v.PublicKey()
		if err != nil {
			return fmt.Errorf("key %s: %w", k.Label, err)
		}
		sp, err := ssh.NewPublicKey(pub)
		if err != nil {
			return fmt.Errorf("key %s: %w", k.Label, err)
		}
		line := strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(sp)), "\n")
		comment := strings.Map(func(r rune) rune {
			if r <= ' ' || r == 0x7f {
				return '_'
			}
			return r
		}, k.Label)
		fmt.Fprintf(env.stdout, "%s %s\n", line, comment)
	}
	return nil
}

// warnPINFile warns, naming the file, when a PIN file can be read by group
// or others: the PIN would be one `cat` away for every local user.
func warnPINFile(env *cliEnv, spec hsm.PINSpec) {
	path, ok := spec.FilePath()
	if !ok {
		return
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&0o077 == 0 {
		return
	}
	fmt.Fprintf(env.stderr, "auths-agent: warning: PIN file %s is readable by group or others (mode %04o): chmod 600 %s\n", path, fi.Mode().Perm(), path)
}

// pinSpec is where the PIN of the key r names comes from.
func (r keyRef) pinSpec() hsm.PINSpec {
	if r.pkcs11 != nil {
		return r.pkcs11.PIN
	}
	if r.piv != nil {
		return r.piv.PIN
	}
	return hsm.PINSpec{}
}

func keyDeleteCommand(env *cliEnv) *cli.Command {
	return &cli.Command{
		Name:      "delete",
		Usage:     "delete a key pair from its PKCS#11 token (asks for --yes; refuses keys an identity uses)",
		ArgsUsage: "URI",
		Description: "Destroys the private key the URI names and its public key object. It cannot\n" +
			"be undone, so --yes is required. With --registry DIR, a key that is a current\n" +
			"key or a pre-committed next key of an identity there is refused (deleting it\n" +
			"could leave the identity unable to sign or rotate). Use it for next keys a\n" +
			"failed id create left behind. PIV slots are replaced with key generate --overwrite.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "yes", Usage: "confirm: the key is destroyed for good"},
			&cli.StringFlag{Name: "registry", Usage: "refuse a key that an identity in the registry at `DIR` uses"},
		},
		Action: func(c *cli.Context) error {
			if err := wantArgs(c, "uri"); err != nil {
				return err
			}
			cmd := commandPath(c)
			r, err := parseKeyRef(c.Args().First())
			if err != nil {
				return cmdUsageErr(c, "%s: %s", cmd, oneLine(err.Error()))
			}
			if r.pkcs11 == nil {
				return cmdUsageErr(c, "%s: %s: only pkcs11: keys can be deleted (PIV: key generate --overwrite replaces a slot's key)", cmd, r)
			}
			if !c.Bool("yes") {
				return cmdUsageErr(c, "%s: deleting %s cannot be undone: give --yes", cmd, r)
			}
			ts := newTokenSet(env)
			defer ts.Close()
			_, keys, err := ts.open(c.Context, cmd, []keyRef{r})
			if err != nil {
				return err
			}
			if dir := c.String("registry"); dir != "" {
				if _, err := openRegistry(env, dir); err != nil {
					return err
				}
				inUse, err := keysInUse(env, dir, nil)
				if err != nil {
					return err
				}
				if how, ok := inUse.used(keys[0]); ok {
					return negativeErr("%s: %s is %s in %s: not deleted", cmd, r, how, dir)
				}
			}
			p, err := ts.module(r.pkcs11)
			if err != nil {
				return keyErrMsg(cmd, err)
			}
			info, err := p.Delete(c.Context, r.pkcs11)
			if err != nil {
				return keyErrMsg(cmd, err)
			}
			fmt.Fprintf(env.stdout, "deleted %s\t%s\n", info.URI, keys[0])
			return nil
		},
	}
}
