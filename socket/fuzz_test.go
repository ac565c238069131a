package socket

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/auths-dev/auths-agent/agent"
	"github.com/auths-dev/auths-agent/hsm"
	"github.com/auths-dev/auths-agent/registry"
)

type noOpener struct{}

func (noOpener) Open(context.Context, string) (hsm.Signer, error) { return nil, hsm.ErrNotFound }

// FuzzExtension feeds arbitrary bodies to every extension of a server whose
// agent holds no key: the reply is always SSH_AGENT_SUCCESS + JSON or an
// extension failure whose JSON says why on one line; nothing panics.
func FuzzExtension(f *testing.F) {
	reg, _, err := registry.Init(context.Background(), filepath.Join(f.TempDir(), "reg"), true)
	if err != nil {
		f.Fatal(err)
	}
	a, err := agent.New(agent.Config{}, agent.Options{Opener: noOpener{}, Registry: reg})
	if err != nil {
		f.Fatal(err)
	}
	s := NewServer(a, Options{UID: -1})
	names := []string{ExtKeys, ExtSignEvent, ExtAnchor, ExtPending, ExtQuery, ExtIDCreate, ExtIDRotate}
	f.Add(uint8(1), []byte(`{"event":"{\"v\":\"KERI10JSON0000fd_\",\"t\":\"ixn\"}"}`))
	f.Add(uint8(2), []byte(`{"prefix":"EAAA","seals":["d=x"]}`))
	f.Add(uint8(3), []byte(`{"prefix":"E","said":"E"}`))
	f.Add(uint8(0), []byte(`{}`))
	f.Add(uint8(5), []byte(`{"keys":["DAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"],"threshold":"1"}`))
	f.Add(uint8(6), []byte(`{"prefix":"EAAA","keys":["D"],"next_keys":["x"]}`))
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		name := names[int(which)%len(names)]
		reply, err := s.dispatch(context.Background(), name, body)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		switch {
		case len(reply) == 0:
			t.Fatalf("%s: empty reply", name)
		case reply[0] == msgSuccess && name != ExtQuery:
			if !json.Valid(reply[1:]) {
				t.Fatalf("%s: success reply is not JSON: %q", name, reply[1:])
			}
		case reply[0] == msgExtensionFailure:
			var fl Failure
			if err := json.Unmarshal(reply[1:], &fl); err != nil || fl.Error == "" {
				t.Fatalf("%s: failure without a reason: %q", name, reply[1:])
			}
			if bytes.ContainsAny([]byte(fl.Error), "\n\r") {
				t.Fatalf("%s: reason on several lines: %q", name, fl.Error)
			}
		case reply[0] != msgSuccess:
			t.Fatalf("%s: reply type %d", name, reply[0])
		}
	})
}
