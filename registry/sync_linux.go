package registry

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncFiles makes the files just written durable: fdatasync(2) of each
// flushes its data and the size needed to read it back, and nothing else.
// (syncfs(2) would flush the whole file system, making every commit wait
// for unrelated writers.) The caller syncs their directory after renaming
// them.
func syncFiles(files ...*os.File) error {
	for _, f := range files {
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
		}
	}
	return nil
}
