package main

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/auths-dev/auths-agent/softhsm-test/softhsm"
	"github.com/auths-dev/auths-agent/softhsm-test/sshd"
)

// TestTokenScripts runs the scenarios of id, anchor and pending in
// testdata/tokens/*.txt. Each script gets its own three SoftHSM tokens
// (t1, t2, t3, PIN 1234) in $WORK/softhsm, with SOFTHSM2_CONF set, and the
// key URIs $K1 $K2 $K3 (label k1…k3), their generated next keys $K1N…$K3N
// (label k1-next1…), and $KX (label kx on t1) for a key outside any
// identity, and $ORIGIN_URL, the path of $WORK/origin, for a git remote.
// Every auths-agent command runs as its own process.
func TestTokenScripts(t *testing.T) {
	p := tokenScriptParams(func(env *testscript.Env) {
		env.Setenv("ORIGIN_URL", filepath.Join(env.WorkDir, "origin"))
	})
	p.Dir = filepath.Join("testdata", "tokens")
	testscript.Run(t, p)
}

// TestTokenScriptsSSH runs the three-machine scenario contribute.txt with
// its remote over ssh:// to a real sshd on loopback (softhsm-test/sshd):
// $ORIGIN_URL is the bare repository's ssh:// URL, authentication goes
// through an OpenSSH ssh-agent and the host key is checked.
func TestTokenScriptsSSH(t *testing.T) {
	sock, pub := sshd.UserAgent(t)
	srv := sshd.Start(t, pub)
	p := tokenScriptParams(func(env *testscript.Env) {
		env.Setenv("ORIGIN_URL", srv.URL(filepath.Join(env.WorkDir, "origin")))
		env.Setenv("SSH_AUTH_SOCK", sock)
		env.Setenv("SSH_KNOWN_HOSTS", srv.KnownHosts)
	})
	p.Files = []string{filepath.Join("testdata", "tokens", "contribute.txt")}
	// The scripts run as parallel subtests: the group waits for them.
	t.Run("scripts", func(t *testing.T) { testscript.Run(t, p) })
	if n := srv.Connections(); n == 0 {
		t.Errorf("no ssh session reached sshd")
	}
}

// tokenScriptParams are the testscript parameters of TestTokenScripts;
// remote sets the environment that names the scripts' git remote.
func tokenScriptParams(remote func(env *testscript.Env)) testscript.Params {
	return testscript.Params{
		Setup: func(env *testscript.Env) error {
			remote(env)
			var toks []softhsm.Token
			for _, l := range []string{"t1", "t2", "t3"} {
				toks = append(toks, softhsm.Token{Label: l, PIN: "1234"})
			}
			rig, err := softhsm.New(filepath.Join(env.WorkDir, "softhsm"), toks...)
			if err != nil {
				return err
			}
			env.Defer(func() { rig.Remove() })
			env.Setenv("SOFTHSM2_CONF", rig.Conf)
			env.Setenv("MODULE", rig.Module)
			for i := 1; i <= 3; i++ {
				env.Setenv(fmt.Sprintf("K%d", i), rig.URI(fmt.Sprintf("t%d", i), fmt.Sprintf("k%d", i)))
				env.Setenv(fmt.Sprintf("K%dN", i), rig.URI(fmt.Sprintf("t%d", i), fmt.Sprintf("k%d-next1", i)))
			}
			env.Setenv("KX", rig.URI("t1", "kx"))
			env.Setenv("A_CONF", rig.Conf)
			// git needs an identity for nothing here, but a HOME to read.
			env.Setenv("HOME", env.WorkDir)
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"status":  cmdStatus,
			"capture": cmdCapture,
			"attest":  cmdAttest,
			"tamper":  cmdTamper,
			"machine": cmdMachine,
		},
	}
}

// cmdMachine: machine NAME [LABEL...] stands for another computer's
// tokens: a SoftHSM rig of its own in $WORK/NAME.softhsm holding a token
// labelled NAME (PIN 1234). It sets $NAME_CONF (upper case) to the rig's
// SOFTHSM2_CONF (`env SOFTHSM2_CONF=$B_CONF` switches machines) and, for
// each LABEL, $NAME_LABEL (upper case, - as _) to the URI of key LABEL on
// that token.
func cmdMachine(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 {
		ts.Fatalf("usage: machine NAME [LABEL...]")
	}
	name := args[0]
	rig, err := softhsm.New(ts.MkAbs(name+".softhsm"), softhsm.Token{Label: name, PIN: "1234"})
	ts.Check(err)
	ts.Defer(func() { rig.Remove() })
	up := strings.ToUpper(name)
	ts.Setenv(up+"_CONF", rig.Conf)
	for _, l := range args[1:] {
		ts.Setenv(up+"_"+strings.ToUpper(strings.ReplaceAll(l, "-", "_")), rig.URI(name, l))
	}
}

// cmdCapture: capture NAME [REGEXP] sets the variable NAME to the first
// group of REGEXP matched against the last command's stdout, or to its last
// line.
func cmdCapture(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: capture NAME [REGEXP]")
	}
	out := ts.ReadFile("stdout")
	var v string
	if len(args) == 2 {
		m := regexp.MustCompile(args[1]).FindStringSubmatch(out)
		if len(m) < 2 {
			ts.Fatalf("capture %s: %q does not match stdout", args[0], args[1])
		}
		v = m[1]
	} else {
		lines := strings.Split(strings.TrimSpace(out), "\n")
		v = strings.TrimSpace(lines[len(lines)-1])
	}
	if v == "" {
		ts.Fatalf("capture %s: empty", args[0])
	}
	ts.Setenv(args[0], v)
}
