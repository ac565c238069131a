package registry

// This file tells the packs this package wrote from everyone else's. Pack
// merging (repack.go) touches only those: a pack git wrote may be listed in
// a multi-pack-index or a bitmap, may hold deltas worth keeping, and is
// git's to maintain (git gc, git maintenance).

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
)

// ourPacksName is the file in the repository directory listing the ids of
// the packs this package wrote, one per line. It lives outside objects/pack/
// because git counts unknown files there as garbage. Losing it loses
// nothing but merges: an unlisted pack is left to git.
const ourPacksName = "auths-agent-packs"

// maxOurPacksSize bounds what is read of the list, and is the size past
// which an append rewrites it without the packs that are gone (git's own
// repacks remove ours, so the list would otherwise grow forever).
const maxOurPacksSize = 64 << 10

// ourPacks is the list of this package's packs in one repository. Every
// change happens under the registry flock.
type ourPacks struct {
	path    string
	packDir string
	log     *slog.Logger
}

// add records id before its pack is renamed into place. A failure is
// logged, not returned: the pack is still written, only never merged.
func (o *ourPacks) add(id plumbing.Hash) {
	if o == nil {
		return
	}
	f, err := os.OpenFile(o.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o666)
	if err == nil {
		_, err = f.WriteString(id.String() + "\n")
		var fi os.FileInfo
		if err == nil {
			fi, err = f.Stat()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil && fi.Size() > maxOurPacksSize {
			err = o.prune()
		}
	}
	if err != nil {
		o.log.Warn("could not record a pack as this program's; git gc will maintain it", "pack", id.String(), "err", err)
	}
}

// list returns the recorded ids. A list longer than its bound or holding
// anything but ids reads as empty: nothing is merged, nothing lost.
func (o *ourPacks) list() (map[plumbing.Hash]bool, error) {
	data, err := readSmallFile(o.path, maxOurPacksSize+4096)
	if errors.Is(err, os.ErrNotExist) {
		return map[plumbing.Hash]bool{}, nil
	}
	if errors.Is(err, errTooLarge) {
		return nil, fmt.Errorf("%s: longer than %d bytes", o.path, maxOurPacksSize+4096)
	}
	if err != nil {
		return nil, err
	}
	ids := map[plumbing.Hash]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if !plumbing.IsHash(line) {
			return nil, fmt.Errorf("%s: line %q is not a pack id", o.path, clip(line))
		}
		ids[plumbing.NewHash(line)] = true
	}
	return ids, nil
}

// prune rewrites the list without the packs that are gone.
func (o *ourPacks) prune() error {
	ids, err := o.list()
	if err != nil {
		ids = map[plumbing.Hash]bool{}
	}
	return o.write(ids)
}

// write replaces the list with the ids whose pack exists (atomically:
// written aside and renamed; a crash leaves the old list or the new one).
func (o *ourPacks) write(ids map[plumbing.Hash]bool) error {
	var b strings.Builder
	for id := range ids {
		if _, err := os.Stat(filepath.Join(o.packDir, "pack-"+id.String()+".pack")); err == nil {
			b.WriteString(id.String() + "\n")
		}
	}
	tmp := o.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o666); err != nil {
		return err
	}
	if err := os.Rename(tmp, o.path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// gitReferenced returns the packs git's metadata in dir names: those a
// multi-pack-index (single or incremental chain) lists. Merging them away
// would leave the multi-pack-index naming a missing pack.
func gitReferenced(dir string) (map[plumbing.Hash]bool, error) {
	midx := []string{filepath.Join(dir, "multi-pack-index")}
	chain, err := os.ReadDir(filepath.Join(dir, "multi-pack-index.d"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for _, e := range chain {
		if strings.HasSuffix(e.Name(), ".midx") {
			midx = append(midx, filepath.Join(dir, "multi-pack-index.d", e.Name()))
		}
	}
	out := map[plumbing.Hash]bool{}
	for _, path := range midx {
		f, err := os.Open(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		// The pack names chunk holds "pack-<id>.idx" strings, NUL
		// terminated; scanning the whole file for them needs no parser
		// of the format and cannot miss one.
		data, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Base(path), err)
		}
		for {
			i := bytes.Index(data, []byte("pack-"))
			if i < 0 {
				break
			}
			data = data[i+5:]
			if len(data) >= 44 && string(data[40:44]) == ".idx" && plumbing.IsHash(string(data[:40])) {
				out[plumbing.NewHash(string(data[:40]))] = true
			}
		}
	}
	return out, nil
}
