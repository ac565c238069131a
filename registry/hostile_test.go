package registry

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
)

// allocated returns the bytes the Go heap allocated while f ran.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// gitIn runs git in dir with stdin and returns its trimmed stdout.
func gitIn(t *testing.T, dir, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir,
		"GIT_AUTHOR_NAME=f", "GIT_AUTHOR_EMAIL=f@f", "GIT_COMMITTER_NAME=f", "GIT_COMMITTER_EMAIL=f@f")
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestHostileLooseObject: a loose object whose header claims a gigabyte
// but holds a few bytes is refused without allocating the claimed size.
func TestHostileLooseObject(t *testing.T) {
	dir := newGitRepo(t, true)
	r := openTest(t, dir)
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write([]byte("blob 1073741824\x00tiny"))
	zw.Close()
	h := plumbing.NewHash("0123456789abcdef0123456789abcdef01234567")
	path := filepath.Join(dir, "objects", "01", "23456789abcdef0123456789abcdef01234567")
	if err := os.MkdirAll(filepath.Dir(path), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, z.Bytes(), 0o444); err != nil {
		t.Fatal(err)
	}
	var err error
	n := allocated(func() { _, err = r.readBlob(h) })
	if err == nil || !strings.Contains(err.Error(), "header claims 1073741824 bytes, the object holds 4") {
		t.Errorf("readBlob = %v, want the claimed and the actual size", err)
	}
	if n > 64<<20 {
		t.Errorf("reading a %d-byte object file allocated %d bytes", z.Len(), n)
	}
}

// TestHostilePackIndex: an index whose fan-out table announces four
// billion objects in a file of about a kilobyte is reported as unreadable
// without allocating for them; the other objects stay readable.
func TestHostilePackIndex(t *testing.T) {
	dir, r := importVectors(t, true)
	id := "pack-" + strings.Repeat("ab", 20)
	idx := make([]byte, 8+256*4+40)
	copy(idx, []byte{0xff, 't', 'O', 'c', 0, 0, 0, 2})
	binary.BigEndian.PutUint32(idx[8+4*255:], 0xffffffff)
	packDir := filepath.Join(dir, "objects", "pack")
	os.WriteFile(filepath.Join(packDir, id+".pack"), []byte("PACK\x00\x00\x00\x02\x00\x00\x00\x00"), 0o444)
	if err := os.WriteFile(filepath.Join(packDir, id+".idx"), idx, 0o444); err != nil {
		t.Fatal(err)
	}
	r = openTest(t, dir)
	var err error
	n := allocated(func() {
		var s *Snapshot
		if s, err = r.Snapshot(); err == nil {
			_, err = s.Verify(vectorPrefix)
		}
	})
	if err != nil {
		t.Fatalf("a bad index beside good packs: %v", err)
	}
	if n > 64<<20 {
		t.Errorf("reading the registry beside a %d-byte index allocated %d bytes", len(idx), n)
	}
	bad := joinErrs(r.objects.bad)
	if bad == nil || !strings.Contains(bad.Error(), "announces 4294967295 objects") {
		t.Errorf("the bad index is reported as %v", bad)
	}
}

// TestHostilePendingTree: a pending ref written by someone else, nested
// deeper than any proposal, or holding a name PutPending refuses, is a
// CorruptError naming the ref; neither is walked further.
func TestHostilePendingTree(t *testing.T) {
	dir := newGitRepo(t, true)
	r := openTest(t, dir)
	blob := gitIn(t, dir, "x", "hash-object", "-w", "--stdin")
	tree := gitIn(t, dir, "100644 blob "+blob+"\tf\n", "mktree")
	for i := 0; i < 40; i++ {
		tree = gitIn(t, dir, "040000 tree "+tree+"\td\n", "mktree")
	}
	badName := gitIn(t, dir, "100644 blob "+blob+"\tsig nature\n", "mktree")
	for i, tc := range []struct{ tree, want string }{
		{tree, "nested more than 16 directories deep"},
		{badName, `"sig nature": character ' ' not allowed`},
	} {
		id := pendingTestID(100 + i)
		c := gitIn(t, dir, "", "commit-tree", tc.tree, "-m", "foreign")
		gitIn(t, dir, "", "update-ref", id.Ref(), c)
		_, err := r.ReadPending(id)
		var ce *CorruptError
		if !errors.As(err, &ce) || !strings.HasPrefix(ce.Path, id.Ref()) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ReadPending = %v, want a CorruptError naming %s: %s", err, id.Ref(), tc.want)
		}
		if _, err := r.PutPending(bg(), id, PendingFiles{"x": []byte("y")}); !errors.Is(err, ErrCorrupt) {
			t.Errorf("PutPending on a hostile tree = %v, want ErrCorrupt", err)
		}
	}
}

// TestHostileRefFile: a ref file holding far more than a commit id is a
// CorruptError, read no further than a few kilobytes.
func TestHostileRefFile(t *testing.T) {
	dir := newGitRepo(t, true)
	r := openTest(t, dir)
	path := filepath.Join(dir, filepath.FromSlash(RegistryRef))
	os.MkdirAll(filepath.Dir(path), 0o777)
	if err := os.WriteFile(path, bytes.Repeat([]byte("0"), 4<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	var err error
	n := allocated(func() { _, err = r.Head() })
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Path != RegistryRef {
		t.Errorf("Head = %v, want a CorruptError naming %s", err, RegistryRef)
	}
	if n > 256<<10 {
		t.Errorf("reading the ref allocated %d bytes", n)
	}
}

// TestCorruptErrorOneLine: a path or content with control characters or
// invalid UTF-8 (anyone's bytes, from a tree) is escaped in the message.
// FuzzRegistryTree found an events/ entry named "00000001.attachment\r.cesr".
func TestCorruptErrorOneLine(t *testing.T) {
	err := corrupt("v1/events/1\r\n\x1b[2J\xff\u00e9\uFFFD", "holds %q", "x")
	want := `corrupt registry: v1/events/1\r\n\x1b[2J\xffé` + "\uFFFD" + `: holds "x"`
	if err.Error() != want {
		t.Errorf("got  %s\nwant %s", err, want)
	}
}
