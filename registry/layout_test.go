package registry

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auths-dev/auths-agent/internal/vectors"
	"github.com/auths-dev/auths-agent/kel"
	"github.com/rogpeppe/go-internal/txtar"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

const vectorPrefix = "EMd282TNa216KX7fuXQyuic3SSv7J6dpv6YLqQFlT5_S"

// importVectors initializes a registry and commits the keripy KEL as one
// batch.
func importVectors(t *testing.T, bare bool) (string, *Registry) {
	t.Helper()
	dir := newGitRepo(t, bare)
	r := openTest(t, dir)
	if _, created, err := Init(bg(), dir, bare, WithClock(fixedClock())); err != nil || !created {
		t.Fatalf("Init: created=%v err=%v", created, err)
	}
	stream, _ := vectorStream(t)
	events, err := kel.ParseStream(stream)
	if err != nil {
		t.Fatal(err)
	}
	var b Batch
	for _, se := range events {
		b.Append(se)
	}
	if _, err := r.Commit(bg(), &b); err != nil {
		t.Fatal(err)
	}
	return dir, r
}

func TestVectorsLayoutGolden(t *testing.T) {
	for _, bare := range []bool{false, true} {
		name := "worktree"
		if bare {
			name = "bare"
		}
		t.Run(name, func(t *testing.T) {
			dir, _ := importVectors(t, bare)
			fsck(t, dir)
			if n := len(commitLog(t, dir)); n != 2 {
				t.Errorf("git log shows %d commits, want 2 (init + one batch)", n)
			}
			paths := runGit(t, dir, "ls-tree", "-r", "--name-only", RegistryRef)
			idDir := "v1/identities/EM/d2/" + vectorPrefix
			got := &txtar.Archive{Files: []txtar.File{{Name: "paths", Data: []byte(paths)}}}
			for _, f := range []string{idDir + "/tip.json", idDir + "/state.json", "v1/metadata.json"} {
				got.Files = append(got.Files, txtar.File{Name: f, Data: []byte(runGit(t, dir, "show", RegistryRef+":"+f) + "\n")})
			}
			golden := filepath.Join("testdata", "vectors_layout.txtar")
			if *update {
				if err := os.WriteFile(golden, txtar.Format(got), 0o666); err != nil {
					t.Fatal(err)
				}
			}
			want, err := txtar.ParseFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if len(want.Files) != len(got.Files) {
				t.Fatalf("golden has %d files, got %d", len(want.Files), len(got.Files))
			}
			for i := range want.Files {
				if want.Files[i].Name != got.Files[i].Name || !bytes.Equal(want.Files[i].Data, got.Files[i].Data) {
					t.Errorf("%s differs from the golden %s:\n got %s\nwant %s", got.Files[i].Name, want.Files[i].Name, got.Files[i].Data, want.Files[i].Data)
				}
			}
			_, vec := vectorStream(t)
			for sn, raw := range vec {
				blob := runGit(t, dir, "show", RegistryRef+":"+idDir+"/events/"+eventName(uint64(sn)))
				var c bytes.Buffer
				if err := json.Compact(&c, []byte(blob)); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(c.Bytes(), raw) {
					t.Errorf("event %d: json.Compact of the blob differs from the vector", sn)
				}
				if !strings.Contains(blob, "\n  \"v\": ") {
					t.Errorf("event %d blob is not pretty-printed with two spaces:\n%s", sn, blob)
				}
			}
			for sn, name := range []string{"rot_remove.icp.att", "rot_remove.rot.att"} {
				att, _ := vectors.File(name)
				blob := runGit(t, dir, "show", RegistryRef+":"+idDir+"/events/"+attachmentName(uint64(sn)))
				if blob != string(att) {
					t.Errorf("attachment %d differs from %s", sn, name)
				}
			}
		})
	}
}

func TestVectorsRead(t *testing.T) {
	dir, r := importVectors(t, false)
	_ = dir
	s, err := r.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	stream, _ := vectorStream(t)
	got, err := s.KELStream(vectorPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, stream) {
		t.Errorf("KEL stream differs from the vectors:\n got %s\nwant %s", got, stream)
	}
	tip, err := s.Tip(vectorPrefix)
	if err != nil || tip.Sequence != 1 || tip.SAID != "ENb3ofWuID9qeLGISJKezex1h2HgG4EbIqI0BE5Uee1a" {
		t.Errorf("Tip = %+v, %v", tip, err)
	}
	st, err := s.KeyState(vectorPrefix)
	if err != nil {
		t.Fatal(err)
	}
	replayed, err := s.Verify(vectorPrefix)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(st)
	b, _ := json.Marshal(replayed)
	if !bytes.Equal(a, b) || len(st.CurrentKeys) != 2 {
		t.Errorf("state.json state %s differs from replay %s", a, b)
	}
	prefixes, err := s.Prefixes()
	if err != nil || len(prefixes) != 1 || prefixes[0] != vectorPrefix {
		t.Errorf("Prefixes = %v, %v", prefixes, err)
	}
	m, err := s.Metadata()
	if err != nil || m.IdentityCount != 1 || m.DeviceCount != 0 {
		t.Errorf("Metadata = %+v, %v", m, err)
	}
}
