package main

import (
	"bytes"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/auths-dev/auths-agent/agent/audit"
)

// TestPeopleScripts runs the scenarios of the commands around the agent
// (audit, install-units) in testdata/people.
func TestPeopleScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/people",
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"status":   cmdStatus,
			"mkaudit":  cmdMkAudit,
			"dropline": cmdDropLine,
			"editline": cmdEditLine,
		},
	})
}

// cmdMkAudit: mkaudit FILE N appends N entries through audit.Sink, one a
// minute from 2026-12-01T12:00:00Z, alternately signed and refused.
func cmdMkAudit(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: mkaudit FILE N")
	}
	n, err := strconv.Atoi(args[1])
	ts.Check(err)
	s, err := audit.Open(ts.MkAbs(args[0]))
	ts.Check(err)
	defer s.Close()
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for i := range n {
		sn := uint64(i)
		e := audit.Entry{Time: t0.Add(time.Duration(i) * time.Minute), Outcome: audit.Signed,
			Peer: audit.Peer{UID: 1000, PID: 100 + i, Exe: "/usr/bin/git"}, Op: "sign-event",
			Key: "piv:serial=12345678;slot=9c", Prefix: "EAbc", Type: "ixn", Sn: &sn, SAID: "Esaid" + strconv.Itoa(i)}
		if i%2 == 1 {
			e.Outcome, e.Key, e.Reason = audit.Refused, "", "not allowed by the policy"
		}
		ts.Check(s.Append(e))
	}
}

// cmdDropLine: dropline FILE N removes line N (from 1).
func cmdDropLine(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: dropline FILE N")
	}
	n, err := strconv.Atoi(args[1])
	ts.Check(err)
	lines := bytes.SplitAfter([]byte(ts.ReadFile(args[0])), []byte("\n"))
	lines = append(lines[:n-1], lines[n:]...)
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), bytes.Join(lines, nil), 0o600))
}

// cmdEditLine: editline FILE N OLD NEW replaces OLD by NEW in line N.
func cmdEditLine(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 4 {
		ts.Fatalf("usage: editline FILE N OLD NEW")
	}
	n, err := strconv.Atoi(args[1])
	ts.Check(err)
	lines := bytes.SplitAfter([]byte(ts.ReadFile(args[0])), []byte("\n"))
	if !bytes.Contains(lines[n-1], []byte(args[2])) {
		ts.Fatalf("line %d does not hold %q", n, args[2])
	}
	lines[n-1] = bytes.Replace(lines[n-1], []byte(args[2]), []byte(args[3]), 1)
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), bytes.Join(lines, nil), 0o600))
}
