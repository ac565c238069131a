package registry

// The git peer of an append: the same objects written by git's own
// plumbing, as a script would without this package (git hash-object -w for
// the blobs, git mktree --batch for the trees bottom-up, git commit-tree,
// git update-ref with the old value), with core.fsync set to the
// durability of the append it is compared with.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Git's durability settings beside ours: a durable append flushes the
// pack, its index, the pack directory and the ref; one with noSync flushes
// only the ref.
var (
	gitDurable = []string{"-c", "core.fsync=loose-object,pack,reference", "-c", "core.fsyncMethod=fsync"}
	gitNoSync  = []string{"-c", "core.fsync=reference", "-c", "core.fsyncMethod=fsync"}
)

// gitWrite is what one append wrote, in the order git needs it.
type gitWrite struct {
	blobs  []plumbing.Hash
	files  []string        // the blobs' content in files, for hash-object --stdin-paths
	trees  []plumbing.Hash // children before parents
	mktree []string        // each tree as git mktree input
	commit plumbing.Hash
	parent plumbing.Hash
	c      *object.Commit
}

// collectWrite reads the objects commit head added on top of base.
func collectWrite(b *testing.B, r *Registry, base, head plumbing.Hash, tmp string) *gitWrite {
	b.Helper()
	c, err := r.readCommit(head)
	if err != nil {
		b.Fatal(err)
	}
	pc, err := r.readCommit(base)
	if err != nil {
		b.Fatal(err)
	}
	w := &gitWrite{commit: head, parent: base, c: c}
	var walk func(h, old plumbing.Hash)
	walk = func(h, old plumbing.Hash) {
		t, err := r.readTree(h)
		if err != nil {
			b.Fatal(err)
		}
		prev := map[string]plumbing.Hash{}
		if !old.IsZero() {
			ot, err := r.readTree(old)
			if err != nil {
				b.Fatal(err)
			}
			for _, e := range ot.Entries {
				prev[e.Name] = e.Hash
			}
		}
		var in strings.Builder
		for _, e := range t.Entries {
			typ := "blob"
			if e.Mode == filemode.Dir {
				typ = "tree"
			}
			fmt.Fprintf(&in, "%06o %s %s\t%s\n", uint32(e.Mode), typ, e.Hash, e.Name)
			if prev[e.Name] == e.Hash {
				continue
			}
			if e.Mode == filemode.Dir {
				walk(e.Hash, prev[e.Name])
				continue
			}
			data, err := r.readBlob(e.Hash)
			if err != nil {
				b.Fatal(err)
			}
			name := filepath.Join(tmp, fmt.Sprintf("blob%d", len(w.blobs)))
			if err := os.WriteFile(name, data, 0o644); err != nil {
				b.Fatal(err)
			}
			w.blobs, w.files = append(w.blobs, e.Hash), append(w.files, name)
		}
		w.trees, w.mktree = append(w.trees, h), append(w.mktree, in.String())
	}
	walk(c.TreeHash, pc.TreeHash)
	if n := len(w.blobs) + len(w.trees) + 1; n != appendObjects {
		b.Fatalf("the append added %d objects, want %d", n, appendObjects)
	}
	return w
}

// gitPeer is a copy of the benchmark registry's repository that git writes
// to; after each write its loose objects are removed and its ref moved back.
type gitPeer struct {
	dir  string // the bare repository
	home string
}

func newGitPeer(b *testing.B, src string) *gitPeer {
	b.Helper()
	p := &gitPeer{dir: filepath.Join(b.TempDir(), "peer.git"), home: b.TempDir()}
	if out, err := exec.Command("cp", "-a", src, p.dir).CombinedOutput(); err != nil {
		b.Fatalf("cp -a %s: %v\n%s", src, err, out)
	}
	// git ignores unknown core.fsync values with a warning: make sure both
	// settings are understood.
	for _, cfg := range [][]string{gitDurable, gitNoSync} {
		var stderr bytes.Buffer
		cmd := p.git(cfg, "rev-parse", RegistryRef)
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil || stderr.Len() > 0 {
			b.Fatalf("git %s: %v %s", strings.Join(cfg, " "), err, stderr.String())
		}
	}
	return p
}

func (p *gitPeer) git(cfg []string, args ...string) *exec.Cmd {
	cmd := exec.Command("git", append(append([]string{}, cfg...), args...)...)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+p.home, "GIT_DIR="+p.dir)
	return cmd
}

// write has git write w with the durability cfg; it returns the ids git
// printed, in the order blobs, trees, commit.
func (p *gitPeer) write(b *testing.B, cfg []string, w *gitWrite) []string {
	var ids []string
	run := func(cmd *exec.Cmd, stdin string) string {
		var out, errb bytes.Buffer
		cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &out, &errb
		if err := cmd.Run(); err != nil {
			b.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, errb.String())
		}
		return out.String()
	}
	ids = append(ids, strings.Fields(run(p.git(cfg, "hash-object", "-w", "--no-filters", "--stdin-paths"), strings.Join(w.files, "\n")+"\n"))...)

	// mktree --batch answers each tree (ended by a blank line) with its id
	// before it reads the next, which may name it.
	cmd := p.git(cfg, "mktree", "--batch")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	rd := bufio.NewReader(stdout)
	for _, t := range w.mktree {
		if _, err := io.WriteString(stdin, t+"\n"); err != nil {
			b.Fatalf("git mktree: %v\n%s", err, errb.String())
		}
		line, err := rd.ReadString('\n')
		if err != nil {
			b.Fatalf("git mktree: %v\n%s", err, errb.String())
		}
		ids = append(ids, strings.TrimSpace(line))
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		b.Fatalf("git mktree: %v\n%s", err, errb.String())
	}

	c := p.git(cfg, "commit-tree", w.trees[len(w.trees)-1].String(), "-p", w.parent.String())
	date := func(t time.Time) string { return fmt.Sprintf("@%d %s", t.Unix(), t.Format("-0700")) }
	c.Env = append(c.Env,
		"GIT_AUTHOR_NAME="+w.c.Author.Name, "GIT_AUTHOR_EMAIL="+w.c.Author.Email, "GIT_AUTHOR_DATE="+date(w.c.Author.When),
		"GIT_COMMITTER_NAME="+w.c.Committer.Name, "GIT_COMMITTER_EMAIL="+w.c.Committer.Email, "GIT_COMMITTER_DATE="+date(w.c.Committer.When))
	commit := strings.TrimSpace(run(c, w.c.Message))
	ids = append(ids, commit)
	run(p.git(cfg, "update-ref", RegistryRef, commit, w.parent.String()), "")
	return ids
}

// check fails unless git wrote exactly the objects of w.
func (w *gitWrite) check(b *testing.B, ids []string) {
	var want []string
	for _, h := range append(append(append([]plumbing.Hash{}, w.blobs...), w.trees...), w.commit) {
		want = append(want, h.String())
	}
	if strings.Join(ids, " ") != strings.Join(want, " ") {
		b.Fatalf("git wrote other objects than the append:\n got %v\nwant %v", ids, want)
	}
}

// undo removes the loose objects of w and moves the ref back.
func (p *gitPeer) undo(b *testing.B, w *gitWrite) {
	for _, h := range append(append(append([]plumbing.Hash{}, w.blobs...), w.trees...), w.commit) {
		s := h.String()
		if err := os.Remove(filepath.Join(p.dir, "objects", s[:2], s[2:])); err != nil {
			b.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(p.dir, filepath.FromSlash(RegistryRef)), []byte(w.parent.String()+"\n"), 0o644); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkAppendPeers times, in every iteration and in turn, four writes
// of one event to a KEL of 10 events: a durable append (objects and ref
// flushed), an append with only the ref flushed, and git's plumbing
// writing the same objects with core.fsync set to each of the two. Each
// starts from the same state; git writes the objects of the latest
// durable append (the same shape and size every time) and must produce the
// same ids.
func BenchmarkAppendPeers(b *testing.B) {
	ab := newAppendBench(b, "peers", 4, 4, 10)
	peer := newGitPeer(b, ab.r.gitDir)
	tmp := b.TempDir()
	var w *gitWrite
	ab.inspect = func(head plumbing.Hash) {
		if ab.r.opts.noSync {
			return
		}
		w = collectWrite(b, ab.r, ab.base, head, tmp)
	}
	ab.run(b, true, nil) // the first objects for git
	b.Run("kel=10", func(b *testing.B) {
		var durable, nosync, gitDur, gitNo time.Duration
		steps := []func(){
			func() { ab.run(b, true, stopwatch(b, &durable)) },
			func() { ab.run(b, false, stopwatch(b, &nosync)) },
			func() {
				ww := w
				var ids []string
				stopwatch(b, &gitDur)(func() { ids = peer.write(b, gitDurable, ww) })
				ww.check(b, ids)
				peer.undo(b, ww)
			},
			func() {
				ww := w
				var ids []string
				stopwatch(b, &gitNo)(func() { ids = peer.write(b, gitNoSync, ww) })
				ww.check(b, ids)
				peer.undo(b, ww)
			},
		}
		b.StopTimer()
		b.ResetTimer()
		for i := range b.N {
			// Rotate the order, so no path always follows another.
			for k := range steps {
				steps[(i+k)%len(steps)]()
			}
		}
		n := float64(b.N)
		b.ReportMetric(float64(durable.Nanoseconds())/n, "durable-ns/append")
		b.ReportMetric(float64(nosync.Nanoseconds())/n, "nosync-ns/append")
		b.ReportMetric(float64(gitDur.Nanoseconds())/n, "git-durable-ns/append")
		b.ReportMetric(float64(gitNo.Nanoseconds())/n, "git-nosync-ns/append")
	})
}
