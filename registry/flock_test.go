package registry

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLockFileNotUntracked: the flock file a work tree gets is listed in
// .git/info/exclude, once, so `git status` stays clean; a bare repository's
// exclude file is left alone.
func TestLockFileNotUntracked(t *testing.T) {
	dir := newGitRepo(t, false)
	exclude := filepath.Join(dir, ".git", "info", "exclude")
	// An exclude file without a final newline keeps its last line whole.
	if err := os.WriteFile(exclude, []byte("*.swp"), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, _, err := Init(context.Background(), dir, false, WithClock(fixedClock())); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, flockName)); err != nil {
		t.Fatalf("no lock file: %v", err)
	}
	if st := runGit(t, dir, "status", "--porcelain", "--untracked-files=all"); st != "" {
		t.Errorf("git status shows:\n%s", st)
	}
	data, err := os.ReadFile(exclude)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(data); !strings.HasPrefix(got, "*.swp\n") || strings.Count(got, "/registry.lock\n") != 1 {
		t.Errorf("exclude file:\n%s", got)
	}
	// Removed and taken again: still listed once.
	os.Remove(filepath.Join(dir, flockName))
	if _, _, err := Init(context.Background(), dir, false); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(exclude); strings.Count(string(data), "/registry.lock\n") != 1 {
		t.Errorf("exclude file after a second creation:\n%s", data)
	}

	bare := newGitRepo(t, true)
	before, _ := os.ReadFile(filepath.Join(bare, "info", "exclude"))
	if _, _, err := Init(context.Background(), bare, true); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(filepath.Join(bare, "info", "exclude")); string(after) != string(before) {
		t.Errorf("bare repository's exclude changed:\n%s", after)
	}
}
